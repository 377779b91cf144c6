"""A run of the book: which notebooks, with which parameters (checked before a kernel starts),
into which run folder; then each executed in turn (:mod:`adv2.book.execute`).

A run never touches the published book. It writes into its own run folder,
``runs/<UTC time>-<profile>-<notebook numbers>/`` (or ``--output-dir``): the executed notebooks,
``results/`` (each notebook's ``<stem>.json`` and ``timings-<profile>.json``) and ``run.json``
(:mod:`adv2.book.runrecord`). Only ``publish`` (or ``run --publish``, what ``make book`` uses)
replaces ``book/notebooks/``, ``results/`` and the front page's run box, and only for a run whose
every notebook finished. ``--output-dir`` never points a run at a folder that holds a finished run
(or one still going). The repository (where ``runs/``, the book and the model cache are) is the
working tree the command runs in (:func:`adv2.core.config.find_repo_root`), not where the package
is installed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adv2.book import publish as publishing
from adv2.book import runplan, timings
from adv2.book.execute import RunError, RunInterrupted, execute_notebook, sigterm_interrupts
from adv2.book.paths import (
    BOOK_NOTEBOOKS_DIR,
    NOTEBOOKS_DIR,
    PUBLISHED_RESULTS_DIR,
    is_within,
    runs_root,
    shown_path,
)
from adv2.book.runbox import CpuMeter, count_models
from adv2.book.runrecord import RunRecord, utc_now
from adv2.chapters import schema
from adv2.chapters.results import environment
from adv2.core.config import (
    AUTO_PROFILE_CPU,
    AUTO_PROFILE_GPU,
    REPO_ROOT,
    ParameterError,
    load_profile,
    parse_yaml_value,
    validate,
)
from adv2.trained.files import atomic_write_text, file_sha256

ARTIFACTS_ENV = "ADV2_ARTIFACTS"


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
            raise RunError(
                f"no notebook matches {name!r}; valid choices: "
                + ", ".join(p.stem for p in notebooks)
                + ", all"
            )
        chosen.extend(m for m in matches if m not in chosen)
    return sorted(chosen)


def resolve_profile(profile: str) -> str:
    """``auto``: :data:`~adv2.core.config.AUTO_PROFILE_GPU` with CUDA, else
    :data:`~adv2.core.config.AUTO_PROFILE_CPU`; any other name is checked against the profiles."""
    if profile == "auto":
        import torch

        return AUTO_PROFILE_GPU if torch.cuda.is_available() else AUTO_PROFILE_CPU
    validate({"profile": profile})
    return profile


_DECLARED: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}


def declared_parameters(notebook: Path) -> dict[str, dict[str, Any]]:
    """The notebook's parameters: the library's schema for the book's chapters (a test keeps the
    notebooks' parameter cells equal to it), papermill's reading of the cell for any other one."""
    if notebook.stem in schema.STEMS:
        return {
            name: {"inferred_type_name": p.type.__name__, "default": p.default, "help": p.doc}
            for name, p in schema.chapter_schema(notebook.stem).items()
        }
    key = (str(notebook), notebook.stat().st_mtime_ns)
    if key not in _DECLARED:  # papermill parses the notebook each time: cache per file version
        import papermill

        _DECLARED[key] = papermill.inspect_notebook(str(notebook))
    return _DECLARED[key]


def values_with_defaults(notebook: Path, params: dict[str, Any]) -> dict[str, Any]:
    """What the notebook runs with: ``params`` (what papermill injects) over its declared defaults."""
    values = {name: spec.get("default") for name, spec in declared_parameters(notebook).items()}
    values.update(params)
    return values


def parse_overrides(pairs: Sequence[Sequence[str]]) -> dict[str, Any]:
    """``-p name value`` pairs; values are read as YAML so numbers, lists and booleans work."""
    return {name: parse_yaml_value(name, value) for name, value in pairs}


def validate_parameters(notebook: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Check one notebook's complete parameter set before its kernel starts (raises
    :class:`ParameterError` naming the parameter, the value and the valid choices).
    The single place where the runner's validation rules come in: the chapter's schema."""
    if notebook.stem in schema.STEMS:
        return schema.validate_chapter(notebook.stem, params)
    return validate(params)


def notebook_parameters(
    notebook: Path, profile: str, overrides: dict[str, Any], results_dir: str | None
) -> dict[str, Any]:
    """Profile values for this notebook + overrides, restricted to what the notebook declares."""
    declared = declared_parameters(notebook)
    overrides = dict(overrides)
    if "arch" in overrides and "arch" not in declared and "archs" in declared:
        # `-p arch densenet` is shorthand for `-p archs [densenet]` in notebooks that loop over archs
        validate({"arch": overrides["arch"]})
        overrides["archs"] = [overrides.pop("arch")]
    for name, value in overrides.items():
        # YAML reads `-p map_class true` as a boolean: a text parameter gets the text back
        is_text = declared.get(name, {}).get("inferred_type_name") == "str"
        if is_text and isinstance(value, (bool, int, float)):
            overrides[name] = str(value).lower() if isinstance(value, bool) else str(value)
    unknown = [k for k in overrides if k not in declared]
    if unknown:
        if notebook.stem in schema.STEMS:  # the same message as the notebook's own first cell
            raise schema.unknown_parameters_error(notebook.stem, unknown)
        raise ParameterError(
            f"notebook {notebook.stem} has no parameter "
            + ", ".join(repr(k) for k in unknown)
            + "; valid parameters: "
            + ", ".join(sorted(declared))
        )
    params = {k: v for k, v in load_profile(profile, notebook.stem).items() if k in declared}
    if os.environ.get(ARTIFACTS_ENV) and "artifacts_dir" in declared:
        params["artifacts_dir"] = os.environ[ARTIFACTS_ENV]  # the cache the user chose; -p still wins
    params.update(overrides)
    if results_dir is not None and "results_dir" in declared:
        params["results_dir"] = results_dir
    return validate_parameters(notebook, params)  # fail in seconds, before a kernel starts


def plan_run(
    notebooks: Sequence[Path], profile: str, overrides: dict[str, Any], results_dir: str | None
) -> list[tuple[Path, dict[str, Any]]]:
    """Every notebook's parameters, checked before the first one runs, so a typo fails at once."""
    plan = []
    for nb in notebooks:
        declared = declared_parameters(nb)
        ok = {k: v for k, v in overrides.items() if k in declared or (k == "arch" and "archs" in declared)}
        if len(notebooks) == 1:
            ok = overrides  # a single notebook must know every override
        plan.append((nb, notebook_parameters(nb, profile, ok, results_dir)))
    if len(notebooks) > 1:
        known = set().union(*(declared_parameters(nb) for nb in notebooks)) | {"arch"}
        unknown = [k for k in overrides if k not in known]
        if unknown:
            raise ParameterError("no selected notebook has parameter " + ", ".join(repr(k) for k in unknown))
    check_folders(plan)
    return plan


INPUT_FOLDERS = ("imagenet_dir", "imagenette_dir", "data_dir")  # read by the notebook: must exist


def check_folders(plan: Sequence[tuple[Path, dict[str, Any]]]) -> None:
    """The folders the parameters name, checked before a kernel starts (relative paths resolve in
    the repository, where the kernels run): a folder a notebook reads must exist, the model
    cache's parent must exist (the cache folder itself is made when missing)."""
    for nb, params in plan:
        for name, value in params.items():
            if not isinstance(value, str) or not value:
                continue
            path = Path(value) if Path(value).is_absolute() else REPO_ROOT / value
            if name in INPUT_FOLDERS and not path.is_dir():
                raise ParameterError(
                    f"parameter {name!r} has value {value!r}, but {path} is not an existing folder "
                    f"({nb.stem} reads it)"
                )
            if name == "artifacts_dir" and not path.parent.is_dir():
                raise ParameterError(
                    f"parameter 'artifacts_dir' has value {value!r}, but its parent folder "
                    f"{path.parent} does not exist (the cache folder itself is made when missing)"
                )


def device_note(profile: str) -> str:
    """Where the notebooks (``device: auto``) will run, for the run's first lines: the GPU and its
    precision, or the CPU, with a warning when the ``paper`` profile (GPU budgets) has no GPU."""
    # torch (and adv2.core.precision, which imports it) only here: planning and --check stay light
    import torch

    from adv2.core.precision import autocast_dtype

    if torch.cuda.is_available():
        dtype = autocast_dtype("cuda")
        how = "bf16 autocast forwards, fp32 losses and metrics" if dtype is not None else "fp32"
        return f"CUDA ({torch.cuda.get_device_name(0)}; {how})"
    note = "CPU (no CUDA device)"
    if profile == "paper":
        note += "; warning: the paper profile's budgets are meant for a GPU and take days on a CPU"
    return note


# ----------------------------------------------------------------------------- run folders
def default_run_dir(profile: str, notebooks: Sequence[Path]) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    numbers = "-".join(nb.stem.split("_")[0] for nb in notebooks)
    base = runs_root() / f"{stamp}-{profile}-{numbers}"
    path, n = base, 1
    while path.exists():  # two runs in the same second get their own folders
        n += 1
        path = base.with_name(f"{base.name}.{n}")
    return path


def resolve_folders(
    profile: str, notebooks: Sequence[Path], output_dir: str | Path | None, results_dir: str | Path | None
) -> tuple[Path, Path]:
    """(run folder, results folder): results go to ``<run>/results`` in a default run folder and
    beside the notebooks with ``--output-dir``, unless ``--results-dir`` says otherwise."""
    run_dir = Path(output_dir) if output_dir else default_run_dir(profile, notebooks)
    if not run_dir.is_absolute():
        run_dir = Path.cwd() / run_dir
    results = Path(results_dir) if results_dir else (run_dir if output_dir else run_dir / "results")
    if not results.is_absolute():
        results = Path.cwd() / results
    for path, what in ((run_dir, "--output-dir"), (results, "--results-dir")):
        for published in (BOOK_NOTEBOOKS_DIR, PUBLISHED_RESULTS_DIR):
            if is_within(path, published):
                raise RunError(
                    f"{what} {path} is inside the published book ({shown_path(published)}); "
                    "runs write to their own folder and `python -m adv2 publish RUN_DIR` "
                    "(or `run --publish`) replaces the published copies"
                )
    if output_dir and run_dir.is_dir() and (why := publishing.finished_run_in(run_dir)) is not None:
        # refused rather than moved to a new sub-folder: the run goes where the user said or not at all
        raise RunError(
            f"--output-dir {shown_path(run_dir)} already holds a run: {why}. A run never overwrites "
            "another: choose a new folder (or leave --output-dir out for a fresh runs/<time>-... "
            "folder), or delete that folder first"
        )
    return run_dir, results


def _record_run_facts(executed: Path, facts: dict[str, Any]) -> None:
    import nbformat  # lazy: nbformat loads jsonschema (seconds); the command line starts without it

    nb = nbformat.read(executed, as_version=4)
    nb.metadata["adv2"] = facts
    atomic_write_text(executed, nbformat.writes(nb))


def _planned(
    names: Sequence[str],
    profile: str,
    overrides: dict[str, Any] | None,
    output_dir: str | Path | None,
    results_dir: str | Path | None,
) -> tuple[str, Path, Path, list[tuple[Path, dict[str, Any]]]]:
    """(profile, run folder, results folder, plan) of a run, every parameter checked."""
    profile = resolve_profile(profile)
    notebooks = select_notebooks(names)
    overrides = dict(overrides or {})
    results_dir = overrides.pop("results_dir", None) or results_dir  # -p results_dir = --results-dir
    run_dir, results = resolve_folders(profile, notebooks, output_dir, results_dir)
    return profile, run_dir, results, plan_run(notebooks, profile, overrides, shown_path(results))


def check(
    names: Sequence[str],
    profile: str = "auto",
    overrides: dict[str, Any] | None = None,
    output_dir: str | Path | None = None,
    results_dir: str | Path | None = None,
) -> list:
    """Validate everything and print the plan; start no kernel and write nothing."""
    profile, run_dir, results, plan = _planned(names, profile, overrides, output_dir, results_dir)
    print(f"[adv2] check: {len(plan)} notebook(s) at profile {profile}, parameters valid")
    summaries = {}
    for nb, params in plan:
        changed = {
            k: v
            for k, v in params.items()
            if k not in ("results_dir", "artifacts_dir", "profile")
            and load_profile(profile, nb.stem).get(k, object()) != v
        }
        summaries[nb.stem] = (
            ", ".join(f"{k}={v!r}" for k, v in sorted(changed.items())) or "the profile's values"
        )
    full_plan = [(nb, values_with_defaults(nb, params)) for nb, params in plan]
    for line in runplan.plan_lines(profile, full_plan, summaries, device_note(profile)):
        print(line)
    print(f"  would write to {shown_path(run_dir)} (results: {shown_path(results)}); nothing ran")
    return plan


# duplicates (boilerplate): run takes check's parameters (check validates what run would do;
# listed in lib/adv2/README.md)
def run(
    names: Sequence[str],
    profile: str = "auto",
    overrides: dict[str, Any] | None = None,
    output_dir: str | Path | None = None,
    results_dir: str | Path | None = None,
    progress: bool = True,
    publish: bool = False,
    argv: Sequence[str] | None = None,
) -> Path:
    """Execute the notebooks into a run folder and return it; with ``publish``, publish it if it
    finished. Raises RunError (a notebook failed), RunInterrupted (Ctrl-C / SIGTERM).

    ``run.json`` records the run's own wall time, from here (planning included) to the last
    notebook's end, kernel starts included and publishing not, and whether the run executed every
    notebook of the book: publishing keeps the wall time of such a whole run only."""
    clock, run_meter = time.time(), CpuMeter()
    profile, run_dir, results, plan = _planned(names, profile, overrides, output_dir, results_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    for nb, _ in plan:  # a reused folder: no earlier run's copy may pass for this run's
        kinds = ("", ".running", ".failed", ".interrupted")
        for old in (*(run_dir / f"{nb.stem}{kind}.ipynb" for kind in kinds), results / f"{nb.stem}.json"):
            old.unlink(missing_ok=True)
    whole_book = {nb.stem for nb, _ in plan} == {nb.stem for nb in all_notebooks()}
    record = RunRecord(run_dir, results, profile, plan, argv, whole_book=whole_book)
    print(f"[adv2] run folder: {shown_path(run_dir)} (the published book is not touched)", flush=True)
    print(f"[adv2] device: {device_note(profile)} (profile {profile})", flush=True)
    current = None
    try:
        with sigterm_interrupts():
            for nb, params in plan:
                current = nb.stem
                print(
                    f"[adv2] {nb.stem}: profile {profile}, "
                    + " ".join(f"{k}={v!r}" for k, v in sorted(params.items())),
                    flush=True,
                )
                record.notebook(nb.stem, status="running", started=utc_now())
                cached_before, trained_before = count_models(params.get("artifacts_dir"))
                meter, started = CpuMeter(), time.time()
                try:
                    execute_notebook(nb, params, run_dir, progress)
                except RunError as err:
                    record.try_notebook(
                        nb.stem, status="failed", error=str(err), seconds=round(time.time() - started, 1)
                    )
                    raise
                seconds = round(time.time() - started, 1)
                facts = {
                    "models_trained": count_models(params.get("artifacts_dir"))[1] - trained_before,
                    "models_cached_at_start": cached_before,
                    "other_jobs_cores": meter.other_jobs_cores(seconds),
                }
                _record_run_facts(run_dir / f"{nb.stem}.ipynb", facts)
                # what publish checks: the copies it publishes are the ones this run wrote, not
                # files another run has since written into a shared --results-dir
                result = results / f"{nb.stem}.json"
                hashes = {
                    "notebook_sha256": file_sha256(run_dir / f"{nb.stem}.ipynb"),
                    "results_sha256": file_sha256(result) if result.is_file() else None,
                }
                record.notebook(nb.stem, status="ok", seconds=seconds, **facts, **hashes)
                publishing.merge_timings(timings.path_of(profile, results), {nb.stem: seconds}, environment())
                print(f"[adv2] {nb.stem}: done in {seconds:.0f} s", flush=True)
                current = None
    except RunInterrupted as err:
        _mark_stopped(record, current, "interrupted", str(err) or "interrupted")
        raise
    except KeyboardInterrupt:
        _mark_stopped(record, current, "interrupted", "Ctrl-C")
        raise RunInterrupted() from None
    except RunError:
        _mark_stopped(record, None, "failed", None)
        raise
    except OSError as err:  # the disk filled up between notebooks, ...
        message = f"the run stopped: {publishing.describe_os_error(err)}"
        _mark_stopped(record, current, "failed", message)
        raise RunError(message) from None
    except BaseException as err:
        _mark_stopped(record, current, "failed", f"{type(err).__name__}: {err}")
        raise
    wall = round(time.time() - clock, 1)
    record.finish("ok", wall_seconds=wall, other_jobs_cores=run_meter.other_jobs_cores(wall))
    print(
        f"[adv2] all {len(plan)} notebook(s) finished in {wall / 60:.1f} min; run folder: "
        f"{shown_path(run_dir)}",
        flush=True,
    )
    if publish:
        publish_run(run_dir)
    else:
        print(
            f"[adv2] to make it the published book: python -m adv2 publish {shown_path(run_dir)}"
            " && make html",
            flush=True,
        )
    return run_dir


def _mark_stopped(record: RunRecord, stem: str | None, status: str, error: str | None) -> None:
    if stem is not None and record.data["notebooks"][stem]["status"] in ("running", "pending"):
        record.data["notebooks"][stem].update(status=status, error=error)
    record.try_notebook(None, status=status)


def publish_run(run_dir: str | Path) -> list[Path]:
    written = publishing.publish(run_dir)
    print(
        f"[adv2] published {shown_path(Path(run_dir))}: " + ", ".join(shown_path(p) for p in written),
        flush=True,
    )
    print(
        "[adv2] render it with `make html`; the previous published version comes back with "
        "`git checkout -- book/notebooks results book/_run_info.md book/_claims.md`",
        flush=True,
    )
    return written
