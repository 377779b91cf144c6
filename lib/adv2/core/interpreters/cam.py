"""CAM: class activation maps (Zhou et al.), as the authors compute them (paper-method 2.2).

    A   = last convolutional feature map (C, 7, 7)       -- ``model.features(x)``
    CAM = sum_k w_t[k] A_k                               -- head weight row of the class, no bias
    map = minmax(CAM)                                    -- no ReLU; per-sample min-max

The classifier ends in global average pooling + one linear layer, so CAM is exactly the class
logit's spatial decomposition (logit_t = mean(CAM) + b_t). The map is differentiable w.r.t. ``x``
as it is (ADV2 on CAM needs nothing special).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from adv2.core.interpreters.base import as_target, minmax_normalize
from adv2.core.precision import forward_precision, fp32, full_precision


def class_activation(model: nn.Module, feats: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Raw (un-normalised) CAM (N, 1, h, w) of classes ``target`` from last-stage ``feats``."""
    w = model.head.weight[target]  # (N, C): one weight row per image
    return torch.einsum("nc,nchw->nhw", w, feats).unsqueeze(1)


def feature_size(model: nn.Module) -> int:
    """Side of the last stage's feature map (7 for every classifier of the book), by a dummy pass."""
    p = next(model.parameters())
    size = int(getattr(model, "input_size", 224))
    x = torch.zeros(1, int(getattr(model, "in_channels", 3)), size, size, device=p.device, dtype=p.dtype)
    was_training = model.training
    model.eval()  # a dummy pass in train mode would move BatchNorm's running statistics
    try:
        with torch.no_grad():
            return int(model.features(x).shape[-1])
    finally:
        model.train(was_training)


class CAMInterpreter:
    """CAM at the last stage's resolution (7x7 for every classifier of the book)."""

    name = "cam"
    attack_style = "differentiable"

    def __init__(self, model: nn.Module):
        self.model = model
        self.map_size = feature_size(model)

    def attribute_with_logits(
        self, x: torch.Tensor, target: torch.Tensor | int, *, create_graph: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, map) from ONE forward pass (the attack needs both)."""
        t = as_target(target, x.shape[0], x.device)
        with torch.set_grad_enabled(create_graph):
            with forward_precision(x.device):  # the network in bf16 on CUDA; head and map in fp32
                feats = fp32(self.model.features(x if create_graph else x.detach()))
            with full_precision(x.device):  # also inside the attack's autocast region
                logits = self.model.logits_from_features(feats)
                m = minmax_normalize(class_activation(self.model, feats, t))
        return (logits, m) if create_graph else (logits.detach(), m.detach())

    def attribute(
        self, x: torch.Tensor, target: torch.Tensor | int, *, create_graph: bool = False
    ) -> torch.Tensor:
        return self.attribute_with_logits(x, target, create_graph=create_graph)[1]

    __call__ = attribute

    def __repr__(self) -> str:
        return f"CAMInterpreter(map_size={self.map_size})"
