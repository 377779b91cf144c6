"""Gather a sweep into one table: one row per point, its parameters and its headline numbers.

    python -m adv2 sweep-table NAME     # writes runs/sweeps/NAME/table.csv and table.json

Columns: ``point``, ``status``, ``seconds``, every grid parameter, then the chapter's headline
numbers read from each point's results file (``<point>/<stem>.json``, see :mod:`adv2.chapters.results`),
flattened to dotted names (``fashion-mnist.resnet.grad.adv2.success_rate``). For chapter 3 the
headline numbers are success rates, map L1 / IoU and classifier accuracies; for any other notebook,
every scalar number of its results file. A point that failed or never ran has a row with its status
and empty numbers.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from adv2.book import sweepplan
from adv2.book.paths import shown_path, sweeps_root
from adv2.book.sweepplan import SWEEP_RECORD
from adv2.chapters.results import flatten, read_json
from adv2.core.config import ParameterError
from adv2.trained.files import atomic_write_json, atomic_write_text

# the numbers of chapter 3's results that the sweep chapter plots (by the last part of the name)
HEADLINE = {
    "03_adv2": ("success_rate", "l1_mean", "l1_std", "iou_mean", "n", "n_measured"),
}
_FIRST = {"03_adv2": ("classifier_accuracy",)}


def sweep_folder(name: str | Path) -> Path:
    """The folder of sweep ``name``: a sweep's name (a folder of runs/sweeps/) or a sweep folder's
    path (read anywhere; :func:`write_table` writes only under runs/sweeps)."""
    path = Path(name)
    named = sweepplan.valid_name(str(name))  # never join a path like ../../x to runs/sweeps
    folder = path if (path / SWEEP_RECORD).is_file() or not named else sweeps_root() / str(name)
    if not (folder / SWEEP_RECORD).is_file():
        known = sorted(p.name for p in sweeps_root().glob("*") if (p / SWEEP_RECORD).is_file())
        raise ParameterError(
            f"no sweep {str(name)!r} (no {SWEEP_RECORD} in {folder}); known sweeps: "
            + (", ".join(known) or "none yet (python -m adv2 sweep ...)")
        )
    return folder


def headline(stem: str, numbers: dict[str, Any]) -> dict[str, Any]:
    flat = flatten(numbers)
    keep = HEADLINE.get(stem)
    out = {}
    for key, value in flat.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        last, first = key.rsplit(".", 1)[-1], key.split(".", 1)[0]
        if keep is None or last in keep or first in _FIRST.get(stem, ()):
            out[key] = value
    return out


def gather(name: str | Path) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows) of sweep ``name``: one row per point of its grid, in the grid's order."""
    folder = sweep_folder(name)
    record = read_json(folder / SWEEP_RECORD)
    stem, grid = record["notebook"], list(record["grid"])
    rows, numbers_cols = [], {}
    for point in record["points"]:
        pfolder = folder / point["id"]
        status, seconds = point.get("status"), point.get("seconds")
        try:
            prec = read_json(pfolder / "point.json")
            status, seconds = prec.get("status", status), prec.get("seconds", seconds)
        except (OSError, ValueError):
            pass
        row: dict[str, Any] = {"point": point["id"], "status": status, "seconds": seconds}
        row.update({g: point["grid"].get(g) for g in grid})
        results = pfolder / f"{stem}.json"
        if status == "ok" and results.is_file():
            nums = headline(stem, read_json(results).get("numbers", {}))
            numbers_cols.update(dict.fromkeys(nums))
            row.update(nums)
        rows.append(row)
    columns = ["point", "status", "seconds", *grid, *sorted(numbers_cols)]
    return columns, [{c: r.get(c) for c in columns} for r in rows]


def write_table(name: str | Path, output: str | Path | None = None) -> tuple[Path, Path]:
    """Write ``table.csv`` and ``table.json`` (``{"columns", "rows"}``) into the sweep's folder
    (or ``output``.csv / .json); return both paths."""
    columns, rows = gather(name)
    stem = Path(output) if output else sweep_folder(name) / "table"
    root = sweeps_root().resolve()
    if root not in stem.resolve().parents:
        what = f"--output {output}" if output else f"the sweep folder {stem.parent}"
        raise ParameterError(
            f"sweep-table writes only under {root}; {what} is outside it: give the sweep's name "
            "(a folder of runs/sweeps/) and an --output under runs/sweeps, or none"
        )
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()})
    csv_path = atomic_write_text(stem.with_suffix(".csv"), buf.getvalue())
    json_path = atomic_write_json(stem.with_suffix(".json"), {"columns": columns, "rows": rows})
    return csv_path, json_path


def main(args: Any) -> int:
    csv_path, json_path = write_table(args.name, args.output)
    columns, rows = gather(args.name)
    ok = sum(r["status"] == "ok" for r in rows)
    print(
        f"[adv2] {len(rows)} row(s) ({ok} ok), {len(columns)} column(s): "
        f"{shown_path(csv_path)}, {shown_path(json_path)}"
    )
    return 0


__all__ = ["HEADLINE", "gather", "headline", "main", "sweep_folder", "write_table"]
