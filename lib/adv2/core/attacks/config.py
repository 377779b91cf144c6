"""Schedules of the attacks: one dataclass per ADV2 variant, defaults = the authors' values.

* :class:`AttackConfig` -- what every variant reads: the L-inf budget, the sign-step size, the
  prediction-only stage 1 (steps and loss), the number of stage-2 steps, the batch and the seed;
* :class:`ADV2Config` -- the sign-step variant (differentiable interpreters): lambda schedule,
  reduction of the map loss, own-encoder term, best-iterate selection; :class:`CAMConfig`,
  :class:`RTSConfig`, :class:`GradConfig` hold the authors' schedule per interpreter;
* :class:`MaskConfig` -- the bilevel variant (MASK): its own inner-optimisation schedule.

:meth:`AttackConfig.scaled` shrinks the step counts for the CPU profiles; :func:`default_config`
returns the authors' schedule for an interpreter name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from adv2.core.attacks.loop import check_schedule


@dataclass
class AttackConfig:
    """Fields every ADV2 variant reads.

    ``epsilon``/``step_size`` (L-inf budget and sign-step size), ``stage1_steps`` and
    ``stage1_loss`` ("ce" or "margin") of the prediction-only warm start, ``stage2_steps`` of the
    joint stage, ``batch_size`` (the authors' GPU batch; results do not depend on it) and ``seed``
    (only MASK's jitter uses it).

    ``schedule``: ``"authors"`` (constant sign steps, the paper's; the default) or ``"fast"``
    (:mod:`adv2.core.attacks.loop`: step sizes decaying along a cosine from ``fast_step_start`` to
    ``fast_step_end`` times ``step_size`` in each stage, per-image early stopping once an image is
    at the target and, in the joint stage, its map loss has not improved by a relative
    ``min_improvement`` for ``patience`` steps, checked every ``check_every`` steps). The fast
    schedule is meant for about a quarter of the authors' steps: ``default_config(name,
    scale=s / 4, schedule="fast")``.
    """

    epsilon: float = 0.031
    step_size: float = 1 / 255
    stage1_steps: int = 400
    stage1_loss: str = "ce"
    stage2_steps: int = 1200
    batch_size: int = 50
    seed: int = 0
    schedule: str = "authors"
    fast_step_start: float = 2.0
    fast_step_end: float = 0.1
    patience: int = 10
    min_improvement: float = 0.01
    check_every: int = 5

    # fields scaled by :meth:`scaled` (step counts, and checkpoint periods kept >= 1 when set)
    _step_fields = ("stage1_steps", "stage2_steps")
    _period_fields = ()

    def __post_init__(self) -> None:
        if self.stage1_loss not in ("ce", "margin"):
            raise ValueError(f"stage1_loss must be 'ce' or 'margin', got {self.stage1_loss!r}")
        check_schedule(self.schedule)
        if self.check_every < 1 or self.patience < 1:
            raise ValueError(
                f"check_every and patience must be >= 1, got {self.check_every!r} and {self.patience!r}"
            )

    def _scaled_changes(self, factor: float, min_steps: int) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        for name in self._step_fields:
            changes[name] = max(min_steps, int(round(getattr(self, name) * factor)))
        for name in self._period_fields:
            value = getattr(self, name)
            if value:
                changes[name] = max(1, int(round(value * factor)))
        return changes

    def scaled(self, factor: float, min_steps: int = 1) -> AttackConfig:
        """A copy with every step count (and checkpoint period) multiplied by ``factor``.

        ``factor = 1`` is the paper's budget; the CPU profiles use 0.02-0.2. Counts are rounded and
        kept >= ``min_steps`` (periods >= 1); Grad's phases are scaled one by one.
        """
        if factor <= 0:
            raise ValueError(f"factor must be > 0, got {factor!r}")
        return dataclasses.replace(self, **self._scaled_changes(factor, min_steps))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ADV2Config(AttackConfig):
    """Schedule of the sign-step ADV2 variant. Defaults: the authors' CAM attack.

    Besides :class:`AttackConfig`'s fields: lambda schedule (linear ``lam_start -> lam_end`` over
    stage 2, or, when ``phase_steps`` is not empty, ``phase_lams[k]`` for ``phase_steps[k]``
    steps), ``int_reduction`` of the squared error over map cells ("mean" or "sum"),
    ``encoder_weight`` of an interpreter's own-encoder CE term (RTS), best-iterate selection every
    ``select_every`` steps with ``p(target) > select_threshold`` (0 = take the final iterate).
    """

    lam_start: float = 5.0
    lam_end: float = 10.0
    phase_steps: tuple = ()
    phase_lams: tuple = ()
    int_reduction: str = "mean"
    encoder_weight: float = 0.0
    select_every: int = 0
    select_threshold: float = 0.8

    _period_fields = ("select_every",)

    def __post_init__(self) -> None:
        self.phase_steps = tuple(int(s) for s in self.phase_steps)
        self.phase_lams = tuple(float(c) for c in self.phase_lams)
        if len(self.phase_steps) != len(self.phase_lams):
            raise ValueError("phase_steps and phase_lams must have the same length")
        if self.phase_steps:
            self.stage2_steps = sum(self.phase_steps)
        if self.int_reduction not in ("mean", "sum"):
            raise ValueError(f"int_reduction must be 'mean' or 'sum', got {self.int_reduction!r}")
        super().__post_init__()

    def lam_at(self, step: int) -> float:
        """lambda at stage-2 step ``step`` (0-based)."""
        if self.phase_steps:
            edge = 0
            for n, lam in zip(self.phase_steps, self.phase_lams, strict=True):
                edge += n
                if step < edge:
                    return lam
            return self.phase_lams[-1]
        # the authors: c_i = c + i * c_inc with c_inc = (c_end - c) / s2_iters
        return self.lam_start + step * (self.lam_end - self.lam_start) / max(self.stage2_steps, 1)

    def _scaled_changes(self, factor: float, min_steps: int) -> dict[str, Any]:
        changes = super()._scaled_changes(factor, min_steps)
        if self.phase_steps:
            changes["phase_steps"] = tuple(max(min_steps, int(round(s * factor))) for s in self.phase_steps)
        return changes


@dataclass
class CAMConfig(ADV2Config):
    """ADV2 on CAM (``expr_attacks_fixed/cam_attack_acid.py``): 400 + 1200 steps, lambda 5 -> 10."""


@dataclass
class RTSConfig(ADV2Config):
    """ADV2 on RTS (``rts_attack_acid.py``): 300 + 1200 steps (statistics read at step 1200),
    lambda 5 -> 10, plus ``0.1 * CE(rts encoder logits, target)``."""

    stage1_steps: int = 300
    stage2_steps: int = 1200
    encoder_weight: float = 0.1
    batch_size: int = 40


@dataclass
class GradConfig(ADV2Config):
    """ADV2 on Grad (``rev2/gs/gs_acid_attack.py``): 300 CE steps, then phases of
    [301, 201, 101, 101] steps with lambda [0.001, 0.004, 0.01, 0.05] on the *summed* squared error,
    selection every 10 steps of the closest true-Grad map with p(target) > 0.8.

    ``cells_reference``: the authors' lambdas weigh a sum over 56x56 = 3136 cells. When set,
    lambda is multiplied by ``cells_reference / (h w)`` so the per-cell weight stays the authors'
    at other map sizes (FMNIST's 14x14 Grad map). ``None`` (the paper default) leaves lambda as
    given; ``tau`` is the smooth-ReLU constant of the attack's model copy.

    Differences from the authors' script: stage 1 also clips to [0,1] (theirs only to the
    eps-ball), the final iterate is a selection candidate too, and images without a candidate
    return their final iterate (theirs: the clean image); neither changes the statistics, which
    count successful images only.
    """

    stage1_steps: int = 300
    phase_steps: tuple = (301, 201, 101, 101)
    phase_lams: tuple = (0.001, 0.004, 0.01, 0.05)
    int_reduction: str = "sum"
    select_every: int = 10
    select_threshold: float = 0.8
    batch_size: int = 10
    cells_reference: int | None = None
    tau: float = 1e-4


@dataclass
class MaskConfig(AttackConfig):
    """ADV2 on MASK (``rev1/mask_v2/attack_mask_multistep_benign.py``); see :func:`adv2_mask`.

    Stage 1: 400 sign steps on the logit margin. Stage 2 (1000 steps), each: one L2-normalised
    prediction step of size ``pred_step`` on the margin; ``track_steps`` Adam steps on the running
    mask at the current input (no graph); ``unroll_steps`` Adam steps with ``create_graph=True``
    whose mean squared distance to the benign mask is differentiated w.r.t. the input; a step along
    the L2-normalised interpretation gradient whose size is the largest of ``bisection_steps``
    bisections in [0, ``int_step_max``] (``int_step_max_late`` after ``late_fraction`` of stage 2)
    keeping the logit margin below ``margin_threshold``. Every ``resolve_every`` steps the input is
    quantised to 8 bits and MASK is re-solved from scratch; the running mask restarts from it with
    Adam moments scaled by ``restart_mean_scale``/``restart_var_scale`` and the step counter set to
    ``restart_adam_step``. ``mask_lr``/``adam_betas``/``adam_eps``: the unrolled optimiser.

    ``schedule="fast"``: stage 1 as every variant's; in stage 2 ``pred_step`` and
    ``int_step_max`` decay along a cosine from ``fast_stage2_start`` to ``fast_stage2_end`` times
    their value (the bisection still keeps the target class ahead: on Fashion-MNIST, MASK's map
    distance falls with the step length the bisection allows, so larger steps save steps), and
    images stop at checkpoints (see :func:`adv2.core.attacks.mask.adv2_mask`).
    """

    # duplicates (shape only): field declarations like AttackConfig's; MASK's own defaults (listed
    # in lib/adv2/README.md)
    stage1_loss: str = "margin"
    stage2_steps: int = 1000
    batch_size: int = 12

    # stage 2: the prediction step, then the running mask (tracked, then unrolled)
    pred_step: float = 0.05
    track_steps: int = 4
    unroll_steps: int = 4
    resolve_every: int = 50

    # the interpretation step's bisection
    int_step_max: float = 0.08
    int_step_max_late: float = 0.04
    late_fraction: float = 0.9
    bisection_steps: int = 10
    # the authors require the *batch-summed* margin < -10 at batch 12; we apply its per-image mean
    margin_threshold: float = -10.0 / 12
    restart_mean_scale: float = 0.5
    restart_var_scale: float = 0.25
    restart_adam_step: int = 100
    mask_lr: float | None = None  # None: the interpreter's own Adam lr (the authors: 0.1)
    adam_betas: tuple = (0.9, 0.999)
    adam_eps: float = 1e-8
    quantize: bool = True
    fast_stage2_start: float = 12.0
    fast_stage2_end: float = 1.0
    patience: int = 20  # the fast schedule's: MASK's distance improves in noisy jumps

    _period_fields = ("resolve_every",)


CONFIGS: dict[str, type[AttackConfig]] = {
    "cam": CAMConfig,
    "rts": RTSConfig,
    "grad": GradConfig,
    "mask": MaskConfig,
}


def default_config(interpreter: str, scale: float = 1.0, **overrides: Any) -> AttackConfig:
    """The authors' schedule for ``interpreter`` (unknown names get the generic CAM scheme),
    step counts multiplied by ``scale``, then ``overrides`` applied."""
    cfg = CONFIGS.get(interpreter, ADV2Config)()
    if scale != 1.0:
        cfg = cfg.scaled(scale)
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


__all__ = [
    "ADV2Config",
    "AttackConfig",
    "CAMConfig",
    "CONFIGS",
    "GradConfig",
    "MaskConfig",
    "RTSConfig",
    "default_config",
]
