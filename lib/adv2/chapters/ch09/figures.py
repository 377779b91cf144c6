"""Chapter 9's figures: one attacked image through every interpreter, the transfer matrix and the
detector's ROC curves, each for one setting's :class:`adv2.chapters.ch09.report.SettingRun`."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from adv2.chapters import plotting
from adv2.chapters.ch09 import transfer
from adv2.chapters.ch09.report import ADAPTIVE, SettingRun, label, name_of, title
from adv2.core.formatting import fmt


def shown_images(run: SettingRun, n: int) -> list[int]:
    """The first ``n`` images on which every ADV2 attack succeeded (then the others, in order)."""
    every = torch.stack([run.ev.success[s] for s in run.ev.names]).all(0)
    order = every.nonzero().flatten().tolist() + (~every).nonzero().flatten().tolist()
    return order[:n]


def maps_figure(run: SettingRun, image: int | None = None):
    """One photo through all four interpreters: rows clean, PGD, ADV2 against each source (and the
    adaptive attacks); columns each interpreter's map (target class; clean: true class). The first
    image on which every ADV2 attack succeeded (else the first image)."""
    ev, src = run.ev, run.src
    if image is None:
        image = shown_images(run, 1)[0]
    inputs = {"clean": src.x, "pgd": src.x_pgd, **{s: src.x_adv[s] for s in ev.names}}
    inputs.update({ADAPTIVE[r.variant]: r.x_adv for r in run.adaptive if image < len(r.x_adv)})
    rows = list(inputs)
    images = torch.stack([inputs[a][image] for a in rows])
    maps = {
        name_of(t): torch.stack([(ev.benign[t] if a == "clean" else ev.at_target[a][t])[image] for a in rows])
        for t in ev.names
    }
    labels = ["clean (true class)"] + [
        label(a) + (" ✓" if bool(ev.success[a][image]) else " ✗") for a in rows[1:]
    ]
    return plotting.maps_grid(
        images, maps, row_labels=labels, suptitle=f"{title(run.setting)}: image {image}"
    )


def matrix_figure(run: SettingRun):
    """Heat map of the matrix: mean L1 to the benign map per (inputs, target), 95 % interval below."""
    est, names = run.matrix(), run.ev.names
    rows = [transfer.PGD, *names]
    values = np.array([[np.nan if est[r][t].value is None else est[r][t].value for t in names] for r in rows])
    mid = (
        np.nanmin(values) + 0.6 * (np.nanmax(values) - np.nanmin(values)) if np.isfinite(values).any() else 0
    )
    with plotting.book_style():
        fig, ax = plt.subplots(figsize=(plotting.CONTENT_INCHES, 4.6), layout="constrained")
        im = ax.imshow(values, cmap="viridis", aspect="auto")
        for i, r in enumerate(rows):
            for j, t in enumerate(names):
                e = est[r][t]
                text = "—" if e.value is None else f"{e.value:.3f}"
                if e.low is not None and e.high is not None:
                    text += f"\n[{e.low:.2f}, {e.high:.2f}]"
                dark = not np.isfinite(values[i, j]) or values[i, j] < mid
                ax.text(
                    j, i, text, ha="center", va="center", color="w" if dark else "k", fontsize=plotting.MIN_PT
                )
        ax.set_xticks(range(len(names)), [name_of(t) for t in names])
        ax.set_yticks(range(len(rows)), [label(r) for r in rows])
        ax.set_xlabel("seen through (target interpreter T)")
        fig.colorbar(im, ax=ax, label="mean L1 to T's benign map")
        ax.set_title(f"{title(run.setting)}: transfer matrix (diagonal: ADV2 against T itself)")
    fig._adv2_colorbars = 1
    return fig


def roc_figure(run: SettingRun):
    """ROC curves of the detector, one per attack (successful inputs against the clean images),
    with the chance diagonal."""
    auc = run.defense.auc()
    series = {f"{label(a)} (AUC {fmt(auc[a].value, 2)})": curve for a, curve in run.defense.roc().items()}
    with plotting.book_style():
        fig, ax = plt.subplots(figsize=(plotting.CONTENT_INCHES, 3.6), layout="constrained")
    plotting.curves(
        series, "false-positive rate (clean images flagged)", "true-positive rate",
        f"{title(run.setting)}: ensemble detector", ax=ax,
    )  # fmt: skip
    with plotting.book_style():
        ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", label="chance")
        ax.legend(frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=plotting.MIN_PT)
    fig._adv2_colorbars = 0
    return fig


__all__ = ["maps_figure", "matrix_figure", "roc_figure", "shown_images"]
