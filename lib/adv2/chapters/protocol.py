"""The PGD-vs-ADV2 protocol on the same images (chapters 3 and 7): an experiment, not an attack."""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn as nn

from adv2.core.attacks.adv2 import adv2_attack
from adv2.core.attacks.common import assess, device_of
from adv2.core.attacks.config import AttackConfig
from adv2.core.interpreters.base import Interpreter
from adv2.core.metrics import summarize
from adv2.core.tensors import map_batches


def compare_pgd_adv2(
    model: nn.Module,
    interpreter: Interpreter,
    x: torch.Tensor,
    y: torch.Tensor,
    target: torch.Tensor,
    config: AttackConfig,
    *,
    x_pgd: torch.Tensor,
    x_stage1: torch.Tensor | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    desc: str | None = None,
    recorder=None,
) -> dict[str, Any]:
    """The chapter's experiment for one (classifier, interpreter): PGD vs ADV2 on the same images.

    ``x_pgd`` are the PGD adversarial inputs (shared by all interpreters of a classifier),
    ``x_stage1`` an optional shared warm start for ADV2, ``recorder`` ADV2's observation hook
    (:func:`adv2_attack`). Returns ``benign`` maps (true class),
    the two :class:`AttackResult` (``pgd``, ``adv2``; maps w.r.t. the target) and ``numbers``:
    :func:`adv2.core.metrics.summarize` of each -- ADV2's distances over its successful images, PGD's
    over all images, as the authors' statistics scripts (paper-method 4.2).
    """
    device = device_of(model, x)
    size = batch_size or config.batch_size
    started = time.time()
    benign = map_batches(interpreter, x, y, batch_size=size, device=device)
    pgd_res = assess(model, x_pgd.to(device), target.to(device), interpreter, batch_size=size)
    pgd_res.seconds = time.time() - started
    adv = adv2_attack(
        model,
        interpreter,
        x,
        y,
        target,
        benign,
        config,
        x_stage1=x_stage1,
        batch_size=size,
        progress=progress,
        desc=desc,
        recorder=recorder,
    )
    numbers = {
        "pgd": summarize(
            pgd_res.success, pgd_res.confidence, pgd_res.maps, benign, restrict_to_success=False
        ),
        "adv2": summarize(adv.success, adv.confidence, adv.maps, benign, restrict_to_success=True),
    }
    numbers["adv2"]["seconds"] = adv.seconds
    return {"benign": benign, "pgd": pgd_res, "adv2": adv, "numbers": numbers}


__all__ = ["compare_pgd_adv2"]
