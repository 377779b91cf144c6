"""The Fashion-MNIST classifiers and their RTS as the chapters load them: each from its recipe's
cache entry, else trained, the missing ones side by side (one core each on a CPU,
:mod:`adv2.core.parallel`), with one log line per model. Chapters 1 to 4 and 8 share these."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

from adv2.core.parallel import load_side_by_side
from adv2.trained import data, loading, recipes


def how_obtained(art: Any, seconds: float | None = None) -> str:
    """How a classifier came to be, for the log: trained here, or loaded from the cache with its
    weights re-measured against the accuracy they record (adv2.core.models.recheck_accuracy)."""
    if not art.from_cache:
        return "trained" if seconds is None else f"trained in {seconds:.0f} s"
    m = art.metrics
    if "recheck_accuracy" not in m:
        return "loaded from cache"
    return f"loaded from cache, re-measured {m['recheck_accuracy']:.4f} on the first {m['recheck_images']} test images"


# both loaders take the same run options (device, artifacts_dir, progress, log) in the same places:
# chapter 4 passes them positionally
def load_classifiers(
    params: dict[str, Any], fmnist: data.Dataset | None, archs: list[str],
    device: torch.device | str = "cpu", artifacts_dir: str = "", progress: bool = False, log=print,
) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """The Fashion-MNIST classifiers of the chapter's recipe (trained, or loaded from the cache):
    ``(classifiers, artifacts)`` by arch; both empty when ``fmnist`` is None (``dataset: imagenet``)."""
    archs = list(archs) if fmnist is not None else []
    # on a CPU the classifiers train side by side, one core each (adv2.core.parallel; issue 13)
    loaded = loading.load_classifiers_side_by_side(
        [recipes.classifier_recipe(params, arch) for arch in archs],
        fmnist,
        device=device,
        artifacts_dir=artifacts_dir,
        progress=progress,
    )
    classifiers, arts = {}, {}
    for arch, (model, art, seconds) in zip(archs, loaded):
        classifiers[arch], arts[arch] = model, art
        m = arts[arch].metrics
        how = how_obtained(arts[arch], seconds)
        log(f"{arch}: test accuracy {m['test_accuracy']:.4f} ({how}; {m['n_parameters']:,} parameters)")
    return classifiers, arts


def load_rts_nets(
    params: dict[str, Any], fmnist: data.Dataset, classifiers: dict[str, Any], arts: dict[str, Any],
    archs: list[str],
    device: torch.device | str = "cpu", artifacts_dir: str = "", progress: bool = False, log=print,
) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """The RTS of each classifier (its recipe's cache entry, else trained): ``(nets, artifacts)``
    by arch. On a CPU the missing ones train side by side, one core each (:mod:`adv2.core.parallel`)."""

    def loader(arch: str) -> Callable[[], tuple[Any, Any]]:
        return functools.partial(
            loading.load_rts, recipes.rts_recipe(params, arch), fmnist, classifiers[arch], arts[arch],
            device=device, artifacts_dir=artifacts_dir, progress=progress,
        )  # fmt: skip

    loaded = load_side_by_side([loader(a) for a in archs], device)
    nets, rts_arts = {}, {}
    for arch, (net, art, seconds) in zip(archs, loaded):
        nets[arch], rts_arts[arch] = net, art
        m = art.metrics
        how = "loaded from cache" if art.from_cache else f"trained in {seconds:.0f} s"

        def show(v: float | None) -> str:  # a phase with 0 iterations logs nothing
            return "n/a" if v is None else f"{v:.3f}"

        final = m["phase2_total"][-1] if m["phase2_total"] else None
        log(
            f"{arch}: RTS {how}; selector accuracy {show(m['phase1_final_accuracy'])}, final decoder loss {show(final)}"
        )
    return nets, rts_arts
