"""Chapter 6 on the photos: what limits AID, measured (:func:`inner_budget_ablation`: ADV2 again
with only the inner attack's budget, and :func:`ablation_table`), every number the photo section
quotes (:func:`photo_values`), and per photo classifier the section's tables, Figure 16, numbers
and glue (:func:`photo_tables`, :func:`photo_figure16`, :func:`add_photos`, :func:`all_photo_glue`;
the attack itself is :func:`adv2.chapters.ch06.attack_photos`). ``result`` is one photo classifier's
:class:`adv2.chapters.ch06.Ch06Result`: its one setting is that classifier's (``photos``,
``photos_lite2``: :func:`adv2.chapters.claims.photo_setting`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from adv2.chapters import plotting
from adv2.chapters._common import (
    NOT_RUN,
    add_photo_settings,
    intervals_block,
    photo_classifier_of,
    photo_label,
    photo_prefix,
    photo_titled,
    setting_glue,
    verdict_glue,
)
from adv2.chapters._reporting import table
from adv2.chapters.aid_trial import where_succeeded
from adv2.chapters.ch06 import (
    CLAIM_GLUE,
    FIGURE16_COLUMNS,
    GLUE_PREFIX,
    GLUED_KEYS,
    Ch06Result,
    figure16_cells,
    table10_table,
    verdicts,
)
from adv2.core.attacks import adv2_attack
from adv2.core.config import PHOTO_CLASSIFIER, PHOTO_CLASSIFIERS
from adv2.core.interpreters.rts import RTSInterpreter
from adv2.core.metrics import l1_distance
from adv2.core.stats import ratio_ci
from adv2.trained import data


def setting_of(result: Any) -> str:
    """The one setting of a photo classifier's chapter-6 result (``photos``, ``photos_lite2``)."""
    if len(result.archs) != 1:
        raise ValueError(f"a photo result holds one setting, this one {result.archs} (a bug)")
    return result.archs[0]


def inner_budget_ablation(
    net: Any,
    result: Any,
    attack_cfg: Any,
    *,
    stage2_steps: int | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """What limits AID (measured): ADV2 again, from the same stage-1 inputs, with only
    ``stage2_steps`` joint steps (None: the budget of the RTSA's inner attack per visit, from its
    recipe), against RTS and RTSA. A ratio RTSA / RTS well above the evaluation's means RTSA
    resists the attack it was trained against but not the longer evaluation attack: the inner
    attack is the limit."""
    if stage2_steps is None:
        stage2_steps = net.rtsa_artifact.params["stage2_steps"]
    setting = setting_of(result)
    o, s = result.out[setting], result.attack_sets[setting]
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
            l1_distance(r.maps.cpu(), o["benign"][name]), ok[name], result.restrict[setting]
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

# what the photo section's prose quotes (ch6_photos_<key>) beyond GLUED_KEYS
PHOTO_EXTRA_KEYS = (
    "n_images",
    "stage1_steps",
    "stage2_steps",
    "benign_l1_ci",
    "adv2_l1_rts_ci",
    "adv2_l1_rtsa_ci",
    "ratio_ci",
    "seconds",
    "seconds_per_image_step",
    "inner_stage2_steps",
    "inner_adv2_l1_rts",
    "inner_adv2_l1_rtsa",
    "inner_ratio",
    "inner_success_rts",
    "inner_success_rtsa",
    "aid_gap_first",
    "aid_gap_last",
    "aid_iterations",
    "pool_images",
    *(f"{k}_ci" for k in PHOTO_TRIAL_KEYS),
)


def photo_values(result: Any, net: Any, ablation: Mapping[str, Any] | None) -> dict[str, Any]:
    """Everything the photo section quotes: Table 10's numbers with their intervals, the attack's
    steps, AID's training log and the inner-budget ablation."""
    setting = setting_of(result)
    m, est = result.per_arch[setting], result.intervals()[setting]
    met = net.rtsa_artifact.metrics
    gap = met.get("aid_l1") or []
    sec, n = result.out[setting]["seconds"], len(result.attack_sets[setting].x)
    steps = result.attack_config.get("stage2_steps") or 0
    return {
        **m,
        "n_images": n,
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
    setting = setting_of(result)
    m, est = result.per_arch[setting], result.intervals()[setting]
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


def ablation_tables(results: Mapping[str, Any], ablations: Mapping[str, Mapping[str, Any]]) -> str:
    """:func:`ablation_table` of each photo classifier (``results``, ``ablations``: by classifier),
    under its name where more than one ran."""
    return photo_titled({c: (r, ablations[c]) for c, r in results.items()}, lambda ra: ablation_table(*ra))


# ----------------------------------------------------------------------------- per photo classifier
def photo_tables(runs: Mapping[str, Ch06Result]) -> str:
    """Each photo classifier's Table 10 (:func:`table10_table`), under its name where more than
    one ran."""
    return photo_titled(runs, table10_table)


def photo_figure16(result: Ch06Result, rows: int = 4):
    """Figure 16 on one photo classifier's attacked photos (``result``: its :func:`attack_photos`)."""
    cells, labels, _ = figure16_cells(result, data.imagenet_class_names(), rows)
    classifier = photo_classifier_of(setting_of(result))
    return plotting.panel_rows(
        cells,
        FIGURE16_COLUMNS,
        row_labels=labels,
        overlay=False,
        suptitle=f"Figure 16 ({photo_label(classifier)})",
    )


def photo_numbers(
    result: Ch06Result | None, net: Any = None, ablation: Mapping[str, Any] | None = None
) -> dict | None:
    """A photo classifier's results (joined to the chapter's by ``_common.add_setting`` under its
    setting)."""
    if result is None:
        return None
    out = result.numbers()
    out[setting_of(result)]["ablation_inner_budget"] = intervals_block(dict(ablation or {}))
    return out


def photo_glue(
    result: Ch06Result | None,
    net: Any = None,
    ablation: Mapping[str, Any] | None = None,
    classifier: str | None = None,
) -> dict:
    """Table 10 on the photos of ``result``'s classifier (``classifier`` when ``result`` is None:
    its names, all "not run"), its verdicts and ablation: ``ch6_photos_*`` for EfficientNet-Lite0,
    ``ch6_photos_lite2_*`` for -Lite2."""
    if result is not None:
        classifier = photo_classifier_of(setting_of(result))
    prefix = photo_prefix(GLUE_PREFIX, classifier or PHOTO_CLASSIFIER)
    values = None if result is None else photo_values(result, net, ablation)
    out = setting_glue(values, (*GLUED_KEYS, *PHOTO_EXTRA_KEYS), prefix)
    by = {} if result is None else verdicts(result)[setting_of(result)]
    for cid, short in CLAIM_GLUE.items():
        out.update(verdict_glue(f"{prefix}verdict_{short}", by.get(cid)))
    return out


def all_photo_glue(
    runs: Mapping[str, Ch06Result], nets: Mapping[str, Any], ablations: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """Every photo classifier's :func:`photo_glue` (by classifier; "not run" for those not in ``runs``)."""
    out: dict[str, Any] = {}
    for c in PHOTO_CLASSIFIERS:
        out.update(photo_glue(runs.get(c), nets.get(c), ablations.get(c), classifier=c))
    return out


def add_photos(
    numbers: dict[str, Any],
    runs: Mapping[str, Ch06Result],
    nets: Mapping[str, Any],
    ablations: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """The chapter's ``numbers`` with each photo classifier's setting (``photos``, ``photos_lite2``)."""
    extras = {c: photo_numbers(r, nets.get(c), ablations.get(c)) for c, r in runs.items()}
    return add_photo_settings(numbers, extras)
