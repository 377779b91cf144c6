"""The sha256 of every committed checkpoint: what :func:`adv2.trained.checkpoints.load_checkpoint` checks.

``checkpoints/manifest.json`` lies beside the weights and is rewritten with them, so it cannot
vouch for them; this table is tracked code. A checkpoint file whose bytes do not hash to its pin,
or that has no pin, is refused (:class:`adv2.trained.checkpoints.CheckpointDamaged`): it is never used,
and never silently trained around (a chapter trains instead only when asked, e.g.
``-p photo_rts_retrain True``).

To add a checkpoint (e.g. a new photo RTSA), after :func:`adv2.trained.checkpoints.save_checkpoint` wrote
``checkpoints/<kind>-<key>.pt``::

    python -m adv2.trained.checkpoint_pins checkpoints/<kind>-<key>.pt

prints the line to paste into ``PINS`` below; commit the ``.pt`` file, ``manifest.json`` and this
file together. A replaced checkpoint (same name, new bytes) needs its line changed the same way.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from adv2.trained.files import file_sha256

# file name in checkpoints/ -> sha256 of its bytes
PINS: dict[str, str] = {
    "rts-44b904fb09d9d232.pt": "e563323729eee2c468471c5f8c61767a958b74280bb80d550812ac3a9247aca1",
    "rtsa-6236cb40b6237796.pt": "5b84a3376730fce6e716b6b70684126a7c69aaa226edb8ea877e1b7fa4bd43c3",
    "rtsa-5b49cd034303ae9a.pt": "e4f13cc416d5bdc79160da77615588585ad4f55d37ec138b4d2d3a98177d8721",
    # EfficientNet-Lite2's (issue 27): RTS, RTSA and its beta = 0 control
    "rts-ffadc6f0bdf089a9.pt": "d2da3c3c330b39e31c5931e740ae1a6835e70f86cd6257f9ec1b8d8a96fc9724",
    "rtsa-45352d0ef53cbe8c.pt": "83f7a10c71372cf0994fcd7ac40cda4758a3afb11fab0d085154bf26f9c9e1cd",
    "rtsa-f8831e7b5f25193e.pt": "4eb4a686df96952eef58a86384396690fcd97cc18c15eb283d04ac2526908c2c",
}


def pin_line(path: str | os.PathLike) -> str:
    """The line of ``PINS`` for the checkpoint file at ``path`` (its name and sha256)."""
    path = Path(path)
    return f'    "{path.name}": "{file_sha256(path)}",'


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m adv2.trained.checkpoint_pins CHECKPOINT.pt ...", file=sys.stderr)
        return 2
    for p in paths:
        if not Path(p).is_file():
            print(f"error: {p} is not a file", file=sys.stderr)
            return 2
        print(pin_line(p))
    return 0


if __name__ == "__main__":
    sys.exit(main())
