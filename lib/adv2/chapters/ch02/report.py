"""Chapter 2's result: :class:`Ch02Result` (the results file's ``numbers`` and the prose's glue,
made by :func:`collect`) and the chapter's invariants (:func:`check`, explained when they fail)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from adv2.chapters._common import check as _check
from adv2.chapters._common import flat_glue, intervals_block, pad
from adv2.chapters.ch02.fmnist_maps import INTERPRETERS, Maps, Sanity, sanity_intervals
from adv2.chapters.ch02.photo_maps import PHOTO_RTS_GLUE, PhotoRTSQuality, Photos
from adv2.core.formatting import fmt

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
    quotes ("not run" for classifiers and interpreters the run left out)."""

    sanity: Sanity
    photos: Photos | None
    per_image: dict[str, Any]
    photo_rts: PhotoRTSQuality | None = None

    def numbers(self) -> dict[str, Any]:
        out = {arch: self.sanity.numbers[arch] for arch in self.sanity.archs}
        out["intervals"] = intervals_block(sanity_intervals(self.sanity))
        out["efficientnet_lite0"] = self.photos.numbers if self.photos else {}
        out["efficientnet_lite0_rts"] = self.photo_rts.numbers() if self.photo_rts else {}
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
        out.update(self.photo_rts.glue() if self.photo_rts else {})
        return pad(
            out,
            [
                f"ch2_{a}_{n}_{k}"
                for a in ALL_ARCHS
                for n in INTERPRETERS
                for k in PROSE_KEYS
                if n == "rts" or not k.startswith("mask_area")
            ]
            + PHOTO_RTS_GLUE,
        )


def collect(
    sanity: Sanity, photos: Photos | None = None, photo_rts: PhotoRTSQuality | None = None
) -> Ch02Result:
    per_image = {"fashion-mnist": sanity.per_image}
    if photos is not None:
        per_image["efficientnet_lite0"] = photos.per_image
    if photo_rts is not None:
        per_image["efficientnet_lite0_rts"] = photo_rts.per_image
    return Ch02Result(sanity, photos, per_image, photo_rts)


def check(result: Ch02Result, maps: Maps, profile: str) -> None:
    """The chapter's invariants; failures name expected, measured and what to change."""
    s = result.sanity
    q = result.photo_rts
    if q is not None:
        lo, hi = float(q.maps.min()), float(q.maps.max())
        _check(
            lo >= 0 and hi <= 1 and tuple(q.maps.shape[-2:]) == (56, 56),
            f"photo RTS maps are {tuple(q.maps.shape[-2:])} spanning [{lo:.4g}, {hi:.4g}]; expected "
            "56x56 maps in [0, 1] (an interpreter bug, not a parameter)",
        )
        if profile != "smoke":
            rts_auc, rand_auc = (q.estimates[r]["deletion_auc"].value for r in ("rts", "random"))
            _check(
                rts_auc < rand_auc,
                f"photo RTS: deletion AUC {fmt(rts_auc)} is not below its shuffled maps' "
                f"{fmt(rand_auc)} on the held-out photos; retrain it with more iterations "
                "(adv2.trained.recipes.PhotoRTSRecipe.phase2_iterations) or a larger pool",
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
