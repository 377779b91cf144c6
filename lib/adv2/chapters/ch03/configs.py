"""Chapter 3's attack schedules: the ADV2 configuration of every interpreter on Fashion-MNIST and
on the photos (the authors' step counts, scaled), the interpreter each attack targets, and the
schedule table and sentence the chapter prints."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from adv2.chapters import plotting
from adv2.chapters._common import fmt_rows
from adv2.chapters._compare import PHOTO_EPSILON, PHOTO_STEP, pgd_steps
from adv2.core import attacks
from adv2.core.interpreters import build_interpreter

ALL_INTERPRETERS = ("grad", "cam", "rts", "mask")


def _mask_config(
    scale: float, epsilon: float, step_size: float, checkpoints: int, **overrides: Any
) -> attacks.ADV2Config:
    cfg = attacks.default_config("mask", scale=scale, epsilon=epsilon, step_size=step_size)
    return dataclasses.replace(
        cfg, resolve_every=max(1, math.ceil(cfg.stage2_steps / checkpoints)), **overrides
    )


def fmnist_configs(
    interpreters: list[str],
    *,
    epsilon: float,
    step_size: float,
    step_scale: float,
    mask_step_scale: float,
    mask_checkpoints: int,
    schedule: str = "authors",
) -> dict[str, attacks.ADV2Config]:
    """The ADV2 configuration of each interpreter on Fashion-MNIST (the authors' schedules scaled;
    ``schedule="fast"``: the same step budgets on the fast schedule)."""
    return {
        name: (
            _mask_config(mask_step_scale, epsilon, step_size, mask_checkpoints, schedule=schedule)
            if name == "mask"
            else attacks.default_config(
                name, scale=step_scale, epsilon=epsilon, step_size=step_size, schedule=schedule
            )
        )
        for name in interpreters
    }


def photo_configs(
    interpreters: list[str],
    *,
    step_scale: float,
    mask_step_scale: float,
    mask_checkpoints: int,
    schedule: str = "authors",
) -> dict[str, attacks.ADV2Config]:
    """The same on the photos, at the paper's epsilon; MASK's stage 1 (margin loss) runs at least
    as long as the PGD baseline: a scaled-down 400 steps may not reach the target at all."""
    out = {}
    for name in interpreters:
        if name == "mask":
            cfg = attacks.default_config(
                "mask", scale=mask_step_scale, epsilon=PHOTO_EPSILON, step_size=PHOTO_STEP
            )
            out[name] = _mask_config(
                mask_step_scale,
                PHOTO_EPSILON,
                PHOTO_STEP,
                mask_checkpoints,
                stage1_steps=max(cfg.stage1_steps, pgd_steps(step_scale)),
                schedule=schedule,
            )
        else:
            out[name] = attacks.default_config(
                name, scale=step_scale, epsilon=PHOTO_EPSILON, step_size=PHOTO_STEP, schedule=schedule
            )
    return out


def attacked_interpreter(name: str, model: torch.nn.Module, rts_net: Any, mask_iterations: int, seed: int):
    """The interpreter ``name`` of ``model`` as chapter 3 attacks it (RTS: ``rts_net``; MASK:
    ``mask_iterations`` iterations, seeded)."""
    if name == "rts":
        return build_interpreter("rts", model, rts=rts_net)
    if name == "mask":
        return build_interpreter("mask", model, iterations=mask_iterations, seed=seed)
    return build_interpreter(name, model)


def _schedule(cfg: attacks.AttackConfig) -> tuple[str, str]:
    if not isinstance(cfg, attacks.ADV2Config):  # MASK's bilevel attack has no lambda schedule
        return str(cfg.stage2_steps), ""
    lam = (
        " / ".join(f"{c:g}" for c in cfg.phase_lams)
        if cfg.phase_steps
        else f"{cfg.lam_start:g} → {cfg.lam_end:g}"
    )
    s2 = " + ".join(map(str, cfg.phase_steps)) if cfg.phase_steps else str(cfg.stage2_steps)
    return s2, lam


def schedule_table(cfgs: dict[str, attacks.AttackConfig], n_pgd_steps: int, mask_iterations: int) -> str:
    """Markdown: the paper's step counts beside this run's, per attack."""
    rows = [["PGD (baseline)", 1200, n_pgd_steps, "", "", "", ""]]
    for name, cfg in cfgs.items():
        paper = attacks.default_config(name)
        s2, lam = _schedule(cfg)
        extra = ""
        if name == "grad":
            extra = f"select every {cfg.select_every}, p > {cfg.select_threshold}"
        elif name == "rts":
            extra = f"+ {cfg.encoder_weight} CE(encoder)"
        elif name == "mask":
            extra = f"re-solve every {cfg.resolve_every}, {mask_iterations} MASK iterations"
        rows.append(
            [
                f"ADV2 on {name.upper()}",
                f"{paper.stage1_steps} + {_schedule(paper)[0]}",
                cfg.stage1_steps,
                s2,
                lam,
                cfg.stage1_loss,
                extra,
            ]
        )
    return plotting.markdown_table(
        fmt_rows(rows),
        ["attack", "paper steps", "stage 1 (this run)", "stage 2 (this run)", "λ", "stage-1 loss", "other"],
    )


def schedule_text(schedule: str, scale_param: str) -> str:
    """The sentence the prose and the results file give for a run's step schedule."""
    if schedule == "fast":
        return (
            "the fast schedule (sign steps that shrink along a cosine, each image stopping once it "
            f"is at the target and its map stops improving) on the authors' step counts, scaled ({scale_param})"
        )
    return f"the authors' sign-step schedule, scaled ({scale_param})"
