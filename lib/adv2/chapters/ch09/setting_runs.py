"""One chapter 9 setting evaluated (:class:`SettingRun`, :func:`run_setting`): every input's maps
through every interpreter, the detector, the adaptive attacks; and a Fashion-MNIST setting's runs of
several training seeds pooled into one (:func:`pooled`, issue 27)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from adv2.chapters import claims
from adv2.chapters.ch09 import adaptive, defense, transfer
from adv2.chapters.ch09.sources import Sources
from adv2.chapters.claims import Verdict
from adv2.core import attacks
from adv2.core.interpreters.base import Interpreter
from adv2.core.stats import Estimate

CLAIM_ID = "adv2_does_not_transfer"
ADAPTIVE = {"ensemble": "ens", "ensemble + detector": "ensdet"}  # variant -> short name


@dataclass
class SettingRun:
    """One setting's sources, evaluated maps, detector and adaptive attacks."""

    setting: str
    src: Sources
    ev: transfer.Evaluation
    defense: defense.Defense
    adaptive: list[adaptive.AdaptiveRun] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    # issue 27 (:func:`pooled`; photos: none): the seeds ev and defense pool, the further seeds' runs
    train_seeds: list[int] = field(default_factory=list)
    more_seeds: list[SettingRun] = field(default_factory=list)

    def matrix(self) -> dict[str, dict[str, Estimate]]:
        return transfer.matrix(self.ev)

    def own_matrix(self) -> dict[str, dict[str, Estimate]]:
        """The matrix of this training seed's models alone (what chapter 3's stored maps measured)."""
        return transfer.matrix(dataclasses.replace(self.ev, more_seeds=[]))

    def cell_verdicts(self) -> dict[str, Verdict]:
        return transfer.cell_verdicts(self.ev)

    def verdict(self) -> Verdict:
        """The claim over every off-diagonal cell (:func:`adv2.chapters.claims.all_of`)."""
        return claims.all_of(CLAIM_ID, self.cell_verdicts())


def run_setting(
    setting: str,
    model: torch.nn.Module,
    interpreters: Mapping[str, Interpreter],
    src: Sources,
    calibration_x: torch.Tensor,
    *,
    target_fpr: float,
    adaptive_cfg: attacks.ADV2Config | None,
    detector_weight: float,
    batch_size: int,
    adaptive_n_images: int = 0,
    adaptive_interpreters: tuple[str, ...] | list[str] = adaptive.LOSS_INTERPRETERS,
    adaptive_mask_steps: int = attacks.MaskConfig.unroll_steps,
    device: Any,
    progress: bool = False,
) -> SettingRun:
    """Maps of every input through every interpreter, the detector, and (``adaptive_cfg`` given)
    the two adaptive attacks on the first ``adaptive_n_images`` of the same images (0: all), their
    loss on the ``adaptive_interpreters`` of the ensemble (MASK's term: ``adaptive_mask_steps``
    tracking and as many unrolled Adam steps per attack step)."""
    seconds = {}
    t0 = time.time()
    ev = transfer.evaluate(model, interpreters, src, batch_size=batch_size, device=device, progress=progress)
    seconds["maps"] = time.time() - t0
    runs = []
    if adaptive_cfg is not None:
        side = max(int(m.shape[-1]) for m in ev.benign.values())
        k = min(adaptive_n_images or src.n, src.n)
        for weight in (0.0, detector_weight):
            run = adaptive.attack(
                model, interpreters, src.x[:k], src.y[:k], src.target[:k], adaptive_cfg, side=side,
                detector_weight=weight, loss_interpreters=adaptive_interpreters, batch_size=batch_size,
                mask_config=attacks.MaskConfig(track_steps=adaptive_mask_steps, unroll_steps=adaptive_mask_steps),
                progress=progress,
            )  # fmt: skip
            runs.append(run)
            transfer.add_attack(
                ev, ADAPTIVE[run.variant], model, interpreters, run.x_adv, src.target, run.success,
                y=src.y, batch_size=batch_size, device=device,
            )  # fmt: skip
            seconds[ADAPTIVE[run.variant]] = run.seconds
    t0 = time.time()
    side = max(int(m.shape[-1]) for m in ev.benign.values())
    calib = defense.calibration_scores(
        model, interpreters, calibration_x, side=side, batch_size=batch_size, device=device
    )
    seconds["calibration"] = time.time() - t0
    return SettingRun(setting, src, ev, defense.defend(ev, src, calib, target_fpr), runs, seconds)


def pooled(by_seed: Mapping[int, SettingRun]) -> SettingRun:
    """One Fashion-MNIST setting's runs, one per training seed (``train_seed``'s first, each on
    its seed's classifier and RTS, all on the same images), as one run: ``train_seed``'s, whose
    estimates and verdicts pool every seed's (issue 27) and whose figures, thresholds and ROC
    curves stay its own."""
    first, *others = by_seed.values()
    for seed, r in by_seed.items():
        if not torch.equal(r.src.index, first.src.index):
            raise RuntimeError(
                f"{first.setting}: train_seed {seed} evaluated other images than {list(by_seed)[0]}"
            )
    first.ev.more_seeds = [r.ev for r in others]
    first.defense.more_seeds = [r.defense for r in others]
    first.train_seeds, first.more_seeds = list(by_seed), others
    return first


__all__ = ["ADAPTIVE", "CLAIM_ID", "SettingRun", "pooled", "run_setting"]
