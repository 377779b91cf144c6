"""The photo pool study's reading (adv2.chapters.aid_photo_pools): the book's choice rule, table
and glue on constructed reports (the benchmark itself trains models: benchmarks/bench_photo_aid.py)."""

import matplotlib

matplotlib.use("Agg")

from adv2.chapters import aid_photo_pools as pools  # noqa: E402


def _est(v, lo, hi):
    return {"value": v, "low": lo, "high": hi, "n": 10, "method": "bootstrap 95%"}


def _setting(drift, ratio, lo, hi):
    return {
        "drift": _est(drift, drift - 0.01, drift + 0.01),
        "ratio": _est(ratio, lo, hi),
        "share": _est(0.1, 0.0, 0.2),
        "adv2_l1": _est(0.05, 0.04, 0.06),
        "train_seconds": 120.0,
    }


def _report(strong_drift=0.04, strong_low=1.3, control_high=1.1):
    return {
        "benign_l1_max": 0.05,
        "pools": {
            "packages": {
                "n_photos": 10,
                "pool_photos": 42,
                "settings": {"published": _setting(0.02, 1.05, 0.95, 1.15)},
            },
            "packages-v2": {
                "n_photos": 10,
                "pool_photos": 72,
                "settings": {
                    "published": _setting(0.02, 1.08, 0.98, 1.18),
                    "strong": _setting(strong_drift, 1.5, strong_low, 1.7),
                    "strong, beta 0": _setting(0.02, 1.0, 0.9, control_high),
                },
            },
        },
    }


def test_choice_is_the_strongest_setting_within_the_drift_limit_and_above_its_control():
    assert pools.choose(_report()) == {"pool": "packages-v2", "setting": "strong"}


def test_choice_skips_a_setting_that_drifts_too_far():
    assert pools.choose(_report(strong_drift=0.08)) == {"pool": "packages-v2", "setting": "published"}


def test_choice_skips_a_setting_whose_interval_overlaps_its_control():
    assert pools.choose(_report(strong_low=1.05, control_high=1.1))["setting"] == "published"


def test_no_choice_when_nothing_meets_the_limit():
    r = _report(strong_drift=0.2)
    for p in r["pools"].values():
        for s in p["settings"].values():
            s["drift"] = _est(0.2, 0.1, 0.3)
    assert pools.choose(r) == {"pool": None, "setting": None}
    assert pools.glue({**r, "choice": pools.choose(r)}, "not run")["ch6_pool_choice"] == "none"


def test_table_glue_and_figure_read_the_report():
    r = _report()
    r["choice"] = pools.choose(r)
    text = pools.table(r)
    assert "strong (chosen)" in text and "72 photographs" in text
    g = pools.glue(r, "not run")
    assert g["ch6_pool_choice"] == "strong (72 photographs)"
    assert g["ch6_pool_meets"] == "strong (72 photographs)"
    assert g["ch6_pool_drift_by_pool"].endswith("(published)")
    assert pools.figure(r) is not None
    assert set(pools.glue(None, "not run").values()) == {"not run"}
    assert set(pools.glue(None, "not run")) == set(g)  # the same names whether measured or not
