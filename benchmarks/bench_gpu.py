"""GPU throughput: ResNet-50 image-steps per second for PGD, ADV2-CAM and ADV2-Grad (issue 13, item 5).

    python benchmarks/bench_gpu.py                          # CUDA; without one it says so and exits 0
    python benchmarks/bench_gpu.py --device cpu --batch 2 --steps 2 --size 64   # a CPU smoke run

torchvision's ResNet-50 with random weights (nothing is downloaded; a step's cost does not depend
on the weights), wrapped as the book's classifiers are (``adv2.core.models.torchvision_imagenet``:
stages + global average pooling + fc, so CAM reads its last stage), at ``--size`` px (224) and
batch ``--batch`` (64), eps 0.031 and step 1/255. Per attack: one stage-2 step of the sign-step
loop (``pgd_run``; ``adv2_sign`` against CAM and against Grad, its smooth-ReLU double backward and
best-iterate selection every 10 steps included), timed as the difference of a run of ``--steps``
and one of twice as many steps (fixed costs such as the benign maps and the final evaluation
cancel), with the device synchronised around each run. Reported as image-steps per second
(batch x steps / seconds) for each precision (``bf16``: the library's CUDA default, autocast;
``fp32``: full precision; :mod:`adv2.core.precision`).

Writes ``results/bench_gpu.json`` (or ``--output``). On a machine without CUDA (``--device auto``)
it writes ``{"gpu": null, "reason": ...}`` at once and exits 0.
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

from adv2.core import attacks, precision  # noqa: E402
from adv2.core.attacks.adv2 import adv2_sign  # noqa: E402
from adv2.core.attacks.pgd import pgd_run  # noqa: E402
from adv2.core.interpreters import CAMInterpreter, GradInterpreter  # noqa: E402
from adv2.trained import pretrained

OUTPUT = REPO / "results" / "bench_gpu.json"
ATTACKS = ("pgd", "cam", "grad")
EPS, STEP = 0.031, 1 / 255


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def resnet50(device: torch.device) -> torch.nn.Module:
    """torchvision ResNet-50, random weights (seeded), as an ``ImageClassifier``."""
    torch.manual_seed(0)
    net = pretrained.torchvision_imagenet("resnet", [str(i) for i in range(1000)], pretrained=False)
    return net.to(device)


def _runner(kind: str, model, x, target, benign: dict):
    """``run(n)``: ``n`` sign steps of the attack from ``x`` (stage 2 only for ADV2)."""
    if kind == "pgd":
        return lambda n: pgd_run(model, x, target, x, EPS, STEP, n, "ce")
    interp = CAMInterpreter(model) if kind == "cam" else GradInterpreter(model)
    if kind not in benign:
        benign[kind] = interp(x, (target + 1) % 1000)

    def run(n: int):
        cfg = attacks.default_config(kind, epsilon=EPS, step_size=STEP, stage1_steps=0, batch_size=len(x))
        if cfg.phase_steps:  # Grad: one phase of n steps at its first lambda
            cfg = dataclasses.replace(cfg, phase_steps=(n,), phase_lams=(cfg.phase_lams[0],))
        else:
            cfg = dataclasses.replace(cfg, stage2_steps=n)
        return adv2_sign(model, interp, x, target, benign[kind], cfg, x_stage1=x)

    return run


def _seconds(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def bench(device: torch.device, batch: int, steps: int, size: int, mode: str, repeats: int) -> dict:
    """Image-steps per second of each attack at precision ``mode``."""
    model = resnet50(device)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=gen).to(device)
    target = torch.randint(0, 1000, (batch,), generator=gen).to(device)
    out: dict = {}
    benign: dict = {}
    previous = os.environ.get(precision.ENV)
    os.environ[precision.ENV] = mode
    try:
        for kind in ATTACKS:
            run = _runner(kind, model, x, target, benign)
            run(1)  # warm-up: cuDNN autotuning, allocator
            short = min(_seconds(lambda r=run: r(steps), device) for _ in range(repeats))
            long = min(_seconds(lambda r=run: r(2 * steps), device) for _ in range(repeats))
            per_step = max(long - short, 1e-9) / steps
            out[kind] = {
                "seconds_per_step": per_step,
                "image_steps_per_s": batch / per_step,
                "seconds": {"steps": short, "2x steps": long},
            }
            print(
                f"  {mode:4s} {kind:4s} {batch / per_step:10.1f} image-steps/s ({per_step * 1e3:.1f} ms per step)"
            )
    finally:
        if previous is None:
            os.environ.pop(precision.ENV, None)
        else:
            os.environ[precision.ENV] = previous
    return out


def _write(report: dict, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2))
    print(f"wrote {output}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--device", default="auto", choices=["auto", "cuda", "cpu"], help="auto: CUDA if present, else skip"
    )
    parser.add_argument("--batch", type=int, default=64, help="images per batch")
    parser.add_argument("--steps", type=int, default=10, help="steps of the shorter timed run")
    parser.add_argument("--size", type=int, default=224, help="input side in pixels")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many timings")
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=["bf16", "fp32"],
        default=None,
        help="precisions timed (default: bf16 and fp32 on CUDA, fp32 on the CPU)",
    )
    parser.add_argument("--output", default=str(OUTPUT))
    args = parser.parse_args(argv)
    for name in ("batch", "steps", "size", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    report = {
        "model": "resnet50 (torchvision, random weights)",
        "batch": args.batch,
        "input_size": args.size,
        "steps": args.steps,
        "epsilon": EPS,
        "step_size": STEP,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }
    if args.device == "auto" and not torch.cuda.is_available():
        report.update(gpu=None, reason="no CUDA device (torch.cuda.is_available() is False); nothing timed")
        print(f"bench_gpu: {report['reason']}")
        _write(report, Path(args.output))
        return report
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is available; valid: auto, cpu")
    device = torch.device("cpu" if args.device == "cpu" else "cuda")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
    modes = args.precision or (["bf16", "fp32"] if device.type == "cuda" else ["fp32"])
    report.update(
        device=str(device),
        gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        cuda=torch.version.cuda if device.type == "cuda" else None,
        cpu_threads=torch.get_num_threads(),
        results={},
    )
    t0 = time.time()
    print(f"ResNet-50 at {args.size} px, batch {args.batch}, on {report['gpu'] or 'the CPU'}:")
    for mode in modes:
        report["results"][mode] = bench(device, args.batch, args.steps, args.size, mode, args.repeats)
    if {"bf16", "fp32"} <= set(modes):
        report["bf16_speedup"] = {
            k: report["results"]["bf16"][k]["image_steps_per_s"]
            / report["results"]["fp32"][k]["image_steps_per_s"]
            for k in ATTACKS
        }
    report["seconds"] = time.time() - t0
    _write(report, Path(args.output))
    return report


if __name__ == "__main__":
    main()
