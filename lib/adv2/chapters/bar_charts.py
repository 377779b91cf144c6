"""Grouped bar charts in the book's style (:mod:`adv2.chapters.plotting`): one bar per group and
series, each with its error bar (an interval's asymmetric one, or ± a spread)."""

from __future__ import annotations

from typing import Any

import numpy as np

from adv2.chapters.plotting import book_style, figure_axes, interval_error, label_axes, text_pt


def grouped_bars(
    ax,
    names: list[str],
    series: list[str],
    value,
    ylabel: str,
    title: str,
    ticklabels: list[str] | None = None,
    colors: dict | None = None,
    labels: dict | None = None,
) -> None:
    """One bar per (group, series) on ``ax``; ``value(group, series)`` gives ``(height, error)``
    with ``None`` for a missing value or no error bar; ``error`` is one length (±) or a pair
    ``(below, above)`` (an interval's asymmetric bar)."""

    def num(v):
        return float("nan") if v is None else float(v)

    def two(e):
        if e is None:
            return (float("nan"), float("nan"))
        return (num(e[0]), num(e[1])) if isinstance(e, (tuple, list)) else (num(e), num(e))

    width = 0.8 / max(len(series), 1)
    pos = np.arange(len(names))
    for i, s in enumerate(series):
        pairs = [value(g, s) for g in names]
        errors = [e for _, e in pairs]
        ax.bar(
            pos + (i - (len(series) - 1) / 2) * width,
            [num(h) for h, _ in pairs],
            width,
            label=(labels or {}).get(s, s),
            color=(colors or {}).get(s),
            **(
                {}
                if all(e is None for e in errors)
                else {
                    "yerr": np.array([two(e) for e in errors]).T,
                    "capsize": 2,
                    "error_kw": {"elinewidth": 0.8},
                }
            ),
        )
    pt = text_pt(ax.figure.get_figwidth())
    ax.set_xticks(pos)
    ax.set_xticklabels(ticklabels or names)
    label_axes(ax, pt, "", ylabel, title, grid_axis="y")


def bar_compare(
    groups: dict[str, dict[str, float]],
    ylabel: str,
    title: str = "",
    ax=None,
    errors: dict[str, dict[str, Any]] | None = None,
):
    """Grouped bars: ``groups[group][series] = value`` (e.g. L1 per noise level, ours vs paper).

    ``errors[group][series]``: the value's 95 % interval (an :class:`adv2.core.stats.Estimate`, its
    dict or ``(low, high)``), drawn as an error bar; missing entries draw none."""
    with book_style():
        fig, ax = figure_axes(ax, figsize=(4.8, 2.8))
        series = list(dict.fromkeys(s for g in groups.values() for s in g))

        def value(g, s):
            h = groups[g].get(s)
            return h, interval_error(h, (errors or {}).get(g, {}).get(s))

        grouped_bars(ax, list(groups), series, value, ylabel, title)
    return fig
