"""The smooth-ReLU surrogate gradient and the second-order-friendly model copies (paper-method 3.3.1).

Grad's map is a gradient, so attacking it differentiates a gradient: ReLU's second derivative is 0
almost everywhere and the attack would see no signal. :func:`smooth_backward_copy` gives a model
whose forward values are exact but whose backward uses a smooth ReLU's derivative
(:class:`SmoothReLU`), with convolutions and BatchNorm whose backward is itself differentiable
(:func:`second_order_copy`); :func:`exact_relu_gradient` recovers the true network's gradient
from the same forward.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from adv2.core.classifier import freeze

# While > 0, every SmoothReLU backward is the TRUE (Re)LU's (see exact_relu_gradient).
_EXACT_BACKWARD = [0]


class _SmoothReLUFunction(torch.autograd.Function):
    """Exact ReLU forward; backward uses the smooth surrogate's derivative (paper-method 3.3.1).

    h(z) = 1 + z / sqrt(z^2 + tau) for z < 0 and z / sqrt(z^2 + tau) for z >= 0. The backward is
    itself a differentiable function (:class:`_SmoothSlopeMul`), so second derivatives (the Grad
    attack) are non-zero.
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, tau: float, cap: float | None) -> torch.Tensor:
        ctx.save_for_backward(z)
        ctx.tau, ctx.cap = tau, cap
        out = z.clamp(min=0)
        return out if cap is None else out.clamp(max=cap)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (z,) = ctx.saved_tensors
        if _EXACT_BACKWARD[0]:  # the true ReLU's (ReLU6's) derivative: 1 on (0, cap), else 0
            if ctx.cap is None:
                return torch.ops.aten.threshold_backward(grad_out, z, 0), None, None
            return torch.ops.aten.hardtanh_backward(grad_out, z, 0.0, ctx.cap), None, None
        return _SmoothSlopeMul.apply(grad_out, z, ctx.tau, ctx.cap, ctx), None, None


class _SmoothSlopeMul(torch.autograd.Function):
    """``g * h(z)`` with its first derivatives written out: d/dg = h(z), d/dz = g h'(z).

    The same values as autograd through :func:`smooth_relu_slope`'s ops, in a few fused passes
    and without the dozen intermediate tensors autograd would save for the double backward (the
    Grad attack's cost). Third derivatives are not available (``once_differentiable``)."""

    @staticmethod
    def forward(ctx, g: torch.Tensor, z: torch.Tensor, tau: float, cap: float | None, owner=None):
        # ``owner`` (the ReLU node's ctx) keeps h(z): the ReLU node's backward runs again when the
        # attack differentiates the map, and h(z) need not be recomputed then
        slope = getattr(owner, "slope", None)
        if slope is None:
            slope = _slope_no_grad(z, tau, cap)
            if owner is not None:
                owner.slope = slope
        ctx.tau, ctx.cap = tau, cap
        ctx.save_for_backward(g if ctx.needs_input_grad[1] else None, z, slope)
        return g * slope

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gg: torch.Tensor):
        g, z, slope = ctx.saved_tensors
        d_g = gg * slope if ctx.needs_input_grad[0] else None
        d_z = None
        if ctx.needs_input_grad[1]:
            d_z = gg * g * smooth_relu_curvature(z, ctx.tau, ctx.cap)
        return d_g, d_z, None, None, None


def _slope_no_grad(z: torch.Tensor, tau: float, cap: float | None) -> torch.Tensor:
    """:func:`smooth_relu_slope` in place, bit for bit (``where(z < 0, 1 + r, r)`` = ``r + [z < 0]``)."""
    if cap is not None:
        # one square root for both kinks: the lower one's r below cap / 2, the mirrored upper
        # one's above (upper = -rc or 1 - rc, lower = 1 + r or r: offset [zz < 0] xor [above])
        above = z > cap / 2
        zz = torch.where(above, z - cap, z)
        s = zz * zz
        r = torch.div(zz, s.add_(tau).sqrt_())
        r = torch.where(above, r.neg(), r)
        return r.add_(torch.logical_xor(zz < 0, above))
    s = z * z
    r = torch.div(z, s.add_(tau).sqrt_())
    return r.add_(z < 0)


def smooth_relu_slope(z: torch.Tensor, tau: float, cap: float | None = None) -> torch.Tensor:
    """h(z), the smooth ReLU's backward slope (mirrored at ``cap`` for ReLU6)."""
    r = z / torch.sqrt(z * z + tau)
    slope = torch.where(z < 0, 1 + r, r)
    if cap is not None:
        # ReLU6 has a second kink at `cap`: mirror the surrogate there so the slope falls smoothly
        # to 0 above it (design.md: EfficientNet-Lite0 needs both kinks smoothed).
        zc = z - cap
        rc = zc / torch.sqrt(zc * zc + tau)
        upper = torch.where(zc < 0, -rc, 1 - rc)  # ~1 just below cap, ~0 above
        slope = torch.where(z > cap / 2, upper, slope)
    return slope


def smooth_relu_curvature(z: torch.Tensor, tau: float, cap: float | None = None) -> torch.Tensor:
    """h'(z) = tau / (z^2 + tau)^(3/2) (both branches of h differ by a constant), negated above
    ``cap / 2`` for ReLU6's mirrored kink."""
    if cap is None:
        s = z * z + tau
        return tau / (s * torch.sqrt(s))
    above = z > cap / 2
    zz = torch.where(above, z - cap, z)
    s = zz * zz + tau
    curv = tau / (s * torch.sqrt(s))
    return torch.where(above, -curv, curv)


class SmoothReLU(nn.Module):
    def __init__(self, tau: float = 1e-4, cap: float | None = None):
        super().__init__()
        self.tau, self.cap = tau, cap

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return _SmoothReLUFunction.apply(z, self.tau, self.cap)


class _ConvInput(torch.autograd.Function):
    """``conv2d(x, w)`` of frozen weights whose backward is ``conv_transpose2d`` -- a function of
    the incoming gradient that autograd differentiates with ONE convolution. (The native
    convolution's double backward runs two; the values are the same.)"""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        ctx.save_for_backward(weight)
        ctx.conf = (stride, padding, dilation, groups, x.shape[-2:])
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, g):
        (weight,) = ctx.saved_tensors
        weight = weight.to(g.dtype)  # under autocast the forward ran in bf16 with a cast weight
        stride, padding, dilation, groups, size = ctx.conf
        # conv_transpose2d's natural output size, and the rows/columns the stride dropped
        natural = [
            (g.shape[-2 + i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (weight.shape[-2 + i] - 1) + 1
            for i in range(2)
        ]
        extra = tuple(size[i] - natural[i] for i in range(2))
        reach = [dilation[i] * (weight.shape[-2 + i] - 1) - padding[i] for i in range(2)]
        if groups == 1 and weight.shape[-2:] == (1, 1) and stride == (1, 1) and padding == (0, 0):
            gx = F.conv2d(g, weight.transpose(0, 1))  # pointwise: the transposed 1x1 convolution
        elif groups == 1 or min(reach) < 0:
            gx = F.conv_transpose2d(g, weight, None, stride, padding, extra, groups, dilation)
        else:  # grouped (depthwise): conv_transpose2d has no fast grouped CPU kernel, conv2d has
            gx = _grouped_input_grad(g, weight, stride, dilation, groups, reach, extra)
        return gx, None, None, None, None, None, None


def _grouped_input_grad(g, weight, stride, dilation, groups, reach, extra) -> torch.Tensor:
    """``conv_transpose2d(g, weight, ...)`` of a grouped convolution as a grouped ``conv2d``: the
    gradient spread onto the stride grid, padded by the kernel's reach, convolved with the
    per-group transposed, flipped kernel (differentiable: its own backward is a strided conv)."""
    if stride[0] > 1 or stride[1] > 1:
        g = _spread(g, stride)
    co, ci_g, kh, kw = weight.shape
    wt = (
        weight.view(groups, co // groups, ci_g, kh, kw)
        .transpose(1, 2)
        .reshape(groups * ci_g, co // groups, kh, kw)
    )
    g = F.pad(g, (reach[1], reach[1] + extra[1], reach[0], reach[0] + extra[0]))
    return F.conv2d(g, wt.flip(-1, -2), None, 1, 0, dilation, groups)


def _spread(g: torch.Tensor, stride) -> torch.Tensor:
    """``g`` on every ``stride``-th row and column of a zero tensor (differentiable)."""
    n, c, h, w = g.shape
    g = g.view(n, c, h, 1, w, 1)
    g = F.pad(g, (0, stride[1] - 1, 0, 0, 0, stride[0] - 1))
    return g.reshape(n, c, h * stride[0], w * stride[1])[
        :, :, : (h - 1) * stride[0] + 1, : (w - 1) * stride[1] + 1
    ]


class SecondOrderConv2d(nn.Conv2d):
    """A frozen ``nn.Conv2d`` (or efficientnet's ``Conv2dStaticSamePadding``, whose ``static_padding``
    it applies first) with the same forward and a cheaper double backward (:class:`_ConvInput`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = getattr(self, "static_padding", None)
        if pad is not None:
            x = pad(x)
        return _ConvInput.apply(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )


class _AffineBackward(torch.autograd.Function):
    """Eval-mode batch norm: the native forward (bit for bit); backward ``g * alpha`` with
    ``alpha = weight / sqrt(var + eps)``, a product autograd differentiates in one pass (the
    native batch norm's double backward is a long composite)."""

    @staticmethod
    def forward(ctx, x, mean, var, weight, bias, eps):
        alpha = torch.rsqrt(var + eps) if weight is None else torch.rsqrt(var + eps) * weight
        ctx.save_for_backward(alpha.view(1, -1, *([1] * (x.dim() - 2))))
        return F.batch_norm(x, mean, var, weight, bias, False, 0.0, eps)

    @staticmethod
    def backward(ctx, g):
        (alpha,) = ctx.saved_tensors
        return g * alpha, None, None, None, None, None


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """An eval-mode ``nn.BatchNorm2d`` with the same forward and a cheaper double backward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _AffineBackward.apply(x, self.running_mean, self.running_var, self.weight, self.bias, self.eps)


def _second_order_friendly(module: nn.Module) -> None:
    """Give the frozen convolutions and batch norms of ``module`` their cheaper double backward
    (same forward values): what the Grad attack's surrogate differentiates twice per step."""
    for child in module.modules():
        conv_types = (nn.Conv2d,) if type(child) is nn.Conv2d else ()
        if type(child).__name__ == "Conv2dStaticSamePadding" and isinstance(child, nn.Conv2d):
            conv_types = (type(child),)
        if conv_types and child.padding_mode == "zeros" and not isinstance(child.padding, str):
            child.__class__ = SecondOrderConv2d
        elif type(child) is nn.BatchNorm2d and child.track_running_stats and child.running_var is not None:
            child.__class__ = FrozenBatchNorm2d


def second_order_copy(model: nn.Module) -> nn.Module:
    """A frozen deep copy of ``model`` with the same forward values and first derivatives (up to
    rounding) whose convolutions and batch norms have the cheaper double backward of
    :class:`SecondOrderConv2d` / :class:`FrozenBatchNorm2d` (MASK's unrolled Adam steps)."""
    clone = freeze(copy.deepcopy(model))
    _second_order_friendly(clone)
    return clone


def smooth_backward_copy(model: nn.Module, tau: float = 1e-4) -> nn.Module:
    """A deep copy of ``model`` with every ReLU/ReLU6 module swapped for :class:`SmoothReLU`.

    Outputs are identical to ``model``'s; gradients of gradients are not zero. The copy is frozen
    (eval mode, no parameter gradients); its convolutions and batch norms are swapped for
    :class:`SecondOrderConv2d` and :class:`FrozenBatchNorm2d` (same forward, cheaper double
    backward), so it must stay in eval mode.
    """
    clone = copy.deepcopy(model)

    def swap(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU6):
                setattr(parent, name, SmoothReLU(tau, cap=6.0))
            elif isinstance(child, nn.ReLU):
                setattr(parent, name, SmoothReLU(tau))
            else:
                swap(child)

    swap(clone)
    clone = freeze(clone)
    _second_order_friendly(clone)
    return clone


class exact_relu_backward:  # noqa: N801 (a context manager, used like a function)
    """Within this context every :class:`SmoothReLU`'s backward is the true ReLU's (ReLU6's)."""

    def __enter__(self):
        _EXACT_BACKWARD[0] += 1
        return self

    def __exit__(self, *exc):
        _EXACT_BACKWARD[0] -= 1
        return False


class _ExactReLUGradient(torch.autograd.Function):
    """Identity on ``out``; its gradient w.r.t. ``x`` is the vector-Jacobian product through
    ``out``'s own graph with TRUE ReLU derivatives (:class:`exact_relu_backward`)."""

    @staticmethod
    def forward(ctx, x, out):
        ctx.graph = (x, out)
        return out.detach().clone()

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.graph
        with torch.enable_grad(), exact_relu_backward():
            (gx,) = torch.autograd.grad(out, x, g, retain_graph=True)
        return gx, None


def exact_relu_gradient(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``out`` (computed from ``x`` by a :func:`smooth_backward_copy`) with the TRUE network's
    gradient: ``out``'s values, and as derivative w.r.t. ``x`` the original model's, because the
    smooth copy's forward values are the model's. One forward then serves both the logits (true
    gradient) and the Grad surrogate's map (smooth gradient). The graph of ``out`` is traversed a
    second time, so whoever differentiates the result must keep it (``retain_graph=True``) unless
    this node runs first."""
    return _ExactReLUGradient.apply(x, out)
