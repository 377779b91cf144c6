"""Chapter 3's photo section in the results file and the prose, per photo classifier: the numbers
(:func:`photo_numbers`), the glue (:func:`photo_glue`: EfficientNet-Lite0's names ``ch3_photo_*`` as
the prose has always quoted them, another classifier's under :func:`glue_prefix`, e.g.
``ch3_photo_lite2_*``), and the table that sets the classifiers side by side
(:func:`classifiers_table`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adv2.chapters import plotting
from adv2.chapters._common import NOT_RUN
from adv2.chapters._compare import PHOTO_EPSILON, PHOTO_STEP, attack_intervals, schedule_of
from adv2.chapters.ch03.configs import ALL_INTERPRETERS, schedule_text
from adv2.chapters.ch03.photo_attacks import (
    PHOTO_L1_RATIO_TARGET,
    PHOTO_SUCCESS_TARGET,
    PhotoAttacks,
    curve_note,
    photo_acceptance,
    photo_acceptance_table,
    photo_schedule_table,
    photo_table,
)
from adv2.chapters.claims import photo_setting
from adv2.core import paper
from adv2.core.config import PHOTO_CLASSIFIER, PHOTO_CLASSIFIERS
from adv2.core.formatting import fmt
from adv2.core.phrases import PHOTO_CLASSIFIER_LABELS

DEFAULT_PREFIX = "ch3_photo_"


def glue_prefix(classifier: str = PHOTO_CLASSIFIER) -> str:
    """The photo section's glue prefix for ``classifier``: ``ch3_photo_`` for EfficientNet-Lite0 (the
    names the prose has always used), ``ch3_photo_lite2_`` for EfficientNet-Lite2."""
    setting = photo_setting(classifier)  # "photos", "photos_lite2"
    return DEFAULT_PREFIX if setting == "photos" else DEFAULT_PREFIX + setting.removeprefix("photos_") + "_"


def split_runs(runs: Mapping[str, PhotoAttacks]) -> tuple[PhotoAttacks | None, dict[str, PhotoAttacks]]:
    """The default classifier's run (None when it did not run) and the others', by classifier."""
    return runs.get(PHOTO_CLASSIFIER), {c: ph for c, ph in runs.items() if c != PHOTO_CLASSIFIER}


def _paper_photo_glue() -> dict[str, Any]:
    """The paper's budget and step counts (:mod:`adv2.core.paper`) and the acceptance targets, for the
    photo section's prose."""
    out: dict[str, Any] = {
        "ch3_paper_epsilon": paper.PAPER_EPSILON,
        "ch3_paper_step": f"1/{round(1 / paper.PAPER_STEP_SIZE)}",
        "ch3_paper_pgd_steps": paper.PAPER_PGD_STEPS,
    }
    for n in ALL_INTERPRETERS:
        s1, s2 = paper.PAPER_ADV2_STEPS[n]
        out[f"ch3_paper_{n}_steps"] = f"{s1} + {s2}"
        out[f"ch3_photo_{n}_success_target"] = PHOTO_SUCCESS_TARGET[n]
        r = PHOTO_L1_RATIO_TARGET[n]
        out[f"ch3_photo_{n}_ratio_target"] = f"at most {r:g}" if r < 1 else "below 1"
    return out


def _default_glue(ph: PhotoAttacks | None) -> dict[str, Any]:
    """The photo section's glue under the default classifier's names: ``ch3_photo_*`` (counts, schedule, per-interpreter numbers and
    the acceptance), "not run" where the section or an interpreter was not run."""
    out: dict[str, Any] = {
        "ch3_photo_n_images": NOT_RUN,
        "ch3_photo_n_labelled": NOT_RUN,
        "ch3_photo_n_correct": NOT_RUN,
        "ch3_photo_pgd_steps": NOT_RUN,
        "ch3_photo_schedule": NOT_RUN,
        "ch3_photo_rts_status": NOT_RUN,
        "ch3_photo_seconds": NOT_RUN,
        "ch3_photo_acceptance_met": NOT_RUN,
        "ch3_photo_curve_every": NOT_RUN,
        "ch3_photo_curve_note": NOT_RUN,
    }
    keys = ("success_rate", "l1_mean", "iou_mean", "confidence_mean")
    for n in ALL_INTERPRETERS:
        for att in ("pgd", "adv2"):
            for key in keys:
                out[f"ch3_photo_{n}_{att}_{key}"] = NOT_RUN
        out[f"ch3_photo_{n}_l1_ratio"] = NOT_RUN
        out[f"ch3_photo_{n}_steps"] = NOT_RUN
        out[f"ch3_photo_{n}_seconds"] = NOT_RUN
    out.update(_paper_photo_glue())
    if ph is None:
        return out
    est = attack_intervals(ph.per_image)
    acc = photo_acceptance(ph)
    out.update(
        {
            "ch3_photo_n_images": len(ph.attack_set.x),
            "ch3_photo_n_labelled": ph.n_labelled,
            "ch3_photo_n_correct": ph.n_correct,
            "ch3_photo_pgd_steps": ph.n_pgd,
            "ch3_photo_schedule": schedule_text(schedule_of(ph.cfgs), "imagenet_step_scale"),
            "ch3_photo_rts_status": ph.rts_status,
            "ch3_photo_seconds": f"{sum(ph.seconds.values()):.0f} s",
            "ch3_photo_acceptance_met": f"{sum(a['met'] for a in acc.values())} of {len(acc)}",
            "ch3_photo_curve_every": ph.curve_every or NOT_RUN,
            "ch3_photo_curve_note": curve_note(schedule_of(ph.cfgs)),
        }
    )
    for n in ph.runs:
        for att in ("pgd", "adv2"):
            for key in keys:
                out[f"ch3_photo_{n}_{att}_{key}"] = str(est[n][att][key])
        out[f"ch3_photo_{n}_l1_ratio"] = fmt(acc[n]["l1_ratio"])
        cfg = ph.cfgs[n]
        out[f"ch3_photo_{n}_steps"] = f"{cfg.stage1_steps} + {cfg.stage2_steps}"
        out[f"ch3_photo_{n}_seconds"] = f"{ph.seconds[n]:.0f} s"
    return out


def photo_numbers(ph: PhotoAttacks | None) -> dict[str, Any]:
    """The photo section's extra numbers for the results file: attack set, schedules, seconds,
    convergence curves and issue 14's acceptance ({} when the section was not run)."""
    if ph is None:
        return {}
    return {
        "n_images": len(ph.attack_set.x),
        "n_labelled": ph.n_labelled,
        "n_correct": ph.n_correct,
        "epsilon": PHOTO_EPSILON,
        "step_size": PHOTO_STEP,
        "pgd_steps": ph.n_pgd,
        "schedules": {n: {"stage1": c.stage1_steps, "stage2": c.stage2_steps} for n, c in ph.cfgs.items()},
        "schedule": schedule_text(schedule_of(ph.cfgs), "imagenet_step_scale"),
        "rts_status": ph.rts_status,
        "seconds": dict(ph.seconds),
        "curves": ph.curves,
        "acceptance": photo_acceptance(ph),
    }


def photo_glue(ph: PhotoAttacks | None, classifier: str | None = None) -> dict[str, Any]:
    """The photo section's glue for ``ph``'s classifier (``classifier`` when ``ph`` is None: its
    names, all "not run"): EfficientNet-Lite0's under ``ch3_photo_*`` (with the paper's numbers and
    the acceptance targets, ``ch3_paper_*``), another classifier's under :func:`glue_prefix` (the
    paper's numbers and targets are the same and are not repeated)."""
    classifier = ph.classifier if ph is not None else (classifier or PHOTO_CLASSIFIER)
    out = _default_glue(ph)
    if classifier == PHOTO_CLASSIFIER:
        return out
    prefix, paper_names = glue_prefix(classifier), set(_paper_photo_glue())
    return {
        prefix + k.removeprefix(DEFAULT_PREFIX): v
        for k, v in out.items()
        if k.startswith(DEFAULT_PREFIX) and k not in paper_names
    }


def all_photo_glue(runs: Mapping[str, PhotoAttacks]) -> dict[str, Any]:
    """Every photo classifier's glue (:func:`photo_glue`, "not run" for those not in ``runs``) and
    ``ch3_photo_classifiers``: the classifiers run, as the prose names them."""
    out: dict[str, Any] = {}
    for c in PHOTO_CLASSIFIERS:
        out.update(photo_glue(runs.get(c), c))
    names = [PHOTO_CLASSIFIER_LABELS[c] for c in PHOTO_CLASSIFIERS if c in runs]
    out["ch3_photo_classifiers"] = " and ".join(names) if names else NOT_RUN
    return out


def classifiers_table(runs: Mapping[str, PhotoAttacks]) -> str:
    """Markdown: the photo classifiers side by side, one row per interpreter and classifier: photos,
    ADV2 and PGD success, ADV2/PGD mean L1 (the acceptance's ratio) and whether the bar is met."""
    rows = []
    for n in ALL_INTERPRETERS:
        for c, ph in runs.items():
            if n not in ph.runs:
                continue
            est, acc = attack_intervals(ph.per_image)[n], photo_acceptance(ph)[n]
            rows.append(
                [
                    n.upper(),
                    f"{ph.label} ({PHOTO_CLASSIFIERS[c]} px)",
                    len(ph.attack_set.x),
                    str(est["pgd"]["success_rate"]),
                    str(est["adv2"]["success_rate"]),
                    fmt(acc["l1_ratio"]),
                    "met" if acc["met"] else "not met",
                ]
            )
    return plotting.markdown_table(
        rows,
        ["interpreter", "classifier", "photos", "PGD success", "ADV2 success", "L1 ADV2 / PGD", "bar"],
    )


def _titled(runs: Mapping[str, PhotoAttacks], text) -> str:
    """Each classifier's Markdown, under its name where more than one ran."""
    if len(runs) == 1:
        return text(next(iter(runs.values())))
    return "\n\n".join(f"**{ph.label}**\n\n{text(ph)}" for ph in runs.values())


def schedule_tables(runs: Mapping[str, PhotoAttacks], mask_iterations: int) -> str:
    """Markdown: each classifier's attack schedules (:func:`photo_schedule_table`)."""
    return _titled(runs, lambda ph: photo_schedule_table(ph, mask_iterations))


def result_tables(runs: Mapping[str, PhotoAttacks]) -> str:
    """Markdown: each classifier's numbers and acceptance tables, then (more than one classifier)
    :func:`classifiers_table`."""
    text = _titled(runs, lambda ph: photo_table(ph) + "\n\n" + photo_acceptance_table(ph))
    return text + ("\n\n" + classifiers_table(runs) if len(runs) > 1 else "")
