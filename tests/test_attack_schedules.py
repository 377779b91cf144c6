"""adv2.core.attacks: the "authors" and "fast" schedules (the Schedule object, the one sign-step
loop, early stopping) and the observation hook (Recorder) of the convergence curves.

Shares test_attacks' session model, attack set and stand-in interpreters."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from adv2.core import attacks, metrics
from test_attacks import EPS, STEP, _batch, _Blur, _cfg, _random_net, attack_setup


@pytest.fixture(scope="module")
def setup(fmnist, small_trained_resnet):
    return attack_setup(fmnist, small_trained_resnet)


def test_schedule_is_validated_and_authors_by_default():
    for name in ("cam", "grad", "rts", "mask"):
        assert attacks.default_config(name).schedule == "authors"
    with pytest.raises(ValueError, match=r"schedule must be one of \['authors', 'fast'\], got 'quick'"):
        attacks.ADV2Config(schedule="quick")
    with pytest.raises(ValueError, match="patience"):
        attacks.ADV2Config(schedule="fast", patience=0)


def test_step_sizes_authors_constant_fast_decays():
    from adv2.core.attacks.loop import step_sizes

    assert step_sizes(0.01, 5, "authors", 2.0, 0.1) == [0.01] * 5
    fast = step_sizes(0.01, 9, "fast", 2.0, 0.1)
    assert fast[0] == pytest.approx(0.02) and fast[-1] == pytest.approx(0.001)
    assert all(a >= b for a, b in zip(fast, fast[1:]))


def test_schedule_object_supplies_step_sizes_and_stopping():
    from adv2.core.attacks.loop import Schedule, sign_loop

    authors = Schedule.of(attacks.ADV2Config(step_size=0.01, schedule="authors", check_every=2), 4)
    assert authors.alphas == [0.01] * 4 and not authors.early_stop
    fast = Schedule.of(attacks.ADV2Config(step_size=0.01, schedule="fast", check_every=2), 4)
    assert fast.early_stop and fast.steps == 4 and fast.alphas[0] > fast.alphas[-1]
    idx, done = torch.arange(3), torch.tensor([True, False, True])
    assert authors.active(2, done, idx) is idx  # the authors' schedule never stops an image
    assert fast.active(1, done, idx) is idx  # between checks: unchanged
    assert fast.active(2, done, idx).tolist() == [1]
    # one loop for both: x - alpha_i sign(grad), projected; a `move` mask freezes images
    x, lo, hi = torch.full((2, 1), 0.5), torch.zeros(2, 1), torch.ones(2, 1)
    out, taken = sign_loop(
        x, lo, hi, authors, lambda i, x, xa, idx: (torch.ones_like(xa), torch.tensor([True, False]))
    )
    assert taken == 4 and torch.allclose(out, torch.tensor([[0.46], [0.5]]))


def test_authors_schedule_unchanged_when_recorded():
    """The convergence recorder must not change the authors' iterates (it only observes)."""
    model = _random_net()
    interp = _Blur(model)
    x, y, t = _batch()
    cfg = attacks.ADV2Config(epsilon=0.1, step_size=0.02, stage1_steps=3, stage2_steps=4)
    plain = attacks.adv2_attack(model, interp, x, y, t, config=cfg)
    curve = attacks.convergence_curve(model, interp, x, y, t, cfg, every=1)
    assert curve["steps_taken"] == curve["steps_budget"] == 7
    assert curve["step"] == list(range(8))
    ok = plain.success
    expected_l1 = metrics.l1_distance(plain.maps[ok], interp(x, y)[ok]).mean() if ok.any() else None
    assert curve["success"][-1] == pytest.approx(float(ok.float().mean()))
    if expected_l1 is not None:
        assert curve["l1"][-1] == pytest.approx(float(expected_l1))


def test_fast_schedule_is_deterministic_and_in_budget():
    model = _random_net()
    interp = _Blur(model)
    x, y, t = _batch()
    cfg = attacks.ADV2Config(epsilon=0.1, step_size=0.02, stage1_steps=4, stage2_steps=6, schedule="fast")
    a = attacks.adv2_attack(model, interp, x, y, t, config=cfg)
    b = attacks.adv2_attack(model, interp, x, y, t, config=cfg)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.maps, b.maps)
    assert (a.x_adv - x).abs().max() <= 0.1 + 1e-6 and a.x_adv.min() >= 0 and a.x_adv.max() <= 1
    authors = attacks.adv2_attack(model, interp, x, y, t, config=dataclasses.replace(cfg, schedule="authors"))
    assert not torch.equal(a.x_adv, authors.x_adv)


def test_fast_pgd_stops_each_image_at_the_target(setup):
    model, aset = setup
    x, t = aset.x, aset.target
    fast = attacks.pgd(model, x, t, epsilon=EPS, step_size=STEP, steps=40, schedule="fast")
    full = attacks.pgd(model, x, t, epsilon=EPS, step_size=STEP, steps=40)
    hit = attacks.assess(model, fast, t).success
    assert hit.float().mean() >= attacks.assess(model, full, t).success.float().mean() - 1e-9
    # a stopped image is left where it first reached the target: closer to x than the full run
    moved_fast = (fast - x).abs().flatten(1).sum(1)
    moved_full = (full - x).abs().flatten(1).sum(1)
    assert (moved_fast[hit] <= moved_full[hit] + 1e-6).all() and (moved_fast[hit] < moved_full[hit]).any()

    class Count:
        step = 0

        def tick(self, _x):
            self.step += 1

    from adv2.core.attacks.pgd import pgd_run

    counter = Count()
    reached = attacks.assess(model, full, t).success
    pgd_run(
        model, x[reached], t[reached], x[reached], EPS, STEP, 200, "ce", schedule="fast", recorder=counter
    )
    assert counter.step < 200  # every image reached the target: the loop ended early


def test_fast_adv2_early_stopping_stops(setup):
    model, aset = setup
    from adv2.core.interpreters import build_interpreter

    interp = build_interpreter("cam", model)
    base = _cfg("cam", stage1_steps=20, stage2_steps=200, schedule="fast")
    # no improvement counts as "improved": every successful image stops after `patience` steps
    eager = dataclasses.replace(base, patience=2, min_improvement=1.0, check_every=2)
    full = attacks.pgd(model, aset.x, aset.target, epsilon=EPS, step_size=STEP, steps=40)
    ok = attacks.assess(model, full, aset.target).success  # images that can reach the target
    curve = attacks.convergence_curve(model, interp, aset.x[ok], aset.y[ok], aset.target[ok], eager, every=10)
    assert curve["steps_taken"] < curve["steps_budget"]
    assert curve["success"][-1] >= 0.5
    assert curve["step"][-1] == curve["steps_taken"]


def test_steps_to_reach():
    curve = {"step": [0, 5, 10], "success": [0.0, 0.9, 1.0], "l1": [float("nan"), 0.2, 0.104]}
    assert attacks.steps_to_reach(curve, l1=0.1, success=1.0) == 10
    assert attacks.steps_to_reach(curve, l1=0.195, success=0.92) == 5
    assert attacks.steps_to_reach(curve, l1=0.05, success=1.0) is None


def test_mask_recorder_points_at_checkpoints_and_changes_nothing(setup):
    """MASK's convergence curve: points at its re-solves (no extra re-solve), the attack's
    result unchanged by the recorder, the last point its actual result."""
    from adv2.core.interpreters import MaskInterpreter

    model, aset = setup
    mask = MaskInterpreter(model, iterations=10)
    cfg = _cfg("mask", stage1_steps=8, stage2_steps=6, resolve_every=2, track_steps=1, bisection_steps=4)
    x, y, t = aset.x[:4], aset.y[:4], aset.target[:4]
    benign = mask(x, y)
    plain = attacks.adv2_attack(model, mask, x, y, t, benign, config=cfg)
    curve = attacks.convergence_curve(model, mask, x, y, t, cfg, benign_maps=benign)
    assert curve["steps_taken"] == curve["steps_budget"] == 14
    assert curve["step"] == [0, 10, 12, 14]  # the clean images, then stage-2 checkpoints 2, 4, 6
    ok = plain.success
    assert curve["success"][-1] == pytest.approx(float(ok.float().mean()))
    if ok.any():
        assert curve["l1"][-1] == pytest.approx(float(metrics.l1_distance(plain.maps[ok], benign[ok]).mean()))
    rec = attacks.Recorder(model, mask, t, benign, every=1, sparse=True)
    again = attacks.adv2_attack(model, mask, x, y, t, benign, config=cfg, recorder=rec)
    assert torch.equal(plain.x_adv, again.x_adv) and torch.equal(plain.maps, again.maps)
    assert rec.step == 14


def test_fast_mask_is_deterministic_and_stops_early(setup):
    from adv2.core.interpreters import MaskInterpreter

    model, aset = setup
    mask = MaskInterpreter(model, iterations=10)
    base = _cfg("mask", stage1_steps=10, stage2_steps=12, resolve_every=2, track_steps=1, bisection_steps=4)
    fast = dataclasses.replace(base, schedule="fast")
    x, y, t = aset.x[:4], aset.y[:4], aset.target[:4]
    benign = mask(x, y)
    a = attacks.adv2_attack(model, mask, x, y, t, benign, config=fast)
    b = attacks.adv2_attack(model, mask, x, y, t, benign, config=fast)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.maps, b.maps)
    assert (a.x_adv - x).abs().max() <= EPS + 1e-6 and a.x_adv.min() >= 0 and a.x_adv.max() <= 1
    assert (model(a.x_adv).argmax(1) == t)[a.success].all()
    # no improvement counts: every successful image stops at the first checkpoint past patience
    eager = dataclasses.replace(fast, patience=1, min_improvement=1.0)
    curve = attacks.convergence_curve(model, mask, x, y, t, eager, benign_maps=benign)
    if curve["success"][-1] == 1.0:
        assert curve["steps_taken"] < curve["steps_budget"]
    assert curve["step"][-1] == curve["steps_taken"]


def test_recorder_evaluates_one_batch_only():
    model = _random_net()
    interp = _Blur(model)
    x, y, t = _batch()
    rec = attacks.Recorder(model, interp, t, interp(x, y), every=1)
    cfg = attacks.ADV2Config(epsilon=0.1, step_size=0.02, stage1_steps=1, stage2_steps=1)
    with pytest.raises(ValueError, match="one batch"):
        attacks.adv2_attack(model, interp, x, y, t, config=cfg, batch_size=2, recorder=rec)
