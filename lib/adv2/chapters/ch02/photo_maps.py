"""Chapter 2 on the offline photos, per photo classifier (EfficientNet-Lite0 by default, any of
:data:`adv2.core.config.PHOTO_CLASSIFIERS`): its maps and their deletion AUCs
(:func:`explain_photos`), and its photo RTS's quality on held-out photos beside its shuffled maps
and CAM (:func:`photo_rts_quality`), with the sections' tables and figures. Glue: EfficientNet-Lite0's
names ``ch2_photo_rts_*``, another classifier's under :func:`glue_prefix` (``ch2_photo_lite2_rts_*``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from adv2.chapters import plotting
from adv2.chapters._common import NOT_RUN, PHOTO_BATCH, fmt_rows
from adv2.chapters.ch02.fmnist_maps import build_interpreters, label
from adv2.core import models
from adv2.core.config import PHOTO_CLASSIFIER, PHOTO_CLASSIFIERS
from adv2.core.formatting import fmt
from adv2.core.interpreters import CAMInterpreter, RTSInterpreter
from adv2.core.phrases import PHOTO_CLASSIFIER_LABELS
from adv2.core.sanity import curve_auc, deletion_curve, preserve_destroy_flags, shuffled_like
from adv2.core.stats import diff_ci, mean_ci, rate_ci, rate_diff_ci
from adv2.trained import data, loading, pretrained
from adv2.trained.cached import weights_fingerprint
from adv2.trained.photo_recipes import PhotoRTSRecipe
from adv2.trained.photomodels import load_photo_rts, status_line
from adv2.trained.recipes import PretrainedClassifier, RTSRecipe

PHOTO_DELETION_STEPS = 10


def glue_prefix(classifier: str = PHOTO_CLASSIFIER) -> str:
    """``ch2_photo_`` for EfficientNet-Lite0 (the names the prose has always used), ``ch2_photo_lite2_``
    for EfficientNet-Lite2."""
    if classifier not in PHOTO_CLASSIFIERS:
        raise ValueError(f"unknown photo classifier {classifier!r}; valid: {', '.join(PHOTO_CLASSIFIERS)}")
    return (
        "ch2_photo_"
        if classifier == PHOTO_CLASSIFIER
        else f"ch2_photo_{classifier.removeprefix('efficientnet-')}_"
    )


def result_key(classifier: str = PHOTO_CLASSIFIER) -> str:
    """The results file's key of a classifier's photo maps (``efficientnet_lite0``; its RTS: + ``_rts``)."""
    return classifier.replace("-", "_")


# ----------------------------------------------------------------------------- photos
@dataclass
class Photos:
    """A photo classifier's maps of correctly classified photos and their deletion AUCs."""

    x: torch.Tensor
    y: torch.Tensor
    class_names: list[str]
    maps: dict[str, torch.Tensor]
    numbers: dict[str, Any]
    per_image: dict[str, dict[str, list]] = field(default_factory=dict)
    classifier: str = PHOTO_CLASSIFIER


def explain_photos(
    *,
    n_images: int,
    mask_iterations: int,
    seed: int,
    rts_recipe: RTSRecipe,
    imagenet_dir: str | None = None,
    imagenet_rts_images: int = 1000,
    artifacts_dir: str | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
    classifier: str = PHOTO_CLASSIFIER,
) -> Photos:
    """Grad, CAM and MASK (and RTS when ``imagenet_dir`` gives training images: with the schedule
    of ``rts_recipe``) of the photo classifier ``classifier`` (EfficientNet-Lite0 by default) on up
    to ``n_images`` correctly classified offline photos, at its side."""
    photos = data.load_imagenet_sample(size=PHOTO_CLASSIFIERS[classifier])
    lite = pretrained.efficientnet_lite(photos.class_names, classifier).to(device)
    pred = models.predict(lite, photos.x_test, batch_size=PHOTO_BATCH, device=device).argmax(1)
    ok = ((pred == photos.y_test) & (photos.y_test >= 0)).nonzero()[:, 0][:n_images]
    px, py = photos.x_test[ok].to(device), photos.y_test[ok].to(device)
    interps = build_interpreters(lite, None, ("grad", "cam", "mask"), mask_iterations, seed)
    if imagenet_dir:
        val = data.load_dataset("imagenet", data_dir=imagenet_dir, n_images=imagenet_rts_images, seed=seed)
        train_val = data.Dataset(
            "imagenet", val.class_names, val.x_test, val.y_test, val.x_test[:0], val.y_test[:0]
        )
        # the chapter's RTS schedule, for a classifier known by its weights
        lite_id = PretrainedClassifier(
            lite.name,
            "imagenet",
            weights_fingerprint(lite),
            int(lite.input_size),
            rts_recipe.classifier.train_seed,
        )
        recipe = dataclasses.replace(rts_recipe, classifier=lite_id)
        lite_rts, _ = loading.load_rts(
            recipe, train_val, lite, device=device, artifacts_dir=artifacts_dir, progress=progress
        )
        interps["rts"] = RTSInterpreter(lite, lite_rts)
    maps = {n: i(px, py).cpu() for n, i in interps.items()}
    rand_auc = curve_auc(
        deletion_curve(lite, px, py, None, steps=PHOTO_DELETION_STEPS, seed=seed, batch_size=PHOTO_BATCH)
    )
    numbers, per_image = {}, {}
    for n, mp in maps.items():
        auc = curve_auc(
            deletion_curve(lite, px, py, mp, steps=PHOTO_DELETION_STEPS, seed=seed, batch_size=PHOTO_BATCH)
        )
        numbers[n] = {"deletion_auc": float(auc.mean()), "random_deletion_auc": float(rand_auc.mean())}
        per_image[n] = {"deletion_auc": auc.tolist(), "random_deletion_auc": rand_auc.tolist()}
    numbers["n_photos"] = len(ok)
    return Photos(px.cpu(), py.cpu(), list(photos.class_names), maps, numbers, per_image, classifier)


def photo_figure(p: Photos):
    return plotting.maps_grid(
        p.x, {label(n): m for n, m in p.maps.items()}, row_labels=[p.class_names[int(c)] for c in p.y]
    )


def photo_table(p: Photos) -> str:
    rows = [
        [label(n), v["deletion_auc"], v["random_deletion_auc"]]
        for n, v in p.numbers.items()
        if isinstance(v, dict)
    ]
    return plotting.markdown_table(fmt_rows(rows), ["interpreter", "deletion AUC ↓", "random order"])


# ----------------------------------------------------------------------------- the photo RTS
PHOTO_RTS_ROWS = ("rts", "random", "cam")  # the photo RTS, its maps shuffled, the CAM it starts from
PHOTO_RTS_METRICS = ("deletion_auc", "preserve", "destroy", "both")
# what the prose quotes ("not run" when the run leaves the photo RTS out); EfficientNet-Lite0's names
PHOTO_RTS_GLUE = [
    *(f"ch2_photo_rts_{r}_{k}" for r in PHOTO_RTS_ROWS for k in PHOTO_RTS_METRICS),
    *(
        f"ch2_photo_rts_minus_random_{k}"
        for k in ("deletion_auc", "both", "both_vs_cam", "deletion_auc_vs_cam")
    ),
    "ch2_photo_rts_area_true_class",
    "ch2_photo_rts_area_other_class",
    "ch2_photo_rts_n_photos",
    "ch2_photo_rts_status",
    "ch2_photo_rts_train_minutes",
    "ch2_photo_rts_images_per_second",
    "ch2_photo_rts_pool_photos",
    "ch2_photo_rts_iterations",
]


def photo_rts_glue_names(classifier: str = PHOTO_CLASSIFIER) -> list[str]:
    """:data:`PHOTO_RTS_GLUE` under ``classifier``'s prefix (:func:`glue_prefix`)."""
    return [glue_prefix(classifier) + k.removeprefix("ch2_photo_") for k in PHOTO_RTS_GLUE]


@dataclass
class PhotoRTSQuality:
    """The photo RTS (:func:`adv2.trained.photomodels.load_photo_rts`) on held-out photos (the attacked ones,
    correctly classified, never in its training pool), beside its own maps shuffled (same values,
    random places) and CAM (the map its decoder starts from).

    ``estimates[row][metric]`` (rows :data:`PHOTO_RTS_ROWS`; metrics ``deletion_auc``,
    ``preserve``, ``destroy``, ``both``) are :class:`adv2.core.stats.Estimate` over images;
    ``differences`` the paired RTS-minus-random differences; ``mask_area`` the map's mean for the
    true class and for a random other class; ``training`` what the artifact recorded."""

    x: torch.Tensor
    y: torch.Tensor
    other: torch.Tensor
    class_names: list[str]
    maps: torch.Tensor
    other_maps: torch.Tensor
    estimates: dict[str, dict[str, Any]]
    differences: dict[str, Any]
    mask_area: dict[str, Any]
    training: dict[str, Any]
    status: str
    fmnist_rts: dict[str, dict[str, float]]
    per_image: dict[str, dict[str, list]] = field(default_factory=dict)
    classifier: str = PHOTO_CLASSIFIER

    def numbers(self) -> dict[str, Any]:
        return {
            "n_photos": len(self.y),
            "status": self.status,
            **{row: {k: e.as_dict() for k, e in m.items()} for row, m in self.estimates.items()},
            "rts_minus_random": {k: e.as_dict() for k, e in self.differences.items()},
            "mask_area": {k: e.as_dict() for k, e in self.mask_area.items()},
            "training": self.training,
        }

    def glue(self) -> dict[str, Any]:
        out = {"ch2_photo_rts_n_photos": len(self.y), "ch2_photo_rts_status": self.status}
        for row, m in self.estimates.items():
            for k, e in m.items():
                out[f"ch2_photo_rts_{row}_{k}"] = str(e)
        for k, e in self.differences.items():
            out[f"ch2_photo_rts_minus_random_{k}"] = str(e)
        for k, e in self.mask_area.items():
            out[f"ch2_photo_rts_area_{k}"] = str(e)
        t = self.training
        out["ch2_photo_rts_train_minutes"] = fmt((t.get("seconds") or float("nan")) / 60, 1)
        out["ch2_photo_rts_images_per_second"] = fmt(t.get("images_per_second"), 2)
        out["ch2_photo_rts_pool_photos"] = t.get("pool_photos", NOT_RUN)
        out["ch2_photo_rts_iterations"] = t.get("iterations", NOT_RUN)
        prefix = glue_prefix(self.classifier)
        return {prefix + k.removeprefix("ch2_photo_"): v for k, v in out.items()}


def _training_summary(art: Any) -> dict[str, Any]:
    m, p = art.metrics, art.params
    per_source = m.get("pool_photos_per_source") or {}
    return {
        "seconds": m.get("seconds"),
        "train_seconds": m.get("train_seconds"),
        "images_per_second": m.get("images_per_second"),
        "iterations": p.get("phase2_iterations"),
        "batch_size": p.get("batch_size"),
        "images_seen": m.get("images_seen"),
        "pool_images": m.get("pool_images"),
        "pool_photos": sum(per_source.values()) if per_source else None,
        "pool_photos_per_source": per_source,
        "pool_excluded": m.get("pool_excluded"),
        "machine": m.get("machine"),
        "origin": art.origin,
        "checkpoint": art.checkpoint,
        "key": art.path.name,
    }


def photo_rts_quality(
    *,
    recipe: Any = None,
    n_images: int = 0,
    deletion_steps: int = PHOTO_DELETION_STEPS,
    random_trials: int = 5,
    fmnist_rts: dict[str, dict[str, float]] | None = None,
    retrain: bool = False,
    pool_dir: str | None = None,
    artifacts_dir: str | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
    seed: int = 0,
    classifier: str | None = None,
) -> PhotoRTSQuality:
    """Load (or train) the photo RTS of ``recipe`` and measure it on the held-out photos that
    its classifier classifies correctly (``n_images`` of them, 0 = all; ``classifier``: that photo
    classifier's default recipe when ``recipe`` is None, EfficientNet-Lite0 without either): deletion AUC and
    preserve/destroy for its true-class maps, for the same maps shuffled (``random_trials``
    shuffles for preserve/destroy, one for deletion) and for CAM; the map's area for the true
    class and for a seeded random other class (which ADV2 would ask for). ``fmnist_rts``: the
    chapter's Fashion-MNIST RTS numbers, shown beside."""
    if recipe is None:
        recipe = PhotoRTSRecipe(arch=classifier or PHOTO_CLASSIFIER)
    elif classifier is not None and recipe.arch != classifier:
        raise ValueError(f"photo_rts_quality: classifier={classifier!r} but the recipe's is {recipe.arch!r}")
    rts, art = load_photo_rts(
        recipe,
        device=device,
        artifacts_dir=artifacts_dir,
        progress=progress,
        retrain=retrain,
        pool_dir=pool_dir,
    )
    photos = data.load_imagenet_sample(size=PHOTO_CLASSIFIERS[recipe.arch])
    lite = rts.encoder  # the classifier's own copy: the same weights as pretrained.efficientnet_lite
    pred = models.predict(lite, photos.x_test, batch_size=PHOTO_BATCH, device=device).argmax(1)
    ok = ((pred == photos.y_test) & (photos.y_test >= 0)).nonzero()[:, 0]
    ok = ok[:n_images] if n_images else ok
    x, y = photos.x_test[ok].to(device), photos.y_test[ok].to(device)
    gen = torch.Generator().manual_seed(seed)
    other = (y.cpu() + torch.randint(1, lite.num_classes, (len(y),), generator=gen)) % lite.num_classes
    interp = RTSInterpreter(lite, rts)
    maps = interp(x, y).cpu()
    other_maps = interp(x, other.to(device)).cpu()
    cam = CAMInterpreter(lite)(x, y).cpu()
    per_image: dict[str, dict[str, list]] = {}
    estimates: dict[str, dict[str, Any]] = {}
    flags: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for row, mp in (("rts", maps), ("random", shuffled_like(maps, gen)), ("cam", cam)):
        curve = deletion_curve(lite, x, y, mp, steps=deletion_steps, seed=seed, batch_size=PHOTO_BATCH)
        auc = curve_auc(curve)
        if row == "random":  # average the preserve/destroy flags over several shuffles
            draws = [
                preserve_destroy_flags(lite, x, y, shuffled_like(maps, gen).to(device))
                for _ in range(random_trials)
            ]
            keep = torch.stack([d[0] for d in draws]).mean(0)
            gone = torch.stack([d[1] for d in draws]).mean(0)
            both = torch.stack([d[0] * d[1] for d in draws]).mean(0)
        else:
            keep, gone = preserve_destroy_flags(lite, x, y, mp.to(device))
            both = keep * gone
        keep, gone, both = keep.cpu(), gone.cpu(), both.cpu()
        flags[row] = (both, auc)
        interval = rate_ci if row != "random" else mean_ci  # shuffles average to fractions
        estimates[row] = {
            "deletion_auc": mean_ci(auc, seed=seed),
            "preserve": interval(keep),
            "destroy": interval(gone),
            "both": interval(both),
        }
        per_image[row] = {"deletion_auc": auc.tolist(), "preserve": keep.tolist(), "destroy": gone.tolist()}
    differences = {
        "deletion_auc": diff_ci(flags["rts"][1], flags["random"][1], paired=True, seed=seed),
        "both": diff_ci(flags["rts"][0], flags["random"][0], paired=True, seed=seed),
        "both_vs_cam": rate_diff_ci(flags["rts"][0], flags["cam"][0], paired=True),
        "deletion_auc_vs_cam": diff_ci(flags["rts"][1], flags["cam"][1], paired=True, seed=seed),
    }
    mask_area = {
        "true_class": mean_ci(maps.flatten(1).mean(1), seed=seed),
        "other_class": mean_ci(other_maps.flatten(1).mean(1), seed=seed),
    }
    per_image["mask_area"] = {
        "true_class": maps.flatten(1).mean(1).tolist(),
        "other_class": other_maps.flatten(1).mean(1).tolist(),
    }
    return PhotoRTSQuality(
        x.cpu(),
        y.cpu(),
        other,
        list(photos.class_names),
        maps,
        other_maps,
        estimates,
        differences,
        mask_area,
        _training_summary(art),
        status_line(art),
        dict(fmnist_rts or {}),
        per_image,
        recipe.arch,
    )


def photo_rts_table(q: PhotoRTSQuality) -> str:
    """The quality table: photo RTS, its shuffled maps, CAM, and the Fashion-MNIST RTS beside."""
    names = {"rts": "photo RTS", "random": "random (shuffled RTS maps)", "cam": "CAM (RTS's starting map)"}
    rows = [
        [names[r], str(m["deletion_auc"]), str(m["preserve"]), str(m["destroy"]), str(m["both"])]
        for r, m in q.estimates.items()
    ]
    for arch, r in q.fmnist_rts.items():
        rows.append(
            [
                f"Fashion-MNIST RTS ({arch})",
                fmt(r.get("deletion_auc")) + f" (random {fmt(r.get('random_deletion_auc'))})",
                fmt(r.get("preserve")),
                fmt(r.get("destroy")),
                fmt(r.get("preserve_destroy")) + f" (random {fmt(r.get('random_preserve_destroy'))})",
            ]
        )
    return plotting.markdown_table(rows, ["map", "deletion AUC ↓", "preserved ↑", "destroyed ↑", "both ↑"])


def photo_rts_figure(q: PhotoRTSQuality, n_show: int = 4):
    """A few held-out photos with the photo RTS's map for the true class and for a random other
    class (colour bars on every map)."""
    k = min(n_show, len(q.y))
    labels = [q.class_names[int(c)] for c in q.y[:k]]
    others = [q.class_names[int(c)] for c in q.other[:k]]
    return plotting.maps_grid(
        q.x[:k],
        {"RTS, true class": q.maps[:k], "RTS, other class": q.other_maps[:k]},
        row_labels=[f"{a} / other: {b}" for a, b in zip(labels, others)],
    )


def _titled(sections: dict[str, Any], text) -> str:
    """Each classifier's Markdown, under its name where more than one ran."""
    if len(sections) == 1:
        return text(next(iter(sections.values())))
    return "\n\n".join(f"**{PHOTO_CLASSIFIER_LABELS[c]}**\n\n{text(s)}" for c, s in sections.items())


def photo_tables(runs: dict[str, Photos]) -> str:
    """Markdown: each photo classifier's deletion table (:func:`photo_table`)."""
    return _titled(runs, photo_table)


def photo_rts_tables(qualities: dict[str, PhotoRTSQuality]) -> str:
    """Markdown: each photo classifier's RTS status line and quality table (:func:`photo_rts_table`)."""
    return _titled(qualities, lambda q: f"{q.status}\n\n{photo_rts_table(q)}")
