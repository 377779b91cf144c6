"""What a run would do, before it starts: the values each notebook would get at a profile (the
profile merged over the notebook's defaults, as :func:`adv2.book.runner.notebook_parameters` merges
them for a run), the trained models it would load or train, and its expected time from the
timings the book records (``results/timings-<profile>.json``). Used by ``python -m adv2 list`` and
``run --check``; it reads, never writes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from adv2.book.paths import PUBLISHED_RESULTS_DIR
from adv2.core.config import load_profile
from adv2.trained import photo_recipes, recipes

RTS_CHAPTERS = ("02", "03", "04", "05", "06", "09")  # chapters that load each classifier's RTS
RTSA_CHAPTERS = ("04", "05", "06")  # ... and its RTSA with the beta = 0 control
# chapters whose train_seeds measure further training seeds' models (issue 27)
SEED_CHAPTERS = ("03", "04", "05", "06", "07", "09")


def value_sources(stem: str, values: dict[str, Any], params: dict[str, Any], profile: str | None):
    """``(name, value, source)`` of each value a notebook runs with (``values``: ``params``, what
    the runner hands it, over its defaults): source ``profile``, ``$ADV2_ARTIFACTS`` or ``default``."""
    from_profile = load_profile(profile, stem) if profile else {}
    for name, value in values.items():
        if name in params:
            yield name, value, "profile" if name in from_profile else "$ADV2_ARTIFACTS"
        else:
            yield name, value, "default"


def needed_models(stem: str, params: dict[str, Any], fmnist: Any) -> list[tuple[str, Any]]:
    """``(label, recipe)`` of each trained model chapter ``stem`` loads (from the cache, a committed
    checkpoint, or trained), as the chapters choose them: each arch's classifier, its RTS in
    chapters 2-6, its RTSA and beta = 0 control in 4-6 (and chapter 4's trade-off RTSAs); the photo
    RTS, RTSA and control where the parameters ask for the photos; in chapters 3-7 the same
    Fashion-MNIST models of each further training seed of ``train_seeds`` (not chapter 4's trade-off
    RTSAs; chapter 9: classifier and RTS). ``fmnist``: the data whose fingerprint the keys hash."""
    # lazy: chapters 4 and 7's modules import torch; every other command (list, run, publish) stays light
    from adv2.chapters import aid_tradeoff
    from adv2.chapters.ch07 import classifiers as ch07_classifiers

    number = stem[:2]
    wanted: list[tuple[str, Any]] = []
    archs = params.get("archs") or []
    if number == "09" and not params.get("fmnist", True):  # chapter 9 without its teaching setting
        archs = []

    def classifiers(p: dict[str, Any], arch: str, tag: str = "") -> list[tuple[str, Any]]:
        if number == "07":  # one classifier per input side
            sides = ch07_classifiers.classifier_recipes(p, arch).items()
            return [(f"{arch} classifier at {side} px{tag}", r) for side, r in sides]
        return [(f"{arch} classifier{tag}", recipes.classifier_recipe(p, arch))]

    if fmnist is not None and params.get("dataset", "fashion-mnist") == "fashion-mnist":
        for arch in archs:
            wanted += classifiers(params, arch)
            if number in RTS_CHAPTERS:
                wanted.append((f"{arch} RTS", recipes.rts_recipe(params, arch)))
            if number in RTSA_CHAPTERS:
                rtsa = recipes.rtsa_recipe(params, arch)
                wanted += [(f"{arch} RTSA", rtsa), (f"{arch} RTSA control (beta 0)", rtsa.control())]
            if number == "04" and "aid_tradeoff_anchors" in params:  # the trade-off's other RTSAs
                extra = aid_tradeoff.tradeoff_recipes(params).items()
                wanted += [(f"{arch} RTSA, trade-off {label}", make(params, arch)) for label, make in extra]
            further = [s for s in params.get("train_seeds") or [] if s != params.get("train_seed", 0)]
            for seed in further if number in SEED_CHAPTERS else []:  # each further training seed's models
                other, tag = {**params, "train_seed": seed}, f"(train_seed {seed})"
                wanted += classifiers(other, arch, f" {tag}")
                if number in RTS_CHAPTERS:
                    wanted.append((f"{arch} RTS {tag}", recipes.rts_recipe(other, arch)))
                if number in RTSA_CHAPTERS:
                    rtsa = recipes.rtsa_recipe(other, arch)
                    wanted += [
                        (f"{arch} RTSA {tag}", rtsa),
                        (f"{arch} RTSA control (beta 0) {tag}", rtsa.control()),
                    ]
        wanted = [(label, recipes.with_data(r, fmnist)) for label, r in wanted]
    photo_rts = (
        (number == "02" and params.get("include_photo_rts"))
        or (
            number == "03"
            and params.get("imagenet_sample")
            and "rts" in params.get("imagenet_interpreters", [])
        )
        or (number in RTSA_CHAPTERS and params.get("photos"))
        or (number == "09" and params.get("photos") and "rts" in params.get("interpreters", []))
    )
    default = photo_recipes.PHOTO_ARCH
    names = params.get("photo_classifiers") or [default]  # chapters without the parameter: Lite0
    names = [names] if isinstance(names, str) else names
    if photo_rts:  # one photo RTS per classifier of photo_classifiers
        for name in names:
            label = "photo RTS" if name == default else f"photo RTS ({name})"
            wanted.append((label, photo_recipes.PhotoRTSRecipe(arch=name)))
    if number in RTSA_CHAPTERS and params.get("photos"):
        for name in names:
            rtsa = photo_recipes.PhotoRTSARecipe.for_classifier(name)
            suffix = "" if name == default else f" ({name})"
            wanted.append((f"photo RTSA{suffix}", rtsa))
            wanted.append((f"photo control{suffix}", rtsa.control()))
    return wanted


def models_source(stem: str, values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(stem, values)`` whose recipes a notebook loads: its own, except chapter 8's, whose sweep
    runs chapter 3 with the chapter's fixed values over the profile's chapter-3 values (as
    :func:`adv2.book.scalingsweep.sweep_spec` builds its points): chapter 3's classifiers and RTS
    at that profile (at ``paper`` its 15-epoch classifiers), not chapter 8's defaults."""
    # lazy: the chapters' parameter tables, only for chapter 8's plan (ch08 itself imports no torch)
    from adv2.chapters import ch08, schema

    if stem != ch08.STEM or not values.get("profile"):
        return stem, values
    at_profile = schema.profile_values(ch08.SOURCE, values["profile"])
    return ch08.SOURCE, {**at_profile, **ch08.fixed_parameters(values)}


def kind_of(recipe: Any) -> str:
    return recipe.cache_params()["kind"]


def model_status(recipe: Any, artifacts_dir: str | os.PathLike | None) -> str:
    """``cached`` (``<artifacts_dir>/<kind>/<key>`` exists), ``committed checkpoint``
    (``checkpoints/<kind>-<key>.pt``) or ``to train``."""
    # lazy: the store imports torch; only --check asks
    from adv2.trained import checkpoints
    from adv2.trained.artifacts import artifact_root

    kind, key = kind_of(recipe), recipe.key
    if (artifact_root(artifacts_dir) / kind / key).is_dir():
        return "cached"
    if checkpoints.find_checkpoint(kind, key) is not None:
        return "committed checkpoint"
    return "to train"


def fashion_mnist_for_keys(params: dict[str, Any]) -> Any:
    """The Fashion-MNIST a run reads (its fingerprint is part of every key), or None when absent."""
    from adv2.trained import data  # lazy: imports torch; only --check reads the data

    try:
        return data.load_fashion_mnist(params.get("data_dir"), allow_download=False)
    except data.DatasetUnavailable:
        return None


def recorded_seconds(profile: str, results_dir: Path = PUBLISHED_RESULTS_DIR) -> dict[str, float]:
    """Each notebook's wall time at ``profile`` from ``timings-<profile>.json``; empty if none."""
    path = results_dir / f"timings-{profile}.json"
    try:
        seconds = json.loads(path.read_text()).get("seconds", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return {k: float(v) for k, v in seconds.items() if isinstance(v, (int, float))}


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def planned_models(
    plan: Sequence[tuple[Path, dict[str, Any]]],
) -> Iterator[tuple[Path, dict[str, Any], list[tuple[str, Any]], bool]]:
    """``(notebook, values, models, keys_unknown)`` for each notebook of ``plan`` (its full values):
    the ``(label, recipe)`` it loads (:func:`needed_models`; chapter 8's through
    :func:`models_source`), with the Fashion-MNIST its keys hash read once; ``keys_unknown`` when a
    notebook wants Fashion-MNIST and it is not installed (its classifiers are then left out)."""
    fmnist = None
    for nb, values in plan:
        wanted = bool(values.get("archs")) and values.get("dataset", "fashion-mnist") == "fashion-mnist"
        if fmnist is None and wanted:
            fmnist = fashion_mnist_for_keys(values)
        yield nb, values, needed_models(*models_source(nb.stem, values), fmnist), fmnist is None and wanted


def plan_lines(
    profile: str, plan: Sequence[tuple[Path, dict[str, Any]]], summaries: dict[str, str], device_note: str
) -> list[str]:
    """The lines of ``run --check``: for each notebook its summary (``summaries``), recorded time
    and the models it loads (cached, committed checkpoint or to train); then the total and the
    device (with its warning for ``paper`` on a CPU). ``plan``: each notebook's full values."""
    lines, timings = [], recorded_seconds(profile)
    total, untimed, to_train = 0.0, [], 0
    for nb, values, models, keys_unknown in planned_models(plan):
        seconds = timings.get(nb.stem)
        if seconds is None:
            untimed.append(nb.stem)
        else:
            total += seconds
        took = f"about {minutes(seconds)}" if seconds is not None else "no timing recorded"
        lines.append(f"  {nb.stem}: {summaries[nb.stem]}; {took}")
        for label, recipe in models:
            status = model_status(recipe, values.get("artifacts_dir"))
            to_train += status == "to train"
            lines.append(f"    {label} ({kind_of(recipe)}/{recipe.key}): {status}")
        if keys_unknown:
            lines.append(
                "    Fashion-MNIST not found: the classifiers' keys (they hash the data) are unknown"
            )
    source = f"results/timings-{profile}.json"
    estimate = f"about {minutes(total)}" if total else "no timing recorded"
    if untimed and total:
        estimate += " plus " + ", ".join(untimed) + " (no timing recorded)"
    if to_train and total:
        estimate += f", plus the training of {to_train} model(s) if the recorded run loaded them"
    if not timings:  # no published run at this profile: say so rather than guess from another's
        estimate = (
            f"no recorded run at this profile ({source} does not exist; publishing a {profile} run writes it)"
        )
    else:
        estimate += f" ({source})"
    lines.append(f"  estimated time: {estimate}")
    lines.append(f"  device: {device_note}")
    return lines
