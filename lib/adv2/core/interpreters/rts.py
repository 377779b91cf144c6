"""RTS: real-time saliency (Dabkowski & Gal 2017), trained by the book (paper-method 2.3).

Model (:class:`RTSNet`), the authors' ``RTSaliencyModel`` re-sized to our classifiers:

* **encoder** = a frozen deep copy of the classifier (its stages *and* its head). Being a copy and
  not the classifier itself matters for ADV2: the attack must fool both the black box and RTS's
  own encoder, whose logits :meth:`RTSNet.encoder_logits` exposes (the 0.1 CE term);
* **class selector** = ``Embedding(num_classes, C_last)``; ``act = sum_ch A * emb[c]`` gates the
  last feature map, ``A <- A * sigmoid(act - confidence)``; "exists" logits ``(-mean act/2,
  +mean act/2)`` say whether class ``c`` is in the image;
* **decoder** = U-Net upsamplers (conv3x3-BN-ReLU to 4C, PixelShuffle(2), ReLU, concat the
  encoder's skip of that resolution, one residual bottleneck) from the last stage up to the
  native map size, then a 1x1 conv to two channels and ``map = |c0| / (|c0| + |c1|)``.
  Fashion-MNIST (stages 28, 14, 7): one upsampler 7 -> 14 with the 14x14 skip, map 14x14.
  224-pixel models (stages ..., 56, 28, 14, 7): 7 -> 14 -> 28 -> 56, map 56x56 (as the paper).

Training (:func:`train_rts`, pytorch-saliency's recipe): phase 1 trains only the selector (CE on
"exists", fake class with probability 0.5); phase 2 trains the decoder with encoder and selector
frozen, fake class with probability 0.3, and the loss of :func:`rts_loss`::

    L = destroyer + area_w * area + smooth_w * smooth + 0.3 * preserver      (area_w 8; 4 at 28 px)
    destroyer = cw(f(Phi(x, 1-M)), c; targeted if c is fake, t_conf 1, nt_conf 5)
    preserver = cw(f(Phi(x, M)),   c; targeted if c is real, t_conf 1, nt_conf 1)
    area      = mean((M + 5e-4)^0.3)          smooth = sum |grad M|^2 + 0.3 border, / (2 N)
    Phi(x, M) = M * x + (1 - M) * alt,  alt = grey + noise + random colour, or blur(x) (p 0.5)

with M upsampled bilinearly to the input size. Sizes scale with the image (blur kernel 55, sigma
11 at 224 px -> 7, 1.4 at 28 px; smoothness weight 0.005 * 224 / size because its sums grow with
the number of pixels while the area term is a mean). The area weight is the recipe's 8 at 224 px
but 4 at 28 px: a garment fills half a Fashion-MNIST frame, and with 8 the decoder of our small
DenseNet learned near-empty masks that were no better than random ones. Images stay in [0,1]: the recipe's [-1, 1]
noise and colour ranges are halved. :func:`trained_rts` caches the trained selector and decoder
with :func:`adv2.trained.artifacts.load_or_compute`; the encoder is restored from the classifier.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from adv2.core.interpreters.base import as_target, gaussian_blur
from adv2.core.parallel import INIT_LOCK, one_cpu_thread
from adv2.core.precision import forward_precision, fp32, fp32_forward
from adv2.core.progress import progress_bar
from adv2.core.tensors import random_targets

# Bump when the RTS architecture or training recipe changes (invalidates cached RTS artifacts).
RTS_RECIPE_VERSION = 1


# ----------------------------------------------------------------------------- architecture
class Bottleneck(nn.Module):
    """Residual bottleneck (1x1 -> 3x3 -> 1x1, ratio 4) with a 1x1 projection when widths differ."""

    def __init__(self, c_in: int, c_out: int, ratio: int = 4):
        super().__init__()
        mid = max(c_out // ratio, 4)
        self.body = nn.Sequential(
            nn.Conv2d(c_in, mid, 1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(),
            nn.Conv2d(mid, mid, 3, 1, 1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(),
            nn.Conv2d(mid, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class UpSampler(nn.Module):
    """x2 upsampling by PixelShuffle, concatenation of the encoder skip, one bottleneck."""

    def __init__(self, c_in: int, c_skip: int, c_out: int):
        super().__init__()
        self.up = nn.Sequential(
            nn.Conv2d(c_in, 4 * c_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(4 * c_out),
            nn.ReLU(),
            nn.PixelShuffle(2),
            nn.ReLU(),
        )
        self.block = Bottleneck(c_out + c_skip, c_out)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        h = self.up(x)
        return self.block(h if skip is None else torch.cat([h, skip], dim=1))


@dataclass
class RTSOutput:
    mask: torch.Tensor  # (N, 1, s, s) saliency in [0,1] (the map)
    exists_logits: torch.Tensor  # (N, 2): [class absent, class present]
    encoder_logits: torch.Tensor  # (N, K): the encoder copy's own classification


def default_map_size(input_size: int) -> int:
    return input_size // 2 if input_size <= 64 else input_size // 4


class TiedSelector(nn.Module):
    """A class selector for any of the classifier's classes: the class's row of the encoder's
    own linear head, times a learned scale (so ``act`` is the class's CAM logit map, scaled).

    Used for ImageNet classifiers, whose 1000 classes a small training pool never covers: a free
    embedding would learn only the classes the pool shows, while the head already knows them all.
    The head belongs to the encoder (restored from the classifier), so only ``scale`` is stored.
    """

    def __init__(self, head: nn.Linear):
        super().__init__()
        self._head = [head]  # a list keeps the encoder's head out of this module's state_dict
        # EfficientNet-Lite0's CAM of the true class spans about 1..30 (median 7) over the 7x7
        # cells, of a random other class about -2..3: a quarter of it gates well at initialisation
        self.scale = nn.Parameter(torch.tensor(0.25))

    @property
    def weight(self) -> torch.Tensor:
        return self._head[0].weight * self.scale

    def forward(self, classes: torch.Tensor) -> torch.Tensor:
        return self._head[0].weight[classes] * self.scale


class RTSNet(nn.Module):
    """Encoder copy + class selector + U-Net decoder; ``forward(x, classes) -> RTSOutput``.

    Options for wide encoders (EfficientNet-Lite0's last stage has 1280 channels):
    ``reduce`` > 0 puts a 1x1 conv (``reduce`` channels, BN, ReLU) between the gated last feature
    map and the first upsampler, which keeps the decoder (and its checkpoint) small;
    ``tie_selector`` uses a :class:`TiedSelector` instead of a free embedding. Both are read back
    ``cam_prior`` adds the selector's ``act`` map (with a tied selector: the class's CAM) to the
    decoder's saliency logit, ``mask = sigmoid(logit(c0 / (c0 + c1)) + w * act + b)`` with ``w``,
    ``b`` learned (``prior``) and the decoder's last layer starting at zero: the map starts as a
    thresholded CAM and the decoder learns corrections, which a few hundred iterations on a CPU
    can reach (the decoder alone cannot, from scratch). All three options are read back
    from a stored state by :func:`frozen_rts_from_state`.
    """

    def __init__(
        self,
        model: nn.Module,
        map_size: int | None = None,
        width: int | None = None,
        reduce: int = 0,
        tie_selector: bool = False,
        cam_prior: bool = False,
    ):
        super().__init__()
        self.encoder = copy.deepcopy(model).requires_grad_(False)
        self.encoder.eval()
        size = int(model.input_size)
        shapes = self._stage_shapes(size)
        c_last, s_last = shapes[-1]
        self.map_size = int(map_size or default_map_size(size))
        n_up = int(round(math.log2(self.map_size / s_last)))
        if n_up < 0 or s_last * 2**n_up != self.map_size:
            raise ValueError(
                f"map_size {self.map_size} is not the last stage's size {s_last} times a power of two"
            )
        self.width = int(width or (32 if size <= 64 else 64))
        self.reduce_channels = int(reduce)
        self.tie_selector = bool(tie_selector)
        if self.tie_selector:
            self.selector = TiedSelector(self.encoder.head)
        else:
            self.selector = nn.Embedding(model.num_classes, c_last)
            nn.init.normal_(self.selector.weight, 0.0, 1.0 / math.sqrt(c_last))
        c = c_last
        if self.reduce_channels:
            self.reduce = nn.Sequential(
                nn.Conv2d(c_last, self.reduce_channels, 1, bias=False),
                nn.BatchNorm2d(self.reduce_channels),
                nn.ReLU(),
            )
            c = self.reduce_channels
        ups, skips = [], []
        for level in range(n_up):
            res = s_last * 2 ** (level + 1)
            # skip = the deepest stage at this resolution (None if the encoder has none there)
            idx = max((i for i, (_, s) in enumerate(shapes) if s == res), default=None)
            c_out = self.width * 2 ** (n_up - 1 - level)
            ups.append(UpSampler(c, shapes[idx][0] if idx is not None else 0, c_out))
            skips.append(-1 if idx is None else idx)
            c = c_out
        self.upsamplers = nn.ModuleList(ups)
        self.skip_index = skips
        self.to_saliency = nn.Conv2d(c, 2, 1)
        self.cam_prior = bool(cam_prior)
        if self.cam_prior:
            self.prior = nn.Conv2d(1, 1, 1)  # w * act + b, starting at w 1, b -3 (see above)
            nn.init.constant_(self.prior.weight, 1.0)
            nn.init.constant_(self.prior.bias, -3.0)
            nn.init.zeros_(self.to_saliency.weight)  # c0 = c1 = 1 at first: the map is the prior's
            nn.init.constant_(self.to_saliency.bias, 1.0)

    def _stage_shapes(self, size: int) -> list[tuple[int, int]]:
        p = next(self.encoder.parameters())
        x = torch.zeros(1, self.encoder.in_channels, size, size, device=p.device, dtype=p.dtype)
        with torch.no_grad():
            return [(f.shape[1], f.shape[-1]) for f in self.encoder.stage_features(x)]

    def train(self, mode: bool = True) -> RTSNet:
        super().train(mode)
        self.encoder.eval()  # the encoder is a frozen copy: its BatchNorm statistics never move
        return self

    def decoder_parameters(self) -> list[nn.Parameter]:
        reduce = list(self.reduce.parameters()) if self.reduce_channels else []
        prior = list(self.prior.parameters()) if self.cam_prior else []
        return reduce + list(self.upsamplers.parameters()) + list(self.to_saliency.parameters()) + prior

    def encoder_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(
        self, x: torch.Tensor, classes: torch.Tensor, confidence: float = 0.0, detach_encoder: bool = False
    ) -> RTSOutput:
        if detach_encoder:  # training: the encoder is fixed, no graph through it
            with torch.no_grad():
                feats = self.encoder.stage_features(x)
        else:  # attack: gradients must reach the input through the encoder too
            feats = self.encoder.stage_features(x)
        last = feats[-1]
        enc_logits = self.encoder.logits_from_features(last)
        emb = self.selector(classes)  # (N, C)
        act = (last * emb[:, :, None, None]).sum(1, keepdim=True)  # (N, 1, h, w)
        h = last * torch.sigmoid(act - confidence)
        mean_act = act.mean(dim=(1, 2, 3))
        exists = torch.stack([-mean_act / 2, mean_act / 2], dim=1)
        if self.reduce_channels:
            h = self.reduce(h)
        for up, idx in zip(self.upsamplers, self.skip_index):
            h = up(h, feats[idx] if idx >= 0 else None)
        c = self.to_saliency(h).abs()
        if self.cam_prior:
            prior = F.interpolate(self.prior(act), size=c.shape[-2:], mode="bilinear", align_corners=False)
            logit = torch.log(c[:, :1] + 1e-6) - torch.log(c[:, 1:] + 1e-6)
            mask = torch.sigmoid(logit + prior)
        else:
            mask = c[:, :1] / (c[:, :1] + c[:, 1:] + 1e-8)
        return RTSOutput(mask, exists, enc_logits)


class RTSInterpreter:
    """RTS maps (native ``rts.map_size``: 14x14 for 28 px, 56x56 for 224 px), differentiable.

    ``freeze=False`` leaves the network's mode and parameters alone, for a net still in training
    (AID attacks the current RTSA while its decoder learns)."""

    name = "rts"
    attack_style = "differentiable"

    def __init__(self, model: nn.Module, rts: RTSNet, confidence: float = 0.0, freeze: bool = True):
        self.model = model  # the black box RTS explains (not used to compute the map)
        self.rts = rts
        if freeze:
            rts.eval().requires_grad_(False)
        self.confidence = float(confidence)
        self.map_size = rts.map_size

    def attribute(
        self, x: torch.Tensor, target: torch.Tensor | int, *, create_graph: bool = False
    ) -> torch.Tensor:
        t = as_target(target, x.shape[0], x.device)
        with torch.set_grad_enabled(create_graph), forward_precision(x.device):  # bf16 on CUDA
            m = fp32(self.rts(x if create_graph else x.detach(), t, self.confidence).mask)
        return m if create_graph else m.detach()

    __call__ = attribute

    def encoder_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of RTS's own encoder copy (ADV2 adds 0.1 * CE of these w.r.t. the target)."""
        return fp32_forward(self.rts.encoder_logits, x)

    def attribute_with_encoder_logits(
        self, x: torch.Tensor, target: torch.Tensor | int, *, create_graph: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(map, encoder logits) from ONE RTS forward (the encoder runs once for both)."""
        t = as_target(target, x.shape[0], x.device)
        x_in = x if create_graph else x.detach()
        with torch.set_grad_enabled(create_graph):
            out = self.rts(x_in, t, self.confidence)
            enc = getattr(out, "encoder_logits", None)
            if enc is None:  # a network whose output carries only the mask: its encoder apart
                enc = self.rts.encoder_logits(x_in)
        if create_graph:
            return out.mask, enc
        return out.mask.detach(), enc.detach()

    def encoder_is(self, model: nn.Module) -> bool:
        """Whether RTS's encoder is still an exact copy of ``model`` (same class, both in eval mode,
        equal parameters and buffers): then its logits ARE ``model``'s, and one forward serves both."""
        enc = getattr(self.rts, "encoder", None)
        if not isinstance(enc, nn.Module) or type(enc) is not type(model) or enc.training or model.training:
            return False
        a, b = enc.state_dict(keep_vars=True), model.state_dict(keep_vars=True)
        if a.keys() != b.keys():
            return False
        with torch.no_grad():
            return all(
                a[k].shape == b[k].shape and a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a
            )

    def __repr__(self) -> str:
        return f"RTSInterpreter(map_size={self.map_size}, confidence={self.confidence})"


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


def weights_fingerprint(model: nn.Module) -> str:
    """Short hash of a model's weights: identifies the classifier an RTS was trained for."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def rts_recipe(iterations: tuple[int, int], batch_size: int, lr: float, seed: int = 0) -> dict[str, Any]:
    """The keyword arguments chapter 2 gives :func:`trained_rts` (phase-1 batch = 2 x phase-2
    batch, one learning rate for both phases, as the recipe's 128 / 64). Chapters that reuse the
    cached RTS build them with this function so the cache keys match."""
    return {
        "phase1_iterations": int(iterations[0]),
        "phase2_iterations": int(iterations[1]),
        "phase1_batch_size": 2 * int(batch_size),
        "batch_size": int(batch_size),
        "phase1_lr": float(lr),
        "lr": float(lr),
        "seed": int(seed),
    }


def trained_rts(
    model: nn.Module,
    data: Any,
    *,
    phase1_iterations: int,
    phase2_iterations: int,
    phase1_batch_size: int = 128,
    batch_size: int = 64,
    phase1_lr: float = 1e-3,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    area_weight: float | None = None,
    smooth_weight: float | None = None,
    preserver_weight: float = 0.3,
    map_size: int | None = None,
    width: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    artifacts_dir: str | None = None,
    classifier_key: str | None = None,
    progress: bool = True,
) -> tuple[RTSNet, Any]:
    """The RTS of classifier ``model`` trained on ``data.x_train``/``y_train``, cached.

    ``classifier_key`` names the classifier artifact (e.g. ``Artifact.path.name`` of
    :func:`adv2.core.models.trained_small_cnn`), so a retrained classifier gets a new RTS; when None,
    a hash of the classifier's weights is used. The cache holds the selector and decoder (the
    encoder is the classifier's copy, as the authors' checkpoints exclude it). Returns the frozen
    net (on ``device``) and the :class:`adv2.trained.artifacts.Artifact` (``metrics`` = training curves).
    """
    from adv2.trained.artifacts import load_or_compute

    device = torch.device(device)
    key = classifier_key or weights_fingerprint(model)
    size = int(model.input_size)
    # resolve size-dependent defaults so the cache key holds the values actually used
    area_weight = default_area_weight(size) if area_weight is None else area_weight
    smooth_weight = 0.005 * 224 / size if smooth_weight is None else smooth_weight
    recipe = {
        "phase1_iterations": phase1_iterations,
        "phase2_iterations": phase2_iterations,
        "phase1_batch_size": phase1_batch_size,
        "batch_size": batch_size,
        "phase1_lr": phase1_lr,
        "lr": lr,
        "weight_decay": weight_decay,
        "area_weight": area_weight,
        "smooth_weight": smooth_weight,
        "preserver_weight": preserver_weight,
        "map_size": map_size,
        "width": width,
        "seed": seed,
    }
    params = {
        "kind": "rts",
        "dataset": getattr(data, "name", "?"),
        "arch": getattr(model, "name", "?"),
        "classifier": key,
        "recipe": RTS_RECIPE_VERSION,
        **recipe,
    }

    def compute() -> tuple[dict, dict]:
        net, metrics = train_rts(
            model, data.x_train, data.y_train, device=device, progress=progress, **recipe
        )
        state = {k: v.cpu() for k, v in net.state_dict().items() if not k.startswith("encoder.")}
        return state, metrics

    def check(state: dict) -> None:  # a state that does not fit this classifier: damaged entry
        frozen_rts_from_state(model, state, map_size=map_size, width=width, device="cpu", source="cached RTS")

    art = load_or_compute("rts", params, compute, root=artifacts_dir, check=check)
    net = frozen_rts_from_state(
        model, art.state, map_size=map_size, width=width, device=device, source=f"cached RTS at {art.path}"
    )
    return net, art


def architecture_options(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The :class:`RTSNet` options a stored state was built with (``reduce``, ``tie_selector``,
    ``cam_prior``)."""
    reduce = state.get("reduce.0.weight")
    return {
        "reduce": int(reduce.shape[0]) if reduce is not None else 0,
        "tie_selector": "selector.scale" in state,
        "cam_prior": "prior.weight" in state,
    }


def frozen_rts_from_state(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    *,
    map_size: int,
    width: int,
    device: torch.device | str,
    source: str,
) -> RTSNet:
    """An RTS (or RTSA) for ``model`` from a cached state, frozen and in eval mode. The encoder is
    the classifier's own copy, so a state may leave it out; any other mismatch is an error.
    The options ``reduce`` and ``tie_selector`` of :class:`RTSNet` are read from the state."""
    net = RTSNet(model, map_size=map_size, width=width, **architecture_options(state))
    missing, unexpected = net.load_state_dict(state, strict=False)
    bad = [k for k in missing if not k.startswith("encoder.")] + list(unexpected)
    if bad:
        raise RuntimeError(f"{source} does not fit this classifier: {bad[:5]}")
    return net.to(device).eval().requires_grad_(False)


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
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    masks: torch.Tensor,
    *,
    alt: str | float = "blur",
    random_trials: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """Dabkowski & Gal's two tests of a saliency mask, against random masks of the same area.

    For masks M (N,1,s,s) of classes ``y``: *preserved* = the classifier still predicts y on
    ``Phi(x, M)``; *destroyed* = it no longer predicts y on ``Phi(x, 1 - M)``; *both* = both at
    once (a mask that finds the evidence). Phi keeps the masked part and replaces the rest with a
    blurred copy of x (``alt="blur"``), mid-grey (``"grey"``) or a constant (a number; 0 = black,
    Fashion-MNIST's background), with no random noise. The random
    baseline permutes each mask's cells (``random_trials`` draws, averaged). Returns fractions
    ``preserve, destroy, both, random_preserve, random_destroy, random_both, area``
    (the means of :func:`preserve_destroy_per_image`).
    """
    per_image = preserve_destroy_per_image(
        model, x, y, masks, alt=alt, random_trials=random_trials, seed=seed
    )
    return {
        **{k: float(v.mean()) for k, v in per_image.items()},
        "area": float(masks.mean()),
    }
