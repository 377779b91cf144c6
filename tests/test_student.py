"""The student edition (`make student`, adv2.book.student; issue 26 item 7): on the real notebooks
every solution is gone, every exercise and every code cell stays, and each copy is a valid notebook.
The counts are taken with plain text searches, not with the module's own parser, so a block the
parser missed would show up here."""

from __future__ import annotations

import re
import subprocess
import sys

import nbformat
import pytest

from adv2.book import student
from adv2.core.config import REPO_ROOT

NOTEBOOKS = REPO_ROOT / "notebooks"
OPENING = re.compile(r"^ {0,3}(`{3,}|:{3,})\{admonition\}\s*(Exercise|Solution)\s*$", re.M)


def _opened(nb, title: str) -> int:
    return sum(
        1 for c in nb.cells if c.cell_type == "markdown" for m in OPENING.finditer(c.source) if m[2] == title
    )


def _markdown(nb) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    return out, student.write_student_edition(NOTEBOOKS, out)


def test_every_solution_is_gone_and_every_exercise_stays(edition):
    out, done = edition
    sources = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert sorted(done) == [p.name for p in sources] and len(sources) >= 9
    total = 0
    for path in sources:
        nb, copy = nbformat.read(path, as_version=4), nbformat.read(out / path.name, as_version=4)
        nbformat.validate(copy)
        solutions, exercises = _opened(nb, "Solution"), _opened(nb, "Exercise")
        assert _opened(copy, "Solution") == 0 and "Solution" not in _markdown(copy).replace("solution", ""), (
            path.name
        )
        assert ":class: dropdown" not in _markdown(copy), path.name  # a solution's body left behind
        assert _opened(copy, "Exercise") == exercises, path.name
        assert done[path.name] == (exercises, solutions)
        # code cells and their tags are untouched; only markdown loses its solution blocks
        assert [(c.source, c.metadata.get("tags")) for c in copy.cells if c.cell_type == "code"] == [
            (c.source, c.metadata.get("tags")) for c in nb.cells if c.cell_type == "code"
        ]
        total += solutions
    assert total >= 20


def test_every_exercise_keeps_its_text_and_the_prose_around_it_stays(edition):
    out, _ = edition
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        nb, copy = nbformat.read(path, as_version=4), nbformat.read(out / path.name, as_version=4)
        kept = _markdown(copy)
        for cell in (c for c in nb.cells if c.cell_type == "markdown"):
            for block in student.admonitions(cell.source):
                text = "".join(cell.source.splitlines(keepends=True)[block.start : block.end]).strip()
                assert (text in kept) == (block.title != student.SOLUTION), (path.name, block.title)
            # every line outside a solution survives (the exercises' instructions, the commands)
            inside = {
                i
                for b in student.admonitions(cell.source)
                if b.title == student.SOLUTION
                for i in range(b.start, b.end)
            }
            for i, line in enumerate(cell.source.splitlines()):
                if i not in inside and line.strip():
                    assert line in kept, (path.name, line)


def test_chapters_seven_and_eight_have_an_exercise_with_a_worked_solution():
    for stem in ("07_input_size", "08_scaling"):
        nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
        assert _opened(nb, "Exercise") >= 1 and _opened(nb, "Solution") == _opened(nb, "Exercise"), stem
        solutions = [
            s for c in nb.cells if c.cell_type == "markdown" for s in student.split_solutions(c.source)[1]
        ]
        # a worked solution: code that reads what the chapter computed through the library
        assert any("```python" in s and ("import adv2" in s or "from adv2" in s) for s in solutions), stem


def test_nested_fences_and_a_cell_that_only_holds_a_solution():
    text = (
        "## Exercises\n\n```{admonition} Exercise\n:class: tip\nDo it.\n```\n"
        "````{admonition} Solution\n:class: dropdown\nLike this:\n\n```python\nprint(1)\n```\n\nDone.\n````\n"
        "\nAfter.\n"
    )
    kept, removed = student.split_solutions(text)
    assert kept == "## Exercises\n\n```{admonition} Exercise\n:class: tip\nDo it.\n```\n\nAfter."
    assert len(removed) == 1 and removed[0].startswith("````{admonition} Solution") and "Done." in removed[0]
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell(text),
            nbformat.v4.new_markdown_cell("```{admonition} Solution\n:class: dropdown\nAll of it.\n```"),
            nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["solution"]}),
            nbformat.v4.new_code_cell("y = 2"),
        ]
    )
    out = student.strip_solutions(nb)
    assert [c.source for c in out.cells] == [kept, "y = 2"]
    assert len(nb.cells) == 4  # the original is untouched
    nbformat.validate(out)


def test_refuses_to_overwrite_its_source_and_an_empty_folder(tmp_path):
    with pytest.raises(ValueError, match="overwrite"):
        student.write_student_edition(NOTEBOOKS, NOTEBOOKS)
    with pytest.raises(FileNotFoundError, match="NN_"):
        student.write_student_edition(tmp_path, tmp_path / "out")


def test_the_command_make_student_runs(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "adv2.book.student", "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    )
    assert "solutions removed" in done.stdout and len(list(tmp_path.glob("*.ipynb"))) >= 9
    make = subprocess.run(["make", "-n", "student"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert "-m adv2.book.student --output _build/student" in make.stdout
