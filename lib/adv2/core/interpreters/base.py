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
