"""Training throughput (issue 13, item 3): classifier and RTS training, the old code against the new.

    python benchmarks/bench_training.py                 # throughput only (a few minutes)
    python benchmarks/bench_training.py --accuracy      # + quick-budget accuracy, old and new (~15 min)
    python benchmarks/bench_training.py --compile       # + torch.compile: compile time vs time saved

*Old* is the code before issue 13 (``fast=False``: NCHW memory order, a host sync per step, RTS's
two black-box calls per step) run the way the notebooks ran it: one job after the other, each with
torch's default intra-op threads (one per core). *New* is ``fast=True`` (channels-last, no
per-step sync, one black-box call) with chapter 1's two classifiers (and chapter 2's two RTS) side
by side on one core each (:func:`adv2.core.parallel.run_concurrently`). Old and new alternate in this
one process (``--repeats`` rounds), so other jobs on the machine slow both alike; ``other_jobs_cores``
says how busy it was. The headline ``speedup`` is the smaller of the two pairs' images/s ratios on
all cores (target 2.0); the one-job figures at one thread (wall and CPU-time based) are beside it.
Networks start from their seeded initialisation (throughput does not depend on the weights).
Writes ``results/bench_training.json``; :mod:`bench_report` prints it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))

from adv2.book import runbox  # noqa: E402
from adv2.core import classifier, models, parallel
from adv2.core.config import load_profile  # noqa: E402
from adv2.core.interpreters.rts_training import train_rts
from adv2.trained import data, recipes

TARGET = 2.0
ARCHS = ("resnet", "densenet")
QUICK_BATCH = 128  # the quick profile's classifier batch (recipes.ClassifierRecipe)


def _net(arch: str, fm) -> classifier.ImageClassifier:
    with parallel.seeded(0):
        return models.build_small_cnn(arch, fm.num_classes, fm.class_names)


def classifier_job(arch: str, fm, steps: int, fast: bool):
    """A callable training ``arch`` for ``steps`` quick-recipe steps; returns images trained on."""
    n = steps * QUICK_BATCH

    def job() -> int:
        models.train_classifier(
            _net(arch, fm), fm.x_train[:n], fm.y_train[:n], fm.x_test[:16], fm.y_test[:16],
            epochs=1, batch_size=QUICK_BATCH, lr=5e-3, weight_decay=5e-4, seed=0,
            device=torch.device("cpu"), progress=False, fast=fast, single_thread=fast,
        )  # fmt: skip
        return n

    return job


def rts_job(arch: str, fm, iterations: tuple[int, int], fast: bool):
    """A callable training an RTS of an ``arch`` classifier at the quick recipe's batches and
    learning rate for ``iterations`` (phase 1, phase 2); returns images trained on."""
    params = load_profile("quick", "02_interpreters")
    recipe = recipes.rts_recipe(params, arch)
    kw = dataclasses.replace(
        recipe, phase1_iterations=iterations[0], phase2_iterations=iterations[1]
    ).train_rts_kwargs()

    def job() -> int:
        model = classifier.freeze(_net(arch, fm))
        _, m = train_rts(model, fm.x_train, fm.y_train, progress=False, fast=fast, single_thread=fast, **kw)
        return int(m["images_seen"])

    return job


def timed(jobs: list, concurrent: bool, threads: int) -> dict:
    """Run ``jobs`` (side by side or one after the other at ``threads`` intra-op threads)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        c0, t0 = time.process_time(), time.perf_counter()
        images = sum(parallel.run_concurrently(jobs, concurrent=concurrent))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        torch.set_num_threads(before)
    return {"images": images, "seconds": wall, "cpu_seconds": cpu, "images_per_s": images / wall}


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def compare(make_job, names: list[str], cores: int, repeats: int) -> dict:
    """Old vs new for the jobs ``make_job(name, fast)``: all cores (the pair) and one job on one
    thread, alternating old and new ``repeats`` times."""
    runs: dict[str, list[dict]] = {k: [] for k in ("old_pair", "new_pair")}
    runs.update({f"{v}_{n}": [] for v in ("old", "new") for n in names})
    for _ in range(repeats):
        runs["old_pair"].append(timed([make_job(n, False) for n in names], False, cores))
        runs["new_pair"].append(timed([make_job(n, True) for n in names], True, 1))
        for n in names:
            for v, fast in (("old", False), ("new", True)):
                runs[f"{v}_{n}"].append(timed([make_job(n, fast)], False, 1))
    out = {
        "pair": {
            "old_images_per_s": _median(runs["old_pair"], "images_per_s"),
            "new_images_per_s": _median(runs["new_pair"], "images_per_s"),
        },
        "one_thread": {},
        "runs": runs,
    }
    out["pair"]["speedup"] = out["pair"]["new_images_per_s"] / out["pair"]["old_images_per_s"]
    for n in names:
        o, w = runs[f"old_{n}"], runs[f"new_{n}"]
        old_cpu = statistics.median(r["images"] / r["cpu_seconds"] for r in o)
        new_cpu = statistics.median(r["images"] / r["cpu_seconds"] for r in w)
        out["one_thread"][n] = {
            "old_images_per_s": _median(o, "images_per_s"),
            "new_images_per_s": _median(w, "images_per_s"),
            "speedup": _median(w, "images_per_s") / _median(o, "images_per_s"),
            "old_images_per_cpu_s": old_cpu,
            "new_images_per_cpu_s": new_cpu,
            "cpu_speedup": new_cpu / old_cpu,
        }
    return out


def compile_payback(fm, arch: str, steps: int, quick_steps: int) -> dict:
    """torch.compile on a cold run: its compile time against the time it saves over the quick
    budget's ``quick_steps`` steps (measured per step over ``steps`` steps, eager vs compiled)."""
    import tempfile

    import torch.nn.functional as F

    # a cold run: an empty inductor cache (an earlier compile of the same graph would be reused)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-training-inductor-")
    torch._dynamo.reset()
    torch.set_num_threads(1)
    model = models.channels_last(_net(arch, fm)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=5e-4)
    x = fm.x_train[:QUICK_BATCH].contiguous(memory_format=torch.channels_last)
    y = fm.y_train[:QUICK_BATCH]
    compiled = torch.compile(model)

    def step(m) -> None:
        loss = F.cross_entropy(m(x), y, label_smoothing=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    step(compiled)
    first = time.perf_counter() - t0
    per = {"eager": [], "compiled": []}
    for _ in range(2):
        for name, m in (("eager", model), ("compiled", compiled)):
            t0 = time.perf_counter()
            for _ in range(steps):
                step(m)
            per[name].append((time.perf_counter() - t0) / steps)
    eager, comp = min(per["eager"]), min(per["compiled"])
    saved = (eager - comp) * quick_steps
    return {
        "arch": arch,
        "compile_seconds": first - comp,
        "eager_seconds_per_step": eager,
        "compiled_seconds_per_step": comp,
        "quick_steps": quick_steps,
        "saved_seconds_at_quick": saved,
        "pays_back": saved > first - comp,
    }


def accuracy(fm, archs: list[str]) -> dict:
    """Test accuracy after the quick budget (1 epoch), old code vs new, one thread, same recipe."""
    params = load_profile("quick", "01_target_models")
    out = {}
    for arch in archs:
        r = recipes.with_data(recipes.classifier_recipe(params, arch), fm)
        out[arch] = {}
        for label, fast in (("old", False), ("new", True)):
            with parallel.seeded(r.train_seed):
                model = models.build_small_cnn(arch, fm.num_classes, fm.class_names)
            t0 = time.perf_counter()
            m = models.train_classifier(
                model, fm.x_train, fm.y_train, fm.x_test[:1000], fm.y_test[:1000],
                epochs=r.epochs, batch_size=r.batch_size, lr=r.lr, weight_decay=r.weight_decay,
                seed=r.train_seed, device=torch.device("cpu"), progress=False, fast=fast,
                single_thread=fast,
            )  # fmt: skip
            out[arch][label] = {
                "test_accuracy": models.evaluate(model, fm.x_test, fm.y_test),
                "n_test": len(fm.x_test),
                "seconds": time.perf_counter() - t0,
                "curve_val_acc": m["curve_val_acc"],
            }
            print(f"accuracy {arch} {label}: {out[arch][label]['test_accuracy']:.4f}", flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=12, help="classifier steps per job (batch 128)")
    parser.add_argument("--rts-iterations", type=int, nargs=2, default=(16, 24), help="phase 1, phase 2")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cores", type=int, default=parallel.cores(), help="old code's intra-op threads")
    parser.add_argument("--accuracy", action="store_true", help="also train the quick budget, old and new")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile's payback")
    parser.add_argument("--archs", nargs="+", choices=ARCHS, default=list(ARCHS))
    parser.add_argument("--tiny", action="store_true", help="smoke test: 1 step, 1 repeat")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    if args.tiny:
        args.steps, args.rts_iterations, args.repeats = 1, (1, 1), 1
    fm = data.load_fashion_mnist(allow_download=False)
    meter = runbox.CpuMeter()
    t0 = time.time()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    cls = compare(
        lambda a, fast: classifier_job(a, fm, args.steps, fast), args.archs, args.cores, args.repeats
    )
    print(
        f"classifiers: {cls['pair']['old_images_per_s']:.0f} -> {cls['pair']['new_images_per_s']:.0f} img/s",
        flush=True,
    )
    rts = compare(
        lambda a, fast: rts_job(a, fm, tuple(args.rts_iterations), fast),
        args.archs,
        args.cores,
        args.repeats,
    )
    print(
        f"rts: {rts['pair']['old_images_per_s']:.0f} -> {rts['pair']['new_images_per_s']:.0f} img/s",
        flush=True,
    )
    speedup = min(cls["pair"]["speedup"], rts["pair"]["speedup"])
    report = {
        "target": TARGET,
        "speedup": speedup,
        "pass": speedup >= TARGET,
        "classifier": cls,
        "rts": rts,
        "steps": args.steps,
        "rts_iterations": list(args.rts_iterations),
        "repeats": args.repeats,
        "archs": args.archs,
        "cores": args.cores,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "load_average_before": load,
        "cpu_count": os.cpu_count(),
    }
    if args.compile:
        quick_steps = len(fm.x_train) // QUICK_BATCH
        report["compile"] = [compile_payback(fm, a, 4 if args.tiny else 8, quick_steps) for a in args.archs]
    if args.accuracy:
        report["accuracy"] = accuracy(fm, args.archs)
    report["seconds"] = time.time() - t0
    report["other_jobs_cores"] = meter.other_jobs_cores(report["seconds"])
    path = Path(args.output or REPO / "results" / "bench_training.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"training speedup {speedup:.2f}x (target {TARGET}x): {'PASS' if report['pass'] else 'FAIL'}")
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    main()
