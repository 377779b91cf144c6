"""Chapter 2 on Fashion-MNIST: every interpreter's maps of the chosen test images and their sanity
tests (deletion curves, Dabkowski & Gal's preserve & destroy, RTS's mask area for a wrong class),
with the section's tables and figures."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from adv2.chapters import bar_charts, plotting
from adv2.chapters._common import fmt_rows
from adv2.core.interpreters import (
    CAMInterpreter,
    GradInterpreter,
    MaskInterpreter,
    RTSInterpreter,
)
from adv2.core.sanity import curve_auc, deletion_curve, preserve_destroy_per_image
from adv2.core.stats import Estimate, mean_ci, rate_ci

INTERPRETERS = ("grad", "cam", "rts", "mask")


def label(name: str) -> str:
    """An interpreter's name as the figures and tables print it."""
    return name.upper() if name != "mask" else "MASK"


def build_interpreters(model, rts_net, names, mask_iterations: int, seed: int) -> dict[str, Any]:
    """The interpreters ``names`` of ``model`` (RTS: ``rts_net``; MASK: seeded), by name."""
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
        interps = build_interpreters(
            classifiers[arch], rts_nets.get(arch), interpreters, mask_iterations, seed
        )
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
        bar_charts.bar_compare(
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
