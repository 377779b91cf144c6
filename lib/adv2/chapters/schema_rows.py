"""The building blocks of the chapters' parameter tables: :class:`Param` (name, type, default,
rule, one-line doc, role), the rules parameters share, and the parameter groups several chapters
use (the classifier, RTS and AID recipes; profile, device, seed, output folders).

Roles: ``recipe`` parameters decide a trained artifact (classifier, RTS, RTSA) and so its cache
key (:mod:`adv2.trained.recipes` turns them into recipes); ``evaluation`` parameters decide what is
measured with those artifacts; ``output`` parameters decide where and how results are shown.
Chapters share these definitions, so one parameter means the same thing, with the same default
and rule, in every chapter that has it. No torch here (see :mod:`adv2.chapters.schema`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from adv2.core.config import (
    ARCHS,
    DEVICES,
    PHOTO_CLASSIFIER,
    PHOTO_CLASSIFIERS,
    PROFILES,
    Rule,
    boolean,
    choice,
    number,
    optional_text,
    subset_of,
    text,
)
from adv2.trained.recipes import ClassifierRecipe, RTSARecipe, RTSRecipe, chapter_parameters

ROLES = ("recipe", "evaluation", "output")
FASHION_MNIST_TEST_IMAGES = 10_000  # the test split every evaluation image is drawn from


@dataclass(frozen=True)
class Param:
    """One notebook parameter. ``type`` is the annotation in the parameter cell (int, float, str,
    bool, list); ``default`` is the cell's value (the ``quick`` profile's, unless it sets it)."""

    name: str
    type: type
    default: Any
    rule: Rule
    doc: str
    role: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"Param {self.name}: role {self.role!r} is not one of {ROLES}")


def param(name: str, type_: type, default: Any, rule: Rule, doc: str, role: str) -> Param:
    return Param(name, type_, default, rule, doc, role)


def variant(p: Param, **changes: Any) -> Param:
    """A shared parameter with a chapter-specific default or doc."""
    return dataclasses.replace(p, **changes)


def count_rule(lo: int = 1, hi: int = 10**7) -> Rule:
    return number(lo, hi, integer=True)


def fraction_rule() -> Rule:
    return number(0, 1, lo_open=True)


# an image count drawn from Fashion-MNIST's test split: say why the bound is what it is
TEST_IMAGES = Rule(
    number(1, FASHION_MNIST_TEST_IMAGES, integer=True).check,
    f"an integer >= 1 and <= {FASHION_MNIST_TEST_IMAGES} (the Fashion-MNIST test "
    f"split has {FASHION_MNIST_TEST_IMAGES} images)",
)
RATES = Rule(
    lambda v: (
        isinstance(v, list)
        and len(v) > 0
        and all(isinstance(r, (int, float)) and not isinstance(r, bool) and 0 <= r < 1 for r in v)
    ),
    "a non-empty list of rates in [0, 1)",
)

COUNTS = Rule(
    lambda v: (
        isinstance(v, list) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in v)
    ),
    "a list of integers >= 1 (may be empty)",
)

FRACTIONS = Rule(
    lambda v: (
        isinstance(v, list)
        and len(v) > 0
        and all(isinstance(r, (int, float)) and not isinstance(r, bool) and 0 < r <= 1 for r in v)
        and len(set(v)) == len(v)
    ),
    "a non-empty list of distinct numbers in (0, 1]",
)
SEEDS = Rule(
    lambda v: (
        isinstance(v, list)
        and len(v) > 0
        and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**31 for s in v)
        and len(set(v)) == len(v)
    ),
    "a non-empty list of distinct integers >= 0",
)
# train_seeds (chapters 3-7): [] is train_seed alone
TRAIN_SEEDS = Rule(lambda v: v == [] or SEEDS.check(v), "[] or a list of distinct integers >= 0")

# ----------------------------------------------------------------------------- shared groups
PROFILE = param(
    "profile",
    str,
    "quick",
    choice(*PROFILES),
    "profile name recorded with the results (smoke, quick, paper)",
    "output",
)
ARCHS_P = param(
    "archs",
    list,
    ["resnet", "densenet"],
    subset_of(*ARCHS),
    "Fashion-MNIST classifiers (resnet, densenet)",
    "evaluation",
)
DEVICE = param(
    "device", str, "auto", choice(*DEVICES), "auto (CUDA when available), cpu or cuda", "evaluation"
)
SEED = param(
    "seed",
    int,
    0,
    number(0, 2**31 - 1, integer=True),
    "seed for sampling images, targets and noise (not training: see train_seed)",
    "evaluation",
)
RESULTS_DIR = param("results_dir", str, "results", text(), "where results/{stem}.json is written", "output")
# '' (the default) lets adv2.trained.artifacts choose: $ADV2_ARTIFACTS when set, else artifacts/
ARTIFACTS_DIR = param(
    "artifacts_dir",
    str,
    "",
    Rule(lambda v: isinstance(v, str), "a string"),
    "cache of trained models (empty: $ADV2_ARTIFACTS, else artifacts/)",
    "output",
)


# the recipe parameters as the recipes declare them (adv2.trained.recipes: default, rule, doc)
def _recipe_rows(recipe: type) -> list[Param]:
    return [param(*row, "recipe") for row in chapter_parameters(recipe)]


CLASSIFIER_RECIPE = _recipe_rows(ClassifierRecipe)
DATASET = CLASSIFIER_RECIPE[0]
RTS_RECIPE = _recipe_rows(RTSRecipe)
AID_RECIPE = _recipe_rows(RTSARecipe)
EPSILON = param(
    "epsilon",
    float,
    0.1,
    fraction_rule(),
    "L-inf budget of the evaluated attacks (the paper's 0.031 is ImageNet's; see text)",
    "evaluation",
)
STEP_SIZE = param(
    "step_size",
    float,
    0.0125,
    fraction_rule(),
    "sign-step size of the evaluated attacks (the paper's alpha/epsilon, 1/255 : 0.031)",
    "evaluation",
)

SCHEDULE = param(
    "schedule",
    str,
    "authors",
    choice("authors", "fast"),
    "attack step schedule: authors (constant sign steps; the paper's) or fast (decaying steps, "
    "per-image early stopping; the same step budget)",
    "evaluation",
)


def evaluation(name: str, type_: type, default: Any, rule: Rule, doc: str) -> Param:
    return param(name, type_, default, rule, doc, "evaluation")


def output(name: str, type_: type, default: Any, rule: Rule, doc: str) -> Param:
    return param(name, type_, default, rule, doc, "output")


AID_CHAPTER_HEAD = [
    PROFILE,
    variant(DATASET, doc="dataset (RTS and RTSA are trained by the book: fashion-mnist only)"),
    ARCHS_P,
    DEVICE,
    SEED,
    *CLASSIFIER_RECIPE[1:],
    *RTS_RECIPE,
    *AID_RECIPE,
]
# chapters 3-7 (issue 27): not a cache key itself, each seed is the chapter's recipes with that
# train_seed; [] is train_seed alone
TRAIN_SEEDS_P = evaluation(
    "train_seeds",
    list,
    [],
    TRAIN_SEEDS,
    "training seeds whose classifiers and RTS are all attacked; intervals then cover them ([]: train_seed alone)",
)
IMAGENET_DIR = evaluation(
    "imagenet_dir",
    str,
    None,
    optional_text(),
    "an ImageNet validation folder (<wnid>/<image>.JPEG) for the paper's setting",
)

# the photo setting of chapters 4-6: each classifier of photo_classifiers with its shipped RTS and RTSA
PHOTOS_P = evaluation(
    "photos",
    bool,
    True,
    boolean(),
    "also run the chapter on the offline photos (photo_classifiers, shipped RTS and RTSA)",
)
# the photo setting's ImageNet classifiers a chapter runs (default: EfficientNet-Lite0 alone, the
# book's photo setting so far; chapter 1 classifies the photos with both)
_NAMES = subset_of(*PHOTO_CLASSIFIERS)
PHOTO_CLASSIFIERS_P = evaluation(
    "photo_classifiers",
    list,
    [PHOTO_CLASSIFIER],
    Rule(
        lambda v: _NAMES.check(v) and (isinstance(v, str) or len(set(v)) == len(v)),
        _NAMES.describe.replace("a non-empty list", "a non-empty list of distinct names"),
    ),
    "ImageNet classifiers of the photo setting: "
    + ", ".join(f"{n} ({side} px)" for n, side in PHOTO_CLASSIFIERS.items()),
)
# EfficientNet-Lite0 gets 18 of the 23 labelled offline photos right, EfficientNet-Lite2 20: any
# count up to 18 serves every photo classifier, 0 takes every photo each one gets right
PHOTO_N_IMAGES = evaluation(
    "photo_n_images",
    int,
    8,
    Rule(
        count_rule(0, 18).check,
        "an integer >= 0 and <= 18 (0: every held-out photo each classifier gets right; "
        "EfficientNet-Lite0 gets 18 right, EfficientNet-Lite2 20)",
    ),
    "held-out photos each photo classifier gets right used on the photos (0: all, Lite0 18, Lite2 20)",
)


def head(dataset_doc: str, archs_doc: str, seed_doc: str, **archs_changes: Any) -> list[Param]:
    """The first rows of a Fashion-MNIST chapter: profile, dataset, archs, device, seed (docs its own)."""
    return [
        PROFILE,
        variant(DATASET, doc=dataset_doc),
        variant(ARCHS_P, doc=archs_doc, **archs_changes),
        DEVICE,
        variant(SEED, doc=seed_doc),
    ]


def outputs(stem: str, artifacts_doc: str) -> list[Param]:
    """The last rows of a chapter: where its results file is written, and its cache of trained models."""
    return [
        variant(RESULTS_DIR, doc=f"where results/{stem}.json is written"),
        variant(ARTIFACTS_DIR, doc=artifacts_doc),
    ]
