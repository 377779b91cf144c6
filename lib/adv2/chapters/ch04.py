"""Chapter 4 (AID defense): the protocol behind ``notebooks/04_aid_defense.ipynb``.

The notebook loads the classifiers, RTS and RTSA (``nets``, :func:`adv2.chapters.aid_training.load_defended`;
with ``train_seeds`` those of each further training seed too, ``load_other_seeds``), shows AID's
recipe, training curves and cost (:mod:`adv2.chapters.aid_training`), then makes one call per
section: :func:`compare_benign` / :func:`benign_table` (:mod:`adv2.chapters.aid_benign`),
:func:`summarize` (a :class:`Ch04Result`: ``numbers()`` is what ``results/04_aid_defense.json``
holds, ``glue()`` what the prose reads) and :func:`check`. Numbers go through
:func:`adv2.core.formatting.fmt` (tables and prose share one format).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from adv2.chapters import claim_rules, plotting
from adv2.chapters._common import (
    NOT_RUN,
    add_photo_settings,
    artifact_source,
    judged_blocks,
    photo_attack_set,
    photo_label,
    photo_prefix,
    photo_titled,
    setting_glue,
    verdict_glue,
)
from adv2.chapters._compare import PHOTO_ONE_SEED, interval_scope_text
from adv2.chapters._reporting import flat_glue, raise_problems
from adv2.chapters.aid_benign import (
    PAPER_BENIGN_L1,
    BenignComparison,
    benign_intervals,
    benign_table,
    compare_benign,
    compare_other_seeds,
)
from adv2.chapters.aid_training import training_costs
from adv2.chapters.aid_trial import claim_input
from adv2.chapters.claims import Verdict, photo_setting
from adv2.core import config, defenses
from adv2.core.config import PHOTO_CLASSIFIER, PHOTO_CLASSIFIERS
from adv2.core.formatting import fmt
from adv2.core.stats import Estimate
from adv2.trained import data

STEM = "04_aid_defense"
GLUE_PREFIX = "ch4_"

# a drift above this at the quick/paper profiles means AID wrecked RTS's benign maps
DRIFT_LIMIT = 0.2
# what each training seed trains (the scope sentence)
SEED_MODELS = "classifiers, RTS and RTSA"
# what on the page is train_seed's run alone when several seeds ran (the rest pools them)
SEED0_SHOWN = (
    "the table's gap, inner-attack and cost rows, the benign table's mean-map columns, the cost and "
    "trade-off tables and the figures"
)


# ----------------------------------------------------------------------------- the chapter's result
# keys glued as "not run" for a classifier the prose names but this run skipped
ARCH_KEYS = (
    "classifier_accuracy",
    "benign_l1_rts_vs_rtsa",
    "benign_l1_rts_vs_rtsa_std",
    "benign_area_rts",
    "benign_area_rtsa",
    "preserve_destroy_rts",
    "preserve_destroy_rtsa",
    "preserve_destroy_random",
    "aid_gap_first",
    "aid_gap_last",
    "inner_attack_success_last",
    "final_probe_drift",
    "cost_ratio_total",
    "cost_ratio_iter",
)


@dataclass
class Ch04Result:
    """Everything chapter 4 measured, per classifier (``archs`` in run order).

    ``more_benign``: by further training seed (issue 27), the same benign comparison on the same
    images with that seed's classifiers, RTS and RTSA; the intervals and the verdicts pool them with
    ``benign`` (``train_seed``'s), whose numbers, training log and cost stay its own."""

    archs: list[str]
    classifier_accuracy: dict[str, float]
    benign: dict[str, BenignComparison]
    cost: dict[str, dict[str, Any]]  # cached.training_cost per classifier
    aid_log: dict[str, dict[str, Any]]  # the RTSA artifact's training log per classifier
    aid_config: dict[str, Any]
    per_image: dict[str, dict[str, torch.Tensor]] = field(init=False)
    train_seed: int = 0
    more_benign: dict[int, dict[str, BenignComparison]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.per_image = {a: {"benign_l1_rts_vs_rtsa": self.benign[a].l1} for a in self.archs}

    @property
    def train_seeds(self) -> list[int]:
        """The training seeds whose models were compared, ``train_seed`` first."""
        return [self.train_seed, *self.more_benign]

    def benign_by_seed(self, a: str) -> list[BenignComparison]:
        """Classifier ``a``'s comparison per training seed (``train_seed``'s first)."""
        return [self.benign[a], *(m[a] for m in self.more_benign.values())]

    def arch_numbers(self, a: str) -> dict[str, Any]:
        b, met = self.benign[a].summary(), self.aid_log[a]
        return {
            "classifier_accuracy": self.classifier_accuracy[a],
            "benign_l1_rts_vs_rtsa": b["l1_rts_vs_rtsa"],
            "benign_l1_rts_vs_rtsa_std": b["l1_rts_vs_rtsa_std"],
            "benign_area_rts": b["area_rts"],
            "benign_area_rtsa": b["area_rtsa"],
            "preserve_destroy_rts": b["both_rts"],
            "preserve_destroy_rtsa": b["both_rtsa"],
            "preserve_destroy_random": b["both_random"],
            "aid_gap_first": met["aid_l1"][0] if met["aid_l1"] else None,
            "aid_gap_last": met["aid_l1"][-1] if met["aid_l1"] else None,
            "inner_attack_success_last": met["attack_success"][-1] if met["attack_success"] else None,
            "final_probe_drift": met.get("final_probe_drift"),
            **{f"cost_{k}": v for k, v in self.cost[a].items()},
        }

    def numbers(self) -> dict[str, Any]:
        """The ``numbers`` of ``results/04_aid_defense.json``."""
        out: dict[str, Any] = {a: self.arch_numbers(a) for a in self.archs}
        out["paper"] = {"benign_l1_rts_vs_rtsa": PAPER_BENIGN_L1}
        out["aid_config"] = dict(self.aid_config)
        out.update(judged_blocks(self.intervals(), verdicts(self), self.train_seeds))
        return out

    def intervals(self) -> dict[str, dict[str, Estimate]]:
        """95 % intervals per classifier: the headline benign L1(RTS, RTSA) (bootstrap) and the
        preserve-and-destroy rates of RTS, RTSA and random masks, over the images and, when several
        ran, the training seeds (:func:`adv2.chapters.aid_benign.benign_intervals`)."""
        return {a: benign_intervals(self.benign_by_seed(a)) for a in self.archs}

    def glue(self) -> dict[str, Any]:
        """Every ``{glue:text}`` name of the chapter (``ch4_<arch>_<key>``) with its value."""
        nested: dict[str, Any] = {}
        for a in config.ARCHS:
            if a in self.archs:
                c = self.cost[a]
                nested[a] = {
                    **self.arch_numbers(a),
                    "cost_ratio_total": c["aid_over_rts_total"],
                    "cost_ratio_iter": c["per_iteration_ratio"],
                }
            else:
                nested[a] = {k: NOT_RUN for k in ARCH_KEYS}
        out = flat_glue(nested, GLUE_PREFIX)
        for a, est in self.intervals().items():  # benign L1 and preserve-and-destroy: pooled, with intervals
            for key, e in est.items():
                out[f"{GLUE_PREFIX}{a}_{key}"] = str(e)
        scope = interval_scope_text(
            self.train_seeds, SEED_MODELS, "compared test images", "compared", shown=SEED0_SHOWN
        )
        out[f"{GLUE_PREFIX}interval_scope"] = scope + PHOTO_ONE_SEED
        by_arch = verdicts(self)
        for a in config.ARCHS:
            out.update(
                verdict_glue(
                    f"{GLUE_PREFIX}{a}_verdict_benign", by_arch.get(a, {}).get("rtsa_like_rts_on_benign")
                )
            )
        return out


def _accuracy(net: Any) -> float | None:
    """The classifier's test accuracy as recorded when trained (None for a pretrained one)."""
    art = net.classifier_artifact
    return None if art is None else art.metrics.get("test_accuracy")


def summarize(
    nets: Mapping[str, Any],
    benign: Mapping[str, BenignComparison],
    cost: Mapping[str, Mapping[str, Any]],
    aid: defenses.AIDConfig,
    *,
    train_seed: int = 0,
    more_benign: Mapping[int, Mapping[str, BenignComparison]] | None = None,
) -> Ch04Result:
    """The chapter's result from the loaded ``nets`` (``train_seed``'s) and the sections' outputs;
    ``more_benign``: each further training seed's :func:`compare_other_seeds` (none by default)."""
    archs = list(benign)
    return Ch04Result(
        archs=archs,
        classifier_accuracy={a: _accuracy(nets[a]) for a in archs},
        benign={a: benign[a] for a in archs},
        cost={a: dict(cost[a]) for a in archs},
        aid_log={a: nets[a].rtsa_artifact.metrics for a in archs},
        aid_config=aid.as_dict(),
        train_seed=train_seed,
        more_benign={s: {a: m[a] for a in archs} for s, m in (more_benign or {}).items()},
    )


def verdicts(result: Ch04Result) -> dict[str, dict[str, Verdict]]:
    """``{classifier: {"rtsa_like_rts_on_benign": Verdict}}`` for the classifiers run: the paper's
    "RTSA behaves almost identically to RTS on benign inputs", decided by :mod:`adv2.chapters.claims`
    (pooled over the training seeds when several ran)."""
    out = {}
    for a in result.archs:
        runs = [{"l1": b.l1} for b in result.benign_by_seed(a)]
        out[a] = {"rtsa_like_rts_on_benign": claim_rules.rtsa_like_rts_on_benign(claim_input(runs, "l1"))}
    return out


def check(result: Ch04Result, *, profile: str, aid: defenses.AIDConfig) -> None:
    """The chapter's invariants (the benign L1's on every training seed's models); raises
    :class:`adv2.chapters._common.ChapterCheckFailed` naming what to change."""
    problems = []
    for a in result.archs:
        n = result.arch_numbers(a)
        if n["cost_aid_seconds"] is not None and not n["cost_aid_seconds"] > 0:
            problems.append(
                f"{a}: AID's recorded time is {n['cost_aid_seconds']} s, expected > 0 "
                "(a corrupt RTSA artifact: delete it from artifacts_dir)"
            )
        for seed, b in zip(result.train_seeds, result.benign_by_seed(a)):
            where = a if seed == result.train_seed else f"{a} (train_seed {seed})"
            l1 = b.summary()["l1_rts_vs_rtsa"]
            if not 0 <= l1 <= 1:
                problems.append(
                    f"{where}: benign L1(RTS, RTSA) is {l1}, outside [0, 1]; maps must lie in [0, 1] "
                    "(a bug, not a parameter)"
                )
            if aid.iterations > 0 and aid.beta > 0 and not l1 > 0:
                problems.append(
                    f"{where}: AID ran {aid.iterations} iterations with beta {aid.beta} but RTSA's "
                    f"benign maps equal RTS's (L1 {l1}); expected a change: raise aid_lr or "
                    "aid_iterations"
                )
            if profile in ("quick", "full", "paper") and not l1 < DRIFT_LIMIT:
                problems.append(
                    f"{where}: RTSA drifted from RTS on benign inputs: L1 {fmt(l1)}, expected below "
                    f"{DRIFT_LIMIT} at the {profile} profile; raise aid_distill_weight or lower "
                    "aid_beta / aid_lr"
                )
    raise_problems("chapter 4", problems)


# ----------------------------------------------------------------------------- photos
# what each photo classifier's section quotes (ch4_photos_<key>; EfficientNet-Lite2's:
# ch4_photos_lite2_<key>, :func:`adv2.chapters._common.photo_prefix`)
PHOTO_KEYS = (
    "n_images",
    "benign_l1_rts_vs_rtsa",
    "benign_l1_ci",
    "benign_area_rts",
    "benign_area_rtsa",
    "preserve_destroy_rts",
    "preserve_destroy_rtsa",
    "preserve_destroy_random",
    "preserve_destroy_rts_ci",
    "preserve_destroy_rtsa_ci",
    "preserve_destroy_random_ci",
    "aid_gap_first",
    "aid_gap_last",
    "inner_attack_success_last",
    "final_probe_drift",
    "aid_iterations",
    "aid_seconds",
    "aid_seconds_per_iteration",
    "pool_images",
    "rtsa_source",
)
# quoted only by the sections of the further photo classifiers (Lite0's prose names its anchor
# through chapter 6's pool study): the anchor of their own RTSA recipe
PHOTO_MORE_KEYS = ("aid_distill_weight",)


@dataclass
class PhotoBenign:
    """Chapter 4 on the photos: a photo classifier's RTS and RTSA on the held-out photos it
    classifies correctly (``result`` is a :class:`Ch04Result` whose one setting is the
    classifier's, :func:`adv2.chapters.claims.photo_setting`: ``photos`` for EfficientNet-Lite0)."""

    net: Any  # adv2.trained.cached.InterpretedModel of arch "photos"
    photos: Any  # adv2.trained.data.Dataset of the offline photos
    attack_set: Any  # adv2.trained.data.AttackSet: the held-out photos compared
    result: Ch04Result
    classifier: str = PHOTO_CLASSIFIER  # one of adv2.core.config.PHOTO_CLASSIFIERS

    @property
    def setting(self) -> str:
        return photo_setting(self.classifier)

    def numbers(self) -> dict[str, Any]:
        out = self.result.numbers()
        out[self.setting]["aid_config"] = dict(self.result.aid_config)
        out[self.setting]["n_images"] = len(self.attack_set.x)
        return out

    def glue_values(self) -> dict[str, Any]:
        n = self.result.arch_numbers(self.setting)
        ci = self.result.intervals()[self.setting]
        met = self.net.rtsa_artifact.metrics
        return {
            **n,
            "n_images": len(self.attack_set.x),
            "benign_l1_ci": ci["benign_l1_rts_vs_rtsa"],
            "preserve_destroy_rts_ci": ci.get("preserve_destroy_rts"),
            "preserve_destroy_rtsa_ci": ci.get("preserve_destroy_rtsa"),
            "preserve_destroy_random_ci": ci.get("preserve_destroy_random"),
            "aid_iterations": self.result.aid_config.get("iterations"),
            "aid_distill_weight": self.result.aid_config.get("distill_weight"),
            "aid_seconds": met.get("seconds"),
            "aid_seconds_per_iteration": met.get("seconds_per_iteration"),
            "pool_images": met.get("pool_images"),
            "rtsa_source": artifact_source(self.net.rtsa_artifact),
        }


def benign_photos(
    net: Any, *, n_images: int, seed: int, device: Any = "cpu", classifier: str = PHOTO_CLASSIFIER
) -> PhotoBenign:
    """RTS vs RTSA of the photo classifier ``classifier`` (``net``: its
    :func:`adv2.trained.photomodels.load_photo_interpreted`) on the first ``n_images`` held-out
    photos it gets right (0: all of them; maps of the true class, preserve/destroy per image)."""
    setting = photo_setting(classifier)
    photos, chosen = photo_attack_set(net.model, n_images, seed=seed, device=device, classifier=classifier)
    benign = compare_benign({setting: net}, chosen.x, chosen.y, device=device)
    aid = net.rtsa_artifact.params
    result = Ch04Result(
        archs=[setting],
        classifier_accuracy={setting: None},
        benign=benign,
        cost=training_costs({setting: net}),
        aid_log={setting: net.rtsa_artifact.metrics},
        aid_config={k: aid[k] for k in defenses.AIDConfig.FLAT_ORDER if k in aid},
    )
    return PhotoBenign(net, photos, chosen, result, classifier)


def photo_benign_table(ph: PhotoBenign) -> str:
    """The photo row of the benign table (95 % intervals)."""
    return benign_table(ph.result.benign)


def photo_benign_tables(runs: Mapping[str, PhotoBenign]) -> str:
    """Each photo classifier's row of the benign table, under its name where more than one ran."""
    return photo_titled(runs, photo_benign_table)


def photo_maps_figure(ph: PhotoBenign, rows: int = 4):
    """RTS's and RTSA's benign maps of the true class on the first ``rows`` compared photos."""
    b, s = ph.result.benign[ph.setting], ph.attack_set
    k = min(rows, len(s.x))
    return plotting.maps_grid(
        s.x[:k],
        {"RTS": b.maps_rts[:k], "RTSA": b.maps_rtsa[:k]},
        row_labels=[data.class_name(ph.photos.class_names, int(c)) for c in s.y[:k]],
        suptitle=f"benign maps of the true class ({photo_label(ph.classifier)})",
    )


def photo_glue(ph: PhotoBenign | None, classifier: str | None = None) -> dict[str, Any]:
    """The photo section of ``ph``'s classifier (``classifier`` when ``ph`` is None: its names,
    all "not run"): ``ch4_photos_*`` for EfficientNet-Lite0, ``ch4_photos_lite2_*`` for -Lite2."""
    classifier = ph.classifier if ph is not None else (classifier or PHOTO_CLASSIFIER)
    prefix = photo_prefix(GLUE_PREFIX, classifier)
    keys = PHOTO_KEYS if classifier == PHOTO_CLASSIFIER else (*PHOTO_KEYS, *PHOTO_MORE_KEYS)
    out = setting_glue(None if ph is None else ph.glue_values(), keys, prefix)
    v = None if ph is None else verdicts(ph.result)[ph.setting]["rtsa_like_rts_on_benign"]
    out.update(verdict_glue(f"{prefix}verdict_benign", v))
    return out


def all_photo_glue(runs: Mapping[str, PhotoBenign]) -> dict[str, Any]:
    """Every photo classifier's :func:`photo_glue` ("not run" for those not in ``runs``)."""
    return {k: v for c in PHOTO_CLASSIFIERS for k, v in photo_glue(runs.get(c), c).items()}


def photo_numbers(ph: PhotoBenign | None) -> dict[str, Any] | None:
    return None if ph is None else ph.numbers()


def add_photos(numbers: dict[str, Any], runs: Mapping[str, PhotoBenign]) -> dict[str, Any]:
    """The chapter's ``numbers`` with each photo classifier's setting (``photos``, ``photos_lite2``)."""
    return add_photo_settings(numbers, {c: photo_numbers(ph) for c, ph in runs.items()})


__all__ = [
    "PAPER_BENIGN_L1",
    "PHOTO_KEYS",
    "BenignComparison",
    "PhotoBenign",
    "add_photos",
    "all_photo_glue",
    "benign_photos",
    "photo_benign_table",
    "photo_benign_tables",
    "photo_glue",
    "photo_maps_figure",
    "photo_numbers",
    "Ch04Result",
    "benign_intervals",
    "benign_table",
    "check",
    "compare_benign",
    "compare_other_seeds",
    "summarize",
    "verdicts",
]
