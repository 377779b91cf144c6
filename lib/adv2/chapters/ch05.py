"""Chapter 5 (noise sensitivity, Figure 15): the protocol behind ``notebooks/05_noise_sensitivity.ipynb``.

One call per section: :func:`calibrate` / :func:`calibration_table`
(:mod:`adv2.chapters.noise_calibration`), :func:`sensitivity` (its tables and panels:
:mod:`adv2.chapters.noise_figures`), :func:`other_seeds` (the same on each further training seed's
models, issue 27), :func:`summarize` (a :class:`Ch05Result`: ``numbers()`` is
``results/05_noise_sensitivity.json``'s, ``glue()`` the prose's) and :func:`check`. The paper's
Figure 15 table is :data:`adv2.core.paper.PAPER_FIG15_L1`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from adv2.chapters import claim_rules, plotting
from adv2.chapters._common import (
    NOT_RUN,
    PHOTO_BATCH,
    add_photo_settings,
    half_width_text,
    judged_blocks,
    photo_classifier_of,
    photo_label,
    photo_titled,
    verdict_glue,
)
from adv2.chapters._compare import PHOTO_ONE_SEED, interval_scope_text
from adv2.chapters._reporting import flat_glue, raise_problems
from adv2.chapters.aid_trial import claim_input
from adv2.chapters.claims import Verdict, photo_setting
from adv2.chapters.noise_calibration import (
    Calibration,
    calibrate,
    calibrate_on,
    calibration_log,
    calibration_table,
)
from adv2.chapters.noise_figures import (
    INTERPRETERS,
    fig15_tables,
    figure15_cells,
    l1_intervals,
    level_names,
)
from adv2.core import config, noise, paper
from adv2.core.config import PHOTO_CLASSIFIER, PHOTO_CLASSIFIERS
from adv2.core.interpreters.rts import RTSInterpreter
from adv2.core.noise import NoiseSearch
from adv2.core.seed_stats import ratio_ci_seeds
from adv2.core.tensors import predicted_classes
from adv2.trained.data import imagenet_class_names
from adv2.trained.photo_recipes import PhotoRTSRecipe
from adv2.trained.photomodels import photo_pool_images

STEM = "05_noise_sensitivity"
GLUE_PREFIX = "ch5_"
SEED_MODELS = "classifiers, RTS and RTSA"  # what each training seed trains (the scope sentence)
# what on the page is train_seed's run alone when several seeds ran (the rest pools them)
SEED0_SHOWN = "the table's magnitude rows, the calibration and flipped/kept tables and the Figure 15 samples"


def _glue_level(level: str) -> str:
    return level.rstrip("%") + "pct"  # "3%" -> "3pct": a glue name cannot hold "%"


# the levels the prose names (Figure 15's rows), glued even when noise_rates leaves one out
PROSE_LEVELS = tuple(paper.PAPER_FIG15_L1["rts"]["normal"])


# ----------------------------------------------------------------------------- map sensitivity
def sensitivity(
    nets: Mapping[str, Any],
    cal: Mapping[str, Calibration],
    *,
    map_class: str,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> dict[str, dict[str, Any]]:
    """Per classifier: :func:`adv2.core.noise.noise_sensitivity` of RTS and RTSA at the calibrated levels."""
    out = {}
    for a, c in cal.items():
        n = nets[a]
        interps = {"rts": RTSInterpreter(n.model, n.rts), "rtsa": RTSInterpreter(n.model, n.rtsa)}
        out[a] = noise.noise_sensitivity(
            n.model,
            interps,
            c.x,
            c.y,
            c.levels,
            c.draws,
            map_class=map_class,
            batch_size=batch_size,
            device=device,
        )
    return out


# ----------------------------------------------------------------------------- the chapter's result
@dataclass
class Ch05Result:
    """Everything chapter 5 measured, per classifier (``archs`` in run order).

    ``more_seeds``: by further training seed (issue 27, :func:`other_seeds`), the same measurement
    on the same calibration images with that seed's classifiers, RTS and RTSA (each classifier
    calibrated on its own); the intervals and verdicts pool them with this result's
    (``train_seed``'s), whose numbers, tables and figures stay its own."""

    archs: list[str]
    calibration: dict[str, Calibration]
    sens: dict[str, dict[str, Any]]  # adv2.core.noise.noise_sensitivity per classifier
    rates: list[float]  # target misclassification rates (noise_rates)
    map_class: str
    tolerance: float
    # {arch: {"l1": {interp: {kind: {level: L1 per image}}}, "flipped": {kind: {level: bool per image}}}}
    per_image: dict[str, dict[str, Any]] = field(init=False)
    train_seed: int = 0
    more_seeds: dict[int, Ch05Result] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.per_image = {
            a: {
                "l1": self.sens[a]["per_sample"],
                "flipped": {
                    k: {lvl: p != self.calibration[a].y for lvl, p in lv.items()}
                    for k, lv in self.sens[a]["pred"].items()
                },
            }
            for a in self.archs
        }

    @property
    def train_seeds(self) -> list[int]:
        """The training seeds whose models were measured, ``train_seed`` first."""
        return [self.train_seed, *self.more_seeds]

    def l1_by_seed(self, a: str) -> list[dict[str, Any]]:
        """``a``'s per-image L1 (``{interp: {kind: {level: ...}}}``) per training seed, ``train_seed``'s first."""
        return [self.per_image[a]["l1"], *(m.per_image[a]["l1"] for m in self.more_seeds.values())]

    @property
    def levels(self) -> list[str]:
        return level_names(self.rates)

    @property
    def top_level(self) -> str:
        """The strongest level, where the RTSA / RTS ratio is read."""
        return max(self.levels, key=lambda lvl: float(lvl.rstrip("%")))

    def ratios(self, a: str) -> dict[str, float | None]:
        """RTSA's L1 over RTS's at the strongest level, per noise kind (None when RTS's is 0)."""
        out = {}
        for kind in noise.NOISE_TYPES:
            r, ra = (self.sens[a]["l1"][i][kind][self.top_level] for i in INTERPRETERS)
            out[kind] = ra / r if r > 0 else None
        return out

    def arch_numbers(self, a: str) -> dict[str, Any]:
        s = self.sens[a]
        out = {
            "n_calib": len(self.calibration[a].x),
            "calibration": {
                kind: {
                    noise.level_name(r): {
                        "magnitude": c.magnitude,
                        "rate": c.rate,
                        "within_tolerance": c.within_tolerance,
                        "evaluations": c.evaluations,
                    }
                    for r, c in lv.items()
                }
                for kind, lv in self.calibration[a].levels.items()
            },
            "l1": s["l1"],
            "l1_flipped": s["l1_flipped"],
            "l1_kept": s["l1_kept"],
            "rate": s["rate"],
        }
        top = self.top_level.rstrip("%")
        for kind, ratio in self.ratios(a).items():
            out[f"ratio_rtsa_over_rts_{kind}_{top}"] = ratio
        return out

    def numbers(self) -> dict[str, Any]:
        """The ``numbers`` of ``results/05_noise_sensitivity.json``."""
        out: dict[str, Any] = {a: self.arch_numbers(a) for a in self.archs}
        out["paper"] = {"l1": paper.PAPER_FIG15_L1}
        out["settings"] = {"map_class": self.map_class, "tolerance": self.tolerance, "rates": self.rates}
        out.update(judged_blocks(self.intervals(), verdicts(self), self.train_seeds))
        return out

    def _top(self, a: str, name: str, kind: str) -> list[torch.Tensor]:
        """Per training seed: ``name``'s per-image L1 under ``kind`` noise at the strongest level."""
        return [r[name][kind][self.top_level] for r in self.l1_by_seed(a)]

    def intervals(self) -> dict[str, dict[str, Any]]:
        """:meth:`arch_intervals` per classifier, laid out as ``numbers()``."""
        return {a: self.arch_intervals(a) for a in self.archs}

    def arch_intervals(self, a: str) -> dict[str, Any]:
        """Classifier ``a``'s 95 % intervals: ``l1[interpreter][kind][level]`` (bootstrap over the
        calibration images) and ``ratio_rtsa_over_rts_<kind>_<top>`` (paired bootstrap); over the
        images and, when several ran, the training seeds (one seed: the image-only intervals)."""
        top, out = self.top_level.rstrip("%"), {"l1": l1_intervals(self.l1_by_seed(a))}
        for kind in noise.NOISE_TYPES:
            out[f"ratio_rtsa_over_rts_{kind}_{top}"] = ratio_ci_seeds(
                self._top(a, "rtsa", kind), self._top(a, "rts", kind)
            )
        return out

    def glue_nested(self, a: str) -> dict[str, Any]:
        """One setting's glued numbers (mean L1 per interpreter/kind/level and the ratios at the
        strongest level with their intervals, both pooled over the training seeds as the verdict;
        the magnitudes and rates reached by ``train_seed``'s calibration); "not run" for a setting
        this run left out."""
        levels = list(dict.fromkeys([*self.levels, *PROSE_LEVELS]))  # run levels, then the prose's
        run = a in self.archs
        est = self.arch_intervals(a) if run else {}  # this classifier's alone (glue() asks per classifier)
        cal = self.calibration[a].levels if run else {}
        mag = {k: {noise.level_name(r): c.magnitude for r, c in lv.items()} for k, lv in cal.items()}
        reached = {k: {noise.level_name(r): c.rate for r, c in lv.items()} for k, lv in cal.items()}
        top = self.top_level.rstrip("%") if run else ""
        ratios = {k: str(est[f"ratio_rtsa_over_rts_{k}_{top}"]) for k in noise.NOISE_TYPES} if run else {}

        def l1(i: str, k: str, lvl: str) -> Any:
            e = est.get("l1", {}).get(i, {}).get(k, {}).get(lvl)
            return NOT_RUN if e is None else e.value

        return {
            "l1": {
                i: {k: {_glue_level(lvl): l1(i, k, lvl) for lvl in levels} for k in noise.NOISE_TYPES}
                for i in INTERPRETERS
            },
            "mag": {
                k: {_glue_level(lvl): mag.get(k, {}).get(lvl, NOT_RUN) for lvl in levels}
                for k in noise.NOISE_TYPES
            },
            "rate": {
                k: {_glue_level(lvl): reached.get(k, {}).get(lvl, NOT_RUN) for lvl in levels}
                for k in noise.NOISE_TYPES
            },
            "ratio_n": ratios.get("normal", NOT_RUN),
            "ratio_u": ratios.get("uniform", NOT_RUN),
            "n_calib": len(self.calibration[a].x) if run else NOT_RUN,
        }

    def glue(self) -> dict[str, Any]:
        """Every ``{glue:text}`` name of the chapter (``ch5_<arch>_...``) with its value."""
        nested = {a: self.glue_nested(a) for a in config.ARCHS}
        out = flat_glue(nested, GLUE_PREFIX)
        scope = interval_scope_text(
            self.train_seeds, SEED_MODELS, "calibration images", "calibrated and measured", shown=SEED0_SHOWN
        )
        out[f"{GLUE_PREFIX}interval_scope"] = scope + PHOTO_ONE_SEED
        by_arch = verdicts(self)
        for a in config.ARCHS:
            v = by_arch.get(a, {}).get("rtsa_more_noise_sensitive")
            out.update(verdict_glue(f"{GLUE_PREFIX}{a}_verdict", v))
            out[f"{GLUE_PREFIX}{a}_sample_size"] = sample_size_text(v)
        return out


def sample_size_text(v: Verdict | None) -> str:
    """The half-widths the verdict's ratios reached, per noise type (one ratio: its own)."""
    parts = dict(v.parts) if v is not None else {}
    if parts:
        return "; ".join(half_width_text(f"{k} noise", p) for k, p in parts.items())
    return half_width_text("ratio", v)


def summarize(
    cal: Mapping[str, Calibration],
    sens: Mapping[str, Mapping[str, Any]],
    *,
    rates: Sequence[float],
    map_class: str,
    tolerance: float,
    train_seed: int = 0,
    more_seeds: Mapping[int, Ch05Result] | None = None,
) -> Ch05Result:
    """The chapter's result from ``train_seed``'s calibration and maps (``more_seeds``: each further
    training seed's, :func:`other_seeds`; none by default)."""
    archs = list(sens)
    return Ch05Result(
        archs=archs,
        calibration={a: cal[a] for a in archs},
        sens={a: dict(sens[a]) for a in archs},
        rates=list(rates),
        map_class=map_class,
        tolerance=tolerance,
        train_seed=train_seed,
        more_seeds=dict(more_seeds or {}),
    )


def other_seeds(
    others: Mapping[int, Mapping[str, Any]],
    cal: Mapping[str, Calibration],
    search: NoiseSearch,
    *,
    map_class: str,
    device: torch.device | str = "cpu",
) -> dict[int, Ch05Result]:
    """Each further training seed's nets (:func:`adv2.chapters.aid_training.load_other_seeds`)
    calibrated on ``train_seed``'s calibration images ``cal`` (:func:`calibrate` with ``others``:
    images every seed's classifier gets right) and measured there, by seed (:func:`summarize`'s
    ``more_seeds``)."""
    out = {}
    for s, nets in others.items():
        c = {a: calibrate_on(nets[a].model, cal[a].x, cal[a].y, search, device=device) for a in cal}
        sens = sensitivity(nets, c, map_class=map_class, device=device)
        out[s] = summarize(c, sens, rates=search.rates, map_class=map_class, tolerance=search.tolerance)
    return out


def verdicts(result: Ch05Result) -> dict[str, dict[str, Verdict]]:
    """``{classifier: {"rtsa_more_noise_sensitive": Verdict}}`` for the classifiers run: the
    paper's "RTSA appears much more sensitive", decided by :mod:`adv2.chapters.claims` for every noise type
    at the strongest level from the per-image L1 of RTS and RTSA (pooled over the training seeds
    when several ran)."""
    out = {}
    for a in result.archs:
        top = [{f"{n}_{k}": r[n][k][result.top_level] for n in INTERPRETERS for k in noise.NOISE_TYPES}
               for r in result.l1_by_seed(a)]  # fmt: skip
        x = functools.partial(claim_input, top)  # one seed's array, or BySeed (pooled)
        rts, rtsa = ({k: x(f"{n}_{k}") for k in noise.NOISE_TYPES} for n in INTERPRETERS)
        out[a] = {"rtsa_more_noise_sensitive": claim_rules.rtsa_more_noise_sensitive(rts, rtsa)}
    return out


def check(result: Ch05Result, *, profile: str) -> None:
    """The chapter's invariants; raises :class:`adv2.chapters._common.ChapterCheckFailed` naming what to change."""
    problems = []
    for a in result.archs:
        for kind, lv in result.calibration[a].levels.items():
            for r, c in lv.items():
                where = f"{a}, {kind} noise, target {noise.level_name(r)}"
                if not (0 <= c.rate <= 1 and c.magnitude >= 0):
                    problems.append(
                        f"{where}: rate {c.rate} / magnitude {c.magnitude} out of range "
                        "(a bug, not a parameter)"
                    )
                if r == 0 and c.rate != 0:
                    problems.append(
                        f"{where}: the '0%' noise should change no decision but changed "
                        f"{c.rate:.1%}; raise calib_max_iter"
                    )
                if profile in ("quick", "full", "paper") and r > 0 and not c.within_tolerance:
                    problems.append(
                        f"{where}: reached {c.rate:.1%} after {c.evaluations} classifier passes, "
                        f"expected within {result.tolerance} of {r}; raise calib_max_iter or "
                        "tolerance, or n_calib (finer rate steps)"
                    )
        for name in INTERPRETERS:
            for kind in noise.NOISE_TYPES:
                bad = {lvl: v for lvl, v in result.sens[a]["l1"][name][kind].items() if not 0 <= v <= 1}
                if bad:
                    problems.append(
                        f"{a}, {name.upper()}, {kind} noise: L1 {bad} outside [0, 1] (a bug, not a parameter)"
                    )
    raise_problems("chapter 5", problems)
    for more in result.more_seeds.values():  # each further training seed's calibration and maps
        check(more, profile=profile)


# ----------------------------------------------------------------------------- photos
def calibrate_photos(
    net: Any,
    pool: torch.Tensor,
    search: NoiseSearch,
    *,
    n_calib: int,
    device: torch.device | str = "cpu",
    classifier: str = PHOTO_CLASSIFIER,
) -> dict[str, Calibration]:
    """Noise calibration for the photo classifier ``classifier`` (``net``) on ``n_calib`` images of
    the natural-image pool at its side (no attacked photo in it), drawn with ``search.seed``: the
    rate is the share of the classifier's own decisions the noise changes, so every pool image
    counts as "correctly classified". Keyed by the classifier's setting (``photos``,
    ``photos_lite2``)."""
    if n_calib > len(pool):
        raise ValueError(f"photo_n_calib={n_calib} but the photo pool has {len(pool)} images; lower it")
    pick = torch.randperm(len(pool), generator=torch.Generator().manual_seed(int(search.seed)))[:n_calib]
    x = pool[pick]
    x = x.float() / 255 if x.dtype == torch.uint8 else x  # the pool is stored as uint8
    y = predicted_classes(net.model, x, PHOTO_BATCH, device)
    setting = photo_setting(classifier)
    return calibrate({setting: net}, x, y, search, n_calib=n_calib, batch_size=PHOTO_BATCH, device=device)


def sensitivity_photos(
    net: Any, cal: Mapping[str, Calibration], *, map_class: str, device: torch.device | str = "cpu"
) -> dict[str, dict[str, Any]]:
    """Figure 15 on the photos: RTS and RTSA maps of the clean and noisy pool images (the
    :func:`sensitivity` dict, keyed by ``cal``'s one setting; :func:`summarize` makes its result)."""
    return sensitivity({a: net for a in cal}, cal, map_class=map_class, batch_size=PHOTO_BATCH, device=device)


def noise_photos(
    net: Any,
    search: NoiseSearch,
    *,
    n_calib: int,
    map_class: str,
    pool: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
    classifier: str = PHOTO_CLASSIFIER,
) -> Ch05Result:
    """Chapter 5 on the photos for the photo classifier ``classifier`` (``net``: its
    :func:`adv2.trained.photomodels.load_photo_interpreted`): :func:`calibrate_photos` on the first
    ``n_calib`` crops of its RTS's natural-image pool (``pool``: other images), then
    :func:`sensitivity_photos`, as one :class:`Ch05Result` whose setting is the classifier's."""
    if pool is None:  # the pool's first crops, at the classifier's side
        pool = photo_pool_images(PhotoRTSRecipe(arch=classifier), n_images=n_calib)
    cal = calibrate_photos(net, pool, search, n_calib=n_calib, device=device, classifier=classifier)
    sens = sensitivity_photos(net, cal, map_class=map_class, device=device)
    return summarize(cal, sens, rates=search.rates, map_class=map_class, tolerance=search.tolerance)


def photo_tables(runs: Mapping[str, Ch05Result]) -> str:
    """Each photo classifier's calibration table and Figure 15 tables, under its name where more
    than one ran."""
    return photo_titled(
        runs, lambda r: calibration_table(r.calibration) + "\n\n" + fig15_tables(r.sens, r.rates)
    )


def photo_figure(result: Ch05Result):
    """Figure 15 on one photo classifier's pool images (``result``: its :func:`noise_photos`):
    input, noisy input, RTS and RTSA maps."""
    (setting,) = result.archs
    classifier = photo_classifier_of(setting)
    cells, labels, _ = figure15_cells(
        result.sens, result.calibration, imagenet_class_names(), setting, result.rates
    )
    return plotting.panel_rows(
        cells,
        ["Input", "Input+Noise", "RTS", "RTSA"],
        row_labels=labels,
        overlay=False,
        suptitle=f"Figure 15 ({photo_label(classifier)})",
    )


def photo_glue(result: Ch05Result | None, classifier: str | None = None) -> dict[str, Any]:
    """The photo section of ``result``'s classifier (``classifier`` when ``result`` is None: its
    names, all "not run"): ``ch5_photos_*`` for EfficientNet-Lite0, ``ch5_photos_lite2_*`` for
    -Lite2 (numbers, verdict, half-widths)."""
    setting = result.archs[0] if result is not None else photo_setting(classifier or PHOTO_CLASSIFIER)
    prefix = f"{GLUE_PREFIX}{setting}_"
    if result is None:
        empty = Ch05Result(archs=[], calibration={}, sens={}, rates=[], map_class="", tolerance=0.0)
        nested = empty.glue_nested(setting)
        v = None
    else:
        nested = result.glue_nested(setting)
        v = verdicts(result)[setting]["rtsa_more_noise_sensitive"]
    out = flat_glue({setting: nested}, GLUE_PREFIX)
    out.update(verdict_glue(f"{prefix}verdict", v))
    out[f"{prefix}sample_size"] = NOT_RUN if v is None else sample_size_text(v)
    return out


def all_photo_glue(runs: Mapping[str, Ch05Result]) -> dict[str, Any]:
    """Every photo classifier's :func:`photo_glue` ("not run" for those not in ``runs``)."""
    return {k: v for c in PHOTO_CLASSIFIERS for k, v in photo_glue(runs.get(c), c).items()}


def add_photos(numbers: dict[str, Any], runs: Mapping[str, Ch05Result]) -> dict[str, Any]:
    """The chapter's ``numbers`` with each photo classifier's setting (``photos``, ``photos_lite2``)."""
    return add_photo_settings(numbers, {c: r.numbers() for c, r in runs.items()})


__all__ = [
    "PROSE_LEVELS",
    "Calibration",
    "Ch05Result",
    "calibrate",
    "calibrate_on",
    "add_photos",
    "all_photo_glue",
    "calibrate_photos",
    "noise_photos",
    "photo_figure",
    "photo_glue",
    "photo_tables",
    "sensitivity_photos",
    "calibration_log",
    "calibration_table",
    "check",
    "other_seeds",
    "sensitivity",
    "summarize",
    "verdicts",
]
