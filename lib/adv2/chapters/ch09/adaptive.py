"""The adaptive attacker: ADV2 against the whole ensemble at once, and a variant that also pushes
the detector's score down.

The ensemble's map is the stack of the maps of the interpreters in the loss (``loss_interpreters``,
all four by default), each resized to one grid and differentiated as chapter 3 attacks it: Grad
through its smooth-ReLU surrogate; CAM and RTS as they are; MASK, whose map is an optimisation,
through the bilevel attack's running mask (:class:`adv2.core.attacks.WarmMask`: MASK solved at the
joint stage's first input, then at every step ``track_steps`` Adam steps at the current input and
``unroll_steps`` unrolled ones whose graph reaches the input, the authors' 4 and 4 of
:class:`adv2.core.attacks.MaskConfig`). The map loss is the mean squared error over that stack:
each of the K interpreters' squared error on the common grid with weight 1/K (:func:`weights`), so
each gets the weight chapter 3's CAM and RTS attacks give their own map (its lambda schedule
5 -> 10 on a mean squared error). The detector-aware variant adds ``detector_weight`` times the
disagreement of the K normalised maps (:func:`adv2.chapters.ch09.ensemble.disagreement`) to the map
loss. The inputs are scored with all four true maps whichever are in the loss.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
import torch.nn.functional as F

from adv2.chapters.ch09.ensemble import disagreement, on_grid
from adv2.core import attacks
from adv2.core.attacks.config import GradConfig
from adv2.core.attacks.losses import StatefulMapFn, squared_error
from adv2.core.interpreters.base import HasAttackSurrogate, Interpreter, attack_style
from adv2.core.phrases import INTERPRETER_LABELS

LOSS_INTERPRETERS = ("grad", "cam", "rts", "mask")  # the interpreters the ensemble's loss can hold


def weights(names: Sequence[str]) -> dict[str, float]:
    """Each interpreter's weight in the map loss: 1/K for K interpreters (the stack's mean)."""
    return {n: 1 / len(names) for n in names}


def check_loss_interpreters(names: Sequence[str], ensemble: Sequence[str]) -> list[str]:
    """The interpreters of ``ensemble`` that the loss holds, in the ensemble's order; a clear error
    for a name outside :data:`LOSS_INTERPRETERS` or fewer than two in common (the detector's term
    compares maps: it needs two)."""
    unknown = [n for n in names if n not in LOSS_INTERPRETERS]
    if unknown:
        raise ValueError(
            f"adaptive_interpreters holds {unknown}; valid choices: {', '.join(LOSS_INTERPRETERS)}"
        )
    chosen = [n for n in ensemble if n in names]
    if len(chosen) < 2:
        raise ValueError(
            f"adaptive_interpreters {list(names)} shares {chosen} with the ensemble {list(ensemble)}; "
            "the adaptive attack needs at least two of the ensemble's interpreters in its loss"
        )
    return chosen


class _Stack:
    """Maps of several interpreters resized to ``side`` and stacked, ``(N, K, S, S)``; the stateful
    ones (MASK's running mask) hear the attack's reset and select."""

    def __init__(self, interps: Mapping[str, Any], side: int, create_graph: bool):
        self.interps, self.side, self.create_graph = dict(interps), side, create_graph
        self.stateful = [i for i in self.interps.values() if isinstance(i, StatefulMapFn)]

    def __call__(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        maps = []
        for interp in self.interps.values():
            m = interp(x, target, create_graph=self.create_graph).float()
            if m.shape[-1] != self.side:
                m = F.interpolate(m, size=(self.side,) * 2, mode="bilinear", align_corners=False)
            maps.append(m)
        out = torch.cat(maps, 1)
        return out if self.create_graph else out.detach()

    def reset(self, n: int) -> None:
        for i in self.stateful:
            i.reset(n)

    def select(self, index: slice | torch.Tensor) -> None:
        for i in self.stateful:
            i.select(index)


class EnsembleMap:
    """The ensemble as one interpreter: ``ens(x, t)`` is ``(N, K, S, S)``, the true maps of ``parts``
    resized to ``side``; :attr:`differentiable` the same through each interpreter's attack surrogate
    (Grad's smooth-ReLU copy; MASK's running mask on ``mask_config``'s inner schedule, default
    :class:`~adv2.core.attacks.MaskConfig`'s), with the graph kept: the attack's stateful
    ``map_fn``."""

    name = "ensemble"
    attack_style = "differentiable"

    def __init__(
        self,
        parts: Mapping[str, Interpreter],
        side: int,
        tau: float = GradConfig.tau,
        mask_config: attacks.MaskConfig | None = None,
    ):
        if not parts:
            raise ValueError("the ensemble needs at least one interpreter")
        self.parts = dict(parts)
        self.map_size = side
        mask_config = mask_config or attacks.MaskConfig()
        self.surrogates = {n: self._surrogate(i, tau, mask_config) for n, i in self.parts.items()}
        self._true = _Stack(self.parts, side, False)
        self.differentiable = _Stack(self.surrogates, side, True)

    @staticmethod
    def _surrogate(interp: Interpreter, tau: float, mask_config: attacks.MaskConfig) -> Any:
        if attack_style(interp) == "bilevel":
            return attacks.WarmMask(interp, mask_config)
        return interp.attack_surrogate(tau) if isinstance(interp, HasAttackSurrogate) else interp

    def __call__(self, x: torch.Tensor, target: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        return (self.differentiable if create_graph else self._true)(x, target)

    attribute = __call__


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
    weights: dict[str, float]  # each interpreter's weight in the map loss
    mask_steps: tuple[int, int] | None  # MASK's tracking and unrolled Adam steps per step (in the loss)


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
    loss_interpreters: Sequence[str] = LOSS_INTERPRETERS,
    mask_config: attacks.MaskConfig | None = None,
    batch_size: int,
    progress: bool = False,
) -> AdaptiveRun:
    """ADV2 against the interpreters of ``interpreters`` named in ``loss_interpreters`` together,
    on ``cfg``'s schedule and budget (chapter 3's CAM attack: same epsilon, steps and lambda);
    MASK's running mask on ``mask_config``'s inner schedule."""
    names = check_loss_interpreters(loss_interpreters, list(interpreters))
    mask_config = mask_config or attacks.MaskConfig()
    ens = EnsembleMap({n: interpreters[n] for n in names}, side, mask_config=mask_config)
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
        weights(names),
        (mask_config.track_steps, mask_config.unroll_steps) if "mask" in names else None,
    )


def loss_words(run: AdaptiveRun) -> str:
    """The map loss in words: its interpreters and weights, and how MASK enters it."""
    names = [INTERPRETER_LABELS.get(n, n) for n in run.weights]
    listed = ", ".join(names[:-1]) + f" and {names[-1]}"
    shares = sorted({str(Fraction(w).limit_denominator(1000)) for w in run.weights.values()})
    out = f"{listed}, weight {shares[0]} each" if len(shares) == 1 else f"{listed}, weights {run.weights}"
    if run.mask_steps is None:
        return out + "; MASK is not in the loss (adaptive_interpreters), it only sees the inputs"
    track, unroll = run.mask_steps
    authors = attacks.MaskConfig()
    return (
        out + f"; MASK through its running mask, {track} tracking and {unroll} unrolled Adam steps at "
        f"every attack step (the authors' bilevel attack: {authors.track_steps} and {authors.unroll_steps})"
    )


__all__ = [
    "LOSS_INTERPRETERS",
    "AdaptiveRun",
    "EnsembleMap",
    "attack",
    "check_loss_interpreters",
    "ensemble_loss",
    "loss_words",
    "weights",
]
