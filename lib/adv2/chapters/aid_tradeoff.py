"""Chapter 4's trade-off: how much benign drift each AID strength costs, and what resilience it buys.

AID has a dial: the anchor weight ``aid_distill_weight`` (gamma) that holds RTSA's benign maps to
RTS's. A weak anchor lets the AID term move RTSA further (ADV2 fails to keep its maps close) at the
price of benign maps that drift from RTS's; the paper reports one point of this curve (benign L1
0.03, ADV2 L1 ratio 10). For each anchor of ``aid_tradeoff_anchors`` and the book's beta = 0 control
this module measures, per classifier and on *selection* images (Fashion-MNIST test images from
:data:`adv2.chapters.aid_eval.SELECTION_START` on, never used by a verdict):

* the benign drift, L1(RTS map, RTSA map) of the true class, per image;
* the resilience, ADV2's map L1 against that RTSA over ADV2's against RTS (Table 10's ratio), with
  the evaluation attack of chapter 6 at ``select_attack_scale`` of the authors' steps.

:func:`choose` applies the book's rule: the setting with the highest ratio among those whose mean
drift is at most :data:`adv2.chapters.claims.BENIGN_L1_MAX` (0.05). The book's RTSA recipe
(:class:`adv2.trained.recipes.RTSARecipe`) is that choice; the chapter says whether this run agrees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import torch

from adv2.chapters import aid_eval, claims
from adv2.core import attacks
from adv2.core.metrics import l1_distance
from adv2.core.paper import PAPER_TABLE10
from adv2.core.stats import Estimate, mean_ci, ratio_ci
from adv2.trained import cached, data, recipes

CONTROL = "control"
GLUE_KEYS = ("choice", "agrees", "n", "book_drift", "book_ratio", "control_ratio")


def anchor_label(anchor: float) -> str:
    return f"anchor {anchor:g}"


# the other strength axes: trade-off parameter -> (recipe parameter it varies, label), each value
# at the book's anchor (issue 23: anchor weight, iterations, inner-attack steps)
OTHER_AXES = {
    "aid_tradeoff_iterations": ("aid_iterations", "{:g} iterations"),
    "aid_tradeoff_stage2_steps": ("aid_stage2_steps", "{:g} inner steps"),
}


def _variants(params: Mapping[str, Any]) -> dict[str, tuple[str, float]]:
    """``{label: (recipe parameter, value)}`` of every trade-off setting but the book's RTSA."""
    out = {anchor_label(a): ("aid_distill_weight", float(a)) for a in params["aid_tradeoff_anchors"]}
    for name, (param, label) in OTHER_AXES.items():
        out.update({label.format(v): (param, v) for v in params.get(name, [])})
    return {k: (param, v) for k, (param, v) in out.items() if params[param] != v}


def tradeoff_recipes(params: Mapping[str, Any]) -> dict[str, Any]:
    """``{label: make(params, arch) -> RTSARecipe}`` for each setting of the grid (each anchor of
    ``aid_tradeoff_anchors``, and each value of :data:`OTHER_AXES` at the book's anchor) other than
    the book's own RTSA, which the chapter loads anyway: the recipe of the chapter's parameters with
    one of them changed."""

    def make(param: str, value: float):
        return lambda p, arch: recipes.rtsa_recipe({**p, param: value}, arch)

    return {label: make(param, v) for label, (param, v) in _variants(params).items()}


def settings(net: cached.InterpretedModel, params: Mapping[str, Any]) -> dict[str, tuple[float, float, Any]]:
    """``{label: (anchor, beta, rtsa net)}``: every setting of the grid, the book's RTSA among the
    anchors, then the control, in the order of the table."""
    own, beta = float(params["aid_distill_weight"]), float(params["aid_beta"])
    variants = _variants(params)
    out = {}
    for a in sorted({float(v) for v in params["aid_tradeoff_anchors"]} | {own}):
        label = anchor_label(a)
        out[label] = (a, beta, net.rtsa if label not in variants else net.extra[label][0])
    for label, (param, _) in variants.items():
        if param != "aid_distill_weight":
            out[label] = (own, beta, net.extra[label][0])
    out[CONTROL] = (own, 0.0, net.control)
    return out


@dataclass
class Tradeoff:
    """Per classifier: ``points[arch][label] = {"anchor", "beta", "drift" (per image), "adv2_l1"
    (per image, NaN where ADV2 failed)}`` and ``rts[arch]`` = ADV2's L1 against RTS (same)."""

    archs: list[str]
    points: dict[str, dict[str, dict[str, Any]]]
    rts: dict[str, torch.Tensor]
    book_anchor: float
    n_images: dict[str, int]
    attack: dict[str, Any]

    def estimates(self, arch: str) -> dict[str, dict[str, Estimate]]:
        """``{label: {"drift": mean_ci, "ratio": paired ratio_ci}}``."""
        return {
            label: {
                "drift": mean_ci(p["drift"]),
                "ratio": ratio_ci(p["adv2_l1"], self.rts[arch], paired=True),
            }
            for label, p in self.points[arch].items()
        }

    def choice(self, arch: str) -> str | None:
        return choose(self.estimates(arch), self.points[arch])

    def agrees(self, arch: str) -> bool:
        return self.choice(arch) == anchor_label(self.book_anchor)

    def numbers(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for a in self.archs:
            est = self.estimates(a)
            out[a] = {
                "n_images": self.n_images[a],
                "choice": self.choice(a),
                "choice_is_book_rtsa": self.agrees(a),
                "points": {
                    label: {
                        "anchor": p["anchor"],
                        "beta": p["beta"],
                        "drift": est[label]["drift"].as_dict(),
                        "ratio": est[label]["ratio"].as_dict(),
                    }
                    for label, p in self.points[a].items()
                },
            }
        out["book_anchor"] = self.book_anchor
        out["attack"] = dict(self.attack)
        out["rule"] = RULE
        return out


RULE = (
    f"the highest ADV2 L1 ratio RTSA / RTS among the AID settings (beta > 0) whose mean benign drift "
    f"is at most {claims.BENIGN_L1_MAX:g}, on selection images never used by a verdict"
)


def choose(
    estimates: Mapping[str, Mapping[str, Estimate]], points: Mapping[str, Mapping[str, Any]]
) -> str | None:
    """The book's rule (:data:`RULE`); None when no setting keeps its drift at or below the limit."""
    ok = [
        label
        for label, e in estimates.items()
        if points[label]["beta"] > 0
        and e["drift"].value is not None
        and e["drift"].value <= claims.BENIGN_L1_MAX
        and e["ratio"].value is not None
    ]
    return max(ok, key=lambda label: estimates[label]["ratio"].value) if ok else None


def measure(
    nets: Mapping[str, cached.InterpretedModel],
    fmnist: data.Dataset,
    params: Mapping[str, Any],
    *,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> Tradeoff:
    """Attack RTS and every setting's RTSA on ``n_select`` selection images per classifier."""
    start = aid_eval.SELECTION_START
    cfg = attacks.default_config(
        "rts",
        scale=params["select_attack_scale"],
        epsilon=params["rtsa_epsilon"],
        step_size=params["rtsa_step_size"],
        schedule=params["schedule"],
    )
    points, rts, sizes = {}, {}, {}
    for a, net in nets.items():
        s = data.select_attack_set(
            net.model,
            fmnist.x_test[start:],
            fmnist.y_test[start:],
            params["n_select"],
            seed=params["seed"],
            num_classes=fmnist.num_classes,
            device=device,
        )
        grid = settings(net, params)
        out = aid_eval.attack_interpreters(
            net.model,
            {"rts": net.rts, **{label: g[2] for label, g in grid.items()}},
            s.x,
            s.y,
            s.target,
            cfg,
            device=device,
            progress=progress,
        )

        rts[a], sizes[a] = aid_eval.adv2_l1_of_successes(out, "rts"), len(s.x)
        points[a] = {
            label: {
                "anchor": anchor,
                "beta": beta,
                "drift": l1_distance(out["benign"]["rts"], out["benign"][label]),
                "adv2_l1": aid_eval.adv2_l1_of_successes(out, label),
            }
            for label, (anchor, beta, _) in grid.items()
        }
    return Tradeoff(list(nets), points, rts, float(params["aid_distill_weight"]), sizes, cfg.as_dict())


def table(result: Tradeoff) -> tuple[list[list[Any]], list[str]]:
    """Rows per classifier and setting: anchor, beta, drift [95 %], ratio [95 %], chosen?"""
    rows = []
    for a in result.archs:
        est, chosen = result.estimates(a), result.choice(a)
        for label, p in result.points[a].items():
            mark = "chosen by the rule" if label == chosen else ""
            if label == anchor_label(result.book_anchor):
                mark = f"{mark}; the book's RTSA" if mark else "the book's RTSA"
            rows.append(
                [
                    a,
                    label,
                    f"{p['anchor']:g}",
                    f"{p['beta']:g}",
                    est[label]["drift"],
                    est[label]["ratio"],
                    mark,
                ]
            )
    headers = [
        "classifier",
        "setting",
        "anchor γ",
        "β",
        "benign drift [95 %]",
        "ADV2 L1 ratio RTSA / RTS [95 %]",
        "",
    ]
    return rows, headers


# markers of the settings that are not anchors: (matplotlib format, colour)
_STYLE = {"iterations": ("^", "C1"), "inner steps": ("D", "C2"), CONTROL: ("s", "grey")}


def figure(result: Tradeoff):
    """Benign drift (x) against resilience (y), one panel per classifier, 95 % intervals both
    ways; the drift limit 0.05 and the paper's 0.03 marked."""
    fig, axes = plt.subplots(1, len(result.archs), figsize=(5.2 * len(result.archs), 4), squeeze=False)
    for ax, a in zip(axes[0], result.archs):
        est = result.estimates(a)
        for label in result.points[a]:
            d, r = est[label]["drift"], est[label]["ratio"]
            if d.value is None or r.value is None:
                continue
            xerr = [[d.value - (d.low if d.low is not None else d.value)], [(d.high or d.value) - d.value]]
            yerr = [[r.value - (r.low if r.low is not None else r.value)], [(r.high or r.value) - r.value]]
            # anchors: blue circles, labelled; the other axes and the control: own markers, in the legend
            style = _STYLE.get(label.split(" ", 1)[-1] if label[0].isdigit() else label, ("o", "C0"))
            ax.errorbar(
                d.value,
                r.value,
                xerr=xerr,
                yerr=yerr,
                fmt=style[0],
                color=style[1],
                capsize=3,
                label=None if label.startswith("anchor") else label,
            )
            if label.startswith("anchor"):
                ax.annotate(label, (d.value, r.value), textcoords="offset points", xytext=(6, 4), fontsize=8)
        ax.axvline(
            claims.BENIGN_L1_MAX, color="C3", ls="--", lw=1, label=f"drift limit {claims.BENIGN_L1_MAX:g}"
        )
        ax.axvline(PAPER_TABLE10["benign_l1_rts_vs_rtsa"], color="k", ls=":", lw=1, label="paper's benign L1")
        ax.axhline(1, color="grey", lw=0.8)
        ax.set_xlabel("benign drift L1(RTS, RTSA)")
        ax.set_ylabel("ADV2 L1 ratio RTSA / RTS")
        ax.set_title(f"{a}: {result.n_images[a]} selection images")
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def glue(result: Tradeoff, prefix: str, archs: Sequence[str], not_run: str) -> dict[str, Any]:
    """``<prefix><arch>_tradeoff_<key>`` (:data:`GLUE_KEYS`) per classifier the prose names."""
    out: dict[str, Any] = {}
    for a in archs:
        if a not in result.archs:
            out.update({f"{prefix}{a}_tradeoff_{k}": not_run for k in GLUE_KEYS})
            continue
        chosen, est = result.choice(a), result.estimates(a)
        book = anchor_label(result.book_anchor)
        out[f"{prefix}{a}_tradeoff_choice"] = chosen or "none (every setting drifted beyond the limit)"
        out[f"{prefix}{a}_tradeoff_agrees"] = "agrees with" if result.agrees(a) else "differs from"
        out[f"{prefix}{a}_tradeoff_n"] = result.n_images[a]
        out[f"{prefix}{a}_tradeoff_book_drift"] = str(est[book]["drift"])
        out[f"{prefix}{a}_tradeoff_book_ratio"] = str(est[book]["ratio"])
        out[f"{prefix}{a}_tradeoff_control_ratio"] = str(est[CONTROL]["ratio"])
    return out


__all__ = [
    "CONTROL",
    "GLUE_KEYS",
    "OTHER_AXES",
    "RULE",
    "Tradeoff",
    "anchor_label",
    "choose",
    "figure",
    "glue",
    "measure",
    "settings",
    "table",
    "tradeoff_recipes",
]
