"""Speed of the attacks: PGD vs foolbox's LinfPGD, and one ADV2 stage-2 step per interpreter.

    python benchmarks/bench_attacks.py          # CPU (+ CUDA when available), ~1-2 min on CPU
    python benchmarks/bench_attacks.py --device cpu --batch 32 --output /tmp/bench.json

Measured on the small Fashion-MNIST ResNet (random weights: the cost of a step does not depend on
them) at a fixed batch:

* ``pgd``: our targeted PGD, steps per second (``adv2.attacks.pgd``);
* ``foolbox_pgd``: foolbox 3 ``LinfPGD`` with the same budget, step, start and targeted criterion;
  the two must give the same iterates (``max_abs_diff``) and ours should not be slower;
* ``adv2[name]``: one stage-2 ADV2 step against Grad (smooth-ReLU double backward, best-iterate
  selection every 10 steps amortised), CAM, RTS (untrained RTS network: same cost) and MASK
  (4 tracking + 4 unrolled Adam steps and the step-size bisection; the periodic re-solve of the
  mask is excluded). Each is timed as the difference of two runs with different step counts, so
  fixed costs (benign maps, final evaluation) cancel; ``ratio_to_pgd`` = seconds per ADV2 step /
  seconds per PGD step.

Writes ``results/bench_attacks.json`` (or ``--output``).
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

from adv2 import attacks, models  # noqa: E402
from adv2.interpreters import CAMInterpreter, GradInterpreter, MaskInterpreter, RTSInterpreter, RTSNet  # noqa: E402

EPS, STEP = 0.1, 0.0125


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, repeats: int = 1) -> float:
    """Best wall time of ``repeats`` calls (after the caller's warm-up)."""
    return interleaved({"f": fn}, device, repeats)["f"]


def interleaved(fns: dict, device: torch.device, repeats: int) -> dict[str, float]:
    """Best wall time of each function, the calls interleaved (A, B, A, B, ...) so that a change
    in machine load affects all of them alike."""
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def bench_device(device: torch.device, batch: int, pgd_steps: int, repeats: int) -> dict:
    import foolbox as fb

    torch.manual_seed(0)
    model = models.build_small_cnn("resnet", 10, [str(i) for i in range(10)])
    model = models.freeze(model).to(device)
    x = torch.rand(batch, 1, 28, 28, device=device)
    target = torch.randint(0, 10, (batch,), device=device)
    y = (target + 1) % 10
    out: dict = {"device": str(device), "batch": batch}

    # --- PGD: ours vs foolbox
    run_ours = lambda: attacks.pgd(model, x, target, epsilon=EPS, step_size=STEP, steps=pgd_steps)
    fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=device)
    fb_attack = fb.attacks.LinfPGD(abs_stepsize=STEP, steps=pgd_steps, random_start=False)
    criterion = fb.criteria.TargetedMisclassification(target)
    run_fb = lambda: fb_attack(fmodel, x, criterion, epsilons=EPS)[1]
    run_ours(), run_fb()  # warm-up
    times = interleaved({"ours": run_ours, "foolbox": run_fb}, device, repeats)
    t_ours, t_fb = times["ours"], times["foolbox"]
    diff = float((run_ours() - run_fb()).abs().max())
    out["pgd"] = {"steps": pgd_steps, "seconds": t_ours, "steps_per_s": pgd_steps / t_ours}
    out["foolbox_pgd"] = {
        "steps": pgd_steps,
        "seconds": t_fb,
        "steps_per_s": pgd_steps / t_fb,
        "max_abs_diff": diff,
    }
    out["pgd_speedup_vs_foolbox"] = t_fb / t_ours
    sec_pgd = t_ours / pgd_steps

    # --- ADV2: one stage-2 step per interpreter
    torch.manual_seed(0)
    interps = {
        "grad": GradInterpreter(model),
        "cam": CAMInterpreter(model),
        "rts": RTSInterpreter(model, RTSNet(model).to(device)),
        "mask": MaskInterpreter(model, iterations=10),
    }
    steps = {"grad": (1, 5), "cam": (2, 12), "rts": (1, 5), "mask": (1, 2)}
    if device.type == "cuda":
        steps = {k: (a * 5, b * 5) for k, (a, b) in steps.items()}
    out["adv2"] = {}
    for name, interp in interps.items():
        benign = interp(x, y)
        a, b = steps[name]

        def run(n: int, name=name, interp=interp, benign=benign) -> None:
            cfg = attacks.default_config(name, epsilon=EPS, step_size=STEP, stage1_steps=0, batch_size=batch)
            if isinstance(cfg, attacks.ADV2Config) and cfg.phase_steps:
                cfg = dataclasses.replace(cfg, phase_steps=(n,), phase_lams=(cfg.phase_lams[0],))
            else:
                cfg = dataclasses.replace(cfg, stage2_steps=n)
            if isinstance(cfg, attacks.MaskConfig):  # time the steps, not the periodic re-solve
                cfg = dataclasses.replace(cfg, resolve_every=10**9)
            attacks.adv2_attack(model, interp, x, y, target, benign, cfg, x_stage1=x)

        run(1)  # warm-up
        times = interleaved({"a": lambda a=a: run(a), "b": lambda b=b: run(b)}, device, max(1, repeats - 1))
        ta, tb = times["a"], times["b"]
        per_step = max(tb - ta, 1e-9) / (b - a)
        out["adv2"][name] = {
            "steps_per_s": 1 / per_step,
            "seconds_per_step": per_step,
            "ratio_to_pgd": per_step / sec_pgd,
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="auto: CPU, plus CUDA when available",
    )
    parser.add_argument("--batch", type=int, default=64, help="images per batch")
    parser.add_argument("--pgd-steps", type=int, default=10, help="PGD steps timed")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many timings")
    parser.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("ADV2_THREADS", "0")),
        help="CPU threads (0: torch's default)",
    )
    parser.add_argument("--output", default=str(REPO / "results" / "bench_attacks.json"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = []
    if args.device in ("auto", "cpu"):
        devices.append(torch.device("cpu"))
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        devices.append(torch.device("cuda"))
    report = {
        "batch": args.batch,
        "epsilon": EPS,
        "step_size": STEP,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": time.strftime("%Y-%m-%d"),
        "results": {},
    }
    for dev in devices:
        started = time.time()
        res = bench_device(dev, args.batch, args.pgd_steps, args.repeats)
        res["bench_seconds"] = time.time() - started
        report["results"][dev.type] = res
        fbx = res["foolbox_pgd"]
        print(
            f"[{dev}] PGD {res['pgd']['steps_per_s']:.1f} steps/s, foolbox "
            f"{fbx['steps_per_s']:.1f} steps/s (ours {res['pgd_speedup_vs_foolbox']:.2f}x, "
            f"max |diff| {fbx['max_abs_diff']:.1e})"
        )
        for name, r in res["adv2"].items():
            print(
                f"[{dev}] ADV2 {name:4s}: {r['steps_per_s']:7.2f} steps/s = "
                f"{r['ratio_to_pgd']:5.1f} x a PGD step"
            )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
