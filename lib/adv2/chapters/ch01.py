"""Chapter 1: the target classifiers and their accuracy.

Sections, in the notebook's order: :func:`training_curves_figure` (the Fashion-MNIST classifiers'
curves), :func:`seed_runs` (the same recipes trained again with the next training seeds, for an
interval over seeds), :func:`classify_photos` (each photo classifier, EfficientNet-Lite0 and -Lite2,
on the offline photos at its own side) with :func:`photos_figure`, :func:`imagenet_setting` (the paper's ImageNet setting, when a folder is
given), :func:`collect` (the chapter's :class:`Ch01Result`), :func:`accuracy_table` and :func:`check`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from adv2.chapters import plotting
from adv2.chapters._common import check as _check
from adv2.chapters._common import flat_glue, pad
from adv2.chapters._loaders import how_obtained
from adv2.core import models
from adv2.core.config import PHOTO_CLASSIFIER, PHOTO_CLASSIFIERS
from adv2.core.formatting import MISSING, fmt
from adv2.core.phrases import PHOTO_CLASSIFIER_LABELS
from adv2.core.stats import seeds_ci
from adv2.trained import data, loading, pretrained, recipes

ALL_ARCHS = ("resnet", "densenet")
N_FOOLBOX = 20  # the labelled ImageNet photos shipped in the foolbox wheel come first
# accuracy the chapter's later use needs, per profile (smoke trains on 4000 images: only sanity;
# full trains quick's recipe, so it needs what quick needs)
_ONE_EPOCH = {"resnet": 0.87, "densenet": 0.87}
MIN_ACCURACY = {"quick": _ONE_EPOCH, "full": _ONE_EPOCH, "paper": {"resnet": 0.92, "densenet": 0.91}}
MIN_FOOLBOX_CORRECT = 14


def describe_data(fmnist: data.Dataset) -> str:
    """One line on the loaded Fashion-MNIST (split shapes; no machine path)."""
    return (
        f"Fashion-MNIST: train {tuple(fmnist.x_train.shape)}, test {tuple(fmnist.x_test.shape)}, "
        f"{fmnist.num_classes} classes"
    )


def samples_figure(fmnist: data.Dataset):
    """The first two test images of every class, titled with their class."""
    first = [int((fmnist.y_test == c).nonzero()[i, 0]) for i in range(2) for c in range(fmnist.num_classes)]
    return plotting.image_grid(
        fmnist.x_test[first],
        [fmnist.class_names[int(fmnist.y_test[i])] for i in first],
        cols=fmnist.num_classes,
    )


def seed_runs(
    params: dict[str, Any],
    fmnist: data.Dataset | None,
    arts: dict[str, Any],
    seed_repeats: int,
    device: torch.device | str = "cpu",
    artifacts_dir: str = "",
    progress: bool = False,
    log=print,
) -> dict[str, dict[str, list]]:
    """Test accuracy of each arch's recipe trained with ``train_seed + i``, i = 0 .. seed_repeats - 1:
    ``{arch: {"train_seeds": [...], "test_accuracy": [...]}}``. Seed ``train_seed`` is the classifier
    already in ``arts``; every other seed is one more training (cached under its own recipe key, so
    a re-run loads it). Only the accuracies are kept: later chapters attack the ``train_seed`` one."""
    archs = list(arts) if fmnist is not None else []
    extra = []  # (arch, recipe) of every further seed
    for arch in archs:
        base = recipes.classifier_recipe(params, arch)
        extra += [
            (arch, dataclasses.replace(base, train_seed=base.train_seed + i)) for i in range(1, seed_repeats)
        ]

    # on a CPU the trainings run side by side, one core each (adv2.core.parallel; issue 13)
    loaded = loading.load_classifiers_side_by_side(
        [r for _, r in extra], fmnist, device=device, artifacts_dir=artifacts_dir, progress=progress
    )
    out = {}
    for arch in archs:
        base = recipes.classifier_recipe(params, arch)
        out[arch] = {
            "train_seeds": [base.train_seed],
            "test_accuracy": [float(arts[arch].metrics["test_accuracy"])],
        }
    for (arch, recipe), (_, art, _) in zip(extra, loaded):
        out[arch]["train_seeds"].append(recipe.train_seed)
        out[arch]["test_accuracy"].append(float(art.metrics["test_accuracy"]))
        how = how_obtained(art)
        log(
            f"{arch}, train_seed {recipe.train_seed}: test accuracy {out[arch]['test_accuracy'][-1]:.4f} ({how})"
        )
    return out


def over_seeds_text(accuracies: list[float]) -> str:
    """The accuracy over seeds as the table shows it ("0.877 [0.870, 0.884] over 3 seeds"), or why
    there is no interval with one seed."""
    if len(accuracies) < 2:
        return "1 seed: no interval across training runs"
    return f"{seeds_ci(accuracies)} over {len(accuracies)} seeds"


def training_curves_figure(arts: dict[str, Any], archs: list[str]):
    """Training loss and held-out accuracy against the training step, one line per classifier
    (None when no classifier was trained: ``dataset: imagenet``)."""
    archs = [a for a in archs if a in arts]
    if not archs:
        return None
    fig, (ax1, ax2) = plotting.panel_axes(2, cols=2)
    plotting.curves(
        {a: (arts[a].metrics["curve_step"], arts[a].metrics["curve_train_loss"]) for a in archs},
        "training step",
        "training loss",
        ax=ax1,
    )
    plotting.curves(
        {a: (arts[a].metrics["curve_step"], arts[a].metrics["curve_val_acc"]) for a in archs},
        "training step",
        "accuracy (1 000 test images)",
        ax=ax2,
    )
    return fig


# ----------------------------------------------------------------------------- photos
def photo_key(classifier: str) -> str:
    """A photo classifier's key in the results file and the glue (``efficientnet_lite2``)."""
    return classifier.replace("-", "_")


@dataclass
class PhotoPredictions:
    """A photo classifier's top-1 predictions on the offline photos (``y`` < 0: no ImageNet label),
    the photos as it saw them (at its side)."""

    x: torch.Tensor
    y: torch.Tensor
    pred: torch.Tensor
    class_names: list[str]
    classifier: str = PHOTO_CLASSIFIER
    n_parameters: int = 0

    @property
    def correct(self) -> torch.Tensor:
        return self.pred == self.y

    @property
    def label(self) -> str:
        return PHOTO_CLASSIFIER_LABELS[self.classifier]

    def numbers(self) -> dict[str, Any]:
        labelled = self.y >= 0
        foolbox_part = torch.arange(len(self.y)) < N_FOOLBOX
        return {
            "top1_foolbox20": int((self.pred[foolbox_part] == self.y[foolbox_part]).sum()),
            "top1_all_labelled": float((self.pred[labelled] == self.y[labelled]).float().mean()),
            "n_labelled": int(labelled.sum()),
            "n_photos": len(self.y),
        }

    def summary(self) -> str:
        return (
            f"{self.label} ({PHOTO_CLASSIFIERS[self.classifier]} px) top-1 on the {N_FOOLBOX} foolbox "
            f"photos: {self.numbers()['top1_foolbox20']}/{N_FOOLBOX}"
        )


def classify_photos(
    device: torch.device | str = "cpu", classifier: str = PHOTO_CLASSIFIER
) -> PhotoPredictions:
    """``classifier`` (one of :data:`adv2.core.config.PHOTO_CLASSIFIERS`) on the offline photos,
    resized and centre-cropped to its own side (:func:`adv2.trained.data.resize_center_crop`)."""
    model = pretrained.efficientnet_lite(data.imagenet_class_names(), classifier).to(device)
    photos = data.load_imagenet_sample(size=model.input_size)
    probs = models.predict(model, photos.x_test, batch_size=16, device=device)
    n_parameters = sum(p.numel() for p in model.parameters())
    pred = probs.argmax(1).cpu()
    return PhotoPredictions(
        photos.x_test, photos.y_test, pred, list(photos.class_names), classifier, n_parameters
    )


def photos_summary(predictions: list[PhotoPredictions]) -> str:
    """One line per classifier, and how the figure's titles read."""
    order = ", then ".join(p.label for p in predictions)
    return "\n".join([*(p.summary() for p in predictions), f"titles: true label → {order}'s prediction"])


def photos_figure(predictions: list[PhotoPredictions]):
    """Each photo (as the first classifier saw it) titled *true label → prediction*, one
    prediction per classifier in the order given."""
    first = predictions[0]
    titles = [
        "\n".join(
            [data.class_name(first.class_names, int(t))]
            + [f"→ {first.class_names[int(p.pred[i])]}" for p in predictions]
        )
        for i, t in enumerate(first.y)
    ]
    return plotting.image_grid(first.x, titles, cols=9)


# ----------------------------------------------------------------------------- ImageNet
@dataclass
class ImagenetSetting:
    """Top-1 accuracy of torchvision's ResNet-50 and DenseNet-169 on ``n_images`` sampled images."""

    accuracy: dict[str, float]
    n_images: int

    def summary(self) -> str:
        return "\n".join(
            f"{name}: top-1 {fmt(acc)} on {self.n_images} sampled validation images"
            for name, acc in self.accuracy.items()
        )


def imagenet_setting(
    imagenet_dir: str, n_images: int, seed: int, device: torch.device | str = "cpu"
) -> ImagenetSetting:
    val = data.load_dataset("imagenet", data_dir=imagenet_dir, n_images=n_images, seed=seed)
    accuracy = {}
    for arch in ALL_ARCHS:
        net = pretrained.torchvision_imagenet(arch, val.class_names).to(device)
        accuracy[net.name] = models.evaluate(net, val.x_test, val.y_test, batch_size=32, device=device)
    return ImagenetSetting(accuracy, len(val.y_test))


# ----------------------------------------------------------------------------- result
@dataclass
class Ch01Result:
    """``numbers()`` is ``results/01_target_models.json``'s ``numbers``; ``glue()`` what the prose
    quotes ("not run" for what the run left out); ``per_image`` each photo classifier's per-photo
    correctness (labelled photos only; ``photos``: one per classifier run, none when skipped); ``seeds`` the test accuracy per training seed (see
    :func:`seed_runs`; None: only the ``train_seed`` classifier, nothing over seeds is reported)."""

    archs: list[str]
    fashion_mnist: dict[str, dict[str, Any]]
    photos: list[PhotoPredictions]
    imagenet: ImagenetSetting | None
    n_images: int
    per_image: dict[str, Any] = field(default_factory=dict)
    seeds: dict[str, dict[str, list]] | None = None

    def numbers(self) -> dict[str, Any]:
        out = {
            "fashion_mnist": self.fashion_mnist,
            **{photo_key(c): {} for c in PHOTO_CLASSIFIERS},  # {}: that classifier did not run
            **{photo_key(p.classifier): p.numbers() for p in self.photos},
            "imagenet": self.imagenet.accuracy if self.imagenet else {},
        }
        if self.seeds is not None:  # per arch: each seed's accuracy and the t-interval of the mean
            out["fashion_mnist_over_seeds"] = {
                a: {**s, "mean_test_accuracy": seeds_ci(s["test_accuracy"]).as_dict()}
                for a, s in self.seeds.items()
            }
        return out

    def glue(self) -> dict[str, Any]:
        out = flat_glue(self.numbers(), prefix="ch1.")
        for a in self.archs:  # percentages for the prose
            out[f"ch1_{a}_acc_pct"] = round(100 * self.fashion_mnist[a]["test_accuracy"], 1)
        keys = ("test_accuracy", "train_seconds", "n_parameters", "images_seen")
        return pad(
            out,
            [f"ch1_fashion_mnist_{a}_{k}" for a in ALL_ARCHS for k in keys]
            + [f"ch1_{a}_acc_pct" for a in ALL_ARCHS]
            + [
                f"ch1_{photo_key(c)}_{k}"
                for c in PHOTO_CLASSIFIERS
                for k in ("top1_foolbox20", "top1_all_labelled", "n_labelled", "n_photos")
            ],
        )


def collect(
    arts: dict[str, Any],
    archs: list[str],
    photos: list[PhotoPredictions] | None = None,
    imagenet: ImagenetSetting | None = None,
    n_images: int = 0,
    seeds: dict[str, dict[str, list]] | None = None,
) -> Ch01Result:
    archs = [a for a in archs if a in arts]  # none at dataset: imagenet
    fashion = {
        a: {k: arts[a].metrics[k] for k in ("test_accuracy", "train_seconds", "n_parameters", "images_seen")}
        for a in archs
    }
    photos = list(photos or [])
    per_image = {}
    for p in photos:
        labelled = p.y >= 0
        per_image[photo_key(p.classifier)] = {
            "correct": p.correct[labelled].tolist(),
            "label": p.y[labelled].tolist(),
        }
    seeds = None if seeds is None else {a: seeds[a] for a in archs if a in seeds}
    return Ch01Result(list(archs), fashion, photos, imagenet, n_images, per_image, seeds)


def accuracy_table(result: Ch01Result) -> str:
    rows = [
        [
            f"small {a} (Fashion-MNIST)",
            "Fashion-MNIST test (10 000)",
            fmt(result.fashion_mnist[a]["test_accuracy"]),
            f"{result.fashion_mnist[a]['n_parameters']:,}",
            over_seeds_text((result.seeds or {}).get(a, {}).get("test_accuracy", [None])),
        ]
        for a in result.archs
    ]
    for p in result.photos:
        rows.append(
            [
                f"{p.label} (ImageNet weights, {PHOTO_CLASSIFIERS[p.classifier]} px)",
                f"foolbox ImageNet photos ({N_FOOLBOX})",
                fmt(p.numbers()["top1_foolbox20"] / N_FOOLBOX),
                f"{p.n_parameters / 1e6:.1f}M",
                MISSING,
            ]
        )
    for name, acc in result.imagenet.accuracy.items() if result.imagenet else ():
        rows.append([name, f"ImageNet val sample ({result.n_images})", fmt(acc), MISSING, MISSING])
    return plotting.markdown_table(
        rows,
        ["classifier", "evaluated on", "top-1 accuracy", "parameters", "mean over training seeds [95 %]"],
    )


def check(result: Ch01Result, profile: str, dataset: str = "fashion-mnist") -> None:
    """The chapter's invariants; failures name expected, measured and what to change."""
    if dataset == "imagenet":
        _check(
            result.imagenet is not None and set(result.imagenet.accuracy) == {"resnet50", "densenet169"},
            "dataset is imagenet but ResNet-50 / DenseNet-169 were not evaluated: give imagenet_dir",
        )
        for name, acc in result.imagenet.accuracy.items():
            _check(0.0 <= acc <= 1.0, f"{name}: top-1 accuracy {acc} is not a fraction")
    else:
        _check(bool(result.archs), "no Fashion-MNIST classifier was trained: archs is empty")
    for a in result.archs:
        acc = result.fashion_mnist[a]["test_accuracy"]
        _check(
            0.1 < acc <= 1.0,
            f"the small {a} reaches test accuracy {acc:.4f}, no better than "
            "chance (0.1): training failed; check train_epochs and train_subset",
        )
        need = MIN_ACCURACY.get(profile, {}).get(a)
        if need is not None:
            _check(
                acc >= need,
                f"the small {a} reaches test accuracy {100 * acc:.1f} %; the {profile} profile needs at "
                f"least {100 * need:.0f} % for the later chapters: raise train_epochs "
                "(or set train_subset to 0 to train on all 60 000 images)",
            )
    for a, s in (result.seeds or {}).items():
        bad = [seed for seed, acc in zip(s["train_seeds"], s["test_accuracy"]) if not acc > 0.1]
        _check(
            not bad,
            f"the small {a} trained with train_seed {bad} is no better than chance (0.1): "
            "training failed for that seed; check train_epochs and train_subset",
        )
    for p in result.photos:
        n = p.numbers()["top1_foolbox20"]
        _check(
            n >= MIN_FOOLBOX_CORRECT,
            f"{p.label} classifies {n} of the {N_FOOLBOX} foolbox photos correctly; expected at "
            f"least {MIN_FOOLBOX_CORRECT}: its packaged weights or the photo preprocessing changed "
            "(set include_imagenet_sample to false to skip this section)",
        )


__all__ = [
    "Ch01Result",
    "ImagenetSetting",
    "PhotoPredictions",
    "accuracy_table",
    "check",
    "classify_photos",
    "collect",
    "describe_data",
    "imagenet_setting",
    "over_seeds_text",
    "photo_key",
    "photos_figure",
    "photos_summary",
    "samples_figure",
    "seed_runs",
    "training_curves_figure",
]
