"""Chapter 5's protocol (adv2.chapters.ch05): calibration and map sensitivity end to end on a tiny
linear classifier with a few-weight stand-in for RTS and RTSA."""

import copy
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from adv2.chapters import _common, ch05, claims, noise_figures, results
from adv2.core import noise, paper, seed_stats, stats
from standins import FakeRTS, glue_keys_in_markdown

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "05_noise_sensitivity.ipynb"
RATES = [0.0, 0.03, 0.3]


def fake_net(seed: int):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()
    return SimpleNamespace(model=model, rts=FakeRTS(seed + 1), rtsa=FakeRTS(seed + 2))


@pytest.fixture(scope="module")
def chapter():
    """``archs -> (result, cal, sens)`` for the tiny setting, cached per archs."""
    cache = {}

    def run(archs, rates=tuple(RATES)):
        key = (tuple(archs), tuple(rates))
        if key not in cache:
            nets = {a: fake_net(i) for i, a in enumerate(archs)}
            g = torch.Generator().manual_seed(0)
            x = torch.rand(120, 1, 28, 28, generator=g)
            y = nets[archs[0]].model(x).argmax(1)  # the first classifier gets them all right
            search = noise.NoiseSearch(rates=list(rates), tolerance=0.05, max_iter=12, seed=0)
            cal = ch05.calibrate(nets, x, y, search, n_calib=40)
            sens = ch05.sensitivity(nets, cal, map_class="predicted")
            cache[key] = (
                ch05.summarize(cal, sens, rates=list(rates), map_class="predicted", tolerance=0.05),
                cal,
                sens,
            )
        return cache[key]

    return run


@pytest.mark.parametrize("archs", [["densenet"], ["resnet"]])
def test_glue_covers_every_key_the_chapter_reads(chapter, archs):
    result, _, _ = chapter(archs)
    glued = {**result.glue(), **ch05.all_photo_glue({})}  # photos off: glued as not run
    wanted = glue_keys_in_markdown(NOTEBOOK)
    assert wanted, "no {glue} references found in the chapter's markdown"
    assert wanted <= set(glued), sorted(wanted - set(glued))
    other = ({"resnet", "densenet"} - set(archs)).pop()
    assert glued[f"ch5_{other}_l1_rts_normal_3pct"] == "not run"
    assert glued[f"ch5_{other}_verdict"] == "not run"
    assert glued[f"ch5_{archs[0]}_verdict"].split(" (")[0] in claims.STATUSES
    assert "±" in glued[f"ch5_{archs[0]}_sample_size"]
    for name, value in glued.items():
        assert value is not None and not (isinstance(value, float) and math.isnan(value)), name


def test_levels_not_run_still_glued(chapter):
    result, _, _ = chapter(["resnet"], rates=(0.3,))
    glued = {**result.glue(), **ch05.all_photo_glue({})}
    assert glue_keys_in_markdown(NOTEBOOK) <= set(glued)
    assert glued["ch5_resnet_l1_rts_normal_3pct"] == "not run"
    assert isinstance(glued["ch5_resnet_l1_rts_normal_30pct"], float)


def test_numbers_layout_and_per_image(chapter):
    result, cal, sens = chapter(["resnet"])
    n = result.numbers()
    assert set(n) == {
        "resnet",
        "paper",
        "settings",
        "intervals",
        "verdicts",
        "train_seeds",
        "interval_covers",
    }
    for kind in noise.NOISE_TYPES:  # each interval's value is the number it belongs to
        est = n["intervals"]["resnet"][f"ratio_rtsa_over_rts_{kind}_30"]
        assert est["value"] == pytest.approx(n["resnet"][f"ratio_rtsa_over_rts_{kind}_30"], rel=1e-5)
        assert est["low"] <= est["value"] <= est["high"]
        l1 = n["intervals"]["resnet"]["l1"]["rtsa"][kind]["3%"]
        assert l1["value"] == pytest.approx(n["resnet"]["l1"]["rtsa"][kind]["3%"], rel=1e-5)
    v = n["verdicts"]["resnet"]["rtsa_more_noise_sensitive"]
    assert v["status"] in claims.STATUSES and set(v["parts"]) == set(noise.NOISE_TYPES)
    r = n["resnet"]
    assert r["n_calib"] == len(cal["resnet"].x) == 40
    assert set(r["calibration"]) == set(noise.NOISE_TYPES)
    assert set(r["calibration"]["normal"]) == {"0%", "3%", "30%"}
    for kind in noise.NOISE_TYPES:
        rts, rtsa = r["l1"]["rts"][kind]["30%"], r["l1"]["rtsa"][kind]["30%"]
        assert r[f"ratio_rtsa_over_rts_{kind}_30"] == pytest.approx(rtsa / rts)
        per = result.per_image["resnet"]["l1"]["rts"][kind]["30%"]
        assert len(per) == 40 and float(per.mean()) == pytest.approx(rts)
        flipped = result.per_image["resnet"]["flipped"][kind]["30%"]
        assert int(flipped.sum()) == sens["resnet"]["n_flipped"][kind]["30%"]
    assert n["paper"] == {"l1": paper.PAPER_FIG15_L1}
    assert n["settings"] == {"map_class": "predicted", "tolerance": 0.05, "rates": RATES}
    json.dumps(results._plain(n))


def _fake(scale: dict[str, float], n: int = 30, seed: int = 0) -> ch05.Ch05Result:
    """A result whose RTSA moves ``scale[kind]`` times as much as RTS at the top level."""
    res = ch05.Ch05Result.__new__(ch05.Ch05Result)
    res.archs, res.rates, res.more_seeds = ["resnet"], [0.0, 0.3], {}
    g = torch.Generator().manual_seed(seed)
    rts = {k: 0.1 + 0.02 * torch.rand(n, generator=g) for k in noise.NOISE_TYPES}
    res.per_image = {
        "resnet": {
            "l1": {
                "rts": {k: {"30%": rts[k]} for k in noise.NOISE_TYPES},
                "rtsa": {
                    k: {"30%": rts[k] * scale[k] + 0.01 * torch.rand(n, generator=g)}
                    for k in noise.NOISE_TYPES
                },
            }
        }
    }
    return res


def test_verdict_comes_from_the_claims_layer():
    def status(scale, n=30):
        return ch05.verdicts(_fake(scale, n))["resnet"]["rtsa_more_noise_sensitive"].status

    assert status({"normal": 2.0, "uniform": 1.8}) == claims.HOLDS
    assert status({"normal": 2.0, "uniform": 1.0}) == claims.DOES_NOT_HOLD  # every noise type
    assert status({"normal": 1.0, "uniform": 1.0}) == claims.DOES_NOT_HOLD
    assert status({"normal": 2.0, "uniform": 2.0}, n=4) == claims.NOT_MEASURABLE  # illustration
    v = ch05.verdicts(_fake({"normal": 2.0, "uniform": 1.8}))
    assert set(v) == {"resnet"} and isinstance(v["resnet"]["rtsa_more_noise_sensitive"], claims.Verdict)


def test_tables_have_no_nan_or_none(chapter):
    _, cal, sens = chapter(["resnet"])
    text = (
        ch05.calibration_table(cal)
        + noise_figures.fig15_tables(sens, RATES)
        + noise_figures.flipped_kept_table(sens, RATES)
    )
    assert "nan" not in text and "None" not in text
    assert re.search(r"\d \[\d[^]]*, \d[^]]*\]", noise_figures.fig15_tables(sens, RATES))  # intervals shown
    assert "Ratio RTSA / RTS at 30%" in noise_figures.fig15_tables(sens, RATES)
    cells, labels, fa = noise_figures.figure15_cells(
        sens, cal, [f"class {i}" for i in range(10)], "densenet", RATES
    )
    assert fa == "resnet" and len(cells) == len(labels) == 4


def test_check_names_what_to_change(chapter):
    result, _, _ = chapter(["resnet"])
    ch05.check(result, profile="smoke")
    bad = ch05.Ch05Result.__new__(ch05.Ch05Result)
    bad.__dict__.update(result.__dict__)
    broken = noise.NoiseCalibration("normal", 0.3, 0.5, 0.1, 0.01, False, 12, 40)
    bad.calibration = {
        "resnet": ch05.Calibration(
            result.calibration["resnet"].x, result.calibration["resnet"].y, {"normal": {0.3: broken}}, {}, 0.0
        )
    }
    with pytest.raises(
        AssertionError, match=r"reached 10.0% after 12 classifier passes.*raise calib_max_iter"
    ):
        ch05.check(bad, profile="quick")


# ----------------------------------------------------------------------------- photos
def test_photo_calibration_on_the_pool_verdict_and_glue():
    net = fake_net(5)
    pool = torch.rand(60, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    search = noise.NoiseSearch(rates=RATES, tolerance=0.05, max_iter=12, seed=0)
    cal = ch05.calibrate_photos(net, pool, search, n_calib=40)
    assert list(cal) == ["photos"] and len(cal["photos"].x) == 40
    # the labels are the classifier's own decisions: the 0% noise changes none of them
    assert cal["photos"].levels["normal"][0.0].rate == 0
    sens = ch05.sensitivity_photos(net, cal, map_class="predicted")
    photo = ch05.summarize(cal, sens, rates=RATES, map_class="predicted", tolerance=0.05)
    numbers = _common.add_setting({"resnet": {}, "verdicts": {"resnet": {}}}, photo.numbers())
    assert set(numbers["verdicts"]) == {"resnet", "photos"}
    v = ch05.verdicts(photo)["photos"]["rtsa_more_noise_sensitive"]
    assert numbers["verdicts"]["photos"]["rtsa_more_noise_sensitive"] == v.as_dict()
    glued = ch05.photo_glue(photo)
    wanted = {  # EfficientNet-Lite0's section (Lite2's: tests/test_photo_classifiers_ch04_06.py)
        k for k in glue_keys_in_markdown(NOTEBOOK) if k.startswith("ch5_photos_") and "_lite2_" not in k
    }
    assert wanted and wanted <= set(glued)
    assert glued["ch5_photos_n_calib"] == 40
    # the glue reads the interval's value (a float64 mean of the per-image L1): the same to 1e-6
    assert glued["ch5_photos_l1_rts_normal_30pct"] == pytest.approx(
        sens["photos"]["l1"]["rts"]["normal"]["30%"], rel=1e-6
    )
    assert all(v == "not run" for k, v in ch05.photo_glue(None).items() if k in wanted)


def test_photo_calibration_asks_for_no_more_than_the_pool():
    with pytest.raises(ValueError, match="photo_n_calib=50"):
        search = noise.NoiseSearch(rates=RATES, tolerance=0.05, max_iter=2, seed=0)
        ch05.calibrate_photos(fake_net(0), torch.rand(20, 1, 28, 28), search, n_calib=50)


# ----------------------------------------------------------------------------- training seeds (issue 27)
def test_default_train_seed_alone_keeps_the_image_only_intervals(chapter):
    """Without ``train_seeds`` every interval is adv2.core.stats' image-only estimator, as before;
    the results and the prose say what they cover (the photo sections: one seed)."""
    result, _, sens = chapter(["resnet"])
    per, est = result.per_image["resnet"]["l1"], result.intervals()["resnet"]
    assert est["l1"]["rtsa"]["normal"]["3%"] == stats.mean_ci(per["rtsa"]["normal"]["3%"])
    for kind in noise.NOISE_TYPES:
        assert est[f"ratio_rtsa_over_rts_{kind}_30"] == stats.ratio_ci(
            per["rtsa"][kind]["30%"], per["rts"][kind]["30%"], paired=True
        )
    assert all(
        e.method == "bootstrap 95%" for i in est["l1"].values() for k in i.values() for e in k.values()
    )
    n = result.numbers()
    assert n["train_seeds"] == [0] and n["interval_covers"] == "images"
    scope = result.glue()["ch5_interval_scope"]
    assert "calibration images only" in scope and "photo sections" in scope
    assert "t over" not in noise_figures.fig15_tables(sens, RATES)


def _nudged(model: nn.Module) -> nn.Module:
    """The classifier "trained with another seed": the same weights nudged a little."""
    other = copy.deepcopy(model)
    with torch.no_grad():
        for w in other.parameters():
            w.add_(1e-3 * torch.randn(w.shape, generator=torch.Generator().manual_seed(1)))
    return other


def test_further_training_seeds_are_calibrated_and_measured_on_the_same_images():
    net = fake_net(0)
    others = {5: {"resnet": SimpleNamespace(model=_nudged(net.model), rts=FakeRTS(7), rtsa=FakeRTS(8))}}
    x = torch.rand(120, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = net.model(x).argmax(1)
    y[::7] = (y[::7] + 1) % 10  # some images the classifier gets wrong
    search = noise.NoiseSearch(rates=RATES, tolerance=0.05, max_iter=12, seed=0)
    kw = dict(rates=RATES, map_class="predicted", tolerance=0.05)
    cal = ch05.calibrate({"resnet": net}, x, y, search, n_calib=40, others=others)
    c = cal["resnet"]
    assert bool((others[5]["resnet"].model(c.x).argmax(1) == c.y).all())  # every seed gets them right
    more = ch05.other_seeds(others, cal, search, map_class="predicted")
    m = more[5].calibration["resnet"]
    assert torch.equal(m.x, c.x) and all(torch.equal(m.draws[k], c.draws[k]) for k in c.draws)
    sens = ch05.sensitivity({"resnet": net}, cal, map_class="predicted")
    two = ch05.summarize(cal, sens, **kw, train_seed=0, more_seeds=more)
    one = ch05.summarize(cal, sens, **kw)
    assert two.train_seeds == [0, 5]
    n = two.numbers()
    assert n["train_seeds"] == [0, 5] and n["interval_covers"] == "images and training seeds"
    assert json.dumps(results._plain(n["resnet"])) == json.dumps(results._plain(one.numbers()["resnet"]))
    est = two.intervals()["resnet"]
    top = [r["rts"]["normal"]["30%"] for r in two.l1_by_seed("resnet")]
    top_a = [r["rtsa"]["normal"]["30%"] for r in two.l1_by_seed("resnet")]
    assert est["ratio_rtsa_over_rts_normal_30"] == seed_stats.ratio_ci_seeds(top_a, top)
    assert est["l1"]["rts"]["normal"]["30%"] == seed_stats.mean_ci_seeds(top)
    assert est["ratio_rtsa_over_rts_normal_30"].method.endswith("t over 2 seeds")
    v = ch05.verdicts(two)["resnet"]["rtsa_more_noise_sensitive"]
    assert dict(v.parts)["normal"].estimate == est["ratio_rtsa_over_rts_normal_30"]
    glued = two.glue()
    assert "training seeds 0 and 5" in glued["ch5_interval_scope"]
    assert (
        "magnitude rows, the calibration and flipped/kept tables and the Figure 15 samples"
        in glued["ch5_interval_scope"]
    )
    # the paper table reads the pooled L1 and ratios (with their intervals), not seed 0's alone
    assert glued["ch5_resnet_ratio_n"] == str(est["ratio_rtsa_over_rts_normal_30"])
    assert glued["ch5_resnet_l1_rts_normal_30pct"] == est["l1"]["rts"]["normal"]["30%"].value
    assert glued["ch5_resnet_l1_rts_normal_30pct"] != one.glue()["ch5_resnet_l1_rts_normal_30pct"]
    pooled = noise_figures.fig15_tables(sens, RATES, [more[5].sens])
    assert str(est["ratio_rtsa_over_rts_normal_30"]) in pooled
    assert pooled != noise_figures.fig15_tables(sens, RATES)
    ch05.check(two, profile="smoke")
    broken = noise.NoiseCalibration("normal", 0.3, -1.0, 0.3, 0.05, True, 3, 40)  # a negative magnitude
    more[5].calibration["resnet"].levels["normal"][0.3] = broken
    with pytest.raises(AssertionError, match="out of range"):
        ch05.check(two, profile="smoke")  # every seed's calibration is checked


def test_the_noise_verdict_pools_the_seeds():
    """Synthetic per-image L1: seed 0 alone holds; a seed whose RTSA moves like RTS makes the pooled
    ratio miss the claim, a seed like seed 0 keeps it holding."""
    status = lambda r: ch05.verdicts(r)["resnet"]["rtsa_more_noise_sensitive"].status  # noqa: E731
    alone = _fake({"normal": 2.0, "uniform": 1.8})
    assert status(alone) == claims.HOLDS
    alone.more_seeds = {1: _fake({"normal": 1.0, "uniform": 1.0}, seed=1)}
    assert status(alone) != claims.HOLDS
    alone.more_seeds = {1: _fake({"normal": 2.0, "uniform": 1.8}, seed=1)}  # other images, same ratios
    assert status(alone) == claims.HOLDS
    v = ch05.verdicts(alone)["resnet"]["rtsa_more_noise_sensitive"]
    assert dict(v.parts)["uniform"].estimate.method == "paired bootstrap ratio 95% + t over 2 seeds"


def test_calibration_images_are_those_every_seed_gets_right():
    """``also_correct``: the first images that the classifier and every further seed's get right."""
    a, b = fake_net(0).model, fake_net(1).model  # two unrelated classifiers: they disagree often
    x = torch.rand(300, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    y = a(x).argmax(1)
    both = torch.nonzero(b(x).argmax(1) == y).flatten()
    assert 10 <= len(both) < 200
    _, _, idx = noise.correctly_classified(a, x, y, n=10, batch_size=64, also_correct=[b])
    assert torch.equal(idx, both[:10])
    _, _, alone = noise.correctly_classified(a, x, y, n=10, batch_size=64)
    assert torch.equal(alone, torch.arange(10))  # without: the classifier's own first ten


def test_a_further_seed_is_calibrated_only_on_images_it_gets_right():
    a, b = fake_net(0), fake_net(1)  # unrelated classifiers
    x = torch.rand(120, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = a.model(x).argmax(1)
    search = noise.NoiseSearch(rates=RATES, tolerance=0.05, max_iter=2, seed=0)
    cal = ch05.calibrate({"resnet": a}, x, y, search, n_calib=20)  # without others: a's images
    with pytest.raises(ValueError, match="calibration images wrong.*others="):
        ch05.other_seeds({1: {"resnet": b}}, cal, search, map_class="predicted")
