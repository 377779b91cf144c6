"""Chapter 6's all-photo evaluation (adv2.chapters.aid_photo_eval): the report written by
benchmarks/bench_photo_table10.py is read back, and its stored verdicts follow from its own
per-photo values by the claims layer (so a stale or hand-edited report fails)."""

import json

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from adv2.chapters import aid_photo_eval, ch06  # noqa: E402
from adv2.chapters._common import PHOTOS, verdicts_block  # noqa: E402
from adv2.chapters.results import results_folder  # noqa: E402

NOT_RUN = "not run"


def _per_image(per_photo):
    nan = float("nan")
    return {k: torch.tensor([nan if x is None else float(x) for x in v]) for k, v in per_photo.items()}


def _verdicts_from_per_photo(block, n=None):
    per = {k: v[:n] for k, v in _per_image(block["per_photo"]).items()}
    for k in per:
        if "success" in k:
            per[k] = per[k].bool()
    run = type("Run", (), {"archs": [PHOTOS], "per_image": {PHOTOS: per}})
    return verdicts_block(ch06.verdicts(run))[PHOTOS]


@pytest.fixture(scope="module")
def report():
    r = aid_photo_eval.load()
    if r is None:
        pytest.fail(f"{aid_photo_eval.REPORT} is missing from {results_folder(None)}: run the benchmark")
    return r


def test_stored_verdicts_follow_from_the_per_photo_values(report):
    for b in report["budgets"]:
        assert _verdicts_from_per_photo(b) == b["verdicts"], b["attack_scale"]
        n = min(report["quick_images"], b["n_images"])
        assert _verdicts_from_per_photo(b, n) == b["verdicts_quick_photos"], b["attack_scale"]


def test_report_covers_four_times_the_quick_budget_and_the_adaptive_attacker(report):
    roles = aid_photo_eval.budgets(report)
    assert roles["x4"]["adaptive"] and roles["x4"]["stage2_steps"] >= 4 * roles["quick"]["stage2_steps"]
    assert all(b["n_images"] == len(b["per_photo"]["adv2_l1_rts"]) for b in report["budgets"])


def test_table_glue_and_figure(report):
    text = aid_photo_eval.table(report)
    assert text.count("\n|") >= len(report["budgets"]) + 2  # header, rule, a row per budget (+ adaptive)
    assert "adaptive attacker" in text
    g = aid_photo_eval.glue(report, NOT_RUN)
    missing = aid_photo_eval.glue(None, NOT_RUN)
    assert set(g) == set(missing) and set(missing.values()) == {NOT_RUN}
    assert g["ch6_allphotos_x4_adaptive_ratio"] != NOT_RUN
    assert aid_photo_eval.figure(report) is not None


def test_a_changed_value_changes_the_verdict_check(report):
    # the consistency test above can fail: a report whose RTSA distances grew tenfold no longer
    # matches its stored ratio verdict's estimate
    b = report["budgets"][0]
    bumped = {**b, "per_photo": {**b["per_photo"]}}
    bumped["per_photo"]["adv2_l1_rtsa"] = [
        None if x is None else 10 * x for x in b["per_photo"]["adv2_l1_rtsa"]
    ]
    assert _verdicts_from_per_photo(bumped) != b["verdicts"]


def _published_glue(stem):
    path = results_folder(None).parent / "book" / "notebooks" / f"{stem}.ipynb"
    glued = {}
    for cell in json.loads(path.read_text())["cells"]:
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                glued[name] = next(iter(out.get("data", {}).values()), None)
    return glued


@pytest.mark.parametrize(
    "stem, names",
    [
        ("06_table10", ("ch6_allphotos_n_images", "ch6_pool_n_photos")),
        ("04_aid_defense", ("ch6_pool_n_photos",)),
    ],
)
def test_the_published_chapters_read_the_benchmark_reports(stem, names):
    # a chapter reads the committed reports, not its run's results folder (which never holds them):
    # the published notebook must show their numbers, not "not run"
    glued = _published_glue(stem)
    for name in names:
        assert name in glued and NOT_RUN not in str(glued[name]), (stem, name, glued.get(name))
