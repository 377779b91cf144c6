"""The results contract: every notebook writes ``results/<notebook-stem>.json``.

The file holds the notebook's headline numbers under ``"numbers"`` (stable, documented keys), the
parameters it ran with, and the library / torch versions, so summary notebooks and tests read
numbers from files and never parse notebook outputs.
"""

from __future__ import annotations

import errno
import json
import math
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from adv2.core.config import REPO_ROOT

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
    from adv2 import __version__

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


# ----------------------------------------------------------------------------- safe file writing
class DiskFull(OSError):
    """Writing failed because the disk (or quota) under a folder is full."""

    def __init__(self, folder: Path, what: str):
        self.folder = Path(folder)
        super().__init__(
            errno.ENOSPC,
            f"no space left under {folder} while writing {what}: free "
            "some space there (or point the cache / results elsewhere) "
            "and run again",
        )


# torch.save reports a full disk as a RuntimeError from its zip writer, not as an OSError
_TORCH_WRITE_FAILURES = ("PytorchStreamWriter failed", "enforce fail", "file write failed", "unexpected pos")


def is_disk_full(err: BaseException, folder: str | os.PathLike | None = None) -> bool:
    """True when ``err`` means the disk under ``folder`` is full.

    An ``OSError`` says so itself (ENOSPC / EDQUOT). torch's zip writer raises a RuntimeError
    without an errno; it counts as disk-full when the folder has (almost) no free space left.
    """
    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(err, RuntimeError) and any(s in str(err) for s in _TORCH_WRITE_FAILURES):
        if "No space left" in str(err) or folder is None:
            return True
        try:
            return shutil.disk_usage(folder).free < 16 * 2**20
        except OSError:
            return True
    return False


def write_atomically(path: str | os.PathLike, write: Callable[[Path], None], mode: int = 0o644) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path``.

    Readers see the old file or the complete new one, never a partial one; the file gets ``mode``
    (``mkstemp`` alone would leave 0600). A full disk raises :class:`DiskFull` naming the folder;
    on any failure the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
        write(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if is_disk_full(err, path.parent) and not isinstance(err, DiskFull):
            raise DiskFull(path.parent, path.name) from err
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, mode: int = 0o644) -> Path:
    """Write ``text`` to ``path`` atomically (temporary file in the same folder + ``os.replace``),
    with permissions ``mode``; a full disk raises :class:`DiskFull` ("no space left under DIR")."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    return write_atomically(path, write, mode)


# ----------------------------------------------------------------------------- reading JSON safely
class CorruptFile(ValueError):
    """A JSON file exists but cannot be read; ``path`` names it."""

    def __init__(self, path: Path, reason: str):
        self.path = Path(path)
        super().__init__(
            f"{path} is corrupt ({reason}); set it aside with "
            f"adv2.chapters.results.set_aside({str(path)!r}) or delete it, then rerun the "
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


def set_aside(path: str | os.PathLike) -> Path:
    """Rename a corrupt file to ``<name>.corrupt-<UTC timestamp>`` beside it and return the new
    path, so it is kept for inspection and the next run rebuilds the original."""
    path = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.replace(path, target)
    return target


# ----------------------------------------------------------------------------- results files
def save_results(
    stem: str, numbers: dict[str, Any], params: dict[str, Any], results_dir: str | os.PathLike | None = None
) -> Path:
    """Write ``<results_dir>/<stem>.json`` atomically (mode 0644) and return its path."""
    payload = {
        "notebook": stem,
        "numbers": _plain(numbers),
        "params": _plain(params),
        "environment": environment(),
    }
    return atomic_write_text(
        results_folder(results_dir) / f"{stem}.json", json.dumps(payload, indent=2, sort_keys=True)
    )


def load_results(stem: str, results_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The results file of notebook ``stem``.

    Raises ``FileNotFoundError`` naming the file and the notebook to run when it is missing, and
    :class:`CorruptFile` naming the file when it is not a results file (bad JSON, no ``numbers``).
    """
    path = results_folder(results_dir) / f"{stem}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: run the notebook {stem} first (python -m adv2 run {stem.split('_')[0]})"
        )
    payload = read_json(path)
    if not isinstance(payload, dict) or not isinstance(payload.get("numbers"), dict):
        raise CorruptFile(path, 'not a results file: no "numbers" object')
    return payload


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
