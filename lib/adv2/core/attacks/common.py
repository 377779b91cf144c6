"""What every attack shares: the result type and the evaluation of adversarial inputs."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from adv2.core.interpreters.base import Interpreter
from adv2.core.metrics import target_confidence
from adv2.core.precision import fp32_forward
from adv2.core.tensors import batch_slices, module_device


@dataclass
class AttackResult:
    """Outcome of an attack on a batch.

    ``maps`` are the interpreter's maps of ``x_adv`` w.r.t. the target class, as the evaluation sees
    them (true-ReLU Grad, re-solved MASK); ``history`` holds per-checkpoint curves (step, success
    fraction, mean squared map distance) where the variant records them.
    """

    x_adv: torch.Tensor
    success: torch.Tensor
    confidence: torch.Tensor
    maps: torch.Tensor | None = None
    history: dict = field(default_factory=dict)
    seconds: float = 0.0


def device_of(model: nn.Module, x: torch.Tensor) -> torch.device:
    """Where the attack runs: the model's device (the input's for a weightless model)."""
    return module_device(model, fallback=x.device)


@torch.no_grad()
def assess(
    model: nn.Module,
    x_adv: torch.Tensor,
    target: torch.Tensor,
    interpreter: Interpreter | None = None,
    batch_size: int | None = None,
) -> AttackResult:
    """Success (``argmax == target``), p(target) and, given an interpreter, its maps w.r.t. the
    target class of adversarial inputs ``x_adv`` (how PGD outputs are evaluated)."""
    device = device_of(model, x_adv)
    succ, conf, maps = [], [], []
    for sl in batch_slices(len(x_adv), batch_size):
        xb, tb = x_adv[sl].to(device), target[sl].to(device)
        logits = fp32_forward(model, xb)  # bf16 on CUDA; success and confidence in fp32
        succ.append(logits.argmax(1) == tb)
        conf.append(target_confidence(logits, tb))
        if interpreter is not None:
            with torch.enable_grad():
                maps.append(interpreter(xb, tb).detach())
    return AttackResult(x_adv, torch.cat(succ), torch.cat(conf), torch.cat(maps) if maps else None)


__all__ = ["AttackResult", "assess", "device_of"]
