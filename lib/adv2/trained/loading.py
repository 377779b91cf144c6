"""Load or train the book's models by their recipes (:mod:`adv2.trained.recipes`): the
classifier, its RTS, its RTSA; each from the artifact cache, else trained by :mod:`adv2.core` and
cached. The recipe is the only source of a cache key: a loader hashes ``recipe.cache_params()``
and trains with the recipe's own fields, so what is cached is what the key says."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from adv2.core.classifier import freeze
from adv2.core.config import FASHION_MNIST_SIZE, ParameterError
from adv2.core.defenses import train_rtsa
from adv2.core.interpreters.rts import RTSNet, frozen_rts_from_state, stored_state
from adv2.core.interpreters.rts_training import train_rts
from adv2.core.models import Upsampled, build_small_cnn, contiguous, evaluate, train_classifier
from adv2.core.parallel import INIT_LOCK, load_side_by_side, one_cpu_thread, seeded
from adv2.trained.artifacts import Artifact, load_or_compute
from adv2.trained.cached import recheck_accuracy, recheck_images
from adv2.trained.recipes import ClassifierRecipe, RTSARecipe, RTSRecipe, with_data


def _check_dataset(classifier: Any, data: Any) -> None:
    if getattr(data, "name", None) != classifier.dataset:
        raise ParameterError(
            f"recipe for dataset {classifier.dataset!r} got data {getattr(data, 'name', None)!r}"
        )


def _check_loaded(art: Artifact, recipe: Any, what: str) -> None:
    # a model the caller loaded must be the one this recipe builds on: another one's weights
    # would be cached under this recipe's key
    if art.path.name != recipe.key:
        raise RuntimeError(f"{what} artifact {art.path.name} differs from its recipe's key {recipe.key}")


# ----------------------------------------------------------------------------- classifier
def load_classifier(
    recipe: ClassifierRecipe,
    data: Any,
    *,
    device: Any = "cpu",
    artifacts_dir: str | None = None,
    progress: bool = True,
) -> tuple[nn.Module, Artifact]:
    """The classifier of ``recipe`` (from the cache, else trained and cached), frozen, on ``device``.

    ``data`` is a :class:`adv2.trained.data.Dataset`. Test accuracy is measured on the full held-out
    test split when trained; loaded from the cache, the weights are re-measured on the first
    :func:`adv2.trained.cached.recheck_images` test images against what their metrics.json records
    (:func:`adv2.trained.cached.recheck_accuracy`; the numbers land in the artifact's
    ``metrics["recheck_accuracy"]``), and trained again when they disagree. ``input_size`` above
    28: a classifier of the images bilinearly upsampled to that side, batch by batch."""
    _check_dataset(recipe, data)
    recipe = with_data(recipe, data)
    device = torch.device(device)
    size = recipe.input_size

    def build() -> nn.Module:
        # every build draws its init from the global generator: under INIT_LOCK, or a cached load
        # beside a training job could draw between that job's seeding and its init (once in four
        # cold runs, chapter 7's 56-px classifier trained to other weights)
        with INIT_LOCK:
            return build_small_cnn(recipe.arch, data.num_classes, data.class_names, size)

    def fed_by_28px(model: nn.Module) -> nn.Module:  # at 28 px the model itself, else it upsamples
        return model if size == FASHION_MNIST_SIZE else Upsampled(model)

    def compute() -> tuple[dict, dict]:
        with seeded(recipe.train_seed):  # the global generator initialises the weights
            model = build()
        fed = fed_by_28px(model)
        x_tr, y_tr = data.x_train, data.y_train
        if recipe.train_subset:
            x_tr, y_tr = x_tr[: recipe.train_subset], y_tr[: recipe.train_subset]
        # a fixed slice of the test split tracks progress (and re-checks a cached copy: verify
        # below); the score is on all of it
        n_val = recheck_images(size)
        metrics = train_classifier(
            fed,
            x_tr,
            y_tr,
            data.x_test[:n_val],
            data.y_test[:n_val],
            epochs=recipe.epochs,
            batch_size=recipe.batch_size,
            lr=recipe.lr,
            weight_decay=recipe.weight_decay,
            seed=recipe.train_seed,
            device=device,
            progress=progress,
        )
        metrics["test_accuracy"] = evaluate(fed, data.x_test, data.y_test, device=device)
        metrics["n_parameters"] = sum(p.numel() for p in model.parameters())
        contiguous(model)  # cached weights in the default memory order
        return {k: v.cpu() for k, v in model.state_dict().items()}, metrics

    def check(state: dict) -> None:  # weights of another architecture: a damaged cache entry
        build().load_state_dict(state)

    def verify(state: dict, metrics: dict) -> dict:
        # weights that are not those metrics.json measured (replaced with their checksum, or an
        # entry without one): quarantined and trained again (issue 24)
        model = build()
        model.load_state_dict(state)
        return recheck_accuracy(fed_by_28px(model).to(device), data, metrics, recheck_images(size), device)

    params = recipe.cache_params()
    art = load_or_compute("classifier", params, compute, root=artifacts_dir, check=check, verify=verify)
    model = build()
    model.load_state_dict(art.state)
    return freeze(model.to(device)), art


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


# ----------------------------------------------------------------------------- RTS
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
    """The RTS of ``recipe`` trained on ``data.x_train``/``y_train`` (from the cache, else trained
    and cached), frozen, on ``device``. ``model``/``classifier_artifact`` are its classifier when
    already loaded (else it is loaded by its recipe; a :class:`adv2.trained.recipes.PretrainedClassifier`
    is passed as ``model`` alone). The cache holds the selector and decoder (the encoder is the
    classifier's copy, as the authors' checkpoints exclude it); ``metrics`` = training curves."""
    _check_dataset(recipe.classifier, data)
    recipe = with_data(recipe, data)
    if model is None:
        model, classifier_artifact = load_classifier(
            recipe.classifier, data, device=device, artifacts_dir=artifacts_dir, progress=progress
        )
    if classifier_artifact is not None:
        _check_loaded(classifier_artifact, recipe.classifier, "classifier")
    device = torch.device(device)
    training = recipe.train_rts_kwargs()

    def compute() -> tuple[dict, dict]:
        net, metrics = train_rts(
            model, data.x_train, data.y_train, device=device, progress=progress, **training
        )
        return stored_state(net), metrics

    shape = {"map_size": training["map_size"], "width": training["width"]}

    def check(state: dict) -> None:  # a state that does not fit this classifier: damaged entry
        frozen_rts_from_state(model, state, device="cpu", source="cached RTS", **shape)

    art = load_or_compute("rts", recipe.cache_params(), compute, root=artifacts_dir, check=check)
    net = frozen_rts_from_state(model, art.state, device=device, source=f"cached RTS at {art.path}", **shape)
    return net, art


# ----------------------------------------------------------------------------- RTSA
@one_cpu_thread
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
    """The RTSA of ``recipe`` for an already loaded classifier and RTS (from the cache, else trained
    and cached), frozen, on ``device``. The state holds the selector and decoder (and the encoder
    when ``train_encoder``; otherwise it is the classifier's copy). Training uses ``data.x_train``;
    the benign-drift probe the first ``n_probe`` test images. ``metrics`` = curves and cost; it
    also records the RTS's own training seconds as ``rts_seconds`` for the cost comparison."""
    _check_dataset(recipe.rts.classifier, data)
    recipe = with_data(recipe, data)
    _check_loaded(rts_artifact, recipe.rts, "RTS")
    device = torch.device(device)
    cfg, n_probe = recipe.aid_config(), recipe.n_probe

    def compute() -> tuple[dict, dict]:
        xp = data.x_test[:n_probe] if n_probe else None
        yp = data.y_test[:n_probe] if n_probe else None
        net, metrics = train_rtsa(
            model,
            rts,
            data.x_train,
            data.y_train,
            cfg,
            x_probe=xp,
            y_probe=yp,
            device=device,
            progress=progress,
        )
        metrics["rts_seconds"] = rts_artifact.metrics.get("seconds")
        return stored_state(net, with_encoder=cfg.train_encoder), metrics

    shape = {"map_size": rts.map_size, "width": rts.width}  # RTSA is RTS's architecture

    def check(state: dict) -> None:  # a state that does not fit this classifier: damaged entry
        frozen_rts_from_state(model, state, device="cpu", source="cached RTSA", **shape)

    art = load_or_compute("rtsa", recipe.cache_params(), compute, root=artifacts_dir, check=check)
    net = frozen_rts_from_state(model, art.state, device=device, source=f"cached RTSA at {art.path}", **shape)
    return net, art
