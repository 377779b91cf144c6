"""Convergence of ADV2: the authors' schedule against the fast one (``schedule="fast"``).

    python benchmarks/bench_convergence.py --setting fmnist   # ResNet, eps 0.1: grad cam rts
    python benchmarks/bench_convergence.py --setting fmnist --interpreters mask --mask-images 4
    python benchmarks/bench_convergence.py --setting photos   # EfficientNet-Lite0: grad cam

Per interpreter, both schedules attack the same images: the authors' at ``--scale`` times the
paper's step counts, the fast one at a quarter of them (:func:`quarter`). Each run's curve (success rate and map L1
over successes, every ``--every`` steps, stage 1 included; MASK: at its re-solves) comes from
:func:`adv2.core.attacks.convergence_curve`; the fast schedule *passes* when its curve reaches the
authors' final L1 (within 5 %) and success rate (within 0.02) in at most a quarter of the
authors' steps. Writes ``results/bench_convergence_<setting>.json`` (one file per setting, so the
slow photo run can be repeated alone); a run of some interpreters replaces only their entries in
an earlier report of the same setting, images and scale (:func:`merge`; ``runs`` lists each
run's time and load). ``--reuse-authors`` re-runs only the fast schedule, taking the authors'
(deterministic) curves from that report. :mod:`bench_report` reads the files.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))

from adv2.book import runbox  # noqa: E402
from adv2.core import attacks
from adv2.core.config import load_profile  # noqa: E402
from adv2.core.interpreters import build_interpreter  # noqa: E402
from adv2.trained import data, loading, pretrained, recipes  # noqa: E402

FMNIST_EPS, FMNIST_STEP = 0.1, 0.0125
PHOTO_EPS, PHOTO_STEP = 0.031, 1 / 255
MASK_ITERATIONS = 100  # chapter 3 quick (schema default of mask_iterations)
QUARTER = 4  # the fast schedule gets at most this fraction of the authors' steps


def _fmnist(n_images: int, interpreters: list[str], seed: int):
    params = load_profile("quick", "03_adv2")
    fm = data.load_fashion_mnist(allow_download=False)
    model, _ = loading.load_classifier(recipes.classifier_recipe(params, "resnet"), fm, progress=False)
    aset = data.select_attack_set(model, fm.x_test, fm.y_test, n_images, seed=seed)
    interps = {}
    for name in interpreters:
        if name == "mask":
            interps[name] = build_interpreter(
                "mask", model, iterations=params.get("mask_iterations", MASK_ITERATIONS), seed=seed
            )
        elif name == "rts":
            net, _ = loading.load_rts(recipes.rts_recipe(params, "resnet"), fm, progress=False)
            interps[name] = build_interpreter("rts", model, rts=net)
        else:
            interps[name] = build_interpreter(name, model)
    return model, aset, interps, FMNIST_EPS, FMNIST_STEP


def _photos(n_images: int, interpreters: list[str], seed: int):
    photos = data.load_imagenet_sample()
    lite = pretrained.efficientnet_lite(photos.class_names)
    aset = data.select_attack_set(
        lite, photos.x_test, photos.y_test, n_images, seed=seed, num_classes=1000, batch_size=8
    )
    return lite, aset, {n: build_interpreter(n, lite) for n in interpreters}, PHOTO_EPS, PHOTO_STEP


def quarter(cfg: attacks.AttackConfig) -> attacks.AttackConfig:
    """The fast schedule with a quarter of ``cfg``'s steps (each count divided by 4, rounded
    down, so the total never exceeds a quarter); MASK keeps its number of re-solves."""
    changes = {"stage1_steps": max(1, cfg.stage1_steps // QUARTER), "schedule": "fast"}
    if isinstance(cfg, attacks.MaskConfig):
        changes["stage2_steps"] = max(1, cfg.stage2_steps // QUARTER)
        changes["resolve_every"] = max(1, cfg.resolve_every // QUARTER)
        return dataclasses.replace(cfg, **changes)
    if cfg.phase_steps:
        changes["phase_steps"] = tuple(max(1, s // QUARTER) for s in cfg.phase_steps)
    else:
        changes["stage2_steps"] = max(1, cfg.stage2_steps // QUARTER)
    if cfg.select_every:
        changes["select_every"] = max(1, cfg.select_every // QUARTER)
    return dataclasses.replace(cfg, **changes)


def run_setting(
    setting: str,
    interpreters: list[str],
    n_images: int,
    scale: float,
    every: int,
    seed: int,
    mask_images: int | None = None,
    reuse: dict | None = None,
) -> dict:
    model, aset, interps, eps, step = (_fmnist if setting == "fmnist" else _photos)(
        n_images, interpreters, seed
    )
    out = {}
    for name, interp in interps.items():
        k = len(aset.x) if name != "mask" or not mask_images else min(mask_images, len(aset.x))
        x, y, target = aset.x[:k], aset.y[:k], aset.target[:k]  # MASK: the first mask_images
        benign = interp(x, y).detach()
        authors = attacks.default_config(name, scale=scale, epsilon=eps, step_size=step)
        fast = quarter(authors)
        curves = {}
        for label, cfg in (("fast", fast), ("authors", authors)):
            old = (reuse or {}).get(name, {})
            if (
                label == "authors"
                and old.get("n_images", k) == k
                and old.get("authors_steps") == (cfg.stage1_steps + cfg.stage2_steps)
            ):
                # the authors' schedule is deterministic and unchanged: its curve from the last run
                curves[label] = old["curves"]["authors"]
                print(f"[{setting}] {name:4s} authors: reused from the earlier report", flush=True)
                continue
            t0 = time.time()
            curves[label] = attacks.convergence_curve(
                model, interp, x, y, target, cfg, every=every, benign_maps=benign
            )
            c = curves[label]
            print(
                f"[{setting}] {name:4s} {label:7s}: {c['steps_taken']:4d}/{c['steps_budget']} steps, "
                f"success {c['success'][-1]:.3f}, L1 {c['l1'][-1]:.4f} ({time.time() - t0:.0f} s)",
                flush=True,
            )
        out[name] = {"curves": curves, "n_images": k, **summary(curves)}
    return out


def summary(curves: dict) -> dict:
    """The acceptance numbers of one interpreter: authors' final values, where fast reaches them."""
    a, f = curves["authors"], curves["fast"]
    l1, succ = a["l1"][-1], a["success"][-1]
    reach = attacks.steps_to_reach(f, l1, succ)
    limit = a["steps_budget"] / QUARTER
    return {
        "authors_steps": a["steps_budget"],
        "authors_l1": l1,
        "authors_success": succ,
        "fast_budget": f["steps_budget"],
        "fast_steps_taken": f["steps_taken"],
        "fast_l1": f["l1"][-1],
        "fast_success": f["success"][-1],
        "fast_steps_to_reach": reach,
        "step_limit": limit,
        "pass": reach is not None and reach <= limit,
    }


def merge(path: Path, report: dict) -> dict:
    """``report`` with the interpreters of an earlier report at ``path`` that this run did not
    measure (same setting, images and scale: a run of some interpreters replaces only theirs)."""
    if not path.is_file():
        return report
    old = json.loads(path.read_text())
    same = all(old.get(key) == report[key] for key in ("setting", "n_images", "scale"))
    if not same:
        print(f"{path}: earlier report has another setting/images/scale; not merged", flush=True)
        return report
    new = set(report["interpreters"])
    kept = {k: v for k, v in old.get("interpreters", {}).items() if k not in new}
    if kept:
        # each run whose results stay keeps its own time and load
        runs = old.get(
            "runs", [{key: old.get(key) for key in RUN_KEYS} | {"interpreters": sorted(old["interpreters"])}]
        )
        report["runs"] = [r for r in runs if not set(r.get("interpreters", kept)) <= new]
        report["runs"].append({key: report[key] for key in RUN_KEYS} | {"interpreters": sorted(new)})
        report["interpreters"] = {**kept, **report["interpreters"]}
    return report


RUN_KEYS = ("every", "date", "seconds", "other_jobs_cores")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setting", choices=["fmnist", "photos"], required=True)
    parser.add_argument("--interpreters", nargs="+", default=None)
    parser.add_argument("--n-images", type=int, default=None, help="fmnist 16, photos 8")
    parser.add_argument(
        "--scale", type=float, default=None, help="authors' schedule: this x the paper's steps"
    )
    parser.add_argument(
        "--mask-images", type=int, default=None, help="MASK attacks only the first this many images"
    )
    parser.add_argument(
        "--reuse-authors",
        action="store_true",
        help="take the authors' curves from the existing report (same images and steps): "
        "the authors' schedule is deterministic, only the fast one is re-run",
    )
    parser.add_argument("--every", type=int, default=4, help="curve point every this many steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("ADV2_THREADS", "1")))
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    interps = args.interpreters or (["grad", "cam", "rts"] if args.setting == "fmnist" else ["grad", "cam"])
    n = args.n_images or (16 if args.setting == "fmnist" else 8)
    scale = args.scale or (0.25 if args.setting == "fmnist" else 0.1)
    meter = runbox.CpuMeter()  # other jobs' CPU while this ran (how idle the machine was)
    t0 = time.time()
    path = Path(args.output or REPO / "results" / f"bench_convergence_{args.setting}.json")
    reuse = None
    if args.reuse_authors and path.is_file():
        old = json.loads(path.read_text())
        if (old.get("n_images"), old.get("scale"), old.get("seed", 0)) == (n, scale, args.seed):
            reuse = old.get("interpreters")
    res = run_setting(args.setting, interps, n, scale, args.every, args.seed, args.mask_images, reuse)
    report = {
        "setting": args.setting,
        "n_images": n,
        "scale": scale,
        "every": args.every,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d"),
        "seconds": time.time() - t0,
        "other_jobs_cores": meter.other_jobs_cores(time.time() - t0),
        "cpu_count": os.cpu_count(),
        "seed": args.seed,
        "interpreters": res,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    report = merge(path, report)
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    main()
