"""Chapter 9's result: one :class:`~adv2.chapters.ch09.setting_runs.SettingRun` per setting (photos,
Fashion-MNIST ResNet), made by :func:`~adv2.chapters.ch09.setting_runs.run_setting` (each training seed's
pooled by :func:`run_seeds`); the chapter's numbers (``results/09_defense1.json``), glue, tables, figures,
verdicts and invariants (:class:`Ch09Result`, :func:`check`)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from adv2.chapters import claims, plotting
from adv2.chapters._common import (
    NOT_RUN,
    cell_value,
    judged_blocks,
    pad,
    verdict_cell,
    verdict_glue,
)
from adv2.chapters._common import check as _check
from adv2.chapters._compare import interval_scope_text
from adv2.chapters.ch09 import adaptive, defense, transfer
from adv2.chapters.ch09.setting_runs import ADAPTIVE, CLAIM_ID, SettingRun, pooled, run_setting
from adv2.chapters.claims import Verdict
from adv2.chapters.schema import train_seed_list
from adv2.core import attacks
from adv2.core.formatting import fmt
from adv2.core.phrases import INTERPRETER_LABELS
from adv2.core.seed_stats import mean_ci_seeds
from adv2.core.stats import Estimate

DETERMINISTIC = ("grad", "cam", "rts")  # maps recomputed exactly (MASK is an optimisation)
ALL_INTERPRETERS = ("grad", "cam", "rts", "mask")
# the settings whose glue names the prose quotes ("not run" when left out): the photos of each
# photo classifier ("photos": EfficientNet-Lite0, "photos_lite2": EfficientNet-Lite2), the ResNet
SETTINGS = ("photos", *claims.PHOTO_SETTINGS, "resnet")
LABELS = {"pgd": "PGD", "ens": "ADV2 vs ensemble", "ensdet": "ADV2 vs ensemble + detector"}
SETTING_LABELS = {**claims.SETTINGS, **claims.PHOTO_SETTINGS}  # "photos (EfficientNet-Lite2)", ...
# what the Fashion-MNIST section shows of train_seed's run alone when several seeds ran (no figure)
SEED0_SHOWN = "the tables' success counts, steps and seconds"
# issue 27: the photo settings' classifiers are pretrained, trained once
PHOTO_ONE_SEED = (
    "; the photo sections' intervals cover the photos only (pretrained classifiers, one photo RTS)"
)


def name_of(interpreter: str) -> str:
    """An interpreter as the book writes it (Grad, CAM, RTS, MASK)."""
    return INTERPRETER_LABELS.get(interpreter, interpreter.upper())


def label(attack: str) -> str:
    return LABELS.get(attack, f"ADV2 vs {name_of(attack)}")


def title(setting: str) -> str:
    """A setting as the figures' titles and the headings name it: ``photos (EfficientNet-Lite0)``,
    ``photos (EfficientNet-Lite2)``, ``Fashion-MNIST ResNet`` (the front page's labels)."""
    return SETTING_LABELS.get(setting, setting)


def photo_runs(runs: Mapping[str, Any]) -> dict[str, Any]:
    """The photo settings' runs of ``runs`` (EfficientNet-Lite0's ``photos`` first), by setting."""
    photo = ("photos", *claims.PHOTO_SETTINGS)
    return {s: runs[s] for s in photo if s in runs}


def heading(run: Any, runs: Mapping[str, Any]) -> str | None:
    """The line that names a photo run's classifier above its tables and figures, where more than
    one photo classifier ran (None for one: the section reads as with EfficientNet-Lite0 alone)."""
    if len(photo_runs(runs)) < 2:
        return None
    return f"**{title(run.setting)}**"


def titled(runs: Mapping[str, Any], text: Any) -> str:
    """Markdown: ``text(run)`` of each photo run, under its :func:`heading` where several ran."""
    parts = []
    for run in photo_runs(runs).values():
        h = heading(run, runs)
        parts.append(text(run) if h is None else f"{h}\n\n{text(run)}")
    return "\n\n".join(parts)


def seconds_text(run: Any) -> str:
    """Where a setting's time went, for the reader ("maps 76 s, ..., calibration 23 s")."""
    parts = {"maps": "maps", "calibration": "calibration", **{k: label(k) for k in LABELS}}
    return ", ".join(f"{parts.get(k, k)} {v:.0f} s" for k, v in run.seconds.items())


def run_seeds(
    seed_settings: Iterable[tuple[int, Any, attacks.ADV2Config]],
    p: Mapping[str, Any],
    *,
    device: Any,
    progress: bool = False,
) -> SettingRun:
    """:func:`run_setting` on each training seed's Fashion-MNIST setting (``(seed, setting, cam)``
    from :func:`adv2.chapters.ch09.settings.fmnist_seed_settings`) with the chapter's parameters
    ``p`` (the adaptive attacks on ``cam`` where ``p["adaptive"]``), then :func:`pooled`. With
    several seeds, one line per seed says where its inputs came from and where its time went."""
    by_seed, lines = {}, []
    for seed, s, cam in seed_settings:
        t0 = time.time()
        by_seed[seed] = run_setting(
            s.name, s.model, s.interpreters, s.src, s.calibration_x, target_fpr=p["target_fpr"],
            adaptive_cfg=cam if p["adaptive"] else None, detector_weight=p["detector_weight"],
            adaptive_interpreters=p["adaptive_interpreters"], adaptive_mask_steps=p["adaptive_mask_steps"],
            batch_size=p["attack_batch_size"], device=device, progress=progress,
        )  # fmt: skip
        lines.append(
            f"{s.name}, train_seed {seed}: {s.src.reused_text()} | {time.time() - t0:.0f} s "
            f"({seconds_text(by_seed[seed])})"
        )
    if len(lines) > 1:
        print("\n".join(lines))
    return pooled(by_seed)


# ----------------------------------------------------------------------------- tables
def matrix_table(run: SettingRun) -> str:
    """Rows: PGD, then ADV2 against each source; columns: each target's mean L1 [95 % interval]."""
    est, names = run.matrix(), run.ev.names
    rows = [[label(r)] + [str(est[r][t]) for t in names] for r in (transfer.PGD, *names)]
    return plotting.markdown_table(rows, ["inputs \\ seen through"] + [name_of(t) for t in names])


def verdict_table(run: SettingRun) -> str:
    """One row per off-diagonal cell: its verdict with the share and its interval."""
    rows = [
        [" → ".join(name_of(x) for x in c.split("→")), verdict_cell(v)]
        for c, v in run.cell_verdicts().items()
    ]
    return plotting.markdown_table(rows, ["source → target", "share of the way to PGD (verdict)"])


def detector_table(run: SettingRun) -> str:
    """Per attack: success, mean score, AUC [95 %], share flagged at the calibration threshold."""
    d = run.defense
    auc, flag, score = d.auc(), d.detection_rate(), d.mean_scores()
    rows = [["clean (held-out)", "—", str(score["benign"]), "—", str(d.false_positive_rate())]]
    for a in d.attacks:
        rows.append(
            [
                label(a),
                f"{int(d.success[a].sum())} / {run.ev.attempted.get(a, len(d.success[a]))}",
                str(score[a]),
                str(auc[a]),
                str(flag[a]),
            ]
        )
    return plotting.markdown_table(rows, ["inputs", "successes", "disagreement", "AUC vs clean", "flagged"])


def average_table(run: SettingRun) -> str:
    """Per attack: how far the averaged map moves, its ratio to PGD's, the attacked map's own shift."""
    rows = []
    for a, e in run.defense.average_map_shift().items():
        rows.append([label(a), str(e["shift"]), str(e["ratio_to_pgd"]), str(e.get("own_map_shift", "—"))])
    return plotting.markdown_table(
        rows,
        ["inputs", "averaged map: L1 shift", "÷ PGD's shift", "attacked interpreter's own map: L1 shift"],
    )


def adaptive_table(run: SettingRun) -> str:
    """Per adaptive variant: success, each interpreter's L1, detector AUC, steps and seconds."""
    if not run.adaptive:
        return "adaptive attacks not run on this setting (parameters `adaptive`, `adaptive_classifiers`)"
    est, auc, names = transfer_all(run), run.defense.auc(), run.ev.names
    rows = []
    for r in run.adaptive:
        a = ADAPTIVE[r.variant]
        rows.append(
            [
                label(a),
                f"{int(r.success.sum())} / {len(r.success)}",
                *(str(est[a][t]) for t in names),
                str(auc[a]),
                r.steps,
                f"{r.seconds:.0f}",
            ]
        )
    return plotting.markdown_table(
        rows,
        ["attack", "successes", *(f"L1 {name_of(t)}" for t in names), "detector AUC", "steps", "seconds"],
    )


def transfer_all(run: SettingRun) -> dict[str, dict[str, Estimate]]:
    """Mean L1 [95 %] per attack (the matrix's rows and the adaptive ones) and target interpreter."""
    l1 = transfer.l1_by_seed(run.ev)  # over each attack's successes, per training seed
    out = dict(run.matrix())
    for a in run.ev.extra:
        out[a] = {t: mean_ci_seeds(l1[a][t]) for t in run.ev.names}
    return out


# ----------------------------------------------------------------------------- the result
@dataclass
class Ch09Result:
    runs: dict[str, SettingRun]
    params: dict[str, Any]

    @property
    def train_seeds(self) -> list[int]:
        """The training seeds of the Fashion-MNIST settings' models, ``train_seed`` first (the
        photo settings' classifiers are pretrained: one each): those the runs pooled, else the
        parameters'."""
        pooled_seeds = [r.train_seeds for r in self.runs.values() if r.train_seeds]
        p = self.params
        return (
            pooled_seeds[0]
            if pooled_seeds
            else train_seed_list(p.get("train_seed", 0), p.get("train_seeds") or [])
        )

    def verdicts(self) -> dict[str, dict[str, Verdict]]:
        return {s: {CLAIM_ID: r.verdict()} for s, r in self.runs.items()}

    def numbers(self) -> dict[str, Any]:
        intervals: dict[str, Any] = {}
        out: dict[str, Any] = {}  # per setting
        for s, r in self.runs.items():
            d = r.defense
            out[s] = {
                "n_images": r.src.n,
                "n_calibration": len(d.calibration),
                "inputs": r.src.reused_text(),
                "origin": r.src.origin,
                "chapter3_seconds": r.src.seconds,
                "chapter3_diagonal_l1": r.src.stored_l1,
                "seconds": r.seconds,
                "threshold": d.threshold,
                "target_fpr": d.target_fpr,
                "success": {a: float(np.mean(v)) for a, v in d.success.items() if a != defense.BENIGN},
                "adaptive": {
                    ADAPTIVE[a.variant]: {
                        "steps": a.steps,
                        "seconds": a.seconds,
                        "detector_weight": a.detector_weight,
                        "weights": a.weights,
                        "mask_steps": a.mask_steps,
                    }
                    for a in r.adaptive
                },
                "roc": {a: {"fpr": f, "tpr": t} for a, (f, t) in d.roc().items()},
            }
            intervals[s] = {
                "l1": transfer_all(r),
                "auc": d.auc(),
                "flagged": {"clean": d.false_positive_rate(), **d.detection_rate()},
                "disagreement": d.mean_scores(),
                "average_map": d.average_map_shift(),
            }
        # the Fashion-MNIST settings' intervals cover train_seeds; the photos': the photos only
        return {**judged_blocks(intervals, self.verdicts(), self.train_seeds), **out}

    def glue(self) -> dict[str, Any]:
        scope = interval_scope_text(self.train_seeds, shown=SEED0_SHOWN)
        out: dict[str, Any] = {"ch9_interval_scope": scope + PHOTO_ONE_SEED}
        attacks_all = ["pgd", *ALL_INTERPRETERS, *ADAPTIVE.values()]
        for s, r in self.runs.items():
            p = f"ch9_{s}_"
            d = r.defense
            est, auc, flag = transfer_all(r), d.auc(), d.detection_rate()
            out.update(
                {
                    p + "n_images": r.src.n,
                    p + "n_calibration": len(d.calibration),
                    p + "inputs": r.src.reused_text(),
                }
            )
            out[p + "threshold"] = cell_value(d.threshold)
            out[p + "target_fpr"] = d.target_fpr
            out[p + "fpr"] = str(d.false_positive_rate())
            for a, row in est.items():
                for t, e in row.items():
                    out[f"{p}l1_{a}_{t}"] = str(e)
            for a in d.attacks:
                out[f"{p}auc_{a}"] = str(auc[a])
                out[f"{p}flagged_{a}"] = str(flag[a])
            for a, e in d.average_map_shift().items():
                out[f"{p}avg_shift_{a}"] = str(e["shift"])
                out[f"{p}avg_ratio_{a}"] = str(e["ratio_to_pgd"])
                if "own_map_shift" in e:
                    out[f"{p}own_shift_{a}"] = str(e["own_map_shift"])
            cells = r.cell_verdicts()
            for c, v in cells.items():
                out[p + "share_" + c.replace("→", "_")] = verdict_cell(v)
            holding = sum(v.status == claims.HOLDS for v in cells.values())
            out[p + "cells_hold"] = f"{holding} of {len(cells)}"
            out.update(verdict_glue(f"{p}transfer_verdict", r.verdict()))
            out[p + "adaptive_words"] = adaptive_words(r)
            if r.adaptive:
                out[p + "adaptive_loss"] = adaptive.loss_words(r.adaptive[0])
            out[p + "diagonal_text"] = diagonal_text(r)
            for run in r.adaptive:
                a = ADAPTIVE[run.variant]
                out[f"{p}{a}_success"] = f"{int(run.success.sum())} of {len(run.success)}"
                out[f"{p}{a}_steps"] = run.steps
                out[f"{p}{a}_seconds"] = f"{run.seconds:.0f} s"
                out[f"{p}adaptive_n_images"] = len(run.success)
        names = [
            f"ch9_{s}_{k}"
            for s in SETTINGS
            for k in (
                "n_images",
                "n_calibration",
                "inputs",
                "fpr",
                "cells_hold",
                "adaptive_words",
                "threshold",
                "target_fpr",
                "diagonal_text",
                "adaptive_n_images",
                "adaptive_loss",
            )
        ]
        names += [f"ch9_{s}_auc_{a}" for s in SETTINGS for a in attacks_all]
        names += [
            f"ch9_{s}_{a}_{k}"
            for s in SETTINGS
            for a in ADAPTIVE.values()
            for k in ("success", "steps", "seconds")
        ]
        names += [f"ch9_{s}_avg_{k}_{a}" for s in SETTINGS for a in attacks_all for k in ("shift", "ratio")]
        for s in SETTINGS:
            if s not in self.runs:
                out.update(verdict_glue(f"ch9_{s}_transfer_verdict", None))
        return pad(out, names, NOT_RUN)


def diagonal_text(run: SettingRun) -> str:
    """The diagonal here beside chapter 3's own value from its stored maps, per interpreter
    (``train_seed``'s run where several seeds ran: chapter 3's value is that seed's)."""
    est = run.own_matrix()
    return "; ".join(
        f"{name_of(t)} {est[t][t]} (chapter 3: {fmt(run.src.stored_l1.get(t))})" for t in run.ev.names
    )


CHANCE = 0.5  # the AUC of a detector that cannot tell the two kinds of input apart


def auc_words(what: str, e: Estimate | None) -> str:
    """Whether the detector separates ``what`` from clean inputs, decided on the AUC's interval."""
    if e is None or e.value is None:
        return f"the detector's AUC against {what} could not be measured"
    if e.high is not None and e.high <= CHANCE:
        return f"{what} evades the detector: its inputs score no higher than clean ones (AUC {e})"
    if e.low is not None and e.low > CHANCE:
        return f"the detector still separates {what} from clean inputs better than chance (AUC {e})"
    return (
        f"the detector's AUC against {what}, {e}, includes chance ({CHANCE:g}): at this sample size it "
        "does not reliably separate those inputs from clean ones"
    )


def adaptive_words(run: SettingRun) -> str:
    """The computed sentences on the adaptive attacks: each variant's AUC read against chance, and
    PGD's beside them."""
    if not run.adaptive:
        return NOT_RUN
    auc = run.defense.auc()
    parts = [auc_words(label(ADAPTIVE[r.variant]), auc.get(ADAPTIVE[r.variant])) for r in run.adaptive]
    return "; ".join(parts) + f" (PGD: AUC {auc.get(transfer.PGD)})"


# ----------------------------------------------------------------------------- invariants
def check(result: Ch09Result) -> None:
    """The chapter's invariants; each failure says what was expected and what was measured."""
    for s, r in result.runs.items():
        est = r.matrix()
        for row in est.values():
            for t, e in row.items():
                _check(e.value is None or e.value >= 0, f"{s}: a mean L1 on {t} is negative ({e})")
        for a, e in r.defense.auc().items():
            _check(e.value is None or 0 <= e.value <= 1, f"{s}: AUC of {a} is {e}, outside [0, 1]")
        scores = np.concatenate([v for v in r.defense.scores.values()] + [r.defense.calibration])
        _check(
            bool(np.all((scores >= -1e-6) & (scores <= 2 + 1e-6))),
            f"{s}: a disagreement score lies outside [0, 2]",
        )
        _check(
            len(r.cell_verdicts()) == len(r.ev.names) * (len(r.ev.names) - 1),
            f"{s}: not one verdict per off-diagonal cell",
        )
        _check_diagonal(s, r)


def _check_diagonal(setting: str, run: SettingRun) -> None:
    """Each training seed's diagonal repeats chapter 3's measurement of its attacks (MASK: noisy)."""
    for r in (run, *run.more_seeds):
        est = r.own_matrix()
        for t in DETERMINISTIC:
            here, stored = est.get(t, {}).get(t), r.src.stored_l1.get(t)
            if here is None or here.value is None or stored is None or stored != stored:
                continue
            _check(
                abs(here.value - stored) <= 1e-3 + 0.02 * stored,
                f"{setting}: the diagonal cell of {name_of(t)} is {here.value:.4g} here but {stored:.4g} in "
                "chapter 3's stored maps: the store holds another attack than the one evaluated "
                "(a key mismatch, a library bug)",
            )


__all__ = [
    "ADAPTIVE",
    "CLAIM_ID",
    "Ch09Result",
    "SettingRun",
    "adaptive_table",
    "average_table",
    "check",
    "detector_table",
    "heading",
    "pooled",
    "matrix_table",
    "photo_runs",
    "run_seeds",
    "run_setting",
    "title",
    "titled",
    "verdict_table",
]
