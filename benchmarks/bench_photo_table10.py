"""Table 10 on every usable photo, at chapter 6's budget and at 4x it, under the adaptive attacker
(issue 23's evaluation that deserves a verdict):

    python benchmarks/bench_photo_table10.py                 # 18 photos, 0.01 and 0.04 (~20 min, 1 thread)
    python benchmarks/bench_photo_table10.py --n-images 4 --scales 0.01 --output /tmp/t10.json
    python benchmarks/bench_photo_table10.py --scales 0.1 --schedule authors --output /tmp/a.json
    python benchmarks/bench_photo_table10.py --merge fast.json /tmp/a.json   # one report

It runs chapter 6's own photo protocol (:func:`adv2.chapters.ch06.attack_photos` with the book's
photo RTS, RTSA and beta = 0 control, :func:`adv2.chapters.ch06.photo_attack_config` on the fast
schedule): for each ``--scales`` value, ADV2 against RTS, RTSA and the control from one shared
stage 1 on the first ``--n-images`` usable photos of the seeded order; at ``--adaptive-scale``
also the adaptive attacker (ADV2 without the encoder term, warm start and a random restart, the
best of three per photo), which then decides the trial's claims. Each budget's record holds the
chapter's numbers (means, intervals, quartiles, verdicts through the claims layer), the per-photo
values, and the verdicts again on the photos chapter 6 attacks at ``quick`` alone (the first
``--quick-images``: the other photos chose the photo RTSA's setting, ``bench_photo_aid.py``).
Writes ``results/bench_photo_table10.json`` atomically; chapter 6 shows it
(:mod:`adv2.chapters.aid_photo_eval`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))

from adv2.chapters import ch06  # noqa: E402
from adv2.chapters._common import PHOTOS, verdicts_block  # noqa: E402
from adv2.trained.checkpoints import machine_description  # noqa: E402
from adv2.trained.files import atomic_write_json  # noqa: E402
from adv2.trained.photomodels import load_photo_interpreted  # noqa: E402


def per_photo(result: ch06.Ch06Result) -> dict[str, list]:
    """Every per-photo array of the run as a JSON list (NaN where ADV2 missed: None later)."""
    return {k: torch.as_tensor(v).float().tolist() for k, v in result.per_image[PHOTOS].items()}


def verdicts_on(result: ch06.Ch06Result, n: int) -> dict:
    """The chapter's verdicts on the first ``n`` photos alone (same rules, a smaller sample)."""
    part = SimpleNamespace(
        archs=[PHOTOS], per_image={PHOTOS: {k: v[:n] for k, v in result.per_image[PHOTOS].items()}}
    )
    return verdicts_block(ch06.verdicts(part))[PHOTOS]


def measure(net, scale: float, *, adaptive: bool, args: argparse.Namespace) -> dict:
    cfg = ch06.photo_attack_config(scale, args.schedule)
    t0 = time.time()
    result = ch06.attack_photos(
        net,
        n_images=args.n_images,
        seed=args.seed,
        attack_cfg=cfg,
        restrict_to_success=True,
        adaptive=adaptive,
        progress=True,
    )
    numbers = result.numbers()
    return {
        "attack_scale": scale,
        "schedule": args.schedule,
        "adaptive": adaptive,
        "stage1_steps": cfg.stage1_steps,
        "stage2_steps": cfg.stage2_steps,
        "attack": ch06.describe_attack(cfg),
        "n_images": args.n_images,
        "numbers": numbers[PHOTOS],
        "intervals": numbers["intervals"][PHOTOS],
        "verdicts": numbers["verdicts"][PHOTOS],
        "verdicts_quick_photos": verdicts_on(result, min(args.quick_images, args.n_images)),
        "per_photo": per_photo(result),
        "wall_seconds": time.time() - t0,
    }


def merge(parts: list[dict]) -> dict:
    """One report with every part's budgets (each keeps its own schedule) and the summed seconds."""
    budgets = [{"schedule": p["schedule"], **b} for p in parts for b in p["budgets"]]
    return {**parts[0], "budgets": budgets, "seconds": sum(p["seconds"] for p in parts)}


def no_nan(value):
    """``value`` with every NaN (a photo where ADV2 failed) as None: strict JSON."""
    if isinstance(value, dict):
        return {k: no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [no_nan(v) for v in value]
    return None if isinstance(value, float) and value != value else value


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-images", type=int, default=18, help="usable photos attacked (all: 18)")
    ap.add_argument(
        "--scales", type=float, nargs="+", default=[0.01, 0.04], help="of the authors' 300 + 1200 steps"
    )
    ap.add_argument(
        "--adaptive-scale", type=float, default=0.04, help="the budget that also runs the adaptive attacker"
    )
    ap.add_argument("--quick-images", type=int, default=8, help="photos chapter 6 attacks at quick")
    ap.add_argument("--schedule", default="fast", choices=("fast", "authors"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--output", default=str(REPO / "results" / "bench_photo_table10.json"))
    ap.add_argument("--merge", nargs="+", help="join the budgets of earlier reports into --output")
    args = ap.parse_args(argv)
    if args.merge:
        report = merge([json.loads(Path(f).read_text()) for f in args.merge])
        atomic_write_json(Path(args.output), report)
        return report
    if args.n_images < 1 or any(s <= 0 for s in args.scales):
        ap.error(f"--n-images must be >= 1 and every --scales value > 0 (got {args.n_images}, {args.scales})")
    torch.set_num_threads(args.threads)
    started = time.time()
    net = load_photo_interpreted(progress=False)
    report = {
        "budgets": [
            measure(net, s, adaptive=abs(s - args.adaptive_scale) < 1e-12, args=args) for s in args.scales
        ],
        "seed": args.seed,
        "schedule": args.schedule,
        "quick_images": args.quick_images,
        "rtsa_key": getattr(net.rtsa_artifact, "key", None),
        "control_key": getattr(net.control_artifact, "key", None),
    }
    report["seconds"] = time.time() - started
    report["machine"] = machine_description()
    report["threads"] = args.threads
    atomic_write_json(Path(args.output), no_nan(report))
    for b in report["budgets"]:
        print(json.dumps({"scale": b["attack_scale"], "ratio": b["intervals"]["adv2_l1_ratio"]}), flush=True)
    return report


if __name__ == "__main__":
    main()
