"""The published book and how a finished run replaces it.

A run (``python -m adv2 run``) writes only into its own run folder. Publishing copies that folder's
executed notebooks, results and timings over the published copies (``book/notebooks/``,
``results/``) and rewrites the front page's run box and claims table (``book/_claims.md``), and it does so only when every notebook of
the run finished: ``run.json`` says ``ok`` for each and every cell of each executed notebook ran
without error (papermill's own per-cell metadata is checked, not trusted blindly: after Ctrl-C
papermill marks the cells it never ran as completed). Every file is replaced atomically (a
temporary file in the same folder, then ``os.replace``), so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .config import REPO_ROOT

BOOK_NOTEBOOKS_DIR = REPO_ROOT / "book" / "notebooks"
PUBLISHED_RESULTS_DIR = REPO_ROOT / "results"
RUN_INFO = REPO_ROOT / "book" / "_run_info.md"
CLAIMS_TABLE = REPO_ROOT / "book" / "_claims.md"  # the front page's claims table (adv2.claimspage)
RUN_RECORD = "run.json"


class PublishError(RuntimeError):
    """The run is incomplete (failed, interrupted, killed) or its folder is not a run folder."""


# ----------------------------------------------------------------------------- atomic files
def _normal_mode() -> int:
    """0666 minus the umask (0644 usually): mkstemp's 0600 would hide results from other users."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``path`` so that readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _normal_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | os.PathLike, payload: Any) -> Path:
    return atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    return atomic_write_bytes(dst, Path(src).read_bytes())


def set_aside(path: Path, why: str) -> Path:
    """Move a damaged bookkeeping file out of the way (kept for inspection) and say so."""
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    os.replace(path, aside)
    print(
        f"warning: {path} is not valid JSON ({why}); moved it to {aside.name} and rebuilt it",
        file=sys.stderr,
        flush=True,
    )
    return aside


def read_json_or_set_aside(path: Path, default: Any = None) -> Any:
    """``path``'s JSON; a missing file gives ``default``, a corrupt one is set aside (warning)."""
    if not path.is_file():
        return default
    try:
        value = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        set_aside(path, str(err).splitlines()[0][:120])
        return default
    return value


def merge_timings(path: Path, seconds: dict[str, float], environment: dict[str, Any]) -> Path:
    """Add this run's wall times to ``timings-<profile>.json`` (other chapters' entries stay)."""
    old = read_json_or_set_aside(path, {})
    if not isinstance(old, dict) or not isinstance(old.get("seconds", {}), dict):
        set_aside(path, "not a timings object")
        old = {}
    old.setdefault("seconds", {}).update(seconds)
    old["environment"] = environment
    return atomic_write_json(path, old)


# ----------------------------------------------------------------------------- checking a run
def notebook_problem(path: Path) -> str | None:
    """Why the executed notebook ``path`` is not a complete, error-free execution (None if it is)."""
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:  # noqa: BLE001  (truncated, not JSON, not a notebook: all mean "not publishable")
        return f"{path.name} cannot be read ({type(err).__name__}: {err})"
    meta = nb.metadata.get("papermill")
    if not meta:
        return f"{path.name} was not executed by papermill"
    if meta.get("exception"):
        return f"{path.name} stopped on an exception"
    for i, cell in enumerate(nb.cells):
        pm = cell.metadata.get("papermill", {})
        if pm.get("status") != "completed" or pm.get("exception"):
            return f"{path.name}: cell {i} has status {pm.get('status')!r}"
        # papermill marks cells it never started as completed when interrupted: they have no times
        if not pm.get("start_time") or not pm.get("end_time"):
            return f"{path.name}: cell {i} never ran"
        if cell.cell_type == "code":
            if cell.source.strip() and cell.get("execution_count") is None:
                return f"{path.name}: cell {i} never ran"
            if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
                return f"{path.name}: cell {i} raised an error"
    return None


def read_run_record(run_dir: str | os.PathLike) -> dict[str, Any]:
    run_dir = Path(run_dir)
    path = run_dir / RUN_RECORD
    if not path.is_file():
        raise PublishError(f"{run_dir} is not a run folder: it has no {RUN_RECORD}")
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise PublishError(f"{path} is damaged ({err}); re-run instead of publishing it") from None


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


def run_problems(run_dir: str | os.PathLike) -> list[str]:
    """Everything that stops ``run_dir`` from being published (empty when it may be)."""
    run_dir = Path(run_dir)
    record = read_run_record(run_dir)
    problems = []
    status = record.get("status")
    if status == "running":
        problems.append(
            "the run is still going"
            if _pid_alive(record.get("pid"))
            else "the run was killed before it finished (its process is gone)"
        )
    elif status != "ok":
        problems.append(f"the run's status is {status!r}")
    notebooks = record.get("notebooks") or {}
    if not notebooks:
        problems.append("the run has no notebooks")
    for stem, entry in notebooks.items():
        if entry.get("status") != "ok":
            problems.append(
                f"{stem}: status {entry.get('status')!r}"
                + (f" ({entry['error']})" if entry.get("error") else "")
            )
            continue
        executed = run_dir / entry["notebook"]
        if not executed.is_file():
            problems.append(f"{stem}: {executed.name} is missing")
        elif (why := notebook_problem(executed)) is not None:
            problems.append(why)
        result = _results_dir(run_dir, record) / f"{stem}.json"
        if not result.is_file():
            problems.append(f"{stem}: it wrote no results file ({result.name})")
        elif read_json_quietly(result) is None:
            problems.append(f"{stem}: its results file {result.name} is not valid JSON")
    return problems


def read_json_quietly(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _results_dir(run_dir: Path, record: dict[str, Any]) -> Path:
    folder = Path(record.get("results_dir") or run_dir / "results")
    return folder if folder.is_absolute() else REPO_ROOT / folder


# ----------------------------------------------------------------------------- publishing
def publish(run_dir: str | os.PathLike) -> list[Path]:
    """Replace the published copies with ``run_dir``'s; refuse (PublishError) unless it finished.

    Chapters the run did not execute keep their published copies; the run box is rebuilt from
    all published notebooks afterwards. Returns the files replaced.
    """
    from . import claimspage, runbox
    from .results import environment

    run_dir = Path(run_dir)
    problems = run_problems(run_dir)
    if problems:
        raise PublishError(f"not publishing {run_dir}: " + "; ".join(problems) + "\nnothing was published")
    record = read_run_record(run_dir)
    results = _results_dir(run_dir, record)
    written = []
    for stem, entry in sorted(record["notebooks"].items()):
        written.append(atomic_copy(results / f"{stem}.json", PUBLISHED_RESULTS_DIR / f"{stem}.json"))
        written.append(atomic_copy(run_dir / entry["notebook"], BOOK_NOTEBOOKS_DIR / f"{stem}.ipynb"))
    seconds = {stem: entry["seconds"] for stem, entry in record["notebooks"].items()}
    written.append(
        merge_timings(PUBLISHED_RESULTS_DIR / f"timings-{record['profile']}.json", seconds, environment())
    )
    written.append(runbox.write_run_info(BOOK_NOTEBOOKS_DIR, PUBLISHED_RESULTS_DIR, RUN_INFO))
    written.append(claimspage.write_claims_table(PUBLISHED_RESULTS_DIR, CLAIMS_TABLE))
    return written
