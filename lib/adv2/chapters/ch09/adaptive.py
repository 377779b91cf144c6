"""The adaptive attacker: ADV2 against the whole ensemble at once, and a variant that also pushes
the detector's score down.

The ensemble's map is the stack of the differentiable interpreters' maps (Grad through its
smooth-ReLU surrogate, as chapter 3 attacks it; CAM; RTS), each resized to one grid. The map loss
is the mean squared error over that stack: every interpreter's squared error on the common grid
with weight 1/K, so each gets the weight chapter 3's CAM and RTS attacks give their own map (its
lambda schedule 5 -> 10 on a mean squared error). MASK stays out of the loss: its map is an
optimisation that only the bilevel attack differentiates, whose unrolled steps cost more than the
other three together; the adaptive inputs are still shown to MASK and scored with all four maps.
The detector-aware variant adds ``detector_weight`` times the disagreement of the three normalised
maps (:func:`adv2.chapters.ch09.ensemble.disagreement`) to the map loss.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from adv2.chapters.ch09.ensemble import disagreement, on_grid
from adv2.core import attacks
from adv2.core.attacks.config import GradConfig
from adv2.core.attacks.losses import squared_error
from adv2.core.interpreters.base import HasAttackSurrogate, Interpreter

DIFFERENTIABLE = ("grad", "cam", "rts")  # the interpreters the sign-step attack can differentiate


class EnsembleMap:
    """The ensemble as one interpreter: ``ens(x, t)`` is ``(N, K, S, S)``, the maps of ``parts``
    resized to ``side`` (Grad: its true map); :meth:`differentiable` the same through each
    interpreter's attack surrogate (Grad's smooth-ReLU copy), with the graph kept."""

    name = "ensemble"
    attack_style = "differentiable"

    def __init__(self, parts: Mapping[str, Interpreter], side: int, tau: float = GradConfig.tau):
        if not parts:
            raise ValueError("the ensemble needs at least one differentiable interpreter")
        self.parts = dict(parts)
        self.map_size = side
        self.surrogates = {
            n: (i.attack_surrogate(tau) if isinstance(i, HasAttackSurrogate) else i)
            for n, i in self.parts.items()
        }

    def _stack(self, interps: Mapping[str, Any], x: torch.Tensor, t: torch.Tensor, create_graph: bool):
        maps = []
        for interp in interps.values():
            m = interp(x, t, create_graph=create_graph).float()
            if m.shape[-1] != self.map_size:
                m = F.interpolate(m, size=(self.map_size,) * 2, mode="bilinear", align_corners=False)
            maps.append(m)
        return torch.cat(maps, 1)

    def __call__(self, x: torch.Tensor, target: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        out = self._stack(self.parts, x, target, create_graph)
        return out if create_graph else out.detach()

    attribute = __call__

    def differentiable(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._stack(self.surrogates, x, target, True)


def ensemble_loss(detector_weight: float = 0.0):
    """Per input: the mean squared error over the stacked maps, plus ``detector_weight`` times the
    disagreement of the normalised maps (0: the plain ensemble attack)."""
    mse = squared_error("mean")

    def loss(maps: torch.Tensor, benign: torch.Tensor) -> torch.Tensor:
        out = mse(maps, benign)
        if detector_weight:
            stack = on_grid({i: maps[:, i : i + 1] for i in range(maps.shape[1])})
            out = out + detector_weight * disagreement(stack)
        return out

    return loss


@dataclass
class AdaptiveRun:
    """One adaptive attack: its inputs, success (argmax is the target), steps and seconds."""

    variant: str
    x_adv: torch.Tensor
    success: torch.Tensor
    steps: int
    seconds: float
    detector_weight: float


def attack(
    model: torch.nn.Module,
    interpreters: Mapping[str, Interpreter],
    x: torch.Tensor,
    y: torch.Tensor,
    target: torch.Tensor,
    cfg: attacks.ADV2Config,
    *,
    side: int,
    detector_weight: float = 0.0,
    batch_size: int,
    progress: bool = False,
) -> AdaptiveRun:
    """ADV2 against the differentiable interpreters of ``interpreters`` together, on ``cfg``'s
    schedule and budget (chapter 3's CAM attack: same epsilon, steps and lambda)."""
    parts = {n: i for n, i in interpreters.items() if n in DIFFERENTIABLE}
    ens = EnsembleMap(parts, side)
    cfg = dataclasses.replace(cfg, select_every=0) if getattr(cfg, "select_every", 0) else cfg
    variant = "ensemble + detector" if detector_weight else "ensemble"
    t0 = time.time()
    benign = torch.cat(
        [ens(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    )
    res = attacks.adv2_attack(
        model, ens, x, y, target, benign_maps=benign, config=cfg,
        interp_loss=ensemble_loss(detector_weight), map_fn=ens.differentiable,
        batch_size=batch_size, progress=progress, desc=f"ADV2 {variant}",
    )  # fmt: skip
    return AdaptiveRun(
        variant,
        res.x_adv.detach().cpu(),
        res.success.detach().cpu().bool(),
        cfg.stage1_steps + cfg.stage2_steps,
        time.time() - t0,
        detector_weight,
    )


__all__ = ["DIFFERENTIABLE", "AdaptiveRun", "EnsembleMap", "attack", "ensemble_loss"]
