"""The photo classifiers' RTS and RTSA (EfficientNet-Lite0 at 224 px, the default, or -Lite2 at 260
px: :data:`adv2.core.config.PHOTO_CLASSIFIERS`): trained on the offline photo pool at the
classifier's side, cached, and shipped as committed checkpoints (:mod:`adv2.trained.checkpoints`);
``python -m adv2 checkpoint rts|rtsa [--classifier NAME]`` (:func:`main`) trains one with the
library's own code and writes its checkpoint.

Design (issue 14): ADV2 asks RTS for the *target* class's map, any of 1000 classes, while a small
pool shows only a few dozen; so the class selector is tied to the classifier's own head
(:class:`adv2.core.interpreters.rts.TiedSelector`: ``act`` is the class's CAM logit map times a
learned scale) and only the decoder learns. A 1x1 reduction of the 1280-channel last stage keeps
the decoder small. Labels are the classifier's own predictions (the RTS and AID objectives need no
ground truth). The recipes (:class:`adv2.trained.photo_recipes.PhotoRTSRecipe`,
:class:`adv2.trained.photo_recipes.PhotoRTSARecipe`) are the cache keys; the pool's content fingerprint
is recorded in the metrics but not in the key, so the checkpoints load on a machine without the
pool's Debian packages.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from typing import Any

import torch
from torch import nn

from adv2.core.config import PHOTO_CLASSIFIER, PHOTO_CLASSIFIERS, ParameterError
from adv2.core.defenses import train_rtsa
from adv2.core.interpreters.rts import RTSNet, frozen_rts_from_state
from adv2.core.interpreters.rts_training import train_rts
from adv2.core.tensors import predicted_classes
from adv2.trained import checkpoint_pins
from adv2.trained.artifacts import Artifact, load_or_compute
from adv2.trained.cached import InterpretedModel
from adv2.trained.checkpoints import display_path, machine_description, save_checkpoint
from adv2.trained.data import Dataset, imagenet_class_names, load_imagenet_sample
from adv2.trained.photo_recipes import POOLS, PhotoRTSARecipe, PhotoRTSRecipe
from adv2.trained.photopool import PACKAGE_POOL_KINDS, load_imagenette_pool, load_photo_pool
from adv2.trained.pretrained import efficientnet_lite


# ----------------------------------------------------------------------------- the pool
def load_pool(recipe: PhotoRTSRecipe, pool_dir: str | None = None) -> Dataset:
    """The training pool of ``recipe`` (:func:`adv2.trained.photopool.load_photo_pool`, or
    Imagenette from ``pool_dir`` / ``$ADV2_IMAGENETTE_DIR``), at the side of the recipe's classifier."""
    side = PHOTO_CLASSIFIERS[recipe.arch]
    if recipe.pool in PACKAGE_POOL_KINDS:
        return load_photo_pool(side, recipe.pool_images, recipe.seed, recipe.mosaic_prob, kind=recipe.pool)
    if recipe.pool == "imagenette":
        root = pool_dir or os.environ.get("ADV2_IMAGENETTE_DIR")
        if not root:
            raise ParameterError(
                "pool='imagenette' needs pool_dir (or $ADV2_IMAGENETTE_DIR): the folder holding "
                "torchvision's imagenette2-320/"
            )
        return load_imagenette_pool(root, side, recipe.pool_images, recipe.seed, recipe.mosaic_prob)
    raise ParameterError(f"pool={recipe.pool!r} is not one of {list(POOLS)}")


def photo_pool_images(rts_recipe: Any = None, n_images: int | None = None) -> Any:
    """The natural-image pool of the photo RTS recipe (no attacked photo in it): uint8 images
    (N, 3, side, side) at its classifier's side, as its photo RTS was trained on. ``n_images``: only
    the first ones (the crops are drawn in a seeded sequence, so they are the pool's first images)."""
    recipe = rts_recipe or PhotoRTSRecipe()
    if n_images is not None and getattr(recipe, "pool", None) in PACKAGE_POOL_KINDS:
        recipe = dataclasses.replace(recipe, pool_images=min(int(n_images), recipe.pool_images))
    return load_pool(recipe).x_train


# ----------------------------------------------------------------------------- RTS
def train_photo_rts(
    model: nn.Module,
    recipe: PhotoRTSRecipe,
    *,
    device: Any = "cpu",
    progress: bool = True,
    pool_dir: str | None = None,
) -> tuple[RTSNet, dict[str, Any]]:
    """Pool -> the classifier's labels -> :func:`adv2.core.interpreters.rts.train_rts`. Metrics add
    the pool's composition, labelling time, images/s and the machine."""
    started = time.time()
    pool = load_pool(recipe, pool_dir)
    t0 = time.time()
    y = predicted_classes(model, pool.x_train.float() / 255, batch_size=16, device=device)
    label_seconds = time.time() - t0
    net, metrics = train_rts(
        model,
        pool.x_train,
        y,
        device=device,
        progress=progress,
        single_thread=False,  # 224-px photos: two threads pay (nothing trains beside it)
        **recipe.train_rts_kwargs(),
    )
    seen = metrics["images_seen"]
    metrics.update(
        {
            "pool_fingerprint": pool.fingerprint,
            "pool_photos_per_source": pool.extra["photos_per_source"],
            "pool_excluded": pool.extra["excluded"],
            "pool_images": len(pool.x_train),
            "pool_mosaics": pool.extra["mosaics"],
            "pool_distinct_labels": int(y.unique().numel()),
            "label_seconds": label_seconds,
            "train_seconds": metrics["seconds"],
            "images_per_second": seen / max(metrics["seconds"], 1e-9),
            "seconds": time.time() - started,  # pool + labels + training
            "machine": machine_description(),
        }
    )
    return net, metrics


def load_photo_rts(
    recipe: PhotoRTSRecipe | None = None,
    *,
    device: Any = "cpu",
    artifacts_dir: str | None = None,
    progress: bool = True,
    retrain: bool = False,
    pool_dir: str | None = None,
) -> tuple[RTSNet, Artifact]:
    """The RTS of the recipe's photo classifier (``recipe.arch``, ImageNet class names): from
    the artifact cache, else the committed checkpoint (``checkpoints/rts-<key>.pt``), else trained
    on the recipe's pool (``retrain=True``: trained in any case). The net's ``.encoder`` is a
    frozen copy of the classifier, so ``RTSInterpreter(model, rts)`` and
    :func:`adv2.core.defenses.train_rtsa` take it as they take a Fashion-MNIST RTS. ``pool_dir``:
    the Imagenette folder for ``pool="imagenette"``. :func:`status_line` says which happened."""
    recipe = recipe or PhotoRTSRecipe()
    model = efficientnet_lite(imagenet_class_names(), recipe.arch)
    device = torch.device(device)
    # the resolved map side (None: a quarter of the classifier's); the rest is read from the state
    options = {"map_size": recipe.train_rts_kwargs()["map_size"], "width": recipe.width}

    def compute() -> tuple[dict, dict]:
        net, metrics = train_photo_rts(model, recipe, device=device, progress=progress, pool_dir=pool_dir)
        state = {k: v.cpu() for k, v in net.state_dict().items() if not k.startswith("encoder.")}
        return state, metrics

    def check(state: dict) -> None:
        frozen_rts_from_state(model, state, device="cpu", source="cached photo RTS", **options)

    art = load_or_compute(
        "rts", recipe.cache_params(), compute, root=artifacts_dir, force=retrain, check=check
    )
    net = frozen_rts_from_state(model, art.state, device=device, source=f"photo RTS at {art.path}", **options)
    return net, art


def status_line(art: Artifact) -> str:
    """One sentence for a chapter: where a photo model came from and what its training cost
    ("loaded from the committed checkpoint ...", "trained here in N min ...", "loaded from the
    artifact cache ...")."""
    m = art.metrics
    cost = ""
    if m.get("seconds") is not None:
        cost = f"{m['seconds'] / 60:.1f} min"
        if m.get("images_per_second"):
            cost += f", {m['images_per_second']:.2f} images/s"
        if m.get("machine"):
            cost += f" on {m['machine']}"
    if art.origin == "checkpoint" or (art.origin == "cache" and art.checkpoint):
        return f"loaded from the committed checkpoint {art.checkpoint} (trained once in {cost})"
    if art.origin == "computed":
        why = f" ({art.note})" if art.note else ""
        return f"trained here in {cost}{why}"
    return f"loaded from the artifact cache {art.path} (trained here earlier in {cost})"


# ----------------------------------------------------------------------------- RTSA
def _photo_probe(model: nn.Module, n: int) -> tuple[Any, Any]:
    """The first ``n`` held-out photos the classifier gets right, with their labels: training
    only logs the benign drift on them (AID never trains on them)."""
    photos = load_imagenet_sample(size=model.input_size)
    keep = photos.y_test >= 0
    x, y = photos.x_test[keep], photos.y_test[keep]
    with torch.no_grad():
        ok = model(x).argmax(1) == y
    return x[ok][:n], y[ok][:n]


def load_photo_rtsa(
    recipe: PhotoRTSARecipe | None = None,
    *,
    device: Any = "cpu",
    artifacts_dir: str | None = None,
    progress: bool = True,
    retrain: bool = False,
    model: nn.Module | None = None,
    rts: RTSNet | None = None,
    rts_artifact: Artifact | None = None,
    pool: Any = None,
) -> tuple[RTSNet, Artifact]:
    """The photo RTSA of ``recipe``: the cache, else the committed checkpoint when its key
    matches, else trained here by :func:`adv2.core.defenses.train_rtsa` (``retrain`` forces it).

    ``model`` / ``rts`` + ``rts_artifact`` / ``pool`` (images in [0, 1]) are the classifier, the
    photo RTS and the natural-image pool when already loaded (tests pass stand-ins); otherwise
    they come from :func:`adv2.trained.pretrained.efficientnet_lite`, :func:`load_photo_rts` and
    :func:`photo_pool_images`. The artifact's metrics record the training log, its seconds, and
    ``pool_images``."""
    recipe = recipe or PhotoRTSARecipe()
    if model is None:
        model = efficientnet_lite(imagenet_class_names(), recipe.rts_recipe().arch)
    model = model.to(device).eval()
    if rts is None or rts_artifact is None:
        rts, rts_artifact = load_photo_rts(
            recipe.rts_recipe(), device=device, artifacts_dir=artifacts_dir, progress=progress, retrain=False
        )
    cfg = recipe.aid_config()

    def compute() -> tuple[dict, dict]:
        n = recipe.train_images
        x_pool = pool[:n] if pool is not None else photo_pool_images(recipe.rts_recipe(), n_images=n)
        # the classifier's own decisions (the RTS/AID objectives need no ground truth)
        y_pool = predicted_classes(model, x_pool, 16, device)
        xp, yp = _photo_probe(model, recipe.n_probe) if recipe.n_probe else (None, None)
        torch.manual_seed(cfg.seed)
        net, metrics = train_rtsa(
            model, rts, x_pool, y_pool, cfg, x_probe=xp, y_probe=yp, device=device, progress=progress
        )
        metrics["rts_seconds"] = rts_artifact.metrics.get("seconds")
        metrics["pool_images"] = int(len(x_pool))
        metrics["threads"] = torch.get_num_threads()
        metrics["machine"] = machine_description()
        # the encoder copy is the classifier's unless AID trained it: then it is part of RTSA
        state = {
            k: v.cpu()
            for k, v in net.state_dict().items()
            if cfg.train_encoder or not k.startswith("encoder.")
        }
        return state, metrics

    options = {"map_size": rts.map_size, "width": rts.width}

    def check(state: dict) -> None:
        frozen_rts_from_state(model, state, device="cpu", source="photo RTSA", **options)

    art = load_or_compute(
        "rtsa", recipe.cache_params(), compute, root=artifacts_dir, force=retrain, check=check
    )
    net = frozen_rts_from_state(
        model, art.state, device=device, source=f"photo RTSA at {art.path}", **options
    )
    return net, art


# duplicates (boilerplate): the photo loaders share their keyword-only signature (device, cache,
# progress); rtsa_of forwards them one per line like rts_training's and aid_eval's calls (listed
# in lib/adv2/README.md)
def load_photo_interpreted(
    recipe: PhotoRTSARecipe | None = None,
    *,
    device: Any = "cpu",
    artifacts_dir: str | None = None,
    progress: bool = True,
    control: bool = True,
    classifier: str | None = None,
) -> InterpretedModel:
    """A photo classifier with its photo RTS, RTSA and (``control``) RTSA's beta = 0 control (arch
    ``"photos"``), for chapters 4-6: ``classifier`` (None: the recipe's; without a recipe,
    EfficientNet-Lite0) selects the default recipe of that classifier."""
    if recipe is None:  # Lite0's: the default recipe's key
        recipe = PhotoRTSARecipe.for_classifier(classifier or PHOTO_CLASSIFIER)
    if classifier is not None and recipe.rts_recipe().arch != classifier:
        raise ParameterError(
            f"load_photo_interpreted: classifier={classifier!r}, but the recipe's RTS is "
            f"{recipe.rts_recipe().arch!r}'s; give one of them"
        )
    model = efficientnet_lite(imagenet_class_names(), recipe.rts_recipe().arch).to(device).eval()
    rts, rts_art = load_photo_rts(
        recipe.rts_recipe(), device=device, artifacts_dir=artifacts_dir, progress=progress, retrain=False
    )

    def rtsa_of(r: PhotoRTSARecipe) -> tuple[RTSNet, Artifact]:
        return load_photo_rtsa(
            r,
            device=device,
            artifacts_dir=artifacts_dir,
            progress=progress,
            model=model,
            rts=rts,
            rts_artifact=rts_art,
        )

    rtsa, rtsa_art = rtsa_of(recipe)
    ctl, ctl_art = rtsa_of(recipe.control()) if control else (None, None)
    return InterpretedModel("photos", model, None, rts, rts_art, rtsa, rtsa_art, ctl, ctl_art)


# ----------------------------------------------------------------------------- python -m adv2 checkpoint
def main(argv: list[str]) -> int:
    """``python -m adv2 checkpoint {rts,rtsa,control} [--classifier NAME] [--retrain]``: train (or
    load) a photo classifier's default RTS, RTSA or RTSA's beta = 0 control with this library, write
    ``checkpoints/<kind>-<key>.pt`` with its manifest entry (what produced the committed ones) and
    print the line that pins it."""
    parser = argparse.ArgumentParser(prog="python -m adv2 checkpoint", description=main.__doc__)
    parser.add_argument(
        "kind", choices=("rts", "rtsa", "control"), help="the photo RTS, RTSA or RTSA's beta = 0 control"
    )
    parser.add_argument(
        "--classifier",
        choices=tuple(PHOTO_CLASSIFIERS),
        default=PHOTO_CLASSIFIER,
        help=f"the photo classifier (default {PHOTO_CLASSIFIER})",
    )
    parser.add_argument("--retrain", action="store_true", help="train even when cached or committed")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("ADV2_THREADS", "1")))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rts = PhotoRTSRecipe(arch=args.classifier)
    rtsa = PhotoRTSARecipe.for_classifier(args.classifier)  # Lite0's: the default recipe's key
    recipe = {"rts": rts, "rtsa": rtsa, "control": rtsa.control()}[args.kind]
    print(recipe, flush=True)
    load = load_photo_rts if args.kind == "rts" else load_photo_rtsa
    _net, art = load(recipe, retrain=args.retrain)
    print(status_line(art), flush=True)
    if args.kind != "rts":
        m = art.metrics
        print(
            f"AID: {recipe.iterations} iterations, {m.get('seconds_per_iteration', float('nan')):.1f} s each, "
            f"final benign drift on the probe photos {m.get('final_probe_drift')}",
            flush=True,
        )
    path = save_checkpoint("rts" if args.kind == "rts" else "rtsa", art.params, art.state, art.metrics)
    print("checkpoint:", display_path(path), flush=True)
    print("pin line:", checkpoint_pins.pin_line(path).strip(), flush=True)
    return 0
