"""Progress bars for the long loops (training, attacks, AID).

A person running a notebook gets tqdm's bar (a widget in Jupyter, text in a terminal). The book's
runner sets ``ADV2_NO_PROGRESS=1`` for the notebooks it executes: a finished widget would leave an
empty box and a CDN script in the rendered page, and the runner reports progress per cell itself."""

from __future__ import annotations

import os
from collections.abc import Iterable

QUIET_ENV = "ADV2_NO_PROGRESS"


def progress_quiet() -> bool:
    return os.environ.get(QUIET_ENV, "") not in ("", "0")


def progress_bar(
    iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", enabled: bool = True
):
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=progress_quiet() or not enabled, leave=False)
