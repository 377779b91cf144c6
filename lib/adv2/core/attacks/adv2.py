"""ADV2 (paper-method 3): fool the classifier *and* keep the interpreter's map benign-looking.

Stage 1: prediction-only PGD (the warm start). Stage 2 depends on how the interpreter can be
differentiated, which it declares as ``attack_style`` (:mod:`adv2.core.interpreters.base`):

* ``"differentiable"`` -- sign-PGD on ``CE + lambda * l_int`` where ``l_int`` compares the map of
  the adversarial input (w.r.t. the target class) with the *benign* map (w.r.t. the true class)
  (:func:`adv2_sign`). Optional capabilities refine it, following the authors' code:
  ``attack_surrogate`` (Grad: differentiate a smooth-ReLU copy, stepwise lambda, best-iterate
  selection on the true map), ``attribute_with_logits`` (CAM: logits and map from one forward),
  ``encoder_logits`` (RTS: adds ``encoder_weight * CE(encoder logits, target)``), with
  ``attribute_with_encoder_logits`` (RTS: map and encoder logits from one pass, the classifier's
  forward reused when the encoder is an exact copy of it);
* ``"bilevel"`` -- the map is an optimisation result (MASK): unrolled inner Adam steps
  (:func:`adv2.core.attacks.mask.adv2_mask`).

Everything works on batches, on the inputs' device, with no per-image Python loops and no host
synchronisation inside the step loops (selection uses ``torch.where``; tests/test_nosync.py). On
CUDA the forward passes run in bf16 autocast, the losses and the selection in fp32
(:mod:`adv2.core.precision`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from adv2.core.attacks.common import AttackResult, assess, device_of
from adv2.core.attacks.config import CONFIGS, ADV2Config, AttackConfig, GradConfig, MaskConfig
from adv2.core.attacks.loop import EarlyStop, Schedule, linf_box, project, sign_loop
from adv2.core.attacks.losses import InterpLoss, MapFn, StatefulMapFn, squared_error
from adv2.core.attacks.mask import adv2_mask
from adv2.core.attacks.pgd import stage1
from adv2.core.interpreters import build_interpreter
from adv2.core.interpreters.base import (
    HasAttackSurrogate,
    HasMapsWithEncoderLogits,
    HasMapsWithLogits,
    HasOwnEncoder,
    Interpreter,
    attack_style,
)
from adv2.core.metrics import target_confidence
from adv2.core.precision import forward_precision, fp32, fp32_forward
from adv2.core.progress import progress_bar
from adv2.core.tensors import batch_slices, map_batches

# (x, target) -> (logits, maps, extra per-sample loss or None), all differentiable w.r.t. x
Forward = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]


def _forward_fp32(forward: Forward, x: torch.Tensor, target: torch.Tensor):
    """``forward`` under :func:`~adv2.core.precision.forward_precision` (bf16 autocast on CUDA), its
    logits, maps and extra loss back in fp32 for the losses and the selection."""
    with forward_precision(x.device):
        logits, maps, extra = forward(x, target)
    return fp32(logits), fp32(maps), fp32(extra)


def _joint_grad(
    forward: Forward,
    x: torch.Tensor,
    target: torch.Tensor,
    benign: torch.Tensor,
    lam: float,
    interp_loss: InterpLoss,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One joint-stage gradient: ``d/dx [CE + lam * l_int (+ extra)]`` (sums over the batch);
    returns ``(grad, logits, per-image map loss)``. ``x`` must require grad."""
    logits, maps, extra = _forward_fp32(forward, x, target)
    loss = F.cross_entropy(logits, target, reduction="sum")
    map_loss = interp_loss(maps, benign)
    loss = loss + lam * map_loss.sum()
    if extra is not None:
        loss = loss + extra.sum()
    # a surrogate's logits differentiate their graph a second time (exact_relu_gradient): then the
    # graph is retained, and goes with the returned tensors (the caller drops them before the next step)
    (grad,) = torch.autograd.grad(loss, x, retain_graph=getattr(forward, "retain_graph", False))
    return grad, logits, map_loss


def _joint_stage(
    forward: Forward,
    x0: torch.Tensor,
    x: torch.Tensor,
    target: torch.Tensor,
    benign: torch.Tensor,
    cfg: ADV2Config,
    interp_loss: InterpLoss,
    lam_scale: float,
    selector: _BestIterate | None,
    bar,
    recorder=None,
    extra_steps: int = 0,
    on_select: Callable[[slice | torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Stage 2 of the sign-PGD variant: ``CE + lam_i * l_int (+ extra)``, projected sign steps of
    the schedule's sizes (:class:`~adv2.core.attacks.loop.Schedule`).

    The fast schedule stops images early (:class:`~adv2.core.attacks.loop.EarlyStop`, on the
    still-active images) and returns each image's best successful iterate; ``extra_steps`` (left
    over by its stage 1) lengthen the stage, lambda's schedule stretches over them.
    ``selector(step, x, logits)`` (Grad's best-iterate selection) sees the iterate *before* the
    step every ``cfg.select_every`` steps, with the logits of the forward that produced its
    gradient while the whole batch is attacked (the authors' schedule). ``recorder.tick(x)``
    (convergence curves) sees what the stage would return after every step. ``on_select(idx)``
    (a stateful ``map_fn``'s :meth:`~adv2.core.attacks.losses.StatefulMapFn.select`) hears which
    images each gradient is taken on.
    """
    lo, hi = linf_box(x0, cfg.epsilon)
    x = project(x.detach(), lo, hi)
    plan = Schedule.of(cfg, cfg.stage2_steps + max(0, extra_steps))
    total = plan.steps
    stopper = EarlyStop(x, cfg.patience, cfg.min_improvement) if plan.early_stop else None

    def gradient(i: int, x: torch.Tensor, xa: torch.Tensor, idx: torch.Tensor):
        ta = target[idx]
        lam = cfg.lam_at(i * cfg.stage2_steps // total) * lam_scale
        if on_select is not None:
            on_select(idx)
        grad, logits, map_loss = _joint_grad(forward, xa, ta, benign[idx], lam, interp_loss)
        if stopper is not None:
            with torch.no_grad():
                stopper.update(idx, xa, logits.argmax(1) == ta, map_loss.detach())
        if selector is not None and cfg.select_every and i % cfg.select_every == 0:
            selector(i, x.detach(), None if stopper is not None else logits.detach())
        return grad, None  # the retained graph goes with logits and map_loss here

    def after_step(taken: int, x: torch.Tensor) -> None:
        if recorder is not None:
            recorder.tick(x if stopper is None else stopper.result(x))

    x, _ = sign_loop(x, lo, hi, plan, gradient, stopper, after_step, bar, cfg.stage2_steps)
    return x if stopper is None else stopper.result(x)


class _BestIterate:
    """Keeps, per image, the iterate whose true map is closest to the benign map among those with
    p(target) > threshold (the authors' Grad selection). All updates are ``torch.where``."""

    def __init__(
        self,
        x0: torch.Tensor,
        map_fn: MapFn,
        target: torch.Tensor,
        benign: torch.Tensor,
        threshold: float,
        model: nn.Module,
    ):
        n = len(x0)
        self.map_fn, self.target, self.benign, self.threshold, self.model = (
            map_fn,
            target,
            benign,
            threshold,
            model,
        )
        self.dist = torch.full((n,), float("inf"), device=x0.device)
        self.x = x0.clone()
        self.maps = torch.zeros_like(benign)
        self.conf = torch.zeros(n, device=x0.device)
        self.steps: list[int] = []
        self.curve_success: list[torch.Tensor] = []
        self.curve_dist: list[torch.Tensor] = []

    def returned(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the attack returns if it stops at iterate ``x``, and which images succeeded."""
        found = torch.isfinite(self.dist)
        return torch.where(found.view(-1, 1, 1, 1), self.x, x), found

    def __call__(self, step: int, x: torch.Tensor, logits: torch.Tensor | None) -> None:
        if logits is None:
            with torch.no_grad():
                logits = fp32_forward(self.model, x)
        prob = target_confidence(logits, self.target)
        with torch.enable_grad():
            maps = self.map_fn(x, self.target).detach()
        dist = (maps - self.benign).pow(2).flatten(1).sum(1)
        better = (prob > self.threshold) & (dist < self.dist)
        b4 = better.view(-1, 1, 1, 1)
        self.dist = torch.where(better, dist, self.dist)
        self.x = torch.where(b4, x, self.x)
        self.maps = torch.where(b4, maps, self.maps)
        self.conf = torch.where(better, prob, self.conf)
        self.steps.append(step)
        self.curve_success.append(torch.isfinite(self.dist).float().mean())
        self.curve_dist.append(
            torch.where(torch.isfinite(self.dist), self.dist, torch.zeros_like(self.dist)).sum()
            / torch.isfinite(self.dist).sum().clamp_min(1)
        )


def _with_logits_forward(interpreter: HasMapsWithLogits) -> Forward:
    """Logits and map from ONE forward (CAM: the authors' ``cam_forward``)."""

    def forward(x: torch.Tensor, t: torch.Tensor):
        logits, maps = interpreter.attribute_with_logits(x, t, create_graph=True)
        return logits, maps, None

    return forward


def _with_encoder_logits_forward(
    model: nn.Module, interpreter: HasMapsWithEncoderLogits, encoder_weight: float
) -> Forward:
    """Map and own-encoder logits from ONE pass of the interpreter's network (RTS); when its
    encoder is an exact copy of ``model`` (the authors' setting: both the same ImageNet ResNet-50)
    the encoder's logits are ``model``'s too, and the classifier's forward is not run again."""
    same = interpreter.encoder_is(model)

    def forward(x: torch.Tensor, t: torch.Tensor):
        maps, enc = interpreter.attribute_with_encoder_logits(x, t, create_graph=True)
        logits = enc if same else model(x)
        extra = encoder_weight * F.cross_entropy(enc, t, reduction="none") if encoder_weight else None
        return logits, maps, extra

    return forward


def _differentiable_forward(
    model: nn.Module,
    map_fn: MapFn,
    encoder_logits: Callable[[torch.Tensor], torch.Tensor] | None = None,
    encoder_weight: float = 0.0,
) -> Forward:
    def forward(x: torch.Tensor, t: torch.Tensor):
        logits = model(x)
        maps = map_fn(x, t)
        extra = None
        if encoder_logits is not None and encoder_weight:
            extra = encoder_weight * F.cross_entropy(encoder_logits(x), t, reduction="none")
        return logits, maps, extra

    return forward


def _sign_forward(
    model: nn.Module, interpreter: Interpreter, cfg: ADV2Config, map_fn: MapFn | None, n_cells: int
) -> tuple[Forward, float]:
    """The differentiable forward of stage 2 and the lambda scale, from the declared capabilities."""
    if map_fn is not None:
        return _differentiable_forward(model, map_fn), 1.0
    if isinstance(interpreter, HasAttackSurrogate):
        tau = cfg.tau if isinstance(cfg, GradConfig) else GradConfig.tau
        surrogate = interpreter.attack_surrogate(tau)
        if isinstance(surrogate, HasMapsWithLogits):  # logits (true gradient) and map: one forward
            forward = _with_logits_forward(surrogate)
            forward.retain_graph = True  # exact_relu_gradient walks the logits' graph again
        else:
            forward = _differentiable_forward(model, lambda xx, tt: surrogate(xx, tt, create_graph=True))
        ref = cfg.cells_reference if isinstance(cfg, GradConfig) else None
        return forward, (ref / n_cells if ref else 1.0)
    if isinstance(interpreter, HasMapsWithLogits):
        return _with_logits_forward(interpreter), 1.0
    if isinstance(interpreter, HasMapsWithEncoderLogits):
        return _with_encoder_logits_forward(model, interpreter, cfg.encoder_weight), 1.0
    encoder = interpreter.encoder_logits if isinstance(interpreter, HasOwnEncoder) else None
    return _differentiable_forward(
        model,
        lambda xx, tt: interpreter(xx, tt, create_graph=True),
        encoder_logits=encoder,
        encoder_weight=cfg.encoder_weight,
    ), 1.0


def adv2_sign(
    model: nn.Module,
    interpreter: Interpreter,
    x0: torch.Tensor,
    target: torch.Tensor,
    benign: torch.Tensor,
    cfg: ADV2Config,
    *,
    interp_loss: InterpLoss | None = None,
    map_fn: MapFn | None = None,
    x_stage1: torch.Tensor | None = None,
    bar=None,
    recorder=None,
) -> AttackResult:
    """Sign-step ADV2 on one batch, for any interpreter whose map is differentiable w.r.t. ``x``.

    ``recorder`` (:class:`adv2.core.attacks.convergence.Recorder`) sees every step's would-be result.
    A stateful ``map_fn`` (:class:`~adv2.core.attacks.losses.StatefulMapFn`) is reset for the batch
    and told which of its images each call holds."""
    interp_loss = interp_loss or squared_error(cfg.int_reduction)
    stateful = map_fn if isinstance(map_fn, StatefulMapFn) else None
    if stateful is not None:
        stateful.reset(len(x0))
    forward, lam_scale = _sign_forward(model, interpreter, cfg, map_fn, benign[0].numel())
    unused = 0  # stage-1 steps the fast schedule did not need: the joint stage gets them
    if x_stage1 is None:
        x_stage1, taken = stage1(model, x0, target, cfg, bar, recorder)
        unused = cfg.stage1_steps - taken
    selector = None
    if cfg.select_every:
        selector = _BestIterate(
            x0, lambda xx, tt: interpreter(xx, tt), target, benign, cfg.select_threshold, model
        )
        if recorder is not None:  # what the attack would return now: the selection so far
            recorder.returns(selector.returned)
    x_adv = _joint_stage(
        forward,
        x0,
        x_stage1,
        target,
        benign,
        cfg,
        interp_loss,
        lam_scale,
        selector,
        bar,
        recorder=recorder,
        extra_steps=unused,
        on_select=None if stateful is None else stateful.select,
    )
    if selector is not None:
        selector(cfg.stage2_steps, x_adv, None)  # the final iterate is a candidate too
        success = torch.isfinite(selector.dist)
        final = assess(model, x_adv, target, interpreter)
        s4 = success.view(-1, 1, 1, 1)
        # failures keep their final iterate (the authors return the clean image instead)
        history = {
            "step": selector.steps,
            "success": [float(v) for v in torch.stack(selector.curve_success).cpu()],
            "sq_distance": [float(v) for v in torch.stack(selector.curve_dist).cpu()],
        }
        return AttackResult(
            torch.where(s4, selector.x, x_adv),
            success,
            torch.where(success, selector.conf, final.confidence),
            torch.where(s4, selector.maps, final.maps),
            history,
        )
    return assess(model, x_adv, target, interpreter)


def _variant(interpreter: Interpreter, map_fn: MapFn | None) -> str:
    """ "bilevel" for a bilevel interpreter without an injected ``map_fn``, else "sign"."""
    return "bilevel" if attack_style(interpreter) == "bilevel" and map_fn is None else "sign"


def _config_for(name: str, variant: str, config: AttackConfig | None) -> AttackConfig:
    expected = MaskConfig if variant == "bilevel" else ADV2Config
    if config is None:
        cls = CONFIGS.get(name)
        return cls() if cls is not None and issubclass(cls, expected) else expected()
    if not isinstance(config, expected):
        raise TypeError(
            f"config is a {type(config).__name__}, but the {variant} ADV2 variant (interpreter "
            f"{name!r}) needs a {expected.__name__} (or subclass); valid: "
            f"{sorted(k for k, c in CONFIGS.items() if issubclass(c, expected))} via default_config"
        )
    return config


def adv2_attack(
    model: nn.Module,
    interpreter: Interpreter | str,
    x: torch.Tensor,
    y: torch.Tensor,
    target: torch.Tensor,
    benign_maps: torch.Tensor | None = None,
    config: AttackConfig | None = None,
    *,
    interp_loss: InterpLoss | None = None,
    map_fn: MapFn | None = None,
    x_stage1: torch.Tensor | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    desc: str | None = None,
    recorder=None,
) -> AttackResult:
    """ADV2 against ``interpreter`` (an interpreter object, or a name for ``build_interpreter``).

    ``x`` clean images in [0,1], ``y`` true classes, ``target`` target classes. ``benign_maps``
    default to ``interpreter(x, y)``: the target map is the clean input's own map (the paper's
    main setting). ``config`` defaults to the authors' schedule for the interpreter
    (:func:`default_config`); it must suit the variant the interpreter's ``attack_style`` selects
    (:class:`ADV2Config` for sign steps, :class:`MaskConfig` for the bilevel attack).
    ``interp_loss(maps, benign) -> (N,)`` replaces the squared error; ``map_fn(x, t)`` replaces the
    differentiable map the attack optimises (new interpreters; it selects the sign-step variant).
    ``x_stage1`` skips stage 1 (e.g. reuse a PGD snapshot). ``recorder``
    (:class:`adv2.core.attacks.convergence.Recorder`, read-only) sees every step of each batch chunk
    (``recorder.begin(chunk)`` first; stage 1 counted when it runs here). Returns an :class:`AttackResult` whose
    ``maps`` are the interpreter's evaluation maps at ``x_adv`` w.r.t. ``target``.
    """
    if isinstance(interpreter, str):
        interpreter = build_interpreter(interpreter, model)
    name = getattr(interpreter, "name", "custom")  # only labels the progress bar and errors
    variant = _variant(interpreter, map_fn)
    cfg = _config_for(name, variant, config)
    runner = adv2_mask if variant == "bilevel" else functools.partial(adv2_sign, map_fn=map_fn)
    device = device_of(model, x)
    size = batch_size or cfg.batch_size
    if benign_maps is None:
        benign_maps = map_batches(interpreter, x, y, batch_size=size, device=device)
    started = time.time()
    parts = []
    chunks = batch_slices(len(x), size)
    total = len(chunks) * (cfg.stage2_steps + (0 if x_stage1 is not None else cfg.stage1_steps))
    bar = progress_bar(total=total, desc=desc or f"adv2 {name}", enabled=progress)
    for sl in chunks:
        if recorder is not None:
            recorder.begin(sl)
        parts.append(
            runner(
                model,
                interpreter,
                x[sl].to(device),
                target[sl].to(device),
                benign_maps[sl].to(device),
                cfg,
                interp_loss=interp_loss,
                x_stage1=None if x_stage1 is None else x_stage1[sl].to(device),
                bar=bar,
                recorder=recorder,
            )
        )
    bar.close()
    result = AttackResult(
        torch.cat([p.x_adv for p in parts]),
        torch.cat([p.success for p in parts]),
        torch.cat([p.confidence for p in parts]),
        torch.cat([p.maps for p in parts]),
    )
    if parts and parts[0].history:
        result.history = _merge_histories(parts)
    result.seconds = time.time() - started
    return result


def _merge_histories(parts: list[AttackResult]) -> dict[str, list]:
    """The chunks' per-checkpoint curves as one, weighted by chunk size. On the fast schedule the
    chunks stop (and so record) at different steps: each chunk counts at every step of the union
    with its latest value (its first one before it recorded any), as a stopped image keeps its
    result."""
    steps = sorted({s for p in parts for s in p.history["step"]})
    weights = torch.tensor([p.x_adv.shape[0] for p in parts], dtype=torch.float)
    merged: dict[str, list] = {"step": steps}
    for key in parts[0].history:
        if key == "step":
            continue
        rows = []
        for p in parts:
            own = dict(zip(p.history["step"], p.history[key]))
            value, row = p.history[key][0], []
            for s in steps:
                value = own.get(s, value)
                row.append(value)
            rows.append(row)
        vals = torch.tensor(rows, dtype=torch.float)
        merged[key] = ((vals * weights[:, None]).sum(0) / weights.sum()).tolist()
    return merged


__all__ = ["Forward", "adv2_attack", "adv2_sign"]
