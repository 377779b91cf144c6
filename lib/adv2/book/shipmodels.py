"""``python -m adv2 checkpoint cached [--profile P] [NOTEBOOK ...]``: ship the trained models a
profile's chapters load from the local cache as committed checkpoints, so that a reader's run from
an empty cache loads them instead of training (issue 27: a cold `quick` run in a class period).

Each model the chapters need (:func:`adv2.book.runplan.planned_models`, the list ``run --check``
prints) that sits in the cache and has no checkpoint yet is written to ``checkpoints/`` by
:func:`adv2.trained.artifacts.ship_entry`; the command prints each pin line to paste into
:mod:`adv2.trained.checkpoint_pins` (a checkpoint without its pin is refused). A model that is not
cached is reported, never trained here: run its chapter first.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from adv2.book.runner import plan_run, select_notebooks, values_with_defaults
from adv2.book.runplan import kind_of, planned_models
from adv2.core.config import PROFILES


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m adv2 checkpoint cached", description=__doc__)
    parser.add_argument("notebooks", nargs="*", default=["all"], help="chapters (default: all)")
    parser.add_argument("--profile", choices=PROFILES, default="quick", help="the profile's models")
    args = parser.parse_args(list(argv))
    # lazy: the store imports torch; the command line stays light
    from adv2.trained import checkpoint_pins, checkpoints
    from adv2.trained.artifacts import ship_entry

    plan = [
        (nb, values_with_defaults(nb, params))  # what each chapter runs with, as `run --check` lists it
        for nb, params in plan_run(select_notebooks(args.notebooks), args.profile, {}, None)
    ]
    seen, missing, pins = set(), [], []
    for nb, values, models, keys_unknown in planned_models(plan):
        if keys_unknown:
            missing.append(
                f"{nb.stem}: its Fashion-MNIST models (Fashion-MNIST not found: their keys hash it)"
            )
        for label, recipe in models:
            kind, key = kind_of(recipe), recipe.key
            if (kind, key) in seen:
                continue
            seen.add((kind, key))
            if checkpoints.find_checkpoint(kind, key) is not None:
                print(f"{nb.stem}: {label} ({kind}/{key}): already committed")
                continue
            path = ship_entry(kind, key, values.get("artifacts_dir") or None)
            if path is None:
                missing.append(f"{nb.stem}: {label} ({kind}/{key})")
                continue
            pins.append(checkpoint_pins.pin_line(path).strip())
            print(f"{nb.stem}: {label} ({kind}/{key}): wrote {checkpoints.display_path(path)}")
    if pins:
        print(f"\nadd to PINS in lib/adv2/trained/checkpoint_pins.py ({len(pins)}):")
        print("\n".join(f"    {line}" for line in pins))
    if missing:
        print("\nnot cached (run these chapters at this profile first):\n  " + "\n  ".join(missing))
    return 1 if missing else 0
