"""Trained models cached by their recipe (classifier, RTS, RTSA): the training functions of
:mod:`adv2.core` wrapped in :func:`adv2.trained.artifacts.load_or_compute`, keyed by every field
that shapes the weights, and checked when loaded."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from adv2.core.classifier import ImageClassifier, freeze
from adv2.core.config import FASHION_MNIST_SIZE, validate
from adv2.core.defenses import AIDConfig, train_rtsa
from adv2.core.interpreters.rts import RTSNet, frozen_rts_from_state, stored_state
from adv2.core.interpreters.rts_training import default_area_weight, train_rts
from adv2.core.models import Upsampled, build_small_cnn, contiguous, evaluate, train_classifier
from adv2.core.parallel import one_cpu_thread, seeded
from adv2.trained.artifacts import Artifact, load_or_compute
from adv2.trained.recipes import AID_RECIPE_VERSION, CLASSIFIER_RECIPE_VERSION, RTS_RECIPE_VERSION

# ----------------------------------------------------------------------------- classifier
# Bump when the training recipe changes, so cached weights from the old recipe are not reused.
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
        "recipe": CLASSIFIER_RECIPE_VERSION,
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


# ----------------------------------------------------------------------------- RTS
# Bump when the RTS architecture or training recipe changes (invalidates cached RTS artifacts).


def weights_fingerprint(model: nn.Module) -> str:
    """Short hash of a model's weights: identifies the classifier an RTS was trained for."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def rts_recipe(iterations: tuple[int, int], batch_size: int, lr: float, seed: int = 0) -> dict[str, Any]:
    """The keyword arguments chapter 2 gives :func:`trained_rts` (phase-1 batch = 2 x phase-2
    batch, one learning rate for both phases, as the recipe's 128 / 64). Chapters that reuse the
    cached RTS build them with this function so the cache keys match."""
    return {
        "phase1_iterations": int(iterations[0]),
        "phase2_iterations": int(iterations[1]),
        "phase1_batch_size": 2 * int(batch_size),
        "batch_size": int(batch_size),
        "phase1_lr": float(lr),
        "lr": float(lr),
        "seed": int(seed),
    }


def trained_rts(
    model: nn.Module,
    data: Any,
    *,
    phase1_iterations: int,
    phase2_iterations: int,
    phase1_batch_size: int = 128,
    batch_size: int = 64,
    phase1_lr: float = 1e-3,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    area_weight: float | None = None,
    smooth_weight: float | None = None,
    preserver_weight: float = 0.3,
    map_size: int | None = None,
    width: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    artifacts_dir: str | None = None,
    classifier_key: str | None = None,
    progress: bool = True,
) -> tuple[RTSNet, Any]:
    """The RTS of classifier ``model`` trained on ``data.x_train``/``y_train``, cached.

    ``classifier_key`` names the classifier artifact (e.g. ``Artifact.path.name`` of
    :func:`trained_small_cnn`), so a retrained classifier gets a new RTS; when None,
    a hash of the classifier's weights is used. The cache holds the selector and decoder (the
    encoder is the classifier's copy, as the authors' checkpoints exclude it). Returns the frozen
    net (on ``device``) and the :class:`adv2.trained.artifacts.Artifact` (``metrics`` = training curves).
    """
    device = torch.device(device)
    key = classifier_key or weights_fingerprint(model)
    size = int(model.input_size)
    # resolve size-dependent defaults so the cache key holds the values actually used
    area_weight = default_area_weight(size) if area_weight is None else area_weight
    smooth_weight = 0.005 * 224 / size if smooth_weight is None else smooth_weight
    recipe = {
        "phase1_iterations": phase1_iterations,
        "phase2_iterations": phase2_iterations,
        "phase1_batch_size": phase1_batch_size,
        "batch_size": batch_size,
        "phase1_lr": phase1_lr,
        "lr": lr,
        "weight_decay": weight_decay,
        "area_weight": area_weight,
        "smooth_weight": smooth_weight,
        "preserver_weight": preserver_weight,
        "map_size": map_size,
        "width": width,
        "seed": seed,
    }
    params = {
        "kind": "rts",
        "dataset": getattr(data, "name", "?"),
        "arch": getattr(model, "name", "?"),
        "classifier": key,
        "recipe": RTS_RECIPE_VERSION,
        **recipe,
    }

    def compute() -> tuple[dict, dict]:
        net, metrics = train_rts(
            model, data.x_train, data.y_train, device=device, progress=progress, **recipe
        )
        return stored_state(net), metrics

    def check(state: dict) -> None:  # a state that does not fit this classifier: damaged entry
        frozen_rts_from_state(model, state, map_size=map_size, width=width, device="cpu", source="cached RTS")

    art = load_or_compute("rts", params, compute, root=artifacts_dir, check=check)
    net = frozen_rts_from_state(
        model, art.state, map_size=map_size, width=width, device=device, source=f"cached RTS at {art.path}"
    )
    return net, art


# ----------------------------------------------------------------------------- RTSA
# Bump when the AID procedure changes (invalidates cached RTSA artifacts).


@one_cpu_thread
def trained_rtsa(
    model: nn.Module,
    rts: RTSNet,
    rts_artifact: Any,
    data: Any,
    config: AIDConfig | None = None,
    *,
    n_probe: int = 64,
    device: torch.device | str = "cpu",
    artifacts_dir: str | None = None,
    progress: bool = True,
) -> tuple[RTSNet, Any]:
    """RTSA for (classifier ``model``, its trained ``rts``), cached.

    The cache key is the RTS artifact's key (``rts_artifact.path.name``, itself keyed by the
    classifier and RTS recipe) plus the full :class:`AIDConfig` and ``n_probe``; the state holds
    the selector and decoder (and the encoder when ``config.train_encoder``; otherwise it is the
    classifier's copy). Training uses
    ``data.x_train``; the benign-drift probe uses the first ``n_probe`` test images.
    Returns the frozen RTSA (on ``device``) and the artifact (``metrics`` = curves and cost; it
    also records the RTS's own training seconds as ``rts_seconds`` for the cost comparison).
    """
    cfg = config or AIDConfig()
    device = torch.device(device)
    params = {
        "kind": "rtsa",
        "dataset": getattr(data, "name", "?"),
        "arch": getattr(model, "name", "?"),
        "rts": rts_artifact.path.name,
        "recipe": AID_RECIPE_VERSION,
        "n_probe": n_probe,
        **cfg.cache_params(),
    }

    def compute() -> tuple[dict, dict]:
        xp = data.x_test[:n_probe] if n_probe else None
        yp = data.y_test[:n_probe] if n_probe else None
        net, metrics = train_rtsa(
            model,
            rts,
            data.x_train,
            data.y_train,
            cfg,
            x_probe=xp,
            y_probe=yp,
            device=device,
            progress=progress,
        )
        metrics["rts_seconds"] = rts_artifact.metrics.get("seconds")
        return stored_state(net, with_encoder=cfg.train_encoder), metrics

    def check(state: dict) -> None:  # a state that does not fit this classifier: damaged entry
        frozen_rts_from_state(
            model, state, map_size=rts.map_size, width=rts.width, device="cpu", source="cached RTSA"
        )

    art = load_or_compute("rtsa", params, compute, root=artifacts_dir, check=check)
    shape = {"map_size": rts.map_size, "width": rts.width}  # RTSA is RTS's architecture
    net = frozen_rts_from_state(model, art.state, device=device, source=f"cached RTSA at {art.path}", **shape)
    return net, art


@dataclass
class InterpretedModel:
    """A classifier with its RTS, RTSA (and its beta = 0 control), and the artifacts they came
    from (chapters 04-06)."""

    arch: str
    model: nn.Module
    classifier_artifact: Any
    rts: RTSNet
    rts_artifact: Any
    rtsa: RTSNet
    rtsa_artifact: Any
    control: RTSNet | None = None  # the same AID training with beta = 0 (chapters 4-6's control)
    control_artifact: Any = None
    extra: dict[str, tuple[RTSNet, Any]] = field(default_factory=dict)  # more RTSAs: {label: (net, artifact)}


def training_cost(rts_artifact: Any, rtsa_artifact: Any) -> dict[str, Any]:
    """Seconds of RTS training vs AID fine-tuning (as measured when each was computed).

    ``per_iteration_ratio`` compares one AID iteration with one RTS iteration, RTS's total seconds
    spread over its phase-1 + phase-2 iterations (phase-1 iterations are cheaper than phase-2 ones,
    so this overstates the ratio to a phase-2 iteration somewhat).
    """
    rm, am = rts_artifact.metrics, rtsa_artifact.metrics
    p = rts_artifact.params
    rts_iters = (p.get("phase1_iterations") or 0) + (p.get("phase2_iterations") or 0)
    rts_s = rm.get("seconds")
    rts_per_it = rts_s / rts_iters if rts_s and rts_iters else None
    aid_per_it = am.get("seconds_per_iteration")
    return {
        "rts_seconds": rts_s,
        "aid_seconds": am.get("seconds"),
        "aid_attack_seconds": am.get("seconds_attack"),
        "aid_warm_start_seconds": am.get("warm_start_seconds"),
        "aid_over_rts_total": (am.get("seconds") / rts_s) if rts_s else None,
        "rts_seconds_per_iteration": rts_per_it,
        "aid_seconds_per_iteration": aid_per_it,
        "per_iteration_ratio": (aid_per_it / rts_per_it) if rts_per_it and aid_per_it else None,
        "aid_attack_fraction": (am.get("seconds_attack") / am.get("seconds")) if am.get("seconds") else None,
    }
