"""Pretrained ImageNet networks re-shaped as :class:`adv2.core.classifier.ImageClassifier`
(stages + head, no copies): EfficientNet-Lite0 / -Lite2 and torchvision ResNet-50 / DenseNet-169. Loading
their weights is :mod:`adv2.trained.pretrained`'s."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from adv2.core.classifier import IMAGENET_MEAN, IMAGENET_STD, ImageClassifier, freeze
from adv2.core.config import PHOTO_CLASSIFIERS, validate

# EfficientNet-Lite models were trained on inputs scaled to [-1, 1] ((x*255 - 127) / 128).
LITE_MEAN = (127.0 / 255,) * 3
LITE_STD = (128.0 / 255,) * 3


class BlockGroup(nn.Module):
    """Runs EfficientNet MBConv blocks in order (their forward takes an optional drop rate)."""

    def __init__(self, blocks: Sequence[nn.Module], tail: Sequence[nn.Module] = ()):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.tail = nn.Sequential(*tail)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.tail(x)


def wrap_efficientnet_lite(net: nn.Module, class_names: Sequence[str], name: str) -> ImageClassifier:
    """Re-use an ``efficientnet_lite_pytorch`` EfficientNet-Lite's modules (``name``, one of
    :data:`adv2.core.config.PHOTO_CLASSIFIERS`, which gives its input side) as stages + head."""
    validate({"photo_classifier": name})
    # Split the blocks where the resolution halves: 112, 56, 28, 14, 7 pixels at Lite0's 224 input
    # (130, 65, 33, 17, 9 at Lite2's 260).
    stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())
    groups, current = [], []
    for block in net._blocks:
        if block._block_args.stride not in (1, [1], (1, 1), [1, 1]) and current:
            groups.append(current)
            current = []
        current.append(block)
    groups.append(current)
    head_tail = [net._conv_head, net._bn1, nn.ReLU6()]
    stages = [nn.Sequential(stem, BlockGroup(groups[0]))]
    stages += [BlockGroup(g) for g in groups[1:-1]]
    stages.append(BlockGroup(groups[-1], head_tail))
    side = PHOTO_CLASSIFIERS[name]
    model = ImageClassifier(stages, net._fc, LITE_MEAN, LITE_STD, side, class_names, name)
    return freeze(model)


def wrap_torchvision(net: nn.Module, arch: str, class_names: Sequence[str]) -> ImageClassifier:
    """Re-use a torchvision ResNet-50 / DenseNet-169's modules as stages + head (no copies)."""
    if arch == "resnet":
        stages = [
            nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1),
            net.layer2,
            net.layer3,
            net.layer4,
        ]
        head = net.fc
        name = "resnet50"
    else:
        f = net.features
        stages = [
            nn.Sequential(f.conv0, f.norm0, f.relu0, f.pool0, f.denseblock1),
            nn.Sequential(f.transition1, f.denseblock2),
            nn.Sequential(f.transition2, f.denseblock3),
            nn.Sequential(f.transition3, f.denseblock4, f.norm5, nn.ReLU()),
        ]
        head = net.classifier
        name = "densenet169"
    return freeze(ImageClassifier(stages, head, IMAGENET_MEAN, IMAGENET_STD, 224, class_names, name))
