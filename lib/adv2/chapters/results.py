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
import sys
import time
from pathlib import Path
from typing import Any

from adv2 import __version__
from adv2.core.config import REPO_ROOT
from adv2.core.formatting import fmt
from adv2.trained.files import atomic_write_text

DEFAULT_RESULTS_DIR = REPO_ROOT / "results"


def _plain(value: Any) -> Any:
    """Tensors, NumPy scalars and tuples to plain JSON values; NaN becomes None."""
    # no torch import here: the command line reads results without loading torch, and a tensor
    # can only exist once torch is loaded
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
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
    import torch  # lazy: the versions a run records; the command line's other uses stay light

    return {
        "adv2": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "machine": platform.machine(),
        "date": time.strftime("%Y-%m-%d"),
    }


def results_folder(results_dir: str | os.PathLike | None = None) -> Path:
    """``results_dir`` (relative paths from the repository root), else ``results/``."""
    folder = Path(results_dir or DEFAULT_RESULTS_DIR)
    return folder if folder.is_absolute() else REPO_ROOT / folder


# ----------------------------------------------------------------------------- reading JSON safely
class CorruptFile(ValueError):
    """A JSON file exists but cannot be read; ``path`` names it."""

    def __init__(self, path: Path, reason: str):
        self.path = Path(path)
        super().__init__(
            f"{path} is corrupt ({reason}); set it aside with "
            f"adv2.trained.files.set_aside({str(path)!r}) or delete it, then rerun the "
            "notebook that writes it"
        )


def read_json(path: str | os.PathLike) -> Any:
    """``json.loads`` of a file, raising :class:`CorruptFile` (naming the file) when it is not JSON.
    A missing file raises ``FileNotFoundError`` as usual."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptFile(path, f"not valid JSON: {err}") from None


# ----------------------------------------------------------------------------- results files
def save_results(
    stem: str, numbers: dict[str, Any], params: dict[str, Any], results_dir: str | os.PathLike | None = None
) -> Path:
    """Write ``<results_dir>/<stem>.json`` atomically (readable by all) and return its path."""
    payload = {
        "notebook": stem,
        "numbers": _plain(numbers),
        "params": _plain(params),
        "environment": environment(),
    }
    return atomic_write_text(
        results_folder(results_dir) / f"{stem}.json", json.dumps(payload, indent=2, sort_keys=True)
    )


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


def glued_text(value: Any, digits: int = 3) -> Any:
    """What ``{glue:text}`` shows for ``value``: a float as :func:`adv2.core.formatting.fmt` writes it
    (``digits`` significant digits, "—" for NaN), None as "—"; integers and strings unchanged."""
    if value is None or (isinstance(value, float) and not isinstance(value, bool)):
        return fmt(value, digits)
    return value


def glue_numbers(numbers: dict[str, Any], prefix: str = "", digits: int = 3) -> None:
    """Glue every scalar of ``numbers`` (flattened, dots -> underscores) for the book's prose.

    Floats are glued as text with ``digits`` significant digits (:func:`glued_text`, the book's one
    number format), so "20.288 s" reads "20.3 s" and 0.00392157 reads 0.00392.
    """
    from myst_nb import glue  # lazy: myst-nb is needed only inside a notebook

    for name, value in flatten(_plain(numbers), prefix).items():
        if isinstance(value, (int, float, str)) or value is None:
            glue(name.replace(".", "_").replace("-", "_"), glued_text(value, digits), display=False)
