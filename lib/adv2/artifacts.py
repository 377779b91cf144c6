"""Load-if-present-else-compute cache for expensive artifacts (trained classifiers, RTS, RTSA).

An artifact lives in ``<root>/<kind>/<key>/`` where ``key`` is a hash of every parameter that
determines it (data, architecture, recipe, seed, recipe version). Beside the weights sit
``params.json`` (what it was computed from) and ``metrics.json`` (what the computation measured).

Writes are atomic: everything goes to a temporary folder that is renamed into place only when
complete, so a run killed half-way leaves nothing that a later run would trust.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .config import REPO_ROOT

DEFAULT_ROOT = REPO_ROOT / "artifacts"
WEIGHTS = "weights.pt"


def artifact_key(params: dict[str, Any]) -> str:
    """Stable short hash of a JSON-serialisable parameter dict (order of keys does not matter)."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class Artifact:
    state: dict[str, Any]       # what the computation returned to be saved (e.g. a state_dict)
    metrics: dict[str, Any]     # numbers measured while computing it (accuracy, curves, time)
    params: dict[str, Any]
    path: Path
    from_cache: bool


def artifact_root(root: str | os.PathLike | None = None) -> Path:
    """``root``, else ``$ADV2_ARTIFACTS``, else ``artifacts/``; relative paths are taken from the
    repository root, so notebooks find the same cache whatever their working directory."""
    path = Path(root or os.environ.get("ADV2_ARTIFACTS", DEFAULT_ROOT))
    return path if path.is_absolute() else REPO_ROOT / path


def load_or_compute(kind: str, params: dict[str, Any],
                    compute: Callable[[], tuple[dict[str, Any], dict[str, Any]]],
                    root: str | os.PathLike | None = None, force: bool = False) -> Artifact:
    """Return the cached artifact for ``params`` or call ``compute()`` and cache its result.

    ``compute`` returns ``(state, metrics)``; ``state`` is saved with ``torch.save`` and must load
    with ``weights_only=True`` (tensors, numbers, strings, lists, dicts).
    """
    folder = artifact_root(root) / kind / artifact_key(params)
    if not force and (folder / "metrics.json").is_file() and (folder / WEIGHTS).is_file():
        state = torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True)
        metrics = json.loads((folder / "metrics.json").read_text())
        return Artifact(state, metrics, params, folder, from_cache=True)

    state, metrics = compute()
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
    try:
        torch.save(state, tmp / WEIGHTS)
        (tmp / "params.json").write_text(json.dumps(params, indent=2, sort_keys=True, default=str))
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True, default=str))
        if folder.exists():  # a forced recompute replaces the old one
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return Artifact(state, metrics, params, folder, from_cache=False)
