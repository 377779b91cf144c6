"""The photo RTSA (EfficientNet-Lite0's RTS fine-tuned by AID on the photo pool), shipped as a
committed checkpoint: ``python -m adv2.trained.photortsa`` trains it with the library's own code
(:func:`adv2.trained.recipes.load_photo_rtsa`, i.e. :func:`adv2.core.defenses.train_rtsa`) and writes
``checkpoints/rtsa-<key>.pt`` with its manifest entry (:mod:`adv2.trained.checkpoints`). Chapters 4-6 load
it through the artifact cache, which looks up the committed checkpoints before training.
"""

from __future__ import annotations

import os

import torch

from adv2.trained.artifacts import Artifact


def publish(art: Artifact, root: str | None = None) -> str:
    """Commit-ready copy of a trained photo RTSA: ``checkpoints/rtsa-<key>.pt`` + manifest entry."""
    from adv2.trained.checkpoints import display_path, save_checkpoint

    return display_path(save_checkpoint("rtsa", art.params, art.state, art.metrics, root))


def main(argv: list[str] | None = None) -> None:
    """``python -m adv2.trained.photortsa [--retrain]``: train (or load) the default photo RTSA and write
    its checkpoint (what produced the committed one)."""
    import argparse

    from adv2.trained.photorts import status_line
    from adv2.trained.recipes import PhotoRTSARecipe, load_photo_rtsa

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("ADV2_THREADS", "1")))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    recipe = PhotoRTSARecipe()
    print(recipe, flush=True)
    _net, art = load_photo_rtsa(recipe, retrain=args.retrain)
    m = art.metrics
    print(status_line(art), flush=True)
    print(
        f"AID: {recipe.iterations} iterations, {m.get('seconds_per_iteration', float('nan')):.1f} s each, "
        f"final benign drift on the probe photos {m.get('final_probe_drift')}",
        flush=True,
    )
    print("checkpoint:", publish(art), flush=True)


__all__ = ["main", "publish"]

if __name__ == "__main__":  # pragma: no cover
    main()
