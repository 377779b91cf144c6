"""One figure style for the whole book: PNG output, a fixed colormap for maps, small panels.

Conventions: images are (C, H, W) tensors in [0,1]; maps are (1, h, w) in [0,1] at native
resolution and are upsampled (bilinear) only here, for display. Figures are returned so a notebook
can show or save them; tables are returned as Markdown for ``IPython.display.Markdown``.
"""
from __future__ import annotations

from typing import Any, Sequence

import matplotlib

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

MAP_CMAP = "jet"          # the paper's attribution colormap
PANEL_INCHES = 1.6


def style() -> None:
    """Apply the book's matplotlib style (called on import)."""
    plt.rcParams.update({
        "figure.dpi": 100, "savefig.dpi": 120, "savefig.bbox": "tight", "font.size": 9,
        "axes.titlesize": 9, "axes.spines.top": False, "axes.spines.right": False,
        "image.interpolation": "nearest", "figure.autolayout": False,
    })


style()


def to_display_image(img: torch.Tensor) -> Any:
    """(C,H,W) in [0,1] -> array for imshow (grey images as 2-D)."""
    img = img.detach().cpu().clamp(0, 1)
    return img[0].numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).numpy()


def upsample_map(m: torch.Tensor, size: int) -> Any:
    """(1,h,w) map -> (size,size) array, bilinear, for display only."""
    m = m.detach().cpu().float().unsqueeze(0)
    return F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False)[0, 0].numpy()


def _axes_grid(rows: int, cols: int, scale: float = 1.0):
    fig, axes = plt.subplots(rows, cols, figsize=(cols * PANEL_INCHES * scale,
                                                  rows * PANEL_INCHES * scale), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    return fig, axes


def image_grid(images: torch.Tensor, titles: Sequence[str] | None = None, cols: int = 8,
               suptitle: str | None = None):
    """A grid of images with optional titles (e.g. class names)."""
    n = len(images)
    rows = (n + cols - 1) // cols
    fig, axes = _axes_grid(rows, min(cols, n))
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        ax.imshow(to_display_image(images[i]), cmap="gray", vmin=0, vmax=1)
        if titles is not None:
            ax.set_title(titles[i], fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def map_panel(ax, image: torch.Tensor, amap: torch.Tensor | None, title: str = "",
              overlay: bool = True) -> None:
    """One panel: the image, or the map (upsampled) over a faded copy of the image."""
    size = image.shape[-1]
    if amap is None:
        ax.imshow(to_display_image(image), cmap="gray", vmin=0, vmax=1)
    else:
        if overlay:
            ax.imshow(to_display_image(image), cmap="gray", vmin=0, vmax=1, alpha=0.35)
        ax.imshow(upsample_map(amap, size), cmap=MAP_CMAP, vmin=0, vmax=1,
                  alpha=0.75 if overlay else 1.0, interpolation="bilinear")
    ax.set_title(title, fontsize=7)


def maps_grid(images: torch.Tensor, maps: dict[str, torch.Tensor],
              pictures: dict[str, torch.Tensor] | None = None,
              row_labels: Sequence[str] | None = None, suptitle: str | None = None,
              input_title: str = "Input"):
    """Rows = images. Columns: the input, then ``pictures`` (other images, e.g. adversarial
    inputs, (N,C,H,W)), then ``maps`` (N,1,h,w) drawn over the input of the same row."""
    pictures = pictures or {}
    names = [input_title, *pictures, *maps]
    fig, axes = _axes_grid(len(images), len(names))
    for r in range(len(images)):
        map_panel(axes[r, 0], images[r], None)
        for c, (name, pics) in enumerate(pictures.items(), start=1):
            map_panel(axes[r, c], pics[r], None)
        for c, (name, m) in enumerate(maps.items(), start=1 + len(pictures)):
            map_panel(axes[r, c], images[r], m[r])
        if row_labels is not None:
            axes[r, 0].set_ylabel(row_labels[r], fontsize=7)
    for c, name in enumerate(names):
        axes[0, c].set_title(name, fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def curves(series: dict[str, tuple[Sequence[float], Sequence[float]]], xlabel: str,
           ylabel: str, title: str = "", ax=None):
    """Line plot of named (x, y) series."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.2, 2.8))
    else:
        fig = ax.figure
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", markersize=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    return fig


def markdown_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], digits: int = 3) -> str:
    """A Markdown table; floats rounded to ``digits`` decimals."""
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.{digits}f}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- AID chapters (04-06)
def panel_rows(cells: Sequence[Sequence[tuple]], col_titles: Sequence[str],
               row_labels: Sequence[str] | None = None, suptitle: str | None = None,
               overlay: bool = False):
    """A free grid of panels. ``cells[r][c]`` is ``(image,)`` for a picture or ``(image, map)``
    for a map drawn over (``overlay``) or beside that image, optionally ``(image, map, title)``.

    Used for Figure 15 (Input | Input+Noise | RTS | RTSA per noise type and level) and Figure 16
    (benign / ADV2 inputs and their RTS / RTSA maps), where each map belongs to its own input.
    """
    rows = len(cells)
    cols = max(len(r) for r in cells)
    fig, axes = _axes_grid(rows, cols)
    for r, row in enumerate(cells):
        for c in range(cols):
            ax = axes[r, c]
            if c >= len(row) or row[c] is None:
                ax.axis("off")
                continue
            cell = row[c]
            image = cell[0]
            amap = cell[1] if len(cell) > 1 else None
            title = cell[2] if len(cell) > 2 else ""
            map_panel(ax, image, amap, title, overlay=overlay)
        if row_labels is not None:
            axes[r, 0].set_ylabel(row_labels[r], fontsize=7)
    for c, name in enumerate(col_titles):
        if c < cols:
            axes[0, c].set_title(name + ("\n" + axes[0, c].get_title() if axes[0, c].get_title()
                                         else ""), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def _grouped_bars(ax, names: list[str], series: list[str], value, ylabel: str, title: str,
                  ticklabels: list[str] | None = None, colors: dict | None = None,
                  labels: dict | None = None) -> None:
    """One bar per (group, series) on ``ax``; ``value(group, series)`` gives ``(height, error)``
    with ``None`` for a missing value or no error bar."""
    import numpy as np

    def num(v):
        return float("nan") if v is None else float(v)

    width = 0.8 / max(len(series), 1)
    pos = np.arange(len(names))
    for i, s in enumerate(series):
        pairs = [value(g, s) for g in names]
        errors = [e for _, e in pairs]
        ax.bar(pos + (i - (len(series) - 1) / 2) * width, [num(h) for h, _ in pairs], width,
               label=(labels or {}).get(s, s), color=(colors or {}).get(s),
               **({} if all(e is None for e in errors) else
                  {"yerr": [num(e) for e in errors], "capsize": 2, "error_kw": {"elinewidth": 0.8}}))
    ax.set_xticks(pos)
    ax.set_xticklabels(ticklabels or names, fontsize=8)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(frameon=False, fontsize=7)
    ax.grid(alpha=0.3, axis="y")


def bar_compare(groups: dict[str, dict[str, float]], ylabel: str, title: str = "", ax=None):
    """Grouped bars: ``groups[group][series] = value`` (e.g. L1 per noise level, ours vs paper)."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.8, 2.8))
    else:
        fig = ax.figure
    series = list(dict.fromkeys(s for g in groups.values() for s in g))
    _grouped_bars(ax, list(groups), series, lambda g, s: (groups[g].get(s), None), ylabel, title)
    return fig


# ----------------------------------------------------------------------------- attack chapter (03)
ATTACK_COLORS = {"pgd": "tab:gray", "adv2": "tab:red"}
ATTACK_LABELS = {"pgd": "PGD", "adv2": "ADV2"}


def attack_distance_bars(stats: dict[str, dict[str, dict]], metric: str = "l1", title: str = "",
                         ax=None):
    """Bars of ``<metric>_mean`` (± ``<metric>_std``) per interpreter, one bar per attack.

    ``stats[interpreter][attack]`` is an :func:`adv2.metrics.summarize` dict (attack ``pgd`` or
    ``adv2``). Lower is better for the attacker: the map stays closer to the benign one.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.2, 2.8))
    else:
        fig = ax.figure
    names = list(stats)
    attacks = list(dict.fromkeys(a for s in stats.values() for a in s))

    def value(name, att):
        s = stats[name].get(att, {})
        return s.get(f"{metric}_mean"), s.get(f"{metric}_std")

    _grouped_bars(ax, names, attacks, value, f"{metric.upper()} distance to benign map", title,
                  ticklabels=[n.upper() if len(n) <= 4 else n for n in names],
                  colors=ATTACK_COLORS, labels=ATTACK_LABELS)
    return fig


def iou_curve_panels(stats: dict[str, dict[str, dict[str, dict]]], suptitle: str | None = None):
    """IoU of the top-k % cells vs k: rows = classifiers, columns = interpreters, one line per
    attack. ``stats[arch][interpreter][attack]`` are :func:`adv2.metrics.summarize` dicts."""
    archs = list(stats)
    interps = list(dict.fromkeys(i for a in stats.values() for i in a))
    fig, axes = plt.subplots(len(archs), len(interps), squeeze=False, sharey=True,
                             figsize=(2.3 * len(interps), 2.0 * len(archs) + 0.4))
    for r, arch in enumerate(archs):
        for c, name in enumerate(interps):
            ax = axes[r, c]
            for att, s in stats[arch].get(name, {}).items():
                ks = [100 * k for k in s.get("iou_ks", [])]
                ys = [float("nan") if v is None else v for v in s.get("iou_curve", [])]
                ax.plot(ks, ys, marker="o", markersize=2.5, color=ATTACK_COLORS.get(att),
                        label=ATTACK_LABELS.get(att, att))
            ax.set_ylim(0, 1.02)
            ax.grid(alpha=0.3)
            if r == 0:
                ax.set_title(name.upper() if len(name) <= 4 else name)
            if r == len(archs) - 1:
                ax.set_xlabel("top-k (%)")
            if c == 0:
                ax.set_ylabel(f"{arch}\nIoU")
    axes[0, 0].legend(frameon=False, fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def attack_triptych(x: torch.Tensor, maps_benign: torch.Tensor, x_pgd: torch.Tensor,
                    maps_pgd: torch.Tensor, x_adv2: torch.Tensor, maps_adv2: torch.Tensor,
                    row_labels: Sequence[str] | None = None, suptitle: str | None = None):
    """Rows = images; columns: benign input | its map (true class) | PGD input | its map (target)
    | ADV2 input | its map (target), each map drawn beside its own input (paper Figures 4-7)."""
    cells = [[(x[i],), (x[i], maps_benign[i]), (x_pgd[i],), (x_pgd[i], maps_pgd[i]),
              (x_adv2[i],), (x_adv2[i], maps_adv2[i])] for i in range(len(x))]
    titles = ["benign", "benign map", "PGD", "PGD map", "ADV2", "ADV2 map"]
    return panel_rows(cells, titles, row_labels=row_labels, suptitle=suptitle)
