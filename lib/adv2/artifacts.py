"""Load-if-present-else-compute cache for expensive artifacts (trained classifiers, RTS, RTSA).

An artifact lives in ``<root>/<kind>/<key>/`` where ``key`` is a hash of every parameter that
determines it (data, architecture, recipe, seed, recipe version). Beside the weights sit
``params.json`` (what it was computed from), ``metrics.json`` (what the computation measured) and
``manifest.json`` (the sha256 of ``weights.pt``, checked on every load).

* Writes are atomic: everything goes to a temporary folder that is renamed into place only when
  complete, so a run killed half-way leaves nothing that a later run would trust. A full disk
  raises :class:`adv2.results.DiskFull` ("no space left under DIR") and leaves no partial entry.
* A damaged entry (unreadable or altered weights, bad JSON, params that do not match the key, or
  a state the caller's ``check`` rejects) is moved to ``<root>/.quarantine/`` with a warning
  naming the folder and the reason, and is computed again.
* One process at a time works on a key (``fcntl.flock`` on ``<root>/<kind>/.<key>.lock``): when
  several runs ask for the same new artifact, one computes it and the others wait and load it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .checkpoints import CheckpointDamaged, DamagedCheckpointWarning, display_path, load_checkpoint
from .config import REPO_ROOT
from .results import DiskFull, is_disk_full

try:  # POSIX; elsewhere the cache works without the cross-process lock
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

DEFAULT_ROOT = REPO_ROOT / "artifacts"
WEIGHTS = "weights.pt"
MANIFEST = "manifest.json"
QUARANTINE = ".quarantine"


class ArtifactDamaged(Exception):
    """A cache entry failed verification; the message says why."""


class DamagedArtifactWarning(UserWarning):
    """A damaged cache entry was set aside and is being recomputed."""


def artifact_key(params: dict[str, Any]) -> str:
    """Stable short hash of a JSON-serialisable parameter dict (order of keys does not matter)."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Artifact:
    state: dict[str, Any]  # what the computation returned to be saved (e.g. a state_dict)
    metrics: dict[str, Any]  # numbers measured while computing it (accuracy, curves, time)
    params: dict[str, Any]
    path: Path
    from_cache: bool
    # where the weights came from now: "cache", "checkpoint" (a committed file of
    # adv2.checkpoints, copied into the cache) or "computed" (trained in this call)
    origin: str = ""
    checkpoint: str | None = None  # the committed checkpoint the weights came from, now or earlier
    note: str = ""  # why a computation happened despite a checkpoint (damaged file), else ""

    def __post_init__(self) -> None:
        if not self.origin:
            self.origin = "cache" if self.from_cache else "computed"
        if self.checkpoint is None:
            self.checkpoint = self.metrics.get("checkpoint") if isinstance(self.metrics, dict) else None


def artifact_root(root: str | os.PathLike | None = None) -> Path:
    """``root``, else ``$ADV2_ARTIFACTS``, else ``artifacts/``; relative paths are taken from the
    repository root, so notebooks find the same cache whatever their working directory."""
    path = Path(root or os.environ.get("ADV2_ARTIFACTS", DEFAULT_ROOT))
    return path if path.is_absolute() else REPO_ROOT / path


# ----------------------------------------------------------------------------- locking
@contextlib.contextmanager
def key_lock(kind_dir: Path, key: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<kind_dir>/.<key>.lock`` (waiting, with a message, while
    another process holds it). Lock files stay: deleting them would let two processes lock two
    different files. A cache folder that cannot be written is used without the lock."""
    path = kind_dir / f".{key}.lock"
    fd = None
    if fcntl is not None:
        try:
            kind_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            fd = None
    if fd is None:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(
                f"waiting for another process working on {kind_dir.name} {key} (lock {path})",
                file=sys.stderr,
                flush=True,
            )
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


# ----------------------------------------------------------------------------- verify / quarantine
def _read_json_dict(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactDamaged(f"{path.name} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactDamaged(f"{path.name} is not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise ArtifactDamaged(f"{path.name} holds {type(value).__name__}, not an object")
    return value


def _load_verified(
    folder: Path, key: str, check: Callable[[dict[str, Any]], None] | None
) -> tuple[dict, dict, bool]:
    """``(state, metrics, has_manifest)`` of a complete entry, or :class:`ArtifactDamaged`."""
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise ArtifactDamaged(f"{WEIGHTS} is missing")
    params = _read_json_dict(folder / "params.json")
    if artifact_key(params) != key:
        raise ArtifactDamaged(f"params.json belongs to key {artifact_key(params)}, not {key}")
    metrics = _read_json_dict(folder / "metrics.json")
    has_manifest = (folder / MANIFEST).exists()
    if has_manifest:
        expected = _read_json_dict(folder / MANIFEST).get("weights_sha256")
        actual = file_sha256(weights)
        if actual != expected:
            raise ArtifactDamaged(
                f"{WEIGHTS} has sha256 {actual[:12]}..., the manifest records "
                f"{str(expected)[:12]}... (file altered or truncated)"
            )
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - EOFError, IndexError, RuntimeError, UnpicklingError
        raise ArtifactDamaged(f"{WEIGHTS} cannot be loaded ({type(err).__name__}: {err})") from None
    if check is not None:
        try:
            check(state)
        except Exception as err:  # noqa: BLE001 - any rejection by the caller means "damaged"
            raise ArtifactDamaged(
                f"the loaded state was rejected ({type(err).__name__}: {str(err)[:300]})"
            ) from None
    return state, metrics, has_manifest


def quarantine(folder: Path, root: Path, reason: str) -> Path:
    """Move a damaged entry to ``<root>/.quarantine/<kind>-<key>-<timestamp>/`` and warn."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = root / QUARANTINE / f"{folder.parent.name}-{folder.name}-{stamp}"
    target, n = base, 1
    while target.exists():
        n += 1
        target = base.with_name(f"{base.name}-{n}")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(folder), str(target))
    warnings.warn(
        f"damaged cache entry {folder}: {reason}. Moved to {target}; recomputing it.",
        DamagedArtifactWarning,
        stacklevel=3,
    )
    return target


def _write_manifest(folder: Path, digest: str) -> None:
    (folder / MANIFEST).write_text(json.dumps({"weights_sha256": digest, "format": 1}, indent=2))


def _adopt_legacy(folder: Path) -> None:
    """Entries written before checksums existed: record the checksum of the weights as they are
    now, so later changes are caught (best effort: a read-only cache is still used)."""
    with contextlib.suppress(OSError):
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{MANIFEST}.")
        os.close(fd)
        try:
            Path(tmp).write_text(
                json.dumps(
                    {"weights_sha256": file_sha256(folder / WEIGHTS), "format": 1, "adopted": True}, indent=2
                )
            )
            os.chmod(tmp, 0o644)
            os.replace(tmp, folder / MANIFEST)
        finally:
            Path(tmp).unlink(missing_ok=True)


def _save_entry(folder: Path, state: dict, params: dict, metrics: dict) -> None:
    """Write the entry to a temporary folder, then rename it onto ``folder`` (replacing any old)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
    try:
        try:
            torch.save(state, tmp / WEIGHTS)
            _write_manifest(tmp, file_sha256(tmp / WEIGHTS))
            (tmp / "params.json").write_text(json.dumps(params, indent=2, sort_keys=True, default=str))
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True, default=str))
        except (OSError, RuntimeError) as err:
            if is_disk_full(err, folder.parent):
                raise DiskFull(folder.parent, f"the {folder.parent.name} artifact {folder.name}") from err
            raise
        os.chmod(tmp, 0o755)  # mkdtemp gives 0700
        if folder.exists():  # a forced recompute replaces the old one (we hold the key's lock)
            old = Path(tempfile.mkdtemp(prefix=f".old-{folder.name}-", dir=folder.parent))
            os.replace(folder, old / "entry")
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _clear_leftovers(kind_dir: Path, key: str) -> None:
    """Temporary folders of this key left by a killed run (safe: we hold the key's lock)."""
    for pattern in (f".tmp-{key}-*", f".old-{key}-*"):
        for leftover in kind_dir.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)


# ----------------------------------------------------------------------------- the cache
def load_or_compute(
    kind: str,
    params: dict[str, Any],
    compute: Callable[[], tuple[dict[str, Any], dict[str, Any]]],
    root: str | os.PathLike | None = None,
    force: bool = False,
    check: Callable[[dict[str, Any]], None] | None = None,
    checkpoints: str | os.PathLike | None = None,
) -> Artifact:
    """Return the cached artifact for ``params`` or call ``compute()`` and cache its result.

    ``compute`` returns ``(state, metrics)``; ``state`` is saved with ``torch.save`` and must load
    with ``weights_only=True`` (tensors, numbers, strings, lists, dicts). ``check(state)``, when
    given, validates a state loaded from the cache (e.g. ``load_state_dict`` into the
    architecture) and raises if it is unusable; the entry is then quarantined and recomputed.

    Before computing, a committed checkpoint of ``(kind, key)`` under ``checkpoints`` (default
    :func:`adv2.checkpoints.checkpoint_root`) is verified, copied into the cache and returned
    (``origin="checkpoint"``); a damaged one is reported with a warning and the artifact is
    computed (``note`` says why). ``force=True`` skips cache and checkpoint alike (retrain).
    """
    base = artifact_root(root)
    key = artifact_key(params)
    kind_dir = base / kind
    folder = kind_dir / key
    with key_lock(kind_dir, key):
        _clear_leftovers(kind_dir, key)
        if folder.exists() and not force:
            try:
                state, metrics, has_manifest = _load_verified(folder, key, check)
            except ArtifactDamaged as err:
                quarantine(folder, base, str(err))
            else:
                if not has_manifest:
                    _adopt_legacy(folder)
                return Artifact(state, metrics, params, folder, from_cache=True)
        note = ""
        if not force:
            try:
                found = load_checkpoint(kind, key, checkpoints)
                if found is not None and check is not None:
                    _check_checkpoint(found, check)
            except CheckpointDamaged as err:
                note = f"committed checkpoint damaged ({err}); trained again"
                warnings.warn(f"{note}", DamagedCheckpointWarning, stacklevel=2)
            else:
                if found is not None:
                    state, metrics, path = found
                    metrics = {**metrics, "checkpoint": display_path(path)}
                    _save_entry(folder, state, params, metrics)
                    return Artifact(state, metrics, params, folder, from_cache=True, origin="checkpoint")
        state, metrics = compute()
        _save_entry(folder, state, params, metrics)
    return Artifact(state, metrics, params, folder, from_cache=False, note=note)


def _check_checkpoint(found: tuple[dict, dict, Path], check: Callable[[dict[str, Any]], None]) -> None:
    try:
        check(found[0])
    except Exception as err:  # noqa: BLE001 - any rejection by the caller means "damaged"
        raise CheckpointDamaged(
            f"{found[2].name}: the state was rejected ({type(err).__name__}: {str(err)[:300]})"
        ) from None
