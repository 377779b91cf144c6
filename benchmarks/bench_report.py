"""Summary of ``make bench``: every figure beside its target, and the convergence figure.

    python benchmarks/bench_report.py     # reads results/bench_*.json, writes book/figures/

Reads ``results/bench_attacks.json`` (:mod:`bench_attacks`),
``results/bench_convergence_{fmnist,photos}.json`` (:mod:`bench_convergence`) and
``results/bench_gpu.json`` (:mod:`bench_gpu`, :func:`gpu_lines`), ``results/bench_training.json``
(:mod:`bench_training`) and ``results/bench_alone.json`` (:mod:`bench_alone`), checks their
format (:func:`check_attacks`, :func:`check_convergence`), prints one line per figure with its
target and PASS/FAIL, and draws the convergence curves of both schedules side by side (map L1 and
success rate against the step) into ``book/figures/bench_convergence.png`` for the Performance page.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SETTINGS = ("fmnist", "photos")
FIGURE = REPO / "book" / "figures" / "bench_convergence.png"

ATTACK_KEYS = {"seconds_per_step", "ratio_to_pgd", "target", "pass"}
PGD_KEYS = {"steps", "seconds", "steps_per_s"}
LIB_KEYS = PGD_KEYS | {"max_abs_diff", "equal", "ours_speedup", "pass"}
SUMMARY_KEYS = {
    "authors_steps",
    "authors_l1",
    "authors_success",
    "fast_budget",
    "fast_steps_taken",
    "fast_l1",
    "fast_success",
    "fast_steps_to_reach",
    "step_limit",
    "pass",
}
CURVE_KEYS = {"schedule", "step", "success", "l1", "steps_budget", "steps_taken", "seconds"}


def check_attacks(report: dict) -> None:
    """Raise ValueError unless ``report`` has the format :mod:`bench_attacks` writes."""
    for key in ("results", "targets", "other_jobs_cores", "cpu_threads"):
        if key not in report:
            raise ValueError(f"bench_attacks report lacks {key!r}")
    for device, per_model in report["results"].items():
        for model, res in per_model.items():
            where = f"{device}/{model}"
            if not PGD_KEYS <= set(res.get("pgd", {})):
                raise ValueError(f"{where}: pgd needs {sorted(PGD_KEYS)}")
            for lib in ("foolbox_pgd", "torchattacks_pgd"):
                if not LIB_KEYS <= set(res.get(lib, {})):
                    raise ValueError(f"{where}: {lib} needs {sorted(LIB_KEYS)}")
            if set(res.get("adv2", {})) != set(report["targets"]):
                raise ValueError(f"{where}: adv2 must time {sorted(report['targets'])}")
            for name, r in res["adv2"].items():
                if not ATTACK_KEYS <= set(r):
                    raise ValueError(f"{where}: adv2[{name}] needs {sorted(ATTACK_KEYS)}")
                if r["pass"] != (r.get("ratio_low", r["ratio_to_pgd"]) <= r["target"]):
                    raise ValueError(f"{where}: adv2[{name}] pass disagrees with ratio and target")


def check_convergence(report: dict) -> None:
    """Raise ValueError unless ``report`` has the format :mod:`bench_convergence` writes."""
    for key in ("setting", "n_images", "scale", "interpreters", "other_jobs_cores"):
        if key not in report:
            raise ValueError(f"bench_convergence report lacks {key!r}")
    for name, r in report["interpreters"].items():
        if not SUMMARY_KEYS <= set(r):
            raise ValueError(f"{name}: summary needs {sorted(SUMMARY_KEYS)}")
        for label in ("authors", "fast"):
            c = r["curves"][label]
            if not CURVE_KEYS <= set(c) or c["schedule"] != label:
                raise ValueError(f"{name}/{label}: curve needs {sorted(CURVE_KEYS)}")
            if not len(c["step"]) == len(c["success"]) == len(c["l1"]) or c["step"] != sorted(c["step"]):
                raise ValueError(f"{name}/{label}: step, success and l1 must align, steps increasing")
        if r["fast_budget"] > r["step_limit"] + 1e-9:
            raise ValueError(f"{name}: the fast budget exceeds a quarter of the authors' steps")


def load(results: Path) -> tuple[dict | None, dict[str, dict]]:
    attacks_path = results / "bench_attacks.json"
    att = json.loads(attacks_path.read_text()) if attacks_path.is_file() else None
    conv = {}
    for s in SETTINGS:
        p = results / f"bench_convergence_{s}.json"
        if p.is_file():
            conv[s] = json.loads(p.read_text())
    return att, conv


def _mark(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _own_images(r: dict, rep: dict) -> str:
    """`` (4 images)`` where an interpreter attacked fewer images than the report (MASK)."""
    n = r.get("n_images", rep["n_images"])
    return f" ({n} images)" if n != rep["n_images"] else ""


def lines(att: dict | None, conv: dict[str, dict]) -> list[str]:
    out = []
    if att is not None and "targets" not in att:
        out.append("results/bench_attacks.json has the old format (no targets): rerun bench_attacks.py")
        att = None
    if att is not None:
        check_attacks(att)
        out.append(f"step cost (other jobs used {att['other_jobs_cores']} cores meanwhile):")
        for device, per_model in att["results"].items():
            for model, res in per_model.items():
                tag = f"  [{device} {model}, batch {res['batch']}]"
                for lib in ("foolbox", "torchattacks"):
                    r = res[f"{lib}_pgd"]
                    interval = (
                        f" [{r['speedup_low']:.2f}, {r['speedup_high']:.2f}]" if "speedup_low" in r else ""
                    )
                    out.append(
                        f"{tag} PGD ours vs {lib}: {r['ours_speedup']:.2f}x{interval} (target >= 1) {_mark(r['pass'])}, "
                        f"outputs {'equal' if r['equal'] else 'DIFFERENT'} (max |diff| {r['max_abs_diff']:.1e})"
                    )
                for name, r in res["adv2"].items():
                    interval = f" [{r['ratio_low']:.2f}, {r['ratio_high']:.2f}]" if "ratio_low" in r else ""
                    out.append(
                        f"{tag} ADV2-{name.upper()} step = {r['ratio_to_pgd']:.2f}{interval} PGD steps "
                        f"(target <= {r['target']:g}) {_mark(r['pass'])}"
                    )
    for s, rep in conv.items():
        check_convergence(rep)
        out.append(
            f"convergence, {s} ({rep['n_images']} images, authors at {rep['scale']:g} x the paper's steps):"
        )
        for name, r in rep["interpreters"].items():
            reach = r["fast_steps_to_reach"]
            out.append(
                f"  {name.upper():4s}{_own_images(r, rep)} authors {r['authors_steps']} steps: L1 {r['authors_l1']:.4f}, success "
                f"{r['authors_success']:.3f} | fast {r['fast_budget']} steps: L1 {r['fast_l1']:.4f}, success "
                f"{r['fast_success']:.3f}; reaches the authors' final at step "
                f"{reach if reach is not None else 'never'} (target <= {r['step_limit']:g}) {_mark(r['pass'])}"
            )
    return out


def figure(conv: dict[str, dict], path: Path = FIGURE) -> Path | None:
    """Map L1 (left) and success rate (right) against the step, both schedules, every setting."""
    if not conv:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_l1, ax_s) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3)
    for s, rep in conv.items():
        for name, r in rep["interpreters"].items():
            colour = next(colours)
            for label, style in (("authors", "-"), ("fast", "--")):
                c = r["curves"][label]
                rel = [step / r["authors_steps"] for step in c["step"]]
                kw = {"color": colour, "linestyle": style, "label": f"{s} {name.upper()} {label}"}
                ax_l1.plot(rel, c["l1"], **kw)
                ax_s.plot(rel, c["success"], **kw)
    for ax, ylabel in ((ax_l1, "map L1 to the benign map (successes)"), (ax_s, "success rate")):
        ax.axvline(0.25, color="grey", linewidth=0.8)
        ax.set_xlabel("step / authors' step count (fast budget: 0.25)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    ax_s.legend(fontsize=7, ncol=2, loc="lower right")
    fig.suptitle("ADV2 convergence: authors' schedule (solid) vs fast (dashed)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def gpu_lines(results: Path) -> list[str]:
    """The ResNet-50 GPU figures of ``results/bench_gpu.json`` (:mod:`bench_gpu`): image-steps/s of
    PGD, ADV2-CAM and ADV2-Grad per precision, or why nothing was timed."""
    path = results / "bench_gpu.json"
    if not path.is_file():
        return ["GPU (ResNet-50): not measured (run benchmarks/bench_gpu.py on a CUDA machine)"]
    rep = json.loads(path.read_text())
    if not rep.get("results"):
        return [f"GPU (ResNet-50): not measured ({rep.get('reason', 'no results')})"]
    out = [
        f"GPU (ResNet-50, random weights, {rep['input_size']} px, batch {rep['batch']}) on "
        f"{rep.get('gpu') or rep.get('device')}, {rep['date']}: image-steps/s (no target)"
    ]
    for mode, res in rep["results"].items():
        out.append(
            f"  [{mode}] "
            + ", ".join(
                f"{k.upper() if k == 'pgd' else 'ADV2-' + k.upper()} {r['image_steps_per_s']:.1f}"
                for k, r in res.items()
            )
        )
    if "bf16_speedup" in rep:
        out.append(
            "  bf16 speed-up over fp32: " + ", ".join(f"{k} {v:.2f}x" for k, v in rep["bf16_speedup"].items())
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", default=str(REPO / "results"))
    parser.add_argument("--figure", default=str(FIGURE))
    args = parser.parse_args(argv)
    att, conv = load(Path(args.results))
    results = Path(args.results)
    for line in lines(att, conv) + gpu_lines(results) + training_lines(results) + alone_lines(results):
        print(line)
    path = figure(conv, Path(args.figure))
    if path is not None:
        print(f"wrote {path}")
    return 0


# ----------------------------------------------------------------------------- training throughput
TRAINING_PAIR_KEYS = {"old_images_per_s", "new_images_per_s", "speedup"}


def check_training(report: dict) -> None:
    """Raise ValueError unless ``report`` has the format :mod:`bench_training` writes."""
    for key in ("target", "speedup", "pass", "other_jobs_cores", "classifier", "rts"):
        if key not in report:
            raise ValueError(f"bench_training report lacks {key!r}")
    for part in ("classifier", "rts"):
        if not TRAINING_PAIR_KEYS <= set(report[part].get("pair", {})):
            raise ValueError(f"bench_training {part}: pair needs {sorted(TRAINING_PAIR_KEYS)}")
    if report["pass"] != (report["speedup"] >= report["target"]):
        raise ValueError("bench_training: pass disagrees with speedup and target")


def training_lines(results: Path) -> list[str]:
    """Training throughput (results/bench_training.json), old code vs new, beside the target."""
    path = results / "bench_training.json"
    if not path.is_file():
        return ["training throughput: not measured (python benchmarks/bench_training.py)"]
    rep = json.loads(path.read_text())
    check_training(rep)
    out = [f"training throughput (other jobs used {rep['other_jobs_cores']} cores meanwhile):"]
    for part, label in (("classifier", "classifiers"), ("rts", "RTS")):
        pair = rep[part]["pair"]
        out.append(
            f"  {label}, both archs on {rep.get('cores', '?')} cores: {pair['old_images_per_s']:.0f} -> "
            f"{pair['new_images_per_s']:.0f} images/s = {pair['speedup']:.2f}x"
        )
        for arch, r in rep[part].get("one_thread", {}).items():
            out.append(
                f"    {arch}, one thread: {r['old_images_per_s']:.0f} -> {r['new_images_per_s']:.0f} images/s "
                f"({r['speedup']:.2f}x; per CPU second {r['cpu_speedup']:.2f}x)"
            )
    out.append(f"  training speedup {rep['speedup']:.2f}x (target >= {rep['target']:g}) {_mark(rep['pass'])}")
    for c in rep.get("compile", []):
        out.append(
            f"  torch.compile {c['arch']}: {c['compile_seconds']:.0f} s to compile, then "
            f"{abs(c['saved_seconds_at_quick']):.0f} s {'saved' if c['saved_seconds_at_quick'] >= 0 else 'lost'} "
            "over the quick budget: "
            f"{'pays back' if c['pays_back'] else 'does not pay back'}"
        )
    for arch, r in rep.get("accuracy", {}).items():
        out.append(
            f"  quick-budget test accuracy {arch}: old {r['old']['test_accuracy']:.4f}, new {r['new']['test_accuracy']:.4f}"
        )
    return out


# ----------------------------------------------------------------------------- each chapter alone
ALONE_KEYS = {"seconds", "returncode", "pass"}


def check_alone(report: dict) -> None:
    """Raise ValueError unless ``report`` has the format :mod:`bench_alone` writes."""
    for key in ("profile", "target_minutes", "chapters", "other_jobs_cores"):
        if key not in report:
            raise ValueError(f"bench_alone report lacks {key!r}")
    for stem, r in report["chapters"].items():
        if not ALONE_KEYS <= set(r):
            raise ValueError(f"bench_alone {stem} needs {sorted(ALONE_KEYS)}")
        if r["pass"] != (r["returncode"] == 0 and r["seconds"] <= 60 * report["target_minutes"]):
            raise ValueError(f"bench_alone {stem}: pass disagrees with its time, exit code and target")


def alone_lines(results: Path) -> list[str]:
    """Each chapter alone from an empty cache (results/bench_alone.json), beside the target."""
    path = results / "bench_alone.json"
    if not path.is_file():
        return ["each chapter alone: not measured (python benchmarks/bench_alone.py)"]
    rep = json.loads(path.read_text())
    check_alone(rep)
    out = [
        f"each chapter alone from an empty cache at {rep['profile']} "
        f"(other jobs used {rep['other_jobs_cores']} cores meanwhile):"
    ]
    for stem, r in rep["chapters"].items():
        failed = "" if r["returncode"] == 0 else f", exit code {r['returncode']}"
        if (r.get("other_jobs_cores") or 0) > 0.25:  # a busy machine slowed this chapter
            failed += f", other jobs {r['other_jobs_cores']:.2f} cores"
        out.append(
            f"  {stem}: {r['seconds'] / 60:.2f} min{failed} (target <= {rep['target_minutes']}) {_mark(r['pass'])}"
        )
    return out


if __name__ == "__main__":
    sys.exit(main())
