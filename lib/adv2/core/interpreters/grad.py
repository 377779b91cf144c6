"""Grad: vanilla gradient saliency (Simonyan et al.), as the authors compute it (paper-method 2.1).

    loss = CE(f(x), t)                 # gradient w.r.t. the [0,1] image, not the normalised one
    G    = max_c |dloss/dx_c|          # abs, then max over colour channels
    map  = minmax(avg_pool(G, pool))   # 224 -> 56 (pool 4), 28 -> 14 (pool 2)

The CE gradient is ``-(1/p_t) grad p_t``: after abs and min-max this is the normalised
``|grad p_t|`` map (not ``|grad logit_t|``). The per-sample loss is *summed* over the batch, so each
image's gradient does not depend on the others (batched maps equal per-sample maps).

For ADV2 the map must be differentiable w.r.t. ``x``: build the interpreter on
``adv2.core.smooth_relu.smooth_backward_copy(model)`` (exact forward, smooth ReLU backward, so second
derivatives are not zero) and call it with ``create_graph=True``.
"""

from __future__ import annotations

import functools

import torch
import torch.nn as nn
import torch.nn.functional as F

from adv2.core.interpreters.base import as_target, minmax_normalize
from adv2.core.precision import fp32_forward
from adv2.core.smooth_relu import SmoothReLU, exact_relu_gradient, smooth_backward_copy


def default_pool(input_size: int) -> int:
    """2 for small images (28 -> 14, CIFAR 32 -> 16 in the authors' code), 4 for 224 (-> 56)."""
    return 2 if input_size <= 64 else 4


class GradInterpreter:
    """Vanilla-gradient maps at ``input_size / pool`` resolution (14x14 for 28px, 56x56 for 224)."""

    name = "grad"
    attack_style = "differentiable"

    def __init__(self, model: nn.Module, pool: int | None = None):
        self.model = model
        size = int(getattr(model, "input_size", 224))
        self.pool = int(pool) if pool else default_pool(size)
        self.map_size = size // self.pool

    def _gradient(
        self, x: torch.Tensor, target: torch.Tensor | int, create_graph: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(d CE(f(x), t) / dx, logits, the input they were taken at)``, from one forward."""
        t = as_target(target, x.shape[0], x.device)
        with torch.enable_grad():
            if create_graph and x.requires_grad:
                x_in = x  # keep the caller's graph: the map must be differentiable w.r.t. x
            else:
                x_in = x.detach().requires_grad_(True)
            logits = fp32_forward(self.model, x_in)  # bf16 on CUDA; the loss in fp32
            loss = F.cross_entropy(logits, t, reduction="sum")
            (g,) = torch.autograd.grad(loss, x_in, create_graph=create_graph)
        return g, logits, x_in

    def input_gradient(
        self, x: torch.Tensor, target: torch.Tensor, *, create_graph: bool = False
    ) -> torch.Tensor:
        """d CE(f(x), t) / dx, shape of ``x``; part of the graph of ``x`` when ``create_graph``."""
        return self._gradient(x, target, create_graph)[0]

    @functools.cached_property
    def _smooth(self) -> bool:
        """Whether the model is a smooth-backward copy (looked up once, not at every step)."""
        return any(isinstance(mod, SmoothReLU) for mod in self.model.modules())

    def attribute_with_logits(
        self, x: torch.Tensor, target: torch.Tensor | int, *, create_graph: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, map) from ONE forward pass. On a :func:`~adv2.core.smooth_relu.smooth_backward_copy`
        (the attack surrogate) the logits' gradient is the TRUE model's
        (:func:`~adv2.core.smooth_relu.exact_relu_gradient`) while the map's is the smooth one: exactly what
        the attack's ``CE(f(x)) + lambda l_int(smooth map)`` differentiates, minus one forward."""
        g, logits, x_in = self._gradient(x, target, create_graph)
        m = self._pool(g)
        if not create_graph:
            return logits.detach(), m.detach()
        if self._smooth:
            logits = exact_relu_gradient(logits, x_in)
        return logits, m

    def _pool(self, g: torch.Tensor) -> torch.Tensor:
        m = g.abs().amax(dim=1, keepdim=True)
        if self.pool > 1:
            m = F.avg_pool2d(m, self.pool)
        return minmax_normalize(m)

    def attribute(
        self, x: torch.Tensor, target: torch.Tensor | int, *, create_graph: bool = False
    ) -> torch.Tensor:
        m = self._pool(self.input_gradient(x, target, create_graph=create_graph))
        return m if create_graph else m.detach()

    __call__ = attribute

    def attack_surrogate(self, tau: float = 1e-4) -> GradInterpreter:
        """The same maps on ``smooth_backward_copy(model)``: what ADV2 differentiates (the true
        ReLU's second derivatives are zero)."""
        return GradInterpreter(smooth_backward_copy(self.model, tau=tau), pool=self.pool)

    def __repr__(self) -> str:
        return f"GradInterpreter(pool={self.pool}, map_size={self.map_size})"
