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
  EfficientNet-Lite2 at 260 px (stages ..., 65, 33, 17, 9): each x2 level cropped to its skip's
  odd side, 9 -> 17 -> 33 -> 65, map 65x65 (a quarter of the side, as 56 of 224).

Training (:func:`adv2.core.interpreters.rts_training.train_rts`, pytorch-saliency's recipe): phase 1 trains only the selector (CE on
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
noise and colour ranges are halved. Training lives in :mod:`adv2.core.interpreters.rts_training`;
:func:`adv2.trained.loading.load_rts` caches the trained selector and decoder (the encoder is
restored from the classifier, :func:`frozen_rts_from_state`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from adv2.core.interpreters.base import as_target
from adv2.core.parallel import INIT_LOCK
from adv2.core.precision import forward_precision, fp32, fp32_forward


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
    """x2 upsampling by PixelShuffle (cropped to the skip's side), concatenation of the encoder
    skip, one bottleneck."""

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
        if skip is not None:  # a skip of odd side 2s - 1: drop the last row and column (a no-op else)
            h = h[..., : skip.shape[-2], : skip.shape[-1]]
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
        # each x2 level's skip: the deepest stage at twice the side, or at twice less one (a stage of
        # odd side n halves to (n + 1) / 2: EfficientNet-Lite2 at 260 px, 9 -> 17 -> 33 -> 65)
        chain, res = [], s_last
        while res < self.map_size:
            at = [i for i, (_, s) in enumerate(shapes) if s in (2 * res, 2 * res - 1) and s > res]
            chain.append(max(at, default=None))
            res = shapes[chain[-1]][1] if chain[-1] is not None else 2 * res
        if res != self.map_size:
            raise ValueError(
                f"map_size {self.map_size} is not the last stage's size {s_last} doubled (each level "
                "cropped to a stage of odd side) any number of times"
            )
        n_up = len(chain)
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
        for level, idx in enumerate(chain):  # idx: the skip stage (None if the encoder has none there)
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


def architecture_options(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The :class:`RTSNet` options a stored state was built with (``reduce``, ``tie_selector``,
    ``cam_prior``)."""
    reduce = state.get("reduce.0.weight")
    return {
        "reduce": int(reduce.shape[0]) if reduce is not None else 0,
        "tie_selector": "selector.scale" in state,
        "cam_prior": "prior.weight" in state,
    }


def stored_state(net: RTSNet, with_encoder: bool = False) -> dict[str, torch.Tensor]:
    """What a cache keeps of a trained RTS (or RTSA): its state on the CPU, without the encoder --
    the classifier's own copy, restored by :func:`frozen_rts_from_state` -- unless AID trained it."""
    return {k: v.cpu() for k, v in net.state_dict().items() if with_encoder or not k.startswith("encoder.")}


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
    # its random init (then overwritten) draws from the global generator: under INIT_LOCK, or a job
    # training beside this load could draw between its seeding and its init (adv2.core.parallel)
    with INIT_LOCK:
        net = RTSNet(model, map_size=map_size, width=width, **architecture_options(state))
    missing, unexpected = net.load_state_dict(state, strict=False)
    bad = [k for k in missing if not k.startswith("encoder.")] + list(unexpected)
    if bad:
        raise RuntimeError(f"{source} does not fit this classifier: {bad[:5]}")
    return net.to(device).eval().requires_grad_(False)
