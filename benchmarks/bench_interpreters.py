"""Throughput of the four interpreters: maps per second at a fixed batch, on CPU (and CUDA).

    python benchmarks/bench_interpreters.py                   # ~1 min on 2 CPU cores
    python benchmarks/bench_interpreters.py --imagenet        # also EfficientNet-Lite0 at 224 px

Speed does not depend on the weights, so the Fashion-MNIST classifiers and the RTS network are
randomly initialised (nothing is trained or loaded). ``grad+attack`` is the Grad map through a
smooth-ReLU copy with ``create_graph=True`` plus the backward to the input (what one ADV2 step on
Grad pays); ``mask`` runs its full optimisation (``--mask-iterations``). Writes
``<results-dir>/bench_interpreters.json`` (``numbers[device][model][interpreter]`` = maps/s).
"""

from __future__ import annotations

import argparse
import time

import torch

from adv2.chapters.results import save_results
from adv2.core.classifier import freeze
from adv2.core.config import set_threads_from_env
from adv2.core.interpreters import CAMInterpreter, GradInterpreter, MaskInterpreter, RTSInterpreter, RTSNet
from adv2.core.models import build_small_cnn
from adv2.core.smooth_relu import smooth_backward_copy


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def maps_per_second(fn, n: int, device: torch.device, min_seconds: float) -> float:
    fn()  # warm-up (allocations, cuDNN autotuning)
    sync(device)
    reps, started = 0, time.perf_counter()
    while True:
        fn()
        reps += 1
        sync(device)
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return reps * n / elapsed


def bench_model(model, x, t, device, args) -> dict[str, float]:
    smooth = smooth_backward_copy(model)
    grad_smooth = GradInterpreter(smooth)

    def grad_attack():
        xx = x.clone().requires_grad_(True)
        maps = grad_smooth(xx, t, create_graph=True)
        torch.autograd.grad(maps.square().sum(), xx)

    interps = {
        "grad": lambda: GradInterpreter(model)(x, t),
        "grad+attack": grad_attack,
        "cam": lambda: CAMInterpreter(model)(x, t),
    }
    rts = RTSInterpreter(model, RTSNet(model).to(device).eval())
    interps["rts"] = lambda: rts(x, t)
    mask = MaskInterpreter(model, iterations=args.mask_iterations)
    interps["mask"] = lambda: mask(x, t)
    out = {}
    for name, fn in interps.items():
        budget = args.min_seconds if name != "mask" else 0.0  # MASK: one timed run is enough
        out[name] = maps_per_second(fn, len(x), device, budget)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=32, help="images per call (Fashion-MNIST models)")
    p.add_argument("--archs", default="resnet,densenet")
    p.add_argument("--devices", default="auto", help="auto (cpu, + cuda if present), cpu, cuda")
    p.add_argument("--mask-iterations", type=int, default=100)
    p.add_argument("--min-seconds", type=float, default=1.0, help="timing window per case")
    p.add_argument("--imagenet", action="store_true", help="also EfficientNet-Lite0 (224 px)")
    p.add_argument("--imagenet-batch", type=int, default=8)
    p.add_argument("--results-dir", default="results")
    args = p.parse_args()
    set_threads_from_env()
    devices = (
        ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        if args.devices == "auto"
        else args.devices.split(",")
    )
    numbers: dict = {}
    gen = torch.Generator().manual_seed(0)
    for dev_name in devices:
        device = torch.device(dev_name)
        numbers[dev_name] = {}
        cases = []
        for arch in args.archs.split(","):
            torch.manual_seed(0)
            model = freeze(build_small_cnn(arch, 10, [str(i) for i in range(10)]).to(device))
            cases.append((f"fmnist-{arch}", model, args.batch, 28, 1, 10))
        if args.imagenet:
            from adv2.trained.data import imagenet_class_names
            from adv2.trained.pretrained import efficientnet_lite

            cases.append(
                (
                    "efficientnet-lite0",
                    efficientnet_lite(imagenet_class_names()).to(device),
                    args.imagenet_batch,
                    224,
                    3,
                    1000,
                )
            )
        for name, model, n, size, ch, k in cases:
            x = torch.rand(n, ch, size, size, generator=gen).to(device)
            t = torch.randint(0, k, (n,), generator=gen).to(device)
            numbers[dev_name][name] = bench_model(model, x, t, device, args)
            print(
                f"{dev_name:5s} {name:20s} "
                + "  ".join(f"{i}: {v:8.1f}" for i, v in numbers[dev_name][name].items()),
                flush=True,
            )
    interps = list(next(iter(next(iter(numbers.values())).values())))
    px224 = f", 224 px batch {args.imagenet_batch}" if args.imagenet else ""
    print(
        f"\nmaps per second (batch {args.batch}{px224}, MASK {args.mask_iterations} iterations, "
        f"torch threads {torch.get_num_threads()})"
    )
    print("| device | model | " + " | ".join(interps) + " |")
    print("|---|---|" + "---|" * len(interps))
    for dev_name, models in numbers.items():
        for name, row in models.items():
            print(f"| {dev_name} | {name} | " + " | ".join(f"{row[i]:.1f}" for i in interps) + " |")
    path = save_results(
        "bench_interpreters", numbers, {**vars(args), "threads": torch.get_num_threads()}, args.results_dir
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
