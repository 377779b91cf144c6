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
from adv2.core.stats import Estimate, mean_ci, ratio_ci

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

    @property
    def attacks(self) -> list[str]:
        return [a for a in self.scores if a != BENIGN]

    def auc(self) -> dict[str, Estimate]:
        """Detector AUC [95 % interval] per attack (benign: the same images before the attack)."""
        return {
            a: detector.auc_ci(self.scores[BENIGN], self.scores[a], self.success[a]) for a in self.attacks
        }

    def roc(self) -> dict[str, tuple[list[float], list[float]]]:
        return {
            a: detector.roc_curve(self.scores[BENIGN], self.scores[a][self.success[a]]) for a in self.attacks
        }

    def false_positive_rate(self) -> Estimate:
        """Share of the held-out clean images flagged at the calibration threshold."""
        return detector.flagged(self.scores[BENIGN], self.threshold)

    def detection_rate(self) -> dict[str, Estimate]:
        """Share of each attack's successful inputs flagged at the calibration threshold."""
        return {a: detector.flagged(self.scores[a], self.threshold, self.success[a]) for a in self.attacks}

    def mean_scores(self) -> dict[str, Estimate]:
        out = {BENIGN: mean_ci(self.scores[BENIGN]), "calibration": mean_ci(self.calibration)}
        for a in self.attacks:
            out[a] = mean_ci(np.where(self.success[a], self.scores[a], np.nan))
        return out

    def average_map_shift(self) -> dict[str, dict[str, Estimate]]:
        """Per attack: the averaged map's mean shift (over successes; PGD over all images) and its
        ratio to PGD's (paired bootstrap); for ADV2 against S also S's own normalised map's shift."""
        pgd = self.avg_shift[PGD]
        out = {}
        for a in self.attacks:
            ok = np.ones_like(self.success[a]) if a == PGD else self.success[a]
            v = np.where(ok, self.avg_shift[a], np.nan)
            out[a] = {"shift": mean_ci(v), "ratio_to_pgd": ratio_ci(v, pgd, paired=True)}
            if a in self.own_shift:
                out[a]["own_map_shift"] = mean_ci(np.where(ok, self.own_shift[a], np.nan))
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
