"""Files the library writes, and how it names them: the one atomic writer, disk-full, hashes.

Every file the library writes (cache entries, committed checkpoints, results, the published book,
sweep records) goes through :func:`write_atomically`: a temporary file beside the target, renamed
onto it only when complete, so a reader sees the old file or the whole new one, never a part. A full
disk raises :class:`DiskFull` naming the folder. Torch-free, so the command line and the schema can
import it quickly.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


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


def normal_mode() -> int:
    """0666 minus the umask (0644 usually): mkstemp's 0600 would hide files from other users."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomically(path: str | os.PathLike, write: Callable[[Path], None], mode: int | None = None) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path``.

    Readers see the old file or the complete new one, never a partial one; the file gets ``mode``
    (default :func:`normal_mode`). A full disk raises :class:`DiskFull` naming the folder; on any
    failure the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
        write(tmp)
        os.chmod(tmp, normal_mode() if mode is None else mode)
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if is_disk_full(err, path.parent) and not isinstance(err, DiskFull):
            raise DiskFull(path.parent, path.name) from err
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`write_atomically`), synced to the disk."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    return write_atomically(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | os.PathLike, payload: Any) -> Path:
    return atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def artifact_key(params: dict[str, Any]) -> str:
    """Stable short hash of a JSON-serialisable parameter dict (order of keys does not matter):
    the name of a trained artifact in the cache and among the committed checkpoints."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def set_aside(path: str | os.PathLike, why: str | None = None) -> Path:
    """Rename a corrupt file to ``<name>.corrupt-<UTC timestamp>`` beside it (a new name if that one
    exists: nothing is overwritten) and return the new path, so it is kept for inspection and the
    next run rebuilds the original; with ``why``, say so on stderr."""
    path = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.replace(path, aside)
    if why is not None:
        print(
            f"warning: {path} is not valid JSON ({why}); moved it to {aside.name} and rebuilt it",
            file=sys.stderr,
            flush=True,
        )
    return aside
