"""Each chapter run alone from an empty model cache (issue 13, item 4: at most 5 minutes each).

    python benchmarks/bench_alone.py                     # every chapter at quick (about half an hour)
    python benchmarks/bench_alone.py --chapters 03 08    # some of them
    python benchmarks/bench_alone.py --profile smoke --output /tmp/alone.json

A chapter run alone trains every model it needs that is not committed (the classifiers, the
Fashion-MNIST RTS and RTSA; the photo RTS and RTSA are checkpoints in ``checkpoints/``), so each
one gets an empty cache folder of its own (``-p artifacts_dir``) and a run folder of its own,
deleted afterwards; chapter 8 also gets a sweep of its own (``-p sweep_name``), so no finished
point is reused. Each is ``python -m adv2 run <chapter>`` in a fresh process, timed from start to
exit: what a reader who runs only that chapter waits. Nothing is published.

Writes ``results/bench_alone.json``, the detailed report: per chapter ``seconds``, ``returncode``
and ``pass`` (finished within ``target_minutes``), with ``other_jobs_cores`` (how idle the machine
was; chapter 8's Ray workers count as other jobs). :mod:`bench_report` prints it and the
Performance page shows it. The finished chapters' times also go into the ``alone`` entry of
``timings-<profile>.json`` beside it (``results/``, or ``--output``'s folder; other keys kept,
atomic): the one file the README, the run box and the teaching page read their times from
(:mod:`adv2.book.timings`). Both are rewritten after every chapter, for this invocation's chapters.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))

from adv2.book import runbox, timings  # noqa: E402
from adv2.book.execute import RunError  # noqa: E402
from adv2.book.runner import all_notebooks, select_notebooks  # noqa: E402

TARGET_MINUTES = timings.CHAPTER_TARGET_MINUTES
SWEEP_CHAPTER = "08_scaling"


def run_alone(stem: str, profile: str, scratch: Path) -> dict:
    """Run chapter ``stem`` alone from an empty cache in ``scratch``; its wall time and exit code."""
    cmd = [
        sys.executable, "-m", "adv2", "run", stem, "--profile", profile, "--no-progress",
        "-p", "artifacts_dir", str(scratch / "artifacts"), "--output-dir", str(scratch / "run"),
    ]  # fmt: skip
    sweep = None
    if stem == SWEEP_CHAPTER:
        sweep = f"alone-{scratch.name}"
        cmd += ["-p", "sweep_name", sweep]
    log = scratch / "log.txt"
    started = time.perf_counter()
    with open(log, "w") as out:
        rc = subprocess.run(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - started
    if sweep:
        shutil.rmtree(REPO / "runs" / "sweeps" / sweep, ignore_errors=True)
    tail = log.read_text().splitlines()[-5:] if rc else []
    return {
        "seconds": seconds,
        "returncode": rc,
        "pass": rc == 0 and seconds <= 60 * TARGET_MINUTES,
        **where_the_time_went(scratch / "run", stem),
        "log_tail": tail,
    }


def where_the_time_went(run: Path, stem: str) -> dict:
    """The notebook's own time (papermill's; the rest is starting Python and the kernel), its three
    slowest cells and the models it trained, from the run folder (before it is deleted)."""
    import nbformat

    out: dict = {}
    path = run / f"{stem}.ipynb"
    if path.is_file():
        nb = nbformat.read(path, as_version=4)
        out["notebook_seconds"] = nb.metadata.get("papermill", {}).get("duration")
        cells = [
            (c.metadata.get("papermill", {}).get("duration") or 0.0, c.source.split("\n")[0][:70])
            for c in nb.cells
            if c.cell_type == "code"
        ]
        out["slowest_cells"] = [
            {"seconds": d, "first_line": line} for d, line in sorted(cells, reverse=True)[:3]
        ]
    record = run / "run.json"
    if record.is_file():
        out["models_trained"] = (
            json.loads(record.read_text()).get("notebooks", {}).get(stem, {}).get("models_trained")
        )
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    stems = [p.stem for p in all_notebooks()]
    profiles = sorted(p.stem for p in (REPO / "params").glob("*.yaml"))
    parser.add_argument("--profile", default="quick", choices=profiles)
    parser.add_argument("--chapters", nargs="+", default=["all"], help="numbers or stems (default: all)")
    parser.add_argument("--output", default=str(REPO / "results" / "bench_alone.json"))
    args = parser.parse_args(argv)
    try:  # a wrong name stops here, before any chapter runs
        chosen = [p.stem for p in select_notebooks(args.chapters)]
    except RunError as err:
        parser.error(str(err))
    report = {
        "profile": args.profile,
        "target_minutes": TARGET_MINUTES,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "cpu_count": os.cpu_count(),
        "chapters": {},
    }
    meter = runbox.CpuMeter()
    t0 = time.time()
    out = Path(args.output)
    for stem in chosen:
        scratch = Path(tempfile.mkdtemp(prefix=f"adv2-alone-{stem[:2]}-"))
        chapter_meter = runbox.CpuMeter()  # other jobs during this chapter: they slow it
        try:
            r = run_alone(stem, args.profile, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        r["other_jobs_cores"] = chapter_meter.other_jobs_cores(r["seconds"])
        report["chapters"][stem] = r
        mark = "PASS" if r["pass"] else "FAIL"
        status = "" if r["returncode"] == 0 else f", exit code {r['returncode']}"
        if r.get("notebook_seconds") is not None:
            status += (
                f" (the notebook {r['notebook_seconds']:.0f} s, {r.get('models_trained')} models trained)"
            )
        print(
            f"{stem} alone from an empty cache: {r['seconds'] / 60:.2f} min{status} (target <= {TARGET_MINUTES}) {mark}",
            flush=True,
        )
        # after every chapter: an interrupted run keeps the chapters it finished
        report["seconds"] = time.time() - t0
        report["other_jobs_cores"] = meter.other_jobs_cores(report["seconds"])
        report["complete"] = set(report["chapters"]) == set(stems)
        write(report, out)
        timings.merge_alone(timings.path_of(args.profile, out.parent), alone_entry(report))
    print(f"other jobs used {report['other_jobs_cores']} of {os.cpu_count()} cores meanwhile")
    print(f"wrote {out}")
    return report


def alone_entry(report: dict) -> dict:
    """The timings file's ``alone`` entry: the finished chapters' seconds (a failed chapter's time
    is not a time to show), the chapters that did not finish, the date, the target and how idle the
    machine was."""
    chapters = report["chapters"]
    return {
        "seconds": {stem: round(r["seconds"], 1) for stem, r in chapters.items() if r["returncode"] == 0},
        "failed": sorted(stem for stem, r in chapters.items() if r["returncode"] != 0),
        "date": report["date"],
        "target_minutes": report["target_minutes"],
        "other_jobs_cores": report.get("other_jobs_cores"),
        "cpu_count": report.get("cpu_count"),
    }


def write(report: dict, out: Path) -> None:
    """``report`` as JSON at ``out``, whole or not at all (written aside, then renamed)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(out)


if __name__ == "__main__":
    main()
