"""No host synchronisation inside the attacks' step loops (what keeps a GPU busy).

On CUDA, reading a device tensor into Python (``.item()``, ``.tolist()``, ``.cpu()``, ``bool(t)``,
``float(t)``, ``int(t)``, printing) or indexing with a boolean mask waits for every queued kernel.
CI has no GPU, so the check is structural, on the CPU: while an attack runs, those methods are
patched to record who called them, and the progress bar the attack updates once per step marks
the step loop (from its first update to its last). Any recorded call inside the loop fails the
test, naming the line. The fast schedule's ``nonzero`` (which images are still active, every
``check_every`` steps) is the one allowed synchronisation: it is counted and must happen exactly
once per check.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest
import torch

from adv2.core.attacks.adv2 import adv2_sign
from adv2.core.attacks.mask import adv2_mask
from test_precision import interpreter_for, tiny_config, tiny_setup

pgd_module = sys.modules["adv2.core.attacks.pgd"]

FORBIDDEN = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__", "__format__")
# Host reads of CPU tensors that never wait for the GPU: torch.optim keeps Adam's step counter on
# the CPU and reads it with .item() (MASK's re-solve, every ``resolve_every`` steps, uses Adam), and
# MASK draws its jitter offsets from a CPU generator (``sample_jitter``)
HOST_ONLY_FILES = (str(Path(torch.__file__).parent / "optim"),)
HOST_ONLY_FUNCTIONS = ("sample_jitter",)


class SyncGuard:
    """Records host reads of tensors and boolean-mask indexing, and counts ``nonzero`` calls,
    between the first and the last ``update`` of this object used as the attack's progress bar."""

    def __init__(self):
        self.updates = 0
        self.calls: list[tuple[int, str, str]] = []  # (updates so far, what, where)
        self.nonzero: list[int] = []  # updates so far at each call

    # the progress bar the attacks update once per step
    def update(self, n: int = 1) -> None:
        self.updates += n

    def _record(self, what: str) -> None:
        frame = sys._getframe(2)
        where = f"{frame.f_code.co_filename}:{frame.f_lineno}"
        code = frame.f_code
        if not code.co_filename.startswith(HOST_ONLY_FILES) and code.co_name not in HOST_ONLY_FUNCTIONS:
            self.calls.append((self.updates, what, where))

    @contextlib.contextmanager
    def watching(self, monkeypatch):
        guard = self
        for name in FORBIDDEN:
            real = getattr(torch.Tensor, name)

            def patched(t, *a, _real=real, _name=name, **k):
                guard._record(_name)
                return _real(t, *a, **k)

            monkeypatch.setattr(torch.Tensor, name, patched)
        for name in ("__getitem__", "__setitem__"):
            real = getattr(torch.Tensor, name)

            def indexed(t, idx, *a, _real=real, _name=name, **k):
                parts = idx if isinstance(idx, tuple) else (idx,)
                if any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts):
                    guard._record(f"{_name} with a boolean mask")
                return _real(t, idx, *a, **k)

            monkeypatch.setattr(torch.Tensor, name, indexed)
        real_nonzero = torch.Tensor.nonzero

        def nonzero(t, *a, **k):
            guard.nonzero.append(guard.updates)
            return real_nonzero(t, *a, **k)

        monkeypatch.setattr(torch.Tensor, "nonzero", nonzero)
        try:
            yield self
        finally:
            monkeypatch.undo()

    def in_loop(self) -> list[tuple[int, str, str]]:
        """Recorded calls after the first step's update and before the last one."""
        return [c for c in self.calls if 1 <= c[0] < self.updates]


def _assert_no_sync(guard: SyncGuard, steps: int) -> None:
    assert guard.updates == steps, "the guard must see one bar update per step"
    bad = guard.in_loop()
    assert not bad, "host synchronisation inside the step loop: " + "; ".join(
        f"{what} at {where} (step {n})" for n, what, where in bad[:5]
    )


def _run(kind: str, schedule: str, epsilon: float, guard: SyncGuard, monkeypatch):
    model, x, y, t = tiny_setup()
    if kind == "pgd":
        steps = 12
        with guard.watching(monkeypatch):
            x_adv, _ = pgd_module.pgd_run(
                model, x, t, x, epsilon, 0.02, steps, "ce", guard, schedule=schedule, check_every=4
            )
        return x_adv, steps
    interp = interpreter_for(kind, model)
    benign = interp(x, y)
    if kind == "mask":
        cfg = tiny_config(kind, epsilon=epsilon, stage1_steps=2, stage2_steps=3, schedule=schedule)
        runner = adv2_mask
    else:
        cfg = tiny_config(kind, epsilon=epsilon, stage1_steps=4, schedule=schedule, check_every=2)
        if kind == "grad":
            cfg = type(cfg)(**{**cfg.__dict__, "phase_steps": (6,), "phase_lams": (0.01,)})
        else:
            cfg = type(cfg)(**{**cfg.__dict__, "stage2_steps": 6})
        runner = adv2_sign
    with guard.watching(monkeypatch):
        res = runner(model, interp, x, t, benign, cfg, bar=guard)
    return res.x_adv, cfg.stage1_steps + cfg.stage2_steps


@pytest.mark.parametrize("kind", ["pgd", "cam", "grad", "rts", "mask"])
def test_authors_schedule_loops_never_read_the_device(kind, monkeypatch):
    guard = SyncGuard()
    _, steps = _run(kind, "authors", 0.1, guard, monkeypatch)
    _assert_no_sync(guard, steps)
    assert guard.nonzero == []  # only the fast schedule drops finished images


@pytest.mark.parametrize("kind", ["pgd", "cam", "grad", "rts"])
def test_fast_schedule_syncs_once_per_check(kind, monkeypatch):
    """A tiny budget: no image ever reaches the target, so no stage ends early and every check
    happens: exactly one ``nonzero`` per ``check_every`` steps (not at step 0)."""
    guard = SyncGuard()
    _, steps = _run(kind, "fast", 1e-4, guard, monkeypatch)
    _assert_no_sync(guard, steps)
    if kind == "pgd":
        expected = (12 - 1) // 4
    else:  # stage 1 (check_every 2, 4 steps) then the joint stage (6 steps + none left over)
        expected = (4 - 1) // 2 + (6 - 1) // 2
    assert len(guard.nonzero) == expected


@pytest.mark.parametrize("kind", ["pgd", "cam"])
def test_fast_schedule_with_early_stops_stays_on_the_device(kind, monkeypatch):
    guard = SyncGuard()
    _run(kind, "fast", 0.3, guard, monkeypatch)
    bad = [c for c in guard.calls if c[0] < guard.updates]
    assert not bad, f"host synchronisation while images stop early: {bad[:5]}"


def test_the_guard_catches_a_sync(monkeypatch):
    """The guard is not blind: an ``.item()`` between two steps is caught and located."""
    guard = SyncGuard()
    with guard.watching(monkeypatch):
        for i in range(3):
            guard.update()
            if i == 1:
                torch.ones(1).item()
                bool(torch.ones(1) > 0)
                torch.arange(3)[torch.tensor([True, False, True])]
    assert [c[1] for c in guard.in_loop()] == ["item", "__bool__", "__getitem__ with a boolean mask"]
    assert "test_nosync.py:" in guard.in_loop()[0][2]
