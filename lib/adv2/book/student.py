"""The student edition: the chapter notebooks without the exercises' worked solutions (``make
student``; ``python -m adv2.book.student [--source DIR] [--output DIR]``).

The book's convention (every chapter's *Exercises* section): an exercise is a MyST admonition titled
"Exercise" (``:class: tip``) and its worked solution the admonition titled "Solution" right after it
(``:class: dropdown``, shown folded in the HTML); a solution that holds a code block is fenced with
four backticks so that its inner fence does not close it. :func:`strip_solutions` removes every
Solution block from the markdown cells (and every cell tagged ``solution``); the exercises and
everything else stay, and a markdown cell left empty is dropped. The PDF moves the same blocks to
an appendix (``book/_ext/build_pdf.py``).
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from adv2.book.paths import NOTEBOOKS_DIR
from adv2.core.config import REPO_ROOT
from adv2.trained.files import atomic_write_text

EXERCISE, SOLUTION = "Exercise", "Solution"  # the admonitions' titles
SOLUTION_TAG = "solution"  # a whole cell that is a solution (none today; stripped too)
STUDENT_DIR = REPO_ROOT / "_build" / "student"
_OPENING = re.compile(r"^ {0,3}(?P<fence>`{3,}|:{3,})\{admonition\}[ \t]*(?P<title>.*?)\s*$")


@dataclass(frozen=True)
class Admonition:
    """One ``{admonition}`` block of a markdown text: its title and its lines ``[start, end)``."""

    title: str
    start: int
    end: int


def admonitions(text: str) -> list[Admonition]:
    """Every top-level ``{admonition}`` block of ``text``, in order. A block closes at the first line
    that is only its fence character, at least as long as its opening fence (MyST's rule; a shorter
    fence inside, such as a solution's code block, does not close it). An unclosed block runs to the
    end of the text, as MyST reads it."""
    lines = text.splitlines(keepends=True)
    found, i = [], 0
    while i < len(lines):
        m = _OPENING.match(lines[i])
        if not m:
            i += 1
            continue
        fence = m.group("fence")
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = next((j + 1 for j in range(i + 1, len(lines)) if closing.match(lines[j])), len(lines))
        found.append(Admonition(m.group("title"), i, end))
        i = end
    return found


def split_solutions(text: str) -> tuple[str, list[str]]:
    """``text`` without its Solution blocks, and those blocks (each as written, fences included)."""
    lines = text.splitlines(keepends=True)
    blocks = [a for a in admonitions(text) if a.title == SOLUTION]
    removed = {i for a in blocks for i in range(a.start, a.end)}
    kept = "".join(line for i, line in enumerate(lines) if i not in removed)
    kept = re.sub(r"\n{3,}", "\n\n", kept)  # no gap of blank lines where a block was
    return kept.rstrip("\n") if kept.strip() else "", ["".join(lines[a.start : a.end]) for a in blocks]


def count(nb: nbformat.NotebookNode, title: str) -> int:
    """How many admonitions titled ``title`` the markdown cells of ``nb`` hold."""
    return sum(a.title == title for c in nb.cells if c.cell_type == "markdown" for a in admonitions(c.source))


def strip_solutions(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` without its solutions; ``nb`` itself is left as it is."""
    out = copy.deepcopy(nb)
    cells = []
    for cell in out.cells:
        if SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        if cell.cell_type == "markdown":
            cell.source, removed = split_solutions(cell.source)
            if removed and not cell.source:
                continue
        cells.append(cell)
    out.cells = cells
    out.metadata.setdefault("adv2", {})["edition"] = "student: exercises without their solutions"
    return out


def write_student_edition(
    source: str | Path = NOTEBOOKS_DIR, output: str | Path = STUDENT_DIR
) -> dict[str, tuple[int, int]]:
    """Write every ``NN_*.ipynb`` of ``source`` without solutions into ``output`` (each validated
    by nbformat before it is written); ``{notebook name: (exercises kept, solutions removed)}``."""
    source, output = Path(source), Path(output)
    notebooks = sorted(source.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no chapter notebooks (NN_*.ipynb) in {source}")
    if output.resolve() == source.resolve():
        raise ValueError(
            f"the student edition would overwrite the notebooks in {source}: choose another --output"
        )
    done = {}
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        student = strip_solutions(nb)
        nbformat.validate(student)
        atomic_write_text(output / path.name, nbformat.writes(student) + "\n")
        done[path.name] = (count(student, EXERCISE), count(nb, SOLUTION) - count(student, SOLUTION))
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m adv2.book.student", description=__doc__.split("\n")[0])
    ap.add_argument(
        "--source", type=Path, default=NOTEBOOKS_DIR, help="the chapter notebooks (default notebooks/)"
    )
    ap.add_argument(
        "--output", type=Path, default=STUDENT_DIR, help="where the copies go (default _build/student/)"
    )
    args = ap.parse_args(argv)
    done = write_student_edition(args.source, args.output)
    exercises, solutions = (sum(v[k] for v in done.values()) for k in (0, 1))
    print(
        f"wrote {len(done)} notebooks to {args.output}: {exercises} exercises kept, "
        f"{solutions} solutions removed"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover - `make student`
    sys.exit(main())
