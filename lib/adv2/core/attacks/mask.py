"""Bilevel ADV2 for interpreters whose map is an optimisation result (MASK; paper-method 3.3.4).

The interpreter declares ``attack_style = "bilevel"`` and provides (:class:`BilevelInterpreter`)
``mask_objective(m, x, t, jitter, prepared) -> (N,)``, ``init_mask(n)``, ``prepare(x)``,
``sample_jitter(generator)``, ``settings.lr`` and ``attribute(x, t)`` (= 1 - m*, re-solved).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from adv2.core.attacks.common import AttackResult
from adv2.core.attacks.config import MaskConfig
from adv2.core.attacks.loop import Schedule, linf_box, project, step_sizes
from adv2.core.attacks.losses import InterpLoss, margin_loss, squared_error
from adv2.core.attacks.pgd import stage1
from adv2.core.interpreters.base import BilevelInterpreter
from adv2.core.metrics import target_confidence
from adv2.core.precision import fp32_forward


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


class RunningMask:
    """MASK's mask tracked along an attack, the bilevel attack's inner loop: a batch's running
    mask ``m``, the moments ``m1``, ``m2`` of its functional Adam and the step count.

    :meth:`track` takes plain Adam steps at an input (no graph); :meth:`unroll` takes steps with
    ``create_graph=True`` and returns each updated mask, differentiable w.r.t. the input through
    the gradients and Adam's moments (each step starts from the detached mask, as the authors'
    code); :meth:`detach` drops the graph after the outer step. The unrolled steps differentiate the
    objective twice: they run on the interpreter's twin with the cheaper double backward (same
    values) when it offers one (``for_second_order``)."""

    def __init__(self, interpreter: BilevelInterpreter, m: torch.Tensor, lr: float, betas: tuple, eps: float):
        self.interpreter = interpreter
        twin = getattr(interpreter, "for_second_order", None)
        self.unrolled = twin() if twin is not None else interpreter
        self.m, self.m1, self.m2 = m, torch.zeros_like(m), torch.zeros_like(m)
        self.step = 0
        self.lr, self.betas, self.eps = lr, tuple(betas), eps

    @classmethod
    def start(
        cls, interpreter: BilevelInterpreter, n: int, like: torch.Tensor, cfg: MaskConfig
    ) -> RunningMask:
        """``n`` masks at the interpreter's start (0.5), with ``cfg``'s optimiser (learning rate
        ``cfg.mask_lr``, else the interpreter's own)."""
        m = interpreter.init_mask(n).to(like.device, like.dtype)
        return cls(interpreter, m, cfg.mask_lr or interpreter.settings.lr, cfg.adam_betas, cfg.adam_eps)

    def _objective_grad(self, interp, x, target, jitter, prepared, create_graph: bool) -> torch.Tensor:
        self.m = self.m.detach().requires_grad_(True)
        objective = interp.mask_objective(self.m, x, target, jitter=jitter(), prepared=prepared).sum()
        (gm,) = torch.autograd.grad(objective, self.m, create_graph=create_graph)
        self.step += 1
        return gm

    def track(self, x, target, jitter: Callable[[], tuple[int, int]], prepared, steps: int) -> None:
        """``steps`` plain Adam steps at ``x`` (``prepared``: its detached :meth:`prepare`)."""
        for _ in range(steps):
            gm = self._objective_grad(self.interpreter, x, target, jitter, prepared, False)
            with torch.no_grad():
                self.m, self.m1, self.m2 = self._adam(gm)

    def unroll(
        self, x, target, jitter: Callable[[], tuple[int, int]], prepared, steps: int
    ) -> list[torch.Tensor]:
        """``steps`` Adam steps with their graph to ``x`` (through ``prepared``, its
        :meth:`prepare` with the graph); the mask after each."""
        masks = []
        for _ in range(steps):
            gm = self._objective_grad(self.unrolled, x, target, jitter, prepared, True)
            self.m, self.m1, self.m2 = self._adam(gm)
            masks.append(self.m)
        return masks

    def _adam(self, grad: torch.Tensor):
        return _adam(self.m, grad, self.m1, self.m2, self.step, self.lr, self.betas, self.eps)

    def detach(self) -> None:
        self.m, self.m1, self.m2 = self.m.detach(), self.m1.detach(), self.m2.detach()

    def restart(self, m: torch.Tensor, cfg: MaskConfig) -> None:
        """Warm restart from a re-solved mask ``m``: moments scaled, step count reset (``cfg``'s
        ``restart_*`` fields)."""
        self.m = m
        self.m1, self.m2 = cfg.restart_mean_scale * self.m1, cfg.restart_var_scale * self.m2
        self.step = cfg.restart_adam_step

    def keep(self, index) -> None:
        """Keep only the masks at ``index`` (images that leave the batch drop theirs)."""
        self.m, self.m1, self.m2 = self.m[index], self.m1[index], self.m2[index]


class WarmMask:
    """MASK's map as a differentiable function of the input, for a sign-step attack's ``map_fn``
    (:func:`adv2.core.attacks.adv2.adv2_sign`; chapter 9's ensemble attack), on the bilevel
    attack's running mask (:class:`RunningMask`).

    At a batch's first call MASK is solved at that input (the interpreter's own iterations and
    seed) and the running mask restarts from it as the bilevel attack does after a re-solve
    (``cfg.restart_adam_step``); every call then takes ``cfg.track_steps`` plain Adam steps at the
    current input and ``cfg.unroll_steps`` steps with their graph, and returns ``1 - m`` of the last
    unrolled mask, differentiable w.r.t. the input (with ``unroll_steps`` 0: the tracked mask, a
    constant). Jitter: one seeded draw per step (``cfg.seed``), as the bilevel attack's.

    Stateful (:class:`adv2.core.attacks.losses.StatefulMapFn`): the attack calls :meth:`reset`
    before each batch and :meth:`select` with the images each call holds; images that stopped
    early keep their mask."""

    def __init__(self, interpreter: BilevelInterpreter, cfg: MaskConfig):
        self.interpreter, self.cfg = interpreter, cfg
        self.map_size = interpreter.map_size
        self.reset(0)

    def reset(self, n: int) -> None:
        self.n, self.run, self.index = n, None, slice(None)
        self.jitter = _jitter_sampler(self.interpreter, self.cfg.seed)

    def select(self, index: slice | torch.Tensor) -> None:
        self.index = index

    def __call__(self, x: torch.Tensor, target: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
        cfg, idx = self.cfg, self.index
        if self.run is None:
            if len(x) != self.n:
                raise ValueError(f"the first call of a batch holds all its {self.n} images, got {len(x)}")
            self.run = RunningMask.start(self.interpreter, len(x), x, cfg)
            self.run.restart(self.interpreter.optimize_mask(x.detach(), target).to(x.dtype), cfg)
        run = self.run
        whole = (run.m, run.m1, run.m2)
        if not isinstance(idx, slice):  # the running masks of the images this call holds
            run.m, run.m1, run.m2 = (t[idx] for t in whole)
        prepared = self.interpreter.prepare(x)
        run.track(x, target, self.jitter, tuple(p.detach() for p in prepared), cfg.track_steps)
        masks = run.unroll(x, target, self.jitter, prepared, cfg.unroll_steps)
        run.detach()
        if not isinstance(idx, slice):  # out of place: the returned map's graph saved the old ones
            run.m, run.m1, run.m2 = (t.index_copy(0, idx, n) for t, n in zip(whole, (run.m, run.m1, run.m2)))
        return 1 - (masks[-1] if masks else run.m)


class _Selection:
    """Per image, the checkpoint the attack returns: the closest successful one (first on ties),
    else the last one; with the fast schedule also when an image's distance last improved.

    Running state over the checkpoints (the same choice as an argmin over all of them), so images
    that stopped early keep theirs while the others go on."""

    def __init__(self, x: torch.Tensor, benign: torch.Tensor, min_improvement: float):
        n = len(x)
        self.min_improvement = min_improvement
        self.dist = torch.full((n,), float("inf"), device=x.device, dtype=benign.dtype)
        self.x, self.last_x = x.detach().clone(), x.detach().clone()
        self.maps, self.last_maps = torch.zeros_like(benign), torch.zeros_like(benign)
        self.conf, self.last_conf = torch.zeros(n, device=x.device), torch.zeros(n, device=x.device)
        self.improved_at = torch.zeros(n, dtype=torch.long, device=x.device)

    def update(self, idx, step, xq, maps, ok, conf, dist) -> None:
        best = self.dist[idx]
        better = ok & (dist < best)
        improved = ok & (dist < best * (1 - self.min_improvement))
        b = better.view(-1, *[1] * (xq.dim() - 1))
        self.dist[idx] = torch.where(better, dist, best)
        self.x[idx] = torch.where(b, xq, self.x[idx])
        self.maps[idx] = torch.where(b, maps, self.maps[idx])
        self.conf[idx] = torch.where(better, conf, self.conf[idx])
        self.last_x[idx], self.last_maps[idx], self.last_conf[idx] = xq, maps, conf
        self.improved_at[idx] = torch.where(
            improved, torch.full_like(self.improved_at[idx], step), self.improved_at[idx]
        )

    @property
    def success(self) -> torch.Tensor:
        return torch.isfinite(self.dist)

    def done(self, step: int, patience: int, since: int = 0) -> torch.Tensor:
        """Images at the target whose best distance has not improved for ``patience`` steps
        (counted from step ``since`` at the earliest)."""
        return self.success & (step - self.improved_at.clamp_min(since) >= patience)

    def result(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self.success
        s4 = s.view(-1, *[1] * (self.x.dim() - 1))
        return (
            torch.where(s4, self.x, self.last_x),
            torch.where(s.view(-1, *[1] * (self.maps.dim() - 1)), self.maps, self.last_maps),
            torch.where(s, self.conf, self.last_conf),
        )


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
    x_stage1: torch.Tensor | None = None,
    interp_loss: InterpLoss | None = None,
    recorder=None,
    bar=None,
) -> AttackResult:
    """ADV2 on MASK for one batch (bilevel; unrolled inner Adam), see :class:`MaskConfig`.

    ``benign`` are benign *attributions* (1 - m), so the mask target is ``1 - benign``.
    Simplifications of the authors' code:

    * the step-size bisection is per image (the authors test one batch-summed margin for all
      images of the batch; we test each image's margin against ``margin_threshold``, the authors'
      threshold divided by their batch size);
    * the 8-bit quantisation of checkpoints rounds to the nearest grid value inside the eps-ball
      (the authors truncate, which can leave the ball by up to 1/255);
    * checkpoints come *after* the step (steps ``resolve_every``, ``2 resolve_every``, ..., and the
      last step) rather than before it; the selection then uses them as the authors do;
    * Adam's denominator uses ``sqrt(v + eps^2)`` so its derivative is finite at ``v = 0``.

    ``cfg.schedule == "fast"``: stage 1 as every variant's (:func:`adv2.core.attacks.pgd.stage1`, its
    unused steps go to stage 2); the prediction step and the bisection's upper bound decay along a
    cosine from ``fast_stage2_start`` to ``fast_stage2_end`` times ``pred_step`` / ``int_step_max``;
    at each checkpoint of the second half of stage 2 an image stops once it has a successful
    checkpoint whose distance has not improved by ``min_improvement`` (relative) for ``patience``
    steps counted from the half at the earliest (stopped images leave the batch; MASK's progress
    is noisy, so its default patience is longer than the sign variant's). ``recorder`` (:class:`adv2.core.attacks.convergence.Recorder`) counts every step and gets
    the would-be result at each checkpoint (MASK's map is re-solved only there).
    As in the authors' code the unrolled mask is detached between unrolled steps (the graph to the
    input flows through the gradients and Adam's moments), and the jitter is one draw per call for
    the whole batch (seeded by ``cfg.seed``).
    """
    loss_fn = interp_loss or squared_error("sum")
    n = len(x0)
    target_mask = 1 - benign
    lo, hi = linf_box(x0, cfg.epsilon)
    jitter = _jitter_sampler(interpreter, cfg.seed)
    unused = 0  # stage-1 steps the fast schedule did not need: stage 2 gets them
    if x_stage1 is None:
        x_stage1, taken = stage1(model, x0, target, cfg, bar, recorder)
        unused = cfg.stage1_steps - taken
    x = project(x_stage1.detach(), lo, hi)
    run = RunningMask.start(interpreter, n, x0, cfg)

    fast = cfg.schedule == "fast"
    total = cfg.stage2_steps + (max(0, unused) if fast else 0)
    late_from = int(cfg.late_fraction * total)
    # the prediction steps' sizes; images stop at checkpoints (below), not on the sign loop's checks
    plan = Schedule.of(cfg, total, cfg.pred_step, cfg.fast_stage2_start, cfg.fast_stage2_end)
    int_maxes = (
        step_sizes(cfg.int_step_max, total, "fast", cfg.fast_stage2_start, cfg.fast_stage2_end)
        if fast
        else [cfg.int_step_max if i < late_from else cfg.int_step_max_late for i in range(total)]
    )
    chosen = _Selection(x, benign, cfg.min_improvement)
    active = torch.arange(n, device=x.device)  # original indices of the images still attacked
    steps, hist_success, hist_dist = [], [], []
    period = max(1, cfg.resolve_every)

    def checkpoint(step: int, x: torch.Tensor) -> torch.Tensor:
        xq = quantize_in_box(x, lo, hi) if cfg.quantize else x
        with torch.no_grad():
            logits = fp32_forward(model, xq)
        attribution = interpreter(xq, target).detach()
        mq = 1 - attribution
        ok = logits.argmax(1) == target
        dist = loss_fn(mq, target_mask).detach()
        chosen.update(active, step, xq, attribution, ok, target_confidence(logits, target), dist)
        steps.append(step)
        hist_success.append(chosen.success.float().mean())
        fin = chosen.success
        hist_dist.append(
            torch.where(fin, chosen.dist, torch.zeros_like(chosen.dist)).sum() / fin.sum().clamp_min(1)
        )
        if recorder is not None:
            recorder.add(recorder.step, chosen.success, chosen.result()[1])
        return mq

    taken = 0
    for i in range(total):
        # prediction step: L2-normalised gradient of the margin
        x.requires_grad_(True)
        logits = fp32_forward(model, x)  # bf16 on CUDA; the margin in fp32
        (g,) = torch.autograd.grad(margin_loss(logits, target).sum(), x)
        g_norm = g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        x = project(x.detach() - plan.alphas[i] * g / g_norm, lo, hi)

        # track m*(x) with plain Adam steps; the resized and blurred input is computed once, with
        # its graph to x for the unrolled steps (the tracking steps use it detached)
        x.requires_grad_(True)
        prepared_x = interpreter.prepare(x)
        run.track(x, target, jitter, tuple(p.detach() for p in prepared_x), cfg.track_steps)

        # unrolled steps: differentiate the distance of the updated masks w.r.t. the input
        l_int = torch.zeros(n, device=x.device)
        for m in run.unroll(x, target, jitter, prepared_x, cfg.unroll_steps):
            l_int = l_int + loss_fn(m, target_mask)
        l_int = l_int / max(cfg.unroll_steps, 1)
        if cfg.unroll_steps:
            (gx,) = torch.autograd.grad(l_int.sum(), x)
        else:
            gx = torch.zeros_like(x)
        run.detach()
        x = x.detach()
        direction = gx / gx.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)

        # largest step along the interpretation direction that keeps the target class safely ahead
        s_max = int_maxes[i]
        left = torch.zeros(n, device=x.device)
        right = torch.full((n,), s_max, device=x.device)
        best = torch.zeros(n, device=x.device)
        with torch.no_grad():
            for _ in range(cfg.bisection_steps):
                mid = (left + right) / 2
                trial = project(x - mid.view(-1, 1, 1, 1) * direction, lo, hi)
                logits = fp32_forward(model, trial)
                ok = margin_loss(logits, target) < cfg.margin_threshold
                left = torch.where(ok, mid, left)
                right = torch.where(ok, right, mid)
                best = torch.where(ok, torch.maximum(best, mid), best)
            x = project(x - best.view(-1, 1, 1, 1) * direction, lo, hi)

        taken = i + 1
        if bar is not None and i < cfg.stage2_steps:  # the bar already counted stage 1's leftover
            bar.update(1)
        if recorder is not None:
            recorder.tick(x)
        if (i + 1) % period == 0 or i + 1 == total:
            mq = checkpoint(i + 1, x)
            run.restart(mq, cfg)  # warm restart of the running mask from the re-solved one
            # stopped images leave the batch (the loop's only host synchronisation); none stops in
            # the first half, whose long steps overshoot: a stall there is no convergence yet
            if plan.early_stop and 2 * (i + 1) >= total:
                keep = (~chosen.done(i + 1, cfg.patience, since=total // 2)[active]).nonzero().view(-1)
                if len(keep) == 0:
                    break
                if len(keep) < len(active):
                    active, x = active[keep], x[keep]
                    run.keep(keep)
                    lo, hi, target, target_mask = lo[keep], hi[keep], target[keep], target_mask[keep]
                    n = len(active)
    if bar is not None and taken < cfg.stage2_steps:
        bar.update(cfg.stage2_steps - taken)

    if not steps:  # no stage 2: evaluate the warm start
        checkpoint(0, x)
    # closest successful checkpoint; failures fall back to their last checkpoint
    x_adv, maps, conf = chosen.result()
    history = {
        "step": steps,
        "success": [float(v) for v in torch.stack(hist_success).cpu()],
        "sq_distance": [float(v) for v in torch.stack(hist_dist).cpu()],
    }
    return AttackResult(x_adv, chosen.success, conf, maps, history)


__all__ = ["RunningMask", "WarmMask", "adv2_mask", "quantize_in_box"]
