"""The parameter tables of chapters 1-3 (target models, interpreters, ADV2); rows from :mod:`adv2.chapters.schema_rows`."""

from __future__ import annotations

from adv2.chapters.schema_rows import (
    ARCHS_P,
    CLASSIFIER_RECIPE,
    DATASET,
    DEVICE,
    EPSILON,
    IMAGENET_DIR,
    PHOTO_CLASSIFIERS_P,
    PROFILE,
    RTS_RECIPE,
    SCHEDULE,
    SEED,
    STEP_SIZE,
    TEST_IMAGES,
    TRAIN_SEEDS_P,
    Param,
    count_rule,
    evaluation,
    fraction_rule,
    head,
    output,
    outputs,
    variant,
)
from adv2.core.config import INTERPRETERS, PHOTO_CLASSIFIERS, boolean, choice, optional_text, subset_of

CHAPTERS: dict[str, list[Param]] = {
    "01_target_models": [
        PROFILE,
        variant(
            DATASET,
            rule=choice("fashion-mnist", "imagenet"),
            doc="fashion-mnist (train the small classifiers) or imagenet (needs imagenet_dir)",
        ),
        variant(ARCHS_P, doc="Fashion-MNIST classifiers to train (resnet, densenet)"),
        DEVICE,
        variant(SEED, doc="seed for sampling imagenet_dir's images (training: train_seed)"),
        *CLASSIFIER_RECIPE[1:],
        # not a cache key itself: each repeat is a classifier recipe with train_seed + i (cached)
        evaluation(
            "seed_repeats",
            int,
            1,
            count_rule(1, 100),
            "classifiers per arch, train_seed + 0, 1, ...; each repeat costs one training per arch",
        ),
        evaluation(
            "include_imagenet_sample",
            bool,
            True,
            boolean(),
            "also classify the offline ImageNet photos with photo_classifiers",
        ),
        # cheap (seconds each): chapter 1 shows every photo classifier by default
        variant(PHOTO_CLASSIFIERS_P, default=list(PHOTO_CLASSIFIERS)),
        IMAGENET_DIR,
        evaluation(
            "n_images",
            int,
            64,
            count_rule(1, 100_000),
            "images sampled from imagenet_dir (paper setting only)",
        ),
        *outputs("01_target_models", "cache of trained weights"),
    ],
    "02_interpreters": [
        *head(
            "dataset of the small classifiers (fashion-mnist)",
            "Fashion-MNIST classifiers to explain (resnet, densenet)",
            "seed for image choice and MASK jitter (training: train_seed)",
        ),
        *CLASSIFIER_RECIPE[1:],
        evaluation("n_images", int, 64, TEST_IMAGES, "Fashion-MNIST test images in the sanity tests"),
        output("n_show", int, 6, count_rule(1, 10**6), "images shown in each map figure"),
        *RTS_RECIPE,
        evaluation(
            "mask_iterations",
            int,
            100,
            count_rule(0, 10**6),
            "MASK Adam iterations on Fashion-MNIST (authors: 300)",
        ),
        evaluation(
            "deletion_steps", int, 20, count_rule(2, 10**6), "fractions 0, 1/steps, ..., 1 of pixels deleted"
        ),
        evaluation(
            "include_imagenet_sample",
            bool,
            True,
            boolean(),
            "also explain the photo classifiers (photo_classifiers) on the offline ImageNet photos",
        ),
        PHOTO_CLASSIFIERS_P,  # EfficientNet-Lite0 alone by default: the published numbers
        evaluation(
            "imagenet_n_images",
            int,
            4,
            count_rule(1, 10**6),
            "photos explained (all four interpreters are slow at 224 px on a CPU)",
        ),
        evaluation(
            "imagenet_mask_iterations",
            int,
            30,
            count_rule(0, 10**6),
            "MASK iterations at 224 px (authors: 300)",
        ),
        variant(IMAGENET_DIR, doc="ImageNet validation folder: enables RTS for EfficientNet-Lite0"),
        evaluation(
            "imagenet_rts_images",
            int,
            1000,
            count_rule(1, 10**6),
            "training images drawn from imagenet_dir for that RTS",
        ),
        evaluation(
            "include_photo_rts",
            bool,
            True,
            boolean(),
            "measure the photo RTS (committed checkpoint) on the held-out photos",
        ),
        evaluation(
            "photo_rts_n_images",
            int,
            0,
            count_rule(0, 10**6),
            "held-out photos it is measured on (0: all correct)",
        ),
        evaluation(
            "photo_rts_retrain",
            bool,
            False,
            boolean(),
            "train the photo RTS here even if its checkpoint exists",
        ),
        evaluation(
            "imagenette_dir",
            str,
            None,
            optional_text(),
            "torchvision Imagenette folder: photo RTS trained on it (no checkpoint: slow)",
        ),
        *outputs("02_interpreters", "cache of trained classifiers and RTS networks"),
    ],
    "03_adv2": [
        PROFILE,
        variant(DATASET, doc="dataset of the attacked classifiers (fashion-mnist)"),
        variant(ARCHS_P, doc="Fashion-MNIST classifiers to attack (resnet, densenet)"),
        evaluation(
            "interpreters",
            list,
            ["grad", "cam", "rts", "mask"],
            subset_of(*INTERPRETERS),
            "interpreters attacked on Fashion-MNIST",
        ),
        DEVICE,
        variant(SEED, doc="seed for the attack set, target classes and MASK's jitter"),
        evaluation(
            "n_images", int, 32, TEST_IMAGES, "test images attacked per classifier (correct, class-balanced)"
        ),
        evaluation(
            "mask_n_images",
            int,
            16,
            count_rule(),
            "MASK is attacked on the first mask_n_images of them (costliest attack)",
        ),
        EPSILON,
        STEP_SIZE,
        SCHEDULE,
        evaluation(
            "step_scale",
            float,
            0.05,
            fraction_rule(),
            "fraction of the authors' step counts (1: paper, PGD 1200, CAM 400+1200, ...)",
        ),
        evaluation(
            "mask_step_scale", float, 0.03, fraction_rule(), "the same for MASK (paper: 400 + 1000 steps)"
        ),
        evaluation(
            "mask_checkpoints",
            int,
            2,
            count_rule(),
            "MASK re-solves (checkpoints) during stage 2 (paper: 20, every 50 steps)",
        ),
        evaluation(
            "mask_iterations",
            int,
            100,
            count_rule(),
            "MASK interpreter's Adam iterations (chapter 2's value; paper 300)",
        ),
        evaluation(
            "attack_batch_size",
            int,
            64,
            count_rule(),
            "images per attack batch (results do not depend on it)",
        ),
        *CLASSIFIER_RECIPE[1:],
        *RTS_RECIPE,
        TRAIN_SEEDS_P,
        evaluation(
            "imagenet_sample",
            bool,
            True,
            boolean(),
            "also attack the photo classifiers (photo_classifiers) on the offline ImageNet photos",
        ),
        PHOTO_CLASSIFIERS_P,  # EfficientNet-Lite0 alone by default: the published numbers and store keys
        evaluation(
            "imagenet_interpreters",
            list,
            ["grad", "cam"],  # the profiles name all four (quick, paper); rts: the photo RTS
            subset_of("grad", "cam", "rts", "mask"),
            "interpreters attacked on the photos (grad, cam, rts, mask; rts: the photo RTS)",
        ),
        evaluation(
            "imagenet_n_images",
            int,
            2,
            count_rule(0),
            "photos attacked (correctly classified ones; 0: all of them, 18 of the 23 labelled)",
        ),
        evaluation(
            "imagenet_step_scale",
            float,
            0.02,
            fraction_rule(),
            "fraction of the authors' step counts on the photos (PGD 1200, CAM 400+1200, ...)",
        ),
        evaluation(
            "imagenet_mask_step_scale",
            float,
            0.004,
            fraction_rule(),
            "the same for MASK stage 2 on the photos",
        ),
        evaluation(
            "imagenet_mask_iterations", int, 30, count_rule(), "MASK iterations on the photos (paper 300)"
        ),
        evaluation(
            "imagenet_curve_every",
            int,
            3,
            count_rule(0),
            "steps between convergence-curve points on the photos (0: no curve; MASK: its re-solves)",
        ),
        output("n_show", int, 4, count_rule(), "images per interpreter in the figure grids"),
        output(
            "check_budget",
            bool,
            True,
            boolean(),
            "fail unless PGD and ADV2-CAM reach half the targets (the prose needs it; sweeps turn it off)",
        ),
        *outputs("03_adv2", "cache of trained classifiers and RTS"),
    ],
}
