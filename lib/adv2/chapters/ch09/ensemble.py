"""The four interpreters as one ensemble: their maps of a batch of inputs, put on one grid and
normalised, the ensemble's disagreement (the detector's score) and its averaged map (the
Rieger-Hansen explanation).

Normalisation: each interpreter's map (in [0, 1] at its native size: photos Grad and RTS 56x56,
MASK 28x28, CAM 7x7) is resized bilinearly to the largest native side and divided by its sum, so
that it says *where* the interpreter puts its attribution, not how much of it: Grad's maps are
sparse and CAM's broad on every input, and a score on raw maps would mostly measure that constant
difference. The disagreement is the mean over the six interpreter pairs of the L1 distance between
two such maps (total variation times two: 0 when they agree everywhere, 2 when they share no
cell). It needs no benign reference at test time: one input, four maps, one number.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from adv2.core.interpreters.base import Interpreter
from adv2.core.tensors import map_batches

EPS = 1e-8


def grid_side(maps: Mapping[str, torch.Tensor]) -> int:
    """The common grid: the largest native side among the maps."""
    return max(int(m.shape[-1]) for m in maps.values())


def on_grid(maps: Mapping[str, torch.Tensor], side: int | None = None) -> torch.Tensor:
    """``(N, K, side, side)``: each interpreter's map resized (bilinear) and divided by its sum
    (a flat map where a map is all zeros), in the order of ``maps``."""
    side = side or grid_side(maps)
    out = []
    for m in maps.values():
        m = m.float()
        if m.shape[-1] != side:
            m = F.interpolate(m, size=(side, side), mode="bilinear", align_corners=False)
        m = m.clamp_min(0).flatten(1)
        total = m.sum(1, keepdim=True)
        flat = torch.full_like(m, 1.0 / m.shape[1])
        m = torch.where(total > EPS, m / total.clamp_min(EPS), flat)
        out.append(m.view(-1, 1, side, side))
    return torch.cat(out, 1)


def disagreement(stack: torch.Tensor) -> torch.Tensor:
    """Per input: the mean pairwise L1 (summed over cells) between the ``K`` normalised maps of
    ``stack`` (``(N, K, S, S)``, from :func:`on_grid`); in [0, 2]. Differentiable."""
    k = stack.shape[1]
    if k < 2:
        raise ValueError(f"disagreement needs at least 2 interpreters, got {k}")
    flat = stack.flatten(2)
    pairs = [(flat[:, i] - flat[:, j]).abs().sum(1) for i, j in itertools.combinations(range(k), 2)]
    return torch.stack(pairs, 1).mean(1)


def average_map(stack: torch.Tensor) -> torch.Tensor:
    """The Rieger-Hansen explanation: the mean of the normalised maps, ``(N, 1, S, S)`` (sums to 1)."""
    return stack.mean(1, keepdim=True)


def shift(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per input: L1 (summed over cells) between two normalised maps; in [0, 2]."""
    return (a.float() - b.float()).abs().flatten(1).sum(1)


@torch.no_grad()
def predicted(model: torch.nn.Module, x: torch.Tensor, batch_size: int, device: Any) -> torch.Tensor:
    """The classifier's predicted class of each input (CPU)."""
    out = [model(x[i : i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


def maps_of(
    interpreters: Mapping[str, Interpreter],
    x: torch.Tensor,
    classes: torch.Tensor,
    *,
    batch_size: int,
    device: Any,
) -> dict[str, torch.Tensor]:
    """``{name: (N, 1, s, s)}``: every interpreter's map of ``x`` for ``classes`` (CPU, float)."""
    return {
        name: map_batches(interp, x, classes, batch_size=batch_size, device=device, to_cpu=True).float()
        for name, interp in interpreters.items()
    }


def maps_for_two_classes(
    interpreters: Mapping[str, Interpreter],
    x: torch.Tensor,
    first: torch.Tensor,
    second: torch.Tensor,
    *,
    batch_size: int,
    device: Any,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Maps of ``x`` for ``first`` and for ``second`` classes, computing the second only where the
    classes differ (a successful attack's predicted class is its target: one map serves both)."""
    a = maps_of(interpreters, x, first, batch_size=batch_size, device=device)
    differ = (first != second).nonzero().flatten()
    if len(differ) == 0:
        return a, {n: m.clone() for n, m in a.items()}
    extra = maps_of(interpreters, x[differ], second[differ], batch_size=batch_size, device=device)
    b = {}
    for n, m in a.items():
        b[n] = m.clone()
        b[n][differ] = extra[n]
    return a, b


__all__ = [
    "average_map",
    "disagreement",
    "grid_side",
    "maps_for_two_classes",
    "maps_of",
    "on_grid",
    "predicted",
    "shift",
]
