"""Execute the book's notebooks with papermill, in order, under a profile.

    python -m adv2 run all                      # every notebook, profile auto (paper on GPU, else quick)
    python -m adv2 run 01 03 --profile smoke    # some notebooks (by number or stem prefix)
    python -m adv2 run 03 -p epsilon 0.016 -p archs '[resnet]'
    python -m adv2 list                         # notebooks and their parameters

Executed copies go to ``book/notebooks/`` (what the book renders) unless ``--output-dir`` says
otherwise; each notebook writes ``results/<stem>.json`` itself. The run stops at the first failing
notebook and names it, the cell and the error. Wall times go to ``<results_dir>/timings-<profile>.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import yaml

from .config import PROFILES, REPO_ROOT, ParameterError, load_profile, validate
from .progress import QUIET_ENV

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
BOOK_NOTEBOOKS_DIR = REPO_ROOT / "book" / "notebooks"


class RunError(RuntimeError):
    """A notebook failed, or the request named something that does not exist."""


def all_notebooks() -> list[Path]:
    return sorted(p for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def select_notebooks(names: Sequence[str]) -> list[Path]:
    notebooks = all_notebooks()
    if not names or list(names) == ["all"]:
        return notebooks
    chosen = []
    for name in names:
        matches = [p for p in notebooks if p.stem == name or p.stem.startswith(name)]
        if not matches:
            raise RunError(f"no notebook matches {name!r}; valid choices: "
                           + ", ".join(p.stem for p in notebooks) + ", all")
        chosen.extend(m for m in matches if m not in chosen)
    return sorted(chosen)


def resolve_profile(profile: str) -> str:
    if profile == "auto":
        import torch

        return "paper" if torch.cuda.is_available() else "quick"
    validate({"profile": profile})
    return profile


def declared_parameters(notebook: Path) -> dict[str, dict[str, Any]]:
    import papermill

    return papermill.inspect_notebook(str(notebook))


def parse_overrides(pairs: Sequence[Sequence[str]]) -> dict[str, Any]:
    """``-p name value`` pairs; values are read as YAML so numbers, lists and booleans work."""
    return {name: yaml.safe_load(value) for name, value in pairs}


def notebook_parameters(notebook: Path, profile: str, overrides: dict[str, Any],
                        results_dir: str | None) -> dict[str, Any]:
    """Profile values for this notebook + overrides, restricted to what the notebook declares."""
    declared = declared_parameters(notebook)
    overrides = dict(overrides)
    if "arch" in overrides and "arch" not in declared and "archs" in declared:
        # `-p arch densenet` is shorthand for `-p archs [densenet]` in notebooks that loop over archs
        validate({"arch": overrides["arch"]})
        overrides["archs"] = [overrides.pop("arch")]
    for name, value in overrides.items():
        # YAML reads `-p map_class true` as a boolean: a text parameter gets the text back
        if declared.get(name, {}).get("inferred_type_name") == "str" and isinstance(value, (bool, int, float)):
            overrides[name] = str(value).lower() if isinstance(value, bool) else str(value)
    unknown = [k for k in overrides if k not in declared]
    if unknown:
        raise ParameterError(f"notebook {notebook.stem} has no parameter "
                             + ", ".join(repr(k) for k in unknown)
                             + "; valid parameters: " + ", ".join(sorted(declared)))
    params = {k: v for k, v in load_profile(profile, notebook.stem).items() if k in declared}
    params.update(overrides)
    if results_dir is not None and "results_dir" in declared:
        params["results_dir"] = results_dir
    validate(params)  # fail in seconds, before a kernel starts
    return params


def run_notebook(notebook: Path, params: dict[str, Any], output_dir: Path,
                 progress: bool = True) -> float:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    output_dir.mkdir(parents=True, exist_ok=True)
    out = output_dir / notebook.name
    started = time.time()
    # the kernel inherits this: no progress widgets in the executed copies the book renders
    previous = os.environ.get(QUIET_ENV)
    os.environ[QUIET_ENV] = "1"
    try:
        papermill.execute_notebook(str(notebook), str(out), parameters=params, cwd=str(REPO_ROOT),
                                   progress_bar=progress, kernel_name="python3",
                                   report_mode=False)
    except PapermillExecutionError as err:
        raise RunError(f"notebook {notebook.stem} failed in cell {err.cell_index} "
                       f"(execution count {err.exec_count}): {err.ename}: {err.evalue}\n"
                       f"executed copy with the traceback: {out}") from None
    finally:
        if previous is None:
            os.environ.pop(QUIET_ENV, None)
        else:
            os.environ[QUIET_ENV] = previous
    return time.time() - started


def run(names: Sequence[str], profile: str = "auto", overrides: dict[str, Any] | None = None,
        output_dir: str | Path | None = None, results_dir: str | None = None,
        progress: bool = True) -> dict[str, float]:
    profile = resolve_profile(profile)
    notebooks = select_notebooks(names)
    overrides = dict(overrides or {})
    # check every notebook's parameters before running the first, so a typo fails at once
    plan = []
    for nb in notebooks:
        declared = declared_parameters(nb)
        ok = {k: v for k, v in overrides.items()
              if k in declared or (k == "arch" and "archs" in declared)}
        if len(notebooks) == 1:
            ok = overrides  # a single notebook must know every override
        plan.append((nb, notebook_parameters(nb, profile, ok, results_dir)))
    if len(notebooks) > 1:
        known = set().union(*(declared_parameters(nb) for nb in notebooks)) | {"arch"}
        unknown = [k for k in overrides if k not in known]
        if unknown:
            raise ParameterError("no selected notebook has parameter "
                                 + ", ".join(repr(k) for k in unknown))
    out_dir = Path(output_dir) if output_dir else BOOK_NOTEBOOKS_DIR
    timings: dict[str, float] = {}
    for nb, params in plan:
        print(f"[adv2] {nb.stem}: profile {profile}, "
              + " ".join(f"{k}={v!r}" for k, v in sorted(params.items())), flush=True)
        cached_before = count_cached_artifacts(params.get("artifacts_dir"))
        busy_before, own_before = _busy_cpu_seconds(), _own_cpu_seconds()
        timings[nb.stem] = round(run_notebook(nb, params, out_dir, progress), 1)
        others = None  # cores' worth of CPU that other jobs used meanwhile: they slow the chapter
        if busy_before is not None:
            others = max(0.0, (_busy_cpu_seconds() - busy_before)
                         - (_own_cpu_seconds() - own_before)) / max(timings[nb.stem], 1e-9)
        _record_run_facts(out_dir / nb.name, cached_before,
                          count_cached_artifacts(params.get("artifacts_dir")), others)
        print(f"[adv2] {nb.stem}: done in {timings[nb.stem]:.0f} s", flush=True)
        _record_timings(profile, timings, results_dir)
    if out_dir.resolve() == BOOK_NOTEBOOKS_DIR.resolve():
        write_run_info(profile, results_dir)
    return timings


def count_cached_artifacts(root: str | None) -> int:
    """Trained models (classifiers, RTS, RTSA) in the cache: the run box says which chapter trained
    what, since a chapter's wall time depends on whether its models were already cached."""
    from .artifacts import artifact_root

    return sum(1 for _ in artifact_root(root).glob("*/*/metrics.json"))


def _busy_cpu_seconds() -> float | None:
    """CPU seconds all processes have used since boot (Linux), None elsewhere."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    """This process and its finished children (the notebook's kernel)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _record_run_facts(executed: Path, before: int, after: int, others: float | None) -> None:
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    nb.metadata["adv2"] = {"models_trained": after - before, "models_cached_at_start": before,
                           "other_jobs_cores": None if others is None else round(others, 2)}
    nbformat.write(nb, executed)


def _record_timings(profile: str, timings: dict[str, float], results_dir: str | None) -> None:
    from .results import DEFAULT_RESULTS_DIR, environment

    folder = Path(results_dir) if results_dir else DEFAULT_RESULTS_DIR
    if not folder.is_absolute():
        folder = REPO_ROOT / folder
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"timings-{profile}.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    old.setdefault("seconds", {}).update(timings)
    old["environment"] = environment()
    path.write_text(json.dumps(old, indent=2, sort_keys=True))


RUN_INFO = REPO_ROOT / "book" / "_run_info.md"


def write_run_info(profile: str | None = None, results_dir: str | None = None) -> Path:
    """The front page's box naming the run the book shows, read from the executed notebooks
    themselves (papermill records their parameters and duration): profile, hardware, date and
    wall time of every chapter. ``profile``/``results_dir`` are accepted for the caller's
    convenience; the notebooks are the source of truth."""

    import nbformat

    from .results import environment

    rows, profiles, devices, smoke_stems, others, total = [], set(), set(), [], [], 0.0
    for nb_path in sorted(BOOK_NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")):
        metadata = nbformat.read(nb_path, as_version=4).metadata
        meta = metadata.get("papermill", {})
        trained = metadata.get("adv2", {}).get("models_trained", "?")
        others.append(metadata.get("adv2", {}).get("other_jobs_cores"))
        prof = meta.get("parameters", {}).get("profile", "?")
        seconds = float(meta.get("duration") or 0.0)
        date = (meta.get("end_time") or "")[:10]
        profiles.add(prof)
        if prof == "smoke":
            smoke_stems.append(nb_path.stem)
        total += seconds
        result = REPO_ROOT / "results" / f"{nb_path.stem}.json"
        if result.is_file():
            devices.add(json.loads(result.read_text())["environment"]["device"])
        rows.append(f"| {nb_path.stem} | `{prof}` | {seconds / 60:.1f} min | {trained} | {date} |")
    env = environment()
    devices = devices or {env["device"]}
    hardware = ", ".join(d if d != "cpu" else f"CPU only ({os.cpu_count()} cores)" for d in sorted(devices))
    shown = ", ".join(f"`{p}`" for p in sorted(profiles))
    caveat = ("" if profiles == {"paper"} else
              "\n\nNo GPU run of the `paper` profile has been recorded yet, so this book shows "
              "CPU runs with budgets far below the paper's (fewer images, attack steps and training "
              "epochs); a `paper` run replaces them as soon as one exists. Each chapter says where "
              "the smaller budgets matter.")
    busiest = max((x for x in others if x is not None), default=None)
    if busiest is None:
        caveat += ("\n\nWhether other jobs shared the machine during the run was not recorded; "
                   "if they did, the wall times overstate what free cores need.")
    elif busiest > 0.25:
        caveat += (f"\n\nOther jobs shared the machine during some chapters (up to {busiest:.1f} "
                   "cores' worth of CPU), so their wall times overstate what free cores need.")
    else:
        caveat += ("\n\nThe machine was otherwise idle during the run (other jobs used at most "
                   f"{busiest:.2f} cores' worth of CPU).")
    if smoke_stems:
        caveat += ("\n\n**" + ", ".join(smoke_stems) + " show the `smoke` profile** (the test "
                   "budget: tiny classifiers, a handful of images and attack steps), so their numbers "
                   "only illustrate the method; re-run them with `python -m adv2 run` at `quick` or "
                   "`paper` for results to compare with the paper.")
    text = (f"```{{admonition}} The run this book shows\n"
            f"Profile(s) {shown} on {hardware}; adv2 {env['adv2']}, torch {env['torch']}, "
            f"Python {env['python']}.\n\n"
            f"| notebook | profile | wall time | models trained | date |\n|---|---|---|---|---|\n"
            + "\n".join(rows) + f"\n| **total** | | **{total / 60:.1f} min** | | |\n\n"
            "*Models trained* counts the classifiers, RTS and RTSA networks a chapter trained; the "
            "others came from the cache (`artifacts/`) that earlier chapters filled, so a chapter "
            f"re-run on its own with a warm cache is faster.{caveat}\n```\n")
    RUN_INFO.write_text(text)
    return RUN_INFO


def list_notebooks() -> None:
    for nb in all_notebooks():
        print(nb.stem)
        for name, spec in declared_parameters(nb).items():
            print(f"    {name}: {spec.get('inferred_type_name', '')} = {spec.get('default')}"
                  f"    # {spec.get('help', '')}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adv2", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute notebooks with papermill")
    p_run.add_argument("notebooks", nargs="*", default=["all"],
                       help="numbers or stems (01, 02_interpreters, ...) or 'all'")
    p_run.add_argument("--profile", default="auto", choices=("auto",) + PROFILES)
    p_run.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                       metavar=("NAME", "VALUE"), help="override one parameter (YAML value)")
    p_run.add_argument("--output-dir", default=None,
                       help="where executed notebooks go (default book/notebooks)")
    p_run.add_argument("--results-dir", default=None, help="where results/*.json go")
    p_run.add_argument("--no-progress", action="store_true")
    sub.add_parser("list", help="list notebooks and their parameters")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            list_notebooks()
            return 0
        run(args.notebooks, args.profile, parse_overrides(args.parameter), args.output_dir,
            args.results_dir, progress=not args.no_progress)
    except (RunError, ParameterError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
