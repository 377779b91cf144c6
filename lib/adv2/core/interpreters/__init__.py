"""The four interpreters of the paper behind one protocol (see :mod:`adv2.core.interpreters.base`).

=========  ==================  ======================  =============================================
name       class               native map (28 / 224)   differentiable w.r.t. x
=========  ==================  ======================  =============================================
``grad``   GradInterpreter     14x14 / 56x56           with ``create_graph=True`` on a
                                                       ``smooth_backward_copy`` of the model
``cam``    CAMInterpreter      7x7 / 7x7               yes
``rts``    RTSInterpreter      14x14 / 56x56           yes (through RTS's own encoder copy)
``mask``   MaskInterpreter     14x14 / 28x28           no: bilevel, via ``mask_objective``
=========  ==================  ======================  =============================================

Every interpreter: ``interp(x, target, create_graph=False) -> (N, 1, s, s)`` in [0,1], plus
``.name``, ``.map_size`` and ``.attack_style`` (``"differentiable"`` for Grad, CAM and RTS,
``"bilevel"`` for MASK: how :func:`adv2.core.attacks.adv2_attack` differentiates it; optional
capabilities such as Grad's ``attack_surrogate`` are protocols in :mod:`adv2.core.interpreters.base`).
Build one by name with :func:`build_interpreter`.
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from adv2.core.config import validate
from adv2.core.interpreters.base import (
    ATTACK_STYLES,
    Interpreter,
    as_target,
    attack_style,
    gaussian_blur,
    minmax_normalize,
)
from adv2.core.interpreters.cam import CAMInterpreter
from adv2.core.interpreters.grad import GradInterpreter
from adv2.core.interpreters.mask import MaskInterpreter, mask_settings
from adv2.core.interpreters.rts import RTSInterpreter, RTSNet
from adv2.core.interpreters.rts_training import rts_loss, train_rts

INTERPRETER_CLASSES = {
    "grad": GradInterpreter,
    "cam": CAMInterpreter,
    "rts": RTSInterpreter,
    "mask": MaskInterpreter,
}


def build_interpreter(name: str, model: nn.Module, **kw: Any) -> Interpreter:
    """``build_interpreter("grad", model, pool=2)``; RTS needs ``rts=`` a trained :class:`RTSNet`
    (from :func:`adv2.trained.loading.load_rts`) and optionally ``confidence=``."""
    validate({"interpreters": [name]})
    if name == "rts" and kw.get("rts") is None:
        raise ValueError(
            "the 'rts' interpreter needs a trained network: "
            "build_interpreter('rts', model, rts=loading.load_rts(recipe, data, model, artifact)[0])"
        )
    return INTERPRETER_CLASSES[name](model, **kw)


__all__ = [
    "ATTACK_STYLES",
    "attack_style",
    "CAMInterpreter",
    "GradInterpreter",
    "INTERPRETER_CLASSES",
    "Interpreter",
    "MaskInterpreter",
    "RTSInterpreter",
    "RTSNet",
    "as_target",
    "build_interpreter",
    "gaussian_blur",
    "mask_settings",
    "minmax_normalize",
    "rts_loss",
    "train_rts",
]
