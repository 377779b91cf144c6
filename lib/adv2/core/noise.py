"""Random-noise sensitivity of interpreters (paper Figure 15): noise calibration and map distances.

The paper perturbs test inputs with random normal (N) or uniform (U) noise "at two levels, which
respectively cause 3% and 30% misclassification on the test set", and compares clean and noisy
attribution maps of RTS and RTSA. It does not give the magnitudes, so they are *calibrated* here.

Choices (documented in chapter 05):

* **Which images count.** The misclassification rate is measured on test images the classifier
  gets right *without* noise: the rate is "the share of decisions the noise changes". Measured on
  every test image the number could not go below the clean error rate (about 8-10% for our
  Fashion-MNIST nets, 24% for the paper's ResNet-50), so 3% would be unreachable.
* **Fixed draw.** One seeded standard draw ``z`` per image (``N(0, 1)`` or ``U(-1, 1)``) is scaled
  by the magnitude ``s`` (sigma, or the uniform half-width): ``x_noisy = clip(x + s z, 0, 1)``.
  With ``z`` fixed the rate is a (nearly) monotone step function of ``s``, so bisection applies.
* **Bisection** on ``log s`` (magnitudes span orders of magnitude) until the rate is within
  ``tolerance`` (absolute, default 1 percentage point) of the target, or ``max_iter`` evaluations.
  Every evaluation is remembered and reused by the other levels.
* **The "0%" level** of the paper's table is read as *the strongest noise of that type that changes
  no decision* on the calibration set (largest magnitude with rate 0), found by bisection between
  the largest harmless and the smallest harmful magnitude already evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from adv2.core.metrics import l1_distance
from adv2.core.paper import PAPER_FIG15_L1
from adv2.core.tensors import map_batches, predicted_classes

NOISE_TYPES = ("normal", "uniform")
_FP = 1e-6  # rates are fractions k/n: compare with a little slack for floating point
NOISE_SHORT = {"normal": "N", "uniform": "U"}


# ----------------------------------------------------------------------------- noise
def noise_draw(shape: Sequence[int], kind: str, seed: int = 0) -> torch.Tensor:
    """A seeded unit draw: standard normal (``kind="normal"``) or uniform on [-1, 1]."""
    if kind not in NOISE_TYPES:
        raise ValueError(f"noise kind {kind!r} is not valid; expected one of {NOISE_TYPES}")
    gen = torch.Generator().manual_seed(int(seed))
    if kind == "normal":
        return torch.randn(*shape, generator=gen)
    return torch.rand(*shape, generator=gen) * 2 - 1


def add_noise(x: torch.Tensor, z: torch.Tensor, magnitude: float) -> torch.Tensor:
    """``clip(x + magnitude * z, 0, 1)``: images stay valid images."""
    return (x + magnitude * z.to(x.device)).clamp(0, 1)


def correctly_classified(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    n: int | None = None,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
    also_correct: Sequence[torch.nn.Module] = (),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first ``n`` images of ``(x, y)`` that ``model`` classifies correctly, and their indices.

    Images are scanned in order, chunk by chunk, so only what is needed is classified.
    ``also_correct``: further models (the classifier trained with other seeds) that must classify
    a kept image correctly too, so that all of them are measured on the same images.
    """
    keep: list[torch.Tensor] = []
    found = 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        right = predicted_classes(model, xb, batch_size, device) == yb
        for m in also_correct:
            right &= predicted_classes(m, xb, batch_size, device) == yb
        idx = torch.nonzero(right).flatten() + i
        keep.append(idx)
        found += len(idx)
        if n is not None and found >= n:
            break
    index = torch.cat(keep) if keep else torch.empty(0, dtype=torch.long)
    if n is not None:
        index = index[:n]
    return x[index], y[index], index


# ----------------------------------------------------------------------------- calibration
@dataclass
class NoiseCalibration:
    """Result of calibrating one noise type to one target misclassification rate."""

    kind: str  # "normal" or "uniform"
    target_rate: float  # e.g. 0.03; 0.0 = strongest harmless noise
    magnitude: float  # sigma (normal) or half-width (uniform), images in [0,1]
    rate: float  # misclassification rate reached at ``magnitude``
    tolerance: float  # |rate - target_rate| allowed (absolute)
    within_tolerance: bool
    evaluations: int  # classifier passes spent on this level (cache hits excluded)
    n_images: int
    history: list = field(default_factory=list)  # [(magnitude, rate)] in evaluation order

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RateFunction:
    """``magnitude -> misclassification rate`` for fixed images, labels and noise draw; memoised."""

    def __init__(
        self,
        model: torch.nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        z: torch.Tensor,
        batch_size: int = 500,
        device: torch.device | str = "cpu",
    ):
        self.model, self.x, self.y, self.z = model, x, y, z
        self.batch_size, self.device = batch_size, device
        self.cache: dict[float, float] = {}
        self.calls = 0

    def __call__(self, magnitude: float) -> float:
        key = float(magnitude)
        if key not in self.cache:
            pred = predicted_classes(self.model, add_noise(self.x, self.z, key), self.batch_size, self.device)
            self.cache[key] = (pred != self.y).float().mean().item()
            self.calls += 1
        return self.cache[key]

    def bracket(self, target: float) -> tuple[float | None, float | None]:
        """Largest evaluated magnitude with rate < target and smallest with rate > target."""
        below = [m for m, r in self.cache.items() if r < target]
        above = [m for m, r in self.cache.items() if r > target]
        return (max(below) if below else None), (min(above) if above else None)


# duplicates (shape only): a keyword-only signature like stats.ratio_of_ratios_ci's (listed in
# lib/adv2/README.md)
def calibrate_noise(
    rate_fn: RateFunction,
    kind: str,
    target_rate: float,
    *,
    tolerance: float = 0.01,
    max_iter: int = 20,
    start: float = 0.1,
    max_magnitude: float = 8.0,
) -> NoiseCalibration:
    """Bisection (on log magnitude) for the noise magnitude whose rate is ``target_rate``.

    ``target_rate == 0`` asks for the largest magnitude that changes no decision; the search then
    stops when the harmless/harmful bracket is narrower than a factor ``1 + tolerance``.
    Returns the closest magnitude found (the last harmless one for target 0).
    """
    if not 0 <= target_rate < 1:
        raise ValueError(f"target_rate {target_rate!r} is not valid; expected 0 <= rate < 1")
    calls0 = rate_fn.calls
    history: list[tuple[float, float]] = []

    def ev(m: float) -> float:
        r = rate_fn(m)
        history.append((m, r))
        return r

    zero = target_rate == 0

    # "below" holds rates <= target for target 0 (harmless), else < target
    def is_low(r: float) -> bool:
        return r <= 0 if zero else r < target_rate

    lo = max((m for m, r in rate_fn.cache.items() if is_low(r)), default=None)
    hi = min((m for m, r in rate_fn.cache.items() if not is_low(r)), default=None)
    best = None
    if not zero:
        close = [m for m, r in rate_fn.cache.items() if abs(r - target_rate) <= tolerance + _FP]
        if close:
            best = min(close, key=lambda m: abs(rate_fn.cache[m] - target_rate))
    m = start if lo is None and hi is None else None
    for _ in range(max_iter):
        if best is not None:
            break
        if m is None:
            if lo is None:
                m = hi / 4
            elif hi is None:
                m = min(lo * 4, max_magnitude)
            else:
                if zero and hi / lo <= 1 + tolerance:
                    break
                m = math.sqrt(lo * hi)
        r = ev(m)
        if not zero and abs(r - target_rate) <= tolerance + _FP:
            best = m
            break
        if is_low(r):
            lo = m
            if m >= max_magnitude:
                break
        else:
            hi = m
        m = None
    if best is None:
        if zero:
            best = lo if lo is not None else 0.0
        else:
            cands = [c for c in (lo, hi) if c is not None]
            best = min(cands, key=lambda c: abs(rate_fn(c) - target_rate))
    rate = rate_fn(best) if best > 0 else 0.0
    ok = rate <= 0 if zero else abs(rate - target_rate) <= tolerance + _FP
    return NoiseCalibration(
        kind=kind,
        target_rate=float(target_rate),
        magnitude=float(best),
        rate=float(rate),
        tolerance=float(tolerance),
        within_tolerance=ok,
        evaluations=rate_fn.calls - calls0,
        n_images=len(rate_fn.x),
        history=[[float(a), float(b)] for a, b in history],
    )


@dataclass(frozen=True)
class NoiseSearch:
    """What the calibration searches for and how: the target ``rates`` (shares of decisions the
    noise changes; 0 asks for the strongest harmless noise), the bisection's ``tolerance``
    (absolute) and classifier passes per level (``max_iter``; ``zero_max_iter`` for the 0 level),
    and the ``seed`` of the fixed draws. One object, so every setting is calibrated alike."""

    rates: Sequence[float] = (0.0, 0.03, 0.3)
    tolerance: float = 0.01
    max_iter: int = 20
    zero_max_iter: int = 6
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.rates or not all(0 <= r < 1 for r in self.rates):
            raise ValueError(f"noise rates {list(self.rates)!r} are not valid; expected each 0 <= rate < 1")
        if not self.tolerance > 0 or self.max_iter < 1 or self.zero_max_iter < 1:
            raise ValueError(
                f"noise search tolerance={self.tolerance!r}, max_iter={self.max_iter!r}, "
                f"zero_max_iter={self.zero_max_iter!r}: expected tolerance > 0 and at least 1 pass"
            )


def calibrate_levels(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    search: NoiseSearch | None = None,
    *,
    kinds: Sequence[str] = NOISE_TYPES,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
) -> tuple[dict[str, dict[float, NoiseCalibration]], dict[str, torch.Tensor]]:
    """Calibrate every noise kind to every rate of ``search`` (None: :class:`NoiseSearch`'s
    defaults) on ``(x, y)`` (pass correctly classified images).

    Positive rates are searched first (largest first, so the small ones start from a bracket);
    the 0 level reuses all their evaluations. Returns ``({kind: {rate: calibration}}, {kind: z})``
    where ``z`` is the fixed draw used (reuse it to build the noisy images).
    """
    search = search or NoiseSearch()
    out: dict[str, dict[float, NoiseCalibration]] = {}
    draws: dict[str, torch.Tensor] = {}
    for k_i, kind in enumerate(kinds):
        z = noise_draw(tuple(x.shape), kind, seed=search.seed * 1000 + 17 + k_i)
        fn = RateFunction(model, x, y, z, batch_size=batch_size, device=device)
        res: dict[float, NoiseCalibration] = {}
        for rate in sorted(search.rates, key=lambda r: (r == 0, -r)):
            passes = search.zero_max_iter if rate == 0 else search.max_iter
            res[rate] = calibrate_noise(fn, kind, rate, tolerance=search.tolerance, max_iter=passes)
        out[kind] = {r: res[r] for r in search.rates}
        draws[kind] = z
    return out, draws


def level_name(rate: float) -> str:
    """0.03 -> '3%' (the paper's row labels)."""
    pct = rate * 100
    return f"{pct:g}%"


# ----------------------------------------------------------------------------- map sensitivity
@torch.no_grad()
def interpreter_maps(
    interpreter: Callable,
    x: torch.Tensor,
    target: torch.Tensor,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Maps of ``interpreter`` for ``(x, target)`` in batches (detached, on the CPU)."""
    return map_batches(interpreter, x, target, batch_size=batch_size, device=device, to_cpu=True)


def noise_sensitivity(
    model: torch.nn.Module,
    interpreters: dict[str, Callable],
    x: torch.Tensor,
    y: torch.Tensor,
    calibrations: dict[str, dict[float, NoiseCalibration]],
    draws: dict[str, torch.Tensor],
    *,
    map_class: str = "predicted",
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """L1 between clean and noisy maps for each interpreter, noise kind and level.

    ``map_class="predicted"``: each map explains the classifier's decision on that input (the
    clean one is the true class since the images are correctly classified; a noisy one whose
    decision flipped is explained for its new class); ``"true"``: always the true class.

    Returns ``{"l1": {interp: {kind: {level: mean}}}, "l1_flipped": ..., "l1_kept": ...,
    "rate": {kind: {level: rate}}, "per_sample": {...}, "maps": {...}, "pred": {...}}`` where levels
    are the names from :func:`level_name`; ``maps``/``pred``/``noisy`` are kept for figures.
    """
    if map_class not in ("predicted", "true"):
        raise ValueError(f"map_class {map_class!r} is not valid; expected 'predicted' or 'true'")
    clean = {name: interpreter_maps(g, x, y, batch_size, device) for name, g in interpreters.items()}
    res: dict[str, Any] = {
        "l1": {},
        "l1_flipped": {},
        "l1_kept": {},
        "rate": {},
        "n_flipped": {},
        "per_sample": {},
        "maps": {"clean": clean},
        "pred": {},
        "noisy": {},
    }
    for name in interpreters:
        for key in ("l1", "l1_flipped", "l1_kept", "per_sample"):
            res[key][name] = {}
    for kind, levels in calibrations.items():
        for key in ("rate", "n_flipped", "pred", "noisy"):
            res[key][kind] = {}
        res["maps"][kind] = {}
        for name in interpreters:
            for key in ("l1", "l1_flipped", "l1_kept", "per_sample"):
                res[key][name][kind] = {}
        for rate, cal in levels.items():
            lvl = level_name(rate)
            xn = add_noise(x, draws[kind], cal.magnitude)
            pred = predicted_classes(model, xn, batch_size, device)
            flipped = pred != y
            cls = pred if map_class == "predicted" else y
            res["rate"][kind][lvl] = flipped.float().mean().item()
            res["n_flipped"][kind][lvl] = int(flipped.sum())
            res["pred"][kind][lvl] = pred
            res["noisy"][kind][lvl] = xn
            res["maps"][kind][lvl] = {}
            for name, g in interpreters.items():
                mn = interpreter_maps(g, xn, cls, batch_size, device)
                d = l1_distance(clean[name], mn)
                res["maps"][kind][lvl][name] = mn
                res["per_sample"][name][kind][lvl] = d
                res["l1"][name][kind][lvl] = d.mean().item()
                res["l1_flipped"][name][kind][lvl] = (
                    d[flipped].mean().item() if flipped.any() else float("nan")
                )
                res["l1_kept"][name][kind][lvl] = (
                    d[~flipped].mean().item() if (~flipped).any() else float("nan")
                )
    return res


def fig15_rows(
    l1: dict[str, dict[str, dict[str, float]]], levels: Sequence[str], paper: dict = PAPER_FIG15_L1
) -> tuple[list[list[Any]], list[str]]:
    """Rows ``level | RTS N | RTS U | RTSA N | RTSA U`` with the paper's value beside ours.

    ``l1`` is ``{interp: {kind: {level: value}}}`` for interps ``rts`` and ``rtsa``.
    """
    headers = ["noise level"]
    cols = [(i, k) for i in ("rts", "rtsa") for k in NOISE_TYPES]
    for i, k in cols:
        headers += [f"{i.upper()} {NOISE_SHORT[k]} ours", "paper"]
    rows = []
    for lvl in levels:
        row: list[Any] = [lvl]
        for i, k in cols:
            row += [l1.get(i, {}).get(k, {}).get(lvl), paper.get(i, {}).get(k, {}).get(lvl)]
        rows.append(row)
    return rows, headers


__all__ = [
    "NOISE_TYPES",
    "NoiseCalibration",
    "NoiseSearch",
    "RateFunction",
    "add_noise",
    "calibrate_levels",
    "calibrate_noise",
    "correctly_classified",
    "fig15_rows",
    "interpreter_maps",
    "level_name",
    "noise_draw",
    "noise_sensitivity",
]
