"""Chapter 4's protocol (adv2.chapters.ch04) on tiny synthetic classifiers, RTS and artifacts."""

import dataclasses
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from adv2.chapters import (
    _common,
    aid_photo_pools,
    aid_tradeoff,
    aid_training,
    ch04,
    claim_rules,
    claims,
    results,
)
from adv2.core import config, defenses, formatting
from standins import FakeRTS, glue_keys_in_markdown

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "04_aid_defense.ipynb"


def fake_net(arch: str, seed: int = 0, aid_log: dict | None = None):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()
    log = (
        aid_log
        if aid_log is not None
        else {
            "step": [1, 2, 3],
            "aid_l1": [0.1, 0.12, 0.15],
            "attack_success": [0.2, 0.3, 0.5],
            "probe_drift": [0.0, 0.01, 0.02],
            "map_loss": [1.0, 0.9, 0.8],
            "final_probe_drift": 0.02,
            "seconds": 6.0,
            "seconds_per_iteration": 2.0,
            "seconds_attack": 3.0,
            "warm_start_seconds": 0.5,
        }
    )
    return SimpleNamespace(
        arch=arch,
        model=model,
        rts=FakeRTS(seed + 1),
        rtsa=FakeRTS(seed + 2),
        classifier_artifact=SimpleNamespace(metrics={"test_accuracy": 0.8}),
        rts_artifact=SimpleNamespace(
            metrics={"seconds": 4.0}, params={"phase1_iterations": 2, "phase2_iterations": 2}
        ),
        rtsa_artifact=SimpleNamespace(metrics=log),
    )


def data(n: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def run_chapter(archs, aid_log=None):
    nets = {a: fake_net(a, i, aid_log) for i, a in enumerate(archs)}
    x, y = data()
    benign = ch04.compare_benign(nets, x, y)
    cost = aid_training.training_costs(nets)
    return ch04.summarize(nets, benign, cost, defenses.AIDConfig(iterations=3)), benign, cost


@pytest.mark.parametrize("archs", [["densenet"], ["resnet"], ["resnet", "densenet"]])
def test_glue_covers_every_key_the_chapter_reads(archs):
    result, _, _ = run_chapter(archs)
    # photos off and no trade-off measured: glued as not run (the trade-off's own test: test_aid_tradeoff)
    no_tradeoff = aid_tradeoff.Tradeoff([], {}, {}, 100.0, {}, {})
    glued = {
        **result.glue(),
        **ch04.all_photo_glue({}),  # every photo classifier's names
        **aid_tradeoff.glue(no_tradeoff, ch04.GLUE_PREFIX, config.ARCHS, _common.NOT_RUN),
        **aid_photo_pools.glue(None, _common.NOT_RUN),  # chapter 6's pool study, not measured
    }
    wanted = glue_keys_in_markdown(NOTEBOOK)
    assert wanted, "no {glue} references found in the chapter's markdown"
    assert wanted <= set(glued), sorted(wanted - set(glued))
    for a in ("resnet", "densenet"):
        if a not in archs:
            assert glued[f"ch4_{a}_benign_l1_rts_vs_rtsa"] == "not run"
            assert glued[f"ch4_{a}_verdict_benign"] == "not run"
    for name, value in glued.items():  # the prose never reads None or nan
        assert value is not None and not (isinstance(value, float) and math.isnan(value)), name


def test_numbers_match_the_benign_maps_and_the_artifacts():
    result, benign, _ = run_chapter(["resnet"])
    n = result.numbers()
    assert set(n) == {
        "resnet",
        "paper",
        "aid_config",
        "intervals",
        "verdicts",
        "train_seeds",
        "interval_covers",
    }
    est = n["intervals"]["resnet"]["benign_l1_rts_vs_rtsa"]
    assert est["value"] == pytest.approx(n["resnet"]["benign_l1_rts_vs_rtsa"])
    assert est["low"] <= est["value"] <= est["high"] and est["n"] == 12
    v = n["verdicts"]["resnet"]["rtsa_like_rts_on_benign"]
    assert v["status"] in claims.STATUSES and v["claim_id"] == "rtsa_like_rts_on_benign"
    b = benign["resnet"]
    l1 = (b.maps_rts - b.maps_rtsa).abs().flatten(1).mean(1)
    assert n["resnet"]["benign_l1_rts_vs_rtsa"] == pytest.approx(float(l1.mean()))
    assert n["resnet"]["benign_l1_rts_vs_rtsa_std"] == pytest.approx(float(l1.std()))
    assert torch.equal(result.per_image["resnet"]["benign_l1_rts_vs_rtsa"], b.l1)
    assert n["resnet"]["aid_gap_first"] == 0.1 and n["resnet"]["aid_gap_last"] == 0.15
    assert n["resnet"]["cost_aid_over_rts_total"] == pytest.approx(1.5)
    assert n["paper"] == {"benign_l1_rts_vs_rtsa": 0.03}
    assert n["aid_config"]["iterations"] == 3
    json.dumps(results._plain(n))  # what save_results writes


def test_no_aid_log_gives_a_dash_not_none():
    empty = {
        "step": [],
        "aid_l1": [],
        "attack_success": [],
        "probe_drift": [],
        "map_loss": [],
        "seconds": 1.0,
        "seconds_attack": 0.5,
    }
    result, _, _ = run_chapter(["resnet"], aid_log=empty)
    result.cost["resnet"]["aid_over_rts_total"] = None  # an RTS artifact without a recorded time
    assert result.numbers()["resnet"]["aid_gap_first"] is None  # the results file keeps null
    assert result.glue()["ch4_resnet_aid_gap_first"] == "—"  # the prose shows a dash
    assert result.glue()["ch4_resnet_cost_ratio_total"] == "—"


def _benign(l1_per_image) -> ch04.BenignComparison:
    """A comparison whose per-image L1(RTS, RTSA) is ``l1_per_image`` (constant maps)."""
    l1 = torch.as_tensor(l1_per_image, dtype=torch.float32)
    rts = torch.zeros(len(l1), 1, 14, 14)
    pd = {"both": 0.5, "random_both": 0.1}
    return ch04.BenignComparison(rts, rts + l1.view(-1, 1, 1, 1), pd, pd)


def _result(l1_per_image) -> ch04.Ch04Result:
    return ch04.Ch04Result(
        ["resnet"],
        {"resnet": 0.9},
        {"resnet": _benign(l1_per_image)},
        {"resnet": {"aid_over_rts_total": 1.0, "per_iteration_ratio": 1.0}},
        {"resnet": {"aid_l1": [], "attack_success": []}},
        {},
    )


@pytest.mark.parametrize(
    "values, status",
    [
        ([0.01, 0.02, 0.015, 0.012] * 5, claims.HOLDS),
        ([0.09, 0.1, 0.11, 0.095] * 5, claims.DOES_NOT_HOLD),
        ([0.01, 0.09, 0.02, 0.08], claims.NOT_MEASURABLE),  # 4 images: an illustration
    ],
)
def test_verdict_comes_from_the_claims_layer(values, status):
    result = _result(values)
    v = ch04.verdicts(result)
    assert set(v) == {"resnet"}
    verdict = v["resnet"]["rtsa_like_rts_on_benign"]
    assert isinstance(verdict, claims.Verdict) and verdict.status == status
    glue = result.glue()
    if status != claims.NOT_MEASURABLE:
        assert glue["ch4_resnet_verdict_benign"] == verdict.cell()
    assert glue["ch4_resnet_verdict_benign"].startswith(status)
    assert glue["ch4_densenet_verdict_benign"] == "not run"
    if status == claims.NOT_MEASURABLE:
        assert "illustration" in glue["ch4_resnet_verdict_benign_settle"]


def test_an_inconclusive_verdict_glues_the_images_needed():
    result = _result([0.02, 0.08] * 6)  # mean 0.05 region: interval holds 0.05
    verdict = ch04.verdicts(result)["resnet"]["rtsa_like_rts_on_benign"]
    glue = result.glue()
    if verdict.status == claims.INCONCLUSIVE:
        assert glue["ch4_resnet_verdict_benign_n_needed"] == verdict.n_needed
    else:
        assert glue["ch4_resnet_verdict_benign_n_needed"] == "—"


def test_benign_table_shows_the_interval():
    result = _result([0.01, 0.02, 0.015, 0.012] * 5)
    assert re.search(r"0\.0\d+ \[0\.0\d+, 0\.0\d+\]", ch04.benign_table(result.benign))


def test_tables_have_no_nan_or_none():
    _, benign, cost = run_chapter(["resnet"])
    cost["resnet"]["per_iteration_ratio"] = None
    text = (
        aid_training.cost_table(cost)
        + ch04.benign_table(benign)
        + aid_training.aid_config_table(defenses.AIDConfig())
    )
    assert "nan" not in text and "None" not in text and "—" in text


def test_fmt_three_significant_digits():
    assert [
        formatting.fmt(v) for v in (0.031234, 0.03, 123.456, 1234.5, 0.0, None, float("nan"), 7, "x")
    ] == [
        "0.0312",
        "0.0300",
        "123",
        "1230",
        "0",
        "—",
        "—",
        "7",
        "x",
    ]


def test_check_names_measured_value_and_parameter(monkeypatch):
    result, _, _ = run_chapter(["resnet"])
    ch04.check(result, profile="smoke", aid=defenses.AIDConfig(iterations=3))
    l1 = result.numbers()["resnet"]["benign_l1_rts_vs_rtsa"]
    monkeypatch.setattr(ch04, "DRIFT_LIMIT", l1 / 2)  # this drift is too large for the limit
    with pytest.raises(AssertionError, match=r"expected below .* at the quick profile.*aid_distill_weight"):
        ch04.check(result, profile="quick", aid=defenses.AIDConfig(iterations=3))
    same = fake_net("resnet")
    same.rtsa = same.rts
    x, y = data()
    r = ch04.summarize(
        {"resnet": same},
        ch04.compare_benign({"resnet": same}, x, y),
        aid_training.training_costs({"resnet": same}),
        defenses.AIDConfig(),
    )
    with pytest.raises(AssertionError, match=r"L1 0.0\).*raise aid_lr or aid_iterations"):
        ch04.check(r, profile="smoke", aid=defenses.AIDConfig(iterations=3, beta=10))


# ----------------------------------------------------------------------------- photos
def photo_net(seed: int = 0):
    net = fake_net("photos", seed)
    net.classifier_artifact = None  # a pretrained classifier: no training record
    net.rtsa_artifact.params = defenses.AIDConfig(iterations=3).as_dict()
    net.rtsa_artifact.metrics["pool_images"] = 40
    net.rtsa_artifact.path = Path("artifacts/rtsa/abc")
    net.rtsa_artifact.from_cache = True
    return net


def run_photos(monkeypatch, n: int = 10):
    x, y = data(n)

    def chosen(model, n_images, *, seed, device="cpu", classifier="efficientnet-lite0"):
        idx = torch.arange(n_images)
        names = [f"c{i}" for i in range(10)]
        return SimpleNamespace(class_names=names), SimpleNamespace(
            x=x[idx], y=y[idx], target=(y[idx] + 1) % 10
        )

    monkeypatch.setattr(ch04, "photo_attack_set", chosen)
    return ch04.benign_photos(photo_net(), n_images=n, seed=0)


def test_photo_section_numbers_verdict_and_intervals(monkeypatch):
    ph = run_photos(monkeypatch)
    b = ph.result.benign["photos"]
    numbers = _common.add_setting(run_chapter(["resnet"])[0].numbers(), ch04.photo_numbers(ph))
    assert set(numbers) >= {"resnet", "photos", "intervals", "verdicts"}
    assert numbers["photos"]["n_images"] == 10
    assert numbers["photos"]["benign_l1_rts_vs_rtsa"] == pytest.approx(float(b.l1.mean()))
    assert set(numbers["verdicts"]) == {"resnet", "photos"}
    v = numbers["verdicts"]["photos"]["rtsa_like_rts_on_benign"]
    assert v == claim_rules.rtsa_like_rts_on_benign(b.l1).as_dict()
    # preserve/destroy with 95 % intervals, the rates being the means of the per-image flags
    ci = numbers["intervals"]["photos"]
    assert ci["preserve_destroy_rts"]["value"] == pytest.approx(float(b.flags_rts["both"].mean()))
    assert (
        ci["preserve_destroy_rts"]["low"]
        <= ci["preserve_destroy_rts"]["value"]
        <= ci["preserve_destroy_rts"]["high"]
    )
    json.dumps(numbers)  # what save_results writes


def test_photo_glue_covers_the_prose_and_reads_not_run_without_photos(monkeypatch):
    # EfficientNet-Lite0's section (Lite2's: tests/test_photo_classifiers_ch04_06.py)
    wanted = {
        k for k in glue_keys_in_markdown(NOTEBOOK) if k.startswith("ch4_photos_") and "_lite2_" not in k
    }
    assert wanted, "the chapter has no photo section"
    off = ch04.photo_glue(None)
    assert wanted <= set(off) and all(off[k] == "not run" for k in wanted)
    on = ch04.photo_glue(run_photos(monkeypatch))
    assert wanted <= set(on)
    assert on["ch4_photos_rtsa_source"] == "the cache"
    assert "[" in on["ch4_photos_benign_l1_ci"] and "[" in on["ch4_photos_preserve_destroy_rts_ci"]
    assert on["ch4_photos_verdict_benign"].split(" (")[0] in claims.STATUSES
    for name, value in on.items():
        assert value is not None and not (isinstance(value, float) and math.isnan(value)), name


def test_fashion_mnist_preserve_destroy_glued_with_intervals():
    result, benign, _ = run_chapter(["resnet"])
    glued = result.glue()
    text = glued["ch4_resnet_preserve_destroy_rts"]
    assert isinstance(text, str) and text.startswith(formatting.fmt(benign["resnet"].summary()["both_rts"]))
    assert "[" in text


def test_load_defended_trains_classifiers_then_rts_side_by_side_then_each_rtsa(monkeypatch):
    from adv2.trained import loading, recipes

    calls, lines = [], []

    def classifiers(params, fmnist, archs, *args):
        calls.append(("classifiers", tuple(archs)))
        return {a: f"model-{a}" for a in archs}, {a: f"art-{a}" for a in archs}

    def rts_nets(params, fmnist, models, arts, archs, *args):
        assert models == {a: f"model-{a}" for a in archs}  # RTS of the classifiers just loaded
        calls.append(("rts", tuple(archs)))
        return {a: f"rts-{a}" for a in archs}, {a: f"rts-art-{a}" for a in archs}

    def load_rtsa(recipe, fmnist, model, rts, rts_art, **kwargs):
        arch = recipe.rts.classifier.arch
        assert (model, rts, rts_art) == (f"model-{arch}", f"rts-{arch}", f"rts-art-{arch}")
        label = "control" if recipe.beta == 0 else f"rtsa@{recipe.distill_weight:g}"
        calls.append(("rtsa", arch, label))
        return f"{label}-{arch}", SimpleNamespace(from_cache=arch == "densenet")

    monkeypatch.setattr(aid_training, "load_classifiers", classifiers)
    monkeypatch.setattr(aid_training, "load_rts_nets", rts_nets)
    monkeypatch.setattr(loading, "load_rtsa", load_rtsa)
    params = {"dataset": "fashion-mnist", "train_seed": 0, "train_epochs": 1, "train_subset": 0}
    extra = {"anchor 10": lambda p, a: dataclasses.replace(recipes.rtsa_recipe(p, a), distill_weight=10.0)}
    nets = aid_training.load_defended(params, object(), ["resnet", "densenet"], log=lines.append, extra=extra)
    assert calls[:2] == [("classifiers", ("resnet", "densenet")), ("rts", ("resnet", "densenet"))]
    # then every RTSA, the control and the extra ones side by side (in any order)
    assert sorted(calls[2:]) == sorted(
        ("rtsa", a, label) for a in ("resnet", "densenet") for label in ("rtsa@100", "control", "rtsa@10")
    )
    assert list(nets) == ["resnet", "densenet"]
    assert nets["resnet"].rtsa == "rtsa@100-resnet" and nets["resnet"].control == "control-resnet"
    assert nets["densenet"].extra["anchor 10"][0] == "rtsa@10-densenet"
    assert lines[0].startswith("resnet: rtsa trained in ") and "densenet: rtsa loaded from cache" in lines


# ----------------------------------------------------------------------------- training seeds (issue 27)
def test_default_train_seed_alone_keeps_the_image_only_intervals():
    """Without ``train_seeds`` every interval is adv2.core.stats' image-only estimator, as before;
    the results and the prose say what they cover (the photo sections: one seed)."""
    from adv2.core import stats

    result, benign, _ = run_chapter(["resnet"])
    b, est = benign["resnet"], result.intervals()["resnet"]
    assert est == {
        "benign_l1_rts_vs_rtsa": stats.mean_ci(b.l1),
        "preserve_destroy_rts": stats.rate_ci(b.flags_rts["both"]),
        "preserve_destroy_rtsa": stats.rate_ci(b.flags_rtsa["both"]),
        "preserve_destroy_random": stats.mean_ci(b.flags_rts["random_both"]),
    }
    v = ch04.verdicts(result)["resnet"]["rtsa_like_rts_on_benign"]
    assert v == claim_rules.rtsa_like_rts_on_benign(b.l1)
    n = result.numbers()
    assert n["train_seeds"] == [0] and n["interval_covers"] == "images"
    scope = result.glue()["ch4_interval_scope"]
    assert "compared test images only" in scope and "photo sections" in scope


def _two_seeds():
    """Chapter 4 with a further training seed 3 (other stand-in classifier, RTS and RTSA) compared
    on the same images."""
    nets = {"resnet": fake_net("resnet", 0)}
    others = {3: {"resnet": fake_net("resnet", 10)}}
    x, y = data()
    benign = ch04.compare_benign(nets, x, y)
    more = ch04.compare_other_seeds(others, x, y)
    cost = aid_training.training_costs(nets)
    aid = defenses.AIDConfig(iterations=3)
    two = ch04.summarize(nets, benign, cost, aid, train_seed=0, more_benign=more)
    return two, ch04.summarize(nets, benign, cost, aid), more


def test_further_training_seeds_are_compared_on_the_same_images_and_pooled():
    from adv2.core import seed_stats

    two, one, more = _two_seeds()
    assert two.train_seeds == [0, 3] and list(more) == [3]
    runs = two.benign_by_seed("resnet")
    assert runs[1] is more[3]["resnet"] and len(runs[1].l1) == len(runs[0].l1)
    n, n_one = two.numbers(), one.numbers()
    assert n["train_seeds"] == [0, 3] and n["interval_covers"] == "images and training seeds"
    assert n["resnet"] == n_one["resnet"]  # the numbers stay train_seed's
    est = two.intervals()["resnet"]
    assert all(e.method.endswith("t over 2 seeds") for e in est.values())
    assert est["benign_l1_rts_vs_rtsa"] == seed_stats.mean_ci_seeds([r.l1 for r in runs])
    assert est["preserve_destroy_rtsa"] == seed_stats.rate_ci_seeds([r.flags_rtsa["both"] for r in runs])
    assert est != one.intervals()["resnet"]
    v = ch04.verdicts(two)["resnet"]["rtsa_like_rts_on_benign"]
    assert v.estimate == est["benign_l1_rts_vs_rtsa"]
    glued = two.glue()
    assert "training seeds 0 and 3" in glued["ch4_interval_scope"]
    assert glued["ch4_resnet_preserve_destroy_rts"] == str(est["preserve_destroy_rts"])
    # the paper table's benign row is the pooled value the verdict reads, not seed 0's point value
    assert glued["ch4_resnet_benign_l1_rts_vs_rtsa"] == str(est["benign_l1_rts_vs_rtsa"])
    assert glued["ch4_resnet_benign_l1_rts_vs_rtsa"] != one.glue()["ch4_resnet_benign_l1_rts_vs_rtsa"]
    assert "gap, inner-attack and cost rows" in glued["ch4_interval_scope"]
    assert str(est["benign_l1_rts_vs_rtsa"]) in ch04.benign_table(two.benign, more)
    assert str(est["benign_l1_rts_vs_rtsa"]) not in ch04.benign_table(two.benign)
    ch04.check(two, profile="smoke", aid=defenses.AIDConfig(iterations=3))


def test_the_benign_verdict_pools_the_seeds():
    """Synthetic per-image L1: seed 0 alone holds; a seed whose RTSA drifted far makes the pooled
    interval contain the threshold, a seed like seed 0 keeps it holding."""
    alone = _result([0.010, 0.015, 0.012, 0.014] * 5)
    assert ch04.verdicts(alone)["resnet"]["rtsa_like_rts_on_benign"].status == claims.HOLDS
    drifted = _result([0.010, 0.015, 0.012, 0.014] * 5)
    drifted.more_benign = {1: {"resnet": _benign([0.09, 0.1, 0.11, 0.095] * 5)}}
    v = ch04.verdicts(drifted)["resnet"]["rtsa_like_rts_on_benign"]
    assert v.status != claims.HOLDS and v.estimate.method == "bootstrap 95% + t over 2 seeds"
    alike = _result([0.010, 0.015, 0.012, 0.014] * 5)
    alike.more_benign = {1: {"resnet": _benign([0.011, 0.016, 0.013, 0.015] * 5)}}
    assert ch04.verdicts(alike)["resnet"]["rtsa_like_rts_on_benign"].status == claims.HOLDS


def test_check_covers_every_training_seed():
    two, _, _ = _two_seeds()
    ch04.check(two, profile="smoke", aid=defenses.AIDConfig(iterations=3, beta=10))
    two.more_benign[3]["resnet"] = _benign([0.0] * 12)  # that seed's RTSA gives RTS's maps
    with pytest.raises(AssertionError, match=r"resnet \(train_seed 3\): AID ran 3 iterations"):
        ch04.check(two, profile="smoke", aid=defenses.AIDConfig(iterations=3, beta=10))


def test_train_seeds_is_validated_and_defaults_to_train_seed_alone():
    from adv2.chapters.schema import defaults, validate_chapter
    from adv2.core.config import ParameterError

    for stem in (ch04.STEM, "05_noise_sensitivity"):
        assert defaults(stem)["train_seeds"] == []
        assert validate_chapter(stem, {"train_seed": 3, "train_seeds": [2, 3]})["train_seeds"] == [2, 3]
        with pytest.raises(
            ParameterError, match="'train_seeds' has value \\[1, 2\\], which does not contain"
        ):
            validate_chapter(stem, {"train_seed": 0, "train_seeds": [1, 2]})
