"""The front page's claim tables (``book/_claims.md``): every claim per setting, from the results.

Each chapter's results file (``results/<stem>.json``) holds a ``verdicts`` block,
``{setting: {claim_id: Verdict.as_dict()}}``, computed by :mod:`adv2.chapters.claims` from the chapter's
per-image arrays. This module reads those blocks back and renders them:

* :func:`claims_table`: the paper's claims, one column per main setting (photos, Fashion-MNIST
  ResNet, Fashion-MNIST DenseNet), the rule's threshold beside the paper's value; a claim made for
  every interpreter (or noise type) gets one row per part under its combined row, so a reader sees
  where it holds and where not; where the paper's number is another quantity than the rule's (Table
  10's L1 beside our ratio), a row shows the like quantity beside it;
* :func:`other_verdicts_table`: every other verdict found (the book's own questions, claims tested on
  further settings such as chapter 7's input sizes, any later chapter's), one row per claim and
  setting, so a new chapter's verdicts appear without a change here.

The summary paragraph and the chapter list above them are :mod:`adv2.book.frontpage`'s. It is all
written by :func:`adv2.book.publish.publish` only (atomically, like the run box), so a re-run on its
own never changes the front page.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adv2.book import frontpage
from adv2.book.paths import BOOK_NOTEBOOKS_DIR, CLAIMS_TABLE, PUBLISHED_RESULTS_DIR
from adv2.chapters import claims
from adv2.chapters.claims import Verdict
from adv2.core.formatting import MISSING
from adv2.core.stats import Estimate
from adv2.trained.files import atomic_write_text

PART_LABELS = frontpage.PART_LABELS


def part_label(name: str) -> str:
    """How a claim's part is named in a table: interpreters in capitals ("CAM"), others as is."""
    return PART_LABELS.get(name, name)


def results_files(results_dir: Path) -> list[Path]:
    # chapter files only (timings-*.json hold no numbers, bench_*.json no verdicts), in chapter order:
    # where two chapters decide the same claim on the same setting (chapters 4 and 6 both test
    # "RTSA ≈ RTS on benign inputs"), the first chapter's verdict is shown
    return sorted(p for p in Path(results_dir).glob("[0-9][0-9]_*.json"))


def read_numbers(path: Path) -> dict[str, Any]:
    """A results file's ``numbers`` ({} when unreadable: a damaged file must not stop the page)."""
    try:
        numbers = json.loads(Path(path).read_text()).get("numbers", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return numbers if isinstance(numbers, dict) else {}


def all_verdicts(results_dir: str | os.PathLike) -> list[tuple[str, str, str, Verdict]]:
    """Every verdict in the results files: ``(stem, setting, claim_id, Verdict)`` in chapter order
    (claims the registry does not know are skipped)."""
    out = []
    for path in results_files(Path(results_dir)):
        block = read_numbers(path).get("verdicts") or {}
        if not isinstance(block, dict):
            continue
        for setting, by_claim in block.items():
            for cid, d in (by_claim or {}).items():
                if cid in claims.CLAIMS:
                    try:
                        out.append((path.stem, setting, cid, Verdict.from_dict(d)))
                    except (KeyError, TypeError, ValueError):
                        continue
    return out


def verdicts_from_results(results_dir: str | os.PathLike) -> dict[str, dict[str, Verdict]]:
    """``{setting: {claim_id: Verdict}}`` of the main settings (:data:`claims.SETTINGS`), the first
    chapter's verdict where two decide the same claim."""
    out: dict[str, dict[str, Verdict]] = {}
    for _, setting, cid, v in all_verdicts(results_dir):
        if claims.is_front_page_setting(setting):
            out.setdefault(setting, {}).setdefault(cid, v)
    return out


def claims_table_headers(settings: Sequence[str] = tuple(claims.SETTINGS)) -> list[str]:
    """Headers matching :func:`claims_table`: claim, chapter, rule, paper, one column per setting."""
    labels = {**claims.SETTINGS, **claims.PHOTO_SETTINGS}
    return ["claim of the paper", "chapter", "rule (holds when)", "paper"] + [
        labels.get(s, s) for s in settings
    ]


def status_cell(v: Verdict | None) -> str:
    """A verdict in a cell: "holds: 0.105 [0.0722, 0.145]", the status alone without an estimate."""
    if v is None:
        return MISSING
    if v.estimate is None or v.estimate.value is None:
        return v.status
    return f"{v.status}: {v.estimate}"


def _combined_cell(v: Verdict | None) -> str:
    if v is None:
        return MISSING
    if not v.parts:
        return status_cell(v)
    by_status: dict[str, list[str]] = {}
    for name, part in v.parts:
        by_status.setdefault(part.status, []).append(part_label(name))
    if len(by_status) == 1:
        return f"{v.status} for each part"
    listed = "; ".join(f"{frontpage.VERB[s]} for {', '.join(names)}" for s, names in by_status.items())
    return f"{v.status} as a whole: {listed}"


def _part_names(verdicts: Sequence[Verdict | None]) -> list[str]:
    names: list[str] = []
    for v in verdicts:
        for name, _ in v.parts if v is not None else ():
            if name not in names:
                names.append(name)
    return names


def lookup(numbers: Mapping[str, Any], dotted: str) -> Any:
    """``numbers["a"]["b"]`` for ``"a.b"`` (None where a key is missing)."""
    node: Any = numbers
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def beside_cell(results_dir: Path, claim: claims.Claim, setting: str) -> str:
    """The like-for-like quantity of ``claim`` on ``setting`` (its value and interval), or "—"."""
    if claim.beside is None:
        return MISSING
    _, stem, path = claim.beside
    found = lookup(read_numbers(Path(results_dir) / f"{stem}.json"), path.format(setting=setting))
    if isinstance(found, Mapping) and "value" in found:
        est = Estimate.from_dict(found)
        return MISSING if est.value is None else str(est)
    return MISSING if not isinstance(found, (int, float)) else str(Estimate(found, None, None, 0, ""))


def claims_table(
    verdicts_by_setting: Mapping[str, Mapping[str, Verdict]],
    *,
    claim_ids: Sequence[str] = claims.FRONT_PAGE_CLAIMS,
    settings: Sequence[str] = tuple(claims.SETTINGS),
    results_dir: str | os.PathLike | None = None,
) -> list[list[str]]:
    """The front page's rows: ``[statement, chapter, rule, paper, cell per setting]`` per claim,
    then, for a claim with parts (interpreters, noise types), one row ``["↳ CAM", ...]`` per part
    with its own verdict and estimate; then the like-for-like row where the claim has one
    (``claim.beside``, read from ``results_dir``).

    ``verdicts_by_setting`` is ``{setting: {claim_id: Verdict}}``; a setting or claim that was not
    run reads "—".
    """
    unknown = [s for s in verdicts_by_setting if s not in settings]
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; valid: {', '.join(settings)}")
    for cid in claim_ids:
        claims.claim_named(cid)
    rows = []
    for cid in claim_ids:
        c = claims.CLAIMS[cid]
        found = [verdicts_by_setting.get(s, {}).get(cid) for s in settings]
        rows.append([c.statement, c.chapter, c.threshold_text, c.paper] + [_combined_cell(v) for v in found])
        for name in _part_names(found):
            cells = [status_cell(dict(v.parts).get(name)) if v is not None else MISSING for v in found]
            rows.append([f"↳ {part_label(name)}", "", "", ""] + cells)
        if c.beside is not None:
            label = c.beside[0]
            cells = [
                beside_cell(Path(results_dir or PUBLISHED_RESULTS_DIR), c, s) if v is not None else MISSING
                for s, v in zip(settings, found)
            ]
            rows.append([f"↳ {label}", "", "no verdict: the like quantity", "see the row's label"] + cells)
    return rows


def other_verdicts_table(results_dir: str | os.PathLike) -> list[list[str]]:
    """Every verdict not in :func:`claims_table`: ``[statement, chapter, setting, rule, verdict,
    per part]``, one row per claim and setting, in chapter order."""
    rows = []
    for stem, setting, cid, v in all_verdicts(results_dir):
        if claims.is_front_page_setting(setting) and cid in claims.FRONT_PAGE_CLAIMS:
            continue
        c = claims.CLAIMS[cid]
        parts = "; ".join(f"{part_label(n)} {status_cell(p)}" for n, p in v.parts) or MISSING
        rows.append(
            [
                c.statement,
                str(int(stem[:2])),
                claims.SETTINGS.get(setting, setting),
                c.threshold_text,
                status_cell(v),
                parts,
            ]
        )
    return rows


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_claims_table(
    results_dir: str | os.PathLike, notebooks_dir: str | os.PathLike | None = None
) -> str:
    """The Markdown of ``book/_claims.md``: the summary paragraph, the chapter list, the claims
    table with its footnote and the table of the other verdicts."""
    results_dir = Path(results_dir)
    rows = all_verdicts(results_dir)
    verdicts = verdicts_from_results(results_dir)
    # a column per photo classifier whose verdicts a results file holds (EfficientNet-Lite2's only then)
    settings = tuple(claims.front_page_settings(verdicts))
    table = markdown_table(
        claims_table_headers(settings), claims_table(verdicts, settings=settings, results_dir=results_dir)
    )
    note = (
        "*Each cell: the verdict of the claim's rule (see its chapter) with the estimate it was "
        "decided on and its 95 % interval; the rule column gives the threshold. A claim made for "
        "every interpreter (or noise type) holds only when it holds for each: its first row "
        'combines the parts, the ↳ rows give each part\'s own verdict. "inconclusive" means the '
        "interval contains the threshold at this sample size (the chapter says how many images "
        f"would settle it); {MISSING}: the setting was not run for this claim. Settings with fewer "
        f"than {claims.MIN_IMAGES} images are illustrations, not measurements: their verdicts read "
        '"not measurable".*'
    )
    others = other_verdicts_table(results_dir)
    other_text = ""
    if others:
        other_text = (
            "\n\n**Other verdicts**: the book's own questions and claims tested on further settings "
            "(such as chapter 7's input sizes), one row per claim and setting:\n\n"
            + markdown_table(
                ["claim or question", "chapter", "setting", "rule (holds when)", "verdict", "per part"],
                others,
            )
        )
    return (
        "<!-- written by adv2.book.publish from results/*.json (verdicts blocks); do not edit -->\n\n"
        + frontpage.summary_paragraph(results_dir, rows)
        + "\n\n"
        + frontpage.chapters_table(results_dir, notebooks_dir or BOOK_NOTEBOOKS_DIR, rows)
        + "\n\n**The paper's claims**, per setting:\n\n"
        + table
        + "\n\n"
        + note
        + other_text
        + "\n"
    )


def write_claims_table(
    results_dir: str | os.PathLike | None = None,
    path: str | os.PathLike | None = None,
    notebooks_dir: str | os.PathLike | None = None,
) -> Path:
    """Rewrite the front page's claim table (atomically) from ``results_dir`` (default: the
    published results). Called by publishing only."""
    results_dir = Path(results_dir or PUBLISHED_RESULTS_DIR)
    path = Path(path or CLAIMS_TABLE)
    return atomic_write_text(path, render_claims_table(results_dir, notebooks_dir))


__all__ = [
    "all_verdicts",
    "claims_table",
    "claims_table_headers",
    "other_verdicts_table",
    "part_label",
    "render_claims_table",
    "status_cell",
    "verdicts_from_results",
    "write_claims_table",
]


def _main(argv: Any = None) -> None:  # pragma: no cover - `python -m adv2.book.claimspage`
    print(write_claims_table())


if __name__ == "__main__":  # pragma: no cover
    _main()
