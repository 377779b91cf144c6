"""Runs never touch the published book; only a finished run is published, atomically.

The signal cases run the real runner in a subprocess on a tiny generated notebook (a `parameters`
cell, a sleep, an optional failure) and send real signals to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from adv2.book import cli, execute, paths, publish, runbox, runner
from adv2.core.config import REPO_ROOT
from adv2.trained import files

STEM = "01_tiny"


def published_state() -> dict[str, str]:
    """Hash of every published file: book/notebooks, results/, the run box."""
    files = [
        *sorted((REPO_ROOT / "book" / "notebooks").glob("*")),
        *sorted((REPO_ROOT / "results").glob("*")),
        REPO_ROOT / "book" / "_run_info.md",
        REPO_ROOT / "book" / "_claims.md",
    ]
    return {
        str(p.relative_to(REPO_ROOT)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in files
        if p.is_file()
    }


def tiny_notebook(folder: Path) -> Path:
    """A chapter-like notebook: papermill parameters, a wait the test can interrupt, results."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(
        textwrap.dedent("""\
        profile: str = "quick"     # profile
        seed: int = 0              # seed
        sleep: float = 0.0         # seconds to wait in the second cell
        fail: bool = False         # raise in the second cell
        marker: str = ""           # file created when the second cell starts
        results_dir: str = "results"  # where results go""")
    )
    params.metadata["tags"] = ["parameters"]
    work = nbformat.v4.new_code_cell(
        textwrap.dedent("""\
        import json, pathlib, time
        if marker:
            pathlib.Path(marker).write_text("started")
        time.sleep(sleep)
        if fail:
            raise ValueError("asked to fail")""")
    )
    save = nbformat.v4.new_code_cell(
        textwrap.dedent(f"""\
        pathlib.Path(results_dir).mkdir(parents=True, exist_ok=True)
        payload = {{"notebook": "{STEM}", "seed": seed}}
        (pathlib.Path(results_dir) / "{STEM}.json").write_text(json.dumps(payload))""")
    )
    nb.cells = [nbformat.v4.new_markdown_cell("# Tiny"), params, work, save]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{STEM}.ipynb"
    nbformat.write(nb, path)
    return path


def start_runner(tmp_path: Path, *args: str) -> subprocess.Popen:
    """The real CLI in a subprocess, its notebooks folder pointed at the tiny notebook."""
    tiny_notebook(tmp_path / "src")
    code = (
        "import signal, sys\n"
        "from pathlib import Path\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started in background\n"
        "from adv2.book import cli, runner\n"
        f"runner.NOTEBOOKS_DIR = Path({str(tmp_path / 'src')!r})\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "lib") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError("runner ended early:\n" + proc.stdout.read())
        if time.time() > deadline:
            proc.kill()
            raise AssertionError("the notebook never started")
        time.sleep(0.2)


def read_record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


@pytest.mark.slow  # real subprocesses: in `make test`, not in `make test-fast`
@pytest.mark.timeout(300)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_marks_the_run_interrupted_and_publishes_nothing(tmp_path, sig):
    before = published_state()
    run_dir, marker = tmp_path / "run", tmp_path / "started"
    proc = start_runner(
        tmp_path,
        "run",
        "01",
        "--profile",
        "smoke",
        "--output-dir",
        str(run_dir),
        "-p",
        "sleep",
        "60",
        "-p",
        "marker",
        str(marker),
        "--publish",
    )
    wait_for(marker, proc)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, out
    assert "nothing was published" in out and str(run_dir.name) in out
    assert "Traceback" not in out and "ZMQError" not in out, out  # ends quietly
    record = read_record(run_dir)
    assert record["status"] == "interrupted" and record["notebooks"][STEM]["status"] == "interrupted"
    assert (run_dir / f"{STEM}.interrupted.ipynb").is_file()
    assert not (run_dir / f"{STEM}.ipynb").exists() and not (run_dir / f"{STEM}.running.ipynb").exists()
    # papermill marks the cells it never ran "completed" after Ctrl-C: the check does not trust that
    assert publish.notebook_problem(run_dir / f"{STEM}.interrupted.ipynb") is not None
    with pytest.raises(publish.PublishError, match="interrupted"):
        publish.publish(run_dir)
    assert published_state() == before


@pytest.mark.slow  # real subprocesses: in `make test`, not in `make test-fast`
@pytest.mark.timeout(300)
def test_kill_9_leaves_no_final_notebook_and_publish_refuses(tmp_path):
    before = published_state()
    run_dir, marker = tmp_path / "run", tmp_path / "started"
    proc = start_runner(
        tmp_path,
        "run",
        "01",
        "--profile",
        "smoke",
        "--output-dir",
        str(run_dir),
        "-p",
        "sleep",
        "60",
        "-p",
        "marker",
        str(marker),
    )
    wait_for(marker, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert not (run_dir / f"{STEM}.ipynb").exists()
    assert read_record(run_dir)["status"] == "running"
    with pytest.raises(publish.PublishError, match="killed"):
        publish.publish(run_dir)
    assert cli.main(["publish", str(run_dir)]) == 1
    assert published_state() == before


@pytest.mark.slow  # real subprocesses: in `make test`, not in `make test-fast`
@pytest.mark.timeout(300)
def test_failing_notebook_is_kept_aside_and_not_published(tmp_path):
    before = published_state()
    run_dir = tmp_path / "run"
    run_dir.mkdir()  # a reused folder: an earlier run's copies must not pass for this run's
    (run_dir / f"{STEM}.ipynb").write_text("{}")
    (run_dir / f"{STEM}.json").write_text("{}")
    proc = start_runner(
        tmp_path,
        "run",
        "01",
        "--profile",
        "smoke",
        "--output-dir",
        str(run_dir),
        "-p",
        "fail",
        "true",
        "--publish",
    )
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 1, out
    assert "asked to fail" in out and "nothing was published" in out
    record = read_record(run_dir)
    assert record["status"] == "failed" and record["notebooks"][STEM]["status"] == "failed"
    assert "ValueError" in record["notebooks"][STEM]["error"]
    assert (run_dir / f"{STEM}.failed.ipynb").is_file() and not (run_dir / f"{STEM}.ipynb").exists()
    assert not (run_dir / f"{STEM}.json").exists()
    with pytest.raises(publish.PublishError, match="failed"):
        publish.publish(run_dir)
    assert published_state() == before


@pytest.fixture
def fake_book(tmp_path, monkeypatch):
    """Published paths moved into tmp: publishing is exercised without touching the real book."""
    book = tmp_path / "book"
    monkeypatch.setattr(publish, "BOOK_NOTEBOOKS_DIR", book / "notebooks")
    monkeypatch.setattr(publish, "PUBLISHED_RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(publish, "RUN_INFO", book / "_run_info.md")
    monkeypatch.setattr(publish, "CLAIMS_TABLE", book / "_claims.md")
    monkeypatch.setattr(runner, "NOTEBOOKS_DIR", tiny_notebook(tmp_path / "src").parent)
    return tmp_path


@pytest.mark.timeout(300)
def test_finished_run_publishes_everything_with_normal_permissions(fake_book, monkeypatch, capsys):
    monkeypatch.setenv(paths.RUNS_ENV, str(fake_book / "runs"))
    (fake_book / "results").mkdir()
    (fake_book / "results" / "timings-smoke.json").write_text("{not json")  # damaged bookkeeping
    (fake_book / "results" / "02_other.json").write_text("")  # another chapter's, damaged
    other = nbformat.v4.new_notebook()
    other.metadata["papermill"] = {"parameters": {"profile": "smoke"}, "duration": 6.0}
    (fake_book / "book" / "notebooks").mkdir(parents=True)
    nbformat.write(other, fake_book / "book" / "notebooks" / "02_other.ipynb")

    assert cli.main(["run", "01", "--profile", "smoke", "-p", "seed", "3", "--no-progress"]) == 0
    out = capsys.readouterr()
    (run_dir,) = (fake_book / "runs").iterdir()
    assert run_dir.name.endswith("-smoke-01") and run_dir.name in out.out
    record = read_record(run_dir)
    assert record["status"] == "ok" and record["notebooks"][STEM]["parameters"]["seed"] == 3
    assert record["notebooks"][STEM]["seconds"] > 0
    assert json.loads((run_dir / "results" / f"{STEM}.json").read_text())["seed"] == 3
    assert STEM in json.loads((run_dir / "results" / "timings-smoke.json").read_text())["seconds"]
    assert not (fake_book / "book" / "notebooks" / f"{STEM}.ipynb").exists()  # a run alone publishes nothing

    assert cli.main(["publish", str(run_dir)]) == 0
    err = capsys.readouterr().err
    published = [
        fake_book / "book" / "notebooks" / f"{STEM}.ipynb",
        fake_book / "results" / f"{STEM}.json",
        fake_book / "results" / "timings-smoke.json",
        fake_book / "book" / "_run_info.md",
        fake_book / "book" / "_claims.md",
    ]
    for path in published:
        assert path.is_file() and stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044, path
    assert (run_dir / f"{STEM}.ipynb").read_bytes() == published[0].read_bytes()
    # the damaged files were named, set aside and rebuilt; they did not stop the publish
    assert "timings-smoke.json" in err and "02_other.json" in err
    assert list((fake_book / "results").glob("timings-smoke.json.corrupt-*"))
    assert STEM in json.loads(published[2].read_text())["seconds"]
    box = published[3].read_text()
    assert f"| {STEM} | `smoke` | `seed=3` |" in box and "| 02_other | `smoke` | none |" in box
    assert "| claim of the paper |" in published[4].read_text()  # the front page's claims table
    assert not list(published[0].parent.glob(".*.tmp")), "temporary files left behind"


def test_corrupt_timings_in_a_reused_run_folder_are_set_aside(tmp_path, capsys):
    path = tmp_path / "timings-smoke.json"
    path.write_text('{"seconds": {"01_a": 3')
    publish.merge_timings(path, {"02_b": 1.0}, {"device": "cpu"})
    assert json.loads(path.read_text())["seconds"] == {"02_b": 1.0}
    assert "timings-smoke.json" in capsys.readouterr().err
    assert len(list(tmp_path.glob("timings-smoke.json.corrupt-*"))) == 1


@pytest.mark.timeout(300)
def test_a_whole_run_records_its_wall_time_and_a_partial_run_keeps_it(fake_book):
    """Issue 27 item 3: publishing a run of every notebook stores the run's own wall time (start to
    the last notebook's end) in timings-<profile>.json; a later run of some chapters replaces their
    times but not the whole book's wall time, and says which chapters it re-timed."""
    from adv2.book import timings

    published_book(fake_book)
    whole = finished_run(fake_book)  # the fake book has one notebook: running it is the whole book
    record = read_record(whole)
    assert record["whole_book"] is True
    assert record["wall_seconds"] >= record["notebooks"][STEM]["seconds"] > 0
    publish.publish(whole)
    results = fake_book / "results"
    run = timings.whole_run("smoke", results)
    cached = record["notebooks"][STEM]["models_cached_at_start"]
    assert run == {
        "wall_seconds": record["wall_seconds"],
        "notebooks": 1,
        "date": record["finished"][:10],
        "cold": cached == 0,
        "other_jobs_cores": record["other_jobs_cores"],
    }
    assert "| the whole book as one run |" in (fake_book / "book" / "_run_info.md").read_text()

    # a second notebook in the book: running chapter 1 alone is now a partial run
    (runner.NOTEBOOKS_DIR / "02_more.ipynb").write_bytes(
        (runner.NOTEBOOKS_DIR / f"{STEM}.ipynb").read_bytes()
    )
    partial = finished_run(fake_book)
    record2 = read_record(partial)
    assert record2["whole_book"] is False and record2["wall_seconds"] > 0
    publish.publish(partial)
    data = json.loads((results / "timings-smoke.json").read_text())
    assert data["run"] == {**run, "later_chapters": [STEM]}  # the whole run's time, not the partial's
    assert data["seconds"][STEM] == record2["notebooks"][STEM]["seconds"]
    assert timings.run_wall_seconds("smoke", results) == record["wall_seconds"]


def test_merged_timings_keep_the_alone_times_and_drop_a_damaged_run_entry():
    old = {"seconds": {"01_a": 1.0}, "alone": {"seconds": {"01_a": 2.0}}, "run": {"wall_seconds": 5.0}}
    payload, damaged = publish._merged_timings(json.dumps(old).encode(), {"02_b": 3.0}, {"date": "d"})
    assert damaged is None and payload["alone"] == old["alone"]
    assert payload["run"] == {"wall_seconds": 5.0, "later_chapters": ["02_b"]}
    new_run = {"wall_seconds": 9.0, "notebooks": 2}
    payload, _ = publish._merged_timings(json.dumps(payload).encode(), {"01_a": 4.0}, {}, new_run)
    assert payload["run"] == new_run and payload["alone"] == old["alone"]  # a whole run starts afresh
    payload, _ = publish._merged_timings(json.dumps({**old, "run": "?"}).encode(), {"01_a": 4.0}, {})
    assert "run" not in payload
    record = {"whole_book": True, "wall_seconds": 9.0, "finished": "2030-01-02T03:04:05Z", "notebooks": {}}
    assert publish.whole_run_entry(record) is None  # no notebooks: nothing to time
    record["notebooks"] = {"02_b": {"models_cached_at_start": 3}, "01_a": {"models_cached_at_start": 0}}
    assert publish.whole_run_entry(record)["cold"] is True  # the first chapter found an empty cache
    assert publish.whole_run_entry({**record, "whole_book": False}) is None
    assert publish.whole_run_entry({**record, "wall_seconds": None}) is None  # an older run.json


def _executed(path: Path, ran: int) -> Path:
    """A papermill-looking notebook whose first `ran` of its 3 code cells actually ran."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"exception": None, "parameters": {}}
    for i in range(3):
        cell = nbformat.v4.new_code_cell(f"x = {i}")
        done = i < ran
        cell.execution_count = i + 1 if done else None
        # what papermill leaves after Ctrl-C: every cell "completed", the unrun ones without times
        cell.metadata["papermill"] = {
            "status": "completed",
            "exception": None,
            "start_time": "t" if done else None,
            "end_time": "t" if done else None,
        }
        nb.cells.append(cell)
    nbformat.write(nb, path)
    return path


def test_notebook_check_sees_unrun_and_failed_cells(tmp_path):
    assert publish.notebook_problem(_executed(tmp_path / "a.ipynb", 3)) is None
    assert "never ran" in publish.notebook_problem(_executed(tmp_path / "b.ipynb", 1))
    nb = nbformat.read(_executed(tmp_path / "c.ipynb", 3), as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("error", ename="E", evalue="", traceback=[])]
    nbformat.write(nb, tmp_path / "c.ipynb")
    assert "error" in publish.notebook_problem(tmp_path / "c.ipynb")
    (tmp_path / "d.ipynb").write_text('{"cells": [')
    assert "cannot be read" in publish.notebook_problem(tmp_path / "d.ipynb")


def test_publish_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(publish.PublishError, match="not a run folder"):
        publish.publish(tmp_path)


def test_runs_cannot_write_into_the_published_book():
    with pytest.raises(execute.RunError, match="published"):
        runner.resolve_folders(
            "smoke", runner.select_notebooks(["01"]), REPO_ROOT / "book" / "notebooks", None
        )
    with pytest.raises(execute.RunError, match="published"):
        runner.resolve_folders("smoke", runner.select_notebooks(["01"]), "/tmp/x", REPO_ROOT / "results")


def test_atomic_write_replaces_whole_files_with_normal_permissions(tmp_path):
    path = files.atomic_write_text(tmp_path / "a.json", "{}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_run_box_is_only_written_by_publish():
    import inspect

    assert "write_run_info" not in inspect.getsource(runner.run)
    assert runbox.write_run_info.__module__ == "adv2.book.runbox"


# ----------------------------------------------------------------------------- all or nothing
def tree_state(root: Path) -> dict[str, str]:
    """Hash of every file under the fake book's published folders, hidden ones included."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in (root / "book", root / "results")
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def published_book(root: Path) -> None:
    """An earlier publish: this chapter's notebook and results, timings, run box, claims table."""
    (root / "book" / "notebooks").mkdir(parents=True)
    (root / "results").mkdir()
    old = nbformat.v4.new_notebook()
    old.metadata["papermill"] = {"parameters": {"profile": "smoke"}, "duration": 9.0}
    nbformat.write(old, root / "book" / "notebooks" / f"{STEM}.ipynb")
    (root / "results" / f"{STEM}.json").write_text('{"notebook": "old"}')
    (root / "results" / "timings-smoke.json").write_text('{"seconds": {"01_tiny": 9.0}}')
    (root / "book" / "_run_info.md").write_text("old run box\n")
    (root / "book" / "_claims.md").write_text("old claims\n")


def finished_run(root: Path, *args: str) -> Path:
    folder = root / "runs" / f"run{len(list((root / 'runs').glob('*'))) if (root / 'runs').exists() else 0}"
    assert (
        cli.main(["run", "01", "--profile", "smoke", "--no-progress", "--output-dir", str(folder), *args])
        == 0
    )
    return folder


def failing_on(monkeypatch, module, name: str, nth: int, when=lambda *a: True) -> list:
    """Make ``module.name`` raise "no space left on device" on its ``nth`` call that ``when`` accepts."""
    import errno

    real, calls = getattr(module, name), []

    def fake(*args, **kwargs):
        if when(*args):
            calls.append(args)
            if len(calls) == nth:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, fake)
    return calls


@pytest.mark.timeout(300)
def test_disk_full_while_staging_leaves_the_published_book_unchanged(fake_book, monkeypatch, capsys):
    published_book(fake_book)
    run_dir = finished_run(fake_book)
    before = tree_state(fake_book)
    calls = failing_on(monkeypatch, publish, "atomic_write_bytes", 2)  # the 2nd file of the publish
    assert cli.main(["publish", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert len(calls) == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == [
        f"error: publish failed: no space left on device writing "
        f"{fake_book / 'book' / 'notebooks' / f'{STEM}.ipynb'}; the published book is unchanged"
    ], err
    assert tree_state(fake_book) == before  # byte for byte, and no staged file left behind
    monkeypatch.undo()
    monkeypatch.setattr(publish, "BOOK_NOTEBOOKS_DIR", fake_book / "book" / "notebooks")
    monkeypatch.setattr(publish, "PUBLISHED_RESULTS_DIR", fake_book / "results")
    monkeypatch.setattr(publish, "RUN_INFO", fake_book / "book" / "_run_info.md")
    monkeypatch.setattr(publish, "CLAIMS_TABLE", fake_book / "book" / "_claims.md")
    publish.publish(run_dir)  # the same publish with room on the disk goes through
    assert (run_dir / f"{STEM}.ipynb").read_bytes() == (
        fake_book / "book" / "notebooks" / f"{STEM}.ipynb"
    ).read_bytes()


@pytest.mark.timeout(300)
def test_failure_while_swapping_in_puts_the_old_files_back(fake_book, monkeypatch):
    published_book(fake_book)
    run_dir = finished_run(fake_book)
    before = tree_state(fake_book)

    # the first rename of a staged file onto its target succeeds, the second fails: undo the first
    def swapping(src, dst):
        return ".publish-" in Path(src).name and not Path(dst).name.startswith(".")

    calls = failing_on(monkeypatch, os, "replace", 2, when=swapping)
    with pytest.raises(
        publish.PublishError, match="no space left on device.*the published book is unchanged"
    ):
        publish.publish(run_dir)
    monkeypatch.undo()
    assert len(calls) >= 2  # the failed swap, then the renames that put the old files back
    assert tree_state(fake_book) == before


@pytest.mark.timeout(300)
def test_publish_refuses_results_another_run_overwrote_in_a_shared_results_dir(fake_book, capsys):
    """Two runs share one --results-dir: R2 replaces R1's results file. Publishing R1 must not put
    R1's notebook beside R2's numbers."""
    published_book(fake_book)
    shared = fake_book / "shared-results"
    r1 = finished_run(fake_book, "--results-dir", str(shared), "-p", "seed", "1")
    r2 = finished_run(fake_book, "--results-dir", str(shared), "-p", "seed", "2")
    before = tree_state(fake_book)
    capsys.readouterr()
    assert cli.main(["publish", str(r1)]) == 1
    err = capsys.readouterr().err
    assert (
        "changed after the run finished" in err and "--results-dir" in err and "nothing was published" in err
    )
    assert "Traceback" not in err
    assert tree_state(fake_book) == before
    assert cli.main(["publish", str(r2)]) == 0  # R2's own results are still R2's: published
    assert json.loads((fake_book / "results" / f"{STEM}.json").read_text())["seed"] == 2
    assert (r2 / f"{STEM}.ipynb").read_bytes() == (
        fake_book / "book" / "notebooks" / f"{STEM}.ipynb"
    ).read_bytes()


def test_results_outside_the_run_without_recorded_hashes_are_refused(fake_book):
    """A run.json from before the hashes were recorded: results inside the run folder are its own,
    results elsewhere may be another run's."""
    run_dir, elsewhere = fake_book / "old-run", fake_book / "elsewhere"
    run_dir.mkdir()
    elsewhere.mkdir()
    _executed(run_dir / f"{STEM}.ipynb", 3)
    (elsewhere / f"{STEM}.json").write_text("{}")
    entry = {"status": "ok", "notebook": f"{STEM}.ipynb", "seconds": 1.0}
    record = {"status": "ok", "profile": "smoke", "results_dir": str(elsewhere), "notebooks": {STEM: entry}}
    (run_dir / "run.json").write_text(json.dumps(record))
    with pytest.raises(publish.PublishError, match="records no sha256"):
        publish.publish(run_dir)
    (run_dir / "results").mkdir()
    (run_dir / "results" / f"{STEM}.json").write_text("{}")
    record["results_dir"] = str(run_dir / "results")
    (run_dir / "run.json").write_text(json.dumps(record))
    assert publish.publish(run_dir)  # nothing stops it now


# ----------------------------------------------------------------------------- run folders
@pytest.mark.timeout(300)
def test_a_finished_run_folder_is_never_overwritten(fake_book, capsys):
    run_dir = finished_run(fake_book)
    kept = {p.name: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    capsys.readouterr()
    code = cli.main(["run", "01", "--profile", "smoke", "--output-dir", str(run_dir), "-p", "fail", "true"])
    err = capsys.readouterr().err
    assert code == 2 and "already holds a run" in err and "status 'ok'" in err, err
    assert {p.name: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == kept
    # run.json lost (or the run failed later): its finished notebook still protects the folder
    (run_dir / "run.json").unlink()
    assert cli.main(["run", "01", "--profile", "smoke", "--output-dir", str(run_dir), "--check"]) == 2
    assert f"finished notebooks ({STEM}.ipynb)" in capsys.readouterr().err
    assert (run_dir / f"{STEM}.ipynb").read_bytes() == kept[f"{STEM}.ipynb"]


def test_disk_full_in_the_run_folder_is_one_line_and_marks_the_run_failed(fake_book, monkeypatch, capsys):
    """The disk fills while the notebook runs: papermill cannot write the executed copy, and run.json
    has no room for an atomic rewrite. One line on the terminal; run.json says failed, and why."""
    import errno

    import papermill

    run_dir = fake_book / "run"
    full = []

    def no_room(path, *args, **kwargs):
        full.append(path)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    real_write = publish.atomic_write_bytes

    def write(path, data):
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path) + ".tmp")
        return real_write(path, data)

    monkeypatch.setattr(papermill, "execute_notebook", lambda nb, out, **kw: no_room(out))
    monkeypatch.setattr(publish, "atomic_write_bytes", write)
    code = cli.main(["run", "01", "--profile", "smoke", "--output-dir", str(run_dir), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert f"error: notebook {STEM} failed: no space left on device writing " in err, err
    record = read_record(run_dir)
    assert record["status"] == "failed"
    assert record["notebooks"][STEM]["status"] == "failed"
    assert "no space left on device" in record["notebooks"][STEM]["error"]
