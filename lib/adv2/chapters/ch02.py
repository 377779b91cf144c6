"""Chapter 2: the four interpreters, their maps and their sanity tests.

Sections, in the notebook's order: :func:`compute_maps` (every interpreter on the chosen test
images) and :func:`maps_figures`; :func:`evaluate` (deletion curves, preserve & destroy, RTS's
mask area for a wrong class) with :func:`sanity_table` and :func:`deletion_figure`;
:func:`explain_photos` (EfficientNet-Lite0 on the offline photos) with :func:`photo_table` and
:func:`photo_figure`; :class:`Ch02Result` (``numbers()``, ``glue()``) and :func:`check`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from adv2.chapters import plotting
from adv2.chapters._common import (
    NOT_RUN,
    PHOTO_BATCH,
    ChapterCheckFailed,
    flat_glue,
    fmt,
    fmt_rows,
    intervals_block,
    pad,
    shown_path,
    start,  # the notebook's setup cell
)
from adv2.chapters._common import check as _check
from adv2.core import models
from adv2.core.interpreters import CAMInterpreter, GradInterpreter, MaskInterpreter, RTSInterpreter
from adv2.core.sanity import curve_auc, deletion_curve, preserve_destroy_per_image
from adv2.core.stats import Estimate, mean_ci, rate_ci
from adv2.trained import data, pretrained
from adv2.trained.cached import trained_rts

ALL_ARCHS = ("resnet", "densenet")
INTERPRETERS = ("grad", "cam", "rts", "mask")
MAP_SIZES = {"grad": 14, "cam": 7, "rts": 14, "mask": 14}  # on 28x28 Fashion-MNIST
PROSE_KEYS = (
    "deletion_auc",
    "random_deletion_auc",
    "preserve_destroy",
    "random_preserve_destroy",
    "mask_area_true_class",
    "mask_area_wrong_class",
)
PHOTO_DELETION_STEPS = 10


def label(name: str) -> str:
    """An interpreter's name as the figures and tables print it."""
    return name.upper() if name != "mask" else "MASK"


def _interpreters(model, rts_net, names, mask_iterations: int, seed: int) -> dict[str, Any]:
    make = {
        "grad": lambda: GradInterpreter(model),
        "cam": lambda: CAMInterpreter(model),
        "rts": lambda: RTSInterpreter(model, rts_net),
        "mask": lambda: MaskInterpreter(model, iterations=mask_iterations, seed=seed),
    }
    return {n: make[n]() for n in names}


def load_rts_nets(
    params: dict[str, Any],
    fmnist: data.Dataset,
    classifiers: dict[str, Any],
    arts: dict[str, Any],
    archs: list[str],
    device: torch.device | str = "cpu",
    artifacts_dir: str = "",
    progress: bool = False,
    log=print,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The RTS of each classifier (its recipe's cache entry, else trained): ``(nets, artifacts)``
    by arch. On a CPU the missing ones train side by side, one core each (:mod:`adv2.core.parallel`)."""
    from adv2.core.parallel import load_side_by_side
    from adv2.trained import loading, recipes

    def loader(arch: str) -> Callable[[], tuple[Any, Any]]:
        return functools.partial(
            loading.load_rts, recipes.rts_recipe(params, arch), fmnist, classifiers[arch], arts[arch],
            device=device, artifacts_dir=artifacts_dir, progress=progress,
        )  # fmt: skip

    loaded = load_side_by_side([loader(a) for a in archs], device)
    nets, rts_arts = {}, {}
    for arch, (net, art, seconds) in zip(archs, loaded):
        nets[arch], rts_arts[arch] = net, art
        m = art.metrics
        how = "loaded from cache" if art.from_cache else f"trained in {seconds:.0f} s"

        def show(v: float | None) -> str:  # a phase with 0 iterations logs nothing
            return "n/a" if v is None else f"{v:.3f}"

        final = m["phase2_total"][-1] if m["phase2_total"] else None
        log(
            f"{arch}: RTS {how}; selector accuracy {show(m['phase1_final_accuracy'])}, final decoder loss {show(final)}"
        )
    return nets, rts_arts


def rts_curves_figure(rts_arts: dict[str, Any], archs: list[str]):
    """RTS training: selector accuracy (phase 1), decoder loss and its two terms (phase 2)."""
    m = {a: rts_arts[a].metrics for a in archs}
    fig, axes = plotting.panel_axes(3, cols=2)
    plotting.curves(
        {a: (m[a]["phase1_step"], m[a]["phase1_accuracy"]) for a in archs},
        "phase-1 iteration",
        "selector accuracy",
        ax=axes[0],
    )
    plotting.curves(
        {a: (m[a]["phase2_step"], m[a]["phase2_total"]) for a in archs},
        "phase-2 iteration",
        "decoder loss",
        ax=axes[1],
    )
    plotting.curves(
        {
            f"{a} {k}": (m[a]["phase2_step"], m[a][f"phase2_{k}"])
            for a in archs
            for k in ("destroyer", "preserver")
        },
        "phase-2 iteration",
        "loss term",
        ax=axes[2],
    )
    return fig


# ----------------------------------------------------------------------------- maps
@dataclass
class Maps:
    """``maps[arch][name]`` (N, 1, s, s) on the CPU; ``seconds[arch][name]`` per map."""

    archs: list[str]
    interpreters: list[str]
    maps: dict[str, dict[str, torch.Tensor]]
    seconds: dict[str, dict[str, float]]


def compute_maps(
    classifiers: dict[str, torch.nn.Module],
    rts_nets: dict[str, Any],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    archs: list[str],
    interpreters: list[str] = INTERPRETERS,
    mask_iterations: int,
    seed: int,
    log: Callable[[str], None] | None = print,
) -> Maps:
    """Every interpreter's maps of ``x`` for the true classes ``y``, timed."""
    maps, seconds = {}, {}
    for arch in archs:
        interps = _interpreters(classifiers[arch], rts_nets.get(arch), interpreters, mask_iterations, seed)
        maps[arch], seconds[arch] = {}, {}
        for name, interp in interps.items():
            started = time.time()
            maps[arch][name] = interp(x, y).cpu()
            seconds[arch][name] = (time.time() - started) / len(y)
        if log:
            log(
                f"{arch}: "
                + ", ".join(
                    f"{n} {1000 * s:.1f} ms/map ({tuple(maps[arch][n].shape[1:])})"
                    for n, s in seconds[arch].items()
                )
            )
    return Maps(list(archs), list(interpreters), maps, seconds)


def maps_figures(m: Maps, x: torch.Tensor, labels: list[str], n_show: int) -> list:
    return [
        plotting.maps_grid(
            x[:n_show].cpu(),
            {label(n): m.maps[arch][n][:n_show] for n in m.interpreters},
            row_labels=labels[:n_show],
            suptitle=f"small {arch}",
        )
        for arch in m.archs
    ]


# ----------------------------------------------------------------------------- sanity tests
@dataclass
class Sanity:
    """Deletion and preserve/destroy numbers per classifier and interpreter.

    ``numbers[arch][name]`` as written to the results file; ``curves[arch][name]`` the mean
    deletion curve (and ``"random"``); ``per_image[arch][name]`` the per-image deletion AUCs
    (``deletion_auc``, and ``random_deletion_auc`` of the same images)."""

    archs: list[str]
    interpreters: list[str]
    deletion_steps: int
    numbers: dict[str, dict[str, Any]]
    curves: dict[str, dict[str, torch.Tensor]]
    per_image: dict[str, dict[str, dict[str, list]]] = field(default_factory=dict)


def evaluate(
    classifiers: dict[str, torch.nn.Module],
    maps: Maps,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    rts_nets: dict[str, Any],
    rts_metrics: dict[str, dict],
    accuracy: dict[str, float],
    num_classes: int,
    deletion_steps: int,
    seed: int,
) -> Sanity:
    """The deletion metric and Dabkowski & Gal's preserve/destroy test of every map, against a
    random order / shuffled map; RTS's mask area for the true class and for a wrong one."""
    numbers, curves, per_image = {}, {}, {}
    for arch in maps.archs:
        model = classifiers[arch]
        rand_curve = deletion_curve(model, x, y, None, steps=deletion_steps, seed=seed)
        rand_auc = curve_auc(rand_curve)
        numbers[arch], per_image[arch] = {}, {}
        curves[arch] = {"random": rand_curve.mean(0)}
        for name in maps.interpreters:
            mp = maps.maps[arch][name]
            curve = deletion_curve(model, x, y, mp, steps=deletion_steps, seed=seed)
            curves[arch][name] = curve.mean(0)
            pd_img = preserve_destroy_per_image(model, x, y, mp.to(x.device), seed=seed)
            pd = {k: float(v.mean()) for k, v in pd_img.items()}
            auc = curve_auc(curve)
            numbers[arch][name] = {
                "deletion_auc": float(auc.mean()),
                "random_deletion_auc": float(rand_auc.mean()),
                "preserve_destroy": pd["both"],
                "random_preserve_destroy": pd["random_both"],
                "preserve": pd["preserve"],
                "destroy": pd["destroy"],
                "map_mean": float(mp.mean()),
            }
            per_image[arch][name] = {
                "deletion_auc": auc.tolist(),
                "random_deletion_auc": rand_auc.tolist(),
                **{f"pd_{k}": v.tolist() for k, v in pd_img.items()},
            }
        if "rts" in maps.interpreters:
            # RTS must mark less for a class that is not in the image
            wrong = (y + 1 + torch.arange(len(y), device=y.device) % (num_classes - 1)) % num_classes
            wrong_maps = RTSInterpreter(model, rts_nets[arch])(x, wrong)
            m = rts_metrics[arch]
            numbers[arch]["rts"].update(
                {
                    "mask_area_true_class": float(maps.maps[arch]["rts"].mean()),
                    "mask_area_wrong_class": float(wrong_maps.mean()),
                    "train_seconds": m["seconds"],
                    "selector_accuracy": m["phase1_final_accuracy"],
                    "phase2_final_loss": m["phase2_total"][-1],
                }
            )
            per_image[arch]["rts"].update(
                {
                    "mask_area_true_class": maps.maps[arch]["rts"].flatten(1).mean(1).tolist(),
                    "mask_area_wrong_class": wrong_maps.detach().cpu().flatten(1).mean(1).tolist(),
                }
            )
        numbers[arch]["test_accuracy"] = accuracy[arch]
    return Sanity(list(maps.archs), list(maps.interpreters), deletion_steps, numbers, curves, per_image)


def sanity_intervals(s: Sanity, seed: int = 0) -> dict[str, dict[str, dict[str, Estimate]]]:
    """95 % intervals over images of the sanity numbers: ``[arch][interpreter][key]`` with keys
    ``deletion_auc``, ``random_deletion_auc`` (bootstrap), ``preserve_destroy`` (Wilson) and
    ``random_preserve_destroy`` (bootstrap: each image's value is a fraction of shuffles)."""
    out: dict[str, dict[str, dict[str, Estimate]]] = {}
    for arch in s.archs:
        out[arch] = {}
        for name in s.interpreters:
            p = s.per_image.get(arch, {}).get(name)
            if not p or "pd_both" not in p:  # no per-image values: the numbers without intervals
                r = s.numbers[arch][name]
                keys = ("deletion_auc", "random_deletion_auc", "preserve_destroy", "random_preserve_destroy")
                out[arch][name] = {k: Estimate(r.get(k), None, None, 0, "none") for k in keys}
                continue
            out[arch][name] = {
                "deletion_auc": mean_ci(p["deletion_auc"], seed=seed),
                "random_deletion_auc": mean_ci(p["random_deletion_auc"], seed=seed),
                "preserve_destroy": rate_ci(p["pd_both"]),
                "random_preserve_destroy": mean_ci(p["pd_random_both"], seed=seed),
            }
    return out


def sanity_table(s: Sanity) -> str:
    """Deletion AUC and preserve & destroy per classifier and interpreter, with 95 % intervals."""
    ci = sanity_intervals(s)
    keys = ("deletion_auc", "random_deletion_auc", "preserve_destroy", "random_preserve_destroy")
    rows = [
        [arch, label(name), *(str(ci[arch][name][k]) for k in keys)]
        for arch in s.archs
        for name in s.interpreters
    ]
    return plotting.markdown_table(
        fmt_rows(rows),
        [
            "classifier",
            "interpreter",
            "deletion AUC ↓",
            "random order",
            "preserve & destroy ↑",
            "shuffled map",
        ],
    )


def deletion_figure(s: Sanity):
    """One row per classifier: mean deletion curves (left) and preserve & destroy bars (right)."""
    fracs = torch.linspace(0, 1, s.deletion_steps + 1)
    ci = sanity_intervals(s)
    fig, flat = plotting.panel_axes(2 * len(s.archs), cols=2, height=2.8)
    axes = [flat[0::2], flat[1::2]]  # axes[0][col]: curves, axes[1][col]: bars
    for col, arch in enumerate(s.archs):
        plotting.curves(
            {k: (fracs.tolist(), v.tolist()) for k, v in s.curves[arch].items()},
            "fraction of pixels deleted",
            "p(true class)",
            title=f"small {arch}: deletion",
            ax=axes[0][col],
        )
        plotting.bar_compare(
            {
                n.upper(): {
                    "map": s.numbers[arch][n]["preserve_destroy"],
                    "shuffled map": s.numbers[arch][n]["random_preserve_destroy"],
                }
                for n in s.interpreters
            },
            "preserve & destroy",
            title=f"small {arch}: preserve & destroy",
            ax=axes[1][col],
            errors={
                n.upper(): {
                    "map": ci[arch][n]["preserve_destroy"],
                    "shuffled map": ci[arch][n]["random_preserve_destroy"],
                }
                for n in s.interpreters
            },
        )
    return fig


# ----------------------------------------------------------------------------- photos
@dataclass
class Photos:
    """EfficientNet-Lite0's maps of correctly classified photos and their deletion AUCs."""

    x: torch.Tensor
    y: torch.Tensor
    class_names: list[str]
    maps: dict[str, torch.Tensor]
    numbers: dict[str, Any]
    per_image: dict[str, dict[str, list]] = field(default_factory=dict)


def explain_photos(
    *,
    n_images: int,
    mask_iterations: int,
    seed: int,
    rts_recipe: dict[str, Any],
    imagenet_dir: str | None = None,
    imagenet_rts_images: int = 1000,
    artifacts_dir: str | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> Photos:
    """Grad, CAM and MASK (and RTS when ``imagenet_dir`` gives training images) of
    EfficientNet-Lite0 on up to ``n_images`` correctly classified offline photos."""
    photos = data.load_imagenet_sample()
    lite = pretrained.efficientnet_lite0(photos.class_names).to(device)
    pred = models.predict(lite, photos.x_test, batch_size=PHOTO_BATCH, device=device).argmax(1)
    ok = ((pred == photos.y_test) & (photos.y_test >= 0)).nonzero()[:, 0][:n_images]
    px, py = photos.x_test[ok].to(device), photos.y_test[ok].to(device)
    interps = _interpreters(lite, None, ("grad", "cam", "mask"), mask_iterations, seed)
    if imagenet_dir:
        val = data.load_dataset("imagenet", data_dir=imagenet_dir, n_images=imagenet_rts_images, seed=seed)
        train_val = data.Dataset(
            "imagenet", val.class_names, val.x_test, val.y_test, val.x_test[:0], val.y_test[:0]
        )
        lite_rts, _ = trained_rts(
            lite, train_val, **rts_recipe, device=device, artifacts_dir=artifacts_dir, progress=progress
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
    return Photos(px.cpu(), py.cpu(), list(photos.class_names), maps, numbers, per_image)


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
# what the prose quotes ("not run" when the run leaves the photo RTS out)
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
        return out


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
) -> PhotoRTSQuality:
    """Load (or train) the photo RTS of ``recipe`` and measure it on the held-out photos that
    EfficientNet-Lite0 classifies correctly (``n_images`` of them, 0 = all): deletion AUC and
    preserve/destroy for its true-class maps, for the same maps shuffled (``random_trials``
    shuffles for preserve/destroy, one for deletion) and for CAM; the map's area for the true
    class and for a seeded random other class (which ADV2 would ask for). ``fmnist_rts``: the
    chapter's Fashion-MNIST RTS numbers, shown beside."""
    from adv2.core.sanity import preserve_destroy_flags, shuffled_like
    from adv2.core.stats import diff_ci, mean_ci, rate_ci, rate_diff_ci
    from adv2.trained.photomodels import load_photo_rts, status_line
    from adv2.trained.recipes import PhotoRTSRecipe

    rts, art = load_photo_rts(
        recipe or PhotoRTSRecipe(),
        device=device,
        artifacts_dir=artifacts_dir,
        progress=progress,
        retrain=retrain,
        pool_dir=pool_dir,
    )
    photos = data.load_imagenet_sample()
    lite = rts.encoder  # the classifier's own copy: the same weights as pretrained.efficientnet_lite0
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


# ----------------------------------------------------------------------------- result
@dataclass
class Ch02Result:
    """``numbers()`` is ``results/02_interpreters.json``'s ``numbers``; ``glue()`` what the prose
    quotes ("not run" for classifiers and interpreters the run left out)."""

    sanity: Sanity
    photos: Photos | None
    per_image: dict[str, Any]
    photo_rts: PhotoRTSQuality | None = None

    def numbers(self) -> dict[str, Any]:
        out = {arch: self.sanity.numbers[arch] for arch in self.sanity.archs}
        out["intervals"] = intervals_block(sanity_intervals(self.sanity))
        out["efficientnet_lite0"] = self.photos.numbers if self.photos else {}
        out["efficientnet_lite0_rts"] = self.photo_rts.numbers() if self.photo_rts else {}
        return out

    def glue(self) -> dict[str, Any]:
        s = self.sanity
        out = flat_glue(
            {
                a: {n: {k: v for k, v in s.numbers[a][n].items() if k in PROSE_KEYS} for n in s.interpreters}
                for a in s.archs
            },
            prefix="ch2.",
        )
        out.update(self.photo_rts.glue() if self.photo_rts else {})
        return pad(
            out,
            [
                f"ch2_{a}_{n}_{k}"
                for a in ALL_ARCHS
                for n in INTERPRETERS
                for k in PROSE_KEYS
                if n == "rts" or not k.startswith("mask_area")
            ]
            + PHOTO_RTS_GLUE,
        )


def collect(
    sanity: Sanity, photos: Photos | None = None, photo_rts: PhotoRTSQuality | None = None
) -> Ch02Result:
    per_image = {"fashion-mnist": sanity.per_image}
    if photos is not None:
        per_image["efficientnet_lite0"] = photos.per_image
    if photo_rts is not None:
        per_image["efficientnet_lite0_rts"] = photo_rts.per_image
    return Ch02Result(sanity, photos, per_image, photo_rts)


def check(result: Ch02Result, maps: Maps, profile: str) -> None:
    """The chapter's invariants; failures name expected, measured and what to change."""
    s = result.sanity
    q = result.photo_rts
    if q is not None:
        lo, hi = float(q.maps.min()), float(q.maps.max())
        _check(
            lo >= 0 and hi <= 1 and tuple(q.maps.shape[-2:]) == (56, 56),
            f"photo RTS maps are {tuple(q.maps.shape[-2:])} spanning [{lo:.4g}, {hi:.4g}]; expected "
            "56x56 maps in [0, 1] (an interpreter bug, not a parameter)",
        )
        if profile != "smoke":
            rts_auc, rand_auc = (q.estimates[r]["deletion_auc"].value for r in ("rts", "random"))
            _check(
                rts_auc < rand_auc,
                f"photo RTS: deletion AUC {fmt(rts_auc)} is not below its shuffled maps' "
                f"{fmt(rand_auc)} on the held-out photos; retrain it with more iterations "
                "(adv2.trained.recipes.PhotoRTSRecipe.phase2_iterations) or a larger pool",
            )
    for arch in maps.archs:
        for name in maps.interpreters:
            mp = maps.maps[arch][name]
            lo, hi = float(mp.min()), float(mp.max())
            _check(
                lo >= 0 and hi <= 1 and bool(torch.isfinite(mp).all()),
                f"{name} maps of the small {arch} span [{lo:.4g}, {hi:.4g}]; every map must lie in "
                "[0, 1] and be finite (an interpreter bug, not a parameter)",
            )
            auc = s.numbers[arch][name]["deletion_auc"]
            _check(0 <= auc <= 1, f"deletion AUC of {name} on {arch} is {auc}, outside [0, 1]")
            size = mp.shape[-1]
            _check(
                size == MAP_SIZES[name],
                f"{name} maps of the small {arch} are {size}x{size}, expected "
                f"{MAP_SIZES[name]}x{MAP_SIZES[name]} on Fashion-MNIST",
            )
        if profile == "smoke":
            continue
        for name in ("grad", "cam", "mask"):  # every interpreter must explain better than chance
            if name not in maps.interpreters:
                continue
            r = s.numbers[arch][name]
            _check(
                r["deletion_auc"] < r["random_deletion_auc"],
                f"{name} on the small {arch}: deletion AUC {fmt(r['deletion_auc'])} is not below the "
                f"random order's {fmt(r['random_deletion_auc'])}; the maps must beat chance: raise "
                "n_images (more images average out noise)"
                + (" or mask_iterations" if name == "mask" else " or train_epochs (a sharper classifier)"),
            )


__all__ = [
    "load_rts_nets",
    "INTERPRETERS",
    "NOT_RUN",
    "Ch02Result",
    "ChapterCheckFailed",
    "Maps",
    "Photos",
    "Sanity",
    "check",
    "collect",
    "compute_maps",
    "deletion_figure",
    "evaluate",
    "PhotoRTSQuality",
    "photo_rts_figure",
    "photo_rts_quality",
    "photo_rts_table",
    "explain_photos",
    "label",
    "maps_figures",
    "photo_figure",
    "photo_table",
    "rts_curves_figure",
    "sanity_table",
    "shown_path",
    "start",
]
