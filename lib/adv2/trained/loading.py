"""Load or train the book's Fashion-MNIST models by their recipes (:mod:`adv2.trained.recipes`):
the classifier, its RTS, its RTSA; each from the artifact cache, else trained and cached.

The training functions (:func:`adv2.core.models.trained_small_cnn`,
:func:`adv2.core.interpreters.rts.trained_rts`, :func:`adv2.core.defenses.trained_rtsa`) compute
their own cache keys; every loader checks that the key is the recipe's, so the recipe layer and the
cache can never disagree about what an artifact is.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from torch import nn

from adv2.core.config import ParameterError
from adv2.core.interpreters.rts import RTSNet
from adv2.core.parallel import load_side_by_side
from adv2.trained.artifacts import Artifact
from adv2.trained.cached import trained_rts, trained_rtsa, trained_small_cnn
from adv2.trained.recipes import ClassifierRecipe, RTSARecipe, RTSRecipe, with_data


def check_key(kind: str, recipe: Any, art: Artifact) -> None:
    # the training function computed its own key: it must be the recipe's, or the recipe layer
    # and the cache disagree about what an artifact is (fail loudly instead of mixing models)
    if art.path.name != recipe.key:
        raise RuntimeError(
            f"{kind} cache key {art.path.name} differs from its recipe's key "
            f"{recipe.key}: the recipe layer and the training function disagree "
            f"(recipe {recipe})"
        )


def _check_dataset(recipe: ClassifierRecipe, data: Any) -> None:
    if getattr(data, "name", None) != recipe.dataset:
        raise ParameterError(
            f"recipe for dataset {recipe.dataset!r} got data {getattr(data, 'name', None)!r}"
        )


def load_classifier(
    recipe: ClassifierRecipe,
    data: Any,
    *,
    device: Any = "cpu",
    artifacts_dir: str | None = None,
    progress: bool = True,
) -> tuple[nn.Module, Artifact]:
    """The classifier of ``recipe`` (from the cache, else trained and cached), frozen, on
    ``device``."""
    _check_dataset(recipe, data)
    recipe = with_data(recipe, data)
    model, art = trained_small_cnn(
        recipe.arch,
        data,
        epochs=recipe.epochs,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        weight_decay=recipe.weight_decay,
        train_subset=recipe.train_subset,
        seed=recipe.train_seed,
        device=device,
        artifacts_dir=artifacts_dir,
        progress=progress,
        input_size=recipe.input_size,
    )
    check_key("classifier", recipe, art)
    return model, art


def load_classifiers_side_by_side(
    recipes: Sequence[ClassifierRecipe],
    data: Any,
    *,
    device: Any = "cpu",
    artifacts_dir: str | None = None,
    progress: bool = True,
) -> list[tuple[nn.Module, Artifact, float]]:
    """:func:`load_classifier` of each recipe, with the seconds it took; on a CPU the ones not
    cached train side by side, one core each (:func:`adv2.core.parallel.load_side_by_side`)."""
    load = functools.partial(load_classifier, device=device, artifacts_dir=artifacts_dir, progress=progress)
    return load_side_by_side([functools.partial(load, recipe, data) for recipe in recipes], device)


def load_rts(
    recipe: RTSRecipe,
    data: Any,
    model: nn.Module | None = None,
    classifier_artifact: Artifact | None = None,
    *,
    device: Any = "cpu",
    artifacts_dir: str | None = None,
    progress: bool = True,
) -> tuple[RTSNet, Artifact]:
    """The RTS of ``recipe``; ``model``/``classifier_artifact`` are its classifier when already
    loaded (else it is loaded by its recipe)."""
    recipe = with_data(recipe, data)
    if model is None or classifier_artifact is None:
        model, classifier_artifact = load_classifier(
            recipe.classifier, data, device=device, artifacts_dir=artifacts_dir, progress=progress
        )
    check_key("classifier", recipe.classifier, classifier_artifact)
    net, art = trained_rts(
        model,
        data,
        classifier_key=classifier_artifact.path.name,
        device=device,
        artifacts_dir=artifacts_dir,
        progress=progress,
        **recipe.trained_rts_kwargs(),
    )
    check_key("rts", recipe, art)
    return net, art


def load_rtsa(
    recipe: RTSARecipe,
    data: Any,
    model: nn.Module,
    rts: RTSNet,
    rts_artifact: Artifact,
    *,
    device: Any = "cpu",
    artifacts_dir: str | None = None,
    progress: bool = True,
) -> tuple[RTSNet, Artifact]:
    """The RTSA of ``recipe`` for an already loaded classifier and RTS (cached, else trained)."""
    recipe = with_data(recipe, data)
    check_key("rts", recipe.rts, rts_artifact)
    net, art = trained_rtsa(
        model,
        rts,
        rts_artifact,
        data,
        recipe.aid_config(),
        n_probe=recipe.n_probe,
        device=device,
        artifacts_dir=artifacts_dir,
        progress=progress,
    )
    check_key("rtsa", recipe, art)
    return net, art
