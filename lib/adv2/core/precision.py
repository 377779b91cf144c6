"""Mixed precision of the forward passes: bf16 autocast on CUDA, plain fp32 elsewhere.

On a CUDA device the classifier's and the interpreters' forward passes (convolutions, matrix
products) run under ``torch.autocast(dtype=torch.bfloat16)``: about twice the throughput of fp32
on a recent GPU, with fp32's exponent range (no loss scaling needed). Everything the attacks
*decide* with stays in fp32: logits and maps are cast back (:func:`fp32`) before the prediction
loss, the map loss, the early-stopping and selection tests and the metrics.

The mode comes from the ``precision`` argument or, when that is None, the ``ADV2_PRECISION``
environment variable:

* ``"auto"`` (default) -- bf16 autocast on CUDA, nothing on any other device, so a CPU run is
  bitwise what it was before this module existed;
* ``"bf16"`` -- bf16 autocast on any device (``torch.autocast("cpu", dtype=torch.bfloat16)``
  works on the CPU: how the tests check the dtypes without a GPU);
* ``"fp32"`` -- never autocast (a CUDA run in full precision, e.g. to compare).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

import torch

ENV = "ADV2_PRECISION"
MODES = ("auto", "bf16", "fp32")


def precision_mode(precision: str | None = None) -> str:
    """The mode in force: ``precision``, else ``$ADV2_PRECISION``, else ``"auto"``; checked."""
    mode = precision if precision is not None else (os.environ.get(ENV) or "auto")
    if mode not in MODES:
        source = "precision" if precision is not None else ENV
        raise ValueError(f"{source} has value {mode!r}; expected one of {', '.join(map(repr, MODES))}")
    return mode


def _device_type(device: torch.device | str | torch.Tensor) -> str:
    if isinstance(device, torch.Tensor):
        return device.device.type
    return torch.device(device).type


def autocast_dtype(
    device: torch.device | str | torch.Tensor, precision: str | None = None
) -> torch.dtype | None:
    """The dtype the forward passes on ``device`` autocast to (``torch.bfloat16``), or None."""
    mode = precision_mode(precision)
    kind = _device_type(device)
    if mode == "bf16" or (mode == "auto" and kind == "cuda"):
        return torch.bfloat16
    return None


def forward_precision(device: torch.device | str | torch.Tensor, precision: str | None = None):
    """Context for a classifier/interpreter forward on ``device`` (a device or a tensor on it):
    bf16 autocast on CUDA (or wherever ``precision``/``$ADV2_PRECISION`` is ``"bf16"``), else a
    null context. Cast what comes out with :func:`fp32` before a loss or a metric."""
    dtype = autocast_dtype(device, precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=_device_type(device), dtype=dtype)


def full_precision(device: torch.device | str | torch.Tensor):
    """Context that switches autocast off again inside a :func:`forward_precision` region (the
    map arithmetic after the network: CAM's head and weighting); a null context where autocast
    is off."""
    kind = _device_type(device)
    if not torch.is_autocast_enabled(kind):
        return contextlib.nullcontext()
    return torch.autocast(device_type=kind, enabled=False)


def fp32(t: torch.Tensor | None) -> torch.Tensor | None:
    """``t`` in at least float32: half-precision tensors (autocast's outputs) are cast up, any other
    tensor is returned as it is (fp32 runs are untouched, float64 tests stay float64)."""
    if t is None or t.dtype not in (torch.float16, torch.bfloat16):
        return t
    return t.float()


def fp32_forward(net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` under :func:`forward_precision` (bf16 on CUDA), its output in at least fp32:
    what every loss, stop test and metric reads."""
    with forward_precision(x.device):
        return fp32(net(x))


__all__ = [
    "ENV",
    "MODES",
    "autocast_dtype",
    "forward_precision",
    "fp32",
    "fp32_forward",
    "full_precision",
    "precision_mode",
]
