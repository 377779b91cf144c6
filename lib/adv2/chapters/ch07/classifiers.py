"""Chapter 7's classifiers, one per input side (the library's recipe with ``input_size``), and the
attack set they share: the test images every side's classifier gets right."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from adv2.chapters.schema import train_seed_list
from adv2.core import models
from adv2.trained import data, loading, recipes


def classifier_recipes(params: Mapping[str, Any], arch: str) -> dict[int, recipes.ClassifierRecipe]:
    """The recipe of ``arch`` at every side of ``params["input_sizes"]``: the chapter's training
    fields (epochs, subset, seed), identical at every side but the side itself."""
    base = recipes.classifier_recipe(dict(params), arch)
    return {int(s): dataclasses.replace(base, input_size=int(s)) for s in params["input_sizes"]}


@dataclass
class Trained:
    """One classifier of one side: the model (inputs at its side) and its cache entry."""

    size: int
    model: nn.Module
    artifact: Any

    @property
    def accuracy(self) -> float:
        return float(self.artifact.metrics["test_accuracy"])

    @property
    def train_seconds(self) -> float:
        return float(self.artifact.metrics.get("train_seconds", float("nan")))


def train_classifiers(
    params: Mapping[str, Any],
    fmnist: data.Dataset,
    *,
    device: torch.device | str = "cpu",
    artifacts_dir: str | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = print,
) -> dict[str, dict[int, Trained]]:
    """``{arch: {side: Trained}}``, each from the cache or trained (and cached) by its recipe; on a
    CPU the trainings run side by side, one core each (:mod:`adv2.core.parallel`)."""
    keys = [
        (arch, size, r) for arch in params["archs"] for size, r in classifier_recipes(params, arch).items()
    ]
    loaded = loading.load_classifiers_side_by_side(
        [r for _, _, r in keys], fmnist, device=device, artifacts_dir=artifacts_dir or None, progress=progress
    )
    out: dict[str, dict[int, Trained]] = {arch: {} for arch in params["archs"]}
    for (arch, size, _), (model, art, seconds) in zip(keys, loaded):
        out[arch][size] = Trained(size, model, art)
        if log:
            how = "cache" if art.from_cache else "trained"
            log(f"{arch} at {size} px: test accuracy {out[arch][size].accuracy:.3f} ({how}, {seconds:.1f} s)")
    return out


def train_other_seeds(
    params: Mapping[str, Any],
    fmnist: data.Dataset,
    *,
    log: Callable[[str], None] | None = print,
    **kwargs: Any,
) -> dict[int, dict[str, dict[int, Trained]]]:
    """:func:`train_classifiers` (``kwargs``: its device, artifacts_dir, progress) for every
    training seed of ``params["train_seeds"]`` but ``params["train_seed"]`` (the same recipes with
    that ``train_seed``), by seed; empty with one seed (the default)."""
    out = {}
    for s in train_seed_list(params["train_seed"], params.get("train_seeds") or [])[1:]:
        if log:
            log(f"train_seed {s}:")
        out[s] = train_classifiers({**params, "train_seed": s}, fmnist, log=log, **kwargs)
    return out


# ----------------------------------------------------------------------------- the attack set
class _AllCorrect(nn.Module):
    """A stand-in classifier of 28-px images for :func:`adv2.trained.data.select_attack_set`: its
    prediction is the true class exactly when every side's classifier predicts it. It returns the
    first classifier's logits where all agree and a one-hot vector of another class elsewhere."""

    def __init__(self, models_by_size: Mapping[int, nn.Module]):
        super().__init__()
        self.fed = nn.ModuleList(models.Upsampled(m) for m in models_by_size.values())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = [f(x) for f in self.fed]
        first = logits[0].argmax(1)
        agree = torch.stack([lg.argmax(1) == first for lg in logits]).all(0)
        other = nn.functional.one_hot((first + 1) % logits[0].shape[1], logits[0].shape[1]).to(logits[0])
        return torch.where(agree[:, None], logits[0], other)


def common_attack_set(
    trained: Mapping[int, Trained],
    fmnist: data.Dataset,
    n_images: int,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    also_correct: Sequence[Mapping[int, Trained]] = (),
) -> data.AttackSet:
    """Chapter 3's seeded, class-balanced sample with random wrong targets, kept to the test
    images every side's classifier gets right: the same images and targets at every side (28 px;
    each side attacks them upsampled). ``also_correct``: the classifiers of further training
    seeds, by side, that must get them right too, so that every seed attacks the same images."""
    judge, *others = (
        _AllCorrect({s: t.model for s, t in by_side.items()}).to(device).eval()
        for by_side in (trained, *also_correct)
    )
    return data.select_attack_set(
        judge,
        fmnist.x_test,
        fmnist.y_test,
        n_images,
        seed=seed,
        num_classes=fmnist.num_classes,
        device=device,
        also_correct=others,
    )
