"""Numbers of the Performance page, read from `make bench`'s results/bench_*.json (none typed by hand).

MyST substitutions used by book/performance.md:
* ``{{ bench_<model>_<interp> }}`` -- ADV2 step cost in PGD steps with PASS/FAIL against the target
  (model: resnet, densenet, lite0; interp: cam, grad, rts, mask);
* ``{{ bench_<model>_foolbox }}`` / ``{{ bench_<model>_torchattacks }}`` -- our PGD's speed-up and
  whether the outputs are equal;
* ``{{ conv_<setting>_<interp>_<field> }}`` (setting fmnist/photos; field authors, fast, reach) --
  the authors' final L1/success/steps, the fast schedule's, and where fast reaches the authors';
* ``{{ bench_idle }}`` / ``{{ conv_<setting>_idle }}`` -- other jobs' CPU while measuring;
* ``{{ gpu_device }}``, ``{{ gpu_setup }}``, ``{{ gpu_<precision>_<attack> }}`` -- ResNet-50
  image-steps/s on CUDA (results/bench_gpu.json, :func:`gpu`).
A value missing from results/ reads "not measured".
"""

from __future__ import annotations

import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MISSING = "not measured"
MODELS = {"resnet": "fmnist-resnet", "densenet": "fmnist-densenet", "lite0": "efficientnet-lite0"}
INTERPRETERS = ("cam", "grad", "rts", "mask")


def _load(name: str) -> dict:
    path = ROOT / "results" / name
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return {}


def _mark(ok) -> str:
    return "pass" if ok else "FAIL"


def step_costs() -> dict[str, str]:
    rep = _load("bench_attacks.json")
    cpu = rep.get("results", {}).get("cpu", {})
    subs = {"bench_idle": MISSING, "bench_date": rep.get("date", MISSING)}
    if rep.get("other_jobs_cores") is not None:
        subs["bench_idle"] = f"{rep['other_jobs_cores']} of {rep.get('cpu_count', '?')} cores"
    counts = {
        r.get("rounds") for res in cpu.values() if isinstance(res, dict) for r in res.get("adv2", {}).values()
    }
    subs["bench_rounds"] = str(counts.pop()) if len(counts) == 1 and None not in counts else MISSING
    for short, model in MODELS.items():
        res = cpu.get(model, {}) if isinstance(cpu.get(model), dict) else {}
        for name in INTERPRETERS:
            r = res.get("adv2", {}).get(name)
            subs[f"bench_{short}_{name}"] = _ratio_text(r) if r and "target" in r else MISSING
        for lib in ("foolbox", "torchattacks"):
            r = res.get(f"{lib}_pgd")
            subs[f"bench_{short}_{lib}"] = _pgd_text(r) if r and "ours_speedup" in r else MISSING
    return subs


def _ratio_text(r: dict) -> str:
    """An ADV2 step in PGD steps: the median over rounds with its 95 % interval, and the target."""
    interval = f" [{r['ratio_low']:.2f}, {r['ratio_high']:.2f}]" if "ratio_low" in r else ""
    return f"{r['ratio_to_pgd']:.2f}x{interval} (≤ {r['target']:g}: {_mark(r['pass'])})"


def _pgd_text(r: dict) -> str:
    """Our PGD's speed-up over a library's: the median over paired rounds with its 95 % interval."""
    interval = f" [{r['speedup_low']:.2f}, {r['speedup_high']:.2f}]" if "speedup_low" in r else ""
    outputs = "equal" if r["equal"] else "different"
    return f"{r['ours_speedup']:.2f}x{interval} ({_mark(r['pass'])}), {outputs} outputs"


def convergence() -> dict[str, str]:
    subs = {}
    for setting in ("fmnist", "photos"):
        rep = _load(f"bench_convergence_{setting}.json")
        subs[f"conv_{setting}_idle"] = (
            f"{rep['other_jobs_cores']} of {rep.get('cpu_count', '?')} cores"
            if "other_jobs_cores" in rep
            else MISSING
        )
        subs[f"conv_{setting}_images"] = str(rep.get("n_images", MISSING))
        for name in INTERPRETERS:
            r = rep.get("interpreters", {}).get(name)
            if not r:
                for field in ("authors", "fast", "reach"):
                    subs[f"conv_{setting}_{name}_{field}"] = MISSING
                continue
            own = r.get("n_images", rep.get("n_images"))  # MASK may attack fewer images
            subs[f"conv_{setting}_{name}_authors"] = (
                f"{r['authors_steps']} steps: L1 {r['authors_l1']:.3f}, success {r['authors_success']:.2f}"
                + (f" ({own} images)" if own != rep.get("n_images") else "")
            )
            subs[f"conv_{setting}_{name}_fast"] = (
                f"{r['fast_budget']} steps: L1 {r['fast_l1']:.3f}, success {r['fast_success']:.2f}"
            )
            reach = r["fast_steps_to_reach"]
            subs[f"conv_{setting}_{name}_reach"] = (
                f"{reach if reach is not None else 'never'} (≤ {r['step_limit']:g}: {_mark(r['pass'])})"
            )
    return subs


GPU_ATTACKS = ("pgd", "cam", "grad")


def gpu() -> dict[str, str]:
    """``{{ gpu_device }}``, ``{{ gpu_setup }}`` and ``{{ gpu_<precision>_<attack> }}`` (bf16/fp32;
    pgd, cam, grad): ResNet-50 image-steps/s from results/bench_gpu.json (bench_gpu.py)."""
    rep = _load("bench_gpu.json")
    res = rep.get("results") or {}
    subs = {
        "gpu_device": MISSING
        if not res
        else f"{rep.get('gpu') or rep.get('device')} ({rep.get('date', '?')})"
    }
    if not res and rep.get("reason"):
        subs["gpu_device"] = f"{MISSING}: {rep['reason']}"
    subs["gpu_setup"] = f"{rep['input_size']} px, batch {rep['batch']}" if res and "batch" in rep else MISSING
    for mode in ("bf16", "fp32"):
        for name in GPU_ATTACKS:
            r = res.get(mode, {}).get(name)
            subs[f"gpu_{mode}_{name}"] = f"{r['image_steps_per_s']:.0f}" if r else MISSING
    return subs


# ----------------------------------------------------------------------------- training throughput
# ``{{ train_<part>_<field> }}`` (part cls/rts; field old, new, speedup), ``{{ train_<part>_<arch>_1t }}``
# (one job on one thread, old -> new), ``{{ train_verdict }}``, ``{{ train_idle }}``,
# ``{{ train_date }}``, ``{{ train_acc_<arch> }}`` and ``{{ train_compile_<arch> }}``, from
# results/bench_training.json (benchmarks/bench_training.py).
TRAIN_ARCHS = ("resnet", "densenet")


def training() -> dict[str, str]:
    rep = _load("bench_training.json")
    subs = {"train_date": rep.get("date", MISSING), "train_idle": MISSING, "train_verdict": MISSING}
    if rep.get("other_jobs_cores") is not None:
        subs["train_idle"] = f"{rep['other_jobs_cores']} of {rep.get('cpu_count', '?')} cores"
    if "speedup" in rep:
        subs["train_verdict"] = f"{rep['speedup']:.2f}x (≥ {rep['target']:g}: {_mark(rep['pass'])})"
    for part, key in (("cls", "classifier"), ("rts", "rts")):
        pair = rep.get(key, {}).get("pair", {})
        subs[f"train_{part}_old"] = f"{pair['old_images_per_s']:.0f}" if pair else MISSING
        subs[f"train_{part}_new"] = f"{pair['new_images_per_s']:.0f}" if pair else MISSING
        subs[f"train_{part}_speedup"] = f"{pair['speedup']:.2f}x" if pair else MISSING
        for arch in TRAIN_ARCHS:
            r = rep.get(key, {}).get("one_thread", {}).get(arch)
            subs[f"train_{part}_{arch}_1t"] = (
                f"{r['old_images_per_s']:.0f} → {r['new_images_per_s']:.0f} ({r['speedup']:.2f}x)"
                if r
                else MISSING
            )
    for arch in TRAIN_ARCHS:
        acc = rep.get("accuracy", {}).get(arch)
        subs[f"train_acc_{arch}"] = (
            f"{acc['old']['test_accuracy']:.4f} → {acc['new']['test_accuracy']:.4f}" if acc else MISSING
        )
        comp = {c["arch"]: c for c in rep.get("compile", [])}.get(arch)
        subs[f"train_compile_{arch}"] = _compile_text(comp) if comp else MISSING
    subs.update(_accuracy_noise(rep.get("accuracy", {})))
    return subs


def _compile_text(comp: dict) -> str:
    saved = comp["saved_seconds_at_quick"]
    return f"{comp['compile_seconds']:.0f} s to compile, then {abs(saved):.0f} s {'saved' if saved >= 0 else 'lost'}"


FASHION_MNIST_TEST_IMAGES = 10_000  # what bench_training.accuracy evaluates on (its n_test)


def _accuracy_noise(acc: dict) -> dict[str, str]:
    """``train_acc_noise``: the half-width of a 95 % interval for the difference of two test
    accuracies (old, new), each on ``n_test`` images (unpaired: conservative), the widest over the
    archs; ``train_acc_verdict``: whether every arch's difference lies within it."""
    if not acc:
        return {"train_acc_noise": MISSING, "train_acc_verdict": MISSING}
    width, outside = 0.0, []
    for arch, r in acc.items():
        n = r["new"].get("n_test", FASHION_MNIST_TEST_IMAGES)
        p_old, p_new = r["old"]["test_accuracy"], r["new"]["test_accuracy"]
        w = 1.96 * math.sqrt((p_old * (1 - p_old) + p_new * (1 - p_new)) / n)
        width = max(width, w)
        if abs(p_new - p_old) > w:
            outside.append(f"{arch} ({p_new - p_old:+.4f})")
    verdict = (
        "every difference lies within it, so the new code trains to the same accuracy as far as the test set can tell"
        if not outside
        else f"the difference is larger for {', '.join(outside)}"
    )
    return {"train_acc_noise": f"±{width:.4f}", "train_acc_verdict": verdict}


# ----------------------------------------------------------------------------- the laptop budget
def laptop() -> dict[str, str]:
    """``{{ laptop_* }}``: the published run's wall times (results/timings-<profile>.json, as every page)
    against the laptop budget (the targets are adv2.book.timings'), whether it started from an empty
    cache, and how idle the machine was. The whole book's time is the run's own wall time where a run
    of every notebook recorded it, else the sum of the chapters' times, said to be a sum."""
    import nbformat

    from adv2.book import timings  # the one source of run times (the run box and README read it too)

    book_minutes, chapter_minutes = timings.BOOK_TARGET_MINUTES, timings.CHAPTER_TARGET_MINUTES

    rows = []
    for path in sorted((ROOT / "book" / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        meta = nbformat.read(path, as_version=4).metadata
        facts = meta.get("adv2", {})
        profile = meta.get("papermill", {}).get("parameters", {}).get("profile", "?")
        recorded = timings.seconds_of(path.stem, profile, ROOT / "results")
        rows.append(
            (
                path.stem,
                recorded if recorded is not None else float(meta.get("papermill", {}).get("duration") or 0.0),
                profile,
                facts.get("models_cached_at_start"),
                facts.get("other_jobs_cores"),
                _run_of(meta.get("papermill", {})),
            )
        )
    targets = {
        "laptop_target": f"{book_minutes} minutes",
        "laptop_chapter_target": f"{chapter_minutes} minutes",
    }
    if not rows:
        return {
            **targets,
            **{
                k: MISSING
                for k in ("laptop_total", "laptop_slowest", "laptop_cache", "laptop_idle", "laptop_runs")
            },
        }
    stem, slowest = max(((r[0], r[1] / 60) for r in rows), key=lambda r: r[1])
    cached = rows[0][3]
    loads = sorted((r[4], r[0]) for r in rows if r[4] is not None)
    profiles = sorted({r[2] for r in rows})
    shown = ", ".join(f"`{p}`" for p in profiles)
    run = timings.whole_run(profiles[0], ROOT / "results") if len(profiles) == 1 else None
    if run is not None:
        total = run["wall_seconds"] / 60
        how = f"{total:.1f} min as one run at {shown}"
    else:
        total = sum(r[1] for r in rows) / 60
        how = f"{total:.1f} min at {shown}, the sum of the chapters' times"
    return {
        **targets,
        "laptop_total": f"{how} (≤ {book_minutes}: {_mark(total <= book_minutes)})",
        "laptop_slowest": f"{stem}, {slowest:.1f} min (≤ {chapter_minutes}: {_mark(slowest <= chapter_minutes)})",
        "laptop_cache": (
            MISSING
            if cached is None
            else "an empty cache"
            if cached == 0
            else f"a cache holding {cached} trained models"
        ),
        "laptop_idle": _idle(loads),
        "laptop_runs": _runs_text([r[5] for r in rows]),
    }


def _run_of(papermill: dict) -> tuple[str, str]:
    """(run folder, start time) of a published notebook: the folder its results went to."""
    folder = str(papermill.get("parameters", {}).get("results_dir") or "?")
    return folder.rsplit("/results", 1)[0], str(papermill.get("start_time") or "")


def _runs_text(runs: list[tuple[str, str]]) -> str:
    """One run, or how many the published chapters come from and when each began: a sum of
    chapters from several runs is not one run's wall time (a virtual machine's speed varies)."""
    first: dict[str, str] = {}
    for folder, started in runs:
        first[folder] = min(first[folder], started) if folder in first else started
    if len(first) == 1:
        return "one run"
    when = ", ".join(
        sorted(f"{t[:10]} {t[11:16]} UTC" if len(t) >= 16 else "an unknown time" for t in first.values())
    )
    return (
        f"{len(first)} runs (begun {when}), so the total adds up chapters timed at different moments "
        "on a machine whose speed varies, not one run's wall time"
    )


def _idle(loads: list[tuple[float, str]]) -> str:
    """Other jobs' CPU over the run: the most of any chapter, and the busiest chapter apart when it
    stands out (chapter 8's Ray workers are processes of their own, so the meter counts them)."""
    if not loads:
        return MISSING
    if len(loads) > 1 and loads[-1][0] > 0.25 and loads[-2][0] <= 0.25:
        return f"at most {loads[-2][0]:.2f} cores, except {loads[-1][0]:.2f} during {loads[-1][1]}"
    return f"at most {loads[-1][0]:.2f} cores"


# ``{{ alone_<NN> }}`` (one per chapter: minutes and PASS/FAIL) and ``{{ alone_summary }}`` (how
# many pass, when, how idle), from results/bench_alone.json (benchmarks/bench_alone.py).
CHAPTERS = ("01", "02", "03", "04", "05", "06", "07", "08")


def alone() -> dict[str, str]:
    rep = _load("bench_alone.json")
    runs = {stem[:2]: r for stem, r in rep.get("chapters", {}).items()}
    subs = {"alone_summary": "not measured yet (`python benchmarks/bench_alone.py` measures it)"}
    for nn in CHAPTERS:
        r = runs.get(nn)
        failed = "" if not r or r["returncode"] == 0 else f", exit code {r['returncode']}"
        if r and (r.get("other_jobs_cores") or 0) > 0.25:  # a busy machine slowed this chapter
            failed += f", other jobs {r['other_jobs_cores']:.2f} cores"
        subs[f"alone_{nn}"] = f"{r['seconds'] / 60:.1f} min{failed} ({_mark(r['pass'])})" if r else MISSING
    if runs:
        within = sum(r["pass"] for r in runs.values())
        idle = rep.get("other_jobs_cores")
        idle_text = MISSING if idle is None else f"{idle} of {rep.get('cpu_count', '?')} cores"
        subs["alone_summary"] = (
            f"{within} of {len(runs)} chapters within {rep['target_minutes']} minutes (measured "
            f"{rep.get('date', 'on an unknown date')}; other jobs used {idle_text} meanwhile, "
            "chapter 8's Ray workers among them)"
        )
    return subs


def add_substitutions(app, config) -> None:
    config.myst_substitutions = {
        **step_costs(),
        **convergence(),
        **gpu(),
        **training(),
        **laptop(),
        **alone(),
        **(config.myst_substitutions or {}),
    }


def setup(app):
    app.connect("config-inited", add_substitutions, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
