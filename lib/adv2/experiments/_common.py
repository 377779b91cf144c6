"""Helpers shared by the chapter modules: cell formatting, glue padding, explained checks."""
from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

NOT_RUN = "not run"          # glued for what a run's parameters left out
MISSING = "—"                # table cells and glue values with nothing to show (no NaN, no None)


class ChapterCheckFailed(AssertionError):
    """A chapter's invariant does not hold; the message says expected, measured and what to change."""


def check(ok: bool, message: str) -> None:
    if not ok:
        raise ChapterCheckFailed(message)


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: 3 significant digits, "—" for None/NaN, integers and text as they are."""
    if is_missing(value):
        return MISSING
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) >= 10 ** digits:
        return f"{value:,.0f}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:.{decimals}f}"
    return text if abs(float(text)) != 0 else "0"


def fmt_rows(rows: Iterable[Iterable[Any]]) -> list[list[str]]:
    return [[fmt(v) for v in row] for row in rows]


def glue_name(name: str) -> str:
    """The name ``adv2.results.glue_numbers`` glues a flattened key under."""
    return name.replace(".", "_").replace("-", "_")


def flat_glue(numbers: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalars of ``numbers`` flattened and renamed as ``glue_numbers`` names them; None/NaN -> "—"."""
    from ..results import _plain, flatten

    out = {}
    for name, value in flatten(_plain(numbers), prefix).items():
        if isinstance(value, (int, float, str)) or value is None:
            out[glue_name(name)] = MISSING if is_missing(value) else value
    return out


def pad(glue: dict[str, Any], names: Iterable[str], value: str = NOT_RUN) -> dict[str, Any]:
    """Add ``value`` under every name in ``names`` the run did not glue."""
    for name in names:
        glue.setdefault(name, value)
    return glue


def shown_path(path: str | os.PathLike) -> str:
    """A results path as the reader should see it: relative to the repository, never absolute."""
    from ..config import REPO_ROOT

    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path(REPO_ROOT).resolve()))
    except ValueError:
        return path.name


def start(stem: str, namespace: dict[str, Any], seed: int | None = None):
    """A chapter notebook's setup, in its first code cell: check its parameters (unknown names and
    bad values fail here), apply ``ADV2_THREADS``, resolve the device, seed everything (when
    ``seed`` is given) and print the versions. Returns ``(params, device, progress)``; progress
    bars are off at the smoke profile."""
    import matplotlib.pyplot as plt
    import torch

    from .. import __version__, config, schema

    # Resolve the notebook's matplotlib backend now, outside any ``plotting.book_style()``: the
    # kernel's inline backend turns interactive mode on when it is first resolved, and an
    # rc_context around that moment restores interactive=False on exit, after which no later
    # figure is shown (only each notebook's first figure was).
    plt.close(plt.figure())
    params = schema.check_notebook_globals(stem, namespace)
    config.set_threads_from_env()
    device = config.resolve_device(params["device"])
    if seed is not None:
        config.seed_everything(seed)
    print(f"adv2 {__version__}, torch {torch.__version__}, device {device}")
    return params, device, params["profile"] != "smoke"
