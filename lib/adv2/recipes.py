"""One declared recipe per trained artifact: classifier → RTS → RTSA.

A recipe is everything that decides a trained artifact, and nothing else: its cache key is a hash
of the recipe alone, so an evaluation parameter (epsilon, n_images, the sampling seed, ...) can
never retrain a model. Each recipe holds the recipe of the artifact it builds on (an RTS recipe
holds its classifier recipe, an RTSA recipe its RTS recipe), and every chapter derives its recipes
from its parameters with :func:`recipes_for_chapter` (or :func:`classifier_recipe`,
:func:`rts_recipe`, :func:`rtsa_recipe`), so chapters 2-6 ask for "the classifier of recipe R"
instead of re-declaring its fields.

The keys are exactly those of the training functions that build the artifacts
(:func:`adv2.models.trained_small_cnn`, :func:`adv2.interpreters.rts.trained_rts`,
:func:`adv2.defenses.trained_rtsa`), so the existing cache is reused; the ``load_*`` functions
check that the key the training function used is the recipe's own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import nn

from .artifacts import Artifact, artifact_key
from .config import ParameterError
from .defenses import AID_RECIPE_VERSION, AIDConfig, InterpretedModel, trained_rtsa
from .interpreters.rts import RTS_RECIPE_VERSION, RTSNet, default_area_weight, trained_rts
from .models import RECIPE_VERSION as CLASSIFIER_RECIPE_VERSION
from .models import trained_small_cnn

# input size of the classifiers trained on each dataset (RTS's loss weights depend on it)
INPUT_SIZE = {"fashion-mnist": 28}

# chapter parameter -> recipe field (the schema's role "recipe" is exactly these names)
CLASSIFIER_PARAMETERS = {
    "dataset": "dataset",
    "train_epochs": "epochs",
    "train_subset": "train_subset",
    "train_seed": "train_seed",
}
RTS_PARAMETERS = {
    "rts_phase1_iterations": "phase1_iterations",
    "rts_phase2_iterations": "phase2_iterations",
    "rts_batch_size": "batch_size",
    "rts_lr": "lr",
}
RTSA_PARAMETERS = {
    "aid_iterations": "iterations",
    "aid_batch_size": "batch_size",
    "aid_attack_batch_size": "attack_batch_size",
    "aid_beta": "beta",
    "aid_distill_weight": "distill_weight",
    "aid_lr": "lr",
    "aid_stage1_steps": "stage1_steps",
    "aid_stage2_steps": "stage2_steps",
    "aid_pool_size": "pool_size",
    "aid_persistent": "persistent",
    "aid_train_encoder": "train_encoder",
    "rtsa_epsilon": "rtsa_epsilon",
    "rtsa_step_size": "rtsa_step_size",
}
RECIPE_PARAMETERS = frozenset(CLASSIFIER_PARAMETERS) | frozenset(RTS_PARAMETERS) | frozenset(RTSA_PARAMETERS)


# ----------------------------------------------------------------------------- recipes
@dataclass(frozen=True)
class ClassifierRecipe:
    """A small Fashion-MNIST CNN: architecture, data and training schedule."""

    arch: str
    dataset: str = "fashion-mnist"
    epochs: float = 1
    train_subset: int = 0
    train_seed: int = 0
    batch_size: int = 128
    lr: float = 5e-3
    weight_decay: float = 5e-4
    # content fingerprint of the training data (issue 11); in the key only when set, so keys of
    # recipes without one stay those of the existing cache
    data_fingerprint: str | None = None
    # side the images are bilinearly upsampled to before the classifier (chapter 7); in the key
    # only when it is not the dataset's own 28, so the 28-px keys stay those of the cache
    input_size: int = 28

    def cache_params(self) -> dict[str, Any]:
        """The parameter dict :func:`adv2.models.trained_small_cnn` hashes into its cache key."""
        params = {
            "kind": "classifier",
            "dataset": self.dataset,
            "arch": self.arch,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "train_subset": self.train_subset,
            "seed": self.train_seed,
            "recipe": CLASSIFIER_RECIPE_VERSION,
        }
        if self.input_size != INPUT_SIZE.get(self.dataset, 28):
            params["input_size"] = self.input_size
        if self.data_fingerprint is not None:
            params["data_fingerprint"] = self.data_fingerprint
        return params

    @property
    def key(self) -> str:
        return artifact_key(self.cache_params())


@dataclass(frozen=True)
class RTSRecipe:
    """RTS of one classifier. One rule everywhere: the selector (phase 1) trains with twice the
    decoder's batch and the same learning rate, as the authors' 128 / 64 at 1e-3."""

    classifier: ClassifierRecipe
    phase1_iterations: int = 100
    phase2_iterations: int = 150
    batch_size: int = 32
    lr: float = 0.01

    @property
    def phase1_batch_size(self) -> int:
        return 2 * int(self.batch_size)

    @property
    def phase1_lr(self) -> float:
        return float(self.lr)

    def trained_rts_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`adv2.interpreters.rts.trained_rts` (size-dependent loss
        weights left to its defaults, so the same arguments also fit a 224-pixel classifier)."""
        return {
            "phase1_iterations": int(self.phase1_iterations),
            "phase2_iterations": int(self.phase2_iterations),
            "phase1_batch_size": self.phase1_batch_size,
            "batch_size": int(self.batch_size),
            "phase1_lr": self.phase1_lr,
            "lr": float(self.lr),
            "seed": int(self.classifier.train_seed),
        }

    def cache_params(self) -> dict[str, Any]:
        """The parameter dict ``trained_rts`` hashes for this recipe's classifier (its defaults
        resolved at the dataset's input size, as ``trained_rts`` does)."""
        size = INPUT_SIZE.get(self.classifier.dataset)
        if size is None:
            raise ParameterError(
                f"no RTS recipe for dataset {self.classifier.dataset!r}; expected one of {sorted(INPUT_SIZE)}"
            )
        size = self.classifier.input_size  # an upsampled classifier's RTS works at its side
        recipe = {
            **self.trained_rts_kwargs(),
            "weight_decay": 1e-4,
            "area_weight": default_area_weight(size),
            "smooth_weight": 0.005 * 224 / size,
            "preserver_weight": 0.3,
            "map_size": None,
            "width": None,
        }
        return {
            "kind": "rts",
            "dataset": self.classifier.dataset,
            "arch": self.classifier.arch,
            "classifier": self.classifier.key,
            "recipe": RTS_RECIPE_VERSION,
            **recipe,
        }

    @property
    def key(self) -> str:
        return artifact_key(self.cache_params())


@dataclass(frozen=True)
class RTSARecipe:
    """RTSA = the RTS of ``rts`` fine-tuned by AID. ``rtsa_epsilon``/``rtsa_step_size`` are the
    budget of AID's inner ADV2 attack, distinct from any evaluation attack's epsilon."""

    rts: RTSRecipe
    iterations: int = 60
    batch_size: int = 32
    attack_batch_size: int = 16
    beta: float = 10.0
    distill_weight: float = 10.0
    lr: float = 1e-3
    stage1_steps: int = 20
    stage2_steps: int = 5
    pool_size: int = 256
    persistent: bool = True
    train_encoder: bool = False
    rtsa_epsilon: float = 0.1
    rtsa_step_size: float = 0.0125
    n_probe: int = 64  # test images on which training logs the benign drift (in the key today)

    def aid_config(self) -> AIDConfig:
        return AIDConfig(
            iterations=self.iterations,
            batch_size=self.batch_size,
            aid_batch_size=self.attack_batch_size,
            beta=self.beta,
            lr=self.lr,
            stage1_steps=self.stage1_steps,
            stage2_steps=self.stage2_steps,
            pool_size=self.pool_size,
            distill_weight=self.distill_weight,
            persistent=self.persistent,
            train_encoder=self.train_encoder,
            epsilon=self.rtsa_epsilon,
            step_size=self.rtsa_step_size,
            seed=self.rts.classifier.train_seed,
        )

    def cache_params(self) -> dict[str, Any]:
        """The parameter dict :func:`adv2.defenses.trained_rtsa` hashes into its cache key."""
        c = self.rts.classifier
        return {
            "kind": "rtsa",
            "dataset": c.dataset,
            "arch": c.arch,
            "rts": self.rts.key,
            "recipe": AID_RECIPE_VERSION,
            "n_probe": self.n_probe,
            **self.aid_config().as_dict(),
        }

    @property
    def key(self) -> str:
        return artifact_key(self.cache_params())


# ----------------------------------------------------------------------------- from parameters
def _fields(params: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """Recipe fields from a chapter's parameters; a recipe parameter the chapter does not set
    keeps the recipe's default (which is the schema's default)."""
    return {field: params[name] for name, field in mapping.items() if name in params}


def classifier_recipe(params: dict[str, Any], arch: str) -> ClassifierRecipe:
    return ClassifierRecipe(arch=arch, **_fields(params, CLASSIFIER_PARAMETERS))


def rts_recipe(params: dict[str, Any], arch: str) -> RTSRecipe:
    return RTSRecipe(classifier_recipe(params, arch), **_fields(params, RTS_PARAMETERS))


def rtsa_recipe(params: dict[str, Any], arch: str) -> RTSARecipe:
    return RTSARecipe(rts_recipe(params, arch), **_fields(params, RTSA_PARAMETERS))


def recipes_for_chapter(stem: str, params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The recipes chapter ``stem`` uses, by kind and architecture:
    ``{"classifier": {arch: ClassifierRecipe}, "rts": {...}, "rtsa": {...}}`` (a kind is present
    when the chapter has its parameters). ``params`` may be partial: the schema's defaults fill in.
    """
    from .schema import defaults

    full = {**defaults(stem), **params}
    kinds = {"classifier": classifier_recipe}
    if any(n in full for n in RTS_PARAMETERS):
        kinds["rts"] = rts_recipe
    if any(n in full for n in RTSA_PARAMETERS):
        kinds["rtsa"] = rtsa_recipe
    archs = full.get("archs") or []
    archs = [archs] if isinstance(archs, str) else list(archs)
    return {kind: {a: make(full, a) for a in archs} for kind, make in kinds.items()}


# ----------------------------------------------------------------------------- build or load
def _check_key(kind: str, recipe: Any, art: Artifact) -> None:
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


def with_data(recipe: Any, data: Any) -> Any:
    """``recipe`` (classifier, RTS or RTSA) with its classifier's ``data_fingerprint`` set to the
    content fingerprint of ``data``: the data actually read is part of every key built on it."""
    fingerprint = getattr(data, "fingerprint", "") or None
    if isinstance(recipe, RTSARecipe):
        return dataclasses.replace(recipe, rts=with_data(recipe.rts, data))
    if isinstance(recipe, RTSRecipe):
        return dataclasses.replace(recipe, classifier=with_data(recipe.classifier, data))
    if fingerprint is None or recipe.data_fingerprint is not None:
        return recipe
    return dataclasses.replace(recipe, data_fingerprint=fingerprint)


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
    _check_key("classifier", recipe, art)
    return model, art


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
    _check_key("classifier", recipe.classifier, classifier_artifact)
    net, art = trained_rts(
        model,
        data,
        classifier_key=classifier_artifact.path.name,
        device=device,
        artifacts_dir=artifacts_dir,
        progress=progress,
        **recipe.trained_rts_kwargs(),
    )
    _check_key("rts", recipe, art)
    return net, art


def load_interpreted(
    recipe: RTSARecipe,
    data: Any,
    *,
    device: Any = "cpu",
    artifacts_dir: str | None = None,
    progress: bool = True,
) -> InterpretedModel:
    """Classifier, RTS and RTSA of ``recipe`` (each from the cache, else trained and cached)."""
    recipe = with_data(recipe, data)
    c = recipe.rts.classifier
    model, clf_art = load_classifier(c, data, device=device, artifacts_dir=artifacts_dir, progress=progress)
    rts, rts_art = load_rts(
        recipe.rts, data, model, clf_art, device=device, artifacts_dir=artifacts_dir, progress=progress
    )
    rtsa, rtsa_art = trained_rtsa(
        model,
        rts,
        rts_art,
        data,
        recipe.aid_config(),
        n_probe=recipe.n_probe,
        device=device,
        artifacts_dir=artifacts_dir,
        progress=progress,
    )
    _check_key("rtsa", recipe, rtsa_art)
    return InterpretedModel(c.arch, model, clf_art, rts, rts_art, rtsa, rtsa_art)


__all__ = [
    "CLASSIFIER_PARAMETERS",
    "INPUT_SIZE",
    "RECIPE_PARAMETERS",
    "RTSA_PARAMETERS",
    "RTS_PARAMETERS",
    "ClassifierRecipe",
    "RTSARecipe",
    "RTSRecipe",
    "classifier_recipe",
    "load_classifier",
    "load_interpreted",
    "load_rts",
    "recipes_for_chapter",
    "rts_recipe",
    "rtsa_recipe",
    "with_data",
]
