"""Figures a reader can read: every attribution-map grid carries a colour bar saying what high
means, every text reads at >= 9 pt once the book scales the figure to its content column, long
class names are wrapped and never cut, and importing the module leaves matplotlib's style alone."""

from __future__ import annotations

import os
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from adv2.chapters import attack_figures, bar_charts, plotting  # noqa: E402

LONG = ["T-shirt/top → Ankle boot", "Pullover → Sneaker", "great white shark → hammerhead"]


def images(n=3, c=1, size=28):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(0))


def maps(n=3, size=14):
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(1))


def shown_width_inches(fig) -> float:
    """Width of the PNG the book embeds (saved with bbox_inches="tight")."""
    fig.canvas.draw()
    return fig.get_tightbbox(fig.canvas.get_renderer()).width


def small_texts(fig) -> list[str]:
    width = shown_width_inches(fig)
    out = []
    for t in fig.findobj(Text):
        if t.get_visible() and t.get_text().strip() and t.get_figure() is not None:
            pt = t.get_fontsize() * min(1.0, plotting.CONTENT_INCHES / width)  # as the book scales it
            if pt < plotting.MIN_PT - 1e-6:
                out.append(f"{t.get_text()!r}: {pt:.1f} pt")
    return out


def colorbar_labels(fig) -> list[str]:
    return [
        ax._colorbar.ax.get_ylabel() or ax._colorbar.ax.get_xlabel()
        for ax in fig.axes
        if getattr(ax, "_colorbar", None) is not None
    ]


def all_text(fig) -> str:
    return " ".join(" ".join(t.get_text().split()) for t in fig.findobj(Text))


def map_figures():
    x = images()
    yield (
        "maps_grid",
        plotting.maps_grid(
            x,
            {"GRAD": maps(), "CAM": maps(), "RTS": maps(), "MASK": maps()},
            row_labels=LONG,
            suptitle="small resnet",
        ),
    )
    cells = [
        [
            (x[i],),
            (x[i], maps()[i]),
            (x[i],),
            (x[i], maps()[i]),
            (x[i], maps()[i]),
            (x[i],),
            (x[i], maps()[i]),
        ]
        for i in range(3)
    ]
    yield (
        "panel_rows (Figure 16)",
        plotting.panel_rows(
            cells,
            ["Benign", "RTS", "ADV2 (vs RTS)", "RTS", "RTSA", "ADV2 (vs RTSA)", "RTSA"],
            row_labels=LONG,
            suptitle="Figure 16",
        ),
    )
    yield (
        "attack_triptych",
        attack_figures.attack_triptych(
            x, maps(), x, maps(), x, maps(), row_labels=LONG, suptitle="GRAD on resnet"
        ),
    )
    yield "maps_grid one row", plotting.maps_grid(x[:1], {"RTS": maps()[:1], "RTSA": maps()[:1]})


def other_figures():
    x = images(20)
    yield "image_grid", plotting.image_grid(x, [LONG[i % 3] for i in range(20)], cols=10)
    yield (
        "curves",
        plotting.curves(
            {"resnet": ([0, 1, 2], [1, 0.5, 0.2])}, "training step", "accuracy (1 000 test images)"
        ),
    )
    fig, axes = plotting.panel_axes(4, cols=2)
    for ax in axes:
        plotting.curves({"resnet": ([0, 1], [1, 0])}, "AID iteration", "-l_aid (benign/ADV2 map L1)", ax=ax)
    yield "panel_axes + curves", fig
    # a caller's over-wide figure: text grows so that it still reads at 9 pt once scaled down
    fig, axes = plt.subplots(1, 4, figsize=(15, 2.9))
    for ax in axes:
        plotting.curves({"resnet": ([0, 1], [1, 0])}, "AID iteration", "inner ADV2 success", ax=ax)
    yield "curves on a 15-inch figure", fig
    yield "bar_compare", bar_charts.bar_compare({"GRAD": {"map": 0.5, "shuffled map": 0.1}}, "p&d")
    stats = {
        n: {
            "pgd": {"l1_mean": 0.2, "l1_std": 0.1, "iou_ks": [0.1, 0.2], "iou_curve": [0.3, 0.4]},
            "adv2": {"l1_mean": 0.1, "l1_std": 0.05, "iou_ks": [0.1, 0.2], "iou_curve": [0.6, 0.7]},
        }
        for n in ("grad", "cam", "rts", "mask")
    }
    yield "attack_distance_bars", attack_figures.attack_distance_bars(stats, "l1")
    yield "iou_curve_panels", attack_figures.iou_curve_panels({"resnet": stats, "densenet": stats})


@pytest.mark.parametrize("name,fig", list(map_figures()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_map_grid_has_a_labelled_colorbar(name, fig):
    assert getattr(fig, "_adv2_colorbars", 0) == 1, f"{name}: no colour bar recorded"
    assert colorbar_labels(fig) == [plotting.MAP_LABEL], f"{name}: {colorbar_labels(fig)}"
    plt.close(fig)


@pytest.mark.parametrize(
    "name,fig", list(map_figures()) + list(other_figures()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_text_reads_at_9pt_in_the_book(name, fig):
    small = small_texts(fig)
    assert not small, f"{name}: text below {plotting.MIN_PT} pt at the book's width: {small}"
    plt.close(fig)


def test_long_labels_are_wrapped_not_cut():
    fig = next(map_figures())[1]
    text = all_text(fig)
    for label in LONG:
        assert label in text, f"row label {label!r} was cut or lost: {text}"
    plt.close(fig)


def test_no_figure_without_maps_claims_a_colorbar():
    for name, fig in other_figures():
        assert not colorbar_labels(fig), name
        plt.close(fig)


def test_tables_use_dashes_for_missing_values_and_3_significant_digits():
    table = plotting.markdown_table(
        [["a", 0.031234, None, float("nan"), 346.7, 12]], ["k", "x", "y", "z", "s", "n"]
    )
    assert "| a | 0.0312 | — | — | 347 | 12 |" in table
    assert plotting.MISSING_NOTE in table
    assert "nan" not in table and "None" not in table
    assert plotting.MISSING_NOTE not in plotting.markdown_table([[0.5]], ["x"])


@pytest.mark.slow  # a real subprocess: in `make test`, not in `make test-fast`
def test_import_leaves_matplotlib_style_alone():
    code = (
        "import matplotlib as m; before = dict(m.rcParams); import adv2.chapters.plotting; "
        "changed = [k for k, v in m.rcParams.items() if before[k] != v]; "
        "assert not changed, changed"
    )
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _error_segments(ax):
    """(low, high) of every error bar drawn on ``ax``, in drawing order."""
    out = []
    for c in ax.containers:
        if c.__class__.__name__ == "ErrorbarContainer":
            for seg in c.lines[2][0].get_segments():
                if len(seg) == 2:  # a NaN error (no interval) draws an empty segment
                    out.append((float(seg[0][1]), float(seg[1][1])))
    return out


def test_interval_error_bars_are_drawn_where_the_interval_is():
    from adv2.core.stats import Estimate

    stats = {
        "cam": {"pgd": {"l1_mean": 0.4, "l1_std": 0.1}, "adv2": {"l1_mean": 0.1, "l1_std": 0.05}},
        "grad": {"pgd": {"l1_mean": 0.3, "l1_std": 0.1}, "adv2": {"l1_mean": None}},
    }
    errors = {
        "cam": {
            "pgd": Estimate(0.4, 0.35, 0.48, 20, "bootstrap 95%"),
            "adv2": {"value": 0.1, "low": 0.05, "high": 0.2},
        },
        "grad": {"pgd": (0.25, 0.33)},
    }
    fig = attack_figures.attack_distance_bars(stats, "l1", errors=errors)
    segs = _error_segments(fig.axes[0])
    # asymmetric bars, from each interval's low to its high (NaN where none was given)
    finite = sorted(s for s in segs if all(v == v for v in s))
    flat = [v for s in finite for v in s]
    assert len(finite) == 3 and flat == pytest.approx([0.05, 0.2, 0.25, 0.33, 0.35, 0.48])
    plt.close(fig)
    fig = bar_charts.bar_compare(
        {"0%": {"RTS": 0.1, "RTSA": 0.2}}, "L1", errors={"0%": {"RTSA": (0.15, 0.3)}}
    )
    assert [s for s in _error_segments(fig.axes[0]) if all(v == v for v in s)] == [pytest.approx((0.15, 0.3))]
    plt.close(fig)
    fig = bar_charts.bar_compare({"0%": {"RTS": 0.1}}, "L1")  # no errors: no error bars
    assert _error_segments(fig.axes[0]) == []
    plt.close(fig)
