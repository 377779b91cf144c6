"""The ensemble detector: the disagreement of the four interpreters (:mod:`adv2.chapters.ch09.ensemble`)
as a score, read through ROC curves, their AUC with paired bootstrap intervals, and the rates at a
threshold chosen on separate benign images.

AUC is the Mann-Whitney probability that an adversarial input scores above a benign one (ties count
one half). Benign and adversarial inputs are the same images before and after the attack, so the
interval resamples images (one set of indices for both sides); an attack's failed images are left
out of its side, as chapter 3 leaves them out of ADV2's map distances.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adv2.core.seed_stats import widen
from adv2.core.stats import Estimate, as_vector, rate_ci

N_BOOT = 2000


def auc(negatives: Any, positives: Any) -> float:
    """P(score of a positive > score of a negative) + P(tie) / 2; NaN without both sides."""
    neg, pos = as_vector(negatives, "negatives"), as_vector(positives, "positives")
    neg, pos = neg[np.isfinite(neg)], pos[np.isfinite(pos)]
    if len(neg) == 0 or len(pos) == 0:
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def auc_ci(
    benign: Any,
    attacked: Any,
    success: Any | None = None,
    *,
    level: float = 0.95,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> Estimate:
    """AUC of ``attacked`` (positives, kept where ``success``) against ``benign`` (negatives), both
    one score per image of the same images, with a paired percentile-bootstrap interval over images.
    ``n``: the images; the interval is None with fewer than 2 positives or negatives."""
    b, a = as_vector(benign, "benign"), as_vector(attacked, "attacked")
    if len(b) != len(a):
        raise ValueError(
            f"benign and attacked scores must describe the same images, got {len(b)} and {len(a)}"
        )
    ok = np.ones(len(a), bool) if success is None else as_vector(success, "success").astype(bool)
    if len(ok) != len(a):
        raise ValueError(f"success has {len(ok)} flags for {len(a)} images")
    a = np.where(ok, a, np.nan)
    method = f"paired bootstrap AUC {round(100 * level)}%"
    value = auc(b, a)
    n = len(b)
    if not np.isfinite(value):
        return Estimate(None, None, None, n, method)
    if min(int(np.isfinite(b).sum()), int(np.isfinite(a).sum())) < 2:
        return Estimate(value, None, None, n, method)
    rng = np.random.default_rng(seed)
    stats = np.array([auc(b[i], a[i]) for i in rng.integers(0, n, size=(n_boot, n))])
    stats = stats[np.isfinite(stats)]
    tail = (1 - level) / 2
    low, high = np.quantile(stats, [tail, 1 - tail])
    return Estimate(value, float(low), float(high), n, method)


def auc_ci_seeds(
    benign_by_seed: list[Any], attacked_by_seed: list[Any], success_by_seed: list[Any], *, level: float = 0.95,
    n_boot: int = N_BOOT, seed: int = 0,
) -> Estimate:  # fmt: skip
    """:func:`auc_ci` over training seeds (issue 27), one array per seed, all of the same images:
    the mean of the seeds' AUCs (of those with one: a seed whose attack never succeeded has none),
    its paired bootstrap interval over images (one set of indices for every seed) widened by
    Student's t over the seeds' AUCs (:func:`adv2.core.seed_stats.widen`). One seed:
    :func:`auc_ci` exactly."""
    if len(benign_by_seed) == 1:
        return auc_ci(
            benign_by_seed[0], attacked_by_seed[0], success_by_seed[0], level=level, n_boot=n_boot, seed=seed
        )
    b = [as_vector(v, "benign") for v in benign_by_seed]
    a = [np.where(as_vector(ok, "success").astype(bool), as_vector(v, "attacked"), np.nan)
         for v, ok in zip(attacked_by_seed, success_by_seed)]  # fmt: skip
    n = len(b[0])
    if any(len(x) != n for x in (*b, *a)):
        raise ValueError("every training seed's benign and attacked scores must describe the same images")
    per_seed = [auc(bs, as_) for bs, as_ in zip(b, a)]
    method = f"paired bootstrap AUC {round(100 * level)}%"
    finite = [v for v in per_seed if np.isfinite(v)]
    if not finite:
        return widen(Estimate(None, None, None, n, method), per_seed, level, (0.0, 1.0))
    value = float(np.mean(finite))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    stats = np.array([[auc(bs[i], as_[i]) for bs, as_ in zip(b, a)] for i in idx])  # (resamples, seeds)
    has = np.isfinite(stats)  # a resample without both sides in a seed: that seed left out
    boots = np.where(has.any(1), np.where(has, stats, 0).sum(1) / np.maximum(has.sum(1), 1), np.nan)
    boots = boots[np.isfinite(boots)]
    tail = (1 - level) / 2
    low, high = np.quantile(boots, [tail, 1 - tail]) if len(boots) else (None, None)
    images = Estimate(
        value, None if low is None else float(low), None if high is None else float(high), n, method
    )
    return widen(images, per_seed, level, (0.0, 1.0))


def roc_curve(negatives: Any, positives: Any) -> tuple[list[float], list[float]]:
    """``(false-positive rates, true-positive rates)`` at every threshold, from (0, 0) to (1, 1)."""
    neg, pos = as_vector(negatives, "negatives"), as_vector(positives, "positives")
    neg, pos = neg[np.isfinite(neg)], pos[np.isfinite(pos)]
    if len(neg) == 0 or len(pos) == 0:
        return [0.0, 1.0], [0.0, 1.0]
    thresholds = np.unique(np.concatenate([neg, pos]))[::-1]
    fpr = [0.0] + [float((neg >= t).mean()) for t in thresholds]
    tpr = [0.0] + [float((pos >= t).mean()) for t in thresholds]
    return fpr, tpr


def threshold_at(calibration: Any, fpr: float) -> float:
    """The score above which at most a share ``fpr`` of the benign ``calibration`` scores lie (the
    detector flags a score strictly above it); ValueError without calibration scores."""
    if not 0 <= fpr < 1:
        raise ValueError(f"the target false-positive rate must be in [0, 1), got {fpr!r}")
    c = as_vector(calibration, "calibration")
    c = np.sort(c[np.isfinite(c)])
    if len(c) == 0:
        raise ValueError("no calibration scores: the threshold needs separate benign images")
    k = int(np.floor(fpr * len(c)))  # at most k of them may lie above the threshold
    return float(c[len(c) - 1 - k])


def flagged(scores: Any, threshold: float, success: Any | None = None) -> Estimate:
    """Share of ``scores`` strictly above ``threshold`` (only where ``success``), Wilson interval."""
    s = as_vector(scores, "scores")
    if success is not None:
        s = s[as_vector(success, "success").astype(bool)]
    return rate_ci(s > threshold)


__all__ = ["auc", "auc_ci", "auc_ci_seeds", "flagged", "roc_curve", "threshold_at"]
