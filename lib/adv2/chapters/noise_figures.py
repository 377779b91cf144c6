"""Figure 15 from chapter 5's measurements (:func:`adv2.chapters.ch05.sensitivity` dicts): its
tables, ours with 95 % intervals beside the paper's (over the calibration images, and the training
seeds when further seeds' measurements are given) and split into flipped / kept images, and its
panels of noisy inputs with their RTS and RTSA maps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from adv2.chapters._reporting import table
from adv2.core import noise
from adv2.core.seed_stats import mean_ci_seeds, ratio_ci_seeds

INTERPRETERS = ("rts", "rtsa")


def level_names(rates: Sequence[float]) -> list[str]:
    return [noise.level_name(r) for r in rates]


def l1_intervals(by_seed: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{interp: {kind: {level: 95 % interval}}}`` of the mean L1 from the per-image L1 of one
    classifier per training seed (each ``{interp: {kind: {level: per image}}}``, the same images;
    ``train_seed``'s first): bootstrap over the images, plus Student's t over the seeds when
    several (:mod:`adv2.core.seed_stats`)."""
    per = by_seed[0]
    return {
        i: {k: {lvl: mean_ci_seeds([r[i][k][lvl] for r in by_seed]) for lvl in per[i][k]} for k in per[i]}
        for i in per
    }


def fig15_tables(
    sens: Mapping[str, Mapping[str, Any]],
    rates: Sequence[float],
    more: Sequence[Mapping[str, Mapping[str, Any]]] = (),
) -> str:
    """Figure 15's table per classifier, ours (with 95 % intervals) beside the paper's (ResNet-50),
    and the RTSA / RTS ratios at the strongest level with their intervals; ``more``: the further
    training seeds' ``sens`` (the same images), pooled into the intervals."""
    parts = []
    levels = level_names(rates)
    top = max(levels, key=lambda lvl: float(lvl.rstrip("%")))
    for a, s in sens.items():
        per = s.get("per_sample")
        runs = [per, *(m[a]["per_sample"] for m in more)] if per else []
        # ours with the 95 % interval over the calibration images ("value [low, high]")
        l1 = l1_intervals(runs) if per else s["l1"]
        rows, headers = noise.fig15_rows(l1, levels)
        text = f"**{a}** (ours) beside the paper (ResNet-50, ImageNet)\n\n" + table(rows, headers)
        if per and all(top in per[i].get(k, {}) for i in INTERPRETERS for k in noise.NOISE_TYPES):
            ratios = {
                k: ratio_ci_seeds([r["rtsa"][k][top] for r in runs], [r["rts"][k][top] for r in runs])
                for k in noise.NOISE_TYPES
            }
            text += (
                f"\n\nRatio RTSA / RTS at {top} (95 % interval, paired bootstrap): "
                + ", ".join(f"{k} {v}" for k, v in ratios.items())
                + "."
            )
        parts.append(text)
    return "\n\n".join(parts)


def flipped_kept_table(sens: Mapping[str, Mapping[str, Any]], rates: Sequence[float]) -> str:
    """The same L1 split into images the noise misclassified (flipped) and the others (kept)."""
    rows = [
        [
            a,
            name.upper(),
            kind,
            lvl,
            s["n_flipped"][kind][lvl],
            s["l1_flipped"][name][kind][lvl],
            s["l1_kept"][name][kind][lvl],
        ]
        for a, s in sens.items()
        for name in INTERPRETERS
        for kind in noise.NOISE_TYPES
        for lvl in level_names(rates)
    ]
    return table(
        rows, ["classifier", "interpreter", "noise", "level", "flipped images", "L1 flipped", "L1 kept"]
    )


def figure15_cells(
    sens: Mapping[str, Mapping[str, Any]],
    cal: Mapping[str, Any],  # {arch: adv2.chapters.ch05.Calibration}
    class_names: Sequence[str],
    figure_arch: str,
    rates: Sequence[float],
) -> tuple[list[list[tuple]], list[str], str]:
    """Figure 15's panels for :func:`adv2.chapters.plotting.panel_rows`: per noise type and non-zero level,
    the first calibration image the noise misclassifies (the first image if none flipped).
    Returns ``(cells, row_labels, arch shown)``; ``figure_arch`` falls back to the first run arch."""
    fa = figure_arch if figure_arch in sens else next(iter(sens))
    s, y = sens[fa], cal[fa].y
    cells, labels = [], []
    for kind in noise.NOISE_TYPES:
        for lvl in level_names(rates):
            if lvl == "0%":
                continue
            flipped = (s["pred"][kind][lvl] != y).nonzero().flatten()
            i = int(flipped[0]) if len(flipped) else 0
            xn, pred = s["noisy"][kind][lvl][i], int(s["pred"][kind][lvl][i])
            title = f"{class_names[int(y[i])]} → {class_names[pred]}"
            cells.append(
                [
                    (cal[fa].x[i], None, title),
                    (xn, None),
                    (xn, s["maps"][kind][lvl]["rts"][i]),
                    (xn, s["maps"][kind][lvl]["rtsa"][i]),
                ]
            )
            labels.append(f"{kind} {lvl}")
    return cells, labels, fa
