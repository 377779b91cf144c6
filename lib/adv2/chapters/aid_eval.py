"""Evaluation of AID (chapters 4-6): ADV2 against RTS and RTSA, the adaptive attacker, and the
numbers of the paper's Table 10 (:func:`adv2_on_rts_and_rtsa`, :func:`table10`)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn

from adv2.core.attacks import RTSConfig, adv2_attack, pgd
from adv2.core.interpreters.rts import RTSInterpreter, RTSNet
from adv2.core.metrics import l1_distance, mean_std
from adv2.core.paper import PAPER_TABLE10
from adv2.core.tensors import map_batches

# Fashion-MNIST test images from this index on choose AID's settings (chapter 4's trade-off); the
# verdicts of chapters 4-6 use images below it, so no verdict is judged on the data that chose.
SELECTION_START = 5000


@torch.no_grad()
def rts_maps(
    rts: RTSNet,
    x: torch.Tensor,
    classes: torch.Tensor,
    confidence: float = 0.0,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Maps of ``rts`` (put in eval mode) for ``(x, classes)``, batched, detached, on the CPU."""
    rts = rts.eval()
    return map_batches(
        lambda xb, cb: rts(xb, cb, confidence).mask,
        x,
        classes,
        batch_size=batch_size,
        device=device,
        to_cpu=True,
    )


# the keys of one classifier's Table 10 entry in results/06_table10.json
TABLE10_KEYS = (
    "benign_l1_rts_vs_rtsa",
    "benign_l1_rts_vs_rtsa_std",
    "adv2_l1_rts",
    "adv2_l1_rts_std",
    "adv2_l1_rtsa",
    "adv2_l1_rtsa_std",
    "adv2_l1_ratio",
    "adv2_success_rts",
    "adv2_success_rtsa",
    "adv2_confidence_rts",
    "adv2_confidence_rtsa",
    "transfer_l1_rts_adv_on_rtsa",
    "transfer_l1_rtsa_adv_on_rts",
    "pgd_l1_rts",
    "pgd_l1_rtsa",
    "n_images",
    "n_success_rts",
    "n_success_rtsa",
    "restrict_to_success",
)


def table10(
    benign_rts: torch.Tensor,
    benign_rtsa: torch.Tensor,
    adv_maps_rts: torch.Tensor,
    adv_maps_rtsa: torch.Tensor,
    success_rts: torch.Tensor,
    success_rtsa: torch.Tensor,
    *,
    confidence_rts: torch.Tensor | None = None,
    confidence_rtsa: torch.Tensor | None = None,
    transfer_rts_adv_on_rtsa: torch.Tensor | None = None,
    transfer_rtsa_adv_on_rts: torch.Tensor | None = None,
    pgd_maps_rts: torch.Tensor | None = None,
    pgd_maps_rtsa: torch.Tensor | None = None,
    restrict_to_success: bool = True,
) -> dict[str, Any]:
    """One classifier's Table 10 numbers (all keys of :data:`TABLE10_KEYS`).

    * ``benign_l1_rts_vs_rtsa``: L1 between RTS's and RTSA's benign maps (true class), all images;
    * ``adv2_l1_rts`` / ``adv2_l1_rtsa``: L1 between the ADV2 map (target class) and the same
      interpreter's benign map, for the attack run against that interpreter; over successful
      attacks when ``restrict_to_success`` (as the authors' statistics), else all images;
    * ``adv2_l1_ratio`` = rtsa / rts (paper: 0.10 / 0.01 = 10);
    * ``transfer_*``: adversarial inputs made against one interpreter, seen by the other (its
      map for the target class vs its own benign map; optional);
    * ``pgd_l1_*``: maps of plain PGD inputs (no interpretation term) vs benign maps, all images
      (the scale of "far"; optional).
    Values with nothing to average are NaN (saved as null).
    """
    s_rts = torch.as_tensor(success_rts).bool().cpu()
    s_rtsa = torch.as_tensor(success_rtsa).bool().cpu()
    benign_rts, benign_rtsa = benign_rts.cpu(), benign_rtsa.cpu()
    keep_rts = s_rts if restrict_to_success else torch.ones_like(s_rts)
    keep_rtsa = s_rtsa if restrict_to_success else torch.ones_like(s_rtsa)
    b_mean, b_std = mean_std(l1_distance(benign_rts, benign_rtsa))
    a_rts, a_rts_std = mean_std(l1_distance(adv_maps_rts.cpu(), benign_rts)[keep_rts])
    a_rtsa, a_rtsa_std = mean_std(l1_distance(adv_maps_rtsa.cpu(), benign_rtsa)[keep_rtsa])

    def opt_l1(maps: torch.Tensor | None, ref: torch.Tensor, keep: torch.Tensor | None) -> float:
        if maps is None:
            return float("nan")
        d = l1_distance(maps.cpu(), ref)
        return mean_std(d if keep is None else d[keep])[0]

    def opt_conf(c: torch.Tensor | None, s: torch.Tensor) -> float:
        return float("nan") if c is None else mean_std(torch.as_tensor(c).cpu()[s])[0]

    return {
        "benign_l1_rts_vs_rtsa": b_mean,
        "benign_l1_rts_vs_rtsa_std": b_std,
        "adv2_l1_rts": a_rts,
        "adv2_l1_rts_std": a_rts_std,
        "adv2_l1_rtsa": a_rtsa,
        "adv2_l1_rtsa_std": a_rtsa_std,
        "adv2_l1_ratio": a_rtsa / a_rts if a_rts and a_rts == a_rts and a_rts > 0 else float("nan"),
        "adv2_success_rts": float(s_rts.float().mean()) if s_rts.numel() else float("nan"),
        "adv2_success_rtsa": float(s_rtsa.float().mean()) if s_rtsa.numel() else float("nan"),
        "adv2_confidence_rts": opt_conf(confidence_rts, s_rts),
        "adv2_confidence_rtsa": opt_conf(confidence_rtsa, s_rtsa),
        "transfer_l1_rts_adv_on_rtsa": opt_l1(transfer_rts_adv_on_rtsa, benign_rtsa, keep_rts),
        "transfer_l1_rtsa_adv_on_rts": opt_l1(transfer_rtsa_adv_on_rts, benign_rts, keep_rtsa),
        "pgd_l1_rts": opt_l1(pgd_maps_rts, benign_rts, None),
        "pgd_l1_rtsa": opt_l1(pgd_maps_rtsa, benign_rtsa, None),
        "n_images": int(s_rts.numel()),
        "n_success_rts": int(s_rts.sum()),
        "n_success_rtsa": int(s_rtsa.sum()),
        "restrict_to_success": bool(restrict_to_success),
    }


def table10_rows(
    per_arch: dict[str, dict[str, Any]], paper: dict[str, float] = PAPER_TABLE10
) -> tuple[list[list[Any]], list[str]]:
    """Markdown rows of Table 10, ours per classifier beside the paper's (ResNet-50)."""
    archs = list(per_arch)
    headers = ["measure", "paper (ResNet-50)"] + [f"ours ({a})" for a in archs]
    spec = [
        ("Benign: L1(RTS map, RTSA map)", "benign_l1_rts_vs_rtsa"),
        ("ADV2 on RTS: L1(adv map, benign map)", "adv2_l1_rts"),
        ("ADV2 on RTSA: L1(adv map, benign map)", "adv2_l1_rtsa"),
        ("ratio RTSA / RTS", "adv2_l1_ratio"),
        ("ADV2 success rate vs RTS", "adv2_success_rts"),
        ("ADV2 success rate vs RTSA", "adv2_success_rtsa"),
        ("PGD (no interpretation term) on RTS", "pgd_l1_rts"),
        ("PGD (no interpretation term) on RTSA", "pgd_l1_rtsa"),
    ]
    paper_full = {**paper, "adv2_l1_ratio": paper["adv2_l1_rtsa"] / paper["adv2_l1_rts"]}
    rows = [[label, paper_full.get(key)] + [per_arch[a].get(key) for a in archs] for label, key in spec]
    return rows, headers


def adaptive_config(config: RTSConfig) -> RTSConfig:
    """The adaptive attacker's ADV2: no RTS-encoder term. RTSA trains its own encoder copy, so the
    term's cross-entropy (pulling that encoder's decision to the target) now fights the map term;
    an attacker who knows AID drops it first."""
    return dataclasses.replace(config, encoder_weight=0.0)


def random_start(x: torch.Tensor, epsilon: float, seed: int) -> torch.Tensor:
    """A seeded uniform point of the L-inf ball around ``x`` (clipped to [0, 1]): a restart."""
    gen = torch.Generator().manual_seed(seed)
    noise = (torch.rand(x.shape, generator=gen) * 2 - 1) * epsilon
    return (x.cpu() + noise).clamp(0, 1).to(x.device)


def best_per_image(attempts: Sequence[Any], benign: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per image, the attempt an attacker keeps: the successful one whose map is closest (L1) to
    the benign map, else the first attempt. ``attempts``: :class:`AttackResult` s on the same
    images. Returns ``x_adv``, ``maps``, ``success``, ``confidence`` and ``chosen`` (attempt index)."""
    benign = benign.cpu()
    dist = torch.stack([l1_distance(a.maps.cpu(), benign) for a in attempts])  # (attempts, N)
    ok = torch.stack([a.success.cpu().bool() for a in attempts])
    score = torch.where(ok, dist, torch.full_like(dist, float("inf")))
    chosen = torch.where(ok.any(0), score.argmin(0), torch.zeros_like(score[0], dtype=torch.long))
    rows = torch.arange(len(benign))

    def pick(field: str) -> torch.Tensor:
        return torch.stack([getattr(a, field).cpu() for a in attempts])[chosen, rows]

    return {
        "x_adv": pick("x_adv"),
        "maps": pick("maps"),
        "success": pick("success").bool(),
        "confidence": pick("confidence"),
        "chosen": chosen,
    }


def attack_interpreters(
    model: nn.Module,
    nets: dict[str, RTSNet],
    x: torch.Tensor,
    y: torch.Tensor,
    target: torch.Tensor,
    config: RTSConfig,
    *,
    confidence: float = 0.0,
    adaptive: bool = False,
    seed: int = 0,
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """ADV2 against each RTS-type interpreter of ``nets`` (``{name: net}``), the attacker knowing
    which one it faces; the prediction-only stage 1 depends on the classifier alone, so it runs
    once and is shared (its output is also the PGD reference, plain PGD with the same steps).

    ``adaptive``: besides the standard attack, :func:`adaptive_config`'s ADV2 from the shared warm
    start and from a random restart (a second stage 1 from :func:`random_start`); per image the
    attacker keeps the best of the three (:func:`best_per_image`). Returns per name ``benign``
    maps, ``adv`` inputs, ``adv_maps``, ``success``, ``confidence``, ``pgd`` maps (and ``pgd["x"]``),
    ``adaptive`` (``{name: best_per_image(...)}``, when asked) and ``seconds``; all on the CPU."""
    device = torch.device(device)
    x, y, target = x.to(device), y.to(device), target.to(device)
    benign = {name: rts_maps(net, x, y, confidence, device=device) for name, net in nets.items()}

    def stage1(start: torch.Tensor | None, desc: str) -> torch.Tensor:
        # duplicates (shape only): a keyword call, one argument per line, like trained.loading's
        # train_classifier call (listed in lib/adv2/README.md)
        return pgd(
            model,
            x,
            target,
            epsilon=config.epsilon,
            step_size=config.step_size,
            steps=config.stage1_steps,
            loss=config.stage1_loss,
            x_start=start,
            batch_size=batch_size,
            progress=progress,
            desc=desc,
            schedule=config.schedule,  # fast: each image stops once it is at the target
        )

    t0 = time.time()
    x1 = stage1(None, "stage 1 (shared)")
    x1_restart = stage1(random_start(x, config.epsilon, seed), "stage 1 (restart)") if adaptive else None
    seconds: dict[str, float] = {"stage1": time.time() - t0}

    def run(name: str, cfg: RTSConfig, start: torch.Tensor, label: str) -> Any:
        return adv2_attack(
            model,
            RTSInterpreter(model, nets[name], confidence),
            x,
            y,
            target,
            benign_maps=benign[name].to(device),
            config=cfg,
            x_stage1=start,
            batch_size=batch_size,
            progress=progress,
            desc=f"{label} vs {name}",
        )

    res, best = {}, {}
    for name in nets:
        t0 = time.time()
        res[name] = run(name, config, x1, "adv2")
        seconds[name] = time.time() - t0
        if adaptive:
            t0 = time.time()
            cfg = adaptive_config(config)
            tries = [res[name], run(name, cfg, x1, "adaptive"), run(name, cfg, x1_restart, "restart")]
            best[name] = best_per_image(tries, benign[name])
            seconds[f"adaptive_{name}"] = time.time() - t0
    with torch.no_grad():
        pgd_success = (model(x1).argmax(1) == target).cpu()
    out = {
        "benign": benign,
        "adv": {k: v.x_adv.cpu() for k, v in res.items()},
        "adv_maps": {k: v.maps.cpu() for k, v in res.items()},
        "success": {k: v.success.cpu() for k, v in res.items()},
        "confidence": {k: v.confidence.cpu() for k, v in res.items()},
        "pgd": {
            "x": x1.cpu(),
            "success": pgd_success,
            **{k: rts_maps(n, x1, target, confidence, device=device) for k, n in nets.items()},
        },
        "seconds": seconds,
    }
    if adaptive:
        out["adaptive"] = best
    return out


def nan_where_failed(values: Any, success: Any) -> torch.Tensor:
    """Per-image ``values`` (as float, on the CPU) with NaN where the attack missed its target: the
    authors' statistics count successful attacks only."""
    v = torch.as_tensor(values).float().cpu()
    return torch.where(torch.as_tensor(success).bool().cpu(), v, torch.tensor(float("nan")))


def adv2_l1_of_successes(out: Mapping[str, Any], name: str) -> torch.Tensor:
    """Per image of :func:`attack_interpreters`' ``out``: L1(ADV2 map, benign map) of interpreter
    ``name``, NaN where the attack failed (:func:`nan_where_failed`)."""
    d = l1_distance(out["adv_maps"][name].cpu(), out["benign"][name].cpu())
    return nan_where_failed(d, out["success"][name])


def adv2_on_rts_and_rtsa(
    model: nn.Module,
    rts: RTSNet,
    rtsa: RTSNet,
    x: torch.Tensor,
    y: torch.Tensor,
    target: torch.Tensor,
    config: RTSConfig,
    *,
    control: RTSNet | None = None,
    adaptive: bool = False,
    seed: int = 0,
    confidence: float = 0.0,
    restrict_to_success: bool = True,
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """The paper's second AID test: ADV2 against RTS and, separately, against RTSA (and against
    the beta = 0 ``control`` when given), by :func:`attack_interpreters`.

    Returns its dict plus ``numbers`` (:func:`table10`, with ``pgd_success``; with a control also
    ``control_numbers``, Table 10 of RTS against the control) and ``transfer_maps``."""
    nets = {"rts": rts, "rtsa": rtsa, **({"control": control} if control is not None else {})}
    # duplicates (shape only): the attack settings forwarded one per line, like rts_training's
    # rts_loss call and photomodels' load_photo_rtsa call (listed in lib/adv2/README.md)
    out = attack_interpreters(
        model,
        nets,
        x,
        y,
        target,
        config,
        confidence=confidence,
        adaptive=adaptive,
        seed=seed,
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
    transfer = {
        "rts_adv_on_rtsa": rts_maps(rtsa, out["adv"]["rts"], target, confidence, device=device),
        "rtsa_adv_on_rts": rts_maps(rts, out["adv"]["rtsa"], target, confidence, device=device),
    }

    def numbers(other: str, with_transfer: bool) -> dict[str, Any]:
        return table10(
            out["benign"]["rts"],
            out["benign"][other],
            out["adv_maps"]["rts"],
            out["adv_maps"][other],
            out["success"]["rts"],
            out["success"][other],
            confidence_rts=out["confidence"]["rts"],
            confidence_rtsa=out["confidence"][other],
            transfer_rts_adv_on_rtsa=transfer["rts_adv_on_rtsa"] if with_transfer else None,
            transfer_rtsa_adv_on_rts=transfer["rtsa_adv_on_rts"] if with_transfer else None,
            pgd_maps_rts=out["pgd"]["rts"],
            pgd_maps_rtsa=out["pgd"][other],
            restrict_to_success=restrict_to_success,
        )

    out["numbers"] = {**numbers("rtsa", True), "pgd_success": float(out["pgd"]["success"].float().mean())}
    if control is not None:
        out["control_numbers"] = numbers("control", False)
    out["transfer_maps"] = transfer
    return out
