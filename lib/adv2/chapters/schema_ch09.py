"""The parameter table of chapter 9 (Defense 1: interpreters that disagree); rows from
:mod:`adv2.chapters.schema_rows`, and chapter 3's own rows for the attacks it reuses.

Chapter 9 analyses chapter 3's adversarial inputs, read from the attack store under keys built from
chapter 3's attack parameters: those rows are chapter 3's (same defaults, rules and docs), and each
profile gives both chapters the same values (a test checks it), so chapter 9 finds chapter 3's
inputs instead of attacking again.
"""

from __future__ import annotations

from adv2.chapters import schema_ch01_03
from adv2.chapters.schema_rows import (
    PHOTO_CLASSIFIERS_P,
    TRAIN_SEEDS_P,
    Param,
    count_rule,
    evaluation,
    head,
    number,
    output,
    outputs,
    variant,
)
from adv2.core.config import INTERPRETERS, Rule, boolean, subset_of

_CH03 = {p.name: p for p in schema_ch01_03.CHAPTERS["03_adv2"]}
# chapter 3's attack parameters, shared with chapter 3 (the attack store's keys are built from them)
CHAPTER3_ATTACK = (
    "n_images",
    "mask_n_images",
    "epsilon",
    "step_size",
    "schedule",
    "step_scale",
    "mask_step_scale",
    "mask_checkpoints",
    "mask_iterations",
    "attack_batch_size",
    "train_seed",
    "train_epochs",
    "train_subset",
    "rts_phase1_iterations",
    "rts_phase2_iterations",
    "rts_batch_size",
    "rts_lr",
    "imagenet_n_images",
    "imagenet_step_scale",
    "imagenet_mask_step_scale",
    "imagenet_mask_iterations",
)
# MaskConfig's track_steps and unroll_steps (a test checks it): the schema imports no torch
AUTHORS_MASK_STEPS = 4
AT_LEAST_TWO = Rule(
    lambda v: subset_of(*INTERPRETERS).check(v) and len(set([v] if isinstance(v, str) else v)) >= 2,
    "a list of at least two of " + ", ".join(repr(i) for i in INTERPRETERS) + " (an ensemble needs two)",
)

CHAPTERS: dict[str, list[Param]] = {
    "09_defense1": [
        *head(
            "dataset of the teaching classifier (fashion-mnist)",
            "Fashion-MNIST classifiers of the teaching section (chapter 3's; resnet)",
            "seed of chapter 3's attack sets, targets and MASK's jitter (the cache key of its inputs)",
            default=["resnet"],
        ),
        evaluation(
            "interpreters",
            list,
            ["grad", "cam", "rts", "mask"],
            AT_LEAST_TWO,
            "the ensemble: source and target interpreters of the transfer matrix (grad, cam, rts, mask)",
        ),
        evaluation(
            "photos",
            bool,
            True,
            boolean(),
            "run the photo setting (the classifiers of photo_classifiers; the main evidence)",
        ),
        # EfficientNet-Lite0 alone by default: the published numbers; each classifier reads the
        # attacks chapter 3 stored for it (when chapter 3's photo_classifiers named it at the same
        # profile; else chapter 9 runs chapter 3's attack on it)
        PHOTO_CLASSIFIERS_P,
        evaluation(
            "fmnist",
            bool,
            True,
            boolean(),
            "run the Fashion-MNIST teaching setting (the classifiers of archs)",
        ),
        *(variant(_CH03[n], doc=_CH03[n].doc + " (chapter 3's)") for n in CHAPTER3_ATTACK),
        # issue 27: each further seed's classifier and RTS with chapter 3's attacks on them (chapter 3
        # at the same profile stores them); the photo settings' classifiers are pretrained
        variant(
            TRAIN_SEEDS_P,
            doc="Fashion-MNIST: training seeds whose classifiers and RTS are all evaluated on chapter 3's "
            "attacks of them; intervals then cover them ([]: train_seed alone)",
        ),
        evaluation(
            "n_calibration",
            int,
            32,
            count_rule(2, 5000),
            "Fashion-MNIST: benign test images apart from the attacked ones that set the detector's threshold",
        ),
        evaluation(
            "target_fpr",
            float,
            0.1,
            number(0, 0.5, lo_open=False),
            "the detector's false-positive rate on the calibration images that sets its threshold",
        ),
        evaluation(
            "adaptive", bool, True, boolean(), "run the adaptive attacks (ADV2 against the whole ensemble)"
        ),
        variant(
            PHOTO_CLASSIFIERS_P,
            name="adaptive_classifiers",
            doc="photo classifiers the adaptive attacks run on, those of photo_classifiers named here "
            "(the chapter's costliest part: efficientnet-lite0 alone by default)",
        ),
        evaluation(
            "adaptive_n_images",
            int,
            0,
            count_rule(0),
            "photos the adaptive attacks run on, the first of chapter 3's (0: all of them)",
        ),
        evaluation(
            "adaptive_interpreters",
            list,
            ["grad", "cam", "rts", "mask"],
            AT_LEAST_TWO,
            "the interpreters whose map losses the adaptive attacks sum, weight 1/K each (those of "
            "interpreters among them; mask: through the bilevel attack's running mask, the costliest term)",
        ),
        evaluation(
            "adaptive_mask_steps",
            int,
            AUTHORS_MASK_STEPS,
            count_rule(1, 50),
            "MASK's term in the adaptive loss: Adam steps per attack step that track its mask, and as "
            f"many unrolled ones that carry the gradient (the authors' bilevel attack: {AUTHORS_MASK_STEPS} "
            f"and {AUTHORS_MASK_STEPS})",
        ),
        evaluation(
            "detector_weight",
            float,
            1.0,
            number(0, 1000, lo_open=True),
            "the adaptive variant's weight on the detector's score, beside the map loss (both times lambda)",
        ),
        evaluation(
            "eval_batch_size",
            int,
            8,
            count_rule(),
            "images per interpreter pass (results do not depend on it)",
        ),
        output("n_show", int, 1, count_rule(1, 8), "photos shown through every interpreter"),
        *outputs("09_defense1", "cache of trained models and of chapter 3's adversarial inputs"),
    ],
}

__all__ = ["AUTHORS_MASK_STEPS", "CHAPTERS", "CHAPTER3_ATTACK"]
