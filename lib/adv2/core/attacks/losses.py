"""Losses of the attacks: prediction losses (CE, logit margin) and the map-distance loss."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F

MapFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
InterpLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@runtime_checkable
class StatefulMapFn(Protocol):
    """A ``map_fn`` that keeps state along an attack (MASK's running mask,
    :class:`adv2.core.attacks.mask.WarmMask`). The sign-step attack calls ``reset(n)`` before each
    batch of ``n`` images and, before each call, ``select(index)`` with the batch's images that the
    call holds (``slice(None)``: all; a tensor of indices once images stopped early)."""

    def __call__(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor: ...

    def reset(self, n: int) -> None: ...

    def select(self, index: slice | torch.Tensor) -> None: ...


def margin_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample logit margin ``max_{j != t} z_j - z_t`` (negative once the target wins)."""
    z_t = logits.gather(1, target.view(-1, 1)).view(-1)
    others = logits.scatter(1, target.view(-1, 1), float("-inf"))
    return others.max(1).values - z_t


def squared_error(reduction: str = "mean") -> InterpLoss:
    """Per-sample squared error between maps, mean- or sum-reduced over cells."""

    def loss(maps: torch.Tensor, benign: torch.Tensor) -> torch.Tensor:
        d = (maps - benign).pow(2).flatten(1)
        return d.mean(1) if reduction == "mean" else d.sum(1)

    return loss


def prediction_loss(kind: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Batch-summed stage-1 loss: ``"ce"`` (cross-entropy) or ``"margin"`` (:func:`margin_loss`)."""
    if kind == "margin":
        return margin_loss(logits, target).sum()
    return F.cross_entropy(logits, target, reduction="sum")


__all__ = ["InterpLoss", "MapFn", "StatefulMapFn", "margin_loss", "prediction_loss", "squared_error"]
