"""Bilevel ADV2 for interpreters whose map is an optimisation result (MASK; paper-method 3.3.4).

The interpreter declares ``attack_style = "bilevel"`` and provides (:class:`BilevelInterpreter`)
``mask_objective(m, x, t, jitter, prepared) -> (N,)``, ``init_mask(n)``, ``prepare(x)``,
``sample_jitter(generator)``, ``settings.lr`` and ``attribute(x, t)`` (= 1 - m*, re-solved).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from ..interpreters.base import BilevelInterpreter
from ..metrics import target_confidence
from .common import AttackResult, linf_box, project
from .config import MaskConfig
from .losses import InterpLoss, MapFn, margin_loss, squared_error
from .pgd import stage1


def _adam(
    param: torch.Tensor,
    grad: torch.Tensor,
    m1: torch.Tensor,
    m2: torch.Tensor,
    step: int,
    lr: float,
    betas: tuple,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Functional Adam step (differentiable when its inputs carry a graph), then clamp to [0,1]."""
    b1, b2 = betas
    m1 = b1 * m1 + (1 - b1) * grad
    m2 = b2 * m2 + (1 - b2) * grad * grad
    m_hat = m1 / (1 - b1**step)
    v_hat = m2 / (1 - b2**step)
    # sqrt(v + eps^2) instead of sqrt(v): equal to fp precision, but finite derivative at v = 0
    new = param - lr * m_hat / ((v_hat + eps * eps).sqrt() + eps)
    return new.clamp(0, 1), m1, m2


def quantize_in_box(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """The nearest 8-bit image inside the box [lo, hi] (= B_eps(x0) ∩ [0,1]).

    The authors truncate (``np.uint8(255 * x) / 255``), which can leave the eps-ball by up to
    1/255; rounding to the nearest grid value inside the box keeps the budget exact.
    """
    q = torch.round(x * 255)
    q = torch.maximum(torch.minimum(q, torch.floor(hi * 255 + 1e-4)), torch.ceil(lo * 255 - 1e-4))
    return q / 255


def _jitter_sampler(interpreter: BilevelInterpreter, seed: int) -> Callable[[], tuple[int, int]]:
    """Seeded jitter draws from the interpreter's ``sample_jitter(generator)``."""
    gen = torch.Generator().manual_seed(int(seed))
    return lambda: interpreter.sample_jitter(gen)


def adv2_mask(
    model: nn.Module,
    interpreter: BilevelInterpreter,
    x0: torch.Tensor,
    target: torch.Tensor,
    benign: torch.Tensor,
    cfg: MaskConfig,
    *,
    interp_loss: InterpLoss | None = None,
    map_fn: MapFn | None = None,
    x_stage1: torch.Tensor | None = None,
    bar=None,
    trace: Callable[[int, torch.Tensor], None] | None = None,
) -> AttackResult:
    """ADV2 on MASK for one batch (bilevel; unrolled inner Adam), see :class:`MaskConfig`.

    ``benign`` are benign *attributions* (1 - m), so the mask target is ``1 - benign``.
    ``map_fn`` is accepted for a uniform signature and unused (``adv2_attack`` sends an injected
    map to the sign-step variant). Simplifications of the authors' code:

    * the step-size bisection is per image (the authors test one batch-summed margin for all
      images of the batch; we test each image's margin against ``margin_threshold``, the authors'
      threshold divided by their batch size);
    * the 8-bit quantisation of checkpoints rounds to the nearest grid value inside the eps-ball
      (the authors truncate, which can leave the ball by up to 1/255);
    * checkpoints come *after* the step (steps ``resolve_every``, ``2 resolve_every``, ..., and the
      last step) rather than before it; the selection then uses them as the authors do;
    * Adam's denominator uses ``sqrt(v + eps^2)`` so its derivative is finite at ``v = 0``.
    As in the authors' code the unrolled mask is detached between unrolled steps (the graph to the
    input flows through the gradients and Adam's moments), and the jitter is one draw per call for
    the whole batch (seeded by ``cfg.seed``).
    """
    loss_fn = interp_loss or squared_error("sum")
    n = len(x0)
    target_mask = 1 - benign
    lo, hi = linf_box(x0, cfg.epsilon)
    jitter = _jitter_sampler(interpreter, cfg.seed)
    if x_stage1 is None:
        x_stage1, _ = stage1(model, x0, target, cfg, bar)
    x = project(x_stage1.detach(), lo, hi)
    m = interpreter.init_mask(n).to(x0.device, x0.dtype)
    m1 = torch.zeros_like(m)
    m2 = torch.zeros_like(m)
    adam_step = 0
    lr = cfg.mask_lr or interpreter.settings.lr
    betas, eps = tuple(cfg.adam_betas), cfg.adam_eps

    # the unrolled steps differentiate the objective twice: a twin with the cheaper double
    # backward (same values), when the interpreter offers one
    twin = getattr(interpreter, "for_second_order", None)
    unrolled = twin() if twin is not None else interpreter
    ck_x, ck_maps, ck_ok, ck_conf, ck_dist, steps = [], [], [], [], [], []
    hist_success, hist_dist = [], []
    period = max(1, cfg.resolve_every)
    late_from = int(cfg.late_fraction * cfg.stage2_steps)

    def checkpoint(step: int, x: torch.Tensor) -> torch.Tensor:
        xq = quantize_in_box(x, lo, hi) if cfg.quantize else x
        with torch.no_grad():
            logits = model(xq)
        attribution = interpreter(xq, target).detach()
        mq = 1 - attribution
        ok = logits.argmax(1) == target
        dist = loss_fn(mq, target_mask).detach()
        ck_x.append(xq)
        ck_maps.append(attribution)
        ck_ok.append(ok)
        ck_conf.append(target_confidence(logits, target))
        ck_dist.append(dist)
        steps.append(step)
        hist_success.append(torch.stack(ck_ok).any(0).float().mean())
        best = (
            torch.where(
                torch.stack(ck_ok), torch.stack(ck_dist), torch.full_like(torch.stack(ck_dist), float("inf"))
            )
            .min(0)
            .values
        )
        fin = torch.isfinite(best)
        hist_dist.append(torch.where(fin, best, torch.zeros_like(best)).sum() / fin.sum().clamp_min(1))
        return mq

    for i in range(cfg.stage2_steps):
        # prediction step: L2-normalised gradient of the margin
        x.requires_grad_(True)
        (g,) = torch.autograd.grad(margin_loss(model(x), target).sum(), x)
        g_norm = g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        x = project(x.detach() - cfg.pred_step * g / g_norm, lo, hi)

        # track m*(x) with plain Adam steps; the resized and blurred input is computed once, with
        # its graph to x for the unrolled steps (the tracking steps use it detached)
        x.requires_grad_(True)
        prepared_x = interpreter.prepare(x)
        prepared = tuple(p.detach() for p in prepared_x)
        for _ in range(cfg.track_steps):
            m = m.detach().requires_grad_(True)
            (gm,) = torch.autograd.grad(
                interpreter.mask_objective(m, x, target, jitter=jitter(), prepared=prepared).sum(), m
            )
            adam_step += 1
            with torch.no_grad():
                m, m1, m2 = _adam(m, gm, m1, m2, adam_step, lr, betas, eps)

        # unrolled steps: differentiate the distance of the updated masks w.r.t. the input
        prepared = prepared_x
        l_int = torch.zeros(n, device=x.device)
        for _ in range(cfg.unroll_steps):
            m = m.detach().requires_grad_(True)
            (gm,) = torch.autograd.grad(
                unrolled.mask_objective(m, x, target, jitter=jitter(), prepared=prepared).sum(),
                m,
                create_graph=True,
            )
            adam_step += 1
            m, m1, m2 = _adam(m, gm, m1, m2, adam_step, lr, betas, eps)
            l_int = l_int + loss_fn(m, target_mask)
        l_int = l_int / max(cfg.unroll_steps, 1)
        if cfg.unroll_steps:
            (gx,) = torch.autograd.grad(l_int.sum(), x)
        else:
            gx = torch.zeros_like(x)
        m, m1, m2, x = m.detach(), m1.detach(), m2.detach(), x.detach()
        direction = gx / gx.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)

        # largest step along the interpretation direction that keeps the target class safely ahead
        s_max = cfg.int_step_max if i < late_from else cfg.int_step_max_late
        left = torch.zeros(n, device=x.device)
        right = torch.full((n,), s_max, device=x.device)
        best = torch.zeros(n, device=x.device)
        with torch.no_grad():
            for _ in range(cfg.bisection_steps):
                mid = (left + right) / 2
                trial = project(x - mid.view(-1, 1, 1, 1) * direction, lo, hi)
                ok = margin_loss(model(trial), target) < cfg.margin_threshold
                left = torch.where(ok, mid, left)
                right = torch.where(ok, right, mid)
                best = torch.where(ok, torch.maximum(best, mid), best)
            x = project(x - best.view(-1, 1, 1, 1) * direction, lo, hi)

        if (i + 1) % period == 0 or i + 1 == cfg.stage2_steps:
            mq = checkpoint(i + 1, x)
            # warm restart of the running mask from the re-solved one
            m = mq
            m1, m2 = cfg.restart_mean_scale * m1, cfg.restart_var_scale * m2
            adam_step = cfg.restart_adam_step
        if trace is not None:
            trace(i + 1, x)
        if bar is not None:
            bar.update(1)

    if not steps:  # no stage 2: evaluate the warm start
        checkpoint(0, x)
    ok = torch.stack(ck_ok)  # (K, N)
    dist = torch.stack(ck_dist)
    dist = torch.where(ok, dist, torch.full_like(dist, float("inf")))
    success = ok.any(0)
    # closest successful checkpoint; failures fall back to the last checkpoint
    pick = torch.where(success, dist.argmin(0), torch.full_like(success, len(steps) - 1, dtype=torch.long))
    idx = torch.arange(n, device=x.device)
    x_adv = torch.stack(ck_x)[pick, idx]
    maps = torch.stack(ck_maps)[pick, idx]
    conf = torch.stack(ck_conf)[pick, idx]
    history = {
        "step": steps,
        "success": [float(v) for v in torch.stack(hist_success).cpu()],
        "sq_distance": [float(v) for v in torch.stack(hist_dist).cpu()],
    }
    return AttackResult(x_adv, success, conf, maps, history)


__all__ = ["adv2_mask", "quantize_in_box"]
