"""Chapter 2's result: :class:`Ch02Result` (the results file's ``numbers`` and the prose's glue,
made by :func:`collect`) and the chapter's invariants (:func:`check`, explained when they fail)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from adv2.chapters._common import NOT_RUN, flat_glue, intervals_block, pad
from adv2.chapters._common import check as _check
from adv2.chapters.ch02.fmnist_maps import INTERPRETERS, Maps, Sanity, sanity_intervals
from adv2.chapters.ch02.photo_maps import PhotoRTSQuality, Photos, photo_rts_glue_names, result_key
from adv2.core.config import PHOTO_CLASSIFIER, PHOTO_CLASSIFIERS
from adv2.core.formatting import fmt
from adv2.core.phrases import PHOTO_CLASSIFIER_LABELS

ALL_ARCHS = ("resnet", "densenet")
MAP_SIZES = {"grad": 14, "cam": 7, "rts": 14, "mask": 14}  # on 28x28 Fashion-MNIST
PROSE_KEYS = (
    "deletion_auc",
    "random_deletion_auc",
    "preserve_destroy",
    "random_preserve_destroy",
    "mask_area_true_class",
    "mask_area_wrong_class",
)


# ----------------------------------------------------------------------------- result
@dataclass
class Ch02Result:
    """``numbers()`` is ``results/02_interpreters.json``'s ``numbers``; ``glue()`` what the prose
    quotes ("not run" for classifiers and interpreters the run left out). ``photos`` and
    ``photo_rts`` hold each photo classifier's section, by name (:func:`collect` makes them)."""

    sanity: Sanity
    photos: dict[str, Photos]
    per_image: dict[str, Any]
    photo_rts: dict[str, PhotoRTSQuality] = field(default_factory=dict)

    def numbers(self) -> dict[str, Any]:
        out = {arch: self.sanity.numbers[arch] for arch in self.sanity.archs}
        out["intervals"] = intervals_block(sanity_intervals(self.sanity))
        # EfficientNet-Lite0's keys always ({}: not run); another classifier's only where it ran
        for c in PHOTO_CLASSIFIERS:
            p, q = self.photos.get(c), self.photo_rts.get(c)
            if c == PHOTO_CLASSIFIER or p is not None:
                out[result_key(c)] = p.numbers if p is not None else {}
            if c == PHOTO_CLASSIFIER or q is not None:
                out[result_key(c) + "_rts"] = q.numbers() if q is not None else {}
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
        for q in self.photo_rts.values():
            out.update(q.glue())
        ran = [PHOTO_CLASSIFIER_LABELS[c] for c in PHOTO_CLASSIFIERS if c in self.photo_rts]
        out["ch2_photo_rts_classifiers"] = " and ".join(ran) if ran else NOT_RUN
        return pad(
            out,
            [
                f"ch2_{a}_{n}_{k}"
                for a in ALL_ARCHS
                for n in INTERPRETERS
                for k in PROSE_KEYS
                if n == "rts" or not k.startswith("mask_area")
            ]
            + [k for c in PHOTO_CLASSIFIERS for k in photo_rts_glue_names(c)],
        )


def _by_classifier(runs: Any) -> dict[str, Any]:
    """None, one section or ``{classifier: section}`` -> ``{classifier: section}``."""
    if runs is None:
        return {}
    if isinstance(runs, Mapping):
        return {c: r for c, r in runs.items() if r is not None}
    return {runs.classifier: runs}


def collect(sanity: Sanity, photos: Any = None, photo_rts: Any = None) -> Ch02Result:
    """The chapter's result. ``photos`` and ``photo_rts``: None, one classifier's section, or
    ``{classifier: section}`` (one per classifier of ``photo_classifiers``)."""
    photos, photo_rts = _by_classifier(photos), _by_classifier(photo_rts)
    per_image = {"fashion-mnist": sanity.per_image}
    for c, p in photos.items():
        per_image[result_key(c)] = p.per_image
    for c, q in photo_rts.items():
        per_image[result_key(c) + "_rts"] = q.per_image
    return Ch02Result(sanity, photos, per_image, photo_rts)


def check(result: Ch02Result, maps: Maps, profile: str) -> None:
    """The chapter's invariants; failures name expected, measured and what to change."""
    s = result.sanity
    for c, q in result.photo_rts.items():
        lo, hi = float(q.maps.min()), float(q.maps.max())
        side = -(-PHOTO_CLASSIFIERS[c] // 4)  # a quarter of the classifier's side: 56, 65
        _check(
            lo >= 0 and hi <= 1 and tuple(q.maps.shape[-2:]) == (side, side),
            f"{c}'s photo RTS maps are {tuple(q.maps.shape[-2:])} spanning [{lo:.4g}, {hi:.4g}]; "
            f"expected {side}x{side} maps in [0, 1] (an interpreter bug, not a parameter)",
        )
        if profile != "smoke":
            rts_auc, rand_auc = (q.estimates[r]["deletion_auc"].value for r in ("rts", "random"))
            _check(
                rts_auc < rand_auc,
                f"{c}'s photo RTS: deletion AUC {fmt(rts_auc)} is not below its shuffled maps' "
                f"{fmt(rand_auc)} on the held-out photos; retrain it with more iterations "
                "(adv2.trained.photo_recipes.PhotoRTSRecipe.phase2_iterations) or a larger pool",
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
