"""The library's layout (issue 22), read from the source's import graph so that it stays true.

Four floors import one way only: ``core`` (the paper's methods) <- ``trained`` (data, trained
models, store) <- ``chapters`` (each chapter's protocol) <- ``book`` (command line, runs, sweeps,
publishing). Chapter modules never import each other; no import cycles; imports inside functions
only where a module must stay importable without a heavy dependency (torch), each with a comment
saying why;
no module over 500 lines; the map for newcomers (lib/adv2/README.md) names every module; and the
`duplicates` tool reports at most 10 pairs in lib/, each one the map lists as deliberate.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib"
PACKAGE = LIB / "adv2"
FLOORS = {"core": 1, "trained": 2, "chapters": 3, "book": 4}
MAX_LINES = 500
MAX_DUPLICATE_PAIRS = 10
CHAPTER = re.compile(r"^adv2\.chapters\.ch\d\d(\.|$)")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(LIB).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str) -> str | None:
    """The library module an import of ``name`` loads (``adv2.core.stats.fmt`` -> ``adv2.core.stats``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported library module, line, inside a function) for every import of ``path``."""
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                assert child.level == 0, f"{path}:{child.lineno}: relative import (use adv2.<floor>...)"
                names = [f"{child.module}.{a.name}" for a in child.names]
            for n in names:
                target = resolve(n) if n.startswith("adv2") else None
                if target and target != module_name(path):
                    found.append((target, child.lineno, in_function))
            visit(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))

    visit(ast.parse(path.read_text()), False)
    return found


GRAPH = {m: imports(p) for m, p in MODULES.items()}


def floor(module: str) -> int:
    parts = module.split(".")
    return FLOORS.get(parts[1], 0) if len(parts) > 1 else 0


def test_every_module_lives_on_a_floor():
    loose = [m for m in MODULES if floor(m) == 0 and m not in ("adv2", "adv2.__main__")]
    assert not loose, f"modules outside core/trained/chapters/book: {loose}"


def test_floors_import_downwards_only():
    upward = [
        f"{m} (floor {floor(m)}) imports {t} (floor {floor(t)}) at line {line}"
        for m, edges in GRAPH.items()
        for t, line, _ in edges
        if floor(m) and floor(t) > floor(m)
    ]
    assert not upward, "\n".join(upward)


def test_chapter_modules_do_not_import_each_other():
    crossing = [
        f"{m} imports {t}"
        for m, edges in GRAPH.items()
        for t, _, _ in edges
        if CHAPTER.match(m) and CHAPTER.match(t) and t.split(".")[2] != m.split(".")[2]
    ]
    assert not crossing, "\n".join(crossing)


def test_no_import_cycles():
    edges = {m: {t for t, _, _ in e} for m, e in GRAPH.items()}
    # a package's __init__ importing its own submodules is how a package exposes them, not a cycle
    done: set[str] = set()
    cycles: list[list[str]] = []

    def walk(node: str, stack: list[str]) -> None:
        if node in stack:
            cycles.append(stack[stack.index(node) :] + [node])
            return
        if node in done:
            return
        for nxt in sorted(edges[node]):
            if not nxt.startswith(node + "."):
                walk(nxt, stack + [node])
        done.add(node)

    for m in sorted(edges):
        walk(m, [])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def commented(lines: list[str], line: int) -> bool:
    """A comment on the import (its continuation lines included) or in the run of imports, comments
    and blank lines right above it: a function's lazy imports usually share one comment."""
    end = line - 1
    while "(" in lines[line - 1] and ")" not in lines[end]:
        end += 1
    block = lines[line - 1 : end + 1]
    i = line - 2
    while i >= 0 and (not (s := lines[i].strip()) or s.startswith(("#", "import ", "from "))):
        block.append(s)
        i -= 1
    return any("#" in text for text in block)


def test_imports_inside_functions_say_why():
    unexplained = []
    for m, edges in GRAPH.items():
        lines = MODULES[m].read_text().splitlines()
        for _, line, inside in edges:
            if inside and not commented(lines, line):
                unexplained.append(f"{MODULES[m].relative_to(LIB)}:{line}")
    assert not unexplained, "imports inside functions without a comment saying why:\n" + "\n".join(
        unexplained
    )


def test_no_module_over_500_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_map_names_every_module():
    text = (PACKAGE / "README.md").read_text()
    missing = [
        m
        for m, p in MODULES.items()
        if p.name != "__init__.py" and m != "adv2.__main__" and str(p.relative_to(PACKAGE)) not in text
    ]
    assert not missing, f"lib/adv2/README.md does not name: {missing}"


def deliberate_duplicates() -> set[frozenset[str]]:
    """The pairs of files the map's "Deliberate duplicates" table lists (paths under lib/adv2)."""
    text = (PACKAGE / "README.md").read_text().split("## Deliberate duplicates", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` ~ `([^`]+)` \|", text, flags=re.M)
    return {frozenset((a, b)) for a, b in rows}


def test_duplicates_are_few_and_each_is_listed_as_deliberate():
    tool = shutil.which("duplicates")
    if tool is None:
        pytest.skip("the duplicates tool is not installed here")
    out = subprocess.run(
        [tool, "--repo", str(LIB), "--most", "200", "--seconds", "120"],
        capture_output=True, text=True, check=True, cwd=LIB,
    ).stdout  # fmt: skip
    assert "incomplete:" not in out, out
    rows = re.findall(r"^D\d+ (\S+?):\d+-\d+ ~ (\S+?):\d+-\d+", out, flags=re.M)
    assert rows or out.startswith("no duplicates"), out
    assert len(rows) <= MAX_DUPLICATE_PAIRS, out
    found = {frozenset(str(Path(f).relative_to("adv2")) for f in row) for row in rows}
    listed = deliberate_duplicates()
    assert not found - listed, (
        f"pairs lib/adv2/README.md does not list as deliberate: {found - listed}\n{out}"
    )
    assert not listed - found, f"listed pairs the tool no longer reports (remove them): {listed - found}"
