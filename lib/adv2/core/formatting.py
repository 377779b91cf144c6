"""How the book shows a number: :func:`fmt`, three significant digits and "—" for a missing value,
the one number format of its tables."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MISSING = "—"  # shown for a value that does not exist (never "nan", "None" or "n/a")


def fmt(x: Any, digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits ("0.123", "12.3", "1230"); "—" for None/NaN.

    Integers are shown whole, strings unchanged, booleans as "yes"/"no", infinities as "∞".
    Trailing zeros are kept (0.1 -> "0.100") so a column reads at one precision, and a value that
    rounds to zero never shows as "-0".
    """
    if x is None:
        return MISSING
    if isinstance(x, str):
        return x
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if hasattr(x, "item") and not isinstance(x, (int, float)):
        try:  # NumPy scalar, 0-d array, one-element tensor
            x = x.item()
        except (ValueError, RuntimeError):
            raise TypeError(
                f"fmt formats one number, got an array of shape {tuple(getattr(x, 'shape', ()))}"
            ) from None
        if isinstance(x, bool):
            return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if digits < 1:
        raise ValueError(f"digits must be at least 1, got {digits!r}")
    x = float(x)
    if math.isnan(x):
        return MISSING
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0:
        return "0"
    rounded = float(f"{x:.{digits - 1}e}")  # exact significant-digit rounding
    magnitude = math.floor(math.log10(abs(rounded)))  # 9.996 -> 10.0 moves up a decade
    if magnitude < -4:
        return f"{rounded:.{digits - 1}e}"
    decimals = max(digits - 1 - magnitude, 0)
    text = f"{rounded:.{decimals}f}"
    return "0" if float(text) == 0 else text
