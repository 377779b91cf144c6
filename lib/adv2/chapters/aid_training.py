"""AID's trained models: loading the defended classifiers chapters 4, 5 and 6 share
(:func:`load_defended`: classifier, RTS, RTSA and its beta = 0 control per arch; the further
training seeds of chapters 4-6: :func:`load_other_seeds`), and how their
training went, which chapter 4 reports: the table of AID's recipe (:func:`aid_config_table`), the
training curves (:func:`training_figure`) and the cost of AID against RTS's own training
(:func:`training_costs` / :func:`cost_table`)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from adv2.chapters import plotting
from adv2.chapters._loaders import load_classifiers, load_rts_nets
from adv2.chapters._reporting import table
from adv2.chapters.schema import train_seed_list
from adv2.core import defenses
from adv2.core.formatting import MISSING
from adv2.core.parallel import load_side_by_side
from adv2.trained import cached, data, loading, recipes


# ----------------------------------------------------------------------------- loading
def load_defended(
    params: Mapping[str, Any],
    fmnist: data.Dataset,
    archs: Sequence[str],
    *,
    device: torch.device | str = "cpu",
    artifacts_dir: str = "",
    progress: bool = False,
    log=print,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, cached.InterpretedModel]:
    """Each arch's classifier, RTS, RTSA and its beta = 0 control (chapters 1, 2 and 4's recipes),
    from the cache or trained: the classifiers side by side, then the RTS side by side (one core
    each on a CPU, as chapters 1 and 2 train them), then every RTSA side by side (chapters 4, 5
    and 6 share them). ``extra``: more RTSA recipes per arch, ``{label: recipe_for(params, arch)}``
    (chapter 4's trade-off), loaded in the same side-by-side pass; they land in ``nets[arch].extra``."""
    params = dict(params)
    classifiers, arts = load_classifiers(params, fmnist, list(archs), device, artifacts_dir, progress, log)
    rts_nets, rts_arts = load_rts_nets(
        params, fmnist, classifiers, arts, list(archs), device, artifacts_dir, progress, log
    )
    wanted = []  # (arch, label, recipe)
    for a in archs:
        book = recipes.rtsa_recipe(params, a)
        wanted += [(a, "rtsa", book), (a, "control", book.control())]
        wanted += [(a, label, make(params, a)) for label, make in (extra or {}).items()]
    loaded = load_side_by_side(
        [
            functools.partial(
                loading.load_rtsa,
                recipe,
                fmnist,
                classifiers[a],
                rts_nets[a],
                rts_arts[a],
                device=device,
                artifacts_dir=artifacts_dir,
                progress=progress,
            )
            for a, _, recipe in wanted
        ],
        device,
    )
    nets = {}
    for a in archs:
        got = {label: out for (arch, label, _), out in zip(wanted, loaded) if arch == a}
        for label, (_, art, seconds) in got.items():
            log(f"{a}: {label} {'loaded from cache' if art.from_cache else f'trained in {seconds:.1f} s'}")
        nets[a] = cached.InterpretedModel(
            a,
            classifiers[a],
            arts[a],
            rts_nets[a],
            rts_arts[a],
            *got["rtsa"][:2],
            *got["control"][:2],
            extra={label: out[:2] for label, out in got.items() if label not in ("rtsa", "control")},
        )
    return nets


def load_other_seeds(
    params: Mapping[str, Any], fmnist: data.Dataset, archs: Sequence[str], log=print, **load_kw: Any
) -> dict[int, dict[str, cached.InterpretedModel]]:
    """:func:`load_defended` (``load_kw``: its ``device``, ``artifacts_dir``, ``progress``) for every
    training seed of ``params["train_seeds"]`` but ``params["train_seed"]`` (the recipes with that
    ``train_seed``: the cache keys a run with it trains), by seed; empty with the default ``[]``."""
    seeds = train_seed_list(params["train_seed"], list(params.get("train_seeds") or []))
    out = {}
    for s in seeds[1:]:
        log(f"train_seed {s}:")
        out[s] = load_defended({**params, "train_seed": s}, fmnist, archs, log=log, **load_kw)
    return out


# ----------------------------------------------------------------------------- AID recipe table
# why each AIDConfig field has its value (the chapter's "Our AID recipe" table)
AID_FIELD_REASONS = {
    "iterations": "fine-tuning length, ten times the first RTSA's 60; the attack inside makes each iteration "
    "costlier than an RTS iteration",
    "batch_size": "batch of RTS's own loss (parameter aid_map_batch_size; smaller than RTS's phase 2, for CPU)",
    "aid_batch_size": "images attacked (ADV2) per iteration (parameter aid_attack_batch_size); the attack "
    "dominates the cost",
    "lr": "RTS's own decoder learning rate; a much smaller one barely moves RTSA",
    "beta": "weight of the AID term: too small has no effect, too large without the anchor "
    "wrecks benign maps (see below)",
    "distill_weight": "anchor to RTS's benign maps; its weight is the trade-off's choice (section The trade-off)",
    "persistent": "attack continues across visits: a strong inner attack at a small cost",
    "train_encoder": "RTSA trains its own encoder copy: with the classifier's frozen features the decoder "
    "had little to tell adversarial inputs apart by",
    "beta_warmup": "beta ramps up linearly over this fraction of the iterations",
    "pool_size": "images attacked during AID; small, so each is revisited (persistent attack)",
    "stage1_steps": "prediction-only warm start of the inner attack (shorter than at evaluation)",
    "stage2_steps": "joint ADV2 steps per visit against the current RTSA (fewer than at evaluation)",
    "epsilon": "budget of AID's inner attack (parameter rtsa_epsilon; chapter 3's evaluation value)",
    "step_size": "sign step of AID's inner attack (parameter rtsa_step_size)",
    "lam_start": "lambda ramps as in the evaluation attack",
    "lam_end": "",
    "encoder_weight": "weight of RTS's own encoder's cross-entropy, as in the evaluation attack",
    "detach_benign": "benign maps are left to l_map; AID only moves adversarial maps",
    "freeze_batchnorm": "keep RTS's BatchNorm statistics: benign maps drift less",
    "fake_prob": "RTS recipe",
    "area_weight": "RTS recipe",
    "preserver_weight": "RTS recipe",
    "smooth_weight": f"RTS recipe ({MISSING} = size-scaled default)",
    "confidence": "RTS model confidence",
    "log_every": "0 = about 20 logged points",
    "seed": "parameter train_seed",
}


def aid_config_table(aid: defenses.AIDConfig) -> str:
    """Markdown table of every AIDConfig field, its value (as set) and why."""
    rows = [
        [k, MISSING if v is None else repr(v), AID_FIELD_REASONS.get(k, "")] for k, v in aid.as_dict().items()
    ]
    return plotting.markdown_table(rows, ["AIDConfig field", "value", "why"])


# ----------------------------------------------------------------------------- cost
# training-curve panels: (key of the RTSA artifact's training log, axis label)
CURVES = (
    ("map_loss", "l_map (RTS loss)"),
    ("aid_l1", "-l_aid (benign/ADV2 map L1)"),
    ("attack_success", "inner ADV2 success rate"),
    ("probe_drift", "benign L1(RTSA, RTS)"),
)


def training_curves(nets: Mapping[str, Any], key: str) -> dict[str, tuple[list, list]]:
    """``{arch: (AID iteration, value)}`` of one logged quantity, for :func:`plotting.curves`."""
    return {a: (n.rtsa_artifact.metrics["step"], n.rtsa_artifact.metrics[key]) for a, n in nets.items()}


def training_figure(nets: Mapping[str, Any]):
    """AID's training curves (:data:`CURVES`), two panels a row."""
    fig, axes = plotting.panel_axes(len(CURVES), cols=2)
    for ax, (key, label) in zip(axes, CURVES):
        plotting.curves(training_curves(nets, key), "AID iteration", label, ax=ax)
    return fig


def training_costs(nets: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per classifier: seconds of RTS training vs AID fine-tuning (:func:`cached.training_cost`)."""
    return {a: cached.training_cost(n.rts_artifact, n.rtsa_artifact) for a, n in nets.items()}


def cost_table(cost: Mapping[str, Mapping[str, Any]]) -> str:
    rows = [
        [
            a,
            c["rts_seconds"],
            c["rts_seconds_per_iteration"],
            c["aid_seconds"],
            c["aid_seconds_per_iteration"],
            c["per_iteration_ratio"],
            c["aid_attack_fraction"],
        ]
        for a, c in cost.items()
    ]
    return table(
        rows,
        [
            "classifier",
            "RTS training (s)",
            "RTS s / iteration",
            "AID fine-tuning (s)",
            "AID s / iteration",
            "AID / RTS per iteration",
            "share of AID time in the attack",
        ],
    )
