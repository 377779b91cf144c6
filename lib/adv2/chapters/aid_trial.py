"""Chapter 6's trial of AID beyond Table 10's one ratio: the beta = 0 control, the adaptive
attacker, the ceiling the attack allows and the share of ADV2's advantage that AID removes.

Works on a chapter-6 result's per-image arrays (``Ch06Result.per_image[arch]``: ``adv2_l1_<name>``,
``success_<name>``, ``pgd_l1_<name>`` for name in rts / rtsa / control, ``adaptive_*`` for the
adaptive attacker, ``benign_l1_rts_vs_*``), or a list of them, one per training seed (the same
images attacked on each seed's models: :func:`intervals` and :func:`verdicts` then pool the seeds
by :mod:`adv2.core.seed_stats`; one seed: bitwise the image-only estimates). Each estimate keeps its
95 % interval; the two claims are decided by :mod:`adv2.chapters.claims` (``aid_removes_adv2_advantage``,
``aid_beats_its_control``).

* **ceiling**: an RTSA that ADV2 cannot fool at all still gives maps no farther than plain PGD's
  (the shared stage 1), so Table 10's ratio cannot exceed PGD's L1 on RTSA over ADV2's on RTS;
* **share**: ``(L1 ADV2 on RTSA - L1 ADV2 on RTS) / (L1 PGD on RTSA - L1 ADV2 on RTS)``, 0 when AID
  changes nothing, 1 when ADV2 does no better than PGD against RTSA.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch

from adv2.chapters import aid_eval, claim_rules
from adv2.chapters.claims import Verdict
from adv2.core.seed_stats import mean_ci_seeds, one_or_by_seed, ratio_ci_seeds, share_ci_seeds
from adv2.core.stats import Estimate

NAMES = {"rts": "RTS", "rtsa": "RTSA", "control": "control (β = 0)"}


def where_succeeded(values: Any, success: Any, restrict: bool) -> torch.Tensor:
    """Per-image ``values`` with NaN where the attack failed (when ``restrict``)."""
    return aid_eval.nan_where_failed(values, success) if restrict else torch.as_tensor(values).float().cpu()


def _own(p: Mapping[str, Any], name: str, restrict: bool, prefix: str = "") -> torch.Tensor:
    """ADV2's per-image L1 for interpreter ``name`` (NaN where it failed, when ``restrict``)."""
    return where_succeeded(p[f"{prefix}adv2_l1_{name}"], p[f"{prefix}success_{name}"], restrict)


def by_seed(p: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One classifier's per-image arrays as a list over training seeds (a single mapping: one seed)."""
    return [p] if isinstance(p, Mapping) else list(p)


def intervals(
    p: Mapping[str, Any] | Sequence[Mapping[str, Any]], restrict: bool = True
) -> dict[str, Estimate]:
    """The trial's estimates for one classifier (empty without a control); ``p``: its per-image
    arrays, or a list of them per training seed (pooled)."""
    runs = by_seed(p)
    if "adv2_l1_control" not in runs[0]:
        return {}

    def own(name: str, prefix: str = "") -> list[torch.Tensor]:
        return [_own(r, name, restrict, prefix) for r in runs]

    def raw(key: str) -> list[Any]:
        return [r[key] for r in runs]

    out = {
        "benign_l1_rts_vs_control": mean_ci_seeds(raw("benign_l1_rts_vs_control")),
        "adv2_l1_control": mean_ci_seeds(own("control")),
        "adv2_l1_ratio_control": ratio_ci_seeds(own("control"), own("rts")),
        "adv2_l1_rtsa_over_control": ratio_ci_seeds(own("rtsa"), own("control")),
        "ceiling": ratio_ci_seeds(raw("pgd_l1_rtsa"), own("rts")),
        "ceiling_control": ratio_ci_seeds(raw("pgd_l1_control"), own("rts")),
        "share": share_ci_seeds(own("rtsa"), own("rts"), raw("pgd_l1_rtsa")),
        "share_control": share_ci_seeds(own("control"), own("rts"), raw("pgd_l1_control")),
    }
    if "adaptive_adv2_l1_rts" in runs[0]:
        ad = {n: own(n, "adaptive_") for n in ("rts", "rtsa", "control")}
        out.update(
            {
                "adaptive_adv2_l1_rts": mean_ci_seeds(ad["rts"]),
                "adaptive_adv2_l1_rtsa": mean_ci_seeds(ad["rtsa"]),
                "adaptive_ratio": ratio_ci_seeds(ad["rtsa"], ad["rts"]),
                "adaptive_ratio_control": ratio_ci_seeds(ad["control"], ad["rts"]),
                "adaptive_share": share_ci_seeds(ad["rtsa"], ad["rts"], raw("pgd_l1_rtsa")),
                "adaptive_success_rtsa": mean_ci_seeds(
                    [torch.as_tensor(f).float() for f in raw("adaptive_success_rtsa")]
                ),
            }
        )
    return out


def claim_input(runs: Sequence[Mapping[str, Any]], key: str) -> Any:
    """A claim rule's input: the one seed's array, else :class:`adv2.core.seed_stats.BySeed`."""
    return one_or_by_seed(r[key] for r in runs)


def verdicts(p: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> dict[str, Verdict]:
    """The trial's claims for one classifier (empty without a control): the share of ADV2's
    advantage AID removes, and RTSA against its control; under the adaptive attacker when it ran
    (the stronger attack decides). ``p``: as :func:`intervals`'s."""
    runs = by_seed(p)
    if "adv2_l1_control" not in runs[0]:
        return {}
    pre = "adaptive_" if "adaptive_adv2_l1_rts" in runs[0] else ""
    x = functools.partial(claim_input, runs)
    return {
        "aid_removes_adv2_advantage": claim_rules.aid_removes_adv2_advantage(
            x(f"{pre}adv2_l1_rts"),
            x(f"{pre}success_rts"),
            x(f"{pre}adv2_l1_rtsa"),
            x(f"{pre}success_rtsa"),
            x("pgd_l1_rtsa"),
        ),
        "aid_beats_its_control": claim_rules.aid_beats_its_control(
            x(f"{pre}adv2_l1_control"),
            x(f"{pre}success_control"),
            x(f"{pre}adv2_l1_rtsa"),
            x(f"{pre}success_rtsa"),
        ),
    }


def quartiles(values: Any) -> dict[str, float | None]:
    """Median and quartiles of the finite values (a mean over few images can be one outlier)."""
    v = np.asarray(torch.as_tensor(values).float())
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return {"q1": None, "median": None, "q3": None, "n": 0}
    q1, med, q3 = np.quantile(v, [0.25, 0.5, 0.75])
    return {"q1": float(q1), "median": float(med), "q3": float(q3), "n": int(len(v))}


def distributions(p: Mapping[str, Any], restrict: bool = True) -> dict[str, dict[str, Any]]:
    """Per-image distributions the table and figure show: ADV2's L1 per interpreter (standard and
    adaptive) and PGD's."""
    out = {f"adv2_{n}": _own(p, n, restrict) for n in NAMES if f"adv2_l1_{n}" in p}
    out.update(
        {f"adaptive_{n}": _own(p, n, restrict, "adaptive_") for n in NAMES if f"adaptive_adv2_l1_{n}" in p}
    )
    out.update({f"pgd_{n}": torch.as_tensor(p[f"pgd_l1_{n}"]).float() for n in NAMES if f"pgd_l1_{n}" in p})
    return out


def table(
    per_image: Mapping[str, Mapping[str, Any]], est: Mapping[str, Mapping[str, Estimate]]
) -> tuple[list, list]:
    """Rows: per classifier and measure, RTSA beside the control (estimates with intervals)."""
    spec = [
        ("benign drift L1(RTS, ·)", "benign_l1_rts_vs_rtsa", "benign_l1_rts_vs_control"),
        ("Table 10 ratio ADV2 L1 (·) / (RTS)", "adv2_l1_ratio", "adv2_l1_ratio_control"),
        ("the same, adaptive attacker", "adaptive_ratio", "adaptive_ratio_control"),
        ("ceiling: PGD L1 (·) / ADV2 L1 (RTS)", "ceiling", "ceiling_control"),
        ("share of ADV2's advantage removed", "share", "share_control"),
        ("the same, adaptive attacker", "adaptive_share", None),
    ]
    rows = []
    for a, e in est.items():
        if "share" not in e:
            continue
        for label, k_rtsa, k_control in spec:
            rows.append([a, label, e.get(k_rtsa, "—"), e.get(k_control, "—") if k_control else "—"])
        rows.append([a, "ADV2 L1 RTSA / control (AID's own effect)", e["adv2_l1_rtsa_over_control"], "—"])
    return rows, ["classifier", "measure", "RTSA [95 %]", "control β = 0 [95 %]"]


ATTACKS = {"adv2": "ADV2", "adaptive": "adaptive ADV2", "pgd": "PGD"}


def _attack_label(key: str) -> str:
    """``adaptive_rtsa`` -> "adaptive ADV2 on RTSA"."""
    attack, name = key.split("_", 1)
    return f"{ATTACKS[attack]} on {NAMES[name]}"


def quartile_table(
    per_image: Mapping[str, Mapping[str, Any]], restrict: Mapping[str, bool]
) -> tuple[list, list]:
    """Per classifier and attack/interpreter: mean, median and quartiles of the per-image L1."""
    rows = []
    for a, p in per_image.items():
        for key, v in distributions(p, restrict.get(a, True)).items():
            q, finite = quartiles(v), torch.as_tensor(v)[torch.isfinite(torch.as_tensor(v))]
            mean = float(finite.mean()) if len(finite) else None
            rows.append(
                [
                    a,
                    _attack_label(key),
                    q["n"],
                    mean,
                    q["q1"],
                    q["median"],
                    q["q3"],
                ]
            )
    return rows, [
        "classifier",
        "attack on interpreter",
        "images",
        "mean",
        "lower quartile",
        "median",
        "upper quartile",
    ]


def figure(per_image: Mapping[str, Mapping[str, Any]], restrict: Mapping[str, bool], archs: Sequence[str]):
    """Per classifier: each image's map L1 to its benign map, ADV2 (standard, adaptive) against
    RTS, RTSA and the control, and PGD on RTSA (the ceiling), as box plots with the points."""
    shown = [a for a in archs if "adv2_l1_control" in per_image.get(a, {})]
    rows = max(1, len(shown))  # one classifier per row: seven boxes need the page's width
    fig, axes = plt.subplots(rows, 1, figsize=(9, 3.6 * rows), squeeze=False)
    for ax, a in zip(axes[:, 0], shown):
        d = distributions(per_image[a], restrict.get(a, True))
        keys = [
            k
            for k in (
                "adv2_rts",
                "adv2_rtsa",
                "adv2_control",
                "adaptive_rts",
                "adaptive_rtsa",
                "adaptive_control",
                "pgd_rtsa",
            )
            if k in d
        ]
        data = [np.asarray(d[k])[np.isfinite(np.asarray(d[k]))] for k in keys]
        ax.boxplot(data, showfliers=False)
        rng = np.random.default_rng(0)
        for i, v in enumerate(data, start=1):
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(v)), v, s=8, alpha=0.5, color="C0")
        ax.set_xticks(
            range(1, len(keys) + 1), [_attack_label(k).replace(" on ", "\non ") for k in keys], fontsize=8
        )
        ax.set_ylabel("L1(map, benign map) per image")
        ax.set_title(f"{a}")
    fig.tight_layout()
    return fig


__all__ = [
    "NAMES",
    "by_seed",
    "claim_input",
    "distributions",
    "figure",
    "intervals",
    "quartile_table",
    "quartiles",
    "table",
    "verdicts",
    "where_succeeded",
]
