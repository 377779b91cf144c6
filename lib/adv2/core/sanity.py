"""Sanity metrics of attribution maps: the deletion curve (Petsiuk et al.) and Dabkowski & Gal's
preserve / destroy tests against random masks of the same area (chapter 2, and chapter 4 for RTSA)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from adv2.core.interpreters.base import gaussian_blur
from adv2.core.interpreters.rts_training import blur_params
from adv2.core.tensors import module_device


@torch.no_grad()
def deletion_curve(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    maps: torch.Tensor | None,
    *,
    steps: int = 20,
    baseline: float | str = "blur",
    cell: int = 1,
    seed: int = 0,
    batch_size: int = 256,
) -> torch.Tensor:
    """Deletion test (Petsiuk et al.): p(y) as the most important regions are removed first.

    ``maps`` (N,1,h,w) are upsampled (bilinear) to the input size, averaged over square cells of
    ``cell`` pixels (1 = single pixels), and the cells are ranked by them; ``maps=None`` ranks the
    cells in a random order (the baseline every interpreter should beat). At fraction k/steps
    (k = 0..steps) the top-ranked cells are replaced by ``baseline``: a number (a constant image)
    or ``"blur"`` (a strongly blurred copy of x). Ties (flat regions of coarse maps) are broken at
    random (seeded). Returns (N, steps+1) probabilities of class ``y``; the mean over fractions
    (:func:`curve_auc`) is the deletion AUC: lower means the map found what the classifier needs.
    """
    device = module_device(model)
    x = x.detach().float().cpu()
    n, c, hh, ww = x.shape
    gh, gw = hh // cell, ww // cell
    gen = torch.Generator().manual_seed(int(seed))
    noise = torch.rand(n, gh * gw, generator=gen)
    if maps is None:
        score = noise
    else:
        up = F.interpolate(maps.detach().float().cpu(), size=(hh, ww), mode="bilinear", align_corners=False)
        up = F.avg_pool2d(up, cell).flatten(1) if cell > 1 else up.flatten(1)
        span = (up.amax(1, keepdim=True) - up.amin(1, keepdim=True)).clamp_min(1e-12)
        score = up + 1e-6 * span * noise  # random tie-breaking only
    rank = torch.empty_like(score, dtype=torch.long)
    order = score.argsort(dim=1, descending=True)
    rank.scatter_(1, order, torch.arange(gh * gw).expand(n, -1).contiguous())
    rank = rank.view(n, 1, gh, gw)
    if cell > 1:
        rank = rank.repeat_interleave(cell, 2).repeat_interleave(cell, 3)
    if isinstance(baseline, str):
        k = int(2 * round(2.5 * hh / 16) + 1)
        fill = gaussian_blur(x, k, hh / 16)
    else:
        fill = torch.full_like(x, float(baseline))
    fracs = torch.linspace(0, 1, steps + 1)
    probs = torch.empty(n, steps + 1)
    model.eval()
    chunk = max(1, batch_size // (steps + 1))  # images per forward (each gives steps+1 inputs)
    for i in range(0, n, chunk):
        xb, fb, rb = x[i : i + chunk], fill[i : i + chunk], rank[i : i + chunk]
        # (B, S, 1, H, W): which pixels survive at every fraction, all fractions in one forward
        keep = rb.unsqueeze(1) >= (fracs * gh * gw).round().view(1, -1, 1, 1, 1)
        xd = torch.where(keep, xb.unsqueeze(1), fb.unsqueeze(1))
        logits = model(xd.flatten(0, 1).to(device))
        p = F.softmax(logits.float(), 1).cpu().view(len(xb), steps + 1, -1)
        probs[i : i + len(xb)] = p.gather(
            2, y[i : i + len(xb)].cpu().view(-1, 1, 1).expand(-1, steps + 1, 1)
        ).squeeze(2)
    return probs


def curve_auc(curve: torch.Tensor) -> torch.Tensor:
    """Area under per-sample curves sampled at equally spaced fractions (trapezoid rule), (N,)."""
    return torch.trapezoid(curve, dx=1.0 / (curve.shape[1] - 1), dim=1)


# ----------------------------------------------------------------------------- sanity check
def shuffled_like(masks: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random masks with exactly the same values (hence the same area) as ``masks``: each image's
    cells are permuted at random."""
    flat = masks.flatten(1)
    perm = torch.rand(flat.shape, generator=generator).argsort(dim=1).to(masks.device)
    return flat.gather(1, perm).view_as(masks)


def _background(x: torch.Tensor, alt: str | float) -> torch.Tensor:
    if alt == "blur":
        k, s = blur_params(x.shape[-1])
        return gaussian_blur(x, k, s)
    return torch.full_like(x, 0.5 if alt == "grey" else float(alt))


def _keep_gone(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, mk: torch.Tensor, background: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    up = F.interpolate(mk, size=x.shape[-2:], mode="bilinear", align_corners=False)
    keep = model(up * x + (1 - up) * background).argmax(1) == y
    gone = model((1 - up) * x + up * background).argmax(1) != y
    return keep.float(), gone.float()


@torch.no_grad()
def preserve_destroy_flags(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, masks: torch.Tensor, *, alt: str | float = "blur"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image flags of :func:`preserve_destroy`'s test: ``(preserved, destroyed)`` as 0/1
    floats (N,), for intervals over images."""
    x, y = x.detach(), y.to(x.device)
    return _keep_gone(model, x, y, masks, _background(x, alt))


@torch.no_grad()
def preserve_destroy_per_image(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    masks: torch.Tensor,
    *,
    alt: str | float = "blur",
    random_trials: int = 5,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Per image (CPU tensors, 0/1 as float): ``preserve``, ``destroy``, ``both`` of the masks,
    and ``random_preserve``, ``random_destroy``, ``random_both``: the fraction of the
    ``random_trials`` permuted masks that do so (:func:`preserve_destroy`'s numbers are their
    means); the per-image values give intervals (:mod:`adv2.core.stats`)."""
    x, y = x.detach(), y.to(x.device)
    background = _background(x, alt)

    def rates(mk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep, gone = _keep_gone(model, x, y, mk, background)
        return keep.cpu(), gone.cpu()

    keep, gone = rates(masks)
    gen = torch.Generator().manual_seed(int(seed))
    rk, rg, rb = [], [], []
    for _ in range(random_trials):
        a, b = rates(shuffled_like(masks.cpu(), gen).to(masks.device))
        rk.append(a)
        rg.append(b)
        rb.append(a * b)
    return {
        "preserve": keep,
        "destroy": gone,
        "both": keep * gone,
        "random_preserve": torch.stack(rk).mean(0),
        "random_destroy": torch.stack(rg).mean(0),
        "random_both": torch.stack(rb).mean(0),
    }


@torch.no_grad()
def preserve_destroy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, masks: torch.Tensor, **options: Any
) -> dict[str, float]:
    """Dabkowski & Gal's two tests of a saliency mask, against random masks of the same area.

    For masks M (N,1,s,s) of classes ``y``: *preserved* = the classifier still predicts y on
    ``Phi(x, M)``; *destroyed* = it no longer predicts y on ``Phi(x, 1 - M)``; *both* = both at
    once (a mask that finds the evidence). Phi keeps the masked part and replaces the rest with a
    blurred copy of x (``alt="blur"``), mid-grey (``"grey"``) or a constant (a number; 0 = black,
    Fashion-MNIST's background), with no random noise. The random
    baseline permutes each mask's cells (``random_trials`` draws, averaged). Returns fractions
    ``preserve, destroy, both, random_preserve, random_destroy, random_both, area``
    (the means of :func:`preserve_destroy_per_image`, whose keywords ``alt``, ``random_trials``
    and ``seed`` ``options`` passes on).
    """
    per_image = preserve_destroy_per_image(model, x, y, masks, **options)
    return {
        **{k: float(v.mean()) for k, v in per_image.items()},
        "area": float(masks.mean()),
    }
