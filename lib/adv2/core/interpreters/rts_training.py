"""RTS training (pytorch-saliency's recipe, described in :mod:`adv2.core.interpreters.rts`): the
masking and the loss of :func:`rts_loss`, and :func:`train_rts`'s two phases."""

from __future__ import annotations

import copy
import time
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from adv2.core.interpreters.base import gaussian_blur
from adv2.core.interpreters.rts import RTSNet
from adv2.core.parallel import INIT_LOCK, one_cpu_thread
from adv2.core.progress import progress_bar
from adv2.core.tensors import random_targets


# ----------------------------------------------------------------------------- losses
def cw_loss(
    logits: torch.Tensor, classes: torch.Tensor, targeted: torch.Tensor, t_conf: float, nt_conf: float
) -> torch.Tensor:
    """Carlini-Wagner margins, mean over the batch: targeted rows push logit ``c`` above all
    others by ``t_conf``; the others push it below the best other class by ``nt_conf``."""
    this = logits.gather(1, classes.view(-1, 1)).squeeze(1)
    others = logits.masked_fill(F.one_hot(classes, logits.shape[1]).bool(), float("-inf"))
    best_other = others.amax(dim=1)
    t = F.relu(best_other - this + t_conf)
    nt = F.relu(this - best_other + nt_conf)
    return torch.where(targeted, t, nt).mean()


def area_loss(mask: torch.Tensor, power: float = 0.3) -> torch.Tensor:
    return ((mask + 5e-4) ** power).mean()


def smoothness_loss(mask: torch.Tensor, power: float = 2.0, border: float = 0.3) -> torch.Tensor:
    dx = (mask[:, :, 1:, :] - mask[:, :, :-1, :]).abs() ** power
    dy = (mask[:, :, :, 1:] - mask[:, :, :, :-1]).abs() ** power
    edge = (
        (mask[:, :, 0, :] ** power).sum()
        + (mask[:, :, -1, :] ** power).sum()
        + (mask[:, :, :, 0] ** power).sum()
        + (mask[:, :, :, -1] ** power).sum()
    )
    return (dx.sum() + dy.sum() + border * edge) / (power * mask.shape[0])


def default_area_weight(input_size: int) -> float:
    """The recipe's 8 for ImageNet-sized images; 4 for small ones, whose object fills half the
    frame (with 8 the decoder of our small DenseNet collapsed to near-empty masks)."""
    return 8.0 if input_size >= 112 else 4.0


def blur_params(input_size: int) -> tuple[int, float]:
    """The recipe's blur (kernel 55, sigma 11 at 224 px), scaled to ``input_size``."""
    sigma = 11.0 * input_size / 224
    k = int(2 * round(2.5 * sigma) + 1)
    return k, sigma


def apply_mask(
    x: torch.Tensor,
    mask: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    noise_std: float = 0.055,
    color_range: float = 0.33,
    blur_prob: float = 0.5,
    x_noise_std: float = 0.015,
) -> torch.Tensor:
    """Phi(x, M) = M * x' + (1 - M) * alt for training (pytorch-saliency's ``apply_mask``).

    ``x' = x + N(0, 0.015^2)``; ``alt`` = grey 0.5 + N(0, 0.055^2) + a random colour per image and
    channel U(-0.165, 0.165), replaced with probability ``blur_prob`` by a Gaussian blur of x (the
    recipe's numbers for [-1,1] images, halved for [0,1]). ``mask`` (N,1,H,W) at input size. Only
    the mask carries gradients.
    """
    x = x.detach()
    n, c = x.shape[:2]

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=x.device)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, device=x.device)

    xs = x + x_noise_std * randn(*x.shape) if x_noise_std else x
    alt = 0.5 + noise_std * randn(*x.shape) + color_range * (rand(n, c, 1, 1) - 0.5)
    if blur_prob > 0:
        k, s = blur_params(x.shape[-1])
        use_blur = (rand(n, 1, 1, 1) < blur_prob).to(x.dtype)
        alt = alt * (1 - use_blur) + gaussian_blur(x, k, s) * use_blur
    return mask * xs + (1 - mask) * alt


def sample_selector_classes(
    y: torch.Tensor, num_classes: int, fake_prob: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """With probability ``fake_prob`` a random wrong class ``(y + U{1..K-1}) mod K``, else ``y``.
    Returns ``(classes, is_real)``."""
    fake = torch.rand(y.shape[0], generator=generator, device=y.device) < fake_prob
    return torch.where(fake, random_targets(y, num_classes, generator), y), ~fake


def rts_loss(
    model: nn.Module,
    rts: RTSNet,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    classes: torch.Tensor | None = None,
    is_real: torch.Tensor | None = None,
    fake_prob: float = 0.3,
    generator: torch.Generator | None = None,
    area_weight: float | None = None,
    smooth_weight: float | None = None,
    preserver_weight: float = 0.3,
    destroyer_conf: float = 5.0,
    preserver_conf: float = 1.0,
    confidence: float = 0.0,
    detach_encoder: bool = True,
    one_pass: bool = True,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The phase-2 (decoder) loss on one batch; returns ``(loss, parts)``.

    ``model`` is the black box (frozen classifier), ``y`` true labels. Selector classes are drawn
    with :func:`sample_selector_classes` unless ``classes``/``is_real`` are given. ``parts`` holds
    detached scalars ``destroyer, area, smooth, preserver, total`` and the masks (``mask``,
    native resolution, with graph) so a defense (AID) can add its own term to ``loss``.
    ``one_pass``: the black box classifies both masked batches in one call when it is in eval
    mode (the same logits; ``False`` is the two calls of the code before issue 13).
    """
    if classes is None:
        classes, is_real = sample_selector_classes(y, model.num_classes, fake_prob, generator)
    elif is_real is None:
        is_real = classes == y
    if area_weight is None:
        area_weight = default_area_weight(x.shape[-1])
    if smooth_weight is None:
        smooth_weight = 0.005 * 224 / x.shape[-1]
    out = rts(x, classes, confidence, detach_encoder=detach_encoder)
    m = F.interpolate(out.mask, size=x.shape[-2:], mode="bilinear", align_corners=False)
    x_destroy = apply_mask(x, 1 - m, generator=generator)
    x_preserve = apply_mask(x, m, generator=generator)  # drawn second, as always
    if model.training or not one_pass:  # batch statistics: each half must see only its images
        destroyed, preserved = model(x_destroy), model(x_preserve)
    else:  # one pass over both halves: the same logits, half the calls, larger convolutions
        destroyed, preserved = model(torch.cat([x_destroy, x_preserve])).split(x.shape[0])
    destroyer = cw_loss(destroyed, classes, ~is_real, 1.0, destroyer_conf)
    preserver = cw_loss(preserved, classes, is_real, preserver_conf, 1.0)
    area = area_loss(m)
    smooth = smoothness_loss(m)
    loss = destroyer + area_weight * area + smooth_weight * smooth + preserver_weight * preserver
    parts = {
        "destroyer": destroyer.detach(),
        "area": area.detach(),
        "smooth": smooth.detach(),
        "preserver": preserver.detach(),
        "total": loss.detach(),
        "mask": out.mask,
    }
    return loss, parts


# ----------------------------------------------------------------------------- training
def _augment(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


def _milestones(iterations: int) -> list[int]:
    """The recipe divides the selector's lr by 10 every 4000 of 8500 iterations: keep the fractions."""
    return sorted({max(1, int(iterations * f)) for f in (4000 / 8500, 8000 / 8500)})


@one_cpu_thread
def train_rts(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    *,
    phase1_iterations: int = 8500,
    phase2_iterations: int = 3000,
    phase1_batch_size: int = 128,
    batch_size: int = 64,
    phase1_lr: float = 1e-3,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    phase1_fake_prob: float = 0.5,
    fake_prob: float = 0.3,
    area_weight: float | None = None,
    smooth_weight: float | None = None,
    preserver_weight: float = 0.3,
    map_size: int | None = None,
    width: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
    log_every: int = 0,
    reduce: int = 0,
    tie_selector: bool = False,
    cam_prior: bool = False,
    fast: bool = True,
) -> tuple[RTSNet, dict[str, Any]]:
    """Train an :class:`RTSNet` for the frozen classifier ``model`` (pytorch-saliency recipe).

    Defaults are the recipe's (8500 + 3000 iterations, Adam 1e-3, wd 1e-4, batches 128 / 64);
    the CPU profiles pass fewer iterations and larger learning rates. Seeded: the same arguments
    give the same network on the same device. Returns the trained net (eval mode, frozen) and
    metrics: curves (``phase1_step/loss/accuracy``, ``phase2_step/total/destroyer/preserver/
    area/smooth``), ``seconds`` and the final exists-accuracy of the selector.
    ``x_train`` may be uint8 (0-255; a pool of 224-pixel photos then takes a quarter of the
    memory): each batch is converted to [0,1] floats. ``reduce``/``tie_selector``/``cam_prior``: see
    :class:`RTSNet`. ``fast`` (the default) trains in channels-last memory order (issue 13); the
    objective and the random draws are those of ``fast=False``, which the benchmark compares.
    """
    device = torch.device(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    model = model.to(device).eval()
    with INIT_LOCK:  # the global generator initialises the decoder (adv2.core.parallel)
        torch.manual_seed(seed)
        rts = RTSNet(
            model,
            map_size=map_size,
            width=width,
            reduce=reduce,
            tie_selector=tie_selector,
            cam_prior=cam_prior,
        ).to(device)
    fmt = torch.channels_last if fast else torch.contiguous_format
    if fast:  # channels-last copies: same arithmetic, faster convolutions (the caller's model untouched)
        model = copy.deepcopy(model).to(memory_format=fmt)
        rts.to(memory_format=fmt)
    n = len(x_train)
    k = model.num_classes
    started = time.time()
    log_every = log_every or max(1, (phase1_iterations + phase2_iterations) // 40)

    def batch(size: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, n, (size,), generator=gen, device=device).cpu()
        xb = x_train[idx].to(device)
        if xb.dtype == torch.uint8:
            xb = xb.float() / 255
        return _augment(xb, gen).contiguous(memory_format=fmt), y_train[idx].to(device)

    m: dict[str, Any] = {
        k_: []
        for k_ in (
            "phase1_step",
            "phase1_loss",
            "phase1_accuracy",
            "phase2_step",
            "phase2_total",
            "phase2_destroyer",
            "phase2_preserver",
            "phase2_area",
            "phase2_smooth",
        )
    }
    bar = progress_bar(total=phase1_iterations + phase2_iterations, desc="train rts", enabled=progress)

    # phase 1: the class selector alone learns whether a class is present
    rts.train()
    opt = torch.optim.Adam(rts.selector.parameters(), lr=phase1_lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, _milestones(phase1_iterations), 0.1)
    run_loss, run_acc = [], []
    for it in range(phase1_iterations):
        xb, yb = batch(phase1_batch_size)
        classes, is_real = sample_selector_classes(yb, k, phase1_fake_prob, gen)
        with torch.no_grad():  # the selector's gate only needs the (fixed) last feature map
            last = rts.encoder.features(xb)
        act = (last * rts.selector(classes)[:, :, None, None]).sum(1).mean(dim=(1, 2))
        exists = torch.stack([-act / 2, act / 2], 1)
        loss = F.cross_entropy(exists, is_real.long())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        run_loss.append(loss.detach())
        run_acc.append(((exists.argmax(1) == 1) == is_real).float().mean().detach())
        if (it + 1) % log_every == 0 or it + 1 == phase1_iterations:
            m["phase1_step"].append(it + 1)
            m["phase1_loss"].append(float(torch.stack(run_loss).mean()))
            m["phase1_accuracy"].append(float(torch.stack(run_acc).mean()))
            run_loss, run_acc = [], []
            bar.set_postfix(phase=1, loss=f"{m['phase1_loss'][-1]:.3f}")
        bar.update(1)

    # phase 2: the decoder, with encoder and selector frozen
    rts.selector.requires_grad_(False)
    opt = torch.optim.Adam(rts.decoder_parameters(), lr=lr, weight_decay=weight_decay)
    runs: dict[str, list] = {key: [] for key in ("total", "destroyer", "preserver", "area", "smooth")}
    for it in range(phase2_iterations):
        xb, yb = batch(batch_size)
        # duplicates (shape only): rts_loss's keyword arguments, one per line, like aid_eval's and
        # trained.photomodels' calls (listed in lib/adv2/README.md)
        loss, parts = rts_loss(
            model,
            rts,
            xb,
            yb,
            fake_prob=fake_prob,
            generator=gen,
            area_weight=area_weight,
            smooth_weight=smooth_weight,
            preserver_weight=preserver_weight,
            one_pass=fast,
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        for key in runs:
            runs[key].append(parts[key])
        if (it + 1) % log_every == 0 or it + 1 == phase2_iterations:
            m["phase2_step"].append(it + 1)
            for key in runs:
                m[f"phase2_{key}"].append(float(torch.stack(runs[key]).mean()))
                runs[key] = []
            bar.set_postfix(phase=2, loss=f"{m['phase2_total'][-1]:.3f}")
        bar.update(1)
    bar.close()
    rts.to(memory_format=torch.contiguous_format).eval().requires_grad_(False)
    m["seconds"] = time.time() - started
    m["phase1_final_accuracy"] = m["phase1_accuracy"][-1] if m["phase1_accuracy"] else None
    m["images_seen"] = phase1_iterations * phase1_batch_size + phase2_iterations * batch_size
    return rts, m
