"""Explained run checks: :func:`check` raises :class:`ChapterCheckFailed` saying what was expected,
what was measured and which parameter to change (conditions a run needs, not claims)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from adv2.core.formatting import MISSING, fmt


class ChapterCheckFailed(AssertionError):
    """A chapter's run left the conditions it needs; the message says what to change."""


_OPS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    ">=": (lambda v, t: v >= t, "at least"),
    ">": (lambda v, t: v > t, "more than"),
    "<=": (lambda v, t: v <= t, "at most"),
    "<": (lambda v, t: v < t, "less than"),
    "==": (lambda v, t: v == t, "exactly"),
}


def _show(x: Any, percent: bool) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return MISSING
    if percent and isinstance(x, (int, float)) and not isinstance(x, bool):
        return f"{100 * x:.3g} %"
    return fmt(x)


def check(
    value: Any,
    *,
    name: str,
    expected: str | tuple[float, float] | bool,
    parameter_hint: str,
    percent: bool = False,
) -> Any:
    """Raise :class:`ChapterCheckFailed` unless ``value`` meets ``expected``; return ``value``.

    ``expected``: ``">= 0.5"``, ``"> 0"``, ``"<= 0.2"``, ``"< 1"``, ``"== 0"``, a closed range
    ``(low, high)`` or a bool. ``name`` describes the measurement; a ``{value}`` in it is replaced
    by the measured value, otherwise ": <value>" follows it. ``percent`` shows fractions as
    percentages. Example::

        check(0.16, name="PGD reached the target on {value} of images at epsilon 0.016",
              expected=">= 0.5", parameter_hint="raise epsilon or step_scale", percent=True)

    fails with "PGD reached the target on 16 % of images at epsilon 0.016; this chapter needs at
    least 50 %: raise epsilon or step_scale". A missing value (None, NaN) always fails.
    """
    if hasattr(value, "item") and not isinstance(value, (int, float)):
        value = value.item()
    if isinstance(expected, bool):
        ok, need = value is expected or value == expected, f"it to be {str(expected).lower()}"
    elif isinstance(expected, tuple):
        if len(expected) != 2:
            raise ValueError(f"expected range must be (low, high), got {expected!r}")
        lo, hi = expected
        ok = value is not None and not _isnan(value) and lo <= value <= hi
        need = f"between {_show(lo, percent)} and {_show(hi, percent)}"
    else:
        m = re.fullmatch(r"\s*(>=|<=|==|>|<)\s*([-+0-9.eE]+)\s*", str(expected))
        if not m:
            raise ValueError(
                f"expected must look like '>= 0.5' (operators {', '.join(_OPS)}), "
                f"a (low, high) range or a bool; got {expected!r}"
            )
        op, threshold = m.group(1), float(m.group(2))
        test, words = _OPS[op]
        ok = value is not None and not _isnan(value) and test(float(value), threshold)
        need = f"{words} {_show(threshold, percent)}"
    if ok:
        return value
    shown = _show(value, percent)
    what = name.replace("{value}", shown) if "{value}" in name else f"{name}: {shown}"
    raise ChapterCheckFailed(f"{what}; this chapter needs {need}: {parameter_hint}")


def _isnan(x: Any) -> bool:
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return False


__all__ = ["ChapterCheckFailed", "check"]
