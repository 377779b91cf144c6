"""Chapter 6 on the photos beyond Table 10: what limits AID, measured (:func:`inner_budget_ablation`:
ADV2 again with only the inner attack's budget, and :func:`ablation_table`), and every number the
photo section quotes (:func:`photo_values`). ``result`` is the photo setting's
:class:`adv2.chapters.ch06.Ch06Result`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from adv2.chapters._common import NOT_RUN, PHOTOS
from adv2.chapters._reporting import table
from adv2.chapters.aid_trial import where_succeeded
from adv2.core.attacks import adv2_attack
from adv2.core.interpreters.rts import RTSInterpreter
from adv2.core.metrics import l1_distance
from adv2.core.stats import ratio_ci


def inner_budget_ablation(
    net: Any, result: Any, attack_cfg: Any, *, stage2_steps: int, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """What limits AID (measured): ADV2 again, from the same stage-1 inputs, with only
    ``stage2_steps`` joint steps (the budget of AID's inner attack per visit), against RTS and
    RTSA. A ratio RTSA / RTS well above the evaluation's means RTSA resists the attack it was
    trained against but not the longer evaluation attack: the inner attack is the limit."""
    o, s = result.out[PHOTOS], result.attack_sets[PHOTOS]
    cfg = dataclasses.replace(attack_cfg, stage2_steps=int(stage2_steps))
    l1, ok = {}, {}
    for name, g in (("rts", net.rts), ("rtsa", net.rtsa)):
        r = adv2_attack(
            net.model,
            RTSInterpreter(net.model, g),
            s.x.to(device),
            s.y.to(device),
            s.target.to(device),
            benign_maps=o["benign"][name].to(device),
            config=cfg,
            x_stage1=o["pgd"]["x"].to(device),
            batch_size=8,
        )
        ok[name] = r.success.cpu()
        l1[name] = where_succeeded(
            l1_distance(r.maps.cpu(), o["benign"][name]), ok[name], result.restrict[PHOTOS]
        )
    est = ratio_ci(l1["rtsa"], l1["rts"], paired=True)
    return {
        "inner_stage2_steps": int(stage2_steps),
        "inner_adv2_l1_rts": float(l1["rts"].nanmean()),
        "inner_adv2_l1_rtsa": float(l1["rtsa"].nanmean()),
        "inner_ratio": est,
        "inner_success_rts": float(ok["rts"].float().mean()),
        "inner_success_rtsa": float(ok["rtsa"].float().mean()),
    }


# the trial's estimates the photo section quotes (adv2.chapters.aid_trial.intervals)
PHOTO_TRIAL_KEYS = ("adv2_l1_ratio_control", "benign_l1_rts_vs_control", "ceiling", "share", "share_control")


def photo_values(result: Any, net: Any, ablation: Mapping[str, Any] | None) -> dict[str, Any]:
    """Everything the photo section quotes: Table 10's numbers with their intervals, the attack's
    steps, AID's training log and the inner-budget ablation."""
    m, est = result.per_arch[PHOTOS], result.intervals()[PHOTOS]
    met = net.rtsa_artifact.metrics
    gap = met.get("aid_l1") or []
    sec, n = result.out[PHOTOS]["seconds"], len(result.attack_sets[PHOTOS].x)
    steps = result.attack_config.get("stage2_steps") or 0
    return {
        **m,
        "n_images": len(result.attack_sets[PHOTOS].x),
        "stage1_steps": result.attack_config.get("stage1_steps"),
        "stage2_steps": result.attack_config.get("stage2_steps"),
        "benign_l1_ci": est["benign_l1_rts_vs_rtsa"],
        "adv2_l1_rts_ci": est["adv2_l1_rts"],
        "adv2_l1_rtsa_ci": est["adv2_l1_rtsa"],
        "ratio_ci": est["adv2_l1_ratio"],
        # the trial's estimates (a beta = 0 control was attacked): "not run" without one
        **{f"{k}_ci": est.get(k, NOT_RUN) for k in PHOTO_TRIAL_KEYS},
        "seconds": sum(sec.values()),
        # the two ADV2 runs' joint steps (stage 1 is shared and cheaper)
        "seconds_per_image_step": (sec["rts"] + sec["rtsa"]) / max(1, 2 * n * steps),
        "aid_gap_first": gap[0] if gap else None,
        "aid_gap_last": gap[-1] if gap else None,
        "aid_iterations": net.rtsa_artifact.params.get("iterations"),
        "pool_images": met.get("pool_images"),
        **dict(ablation or {}),
    }


def ablation_table(result: Any, ablation: Mapping[str, Any]) -> str:
    """Table 10's ADV2 rows on the photos at the evaluation budget beside AID's inner budget."""
    m, est = result.per_arch[PHOTOS], result.intervals()[PHOTOS]
    rows = [
        [
            f"evaluation: {result.attack_config.get('stage2_steps')}",
            m["adv2_l1_rts"],
            m["adv2_l1_rtsa"],
            est["adv2_l1_ratio"],
            m["adv2_success_rts"],
            m["adv2_success_rtsa"],
        ],
        [
            f"AID's inner attack: {ablation['inner_stage2_steps']}",
            ablation["inner_adv2_l1_rts"],
            ablation["inner_adv2_l1_rtsa"],
            ablation["inner_ratio"],
            ablation["inner_success_rts"],
            ablation["inner_success_rtsa"],
        ],
    ]
    return table(
        rows,
        [
            "joint steps after the shared warm start",
            "ADV2 L1 on RTS",
            "ADV2 L1 on RTSA",
            "ratio RTSA / RTS [95 %]",
            "success vs RTS",
            "success vs RTSA",
        ],
    )
