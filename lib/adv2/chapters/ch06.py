"""Chapter 6 (Table 10, Figure 16): the protocol behind ``notebooks/06_table10.ipynb``.

One call per section: :func:`attack` (ADV2 against RTS and RTSA per classifier, a :class:`Ch06Result`
whose ``numbers()`` is ``results/06_table10.json``'s and ``glue()`` the prose's),
:func:`table10_table`, :func:`transfer_table`, :func:`figure16_cells`, and :func:`check`; on the
photos, :func:`attack_photos` per photo classifier, whose ablation, tables, numbers and glue are
:mod:`adv2.chapters.aid_photos`'s. The paper's
Table 10 and its row layout are :data:`adv2.core.paper.PAPER_TABLE10` / :func:`adv2.chapters.aid_eval.table10_rows`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from adv2.chapters import aid_eval, aid_trial, claim_rules
from adv2.chapters._common import (
    NOT_RUN,
    half_width_text,
    judged_blocks,
    photo_attack_set,
    verdict_glue,
)
from adv2.chapters._compare import PHOTO_EPSILON, PHOTO_ONE_SEED, PHOTO_STEP, interval_scope_text
from adv2.chapters._reporting import raise_problems, table
from adv2.chapters.claims import Verdict, photo_setting
from adv2.core import config, paper
from adv2.core.attacks import default_config
from adv2.core.config import PHOTO_CLASSIFIER
from adv2.core.formatting import fmt
from adv2.core.metrics import l1_distance
from adv2.core.seed_stats import mean_ci_seeds, rate_ci_seeds, ratio_ci_seeds
from adv2.core.stats import Estimate
from adv2.trained import data

STEM = "06_table10"
GLUE_PREFIX = "ch6_"
SEED_MODELS = "classifiers, RTS, RTSA and β = 0 control"  # what each training seed trains (the prose)
# the chapter's claims, per classifier, and the glue suffix of each (names the prose uses)
CLAIM_GLUE = {
    "rtsa_like_rts_on_benign": "benign",
    "adv2_keeps_rts_maps_close": "adv2_rts",
    "aid_separates_adv2_maps": "ratio",
    "aid_removes_adv2_advantage": "share",
    "aid_beats_its_control": "control",
}
# the trial's estimates the prose quotes per classifier (adv2.chapters.aid_trial.intervals)
TRIAL_GLUE = (
    "benign_l1_rts_vs_control",
    "adv2_l1_ratio_control",
    "adv2_l1_rtsa_over_control",
    "adaptive_ratio",
    "adaptive_ratio_control",
    "ceiling",
    "share",
    "share_control",
    "adaptive_share",
    "adaptive_success_rtsa",
)
# what on the page is train_seed's run alone when several seeds ran (the rest pools them)
SEED0_SHOWN = "the transfer and quartile tables, the box plots and Figure 16"
# the Table 10 numbers the prose quotes per classifier
GLUED_KEYS = (
    "benign_l1_rts_vs_rtsa",
    "adv2_l1_rts",
    "adv2_l1_rtsa",
    "adv2_l1_ratio",
    "adv2_success_rts",
    "adv2_success_rtsa",
    "pgd_l1_rts",
    "pgd_l1_rtsa",
)


def describe_attack(cfg: Any) -> str:
    """One line for the reader instead of the attack config's repr (a step of k/255 reads so)."""
    k = cfg.step_size * 255
    step = f"{round(k)}/255" if abs(k - round(k)) < 1e-6 else fmt(cfg.step_size)
    return (
        f"ADV2 on RTS: {cfg.stage1_steps} prediction-only + {cfg.stage2_steps} joint sign steps, "
        f"ε = {cfg.epsilon:g}, α = {step}, λ {cfg.lam_start:g} → {cfg.lam_end:g}, "
        f"{cfg.schedule} schedule"
    )


@dataclass
class Ch06Result:
    """Chapter 6's attacks per classifier (``archs`` in run order).

    ``attack_sets[a]`` is the :func:`adv2.trained.data.select_attack_set` sample and ``out[a]`` the dict of
    :func:`adv2.chapters.aid_eval.adv2_on_rts_and_rtsa` (inputs, maps, success flags, Table 10 numbers).
    ``more_seeds``: the same attacks on the same images against the models of further training
    seeds (issue 27, :func:`attack`), by seed; the intervals and verdicts pool them with this
    result's (``train_seed``'s), whose numbers, tables' point values and figures stay its own.
    """

    archs: list[str]
    attack_sets: dict[str, Any]
    out: dict[str, dict[str, Any]]
    attack_config: dict[str, Any]
    restrict: dict[str, bool] = field(default_factory=dict)  # ADV2's means over successes only?
    # {arch: {"benign_l1_rts_vs_rtsa", "adv2_l1_rts", "adv2_l1_rtsa", "pgd_l1_rts", "pgd_l1_rtsa":
    #  L1 per image (all images), "success_rts", "success_rtsa": bool per image}}
    per_image: dict[str, dict[str, torch.Tensor]] = field(init=False)
    train_seed: int = 0
    more_seeds: dict[int, Ch06Result] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.per_image = {}
        for a in self.archs:
            self.restrict.setdefault(a, True)
            o = self.out[a]
            b = o["benign"]
            # every interpreter attacked: rts, rtsa and (when trained) the beta = 0 control
            names = list(o["benign"])
            self.per_image[a] = {
                "benign_l1_rts_vs_rtsa": l1_distance(b["rts"], b["rtsa"]),
                **{f"adv2_l1_{n}": l1_distance(o["adv_maps"][n], b[n]) for n in names},
                **{f"pgd_l1_{n}": l1_distance(o["pgd"][n], b[n]) for n in names},
                **{f"success_{n}": o["success"][n] for n in names},
            }
            if "control" in names:
                self.per_image[a]["benign_l1_rts_vs_control"] = l1_distance(b["rts"], b["control"])
            for n, best in o.get("adaptive", {}).items():  # the adaptive attacker's best per image
                self.per_image[a][f"adaptive_adv2_l1_{n}"] = l1_distance(best["maps"], b[n])
                self.per_image[a][f"adaptive_success_{n}"] = best["success"]

    @property
    def train_seeds(self) -> list[int]:
        """The training seeds whose models were attacked, ``train_seed`` first."""
        return [self.train_seed, *self.more_seeds]

    def per_image_by_seed(self, arch: str) -> list[dict[str, torch.Tensor]]:
        """``arch``'s per-image arrays, one dict per training seed (``train_seed`` first)."""
        return [self.per_image[arch], *(m.per_image[arch] for m in self.more_seeds.values())]

    @property
    def per_arch(self) -> dict[str, dict[str, Any]]:
        """One classifier's Table 10 numbers (:data:`adv2.chapters.aid_eval.TABLE10_KEYS` + ``pgd_success``)."""
        return {a: self.out[a]["numbers"] for a in self.archs}

    def numbers(self) -> dict[str, Any]:
        """The ``numbers`` of ``results/06_table10.json``."""
        out: dict[str, Any] = {
            a: {
                **self.out[a]["numbers"],
                "seconds": self.out[a]["seconds"],
                **({"control": self.out[a]["control_numbers"]} if "control_numbers" in self.out[a] else {}),
                "quartiles": {
                    k: aid_trial.quartiles(v)
                    for k, v in aid_trial.distributions(self.per_image[a], self.restrict[a]).items()
                },
            }
            for a in self.archs
        }
        out["paper"] = dict(paper.PAPER_TABLE10)
        out["attack"] = dict(self.attack_config)
        out.update(judged_blocks(self.intervals(), verdicts(self), self.train_seeds))
        return out

    def intervals(self) -> dict[str, dict[str, Estimate]]:
        """95 % intervals of Table 10's numbers per classifier (same averages as the table:
        ADV2's distances over its successes; the RTSA / RTS ratio by paired bootstrap), over the
        images and, when several ran, the training seeds (:mod:`adv2.core.seed_stats`; one seed:
        bitwise the image-only intervals)."""
        out = {}
        for a in self.archs:
            runs, r = self.per_image_by_seed(a), self.restrict[a]
            own = {
                n: [aid_trial.where_succeeded(p[f"adv2_l1_{n}"], p[f"success_{n}"], r) for p in runs]
                for n in ("rts", "rtsa")
            }
            raw = {k: [p[k] for p in runs] for k in ("benign_l1_rts_vs_rtsa", "pgd_l1_rts", "pgd_l1_rtsa")}
            out[a] = {
                "benign_l1_rts_vs_rtsa": mean_ci_seeds(raw["benign_l1_rts_vs_rtsa"]),
                "adv2_l1_rts": mean_ci_seeds(own["rts"]),
                "adv2_l1_rtsa": mean_ci_seeds(own["rtsa"]),
                "adv2_l1_ratio": ratio_ci_seeds(own["rtsa"], own["rts"]),
                "adv2_success_rts": rate_ci_seeds([p["success_rts"] for p in runs]),
                "adv2_success_rtsa": rate_ci_seeds([p["success_rtsa"] for p in runs]),
                "pgd_l1_rts": mean_ci_seeds(raw["pgd_l1_rts"]),
                "pgd_l1_rtsa": mean_ci_seeds(raw["pgd_l1_rtsa"]),
                **aid_trial.intervals(runs, r),
            }
        return out

    def glue(self) -> dict[str, Any]:
        """Every ``{glue:text}`` name of the chapter (``ch6_<arch>_<key>``) with its value. The
        Table 10 numbers are glued as intervals (``<key>_ci``: the pooled value over the training
        seeds with its interval, as Table 10 shows them), never one seed's point value."""
        out: dict[str, Any] = {}
        by_arch = verdicts(self)
        for a in config.ARCHS:
            for cid, short in CLAIM_GLUE.items():
                out.update(verdict_glue(f"{GLUE_PREFIX}{a}_verdict_{short}", by_arch.get(a, {}).get(cid)))
        est = self.intervals()
        for a in config.ARCHS:
            for k in (*GLUED_KEYS, *TRIAL_GLUE):
                e = est.get(a, {}).get(k)
                out[f"{GLUE_PREFIX}{a}_{k}_ci"] = NOT_RUN if e is None else str(e)
        out[f"{GLUE_PREFIX}sample_size"] = sample_size_text(self)
        scope = interval_scope_text(self.train_seeds, SEED_MODELS, shown=SEED0_SHOWN)
        out[f"{GLUE_PREFIX}interval_scope"] = scope + PHOTO_ONE_SEED
        return out


def attack_sets(
    nets: Mapping[str, Any],
    sets: Mapping[str, Any],
    *,
    attack_cfg: Any,
    restrict_to_success: bool,
    **attack_kw: Any,
) -> Ch06Result:
    """ADV2 against each setting's RTS, RTSA and beta = 0 control (when loaded) on its attack set
    (``sets[a]`` for ``nets[a]``) by :func:`adv2.chapters.aid_eval.adv2_on_rts_and_rtsa`, which
    takes ``attack_kw`` (``adaptive``: the adaptive attacker too, which then decides the trial's
    claims; ``seed``, ``batch_size``, ``device``, ``progress``). :func:`attack` and
    :func:`attack_photos` choose the sets."""
    out = {}
    for a, n in nets.items():
        s = sets[a]
        out[a] = aid_eval.adv2_on_rts_and_rtsa(
            n.model, n.rts, n.rtsa, s.x, s.y, s.target, attack_cfg, control=n.control,
            restrict_to_success=restrict_to_success, **attack_kw,
        )  # fmt: skip
    return Ch06Result(
        archs=list(nets),
        attack_sets=dict(sets),
        out=out,
        attack_config=attack_cfg.as_dict(),
        restrict={a: restrict_to_success for a in nets},
    )


def attack(
    nets: Mapping[str, Any],
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    *,
    n_images: int,
    num_classes: int,
    seed: int,
    device: torch.device | str = "cpu",
    train_seed: int = 0,
    others: Mapping[int, Mapping[str, Any]] | None = None,
    **attack_kw: Any,
) -> Ch06Result:
    """Per classifier: the authors' attack set (``n_images``, drawn from the test images below
    :data:`adv2.chapters.aid_eval.SELECTION_START`: chapter 4's trade-off chose AID's settings on the
    others), attacked by :func:`attack_sets` (``attack_kw``: its ``attack_cfg``,
    ``restrict_to_success``, ``adaptive``, ``progress``). ``nets``: ``train_seed``'s models;
    ``others``: by training seed, the nets of further seeds
    (:func:`adv2.chapters.aid_training.load_other_seeds`), attacked the same way on the same images
    and targets (those every seed's classifier gets right): the result's ``more_seeds``."""
    others = dict(others or {})
    verdict_images = slice(0, aid_eval.SELECTION_START)
    sets = {
        a: data.select_attack_set(
            n.model,
            x_test[verdict_images],
            y_test[verdict_images],
            n_images,
            seed=seed,
            num_classes=num_classes,
            device=device,
            also_correct=[o[a].model for o in others.values()],  # none: the authors' protocol
        )
        for a, n in nets.items()
    }
    result = attack_sets(nets, sets, seed=seed, device=device, **attack_kw)
    result.train_seed = train_seed
    result.more_seeds = {
        s: attack_sets({a: o[a] for a in nets}, sets, seed=seed, device=device, **attack_kw)
        for s, o in others.items()
    }
    return result


def attack_log(result: Ch06Result) -> str:
    lines = []
    for a in result.archs:
        sec = result.out[a]["seconds"]
        lines.append(
            f"{a}: {len(result.attack_sets[a].x)} images; stage 1 {sec['stage1']:.1f} s, "
            f"ADV2 vs RTS {sec['rts']:.1f} s, vs RTSA {sec['rtsa']:.1f} s"
            + (f", vs the control {sec['control']:.1f} s" if "control" in sec else "")
            + "".join(f", adaptive vs {k[9:]} {v:.1f} s" for k, v in sec.items() if k.startswith("adaptive_"))
        )
    for s, more in result.more_seeds.items():  # the same images against each further seed's models
        lines += [f"train_seed {s}, the same images:", attack_log(more)]
    return "\n".join(lines)


def table10_table(result: Ch06Result) -> str:
    """Table 10: ours per classifier (with 95 % intervals, "value [low, high]") beside the paper's
    (ResNet-50)."""
    est = result.intervals()
    rows, headers = aid_eval.table10_rows({a: {**m, **est[a]} for a, m in result.per_arch.items()})
    return table(rows, headers)


def transfer_table(result: Ch06Result) -> str:
    rows = [
        [
            a,
            m["transfer_l1_rts_adv_on_rtsa"],
            m["transfer_l1_rtsa_adv_on_rts"],
            m["adv2_confidence_rts"],
            m["adv2_confidence_rtsa"],
            m["pgd_success"],
        ]
        for a, m in result.per_arch.items()
    ]
    return table(
        rows,
        [
            "classifier",
            "ADV2-vs-RTS inputs on RTSA",
            "ADV2-vs-RTSA inputs on RTS",
            "p(target) vs RTS",
            "p(target) vs RTSA",
            "PGD (stage 1) success",
        ],
    )


# Figure 16's columns (plotting.panel_rows)
FIGURE16_COLUMNS = ["Benign", "RTS", "ADV2 (vs RTS)", "RTS", "RTSA", "ADV2 (vs RTSA)", "RTSA"]


def figure16_cells(
    result: Ch06Result, class_names: Sequence[str], rows: int
) -> tuple[list[list[tuple]], list[str], str]:
    """Figure 16's panels for :func:`adv2.chapters.plotting.panel_rows` (ResNet when run, images where both
    attacks succeeded first). Returns ``(cells, row_labels, arch shown)``."""
    fa = "resnet" if "resnet" in result.archs else result.archs[0]
    o, s = result.out[fa], result.attack_sets[fa]
    order = torch.argsort((~(o["success"]["rts"] & o["success"]["rtsa"])).int(), stable=True)
    cells, labels = [], []
    for i in order[:rows].tolist():
        cells.append(
            [
                (s.x[i],),
                (s.x[i], o["benign"]["rts"][i]),
                (o["adv"]["rts"][i],),
                (o["adv"]["rts"][i], o["adv_maps"]["rts"][i]),
                (s.x[i], o["benign"]["rtsa"][i]),
                (o["adv"]["rtsa"][i],),
                (o["adv"]["rtsa"][i], o["adv_maps"]["rtsa"][i]),
            ]
        )
        labels.append(f"{class_names[int(s.y[i])]} → {class_names[int(s.target[i])]}")
    return cells, labels, fa


def verdicts(result: Ch06Result) -> dict[str, dict[str, Verdict]]:
    """The paper's three Table 10 claims per classifier run, decided by :mod:`adv2.chapters.claims` from the
    per-image arrays, pooled over the training seeds when several ran (``{classifier: {claim_id: Verdict}}``).
    ``result`` may also be any object with ``archs`` and ``per_image`` (one seed: the benchmarks'
    verdicts on part of a run's photos)."""
    out = {}
    by_seed = getattr(result, "per_image_by_seed", None)
    for a in result.archs:
        runs = by_seed(a) if by_seed else [result.per_image[a]]
        p = functools.partial(aid_trial.claim_input, runs)  # one seed's array, or BySeed (pooled)
        out[a] = {
            "rtsa_like_rts_on_benign": claim_rules.rtsa_like_rts_on_benign(p("benign_l1_rts_vs_rtsa")),
            "adv2_keeps_rts_maps_close": claim_rules.adv2_keeps_rts_maps_close(
                p("adv2_l1_rts"), p("pgd_l1_rts"), p("success_rts")
            ),
            "aid_separates_adv2_maps": claim_rules.aid_separates_adv2_maps(
                p("adv2_l1_rts"), p("success_rts"), p("adv2_l1_rtsa"), p("success_rtsa")
            ),
            **aid_trial.verdicts(runs),
        }
    return out


def sample_size_text(result: Ch06Result) -> str:
    """Per classifier: the half-width reached for the Table 10 ratio and whether it settles
    Observation 9 (or about how many images it would need)."""
    by_arch = verdicts(result)
    if not by_arch:
        return NOT_RUN
    return "; ".join(half_width_text(a, v["aid_separates_adv2_maps"]) for a, v in by_arch.items())


def check(result: Ch06Result, *, epsilon: float) -> None:
    """The chapter's invariants; raises :class:`adv2.chapters._common.ChapterCheckFailed` naming what to change."""
    problems = []
    for a in result.archs:
        m = result.per_arch[a]
        lacking = set(aid_eval.TABLE10_KEYS) - set(m)
        if lacking:
            problems.append(f"{a}: Table 10 numbers lack {sorted(lacking)} (a bug, not a parameter)")
        for k in ("adv2_success_rts", "adv2_success_rtsa"):
            if not 0 <= m[k] <= 1:
                problems.append(
                    f"{a}: {k} is {m[k]}, expected a rate in [0, 1]; with n_images "
                    f"{m['n_images']} no attack was measured: raise n_images"
                )
        if not 0 <= m["benign_l1_rts_vs_rtsa"] <= 1:
            problems.append(
                f"{a}: benign L1(RTS, RTSA) is {m['benign_l1_rts_vs_rtsa']}, outside [0, 1] "
                "(a bug, not a parameter)"
            )
        for name in ("rts", "rtsa"):
            moved = float((result.out[a]["adv"][name] - result.attack_sets[a].x).abs().max())
            if moved > epsilon + 1e-5:
                problems.append(
                    f"{a}: ADV2 against {name.upper()} moved a pixel by {fmt(moved)}, beyond the "
                    f"budget epsilon = {epsilon} (a bug in the attack's projection)"
                )
    raise_problems("chapter 6", problems)
    for more in result.more_seeds.values():  # each further training seed's attacks
        check(more, epsilon=epsilon)


# ----------------------------------------------------------------------------- photos
# the photo section's tables, figure, numbers and glue: adv2.chapters.aid_photos
def photo_attack_config(scale: float, schedule: str = "authors") -> Any:
    """ADV2 against RTS on the photos: the authors' schedule times ``scale`` at the paper's
    budget (epsilon 0.031, step 1/255, chapter 3's photo constants), on ``schedule``."""
    return default_config("rts", scale=scale, epsilon=PHOTO_EPSILON, step_size=PHOTO_STEP, schedule=schedule)


def attack_photos(
    net: Any,
    *,
    n_images: int,
    seed: int,
    device: torch.device | str = "cpu",
    classifier: str = PHOTO_CLASSIFIER,
    **attack_kw: Any,
) -> Ch06Result:
    """Table 10 on the photos: :func:`attack_sets` (epsilon 0.031 in ``attack_kw``'s
    ``attack_cfg``) against the RTS, RTSA and RTSA's beta = 0 control (when ``net`` has one) of the
    photo classifier ``classifier`` (``net``: its
    :func:`adv2.trained.photomodels.load_photo_interpreted`), on the first ``n_images`` held-out
    photos it gets right (0: all of them; chapter 4's images). The result's one setting is the
    classifier's (``photos``, ``photos_lite2``)."""
    setting = photo_setting(classifier)
    _, chosen = photo_attack_set(net.model, n_images, seed=seed, device=device, classifier=classifier)
    return attack_sets({setting: net}, {setting: chosen}, seed=seed, batch_size=8, device=device, **attack_kw)


__all__ = [
    "GLUED_KEYS",
    "Ch06Result",
    "attack",
    "attack_photos",
    "photo_attack_config",
    "attack_log",
    "check",
    "describe_attack",
    "figure16_cells",
    "sample_size_text",
    "table10_table",
    "transfer_table",
    "verdicts",
]
