"""Evaluation metrics of the attack chapter (paper-method section 4).

All map metrics take two batches of maps of the same shape ``(N, 1, h, w)`` (or ``(N, h, w)``)
at the interpreter's *native* resolution and return one value per sample:

* :func:`l1_distance` -- ``||a - b||_1 / (h w)``: the mean absolute per-cell difference (in
  [0,1] for maps in [0,1]); the one L1 of the library, differentiable;
* :func:`l2_distance` -- ``||a - b||_2 / sqrt(h w)``;
* :func:`topk_iou` -- IoU of the top-k fraction of cells of each map (ties broken by a stable sort,
  i.e. the lower flat index wins), :func:`iou_curve` for k = 10 %, 20 %, ..., 90 %.

:func:`summarize` turns one attack's outcome into the numbers the chapter reports. Following the
authors' statistics scripts, the prediction numbers (confidence) are over successful examples, and
the map distances are over the successful examples for ADV2 (``restrict_to_success=True``) but
over *all* attacked examples for PGD (their ``regular_pgd_stats.py`` has no success filter).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

DEFAULT_KS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _flat_pair(a: torch.Tensor, b: torch.Tensor, detach: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.as_tensor(a).float()
    b = torch.as_tensor(b).float().to(a.device)
    if detach:
        a, b = a.detach(), b.detach()
    if a.shape != b.shape:
        raise ValueError(
            f"maps must have the same shape to be compared, got {tuple(a.shape)} and "
            f"{tuple(b.shape)}; compare maps at the interpreter's native resolution"
        )
    if a.dim() < 2:
        raise ValueError(f"expected a batch of maps (N, [1,] h, w), got shape {tuple(a.shape)}")
    return a.flatten(1), b.flatten(1)


def success_rate(success: torch.Tensor) -> float:
    """Fraction of attacked images on which the attack succeeded (``success`` is a bool vector)."""
    s = torch.as_tensor(success).detach().bool().flatten()
    return float(s.float().mean()) if s.numel() else float("nan")


def target_confidence(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``softmax(logits)[target]`` per sample."""
    return torch.softmax(logits.float(), 1).gather(1, target.to(logits.device).view(-1, 1)).view(-1)


def mean_std(values: torch.Tensor) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1, as the authors' ``np.std(..., ddof=1)``).

    NaN for an empty vector; the std of a single value is 0.
    """
    v = torch.as_tensor(values).detach().double().flatten()
    if v.numel() == 0:
        return float("nan"), float("nan")
    std = float(v.std(unbiased=True)) if v.numel() > 1 else 0.0
    return float(v.mean()), std


def l1_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample mean absolute difference ``||a - b||_1 / (h w)``, shape (N,): the paper's L1
    between maps. Differentiable (AID's ``l_aid`` and distillation terms train through it)."""
    fa, fb = _flat_pair(a, b, detach=False)
    return (fa - fb).abs().mean(1)


def l2_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample ``||a - b||_2 / sqrt(h w)``, shape (N,)."""
    fa, fb = _flat_pair(a, b)
    return (fa - fb).pow(2).sum(1).sqrt() / math.sqrt(fa.shape[1])


def topk_mask(maps: torch.Tensor, k: float) -> torch.Tensor:
    """Boolean (N, h*w) marking each map's ``round(k h w)`` (at least 1) highest cells.

    Ties are broken by a stable descending sort: among equal values the lower flat index is kept,
    so a constant map selects its first cells and the result is deterministic.
    """
    if not 0 < k <= 1:
        raise ValueError(f"k must be a fraction in (0, 1], got {k!r}")
    flat = torch.as_tensor(maps).detach().float().flatten(1)
    n_cells = flat.shape[1]
    count = max(1, int(round(k * n_cells)))
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices[:, :count]
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask.scatter_(1, order, True)
    return mask


def topk_iou(a: torch.Tensor, b: torch.Tensor, k: float) -> torch.Tensor:
    """Per-sample IoU ``|A ∩ B| / |A ∪ B|`` of the top-k fraction of cells of ``a`` and ``b``."""
    fa, fb = _flat_pair(a, b)
    ma, mb = topk_mask(fa, k), topk_mask(fb, k)
    inter = (ma & mb).sum(1).float()
    union = (ma | mb).sum(1).float()
    return inter / union


def iou_curve(a: torch.Tensor, b: torch.Tensor, ks: Sequence[float] = DEFAULT_KS) -> torch.Tensor:
    """Per-sample IoU at each k, shape (N, len(ks))."""
    return torch.stack([topk_iou(a, b, k) for k in ks], dim=1)


def summarize(
    success: torch.Tensor,
    confidence: torch.Tensor,
    maps_adv: torch.Tensor,
    maps_benign: torch.Tensor,
    *,
    restrict_to_success: bool = True,
    ks: Sequence[float] = DEFAULT_KS,
) -> dict:
    """The chapter's numbers for one attack on one (model, interpreter).

    ``success`` (N,) bool, ``confidence`` (N,) = p(target) at the adversarial input,
    ``maps_adv`` the interpreter's maps of the adversarial inputs w.r.t. the target class,
    ``maps_benign`` the maps of the clean inputs w.r.t. the true class. Returns
    ``success_rate``, ``confidence_mean``, ``confidence_std`` (over successes), ``l1_mean/std``,
    ``l2_mean/std``, ``iou_mean`` (mean over images and k) and ``iou_curve`` (mean over images per
    k, at ``iou_ks``), plus ``n`` and ``n_measured`` (how many images the map numbers average
    over). Distances are over successes when
    ``restrict_to_success`` (ADV2, as the authors), else over all images (their PGD statistics).
    Values with no image to average over are NaN (saved as null).
    """
    success = torch.as_tensor(success).detach().bool().flatten().cpu()
    confidence = torch.as_tensor(confidence).detach().float().flatten().cpu()
    maps_adv = torch.as_tensor(maps_adv).detach().float().cpu()
    maps_benign = torch.as_tensor(maps_benign).detach().float().cpu()
    n = success.numel()
    if not (confidence.numel() == n == len(maps_adv) == len(maps_benign)):
        raise ValueError("success, confidence and both map batches must describe the same images")
    conf_mean, conf_std = mean_std(confidence[success])
    keep = success if restrict_to_success else torch.ones_like(success)
    a, b = maps_adv[keep], maps_benign[keep]
    if len(a):
        l1, l2, curve = l1_distance(a, b), l2_distance(a, b), iou_curve(a, b, ks)
        curve_mean = [float(v) for v in curve.mean(0)]
        iou_mean = float(curve.mean())
    else:
        l1 = l2 = torch.empty(0)
        curve_mean = [float("nan")] * len(ks)
        iou_mean = float("nan")
    l1_mean, l1_std = mean_std(l1)
    l2_mean, l2_std = mean_std(l2)
    return {
        "success_rate": success_rate(success),
        "confidence_mean": conf_mean,
        "confidence_std": conf_std,
        "l1_mean": l1_mean,
        "l1_std": l1_std,
        "l2_mean": l2_mean,
        "l2_std": l2_std,
        "iou_mean": iou_mean,
        "iou_curve": curve_mean,
        "iou_ks": [float(k) for k in ks],
        "n": int(n),
        "n_measured": int(keep.sum()),
    }


__all__ = [
    "DEFAULT_KS",
    "iou_curve",
    "l1_distance",
    "l2_distance",
    "mean_std",
    "success_rate",
    "summarize",
    "target_confidence",
    "topk_iou",
    "topk_mask",
]
