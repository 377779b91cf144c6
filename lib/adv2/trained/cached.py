"""What the chapters use around the cached models (:mod:`adv2.trained.loading` loads them): the
accuracy re-check of a classifier loaded from the cache, the fingerprint of a classifier no recipe
trained, a classifier bundled with its RTS and RTSA, and what their training cost."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from adv2.core.config import FASHION_MNIST_SIZE
from adv2.core.interpreters.rts import RTSNet
from adv2.core.models import evaluate

# ----------------------------------------------------------------------------- classifier
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


# ----------------------------------------------------------------------------- RTS
def weights_fingerprint(model: nn.Module) -> str:
    """Short hash of a model's weights: identifies the classifier an RTS was trained for."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


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
