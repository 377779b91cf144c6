"""Targeted L-inf PGD (paper-method 3.4): the authors' baseline and every ADV2 variant's stage 1.

``x <- clip_{B_eps(x0) ∩ [0,1]}(x - alpha sign(grad loss))``, no random start, no early stop; the
whole batch is one tensor and nothing synchronises with the host inside the step loop (on CUDA
the forward runs in bf16 autocast, the loss in fp32: :mod:`adv2.core.precision`). With
``schedule="fast"`` each image stops once it reaches the target (checked every few steps).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from adv2.core.attacks.common import device_of
from adv2.core.attacks.config import AttackConfig
from adv2.core.attacks.loop import (
    STAGE1_CONFIDENCE,
    FirstHit,
    Schedule,
    check_schedule,
    linf_box,
    project,
    sign_loop,
)
from adv2.core.attacks.losses import prediction_loss
from adv2.core.precision import fp32_forward
from adv2.core.progress import progress_bar
from adv2.core.tensors import batch_slices


def pgd_run(
    model: nn.Module,
    x0: torch.Tensor,
    target: torch.Tensor,
    x: torch.Tensor,
    epsilon: float,
    step_size: float,
    steps: int,
    loss: str,
    bar=None,
    snapshots: Sequence[int] = (),
    *,
    schedule: str = "authors",
    check_every: int = 5,
    recorder=None,
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """``steps`` PGD steps of size ``step_size`` on one batch from ``x`` (ball around ``x0``);
    returns the last iterate and the iterates after each step count in ``snapshots``.

    ``schedule="fast"``: each image stops once it is classified as the target (see
    :mod:`adv2.core.attacks.loop`); ``recorder.tick(x)`` (if given) sees the iterate after every
    step."""
    lo, hi = linf_box(x0, epsilon)
    plan = Schedule([step_size] * steps, schedule == "fast", check_every)
    x, saved, _ = sign_pgd(
        model, target, project(x.detach(), lo, hi), lo, hi, plan, loss, bar, snapshots, recorder
    )
    return x, saved


def sign_pgd(
    model: nn.Module,
    target: torch.Tensor,
    x: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    plan: Schedule,
    loss: str,
    bar=None,
    snapshots: Sequence[int] = (),
    recorder=None,
    stop_confidence: float = 0.0,
) -> tuple[torch.Tensor, dict[int, torch.Tensor], int]:
    """PGD on :func:`~adv2.core.attacks.loop.sign_loop`: sign steps of ``plan``'s sizes from ``x``
    (in the box ``[lo, hi]``); with ``plan.early_stop`` an image stops at the target with
    p(target) >= ``stop_confidence``. Returns ``(x, snapshots, steps run)``."""
    saved: dict[int, torch.Tensor] = {0: x} if 0 in snapshots else {}
    stop = FirstHit(x, stop_confidence)

    def gradient(i: int, x: torch.Tensor, xa: torch.Tensor, idx: torch.Tensor):
        ta = target[idx]
        logits = fp32_forward(model, xa)  # bf16 on CUDA; the loss and the stop test in fp32
        (grad,) = torch.autograd.grad(prediction_loss(loss, logits, ta), xa)
        with torch.no_grad():  # an image at the target keeps this iterate
            return grad, stop.update(idx, logits, ta) if plan.early_stop else None

    def after_step(taken: int, x: torch.Tensor) -> None:
        if taken in snapshots:
            saved[taken] = x
        if recorder is not None:
            recorder.tick(x)

    x, taken = sign_loop(x, lo, hi, plan, gradient, stop, after_step, bar)
    for s in snapshots:  # stopped early: later snapshots are the final iterate
        if s > taken:
            saved[s] = x
    return x, saved, taken


def stage1(
    model: nn.Module, x0: torch.Tensor, target: torch.Tensor, cfg: AttackConfig, bar=None, recorder=None
) -> tuple[torch.Tensor, int]:
    """The prediction-only warm start of every variant: ``cfg.stage1_steps`` PGD steps on
    ``cfg.stage1_loss`` from ``x0``; returns the iterate and the steps run. The fast schedule
    decays the step size and stops each image once it is at the target with p(target) >=
    :data:`~adv2.core.attacks.loop.STAGE1_CONFIDENCE` (margin for the joint stage to spend)."""
    lo, hi = linf_box(x0, cfg.epsilon)
    plan = Schedule.of(cfg, cfg.stage1_steps)
    x, _, taken = sign_pgd(
        model, target, project(x0.detach(), lo, hi), lo, hi, plan, cfg.stage1_loss, bar,
        recorder=recorder, stop_confidence=STAGE1_CONFIDENCE,
    )  # fmt: skip
    return x, taken


def pgd_snapshots(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    steps: Sequence[int],
    *,
    epsilon: float = 0.031,
    step_size: float = 1 / 255,
    loss: str = "ce",
    x_start: torch.Tensor | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    desc: str = "pgd",
    schedule: str = "authors",
) -> dict[int, torch.Tensor]:
    """One PGD run, returning the iterate after each number of steps in ``steps``.

    PGD is deterministic, so ``pgd_snapshots(..., [300, 400, 1200])`` gives the warm starts of the
    Grad/RTS (300) and CAM (400) ADV2 attacks and the 1200-step baseline in one pass.
    """
    wanted = sorted({int(s) for s in steps})
    if not wanted or wanted[0] < 0:
        raise ValueError(f"steps must be non-negative step counts, got {steps!r}")
    check_schedule(schedule)
    device = device_of(model, x)
    out: dict[int, list[torch.Tensor]] = {s: [] for s in wanted}
    chunks = batch_slices(len(x), batch_size)
    bar = progress_bar(total=wanted[-1] * len(chunks), desc=desc, enabled=progress)
    for sl in chunks:
        x0 = x[sl].to(device)
        start = x0 if x_start is None else x_start[sl].to(device)
        _, saved = pgd_run(
            model,
            x0,
            target[sl].to(device),
            start,
            epsilon,
            step_size,
            wanted[-1],
            loss,
            bar,
            wanted,
            schedule=schedule,
        )
        for s in wanted:
            out[s].append(saved[s])
    bar.close()
    return {s: torch.cat(v) for s, v in out.items()}


def pgd(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, steps: int = 1200, **options
) -> torch.Tensor:
    """Targeted L-inf PGD towards ``target`` (the authors' baseline, paper-method 3.4).

    ``steps`` sign steps of size ``step_size`` on the summed cross-entropy (or the logit margin,
    ``loss="margin"``), each followed by projection onto ``B_eps(x) ∩ [0,1]``; no random start, no
    early stop (``schedule="fast"``: each image stops once it is classified as the target, steps
    of constant size ``step_size``). ``options`` are :func:`pgd_snapshots`' (``epsilon``,
    ``step_size``, ``loss``, ``x_start`` to continue from an earlier iterate in the same ball around
    ``x``, ``batch_size`` to chunk the batch, ``progress``, ``desc``, ``schedule``). Returns
    ``x_adv`` on the model's device.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps!r}")
    return pgd_snapshots(model, x, target, [steps], **options)[steps]


__all__ = ["pgd", "pgd_run", "pgd_snapshots", "sign_pgd", "stage1"]
