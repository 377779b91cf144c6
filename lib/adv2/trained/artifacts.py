"""Load-if-present-else-compute cache for expensive artifacts (trained classifiers, RTS, RTSA).

An artifact lives in ``<root>/<kind>/<key>/`` where ``key`` is a hash of every parameter that
determines it (data, architecture, recipe, seed, recipe version). Beside the weights sit
``params.json`` (what it was computed from), ``metrics.json`` (what the computation measured) and
``manifest.json`` (the sha256 of ``weights.pt``, checked on every load).

* Writes are atomic: everything goes to a temporary folder that is renamed into place only when
  complete, so a run killed half-way leaves nothing that a later run would trust. A full disk
  raises :class:`adv2.trained.files.DiskFull` ("no space left under DIR") and leaves no partial entry.
* A damaged entry (unreadable or altered weights, bad JSON, params that do not match the key, a
  state the caller's ``check`` rejects, or one its ``verify`` finds wrong) is moved to
  ``<root>/.quarantine/`` with a warning naming the folder and the reason, and a line on the
  terminal (:func:`adv2.core.progress.terminal_note`), and is computed again.
* The checksum only proves that ``weights.pt`` is the file the entry was written with; whoever can
  rewrite the weights can rewrite ``manifest.json``. So what can be checked independently of the
  entry's own files is checked on every load: a state copied from a committed checkpoint is
  compared with that checkpoint (whose bytes :mod:`adv2.trained.checkpoint_pins` pins), and the caller's
  ``verify`` re-measures what it can (a classifier's accuracy on a fixed slice of the test set,
  :func:`adv2.trained.loading.load_classifier`). An entry without ``manifest.json`` is used only when one
  of these re-verified it (the checksum is then recorded); otherwise it is set aside and computed
  again, with a line on the terminal.
* One process at a time works on a key (``fcntl.flock`` on ``<root>/<kind>/.<key>.lock``): when
  several runs ask for the same new artifact, one computes it and the others wait and load it.
"""

from __future__ import annotations

import contextlib
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

from adv2.core.config import REPO_ROOT
from adv2.core.progress import terminal_note
from adv2.trained.checkpoints import (
    CheckpointDamaged,
    DamagedCheckpointWarning,
    display_path,
    load_checkpoint,
    save_checkpoint,
)
from adv2.trained.files import DiskFull, artifact_key, atomic_write_json, file_sha256, is_disk_full

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


@dataclass
class Artifact:
    state: dict[str, Any]  # what the computation returned to be saved (e.g. a state_dict)
    metrics: dict[str, Any]  # numbers measured while computing it (accuracy, curves, time)
    params: dict[str, Any]
    path: Path
    from_cache: bool
    # where the weights came from now: "cache", "checkpoint" (a committed file of
    # adv2.trained.checkpoints, copied into the cache) or "computed" (trained in this call)
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
    """``(state, metrics, has_manifest)`` of a complete entry, or :class:`ArtifactDamaged`
    (re-verification beyond the checksum is :func:`_reverify`'s)."""
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


def same_state(a: Any, b: Any) -> bool:
    """Whether two saved states (dicts / lists of tensors and plain values) are equal, bit for bit."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(a, b)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b))
    return a == b


def _reverify(
    kind: str,
    key: str,
    state: dict[str, Any],
    metrics: dict[str, Any],
    checkpoints: str | os.PathLike | None,
    verify: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any] | None] | None,
) -> tuple[dict[str, Any], str]:
    """Check a cached state against what does not live in its own folder: ``(metrics, how)`` with
    the caller's extra numbers merged in and what was checked ("" when nothing could be), or
    :class:`ArtifactDamaged`. A damaged committed checkpoint is refused (:class:`CheckpointDamaged`)."""
    how = []
    if metrics.get("checkpoint"):  # copied from a committed checkpoint: must still be its state
        found = load_checkpoint(kind, key, checkpoints)
        if found is not None:
            if not same_state(state, found[0]):
                raise ArtifactDamaged(
                    f"{WEIGHTS} differs from the committed checkpoint {display_path(found[2])} it was copied from"
                )
            how.append(f"equal to the committed checkpoint {display_path(found[2])}")
    if verify is not None:
        try:
            extra = verify(state, metrics) or {}
        except Exception as err:  # noqa: BLE001 - any rejection by the caller means "damaged"
            raise ArtifactDamaged(
                f"re-verification failed ({type(err).__name__}: {str(err)[:300]})"
            ) from None
        metrics = {**metrics, **extra}
        how.append("re-measured: " + (", ".join(f"{k} {v}" for k, v in extra.items()) or "ok"))
    return metrics, "; ".join(how)


def quarantine(folder: Path, root: Path, reason: str) -> Path:
    """Move a damaged entry to ``<root>/.quarantine/<kind>-<key>-<timestamp>/``, warn, and say so on
    the terminal (where the notebook's warning would not be seen)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = root / QUARANTINE / f"{folder.parent.name}-{folder.name}-{stamp}"
    target, n = base, 1
    while target.exists():
        n += 1
        target = base.with_name(f"{base.name}-{n}")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(folder), str(target))
    message = f"damaged cache entry {folder}: {reason}. Moved to {target}; recomputing it."
    warnings.warn(message, DamagedArtifactWarning, stacklevel=3)
    terminal_note(message)
    return target


def _write_manifest(folder: Path, digest: str) -> None:
    (folder / MANIFEST).write_text(json.dumps({"weights_sha256": digest, "format": 1}, indent=2))


def _adopt_legacy(folder: Path) -> None:
    """An entry without a checksum that was re-verified: record the checksum of the weights as
    they are now, so later changes are caught (best effort: a read-only cache is still used)."""
    with contextlib.suppress(OSError):
        atomic_write_json(
            folder / MANIFEST, {"weights_sha256": file_sha256(folder / WEIGHTS), "format": 1, "adopted": True}
        )


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
    verify: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any] | None] | None = None,
    retrain_damaged_checkpoint: bool = False,
) -> Artifact:
    """Return the cached artifact for ``params`` or call ``compute()`` and cache its result.

    ``compute`` returns ``(state, metrics)``; ``state`` is saved with ``torch.save`` and must load
    with ``weights_only=True`` (tensors, numbers, strings, lists, dicts). ``check(state)``, when
    given, validates a state loaded from the cache (e.g. ``load_state_dict`` into the
    architecture) and raises if it is unusable; the entry is then quarantined and recomputed.
    ``verify(state, metrics)``, when given, re-measures a cached state independently of the
    entry's files (e.g. a classifier's accuracy on a fixed slice of the test set) and raises when
    it disagrees with ``metrics``; it returns extra numbers for the returned metrics (not saved).
    It is what lets an entry without ``manifest.json`` be used.

    Before computing, a committed checkpoint of ``(kind, key)`` under ``checkpoints`` (default
    :func:`adv2.trained.checkpoints.checkpoint_root`) is verified against its pinned sha256, copied into
    the cache and returned (``origin="checkpoint"``). A damaged or unpinned one is refused: its
    :class:`CheckpointDamaged` propagates, unless ``retrain_damaged_checkpoint`` asks to compute
    the artifact instead (with a warning, a terminal line and ``note``). ``force=True`` skips
    cache and checkpoint alike (retrain).
    """
    base = artifact_root(root)
    key = artifact_key(params)
    kind_dir = base / kind
    folder = kind_dir / key
    with key_lock(kind_dir, key):
        _clear_leftovers(kind_dir, key)
        note = ""
        if folder.exists() and not force:
            try:
                state, metrics, has_manifest = _load_verified(folder, key, check)
                metrics, how = _reverify(kind, key, state, metrics, checkpoints, verify)
                if not has_manifest and not how:
                    raise ArtifactDamaged(
                        f"{MANIFEST} is missing: no checksum of {WEIGHTS} and nothing else to re-verify it with"
                    )
            except CheckpointDamaged as err:  # the checkpoint it was copied from: as below
                if not retrain_damaged_checkpoint:
                    raise _refusal(kind, key, err) from None
                quarantine(folder, base, f"its committed checkpoint is damaged ({err})")
            except ArtifactDamaged as err:
                quarantine(folder, base, str(err))
                note = f"damaged cache entry set aside ({err}); computed again"
            else:
                if not has_manifest:
                    terminal_note(
                        f"cache entry {folder} had no {MANIFEST}; re-verified ({how}); checksum recorded"
                    )
                    _adopt_legacy(folder)
                return Artifact(state, metrics, params, folder, from_cache=True)
        if not force:
            try:
                found = load_checkpoint(kind, key, checkpoints)
                if found is not None and check is not None:
                    _check_checkpoint(found, check)
            except CheckpointDamaged as err:
                if not retrain_damaged_checkpoint:
                    raise _refusal(kind, key, err) from None
                note = f"committed checkpoint damaged ({err}); trained again"
                warnings.warn(f"{note}", DamagedCheckpointWarning, stacklevel=2)
                terminal_note(f"{kind} {key}: {note}")
            else:
                if found is not None:
                    state, metrics, path = found
                    metrics = {**metrics, "checkpoint": display_path(path)}
                    _save_entry(folder, state, params, metrics)
                    return Artifact(state, metrics, params, folder, from_cache=True, origin="checkpoint")
        state, metrics = compute()
        _save_entry(folder, state, params, metrics)
    return Artifact(state, metrics, params, folder, from_cache=False, note=note)


def ship_entry(
    kind: str, key: str, root: str | os.PathLike | None = None, checkpoints: str | os.PathLike | None = None
) -> Path | None:
    """Write the verified cache entry ``<root>/<kind>/<key>`` as the committed checkpoint
    ``<checkpoints>/<kind>-<key>.pt`` (same state, parameters and metrics: a reader's run loads it
    instead of training). ``None`` when no such entry is cached; :class:`ArtifactDamaged` when it
    fails its checksum. The checkpoint is used once its printed pin line is in
    :mod:`adv2.trained.checkpoint_pins`."""
    folder = artifact_root(root) / kind / key
    if not folder.is_dir():
        return None
    state, metrics, _ = _load_verified(folder, key, None)
    params = _read_json_dict(folder / "params.json")
    metrics = {k: v for k, v in metrics.items() if k != "checkpoint"}  # where it came from, not what it is
    return save_checkpoint(kind, params, state, metrics, checkpoints)


def _refusal(kind: str, key: str, err: CheckpointDamaged) -> CheckpointDamaged:
    return CheckpointDamaged(
        f"refused the committed checkpoint of {kind} {key}: {err}; or train it here on purpose "
        "(retrain: `-p photo_rts_retrain True`, `python -m adv2 checkpoint rts --retrain`, "
        "`python -m adv2 checkpoint rtsa --retrain`)"
    )


def _check_checkpoint(found: tuple[dict, dict, Path], check: Callable[[dict[str, Any]], None]) -> None:
    try:
        check(found[0])
    except Exception as err:  # noqa: BLE001 - any rejection by the caller means "damaged"
        raise CheckpointDamaged(
            f"{found[2].name}: the state was rejected ({type(err).__name__}: {str(err)[:300]})"
        ) from None
