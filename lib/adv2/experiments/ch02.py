"""Chapter 2: the four interpreters, their maps and their sanity tests.

Sections, in the notebook's order: :func:`compute_maps` (every interpreter on the chosen test
images) and :func:`maps_figures`; :func:`evaluate` (deletion curves, preserve & destroy, RTS's
mask area for a wrong class) with :func:`sanity_table` and :func:`deletion_figure`;
:func:`explain_photos` (EfficientNet-Lite0 on the offline photos) with :func:`photo_table` and
:func:`photo_figure`; :class:`Ch02Result` (``numbers()``, ``glue()``) and :func:`check`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import data, models, plotting
from ..interpreters import (
    CAMInterpreter,
    GradInterpreter,
    MaskInterpreter,
    RTSInterpreter,
    curve_auc,
    deletion_curve,
    preserve_destroy,
    trained_rts,
)
from ._common import (
    NOT_RUN,
    ChapterCheckFailed,
    flat_glue,
    fmt,
    fmt_rows,
    pad,
    shown_path,
    start,  # the notebook's setup cell
)
from ._common import check as _check

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
PHOTO_DELETION_STEPS, PHOTO_BATCH = 10, 44


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
            pd = preserve_destroy(model, x, y, mp.to(x.device), seed=seed)
            auc = curve_auc(curve)
            numbers[arch][name] = {
                "deletion_auc": float(auc.mean()),
                "random_deletion_auc": float(rand_auc.mean()),
                "preserve_destroy": pd["both"],
                "random_preserve_destroy": pd["random_both"],
                "preserve": pd["preserve"],
                "destroy": pd["destroy"],
                "map_mean": pd["area"],
            }
            per_image[arch][name] = {"deletion_auc": auc.tolist(), "random_deletion_auc": rand_auc.tolist()}
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


def sanity_table(s: Sanity) -> str:
    rows = [
        [
            arch,
            label(name),
            r["deletion_auc"],
            r["random_deletion_auc"],
            r["preserve_destroy"],
            r["random_preserve_destroy"],
        ]
        for arch in s.archs
        for name in s.interpreters
        for r in [s.numbers[arch][name]]
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
    lite = models.efficientnet_lite0(photos.class_names).to(device)
    pred = models.predict(lite, photos.x_test, batch_size=16, device=device).argmax(1)
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


# ----------------------------------------------------------------------------- result
@dataclass
class Ch02Result:
    """``numbers()`` is ``results/02_interpreters.json``'s ``numbers``; ``glue()`` what the prose
    quotes ("not run" for classifiers and interpreters the run left out)."""

    sanity: Sanity
    photos: Photos | None
    per_image: dict[str, Any]

    def numbers(self) -> dict[str, Any]:
        out = {arch: self.sanity.numbers[arch] for arch in self.sanity.archs}
        out["efficientnet_lite0"] = self.photos.numbers if self.photos else {}
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
        return pad(
            out,
            [
                f"ch2_{a}_{n}_{k}"
                for a in ALL_ARCHS
                for n in INTERPRETERS
                for k in PROSE_KEYS
                if n == "rts" or not k.startswith("mask_area")
            ],
        )


def collect(sanity: Sanity, photos: Photos | None = None) -> Ch02Result:
    per_image = {"fashion-mnist": sanity.per_image}
    if photos is not None:
        per_image["efficientnet_lite0"] = photos.per_image
    return Ch02Result(sanity, photos, per_image)


def check(result: Ch02Result, maps: Maps, profile: str) -> None:
    """The chapter's invariants; failures name expected, measured and what to change."""
    s = result.sanity
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
