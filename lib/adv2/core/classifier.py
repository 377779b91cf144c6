"""The classifier wrapper every model of the book is: stages -> global average pooling -> linear.

Separate from :mod:`adv2.core.models` (training, small CNNs) and :mod:`adv2.trained.pretrained` (ImageNet
weights) so that both can build on it without importing each other.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ImageClassifier(nn.Module):
    """Stages -> global average pooling -> linear head, with inputs in [0,1]."""

    def __init__(
        self,
        stages: Sequence[nn.Module],
        head: nn.Linear,
        mean: Sequence[float],
        std: Sequence[float],
        input_size: int,
        class_names: Sequence[str],
        name: str,
    ):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.stages = nn.ModuleList(stages)
        self.head = head
        self.input_size = input_size
        self.in_channels = len(mean)
        self.class_names = list(class_names)
        self.name = name

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def stage_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.normalize(x)
        outs = []
        for stage in self.stages:
            h = stage(h)
            outs.append(h)
        return outs

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last convolutional feature map (N, C, h, w): what CAM weights."""
        return self.stage_features(x)[-1]

    def logits_from_features(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(feats.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits_from_features(self.features(x))


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no parameter gradients: attacks and interpreters differentiate w.r.t. inputs."""
    return model.eval().requires_grad_(False)


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ImageClassifier", "Normalize", "freeze"]
