"""Progress bars for the long loops (training, attacks, AID).

A person running a notebook gets tqdm's bar (a widget in Jupyter, text in a terminal). The book's
runner sets ``ADV2_NO_PROGRESS=1`` for the notebooks it executes: a finished widget would leave an
empty box and a CDN script in the rendered page, and the runner reports progress per cell itself."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

QUIET_ENV = "ADV2_NO_PROGRESS"


def progress_quiet() -> bool:
    return os.environ.get(QUIET_ENV, "") not in ("", "0")


def progress_bar(
    iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", enabled: bool = True
):
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=progress_quiet() or not enabled, leave=False)


def terminal_note(message: str) -> None:
    """One line for the person who started the run, on the process's own stderr.

    In a notebook kernel ``sys.stderr`` goes only into the notebook; ``sys.__stderr__`` is the
    kernel process's file descriptor 2, which ipykernel both records in the notebook and echoes
    to the terminal of ``python -m adv2 run`` (and Ray forwards a sweep worker's to its driver).
    Outside a kernel both are the same stream, so the line is written once either way."""
    stream = sys.__stderr__ or sys.stderr
    print(f"[adv2] {message}", file=stream, flush=True)
