"""Chapter 3's figures (the attack chapter): map distances per interpreter and attack as bars, IoU
curves of the top-k cells, and the benign | PGD | ADV2 triptych of inputs and maps (paper Figures
4-7), in the book's style (:mod:`adv2.chapters.plotting`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import torch

from adv2.chapters.bar_charts import grouped_bars
from adv2.chapters.plotting import (
    CONTENT_INCHES,
    MAP_LABEL,
    book_style,
    figure_axes,
    interval_error,
    panel_rows,
)

ATTACK_COLORS = {"pgd": "tab:gray", "adv2": "tab:red"}
ATTACK_LABELS = {"pgd": "PGD", "adv2": "ADV2"}


def attack_distance_bars(
    stats: dict[str, dict[str, dict]],
    metric: str = "l1",
    title: str = "",
    ax=None,
    errors: dict[str, dict[str, Any]] | None = None,
):
    """Bars of ``<metric>_mean`` per interpreter, one bar per attack.

    ``stats[interpreter][attack]`` is an :func:`adv2.core.metrics.summarize` dict (attack ``pgd`` or
    ``adv2``). Lower is better for the attacker: the map stays closer to the benign one.
    ``errors[interpreter][attack]``: the mean's 95 % interval (:class:`adv2.core.stats.Estimate`, its
    dict or ``(low, high)``), drawn as an error bar; without ``errors`` the bars show ± the
    standard deviation over images.
    """
    with book_style():
        fig, ax = figure_axes(ax)
        _attack_bars(ax, stats, metric, title, errors)
    return fig


def _attack_bars(ax, stats, metric, title, errors=None):
    names = list(stats)
    attacks = list(dict.fromkeys(a for s in stats.values() for a in s))

    def value(name, att):
        s = stats[name].get(att, {})
        h = s.get(f"{metric}_mean")
        if errors is not None:
            return h, interval_error(h, errors.get(name, {}).get(att))
        return h, s.get(f"{metric}_std")

    grouped_bars(
        ax,
        names,
        attacks,
        value,
        f"{metric.upper()} distance to benign map",
        title,
        ticklabels=[n.upper() if len(n) <= 4 else n for n in names],
        colors=ATTACK_COLORS,
        labels=ATTACK_LABELS,
    )


def iou_curve_panels(stats: dict[str, dict[str, dict[str, dict]]], suptitle: str | None = None):
    """IoU of the top-k % cells vs k: rows = classifiers, columns = interpreters, one line per
    attack. ``stats[arch][interpreter][attack]`` are :func:`adv2.core.metrics.summarize` dicts."""
    archs = list(stats)
    interps = list(dict.fromkeys(i for a in stats.values() for i in a))
    with book_style():
        fig = plt.figure(
            figsize=(min(2.3 * len(interps), CONTENT_INCHES), 2.0 * len(archs) + 0.4), layout="constrained"
        )
        axes = fig.subplots(len(archs), len(interps), squeeze=False, sharey=True)
        _iou_panels(fig, axes, stats, archs, interps, suptitle)
    fig._adv2_colorbars = 0
    return fig


def _iou_panels(fig, axes, stats, archs, interps, suptitle):
    for r, arch in enumerate(archs):
        for c, name in enumerate(interps):
            ax = axes[r, c]
            for att, s in stats[arch].get(name, {}).items():
                ks = [100 * k for k in s.get("iou_ks", [])]
                ys = [float("nan") if v is None else v for v in s.get("iou_curve", [])]
                ax.plot(
                    ks,
                    ys,
                    marker="o",
                    markersize=2.5,
                    color=ATTACK_COLORS.get(att),
                    label=ATTACK_LABELS.get(att, att),
                )
            ax.set_ylim(0, 1.02)
            ax.grid(alpha=0.3)
            if r == 0:
                ax.set_title(name.upper() if len(name) <= 4 else name)
            if r == len(archs) - 1:
                ax.set_xlabel("top-k (%)")
            if c == 0:
                ax.set_ylabel(f"{arch}\nIoU")
    axes[0, 0].legend(frameon=False)
    if suptitle:
        fig.suptitle(suptitle)


def attack_triptych(
    x: torch.Tensor,
    maps_benign: torch.Tensor,
    x_pgd: torch.Tensor,
    maps_pgd: torch.Tensor,
    x_adv2: torch.Tensor,
    maps_adv2: torch.Tensor,
    row_labels: Sequence[str] | None = None,
    suptitle: str | None = None,
    colorbar_label: str = MAP_LABEL,
):
    """Rows = images; columns: benign input | its map (true class) | PGD input | its map (target)
    | ADV2 input | its map (target), each map drawn beside its own input (paper Figures 4-7)."""
    cells = [
        [
            (x[i],),
            (x[i], maps_benign[i]),
            (x_pgd[i],),
            (x_pgd[i], maps_pgd[i]),
            (x_adv2[i],),
            (x_adv2[i], maps_adv2[i]),
        ]
        for i in range(len(x))
    ]
    titles = ["benign", "benign map", "PGD", "PGD map", "ADV2", "ADV2 map"]
    return panel_rows(cells, titles, row_labels=row_labels, suptitle=suptitle, colorbar_label=colorbar_label)
