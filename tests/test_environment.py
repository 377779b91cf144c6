"""The environment is declared once and pinned: pyproject.toml (pip), environment.yml (conda),
constraints.txt (exact versions), and every import of the code is a declared dependency."""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import sys
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from adv2.core.config import REPO_ROOT

PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]
# installed by the Makefile with --no-deps (its requests pin conflicts with Sphinx; pyproject.toml)
NO_DEPS_EXTRAS = ("torchattacks",)


def _requirements(*groups: str) -> list[Requirement]:
    reqs = list(PROJECT["dependencies"]) if "core" in groups else []
    for g in groups:
        if g != "core":
            reqs += EXTRAS[g]
    return [Requirement(r) for r in reqs]


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin (name==version)"
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_environment_yml_matches_pyproject():
    pip_side = set(EXTRAS["book"] + EXTRAS["test"])
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip_section) == pip_side


# ----------------------------------------------------------------------------- imports are declared
def _imports(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _notebook_source(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    # IPython magics are not Python
    return "\n".join(
        line for cell in code for line in cell.splitlines() if not line.lstrip().startswith(("%", "!"))
    )


def _undeclared(files: list[Path], groups: tuple[str, ...]) -> dict[str, list[str]]:
    declared = {canonicalize_name(r.name) for r in _requirements(*groups)}
    providers = md.packages_distributions()
    local = {"adv2"} | {p.stem for d in ("tests", "book/_ext") for p in (REPO_ROOT / d).glob("*.py")}
    missing: dict[str, list[str]] = {}
    for f in files:
        src = _notebook_source(f) if f.suffix == ".ipynb" else f.read_text()
        for name in _imports(src) - set(sys.stdlib_module_names) - local:
            dists = {canonicalize_name(d) for d in providers.get(name, [])}
            if not dists & declared:
                missing.setdefault(name, []).append(str(f.relative_to(REPO_ROOT)))
    return missing


def test_library_and_notebook_imports_are_declared_dependencies():
    files = sorted((REPO_ROOT / "lib").rglob("*.py")) + sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
    missing = _undeclared(files, ("core", "book"))
    assert not missing, (
        f"imported but not declared in pyproject.toml (dependencies or the book extra): {missing}"
    )


def test_test_and_benchmark_imports_are_declared_dependencies():
    files = sorted((REPO_ROOT / "tests").glob("*.py")) + sorted((REPO_ROOT / "benchmarks").glob("*.py"))
    missing = _undeclared(files, ("core", "book", "test"))
    for name in NO_DEPS_EXTRAS:
        missing.pop(name, None)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


# ----------------------------------------------------------------------------- the lock file
def _closure(reqs: list[Requirement]) -> dict[str, md.Distribution]:
    """Installed distributions of ``reqs`` and everything they require (markers evaluated)."""
    seen: dict[str, md.Distribution] = {}
    todo = [(r, ()) for r in reqs]
    while todo:
        req, extras = todo.pop()
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in (*extras, "")):
            continue
        name = canonicalize_name(req.name)
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            pytest.fail(f"{req.name} (required) is not installed: run `make venv`")
        key = (name, tuple(sorted(req.extras)))
        if key in seen:
            continue
        seen[key] = dist
        todo += [(Requirement(r), tuple(req.extras)) for r in (dist.requires or [])]
    return {name: d for (name, _), d in seen.items()}


def test_constraints_pin_every_package_of_the_extras_at_the_installed_version():
    pins = _constraints()
    closure = _closure(_requirements("core", "book", "test"))
    closure.update({canonicalize_name(n): md.distribution(n) for n in NO_DEPS_EXTRAS})
    unpinned = sorted(set(closure) - set(pins))
    assert not unpinned, f"constraints.txt lacks {unpinned}; regenerate it (see its header)"
    stale = {n: (pins[n], d.version) for n, d in closure.items() if Version(pins[n]) != Version(d.version)}
    assert not stale, f"constraints.txt pins differ from the installed versions (pin, installed): {stale}"


def test_pins_satisfy_every_declared_specifier():
    pins = _constraints()
    for req in _requirements("core", "book", "test"):
        pinned = pins.get(canonicalize_name(req.name))
        assert pinned is not None, f"{req.name} is declared but not pinned in constraints.txt"
        assert req.specifier.contains(pinned, prereleases=True), (
            f"constraints.txt pins {req.name}=={pinned}, outside pyproject.toml's {req}"
        )


# ----------------------------------------------------------------------------- the suite's cache
def test_suite_uses_a_private_artifact_cache():
    from adv2.trained.artifacts import artifact_root

    root = artifact_root().resolve()
    assert root != (REPO_ROOT / "artifacts").resolve()
    assert REPO_ROOT.resolve() not in root.parents


# ----------------------------------------------------------------------------- names the notebooks use
def test_every_adv2_name_the_notebooks_use_exists():
    """Library refactors keep the names the chapters import (re-exported from their old place)."""
    import importlib
    import re

    missing = []
    for nb in sorted((REPO_ROOT / "notebooks").glob("*.ipynb")):
        src = _notebook_source(nb)
        tree = ast.parse(src)
        modules = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "adv2":
                mod = importlib.import_module(node.module)
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    if hasattr(mod, "__path__") and importlib.util.find_spec(sub):  # a submodule
                        modules[alias.asname or alias.name] = importlib.import_module(sub)
                    elif not hasattr(mod, alias.name):
                        missing.append(f"{nb.name}: {node.module}.{alias.name}")
        for name, mod in modules.items():
            for attr in set(re.findall(rf"\b{name}\.([A-Za-z_]\w*)", src)):
                if not hasattr(mod, attr):
                    missing.append(f"{nb.name}: {mod.__name__}.{attr}")
    assert not missing, f"names used by notebooks but missing from the library: {missing}"
