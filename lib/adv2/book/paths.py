"""Where the book lives: the notebooks, the published copies, the run and sweep folders, and how
a path is shown (relative to the repository, :func:`adv2.core.config.find_repo_root`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from adv2.core.config import REPO_ROOT

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"  # the chapters' sources
BOOK_NOTEBOOKS_DIR = REPO_ROOT / "book" / "notebooks"  # the published executed copies
PUBLISHED_RESULTS_DIR = REPO_ROOT / "results"
RUN_INFO = REPO_ROOT / "book" / "_run_info.md"  # the front page's run box (adv2.book.runbox)
CLAIMS_TABLE = REPO_ROOT / "book" / "_claims.md"  # the front page's claims table (adv2.book.claimspage)
RUN_RECORD = "run.json"  # in every run folder
RUNS_ENV = "ADV2_RUNS_DIR"  # where default run folders go (default: runs/ in the repository)
SWEEPS_DIR = "sweeps"  # under the runs folder


def runs_root() -> Path:
    root = Path(os.environ.get(RUNS_ENV) or REPO_ROOT / "runs")
    return root if root.is_absolute() else REPO_ROOT / root


def sweeps_root() -> Path:
    return runs_root() / SWEEPS_DIR


def shown_path(path: Path) -> str:
    """Paths inside the repository are shown (and passed to notebooks) relative to it."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT.resolve()))
    except ValueError:
        return str(path.resolve())


def is_within(path: Path, folder: Path) -> bool:
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
    except ValueError:
        return False
    return True


def read_json_quietly(path: Path) -> Any:
    """A bookkeeping file's JSON, None when it is missing or damaged."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
