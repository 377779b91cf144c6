"""Chapter 9 (Defense 1): the transfer matrix's layout and verdicts, the ensemble's score, the
detector's AUC on constructed scores, the claim rule both ways, the attack store, the parameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from adv2.chapters import attack_store, claim_rules, claims, schema
from adv2.chapters.ch09 import detector, ensemble, report, sources, transfer
from adv2.chapters.schema_ch09 import AUTHORS_MASK_STEPS, CHAPTER3_ATTACK
from adv2.core import attacks
from adv2.core.config import PROFILES, ParameterError
from standins import glue_keys_in_markdown

NAMES = ["grad", "cam", "rts", "mask"]


# ----------------------------------------------------------------------------- the claim rule
def test_transfer_rule_holds_when_the_cell_sits_at_pgd():
    rng = np.random.default_rng(0)
    diag = 0.05 + 0.01 * rng.random(20)
    pgd = 0.30 + 0.01 * rng.random(20)
    v = claim_rules.adv2_does_not_transfer(pgd - 0.005, np.ones(20), diag, np.ones(20), pgd)
    assert v.status == claims.HOLDS
    assert v.estimate.value == pytest.approx(
        (np.mean(pgd - 0.005) - diag.mean()) / (pgd.mean() - diag.mean())
    )


def test_transfer_rule_does_not_hold_when_the_cell_sits_at_the_diagonal():
    rng = np.random.default_rng(1)
    diag = 0.05 + 0.01 * rng.random(20)
    pgd = 0.30 + 0.01 * rng.random(20)
    v = claim_rules.adv2_does_not_transfer(diag + 0.01, np.ones(20), diag, np.ones(20), pgd)
    assert v.status == claims.DOES_NOT_HOLD


def test_transfer_rule_counts_only_successes_and_needs_images():
    diag, pgd = np.full(10, 0.1), np.full(10, 0.3)
    cell = np.full(10, 0.29)
    cell[:5] = 0.1  # failed attacks near the diagonal: left out
    ok = np.r_[np.zeros(5), np.ones(5)]
    assert claim_rules.adv2_does_not_transfer(cell, ok, diag, np.ones(10), pgd).status == claims.HOLDS
    few = claim_rules.adv2_does_not_transfer(cell[:3], ok[:3], diag[:3], np.ones(3), pgd[:3])
    assert few.status == claims.NOT_MEASURABLE
    gapless = claim_rules.adv2_does_not_transfer(cell, ok, pgd, np.ones(10), diag)
    assert gapless.status == claims.NOT_MEASURABLE  # PGD no farther than the diagonal
    with pytest.raises(ValueError, match="same images"):
        claim_rules.adv2_does_not_transfer(cell, ok, diag[:9], np.ones(9), pgd)


def test_transfer_claim_is_registered_with_its_threshold():
    c = claims.CLAIMS["adv2_does_not_transfer"]
    assert c.threshold == claims.TRANSFER_SHARE_MIN == 0.5 and c.direction == claims.AT_LEAST
    assert 9 in c.chapters


# ----------------------------------------------------------------------------- the matrix
def _evaluation(n: int = 10, transfers: bool = False, seed: int = 0) -> transfer.Evaluation:
    """Maps built so that ADV2 against S keeps S's map benign; the other maps are PGD-like (or, with
    ``transfers``, benign too); ``seed``: another training seed's maps of the same images."""
    g = torch.Generator().manual_seed(seed)
    benign = {t: torch.rand(n, 1, 4, 4, generator=g) for t in NAMES}
    pgd = {t: (benign[t] + 0.5).clamp(max=1) for t in NAMES}
    at_target = {transfer.PGD: pgd}
    for s in NAMES:
        at_target[s] = {t: benign[t] + 0.01 if (t == s or transfers) else pgd[t] - 0.01 for t in NAMES}
    ones = torch.ones(n, dtype=torch.bool)
    success = {a: ones for a in at_target}
    pred = {a: torch.zeros(n, dtype=torch.int64) for a in at_target}
    return transfer.Evaluation(list(NAMES), benign, at_target, at_target, pred, success, 0.0)


def test_matrix_has_pgd_and_one_row_per_source_and_a_low_diagonal():
    ev = _evaluation()
    m = transfer.matrix(ev)
    assert list(m) == [transfer.PGD, *NAMES]
    assert all(list(row) == NAMES for row in m.values())
    for s in NAMES:
        for t in NAMES:
            if s == t:
                assert m[s][t].value == pytest.approx(0.01, abs=1e-6)
            else:
                assert m[s][t].value > 10 * m[t][t].value
    verdicts = transfer.cell_verdicts(ev)
    assert len(verdicts) == 12 and "grad→cam" in verdicts and "grad→grad" not in verdicts
    assert all(v.status == claims.HOLDS for v in verdicts.values())


def test_matrix_verdicts_turn_when_the_attack_transfers():
    verdicts = transfer.cell_verdicts(_evaluation(transfers=True))
    assert all(v.status == claims.DOES_NOT_HOLD for v in verdicts.values())


def _seed_run(seed: int, transfers: bool = False, n: int = 10) -> report.SettingRun:
    """One training seed's Fashion-MNIST run on constructed maps (the same ``n`` images every seed)."""
    from types import SimpleNamespace

    from adv2.chapters.ch09 import defense

    ev = _evaluation(n, transfers, seed)
    src = SimpleNamespace(
        setting="resnet", n=n, index=torch.arange(n), origin={}, seconds={}, stored_l1={}, reused_text=str
    )
    calibration = np.random.default_rng(seed).uniform(0, 1, 8)
    return report.SettingRun("resnet", src, ev, defense.defend(ev, src, calibration, 0.1))


def test_two_training_seeds_pool_the_intervals_and_the_verdicts():
    """Issue 27: with train_seeds the Fashion-MNIST setting's numbers pool the seeds' runs (one
    seed: exactly the image-only numbers), and the results say what the intervals cover."""
    one = report.Ch09Result({"resnet": _seed_run(0)}, {"train_seed": 0}).numbers()
    assert one["interval_covers"] == "images" and one["train_seeds"] == [0]
    first, second = _seed_run(0), _seed_run(1)
    est0, est1 = report.transfer_all(first), report.transfer_all(second)
    auc0, auc1 = first.defense.auc(), second.defense.auc()
    run = report.pooled({0: first, 1: second})
    assert run is first and run.train_seeds == [0, 1]
    est, auc = report.transfer_all(run), run.defense.auc()
    for a in est:
        for t in est[a]:
            assert est[a][t].value == pytest.approx((est0[a][t].value + est1[a][t].value) / 2)
            assert "t over 2 seeds" in est[a][t].method
    for a in auc:
        assert auc[a].value == pytest.approx((auc0[a].value + auc1[a].value) / 2)
        assert auc[a].covers_seeds and not auc0[a].covers_seeds
    assert run.defense.false_positive_rate().covers_seeds
    assert all(v.status == claims.HOLDS and v.estimate.covers_seeds for v in run.cell_verdicts().values())
    params = {"train_seed": 0, "train_seeds": [0, 1]}
    result = report.Ch09Result({"resnet": run}, params)
    numbers = result.numbers()
    assert numbers["interval_covers"] == "images and training seeds" and numbers["train_seeds"] == [0, 1]
    assert numbers["intervals"]["resnet"]["l1"]["pgd"]["cam"]["method"].endswith("t over 2 seeds")
    assert "training seeds 0 and 1" in result.glue()["ch9_interval_scope"]
    assert "success counts, steps and seconds show seed 0's run" in result.glue()["ch9_interval_scope"]
    assert "one training seed (0)" in report.Ch09Result({}, {"train_seed": 0}).glue()["ch9_interval_scope"]
    # a seed whose attacks transfer turns the pooled cells away from holding
    mixed = report.pooled({0: _seed_run(0), 2: _seed_run(2, transfers=True)})
    assert not any(v.status == claims.HOLDS for v in mixed.cell_verdicts().values())
    other_images = _seed_run(1)
    other_images.src.index = torch.arange(1, 11)
    with pytest.raises(RuntimeError, match="train_seed 1 evaluated other images"):
        report.pooled({0: _seed_run(0), 1: other_images})


def test_the_diagonal_check_compares_each_seed_with_its_own_stored_maps():
    """Chapter 3 stored each seed's maps: the check reads each seed's own diagonal, not the pooled one."""
    from adv2.chapters._common import ChapterCheckFailed

    first, second = _seed_run(0), _seed_run(1)
    second.ev.at_target["cam"]["cam"] = second.ev.benign["cam"] + 0.2  # seed 1's attack on CAM: weaker
    for r in (first, second):
        r.src.stored_l1 = {"cam": r.own_matrix()["cam"]["cam"].value}
    run = report.pooled({0: first, 1: second})
    assert run.matrix()["cam"]["cam"].value > 1.5 * first.src.stored_l1["cam"]  # the pooled one: neither
    report.check(report.Ch09Result({"resnet": run}, {}))
    second.src.stored_l1 = dict(first.src.stored_l1)  # seed 1's store holding seed 0's attack
    with pytest.raises(ChapterCheckFailed, match="diagonal cell of CAM"):
        report.check(report.Ch09Result({"resnet": run}, {}))


def test_auc_over_seeds_is_the_one_seed_auc_with_one_seed():
    rng = np.random.default_rng(0)
    b, a = [rng.normal(0, 1, 30) for _ in range(2)], [rng.normal(1, 1, 30) for _ in range(2)]
    ok = [np.ones(30, bool), np.r_[np.ones(20, bool), np.zeros(10, bool)]]
    assert detector.auc_ci_seeds(b[:1], a[:1], ok[:1]) == detector.auc_ci(b[0], a[0], ok[0])
    both = detector.auc_ci_seeds(b, a, ok)
    singles = [detector.auc_ci(x, y, k) for x, y, k in zip(b, a, ok)]
    assert both.value == pytest.approx(np.mean([e.value for e in singles]))
    assert both.low < both.value < both.high <= 1 and both.covers_seeds
    with pytest.raises(ValueError, match="same images"):
        detector.auc_ci_seeds(b, [a[0], a[1][:20]], [ok[0], ok[1][:20]])


# ----------------------------------------------------------------------------- the ensemble
def test_disagreement_is_zero_for_equal_maps_and_two_for_disjoint_ones():
    m = torch.rand(3, 1, 8, 8)
    assert torch.allclose(ensemble.disagreement(ensemble.on_grid({"a": m, "b": m.clone()})), torch.zeros(3))
    left = torch.zeros(1, 1, 8, 8)
    left[..., :4] = 1
    right = 1 - left
    assert ensemble.disagreement(ensemble.on_grid({"a": left, "b": right})).item() == pytest.approx(2.0)


def test_on_grid_resizes_to_the_largest_side_and_normalises():
    stack = ensemble.on_grid({"small": torch.rand(2, 1, 7, 7), "big": torch.rand(2, 1, 28, 28)})
    assert stack.shape == (2, 2, 28, 28)
    assert torch.allclose(stack.flatten(2).sum(2), torch.ones(2, 2))
    flat = ensemble.on_grid({"zero": torch.zeros(1, 1, 4, 4)})
    assert torch.allclose(flat, torch.full_like(flat, 1 / 16))


# ----------------------------------------------------------------------------- the detector
def test_auc_on_constructed_scores():
    assert detector.auc([0.1, 0.2, 0.3], [0.5, 0.6]) == 1.0
    assert detector.auc([0.5, 0.6], [0.1, 0.2]) == 0.0
    assert detector.auc([0.4, 0.4], [0.4, 0.4]) == 0.5
    assert detector.auc([0.1, 0.5], [0.3]) == 0.5
    rng = np.random.default_rng(0)
    benign, attacked = rng.normal(0, 1, 40), rng.normal(1, 1, 40)
    e = detector.auc_ci(benign, attacked)
    assert e.low < e.value < e.high and 0.6 < e.value < 0.95
    only_ok = detector.auc_ci(benign, attacked, success=np.r_[np.ones(20), np.zeros(20)])
    assert only_ok.value == pytest.approx(detector.auc(benign, attacked[:20]))
    with pytest.raises(ValueError, match="same images"):
        detector.auc_ci(benign, attacked[:10])


def test_roc_and_threshold():
    fpr, tpr = detector.roc_curve([0.1, 0.2, 0.3, 0.4], [0.35, 0.5])
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert fpr == sorted(fpr) and tpr == sorted(tpr)
    calib = np.arange(10) / 10  # 0.0 ... 0.9
    thr = detector.threshold_at(calib, 0.1)
    assert np.mean(calib > thr) <= 0.1 and thr == pytest.approx(0.8)
    assert detector.flagged(calib, thr).value == pytest.approx(0.1)
    with pytest.raises(ValueError, match="calibration"):
        detector.threshold_at([], 0.1)


# ----------------------------------------------------------------------------- the store
def test_attack_store_round_trip_and_keys(tmp_path):
    x, target = torch.rand(3, 1, 4, 4), torch.tensor([1, 2, 3])
    cfg = attacks.default_config("cam", scale=0.01)
    p = attack_store.attack_params(
        "photos", "cam", cfg, classifier="c", rts="r", x=x, target=target, n_pgd=2, mask_iterations=5, seed=0
    )
    assert p["rts"] == "" and p["mask_iterations"] == 0  # they only key the RTS and MASK attacks
    assert attack_store.lookup(p, tmp_path) is None
    state = {k: torch.zeros(3) for k in attack_store._FIELDS}
    state.update(x=x, target=target)
    attack_store.store(p, state, 1.5, tmp_path)
    got, metrics = attack_store.lookup(p, tmp_path)
    assert torch.equal(got["x"], x) and metrics["seconds"] == 1.5
    other = attack_store.attack_params(
        "photos",
        "cam",
        cfg,
        classifier="c",
        rts="r",
        x=x,
        target=target + 1,
        n_pgd=2,
        mask_iterations=5,
        seed=0,
    )
    assert attack_store.lookup(other, tmp_path) is None  # other targets, other key


def test_sources_are_cut_to_the_common_images_and_must_match():
    x, t = torch.rand(4, 1, 2, 2), torch.tensor([0, 1, 2, 3])

    def entry(n, xx=x):
        s = {k: torch.zeros(n, 1, 2, 2) for k in attack_store._FIELDS}
        s.update(
            x=xx[:n],
            target=t[:n],
            y=t[:n],
            x_pgd=xx[:n],
            x_adv=xx[:n],
            success=torch.ones(n, dtype=torch.bool),
        )
        return s, {"seconds": 1.0}

    src = sources.from_entries("s", {"cam": entry(4), "mask": entry(2)}, torch.arange(4))
    assert src.n == 2 and src.names == ["cam", "mask"] and len(src.x_adv["cam"]) == 2
    assert src.stored_l1 == {"cam": 0.0, "mask": 0.0}  # chapter 3's own maps: equal here
    with pytest.raises(ValueError, match="other images"):
        sources.from_entries(
            "s", {"cam": entry(4), "mask": entry(2, torch.rand(4, 1, 2, 2))}, torch.arange(4)
        )


# ----------------------------------------------------------------------------- parameters
def test_parameters_are_validated():
    assert schema.validate_chapter("09_defense1", {"interpreters": ["cam", "rts"]})["interpreters"] == [
        "cam",
        "rts",
    ]
    with pytest.raises(ParameterError, match="at least two"):
        schema.validate_chapter("09_defense1", {"interpreters": ["cam"]})
    with pytest.raises(ParameterError, match="target_fpr"):
        schema.validate_chapter("09_defense1", {"target_fpr": 0.7})
    with pytest.raises(ParameterError, match="detector_weight"):
        schema.validate_chapter("09_defense1", {"detector_weight": 0})
    with pytest.raises(ParameterError, match="at least two of 'grad', 'cam', 'rts', 'mask'"):
        schema.validate_chapter("09_defense1", {"adaptive_interpreters": ["cam", "smooth"]})
    with pytest.raises(ParameterError, match="shares \\['cam'\\] with parameter 'interpreters'"):
        schema.validate_chapter(
            "09_defense1", {"interpreters": ["grad", "cam"], "adaptive_interpreters": ["cam", "mask"]}
        )
    ok = {"interpreters": ["grad", "cam", "mask"], "adaptive_interpreters": "mask"}
    with pytest.raises(ParameterError, match="adaptive_interpreters"):
        schema.validate_chapter("09_defense1", ok)  # one word is a list of one: not an ensemble
    with pytest.raises(ParameterError, match="adaptive_mask_steps"):
        schema.validate_chapter("09_defense1", {"adaptive_mask_steps": 0})
    with pytest.raises(ParameterError, match="does not contain parameter 'train_seed'"):
        schema.validate_chapter("09_defense1", {"train_seeds": [1, 2]})
    assert AUTHORS_MASK_STEPS == attacks.MaskConfig.track_steps == attacks.MaskConfig.unroll_steps
    ok["adaptive_interpreters"] = ["rts", "cam", "mask"]
    assert schema.validate_chapter("09_defense1", ok)["adaptive_interpreters"] == ["rts", "cam", "mask"]


@pytest.mark.parametrize("profile", [p for p in PROFILES if p != "imagenet"])
def test_chapter3_attack_parameters_match_chapter3(profile):
    """Chapter 9 reads chapter 3's inputs under keys built from these values: they must agree."""
    ch03 = schema.profile_values("03_adv2", profile)
    ch09 = schema.profile_values("09_defense1", profile)
    differ = {n: (ch03[n], ch09[n]) for n in CHAPTER3_ATTACK if ch03[n] != ch09[n]}
    assert not differ, f"{profile}: chapter 9's copies of chapter 3's attack parameters differ: {differ}"
    assert set(ch03["imagenet_interpreters"]) <= set(ch09["interpreters"]) or profile == "smoke"
    # every photo classifier of chapter 9 is one chapter 3 attacks at this profile, so the same
    # parameters give the same keys for each (tests/test_ch09_photos.py: chapter 3's keys for Lite2)
    missing = set(ch09["photo_classifiers"]) - set(ch03["photo_classifiers"])
    assert not missing, f"{profile}: chapter 9 reads photo attacks chapter 3 does not run: {missing}"
    assert set(ch09["adaptive_classifiers"]) <= set(ch09["photo_classifiers"]), profile


# ----------------------------------------------------------------------------- the adaptive attack
def test_adaptive_attack_keeps_the_ensemble_closer_than_pgd(fmnist, small_trained_resnet):
    """ADV2 against Grad, CAM and MASK together: inside the budget, success is the classifier's
    argmax, each interpreter weighs 1/3, and the ensemble's maps end closer to their benign maps
    than PGD's (what the loss optimises)."""
    from adv2.chapters.ch09 import adaptive

    model, aset, interps = _adaptive_setup(fmnist, small_trained_resnet)
    eps, step = 0.15, 0.15 / 8
    cfg = attacks.default_config("cam", epsilon=eps, step_size=step, stage1_steps=15, stage2_steps=30)
    run = adaptive.attack(model, interps, aset.x, aset.y, aset.target, cfg, side=14, batch_size=8)
    assert run.steps == 45 and run.x_adv.shape == aset.x.shape
    assert run.weights == pytest.approx({"grad": 1 / 3, "cam": 1 / 3, "mask": 1 / 3}) and run.mask_steps == (
        4,
        4,
    )
    assert (
        "Grad, CAM and MASK, weight 1/3 each; MASK through its running mask, 4 tracking"
        in adaptive.loss_words(run)
    )
    assert (run.x_adv - aset.x).abs().max() <= eps + 1e-6
    assert torch.equal(run.success, model(run.x_adv).argmax(1) == aset.target)
    ens = adaptive.EnsembleMap(interps, 14)
    x_pgd = attacks.pgd(model, aset.x, aset.target, epsilon=eps, step_size=step, steps=45)
    benign = ens(aset.x, aset.y)
    loss = adaptive.ensemble_loss(0.0)
    ok = run.success
    assert ok.sum() >= 2
    assert loss(ens(run.x_adv, aset.target), benign)[ok].mean() < loss(ens(x_pgd, aset.target), benign).mean()
    with_detector = adaptive.ensemble_loss(1.0)(ens(run.x_adv, aset.target), benign)
    assert torch.all(with_detector > loss(ens(run.x_adv, aset.target), benign))
    with pytest.raises(ValueError, match="valid choices: grad, cam, rts, mask"):
        adaptive.attack(model, interps, aset.x, aset.y, aset.target, cfg, side=14, batch_size=8,
                        loss_interpreters=["cam", "smooth"])  # fmt: skip
    with pytest.raises(ValueError, match="at least two"):
        adaptive.check_loss_interpreters(["cam", "rts"], ["grad", "cam", "mask"])


def _adaptive_setup(fmnist, model):
    from adv2.core.interpreters import build_interpreter
    from adv2.trained.data import select_attack_set

    aset = select_attack_set(model, fmnist.x_test[:2000], fmnist.y_test[:2000], 8, seed=0)
    interps = {
        "grad": build_interpreter("grad", model),
        "cam": build_interpreter("cam", model),
        "mask": build_interpreter("mask", model, iterations=10),
    }
    return model, aset, interps


def test_the_adaptive_loss_has_a_mask_term(fmnist, small_trained_resnet):
    """MASK is in the ensemble's loss: the differentiable stack's MASK channel has a gradient to the
    input, and the attack with MASK in its loss moves the inputs elsewhere than without it."""
    from adv2.chapters.ch09 import adaptive

    model, aset, interps = _adaptive_setup(fmnist, small_trained_resnet)
    ens = adaptive.EnsembleMap(interps, 14)
    assert isinstance(ens.surrogates["mask"], attacks.WarmMask)
    x = aset.x[:3].clone().requires_grad_(True)
    ens.differentiable.reset(3)
    maps = ens.differentiable(x, aset.target[:3])
    assert maps.shape == (3, 3, 14, 14)
    (g,) = torch.autograd.grad(maps[:, 2].sum(), x)  # the MASK channel alone
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    cfg = attacks.default_config("cam", epsilon=0.15, step_size=0.15 / 8, stage1_steps=4, stage2_steps=6)
    runs = {
        names: adaptive.attack(model, interps, aset.x[:4], aset.y[:4], aset.target[:4], cfg, side=14,
                               batch_size=4, loss_interpreters=names)
        for names in (("grad", "cam"), ("grad", "cam", "mask"))
    }  # fmt: skip
    without, with_mask = runs[("grad", "cam")], runs[("grad", "cam", "mask")]
    assert without.mask_steps is None and "MASK is not in the loss" in adaptive.loss_words(without)
    assert without.weights == pytest.approx({"grad": 0.5, "cam": 0.5})
    assert not torch.equal(with_mask.x_adv, without.x_adv)


def test_every_glue_name_of_the_prose_is_glued_even_when_nothing_ran():
    """The prose's glue names exist whatever the parameters leave out ("not run")."""

    used = glue_keys_in_markdown(Path(__file__).resolve().parents[1] / "notebooks" / "09_defense1.ipynb")
    glued = set(report.Ch09Result({}, {}).glue()) | {"ch9_seconds", "ch9_share_min"}  # the notebook's own
    assert used and not used - glued, f"glued nowhere: {sorted(used - glued)}"


def test_an_attack_on_the_first_images_counts_the_rest_as_not_attacked():
    ev = _evaluation(n=6)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))

    def fake(x, t):  # a map of ones whatever the input
        return torch.ones(len(x), 1, 4, 4)

    x_adv = torch.rand(2, 1, 2, 2)
    transfer.add_attack(
        ev, "ens", model, {t: fake for t in NAMES}, x_adv, torch.zeros(6, dtype=torch.int64),
        torch.tensor([True, False]), y=torch.arange(6), batch_size=4, device="cpu",
    )  # fmt: skip
    assert ev.attacks[-1] == "ens" and ev.attempted["ens"] == 2
    assert ev.success["ens"].tolist() == [True, False, False, False, False, False]
    assert torch.equal(ev.at_target["ens"]["cam"][2:], ev.benign["cam"][2:])
    l1 = transfer.l1_arrays(ev)["ens"]["cam"]
    assert l1.shape == (6,) and np.all(l1[2:] == 0)


def test_auc_words_read_the_interval_against_chance():
    from adv2.core.stats import Estimate

    assert "evades" in report.auc_words("X", Estimate(0.3, 0.1, 0.5, 8, ""))
    assert "better than chance" in report.auc_words("X", Estimate(0.9, 0.7, 1.0, 8, ""))
    assert "includes chance" in report.auc_words("X", Estimate(0.6, 0.4, 0.8, 8, ""))


def test_the_run_plan_lists_chapter9_models(fmnist):
    from adv2.book import runplan

    params = schema.profile_values("09_defense1", "quick")
    labels = [label for label, _ in runplan.needed_models("09_defense1", params, fmnist)]
    assert labels == ["resnet classifier", "resnet RTS", "photo RTS"]
    two = {**params, "train_seeds": [0, 1]}  # issue 27: each further seed's classifier and RTS
    labels = [label for label, _ in runplan.needed_models("09_defense1", two, fmnist)]
    assert labels == ["resnet classifier", "resnet RTS", "resnet classifier (train_seed 1)",
                      "resnet RTS (train_seed 1)", "photo RTS"]  # fmt: skip
    params.update(fmnist=False, interpreters=["grad", "cam"])
    assert runplan.needed_models("09_defense1", params, fmnist) == []
    full = schema.profile_values("09_defense1", "full")
    labels = [label for label, _ in runplan.needed_models("09_defense1", full, fmnist)]
    assert labels[-2:] == ["photo RTS", "photo RTS (efficientnet-lite2)"]  # one per photo classifier


def test_chapter3_writes_what_chapter9_reads(fmnist, small_trained_resnet, tmp_path):
    """Chapter 3's attack stores its inputs under the keys chapter 9 builds from the same parameters,
    and chapter 9 reads back exactly chapter 3's adversarial inputs."""
    from adv2.chapters.ch03 import configs, fmnist_attacks
    from adv2.chapters.ch09 import settings
    from adv2.trained.data import select_attack_set

    model = small_trained_resnet
    budget = dict(
        epsilon=0.15, step_size=0.15 / 8, step_scale=0.01, mask_step_scale=0.005, mask_checkpoints=1
    )
    cfgs = configs.fmnist_configs(["grad", "cam"], **budget)
    fm = fmnist_attacks.attack_fmnist(
        {"resnet": model}, fmnist, cfgs, archs=["resnet"], interpreters=["grad", "cam"], accuracy={"resnet": 0.9},
        n_images=8, mask_n_images=8, epsilon=0.15, step_size=0.15 / 8, step_scale=0.01, mask_iterations=5,
        attack_batch_size=8, seed=0, log=None, artifacts_dir=str(tmp_path),
    )  # fmt: skip
    aset = select_attack_set(model, fmnist.x_test, fmnist.y_test, 8, seed=0)
    keys = sources.keys(
        settings.arch_setting("resnet"), cfgs, model=model, rts_net=None, x=aset.x, target=aset.target,
        n_pgd=12, mask_iterations=5, seed=0,
    )  # fmt: skip
    found, missing = sources.read(keys, tmp_path)
    assert not missing
    src = sources.from_entries("resnet", found, aset.index)
    for name in ("grad", "cam"):
        assert torch.equal(src.x_adv[name], fm.runs["resnet"][name]["adv2"].x_adv.cpu())
    assert torch.equal(src.x_pgd, fm.x_pgd["resnet"].cpu())
    other = sources.keys(
        settings.arch_setting("resnet"), cfgs, model=model, rts_net=None, x=aset.x, target=aset.target,
        n_pgd=12, mask_iterations=5, seed=1,
    )  # fmt: skip
    assert sources.read(other, tmp_path)[1] == ["grad", "cam"]  # another seed: not chapter 3's inputs
