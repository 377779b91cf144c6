"""What chapters 4-6 report with: Markdown tables whose cells went through
:func:`adv2.core.formatting.fmt` (estimates as "value [low, high]", "—" for a number this run could not
compute), the glued names ``{glue:text}`` reads (``adv2.chapters._common.NOT_RUN`` for a classifier
the prose names but the run skipped), and the end-of-run check's failure listing every problem.

Nothing here is particular to the AID chapters: :mod:`adv2.chapters._common` could take it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from adv2.chapters import plotting, results
from adv2.chapters._common import ChapterCheckFailed, fmt_rows
from adv2.core.formatting import MISSING

DASH_NOTE = f"*{MISSING}: no value (not reported by the paper, or nothing to measure in this run).*"


def missing(value: Any) -> bool:
    """True for None and NaN: a number this run could not compute."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A Markdown table whose cells went through :func:`adv2.core.formatting.fmt` (no ``nan``/``None``
    in it), with a footnote saying what "—" means when a cell has one."""
    cells = fmt_rows(rows)
    text = plotting.markdown_table(cells, headers)
    return text + "\n\n" + DASH_NOTE if any(c == MISSING for row in cells for c in row) else text


def glue_value(value: Any) -> Any:
    """A number as glued for the prose: None/NaN become "—" (not the words None or nan)."""
    return MISSING if missing(value) else value


def flat_glue(nested: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """``{"resnet": {"x": 1}}`` -> ``{"<prefix>resnet_x": 1}``: the names ``{glue:text}`` uses."""
    flat = results.flatten(dict(nested), prefix)
    return {k.replace(".", "_").replace("-", "_"): glue_value(v) for k, v in flat.items()}


def raise_problems(chapter: str, problems: Sequence[str]) -> None:
    """Raise :class:`adv2.chapters._common.ChapterCheckFailed` listing every failed check, if any."""
    if problems:
        raise ChapterCheckFailed(f"{chapter}: {len(problems)} check(s) failed:\n- " + "\n- ".join(problems))
