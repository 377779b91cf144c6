"""Chapter 3's result: the summary numbers, the verdicts of its two claims per setting
(:func:`verdicts`, decided by :mod:`adv2.chapters.claims`), the claim table, the results file's
``numbers`` and the prose's glue (:class:`Ch03Result`, made by :func:`summarize`), and the
chapter's invariants (:func:`check`, explained when they fail)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adv2.chapters import claims, plotting
from adv2.chapters._common import (
    NOT_RUN,
    flat_glue,
    half_width_text,
    intervals_block,
    is_missing,
    pad,
    verdict_cell,
    verdict_glue,
    verdicts_block,
)
from adv2.chapters._common import check as _check
from adv2.chapters._compare import (
    PHOTO_EPSILON,
    attack_intervals,
    interval_scope_text,
    pgd_steps,
    setting_verdicts,
)
from adv2.chapters.ch03.configs import ALL_INTERPRETERS
from adv2.chapters.ch03.fmnist_attacks import FmnistAttacks
from adv2.chapters.ch03.photo_attacks import PhotoAttacks
from adv2.chapters.ch03.photo_report import all_photo_glue, glue_prefix, photo_numbers
from adv2.chapters.claims import Verdict
from adv2.core.config import PHOTO_CLASSIFIER, PHOTO_CLASSIFIERS
from adv2.core.formatting import fmt
from adv2.core.phrases import ABOVE, BELOW, INTERPRETER_LABELS, compare, convergence_note
from adv2.core.seed_stats import interval_covers

ALL_ARCHS = ("resnet", "densenet")
# the chapter's two claims, in the order of its verdict table; settings: classifiers, then photos
CLAIM_IDS = ("adv2_success_like_pgd", "adv2_maps_closer_than_pgd")
SETTINGS = ("resnet", "densenet", "photos")
MIN_SUCCESS = 0.5  # the chapter's working point (quick and paper profiles)


def _valid(v: Any) -> bool:
    return not is_missing(v)


@dataclass
class Ch03Result:
    """Everything the chapter reports: ``numbers()`` is ``results/03_adv2.json``'s ``numbers``,
    ``glue()`` what the prose quotes, ``per_image`` the per-image arrays of every attack.
    ``photos``: EfficientNet-Lite0's photo section (the setting ``photos``); ``more_photos``
    the other photo classifiers' (settings :func:`adv2.chapters.claims.photo_setting`), by name."""

    dataset: str
    fmnist: FmnistAttacks
    photos: PhotoAttacks | None
    summary: dict[str, Any]
    per_image: dict[str, Any]
    more_photos: dict[str, PhotoAttacks] = field(default_factory=dict)

    @property
    def photo_runs(self) -> dict[str, PhotoAttacks]:
        """Every photo classifier run, by name (the default first)."""
        first = {PHOTO_CLASSIFIER: self.photos} if self.photos is not None else {}
        return {**first, **self.more_photos}

    @property
    def stats(self) -> dict[str, dict[str, dict]]:
        return self.fmnist.stats

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [(a, n) for a in self.fmnist.archs for n in self.fmnist.interpreters]

    def setting_per_image(self) -> dict[str, Any]:
        """``{setting: {interpreter: per-image arrays}}`` for the settings this run measured; a
        Fashion-MNIST classifier's is a list of them, one per training seed (``train_seed`` first)."""
        out = {a: self.fmnist.per_image_by_seed(a) for a in self.fmnist.archs}
        for c, ph in self.photo_runs.items():
            if ph.per_image:
                out[claims.photo_setting(c)] = ph.per_image
        return out

    def intervals(self) -> dict[str, Any]:
        """95 % intervals of the headline numbers, laid out as ``numbers()`` (dataset, classifier,
        interpreter, attack); see :func:`adv2.chapters._compare.attack_intervals`. Fashion-MNIST's
        cover its training seeds when several ran (:attr:`interval_covers`); the photos' cover
        the photos (a pretrained classifier)."""
        out: dict[str, Any] = {self.dataset: {a: self.fmnist.intervals(a) for a in self.fmnist.archs}}
        photo = {c: attack_intervals(ph.per_image) for c, ph in self.photo_runs.items() if ph.per_image}
        if photo:
            out["imagenet-sample"] = photo
        return out

    def numbers(self) -> dict[str, Any]:
        fm = self.fmnist
        photo_stats = {c: ph.stats for c, ph in self.photo_runs.items() if ph.stats}
        return {
            self.dataset: fm.stats,
            "imagenet-sample": photo_stats,
            "photos": photo_numbers(self.photos),
            # the other photo classifiers' sections, only where they ran (the default's file is unchanged)
            **{claims.photo_setting(c): photo_numbers(ph) for c, ph in self.more_photos.items()},
            "classifier_accuracy": fm.accuracy,
            "seconds": {f"{a}_{n}": v for (a, n), v in fm.seconds.items()},
            "summary": self.summary,
            "pgd_success_by_epsilon": {
                a: {str(e): v for e, v in fm.budget_success[a].items()} for a in fm.archs
            },
            "intervals": intervals_block(self.intervals()),
            # issue 27: what the Fashion-MNIST intervals (and verdicts) cover
            "train_seeds": fm.train_seeds,
            "interval_covers": interval_covers(len(fm.train_seeds)),
            "verdicts": verdicts_block(verdicts(self)),
        }

    def glue(self) -> dict[str, Any]:
        """Flat ``{glue name: value}``; every name the chapter's prose uses is present, with
        "not run" for classifiers and interpreters this run left out and "—" for no value.

        Verdicts (``ch3_summary_claim_*_verdict`` for both classifiers together,
        ``ch3_<setting>_claim_*_verdict`` per setting) read "status (estimate [interval])", each
        with ``_n_needed`` and ``_settle`` (how many images would settle an inconclusive one)."""
        out = flat_glue({"summary": self.summary}, prefix="ch3.")
        for a in ALL_ARCHS:  # the budget paragraph
            b = self.fmnist.budget_success.get(a, {})
            out.update(
                flat_glue(
                    {
                        "budget": {
                            "eps0031": b.get(0.031, NOT_RUN),
                            "eps0062": b.get(0.062, NOT_RUN),
                            "eps": b.get(self.fmnist.epsilon, NOT_RUN),
                        }
                    },
                    prefix=f"ch3.{a}.",
                )
            )
        per_setting, together = verdicts(self), fmnist_verdicts(self)
        for cid, short in zip(CLAIM_IDS, ("success", "maps")):
            out.update(verdict_glue(f"ch3_summary_claim_{short}_verdict", together.get(cid)))
            for setting in (*SETTINGS, *claims.PHOTO_SETTINGS):
                out.update(
                    verdict_glue(
                        f"ch3_{setting}_claim_{short}_verdict", per_setting.get(setting, {}).get(cid)
                    )
                )
        out["ch3_sample_size"] = sample_size_text(self)
        out["ch3_interval_scope"] = interval_scope_text(self.fmnist.train_seeds)
        out["ch3_schedule"] = self.fmnist.schedule  # the parameter's value; the prose explains both
        out.update(all_photo_glue(self.photo_runs))
        out.update(phrase_glue(self.numbers(), self.fmnist.schedule))  # the comparative words
        return pad(
            out,
            [
                f"ch3_summary_{n}_{att}_{key}"
                for n in ALL_INTERPRETERS
                for att in ("pgd", "adv2")
                for key in ("success_rate", "l1_mean", "iou_mean")
            ],
        )


def confidence_reading(word: str | None, schedule: str) -> str:
    """Why ADV2's mean confidence sits where it does against PGD's (``word``: "above", "below",
    "about the same as"), for the prose after the two numbers."""
    if word is None:
        return "one of the two confidences was not measured"
    cost = (
        "ADV2 trades some of the prediction loss for the interpretation loss, while PGD pursues p(cₜ) alone"
    )
    if word == BELOW:
        return f"as its objective predicts: {cost}"
    why = (
        "on the fast schedule PGD stops each image as soon as it is classified as the target, so its "
        "confidence stays near the decision boundary, while ADV2 keeps stepping on its maps after that"
        if schedule == "fast"
        else "ADV2 keeps stepping on its maps after reaching the target, which also moves p(cₜ)"
    )
    tail = ", and ADV2 on Grad counts only iterates with p(cₜ) > 0.8 as successes"
    if word == ABOVE:
        return f"although {cost}: {why}{tail}"
    return f"{cost}, yet {why}{tail}"


def phrase_glue(numbers: dict[str, Any], schedule: str) -> dict[str, str]:
    """The chapter's comparative words, computed from its ``numbers`` (``results/03_adv2.json``'s
    layout, so a test can change a number and see the sentence change):
    ``ch3_summary_confidence_adv2_vs_pgd`` ("above" / "below" / "about the same as"),
    ``ch3_summary_confidence_reading`` and ``ch3_photo_curves_reading`` (where PGD's and ADV2's
    photo convergence curves flatten, :func:`adv2.core.phrases.convergence_note`)."""
    s = numbers.get("summary", {})
    word = compare(s.get("confidence_adv2_mean"), s.get("confidence_pgd_mean"))
    out = {
        "ch3_summary_confidence_adv2_vs_pgd": word or "not comparable with",
        "ch3_summary_confidence_reading": confidence_reading(word, schedule),
    }
    for c in PHOTO_CLASSIFIERS:  # each photo classifier's (ch3_photo_curves_reading, ch3_photo_lite2_...)
        photos = numbers.get(claims.photo_setting(c)) or {}
        curves = photos.get("curves") or {}
        if c != PHOTO_CLASSIFIER and not photos:
            text = NOT_RUN
        elif curves:
            text = convergence_note(curves, "On these photos")
        else:
            text = "This run drew no convergence curves (`imagenet_curve_every` 0)."
        out[glue_prefix(c) + "curves_reading"] = text
    return out


def _measure(fm: FmnistAttacks) -> dict[str, Any]:
    """The summary's measured part (everything but the verdicts)."""
    stats, archs = fm.stats, fm.archs
    pairs = [(a, n) for a in archs for n in fm.interpreters]

    def better(metric, lower=True):
        out = []
        for a, n in pairs:
            p, q = stats[a][n]["pgd"].get(metric), stats[a][n]["adv2"].get(metric)
            if not (_valid(p) and _valid(q)):
                continue
            out.append(q < p if lower else q > p)
        return out

    closer_l1, closer_l2, higher_iou = better("l1_mean"), better("l2_mean"), better("iou_mean", lower=False)
    succ_gap = [stats[a][n]["adv2"]["success_rate"] - stats[a][n]["pgd"]["success_rate"] for a, n in pairs]
    mean = lambda key, att: sum(stats[a][n][att][key] or 0 for a, n in pairs) / len(pairs)
    ratio = [
        stats[a][n]["adv2"]["l1_mean"] / stats[a][n]["pgd"]["l1_mean"]
        for a, n in pairs
        if _valid(stats[a][n]["adv2"]["l1_mean"]) and stats[a][n]["pgd"]["l1_mean"]
    ]
    summary = {
        "pairs": len(pairs),
        "closer_l1": sum(closer_l1),
        "closer_l2": sum(closer_l2),
        "higher_iou": sum(higher_iou),
        "success_pgd_mean": mean("success_rate", "pgd"),
        "success_adv2_mean": mean("success_rate", "adv2"),
        "max_success_drop": max([-g for g in succ_gap] + [0.0]),
        "l1_ratio_mean": sum(ratio) / len(ratio) if ratio else float("nan"),
    }
    worst = min(
        pairs,
        key=lambda p: stats[p[0]][p[1]]["adv2"]["success_rate"] - stats[p[0]][p[1]]["pgd"]["success_rate"],
    )
    summary["largest_drop_pair"] = f"{worst[1].upper()} on {worst[0]}"
    conf = lambda att: [
        stats[a][n][att]["confidence_mean"] for a, n in pairs if _valid(stats[a][n][att]["confidence_mean"])
    ]
    summary["confidence_pgd_mean"] = sum(conf("pgd")) / max(len(conf("pgd")), 1)
    summary["confidence_adv2_mean"] = sum(conf("adv2")) / max(len(conf("adv2")), 1)
    for name in fm.interpreters:  # per interpreter, averaged over classifiers, for the prose
        for att in ("pgd", "adv2"):
            for key in ("success_rate", "l1_mean", "iou_mean"):
                vals = [v for v in (stats[a][name][att][key] for a in archs) if _valid(v)]
                summary[f"{name}_{att}_{key}"] = sum(vals) / len(vals) if vals else float("nan")
    return summary


def verdicts(result: Ch03Result) -> dict[str, dict[str, Verdict]]:
    """The chapter's claims per setting (``resnet``, ``densenet``, ``photos``: those run), as
    :class:`adv2.chapters.claims.Verdict` s decided by the claims layer from the per-image arrays."""
    return {setting: setting_verdicts(pi) for setting, pi in result.setting_per_image().items()}


def fmnist_verdicts(result: Ch03Result) -> dict[str, Verdict]:
    """Each claim on Fashion-MNIST with both classifiers together (:func:`adv2.chapters.claims.all_of`
    over the classifiers run): the chapter's summary verdicts."""
    by_setting = verdicts(result)
    return {
        cid: claims.all_of(cid, {a: by_setting[a][cid] for a in result.fmnist.archs}) for cid in CLAIM_IDS
    }


def sample_size_text(result: Ch03Result) -> str:
    """One sentence per setting: the ADV2/PGD L1 ratio's half-width per interpreter and whether it
    settles claim 2 or about how many images it would need."""
    lines = []
    for setting, by_claim in verdicts(result).items():
        v = by_claim["adv2_maps_closer_than_pgd"]
        parts = dict(v.parts) or {"": v}
        label = {**claims.SETTINGS, **claims.PHOTO_SETTINGS}.get(setting, setting)
        lines.append(
            f"{label}: "
            + "; ".join(half_width_text(INTERPRETER_LABELS.get(n, n), p) for n, p in parts.items())
        )
    return ". ".join(lines) + "." if lines else NOT_RUN


def summarize(
    fm: FmnistAttacks,
    photos: PhotoAttacks | None = None,
    dataset: str = "fashion-mnist",
    more_photos: dict[str, PhotoAttacks] | None = None,
) -> Ch03Result:
    """The chapter's result: the summary numbers, the verdicts and every per-image array.
    ``photos``: EfficientNet-Lite0's photo section; ``more_photos``: the other photo classifiers'."""
    more = dict(more_photos or {})
    wrong = [
        c
        for c, ph in more.items()
        if c == PHOTO_CLASSIFIER or ph.classifier != c or c not in PHOTO_CLASSIFIERS
    ]
    if wrong or (photos is not None and photos.classifier != PHOTO_CLASSIFIER):
        raise ValueError(
            f"summarize: photos must be {PHOTO_CLASSIFIER}'s run and more_photos the others' by name; "
            f"got photos={getattr(photos, 'classifier', None)!r}, more_photos keys {sorted(more)}"
        )
    per_image = {dataset: fm.per_image}
    runs = {**({PHOTO_CLASSIFIER: photos} if photos is not None else {}), **more}
    if runs:
        per_image["imagenet-sample"] = {c: ph.per_image for c, ph in runs.items()}
    result = Ch03Result(dataset, fm, photos, _measure(fm), per_image, more)
    v = fmnist_verdicts(result)
    success, maps = v["adv2_success_like_pgd"], v["adv2_maps_closer_than_pgd"]
    result.summary.update(
        {
            "claim_success_holds": success.status == claims.HOLDS,
            "claim_maps_hold": maps.status == claims.HOLDS,
            "claim_success_verdict": success.status,
            "claim_maps_verdict": maps.status,
        }
    )
    return result


def claims_table(result: Ch03Result) -> str:
    """The chapter's verdict table: each claim per setting (status and estimate), then the counts
    of pairs where ADV2's maps are closer and the mean L1 ratio."""
    s, by_setting = result.summary, verdicts(result)
    settings = list(by_setting)
    rows = [
        [claims.CLAIMS[cid].statement] + [verdict_cell(by_setting[st][cid]) for st in settings]
        for cid in CLAIM_IDS
    ]
    labels = {**claims.SETTINGS, **claims.PHOTO_SETTINGS}
    table = plotting.markdown_table(rows, ["claim"] + [labels.get(st, st) for st in settings])
    counts = [
        ["ADV2 maps closer than PGD's: lower L1 (pairs)", f"{s['closer_l1']} / {s['pairs']}"],
        ["ADV2 maps closer than PGD's: lower L2 (pairs)", f"{s['closer_l2']} / {s['pairs']}"],
        ["ADV2 maps closer than PGD's: higher mean IoU (pairs)", f"{s['higher_iou']} / {s['pairs']}"],
        ["mean L1 ratio ADV2 / PGD", fmt(s["l1_ratio_mean"])],
    ]
    return table + "\n\n" + plotting.markdown_table(counts, ["Fashion-MNIST", "this run"])


# ----------------------------------------------------------------------------- invariants
def check(result: Ch03Result, profile: str, check_budget: bool = True) -> None:
    """The chapter's invariants; a failure (:class:`ChapterCheckFailed`) names the expected value,
    the measured one and the parameter to change. ``check_budget=False`` (sweep points) keeps the
    invariants but not the rule that the budget reaches half the targets."""
    fm = result.fmnist
    for arch in fm.archs:
        drift = float((fm.x_pgd[arch].cpu() - fm.sets[arch].x).abs().max())
        _check(
            drift <= fm.epsilon + 1e-5,
            f"PGD on {arch} moved a pixel by {drift:.4g}, beyond epsilon {fm.epsilon}: "
            "the projection is broken (a library bug, not a parameter)",
        )
        for name in fm.interpreters:
            for att in ("pgd", "adv2"):
                s = fm.stats[arch][name][att]
                _check(
                    0 <= s["success_rate"] <= 1,
                    f"{att} success rate on {arch}/{name} is {s['success_rate']}, outside [0, 1]",
                )
                _check(
                    len(s["iou_curve"]) == 9,
                    f"the IoU curve of {att} on {arch}/{name} has {len(s['iou_curve'])} points, "
                    "expected 9 (k = 0.1 ... 0.9)",
                )
            adv = fm.runs[arch][name]["adv2"]
            k = len(adv.x_adv)
            drift = float((adv.x_adv.cpu() - fm.sets[arch].x[:k]).abs().max())
            _check(
                drift <= fm.epsilon + 1e-5,
                f"ADV2 on {arch}/{name} moved a pixel by {drift:.4g}, beyond epsilon {fm.epsilon}: "
                "the projection is broken (a library bug, not a parameter)",
            )
    for ph in result.photo_runs.values():
        for name, run in ph.runs.items():
            for att, x_att in (("PGD", ph.x_pgd), ("ADV2", run["adv2"].x_adv)):
                drift = float((x_att.cpu() - ph.attack_set.x).abs().max())
                _check(
                    drift <= PHOTO_EPSILON + 1e-5,
                    f"{att} on the photos ({ph.label}, {name}) moved a pixel by {drift:.4g}, beyond epsilon "
                    f"{PHOTO_EPSILON}: the projection is broken (a library bug, not a parameter)",
                )
    if profile == "smoke" or not check_budget:
        return
    # the attacks work at the CPU budgets: PGD and ADV2 on CAM reach most targets
    for arch in fm.archs:
        rate = fm.stats[arch][fm.interpreters[0]]["pgd"]["success_rate"]
        _check(
            rate >= MIN_SUCCESS,
            f"PGD reached the target on {100 * rate:.0f} % of images on {arch} at epsilon "
            f"{fm.epsilon} ({pgd_steps(fm.step_scale)} steps); this chapter needs at least "
            f"{100 * MIN_SUCCESS:.0f} %: raise epsilon or step_scale",
        )
        if "cam" in fm.interpreters:
            rate = fm.stats[arch]["cam"]["adv2"]["success_rate"]
            _check(
                rate >= MIN_SUCCESS,
                f"ADV2 on CAM reached the target on {100 * rate:.0f} % of images on {arch} at "
                f"epsilon {fm.epsilon}; this chapter needs at least {100 * MIN_SUCCESS:.0f} %: "
                "raise epsilon or step_scale",
            )
