"""The published book and how a finished run replaces it.

A run (``python -m adv2 run``) writes only into its own run folder. Publishing copies that folder's
executed notebooks, results and timings over the published copies (``book/notebooks/``,
``results/``) and rewrites the front page's run box and claims table (``book/_claims.md``), and it does so only when every notebook of
the run finished: ``run.json`` says ``ok`` for each and every cell of each executed notebook ran
without error (papermill's own per-cell metadata is checked, not trusted blindly: after Ctrl-C
papermill marks the cells it never ran as completed). A publish is all or nothing: every file is
first written in full beside its target under a hidden name, then all are swapped in by renames
(the old versions put back if a rename fails), so a full disk leaves the published book as it was
and a reader never sees half a file. What is published is read from the run folder and checked
against the sha256 that run.json recorded when each notebook finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from adv2.book import claimspage, runbox
from adv2.book import timings as timing_files
from adv2.book.paths import (
    BOOK_NOTEBOOKS_DIR,
    CLAIMS_TABLE,
    PUBLISHED_RESULTS_DIR,
    RUN_INFO,
    RUN_RECORD,
    is_within,
    read_json_quietly,
)
from adv2.chapters.results import environment
from adv2.core.config import REPO_ROOT
from adv2.trained.files import atomic_write_bytes


class PublishError(RuntimeError):
    """The run is incomplete (failed, interrupted, killed) or its folder is not a run folder."""


def _add_run_times(
    payload: dict[str, Any],
    seconds: dict[str, float],
    environment: dict[str, Any],
    run: dict[str, Any] | None = None,
) -> None:
    """Add ``seconds`` to the timings object ``payload`` in place.

    ``run``: the ``run`` entry of a run that executed every notebook (its own wall time,
    :func:`whole_run_entry`), which replaces the recorded one. Without it (a run of some chapters)
    the recorded whole run's wall time stays, since a partial run's wall time is not the book's,
    and the chapters this run re-timed are listed in its ``later_chapters``: their ``seconds`` no
    longer come from that whole run. Other keys (``alone``, ...) are kept."""
    payload.setdefault("seconds", {}).update(seconds)
    payload["environment"] = environment
    if run is not None:
        payload["run"] = run
    elif isinstance(payload.get("run"), dict):
        earlier = [s for s in payload["run"].get("later_chapters") or [] if isinstance(s, str)]
        payload["run"]["later_chapters"] = sorted(set(earlier) | set(seconds))
    else:
        payload.pop("run", None)  # damaged: no wall time rather than a wrong one


def _merged_timings(
    old: bytes | None,
    seconds: dict[str, float],
    environment: dict[str, Any],
    run: dict[str, Any] | None = None,
):
    """(the timings payload in ``old`` with ``seconds`` added as :func:`_add_run_times` says, why
    ``old`` was unusable or None)."""
    payload, damaged = timing_files.parse(old)
    _add_run_times(payload, seconds, environment, run)
    return payload, damaged


def merge_timings(
    path: Path, seconds: dict[str, float], environment: dict[str, Any], run: dict[str, Any] | None = None
) -> Path:
    """Add this run's wall times to ``timings-<profile>.json`` (other chapters' entries stay; the
    whole run's ``run`` entry as :func:`_add_run_times` says)."""
    return timing_files.update(path, lambda payload: _add_run_times(payload, seconds, environment, run))


def whole_run_entry(record: dict[str, Any]) -> dict[str, Any] | None:
    """The timings file's ``run`` entry for a finished run that executed every notebook of the book
    (``run.json``'s ``whole_book``), None for a run of some chapters or one without a wall time
    (an older adv2's run.json). ``cold``: the cache held no model when its first notebook began."""
    wall = record.get("wall_seconds")
    notebooks = record.get("notebooks") or {}
    if not record.get("whole_book") or not notebooks or not isinstance(wall, (int, float)):
        return None
    cached = notebooks[min(notebooks)].get("models_cached_at_start")
    return {
        "wall_seconds": wall,
        "notebooks": len(notebooks),
        "date": (record.get("finished") or record.get("started") or "")[:10] or None,
        "cold": cached == 0 if isinstance(cached, int) else None,
        "other_jobs_cores": record.get("other_jobs_cores"),
    }


def describe_os_error(err: OSError, path: Path | str | None = None) -> str:
    """``no space left on device writing X``: an OSError in one line, naming the file."""
    reason = (err.strerror or str(err) or type(err).__name__).lower()
    where = path if path is not None else err.filename
    return f"{reason} writing {where}" if where else reason


# ----------------------------------------------------------------------------- checking a run
def notebook_problem(path: Path) -> str | None:
    """Why the executed notebook ``path`` is not a complete, error-free execution (None if it is)."""
    import nbformat  # lazy: nbformat loads jsonschema (seconds); the command line starts without it

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


def _run_files(run_dir: Path) -> tuple[dict[str, tuple[bytes, bytes]], list[str]]:
    """({stem: (executed notebook, results file)} as bytes, problems).

    The bytes are the ones checked: a notebook whose every cell ran, a results file that is
    JSON and, where run.json recorded them at the end of the notebook, the same sha256 as then.
    So a results folder shared with another run (``--results-dir``), whose files that run has
    since overwritten, is refused instead of published beside this run's notebooks.
    """
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
    results = _results_dir(run_dir, record)
    files = {}
    for stem, entry in notebooks.items():
        if entry.get("status") != "ok":
            problems.append(
                f"{stem}: status {entry.get('status')!r}"
                + (f" ({entry['error']})" if entry.get("error") else "")
            )
            continue
        executed = run_dir / entry["notebook"]
        notebook = result = None
        if not executed.is_file():
            problems.append(f"{stem}: {executed.name} is missing")
        elif (why := notebook_problem(executed)) is not None:
            problems.append(why)
        else:
            notebook = executed.read_bytes()
            if _changed(notebook, entry.get("notebook_sha256")):
                problems.append(
                    f"{stem}: {executed.name} changed after the run finished (its sha256 differs)"
                )
                notebook = None
        path = results / f"{stem}.json"
        if not path.is_file() or ("results_sha256" in entry and entry["results_sha256"] is None):
            problems.append(f"{stem}: it wrote no results file ({path.name})")
        elif read_json_quietly(path) is None:
            problems.append(f"{stem}: its results file {path.name} is not valid JSON")
        else:
            result = path.read_bytes()
            if _changed(result, entry.get("results_sha256")):
                problems.append(
                    f"{stem}: its results file {path} changed after the run finished (its sha256 "
                    "differs from run.json's: another run wrote to the same results folder?); "
                    "re-run it with its own --results-dir"
                )
                result = None
            elif "results_sha256" not in entry and not is_within(path, run_dir):
                problems.append(
                    f"{stem}: run.json records no sha256 of its results file (an older adv2 made "
                    f"it) and the file lies outside the run folder ({path}), where another run may "
                    "have replaced it; re-run it"
                )
                result = None
        if notebook is not None and result is not None:
            files[stem] = (notebook, result)
    return files, problems


def finished_run_in(folder: Path) -> str | None:
    """Why a new run must not write into ``folder`` (None when it may): it holds a finished run
    (run.json says ``ok``, or an executed notebook whose every cell ran) or a run still going.
    A run first deletes the copies it will make, so running into such a folder would lose them."""
    folder = Path(folder)
    record = read_json_quietly(folder / RUN_RECORD) if (folder / RUN_RECORD).is_file() else None
    if isinstance(record, dict):
        pid = record.get("pid")
        if record.get("status") == "ok":
            return f"its {RUN_RECORD} says a run finished there (status 'ok')"
        if record.get("status") == "running" and pid != os.getpid() and _pid_alive(pid):
            return f"a run is still writing into it (process {pid})"
    finished = [
        p.name
        for p in sorted(folder.glob("[0-9][0-9]_*.ipynb"))
        if "." not in p.stem and notebook_problem(p) is None  # not .running, .failed, .interrupted
    ]
    if finished:
        return "it holds finished notebooks (" + ", ".join(finished) + ")"
    return None


def _changed(data: bytes, recorded: str | None) -> bool:
    return recorded is not None and hashlib.sha256(data).hexdigest() != recorded


def _results_dir(run_dir: Path, record: dict[str, Any]) -> Path:
    folder = Path(record.get("results_dir") or run_dir / "results")
    return folder if folder.is_absolute() else REPO_ROOT / folder


# ----------------------------------------------------------------------------- publishing
class _Staging:
    """The files of one publish, each first written in full beside its target under a hidden name
    (``.<name>.publish-<token>``), then swapped in together by renames: a failure while writing
    (a full disk) leaves the published files untouched, one while swapping puts the old ones back."""

    def __init__(self) -> None:
        self.token = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.files: dict[Path, Path] = {}  # target -> its staged copy
        self.current: Path | None = None  # the target being written or swapped, for the message
        self.notes: list[str] = []  # warnings to print once the publish has happened

    def path(self, target: Path) -> Path:
        """The staged name of ``target`` (written by the caller)."""
        self.current = Path(target)
        staged = self.current.with_name(f".{self.current.name}.publish-{self.token}")
        self.files[self.current] = staged
        return staged

    def write(self, target: Path, data: bytes) -> None:
        atomic_write_bytes(self.path(target), data)

    def discard(self) -> None:
        for staged in self.files.values():
            staged.unlink(missing_ok=True)

    def swap_in(self) -> list[Path]:
        done: list[tuple[Path, Path | None]] = []  # (target, its old version kept aside, if any)
        try:
            for target, staged in self.files.items():
                self.current = target
                backup = None
                if target.exists():
                    backup = staged.with_name(staged.name + ".old")
                    _keep_old(target, backup)
                done.append((target, backup))
                os.replace(staged, target)
        except BaseException:
            self._roll_back(done)
            raise
        for _, backup in done:
            if backup is not None:
                backup.unlink(missing_ok=True)
        return list(self.files)

    def _roll_back(self, done: list[tuple[Path, Path | None]]) -> None:
        try:
            for target, backup in reversed(done):
                if backup is None:
                    target.unlink(missing_ok=True)
                elif target.exists() and os.path.samefile(backup, target):
                    backup.unlink()  # not replaced yet (renaming a hard link onto itself does nothing)
                elif backup.exists():
                    os.replace(backup, target)
        except OSError as err:
            raise PublishError(
                f"publish failed at {self.current} and putting the old files back failed too "
                f"({describe_os_error(err)}): the published book may mix two runs; restore it with "
                "`git checkout -- book/notebooks results book/_run_info.md book/_claims.md`"
            ) from None
        finally:
            self.discard()


def _keep_old(target: Path, backup: Path) -> None:
    """Keep ``target``'s current version at ``backup``: a hard link (no copy, no space needed, and
    ``target`` never goes missing), or a rename where the filesystem has no hard links."""
    try:
        os.link(target, backup)
    except OSError:
        os.replace(target, backup)


def _published_view(staging: _Staging, view: Path) -> tuple[Path, Path]:
    """``view/notebooks`` and ``view/results``: the published folders as they will be after the
    swap (links to the published files, the staged copies in place of the ones they replace),
    from which the run box and the claims table are rendered before anything is swapped in."""
    folders = {BOOK_NOTEBOOKS_DIR: view / "notebooks", PUBLISHED_RESULTS_DIR: view / "results"}
    for published, mirror in folders.items():
        mirror.mkdir(parents=True)
        for path in sorted(published.glob("*")) if published.is_dir() else ():
            if path.is_file() and not path.name.startswith("."):
                os.symlink(path.resolve(), mirror / path.name)
    for target, staged in staging.files.items():
        mirror = folders.get(target.parent)
        if mirror is not None:
            (mirror / target.name).unlink(missing_ok=True)
            os.symlink(staged.resolve(), mirror / target.name)
    return folders[BOOK_NOTEBOOKS_DIR], folders[PUBLISHED_RESULTS_DIR]


def publish(run_dir: str | os.PathLike) -> list[Path]:
    """Replace the published copies with ``run_dir``'s; refuse (PublishError) unless it finished.

    All or nothing: every file (the notebooks, their results, the timings with, for a run of every
    notebook, the run's own wall time, the run box and the claims table) is staged first and swapped in together; a failure (a full disk) raises
    PublishError and leaves the published book as it was. Chapters the run did not execute keep
    their published copies; the run box is rebuilt from all published notebooks. Returns the
    files replaced.
    """
    run_dir = Path(run_dir)
    files, problems = _run_files(run_dir)
    if problems:
        raise PublishError(f"not publishing {run_dir}: " + "; ".join(problems) + "\nnothing was published")
    record = read_run_record(run_dir)
    staging = _Staging()
    try:
        for stem, (notebook, result) in sorted(files.items()):
            staging.write(PUBLISHED_RESULTS_DIR / f"{stem}.json", result)
            staging.write(BOOK_NOTEBOOKS_DIR / f"{stem}.ipynb", notebook)
        timings = timing_files.path_of(record["profile"], PUBLISHED_RESULTS_DIR)
        old = timings.read_bytes() if timings.is_file() else None
        seconds = {stem: entry["seconds"] for stem, entry in record["notebooks"].items()}
        payload, damaged = _merged_timings(old, seconds, environment(), whole_run_entry(record))
        if damaged is not None:  # kept beside it for inspection, as set_aside does
            aside = timings.with_name(
                f"{timings.name}.corrupt-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
            )
            staging.write(aside, old)
            staging.notes.append(
                f"warning: {timings} is not valid JSON ({damaged}); kept it as {aside.name} and rebuilt it"
            )
        staging.write(timings, (json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n").encode())
        with tempfile.TemporaryDirectory(prefix="adv2-publish-") as view:
            notebooks, results = _published_view(staging, Path(view))
            runbox.write_run_info(notebooks, results, staging.path(RUN_INFO))
            claimspage.write_claims_table(results, staging.path(CLAIMS_TABLE), notebooks)
        written = staging.swap_in()
    except OSError as err:
        staging.discard()
        raise PublishError(
            f"publish failed: {describe_os_error(err, staging.current)}; the published book is unchanged"
        ) from None
    except BaseException:
        staging.discard()
        raise
    for note in staging.notes:
        print(note, file=sys.stderr, flush=True)
    return written
