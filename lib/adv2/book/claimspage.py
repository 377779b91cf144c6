"""The front page's claim table (``book/_claims.md``): every claim per setting, from the results.

Each chapter's results file (``results/<stem>.json``) holds a ``verdicts`` block,
``{setting: {claim_id: Verdict.as_dict()}}``, computed by :mod:`adv2.chapters.claims` from the chapter's
per-image arrays. This module reads those blocks back and renders them (:func:`claims_table`):
one row per claim, one column per setting (photos, Fashion-MNIST ResNet, Fashion-MNIST DenseNet),
"—" where a setting was not run. It is written by :func:`adv2.book.publish.publish` only (atomically,
like the run box), so a re-run on its own never changes the front page.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import Any

from adv2.trained.files import atomic_write_text
from adv2.book.paths import CLAIMS_TABLE, PUBLISHED_RESULTS_DIR
from adv2.chapters import claims
from adv2.chapters.claims import Verdict
from adv2.core.formatting import MISSING


def _results_files(results_dir: Path) -> list[Path]:
    # chapter files only (timings-*.json hold no numbers), in chapter order: where two chapters
    # decide the same claim on the same setting (chapters 4 and 6 both test "RTSA ≈ RTS on benign
    # inputs"), the first chapter's verdict is shown, as the claim's chapter column lists it first
    return sorted(p for p in Path(results_dir).glob("*.json") if not p.name.startswith("timings"))


def verdicts_from_results(results_dir: str | os.PathLike) -> dict[str, dict[str, Verdict]]:
    """``{setting: {claim_id: Verdict}}`` read from the ``verdicts`` blocks of the results files
    in ``results_dir`` (files without one, or unreadable, contribute nothing)."""
    out: dict[str, dict[str, Verdict]] = {}
    for path in _results_files(Path(results_dir)):
        try:
            block = json.loads(path.read_text()).get("numbers", {}).get("verdicts") or {}
        except (OSError, ValueError, AttributeError):
            continue
        for setting, by_claim in block.items():
            if setting not in claims.SETTINGS:
                continue
            for cid, d in by_claim.items():
                if cid in claims.CLAIMS:
                    out.setdefault(setting, {}).setdefault(cid, Verdict.from_dict(d))
    return out


def claims_table_headers(settings: Sequence[str] = tuple(claims.SETTINGS)) -> list[str]:
    """Headers matching :func:`claims_table`: claim, chapter, paper, one column per setting."""
    return ["claim of the paper", "chapter", "paper"] + [claims.SETTINGS.get(s, s) for s in settings]


def claims_table(
    verdicts_by_setting: Mapping[str, Mapping[str, Verdict]],
    *,
    claim_ids: Sequence[str] = claims.FRONT_PAGE_CLAIMS,
    settings: Sequence[str] = tuple(claims.SETTINGS),
) -> list[list[str]]:
    """The front page's rows: ``[statement, chapter, paper, cell per setting]`` per claim.

    ``verdicts_by_setting`` is ``{setting: {claim_id: Verdict}}`` with settings among
    :data:`adv2.chapters.claims.SETTINGS` (``photos``, ``resnet``, ``densenet``); a setting or claim that was not run
    reads "—". Cells are :meth:`adv2.chapters.claims.Verdict.cell` (status and estimate).
    """
    unknown = [s for s in verdicts_by_setting if s not in settings]
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; valid: {', '.join(settings)}")
    for cid in claim_ids:
        claims.claim_named(cid)
    rows = []
    for cid in claim_ids:
        c = claims.CLAIMS[cid]
        row = [c.statement, c.chapter, c.paper]
        for s in settings:
            v = verdicts_by_setting.get(s, {}).get(cid)
            row.append(MISSING if v is None else v.cell())
        rows.append(row)
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_claims_table(results_dir: str | os.PathLike) -> str:
    """The Markdown of ``book/_claims.md``: the claims table and its footnote."""
    verdicts = verdicts_from_results(results_dir)
    headers = claims_table_headers()
    rows = claims_table(verdicts)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(str(c)) for c in row) + " |" for row in rows]
    note = (
        "*Each cell: the verdict of the claim's rule (see its chapter) with the estimate it was "
        'decided on and its 95 % interval; "inconclusive" means the interval contains the '
        "threshold at this sample size (the chapter says how many images would settle it); "
        f"{MISSING}: the setting was not run for this claim. Settings with fewer than "
        f"{claims.MIN_IMAGES} images are illustrations, not measurements: their verdicts read "
        '"not measurable".*'
    )
    return (
        "<!-- written by adv2.book.publish from results/*.json (verdicts blocks); do not edit -->\n\n"
        + "\n".join(lines)
        + "\n\n"
        + note
        + "\n"
    )


def write_claims_table(
    results_dir: str | os.PathLike | None = None, path: str | os.PathLike | None = None
) -> Path:
    """Rewrite the front page's claim table (atomically) from ``results_dir`` (default: the
    published results). Called by publishing only."""
    results_dir = Path(results_dir or PUBLISHED_RESULTS_DIR)
    path = Path(path or CLAIMS_TABLE)
    return atomic_write_text(path, render_claims_table(results_dir))


__all__ = [
    "claims_table",
    "claims_table_headers",
    "render_claims_table",
    "verdicts_from_results",
    "write_claims_table",
]


def _main(argv: Any = None) -> None:  # pragma: no cover - `python -m adv2.book.claimspage`
    print(write_claims_table())


if __name__ == "__main__":  # pragma: no cover
    _main()
