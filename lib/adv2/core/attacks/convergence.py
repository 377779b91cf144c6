"""Convergence curves of an ADV2 schedule: success rate and map L1 against the step count.

:func:`convergence_curve` runs one attack on one batch and evaluates, every ``every`` steps
(stage 1 and stage 2 counted together), what the attack would return if it stopped there:
the success rate and the mean L1 distance (:func:`adv2.core.metrics.l1_distance`) between the
interpreter's map of the adversarial input (target class) and the benign map, over the successful
images -- the chapter's ``l1_mean``. The last point is the attack's actual result.
:func:`steps_to_reach` reads off where a curve first reaches a reference (the acceptance rule of
the fast schedule: L1 within 5 % and success within 0.02 of the authors' final values).
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn as nn

from adv2.core.attacks.adv2 import _config_for, _variant, adv2_sign
from adv2.core.attacks.common import assess, device_of
from adv2.core.attacks.config import AttackConfig
from adv2.core.attacks.mask import adv2_mask
from adv2.core.interpreters.base import Interpreter
from adv2.core.metrics import l1_distance
from adv2.core.tensors import map_batches


class Recorder:
    """The one observation hook of the attacks: counts their steps (``tick(x)`` after each, stage 1
    and stage 2 together) and evaluates every ``every``-th iterate.

    An attack that returns something other than its iterate declares it with :meth:`returns`
    (Grad's best-iterate selection). ``sparse=True``: ticks only count, and
    the points come from the attack's own :meth:`add` calls (MASK, whose map is re-solved only at
    its checkpoints). ``adv2_attack(..., recorder=r)`` calls ``r.begin(chunk)`` before each batch
    chunk; this recorder evaluates one batch (:func:`convergence_curve`), :class:`IterateRecorder`
    keeps iterates chunk by chunk."""

    def __init__(self, model, interpreter, target, benign, every: int, *, sparse: bool = False):
        self.model, self.interpreter, self.target, self.benign = model, interpreter, target, benign
        self.every = max(1, int(every))
        self.sparse = sparse
        self.step = 0
        self.view = None
        self.chunks = 0
        self.steps: list[int] = []
        self.success: list[float] = []
        self.l1: list[float] = []

    def begin(self, chunk: slice) -> None:
        """A new batch chunk starts (step count from 0)."""
        self.chunks += 1
        if self.chunks > 1:
            raise ValueError(
                "Recorder evaluates one batch: run adv2_attack with batch_size >= len(x) "
                "(or use convergence_curve / IterateRecorder)"
            )
        self.step, self.view = 0, None

    def returns(self, view) -> None:
        """From now on (until the next chunk) ``view(x) -> (x_returned, success)`` maps the
        iterate to what the attack would return."""
        self.view = view

    def tick(self, x: torch.Tensor) -> None:
        self.step += 1
        if not self.sparse and self.step % self.every == 0:
            self.record(*(self.view(x) if self.view is not None else (x, None)))

    def record(self, x: torch.Tensor, success: torch.Tensor | None = None, maps=None) -> None:
        if maps is None or success is None:
            res = assess(self.model, x, self.target, self.interpreter)
            success = res.success if success is None else success
            maps = res.maps
        self.add(self.step, success, maps)

    def add(self, step: int, success: torch.Tensor, maps: torch.Tensor | None) -> None:
        ok = success.bool()
        if ok.any():
            l1 = l1_distance(maps[ok], self.benign[ok]).mean()
        else:
            l1 = torch.tensor(float("nan"))
        if self.steps and self.steps[-1] == step:  # the final result replaces the last point
            self.steps.pop(), self.success.pop(), self.l1.pop()
        self.steps.append(int(step))
        self.success.append(float(ok.float().mean()))
        self.l1.append(float(l1))


class IterateRecorder(Recorder):
    """Keeps (on the CPU) the raw iterate after each step in ``steps``, batch chunk by batch
    chunk; steps count from the ``offset``-th tick (e.g. ``offset = stage1_steps`` when the attack
    runs its own stage 1 and only stage-2 steps are wanted). Evaluates nothing."""

    def __init__(self, steps, offset: int = 0):
        super().__init__(None, None, None, None, every=1, sparse=True)
        self.wanted, self.offset = {int(s) for s in steps}, int(offset)
        self.x: dict[int, list[torch.Tensor]] = {}

    def begin(self, chunk: slice) -> None:
        self.step, self.view = 0, None

    def tick(self, x: torch.Tensor) -> None:
        self.step += 1
        if self.step - self.offset in self.wanted:
            self.x.setdefault(self.step - self.offset, []).append(x.detach().cpu())

    def add(self, step: int, success: torch.Tensor, maps: torch.Tensor | None) -> None:
        pass

    def tensors(self) -> dict[int, torch.Tensor]:
        """Step -> the iterates of all chunks, concatenated."""
        return {s: torch.cat(v) for s, v in sorted(self.x.items())}


def convergence_curve(
    model: nn.Module,
    interpreter: Interpreter,
    x: torch.Tensor,
    y: torch.Tensor,
    target: torch.Tensor,
    config: AttackConfig | None = None,
    *,
    every: int = 5,
    benign_maps: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Success rate and map L1 (over successes) every ``every`` steps of ADV2 with ``config``
    (either schedule; default: the authors' for the interpreter, as
    :func:`adv2.core.attacks.adv2_attack`) on the batch ``x`` (true classes ``y``, targets
    ``target``).

    Returns ``{"schedule", "step", "success", "l1", "steps_budget", "steps_taken", "seconds"}``:
    ``steps_budget`` = the configured stage-1 + stage-2 steps, ``steps_taken`` = the steps the
    attack ran (fewer when every image stopped early). MASK (bilevel): its map is re-solved only at
    the attack's checkpoints, so its points are the checkpoints (``every`` is not used)."""
    name = getattr(interpreter, "name", "custom")
    variant = _variant(interpreter, None)
    cfg = _config_for(name, variant, config)
    device = device_of(model, x)
    x, y, target = x.to(device), y.to(device), target.to(device)
    if benign_maps is None:
        benign_maps = map_batches(interpreter, x, y, batch_size=len(x), device=device)
    benign_maps = benign_maps.to(device)
    rec = Recorder(model, interpreter, target, benign_maps, every, sparse=variant == "bilevel")
    rec.add(0, *_evaluate(model, interpreter, x, target))
    started = time.time()
    runner = adv2_mask if variant == "bilevel" else adv2_sign
    result = runner(model, interpreter, x, target, benign_maps, cfg, recorder=rec)
    seconds = time.time() - started
    taken = rec.step
    rec.add(taken, result.success, result.maps)
    return {
        "schedule": cfg.schedule,
        "step": rec.steps,
        "success": rec.success,
        "l1": rec.l1,
        "steps_budget": cfg.stage1_steps + cfg.stage2_steps,
        "steps_taken": taken,
        "seconds": seconds,
    }


def _evaluate(model, interpreter, x, target):
    """Success and maps at ``x``; no map when nothing succeeds (MASK's map costs a re-solve)."""
    res = assess(model, x, target)
    if not res.success.any():
        return res.success, None
    return res.success, assess(model, x, target, interpreter).maps


def steps_to_reach(
    curve: dict[str, Any],
    l1: float,
    success: float,
    l1_tolerance: float = 0.05,
    success_tolerance: float = 0.02,
) -> int | None:
    """First step of ``curve`` with success >= ``success - success_tolerance`` and
    L1 <= ``l1 * (1 + l1_tolerance)``; None if it never gets there."""
    for step, s, d in zip(curve["step"], curve["success"], curve["l1"], strict=True):
        if s >= success - success_tolerance - 1e-9 and d == d and d <= l1 * (1 + l1_tolerance) + 1e-12:
            return step
    return None


__all__ = ["IterateRecorder", "Recorder", "convergence_curve", "steps_to_reach"]
