"""Chapter 7's comparative sentences, computed from its numbers (issue 26 item 2): how ADV2's and
PGD's success change from the smallest to the largest input side, whether ADV2's success moves
towards PGD's, where the L1 ratio sits against chapter 3's threshold, and what chapter 3's
published per-interpreter verdicts say (read from ``results/03_adv2.json`` when it exists).

Every function takes the chapter's ``numbers`` (``results/07_input_size.json``'s layout), so a
test can change a number in a copy of the results and see the sentence change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adv2.chapters import claims
from adv2.chapters.claims import Verdict
from adv2.core.config import REPO_ROOT
from adv2.core.formatting import fmt
from adv2.core.phrases import SAME, change, compare, gap_trend, joined

GLUE_PREFIX = "ch7_"
LABELS = {"grad": "Grad", "cam": "CAM", "rts": "RTS", "mask": "MASK"}


def _label(n: str) -> str:
    return LABELS.get(n, n)


def _ends(numbers: Mapping[str, Any]) -> tuple[str, str, str]:
    arch = next(iter(numbers["curve"]))
    sizes = [str(s) for s in numbers["sizes"]]
    return arch, sizes[0], sizes[-1]


def _value(numbers: Mapping[str, Any], arch: str, size: str, n: str, *keys: str) -> float | None:
    """A number of the curve (``train_seed``'s run), or its pooled value from the intervals when
    several training seeds ran, so the words match the glued intervals (one seed: the same)."""
    pooled = len(numbers.get("train_seeds") or [0]) > 1
    d: Any = (numbers["intervals"] if pooled else numbers["curve"])[arch].get(size, {}).get(n)
    for k in keys:
        d = d.get(k) if isinstance(d, Mapping) else None
    return d.get("value") if pooled and isinstance(d, Mapping) else d


def _success(numbers: Mapping[str, Any], arch: str, size: str, n: str, att: str) -> float | None:
    return _value(numbers, arch, size, n, att, "success_rate")


def phrase_glue(numbers: Mapping[str, Any]) -> dict[str, str]:
    """``ch7_<n>_success_change`` (ADV2's success from the smallest to the largest side: "rises" /
    "falls" / "stays about the same"), ``ch7_pgd_success_change``, ``ch7_<n>_ratio_change``,
    ``ch7_success_gap_reading`` (per interpreter, whether ADV2's success moves towards PGD's, with
    the gaps) and ``ch7_ratio_vs_threshold`` (the largest side's L1 ratio against chapter 3's
    threshold, per interpreter, decided on its interval)."""
    arch, small, large = _ends(numbers)
    interps = list(numbers["interpreters"])
    out: dict[str, str] = {}
    first = interps[0]
    out[f"{GLUE_PREFIX}pgd_success_change"] = (
        change(_success(numbers, arch, small, first, "pgd"), _success(numbers, arch, large, first, "pgd"))
        or "not measured"
    )
    gaps, vs_threshold = [], []
    intervals = numbers.get("intervals", {}).get(arch, {})
    thr = claims.MAPS_CLOSE_RATIO
    for n in interps:
        a0, p0 = _success(numbers, arch, small, n, "adv2"), _success(numbers, arch, small, n, "pgd")
        a1, p1 = _success(numbers, arch, large, n, "adv2"), _success(numbers, arch, large, n, "pgd")
        out[f"{GLUE_PREFIX}{n}_success_change"] = change(a0, a1) or "not measured"
        r0 = _value(numbers, arch, small, n, "l1_ratio_adv2_over_pgd")
        r1 = _value(numbers, arch, large, n, "l1_ratio_adv2_over_pgd")
        out[f"{GLUE_PREFIX}{n}_ratio_change"] = (
            change(r0, r1) or "has no value at one side: too few successes"
        )
        word = gap_trend(a0, p0, a1, p1)
        if word is not None:
            gaps.append(
                f"for {_label(n)} it {word} PGD's (ADV2 minus PGD {fmt(a0 - p0)} at {small} px, "
                f"{fmt(a1 - p1)} at {large} px)"
            )
        est = (intervals.get(large, {}).get(n) or {}).get("l1_ratio_adv2_over_pgd") or {}
        value, low, high = est.get("value"), est.get("low"), est.get("high")
        word = compare(value, thr, a_interval=(low, high), b_interval=(thr, thr))
        if word is not None:
            shown = f"{fmt(value)} [{fmt(low)}, {fmt(high)}]" if low is not None else fmt(value)
            where = "contains the threshold" if word == SAME and low is not None else f"{word} {thr:g}"
            vs_threshold.append(f"{_label(n)} {shown}: {where}")
    out[f"{GLUE_PREFIX}success_gap_reading"] = "; ".join(gaps) or "not measured"
    out[f"{GLUE_PREFIX}ratio_vs_threshold"] = "; ".join(vs_threshold) or "not measured"
    return out


def chapter3_reading(results_dir: str | Path) -> str:
    """What chapter 3's verdicts of "ADV2's maps stay much closer" say per setting and interpreter
    ("on the photos it holds for CAM and RTS; ..."), from ``results_dir`` or else the published
    results, or a pointer when neither has them."""
    cid = "adv2_maps_closer_than_pgd"
    block = None
    for folder in (Path(results_dir), REPO_ROOT / "results"):
        try:
            block = json.loads((folder / "03_adv2.json").read_text())["numbers"]["verdicts"]
            break
        except (OSError, ValueError, KeyError, TypeError):
            continue
    if not isinstance(block, dict):
        return "chapter 3's verdicts are not available (run chapter 3 first)"
    bits = []
    for setting, label in claims.SETTINGS.items():
        d = (block.get(setting) or {}).get(cid)
        if not d:
            continue
        v = Verdict.from_dict(d)
        holding = [_label(n) for n, p in v.parts if p.status == claims.HOLDS]
        failing = [_label(n) for n, p in v.parts if p.status == claims.DOES_NOT_HOLD]
        text = (
            f"on {label} it holds for {joined(holding)}"
            if holding
            else f"on {label} it holds for no interpreter"
        )
        if failing:
            text += f" and does not hold for {joined(failing)}"
        bits.append(text)
    return "; ".join(bits) if bits else "chapter 3 decided no such verdict"


__all__ = ["chapter3_reading", "phrase_glue"]
