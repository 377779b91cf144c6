"""One declaration per trained artifact: classifier → RTS → RTSA (the photo RTS and RTSA:
:mod:`adv2.trained.photo_recipes`).

A recipe is everything that decides a trained artifact, and nothing else: its cache key hashes the recipe
alone, so an evaluation parameter can never retrain a model. An RTS recipe holds its classifier recipe, an
RTSA recipe its RTS recipe. Each field is declared once (:func:`declared`: default, rule, one-line doc, and
the chapter parameter that sets it); the chapter schema reads its recipe rows from here
(:func:`chapter_parameters`); :mod:`adv2.trained.loading` and :mod:`adv2.trained.photomodels` load or
train the artifacts. No torch here (the schema must import fast): core constants are imported where used.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, get_type_hints

from adv2.core import config
from adv2.core.config import ParameterError, Rule, number
from adv2.trained.files import artifact_key

INPUT_SIZE = {"fashion-mnist": 28}  # side of each dataset's images (RTS's loss weights depend on it)
# Bump one of these when the way that model is trained changes (a new cache key).
CLASSIFIER_RECIPE_VERSION = 1
RTS_RECIPE_VERSION = 1
AID_RECIPE_VERSION = 1


def declared(default: Any, rule: Rule, doc: str, parameter: str | None = None) -> Any:
    """A recipe field: default (``dataclasses.MISSING``: required), rule, one-line doc, and the
    chapter parameter that sets it (None: none)."""
    return dataclasses.field(default=default, metadata={"rule": rule, "doc": doc, "parameter": parameter})


def variant(recipe: type, name: str, default: Any) -> Any:
    """Field ``name`` of ``recipe`` with a variant's default (set by no chapter parameter)."""
    (base,) = [f.metadata for f in dataclasses.fields(recipe) if f.name == name]
    return declared(default, base["rule"], base["doc"])


def _count(lo: int = 0, hi: int = 10**7) -> Rule:
    return number(lo, hi, integer=True)


_FRACTION = number(0, 1, lo_open=True)
_WEIGHT = number(0, 10**4)
_SEED = _count(0, 2**31 - 1)
_ITERATIONS = _count(0, 10**6)
_STEPS = _count(0, 10**4)
_BATCH = _count(1, 10**4)
_BIG_BATCH = _count(1, 10**5)
_RECIPE = Rule(lambda v: hasattr(v, "key"), "a recipe")


def optional(rule: Rule) -> Rule:
    return Rule(lambda v: v is None or rule.check(v), f"None or {rule.describe}")


class _Checked:
    """Checks every declared field against its rule when a recipe is made."""

    doc_prefix: ClassVar[str] = ""  # before each field's doc in the chapter schema

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            rule, value = f.metadata.get("rule"), getattr(self, f.name)
            if rule is not None and not rule.check(value):
                raise ParameterError(f"{type(self).__name__} {f.name}={value!r}; expected {rule.describe}")

    @property
    def key(self) -> str:
        return artifact_key(self.cache_params())


# ----------------------------------------------------------------------------- Fashion-MNIST
@dataclass(frozen=True)
class ClassifierRecipe(_Checked):
    """A small Fashion-MNIST CNN: architecture, data and training schedule."""

    arch: str = declared(dataclasses.MISSING, config.choice(*config.ARCHS), "classifier architecture")
    dataset: str = declared(
        "fashion-mnist",
        config.choice("fashion-mnist"),
        "dataset the book trains on (fashion-mnist only)",
        "dataset",
    )
    train_seed: int = declared(
        0, _SEED, "recipe: seed of classifier, RTS and AID training (cache key)", "train_seed"
    )
    epochs: float = declared(
        1,
        number(0, 1000, lo_open=True),
        "classifier recipe: training epochs, fractions allowed (cache key)",
        "train_epochs",
    )
    train_subset: int = declared(
        0, _count(), "classifier recipe: first N training images, 0 for all 60000 (cache key)", "train_subset"
    )
    batch_size: int = declared(128, _BIG_BATCH, "images per SGD step")
    lr: float = declared(5e-3, _FRACTION, "learning rate")
    weight_decay: float = declared(5e-4, number(0, 1), "weight decay")
    # in the key only when set, so keys of recipes without one stay those of the existing cache
    data_fingerprint: str | None = declared(
        None, config.optional_text(), "content fingerprint of the training data"
    )
    # in the key only when not the dataset's own 28, so the 28-px keys stay those of the cache
    input_size: int = declared(28, config.INPUT_SIZE_RULE, "side the images are upsampled to (chapter 7)")

    def cache_params(self) -> dict[str, Any]:
        """The parameter dict the classifier's cache key hashes."""
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


@dataclass(frozen=True)
class RTSRecipe(_Checked):
    """RTS of one classifier. One rule everywhere: the selector (phase 1) trains with twice the
    decoder's batch and the same learning rate, as the authors' 128 / 64 at 1e-3."""

    doc_prefix: ClassVar[str] = "RTS recipe: "

    classifier: ClassifierRecipe | PretrainedClassifier = declared(
        dataclasses.MISSING, _RECIPE, "its classifier"
    )
    # duplicates (shape only): every recipe declares its fields alike (default, rule, doc, parameter;
    # listed in lib/adv2/README.md)
    phase1_iterations: int = declared(
        100, _ITERATIONS, "selector iterations (paper recipe 8500; cache key)", "rts_phase1_iterations"
    )
    phase2_iterations: int = declared(
        150, _ITERATIONS, "decoder iterations (paper recipe 3000; cache key)", "rts_phase2_iterations"
    )
    batch_size: int = declared(
        32, _BIG_BATCH, "decoder batch; the selector's is twice it (recipe 64; cache key)", "rts_batch_size"
    )
    lr: float = declared(
        0.01, _FRACTION, "Adam learning rate of both phases (recipe 0.001; cache key)", "rts_lr"
    )

    def train_rts_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`adv2.core.interpreters.rts_training.train_rts`, every loss
        weight resolved at the classifier's side: the key holds the values actually used."""
        from adv2.core.interpreters.rts_training import default_area_weight  # lazy: torch-free schema

        size = self.classifier.input_size
        return {
            "phase1_iterations": int(self.phase1_iterations),
            "phase2_iterations": int(self.phase2_iterations),
            "phase1_batch_size": 2 * int(self.batch_size),  # the one rule (class docstring)
            "batch_size": int(self.batch_size),
            "phase1_lr": float(self.lr),
            "lr": float(self.lr),
            "weight_decay": 1e-4,
            "area_weight": default_area_weight(size),
            "smooth_weight": 0.005 * 224 / size,
            "preserver_weight": 0.3,
            "map_size": None,
            "width": None,
            "seed": int(self.classifier.train_seed),
        }

    def cache_params(self) -> dict[str, Any]:
        """The parameter dict the RTS's cache key hashes."""
        return {
            "kind": "rts",
            "dataset": self.classifier.dataset,
            "arch": self.classifier.arch,
            "classifier": self.classifier.key,
            "recipe": RTS_RECIPE_VERSION,
            **self.train_rts_kwargs(),
        }


@dataclass(frozen=True)
class PretrainedClassifier(_Checked):
    """An RTS recipe's classifier that no recipe trained (chapter 2's EfficientNet-Lite0 on
    ImageNet images): known by its weights (:func:`adv2.trained.cached.weights_fingerprint`)."""

    arch: str = declared(dataclasses.MISSING, config.text(), "its name")
    dataset: str = declared(dataclasses.MISSING, config.text(), "the images its RTS trains on")
    fingerprint: str = declared(dataclasses.MISSING, config.text(), "fingerprint of its weights")
    input_size: int = declared(224, _count(1, 1024), "its image side")
    train_seed: int = declared(0, _SEED, "seed of its RTS's training")

    @property
    def key(self) -> str:
        return self.fingerprint  # what an RTS of it is keyed by


@dataclass(frozen=True)
class RTSARecipe(_Checked):
    """RTSA = the RTS of ``rts`` fine-tuned by AID. ``rtsa_epsilon``/``rtsa_step_size`` are the
    budget of AID's inner ADV2 attack, distinct from any evaluation attack's epsilon.

    The defaults are the book's RTSA (and the chapters'): RTSA trains its own encoder copy for 600
    iterations; the first version fine-tuned the decoder alone for 60 and could hardly move (AID
    audit, 2026-12-05). ``distill_weight`` is chapter 4's trade-off choice: the strongest anchor
    whose benign drift stays <= 0.05 on the selection images (:data:`adv2.core.defenses.SELECTION_START`)."""

    doc_prefix: ClassVar[str] = "RTSA recipe: "

    rts: Any = declared(dataclasses.MISSING, _RECIPE, "the RTS AID fine-tunes")
    iterations: int = declared(
        600, _ITERATIONS, "AID fine-tuning iterations, starting from the trained RTS", "aid_iterations"
    )
    batch_size: int = declared(
        32, _BATCH, "images per iteration for RTS's own decoder loss", "aid_map_batch_size"
    )
    attack_batch_size: int = declared(
        16, _BATCH, "images attacked (ADV2) per AID iteration", "aid_attack_batch_size"
    )
    beta: float = declared(
        10.0,
        number(0, 1000),
        "weight beta of l_aid, the negative L1 between benign and ADV2 maps",
        "aid_beta",
    )
    distill_weight: float = declared(
        100.0,
        _WEIGHT,
        "weight of the anchor L1(RTSA map, RTS map) on benign inputs (0: none)",
        "aid_distill_weight",
    )
    lr: float = declared(0.001, _FRACTION, "Adam learning rate of the fine-tuning", "aid_lr")
    stage1_steps: int = declared(
        20, _STEPS, "prediction-only PGD warm start of AID's inner attack", "aid_stage1_steps"
    )
    stage2_steps: int = declared(
        5, _STEPS, "joint ADV2 steps per visit of an image in AID's inner attack", "aid_stage2_steps"
    )
    pool_size: int = declared(
        256, _count(), "training images attacked during AID (warm starts computed once)", "aid_pool_size"
    )
    persistent: bool = declared(
        True,
        config.boolean(),
        "continue each pool image's attack from its last adversarial input",
        "aid_persistent",
    )
    train_encoder: bool = declared(
        True,
        config.boolean(),
        "RTSA trains its own encoder copy (False: the decoder alone, the first version)",
        "aid_train_encoder",
    )
    rtsa_epsilon: float = declared(
        0.1,
        _FRACTION,
        "L-inf budget of AID's inner ADV2 attack (not the evaluation's epsilon)",
        "rtsa_epsilon",
    )
    rtsa_step_size: float = declared(
        0.0125, _FRACTION, "sign-step size of AID's inner ADV2 attack", "rtsa_step_size"
    )
    n_probe: int = declared(64, _count(0, 10**5), "test images on which training logs the benign drift")

    def rts_loss_and_seed(self) -> dict[str, Any]:
        """AID's ``l_map`` weights (RTS's own size-dependent defaults) and seed (the training seed)."""
        return {"seed": self.rts.classifier.train_seed}

    def aid_config(self) -> Any:
        """AID's configuration (:class:`adv2.core.defenses.AIDConfig`)."""
        from adv2.core.defenses import AIDConfig  # lazy: recipes stay torch-free for the schema

        return AIDConfig(
            iterations=self.iterations,
            batch_size=self.batch_size,
            aid_batch_size=self.attack_batch_size,  # AIDConfig's name, hashed into the key
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
            **self.rts_loss_and_seed(),
        )

    def cache_params(self) -> dict[str, Any]:
        """The parameter dict the RTSA's cache key hashes."""
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

    def control(self) -> RTSARecipe:
        """The same training with the AID term off (beta = 0): what fine-tuning alone does."""
        return dataclasses.replace(self, beta=0.0)


# ----------------------------------------------------------------------------- from parameters
def _set_by_parameters(recipe: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(recipe) if f.metadata.get("parameter")]


def chapter_parameters(recipe: type) -> list[tuple[str, type, Any, Rule, str]]:
    """``(parameter, type, default, rule, doc)`` of each field of ``recipe`` that a chapter
    parameter sets, in field order: the chapter schema's rows of that recipe."""
    types, prefix = get_type_hints(recipe), recipe.doc_prefix
    rows = [(f.metadata, types[f.name], f.default) for f in _set_by_parameters(recipe)]
    return [(m["parameter"], t, default, m["rule"], prefix + m["doc"]) for m, t, default in rows]


def _parameter_fields(recipe: type) -> dict[str, str]:
    return {f.metadata["parameter"]: f.name for f in _set_by_parameters(recipe)}


# chapter parameter -> recipe field (the schema's role "recipe" is exactly these names)
CLASSIFIER_PARAMETERS = _parameter_fields(ClassifierRecipe)
RTS_PARAMETERS = _parameter_fields(RTSRecipe)
RTSA_PARAMETERS = _parameter_fields(RTSARecipe)
RECIPE_PARAMETERS = frozenset(CLASSIFIER_PARAMETERS) | frozenset(RTS_PARAMETERS) | frozenset(RTSA_PARAMETERS)


def _fields(params: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """Recipe fields from a chapter's parameters (one it does not set keeps the recipe's default)."""
    return {field: params[name] for name, field in mapping.items() if name in params}


def classifier_recipe(params: dict[str, Any], arch: str) -> ClassifierRecipe:
    return ClassifierRecipe(arch=arch, **_fields(params, CLASSIFIER_PARAMETERS))


def rts_recipe(params: dict[str, Any], arch: str) -> RTSRecipe:
    return RTSRecipe(classifier_recipe(params, arch), **_fields(params, RTS_PARAMETERS))


def rtsa_recipe(params: dict[str, Any], arch: str) -> RTSARecipe:
    return RTSARecipe(rts_recipe(params, arch), **_fields(params, RTSA_PARAMETERS))


def with_data(recipe: Any, data: Any) -> Any:
    """``recipe`` (classifier, RTS or RTSA) with its classifier's ``data_fingerprint`` set to the
    content fingerprint of ``data``: the data actually read is part of every key built on it."""
    fingerprint = getattr(data, "fingerprint", "") or None
    if isinstance(recipe, RTSARecipe):
        return dataclasses.replace(recipe, rts=with_data(recipe.rts, data))
    if isinstance(recipe, RTSRecipe):
        return dataclasses.replace(recipe, classifier=with_data(recipe.classifier, data))
    if isinstance(recipe, PretrainedClassifier):  # known by its weights
        return recipe
    if fingerprint is None or recipe.data_fingerprint is not None:
        return recipe
    return dataclasses.replace(recipe, data_fingerprint=fingerprint)
