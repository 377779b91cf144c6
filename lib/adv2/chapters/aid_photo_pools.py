"""Chapter 6 on the photos: which AID settings a photo RTSA can afford, by training pool.

``benchmarks/bench_photo_aid.py`` trains, with the library's own code, RTSAs of several AID
strengths on two offline photo pools (42 and 72 photographs) and measures each on the *selection
photos* (usable photos that chapter 6 does not attack at ``quick``): benign drift L1(RTS, RTSA),
Table 10's ratio with its interval, and the share of ADV2's advantage over PGD removed. It is run
once (about an hour on one core) and its report, ``results/bench_photo_aid.json``, is what this
module reads: :func:`load`, :func:`table`, :func:`figure` and :func:`glue`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from adv2.chapters import claims
from adv2.chapters._reporting import glue_value
from adv2.chapters._reporting import table as md_table
from adv2.chapters.results import read_json, results_folder
from adv2.core import phrases
from adv2.core.paper import PAPER_TABLE10
from adv2.core.stats import Estimate

REPORT = "bench_photo_aid.json"
CONTROL_SUFFIX = ", beta 0"
ENCODER = "own encoder, 3x iterations"  # the setting that trains RTSA's own encoder
# what :func:`glue` names (``ch6_pool_<name>``), with or without a report
GLUE_NAMES = (
    *("n_photos", "pools", "meets", "best", "best_drift", "best_ratio", "choice", "drift_by_pool"),
    *("larger_pool", "reading", "encoder_drift", "encoder_vs_limit", "loaded"),
)  # the benchmark's name of a setting's beta = 0 control


def load(results_dir: str | Path | None = None) -> dict[str, Any] | None:
    """The benchmark's committed report, from the repository's ``results/`` (``results_dir``: another
    folder holding it), or None when it was never run. A chapter run's own results folder does not
    hold it: the benchmark is an input of the chapter, not one of its outputs."""
    path = results_folder(results_dir) / REPORT
    return read_json(path) if path.exists() else None


def pool_label(report: Mapping[str, Any], pool: str) -> str:
    """A pool as the prose names it: by its number of photographs (from the report)."""
    n = report["pools"][pool].get("pool_photos")
    return f"{n} photographs" if n else pool


def _est(d: Mapping[str, Any]) -> Estimate:
    return Estimate.from_dict(dict(d))


def rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (pool, setting): the pool, the setting, its estimates and whether it meets the
    book's two conditions (drift at most the limit; ratio interval above its control's)."""
    limit = report.get("benign_l1_max", claims.BENIGN_L1_MAX)
    out = []
    for pool, p in report["pools"].items():
        for s, r in p["settings"].items():
            control = p["settings"].get(s + CONTROL_SUFFIX)
            ratio = _est(r["ratio"])
            above = None
            if control is not None and ratio.low is not None and control["ratio"]["high"] is not None:
                above = ratio.low > control["ratio"]["high"]
            out.append(
                {
                    "pool": pool,
                    "pool_label": pool_label(report, pool),
                    "setting": s,
                    "drift": _est(r["drift"]),
                    "ratio": ratio,
                    "share": _est(r["share"]),
                    "adv2_l1": _est(r["adv2_l1"]),
                    "train_seconds": r.get("train_seconds"),
                    "drift_ok": r["drift"]["value"] is not None and r["drift"]["value"] <= limit,
                    "above_control": above,
                    "chosen": report.get("choice") == {"pool": pool, "setting": s},
                }
            )
    return out


def choose(report: Mapping[str, Any]) -> dict[str, str | None]:
    """The book's rule (chapter 4's, :func:`adv2.chapters.aid_tradeoff.choose`, with the control
    condition): among settings that are not controls, on any pool, the highest ratio whose mean
    drift is at most the limit and, where the setting has a control, whose ratio interval lies
    above the control's. ``{"pool": None, "setting": None}`` when no setting qualifies."""
    ok = [
        r
        for r in rows(report)
        if not r["setting"].endswith(CONTROL_SUFFIX) and r["drift_ok"] and r["above_control"] is not False
    ]
    best = max(ok, key=lambda r: r["ratio"].value or 0.0, default=None)
    return {"pool": best and best["pool"], "setting": best and best["setting"]}


def table(report: Mapping[str, Any]) -> str:
    """The study as a Markdown table (one row per pool and setting)."""
    body = [
        [
            r["pool_label"],
            r["setting"] + (" (chosen)" if r["chosen"] else ""),
            r["drift"],
            r["adv2_l1"],
            r["ratio"],
            r["share"],
            "—" if r["above_control"] is None else r["above_control"],
            None if r["train_seconds"] is None else r["train_seconds"] / 60,
        ]
        for r in rows(report)
    ]
    headers = [
        "pool",
        "AID setting",
        "benign drift [95 %]",
        "ADV2 L1 on RTSA",
        "ratio RTSA / RTS [95 %]",
        "share of ADV2's advantage removed",
        "ratio above its control's",
        "AID training (min)",
    ]
    return md_table(body, headers)


def figure(report: Mapping[str, Any]):
    """Benign drift (x) against Table 10's ratio (y), one marker per pool, 95 % intervals both
    ways; the drift limit and the paper's benign L1 marked."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    markers = {"packages": ("o", "C0"), "packages-v2": ("s", "C1")}
    seen = set()
    for r in rows(report):
        d, q = r["drift"], r["ratio"]
        if d.value is None or q.value is None:
            continue
        m, c = markers.get(r["pool"], ("^", "C2"))
        control = r["setting"].endswith(CONTROL_SUFFIX)
        ax.errorbar(
            d.value,
            q.value,
            xerr=[[d.value - (d.low if d.low is not None else d.value)], [(d.high or d.value) - d.value]],
            yerr=[[q.value - (q.low if q.low is not None else q.value)], [(q.high or q.value) - q.value]],
            fmt=m,
            color=c,
            mfc="white" if control else c,
            capsize=3,
            label=None if r["pool"] in seen else r["pool_label"],
        )
        seen.add(r["pool"])
        ax.annotate(r["setting"], (d.value, q.value), textcoords="offset points", xytext=(5, 3), fontsize=7)
    limit = report.get("benign_l1_max", claims.BENIGN_L1_MAX)
    ax.axvline(limit, color="C3", ls="--", lw=1, label=f"drift limit {limit:g}")
    ax.axvline(PAPER_TABLE10["benign_l1_rts_vs_rtsa"], color="k", ls=":", lw=1, label="paper's benign L1")
    ax.axhline(1, color="grey", lw=0.8)
    ax.set_xlabel("benign drift L1(RTS, RTSA), selection photos")
    ax.set_ylabel("ADV2 L1 ratio RTSA / RTS")
    ax.set_title("Photo RTSA by pool and AID setting (open: beta = 0 control)")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def glue(report: Mapping[str, Any] | None, not_run: str, loaded_key: str | None = None) -> dict[str, Any]:
    """``ch6_pool_*``: what the photo study's prose quotes; ``not_run`` for every name when the
    benchmark's report is missing. ``loaded_key``: the cache key of the photo RTSA this run
    evaluated (``ch6_pool_loaded``: whether it is the study's choice)."""
    if report is None:
        return {f"ch6_pool_{k}": not_run for k in GLUE_NAMES}
    rs = rows(report)
    meets = [r for r in rs if r["drift_ok"] and r["above_control"] is True]
    candidates = [r for r in rs if r["drift_ok"] and not r["setting"].endswith(CONTROL_SUFFIX)]
    best = max(candidates, key=lambda r: r["ratio"].value or 0.0, default=None)
    choice = report.get("choice") or {}
    shared = set.intersection(*(set(p["settings"]) for p in report["pools"].values()))
    probe = next((x for x in ("anchor 50", *sorted(shared)) if x in shared), None)
    larger = _larger_pool(report, shared)
    return {
        "ch6_pool_n_photos": next(iter(report["pools"].values()))["n_photos"],
        "ch6_pool_pools": " and ".join(pool_label(report, p) for p in report["pools"]),
        "ch6_pool_meets": (
            "; ".join(f"{r['setting']} ({r['pool_label']})" for r in meets) if meets else "none"
        ),
        "ch6_pool_best": glue_value(best and f"{best['setting']} ({best['pool_label']})"),
        "ch6_pool_best_drift": glue_value(best and str(best["drift"])),
        "ch6_pool_best_ratio": glue_value(best and str(best["ratio"])),
        "ch6_pool_choice": (
            f"{choice['setting']} ({pool_label(report, choice['pool'])})" if choice.get("setting") else "none"
        ),
        "ch6_pool_drift_by_pool": _drift_by_pool(report, probe, not_run),
        "ch6_pool_larger_pool": "; ".join(f"{x}: {w}" for x, w in larger) if larger else not_run,
        "ch6_pool_reading": _pool_reading([w for _, w in larger]) if larger else not_run,
        "ch6_pool_encoder_vs_limit": _vs_limit(report, ENCODER, not_run),
        "ch6_pool_encoder_drift": _drift_by_pool(report, ENCODER, not_run),
        "ch6_pool_loaded": _loaded(report, choice, loaded_key, not_run),
    }


def _drift_by_pool(report: Mapping[str, Any], setting: str | None, not_run: str) -> str:
    """``setting``'s benign drift on each pool that trained it, in words."""
    got = [(pool, p["settings"][setting]) for pool, p in report["pools"].items() if setting in p["settings"]]
    if not got:
        return not_run
    parts = "; ".join(f"{pool_label(report, pool)}: {_est(r['drift'])}" for pool, r in got)
    return f"{parts} ({setting})"


def _larger_pool(report: Mapping[str, Any], shared: set[str]) -> list[tuple[str, str | None]]:
    """For each setting both pools trained (controls aside): whether its drift on the pool with
    more photographs is below, above or about the same as on the other (by their intervals).
    Empty unless the report holds exactly two pools."""
    if len(report["pools"]) != 2:
        return []
    small, large = sorted(report["pools"].values(), key=lambda p: p.get("pool_photos") or 0)
    out = []
    for s in sorted(x for x in shared if not x.endswith(CONTROL_SUFFIX)):
        a, b = _est(large["settings"][s]["drift"]), _est(small["settings"][s]["drift"])
        out.append(
            (s, phrases.compare(a.value, b.value, a_interval=(a.low, a.high), b_interval=(b.low, b.high)))
        )
    return out


def _pool_reading(words: list[str | None]) -> str:
    """What the per-setting comparison of :func:`_larger_pool` says about the pool's size."""
    if all(w == phrases.BELOW for w in words):
        return "a larger pool keeps RTSA's maps closer to RTS's for every setting"
    if phrases.BELOW in words:
        return "a larger pool of these photographs does not by itself keep RTSA's maps closer to RTS's"
    return "a larger pool of these photographs keeps RTSA's maps no closer to RTS's"


def _vs_limit(report: Mapping[str, Any], setting: str, not_run: str) -> str:
    """Whether ``setting``'s drift interval lies above the drift limit on every pool."""
    limit = report.get("benign_l1_max", claims.BENIGN_L1_MAX)
    lows = [
        p["settings"][setting]["drift"]["low"] for p in report["pools"].values() if setting in p["settings"]
    ]
    if not lows or any(x is None for x in lows):
        return not_run
    if all(x > limit for x in lows):
        return f"above the drift limit {limit:g} on every pool"
    return f"not above the drift limit {limit:g} on every pool"


def _loaded(report: Mapping[str, Any], choice: Mapping[str, Any], key: str | None, not_run: str) -> str:
    """Whether the photo RTSA the chapter evaluated is the study's choice, in words."""
    if key is None:
        return not_run
    if not choice.get("setting"):
        return "no setting qualified, so the chapter keeps the first photo RTSA"
    chosen = report["pools"][choice["pool"]]["settings"][choice["setting"]].get("key")
    return (
        "is the study's choice"
        if chosen == key
        else f"is not the study's choice (its key {key}, the choice's {chosen})"
    )
