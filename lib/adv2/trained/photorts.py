"""The RTS of the photo classifier (EfficientNet-Lite0, 224 px): trained on the offline photo
pool, cached, and shipped as a committed checkpoint (:mod:`adv2.trained.checkpoints`).

Design (issue 14): ADV2 asks RTS for the *target* class's map, any of 1000 classes, while a small
pool shows only a few dozen; so the class selector is tied to the classifier's own head
(:class:`adv2.core.interpreters.rts.TiedSelector`: ``act`` is the class's CAM logit map times a learned
scale) and only the decoder learns. A 1x1 reduction of the 1280-channel last stage keeps the
decoder small. Labels are the classifier's own predictions (the RTS objective needs no ground
truth). The recipe (:class:`adv2.trained.recipes.PhotoRTSRecipe`) is the cache key; the pool's content
fingerprint is recorded in the metrics but not in the key, so the checkpoint loads on a machine
without the pool's Debian packages.
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch
from torch import nn

from adv2.core.config import ParameterError
from adv2.core.interpreters.rts import RTSNet, frozen_rts_from_state
from adv2.core.interpreters.rts_training import train_rts
from adv2.core.tensors import predicted_classes
from adv2.trained.artifacts import Artifact, load_or_compute
from adv2.trained.checkpoints import machine_description

POOLS = ("packages", "imagenette")
# Bump when the photo pool or the way the photo RTS is trained changes (a new checkpoint key).
PHOTO_RTS_RECIPE_VERSION = 1


def load_pool(recipe: Any, pool_dir: str | None = None):
    """The training pool of ``recipe`` (:func:`adv2.trained.photopool.load_photo_pool`, or Imagenette
    from ``pool_dir`` / ``$ADV2_IMAGENETTE_DIR``)."""
    from adv2.trained.photopool import load_imagenette_pool, load_photo_pool

    if recipe.pool == "packages":
        return load_photo_pool(224, recipe.pool_images, recipe.seed, recipe.mosaic_prob)
    if recipe.pool == "imagenette":
        root = pool_dir or os.environ.get("ADV2_IMAGENETTE_DIR")
        if not root:
            raise ParameterError(
                "pool='imagenette' needs pool_dir (or $ADV2_IMAGENETTE_DIR): the folder holding "
                "torchvision's imagenette2-320/"
            )
        return load_imagenette_pool(root, 224, recipe.pool_images, recipe.seed, recipe.mosaic_prob)
    raise ParameterError(f"pool={recipe.pool!r} is not one of {list(POOLS)}")


def train_photo_rts(
    model: nn.Module, recipe: Any, *, device: Any = "cpu", progress: bool = True, pool_dir: str | None = None
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


def trained_photo_rts(
    model: nn.Module,
    recipe: Any,
    *,
    device: Any = "cpu",
    artifacts_dir: str | None = None,
    progress: bool = True,
    retrain: bool = False,
    pool_dir: str | None = None,
) -> tuple[RTSNet, Artifact]:
    """The photo RTS of ``recipe``: from the cache, else the committed checkpoint, else trained
    (``retrain=True`` trains in any case). Returns the frozen net on ``device`` and the artifact
    (``origin`` says which happened)."""
    device = torch.device(device)
    options = {"map_size": recipe.map_size, "width": recipe.width}  # the rest is read from the state

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
    """One sentence for a chapter: where the photo RTS came from and what its training cost."""
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


def publish(art: Artifact, root: str | None = None) -> str:
    """Commit-ready copy of a trained photo RTS: ``checkpoints/rts-<key>.pt`` + manifest entry."""
    from adv2.trained.checkpoints import display_path, save_checkpoint

    return display_path(save_checkpoint("rts", art.params, art.state, art.metrics, root))


def main(argv: list[str] | None = None) -> None:
    """``python -m adv2.trained.photorts [--retrain]``: train (or load) the default photo RTS with this
    library and write its checkpoint (what produced the committed one)."""
    import argparse

    from adv2.trained.recipes import PhotoRTSRecipe, load_photo_rts, photo_rts_status

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("ADV2_THREADS", "1")))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    recipe = PhotoRTSRecipe()
    print(recipe, flush=True)
    _net, art = load_photo_rts(recipe, retrain=args.retrain)
    print(photo_rts_status(art), flush=True)
    print("checkpoint:", publish(art), flush=True)


__all__ = [
    "PHOTO_RTS_RECIPE_VERSION",
    "POOLS",
    "load_pool",
    "status_line",
    "train_photo_rts",
    "trained_photo_rts",
]


if __name__ == "__main__":
    main()
