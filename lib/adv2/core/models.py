"""The Fashion-MNIST target classifiers: their architectures, training and evaluation.

Every classifier is an :class:`ImageClassifier` (defined in :mod:`adv2.core.classifier`, which
:mod:`adv2.core.pretrained` builds on too): a list of convolutional *stages* followed by
global average pooling and one linear layer. That shape serves every interpreter:

* ``stage_features(x)`` returns each stage's output (RTS uses them as its encoder's skips),
* the last stage's output is the feature map CAM weights by the head's class row,
* ``forward(x)`` gives logits; normalisation lives inside, so inputs are images in [0,1].

Architectures here: small ResNet- and DenseNet-style CNNs for Fashion-MNIST (trained by the book,
cached by :func:`adv2.trained.loading.load_classifier`). The ImageNet ones (EfficientNet-Lite0,
torchvision ResNet-50 / DenseNet-169) are re-shaped by :mod:`adv2.core.pretrained` and loaded by
:mod:`adv2.trained.pretrained`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from adv2.core.classifier import ImageClassifier
from adv2.core.config import FASHION_MNIST_SIZE, ParameterError, validate
from adv2.core.parallel import one_cpu_thread, seeded_generator
from adv2.core.progress import progress_bar
from adv2.core.tensors import eval_outputs, predicted_classes

FASHION_MNIST_MEAN = (0.2860,)
FASHION_MNIST_STD = (0.3530,)


# ----------------------------------------------------------------------------- small CNNs
class ResidualBlock(nn.Module):
    """Basic ResNet block (two 3x3 convs); ReLUs are modules so a smooth copy can swap them."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        )
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(h)) + self.shortcut(x))


class DenseLayer(nn.Module):
    """BN-ReLU-Conv1x1-BN-ReLU-Conv3x3 producing ``growth`` new channels, concatenated."""

    def __init__(self, c_in: int, growth: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(c_in),
            nn.ReLU(),
            nn.Conv2d(c_in, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth),
            nn.ReLU(),
            nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], dim=1)


def dense_block(c_in: int, growth: int, n_layers: int) -> tuple[nn.Sequential, int]:
    layers = [DenseLayer(c_in + i * growth, growth) for i in range(n_layers)]
    return nn.Sequential(*layers), c_in + n_layers * growth


def transition(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.BatchNorm2d(c_in), nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False), nn.AvgPool2d(2)
    )


def _stem(in_channels: int, c: int, input_size: int) -> nn.Sequential:
    """The first convolution, BN and ReLU. At 28 px a 3x3 convolution. For an input upsampled from
    28 px by a factor k (chapter 7), a 3k x 3k convolution with stride k: it covers the same
    3 x 3 patch of the original image, sees every one of the k^2 x 784 pixels the attacker
    perturbs, and outputs 28 x 28 features, so every later layer and CAM's 7 x 7 map are those of
    the 28-px network (same depth, same receptive fields in image units). At 28 px the layers are
    exactly the ones the cached 28-px classifiers were trained with."""
    factor = input_size // FASHION_MNIST_SIZE
    if factor * FASHION_MNIST_SIZE != input_size or factor < 1:
        raise ParameterError(
            f"parameter 'input_size' has value {input_size!r}, which is not valid; expected a "
            "multiple of 28 (Fashion-MNIST's 28 px, upsampled by a whole factor)"
        )
    conv = nn.Conv2d(in_channels, c, 3 * factor, factor, factor, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(c), nn.ReLU())


def small_resnet(
    num_classes: int,
    class_names: Sequence[str],
    in_channels: int = 1,
    width: int = 16,
    input_size: int = FASHION_MNIST_SIZE,
) -> ImageClassifier:
    """ResNet-style CNN for 28x28 inputs: stem at 28, two residual blocks each at 14 and 7 pixels.

    CAM's feature map is 7x7 as in the paper; sized to train at ~400 images/s on 2 CPU cores.
    ``input_size`` 56, 112, ...: the same network behind a strided stem (:func:`_stem`).
    """
    w = width
    stages = [
        _stem(in_channels, w, input_size),
        nn.Sequential(ResidualBlock(w, 2 * w, stride=2), ResidualBlock(2 * w, 2 * w)),
        nn.Sequential(ResidualBlock(2 * w, 4 * w, stride=2), ResidualBlock(4 * w, 4 * w)),
    ]
    return ImageClassifier(
        stages,
        nn.Linear(4 * w, num_classes),
        FASHION_MNIST_MEAN,
        FASHION_MNIST_STD,
        input_size,
        class_names,
        "resnet",
    )


def small_densenet(
    num_classes: int,
    class_names: Sequence[str],
    in_channels: int = 1,
    growth: int = 12,
    layers: Sequence[int] = (4, 4),
    input_size: int = FASHION_MNIST_SIZE,
) -> ImageClassifier:
    """DenseNet-style CNN for 28x28 inputs: stem at 28, dense blocks at 14 and 7, BN-ReLU at the end
    (``input_size`` 56, 112, ...: behind a strided stem, :func:`_stem`)."""
    c = 2 * growth
    s1 = _stem(in_channels, c, input_size)
    b2, c2 = dense_block(c, growth, layers[0])
    s2 = nn.Sequential(transition(c, c), b2)
    b3, c3 = dense_block(c2 // 2, growth, layers[1])
    s3 = nn.Sequential(transition(c2, c2 // 2), b3, nn.BatchNorm2d(c3), nn.ReLU())
    return ImageClassifier(
        [s1, s2, s3],
        nn.Linear(c3, num_classes),
        FASHION_MNIST_MEAN,
        FASHION_MNIST_STD,
        input_size,
        class_names,
        "densenet",
    )


def build_small_cnn(
    arch: str, num_classes: int, class_names: Sequence[str], input_size: int = FASHION_MNIST_SIZE
) -> ImageClassifier:
    validate({"arch": arch, "input_size": input_size})
    build = {"resnet": small_resnet, "densenet": small_densenet}[arch]
    return build(num_classes, class_names, input_size=input_size)


def upsample(x: torch.Tensor, size: int) -> torch.Tensor:
    """Images ``x`` (N, C, h, w) in [0,1] bilinearly resized to ``size`` x ``size`` (as they are
    when already that size); the result stays in [0,1]."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)


class Upsampled(nn.Module):
    """``model`` fed with its inputs upsampled to ``model.input_size``: trains and evaluates a
    classifier of upsampled Fashion-MNIST on the 28-px tensors, one batch at a time (the upsampled
    training set would not fit in memory at 112 px)."""

    def __init__(self, model: ImageClassifier):
        super().__init__()
        self.model = model
        self.name = model.name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(upsample(x, self.model.input_size))


# ----------------------------------------------------------------------------- training
def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flip per image (all Fashion-MNIST classes are mirror-symmetric)."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(-1), x)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``."""
    correct = int((predicted_classes(model, x, batch_size, device) == y.cpu()).sum()) if len(x) else 0
    return correct / max(len(x), 1)


def predict(
    model: nn.Module, x: torch.Tensor, batch_size: int = 500, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Softmax probabilities of ``model`` on ``x`` (kept on the CPU)."""
    return eval_outputs(model, x, lambda z: F.softmax(z, 1), torch.empty(0), batch_size, device)


def classifier_loss(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """The training objective on one batch: cross-entropy with label smoothing 0.05."""
    return F.cross_entropy(model(xb), yb, label_smoothing=0.05)


def channels_last(model: nn.Module) -> nn.Module:
    """``model`` with its 4-d weights in channels-last (NHWC) order, in place.

    Same arithmetic, other memory order: oneDNN's convolutions, BatchNorm and ReLU run 1.3-1.5x
    faster on it for the small Fashion-MNIST networks on a CPU (benchmarks/bench_training.py)."""
    return model.to(memory_format=torch.channels_last)


def contiguous(model: nn.Module) -> nn.Module:
    """``model`` back in the default (NCHW) memory order, in place (what every other caller expects)."""
    return model.to(memory_format=torch.contiguous_format)


@one_cpu_thread
def train_classifier(
    model: ImageClassifier,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    *,
    epochs: float,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
    device: torch.device,
    progress: bool = True,
    fast: bool = True,
) -> dict[str, Any]:
    """AdamW with a one-cycle learning rate, label smoothing 0.05 and random flips; seeded.

    ``epochs`` may be fractional (the smoke profile trains on part of one epoch). Returns the
    curves and final accuracy; the model is left trained, in eval mode, on ``device``.
    ``fast`` (the default) trains in channels-last memory order and reads the running loss only
    when the curve records it (no per-step host sync); the objective, the batches and their
    order are those of ``fast=False``, the code before issue 13, which the benchmark compares.
    """
    gen = seeded_generator(seed)
    model.to(device).train()
    if fast:
        channels_last(model)
    n = len(x_train)
    steps_per_epoch = max(1, n // batch_size)
    total_steps = max(1, int(round(epochs * steps_per_epoch)))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_steps)
    curve_step, curve_loss, curve_val = [], [], []
    eval_every = max(1, total_steps // 8)  # 8 points on the curve: evaluation is not free
    started = time.time()
    order = torch.randperm(n, generator=gen)
    pos, running, n_running = 0, 0.0, 0
    fmt = torch.channels_last if fast else torch.contiguous_format
    bar = progress_bar(range(total_steps), desc=f"train {model.name}", enabled=progress)
    for step in bar:
        if pos + batch_size > n:
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos : pos + batch_size]
        pos += batch_size
        xb = augment(x_train[idx], gen).to(device).contiguous(memory_format=fmt)
        yb = y_train[idx].to(device)
        loss = classifier_loss(model, xb, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        # a tensor sum keeps the step asynchronous; the old code called .item() every step
        running = running + (loss.detach() if fast else loss.item())
        n_running += 1
        if (step + 1) % eval_every == 0 or step + 1 == total_steps:
            curve_step.append(step + 1)
            curve_loss.append(float(running) / n_running)
            running, n_running = 0.0, 0
            curve_val.append(evaluate(model, x_val, y_val, device=device))
            model.train()
            bar.set_postfix(loss=f"{curve_loss[-1]:.3f}", val_acc=f"{curve_val[-1]:.3f}")
    model.eval()
    return {
        "curve_step": curve_step,
        "curve_train_loss": curve_loss,
        "curve_val_acc": curve_val,
        "train_seconds": time.time() - started,
        "images_seen": total_steps * batch_size,
        "steps": total_steps,
    }


__all__ = [
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "Upsampled",
    "build_small_cnn",
    "channels_last",
    "classifier_loss",
    "contiguous",
    "evaluate",
    "predict",
    "train_classifier",
    "upsample",
]
