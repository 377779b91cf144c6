"""The parameter tables of chapters 4-8 (AID defense, noise, Table 10, input size, scaling); rows from :mod:`adv2.chapters.schema_rows`."""

from __future__ import annotations

from adv2.chapters import schema_rows as rows
from adv2.core.config import ARCHS, INPUT_SIZE_RULE, INTERPRETERS, Rule, boolean, choice, number, subset_of

CHAPTERS: dict[str, list[rows.Param]] = {
    "04_aid_defense": [
        *rows.AID_CHAPTER_HEAD,
        rows.variant(
            rows.TRAIN_SEEDS_P,
            doc="training seeds whose classifiers, RTS and RTSA are all compared on benign inputs; "
            "intervals then cover them ([]: train_seed alone; not the trade-off)",
        ),
        rows.evaluation(
            "n_eval",
            int,
            256,
            rows.TEST_IMAGES,
            "test images on which RTSA's benign maps are compared with RTS's",
        ),
        rows.evaluation(
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
        rows.evaluation(
            "aid_tradeoff_iterations",
            list,
            [300],
            rows.COUNTS,
            "the trade-off: AID iterations of more RTSAs, each at the book's anchor ([]: none)",
        ),
        rows.evaluation(
            "aid_tradeoff_stage2_steps",
            list,
            [10],
            rows.COUNTS,
            "the trade-off: inner-attack steps per visit of more RTSAs, at the book's anchor ([]: none)",
        ),
        rows.evaluation(
            "n_select",
            int,
            32,
            Rule(
                number(1, rows.FASHION_MNIST_TEST_IMAGES // 2, integer=True).check,
                f"an integer >= 1 and <= {rows.FASHION_MNIST_TEST_IMAGES // 2} (the selection half of the test split)",
            ),
            "the trade-off: selection images per classifier (test images 5000 on; no verdict uses them)",
        ),
        rows.evaluation(
            "select_attack_scale",
            float,
            0.2,
            number(0, 10, lo_open=True),
            "the trade-off: fraction of the authors' 300 + 1200 RTS attack steps (epsilon: rtsa_epsilon)",
        ),
        rows.variant(
            rows.SCHEDULE, doc="the trade-off's attack schedule: authors (the paper's) or fast (same budget)"
        ),
        rows.PHOTOS_P,
        rows.PHOTO_CLASSIFIERS_P,  # EfficientNet-Lite0 alone by default: the published numbers
        rows.variant(
            rows.PHOTO_N_IMAGES,
            doc="held-out photos on which RTSA's maps are compared with RTS's (0: all, Lite0 18, Lite2 20)",
        ),
        rows.RESULTS_DIR,
        rows.ARTIFACTS_DIR,
    ],
    "05_noise_sensitivity": [
        *rows.AID_CHAPTER_HEAD,
        rows.variant(
            rows.TRAIN_SEEDS_P,
            doc="training seeds whose classifiers, RTS and RTSA are all calibrated and measured; "
            "intervals then cover them ([]: train_seed alone)",
        ),
        rows.evaluation(
            "n_calib",
            int,
            500,
            Rule(
                rows.count_rule(10, rows.FASHION_MNIST_TEST_IMAGES).check,
                rows.TEST_IMAGES.describe.replace(">= 1", ">= 10"),
            ),
            "correctly classified test images used for calibration and the L1 table",
        ),
        rows.evaluation(
            "noise_rates",
            list,
            [0.0, 0.03, 0.3],
            rows.RATES,
            "target misclassification rates (0 means the strongest harmless noise)",
        ),
        rows.evaluation(
            "tolerance",
            float,
            0.01,
            number(0, 0.5, lo_open=True),
            "allowed |rate reached - target| (absolute)",
        ),
        rows.evaluation(
            "calib_max_iter",
            int,
            20,
            rows.count_rule(1, 200),
            "classifier passes allowed per level in the bisection",
        ),
        rows.evaluation(
            "map_class",
            str,
            "predicted",
            choice("predicted", "true"),
            "class each map explains: predicted (the classifier's decision) or true",
        ),
        rows.output(
            "figure_arch",
            str,
            "resnet",
            choice(*ARCHS),
            "classifier whose samples Figure 15 shows (the paper: ResNet)",
        ),
        rows.PHOTOS_P,
        rows.PHOTO_CLASSIFIERS_P,  # EfficientNet-Lite0 alone by default: the published numbers
        rows.evaluation(
            "photo_n_calib",
            int,
            40,
            rows.count_rule(10, 10**6),
            "natural-image pool images used for the photo calibration and L1 table",
        ),
        rows.RESULTS_DIR,
        rows.ARTIFACTS_DIR,
    ],
    "06_table10": [
        *rows.AID_CHAPTER_HEAD,
        rows.variant(
            rows.TRAIN_SEEDS_P,
            doc="training seeds whose classifiers, RTS, RTSA and controls are all attacked; "
            "intervals then cover them ([]: train_seed alone)",
        ),
        rows.variant(rows.EPSILON, doc="L-inf budget of the evaluated ADV2 attack (AID's own: rtsa_epsilon)"),
        rows.variant(
            rows.STEP_SIZE, doc="sign-step size of the evaluated ADV2 attack (AID's: rtsa_step_size)"
        ),
        rows.variant(
            rows.SCHEDULE,
            doc="step schedule of the evaluated ADV2 attack: authors (the paper's) or fast (same budget)",
        ),
        rows.evaluation("n_images", int, 64, rows.TEST_IMAGES, "attacked test images per classifier"),
        rows.evaluation(
            "attack_scale",
            float,
            0.05,
            number(0, 10, lo_open=True),
            "fraction of the authors' 300 + 1200 RTS attack steps (1 for the paper)",
        ),
        rows.evaluation(
            "attack_lambda",
            float,
            5.0,
            number(0, 10**6),
            "lambda of the interpretation term, growing linearly to 2x (authors: 5 -> 10)",
        ),
        rows.evaluation(
            "restrict_to_success",
            bool,
            True,
            boolean(),
            "ADV2 map distances over successful attacks only (authors' statistics)",
        ),
        rows.evaluation(
            "adaptive",
            bool,
            True,
            boolean(),
            "also attack as an adaptive attacker: ADV2 without the RTS-encoder term, from the warm start "
            "and from a random restart; per image the best of three",
        ),
        rows.output("figure_rows", int, 4, rows.count_rule(1, 64), "images shown in Figure 16"),
        rows.PHOTOS_P,
        rows.PHOTO_CLASSIFIERS_P,  # EfficientNet-Lite0 alone by default: the published numbers
        rows.variant(
            rows.PHOTO_N_IMAGES,
            doc="held-out photos attacked on the photos (0: all, Lite0 18, Lite2 20; ~20 s each at 1 thread)",
        ),
        rows.evaluation(
            "photo_attack_scale",
            float,
            0.01,
            number(0, 10, lo_open=True),
            "fraction of the authors' 300 + 1200 steps on the photos (eps 0.031, step 1/255)",
        ),
        rows.evaluation(
            "photo_adaptive",
            bool,
            False,
            boolean(),
            "also the adaptive attacker on the photos (3x the attack time; "
            "benchmarks/bench_photo_table10.py runs it on every photo)",
        ),
        rows.RESULTS_DIR,
        rows.ARTIFACTS_DIR,
    ],
    "07_input_size": [
        *rows.head(
            "dataset, upsampled to each input size (fashion-mnist)",
            "classifiers trained at every input size (resnet, densenet)",
            "seed for the attack set and its target classes (training: train_seed)",
            default=["resnet"],
        ),
        *rows.CLASSIFIER_RECIPE[1:2],
        rows.variant(
            rows.CLASSIFIER_RECIPE[2], doc="classifier recipe at every size: training epochs (cache key)"
        ),
        rows.variant(
            rows.CLASSIFIER_RECIPE[3],
            default=3000,
            doc="classifier recipe at every size: first N training images, 0 for all 60000 (cache key)",
        ),
        rows.evaluation(
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
        rows.variant(
            rows.TRAIN_SEEDS_P,
            doc="training seeds whose classifiers (every side) are all attacked; intervals then cover them ([]: train_seed alone)",
        ),
        rows.evaluation(
            "interpreters",
            list,
            ["grad", "cam"],
            subset_of("grad", "cam"),
            "interpreters attacked at every size (grad, cam: the ones without a trained interpreter)",
        ),
        rows.evaluation(
            "n_images", int, 32, rows.TEST_IMAGES, "test images attacked (the same ones at every size)"
        ),
        rows.variant(
            rows.EPSILON, doc="L-inf budget of PGD and ADV2 at every size (chapter 3's Fashion-MNIST budget)"
        ),
        rows.STEP_SIZE,
        rows.SCHEDULE,
        rows.evaluation(
            "step_scale",
            float,
            0.05,
            rows.fraction_rule(),
            "fraction of the authors' step counts (chapter 3's; 1: paper, PGD 1200, CAM 400+1200)",
        ),
        rows.evaluation(
            "attack_batch_size",
            int,
            32,
            rows.count_rule(),
            "images per attack batch (results do not depend on it)",
        ),
        *rows.outputs("07_input_size", "cache of the classifiers trained at each size"),
    ],
    # chapter 8 runs chapter 3 at every point of a grid (adv2.book.sweep); its own parameters are the grid,
    # what every point shares, and where the sweep runs
    "08_scaling": [
        rows.PROFILE,
        rows.variant(
            rows.ARCHS_P, doc="Fashion-MNIST classifiers attacked at every point (resnet, densenet)"
        ),
        rows.evaluation(
            "interpreters",
            list,
            ["grad", "cam", "rts", "mask"],
            subset_of(*INTERPRETERS),
            "interpreters attacked at every point",
        ),
        rows.evaluation("epsilons", list, [0.031, 0.1, 0.2], rows.FRACTIONS, "grid: L-inf budgets epsilon"),
        rows.evaluation(
            "step_scales",
            list,
            [0.01, 0.03],
            rows.FRACTIONS,
            "grid: attack budgets, fractions of the authors' step counts (chapter 3's step_scale)",
        ),
        rows.evaluation(
            "seeds", list, [0, 1], rows.SEEDS, "grid: seeds of the attack set and targets (spread)"
        ),
        rows.variant(rows.SCHEDULE, doc="attack step schedule at every point (chapter 3's): authors or fast"),
        rows.evaluation(
            "budget_epsilon",
            float,
            0.1,
            rows.fraction_rule(),
            "the epsilon of the curves against the budget (one of epsilons)",
        ),
        rows.evaluation(
            "point_n_images", int, 8, rows.TEST_IMAGES, "test images attacked per classifier at each point"
        ),
        rows.evaluation(
            "point_mask_n_images", int, 4, rows.count_rule(), "of them attacked through MASK (costliest)"
        ),
        rows.evaluation(
            "point_mask_step_scale", float, 0.01, rows.fraction_rule(), "MASK's budget at every point"
        ),
        rows.evaluation(
            "point_mask_iterations", int, 30, rows.count_rule(), "MASK interpreter's Adam iterations"
        ),
        rows.output(
            "sweep_name",
            str,
            "",
            Rule(lambda v: isinstance(v, str), "a string"),
            "the sweep's folder in runs/sweeps/ (empty: scaling-<profile>-<hash of the grid>)",
        ),
        rows.output(
            "sweep_address",
            str,
            "",
            Rule(lambda v: isinstance(v, str), "a string"),
            "a Ray cluster (auto, ray://host:port); empty: a local Ray on this machine",
        ),
        rows.output(
            "sweep_num_cpus",
            int,
            0,
            rows.count_rule(0, 4096),
            "CPUs of the local Ray (0: all of this machine's)",
        ),
        *rows.outputs("08_scaling", "cache of trained classifiers and RTS (every point's)"),
    ],
}
