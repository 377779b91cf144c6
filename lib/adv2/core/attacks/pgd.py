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

from adv2.core.attacks.common import device_of, linf_box, project
from adv2.core.attacks.config import AttackConfig
from adv2.core.attacks.losses import prediction_loss
from adv2.core.attacks.schedule import STAGE1_CONFIDENCE, check_schedule, step_sizes
from adv2.core.metrics import target_confidence
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
    alphas: Sequence[float] | None = None,
    check_every: int = 5,
    recorder=None,
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """``steps`` PGD steps on one batch from ``x`` (ball around ``x0``); returns the last iterate
    and the iterates after each step count in ``snapshots``.

    ``schedule="fast"``: step ``i`` has size ``alphas[i]`` and each image stops once it is
    classified as the target (see :mod:`adv2.core.attacks.schedule`); ``recorder.tick(x)`` (if given)
    sees the iterate after every step."""
    lo, hi = linf_box(x0, epsilon)
    x = project(x.detach(), lo, hi)
    saved: dict[int, torch.Tensor] = {}
    if 0 in snapshots:
        saved[0] = x
    if schedule == "fast" or recorder is not None:
        return _pgd_fast(
            model,
            target,
            x,
            lo,
            hi,
            alphas or [step_size] * steps,
            loss,
            bar,
            snapshots,
            saved,
            early_stop=schedule == "fast",
            check_every=check_every,
            recorder=recorder,
        )[:2]
    for i in range(steps):
        x.requires_grad_(True)
        logits = fp32_forward(model, x)  # bf16 on CUDA; the loss in fp32
        (grad,) = torch.autograd.grad(prediction_loss(loss, logits, target), x)
        x = project(x.detach() - step_size * grad.sign(), lo, hi)
        if i + 1 in snapshots:
            saved[i + 1] = x
        if bar is not None:
            bar.update(1)
    return x, saved


def _pgd_fast(
    model,
    target,
    x,
    lo,
    hi,
    alphas,
    loss,
    bar,
    snapshots,
    saved,
    *,
    early_stop,
    check_every,
    recorder,
    stop_confidence=0.0,
):
    """PGD with per-step sizes and per-image early stopping on the still-active images (an image
    stops at the target with p(target) >= ``stop_confidence``); returns ``(x, saved, steps run)``."""
    n, steps = len(x), len(alphas)
    done = torch.zeros(n, dtype=torch.bool, device=x.device)
    idx = torch.arange(n, device=x.device)
    shape = (-1,) + (1,) * (x.dim() - 1)
    taken = 0
    for i in range(steps):
        if early_stop and i and i % check_every == 0:
            idx = (~done).nonzero().view(-1)  # the fast loop's only host synchronisation
            if len(idx) == 0:
                break
        xa = x[idx].requires_grad_(True)
        ta = target[idx]
        logits = fp32_forward(model, xa)  # bf16 on CUDA; the loss and the stop test in fp32
        (grad,) = torch.autograd.grad(prediction_loss(loss, logits, ta), xa)
        with torch.no_grad():
            move = torch.ones(len(idx), dtype=torch.bool, device=x.device)
            if early_stop:  # an image at the target keeps this iterate
                hit = logits.argmax(1) == ta
                if stop_confidence > 0:
                    hit = hit & (target_confidence(logits, ta) >= stop_confidence)
                done[idx] = done[idx] | hit
                move = ~done[idx]
            step = alphas[i] * grad.sign() * move.view(shape).to(grad.dtype)
            x = x.index_copy(0, idx, project(xa.detach() - step, lo[idx], hi[idx]))
        taken = i + 1
        if taken in snapshots:
            saved[taken] = x
        if recorder is not None:
            recorder.tick(x)
        if bar is not None:
            bar.update(1)
    for s in snapshots:  # stopped early: later snapshots are the final iterate
        if s > taken:
            saved[s] = x
    if bar is not None and taken < steps:
        bar.update(steps - taken)
    return x, saved, taken


def stage1(
    model: nn.Module, x0: torch.Tensor, target: torch.Tensor, cfg: AttackConfig, bar=None, recorder=None
) -> tuple[torch.Tensor, int]:
    """The prediction-only warm start of every variant: ``cfg.stage1_steps`` PGD steps on
    ``cfg.stage1_loss`` from ``x0``; returns the iterate and the steps run. The fast schedule
    decays the step size and stops each image once it is at the target with p(target) >=
    :data:`~adv2.core.attacks.schedule.STAGE1_CONFIDENCE` (margin for the joint stage to spend)."""
    if cfg.schedule == "authors" and recorder is None:
        x, _ = pgd_run(
            model, x0, target, x0, cfg.epsilon, cfg.step_size, cfg.stage1_steps, cfg.stage1_loss, bar
        )
        return x, cfg.stage1_steps
    lo, hi = linf_box(x0, cfg.epsilon)
    alphas = step_sizes(cfg.step_size, cfg.stage1_steps, cfg.schedule, cfg.fast_step_start, cfg.fast_step_end)
    x, _, taken = _pgd_fast(
        model,
        target,
        project(x0.detach(), lo, hi),
        lo,
        hi,
        alphas,
        cfg.stage1_loss,
        bar,
        (),
        {},
        early_stop=cfg.schedule == "fast",
        check_every=cfg.check_every,
        recorder=recorder,
        stop_confidence=STAGE1_CONFIDENCE,
    )
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
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    epsilon: float = 0.031,
    step_size: float = 1 / 255,
    steps: int = 1200,
    loss: str = "ce",
    x_start: torch.Tensor | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    desc: str = "pgd",
    schedule: str = "authors",
) -> torch.Tensor:
    """Targeted L-inf PGD towards ``target`` (the authors' baseline, paper-method 3.4).

    ``steps`` sign steps of size ``step_size`` on the summed cross-entropy (or the logit margin,
    ``loss="margin"``), each followed by projection onto ``B_eps(x) ∩ [0,1]``; no random start, no
    early stop (``schedule="fast"``: each image stops once it is classified as the target, steps
    of constant size ``step_size``). ``x_start`` continues from an earlier iterate (same ball around ``x``). The whole
    batch is one tensor (``batch_size`` chunks it if memory demands); returns ``x_adv`` on the
    model's device.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps!r}")
    return pgd_snapshots(
        model,
        x,
        target,
        [steps],
        epsilon=epsilon,
        step_size=step_size,
        loss=loss,
        x_start=x_start,
        batch_size=batch_size,
        progress=progress,
        desc=desc,
        schedule=schedule,
    )[steps]


__all__ = ["pgd", "pgd_run", "pgd_snapshots", "stage1"]
