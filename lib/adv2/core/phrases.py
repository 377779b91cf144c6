"""Comparative words computed from numbers: the prose never types "above", "below", "reaches" or
"still falling"; it glues what these functions return for the run's numbers.

* :func:`compare`: "above" / "below" / "about the same as" for two numbers (a relative
  tolerance) or two intervals (apart or overlapping);
* :func:`change`: "rises" / "falls" / "stays about the same" from a first to a last value;
* :func:`gap_trend`: whether one quantity "moves towards" another, "moves away from" it or keeps
  about the same distance, from the gaps at two ends;
* :func:`flattens_at`: the first step from which a curve stops changing (None: still changing
  at its last point), the reading of a convergence curve.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from adv2.core.config import PHOTO_CLASSIFIERS
from adv2.core.formatting import fmt

ABOVE, BELOW, SAME = "above", "below", "about the same as"
RISES, FALLS, STEADY = "rises", "falls", "stays about the same"
TOWARDS, AWAY, KEEPS = "moves towards", "moves away from", "keeps about the same distance from"
INTERPRETER_LABELS = {"grad": "Grad", "cam": "CAM", "rts": "RTS", "mask": "MASK"}
# the photo classifiers as the book writes them: "EfficientNet-Lite0", "EfficientNet-Lite2"
PHOTO_CLASSIFIER_LABELS = {n: n.replace("efficientnet-lite", "EfficientNet-Lite") for n in PHOTO_CLASSIFIERS}
REL_TOL = 0.05  # two plain numbers within 5 % of the larger (or both under ABS_TOL) read "about the same"
ABS_TOL = 0.01


def _finite(*xs: float | None) -> bool:
    return all(x is not None and math.isfinite(float(x)) for x in xs)


def _close(a: float, b: float, rel_tol: float, abs_tol: float) -> bool:
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)


def compare(
    a: float | None,
    b: float | None,
    *,
    a_interval: tuple[float | None, float | None] | None = None,
    b_interval: tuple[float | None, float | None] | None = None,
    rel_tol: float = REL_TOL,
    abs_tol: float = ABS_TOL,
) -> str | None:
    """``a`` is "above", "below" or "about the same as" ``b``; None when either is missing.

    With both intervals given, the words follow them: "above" only when ``a``'s whole interval
    lies above ``b``'s, "below" when below, else "about the same as" (the intervals overlap).
    Without intervals, two numbers within ``rel_tol`` of the larger (or ``abs_tol``) are "about
    the same"."""
    if not _finite(a, b):
        return None
    a, b = float(a), float(b)
    if a_interval is not None and b_interval is not None and _finite(*a_interval, *b_interval):
        (alo, ahi), (blo, bhi) = a_interval, b_interval
        if alo > bhi:
            return ABOVE
        if ahi < blo:
            return BELOW
        return SAME
    if _close(a, b, rel_tol, abs_tol):
        return SAME
    return ABOVE if a > b else BELOW


def change(
    first: float | None, last: float | None, *, rel_tol: float = REL_TOL, abs_tol: float = ABS_TOL
) -> str | None:
    """How a quantity moves from ``first`` to ``last``: "rises", "falls" or "stays about the same"."""
    word = compare(last, first, rel_tol=rel_tol, abs_tol=abs_tol)
    return None if word is None else {ABOVE: RISES, BELOW: FALLS, SAME: STEADY}[word]


def gap_trend(
    a_first: float | None,
    b_first: float | None,
    a_last: float | None,
    b_last: float | None,
    *,
    abs_tol: float = ABS_TOL,
) -> str | None:
    """Does ``a`` move towards ``b`` from the first to the last point? "moves towards" when the
    absolute gap ``|a - b|`` shrinks by more than ``abs_tol``, "moves away from" when it grows by
    more, else "keeps about the same distance from"."""
    if not _finite(a_first, b_first, a_last, b_last):
        return None
    before, after = abs(float(a_first) - float(b_first)), abs(float(a_last) - float(b_last))
    if after < before - abs_tol:
        return TOWARDS
    if after > before + abs_tol:
        return AWAY
    return KEEPS


def flattens_at(
    steps: Sequence[float], values: Sequence[float | None], *, rel_tol: float = 0.01, abs_tol: float = 1e-4
) -> float | None:
    """The first step from which ``values`` no longer change (each later value within ``rel_tol``
    of it), or None when the curve still changes between its last two points (or has fewer
    than two). A curve that is flat only at its very last point counts as still changing."""
    if len(steps) != len(values):
        raise ValueError(f"steps and values must have the same length, got {len(steps)} and {len(values)}")
    pts = [(s, float(v)) for s, v in zip(steps, values) if _finite(v)]
    if len(pts) < 2:
        return None
    last = pts[-1][1]
    if not _close(pts[-2][1], last, rel_tol, abs_tol):
        return None
    first = len(pts) - 2
    while first > 0 and all(_close(pts[first - 1][1], v, rel_tol, abs_tol) for _, v in pts[first:]):
        first -= 1
    return pts[first][0]


def convergence_note(curves: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]], where: str) -> str:
    """Two or three sentences on convergence curves ``{interpreter: {"pgd" | "adv2": {"step": [...],
    "l1": [...]}}}`` (map distance to the benign map against steps): from which step PGD's distance
    no longer changes (:func:`flattens_at`; on the fast schedule PGD stops each image once it is at
    the target) and, per interpreter, whether ADV2's distance has flattened or still moves at its
    last step, with its last two values. ``where`` opens the first sentence ("On the photos")."""
    label = lambda n: INTERPRETER_LABELS.get(n, n)
    pgd_stops, moving, flat = [], [], []
    for name, by_attack in curves.items():
        pgd, adv2 = by_attack.get("pgd") or {}, by_attack.get("adv2") or {}
        if pgd.get("step"):
            pgd_stops.append((flattens_at(pgd["step"], pgd["l1"]), pgd["step"][-1]))
        if adv2.get("step") and len(adv2["l1"]) >= 2:
            at, last = flattens_at(adv2["step"], adv2["l1"]), adv2["step"][-1]
            before, after = adv2["l1"][-2:]
            if at is None:
                way = "falling" if change(before, after, rel_tol=0.01, abs_tol=1e-4) == FALLS else "rising"
                moving.append(f"{label(name)} ({fmt(before)} → {fmt(after)} at step {fmt(last)}, {way})")
            else:
                flat.append(f"{label(name)} from step {fmt(at)} of {fmt(last)}")
    text = []
    stops = [at for at, _ in pgd_stops if at is not None]
    if pgd_stops and len(stops) == len(pgd_stops):
        span = fmt(min(stops)) if min(stops) == max(stops) else f"{fmt(min(stops))}-{fmt(max(stops))}"
        text.append(
            f"{where}, PGD's map distance no longer changes after step {span} of its "
            f"{fmt(pgd_stops[0][1])}: PGD stops each image once it is at the target."
        )
    elif pgd_stops:
        text.append(f"{where}, PGD's map distance still changes at its last step.")
    if moving:
        pgd_done = bool(pgd_stops) and len(stops) == len(pgd_stops)
        text.append(
            f"ADV2's map distance is still moving at its last step for {joined(moving)}: more steps "
            + (
                "would change ADV2's numbers, not PGD's."
                if pgd_done
                else "would change both attacks' numbers."
            )
        )
    if flat:
        text.append(f"ADV2's map distance has flattened for {joined(flat)}.")
    return " ".join(text)


def joined(words: Sequence[str], last: str = "and") -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    words = [w for w in words if w]
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + f" {last} " + words[-1]


__all__ = [
    "ABOVE",
    "AWAY",
    "BELOW",
    "FALLS",
    "KEEPS",
    "RISES",
    "SAME",
    "STEADY",
    "TOWARDS",
    "INTERPRETER_LABELS",
    "change",
    "compare",
    "convergence_note",
    "flattens_at",
    "gap_trend",
    "joined",
]
