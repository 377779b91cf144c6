"""The results contract: every notebook writes ``results/<notebook-stem>.json``.

The file holds the notebook's headline numbers under ``"numbers"`` (stable, documented keys), the
parameters it ran with, and the library / torch versions, so summary notebooks and tests read
numbers from files and never parse notebook outputs.
"""
from __future__ import annotations

import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from .config import REPO_ROOT

DEFAULT_RESULTS_DIR = REPO_ROOT / "results"


def _plain(value: Any) -> Any:
    """Tensors, NumPy scalars and tuples to plain JSON values; NaN becomes None."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if hasattr(value, "item") and not isinstance(value, (list, dict)):
        value = value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def environment() -> dict[str, str]:
    from . import __version__

    return {"adv2": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            "machine": platform.machine(), "date": time.strftime("%Y-%m-%d")}


def save_results(stem: str, numbers: dict[str, Any], params: dict[str, Any],
                 results_dir: str | os.PathLike | None = None) -> Path:
    """Write ``<results_dir>/<stem>.json`` atomically and return its path."""
    folder = Path(results_dir or DEFAULT_RESULTS_DIR)
    if not folder.is_absolute():
        folder = REPO_ROOT / folder
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"notebook": stem, "numbers": _plain(numbers), "params": _plain(params),
               "environment": environment()}
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
    os.replace(tmp, folder / f"{stem}.json")
    return folder / f"{stem}.json"


def load_results(stem: str, results_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    folder = Path(results_dir or DEFAULT_RESULTS_DIR)
    if not folder.is_absolute():
        folder = REPO_ROOT / folder
    return json.loads((folder / f"{stem}.json").read_text())


def flatten(numbers: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: the names numbers are glued under."""
    out: dict[str, Any] = {}
    for key, value in numbers.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def glue_numbers(numbers: dict[str, Any], prefix: str = "", digits: int = 3) -> None:
    """Glue every scalar of ``numbers`` (flattened, dots -> underscores) for the book's prose.

    Floats are glued rounded to ``digits`` significant decimals so ``{glue:text}`` reads well.
    """
    from myst_nb import glue

    for name, value in flatten(_plain(numbers), prefix).items():
        if isinstance(value, (int, float, str)) or value is None:
            shown = round(value, digits) if isinstance(value, float) else value
            glue(name.replace(".", "_").replace("-", "_"), shown, display=False)
