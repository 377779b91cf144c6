"""The one protocol every interpreter follows (Captum-like: ``attribute(x, target)``).

An interpreter is built from a classifier (:class:`adv2.core.models.ImageClassifier`) plus its own
parameters, and called with a batch ``x`` in [0,1] of shape (N, C, H, W) and a batch of target
classes (N,). It returns attribution maps of shape (N, 1, h, w) with values in [0,1] at its
*native* resolution (``map_size``). Where the method allows, the map is differentiable with
respect to ``x`` when ``create_graph=True`` (the ADV2 attack needs this); otherwise it is detached.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from adv2.core.tensors import module_device

# How the ADV2 attack differentiates an interpreter (adv2.core.attacks picks its variant from this):
# "differentiable" = the map itself is differentiable w.r.t. x (sign-step ADV2 on CE + lambda l_int);
# "bilevel"        = the map is the result of an inner optimisation (MASK): the attack unrolls it.
AttackStyle = Literal["differentiable", "bilevel"]
ATTACK_STYLES: tuple[str, ...] = ("differentiable", "bilevel")


class Interpreter(Protocol):
    name: str  # "grad", "cam", "rts", "mask"
    map_size: int  # native map resolution (h = w = map_size)
    attack_style: AttackStyle  # see ATTACK_STYLES; an interpreter that omits it is "differentiable"

    def attribute(self, x: torch.Tensor, target: torch.Tensor, *, create_graph: bool = False) -> torch.Tensor:
        """Maps (N, 1, map_size, map_size) in [0,1] for images ``x`` and classes ``target``."""
        ...

    def __call__(
        self, x: torch.Tensor, target: torch.Tensor, *, create_graph: bool = False
    ) -> torch.Tensor: ...


# Optional capabilities the sign-step ADV2 variant uses when an interpreter declares them.
@runtime_checkable
class HasAttackSurrogate(Protocol):
    """The map the attack should differentiate is another interpreter's (Grad: the same pooling on
    a smooth-ReLU copy of the model, whose second derivatives are not zero)."""

    def attack_surrogate(self, tau: float) -> Interpreter: ...


@runtime_checkable
class HasMapsWithLogits(Protocol):
    """Logits and map from ONE forward pass (CAM: the authors' ``cam_forward``)."""

    def attribute_with_logits(
        self, x: torch.Tensor, target: torch.Tensor, *, create_graph: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


@runtime_checkable
class HasOwnEncoder(Protocol):
    """The interpreter classifies with its own encoder copy (RTS), which the attack must fool too."""

    def encoder_logits(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class HasMapsWithEncoderLogits(Protocol):
    """Map and own-encoder logits from ONE pass of the interpreter's network (RTS), and whether
    that encoder is an exact copy of a classifier (then its logits are the classifier's)."""

    def attribute_with_encoder_logits(
        self, x: torch.Tensor, target: torch.Tensor, *, create_graph: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def encoder_is(self, model: torch.nn.Module) -> bool: ...


class BilevelInterpreter(Interpreter, Protocol):
    """What the bilevel ADV2 attack needs from a ``"bilevel"`` interpreter (MASK)."""

    settings: object  # has ``lr``: the inner optimiser's step size

    def init_mask(self, n: int) -> torch.Tensor: ...

    def sample_jitter(self, generator: torch.Generator | None = None) -> tuple[int, int]: ...

    def prepare(self, x: torch.Tensor) -> object: ...

    def mask_objective(
        self,
        m: torch.Tensor,
        x: torch.Tensor,
        t: torch.Tensor,
        jitter: tuple[int, int] = (0, 0),
        prepared=None,
    ) -> torch.Tensor: ...


def attack_style(interpreter: object) -> str:
    """The interpreter's declared :data:`AttackStyle` (``"differentiable"`` when it declares none)."""
    style = getattr(interpreter, "attack_style", "differentiable")
    if style not in ATTACK_STYLES:
        raise ValueError(
            f"{type(interpreter).__name__}.attack_style is {style!r}; expected one of {ATTACK_STYLES}"
        )
    return style


def minmax_normalize(m: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-sample min-max to [0,1] over all but the batch dimension (differentiable)."""
    flat = m.flatten(1)
    lo = flat.min(dim=1, keepdim=True).values
    hi = flat.max(dim=1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(eps)).view_as(m)


def as_target(target: torch.Tensor | int | list, n: int, device: torch.device) -> torch.Tensor:
    """Accept an int, a list or a tensor of classes and return a (n,) long tensor on ``device``."""
    t = torch.as_tensor(target, dtype=torch.long, device=device)
    return t.expand(n).contiguous() if t.dim() == 0 else t


# ----------------------------------------------------------------------------- shared helpers
def gaussian_kernel1d(
    ksize: int, sigma: float | None = None, device=None, dtype=torch.float32
) -> torch.Tensor:
    """Normalised 1-D Gaussian; ``sigma`` None/<=0 uses OpenCV's default for ``ksize``
    (``0.3 * ((ksize - 1) / 2 - 1) + 0.8``), as the authors' ``cv2.GaussianBlur(k, -1)``."""
    if sigma is None or sigma <= 0:
        sigma = 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8
    r = torch.arange(ksize, device=device, dtype=dtype) - (ksize - 1) / 2
    k = torch.exp(-0.5 * (r / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(
    x: torch.Tensor, ksize: int, sigma: float | None = None, mode: str = "reflect"
) -> torch.Tensor:
    """Separable Gaussian blur of each channel of ``x`` (N, C, H, W); differentiable.

    ``mode="reflect"`` mirrors without repeating the edge pixel, like OpenCV's default border.
    """
    if ksize <= 1:
        return x
    c = x.shape[1]
    k = gaussian_kernel1d(ksize, sigma, x.device, x.dtype)
    pad = ksize // 2
    if mode == "reflect" and min(x.shape[-2:]) <= pad:
        mode = "replicate"  # reflect padding needs the image to be larger than the pad
    h = F.pad(x, (pad, pad, pad, pad), mode=mode)
    h = F.conv2d(h, k.view(1, 1, 1, -1).expand(c, 1, 1, ksize), groups=c)
    return F.conv2d(h, k.view(1, 1, -1, 1).expand(c, 1, ksize, 1), groups=c)


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
