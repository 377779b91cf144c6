"""The transfer matrix: ADV2's inputs crafted against a source interpreter S, seen through every
target interpreter T (L1 of T's map to T's benign map), beside PGD's, with 95 % intervals per cell
and a verdict per off-diagonal cell (:func:`adv2.chapters.claim_rules.adv2_does_not_transfer`).

Conventions are chapter 3's: T's map of an adversarial input is for the attack's target class, the
benign map for the true class, L1 at T's native resolution; a cell of ADV2 averages over the
images where ADV2 against S succeeded (as chapter 3 counts success), PGD's row over all images.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from adv2.chapters import claim_rules
from adv2.chapters.ch09.ensemble import maps_for_two_classes, maps_of, predicted
from adv2.chapters.ch09.sources import Sources
from adv2.chapters.claims import Verdict
from adv2.core import metrics
from adv2.core.interpreters.base import Interpreter
from adv2.core.progress import progress_bar
from adv2.core.seed_stats import mean_ci_seeds, one_or_by_seed
from adv2.core.stats import Estimate

PGD = "pgd"


@dataclass
class Evaluation:
    """Every interpreter's maps of one setting's inputs.

    ``benign[T]``: T's maps of the clean images for their true (= predicted) class; for each attack
    ``a`` (``"pgd"`` or a source interpreter): ``at_target[a][T]`` T's maps of its inputs for the
    target class (the matrix), ``at_pred[a][T]`` for the predicted class (the detector), ``pred[a]``
    the predicted classes, ``success[a]`` the attack's success flags (PGD: argmax is the target)."""

    names: list[str]
    benign: dict[str, torch.Tensor]
    at_target: dict[str, dict[str, torch.Tensor]]
    at_pred: dict[str, dict[str, torch.Tensor]]
    pred: dict[str, torch.Tensor]
    success: dict[str, torch.Tensor]
    seconds: float
    extra: list[str] = field(default_factory=list)  # attacks beyond the matrix (the adaptive ones)
    attempted: dict[str, int] = field(default_factory=dict)  # an extra attack ran on its first n images
    # issue 27: the same evaluation on further training seeds' models, on the same images; the
    # matrix and the cells' verdicts pool them (the figures and the maps stay this seed's)
    more_seeds: list[Evaluation] = field(default_factory=list)

    @property
    def attacks(self) -> list[str]:
        return [PGD, *self.names, *self.extra]


def evaluate(
    model: torch.nn.Module,
    interpreters: Mapping[str, Interpreter],
    src: Sources,
    *,
    batch_size: int,
    device: Any,
    progress: bool = False,
) -> Evaluation:
    """All maps the matrix and the detector need: 4 interpreters x (clean, PGD, ADV2 per source)."""
    t0 = time.time()
    names = list(interpreters)
    missing = [n for n in names if n not in src.x_adv]
    if missing:
        raise ValueError(f"no ADV2 inputs against {missing}: gather chapter 3's attacks on them first")
    benign = maps_of(interpreters, src.x, src.y, batch_size=batch_size, device=device)
    inputs = {PGD: src.x_pgd, **{s: src.x_adv[s] for s in names}}
    at_target, at_pred, pred, success = {}, {}, {}, {}
    bar = progress_bar(total=len(inputs), desc="maps of the adversarial inputs", enabled=progress)
    for a, x in inputs.items():
        pred[a] = predicted(model, x, batch_size, device)
        at_pred[a], at_target[a] = maps_for_two_classes(
            interpreters, x, pred[a], src.target, batch_size=batch_size, device=device
        )
        success[a] = (pred[a] == src.target) if a == PGD else src.success[a]
        bar.update(1)
    bar.close()
    return Evaluation(names, benign, at_target, at_pred, pred, success, time.time() - t0)


def add_attack(
    ev: Evaluation,
    name: str,
    model: torch.nn.Module,
    interpreters: Mapping[str, Interpreter],
    x_adv: torch.Tensor,
    target: torch.Tensor,
    success: torch.Tensor,
    *,
    y: torch.Tensor,
    batch_size: int,
    device: Any,
) -> None:
    """Every interpreter's maps of another attack's inputs, added to ``ev``. The attack may have run
    on the first ``len(x_adv)`` images only: the others count as not attacked (no success; their
    maps are the clean images', which no statistic over successes reads)."""
    t0 = time.time()
    k, n = len(x_adv), len(target)
    pred = predicted(model, x_adv, batch_size, device)
    at_pred, at_target = maps_for_two_classes(
        interpreters, x_adv, pred, target[:k], batch_size=batch_size, device=device
    )
    ev.pred[name] = torch.cat([pred, y[k:].cpu()])
    ev.at_pred[name] = {t: torch.cat([m, ev.benign[t][k:]]) for t, m in at_pred.items()}
    ev.at_target[name] = {t: torch.cat([m, ev.benign[t][k:]]) for t, m in at_target.items()}
    ev.success[name] = torch.cat([success.bool().cpu(), torch.zeros(n - k, dtype=torch.bool)])
    ev.attempted[name] = k
    if name not in ev.extra:
        ev.extra.append(name)
    ev.seconds += time.time() - t0


def l1_arrays(ev: Evaluation) -> dict[str, dict[str, np.ndarray]]:
    """``{attack: {T: per-image L1 of T's target-class map to T's benign map}}`` (every image)."""
    return {
        a: {t: metrics.l1_distance(ev.at_target[a][t], ev.benign[t]).numpy() for t in ev.names}
        for a in ev.attacks
    }


def _over_successes(values: np.ndarray, ok: torch.Tensor) -> np.ndarray:
    return np.where(ok.numpy().astype(bool), values, np.nan)


def l1_by_seed(ev: Evaluation) -> dict[str, dict[str, list[np.ndarray]]]:
    """``{attack: {T: [per-image L1 over the attack's successes (PGD: all images), per training
    seed]}}`` (``ev``'s seed first): what the pooled means take."""
    evs = [ev, *ev.more_seeds]
    l1s = [l1_arrays(e) for e in evs]
    return {
        a: {
            t: [l1[a][t] if a == PGD else _over_successes(l1[a][t], e.success[a]) for e, l1 in zip(evs, l1s)]
            for t in ev.names
        }
        for a in ev.attacks
    }


def matrix(ev: Evaluation) -> dict[str, dict[str, Estimate]]:
    """``{row: {T: mean L1 [95 % interval]}}``: rows ``"pgd"`` (all images) and each source S
    (over ADV2-S's successes); the diagonal (S = T) is chapter 3's own attack. With further
    training seeds: pooled over seeds and images (one seed: :func:`adv2.core.stats.mean_ci`)."""
    l1 = l1_by_seed(ev)
    return {a: {t: mean_ci_seeds(l1[a][t]) for t in ev.names} for a in (PGD, *ev.names)}


def ratio_to_pgd(ev: Evaluation) -> dict[str, dict[str, float]]:
    """Each ADV2 cell's mean L1 over PGD's in the same column (1: as far as PGD)."""
    est = matrix(ev)
    out = {}
    for s in ev.names:
        out[s] = {}
        for t in ev.names:
            v, p = est[s][t].value, est[PGD][t].value
            out[s][t] = float("nan") if v is None or not p else v / p
    return out


def cell_verdicts(ev: Evaluation) -> dict[str, Verdict]:
    """``{"S→T": verdict}`` for every off-diagonal cell: does ADV2 against S leave T's map nearer
    PGD's than T's own attack (claim ``adv2_does_not_transfer``)? With further training seeds the
    claim rule pools them (:class:`adv2.core.seed_stats.BySeed`)."""
    evs = [ev, *ev.more_seeds]
    l1s = [l1_arrays(e) for e in evs]
    out = {}
    for s in ev.names:
        for t in ev.names:
            if s == t:
                continue
            out[f"{s}→{t}"] = claim_rules.adv2_does_not_transfer(
                one_or_by_seed([l1[s][t] for l1 in l1s]), one_or_by_seed([e.success[s] for e in evs]),
                one_or_by_seed([l1[t][t] for l1 in l1s]), one_or_by_seed([e.success[t] for e in evs]),
                one_or_by_seed([l1[PGD][t] for l1 in l1s]),
            )  # fmt: skip
    return out


__all__ = [
    "PGD",
    "Evaluation",
    "add_attack",
    "cell_verdicts",
    "evaluate",
    "l1_arrays",
    "l1_by_seed",
    "matrix",
    "ratio_to_pgd",
]
