"""Uncertainty of the book's headline numbers: intervals over images (shown by :mod:`adv2.core.formatting`).

Every rate and mean the book reports is computed over a few dozen images, so it carries an
:class:`Estimate`: the value, a 95 % interval and the number of images behind it.

* :func:`mean_ci` -- mean with a seeded percentile bootstrap over images;
* :func:`rate_ci` -- share of ``True`` flags with the Wilson score interval (exact enough at
  0/n and n/n, where a bootstrap collapses to a point);
* :func:`diff_ci` -- difference of two means (paired: per-image differences);
* :func:`rate_diff_ci` -- difference of two rates (Newcombe's interval from two Wilson intervals; Bonett and Price's when paired);
* :func:`ratio_ci` -- ratio of two means; ``paired=True`` resamples the same image indices for
  both, which is right when both numbers come from the same images (ADV2 vs PGD on one attack set);
* :func:`seeds_ci` -- mean over training seeds (one value per trained model) with Student's t
  interval: a handful of seeds is too few for a bootstrap;
* :mod:`adv2.core.seed_stats` -- the same estimators over several training seeds as well as images;
* :func:`images_needed` -- roughly how many images would make an interval narrow enough to decide
  against a threshold (for "inconclusive" verdicts);

Inputs are 1-D NumPy arrays, torch tensors or lists; NaNs are dropped and ``n`` counts what is left
(a per-image distance that exists only where an attack succeeded is passed with NaN elsewhere).
The bootstrap is vectorised and seeded (``numpy.random.Generator(seed)``): the same inputs give the
same interval on every machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from adv2.core.formatting import MISSING, fmt


# ----------------------------------------------------------------------------- the estimate
@dataclass(frozen=True)
class Estimate:
    """A number with its interval: ``value`` (None when nothing could be measured), ``low`` and
    ``high`` (None when ``n`` < 2 or the interval is undefined), ``n`` images behind it and the
    ``method`` that made the interval."""

    value: float | None
    low: float | None
    high: float | None
    n: int
    method: str

    @property
    def half_width(self) -> float | None:
        """Half the interval's width (None without an interval)."""
        if self.low is None or self.high is None:
            return None
        return (self.high - self.low) / 2

    @property
    def covers_seeds(self) -> bool:
        """Whether the interval covers training seeds as well as images (:mod:`adv2.core.seed_stats`
        names them in ``method``): its seeds part does not shrink with more images."""
        return "seeds" in self.method

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON: ``value``, ``low``, ``high``, ``n``, ``method``."""
        return {
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "n": int(self.n),
            "method": self.method,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Estimate:
        """Inverse of :meth:`as_dict` (reads a results file back)."""
        return cls(d.get("value"), d.get("low"), d.get("high"), int(d.get("n", 0)), str(d.get("method", "")))

    def __str__(self) -> str:
        if self.value is None:
            return MISSING
        if self.low is None or self.high is None:
            return fmt(self.value)
        return f"{fmt(self.value)} [{fmt(self.low)}, {fmt(self.high)}]"


def as_vector(values: Any, name: str = "values") -> np.ndarray:
    """A 1-D float64 array from a list, NumPy array or torch tensor (bool -> 0/1)."""
    if hasattr(values, "detach"):  # torch tensor, without importing torch
        values = values.detach().cpu().numpy()
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one value per image (1-D), got shape {arr.shape}")
    return arr


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), e.g. 0.95, got {level!r}")
    return NormalDist().inv_cdf(0.5 + level / 2)


def _indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) resampled image indices; small index dtypes make the gathers fast."""
    if n_boot < 100:
        raise ValueError(f"n_boot must be at least 100 for a 95 % interval, got {n_boot!r}")
    dtype = np.uint16 if n <= np.iinfo(np.uint16).max else np.intp
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n), dtype=dtype)


def _boot_means(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Mean of each resample of ``x`` (NaN entries skipped; NaN where a resample has none)."""
    finite = np.isfinite(x)
    if finite.all():
        return x[idx].sum(1) / idx.shape[1]
    counts = finite.astype(np.float64)[idx].sum(1)
    sums = np.where(finite, x, 0.0)[idx].sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _percentiles(stats: np.ndarray, level: float) -> tuple[float | None, float | None]:
    stats = stats[np.isfinite(stats)]
    if len(stats) == 0:
        return None, None
    tail = (1 - level) / 2
    low, high = np.quantile(stats, [tail, 1 - tail])
    return float(low), float(high)


# ----------------------------------------------------------------------------- estimators
def mean_ci(values: Any, *, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> Estimate:
    """Mean of ``values`` with a seeded percentile-bootstrap interval over images.

    NaNs are dropped (``n`` counts the rest); with fewer than 2 values the interval is None,
    with none the value is None too.
    """
    _z(level)
    x = as_vector(values)
    x = x[np.isfinite(x)]
    n = len(x)
    method = f"bootstrap {round(100 * level)}%"
    if n == 0:
        return Estimate(None, None, None, 0, method)
    value = float(x.mean())
    if n < 2:
        return Estimate(value, None, None, n, method)
    low, high = _percentiles(_boot_means(x, _indices(n, n_boot, seed)), level)
    # a mean of equal values has no spread; keep the interval exactly at the value
    if x.min() == x.max():
        low = high = value
    return Estimate(value, low, high, n, method)


def rate_ci(flags: Any, *, level: float = 0.95) -> Estimate:
    """Share of true ``flags`` (bool or 0/1 per image) with the Wilson score interval.

    NaNs are dropped; 0/n gives [0, high] and n/n gives [low, 1], never a zero-width interval.
    """
    z = _z(level)
    f = as_vector(flags, "flags")
    f = f[np.isfinite(f)]
    if np.any((f != 0) & (f != 1)):
        raise ValueError(
            "flags must be booleans or 0/1 per image, got other values: "
            f"{sorted(set(f[(f != 0) & (f != 1)].tolist()))[:5]}"
        )
    n = len(f)
    method = f"wilson {round(100 * level)}%"
    if n == 0:
        return Estimate(None, None, None, 0, method)
    p = float(f.mean())
    low, high = wilson(p, n, z)
    return Estimate(p, low, high, n, method)


def wilson(p: float, n: float, z: float) -> tuple[float, float]:
    """The Wilson score interval of a share ``p`` of ``n`` trials at critical value ``z`` (``n``
    may be fractional: :mod:`adv2.core.seed_stats` counts images once over several seeds)."""
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low = 0.0 if p == 0 else max(0.0, centre - half)
    high = 1.0 if p == 1 else min(1.0, centre + half)
    return low, high


def _paired(a: Any, b: Any, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    x, y = as_vector(a, names[0]), as_vector(b, names[1])
    if len(x) != len(y):
        raise ValueError(
            f"paired estimates need one {names[0]} and one {names[1]} per image, got "
            f"{len(x)} and {len(y)} values; pass paired=False for independent samples"
        )
    return x, y


def diff_ci(
    a: Any, b: Any, *, paired: bool, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> Estimate:
    """Difference of means ``mean(a) - mean(b)`` with a bootstrap interval.

    ``paired``: ``a`` and ``b`` are measured on the same images; the per-image differences are
    bootstrapped (images where either is NaN are dropped). Otherwise the two samples are
    resampled independently and ``n`` is the smaller sample.
    """
    if paired:
        x, y = _paired(a, b, ("a", "b"))
        est = mean_ci(x - y, level=level, n_boot=n_boot, seed=seed)
        return Estimate(est.value, est.low, est.high, est.n, f"paired {est.method}")
    _z(level)
    x, y = as_vector(a, "a"), as_vector(b, "b")
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    n = min(len(x), len(y))
    method = f"bootstrap {round(100 * level)}%"
    if n == 0:
        return Estimate(None, None, None, 0, method)
    value = float(x.mean() - y.mean())
    if n < 2:
        return Estimate(value, None, None, n, method)
    dx = _boot_means(x, _indices(len(x), n_boot, seed))
    dy = _boot_means(y, _indices(len(y), n_boot, seed + 1))
    low, high = _percentiles(dx - dy, level)
    return Estimate(value, low, high, n, method)


def ratio_ci(
    numerator: Any, denominator: Any, *, paired: bool, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> Estimate:
    """Ratio of means ``mean(numerator) / mean(denominator)`` with a bootstrap interval.

    ``paired``: both are measured on the same images (equal lengths); each resample draws one set
    of image indices for both. NaNs are skipped per array within a resample, so a numerator
    measured only on some images (ADV2's map distance, NaN where the attack failed) is paired with
    a denominator measured on all of them, exactly as the point estimate averages them; ``n`` is
    the number of images with at least one of the two. Unpaired: independent resamples, ``n`` the
    smaller sample. The value is None when the denominator's mean is not positive or a side is
    empty; resamples whose denominator mean is 0 are left out of the percentiles.
    """
    _z(level)
    method = f"{'paired ' if paired else ''}bootstrap ratio {round(100 * level)}%"
    if paired:
        x, y = _paired(numerator, denominator, ("numerator", "denominator"))
        keep = np.isfinite(x) | np.isfinite(y)
        x, y = x[keep], y[keep]
        n = len(x)
    else:
        x, y = as_vector(numerator, "numerator"), as_vector(denominator, "denominator")
        x, y = x[np.isfinite(x)], y[np.isfinite(y)]
        n = min(len(x), len(y))
    fx, fy = np.isfinite(x), np.isfinite(y)
    if n == 0 or not fx.any() or not fy.any():
        return Estimate(None, None, None, int(n), method)
    mx, my = float(x[fx].mean()), float(y[fy].mean())
    if not my > 0:
        return Estimate(None, None, None, int(n), method)
    value = mx / my
    if min(int(fx.sum()), int(fy.sum())) < 2:
        return Estimate(value, None, None, int(n), method)
    if paired:
        idx = _indices(n, n_boot, seed)
        bx, by = _boot_means(x, idx), _boot_means(y, idx)
    else:
        bx = _boot_means(x, _indices(len(x), n_boot, seed))
        by = _boot_means(y, _indices(len(y), n_boot, seed + 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = np.where(by > 0, bx / np.where(by > 0, by, 1.0), np.nan)
    low, high = _percentiles(ratios, level)
    return Estimate(value, low, high, int(n), method)


def _paired_arrays(what: str, named: dict[str, Any]) -> tuple[list[np.ndarray], int, list[float]]:
    """Arrays measured on the same images, kept where any has a value: ``(arrays, n, means)``
    (each mean over its finite values, NaN when it has none)."""
    arrays = [as_vector(v, name) for name, v in named.items()]
    if len({len(a) for a in arrays}) != 1:
        raise ValueError(
            f"a paired {what} needs one value per image in each array, got lengths "
            + ", ".join(str(len(a)) for a in arrays)
        )
    keep = np.any([np.isfinite(a) for a in arrays], axis=0)
    arrays = [a[keep] for a in arrays]
    means = [float(a[np.isfinite(a)].mean()) if np.isfinite(a).any() else float("nan") for a in arrays]
    return arrays, int(keep.sum()), means


def ratio_of_ratios_ci(
    num_a: Any,
    den_a: Any,
    num_b: Any,
    den_b: Any,
    *,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> Estimate:
    """``(mean(num_a) / mean(den_a)) / (mean(num_b) / mean(den_b))``, all four measured on the
    same images, with a paired bootstrap interval (one set of image indices per resample for all
    four; NaNs skipped per array, as in :func:`ratio_ci`). Chapter 7 compares the ADV2 / PGD L1
    ratio at two input sizes with it. ``n``: images with a value in any array."""
    _z(level)
    method = f"paired bootstrap ratio of ratios {round(100 * level)}%"
    arrays, n, means = _paired_arrays(
        "ratio of ratios", {"num_a": num_a, "den_a": den_a, "num_b": num_b, "den_b": den_b}
    )
    if n == 0 or not all(np.isfinite(means)) or not (means[1] > 0 and means[3] > 0 and means[2] > 0):
        return Estimate(None, None, None, n, method)
    value = (means[0] / means[1]) / (means[2] / means[3])
    if min(int(np.isfinite(a).sum()) for a in arrays) < 2:
        return Estimate(value, None, None, n, method)
    idx = _indices(n, n_boot, seed)
    na, da, nb, db = (_boot_means(a, idx) for a in arrays)
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = (da > 0) & (db > 0) & (nb > 0)
        stats = np.where(
            ok, (na / np.where(ok, da, 1.0)) / np.where(ok, nb / np.where(ok, db, 1.0), 1.0), np.nan
        )
    low, high = _percentiles(stats, level)
    return Estimate(value, low, high, n, method)


def share_ci(
    value: Any, floor: Any, ceiling: Any, *, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> Estimate:
    """Where ``mean(value)`` lies between ``mean(floor)`` (0) and ``mean(ceiling)`` (1):
    ``(mean(value) - mean(floor)) / (mean(ceiling) - mean(floor))``, all three measured on the same
    images, with a paired bootstrap interval (one set of image indices per resample for all three;
    NaNs skipped per array, as in :func:`ratio_ci`). Chapter 6: the share of ADV2's advantage over
    PGD that AID removes (value: ADV2's L1 on RTSA, floor: on RTS, ceiling: PGD's on RTSA). The
    value is None when the ceiling's mean is not above the floor's (no advantage to remove)."""
    _z(level)
    method = f"paired bootstrap share {round(100 * level)}%"
    arrays, n, means = _paired_arrays("share", {"value": value, "floor": floor, "ceiling": ceiling})
    if n == 0 or not all(np.isfinite(means)) or not means[2] > means[1]:
        return Estimate(None, None, None, n, method)
    point = (means[0] - means[1]) / (means[2] - means[1])
    if min(int(np.isfinite(a).sum()) for a in arrays) < 2:
        return Estimate(point, None, None, n, method)
    idx = _indices(n, n_boot, seed)
    v, f, c = (_boot_means(a, idx) for a in arrays)
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = c > f
        stats = np.where(ok, (v - f) / np.where(ok, c - f, 1.0), np.nan)
    low, high = _percentiles(stats, level)
    return Estimate(point, low, high, n, method)


# what the claims' rule texts call the paired interval of rate_diff_ci (one name for text and code)
PAIRED_RATE_DIFF = "Bonett and Price's paired interval"


def rate_diff_ci(a: Any, b: Any, *, paired: bool, level: float = 0.95) -> Estimate:
    """Difference of two rates ``rate(a) - rate(b)`` of per-image flags: Newcombe's interval for
    independent flags, :data:`PAIRED_RATE_DIFF` for paired ones.

    Independent flags: Newcombe's hybrid score interval (square-and-add of the two Wilson
    intervals). Paired flags on the same images: Bonett and Price's adjusted Wald interval for the
    difference of paired proportions (2012), which adds one pseudo-count to each discordant cell:
    Newcombe's paired method collapses to zero width when both attacks succeed on exactly the same
    images, which overstates certainty on a handful of images. Both stay honest at 0/n and n/n,
    where a bootstrap of identical flags would give a zero-width interval. Paired: images where
    either flag is NaN are dropped.
    """
    method = f"{'bonett-price paired' if paired else 'newcombe'} {round(100 * level)}%"
    if paired:
        x, y = _paired(a, b, ("a", "b"))
        keep = np.isfinite(x) & np.isfinite(y)
        x, y = x[keep], y[keep]
    else:
        x, y = as_vector(a, "a"), as_vector(b, "b")
        x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    ra, rb = rate_ci(x, level=level), rate_ci(y, level=level)
    n = min(ra.n, rb.n)
    if ra.value is None or rb.value is None:
        return Estimate(None, None, None, n, method)
    d = ra.value - rb.value
    if paired:
        xa, yb = x.astype(bool), y.astype(bool)
        low, high = bonett_price(float(np.sum(xa & ~yb)), float(np.sum(~xa & yb)), len(xa), _z(level))
        return Estimate(d, low, high, n, method)
    phi = 0.0
    da, ua = ra.value - ra.low, ra.high - ra.value
    db, ub = rb.value - rb.low, rb.high - rb.value
    below = math.sqrt(max(da * da - 2 * phi * da * ub + ub * ub, 0.0))
    above = math.sqrt(max(ua * ua - 2 * phi * ua * db + db * db, 0.0))
    return Estimate(d, max(-1.0, d - below), min(1.0, d + above), n, method)


def bonett_price(only_a: float, only_b: float, n: float, z: float) -> tuple[float, float]:
    """:data:`PAIRED_RATE_DIFF` from the discordant counts of ``n`` paired flags (``only_a``: a
    true and b false; ``n`` and the counts may be fractional, see :func:`wilson`)."""
    m = n + 2.0
    p_a = (only_a + 1.0) / m  # only a succeeded (+1 pseudo-count)
    p_b = (only_b + 1.0) / m  # only b succeeded
    centre = p_a - p_b
    half = z * math.sqrt(max(p_a + p_b - centre * centre, 0.0) / m)
    return max(-1.0, centre - half), min(1.0, centre + half)


def t_quantile(level: float, df: int) -> float:
    """The two-sided Student's t critical value: ``P(|T| <= t) = level`` for ``df`` degrees of freedom.

    Integer ``df`` only (seeds minus one). The CDF is the closed form for integer degrees of
    freedom (Abramowitz and Stegun 26.7.3-4, a finite series in cos(theta)), inverted by bisection:
    no SciPy needed.
    """
    _z(level)
    if not isinstance(df, (int, np.integer)) or df < 1:
        raise ValueError(f"df must be an integer >= 1, got {df!r}")

    def inside(t: float) -> float:  # P(|T| <= t)
        theta = math.atan(t / math.sqrt(df))
        c2, s = math.cos(theta) ** 2, math.sin(theta)
        if df % 2:  # odd: 2/pi (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...))
            term, total = 1.0, 1.0 if df > 1 else 0.0
            for k in range(1, (df - 1) // 2):
                term *= c2 * (2 * k) / (2 * k + 1)
                total += term
            return 2 / math.pi * (theta + s * math.cos(theta) * total)
        term, total = 1.0, 1.0  # even: sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
        for k in range(1, df // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        return s * total

    low, high = 0.0, 1.0
    while inside(high) < level:
        high *= 2
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if inside(mid) < level else (low, mid)
    return (low + high) / 2


def seeds_ci(values: Any, *, level: float = 0.95) -> Estimate:
    """Mean of one value per training seed with the Student's t interval
    ``mean +- t(level, n-1) * sd / sqrt(n)``; ``n`` counts seeds. Fewer than 2 seeds: no interval."""
    x = as_vector(values)
    x = x[np.isfinite(x)]
    n = len(x)
    method = "t over seeds"
    if n == 0:
        return Estimate(None, None, None, 0, method)
    value = float(x.mean())
    if n < 2:
        _z(level)
        return Estimate(value, None, None, n, method)
    half = t_quantile(level, n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return Estimate(value, value - half, value + half, n, method)


def images_needed(estimate: Estimate, threshold: float) -> int | None:
    """Rough number of images at which ``estimate``'s interval would no longer reach ``threshold``.

    Half-widths shrink like ``1/sqrt(n)`` at a fixed spread, so the side of the interval facing the
    threshold, ``w``, would fall below the gap ``|value - threshold|`` at about
    ``n * (w / gap)^2`` images. None when there is no interval or the value sits on the threshold.
    Always more than the current ``n`` when the interval reaches the threshold. None for an
    interval over training seeds (:attr:`Estimate.covers_seeds`): more images do not narrow the
    seeds' part, so no number of images can be promised.
    """
    if (
        estimate.covers_seeds
        or estimate.value is None
        or estimate.low is None
        or estimate.high is None
        or estimate.n < 1
    ):
        return None
    gap = abs(estimate.value - threshold)
    if gap == 0:
        return None
    w = estimate.value - estimate.low if threshold < estimate.value else estimate.high - estimate.value
    if w <= 0:
        return estimate.n
    need = math.ceil(estimate.n * (w / gap) ** 2)
    reaches = estimate.low <= threshold <= estimate.high
    return max(need, estimate.n + 1) if reaches else need


__all__ = [
    "PAIRED_RATE_DIFF",
    "Estimate",
    "as_vector",
    "bonett_price",
    "diff_ci",
    "images_needed",
    "mean_ci",
    "rate_ci",
    "rate_diff_ci",
    "ratio_ci",
    "ratio_of_ratios_ci",
    "share_ci",
    "seeds_ci",
    "t_quantile",
    "wilson",
]
