"""Every command the README, the book's pages and the exercises print works, and none of them
changes the published book (book/notebooks, results/, the front page's run box).

Each `python -m adv2 ...`, `make ...` and `papermill ...` command found in code spans and code
blocks is parsed and validated (`run ... --check`, `make -n`, papermill's own value parsing against
the notebook's parameters); a small representative subset is executed at `--profile smoke` in a
temporary run folder. A command printed in the docs that stops parsing fails here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from adv2.book import cli, paths, publish, runner
from adv2.core.config import REPO_ROOT
from test_publish import published_state

PREFIXES = (".venv/bin/", "$ ")
# executed for real at smoke (about a minute on 2 cores in all); each must appear in the docs
EXECUTED = ("python -m adv2 run 01 -p arch densenet",)


def doc_sources() -> list[tuple[str, str]]:
    """(where, markdown text) for the README, every book page and every notebook markdown cell."""
    out = [("README.md", (REPO_ROOT / "README.md").read_text())]
    out += [(str(p.relative_to(REPO_ROOT)), p.read_text()) for p in sorted((REPO_ROOT / "book").glob("*.md"))]
    for path in sorted((REPO_ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        out += [
            (f"{path.name} cell {i}", c.source) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
        ]
    return out


def _code_snippets(text: str) -> list[str]:
    """Lines of code blocks and inline code spans; a MyST directive fence (```{admonition}) holds
    prose, so its inline spans count, not its lines."""
    snippets, fences = [], []  # stack of open fences: True for code, False for a directive
    for line in text.splitlines():
        fence = re.match(r"^\s*(`{3,}|:{3,})\s*(\S*)", line)
        if fence:
            info = fence.group(2)
            if info and not (fences and fences[-1]):
                fences.append(not info.startswith("{") or info in ("{code-block}", "{code-cell}"))
                continue
            if not info and fences:
                fences.pop()
                continue
        if fences and fences[-1]:
            snippets.append(re.sub(r"\s+#\s.*$", "", line.strip()))
        else:
            snippets += re.findall(r"`([^`\n]+)`", line)
    return snippets


def _command(snippet: str) -> str | None:
    for prefix in PREFIXES:
        snippet = snippet.removeprefix(prefix)
    snippet = re.sub(r"^\.venv/bin/", "", snippet.strip())
    if re.match(r"^(python3? -m adv2|make|papermill)(\s|$)", snippet):
        return snippet
    return None


def documented_commands() -> list[tuple[str, str]]:
    found = []
    for where, text in doc_sources():
        for snippet in _code_snippets(text):
            for part in re.split(r"\s*(?:&&|;)\s*", snippet):
                command = _command(part)
                if command and (where, command) not in found:
                    found.append((where, command))
    return found


COMMANDS = documented_commands()


def test_the_docs_print_commands():
    kinds = {c.split()[0] for _, c in COMMANDS}
    assert {"python", "make", "papermill"} <= kinds, kinds
    assert len(COMMANDS) >= 10
    shown = {c for _, c in COMMANDS}
    for command in EXECUTED:
        assert command in shown, f"{command!r} is no longer in the docs: update EXECUTED"


@pytest.fixture(scope="module")
def untouched():
    """The published files, byte for byte, before and after every command of this module."""
    before = published_state()
    yield
    assert published_state() == before, "a documented command changed the published book"


@pytest.mark.parametrize("where,command", COMMANDS, ids=[f"{w}: {c}" for w, c in COMMANDS])
def test_documented_command_parses_and_validates(where, command, untouched, tmp_path, monkeypatch):
    monkeypatch.setenv(paths.RUNS_ENV, str(tmp_path / "runs"))
    # a documented folder (-p imagenet_dir /data/imagenet/val) is the reader's own data: --check
    # refuses it where it does not exist, which this machine says nothing about
    monkeypatch.setattr(runner, "INPUT_FOLDERS", ())
    argv = shlex.split(command)
    if argv[0] == "make":
        check_make(argv[1:])
    elif argv[0] == "papermill":
        check_papermill(argv[1:])
    else:
        check_adv2(argv[3:])
    assert not (tmp_path / "runs").exists(), "validation must not create a run folder"


def check_adv2(argv: list[str]) -> None:
    try:
        args = cli.build_parser().parse_args(argv)
    except SystemExit as exit_:
        raise AssertionError(f"python -m adv2 {' '.join(argv)} does not parse") from exit_
    if args.command == "run":
        assert cli.main([*argv, "--check"]) == 0, "the run's parameters do not validate"
    elif args.command == "list":
        assert cli.main(argv) == 0
    elif args.command == "sweep":
        assert cli.main([*argv, "--check"]) == 0, "the sweep's points do not validate"


def check_make(argv: list[str]) -> None:
    targets = [a for a in argv if "=" not in a and not a.startswith("-")]
    makefile = (REPO_ROOT / "Makefile").read_text()
    for target in targets:
        assert re.search(rf"^{re.escape(target)}:", makefile, re.MULTILINE), f"no make target {target!r}"
    # -n prints the recipe without running it: the target and its variables make sense
    proc = subprocess.run(
        ["make", "-n", "-C", str(REPO_ROOT), *argv], capture_output=True, check=False, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


def check_papermill(argv: list[str]) -> None:
    from papermill.cli import _resolve_type

    source, output, rest = Path(argv[0]), Path(argv[1]), argv[2:]
    notebook = REPO_ROOT / source
    assert notebook.is_file(), f"{source} does not exist"
    params = {}
    while rest:
        flag, name, value, *rest = rest
        assert flag in ("-p", "--parameters"), f"unexpected papermill argument {flag!r}"
        params[name] = _resolve_type(value)
    unknown = set(params) - set(runner.declared_parameters(notebook))
    assert not unknown, f"{source.name} has no parameter {sorted(unknown)}"
    runner.validate_parameters(notebook, params)
    # papermill knows nothing of run folders: the command must keep the published files out of it
    for published in (paths.BOOK_NOTEBOOKS_DIR, paths.PUBLISHED_RESULTS_DIR):
        assert not paths.is_within(REPO_ROOT / output, published), f"{output} is published"
    assert "results_dir" in params, "papermill without results_dir writes into the published results/"
    assert not paths.is_within(REPO_ROOT / params["results_dir"], paths.PUBLISHED_RESULTS_DIR)


@pytest.mark.notebook
@pytest.mark.timeout(600)
@pytest.mark.parametrize("command", EXECUTED)
def test_documented_command_runs_at_smoke_into_its_own_folder(command, untouched, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    env = dict(
        os.environ,
        **{paths.RUNS_ENV: str(runs)},
        PYTHONPATH=str(REPO_ROOT / "lib") + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    argv = [sys.executable, *shlex.split(command)[1:], "--profile", "smoke", "--no-progress"]
    proc = subprocess.run(
        argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=580, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run_dir,) = runs.iterdir()
    assert proc.stdout.count(run_dir.name) >= 2, "the run folder is printed at the start and the end"
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "ok"
    for stem, entry in record["notebooks"].items():
        assert entry["status"] == "ok" and (run_dir / "results" / f"{stem}.json").is_file()
        assert publish.notebook_problem(run_dir / f"{stem}.ipynb") is None
    # the documented publish step accepts it (into a stand-in book: this test must not publish)
    monkeypatch.setattr(publish, "BOOK_NOTEBOOKS_DIR", tmp_path / "book" / "notebooks")
    monkeypatch.setattr(publish, "PUBLISHED_RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(publish, "RUN_INFO", tmp_path / "book" / "_run_info.md")
    monkeypatch.setattr(publish, "CLAIMS_TABLE", tmp_path / "book" / "_claims.md")
    assert cli.main(["publish", str(run_dir)]) == 0
    box = (tmp_path / "book" / "_run_info.md").read_text()
    assert "`archs=['densenet']`" in box
