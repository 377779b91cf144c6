"""Chapter 5's noise calibration: per classifier, the noise magnitude of each kind reaching each
target misclassification rate on its first ``n_calib`` correctly classified test images (those
every further training seed's classifier gets right too, when ``train_seeds`` names more: issue
27), its log and its table."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from adv2.chapters._reporting import table
from adv2.core import noise
from adv2.core.noise import NoiseCalibration, NoiseSearch
from adv2.core.tensors import predicted_classes


@dataclass
class Calibration:
    """One classifier's calibration images and the noise magnitude of each kind and target rate."""

    x: torch.Tensor  # first n_calib correctly classified test images
    y: torch.Tensor
    levels: dict[str, dict[float, NoiseCalibration]]  # {kind: {target rate: calibration}}
    draws: dict[str, torch.Tensor]  # {kind: the fixed unit noise draw}
    seconds: float


def calibrate_on(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    search: NoiseSearch,
    *,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
) -> Calibration:
    """``model``'s noise magnitudes reaching each target rate of ``search`` (bisection) on the given
    images, which it must classify correctly (else ValueError: the rate would not be the share of
    decisions the noise changes); the draws depend on the images' shape and ``search.seed`` only,
    so every classifier calibrated on the same images gets the same draws."""
    wrong = int((predicted_classes(model, x, batch_size, device) != y).sum())
    if wrong:
        raise ValueError(
            f"the classifier gets {wrong} of the {len(x)} calibration images wrong; calibrate on images "
            "it classifies correctly (a further training seed's: calibrate(..., others=...) picks them)"
        )
    started = time.time()
    levels, draws = noise.calibrate_levels(model, x, y, search, batch_size=batch_size, device=device)
    return Calibration(x, y, levels, draws, time.time() - started)


def calibrate(
    nets: Mapping[str, Any],
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    search: NoiseSearch,
    *,
    n_calib: int,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
    others: Mapping[int, Mapping[str, Any]] | None = None,
) -> dict[str, Calibration]:
    """Per classifier: noise magnitudes reaching each target misclassification rate of ``search``
    (bisection) on its first ``n_calib`` correctly classified images; ``batch_size`` images per
    classifier pass (results do not depend on it). ``others``: by training seed, the nets of further
    seeds (:func:`adv2.chapters.aid_training.load_other_seeds`), whose classifiers must get the
    images right too (none: each classifier's own first ``n_calib``)."""
    out = {}
    for a, n in nets.items():
        started = time.time()
        also = [o[a].model for o in (others or {}).values()]
        x, y, _ = noise.correctly_classified(
            n.model, x_test, y_test, n=n_calib, device=device, also_correct=also
        )
        cal = calibrate_on(n.model, x, y, search, batch_size=batch_size, device=device)
        out[a] = dataclasses.replace(cal, seconds=time.time() - started)
    return out


def calibration_log(cal: Mapping[str, Calibration]) -> str:
    return "\n".join(f"{a}: calibrated on {len(c.x)} images in {c.seconds:.1f} s" for a, c in cal.items())


def calibration_table(cal: Mapping[str, Calibration]) -> str:
    rows = [
        [
            a,
            kind,
            noise.level_name(rate),
            c.magnitude,
            c.rate,
            "yes" if c.within_tolerance else "NO",
            c.evaluations,
        ]
        for a, ca in cal.items()
        for kind, levels in ca.levels.items()
        for rate, c in levels.items()
    ]
    return table(
        rows,
        [
            "classifier",
            "noise",
            "target rate",
            "magnitude (σ / half-width)",
            "rate reached",
            "within tolerance",
            "classifier passes",
        ],
    )


__all__ = ["Calibration", "calibrate", "calibrate_on", "calibration_log", "calibration_table"]
