"""Execute the book's notebooks with papermill, in order, under a profile, into a run folder.

    python -m adv2 run all                      # every notebook, profile auto (paper on GPU, else quick)
    python -m adv2 run 01 03 --profile smoke    # some notebooks (by number or stem prefix)
    python -m adv2 run 03 -p epsilon 0.15 -p archs '[resnet]'
    python -m adv2 run 03 -p epsilon 0.15 --check   # validate and show the plan; no kernel starts
    python -m adv2 publish runs/<run>           # make a finished run the published book
    python -m adv2 list                         # notebooks and their parameters
    python -m adv2 sweep 03 -g epsilon 0.03,0.1 -g seed 0,1   # a grid of runs on Ray (adv2.book.sweep)
    python -m adv2 sweep-table NAME             # one row per point of a sweep (adv2.book.sweeptable)

A run never touches the published book. It writes into its own run folder,
``runs/<UTC time>-<profile>-<notebook numbers>/`` (or ``--output-dir``): the executed notebooks,
``results/`` (each notebook's ``<stem>.json`` and ``timings-<profile>.json``) and ``run.json``
(parameters, status and wall time of each notebook, other jobs' CPU). A notebook is executed into
``<stem>.running.ipynb`` and renamed to ``<stem>.ipynb`` only when every cell finished; a failed
one becomes ``<stem>.failed.ipynb``, an interrupted one (Ctrl-C, SIGTERM) ``<stem>.interrupted.ipynb``.
Only ``publish`` (or ``run --publish``, what ``make book`` uses) replaces ``book/notebooks/``,
``results/`` and the front page's run box, and only for a run whose every notebook finished.
``--output-dir`` never points a run at a folder that holds a finished run (or one still going).
The repository (where ``runs/``, the book and the model cache are) is the working tree the command
runs in (:func:`adv2.core.config.find_repo_root`), not where the package is installed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from adv2.book import publish as publishing
from adv2.core.config import (
    PROFILES,
    REPO_ROOT,
    REPO_ROOT_NOTE,
    ParameterError,
    load_profile,
    parse_yaml_value,
    validate,
)
from adv2.core.progress import QUIET_ENV
from adv2.trained.files import atomic_write_json, atomic_write_text
from adv2.book.publish import BOOK_NOTEBOOKS_DIR, PublishError  # noqa: F401  (re-exported)
from adv2.book.runbox import CpuMeter, count_cached_artifacts, write_run_info  # noqa: F401  (old names)

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
RUNS_ENV = "ADV2_RUNS_DIR"  # where default run folders go (default: runs/ in the repository)
ARTIFACTS_ENV = "ADV2_ARTIFACTS"


class RunError(RuntimeError):
    """A notebook failed, or the request named something that does not exist. When a cell failed,
    ``cell`` is its index in the executed notebook and ``ename`` / ``evalue`` its exception."""

    def __init__(self, message: str, cell: int | None = None, ename: str = "", evalue: str = "") -> None:
        super().__init__(message)
        self.cell, self.ename, self.evalue = cell, ename, evalue


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM while a run was going; ``signum`` gives the exit status 128 + signum."""

    def __init__(self, reason: str = "Ctrl-C", signum: int = signal.SIGINT) -> None:
        super().__init__(reason)
        self.signum = int(signum)


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


def device_note(profile: str) -> str:
    """Where the notebooks (``device: auto``) will run, for the run's first lines: the GPU and its
    precision, or the CPU, with a warning when the ``paper`` profile (GPU budgets) has no GPU."""
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


def resolve_profile(profile: str) -> str:
    if profile == "auto":
        import torch

        return "paper" if torch.cuda.is_available() else "quick"
    validate({"profile": profile})
    return profile


_DECLARED: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}


def declared_parameters(notebook: Path) -> dict[str, dict[str, Any]]:
    """The notebook's parameters: the library's schema for the book's chapters (a test keeps the
    notebooks' parameter cells equal to it), papermill's reading of the cell for any other one."""
    from adv2.chapters import schema

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


def parse_overrides(pairs: Sequence[Sequence[str]]) -> dict[str, Any]:
    """``-p name value`` pairs; values are read as YAML so numbers, lists and booleans work."""
    return {name: parse_yaml_value(name, value) for name, value in pairs}


def validate_parameters(notebook: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Check one notebook's complete parameter set before its kernel starts (raises
    :class:`ParameterError` naming the parameter, the value and the valid choices).
    The single place where the runner's validation rules come in: the chapter's schema."""
    from adv2.chapters import schema

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
        from adv2.chapters import schema

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


# ----------------------------------------------------------------------------- run folders
def runs_root() -> Path:
    root = Path(os.environ.get(RUNS_ENV) or REPO_ROOT / "runs")
    return root if root.is_absolute() else REPO_ROOT / root


def default_run_dir(profile: str, notebooks: Sequence[Path]) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    numbers = "-".join(nb.stem.split("_")[0] for nb in notebooks)
    base = runs_root() / f"{stamp}-{profile}-{numbers}"
    path, n = base, 1
    while path.exists():  # two runs in the same second get their own folders
        n += 1
        path = base.with_name(f"{base.name}.{n}")
    return path


def shown_path(path: Path) -> str:
    """Paths inside the repository are shown (and passed to notebooks) relative to it."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT.resolve()))
    except ValueError:
        return str(path.resolve())


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


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
        for published in (publishing.BOOK_NOTEBOOKS_DIR, publishing.PUBLISHED_RESULTS_DIR):
            if _is_within(path, published):
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


class RunRecord:
    """``run.json``: what ran with which parameters, how it ended, how long it took."""

    def __init__(
        self,
        run_dir: Path,
        results_dir: Path,
        profile: str,
        plan: Sequence[tuple[Path, dict[str, Any]]],
        argv: Sequence[str] | None,
    ) -> None:
        self.path = run_dir / publishing.RUN_RECORD
        self.data: dict[str, Any] = {
            "version": 1,
            "profile": profile,
            "status": "running",
            "pid": os.getpid(),
            "command": list(argv) if argv is not None else None,
            "run_dir": str(run_dir),
            "results_dir": str(results_dir),
            "started": _now(),
            "finished": None,
            "notebooks": {
                nb.stem: {
                    "status": "pending",
                    "notebook": f"{nb.stem}.ipynb",
                    "source": shown_path(nb),
                    "parameters": params,
                    "seconds": None,
                    "other_jobs_cores": None,
                    "models_trained": None,
                    "error": None,
                }
                for nb, params in plan
            },
        }
        self.save()

    def notebook(self, stem: str, **fields: Any) -> None:
        self.data["notebooks"][stem].update(fields)
        self.save()

    def finish(self, status: str) -> None:
        self.data.update(status=status, finished=_now())
        self.save()

    def save(self) -> None:
        try:
            atomic_write_json(self.path, self.data)
        except OSError:
            # a full disk has no room for the temporary copy an atomic write needs; rewriting the
            # file in place reuses its blocks, so run.json can still say how the run ended
            self._save_in_place()

    def _save_in_place(self) -> None:
        import json

        data = (json.dumps(self.data, indent=2, sort_keys=True, default=str) + "\n").encode()
        with open(self.path, "r+b") as f:
            f.write(data)
            f.truncate()
            f.flush()
            os.fsync(f.fileno())

    def try_notebook(self, stem: str | None, **fields: Any) -> None:
        """Update while the run is already ending on an error: a failure to save is reported, not
        raised (it would hide the error that ended the run)."""
        try:
            if stem is not None:
                self.notebook(stem, **fields)
            else:
                self.finish(fields["status"])
        except OSError as err:
            print(
                f"[adv2] warning: could not update {self.path}: {publishing.describe_os_error(err)}",
                file=sys.stderr,
                flush=True,
            )


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM ends a run the way Ctrl-C does (marked interrupted) instead of killing it silently."""

    def handler(signum: int, frame: Any) -> None:
        raise RunInterrupted(signal.Signals(signum).name, signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _quiet_progress() -> Iterator[None]:
    # the kernel inherits this: no progress widgets in the executed copies the book renders
    previous = os.environ.get(QUIET_ENV)
    os.environ[QUIET_ENV] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(QUIET_ENV, None)
        else:
            os.environ[QUIET_ENV] = previous


def execute_notebook(
    notebook: Path, params: dict[str, Any], run_dir: Path, progress: bool = True, kernel_manager: Any = None
) -> Path:
    """Execute into ``<stem>.running.ipynb``; rename to ``<stem>.ipynb`` only if every cell finished.

    A failing cell leaves ``<stem>.failed.ipynb`` (RunError), an interruption
    ``<stem>.interrupted.ipynb`` (RunInterrupted); a kill -9 leaves the ``.running`` file.
    ``kernel_manager`` (a jupyter_client kernel manager) runs it in that kernel, started if needed
    and left running (the sweep runs several points in one kernel); default: a fresh kernel.
    """
    from papermill.exceptions import PapermillExecutionError

    stem = notebook.stem
    final, running = run_dir / f"{stem}.ipynb", run_dir / f"{stem}.running.ipynb"
    failed, interrupted = run_dir / f"{stem}.failed.ipynb", run_dir / f"{stem}.interrupted.ipynb"
    for old in (final, running, failed, interrupted):  # an earlier run's copy in a reused folder
        old.unlink(missing_ok=True)
    own_kernel = kernel_manager is None
    if own_kernel:  # ours to stop: at once when interrupted (see _stop_kernel)
        from jupyter_client.manager import AsyncKernelManager

        kernel_manager = AsyncKernelManager(kernel_name="python3")
    try:
        _execute(notebook, running, params, progress, kernel_manager, own_kernel)
    except PapermillExecutionError as err:
        if err.ename == "KeyboardInterrupt":
            _rename(running, interrupted)
            raise RunInterrupted("the kernel was interrupted") from None
        _rename(running, failed)
        raise RunError(
            f"notebook {stem} failed in cell {err.cell_index} "
            f"(execution count {err.exec_count}): {err.ename}: {err.evalue}",
            cell=err.cell_index,
            ename=err.ename,
            evalue=err.evalue,
        ) from None
    except KeyboardInterrupt:
        _rename(running, interrupted)
        raise
    except OSError as err:  # the disk is full, the folder went away, ...
        _rename(running, failed)
        raise RunError(f"notebook {stem} failed: {publishing.describe_os_error(err)}") from None
    except Exception as err:  # the kernel died, could not start, ...
        _rename(running, failed)
        raise RunError(f"notebook {stem} failed: {type(err).__name__}: {err}") from err
    except BaseException:
        _rename(running, failed)
        raise
    problem = publishing.notebook_problem(running)
    if problem is not None:
        _rename(running, failed)
        raise RunError(f"notebook {stem} did not finish: {problem}")
    os.replace(running, final)
    return final


def _execute(
    notebook: Path, output: Path, params: dict[str, Any], progress: bool, km: Any, own_kernel: bool
) -> None:
    """papermill in the kernel of ``km``; a kernel of our own is stopped afterwards: gently when the
    notebook ended (its atexit handlers run), at once when this process was interrupted (asked to
    shut down mid-cell, the kernel printed a zmq traceback on its way out)."""
    import papermill

    interrupted = False
    try:
        with _quiet_progress():
            papermill.execute_notebook(
                str(notebook),
                str(output),
                parameters=params,
                cwd=str(REPO_ROOT),
                progress_bar=progress,
                kernel_name="python3",
                report_mode=False,
                km=km,
            )
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (RunInterrupted)
        interrupted = True
        raise
    finally:
        if own_kernel:
            _stop_kernel(km, now=interrupted)


def _stop_kernel(km: Any, now: bool) -> None:
    from jupyter_core.utils import run_sync

    try:
        if run_sync(km.is_alive)():
            run_sync(km.shutdown_kernel)(now=now)
    except Exception:  # noqa: BLE001  (a kernel that died or never started: nothing left to stop)
        pass


def _rename(src: Path, dst: Path) -> None:
    if src.exists():
        os.replace(src, dst)


def _record_run_facts(executed: Path, facts: dict[str, Any]) -> None:
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    nb.metadata["adv2"] = facts
    atomic_write_text(executed, nbformat.writes(nb))


def check(
    names: Sequence[str],
    profile: str = "auto",
    overrides: dict[str, Any] | None = None,
    output_dir: str | Path | None = None,
    results_dir: str | Path | None = None,
) -> list:
    """Validate everything and print the plan; start no kernel and write nothing."""
    profile = resolve_profile(profile)
    notebooks = select_notebooks(names)
    overrides = dict(overrides or {})
    results_dir = overrides.pop("results_dir", None) or results_dir
    run_dir, results = resolve_folders(profile, notebooks, output_dir, results_dir)
    plan = plan_run(notebooks, profile, overrides, shown_path(results))
    print(f"[adv2] check: {len(plan)} notebook(s) at profile {profile}, parameters valid")
    for nb, params in plan:
        changed = {
            k: v
            for k, v in params.items()
            if k not in ("results_dir", "artifacts_dir", "profile")
            and load_profile(profile, nb.stem).get(k, object()) != v
        }
        print(
            f"  {nb.stem}: "
            + (", ".join(f"{k}={v!r}" for k, v in sorted(changed.items())) or "the profile's values")
        )
    print(f"  would write to {shown_path(run_dir)} (results: {shown_path(results)}); nothing ran")
    return plan


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
    finished. Raises RunError (a notebook failed), RunInterrupted (Ctrl-C / SIGTERM)."""
    from adv2.chapters.results import environment

    profile = resolve_profile(profile)
    notebooks = select_notebooks(names)
    overrides = dict(overrides or {})
    results_dir = overrides.pop("results_dir", None) or results_dir  # -p results_dir = --results-dir
    run_dir, results = resolve_folders(profile, notebooks, output_dir, results_dir)
    plan = plan_run(notebooks, profile, overrides, shown_path(results))
    run_dir.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    for nb, _ in plan:  # a reused folder: no earlier run's copy may pass for this run's
        kinds = ("", ".running", ".failed", ".interrupted")
        for old in (*(run_dir / f"{nb.stem}{kind}.ipynb" for kind in kinds), results / f"{nb.stem}.json"):
            old.unlink(missing_ok=True)
    record = RunRecord(run_dir, results, profile, plan, argv)
    print(f"[adv2] run folder: {shown_path(run_dir)} (the published book is not touched)", flush=True)
    print(f"[adv2] device: {device_note(profile)} (profile {profile})", flush=True)
    current = None
    try:
        with _sigterm_interrupts():
            for nb, params in plan:
                current = nb.stem
                print(
                    f"[adv2] {nb.stem}: profile {profile}, "
                    + " ".join(f"{k}={v!r}" for k, v in sorted(params.items())),
                    flush=True,
                )
                record.notebook(nb.stem, status="running", started=_now())
                cached_before = count_cached_artifacts(params.get("artifacts_dir"))
                meter, started = CpuMeter(), time.time()
                try:
                    execute_notebook(nb, params, run_dir, progress)
                except RunError as err:
                    record.try_notebook(
                        nb.stem, status="failed", error=str(err), seconds=round(time.time() - started, 1)
                    )
                    raise
                seconds = round(time.time() - started, 1)
                cached_after = count_cached_artifacts(params.get("artifacts_dir"))
                facts = {
                    "models_trained": cached_after - cached_before,
                    "models_cached_at_start": cached_before,
                    "other_jobs_cores": meter.other_jobs_cores(seconds),
                }
                _record_run_facts(run_dir / f"{nb.stem}.ipynb", facts)
                # what publish checks: the copies it publishes are the ones this run wrote, not
                # files another run has since written into a shared --results-dir
                result = results / f"{nb.stem}.json"
                hashes = {
                    "notebook_sha256": publishing.sha256_of(run_dir / f"{nb.stem}.ipynb"),
                    "results_sha256": publishing.sha256_of(result) if result.is_file() else None,
                }
                record.notebook(nb.stem, status="ok", seconds=seconds, **facts, **hashes)
                publishing.merge_timings(
                    results / f"timings-{profile}.json", {nb.stem: seconds}, environment()
                )
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
    record.finish("ok")
    print(f"[adv2] all {len(plan)} notebook(s) finished; run folder: {shown_path(run_dir)}", flush=True)
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


def _how_to_look(run_dir: Path | None) -> str:
    if run_dir is None:
        return "nothing was published"
    where = shown_path(run_dir)
    return (
        f"nothing was published. Look at the run in {where}: run.json (status and error of "
        f"each notebook) and the executed copies ({where}/<notebook>.failed.ipynb or "
        ".interrupted.ipynb), e.g. `jupyter lab " + where + "`"
    )


def list_notebooks() -> None:
    for nb in all_notebooks():
        print(nb.stem)
        for name, spec in declared_parameters(nb).items():
            print(
                f"    {name}: {spec.get('inferred_type_name', '')} = {spec.get('default')}"
                f"    # {spec.get('help', '')}"
            )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m adv2", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute notebooks with papermill into a run folder")
    p_run.add_argument(
        "notebooks", nargs="*", default=["all"], help="numbers or stems (01, 02_interpreters, ...) or 'all'"
    )
    p_run.add_argument("--profile", default="auto", choices=("auto",) + PROFILES)
    p_run.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="override one parameter (YAML value)",
    )
    p_run.add_argument(
        "--output-dir", default=None, help="the run folder (default runs/<UTC time>-<profile>-<numbers>/)"
    )
    p_run.add_argument(
        "--results-dir",
        default=None,
        help="where results/*.json go (default: <run folder>/results, or the --output-dir folder itself)",
    )
    p_run.add_argument(
        "--publish",
        action="store_true",
        help="publish the run (book/notebooks, results, run box) if every notebook finished",
    )
    p_run.add_argument(
        "--check", action="store_true", help="validate the parameters and print the plan; start no kernel"
    )
    p_run.add_argument("--no-progress", action="store_true")
    p_pub = sub.add_parser("publish", help="make a finished run folder the published book")
    p_pub.add_argument("run_dir", help="a run folder (holds run.json)")
    sub.add_parser("list", help="list notebooks and their parameters")
    p_sw = sub.add_parser(
        "sweep", help="run a notebook at every point of a parameter grid, as Ray tasks (adv2.book.sweep)"
    )
    p_sw.add_argument("notebook", nargs="?", default=None, help="one notebook (03, 03_adv2 or a path)")
    p_sw.add_argument(
        "-g",
        "--grid",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "V1,V2,..."),
        help="a grid parameter and its values (YAML each; brackets keep list values together)",
    )
    p_sw.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a parameter every point gets (YAML value)",
    )
    p_sw.add_argument("--profile", default="auto", choices=("auto",) + PROFILES)
    p_sw.add_argument(
        "--name", default=None, help="the sweep's name: runs/sweeps/NAME/ (default from the grid)"
    )
    p_sw.add_argument(
        "--address",
        default=None,
        help="an existing Ray cluster: auto or ray://host:port (default: local Ray)",
    )
    p_sw.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    p_sw.add_argument(
        "--cpus-per-task", type=float, default=1, help="CPUs a task asks for when there is no GPU"
    )
    p_sw.add_argument(
        "--artifacts-dir", default=None, help="the trained-model cache every point uses (shared storage)"
    )
    p_sw.add_argument(
        "--for",
        dest="for_chapter",
        default=None,
        metavar="CHAPTER",
        help="run the grid a chapter reads at the profile (08: How the attacks scale)",
    )
    p_sw.add_argument(
        "--check", action="store_true", help="expand and validate the grid and print the plan; start nothing"
    )
    p_sw.add_argument(
        "--cleanup", action="store_true", help="end the Ray processes killed sweeps left; run no sweep"
    )
    p_sw.add_argument("--no-progress", action="store_true")
    p_tab = sub.add_parser("sweep-table", help="one table (CSV + JSON) of a sweep's points")
    p_tab.add_argument("name", help="the sweep's name (a folder of runs/sweeps/) or its folder")
    p_tab.add_argument(
        "--output", default=None, help="file stem of the table (default: the sweep folder's table)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if REPO_ROOT_NOTE and args.command != "list":
        print(f"[adv2] note: {REPO_ROOT_NOTE}", file=sys.stderr, flush=True)
    run_dir = None
    try:
        if args.command == "list":
            list_notebooks()
        elif args.command == "publish":
            publish_run(args.run_dir)
        elif args.command == "sweep":
            from adv2.book import sweep

            return sweep.main(args)
        elif args.command == "sweep-table":
            from adv2.book import sweeptable

            return sweeptable.main(args)
        elif args.check:
            check(
                args.notebooks,
                args.profile,
                parse_overrides(args.parameter),
                args.output_dir,
                args.results_dir,
            )
        else:
            profile = resolve_profile(args.profile)
            overrides = parse_overrides(args.parameter)
            results_dir = overrides.pop("results_dir", None) or args.results_dir
            run_dir, results = resolve_folders(
                profile, select_notebooks(args.notebooks), args.output_dir, results_dir
            )
            run(
                args.notebooks,
                profile,
                overrides,
                run_dir,
                results,
                progress=not args.no_progress,
                publish=args.publish,
                argv=sys.argv if argv is None else ["python", "-m", "adv2", *argv],
            )
    except ParameterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except PublishError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except RunInterrupted as err:
        print(f"\n[adv2] interrupted ({err}); {_how_to_look(run_dir)}", file=sys.stderr, flush=True)
        return 128 + err.signum
    except RunError as err:
        print(f"error: {err}", file=sys.stderr)
        if run_dir is not None and run_dir.exists():
            print(f"[adv2] {_how_to_look(run_dir)}", file=sys.stderr)
            return 1
        return 2
    except OSError as err:  # a full disk or a missing folder outside a notebook: one line, no traceback
        print(f"error: {publishing.describe_os_error(err)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
