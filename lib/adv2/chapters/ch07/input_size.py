"""Chapter 7's protocol at every input side: chapter 3's PGD / ADV2 comparison per classifier, side
and interpreter (:func:`attack_sizes`, an :class:`InputSizeResult`), the trend claim, the
chapter's tables and figures, and its invariants (:func:`check`)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from adv2.chapters import claim_rules, claims, plotting
from adv2.chapters._common import (
    NOT_RUN,
    fmt_rows,
    judged_blocks,
    verdict_cell,
    verdict_glue,
)
from adv2.chapters._common import check as _check
from adv2.chapters._compare import (
    attack_intervals,
    interval_scope_text,
    per_image_arrays,
    pgd_steps,
    setting_verdicts,
    shared_stage1,
    warm_starts,
)
from adv2.chapters.ch07 import reading
from adv2.chapters.ch07.classifiers import Trained, common_attack_set
from adv2.chapters.claims import Verdict
from adv2.chapters.protocol import compare_pgd_adv2
from adv2.core import attacks, models
from adv2.core.formatting import fmt
from adv2.core.interpreters import build_interpreter
from adv2.core.seed_stats import one_or_by_seed
from adv2.trained import data

STEM = "07_input_size"
GLUE_PREFIX = "ch7_"
GRAD_MAP_SIZE = 14  # Grad's map side at every input size (28 px / pool 2, as in chapter 3)
ALL_INTERPRETERS = ("grad", "cam")
TREND_CLAIM = "larger_inputs_help_adv2"
MIN_ACCURACY = 0.5  # below this a classifier is not worth attacking (quick and paper profiles)


# ----------------------------------------------------------------------------- attacks
def _interpreter(name: str, model: nn.Module, size: int):
    if name == "grad":  # 14x14 at every side: the same cells in every distance
        return build_interpreter("grad", model, pool=max(1, size // GRAD_MAP_SIZE))
    return build_interpreter(name, model)


@dataclass
class InputSizeResult:
    """PGD and ADV2 at every side for every classifier.

    ``runs[arch][size][name]`` is :func:`adv2.chapters.protocol.compare_pgd_adv2`'s dict, ``per_image`` the
    same layout of chapter 3's per-image arrays (success, confidence, L1, L2, mean IoU of PGD and
    ADV2), ``accuracy[arch][size]`` the classifiers' test accuracy, ``seconds[arch][size]`` the
    wall time of PGD and of each interpreter's ADV2 there. ``more_seeds``: the same attacks, on the
    same images, on the classifiers of further training seeds (issue 27), by seed; the intervals
    and verdicts pool them with ``train_seed``'s, everything else is ``train_seed``'s run."""

    archs: list[str]
    sizes: list[int]
    interpreters: list[str]
    epsilon: float
    step_size: float
    step_scale: float
    attack_set: data.AttackSet
    runs: dict[str, dict[int, dict[str, dict[str, Any]]]]
    accuracy: dict[str, dict[int, float]]
    train_seconds: dict[str, dict[int, float]]
    seconds: dict[str, dict[int, dict[str, float]]]
    x_pgd: dict[str, dict[int, torch.Tensor]] = field(default_factory=dict)
    per_image: dict[str, dict[int, dict[str, dict]]] = field(default_factory=dict)
    train_seed: int = 0
    more_seeds: dict[int, InputSizeResult] = field(default_factory=dict)

    @property
    def train_seeds(self) -> list[int]:
        """The training seeds whose classifiers were attacked, ``train_seed`` first."""
        return [self.train_seed, *self.more_seeds]

    def per_image_by_seed(self, arch: str, size: int) -> list[dict[str, dict]]:
        """``arch``'s per-image arrays at ``size`` per interpreter, one dict per training seed
        (``train_seed`` first): what :func:`adv2.chapters._compare.attack_intervals` pools."""
        return [r.per_image[arch][size] for r in (self, *self.more_seeds.values())]

    @property
    def stats(self) -> dict[str, dict[int, dict[str, dict]]]:
        """Chapter 3's summary numbers per classifier, side and interpreter."""
        return {
            a: {s: {n: self.runs[a][s][n]["numbers"] for n in self.interpreters} for s in self.sizes}
            for a in self.archs
        }

    def intervals(self) -> dict[str, dict[int, dict[str, dict[str, Any]]]]:
        """95 % intervals per classifier and side (:func:`adv2.chapters._compare.attack_intervals`:
        success rates by Wilson, mean distances by bootstrap, the ADV2 / PGD L1 ratio by paired
        bootstrap over images; over the training seeds too when several ran)."""
        return {
            a: {s: attack_intervals(self.per_image_by_seed(a, s)) for s in self.sizes} for a in self.archs
        }

    def verdicts(self) -> dict[str, dict[str, Verdict]]:
        """Chapter 3's two claims at every side (settings ``<arch>_<side>px``) and the trend
        claim (setting ``<arch>_sizes``, smallest vs largest side), from :mod:`adv2.chapters.claims`."""
        out: dict[str, dict[str, Verdict]] = {}
        for a in self.archs:
            for s in self.sizes:
                out[f"{a}_{s}px"] = setting_verdicts(self.per_image_by_seed(a, s))
            out[f"{a}_sizes"] = {TREND_CLAIM: trend_verdict(self, a)}
        return out

    def numbers(self) -> dict[str, Any]:
        """The ``numbers`` of ``results/07_input_size.json``."""
        curve = {}
        for a in self.archs:
            curve[a] = {}
            for s in self.sizes:
                est = attack_intervals(self.per_image[a][s])
                curve[a][str(s)] = {
                    "accuracy": self.accuracy[a][s],
                    **{
                        n: {
                            "pgd": _short(self.stats[a][s][n]["pgd"]),
                            "adv2": _short(self.stats[a][s][n]["adv2"]),
                            "l1_ratio_adv2_over_pgd": est[n]["l1_ratio_adv2_over_pgd"].value,
                        }
                        for n in self.interpreters
                    },
                }
        return {
            "sizes": list(self.sizes),
            "interpreters": list(self.interpreters),
            "n_images": len(self.attack_set.x),
            "attack": {
                "epsilon": self.epsilon,
                "step_size": self.step_size,
                "step_scale": self.step_scale,
                "pgd_steps": pgd_steps(self.step_scale),
            },
            "curve": curve,
            "train_seconds": {a: {str(s): v for s, v in d.items()} for a, d in self.train_seconds.items()},
            "seconds": {a: {str(s): v for s, v in d.items()} for a, d in self.seconds.items()},
            **judged_blocks(
                {a: {str(s): v for s, v in d.items()} for a, d in self.intervals().items()},
                self.verdicts(),
                self.train_seeds,
            ),
        }

    def glue(self, results_dir: str | None = None) -> dict[str, Any]:
        """Every ``{glue:text}`` name of the chapter. Per classifier ``a``, side ``s`` and
        interpreter ``n``: ``ch7_<a>_<s>_accuracy``, ``ch7_<a>_<s>_<n>_ratio`` (the ADV2 / PGD L1
        ratio with its interval), ``_adv2_success``, ``_pgd_success``, ``_adv2_l1``, ``_pgd_l1``;
        the first classifier's curve ends as ``ch7_<n>_ratio_small`` / ``_large`` and
        ``ch7_<n>_success_small`` / ``_large``, the sides as ``ch7_size_small`` / ``_large``; the
        trend verdict as ``ch7_trend_verdict`` (with ``_settle``) and per interpreter
        ``ch7_trend_<n>``; what the intervals cover as ``ch7_interval_scope``; the comparative words of :func:`adv2.chapters.ch07.reading.phrase_glue`
        and ``ch7_chapter3_reading`` (chapter 3's verdicts from ``results_dir``, else the published
        results). "not run" for what the run left out."""
        out: dict[str, Any] = {
            f"{GLUE_PREFIX}n_images": len(self.attack_set.x),
            f"{GLUE_PREFIX}sizes": ", ".join(f"{s}" for s in self.sizes),
            f"{GLUE_PREFIX}pgd_steps": pgd_steps(self.step_scale),
            f"{GLUE_PREFIX}epsilon": self.epsilon,
        }
        for a in self.archs:
            est = self.intervals()[a]
            for s in self.sizes:
                p = f"{GLUE_PREFIX}{a}_{s}_"
                out[p + "accuracy"] = self.accuracy[a][s]
                for n in ALL_INTERPRETERS:
                    e = est[s].get(n)
                    out[p + f"{n}_ratio"] = str(e["l1_ratio_adv2_over_pgd"]) if e else NOT_RUN
                    for att in ("pgd", "adv2"):
                        out[p + f"{n}_{att}_success"] = str(e[att]["success_rate"]) if e else NOT_RUN
                        out[p + f"{n}_{att}_l1"] = str(e[att]["l1_mean"]) if e else NOT_RUN
        a, small, large = self.archs[0], self.sizes[0], self.sizes[-1]
        est = self.intervals()[a]
        out[f"{GLUE_PREFIX}arch"] = a
        out[f"{GLUE_PREFIX}size_small"], out[f"{GLUE_PREFIX}size_large"] = small, large
        factor = (large / small) ** 2
        out[f"{GLUE_PREFIX}pixel_factor"] = int(factor) if factor == int(factor) else fmt(factor)
        out[f"{GLUE_PREFIX}accuracy_small"] = self.accuracy[a][small]
        out[f"{GLUE_PREFIX}accuracy_large"] = self.accuracy[a][large]
        trend = trend_verdict(self, a)
        out.update(verdict_glue(f"{GLUE_PREFIX}trend_verdict", trend))
        parts = dict(trend.parts) if trend.parts else {self.interpreters[0]: trend}
        for n in ALL_INTERPRETERS:
            for end, s in (("small", small), ("large", large)):
                e = est[s].get(n)
                out[f"{GLUE_PREFIX}{n}_ratio_{end}"] = str(e["l1_ratio_adv2_over_pgd"]) if e else NOT_RUN
                out[f"{GLUE_PREFIX}{n}_success_{end}"] = str(e["adv2"]["success_rate"]) if e else NOT_RUN
            out[f"{GLUE_PREFIX}trend_{n}"] = verdict_cell(parts.get(n)) if n in parts else NOT_RUN
        out.update(reading.phrase_glue(self.numbers()))  # the comparative words, from the numbers
        out[f"{GLUE_PREFIX}chapter3_reading"] = reading.chapter3_reading(results_dir or "results")
        out[f"{GLUE_PREFIX}interval_scope"] = interval_scope_text(
            self.train_seeds,
            models="classifiers (one per input side)",
            # the table's and the curve's values and error bars pool the seeds
            shown="the table's accuracy column and the maps figure",
        )
        return out


def _short(s: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("success_rate", "confidence_mean", "l1_mean", "l2_mean", "iou_mean", "n")
    return {k: s.get(k) for k in keys if k in s}


def attack_sizes(
    trained: Mapping[str, Mapping[int, Trained]],
    fmnist: data.Dataset,
    *,
    interpreters: list[str],
    n_images: int,
    epsilon: float,
    step_size: float,
    step_scale: float,
    attack_batch_size: int,
    seed: int,
    schedule: str = "authors",
    device: torch.device | str = "cpu",
    progress: bool = False,
    log: Callable[[str], None] | None = print,
    train_seed: int = 0,
    more_seeds: Mapping[int, Mapping[str, Mapping[int, Trained]]] | None = None,
) -> InputSizeResult:
    """Per classifier: the common attack set, then at every side PGD (chapter 3's baseline and
    warm start) and ADV2 per interpreter with chapter 3's schedules (``step_scale`` of the
    authors' step counts, on ``schedule``). ``trained`` are the classifiers of ``train_seed``;
    ``more_seeds`` those of further training seeds, by seed
    (:func:`adv2.chapters.ch07.classifiers.train_other_seeds`), attacked the same way on the same
    images (those every seed's classifiers get right)."""
    bad = [n for n in interpreters if n not in ALL_INTERPRETERS]
    if bad or not interpreters:
        raise ValueError(
            f"parameter 'interpreters' has value {interpreters!r}; expected a non-empty subset of "
            f"{list(ALL_INTERPRETERS)}"
        )
    archs = list(trained)
    sizes = sorted(next(iter(trained.values())))
    cfgs = {
        n: attacks.default_config(
            n, scale=step_scale, epsilon=epsilon, step_size=step_size, schedule=schedule
        )
        for n in interpreters
    }
    n_pgd = pgd_steps(step_scale)
    warm = warm_starts(cfgs, n_pgd)
    # every seed attacks the same images: those every side's classifier of every seed gets right
    others = dict(more_seeds or {})
    sets = {
        a: common_attack_set(
            trained[a],
            fmnist,
            n_images,
            seed=seed,
            device=device,
            also_correct=[o[a] for o in others.values()],
        )
        for a in archs
    }

    def attack(
        by_arch: Mapping[str, Mapping[int, Trained]], log: Callable[[str], None] | None
    ) -> InputSizeResult:
        """PGD and ADV2 on one training seed's classifiers, at every side."""
        runs, per_image, seconds, x_pgds = {}, {}, {}, {}
        for a in archs:
            aset = sets[a]
            runs[a], per_image[a], seconds[a], x_pgds[a] = {}, {}, {}, {}
            for s in sizes:
                model, x = by_arch[a][s].model, models.upsample(aset.x, s)
                t0 = time.time()
                snaps = attacks.pgd_snapshots(
                    model, x, aset.target, warm, epsilon=epsilon, step_size=step_size,
                    batch_size=attack_batch_size, progress=progress, desc=f"PGD {a} {s}px",
                    schedule=schedule,
                )  # fmt: skip
                seconds[a][s] = {"pgd": time.time() - t0}
                x_pgds[a][s] = snaps[n_pgd]
                runs[a][s], per_image[a][s] = {}, {}
                for n in interpreters:
                    t0, cfg = time.time(), cfgs[n]
                    runs[a][s][n] = compare_pgd_adv2(
                        model, _interpreter(n, model, s), x, aset.y, aset.target, cfg,
                        x_pgd=snaps[n_pgd], x_stage1=shared_stage1(cfg, snaps),
                        batch_size=attack_batch_size, progress=progress, desc=f"ADV2 {n} {a} {s}px",
                    )  # fmt: skip
                    seconds[a][s][n] = time.time() - t0
                    per_image[a][s][n] = per_image_arrays(runs[a][s][n])
                    if log:
                        st = runs[a][s][n]["numbers"]
                        log(
                            f"{a} {s:3d} px {n:4s} ({seconds[a][s][n]:5.1f} s): success PGD "
                            f"{st['pgd']['success_rate']:.2f} / ADV2 {st['adv2']['success_rate']:.2f}, "
                            f"L1 PGD {fmt(st['pgd']['l1_mean'])} / ADV2 {fmt(st['adv2']['l1_mean'])}"
                        )
        return InputSizeResult(
            archs,
            sizes,
            list(interpreters),
            epsilon,
            step_size,
            step_scale,
            sets[archs[0]],
            runs,
            {a: {s: by_arch[a][s].accuracy for s in sizes} for a in archs},
            {a: {s: by_arch[a][s].train_seconds for s in sizes} for a in archs},
            seconds,
            x_pgds,
            per_image,
        )

    result = attack(trained, log)
    more = {}
    for s, by_arch in others.items():
        t0 = time.time()
        more[s] = dataclasses.replace(attack(by_arch, None), train_seed=s)
        if log:
            log(f"train_seed {s}: every attack again, on the same images, in {time.time() - t0:.0f} s")
    return dataclasses.replace(result, train_seed=train_seed, more_seeds=more)


# ----------------------------------------------------------------------------- claims
def trend_verdict(result: InputSizeResult, arch: str) -> Verdict:
    """:func:`adv2.chapters.claim_rules.larger_inputs_help_adv2` for ``arch``, smallest vs largest side, for
    every interpreter (not measurable when only one side was run)."""
    if len(result.sizes) < 2:
        return claims.not_measurable(TREND_CLAIM, "only one input size was run: nothing to compare")

    def arrays(size: int) -> dict[str, dict[str, Any]]:
        """Per interpreter, the claim's arrays at ``size``: one seed's, or ``BySeed`` over seeds."""
        runs = result.per_image_by_seed(arch, size)

        def each(n: str, att: str, key: str) -> Any:
            return one_or_by_seed(pi[n][att][key] for pi in runs)

        return {
            n: {
                "adv2_l1": each(n, "adv2", "l1"),
                "pgd_l1": each(n, "pgd", "l1"),
                "adv2_success": each(n, "adv2", "success"),
            }
            for n in runs[0]
        }

    return claim_rules.larger_inputs_help_adv2(arrays(result.sizes[0]), arrays(result.sizes[-1]))


# ----------------------------------------------------------------------------- tables, figures
def curve_table(result: InputSizeResult) -> str:
    """Markdown: per classifier, side and interpreter, the accuracy, PGD's and ADV2's success and
    mean map L1 and the ADV2 / PGD L1 ratio, each with its 95 % interval ("value [low, high]")."""
    est = result.intervals()
    rows = [
        [
            a,
            f"{s} px",
            result.accuracy[a][s],
            n.upper(),
            est[a][s][n]["pgd"]["success_rate"],
            est[a][s][n]["adv2"]["success_rate"],
            est[a][s][n]["pgd"]["l1_mean"],
            est[a][s][n]["adv2"]["l1_mean"],
            est[a][s][n]["l1_ratio_adv2_over_pgd"],
        ]
        for a in result.archs
        for s in result.sizes
        for n in result.interpreters
    ]
    headers = ["classifier", "input", "test accuracy", "interpreter", "success PGD", "success ADV2"]
    headers += ["L1 PGD", "L1 ADV2", "L1 ratio ADV2 / PGD"]
    return plotting.markdown_table(fmt_rows(rows), headers)


def curve_figure(result: InputSizeResult):
    """Two panels against the input side: the ADV2 / PGD L1 ratio and ADV2's success rate (PGD's
    dashed), one line per classifier and interpreter, error bars the 95 % intervals."""
    est = result.intervals()
    ratio, success = {}, {}
    for a in result.archs:
        own = "" if len(result.archs) == 1 else f"{a} "
        for n in result.interpreters:
            ratio[f"{own}{n.upper()}"] = [est[a][s][n]["l1_ratio_adv2_over_pgd"] for s in result.sizes]
            success[f"{own}ADV2 on {n.upper()}"] = [
                est[a][s][n]["adv2"]["success_rate"] for s in result.sizes
            ]
        # one PGD run per side serves every interpreter: one line
        first = result.interpreters[0]
        success[f"{own}PGD"] = [est[a][s][first]["pgd"]["success_rate"] for s in result.sizes]
    fig, axes = plotting.panel_axes(2, cols=2, height=2.9)
    plotting.interval_curves(
        result.sizes, ratio, "input side (px)", "map L1 ratio ADV2 / PGD", ax=axes[0],
        reference=claims.MAPS_CLOSE_RATIO, reference_label="chapter 3's 'much closer'",
    )  # fmt: skip
    plotting.interval_curves(
        result.sizes, success, "input side (px)", "success rate", ax=axes[1], dashed="PGD"
    )
    return fig


def maps_figure(result: InputSizeResult, class_names: list[str], interpreter: str = "cam", n_show: int = 2):
    """Benign, PGD and ADV2 maps of ``interpreter`` at every side for the first ``n_show``
    images ADV2 fooled at every side (first classifier); None when there is none."""
    a = result.archs[0]
    if interpreter not in result.interpreters:
        return None
    ok = torch.ones(len(result.attack_set.x), dtype=torch.bool)
    for s in result.sizes:
        ok &= result.runs[a][s][interpreter]["adv2"].success.cpu().bool()
    idx = ok.nonzero().flatten()[:n_show].tolist()
    if not idx:
        return None
    cells, labels = [], []
    for i in idx:
        for s in result.sizes:
            r = result.runs[a][s][interpreter]
            x, x_adv = models.upsample(result.attack_set.x[i : i + 1], s)[0], r["adv2"].x_adv[i].cpu()
            x_pgd = result.x_pgd[a][s][i].cpu()
            cells.append(
                [
                    (x,),
                    (x, r["benign"][i].cpu()),
                    (x_pgd, r["pgd"].maps[i].cpu()),
                    (x_adv,),
                    (x_adv, r["adv2"].maps[i].cpu()),
                ]
            )
            y, t = int(result.attack_set.y[i]), int(result.attack_set.target[i])
            labels.append(f"{s} px: {class_names[y]} → {class_names[t]}")
    return plotting.panel_rows(
        cells, ["input", "benign map", "PGD map", "ADV2 input", "ADV2 map"], row_labels=labels,
        overlay=False, suptitle=f"{interpreter.upper()} on {a} at every input side",
    )  # fmt: skip


def verdict_table(result: InputSizeResult) -> str:
    """Markdown: chapter 3's "maps much closer" claim at every side and the trend claim."""
    v = result.verdicts()
    rows = []
    for a in result.archs:
        for s in result.sizes:
            rows.append([f"{a}, {s} px", claims.CLAIMS["adv2_maps_closer_than_pgd"].statement,
                         verdict_cell(v[f"{a}_{s}px"]["adv2_maps_closer_than_pgd"])])  # fmt: skip
        rows.append([f"{a}, {result.sizes[0]} → {result.sizes[-1]} px", claims.CLAIMS[TREND_CLAIM].statement,
                     verdict_cell(v[f"{a}_sizes"][TREND_CLAIM])])  # fmt: skip
    return plotting.markdown_table(rows, ["setting", "claim", "verdict (estimate [95 % interval])"])


# ----------------------------------------------------------------------------- invariants
def check(result: InputSizeResult, profile: str) -> None:
    """The chapter's invariants; a failure (:class:`ChapterCheckFailed`) names the expected value,
    the measured one and the parameter to change (every training seed's run)."""
    for other in result.more_seeds.values():
        check(other, profile)
    for a in result.archs:
        for s in result.sizes:
            x = models.upsample(result.attack_set.x, s)
            for n in result.interpreters:
                adv = result.runs[a][s][n]["adv2"].x_adv.cpu()
                _check(
                    tuple(adv.shape[-2:]) == (s, s),
                    f"ADV2 on {a}/{n} at {s} px returned inputs of side {tuple(adv.shape[-2:])}, expected {s}",
                )
                drift = float((adv - x).abs().max())
                _check(
                    drift <= result.epsilon + 1e-5,
                    f"ADV2 on {a}/{n} at {s} px moved a pixel by {drift:.4g}, beyond epsilon "
                    f"{result.epsilon}: the projection is broken (a library bug, not a parameter)",
                )
    if profile == "smoke":
        return
    for a in result.archs:
        for s in result.sizes:
            acc = result.accuracy[a][s]
            _check(
                acc >= MIN_ACCURACY,
                f"the {a} classifier at {s} px reached test accuracy {acc:.3f}, below "
                f"{MIN_ACCURACY}: raise train_subset or train_epochs",
            )
