"""Intervals over images *and* training seeds (issue 27): the headline numbers of classifiers
trained with several training seeds and attacked on the same images.

An interval over images alone (:mod:`adv2.core.stats`) says how much the number would move with
other images; a classifier retrained with another seed (or on another machine, whose kernels sum
in another order) moves it too, often by more. Each estimator here takes one per-image array per
training seed, all of the same images (``values_by_seed[s][i]``: seed ``s``, image ``i``), and
returns an :class:`adv2.core.stats.Estimate`:

* the value is the pooled estimator: the mean (rate, ratio of means, difference of rates) over
  every (seed, image) value, exactly as :mod:`adv2.core.stats` computes it over images;
* the images part of the interval is that estimator's interval with each image counted once: a
  bootstrap that draws one set of image indices for all seeds (:func:`mean_ci_seeds`,
  :func:`ratio_ci_seeds`), or Wilson's / Bonett and Price's interval with the counts averaged over
  seeds (:func:`rate_ci_seeds`, :func:`rate_diff_ci_seeds`);
* the seeds part is the half-width of Student's t interval over the per-seed values
  (:func:`adv2.core.stats.seeds_ci`: a handful of seeds is too few for a bootstrap);
* the two are added in quadrature on each side. That is conservative: the per-seed values also
  vary with the images' noise, which the images part already counts. Student's t with two seeds
  (12.7) is wide, so a mean is kept within the values it averages and a ratio of non-negative
  means at or above 0, as a rate within [0, 1].

With one seed each function returns exactly (bitwise) the image-only estimator of
:mod:`adv2.core.stats`. With several, ``n`` is still the number of images (per seed) and the
method names the seeds ("bootstrap 95% + t over 3 seeds", :attr:`adv2.core.stats.Estimate.covers_seeds`);
:func:`adv2.core.stats.images_needed` then gives no number, as the seeds part does not shrink with
more images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from adv2.core.stats import (
    Estimate,
    _indices,
    _percentiles,
    _z,
    as_vector,
    bonett_price,
    mean_ci,
    rate_ci,
    rate_diff_ci,
    ratio_ci,
    ratio_of_ratios_ci,
    seeds_ci,
    share_ci,
    wilson,
)


class BySeed(tuple):
    """One per-image array per training seed, all of the same images: what the claim rules of
    :mod:`adv2.chapters.claim_rules` take where a plain array would be one seed's."""


def one_or_by_seed(values_by_seed: Iterable[Any]) -> Any:
    """A claim rule's input from one per-image array per training seed: the one seed's own array
    (the rules' one-seed path, bitwise as before seeds existed), else :class:`BySeed` (pooled)."""
    values = list(values_by_seed)
    return values[0] if len(values) == 1 else BySeed(values)


def interval_covers(n_seeds: int) -> str:
    """What a results file says its intervals cover (``"interval_covers"``)."""
    if not isinstance(n_seeds, (int, np.integer)) or n_seeds < 1:
        raise ValueError(f"n_seeds must be an integer >= 1, got {n_seeds!r}")
    return "images" if n_seeds == 1 else "images and training seeds"


def _by_seed(values_by_seed: Sequence[Any], name: str) -> np.ndarray:
    """``(seeds, images)`` float64 from one 1-D array per seed, all of the same length."""
    if isinstance(values_by_seed, np.ndarray) and values_by_seed.ndim == 2:
        values_by_seed = list(values_by_seed)
    if isinstance(values_by_seed, (str, bytes)) or not isinstance(values_by_seed, Sequence):
        raise ValueError(
            f"{name} must be a sequence with one per-image array per training seed, got {type(values_by_seed).__name__}"
        )
    rows = [as_vector(v, f"{name}[{s}]") for s, v in enumerate(values_by_seed)]
    if not rows:
        raise ValueError(f"{name} needs the per-image values of at least one training seed, got none")
    if len({len(r) for r in rows}) != 1:
        raise ValueError(
            f"{name}: every training seed must be measured on the same images, got "
            + ", ".join(str(len(r)) for r in rows)
            + " values per seed"
        )
    return np.stack(rows)


def stack_by_seed(arrays: Sequence[Any], names: Sequence[str]) -> list[np.ndarray] | None:
    """``(seeds, images)`` arrays of several measures when they are :class:`BySeed` (each the same
    seeds and images), else None: one seed's plain arrays, for the one-seed code path."""
    if not any(isinstance(a, BySeed) for a in arrays):
        return None
    if not all(isinstance(a, BySeed) for a in arrays):
        raise ValueError(f"{', '.join(names)}: pass BySeed for all of them or for none")
    out = [_by_seed(a, n) for a, n in zip(arrays, names)]
    if len({o.shape for o in out}) != 1:
        raise ValueError(
            f"{', '.join(names)} must hold the same seeds and images, got shapes "
            + ", ".join(str(o.shape) for o in out)
        )
    return out


def _mean(x: np.ndarray) -> float:
    """Mean of the finite values (NaN when there are none)."""
    f = np.isfinite(x)
    return float(x[f].mean()) if f.any() else float("nan")


def _column_sums(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image: the sum of its finite values over seeds and how many there are."""
    f = np.isfinite(x)
    return np.where(f, x, 0.0).sum(0), f.astype(np.float64).sum(0)


def _boot_pooled_means(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Pooled mean over seeds of each resample of images (one index set for every seed)."""
    sums, counts = _column_sums(x)
    s, c = sums[idx].sum(1), counts[idx].sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, s / np.maximum(c, 1), np.nan)


def widen(images: Estimate, per_seed: list[float], level: float, bounds: tuple[float, float]) -> Estimate:
    """``images``' interval widened on each side by the t half-width over ``per_seed`` values
    (in quadrature), clipped to ``bounds``; no interval when fewer than two seeds have a value."""
    method = f"{images.method} + t over {len(per_seed)} seeds"
    vals = [v for v in per_seed if v is not None and math.isfinite(v)]
    if images.value is None:
        return Estimate(None, None, None, images.n, method)
    if images.low is None or images.high is None or len(vals) < 2:
        return Estimate(images.value, None, None, images.n, method)
    seeds = seeds_ci(vals, level=level)
    h = seeds.high - seeds.value
    low = images.value - math.hypot(images.value - images.low, h)
    high = images.value + math.hypot(images.high - images.value, h)
    return Estimate(images.value, max(bounds[0], low), min(bounds[1], high), images.n, method)


# ----------------------------------------------------------------------------- estimators
def mean_ci_seeds(
    values_by_seed: Sequence[Any], *, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> Estimate:
    """Pooled mean over seeds and images; one seed: :func:`adv2.core.stats.mean_ci`."""
    x = _by_seed(values_by_seed, "values_by_seed")
    if len(x) == 1:
        return mean_ci(x[0], level=level, n_boot=n_boot, seed=seed)
    _z(level)
    method = f"bootstrap {round(100 * level)}%"
    keep = np.isfinite(x).any(0)  # images with a value in some seed
    x = x[:, keep]
    n = x.shape[1]
    if n == 0:
        return widen(Estimate(None, None, None, 0, method), [], level, (-math.inf, math.inf))
    value = _mean(x)
    low = high = None
    if n >= 2:
        low, high = _percentiles(_boot_pooled_means(x, _indices(n, n_boot, seed)), level)
        finite = x[np.isfinite(x)]
        if finite.min() == finite.max():
            low = high = value
    images = Estimate(value, low, high, n, method)
    # a mean stays within the values it averages (non-negative distances: never below 0)
    finite = x[np.isfinite(x)]
    return widen(images, [_mean(row) for row in x], level, (float(finite.min()), float(finite.max())))


def ratio_ci_seeds(
    numerator_by_seed: Sequence[Any],
    denominator_by_seed: Sequence[Any],
    *,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> Estimate:
    """Pooled ``mean(numerator) / mean(denominator)``, both measured on the same images in every
    seed (NaNs skipped per array, as :func:`adv2.core.stats.ratio_ci` with ``paired=True``: ADV2's
    map distance only where it succeeded over PGD's on all images); one seed: that function."""
    x = _by_seed(numerator_by_seed, "numerator_by_seed")
    y = _by_seed(denominator_by_seed, "denominator_by_seed")
    if x.shape != y.shape:
        raise ValueError(
            f"numerator and denominator need the same seeds and images, got shapes {x.shape} and {y.shape}"
        )
    if len(x) == 1:
        return ratio_ci(x[0], y[0], paired=True, level=level, n_boot=n_boot, seed=seed)
    _z(level)
    method = f"paired bootstrap ratio {round(100 * level)}%"
    keep = (np.isfinite(x) | np.isfinite(y)).any(0)
    x, y = x[:, keep], y[:, keep]
    n = x.shape[1]

    def ratio(a: np.ndarray, b: np.ndarray) -> float:
        mb = _mean(b)
        return _mean(a) / mb if mb > 0 else float("nan")  # NaN propagates from an empty side

    value = ratio(x, y)
    if not math.isfinite(value):
        return widen(Estimate(None, None, None, n, method), [], level, (-math.inf, math.inf))
    low = high = None
    if min(int(np.isfinite(x).sum()), int(np.isfinite(y).sum())) >= 2 and n >= 2:
        idx = _indices(n, n_boot, seed)
        bx, by = _boot_pooled_means(x, idx), _boot_pooled_means(y, idx)
        with np.errstate(invalid="ignore", divide="ignore"):
            low, high = _percentiles(np.where(by > 0, bx / np.where(by > 0, by, 1.0), np.nan), level)
    images = Estimate(value, low, high, n, method)
    # a ratio of non-negative means (map distances) is never below 0
    floor = 0.0 if min(np.nanmin(x), np.nanmin(y)) >= 0 else -math.inf
    return widen(images, [ratio(a[None], b[None]) for a, b in zip(x, y)], level, (floor, math.inf))


def _pooled_stat(
    named: dict[str, Any], stat: Callable[..., Any], method: str, *, level: float, n_boot: int, seed: int,
    nonnegative: bool = False,
) -> Estimate:  # fmt: skip
    """``stat`` of the pooled means of several measures of the same seeds and images (``named``:
    one per-image array per seed each; NaNs skipped per array). The images part is a paired
    bootstrap (one set of image indices per resample for every measure and seed), the seeds part
    :func:`widen`'s. ``stat`` takes the means (floats, or arrays of resampled means) and gives NaN
    where it is undefined; ``nonnegative``: never below 0 when every value is (map distances)."""
    arrays = [_by_seed(a, name) for name, a in named.items()]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(
            f"{', '.join(named)} need the same seeds and images, got shapes "
            + ", ".join(str(a.shape) for a in arrays)
        )
    keep = np.any([np.isfinite(a).any(0) for a in arrays], axis=0)
    arrays = [a[:, keep] for a in arrays]
    n = arrays[0].shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        point = float(stat(*(_mean(a) for a in arrays)))
        if not math.isfinite(point):
            return widen(Estimate(None, None, None, n, method), [], level, (-math.inf, math.inf))
        low = high = None
        if min(int(np.isfinite(a).sum()) for a in arrays) >= 2 and n >= 2:
            idx = _indices(n, n_boot, seed)
            low, high = _percentiles(stat(*(_boot_pooled_means(a, idx) for a in arrays)), level)
        per_seed = [float(stat(*(_mean(a[s]) for a in arrays))) for s in range(len(arrays[0]))]
    floor = 0.0 if nonnegative and all(np.nanmin(a) >= 0 for a in arrays) else -math.inf
    return widen(Estimate(point, low, high, n, method), per_seed, level, (floor, math.inf))


def _share(value: Any, floor: Any, ceiling: Any) -> Any:
    ok = ceiling > floor  # NaN: no advantage to remove
    return np.where(ok, (value - floor) / np.where(ok, ceiling - floor, 1.0), np.nan)


def share_ci_seeds(
    value_by_seed: Sequence[Any], floor_by_seed: Sequence[Any], ceiling_by_seed: Sequence[Any], *,
    level: float = 0.95, n_boot: int = 2000, seed: int = 0,
) -> Estimate:  # fmt: skip
    """Pooled ``(mean(value) - mean(floor)) / (mean(ceiling) - mean(floor))``, all three measured
    on the same images in every seed (NaNs skipped per array, as :func:`adv2.core.stats.share_ci`:
    chapter 6's share of ADV2's advantage over PGD that AID removes); one seed: that function."""
    named = {
        "value_by_seed": value_by_seed,
        "floor_by_seed": floor_by_seed,
        "ceiling_by_seed": ceiling_by_seed,
    }
    v, f, c = (_by_seed(a, name) for name, a in named.items())
    if not v.shape == f.shape == c.shape:
        raise ValueError(
            f"value, floor and ceiling need the same seeds and images, got shapes {v.shape}, {f.shape} and {c.shape}"
        )
    if len(v) == 1:
        return share_ci(v[0], f[0], c[0], level=level, n_boot=n_boot, seed=seed)
    _z(level)
    method = f"paired bootstrap share {round(100 * level)}%"
    return _pooled_stat(named, _share, method, level=level, n_boot=n_boot, seed=seed)


def _ratio_of_ratios(num_a: Any, den_a: Any, num_b: Any, den_b: Any) -> Any:
    ok = (den_a > 0) & (den_b > 0) & (num_b > 0)
    inner = np.where(ok, num_b / np.where(ok, den_b, 1.0), 1.0)
    return np.where(ok, (num_a / np.where(ok, den_a, 1.0)) / inner, np.nan)


def ratio_of_ratios_ci_seeds(
    num_a_by_seed: Sequence[Any], den_a_by_seed: Sequence[Any], num_b_by_seed: Sequence[Any],
    den_b_by_seed: Sequence[Any], *, level: float = 0.95, n_boot: int = 2000, seed: int = 0,
) -> Estimate:  # fmt: skip
    """Pooled ``(mean(num_a) / mean(den_a)) / (mean(num_b) / mean(den_b))``, all four measured on
    the same images in every seed (NaNs skipped per array, as
    :func:`adv2.core.stats.ratio_of_ratios_ci`: chapter 7's ADV2 / PGD L1 ratio at the largest input
    side over the one at the smallest); one seed: that function."""
    named = {
        "num_a_by_seed": num_a_by_seed,
        "den_a_by_seed": den_a_by_seed,
        "num_b_by_seed": num_b_by_seed,
        "den_b_by_seed": den_b_by_seed,
    }
    rows = [_by_seed(a, name) for name, a in named.items()]
    if len(rows[0]) == 1 and len({r.shape for r in rows}) == 1:
        return ratio_of_ratios_ci(*(r[0] for r in rows), level=level, n_boot=n_boot, seed=seed)
    _z(level)
    method = f"paired bootstrap ratio of ratios {round(100 * level)}%"
    return _pooled_stat(
        named, _ratio_of_ratios, method, level=level, n_boot=n_boot, seed=seed, nonnegative=True
    )


def _flags_by_seed(flags_by_seed: Sequence[Any], name: str) -> np.ndarray:
    f = _by_seed(flags_by_seed, name)
    bad = np.isfinite(f) & (f != 0) & (f != 1)
    if bad.any():
        raise ValueError(
            f"{name} must be booleans or 0/1 per image, got other values: {sorted(set(f[bad]))[:5]}"
        )
    return f


def rate_ci_seeds(flags_by_seed: Sequence[Any], *, level: float = 0.95) -> Estimate:
    """Pooled share of true flags; the images part is Wilson's interval with ``n`` the images per
    seed (each image counted once, not once per seed); one seed: :func:`adv2.core.stats.rate_ci`."""
    f = _flags_by_seed(flags_by_seed, "flags_by_seed")
    if len(f) == 1:
        return rate_ci(f[0], level=level)
    z = _z(level)
    method = f"wilson {round(100 * level)}%"
    counts = np.isfinite(f).sum(1)
    n_per_seed = float(counts.mean())
    if counts.sum() == 0:
        return widen(Estimate(None, None, None, 0, method), [], level, (0.0, 1.0))
    p = _mean(f)
    low, high = wilson(p, n_per_seed, z)
    images = Estimate(p, low, high, round(n_per_seed), method)
    return widen(images, [_mean(row) for row in f], level, (0.0, 1.0))


def rate_diff_ci_seeds(
    a_by_seed: Sequence[Any], b_by_seed: Sequence[Any], *, level: float = 0.95
) -> Estimate:
    """Pooled ``rate(a) - rate(b)`` of paired flags (images where either is NaN dropped per seed);
    the images part is :data:`adv2.core.stats.PAIRED_RATE_DIFF` with the discordant counts and the
    images averaged over seeds; one seed: :func:`adv2.core.stats.rate_diff_ci` with ``paired=True``."""
    a = _flags_by_seed(a_by_seed, "a_by_seed")
    b = _flags_by_seed(b_by_seed, "b_by_seed")
    if a.shape != b.shape:
        raise ValueError(f"a and b need the same seeds and images, got shapes {a.shape} and {b.shape}")
    if len(a) == 1:
        return rate_diff_ci(a[0], b[0], paired=True, level=level)
    z = _z(level)
    method = f"bonett-price paired {round(100 * level)}%"
    both = np.isfinite(a) & np.isfinite(b)
    n_seeds = len(a)
    n_per_seed = float(both.sum()) / n_seeds
    if n_per_seed == 0:
        return widen(Estimate(None, None, None, 0, method), [], level, (-1.0, 1.0))
    a1, b1 = (a == 1) & both, (b == 1) & both
    d = float(a1.sum() - b1.sum()) / float(both.sum())
    only_a = float((a1 & ~b1).sum()) / n_seeds
    only_b = float((~a1 & b1 & both).sum()) / n_seeds
    low, high = bonett_price(only_a, only_b, n_per_seed, z)
    images = Estimate(d, low, high, round(n_per_seed), method)
    per_seed = [
        float(a1[s].sum() - b1[s].sum()) / float(both[s].sum()) if both[s].any() else float("nan")
        for s in range(n_seeds)
    ]
    return widen(images, per_seed, level, (-1.0, 1.0))


__all__ = [
    "BySeed",
    "interval_covers",
    "mean_ci_seeds",
    "one_or_by_seed",
    "rate_ci_seeds",
    "rate_diff_ci_seeds",
    "ratio_ci_seeds",
    "ratio_of_ratios_ci_seeds",
    "share_ci_seeds",
    "stack_by_seed",
    "widen",
]
