"""One figure style for the whole book: PNG output, a fixed colormap for maps, legible panels.

Conventions: images are (C, H, W) tensors in [0,1]; maps are (1, h, w) in [0,1] at native
resolution and are upsampled (bilinear) only here, for display. Figures are returned so a notebook
can show or save them; tables are returned as Markdown for ``IPython.display.Markdown``.

Legibility rules every function follows (checked by tests/test_plotting.py):

* the book shows a figure at most ``CONTENT_INCHES`` wide (its content column, ~700 px, and inline
  figures are drawn at 100 dpi); a wider figure is scaled down, so text is sized to read at least
  ``MIN_PT`` points *after* that scaling (size times ``min(1, CONTENT_INCHES / width)``);
* every grid of attribution maps has one shared colour bar saying what high means
  (``fig._adv2_colorbars`` counts them);
* long titles and labels are wrapped, never cut;
* the book's style is applied inside each function (``matplotlib.rc_context``), so importing this
  module leaves the user's matplotlib settings alone.
"""

from __future__ import annotations

import contextlib
import math
import textwrap
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

MAP_CMAP = "jet"  # the paper's attribution colormap
MAP_LABEL = "attribution (high = important)"
PANEL_INCHES = 1.6  # largest side of one image panel
CONTENT_INCHES = 7.0  # the content column at 100 dpi: ~700 px in a 1280-px-wide window
MIN_PT = 9  # smallest text size a reader sees
CHAR_WIDTH = 0.65  # average glyph width as a fraction of the font size (DejaVu Sans)
LABEL_CHARS = 16  # row labels wrap at this many characters
COLORBAR_INCHES = 0.9  # room a vertical colour bar and its label take

BOOK_RC = {
    "figure.dpi": 100,
    "savefig.dpi": 120,
    "savefig.bbox": "tight",
    "font.size": MIN_PT,
    "axes.titlesize": MIN_PT,
    "axes.labelsize": MIN_PT,
    "xtick.labelsize": MIN_PT,
    "ytick.labelsize": MIN_PT,
    "legend.fontsize": MIN_PT,
    "figure.titlesize": MIN_PT + 1,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.interpolation": "nearest",
    "figure.autolayout": False,
}


@contextlib.contextmanager
def book_style():
    """Context manager with the book's style; every plotting function draws inside it.

    It saves and restores only the book's own keys: ``plt.rc_context`` restores *every* rc value,
    including the interactive mode the kernel switches on when it draws its first figure inside
    the context, after which no later figure would be shown."""
    old = {k: plt.rcParams[k] for k in BOOK_RC}
    plt.rcParams.update(BOOK_RC)
    try:
        yield
    finally:
        plt.rcParams.update(old)


def text_pt(fig_width_inches: float) -> float:
    """Font size that reads as at least ``MIN_PT`` in a figure this wide."""
    return math.ceil(MIN_PT * max(1.0, fig_width_inches / CONTENT_INCHES) * 2) / 2


def wrap(text: str, width_inches: float, pt: float = MIN_PT) -> str:
    """Wrap ``text`` to lines fitting ``width_inches`` at ``pt`` points (never cut it)."""
    chars = max(6, int(0.9 * width_inches * 72 / (pt * CHAR_WIDTH)))  # 10 % gap between panels
    return "\n".join(textwrap.fill(line, chars, break_long_words=False) for line in str(text).split("\n"))


def to_display_image(img: torch.Tensor) -> Any:
    """(C,H,W) in [0,1] -> array for imshow (grey images as 2-D)."""
    img = img.detach().cpu().clamp(0, 1)
    return img[0].numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).numpy()


def upsample_map(m: torch.Tensor, size: int) -> Any:
    """(1,h,w) map -> (size,size) array, bilinear, for display only."""
    m = m.detach().cpu().float().unsqueeze(0)
    return F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False)[0, 0].numpy()


def _row_label_inches(labels: Sequence[str] | None, pt: float = MIN_PT) -> float:
    """Room for horizontal row labels wrapped at ``LABEL_CHARS`` characters."""
    if not labels:
        return 0.0
    longest = max(
        len(line)
        for lab in labels
        for line in textwrap.fill(str(lab), LABEL_CHARS, break_long_words=False).split("\n")
    )
    return min(LABEL_CHARS, longest) * pt * CHAR_WIDTH / 72 + 0.15


def _panel_grid(
    rows: int,
    cols: int,
    row_labels: Sequence[str] | None = None,
    colorbar: bool = False,
    title_lines: int = 1,
    suptitle: bool = False,
):
    """A grid of square image panels that fits the content column: panels shrink
    to make room for row labels and the colour bar (down to 0.6 in), so text never has to."""
    label_in = _row_label_inches(row_labels)
    bar_in = COLORBAR_INCHES if colorbar else 0.0
    # 0.3 in of slack: the tight bounding box of the saved PNG adds label padding and tick labels
    panel = min(PANEL_INCHES, max(0.6, (CONTENT_INCHES - label_in - bar_in - 0.3) / cols))
    title_in = title_lines * MIN_PT * 1.3 / 72
    height = rows * (panel + title_in) + (0.35 if suptitle else 0.0) + (0.6 if colorbar and rows < 3 else 0)
    fig = plt.figure(figsize=(cols * panel + label_in + bar_in + 0.1, height), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    fig._adv2_panel_inches = panel
    return fig, axes


def _set_row_label(ax, label: str) -> None:
    ax.set_ylabel(
        textwrap.fill(str(label), LABEL_CHARS, break_long_words=False),
        rotation=0,
        ha="right",
        va="center",
        fontsize=MIN_PT,
        labelpad=4,
    )


def add_map_colorbar(fig, axes, label: str = MAP_LABEL):
    """One colour bar for every map of ``axes`` (maps share the [0, 1] scale): on the right of a
    grid of three rows or more, below a shorter one, so its label always fits."""
    axes = list(getattr(axes, "flat", axes))
    rows = len({round(ax.get_position().y0, 3) for ax in axes})
    vertical = rows >= 3
    bar = fig.colorbar(
        ScalarMappable(Normalize(0, 1), MAP_CMAP),
        ax=axes,
        location="right" if vertical else "bottom",
        shrink=0.9 if vertical else 0.6,
        aspect=30,
        fraction=0.05,
        pad=0.02,
    )
    bar.set_label(label, fontsize=MIN_PT)
    bar.set_ticks([0, 0.5, 1])
    bar.ax.tick_params(labelsize=MIN_PT)
    fig._adv2_colorbars = getattr(fig, "_adv2_colorbars", 0) + 1
    return bar


def image_grid(
    images: torch.Tensor, titles: Sequence[str] | None = None, cols: int = 8, suptitle: str | None = None
):
    """A grid of images with optional titles (e.g. class names), wrapped to the panel width."""
    n = len(images)
    cols = min(cols, n)
    if titles is not None:
        # fewer, wider columns when a title holds a word too long for a panel (it cannot wrap)
        longest = max(len(w) for t in titles for w in str(t).replace("/", "/ ").split() or [""])
        word_in = longest * MIN_PT * CHAR_WIDTH / 72 + 0.15
        cols = max(1, min(cols, int((CONTENT_INCHES - 0.1) // max(0.7, word_in))))
    rows = (n + cols - 1) // cols
    with book_style():
        lines = 1
        if titles is not None:
            panel = min(PANEL_INCHES, max(0.7, (CONTENT_INCHES - 0.3) / cols))
            lines = max(wrap(t, panel).count("\n") + 1 for t in titles)
        fig, axes = _panel_grid(rows, cols, title_lines=lines, suptitle=bool(suptitle))
        for i, ax in enumerate(axes.flat):
            if i >= n:
                ax.axis("off")
                continue
            ax.imshow(to_display_image(images[i]), cmap="gray", vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(wrap(titles[i], fig._adv2_panel_inches), fontsize=MIN_PT)
        if suptitle:
            fig.suptitle(suptitle)
    fig._adv2_colorbars = 0
    return fig


def map_panel(
    ax, image: torch.Tensor, amap: torch.Tensor | None, title: str = "", overlay: bool = True
) -> None:
    """One panel: the image, or the map (upsampled) over a faded copy of the image."""
    size = image.shape[-1]
    if amap is None:
        ax.imshow(to_display_image(image), cmap="gray", vmin=0, vmax=1)
    else:
        if overlay:
            ax.imshow(to_display_image(image), cmap="gray", vmin=0, vmax=1, alpha=0.35)
        ax.imshow(
            upsample_map(amap, size),
            cmap=MAP_CMAP,
            vmin=0,
            vmax=1,
            alpha=0.75 if overlay else 1.0,
            interpolation="bilinear",
        )
    panel = getattr(ax.figure, "_adv2_panel_inches", PANEL_INCHES)
    ax.set_title(wrap(title, panel) if title else "", fontsize=MIN_PT)


def maps_grid(
    images: torch.Tensor,
    maps: dict[str, torch.Tensor],
    pictures: dict[str, torch.Tensor] | None = None,
    row_labels: Sequence[str] | None = None,
    suptitle: str | None = None,
    input_title: str = "Input",
    colorbar_label: str = MAP_LABEL,
):
    """Rows = images. Columns: the input, then ``pictures`` (other images, e.g. adversarial
    inputs, (N,C,H,W)), then ``maps`` (N,1,h,w) drawn over the input of the same row; one shared
    colour bar for the maps."""
    pictures = pictures or {}
    names = [input_title, *pictures, *maps]
    with book_style():
        fig, axes = _panel_grid(
            len(images), len(names), row_labels, colorbar=bool(maps), suptitle=bool(suptitle)
        )
        for r in range(len(images)):
            map_panel(axes[r, 0], images[r], None)
            for c, (_name, pics) in enumerate(pictures.items(), start=1):
                map_panel(axes[r, c], pics[r], None)
            for c, (_name, m) in enumerate(maps.items(), start=1 + len(pictures)):
                map_panel(axes[r, c], images[r], m[r])
            if row_labels is not None:
                _set_row_label(axes[r, 0], row_labels[r])
        for c, name in enumerate(names):
            axes[0, c].set_title(wrap(name, fig._adv2_panel_inches), fontsize=MIN_PT)
        if maps:
            add_map_colorbar(fig, axes, colorbar_label)
        if suptitle:
            fig.suptitle(suptitle)
    return fig


def style_axes(ax, pt: float) -> None:
    """Every text of a plot axes at ``pt`` points."""
    ax.tick_params(labelsize=pt)
    ax.xaxis.label.set_size(pt)
    ax.yaxis.label.set_size(pt)
    ax.title.set_size(pt)
    legend = ax.get_legend()
    if legend is not None:
        for t in legend.get_texts():
            t.set_fontsize(pt)


def figure_axes(ax=None, figsize: tuple[float, float] = (4.2, 2.8)):
    """``(fig, ax)``: the caller's ``ax`` and its figure, or a new figure of ``figsize``."""
    if ax is None:
        return plt.subplots(figsize=figsize, layout="constrained")
    return ax.figure, ax


def label_axes(ax, pt: float, xlabel: str, ylabel: str, title: str = "", grid_axis: str = "both") -> None:
    """Axis labels (the y label wrapped to the axes' height), title, legend and grid, every text at
    ``pt`` points."""
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.set_ylabel(wrap(ylabel, ax.figure.get_figheight() * 0.8, pt))
    if title:
        ax.set_title(title)
    ax.legend(frameon=False)
    ax.grid(alpha=0.3, axis=grid_axis)
    style_axes(ax, pt)


def panel_axes(
    n: int, cols: int = 2, height: float = 2.6, width: float = CONTENT_INCHES, sharex: bool = False
):
    """``n`` plot panels wrapped into rows of ``cols`` that fit the content column (instead of
    one row of ``n`` panels the book would shrink). Returns ``(fig, [ax, ...])``."""
    rows = (n + cols - 1) // cols
    with book_style():
        fig = plt.figure(figsize=(width, height * rows), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False, sharex=sharex)
        for ax in axes.flat[n:]:
            ax.axis("off")
    fig._adv2_colorbars = 0
    return fig, list(axes.flat[:n])


def curves(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str = "",
    ax=None,
):
    """Line plot of named (x, y) series. On a caller's ``ax``, text is sized so that it reads at
    least ``MIN_PT`` once the book scales that axes' figure to its content column."""
    with book_style():
        fig, ax = figure_axes(ax)
        pt = text_pt(fig.get_figwidth())
        for name, (xs, ys) in series.items():
            ax.plot(xs, ys, marker="o", markersize=3, label=name)
        label_axes(ax, pt, xlabel, ylabel, title)
    return fig


def interval_curves(
    xs: Sequence[float],
    series: dict[str, Sequence[Any]],
    xlabel: str,
    ylabel: str,
    title: str = "",
    ax=None,
    reference: float | None = None,
    reference_label: str = "",
    dashed: str | None = None,
):
    """Named series of :class:`adv2.core.stats.Estimate` (or None) against ``xs``: each value a marker
    on a line, its 95 % interval an error bar. ``reference``: a horizontal dotted line (a claim's
    threshold); series whose name contains ``dashed`` are drawn dashed. Text sized as
    :func:`curves`."""
    with book_style():
        fig, ax = figure_axes(ax)
        pt = text_pt(fig.get_figwidth())
        for name, estimates in series.items():
            vals = [None if e is None else getattr(e, "value", e) for e in estimates]
            keep = [i for i, v in enumerate(vals) if v is not None]
            ys = [float(vals[i]) for i in keep]
            errs = [interval_error(vals[i], estimates[i]) or (0.0, 0.0) for i in keep]
            ax.errorbar(
                [xs[i] for i in keep],
                ys,
                yerr=[[e[0] for e in errs], [e[1] for e in errs]] if errs else None,
                marker="o",
                markersize=3,
                capsize=3,
                linestyle="--" if dashed and dashed in name else "-",
                label=name,
            )
        if reference is not None:
            ax.axhline(reference, color="0.4", linestyle=":", linewidth=1, label=reference_label or None)
        ax.set_xticks(list(xs))
        label_axes(ax, pt, xlabel, ylabel, title)
    return fig


def _format_cell(v: Any, digits: int) -> str:
    """``digits`` significant digits without exponent notation; "—" for a missing value."""
    if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))):
        return "—"
    if isinstance(v, bool) or not isinstance(v, float):
        return str(v)
    if v == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    return f"{v:.{decimals}f}"


MISSING_NOTE = "— : no value in this run (not measured, or undefined, e.g. no successful attack)."


def markdown_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], digits: int = 3) -> str:
    """A Markdown table; floats shown with ``digits`` significant digits, missing values (None,
    NaN) as "—" with a footnote under the table."""
    body = [[_format_cell(v, digits) for v in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    missing = any(
        c == "—"
        for cells, row in zip(body, rows)
        for c, v in zip(cells, row)
        if not (isinstance(v, str) and v == "—")
    )
    return "\n".join(lines) + (f"\n\n{MISSING_NOTE}" if missing else "")


# ----------------------------------------------------------------------------- panels of maps (chapters 4-7)
def panel_rows(
    cells: Sequence[Sequence[tuple]],
    col_titles: Sequence[str],
    row_labels: Sequence[str] | None = None,
    suptitle: str | None = None,
    overlay: bool = False,
    colorbar_label: str = MAP_LABEL,
):
    """A free grid of panels. ``cells[r][c]`` is ``(image,)`` for a picture or ``(image, map)``
    for a map drawn over (``overlay``) or beside that image, optionally ``(image, map, title)``.
    Grids holding maps get one shared colour bar.

    Used for Figure 15 (Input | Input+Noise | RTS | RTSA per noise type and level) and Figure 16
    (benign / ADV2 inputs and their RTS / RTSA maps), where each map belongs to its own input.
    """
    rows = len(cells)
    cols = max(len(r) for r in cells)
    has_map = any(c is not None and len(c) > 1 and c[1] is not None for r in cells for c in r)
    with book_style():
        fig, axes = _panel_grid(
            rows, cols, row_labels, colorbar=has_map, suptitle=bool(suptitle), title_lines=2
        )
        panel = fig._adv2_panel_inches
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
                _set_row_label(axes[r, 0], row_labels[r])
        for c, name in enumerate(col_titles):
            if c < cols:
                own = axes[0, c].get_title()
                axes[0, c].set_title(wrap(name, panel) + ("\n" + own if own else ""), fontsize=MIN_PT)
        if has_map:
            add_map_colorbar(fig, axes, colorbar_label)
        else:
            fig._adv2_colorbars = 0
        if suptitle:
            fig.suptitle(suptitle)
    return fig


def interval_error(height: Any, interval: Any) -> tuple[float, float] | None:
    """``(below, above)`` error-bar lengths of an interval around ``height``: ``interval`` is an
    :class:`adv2.core.stats.Estimate` (or its dict) or a ``(low, high)`` pair; None draws no bar."""
    if interval is None or height is None:
        return None
    if isinstance(interval, dict):
        low, high = interval.get("low"), interval.get("high")
    elif hasattr(interval, "low") and hasattr(interval, "high"):
        low, high = interval.low, interval.high
    else:
        low, high = interval
    if low is None or high is None:
        return None
    h = float(height)
    return max(h - float(low), 0.0), max(float(high) - h, 0.0)
