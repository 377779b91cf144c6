"""Committed checkpoints: trainings too long for a reader's CPU, shipped with the repository.

``checkpoints/`` (at the repository root, or ``$ADV2_CHECKPOINTS``) holds one file per trained
artifact, ``<kind>-<key>.pt`` (a dict ``{"state", "params", "metrics"}``, loadable with
``weights_only=True``), and ``manifest.json``, which records for each file its size, kind, key,
parameters and where and how long it was trained (and its sha256, for reference). The key is the
artifact cache's own key (:func:`adv2.trained.files.artifact_key` of the recipe's parameters), so
:func:`adv2.trained.artifacts.load_or_compute` looks here before training: a recipe that changed has
another key and finds no checkpoint (it trains).

The authority on a file's bytes is its sha256 pinned in tracked code, :mod:`adv2.trained.checkpoint_pins`
(the manifest is rewritten together with the weights, so it cannot vouch for them). A file whose
sha256 differs from its pin, or that has no pin, is refused (:class:`CheckpointDamaged`, one line
that says how to restore it or how to pin a new one); the cache trains instead only when asked.
Checkpoints are written only on purpose, by :func:`save_checkpoint`.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from adv2.core.config import REPO_ROOT
from adv2.core.progress import terminal_note
from adv2.trained import checkpoint_pins
from adv2.trained.files import artifact_key, atomic_write_json, file_sha256, write_atomically

DEFAULT_ROOT = REPO_ROOT / "checkpoints"
MANIFEST = "manifest.json"


class CheckpointDamaged(Exception):
    """A committed checkpoint failed verification; the message says why."""


class DamagedCheckpointWarning(UserWarning):
    """A damaged committed checkpoint was ignored and the artifact is being trained."""


def checkpoint_root(root: str | os.PathLike | None = None) -> Path:
    """``root``, else ``$ADV2_CHECKPOINTS``, else ``checkpoints/`` at the repository root."""
    path = Path(root or os.environ.get("ADV2_CHECKPOINTS", DEFAULT_ROOT))
    return path if path.is_absolute() else REPO_ROOT / path


def checkpoint_name(kind: str, key: str) -> str:
    return f"{kind}-{key}.pt"


def display_path(path: Path) -> str:
    """``path`` relative to the repository root when it lies inside it (for status lines)."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT.resolve()))
    except ValueError:
        return str(path)


def read_manifest(root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The manifest (``{"format": 1, "checkpoints": {name: entry}}``); empty when absent."""
    path = checkpoint_root(root) / MANIFEST
    if not path.exists():
        return {"format": 1, "checkpoints": {}}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointDamaged(f"{path} is not valid JSON ({err})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("checkpoints"), dict):
        raise CheckpointDamaged(f"{path} has no 'checkpoints' object")
    return manifest


def find_checkpoint(kind: str, key: str, root: str | os.PathLike | None = None) -> Path | None:
    """The checkpoint file of ``(kind, key)`` if one is present (verified only when loaded)."""
    path = checkpoint_root(root) / checkpoint_name(kind, key)
    return path if path.is_file() else None


def load_checkpoint(
    kind: str, key: str, root: str | os.PathLike | None = None, pins: dict[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, Any], Path] | None:
    """``(state, metrics, path)`` of the checkpoint of ``(kind, key)``, None when there is none,
    or :class:`CheckpointDamaged` when its bytes differ from the sha256 pinned in ``pins``
    (default :data:`adv2.trained.checkpoint_pins.PINS`), it has no pin, or its content or manifest entry
    is wrong."""
    path = find_checkpoint(kind, key, root)
    if path is None:
        return None
    pins = checkpoint_pins.PINS if pins is None else pins
    pins_file = display_path(Path(checkpoint_pins.__file__))
    shown = display_path(path)
    pinned = pins.get(path.name)
    actual = file_sha256(path)
    if pinned is None:
        raise CheckpointDamaged(
            f"{shown} has no sha256 pinned in {pins_file}, so it cannot be trusted; if it is the file "
            f"you mean to commit, add the line `{checkpoint_pins.pin_line(path).strip()}` there "
            "(python -m adv2.trained.checkpoint_pins prints it)"
        )
    if actual != pinned:
        inside = not Path(shown).is_absolute()  # a path in the repository: git has the pinned file
        restore = (
            f"`git checkout -- {shown}`" if inside else f"a copy of the repository's checkpoints/{path.name}"
        )
        raise CheckpointDamaged(
            f"{shown} has sha256 {actual[:12]}..., but {pins_file} pins {pinned[:12]}... "
            f"(file altered or truncated): restore it with {restore}"
        )
    entry = read_manifest(root)["checkpoints"].get(path.name)
    if entry is None:
        raise CheckpointDamaged(f"{path.name} is not listed in {path.parent / MANIFEST}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is damaged
        raise CheckpointDamaged(f"{path.name} cannot be loaded ({type(err).__name__}: {err})") from None
    if not isinstance(blob, dict) or not {"state", "params", "metrics"} <= set(blob):
        raise CheckpointDamaged(f"{path.name} lacks state/params/metrics")
    if artifact_key(blob["params"]) != key:
        raise CheckpointDamaged(f"{path.name} holds the parameters of key {artifact_key(blob['params'])}")
    return blob["state"], blob["metrics"], path


def machine_description() -> str:
    """Where a training ran, for the closing note: CPU model, cores and threads used."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def save_checkpoint(
    kind: str,
    params: dict[str, Any],
    state: dict[str, Any],
    metrics: dict[str, Any],
    root: str | os.PathLike | None = None,
) -> Path:
    """Write ``<kind>-<key>.pt`` atomically and record it in the manifest; returns its path."""
    base = checkpoint_root(root)
    base.mkdir(parents=True, exist_ok=True)
    key = artifact_key(params)
    path = base / checkpoint_name(kind, key)
    write_atomically(
        path, lambda tmp: torch.save({"state": state, "params": params, "metrics": metrics}, tmp)
    )
    manifest = read_manifest(root)
    manifest["checkpoints"][path.name] = {
        "kind": kind,
        "key": key,
        "sha256": file_sha256(path),
        "bytes": path.stat().st_size,
        "params": params,
        "trained_seconds": metrics.get("seconds"),
        "machine": metrics.get("machine") or machine_description(),
        "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    manifest["checkpoints"] = dict(sorted(manifest["checkpoints"].items()))
    atomic_write_json(base / MANIFEST, manifest)
    terminal_note(
        f"wrote {display_path(path)}; it is used only once pinned: add the line "
        f"`{checkpoint_pins.pin_line(path).strip()}` to PINS in {display_path(Path(checkpoint_pins.__file__))}"
    )
    return path


__all__ = [
    "CheckpointDamaged",
    "DamagedCheckpointWarning",
    "checkpoint_name",
    "checkpoint_root",
    "display_path",
    "find_checkpoint",
    "load_checkpoint",
    "machine_description",
    "read_manifest",
    "save_checkpoint",
]
