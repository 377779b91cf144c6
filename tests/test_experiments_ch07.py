"""Chapter 7's protocol (adv2.chapters.ch07): classifiers at several input sides with their
own cache keys (28 px unchanged), the common attack set, PGD vs ADV2 end to end on tiny untrained
networks, and the trend claim on hand-made numbers."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from adv2.book import runplan
from adv2.chapters import _common, claim_rules, claims, schema
from adv2.chapters.ch07 import classifiers, input_size, reading
from adv2.core import classifier, models, stats
from adv2.core.config import ParameterError
from adv2.core.seed_stats import BySeed
from adv2.trained import data, recipes
from adv2.trained.files import artifact_key
from standins import glue_keys_in_markdown

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "07_input_size.ipynb"
NAMES = [f"class {i}" for i in range(10)]


# ----------------------------------------------------------------------------- recipes, models
def test_28px_key_is_unchanged_and_each_side_has_its_own():
    base = recipes.ClassifierRecipe("resnet", train_subset=4000)
    old = {k: v for k, v in base.cache_params().items()}  # the key every other chapter uses
    assert "input_size" not in old and base.key == artifact_key(old)
    params = {**schema.defaults("07_input_size"), "train_subset": 4000, "input_sizes": [28, 56, 112]}
    by_size = classifiers.classifier_recipes(params, "resnet")
    assert by_size[28].key == base.key
    assert len({r.key for r in by_size.values()}) == 3
    assert by_size[112].cache_params()["input_size"] == 112
    # evaluation parameters never change a key
    assert (
        classifiers.classifier_recipes({**params, "n_images": 5, "epsilon": 0.2}, "resnet")[56].key
        == by_size[56].key
    )


@pytest.mark.parametrize("bad", [30, 0, 14, 252, True])
def test_bad_input_size_is_refused_naming_the_parameter(bad):
    with pytest.raises(ParameterError, match="input_size"):
        models.build_small_cnn("resnet", 10, NAMES, bad)
    with pytest.raises(ParameterError, match="input_sizes"):
        schema.validate_chapter("07_input_size", {"input_sizes": [28, bad]})


@pytest.mark.parametrize("arch", ["resnet", "densenet"])
def test_strided_stem_keeps_the_28px_network(arch):
    small = models.build_small_cnn(arch, 10, NAMES)
    assert small.stages[0][0].kernel_size == (3, 3) and small.stages[0][0].stride == (1, 1)
    later = {k: v.shape for k, v in small.state_dict().items() if not k.startswith("stages.0.0.")}
    for size in (56, 112):
        k = size // 28
        big = models.build_small_cnn(arch, 10, NAMES, size)
        assert big.input_size == size
        assert big.stages[0][0].kernel_size == (3 * k, 3 * k) and big.stages[0][0].stride == (k, k)
        # every layer after the first convolution is the 28-px network's
        assert {
            k2: v.shape for k2, v in big.state_dict().items() if not k2.startswith("stages.0.0.")
        } == later
        feats = big.eval().stage_features(torch.rand(2, 1, size, size))
        assert feats[0].shape[-2:] == (28, 28) and feats[-1].shape[-2:] == (7, 7)  # CAM: 7x7


def test_upsample_keeps_range_and_shape():
    x = torch.rand(3, 1, 28, 28)
    up = models.upsample(x, 112)
    assert up.shape == (3, 1, 112, 112) and up.min() >= 0 and up.max() <= 1
    assert models.upsample(x, 28) is x
    assert torch.allclose(up.mean(), x.mean(), atol=0.02)


# ----------------------------------------------------------------------------- stand-in chapter
def _trained(sizes=(28, 56), noise=0.0):
    """Stand-in classifiers at every side; ``noise``: another "training seed's", the same weights
    jittered (so that it mostly agrees with the first)."""
    torch.manual_seed(0)
    first = classifier.freeze(models.build_small_cnn("resnet", 10, NAMES).eval())
    if noise:
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for w in first.parameters():
                w.add_(noise * w.abs().mean() * torch.randn(w.shape, generator=g))
    out = {}
    for s in sizes:
        # the 28-px network's weights; the stem's 3x3 kernel spread over its 3k x 3k window (the
        # same filter on the upsampled image), so every side predicts nearly alike
        m = models.build_small_cnn("resnet", 10, NAMES, s)
        state = dict(first.state_dict())
        k = s // 28
        w = state["stages.0.0.weight"]
        state["stages.0.0.weight"] = w.repeat_interleave(k, 2).repeat_interleave(k, 3) / (k * k)
        m.load_state_dict(state)
        art = SimpleNamespace(metrics={"test_accuracy": 0.9, "train_seconds": 1.0}, from_cache=True)
        out[s] = classifiers.Trained(s, classifier.freeze(m.eval()), art)
    return out


@pytest.fixture(scope="module")
def tiny():
    trained = _trained()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(300, 1, 28, 28, generator=g)
    with torch.no_grad():
        y = trained[28].model(x).argmax(1)
    fm = data.Dataset("fashion-mnist", NAMES, x[:10], y[:10], x, y)
    result = input_size.attack_sizes(
        {"resnet": trained},
        fm,
        interpreters=["grad", "cam"],
        n_images=8,
        epsilon=0.1,
        step_size=0.02,
        step_scale=0.005,
        attack_batch_size=8,
        seed=0,
        log=None,
    )
    return trained, fm, result


@pytest.fixture(scope="module")
def two_seeds(tiny):
    """The stand-in chapter with a second training seed's classifiers (issue 27)."""
    trained, fm, _ = tiny
    other = _trained(noise=0.1)
    result = input_size.attack_sizes(
        {"resnet": trained}, fm, interpreters=["grad", "cam"], n_images=8, epsilon=0.1, step_size=0.02,
        step_scale=0.005, attack_batch_size=8, seed=0, log=None, train_seed=3, more_seeds={5: {"resnet": other}},
    )  # fmt: skip
    return trained, other, result


def test_two_training_seeds_attack_the_same_images_and_pool_intervals_and_verdicts(two_seeds):
    trained, other, result = two_seeds
    assert result.train_seeds == [3, 5] and result.more_seeds[5].train_seeds == [5]
    more = result.more_seeds[5]
    assert torch.equal(more.attack_set.index, result.attack_set.index)
    for t in (*trained.values(), *other.values()):  # every seed's classifiers get every image right
        with torch.no_grad():
            assert torch.equal(models.Upsampled(t.model)(result.attack_set.x).argmax(1), result.attack_set.y)
    # each seed's own attacks; the intervals pool both seeds' per-image arrays
    assert more.runs["resnet"][56]["cam"]["adv2"].x_adv is not result.runs["resnet"][56]["cam"]["adv2"].x_adv
    est = result.intervals()["resnet"][56]["cam"]
    flags = [r.per_image["resnet"][56]["cam"]["pgd"]["success"] for r in (result, more)]
    assert est["pgd"]["success_rate"].value == pytest.approx(np.mean(flags))
    assert est["pgd"]["success_rate"].covers_seeds and "2 seeds" in est["pgd"]["success_rate"].method
    pgd_l1 = [r.per_image["resnet"][28]["grad"]["pgd"]["l1"] for r in (result, more)]
    assert result.intervals()["resnet"][28]["grad"]["pgd"]["l1_mean"].value == pytest.approx(np.mean(pgd_l1))
    n = result.numbers()
    assert n["train_seeds"] == [3, 5] and n["interval_covers"] == "images and training seeds"
    assert n["intervals"]["resnet"]["56"]["cam"]["pgd"]["success_rate"]["method"].endswith("over 2 seeds")
    # the curve and accuracy are train_seed's run
    assert n["curve"]["resnet"]["56"]["cam"]["pgd"] == input_size._short(
        result.stats["resnet"][56]["cam"]["pgd"]
    )
    # the comparative words read the pooled values the prose shows beside them
    pooled = n["intervals"]["resnet"]["56"]["cam"]["pgd"]["success_rate"]["value"]
    assert reading._success(n, "resnet", "56", "cam", "pgd") == pooled
    assert reading._success(result.more_seeds[5].numbers(), "resnet", "56", "cam", "pgd") == pytest.approx(
        np.mean(flags[1])
    )
    glued = result.glue()
    assert "training seeds 3 and 5" in glued["ch7_interval_scope"]
    assert "one training seed" not in glued["ch7_interval_scope"]
    # the curve figure plots the pooled values: only the accuracy column and the maps are seed 3's
    assert "the table's accuracy column and the maps figure show seed 3's run" in glued["ch7_interval_scope"]
    for v in (*result.verdicts()["resnet_28px"].values(), *result.verdicts()["resnet_56px"].values()):
        if v.estimate is not None and v.estimate.value is not None:
            assert v.estimate.covers_seeds, v
    input_size.check(result, "smoke")  # every seed's run


def test_one_training_seed_covers_the_images_only(tiny):
    _, _, result = tiny
    n = result.numbers()
    assert n["train_seeds"] == [0] and n["interval_covers"] == "images"
    assert "one training seed (0)" in result.glue()["ch7_interval_scope"]


def test_train_other_seeds_trains_each_further_seeds_recipes(monkeypatch):
    seen = []

    def load(recipes_, fmnist, **kw):
        seen.extend(recipes_)
        art = SimpleNamespace(metrics={"test_accuracy": 0.9}, from_cache=True)
        return [(None, art, 0.0) for _ in recipes_]

    monkeypatch.setattr(classifiers.loading, "load_classifiers_side_by_side", load)
    params = {**schema.defaults("07_input_size"), "input_sizes": [28, 56], "train_seed": 1}
    assert classifiers.train_other_seeds({**params, "train_seeds": []}, None, log=None) == {}
    out = classifiers.train_other_seeds({**params, "train_seeds": [0, 1, 2]}, None, log=None)
    assert list(out) == [0, 2] and set(out[2]["resnet"]) == {28, 56}
    want = [classifiers.classifier_recipes({**params, "train_seed": s}, "resnet") for s in (0, 2)]
    assert [r.key for r in seen] == [w[side].key for w in want for side in (28, 56)]
    with pytest.raises(ParameterError, match="train_seeds"):
        schema.validate_chapter("07_input_size", {"train_seed": 1, "train_seeds": [0, 2]})


def test_run_plan_lists_each_further_seeds_classifiers():
    params = {**schema.defaults("07_input_size"), "input_sizes": [28, 56], "train_seeds": [0, 4]}
    plan = runplan.needed_models("07_input_size", params, SimpleNamespace())
    assert [label for label, _ in plan] == [
        "resnet classifier at 28 px",
        "resnet classifier at 56 px",
        "resnet classifier at 28 px (train_seed 4)",
        "resnet classifier at 56 px (train_seed 4)",
    ]
    # each further model is the recipe a run with that train_seed would train (same cache key)
    other = runplan.needed_models(
        "07_input_size", {**params, "train_seed": 4, "train_seeds": []}, SimpleNamespace()
    )
    assert [r.key for _, r in plan[2:]] == [r.key for _, r in other] != [r.key for _, r in plan[:2]]


def test_common_attack_set_is_correct_at_every_side(tiny):
    trained, fm, result = tiny
    aset = result.attack_set
    assert len(aset.x) == 8 and bool((aset.target != aset.y).all())
    for t in trained.values():
        with torch.no_grad():
            pred = models.Upsampled(t.model)(aset.x).argmax(1)
        assert torch.equal(pred, aset.y)


def test_all_correct_judge_rejects_any_disagreement():
    trained = _trained()
    judge = classifiers._AllCorrect({s: t.model for s, t in trained.items()})
    x = torch.rand(20, 1, 28, 28)
    with torch.no_grad():
        a = models.Upsampled(trained[28].model)(x).argmax(1)
        b = models.Upsampled(trained[56].model)(x).argmax(1)
        j = judge(x).argmax(1)
    assert torch.equal(j == a, a == b)  # the judge's class is the first's exactly where both agree


def test_numbers_glue_and_check(tiny):
    _, _, result = tiny
    n = result.numbers()
    json.dumps(n)  # plain JSON
    assert n["sizes"] == [28, 56] and set(n["curve"]["resnet"]) == {"28", "56"}
    for s in ("28", "56"):
        for name in ("grad", "cam"):
            row = n["curve"]["resnet"][s][name]
            assert 0 <= row["pgd"]["success_rate"] <= 1 and 0 <= row["adv2"]["success_rate"] <= 1
    # the per-size settings never reach the front page's columns (chapter 3 decides those)
    assert not set(n["verdicts"]) & set(claims.SETTINGS)
    assert set(n["verdicts"]) == {"resnet_28px", "resnet_56px", "resnet_sizes"}
    wanted = glue_keys_in_markdown(NOTEBOOK)
    glued = result.glue()
    assert wanted <= set(glued), sorted(wanted - set(glued))
    for name, value in glued.items():
        assert value is not None and not (isinstance(value, float) and math.isnan(value)), name
    input_size.check(result, "smoke")
    # maps and inputs at each side
    for s in (28, 56):
        run = result.runs["resnet"][s]
        assert run["grad"]["benign"].shape[-1] == input_size.GRAD_MAP_SIZE
        assert run["cam"]["benign"].shape[-1] == 7
        assert run["cam"]["adv2"].x_adv.shape[-1] == s
    assert "px" in input_size.curve_table(result) and "claim" in input_size.verdict_table(result)


def test_check_names_the_parameter_when_a_classifier_is_too_weak(tiny):
    _, _, result = tiny
    weak = dataclasses.replace(result, accuracy={"resnet": {28: 0.9, 56: 0.2}})
    with pytest.raises(_common.ChapterCheckFailed, match="train_subset"):
        input_size.check(weak, "quick")


def test_bad_interpreter_is_refused_before_any_work():
    with pytest.raises(ValueError, match="interpreters"):
        input_size.attack_sizes({}, None, interpreters=["rts"], n_images=1, epsilon=0.1, step_size=0.01,
                          step_scale=0.01, attack_batch_size=1, seed=0)  # fmt: skip


# ----------------------------------------------------------------------------- claim and statistic
def _side(ratio, n=32, seed=0, success=1.0):
    rng = np.random.default_rng(seed)
    pgd = rng.uniform(0.2, 0.4, n)
    adv = ratio * pgd * rng.uniform(0.9, 1.1, n)
    ok = np.arange(n) < round(success * n)
    return {"adv2_l1": adv, "pgd_l1": pgd, "adv2_success": ok}


def test_trend_claim_holds_does_not_hold_and_needs_images():
    v = claim_rules.larger_inputs_help_adv2(_side(0.8), _side(0.3, seed=1))
    assert v.status == claims.HOLDS and v.estimate.value < 0.5
    v = claim_rules.larger_inputs_help_adv2(_side(0.4), _side(0.8, seed=1))
    assert v.status == claims.DOES_NOT_HOLD
    v = claim_rules.larger_inputs_help_adv2(_side(0.5, n=4), _side(0.2, n=4))
    assert v.status == claims.NOT_MEASURABLE and "illustration" in v.reason
    v = claim_rules.larger_inputs_help_adv2(_side(0.5), _side(0.2, success=0.0))
    assert v.status == claims.NOT_MEASURABLE and "largest" in v.reason
    per = claim_rules.larger_inputs_help_adv2(
        {"cam": _side(0.8), "grad": _side(0.5)}, {"cam": _side(0.3, seed=1), "grad": _side(0.6, seed=1)}
    )
    assert per.status == claims.DOES_NOT_HOLD and dict(per.parts)["cam"].status == claims.HOLDS
    assert "larger_inputs_help_adv2" not in claims.FRONT_PAGE_CLAIMS


def test_trend_claim_pools_training_seeds():
    def by_seed(*sides):
        return {k: BySeed(s[k] for s in sides) for k in sides[0]}

    one = claim_rules.larger_inputs_help_adv2(_side(0.8), _side(0.3, seed=1))
    same = claim_rules.larger_inputs_help_adv2(by_seed(_side(0.8)), by_seed(_side(0.3, seed=1)))
    assert same.estimate.as_dict() == one.estimate.as_dict()  # one seed: the images-only interval
    small, large = (_side(0.8), _side(0.8, seed=2)), (_side(0.3, seed=1), _side(0.3, seed=3))
    two = claim_rules.larger_inputs_help_adv2(by_seed(*small), by_seed(*large))
    assert two.status == claims.HOLDS and two.estimate.covers_seeds and "2 seeds" in two.estimate.method

    def pooled(sides, key):
        return np.mean([s[key] for s in sides])

    want = (pooled(large, "adv2_l1") / pooled(large, "pgd_l1")) / (
        pooled(small, "adv2_l1") / pooled(small, "pgd_l1")
    )
    assert two.estimate.value == pytest.approx(want)
    # seeds that disagree: the interval over seeds leaves it open
    mixed = claim_rules.larger_inputs_help_adv2(
        by_seed(_side(0.8), _side(0.3, seed=2)), by_seed(_side(0.3, seed=1), _side(0.8, seed=3))
    )
    assert mixed.status == claims.INCONCLUSIVE
    few = claim_rules.larger_inputs_help_adv2(
        by_seed(_side(0.8), _side(0.8, seed=2, success=0.0)), by_seed(*large)
    )
    assert few.status == claims.NOT_MEASURABLE and "2 training seeds" in few.reason


def test_ratio_of_ratios_matches_its_definition():
    a, b, c, d = (
        np.array(v, dtype=float) for v in ([1, 2, np.nan, 3], [2, 2, 2, 2], [1, 1, 1, 1], [4, 4, 4, 4])
    )
    e = stats.ratio_of_ratios_ci(a, b, c, d)
    assert e.value == pytest.approx((2 / 2) / (1 / 4)) and e.low <= e.value <= e.high and e.n == 4
    with pytest.raises(ValueError, match="one value per image"):
        stats.ratio_of_ratios_ci(a, b[:3], c, d)


def test_the_exercises_worked_solutions_run_on_the_chapters_result(tiny, tmp_path, capsys):
    """Issue 26 item 7: chapter 7's worked solutions read what the chapter computed (``result``, the
    results files) through the library; run them on the stand-in chapter, as a reader would in a new
    cell at the end of the notebook."""
    from adv2.chapters import results
    from standins import solution_code

    _, _, result = tiny
    blocks = solution_code(NOTEBOOK)
    assert len(blocks) == 2
    # the second reads this run's results and those of the exercise's command (in /tmp/ex)
    for folder in ("book", "ex"):
        results.save_results(input_size.STEM, result.numbers(), {}, tmp_path / folder)
    namespace = {"result": result, "results_dir": str(tmp_path / "book")}
    exec(blocks[0], namespace)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(result.sizes) * len(result.interpreters)
    assert all("ADV2 only" in line and "ratio on both" in line for line in out)
    exec(blocks[1].replace('"/tmp/ex"', repr(str(tmp_path / "ex"))), namespace)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and all("resnet_sizes" in line for line in out)
