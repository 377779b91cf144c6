"""Chapter 6 on the photos: Table 10 on every usable photo, at larger budgets and under the
adaptive attacker.

``benchmarks/bench_photo_table10.py`` runs chapter 6's own photo protocol
(:func:`adv2.chapters.ch06.attack_photos`, the book's photo RTS, RTSA and beta = 0 control) on all
usable photos at several fractions of the authors' steps (chapter 6's ``quick`` budget and 4x it at
least), the adaptive attacker at one of them, and records per budget the chapter's numbers,
intervals and verdicts (decided by the claims layer when the benchmark ran) with the per-photo
values. Too slow for ``quick`` (minutes per budget on one core), it is run once and its report,
``results/bench_photo_table10.json``, is what this module reads: :func:`load`, :func:`table`,
:func:`figure` and :func:`glue`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from adv2.chapters._common import verdict_cell
from adv2.chapters._reporting import table as md_table
from adv2.chapters.claims import AID_RATIO_MIN, AID_SHARE_MIN, Verdict
from adv2.chapters.results import read_json, results_folder
from adv2.core import phrases
from adv2.core.attacks import default_config
from adv2.core.paper import PAPER_TABLE10_RATIO
from adv2.core.stats import Estimate

REPORT = "bench_photo_table10.json"
# the claims each budget's row shows (chapter 6's), with the glue suffix of each
CLAIMS = {
    "aid_separates_adv2_maps": "ratio",
    "aid_beats_its_control": "control",
    "aid_removes_adv2_advantage": "share",
    "rtsa_like_rts_on_benign": "benign",
}
# per budget, the estimates the prose quotes (``ch6_allphotos_<budget>_<key>``)
KEYS = (
    *("adv2_l1_ratio", "adv2_l1_ratio_control", "adaptive_ratio", "adaptive_share", "share", "ceiling"),
    *("adv2_l1_rts", "pgd_l1_rts"),
)
BUDGETS = ("quick", "x4", "largest", "largest_fast")  # each name's budget: :func:`budgets`
GLUE_NAMES = (
    "n_images",
    "quick_images",
    "minutes",
    "ratio_trend",
    "fast_vs_x4",
    "authors_vs_fast",
    "authors_vs_x4",
    "pgd_fast_vs_x4",
    "pgd_authors_vs_fast",
    "budget_reading",
    "fast_patience",
    *(f"{b}_{k}" for b in BUDGETS for k in (*KEYS, "steps", "benign", "success_rtsa")),
    *(f"{b}_verdict_{s}" for b in BUDGETS for s in CLAIMS.values()),
    *(f"{b}_quick_photos_verdict_{s}" for b in BUDGETS for s in CLAIMS.values()),
)


def load(results_dir: str | Path | None = None) -> dict[str, Any] | None:
    """The benchmark's committed report, from the repository's ``results/`` (``results_dir``: another
    folder holding it), or None when it was never run. A chapter run's own results folder does not
    hold it: the benchmark is an input of the chapter, not one of its outputs."""
    path = results_folder(results_dir) / REPORT
    if not path.exists():
        return None
    report = read_json(path)
    for b in report["budgets"]:  # a budget's schedule, where a merged report does not say it
        b.setdefault("schedule", report.get("schedule", "fast"))
    return report


def budgets(report: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The report's budgets by role: ``quick`` (the smallest: chapter 6's ``quick`` budget),
    ``x4`` (the one that ran the adaptive attacker, else the second), ``largest`` (the most steps;
    the authors' schedule where both ran) and ``largest_fast`` (the most steps on the fast one)."""
    bs = sorted(report["budgets"], key=lambda b: (b["attack_scale"], b.get("schedule") == "authors"))
    fast = [b for b in bs if b.get("schedule", "fast") == "fast"] or bs
    adaptive = next((b for b in bs if b.get("adaptive")), bs[min(1, len(bs) - 1)])
    return {"quick": bs[0], "x4": adaptive, "largest": bs[-1], "largest_fast": fast[-1]}


def _est(block: Mapping[str, Any], key: str) -> Estimate | None:
    d = block["intervals"].get(key)
    return None if d is None else Estimate.from_dict(dict(d))


def _verdict(block: Mapping[str, Any], claim_id: str, which: str = "verdicts") -> Verdict | None:
    d = block.get(which, {}).get(claim_id)
    return None if d is None else Verdict.from_dict(d)


def steps_text(block: Mapping[str, Any]) -> str:
    """ "12 + 48 steps (fast schedule)": prediction-only + joint steps and the schedule, as the
    chapter names a budget."""
    schedule = {"fast": "fast", "authors": "the authors'"}.get(
        block.get("schedule", "fast"), block.get("schedule")
    )
    return f"{block['stage1_steps']} + {block['stage2_steps']} steps ({schedule} schedule)"


def _statuses(block: Mapping[str, Any], claim_ids: tuple[str, ...]) -> str:
    """The verdicts' statuses of ``claim_ids`` ("holds · does not hold"), "—" for each not given."""
    return " · ".join(str(_verdict(block, c) or "—") for c in claim_ids)


def table(report: Mapping[str, Any]) -> str:
    """One row per budget (and one for the adaptive attacker where it ran): benign drift, ADV2's
    L1 on RTS and RTSA, the ratio beside the control's and the ceiling, the share of ADV2's
    advantage removed, and the verdicts. The trial's two claims (above the control, share) are
    decided by the adaptive attacker where it ran, so they stand in its row."""
    ratio, trial = ("aid_separates_adv2_maps",), ("aid_beats_its_control", "aid_removes_adv2_advantage")
    body = []
    for b in sorted(report["budgets"], key=lambda b: b["attack_scale"]):
        adaptive = bool(b.get("adaptive"))
        body.append(
            [
                steps_text(b),
                _est(b, "benign_l1_rts_vs_rtsa"),
                _est(b, "adv2_l1_rts"),
                _est(b, "adv2_l1_rtsa"),
                _est(b, "adv2_l1_ratio"),
                _est(b, "adv2_l1_ratio_control"),
                _est(b, "ceiling"),
                _est(b, "share"),
                _statuses(b, ratio) + " · " + ("— · —" if adaptive else _statuses(b, trial)),
            ]
        )
        if adaptive:
            body.append(
                [
                    steps_text(b) + ", adaptive attacker",
                    "(same)",
                    _est(b, "adaptive_adv2_l1_rts"),
                    _est(b, "adaptive_adv2_l1_rtsa"),
                    _est(b, "adaptive_ratio"),
                    _est(b, "adaptive_ratio_control"),
                    "—",
                    _est(b, "adaptive_share"),
                    "— · " + _statuses(b, trial),
                ]
            )
    headers = [
        "attack (prediction-only + joint)",
        "benign L1(RTS, RTSA)",
        "ADV2 L1 on RTS",
        "ADV2 L1 on RTSA",
        "ratio RTSA / RTS [95 %]",
        "control's ratio",
        "ceiling PGD / ADV2",
        "share of advantage removed",
        f"verdicts: ratio ≥ {AID_RATIO_MIN:g} · above control · share ≥ {AID_SHARE_MIN:g}",
    ]
    return md_table(body, headers)


def _per_photo_ratio(block: Mapping[str, Any], name: str, prefix: str = "") -> np.ndarray:
    """ADV2's map L1 on ``name`` over its L1 on RTS, per photo (NaN where either attack missed)."""
    p = block["per_photo"]

    def own(n: str) -> np.ndarray:
        v = np.array([np.nan if x is None else x for x in p[f"{prefix}adv2_l1_{n}"]], dtype=float)
        ok = np.array([bool(x) for x in p[f"{prefix}success_{n}"]])
        return np.where(ok, v, np.nan)

    return own(name) / own("rts")


def figure(report: Mapping[str, Any]):
    """Per photo, ADV2's L1 ratio RTSA / RTS (filled) and control / RTS (open) at each budget and
    under the adaptive attacker, with the medians; photos chapter 6 attacks at ``quick`` in blue,
    the photos that chose the RTSA's setting in orange; 1 (no effect) and the paper's 10 marked."""
    fig, ax = plt.subplots(figsize=(8.0, 4.2))
    cols, labels = [], []
    for b in sorted(report["budgets"], key=lambda b: b["attack_scale"]):
        cols.append((b, ""))
        labels.append(steps_text(b).replace(" steps (", " steps\n("))
        if b.get("adaptive"):
            cols.append((b, "adaptive_"))
            labels.append(labels[-1].replace(" schedule)", ",\nadaptive attacker)"))
    quick = report.get("quick_images", 0)
    rng = np.random.default_rng(0)  # horizontal jitter only
    for i, (b, prefix) in enumerate(cols):
        for j, (name, mfc) in enumerate((("rtsa", None), ("control", "white"))):
            r = _per_photo_ratio(b, name, prefix)
            x = i + (j - 0.5) * 0.35 + rng.uniform(-0.06, 0.06, len(r))
            colour = np.where(np.arange(len(r)) < quick, "C0", "C1")
            for c in ("C0", "C1"):
                sel = colour == c
                ax.scatter(x[sel], r[sel], s=16, facecolors=mfc or c, edgecolors=c, linewidths=0.8)
            med = np.nanmedian(r) if np.isfinite(r).any() else np.nan
            ax.hlines(med, i + (j - 0.5) * 0.35 - 0.12, i + (j - 0.5) * 0.35 + 0.12, color="k", lw=1.5)
    ax.axhline(1, color="grey", lw=0.8)
    ax.axhline(PAPER_TABLE10_RATIO, color="C3", ls=":", lw=1)
    ax.text(
        len(cols) - 0.5,
        PAPER_TABLE10_RATIO,
        f"paper: {PAPER_TABLE10_RATIO:.3g}",
        color="C3",
        fontsize=8,
        va="bottom",
        ha="right",
    )
    ax.set_yscale("log")
    ax.set_xticks(range(len(cols)), labels, fontsize=8)
    ax.set_ylabel("ADV2 L1 ratio, per photo (log)")
    ax.set_title("Per photo: RTSA / RTS (filled), control / RTS (open); bars: medians", fontsize=9)
    ax.scatter([], [], c="C0", s=16, label=f"photos 1-{quick} (chapter 6 at quick)")
    ax.scatter([], [], c="C1", s=16, label="photos that chose the RTSA's setting")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def _compare(a: Mapping[str, Any], b: Mapping[str, Any], key: str) -> str | None:
    """Budget ``a``'s estimate of ``key`` against budget ``b``'s, in words, by their intervals."""
    x, y = _est(a, key), _est(b, key)
    if x is None or y is None:
        return None
    return phrases.compare(x.value, y.value, a_interval=(x.low, x.high), b_interval=(y.low, y.high))


def glue(report: Mapping[str, Any] | None, not_run: str) -> dict[str, Any]:
    """``ch6_allphotos_*``: what the section's prose quotes; ``not_run`` for every name when the
    benchmark's report is missing."""
    if report is None:
        return {f"ch6_allphotos_{k}": not_run for k in GLUE_NAMES}
    out: dict[str, Any] = {
        "n_images": report["budgets"][0]["n_images"],
        "quick_images": report.get("quick_images"),
        "minutes": None if report.get("seconds") is None else round(report["seconds"] / 60, 1),
    }
    roles = budgets(report)
    for role, b in roles.items():
        for k in KEYS:
            e = _est(b, k)
            out[f"{role}_{k}"] = not_run if e is None else str(e)
        out[f"{role}_steps"] = steps_text(b)
        out[f"{role}_benign"] = str(_est(b, "benign_l1_rts_vs_rtsa"))
        out[f"{role}_success_rtsa"] = str(_est(b, "adv2_success_rtsa"))
        for cid, short in CLAIMS.items():
            out[f"{role}_verdict_{short}"] = verdict_cell(_verdict(b, cid))
            out[f"{role}_quick_photos_verdict_{short}"] = verdict_cell(
                _verdict(b, cid, "verdicts_quick_photos")
            )
    a, z = _est(roles["quick"], "adv2_l1_ratio"), _est(roles["largest"], "adv2_l1_ratio")
    # by the intervals: "rises" only when the largest budget's lies wholly above the quick one's
    word = phrases.compare(z.value, a.value, a_interval=(z.low, z.high), b_interval=(a.low, a.high))
    trend = {phrases.ABOVE: phrases.RISES, phrases.BELOW: phrases.FALLS, phrases.SAME: phrases.STEADY}
    out["ratio_trend"] = trend.get(word, not_run)
    f, x = _est(roles["largest_fast"], "adv2_l1_rts"), _est(roles["x4"], "adv2_l1_rts")
    out["fast_vs_x4"] = phrases.compare(
        f.value, x.value, a_interval=(f.low, f.high), b_interval=(x.low, x.high)
    )
    a = _est(roles["largest"], "adv2_l1_rts")
    out["authors_vs_fast"] = phrases.compare(
        a.value, f.value, a_interval=(a.low, a.high), b_interval=(f.low, f.high)
    )
    out["authors_vs_x4"] = phrases.compare(
        a.value, x.value, a_interval=(a.low, a.high), b_interval=(x.low, x.high)
    )
    out["pgd_fast_vs_x4"] = _compare(roles["largest_fast"], roles["x4"], "pgd_l1_rts")
    out["pgd_authors_vs_fast"] = _compare(roles["largest"], roles["largest_fast"], "pgd_l1_rts")
    out["fast_patience"] = default_config("rts").patience
    closer = phrases.BELOW in (out["fast_vs_x4"], out["authors_vs_x4"])
    out["budget_reading"] = (
        "The largest budget brings RTS's maps closer than 4x on at least one schedule, but the verdicts "
        "of this section are read at 4x, where the adaptive attacker also ran"
        if closer
        else "Neither schedule's largest budget brings RTS's maps closer than 4x does, so the verdicts "
        "of this section are read at 4x, where the adaptive attacker also ran"
    )
    return {f"ch6_allphotos_{k}": (not_run if v is None else v) for k, v in out.items()}
