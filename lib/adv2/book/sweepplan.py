"""Plan a parameter sweep: expand a grid into points, validate every point, group points into tasks.

A sweep is one notebook run at many parameter sets (the *points*): the profile's values, the fixed
``-p`` overrides, and one value per ``-g`` grid parameter. Every point is checked against the
chapter's schema (:func:`adv2.book.runner.notebook_parameters`) before anything starts, so a typo in the
ninth value fails in a second, not after eight runs.

Points that share their trained models (the same ``recipe`` parameters of the chapter's schema:
classifier and RTS recipes) are grouped into one task. The attacks take one epsilon per call
(``adv2.core.attacks`` has no per-image budget), so a group is not one batched attack: its points run
one after another in one kernel (one process), which pays the kernel start and the torch / adv2
imports once per task instead of once per point. Groups are split so there are at least as many
tasks as the cluster can run at once (grouping never costs parallelism).

Pure planning: no Ray, no kernel, no torch here (cheap to import and to test).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from adv2.book.paths import shown_path
from adv2.book.runner import notebook_parameters
from adv2.chapters import schema
from adv2.core.config import ParameterError

SWEEP_RECORD = "sweep.json"
POINT_RECORD = "point.json"
# parameters a point's folder name never shows (set by the sweep itself)
_HIDDEN = ("results_dir",)
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass
class Point:
    """One parameter set of the sweep: ``id`` names its folder, ``grid`` its grid values."""

    id: str
    grid: dict[str, Any]
    params: dict[str, Any]
    folder: Path
    done: bool = False


@dataclass
class Plan:
    notebook: Path
    name: str
    profile: str
    folder: Path
    grid: dict[str, list[Any]]
    fixed: dict[str, Any]
    points: list[Point]
    code: str = ""  # the library's fingerprint: every point this plan runs is recorded with it
    tasks: list[list[Point]] = field(default_factory=list)

    @property
    def todo(self) -> list[Point]:
        return [p for p in self.points if not p.done]

    def summary(self) -> str:
        done = len(self.points) - len(self.todo)
        return (
            f"sweep {self.name}: {len(self.points)} point(s) of {self.notebook.stem} at profile "
            f"{self.profile}, all valid; {done} already complete (skipped), {len(self.todo)} to run "
            f"as {len(self.tasks)} task(s)"
        )


# ----------------------------------------------------------------------------- the grid
def split_values(text: str) -> list[str]:
    """``"0.05,0.1,[a,b]"`` -> ``["0.05", "0.1", "[a,b]"]``: commas inside brackets stay."""
    out, depth, current = [], 0, ""
    for ch in text:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(current.strip())
            current = ""
        else:
            current += ch
    out.append(current.strip())
    return [v for v in out if v != ""]


def parse_grid(pairs: Sequence[Sequence[str]]) -> dict[str, list[Any]]:
    """``-g NAME V1,V2,...`` pairs to ``{name: [values]}`` (each value read as YAML)."""
    grid: dict[str, list[Any]] = {}
    for name, values in pairs:
        if name in grid:
            raise ParameterError(f"grid parameter {name!r} is given twice; give all its values in one -g")
        parsed = [yaml.safe_load(v) for v in split_values(values)]
        if not parsed:
            raise ParameterError(f"grid parameter {name!r} has no values; expected V1,V2,...")
        if len({json.dumps(v, sort_keys=True) for v in parsed}) != len(parsed):
            raise ParameterError(f"grid parameter {name!r} repeats a value: {values!r}")
        grid[name] = parsed
    return grid


def _token(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(_token(v) for v in value)
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return re.sub(r"[^A-Za-z0-9.+-]", "_", text)


def point_id(grid_values: dict[str, Any]) -> str:
    """A readable, stable folder name: ``epsilon-0.05_seed-1`` (sorted by name)."""
    if not grid_values:
        return "default"
    return "_".join(f"{k}-{_token(v)}" for k, v in sorted(grid_values.items()))


def valid_name(name: str) -> bool:
    """A sweep name is one folder name (no path: never ``..`` or ``/``)."""
    return bool(_NAME_OK.match(name))


def check_name(name: str) -> str:
    if not valid_name(name):
        raise ParameterError(
            f"sweep name {name!r} is not valid; expected letters, digits, '.', '_' or '-' "
            "(at most 100, starting with a letter or digit)"
        )
    return name


def default_name(notebook: Path, profile: str, grid: dict[str, list[Any]]) -> str:
    return f"{notebook.stem.split('_')[0]}-{profile}-" + ("-".join(sorted(grid)) or "default")


# ----------------------------------------------------------------------------- points
def expand(
    notebook: Path,
    profile: str,
    grid: dict[str, list[Any]],
    fixed: dict[str, Any],
    folder: Path,
) -> list[Point]:
    """Every combination of the grid's values, each validated against the chapter's parameters
    (raises :class:`ParameterError` naming the point, the parameter and the valid values)."""
    clash = sorted(set(grid) & set(fixed))
    if clash:
        raise ParameterError(f"parameter(s) {', '.join(map(repr, clash))} given both as -g and as -p")
    for hidden in _HIDDEN:
        if hidden in grid or hidden in fixed:
            raise ParameterError(f"parameter {hidden!r} is set by the sweep (each point's folder)")
    names = sorted(grid)
    points = []
    for combo in itertools.product(*(grid[n] for n in names)):
        values = dict(zip(names, combo))
        pid = point_id(values)
        pfolder = folder / pid
        try:
            params = notebook_parameters(notebook, profile, {**fixed, **values}, shown_path(pfolder))
        except ParameterError as err:
            raise ParameterError(f"point {pid}: {err}") from None
        points.append(Point(pid, values, params, pfolder))
    return points


def code_fingerprint() -> str:
    """A hash of the library's source (every ``adv2/**/*.py``): a point computed by other code, or
    on models that other code trained, is not this code's result."""
    root = library_root()
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def library_root() -> Path:
    """The ``adv2`` package folder, all four floors (this module sits in ``adv2/book/``)."""
    return Path(__file__).resolve().parents[1]


def is_complete(point: Point, stem: str, code: str | None = None) -> bool:
    """The point ran to the end with these very parameters and this very library: its record says
    ok, names ``code`` (default :func:`code_fingerprint`), its executed notebook is there, and so
    is its results file when the notebook writes one."""
    record = point.folder / POINT_RECORD
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return False
    if data.get("status") != "ok" or data.get("params") != json.loads(json.dumps(point.params)):
        return False
    if data.get("code") != (code or code_fingerprint()):
        return False
    if not (point.folder / f"{stem}.ipynb").is_file():
        return False
    return "results_dir" not in point.params or (point.folder / f"{stem}.json").is_file()


# ----------------------------------------------------------------------------- tasks
def recipe_key(stem: str, params: dict[str, Any]) -> str:
    """What decides a point's trained models: its ``recipe`` parameters (chapters), else nothing
    known (a notebook outside the book: every point its own group)."""
    if stem not in schema.STEMS:
        return json.dumps(params, sort_keys=True)
    recipe = {n: params.get(n) for n, p in schema.chapter_schema(stem).items() if p.role == "recipe"}
    return json.dumps(recipe, sort_keys=True)


def group(points: Sequence[Point], stem: str, slots: int) -> list[list[Point]]:
    """Points sharing their trained models, in chunks small enough that there are at least
    ``slots`` tasks when there are that many points (so every slot has work)."""
    groups: dict[str, list[Point]] = {}
    for p in points:
        groups.setdefault(recipe_key(stem, p.params), []).append(p)
    if not points:
        return []
    size = max(1, math.ceil(len(points) / max(1, slots)))
    tasks = []
    for members in groups.values():
        tasks.extend(members[i : i + size] for i in range(0, len(members), size))
    return tasks


def plan(
    notebook: Path,
    profile: str,
    grid: dict[str, list[Any]],
    fixed: dict[str, Any],
    name: str | None,
    root: Path,
) -> Plan:
    """Expand and validate the grid and mark the points already complete (no tasks yet: their
    number depends on the cluster's size, see :func:`group`)."""
    name = check_name(name or default_name(notebook, profile, grid))
    folder = root / name
    points = expand(notebook, profile, grid, fixed, folder)
    result = Plan(notebook, name, profile, folder, grid, fixed, points, code_fingerprint())
    refresh(result)
    return result


def refresh(plan: Plan) -> None:
    """Check the plan against the sweep's record and mark its complete points (again: the sweep
    does it once more when it holds the sweep's lock, as another sweep may have run meanwhile)."""
    check_same_grid(plan)
    for p in plan.points:
        p.done = is_complete(p, plan.notebook.stem, plan.code)


def _canonical(grid: Any) -> dict[str, list[str]]:
    # the order of a parameter's values does not change the points
    return {k: sorted(json.dumps(v, sort_keys=True) for v in vals) for k, vals in (grid or {}).items()}


def check_same_grid(plan: Plan) -> None:
    """Refuse a sweep whose name already holds a sweep of another notebook or grid: its record
    (and ``sweep-table``) would lose the old points or mix two grids."""
    try:
        record = json.loads((plan.folder / SWEEP_RECORD).read_text())
    except (OSError, ValueError):
        return  # no record yet (a new sweep, or one stopped before its first record)
    old_stem, old_grid = record.get("notebook"), record.get("grid")
    if old_stem == plan.notebook.stem and _canonical(old_grid) == _canonical(plan.grid):
        return
    raise ParameterError(
        f"sweep name {plan.name!r} already holds another sweep: {old_stem} with grid "
        f"{json.dumps(old_grid)}; this one is {plan.notebook.stem} with grid {json.dumps(plan.grid)}. "
        f"Give this sweep another name (--name {plan.name}-2) or remove the old one "
        f"(rm -r {shown_path(plan.folder)})"
    )


__all__ = [
    "POINT_RECORD",
    "SWEEP_RECORD",
    "Plan",
    "Point",
    "check_name",
    "check_same_grid",
    "code_fingerprint",
    "expand",
    "group",
    "is_complete",
    "parse_grid",
    "plan",
    "point_id",
    "recipe_key",
    "refresh",
    "split_values",
    "valid_name",
]
