"""Helpers shared by the chapter modules: cell formatting (``adv2.core.formatting.fmt``), intervals and
verdict glue, glue padding, explained checks."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch

from adv2 import __version__
from adv2.chapters import schema
from adv2.chapters.claims import (
    DOES_NOT_HOLD,
    HOLDS,
    INCONCLUSIVE,
    MORE_SEEDS,
    NOT_MEASURABLE,
    Verdict,
    photo_setting,
)
from adv2.chapters.results import _plain, flatten
from adv2.core import config
from adv2.core.config import PHOTO_CLASSIFIER, PHOTO_CLASSIFIERS
from adv2.core.formatting import MISSING, fmt
from adv2.core.phrases import PHOTO_CLASSIFIER_LABELS
from adv2.core.seed_stats import interval_covers
from adv2.core.stats import Estimate
from adv2.trained import data
from adv2.trained.photomodels import status_line

NOT_RUN = "not run"  # glued for what a run's parameters left out


class ChapterCheckFailed(AssertionError):
    """A chapter's invariant does not hold; the message says expected, measured and what to change."""


def check(ok: bool, message: str) -> None:
    if not ok:
        raise ChapterCheckFailed(message)


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def cell(value: Any) -> str:
    """A table cell: an :class:`~adv2.core.stats.Estimate` as "value [low, high]", anything else
    through :func:`adv2.core.formatting.fmt` (3 significant digits, "—" for None/NaN)."""
    return str(value) if isinstance(value, Estimate) else fmt(value)


def fmt_rows(rows: Iterable[Iterable[Any]]) -> list[list[str]]:
    return [[cell(v) for v in row] for row in rows]


# ----------------------------------------------------------------------------- intervals, verdicts
def intervals_block(nested: Any) -> Any:
    """``{...: Estimate}`` nested dicts as plain JSON (each estimate via ``as_dict``)."""
    if isinstance(nested, Estimate):
        return nested.as_dict()
    if isinstance(nested, Mapping):
        return {str(k): intervals_block(v) for k, v in nested.items()}
    return nested


def verdicts_block(verdicts: Mapping[str, Mapping[str, Verdict]]) -> dict[str, dict[str, Any]]:
    """``{setting: {claim_id: Verdict}}`` as plain JSON, the results files' ``verdicts`` block
    (the front page reads it back with :meth:`adv2.chapters.claims.Verdict.from_dict`)."""
    return {s: {cid: v.as_dict() for cid, v in by_claim.items()} for s, by_claim in verdicts.items()}


def judged_blocks(
    intervals: Any, verdicts: Mapping[str, Mapping[str, Verdict]], train_seeds: list[int]
) -> dict[str, Any]:
    """A results file's ``intervals`` and ``verdicts`` blocks (:func:`intervals_block`,
    :func:`verdicts_block`) and what they cover (issue 27): the ``train_seeds`` whose models were
    measured and ``interval_covers`` (chapters 4-6)."""
    return {
        "intervals": intervals_block(intervals),
        "verdicts": verdicts_block(verdicts),
        "train_seeds": list(train_seeds),
        "interval_covers": interval_covers(len(train_seeds)),
    }


def settle_text(verdict: Verdict | None) -> str:
    """What the chapter says after a verdict: settled, how many images would settle it, or why
    nothing can be said."""
    if verdict is None:
        return NOT_RUN
    if verdict.status in (HOLDS, DOES_NOT_HOLD):
        return "the interval settles it at this sample size"
    if verdict.status == INCONCLUSIVE:
        if verdict.estimate is not None and verdict.estimate.covers_seeds:
            return MORE_SEEDS
        if verdict.n_needed is None:
            return "the value sits on the threshold: no number of images would settle it"
        return f"about {verdict.n_needed} images would settle it"
    return f"no number can be given: {short_reason(verdict)}"


def short_reason(verdict: Verdict) -> str:
    """The verdict's reason without the per-part listing (what decided it, in one clause)."""
    return verdict.reason.split(" (all: ")[0]


def verdict_cell(verdict: Verdict | None) -> str:
    """What the prose and the chapter tables show for a verdict: :meth:`Verdict.cell` (status and
    estimate with its interval), and for "not measurable" the short reason instead."""
    if verdict is None:
        return NOT_RUN
    if verdict.status == NOT_MEASURABLE:
        return f"{verdict.status} ({short_reason(verdict)})"
    return verdict.cell()


def verdict_glue(name: str, verdict: Verdict | None) -> dict[str, Any]:
    """Glue of one verdict: ``name`` (status and estimate, :meth:`Verdict.cell`),
    ``name_n_needed`` (images that would settle an inconclusive verdict, else "—") and
    ``name_settle`` (:func:`settle_text`); "not run" for a setting the run left out."""
    if verdict is None:
        return {name: NOT_RUN, f"{name}_n_needed": NOT_RUN, f"{name}_settle": NOT_RUN}
    return {
        name: verdict_cell(verdict),
        f"{name}_n_needed": MISSING if verdict.n_needed is None else verdict.n_needed,
        f"{name}_settle": settle_text(verdict),
    }


def half_width_text(label: str, verdict: Verdict | None) -> str:
    """ "<label>: ±0.12, settles it" / "...: ±0.3, about 40 images would settle it" for the
    sample-size paragraph (issue 16 item 3): the half-width reached for a key ratio."""
    if verdict is None:
        return f"{label}: not run"
    est = verdict.estimate
    hw = None if est is None else est.half_width
    if hw is None:
        return f"{label}: no interval ({short_reason(verdict)})"
    if verdict.status in (HOLDS, DOES_NOT_HOLD):
        tail = "settles the claim"
    elif verdict.status == INCONCLUSIVE:
        if est.covers_seeds:
            tail = MORE_SEEDS
        elif verdict.n_needed:
            tail = f"it would need about {verdict.n_needed} images"
        else:
            tail = "the value sits on the threshold"
    else:
        tail = short_reason(verdict)
    return f"{label}: ±{fmt(hw, 2)} on {est.n} images, {tail}"


def glue_name(name: str) -> str:
    """The name ``adv2.chapters.results.glue_numbers`` glues a flattened key under."""
    return name.replace(".", "_").replace("-", "_")


def flat_glue(numbers: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalars of ``numbers`` flattened and renamed as ``glue_numbers`` names them; None/NaN -> "—"."""
    out = {}
    for name, value in flatten(_plain(numbers), prefix).items():
        if isinstance(value, (int, float, str)) or value is None:
            out[glue_name(name)] = MISSING if is_missing(value) else value
    return out


def pad(glue: dict[str, Any], names: Iterable[str], value: str = NOT_RUN) -> dict[str, Any]:
    """Add ``value`` under every name in ``names`` the run did not glue."""
    for name in names:
        glue.setdefault(name, value)
    return glue


def shown_path(path: str | os.PathLike) -> str:
    """A results path as the reader should see it: relative to the repository, never absolute."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path(config.REPO_ROOT).resolve()))
    except ValueError:
        return path.name


def start(stem: str, namespace: dict[str, Any], seed: int | None = None):
    """A chapter notebook's setup, in its first code cell: check its parameters (unknown names and
    bad values fail here), apply ``ADV2_THREADS``, resolve the device, seed everything (when
    ``seed`` is given) and print the versions. Returns ``(params, device, progress)``; progress
    bars are off at the smoke profile."""
    # Resolve the notebook's matplotlib backend now, outside any ``plotting.book_style()``: the
    # kernel's inline backend turns interactive mode on when it is first resolved, and an
    # rc_context around that moment restores interactive=False on exit, after which no later
    # figure is shown (only each notebook's first figure was).
    plt.close(plt.figure())
    params = schema.check_notebook_globals(stem, namespace)
    config.set_threads_from_env()
    # chapter 8 only reads a sweep: its points choose their own device
    device = config.resolve_device(params.get("device", "auto"))
    if seed is not None:
        config.seed_everything(seed)
    print(f"adv2 {__version__}, torch {torch.__version__}, device {device}")
    return params, device, params["profile"] != "smoke"


# ----------------------------------------------------------------------------- the photo setting
PHOTOS = "photos"  # the setting name of EfficientNet-Lite0 on the offline photos (claims, results)
# images per EfficientNet-Lite0 pass at 224 px on a CPU: small chunks stay in the caches (2 cores:
# 19-24 ms per image and forward in chunks of 4-8, 68 ms with 40 photos at once); results do not
# depend on it
PHOTO_BATCH = 8


def photo_attack_set(
    model: Any, n_images: int, *, seed: int, device: Any = "cpu", classifier: str = PHOTO_CLASSIFIER
) -> tuple[Any, Any]:
    """The offline photos at the side of the photo classifier ``classifier`` (``model``) and the
    first ``n_images`` of them it gets right in the authors' seeded order (0: every one it gets
    right, chapter 3's rule), with seeded random target classes (chapters 3, 4 and 6 share it).
    Returns ``(photos, attack_set)``."""
    photos = data.load_imagenet_sample(size=PHOTO_CLASSIFIERS[classifier])
    n_labelled = int((photos.y_test >= 0).sum())
    with warnings.catch_warnings():  # fewer photos than asked for: said below, naming the parameter
        warnings.simplefilter("ignore")
        chosen = data.select_attack_set(
            model, photos.x_test, photos.y_test, n_images or n_labelled, seed=seed, num_classes=1000,
            batch_size=PHOTO_BATCH, device=device, allow_fewer=True,
        )  # fmt: skip
    if n_images and len(chosen.x) < n_images:
        raise config.ParameterError(
            f"photo_n_images={n_images}, but {PHOTO_CLASSIFIER_LABELS[classifier]} gets only "
            f"{len(chosen.x)} of the {n_labelled} labelled photos right; lower it to at most "
            f"{len(chosen.x)}, or 0 for every photo each classifier gets right"
        )
    return photos, chosen


def photo_prefix(chapter_prefix: str, classifier: str = PHOTO_CLASSIFIER) -> str:
    """A photo classifier's glue prefix in chapters 4-6, after its setting
    (:func:`adv2.chapters.claims.photo_setting`): ``ch4_photos_`` for EfficientNet-Lite0 (the names
    the prose has always quoted), ``ch4_photos_lite2_`` for EfficientNet-Lite2."""
    return f"{chapter_prefix}{photo_setting(classifier)}_"


def photo_classifier_of(setting: str) -> str:
    """The photo classifier whose setting is ``setting`` (:func:`adv2.chapters.claims.photo_setting`'s inverse)."""
    for c in PHOTO_CLASSIFIERS:
        if photo_setting(c) == setting:
            return c
    raise ValueError(
        f"{setting!r} is no photo classifier's setting; valid: {[photo_setting(c) for c in PHOTO_CLASSIFIERS]}"
    )


def photo_label(classifier: str = PHOTO_CLASSIFIER) -> str:
    """ "photos, EfficientNet-Lite2": a photo classifier's setting in a figure's title."""
    return f"photos, {PHOTO_CLASSIFIER_LABELS[classifier]}"


def photo_titled(runs: Mapping[str, Any], text: Callable[[Any], str]) -> str:
    """Each photo classifier's Markdown (``runs``: by classifier), under its name where more than
    one ran (chapter 3's layout)."""
    if len(runs) == 1:
        return text(next(iter(runs.values())))
    return "\n\n".join(f"**{PHOTO_CLASSIFIER_LABELS[c]}**\n\n{text(r)}" for c, r in runs.items())


def add_photo_settings(
    numbers: dict[str, Any], extras: Mapping[str, Mapping[str, Any] | None]
) -> dict[str, Any]:
    """``numbers`` with each photo classifier's setting (``extras``: that classifier's own
    ``numbers()`` by classifier, each under its setting ``photos`` / ``photos_lite2``) by
    :func:`add_setting`."""
    for classifier, extra in extras.items():
        add_setting(numbers, extra, photo_setting(classifier))
    return numbers


def add_setting(
    numbers: dict[str, Any], extra: Mapping[str, Any] | None, setting: str = PHOTOS
) -> dict[str, Any]:
    """``numbers`` (a chapter's results) with another setting's: ``extra`` is that setting's own
    ``numbers()`` (same layout); its entry, intervals and verdicts join under ``setting``, so the
    front page reads one verdicts block per chapter. ``extra`` None leaves ``numbers`` as is."""
    if extra is None:
        return numbers
    numbers[setting] = extra[setting]
    for block in ("intervals", "verdicts"):
        if setting in extra.get(block, {}):
            numbers.setdefault(block, {})[setting] = extra[block][setting]
    return numbers


def setting_glue(values: Mapping[str, Any] | None, keys: Iterable[str], prefix: str) -> dict[str, Any]:
    """``{prefix + key: value}`` for ``keys`` (None/NaN -> "—"), every key "not run" when
    ``values`` is None: the glue of a setting the prose always names."""
    if values is None:
        return {glue_name(prefix + k): NOT_RUN for k in keys}
    return {glue_name(prefix + k): cell_value(values.get(k)) for k in keys}


def cell_value(value: Any) -> Any:
    """A glued value: an Estimate as "value [low, high]", None/NaN as "—", others unchanged."""
    if isinstance(value, Estimate):
        return str(value)
    return MISSING if is_missing(value) else value


def artifact_source(art: Any) -> str:
    """Where a trained artifact came from, for the prose: the committed checkpoint, the cache,
    or trained in this run."""
    if art is None:
        return NOT_RUN
    if getattr(art, "origin", ""):  # a real artifact: the photo RTS's status sentence
        return status_line(art)
    if "checkpoints" in Path(str(getattr(art, "path", ""))).parts:
        return "the committed checkpoint"
    return "the cache" if getattr(art, "from_cache", False) else "trained in this run"
