"""One setting's defence, end to end: the ensemble's scores of the clean, PGD, ADV2 and adaptive
inputs and of separate benign (calibration) images, the detector's AUC and rates, and the
Rieger-Hansen averaged map's shift (:class:`Defense`, made by :func:`defend`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from adv2.chapters.ch09 import detector, ensemble
from adv2.chapters.ch09.sources import Sources
from adv2.chapters.ch09.transfer import PGD, Evaluation
from adv2.core.interpreters.base import Interpreter
from adv2.core.seed_stats import mean_ci_seeds, rate_ci_seeds, ratio_ci_seeds
from adv2.core.stats import Estimate

BENIGN = "benign"


@dataclass
class Defense:
    """``scores[a]``: the disagreement of every attacked image's maps (``"benign"``: the clean
    images; attacks ``a``: their inputs, for the predicted class); ``calibration``: the scores of
    the separate benign images; ``threshold``: the score at ``target_fpr`` on them;
    ``avg_shift[a]``: per image, L1 of the averaged map of the attack's input (target class) to the
    clean image's (true class)."""

    setting: str
    scores: dict[str, np.ndarray]
    success: dict[str, np.ndarray]
    calibration: np.ndarray
    target_fpr: float
    threshold: float
    avg_shift: dict[str, np.ndarray]
    own_shift: dict[str, np.ndarray] = field(default_factory=dict)
    # issue 27: the same defence on further training seeds' models (same images, each seed its own
    # threshold); the estimates below pool them, the ROC curves and the threshold stay this seed's
    more_seeds: list[Defense] = field(default_factory=list)

    @property
    def attacks(self) -> list[str]:
        return [a for a in self.scores if a != BENIGN]

    @property
    def seeds(self) -> list[Defense]:
        """This seed's defence and each further seed's, in order."""
        return [self, *self.more_seeds]

    def auc(self) -> dict[str, Estimate]:
        """Detector AUC [95 % interval] per attack (benign: the same images before the attack)."""
        return {
            a: detector.auc_ci_seeds(
                [d.scores[BENIGN] for d in self.seeds],
                [d.scores[a] for d in self.seeds],
                [d.success[a] for d in self.seeds],
            )
            for a in self.attacks
        }

    def roc(self) -> dict[str, tuple[list[float], list[float]]]:
        return {
            a: detector.roc_curve(self.scores[BENIGN], self.scores[a][self.success[a]]) for a in self.attacks
        }

    def _flagged(self, a: str) -> Estimate:
        """Share of ``a``'s inputs (``"benign"``: the held-out clean images; an attack: its
        successful inputs) flagged at each seed's calibration threshold, pooled over seeds."""
        if not self.more_seeds:  # one seed: the image-only interval as ever
            return detector.flagged(self.scores[a], self.threshold, None if a == BENIGN else self.success[a])
        return rate_ci_seeds([np.where(d.success[a], d.scores[a] > d.threshold, np.nan) for d in self.seeds])

    def false_positive_rate(self) -> Estimate:
        """Share of the held-out clean images flagged at the calibration threshold."""
        return self._flagged(BENIGN)

    def detection_rate(self) -> dict[str, Estimate]:
        """Share of each attack's successful inputs flagged at the calibration threshold."""
        return {a: self._flagged(a) for a in self.attacks}

    def mean_scores(self) -> dict[str, Estimate]:
        out = {
            BENIGN: mean_ci_seeds([d.scores[BENIGN] for d in self.seeds]),
            "calibration": mean_ci_seeds([d.calibration for d in self.seeds]),
        }
        for a in self.attacks:
            out[a] = mean_ci_seeds([np.where(d.success[a], d.scores[a], np.nan) for d in self.seeds])
        return out

    def average_map_shift(self) -> dict[str, dict[str, Estimate]]:
        """Per attack: the averaged map's mean shift (over successes; PGD over all images) and its
        ratio to PGD's (paired bootstrap); for ADV2 against S also S's own normalised map's shift."""
        pgd = [d.avg_shift[PGD] for d in self.seeds]
        out = {}
        for a in self.attacks:
            ok = [np.ones_like(d.success[a]) if a == PGD else d.success[a] for d in self.seeds]
            v = [np.where(k, d.avg_shift[a], np.nan) for d, k in zip(self.seeds, ok)]
            out[a] = {"shift": mean_ci_seeds(v), "ratio_to_pgd": ratio_ci_seeds(v, pgd)}
            if a in self.own_shift:
                own = [np.where(k, d.own_shift[a], np.nan) for d, k in zip(self.seeds, ok)]
                out[a]["own_map_shift"] = mean_ci_seeds(own)
        return out


def _score(maps: Mapping[str, torch.Tensor], side: int) -> np.ndarray:
    return ensemble.disagreement(ensemble.on_grid(maps, side)).numpy()


def calibration_scores(
    model: torch.nn.Module,
    interpreters: Mapping[str, Interpreter],
    x: torch.Tensor,
    *,
    side: int,
    batch_size: int,
    device: Any,
) -> np.ndarray:
    """The detector's scores of benign images the attacks never touched (maps for the predicted
    class: no label needed)."""
    if len(x) == 0:
        raise ValueError(
            "no calibration images: the detector's threshold needs benign images apart from the attacked ones"
        )
    pred = ensemble.predicted(model, x, batch_size, device)
    return _score(ensemble.maps_of(interpreters, x, pred, batch_size=batch_size, device=device), side)


def defend(ev: Evaluation, src: Sources, calibration: np.ndarray, target_fpr: float) -> Defense:
    """The detector and the averaged map on one setting's evaluated maps."""
    side = ensemble.grid_side(ev.benign)
    benign_grid = ensemble.on_grid(ev.benign, side)
    scores = {BENIGN: ensemble.disagreement(benign_grid).numpy()}
    success = {BENIGN: np.ones(src.n, bool)}
    avg_benign = ensemble.average_map(benign_grid)
    avg_shift, own_shift = {}, {}
    for a in ev.attacks:
        scores[a] = _score(ev.at_pred[a], side)
        success[a] = ev.success[a].numpy().astype(bool)
        target_grid = ensemble.on_grid(ev.at_target[a], side)
        avg_shift[a] = ensemble.shift(ensemble.average_map(target_grid), avg_benign).numpy()
        if a in ev.names:  # S's own normalised map: what the attacker optimised
            k = ev.names.index(a)
            own_shift[a] = ensemble.shift(target_grid[:, k], benign_grid[:, k]).numpy()
    threshold = detector.threshold_at(calibration, target_fpr)
    return Defense(
        src.setting, scores, success, np.asarray(calibration), target_fpr, threshold, avg_shift, own_shift
    )


__all__ = ["BENIGN", "Defense", "calibration_scores", "defend"]
