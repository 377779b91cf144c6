"""Chapter 8 (How the attacks scale): the protocol behind ``notebooks/08_scaling.ipynb``.

The chapter is built from a sweep of chapter 3 (run by :mod:`adv2.book.scalingsweep`): every combination of
``epsilons`` x ``step_scales`` (the attack budget) x ``seeds`` is one run of chapter 3 on Fashion-MNIST
(no ImageNet photos), with the classifier and RTS recipes of the profile's chapter 3. The sweep's
table (:mod:`adv2.book.sweeptable`) gives, per point, ADV2's and PGD's success rate and map L1 for every
classifier and interpreter; this module turns it into curves (mean and spread over seeds) and the
two readings the text makes: the smallest epsilon at which ADV2's success reaches PGD's, and the
smallest epsilon at which ADV2's maps separate from PGD's (L1 to the benign map lower by more than
the seeds' spread).
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from dataclasses import dataclass
from typing import Any

from adv2.core.formatting import fmt
from adv2.core.paper import PAPER_EPSILON
from adv2.core.phrases import ABOVE, BELOW, INTERPRETER_LABELS, SAME, compare, joined

STEM = "08_scaling"
SOURCE = "03_adv2"  # the chapter each sweep point runs
ATTACKS = ("adv2", "pgd")
REACH_MARGIN = 0.05  # "ADV2 reaches PGD's success": within 5 points of it
BOOK_EPSILON = 0.1  # chapter 3's default Fashion-MNIST budget
SUCCEEDS = 0.5  # an attack "succeeds" at a point when it reaches at least half of its targets there


def top_readings(numbers: dict[str, Any]) -> dict[str, str]:
    """The comparative words of the chapter's closing paragraph, from its ``numbers``
    (``results/08_scaling.json``'s ``readings``, at the grid's largest epsilon and budget):
    ``ch8_top_success_reading`` (per pair, ADV2's success above / below / about the same as PGD's)
    and ``ch8_top_l1_reading`` (ADV2's map L1 against PGD's)."""
    readings = list((numbers.get("readings") or {}).values())
    out = {}
    for key, metric, what in (
        ("top_success_reading", "success", "ADV2's success is"),
        ("top_l1_reading", "l1", "ADV2's map L1 is"),
    ):
        groups: dict[str, list[str]] = {}
        for r in readings:
            word = compare(r.get(f"adv2_{metric}_top"), r.get(f"pgd_{metric}_top"))
            if word is not None:
                label = INTERPRETER_LABELS.get(r["interpreter"], r["interpreter"])
                groups.setdefault(word, []).append(f"{label} on {r['arch']}")
        parts = [
            f"{word} PGD's for {len(groups[word])} pair{'s' if len(groups[word]) != 1 else ''}"
            + (f" ({joined(groups[word])})" if len(groups[word]) <= 3 else "")
            for word in (ABOVE, SAME, BELOW)
            if word in groups
        ]
        out[f"ch8_{key}"] = f"{what} {'; '.join(parts)}" if parts else "not measured"
    return out


def sweep_name(params: dict[str, Any]) -> str:
    """The sweep's folder name: ``sweep_name``, else ``scaling-<profile>-<grid hash>``. The hash of
    the grid and the points' shared parameters gives a changed grid (e.g. a profile's fewer seeds)
    a sweep of its own instead of a refusal to reuse the old one (the model cache is no part of it)."""
    if params.get("sweep_name"):
        return params["sweep_name"]
    grid = {name: sorted(params[name]) for name in ("epsilons", "step_scales", "seeds")}
    shared = {k: v for k, v in fixed_parameters(params).items() if k != "artifacts_dir"}
    ident = json.dumps({"grid": grid, "fixed": shared}, sort_keys=True)
    return f"scaling-{params['profile']}-{hashlib.sha256(ident.encode()).hexdigest()[:8]}"


def fixed_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """Chapter 3's parameters every point shares (FMNIST only: no photos)."""
    fixed = {
        "archs": list(params["archs"]),
        "interpreters": list(params["interpreters"]),
        "n_images": params["point_n_images"],
        "mask_n_images": params["point_mask_n_images"],
        "mask_step_scale": params["point_mask_step_scale"],
        "mask_iterations": params["point_mask_iterations"],
        "schedule": params["schedule"],
        "imagenet_sample": False,
        "n_show": 1,
        "check_budget": False,  # a weak point (small epsilon, few steps) is data here, not an error
    }
    if params.get("artifacts_dir"):
        fixed["artifacts_dir"] = params["artifacts_dir"]
    return fixed


# ----------------------------------------------------------------------------- the table
@dataclass
class Curve:
    """One attack's metric along one axis for one classifier and interpreter: x, mean, spread, n."""

    x: list[float]
    mean: list[float]
    std: list[float]
    n: list[int]


def column(arch: str, interpreter: str, attack: str, metric: str) -> str:
    return f"fashion-mnist.{arch}.{interpreter}.{attack}.{metric}"


def curve(rows: list[dict[str, Any]], key: str, axis: str, where: dict[str, Any]) -> Curve:
    """``key``'s mean and standard deviation over seeds at each value of ``axis`` (the other grid
    parameters fixed by ``where``); points without the number are left out."""
    values: dict[float, list[float]] = {}
    for r in rows:
        if r.get("status") != "ok" or r.get(key) is None:
            continue
        if any(not math.isclose(float(r[k]), float(v)) for k, v in where.items()):
            continue
        values.setdefault(float(r[axis]), []).append(float(r[key]))
    xs = sorted(values)
    return Curve(
        xs,
        [statistics.fmean(values[x]) for x in xs],
        [statistics.stdev(values[x]) if len(values[x]) > 1 else 0.0 for x in xs],
        [len(values[x]) for x in xs],
    )


@dataclass
class Scaling:
    rows: list[dict[str, Any]]
    archs: list[str]
    interpreters: list[str]
    epsilons: list[float]
    step_scales: list[float]
    seeds: list[int]
    budget_epsilon: float
    points_failed: int

    @property
    def top_budget(self) -> float:
        return max(self.step_scales)

    def vs_epsilon(self, arch: str, interp: str, attack: str, metric: str) -> Curve:
        return curve(
            self.rows, column(arch, interp, attack, metric), "epsilon", {"step_scale": self.top_budget}
        )

    def vs_budget(self, arch: str, interp: str, attack: str, metric: str) -> Curve:
        return curve(
            self.rows, column(arch, interp, attack, metric), "step_scale", {"epsilon": self.budget_epsilon}
        )

    def readings(self) -> list[dict[str, Any]]:
        """Per classifier and interpreter: where ADV2 reaches PGD's success, where its maps separate."""
        out = []
        for arch in self.archs:
            for interp in self.interpreters:
                sa, sp = (self.vs_epsilon(arch, interp, a, "success_rate") for a in ATTACKS)
                la, lp = (self.vs_epsilon(arch, interp, a, "l1_mean") for a in ATTACKS)
                reach = next(
                    (
                        x
                        for x, a, p in zip(sa.x, sa.mean, _at(sp, sa.x))
                        if p is not None and a >= p - REACH_MARGIN
                    ),
                    None,
                )
                separate = next(
                    (
                        x
                        for x, a, da, p, dp in zip(la.x, la.mean, la.std, _at(lp, la.x), _at_std(lp, la.x))
                        if p is not None and p - a > max(da, dp or 0.0)
                    ),
                    None,
                )
                top = self.epsilons[-1]
                out.append(
                    {
                        "arch": arch,
                        "interpreter": interp,
                        "reach_epsilon": reach,
                        "separate_epsilon": separate,
                        "adv2_success_top": _value(sa, top),
                        "pgd_success_top": _value(sp, top),
                        "adv2_l1_top": _value(la, top),
                        "pgd_l1_top": _value(lp, top),
                    }
                )
        return out

    def reach_context(self) -> list[dict[str, Any]]:
        """Per pair that "reaches" PGD's success in the grid: both attacks' mean success at that
        epsilon and whether PGD itself succeeds there (at least :data:`SUCCEEDS`): where it does
        not, both fail alike and "reaching" says nothing about ADV2."""
        out = []
        for r in self.readings():
            eps = r["reach_epsilon"]
            if eps is None:
                continue
            a, p = (
                _value(self.vs_epsilon(r["arch"], r["interpreter"], att, "success_rate"), eps)
                for att in ATTACKS
            )
            out.append(
                {
                    **r,
                    "adv2_success_at_reach": a,
                    "pgd_success_at_reach": p,
                    "pgd_succeeds": p is not None and p >= SUCCEEDS,
                }
            )
        return out

    def numbers(self) -> dict[str, Any]:
        """The ``numbers`` of ``results/08_scaling.json``."""
        readings = self.readings()
        return {
            "points": len(self.rows),
            "points_failed": self.points_failed,
            "epsilons": self.epsilons,
            "step_scales": self.step_scales,
            "seeds": self.seeds,
            "budget_epsilon": self.budget_epsilon,
            "paper_epsilon": PAPER_EPSILON,
            "pairs": len(readings),
            "pairs_reaching_pgd": sum(r["reach_epsilon"] is not None for r in readings),
            "pairs_separating": sum(r["separate_epsilon"] is not None for r in readings),
            "readings": {f"{r['arch']}.{r['interpreter']}": r for r in readings},
        }

    def glue(self) -> dict[str, Any]:
        n = self.numbers()
        return {
            "ch8": {
                k: n[k]
                for k in (
                    "points",
                    "points_failed",
                    "pairs",
                    "pairs_reaching_pgd",
                    "pairs_separating",
                    "budget_epsilon",
                )
            }
            | {
                "paper_epsilon": PAPER_EPSILON,
                "top_budget": self.top_budget,
                "n_epsilons": len(self.epsilons),
                "n_budgets": len(self.step_scales),
                "n_seeds": len(self.seeds),
                "reach_margin": REACH_MARGIN,
                "book_epsilon": BOOK_EPSILON,
                "succeeds": SUCCEEDS,
                "pairs_reaching_pgd_succeeding": sum(c["pgd_succeeds"] for c in self.reach_context()),
                "pairs_reaching_both_failing": sum(not c["pgd_succeeds"] for c in self.reach_context()),
            }
            | {k[len("ch8_") :]: v for k, v in top_readings(n).items()}
        }

    def readings_table(self) -> str:
        from adv2.chapters.plotting import markdown_table  # imports torch: the sweep's driver stays light

        context = {(c["arch"], c["interpreter"]): c for c in self.reach_context()}

        def reach(r: dict[str, Any]) -> str:
            if r["reach_epsilon"] is None:
                return "not in the grid"
            c = context[(r["arch"], r["interpreter"])]
            if c["pgd_succeeds"]:
                return fmt(r["reach_epsilon"])
            return (
                f"{fmt(r['reach_epsilon'])}, where both fail (ADV2 {fmt(c['adv2_success_at_reach'])}, "
                f"PGD {fmt(c['pgd_success_at_reach'])})"
            )

        show = lambda v: "not in the grid" if v is None else fmt(v)
        rows = [
            [
                r["arch"],
                r["interpreter"],
                reach(r),
                show(r["separate_epsilon"]),
                fmt(r["adv2_success_top"]),
                fmt(r["pgd_success_top"]),
                fmt(r["adv2_l1_top"]),
                fmt(r["pgd_l1_top"]),
            ]
            for r in self.readings()
        ]
        top = self.epsilons[-1]
        headers = [
            "classifier",
            "interpreter",
            "ADV2 reaches PGD's success at epsilon",
            "ADV2's maps separate from PGD's at epsilon",
            f"ADV2 success (eps {top})",
            f"PGD success (eps {top})",
            f"ADV2 map L1 (eps {top})",
            f"PGD map L1 (eps {top})",
        ]
        return markdown_table(rows, headers)


def _at(c: Curve, xs: list[float]) -> list[float | None]:
    return [c.mean[c.x.index(x)] if x in c.x else None for x in xs]


def _at_std(c: Curve, xs: list[float]) -> list[float | None]:
    return [c.std[c.x.index(x)] if x in c.x else None for x in xs]


def _value(c: Curve, x: float) -> float | None:
    return c.mean[c.x.index(x)] if x in c.x else None


def scaling(params: dict[str, Any], rows: list[dict[str, Any]]) -> Scaling:
    """The sweep's table (its rows, :func:`adv2.book.sweeptable.gather`) as a :class:`Scaling`."""
    budget_eps = params["budget_epsilon"]
    return Scaling(
        rows=rows,
        archs=list(params["archs"]),
        interpreters=list(params["interpreters"]),
        epsilons=sorted(float(e) for e in params["epsilons"]),
        step_scales=sorted(float(s) for s in params["step_scales"]),
        seeds=list(params["seeds"]),
        budget_epsilon=float(budget_eps),
        points_failed=sum(r["status"] != "ok" for r in rows),
    )


def figure(result: Scaling, metric: str, axis: str):
    """One panel per interpreter (rows: classifiers): ADV2 and PGD with a band of +- one standard
    deviation over seeds; the paper's and chapter 3's epsilons marked on the epsilon axis."""
    import matplotlib.pyplot as plt

    from adv2.chapters.plotting import book_style  # imports torch: the sweep's driver stays light

    label = {"success_rate": "attack success rate", "l1_mean": "map L1 to the benign map"}[metric]
    with book_style():
        fig, axes = plt.subplots(
            len(result.archs),
            len(result.interpreters),
            figsize=(2.0 * len(result.interpreters) + 0.6, 1.9 * len(result.archs) + 0.6),
            squeeze=False,
            sharex=True,
            layout="constrained",
        )
        for i, arch in enumerate(result.archs):
            for j, interp in enumerate(result.interpreters):
                ax = axes[i][j]
                for attack in ATTACKS:
                    get = result.vs_epsilon if axis == "epsilon" else result.vs_budget
                    c = get(arch, interp, attack, metric)
                    ax.plot(c.x, c.mean, marker="o", markersize=3, label=attack.upper())
                    lo = [m - s for m, s in zip(c.mean, c.std)]
                    hi = [m + s for m, s in zip(c.mean, c.std)]
                    ax.fill_between(c.x, lo, hi, alpha=0.2)
                if axis == "epsilon":
                    ax.axvline(PAPER_EPSILON, color="grey", linestyle="--", linewidth=0.8)
                    ax.axvline(BOOK_EPSILON, color="grey", linestyle=":", linewidth=0.8)
                else:
                    ax.set_xscale("log")
                ax.set_title(f"{arch} / {interp}", fontsize=8)
                ax.grid(alpha=0.3)
                ax.tick_params(labelsize=7)
                if j == 0:
                    ax.set_ylabel(label, fontsize=7)
                if i == len(result.archs) - 1:
                    ax.set_xlabel(
                        "epsilon" if axis == "epsilon" else "budget (fraction of the authors' steps)",
                        fontsize=7,
                    )
        axes[0][0].legend(frameon=False, fontsize=7)
    return fig


def check(result: Scaling) -> None:
    """Invariants nbval and the smoke tests check: every point ran and every number is a rate."""
    assert result.points_failed == 0, f"{result.points_failed} sweep point(s) failed: see sweep.json"
    for r in result.rows:
        for k, v in r.items():
            if k.endswith("success_rate") and v is not None:
                assert 0 <= v <= 1, (k, v)


__all__ = [
    "ATTACKS",
    "BOOK_EPSILON",
    "REACH_MARGIN",
    "STEM",
    "SUCCEEDS",
    "Curve",
    "Scaling",
    "check",
    "column",
    "curve",
    "figure",
    "fixed_parameters",
    "scaling",
    "sweep_name",
    "top_readings",
]
