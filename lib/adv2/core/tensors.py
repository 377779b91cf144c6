"""Small tensor helpers shared by the attacks, defenses, noise tools and models (one copy each).

* :func:`batch_slices` / :func:`map_batches` -- run a function over aligned chunks of tensors and
  concatenate the outputs (batched maps, batched predictions);
* :func:`predicted_classes` -- arg-max class of a classifier over a large tensor, in batches;
* :func:`random_targets` -- a uniformly random *wrong* class per label, ``(y + U{1..K-1}) mod K``;
* :func:`module_device` -- the device a module's weights live on.

Chunk sizes change nothing mathematically, but float results of a network can differ in the last
bit between batch sizes, so every caller keeps the batch size it always used.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn


def batch_slices(n: int, size: int | None) -> list[slice]:
    """``slice`` objects covering ``range(n)`` in chunks of ``size`` (``None``/``<= 0``: one chunk)."""
    size = n if not size or size <= 0 else size
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def map_batches(
    fn: Callable[..., torch.Tensor],
    *tensors: torch.Tensor,
    batch_size: int | None,
    device: torch.device | str | None = None,
    to_cpu: bool = False,
) -> torch.Tensor:
    """``torch.cat([fn(*chunks) ...])`` over aligned chunks of ``tensors`` (moved to ``device``).

    Outputs are detached; ``to_cpu`` moves each chunk's output to the CPU as it is produced (large
    evaluations keep device memory flat). Gradients are *not* disabled here: interpreters that
    differentiate internally (Grad, MASK) manage that themselves.
    """
    n = len(tensors[0])
    out = []
    for sl in batch_slices(n, batch_size):
        args = [t[sl] if device is None else t[sl].to(device) for t in tensors]
        res = fn(*args).detach()
        out.append(res.cpu() if to_cpu else res)
    return torch.cat(out)


@torch.no_grad()
def eval_outputs(
    model: nn.Module,
    x: torch.Tensor,
    head: Callable[[torch.Tensor], torch.Tensor],
    empty: torch.Tensor,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``head(model(xb))`` for every batch of ``x`` with ``model`` in eval mode, on the CPU
    (``empty`` when ``x`` has no image)."""
    model.eval()
    if len(x) == 0:
        return empty
    return map_batches(lambda xb: head(model(xb)), x, batch_size=batch_size, device=device, to_cpu=True)


def predicted_classes(
    model: nn.Module, x: torch.Tensor, batch_size: int = 500, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Arg-max class of ``model`` (put in eval mode) for every image of ``x``, on the CPU."""
    return eval_outputs(model, x, lambda z: z.argmax(1), torch.empty(0, dtype=torch.long), batch_size, device)


def random_targets(
    y: torch.Tensor, num_classes: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A uniformly random wrong class per label, ``(y + U{1..K-1}) mod K`` (drawn on ``y``'s device)."""
    shift = torch.randint(1, num_classes, y.shape, generator=generator, device=y.device)
    return (y + shift) % num_classes


def module_device(module: nn.Module, fallback: torch.device | None = None) -> torch.device:
    """Device of the module's first parameter (or buffer); ``fallback`` (default CPU) if it has none."""
    for t in list(module.parameters())[:1] + list(module.buffers())[:1]:
        return t.device
    return fallback if fallback is not None else torch.device("cpu")


__all__ = ["batch_slices", "map_batches", "module_device", "predicted_classes", "random_targets"]
