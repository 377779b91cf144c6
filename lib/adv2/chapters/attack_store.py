"""The keyed store of chapter 3's adversarial inputs (issue 25): chapter 3 writes each
(setting, interpreter) attack it ran, chapter 9 (Defense 1) reads them instead of attacking again.

An entry lives in the artifact store (:func:`adv2.trained.artifacts.load_or_compute`, kind
``"attack"``) under a key that hashes everything the attack's result depends on: the setting, the
attacked interpreter, the classifier's and RTS's weights (:func:`adv2.trained.cached.weights_fingerprint`),
the ADV2 configuration, PGD's step count and schedule, the attacked images and their targets
(sha256 of their bytes), MASK's iterations and the seed. Its state holds the attacked images
(``x``, ``y``, ``target``), PGD's inputs (``x_pgd``), ADV2's (``x_adv``, ``success``,
``confidence``) and the attacked interpreter's benign, PGD and ADV2 maps. Writing never changes
what chapter 3 computes: chapter 3 only hands over what it measured.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Any

import torch

from adv2.core import attacks
from adv2.trained.artifacts import load_or_compute
from adv2.trained.cached import weights_fingerprint

KIND = "attack"
STORE_VERSION = 1  # bump when the state's layout or meaning changes


class _Absent(Exception):
    """Raised inside :func:`lookup`'s compute: the entry is not in the store."""


def images_digest(*tensors: torch.Tensor) -> str:
    """sha256 (first 16 hex digits) of the tensors' shapes, dtypes and bytes."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def fingerprint(module: torch.nn.Module | None) -> str:
    """The weights fingerprint of a classifier or an RTS network ("" for none)."""
    return "" if module is None else weights_fingerprint(module)


def attack_params(
    setting: str,
    interpreter: str,
    cfg: attacks.AttackConfig,
    *,
    classifier: str,
    rts: str,
    x: torch.Tensor,
    target: torch.Tensor,
    n_pgd: int,
    mask_iterations: int,
    seed: int,
) -> dict[str, Any]:
    """The key's parameters of one attack (``classifier``, ``rts``: :func:`fingerprint` s; ``rts``
    only counts for the RTS attack, ``mask_iterations`` only for MASK's)."""
    return {
        "kind": KIND,
        "version": STORE_VERSION,
        "setting": setting,
        "interpreter": interpreter,
        "config": {"type": type(cfg).__name__, **dataclasses.asdict(cfg)},
        "classifier": classifier,
        "rts": rts if interpreter == "rts" else "",
        "images": images_digest(x, target),
        "n_images": int(len(x)),
        "pgd_steps": int(n_pgd),
        "mask_iterations": int(mask_iterations) if interpreter == "mask" else 0,
        "seed": int(seed),
    }


def run_state(
    run: dict[str, Any], x: torch.Tensor, y: torch.Tensor, target: torch.Tensor, x_pgd: torch.Tensor
) -> dict[str, torch.Tensor]:
    """What an entry keeps of ``compare_pgd_adv2``'s dict for the attacked images ``x``."""
    adv, pgd = run["adv2"], run["pgd"]
    cpu = lambda t: t.detach().cpu().contiguous()  # noqa: E731 - one line per tensor below
    return {
        "x": cpu(x),
        "y": cpu(y),
        "target": cpu(target),
        "x_pgd": cpu(x_pgd),
        "x_adv": cpu(adv.x_adv),
        "success": cpu(adv.success).bool(),
        "confidence": cpu(adv.confidence).float(),
        "benign_maps": cpu(run["benign"]).float(),
        "pgd_maps": cpu(pgd.maps).float(),
        "adv2_maps": cpu(adv.maps).float(),
    }


def store(
    params: dict[str, Any],
    state: dict[str, torch.Tensor],
    seconds: float,
    root: str | os.PathLike | None = None,
) -> None:
    """Write one attack's entry (an existing entry under the same key is kept as it is)."""
    metrics = {"seconds": float(seconds), "success_rate": float(state["success"].float().mean())}
    load_or_compute(KIND, params, lambda: (state, metrics), root=root or None, check=_check)


def lookup(params: dict[str, Any], root: str | os.PathLike | None = None) -> tuple[dict, dict] | None:
    """``(state, metrics)`` of the entry of ``params``, or None when the store has none (a damaged
    entry is set aside by the store and reads as absent)."""

    def absent() -> tuple[dict, dict]:
        raise _Absent

    try:
        art = load_or_compute(KIND, params, absent, root=root or None, check=_check)
    except _Absent:
        return None
    return art.state, art.metrics


_FIELDS = (
    "x",
    "y",
    "target",
    "x_pgd",
    "x_adv",
    "success",
    "confidence",
    "benign_maps",
    "pgd_maps",
    "adv2_maps",
)


def _check(state: dict[str, Any]) -> None:
    missing = [k for k in _FIELDS if k not in state]
    if missing:
        raise ValueError(f"attack entry lacks {missing}")
    n = len(state["x"])
    wrong = [k for k in _FIELDS if len(state[k]) != n]
    if wrong:
        raise ValueError(f"attack entry: {wrong} do not describe the {n} attacked images")


__all__ = ["KIND", "attack_params", "fingerprint", "images_digest", "lookup", "run_state", "store"]
