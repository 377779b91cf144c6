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
    PROFILES,
    Rule,
    boolean,
    choice,
    number,
    optional_text,
    subset_of,
    text,
)

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

# ----------------------------------------------------------------------------- shared groups
PROFILE = param(
    "profile",
    str,
    "quick",
    choice(*PROFILES),
    "profile name recorded with the results (smoke, quick, paper)",
    "output",
)
DATASET = param(
    "dataset",
    str,
    "fashion-mnist",
    choice("fashion-mnist"),
    "dataset the book trains on (fashion-mnist only)",
    "recipe",
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

CLASSIFIER_RECIPE = [
    DATASET,
    param(
        "train_seed",
        int,
        0,
        number(0, 2**31 - 1, integer=True),
        "recipe: seed of classifier, RTS and AID training (cache key)",
        "recipe",
    ),
    param(
        "train_epochs",
        float,
        1,
        number(0, 1000, lo_open=True),
        "classifier recipe: training epochs, fractions allowed (cache key)",
        "recipe",
    ),
    param(
        "train_subset",
        int,
        0,
        number(0, 10_000_000, integer=True),
        "classifier recipe: first N training images, 0 for all 60000 (cache key)",
        "recipe",
    ),
]
RTS_RECIPE = [
    param(
        "rts_phase1_iterations",
        int,
        100,
        count_rule(0, 10**6),
        "RTS recipe: selector iterations (paper recipe 8500; cache key)",
        "recipe",
    ),
    param(
        "rts_phase2_iterations",
        int,
        150,
        count_rule(0, 10**6),
        "RTS recipe: decoder iterations (paper recipe 3000; cache key)",
        "recipe",
    ),
    param(
        "rts_batch_size",
        int,
        32,
        count_rule(1, 10**5),
        "RTS recipe: decoder batch; the selector's is twice it (recipe 64; cache key)",
        "recipe",
    ),
    param(
        "rts_lr",
        float,
        0.01,
        fraction_rule(),
        "RTS recipe: Adam learning rate of both phases (recipe 0.001; cache key)",
        "recipe",
    ),
]
AID_RECIPE = [
    param(
        "aid_iterations",
        int,
        600,
        count_rule(0, 10**6),
        "RTSA recipe: AID fine-tuning iterations, starting from the trained RTS",
        "recipe",
    ),
    param(
        "aid_batch_size",
        int,
        32,
        count_rule(1, 10**4),
        "RTSA recipe: images per iteration for RTS's own decoder loss",
        "recipe",
    ),
    param(
        "aid_attack_batch_size",
        int,
        16,
        count_rule(1, 10**4),
        "RTSA recipe: images attacked (ADV2) per AID iteration",
        "recipe",
    ),
    param(
        "aid_beta",
        float,
        10.0,
        number(0, 1000),
        "RTSA recipe: weight beta of l_aid, the negative L1 between benign and ADV2 maps",
        "recipe",
    ),
    param(
        "aid_distill_weight",
        float,
        100.0,
        number(0, 10**4),
        "RTSA recipe: weight of the anchor L1(RTSA map, RTS map) on benign inputs (0: none)",
        "recipe",
    ),
    param(
        "aid_lr",
        float,
        0.001,
        fraction_rule(),
        "RTSA recipe: Adam learning rate of the fine-tuning",
        "recipe",
    ),
    param(
        "aid_stage1_steps",
        int,
        20,
        count_rule(0, 10**4),
        "RTSA recipe: prediction-only PGD warm start of AID's inner attack",
        "recipe",
    ),
    param(
        "aid_stage2_steps",
        int,
        5,
        count_rule(0, 10**4),
        "RTSA recipe: joint ADV2 steps per visit of an image in AID's inner attack",
        "recipe",
    ),
    param(
        "aid_pool_size",
        int,
        256,
        count_rule(0, 10**7),
        "RTSA recipe: training images attacked during AID (warm starts computed once)",
        "recipe",
    ),
    param(
        "aid_persistent",
        bool,
        True,
        boolean(),
        "RTSA recipe: continue each pool image's attack from its last adversarial input",
        "recipe",
    ),
    param(
        "aid_train_encoder",
        bool,
        True,
        boolean(),
        "RTSA recipe: RTSA trains its own encoder copy (False: the decoder alone, the first version)",
        "recipe",
    ),
    param(
        "rtsa_epsilon",
        float,
        0.1,
        fraction_rule(),
        "RTSA recipe: L-inf budget of AID's inner ADV2 attack (not the evaluation's epsilon)",
        "recipe",
    ),
    param(
        "rtsa_step_size",
        float,
        0.0125,
        fraction_rule(),
        "RTSA recipe: sign-step size of AID's inner ADV2 attack",
        "recipe",
    ),
]
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
IMAGENET_DIR = evaluation(
    "imagenet_dir",
    str,
    None,
    optional_text(),
    "an ImageNet validation folder (<wnid>/<image>.JPEG) for the paper's setting",
)

# the photo setting of chapters 4-6: EfficientNet-Lite0 with its shipped RTS and RTSA checkpoints
PHOTOS_P = evaluation(
    "photos",
    bool,
    True,
    boolean(),
    "also run the chapter on the offline photos (EfficientNet-Lite0, shipped RTS and RTSA)",
)
# EfficientNet-Lite0 gets 18 of the 23 labelled offline photos right
PHOTO_N_IMAGES = evaluation(
    "photo_n_images",
    int,
    8,
    count_rule(1, 18),
    "held-out photos EfficientNet-Lite0 gets right used on the photos (all: 18)",
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
