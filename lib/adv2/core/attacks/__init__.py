"""Targeted PGD and the ADV2 attack (paper-method sections 3 and 3.4), one module per concept.

=================  ===========================================================================
``config``         schedules: :class:`AttackConfig` (shared fields), :class:`ADV2Config` and the
                   authors' :class:`CAMConfig` / :class:`RTSConfig` / :class:`GradConfig`
                   (sign-step variant), :class:`MaskConfig` (bilevel variant), :func:`default_config`
``losses``         :func:`margin_loss`, :func:`squared_error`, :func:`prediction_loss`
``common``         :class:`AttackResult`, :func:`assess` (evaluate inputs)
``pgd``            :func:`pgd`, :func:`pgd_snapshots` (baseline and every variant's stage 1)
``adv2``           :func:`adv2_attack` (picks the variant from the interpreter's declared
                   ``attack_style``) and the sign-step variant :func:`adv2_sign`
``mask``           the bilevel variant :func:`adv2_mask` (MASK), its running mask
                   :class:`~mask.RunningMask`, and :class:`WarmMask`: MASK's map as a
                   differentiable ``map_fn`` for the sign-step variant (a stateful one:
                   :class:`StatefulMapFn`)
``loop``           :func:`~loop.sign_loop`, the one sign-step loop of PGD and ADV2's joint stage,
                   the L-inf box, and the :class:`~loop.Schedule` it reads (step sizes and
                   stopping rule: ``"authors"`` or ``"fast"``, config field ``schedule``)
``convergence``    :func:`convergence_curve` (success and map L1 vs step), :func:`steps_to_reach`
=================  ===========================================================================

One ADV2 step reads in two files: :func:`adv2_sign` and its joint stage (``adv2``) on
:func:`~loop.sign_loop` (``loop``). Every schedule constant is a config field whose default is the authors' value;
:meth:`AttackConfig.scaled` shrinks the step counts for the CPU profiles. Simplifications of the
authors' procedures are listed in each variant's docstring.
"""

from adv2.core.attacks.adv2 import adv2_attack, adv2_sign
from adv2.core.attacks.common import AttackResult, assess
from adv2.core.attacks.config import (
    CONFIGS,
    ADV2Config,
    AttackConfig,
    CAMConfig,
    GradConfig,
    MaskConfig,
    RTSConfig,
    default_config,
)
from adv2.core.attacks.convergence import IterateRecorder, Recorder, convergence_curve, steps_to_reach
from adv2.core.attacks.losses import (
    InterpLoss,
    MapFn,
    StatefulMapFn,
    margin_loss,
    prediction_loss,
    squared_error,
)
from adv2.core.attacks.mask import WarmMask, adv2_mask
from adv2.core.attacks.pgd import pgd, pgd_snapshots

__all__ = [
    "ADV2Config",
    "AttackConfig",
    "AttackResult",
    "CAMConfig",
    "CONFIGS",
    "GradConfig",
    "InterpLoss",
    "MapFn",
    "MaskConfig",
    "RTSConfig",
    "StatefulMapFn",
    "WarmMask",
    "adv2_attack",
    "adv2_mask",
    "adv2_sign",
    "assess",
    "default_config",
    "margin_loss",
    "pgd",
    "pgd_snapshots",
    "prediction_loss",
    "squared_error",
    "steps_to_reach",
    "convergence_curve",
    "IterateRecorder",
    "Recorder",
]
