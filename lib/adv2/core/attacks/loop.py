"""The sign-step loop of PGD and ADV2's joint stage, and the schedule it reads.

One loop (:func:`sign_loop`) runs projected sign steps on the still-active images of a batch; a
:class:`Schedule` supplies the step sizes and whether finished images stop early, a stopping
rule says when an image is finished (:class:`FirstHit` for PGD, :class:`EarlyStop` for the joint
stage), and the attack supplies each step's gradient. The schedules (config field ``schedule``):

* ``"authors"`` -- every step is a sign step of ``step_size`` (the paper's schedule; what the
  ``paper`` profile reproduces). No early stopping.
* ``"fast"`` -- step sizes decay along a cosine from ``fast_step_start * step_size`` to
  ``fast_step_end * step_size`` over each stage (coarse steps find the target class and the rough
  map quickly, fine steps then polish the map: on Fashion-MNIST RTS, fine steps after the coarse
  ones cut ADV2's map L1 where more coarse steps did not), and images stop early, one by one:
  PGD stops an image once it is classified as the target (a stage 1 once p(target) >= 0.9), and
  the steps a stage 1 leaves unused go to the joint stage (its lambda schedule stretched over
  them); ADV2's joint stage stops it once it is at the target and its map loss has not improved by ``min_improvement``
  (relative) for ``patience`` steps, and returns each image's best successful iterate.

Stopped images leave the batch (checked every ``check_every`` steps, the only host
synchronisation of the fast loops), so the remaining steps cost less.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from adv2.core.metrics import target_confidence

SCHEDULES = ("authors", "fast")
# the fast stage 1 stops an image at this p(target), not at the first argmax hit: the joint stage
# trades confidence for the map, and Grad's selection needs p(target) > 0.8
STAGE1_CONFIDENCE = 0.9


def linf_box(x0: torch.Tensor, epsilon: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The box B_eps(x0) ∩ [0,1] as elementwise lower/upper bounds."""
    return (x0 - epsilon).clamp(0, 1), (x0 + epsilon).clamp(0, 1)


def project(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Elementwise projection onto the box ``[lo, hi]``."""
    return torch.maximum(torch.minimum(x, hi), lo)


def check_schedule(schedule: str) -> None:
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {schedule!r}")


def step_sizes(step_size: float, steps: int, schedule: str, start: float, end: float) -> list[float]:
    """The sign-step size of each of ``steps`` steps: constant (authors) or a cosine decay from
    ``start * step_size`` to ``end * step_size`` (fast)."""
    check_schedule(schedule)
    if schedule == "authors":
        return [step_size] * steps
    if steps <= 1:
        return [start * step_size] * steps
    return [
        step_size * (end + (start - end) * 0.5 * (1 + math.cos(math.pi * i / (steps - 1))))
        for i in range(steps)
    ]


@dataclass(frozen=True)
class Schedule:
    """What a step loop reads from the schedule: the size of each step and the stopping rule (stop
    finished images early, checking every ``check_every`` steps)."""

    alphas: list[float]
    early_stop: bool
    check_every: int = 5

    @classmethod
    def of(
        cls,
        cfg,
        steps: int,
        size: float | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> Schedule:
        """The schedule of ``steps`` steps of a config (``cfg.schedule``): steps of ``size``
        (default ``cfg.step_size``), on the fast schedule decaying from ``start`` to ``end`` times
        it (default ``cfg.fast_step_start`` / ``cfg.fast_step_end``)."""
        size = cfg.step_size if size is None else size
        start = cfg.fast_step_start if start is None else start
        end = cfg.fast_step_end if end is None else end
        return cls(step_sizes(size, steps, cfg.schedule, start, end), cfg.schedule == "fast", cfg.check_every)

    @property
    def steps(self) -> int:
        return len(self.alphas)

    def active(self, i: int, done: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """The images still attacked at step ``i``: every ``check_every`` steps the not-``done``
        ones (the loops' only host synchronisation), else ``idx`` unchanged."""
        if self.early_stop and i and i % self.check_every == 0:
            return (~done).nonzero().view(-1)
        return idx


class FirstHit:
    """PGD's stopping rule: an image is done once it is classified as the target with p(target)
    >= ``confidence``, and keeps that iterate (its later steps have size 0 until it leaves)."""

    def __init__(self, x: torch.Tensor, confidence: float = 0.0):
        self.confidence = confidence
        self.done = torch.zeros(len(x), dtype=torch.bool, device=x.device)

    def update(self, idx: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Images ``idx`` had ``logits``: mark the finished ones; returns which of them still move."""
        hit = logits.argmax(1) == target
        if self.confidence > 0:
            hit = hit & (target_confidence(logits, target) >= self.confidence)
        self.done[idx] = self.done[idx] | hit
        return ~self.done[idx]

    def result(self, x: torch.Tensor) -> torch.Tensor:
        return x


class EarlyStop:
    """Per-image early stopping of the joint stage, all on the device.

    An image is *done* once it is at the target class and its best map loss (over successful
    iterates) has not improved by a relative ``min_improvement`` for ``patience`` steps. Keeps
    each image's best successful iterate.
    """

    def __init__(self, x: torch.Tensor, patience: int, min_improvement: float):
        n = len(x)
        self.patience, self.min_improvement = patience, min_improvement
        self.best_loss = torch.full((n,), float("inf"), device=x.device)
        self.best_x = x.detach().clone()
        self.since = torch.zeros(n, dtype=torch.long, device=x.device)

    def update(self, idx: torch.Tensor, x: torch.Tensor, success: torch.Tensor, loss: torch.Tensor) -> None:
        """Images ``idx`` were at ``x`` with ``success`` and map ``loss`` (before their step)."""
        best = self.best_loss[idx]
        better = success & (loss < best)
        improved = success & (loss < best * (1 - self.min_improvement))
        self.best_loss[idx] = torch.where(better, loss, best)
        self.best_x[idx] = torch.where(better.view(-1, *[1] * (x.dim() - 1)), x.detach(), self.best_x[idx])
        self.since[idx] = torch.where(improved, torch.zeros_like(self.since[idx]), self.since[idx] + 1)

    @property
    def done(self) -> torch.Tensor:
        return torch.isfinite(self.best_loss) & (self.since >= self.patience)

    def result(self, x: torch.Tensor) -> torch.Tensor:
        """Each image's best successful iterate; the current one where it never succeeded."""
        found = torch.isfinite(self.best_loss).view(-1, *[1] * (x.dim() - 1))
        return torch.where(found, self.best_x, x)


# (step, x, x[idx] requiring grad, idx) -> (gradient at x[idx], which of them move or None = all)
StepGradient = Callable[
    [int, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]
]


def sign_loop(
    x: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    plan: Schedule,
    gradient: StepGradient,
    stop: FirstHit | EarlyStop | None = None,
    after_step: Callable[[int, torch.Tensor], None] | None = None,
    bar=None,
    bar_steps: int | None = None,
) -> tuple[torch.Tensor, int]:
    """``x <- clip_[lo,hi](x - alpha_i sign(gradient))`` for each step size of ``plan``, from ``x``
    (already in the box); returns the last iterate and the number of steps run.

    With ``plan.early_stop`` the images ``stop`` marks done leave the batch at the next check (the
    loop ends when none is left). ``after_step(steps run, x)`` sees each new iterate; the progress
    ``bar`` counts the first ``bar_steps`` steps (all by default), skipped ones included."""
    steps = plan.steps
    bar_steps = steps if bar_steps is None else bar_steps
    whole = not plan.early_stop  # every image steps every time: views, not gathers (same values)
    idx = slice(None) if whole else torch.arange(len(x), device=x.device)
    shape = (-1,) + (1,) * (x.dim() - 1)
    taken = 0
    for i in range(steps):
        if stop is not None and not whole:
            idx = plan.active(i, stop.done, idx)
            if len(idx) == 0:
                break
        xa = x[idx].detach().requires_grad_(True)
        grad, move = gradient(i, x, xa, idx)
        with torch.no_grad():
            step = plan.alphas[i] * grad.sign()
            if move is not None:
                step = step * move.view(shape).to(grad.dtype)
            if whole:
                x = project(xa.detach() - step, lo, hi)
            else:
                x = x.index_copy(0, idx, project(xa.detach() - step, lo[idx], hi[idx]))
        taken = i + 1
        if after_step is not None:
            after_step(taken, x)
        if bar is not None and i < bar_steps:
            bar.update(1)
    if bar is not None and taken < bar_steps:
        bar.update(bar_steps - taken)
    return x, taken


__all__ = [
    "SCHEDULES",
    "STAGE1_CONFIDENCE",
    "EarlyStop",
    "FirstHit",
    "Schedule",
    "StepGradient",
    "check_schedule",
    "linf_box",
    "project",
    "sign_loop",
    "step_sizes",
]
