"""Chapter 9's adversarial inputs: chapter 3's PGD and ADV2-against-each-interpreter inputs of one
setting, read from the store of :mod:`adv2.chapters.attack_store` (written by chapter 3's attack
code); those absent are attacked by a function the notebook hands over (chapter 3's own attack,
which writes them) and then read back, so chapter 9 always analyses exactly what chapter 3 measured.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from adv2.chapters import attack_store
from adv2.core import attacks, metrics
from adv2.core.phrases import INTERPRETER_LABELS

REUSED = "chapter 3's cached attack"
COMPUTED = "attacked here by chapter 3's code (not cached yet)"


@dataclass
class Sources:
    """One setting's attacked images and their adversarial versions.

    ``x``, ``y``, ``target``: the attacked images (correctly classified, seeded targets), ``index``
    their positions in the data set; ``x_pgd`` PGD's inputs; ``x_adv[S]``, ``success[S]``: ADV2
    against interpreter ``S`` (success as chapter 3 counts it); ``origin[S]`` whether the inputs
    came from chapter 3's cache; ``seconds[S]`` chapter 3's time for that attack."""

    setting: str
    x: torch.Tensor
    y: torch.Tensor
    target: torch.Tensor
    index: torch.Tensor
    x_pgd: torch.Tensor
    x_adv: dict[str, torch.Tensor]
    success: dict[str, torch.Tensor]
    origin: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    attack_seconds: float = 0.0  # time spent here attacking what the cache lacked
    stored_l1: dict[str, float] = field(default_factory=dict)  # chapter 3's diagonal: its own maps

    @property
    def names(self) -> list[str]:
        return list(self.x_adv)

    @property
    def n(self) -> int:
        return len(self.x)

    def reused_text(self) -> str:
        """One sentence: which inputs came from chapter 3's cache."""
        cached = [INTERPRETER_LABELS.get(n, n.upper()) for n, o in self.origin.items() if o == REUSED]
        fresh = [INTERPRETER_LABELS.get(n, n.upper()) for n, o in self.origin.items() if o != REUSED]
        parts = []
        if cached:
            parts.append(f"ADV2 against {', '.join(cached)} and PGD read from chapter 3's cache")
        if fresh:
            parts.append(
                f"ADV2 against {', '.join(fresh)} attacked here by chapter 3's code "
                f"({self.attack_seconds:.0f} s; now cached)"
            )
        return "; ".join(parts) or "none"


def keys(
    setting: str,
    cfgs: Mapping[str, attacks.AttackConfig],
    *,
    model: torch.nn.Module,
    rts_net: torch.nn.Module | None,
    x: torch.Tensor,
    target: torch.Tensor,
    n_pgd: int,
    mask_iterations: int,
    seed: int,
    mask_n_images: int | None = None,
) -> dict[str, dict[str, Any]]:
    """The store's key parameters of each attack of ``cfgs``, as chapter 3 writes them (MASK on the
    first ``mask_n_images`` images when given, as chapter 3 on Fashion-MNIST)."""
    fp = {"classifier": attack_store.fingerprint(model), "rts": attack_store.fingerprint(rts_net)}
    out = {}
    for name, cfg in cfgs.items():
        k = len(x) if name != "mask" or mask_n_images is None else min(mask_n_images, len(x))
        out[name] = attack_store.attack_params(
            setting, name, cfg, **fp, x=x[:k], target=target[:k], n_pgd=n_pgd,
            mask_iterations=mask_iterations, seed=seed,
        )  # fmt: skip
    return out


def read(
    params: Mapping[str, dict[str, Any]], root: str | os.PathLike | None = None
) -> tuple[dict[str, tuple[dict, dict]], list[str]]:
    """``(found, missing)``: the stored entries by interpreter, and the interpreters without one."""
    found, missing = {}, []
    for name, p in params.items():
        entry = attack_store.lookup(p, root)
        if entry is None:
            missing.append(name)
        else:
            found[name] = entry
    return found, missing


def gather(
    setting: str,
    params: Mapping[str, dict[str, Any]],
    index: torch.Tensor,
    attack_missing: Callable[[list[str]], Any],
    root: str | os.PathLike | None = None,
) -> Sources:
    """Chapter 3's inputs of every attack of ``params``: read from the store; the missing ones are
    attacked with ``attack_missing(names)`` (chapter 3's attack, which writes them) and read back."""
    found, missing = read(params, root)
    spent = 0.0
    if missing:
        t0 = time.time()
        attack_missing(list(missing))
        spent = time.time() - t0
        again, still = read({n: params[n] for n in missing}, root)
        if still:
            raise RuntimeError(
                f"chapter 3's attack did not store {still} under the keys chapter 9 reads: the "
                "two chapters' attack parameters differ (compare them with `python -m adv2 list`)"
            )
        found.update(again)
    origin = {n: (COMPUTED if n in missing else REUSED) for n in params}
    return from_entries(setting, {n: found[n] for n in params}, index, origin, spent)


def from_entries(
    setting: str,
    entries: Mapping[str, tuple[dict, dict]],
    index: torch.Tensor,
    origin: Mapping[str, str] | None = None,
    attack_seconds: float = 0.0,
) -> Sources:
    """:class:`Sources` from the store's entries (one per interpreter), cut to the images every
    attack ran on (chapter 3 attacks MASK on the first ``mask_n_images`` on Fashion-MNIST)."""
    if not entries:
        raise ValueError("no attack to gather: name at least one interpreter")
    n = min(len(s["x"]) for s, _ in entries.values())
    first = next(iter(entries.values()))[0]
    for name, (s, _) in entries.items():
        if not torch.equal(s["x"][:n], first["x"][:n]) or not torch.equal(
            s["target"][:n], first["target"][:n]
        ):
            raise ValueError(f"the stored attack on {name} attacked other images than the rest")
    return Sources(
        setting,
        first["x"][:n],
        first["y"][:n],
        first["target"][:n],
        index[:n],
        first["x_pgd"][:n],
        {name: s["x_adv"][:n] for name, (s, _) in entries.items()},
        {name: s["success"][:n].bool() for name, (s, _) in entries.items()},
        dict(origin or {}),
        {name: float(m.get("seconds", float("nan"))) for name, (_, m) in entries.items()},
        attack_seconds,
        {name: _stored_l1(s, n) for name, (s, _) in entries.items()},
    )


def _stored_l1(state: dict, n: int) -> float:
    """Chapter 3's mean L1 of ADV2's maps to the benign maps over its successes (first ``n`` images)."""
    ok = state["success"][:n].bool()
    if not ok.any():
        return float("nan")
    return float(metrics.l1_distance(state["adv2_maps"][:n][ok], state["benign_maps"][:n][ok]).mean())


__all__ = ["COMPUTED", "REUSED", "Sources", "from_entries", "gather", "keys", "read"]
