"""Targeted L-inf PGD (paper-method 3.4): the authors' baseline and every ADV2 variant's stage 1.

``x <- clip_{B_eps(x0) ∩ [0,1]}(x - alpha sign(grad loss))``, no random start, no early stop; the
whole batch is one tensor and nothing synchronises with the host inside the step loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from ..progress import progress_bar
from ..tensors import batch_slices
from .common import device_of, linf_box, project
from .losses import prediction_loss


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
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """``steps`` PGD steps on one batch from ``x`` (ball around ``x0``); returns the last iterate
    and the iterates after each step count in ``snapshots``."""
    lo, hi = linf_box(x0, epsilon)
    x = project(x.detach(), lo, hi)
    saved: dict[int, torch.Tensor] = {}
    if 0 in snapshots:
        saved[0] = x
    for i in range(steps):
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(prediction_loss(loss, model(x), target), x)
        x = project(x.detach() - step_size * grad.sign(), lo, hi)
        if i + 1 in snapshots:
            saved[i + 1] = x
        if bar is not None:
            bar.update(1)
    return x, saved


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
) -> dict[int, torch.Tensor]:
    """One PGD run, returning the iterate after each number of steps in ``steps``.

    PGD is deterministic, so ``pgd_snapshots(..., [300, 400, 1200])`` gives the warm starts of the
    Grad/RTS (300) and CAM (400) ADV2 attacks and the 1200-step baseline in one pass.
    """
    wanted = sorted({int(s) for s in steps})
    if not wanted or wanted[0] < 0:
        raise ValueError(f"steps must be non-negative step counts, got {steps!r}")
    device = device_of(model, x)
    out: dict[int, list[torch.Tensor]] = {s: [] for s in wanted}
    chunks = batch_slices(len(x), batch_size)
    bar = progress_bar(total=wanted[-1] * len(chunks), desc=desc, enabled=progress)
    for sl in chunks:
        x0 = x[sl].to(device)
        start = x0 if x_start is None else x_start[sl].to(device)
        _, saved = pgd_run(
            model, x0, target[sl].to(device), start, epsilon, step_size, wanted[-1], loss, bar, wanted
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
) -> torch.Tensor:
    """Targeted L-inf PGD towards ``target`` (the authors' baseline, paper-method 3.4).

    ``steps`` sign steps of size ``step_size`` on the summed cross-entropy (or the logit margin,
    ``loss="margin"``), each followed by projection onto ``B_eps(x) ∩ [0,1]``; no random start, no
    early stop. ``x_start`` continues from an earlier iterate (same ball around ``x``). The whole
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
    )[steps]


__all__ = ["pgd", "pgd_run", "pgd_snapshots"]
