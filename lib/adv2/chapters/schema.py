"""Every chapter's parameters in one place: name, type, default, rule, one-line doc and role.

Roles: ``recipe`` parameters decide a trained artifact (classifier, RTS, RTSA) and so its cache
key (:mod:`adv2.trained.recipes` turns them into recipes); ``evaluation`` parameters decide what is
measured with those artifacts; ``output`` parameters decide where and how results are shown.
Chapters share definitions (the classifier recipe, the RTS recipe, the AID recipe), so one
parameter means the same thing, with the same default and rule, in every chapter that has it.

The runner checks ``-p`` values with :func:`validate_chapter` before a kernel starts; each
notebook checks its own globals with :func:`check_notebook_globals` in its first code cell (so a
direct ``papermill ... -p bogus 1`` fails there with the same message). The notebooks' parameter
cells are generated from this schema (:func:`parameter_cell`, ``python -m adv2.chapters.schema --write``)
and a test keeps them up to date.

This module must stay cheap to import: no torch at import time (the runner validates in < 5 s).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from adv2.core.config import (
    ARCHS,
    DEVICES,
    INPUT_SIZE_RULE,
    INTERPRETERS,
    PROFILES,
    ParameterError,
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


def _p(name: str, type_: type, default: Any, rule: Rule, doc: str, role: str) -> Param:
    return Param(name, type_, default, rule, doc, role)


def _with(p: Param, **changes: Any) -> Param:
    """A shared parameter with a chapter-specific default or doc."""
    return dataclasses.replace(p, **changes)


def _count(lo: int = 1, hi: int = 10**7) -> Rule:
    return number(lo, hi, integer=True)


def _fraction() -> Rule:
    return number(0, 1, lo_open=True)


# an image count drawn from Fashion-MNIST's test split: say why the bound is what it is
_TEST_IMAGES = Rule(
    number(1, FASHION_MNIST_TEST_IMAGES, integer=True).check,
    f"an integer >= 1 and <= {FASHION_MNIST_TEST_IMAGES} (the Fashion-MNIST test "
    f"split has {FASHION_MNIST_TEST_IMAGES} images)",
)
_RATES = Rule(
    lambda v: (
        isinstance(v, list)
        and len(v) > 0
        and all(isinstance(r, (int, float)) and not isinstance(r, bool) and 0 <= r < 1 for r in v)
    ),
    "a non-empty list of rates in [0, 1)",
)

_COUNTS = Rule(
    lambda v: (
        isinstance(v, list) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in v)
    ),
    "a list of integers >= 1 (may be empty)",
)

# ----------------------------------------------------------------------------- shared groups
PROFILE = _p(
    "profile",
    str,
    "quick",
    choice(*PROFILES),
    "profile name recorded with the results (smoke, quick, paper)",
    "output",
)
ARCHS_P = _p(
    "archs",
    list,
    ["resnet", "densenet"],
    subset_of(*ARCHS),
    "Fashion-MNIST classifiers (resnet, densenet)",
    "evaluation",
)
DEVICE = _p("device", str, "auto", choice(*DEVICES), "auto (CUDA when available), cpu or cuda", "evaluation")
SEED = _p(
    "seed",
    int,
    0,
    number(0, 2**31 - 1, integer=True),
    "seed for sampling images, targets and noise (not training: see train_seed)",
    "evaluation",
)
RESULTS_DIR = _p("results_dir", str, "results", text(), "where results/{stem}.json is written", "output")
# '' (the default) lets adv2.trained.artifacts choose: $ADV2_ARTIFACTS when set, else artifacts/
ARTIFACTS_DIR = _p(
    "artifacts_dir",
    str,
    "",
    Rule(lambda v: isinstance(v, str), "a string"),
    "cache of trained models (empty: $ADV2_ARTIFACTS, else artifacts/)",
    "output",
)


# the recipe parameters as the recipes declare them (adv2.trained.recipes: default, rule, doc)
def _recipe_rows(recipe: type) -> list[Param]:
    return [_p(*row, "recipe") for row in chapter_parameters(recipe)]


CLASSIFIER_RECIPE = _recipe_rows(ClassifierRecipe)
DATASET = CLASSIFIER_RECIPE[0]
RTS_RECIPE = _recipe_rows(RTSRecipe)
AID_RECIPE = _recipe_rows(RTSARecipe)
EPSILON = _p(
    "epsilon",
    float,
    0.1,
    _fraction(),
    "L-inf budget of the evaluated attacks (the paper's 0.031 is ImageNet's; see text)",
    "evaluation",
)
STEP_SIZE = _p(
    "step_size",
    float,
    0.0125,
    _fraction(),
    "sign-step size of the evaluated attacks (the paper's alpha/epsilon, 1/255 : 0.031)",
    "evaluation",
)

SCHEDULE = _p(
    "schedule",
    str,
    "authors",
    choice("authors", "fast"),
    "attack step schedule: authors (constant sign steps; the paper's) or fast (decaying steps, "
    "per-image early stopping; the same step budget)",
    "evaluation",
)


def _evaluation(name: str, type_: type, default: Any, rule: Rule, doc: str) -> Param:
    return _p(name, type_, default, rule, doc, "evaluation")


def _output(name: str, type_: type, default: Any, rule: Rule, doc: str) -> Param:
    return _p(name, type_, default, rule, doc, "output")


_AID_CHAPTER_HEAD = [
    PROFILE,
    _with(DATASET, doc="dataset (RTS and RTSA are trained by the book: fashion-mnist only)"),
    ARCHS_P,
    DEVICE,
    SEED,
    *CLASSIFIER_RECIPE[1:],
    *RTS_RECIPE,
    *AID_RECIPE,
]
_IMAGENET_DIR = _evaluation(
    "imagenet_dir",
    str,
    None,
    optional_text(),
    "an ImageNet validation folder (<wnid>/<image>.JPEG) for the paper's setting",
)

# the photo setting of chapters 4-6: EfficientNet-Lite0 with its shipped RTS and RTSA checkpoints
PHOTOS_P = _evaluation(
    "photos",
    bool,
    True,
    boolean(),
    "also run the chapter on the offline photos (EfficientNet-Lite0, shipped RTS and RTSA)",
)
# EfficientNet-Lite0 gets 18 of the 23 labelled offline photos right
PHOTO_N_IMAGES = _evaluation(
    "photo_n_images",
    int,
    8,
    _count(1, 18),
    "held-out photos EfficientNet-Lite0 gets right used on the photos (all: 18)",
)

CHAPTERS: dict[str, list[Param]] = {
    "01_target_models": [
        PROFILE,
        _with(
            DATASET,
            rule=choice("fashion-mnist", "imagenet"),
            doc="fashion-mnist (train the small classifiers) or imagenet (needs imagenet_dir)",
        ),
        _with(ARCHS_P, doc="Fashion-MNIST classifiers to train (resnet, densenet)"),
        DEVICE,
        _with(SEED, doc="seed for sampling imagenet_dir's images (training: train_seed)"),
        *CLASSIFIER_RECIPE[1:],
        # not a cache key itself: each repeat is a classifier recipe with train_seed + i (cached)
        _evaluation(
            "seed_repeats",
            int,
            1,
            _count(1, 100),
            "classifiers per arch, train_seed + 0, 1, ...; each repeat costs one training per arch",
        ),
        _evaluation(
            "include_imagenet_sample",
            bool,
            True,
            boolean(),
            "also classify the offline ImageNet photos with EfficientNet-Lite0",
        ),
        _IMAGENET_DIR,
        _evaluation(
            "n_images", int, 64, _count(1, 100_000), "images sampled from imagenet_dir (paper setting only)"
        ),
        _with(RESULTS_DIR, doc="where results/01_target_models.json is written"),
        _with(ARTIFACTS_DIR, doc="cache of trained weights"),
    ],
    "02_interpreters": [
        PROFILE,
        _with(DATASET, doc="dataset of the small classifiers (fashion-mnist)"),
        _with(ARCHS_P, doc="Fashion-MNIST classifiers to explain (resnet, densenet)"),
        DEVICE,
        _with(SEED, doc="seed for image choice and MASK jitter (training: train_seed)"),
        *CLASSIFIER_RECIPE[1:],
        _evaluation("n_images", int, 64, _TEST_IMAGES, "Fashion-MNIST test images in the sanity tests"),
        _output("n_show", int, 6, _count(1, 10**6), "images shown in each map figure"),
        *RTS_RECIPE,
        _evaluation(
            "mask_iterations",
            int,
            100,
            _count(0, 10**6),
            "MASK Adam iterations on Fashion-MNIST (authors: 300)",
        ),
        _evaluation(
            "deletion_steps", int, 20, _count(2, 10**6), "fractions 0, 1/steps, ..., 1 of pixels deleted"
        ),
        _evaluation(
            "include_imagenet_sample",
            bool,
            True,
            boolean(),
            "also explain EfficientNet-Lite0 on the offline ImageNet photos",
        ),
        _evaluation(
            "imagenet_n_images",
            int,
            4,
            _count(1, 10**6),
            "photos explained (all four interpreters are slow at 224 px on a CPU)",
        ),
        _evaluation(
            "imagenet_mask_iterations", int, 30, _count(0, 10**6), "MASK iterations at 224 px (authors: 300)"
        ),
        _with(_IMAGENET_DIR, doc="ImageNet validation folder: enables RTS for EfficientNet-Lite0"),
        _evaluation(
            "imagenet_rts_images",
            int,
            1000,
            _count(1, 10**6),
            "training images drawn from imagenet_dir for that RTS",
        ),
        _evaluation(
            "include_photo_rts",
            bool,
            True,
            boolean(),
            "measure the photo RTS (committed checkpoint) on the held-out photos",
        ),
        _evaluation(
            "photo_rts_n_images",
            int,
            0,
            _count(0, 10**6),
            "held-out photos it is measured on (0: all correct)",
        ),
        _evaluation(
            "photo_rts_retrain",
            bool,
            False,
            boolean(),
            "train the photo RTS here even if its checkpoint exists",
        ),
        _evaluation(
            "imagenette_dir",
            str,
            None,
            optional_text(),
            "torchvision Imagenette folder: photo RTS trained on it (no checkpoint: slow)",
        ),
        _with(RESULTS_DIR, doc="where results/02_interpreters.json is written"),
        _with(ARTIFACTS_DIR, doc="cache of trained classifiers and RTS networks"),
    ],
    "03_adv2": [
        PROFILE,
        _with(DATASET, doc="dataset of the attacked classifiers (fashion-mnist)"),
        _with(ARCHS_P, doc="Fashion-MNIST classifiers to attack (resnet, densenet)"),
        _evaluation(
            "interpreters",
            list,
            ["grad", "cam", "rts", "mask"],
            subset_of(*INTERPRETERS),
            "interpreters attacked on Fashion-MNIST",
        ),
        DEVICE,
        _with(SEED, doc="seed for the attack set, target classes and MASK's jitter"),
        _evaluation(
            "n_images", int, 32, _TEST_IMAGES, "test images attacked per classifier (correct, class-balanced)"
        ),
        _evaluation(
            "mask_n_images",
            int,
            16,
            _count(),
            "MASK is attacked on the first mask_n_images of them (costliest attack)",
        ),
        EPSILON,
        STEP_SIZE,
        SCHEDULE,
        _evaluation(
            "step_scale",
            float,
            0.05,
            _fraction(),
            "fraction of the authors' step counts (1: paper, PGD 1200, CAM 400+1200, ...)",
        ),
        _evaluation(
            "mask_step_scale", float, 0.03, _fraction(), "the same for MASK (paper: 400 + 1000 steps)"
        ),
        _evaluation(
            "mask_checkpoints",
            int,
            2,
            _count(),
            "MASK re-solves (checkpoints) during stage 2 (paper: 20, every 50 steps)",
        ),
        _evaluation(
            "mask_iterations",
            int,
            100,
            _count(),
            "MASK interpreter's Adam iterations (chapter 2's value; paper 300)",
        ),
        _evaluation(
            "attack_batch_size", int, 64, _count(), "images per attack batch (results do not depend on it)"
        ),
        *CLASSIFIER_RECIPE[1:],
        *RTS_RECIPE,
        _evaluation(
            "imagenet_sample",
            bool,
            True,
            boolean(),
            "also attack EfficientNet-Lite0 on the offline ImageNet photos",
        ),
        _evaluation(
            "imagenet_interpreters",
            list,
            ["grad", "cam"],  # the profiles name all four (quick, paper); rts: the photo RTS
            subset_of("grad", "cam", "rts", "mask"),
            "interpreters attacked on the photos (grad, cam, rts, mask; rts: the photo RTS)",
        ),
        _evaluation(
            "imagenet_n_images",
            int,
            2,
            _count(0),
            "photos attacked (correctly classified ones; 0: all of them, 18 of the 23 labelled)",
        ),
        _evaluation(
            "imagenet_step_scale",
            float,
            0.02,
            _fraction(),
            "fraction of the authors' step counts on the photos (PGD 1200, CAM 400+1200, ...)",
        ),
        _evaluation(
            "imagenet_mask_step_scale", float, 0.004, _fraction(), "the same for MASK stage 2 on the photos"
        ),
        _evaluation(
            "imagenet_mask_iterations", int, 30, _count(), "MASK iterations on the photos (paper 300)"
        ),
        _evaluation(
            "imagenet_curve_every",
            int,
            3,
            _count(0),
            "steps between convergence-curve points on the photos (0: no curve; MASK: its re-solves)",
        ),
        _output("n_show", int, 4, _count(), "images per interpreter in the figure grids"),
        _output(
            "check_budget",
            bool,
            True,
            boolean(),
            "fail unless PGD and ADV2-CAM reach half the targets (the prose needs it; sweeps turn it off)",
        ),
        _with(RESULTS_DIR, doc="where results/03_adv2.json is written"),
        _with(ARTIFACTS_DIR, doc="cache of trained classifiers and RTS"),
    ],
    "04_aid_defense": [
        *_AID_CHAPTER_HEAD,
        _evaluation(
            "n_eval",
            int,
            256,
            _TEST_IMAGES,
            "test images on which RTSA's benign maps are compared with RTS's",
        ),
        _evaluation(
            "aid_tradeoff_anchors",
            list,
            [10.0, 30.0, 50.0, 100.0],
            Rule(
                lambda v: (
                    isinstance(v, list)
                    and len(v) > 0
                    and all(isinstance(a, (int, float)) and not isinstance(a, bool) and a >= 0 for a in v)
                ),
                "a non-empty list of anchor weights >= 0",
            ),
            "the trade-off: anchor weights gamma of the RTSAs compared (each trained like the book's RTSA)",
        ),
        _evaluation(
            "aid_tradeoff_iterations",
            list,
            [300],
            _COUNTS,
            "the trade-off: AID iterations of more RTSAs, each at the book's anchor ([]: none)",
        ),
        _evaluation(
            "aid_tradeoff_stage2_steps",
            list,
            [10],
            _COUNTS,
            "the trade-off: inner-attack steps per visit of more RTSAs, at the book's anchor ([]: none)",
        ),
        _evaluation(
            "n_select",
            int,
            32,
            Rule(
                number(1, FASHION_MNIST_TEST_IMAGES // 2, integer=True).check,
                f"an integer >= 1 and <= {FASHION_MNIST_TEST_IMAGES // 2} (the selection half of the test split)",
            ),
            "the trade-off: selection images per classifier (test images 5000 on; no verdict uses them)",
        ),
        _evaluation(
            "select_attack_scale",
            float,
            0.2,
            number(0, 10, lo_open=True),
            "the trade-off: fraction of the authors' 300 + 1200 RTS attack steps (epsilon: rtsa_epsilon)",
        ),
        _with(SCHEDULE, doc="the trade-off's attack schedule: authors (the paper's) or fast (same budget)"),
        PHOTOS_P,
        _with(PHOTO_N_IMAGES, doc="held-out photos on which RTSA's maps are compared with RTS's (all: 18)"),
        RESULTS_DIR,
        ARTIFACTS_DIR,
    ],
    "05_noise_sensitivity": [
        *_AID_CHAPTER_HEAD,
        _evaluation(
            "n_calib",
            int,
            500,
            Rule(_count(10, FASHION_MNIST_TEST_IMAGES).check, _TEST_IMAGES.describe.replace(">= 1", ">= 10")),
            "correctly classified test images used for calibration and the L1 table",
        ),
        _evaluation(
            "noise_rates",
            list,
            [0.0, 0.03, 0.3],
            _RATES,
            "target misclassification rates (0 means the strongest harmless noise)",
        ),
        _evaluation(
            "tolerance",
            float,
            0.01,
            number(0, 0.5, lo_open=True),
            "allowed |rate reached - target| (absolute)",
        ),
        _evaluation(
            "calib_max_iter", int, 20, _count(1, 200), "classifier passes allowed per level in the bisection"
        ),
        _evaluation(
            "map_class",
            str,
            "predicted",
            choice("predicted", "true"),
            "class each map explains: predicted (the classifier's decision) or true",
        ),
        _output(
            "figure_arch",
            str,
            "resnet",
            choice(*ARCHS),
            "classifier whose samples Figure 15 shows (the paper: ResNet)",
        ),
        PHOTOS_P,
        _evaluation(
            "photo_n_calib",
            int,
            40,
            _count(10, 10**6),
            "natural-image pool images used for the photo calibration and L1 table",
        ),
        RESULTS_DIR,
        ARTIFACTS_DIR,
    ],
    "06_table10": [
        *_AID_CHAPTER_HEAD,
        _with(EPSILON, doc="L-inf budget of the evaluated ADV2 attack (AID's own: rtsa_epsilon)"),
        _with(STEP_SIZE, doc="sign-step size of the evaluated ADV2 attack (AID's: rtsa_step_size)"),
        _with(
            SCHEDULE,
            doc="step schedule of the evaluated ADV2 attack: authors (the paper's) or fast (same budget)",
        ),
        _evaluation("n_images", int, 64, _TEST_IMAGES, "attacked test images per classifier"),
        _evaluation(
            "attack_scale",
            float,
            0.05,
            number(0, 10, lo_open=True),
            "fraction of the authors' 300 + 1200 RTS attack steps (1 for the paper)",
        ),
        _evaluation(
            "attack_lambda",
            float,
            5.0,
            number(0, 10**6),
            "lambda of the interpretation term, growing linearly to 2x (authors: 5 -> 10)",
        ),
        _evaluation(
            "restrict_to_success",
            bool,
            True,
            boolean(),
            "ADV2 map distances over successful attacks only (authors' statistics)",
        ),
        _evaluation(
            "adaptive",
            bool,
            True,
            boolean(),
            "also attack as an adaptive attacker: ADV2 without the RTS-encoder term, from the warm start "
            "and from a random restart; per image the best of three",
        ),
        _output("figure_rows", int, 4, _count(1, 64), "images shown in Figure 16"),
        PHOTOS_P,
        _with(PHOTO_N_IMAGES, doc="held-out photos attacked on the photos (all: 18; ~20 s each at 1 thread)"),
        _evaluation(
            "photo_attack_scale",
            float,
            0.01,
            number(0, 10, lo_open=True),
            "fraction of the authors' 300 + 1200 steps on the photos (eps 0.031, step 1/255)",
        ),
        RESULTS_DIR,
        ARTIFACTS_DIR,
    ],
    "07_input_size": [
        PROFILE,
        _with(DATASET, doc="dataset, upsampled to each input size (fashion-mnist)"),
        _with(ARCHS_P, default=["resnet"], doc="classifiers trained at every input size (resnet, densenet)"),
        DEVICE,
        _with(SEED, doc="seed for the attack set and its target classes (training: train_seed)"),
        *CLASSIFIER_RECIPE[1:2],
        _with(CLASSIFIER_RECIPE[2], doc="classifier recipe at every size: training epochs (cache key)"),
        _with(
            CLASSIFIER_RECIPE[3],
            default=3000,
            doc="classifier recipe at every size: first N training images, 0 for all 60000 (cache key)",
        ),
        _evaluation(
            "input_sizes",
            list,
            [28, 56, 112],
            Rule(
                lambda v: (
                    isinstance(v, list)
                    and len(v) > 0
                    and len(set(v)) == len(v)
                    and all(INPUT_SIZE_RULE.check(s) for s in v)
                ),
                "a non-empty list of distinct sides, each " + INPUT_SIZE_RULE.describe,
            ),
            "sides (px) the 28-px images are bilinearly upsampled to; one classifier trained per side",
        ),
        _evaluation(
            "interpreters",
            list,
            ["grad", "cam"],
            subset_of("grad", "cam"),
            "interpreters attacked at every size (grad, cam: the ones without a trained interpreter)",
        ),
        _evaluation("n_images", int, 32, _TEST_IMAGES, "test images attacked (the same ones at every size)"),
        _with(EPSILON, doc="L-inf budget of PGD and ADV2 at every size (chapter 3's Fashion-MNIST budget)"),
        STEP_SIZE,
        SCHEDULE,
        _evaluation(
            "step_scale",
            float,
            0.05,
            _fraction(),
            "fraction of the authors' step counts (chapter 3's; 1: paper, PGD 1200, CAM 400+1200)",
        ),
        _evaluation(
            "attack_batch_size", int, 32, _count(), "images per attack batch (results do not depend on it)"
        ),
        _with(RESULTS_DIR, doc="where results/07_input_size.json is written"),
        _with(ARTIFACTS_DIR, doc="cache of the classifiers trained at each size"),
    ],
}
_FRACTIONS = Rule(
    lambda v: (
        isinstance(v, list)
        and len(v) > 0
        and all(isinstance(r, (int, float)) and not isinstance(r, bool) and 0 < r <= 1 for r in v)
        and len(set(v)) == len(v)
    ),
    "a non-empty list of distinct numbers in (0, 1]",
)
_SEEDS = Rule(
    lambda v: (
        isinstance(v, list)
        and len(v) > 0
        and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**31 for s in v)
        and len(set(v)) == len(v)
    ),
    "a non-empty list of distinct integers >= 0",
)
# chapter 8 runs chapter 3 at every point of a grid (adv2.book.sweep); its own parameters are the grid,
# what every point shares, and where the sweep runs
CHAPTERS["08_scaling"] = [
    PROFILE,
    _with(ARCHS_P, doc="Fashion-MNIST classifiers attacked at every point (resnet, densenet)"),
    _evaluation(
        "interpreters",
        list,
        ["grad", "cam", "rts", "mask"],
        subset_of(*INTERPRETERS),
        "interpreters attacked at every point",
    ),
    _evaluation("epsilons", list, [0.031, 0.1, 0.2], _FRACTIONS, "grid: L-inf budgets epsilon"),
    _evaluation(
        "step_scales",
        list,
        [0.01, 0.03],
        _FRACTIONS,
        "grid: attack budgets, fractions of the authors' step counts (chapter 3's step_scale)",
    ),
    _evaluation("seeds", list, [0, 1], _SEEDS, "grid: seeds of the attack set and targets (spread)"),
    _with(SCHEDULE, doc="attack step schedule at every point (chapter 3's): authors or fast"),
    _evaluation(
        "budget_epsilon",
        float,
        0.1,
        _fraction(),
        "the epsilon of the curves against the budget (one of epsilons)",
    ),
    _evaluation("point_n_images", int, 8, _TEST_IMAGES, "test images attacked per classifier at each point"),
    _evaluation("point_mask_n_images", int, 4, _count(), "of them attacked through MASK (costliest)"),
    _evaluation("point_mask_step_scale", float, 0.01, _fraction(), "MASK's budget at every point"),
    _evaluation("point_mask_iterations", int, 30, _count(), "MASK interpreter's Adam iterations"),
    _output(
        "sweep_name",
        str,
        "",
        Rule(lambda v: isinstance(v, str), "a string"),
        "the sweep's folder in runs/sweeps/ (empty: scaling-<profile>)",
    ),
    _output(
        "sweep_address",
        str,
        "",
        Rule(lambda v: isinstance(v, str), "a string"),
        "a Ray cluster (auto, ray://host:port); empty: a local Ray on this machine",
    ),
    _output("sweep_num_cpus", int, 0, _count(0, 4096), "CPUs of the local Ray (0: all of this machine's)"),
    _with(RESULTS_DIR, doc="where results/08_scaling.json is written"),
    _with(ARTIFACTS_DIR, doc="cache of trained classifiers and RTS (every point's)"),
]
STEMS = tuple(CHAPTERS)

# parameters that name a list but are often given as one word on the command line
_LIST_NAMES = ("archs", "interpreters", "imagenet_interpreters", "input_sizes")
# IPython's own globals in a notebook kernel, never parameters
_KERNEL_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})
# values a parameter cell or ``papermill -p`` can give (YAML scalars, lists, mappings)
_PARAMETER_TYPES = (type(None), bool, int, float, str, list, tuple, dict)
# set in the namespace once its parameters were checked (an interactive re-run of the cell)
_CHECKED = "_adv2_parameters_checked"


# ----------------------------------------------------------------------------- public API
def chapter_schema(stem: str) -> dict[str, Param]:
    """The parameters of chapter ``stem`` (e.g. ``"03_adv2"``), by name, in parameter-cell order."""
    if stem not in CHAPTERS:
        raise ParameterError(f"no chapter {stem!r}; valid chapters: " + ", ".join(STEMS))
    return {p.name: p for p in CHAPTERS[stem]}


def defaults(stem: str) -> dict[str, Any]:
    """The default value of every parameter of chapter ``stem`` (copies of lists)."""
    return {
        n: (list(p.default) if isinstance(p.default, list) else p.default)
        for n, p in chapter_schema(stem).items()
    }


def unknown_parameters_error(stem: str, names: list[str] | tuple[str, ...]) -> ParameterError:
    """The one message for parameter names a chapter does not have (runner and notebooks)."""
    return ParameterError(
        f"notebook {stem} has no parameter "
        + ", ".join(repr(n) for n in names)
        + "; valid parameters: "
        + ", ".join(sorted(chapter_schema(stem)))
    )


def validate_chapter(stem: str, params: dict[str, Any]) -> dict[str, Any]:
    """Check ``params`` (any subset of chapter ``stem``'s parameters) and return them normalised.

    Unknown names, values outside a rule, ``device: cuda`` without CUDA all raise
    :class:`ParameterError` naming the parameter, the value and what is valid. A single word for a
    list parameter (``archs: resnet``) becomes a one-element list.
    """
    schema = chapter_schema(stem)
    unknown = [n for n in params if n not in schema]
    if unknown:
        raise unknown_parameters_error(stem, unknown)
    out = dict(params)
    for name in _LIST_NAMES:
        if isinstance(out.get(name), str):
            out[name] = [out[name]]
        elif isinstance(out.get(name), tuple):
            out[name] = list(out[name])
    for name, value in out.items():
        rule = schema[name].rule
        if not rule.check(value):
            raise ParameterError(
                f"parameter {name!r} of notebook {stem} has value {value!r}, "
                f"which is not valid; expected {rule.describe}"
            )
    if out.get("dataset") == "imagenet" and not out.get("imagenet_dir"):
        # only chapter 1 accepts imagenet (its rule); fail here, before a kernel starts
        raise ParameterError(
            f"parameter 'dataset' of notebook {stem} is 'imagenet', which needs "
            "parameter 'imagenet_dir': an ImageNet validation folder arranged as "
            "<wnid>/<image>.JPEG (e.g. -p imagenet_dir /data/imagenet/val)"
        )
    if "budget_epsilon" in out and "epsilons" in out and out["budget_epsilon"] not in out["epsilons"]:
        raise ParameterError(
            f"parameter 'budget_epsilon' of notebook {stem} has value {out['budget_epsilon']!r}, "
            f"which is not one of parameter 'epsilons' {out['epsilons']!r}; expected one of them"
        )
    if out.get("device") == "cuda":
        import torch  # only here: the common case never pays for importing torch

        if not torch.cuda.is_available():
            raise ParameterError(
                "parameter 'device' has value 'cuda' but no CUDA device is "
                "available on this machine; expected one of 'auto', 'cpu'"
            )
    return out


def check_notebook_globals(stem: str, namespace: dict[str, Any]) -> dict[str, Any]:
    """Validate a notebook's parameters from its ``globals()``, in its first code cell.

    Every parameter-like global (a value a parameter cell or ``papermill -p`` can give: None,
    bool, number, string, list, mapping; not IPython's own names, not starting with ``_``) must be
    a parameter of chapter ``stem``: an unknown one (a misspelt ``papermill -p`` name) fails with
    the runner's message instead of running on defaults. When the cell is run again in an
    interactive session, globals that later cells defined are not parameters: then only the
    schema's names are checked. Normalised values (``archs: resnet`` → ``['resnet']``) are
    written back into ``namespace``. Returns the parameters as a dict (what the results file
    records).
    """
    rerun = namespace.get(_CHECKED) == stem
    found = {
        n: v
        for n, v in namespace.items()
        if not n.startswith("_")
        and n not in _KERNEL_NAMES
        and isinstance(v, _PARAMETER_TYPES)
        and (not rerun or n in chapter_schema(stem))
    }
    params = validate_chapter(stem, found)
    missing = [n for n in chapter_schema(stem) if n not in params]
    if missing:  # the parameter cell and the schema disagree: a library/notebook mismatch
        raise ParameterError(
            f"notebook {stem} does not define parameter(s) "
            + ", ".join(repr(n) for n in missing)
            + " of its schema"
        )
    namespace.update(params)
    namespace[_CHECKED] = stem
    return {n: params[n] for n in chapter_schema(stem)}


def _literal(value: Any) -> str:
    """Python source for a default, strings in double quotes as in the rest of the notebooks."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(value)


def parameter_cell(stem: str) -> str:
    """The source of chapter ``stem``'s papermill ``parameters`` cell, generated from the schema."""
    lines = [f"{p.name}: {p.type.__name__} = {_literal(p.default)}" for p in CHAPTERS[stem]]
    width = max(len(s) for s in lines) + 2
    return "\n".join(f"{s:<{width}}# {p.doc}" for s, p in zip(lines, CHAPTERS[stem]))


def _write_parameter_cells() -> list[str]:
    """Rewrite the ``parameters`` cell of every notebook from the schema (keeps cell ids)."""
    import nbformat

    from adv2.core.config import REPO_ROOT

    changed = []
    for stem in STEMS:
        path = REPO_ROOT / "notebooks" / f"{stem}.ipynb"
        nb = nbformat.read(path, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        if cell.source != parameter_cell(stem):
            cell.source = parameter_cell(stem)
            nbformat.write(nb, path)
            changed.append(stem)
    return changed


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m adv2.chapters.schema --write  (regenerates the parameter cells)")
    print("rewrote the parameter cells of: " + (", ".join(_write_parameter_cells()) or "none"))


__all__ = [
    "CHAPTERS",
    "FASHION_MNIST_TEST_IMAGES",
    "ROLES",
    "STEMS",
    "Param",
    "chapter_schema",
    "check_notebook_globals",
    "defaults",
    "parameter_cell",
    "unknown_parameters_error",
    "validate_chapter",
]
