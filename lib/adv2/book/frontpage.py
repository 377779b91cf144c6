"""The front page's summary paragraph and chapter list, computed from ``results/*.json``.

* :func:`summary_paragraph`: how many of the paper's claims hold, per setting and, for a claim
  made for every interpreter, per interpreter (with the estimates and the threshold), and how
  chapter 3's photo attacks converge (:func:`photo_curves_note`, from the convergence curves in
  ``results/03_adv2.json``): no number in it is typed;
* :func:`chapters_table`: one row per chapter found (its title from the published notebook, the
  verdicts it decides, its wall time from ``results/timings-<profile>.json``), so a new chapter
  appears once its results exist.

Both are written into ``book/_claims.md`` by :mod:`adv2.book.claimspage` at publishing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adv2.book import timings
from adv2.chapters import claims
from adv2.chapters.claims import Verdict
from adv2.core.formatting import fmt
from adv2.core.phrases import INTERPRETER_LABELS, convergence_note, joined

Row = tuple[str, str, str, Verdict]  # (results stem, setting, claim id, verdict)
PART_LABELS = INTERPRETER_LABELS
# a status as the verb of a sentence ("it holds for CAM"), and as a count ("3 hold")
VERB = {
    claims.HOLDS: "holds",
    claims.DOES_NOT_HOLD: "does not hold",
    claims.INCONCLUSIVE: "is inconclusive",
    claims.NOT_MEASURABLE: "is not measurable",
}
PLURAL = {
    claims.HOLDS: "hold",
    claims.DOES_NOT_HOLD: "do not hold",
    claims.INCONCLUSIVE: "are inconclusive",
    claims.NOT_MEASURABLE: "are not measurable",
}


def counted(counter: Counter) -> str:
    """ "4 hold, 11 do not hold and 5 are inconclusive" ("1 holds" for one)."""
    return joined(
        [f"{counter[s]} {VERB[s] if counter[s] == 1 else PLURAL[s]}" for s in claims.STATUSES if counter[s]]
    )


def _label(name: str) -> str:
    return PART_LABELS.get(name, name)


def _numbers(results_dir: Path, stem: str) -> dict[str, Any]:
    try:
        data = json.loads((Path(results_dir) / f"{stem}.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# ----------------------------------------------------------------------------- chapter 3's curves
def photo_curves_note(numbers03: Mapping[str, Any]) -> str:
    """What chapter 3's photo convergence curves say (:func:`adv2.core.phrases.convergence_note`
    on ``numbers["photos"]``: where PGD's map distance stops moving, whether ADV2's still moves at
    its last step); "" when the run drew no curves. Chapter 3 glues the same sentence."""
    photos = numbers03.get("photos") if isinstance(numbers03, Mapping) else None
    if not isinstance(photos, Mapping) or not photos.get("curves"):
        return ""
    schedule = str(photos.get("schedule", "")).split(" (")[0] or "this run's schedule"
    return convergence_note(photos["curves"], f"On the photos ({schedule})")


# ----------------------------------------------------------------------------- the summary
def _per_part_sentence(claim: claims.Claim, found: Mapping[str, Verdict]) -> str:
    """ "<statement>" per setting: for which parts it holds, and for which not, with estimates."""
    bits = []
    for setting, v in found.items():
        if not v.parts:
            continue
        groups: dict[str, list[str]] = {}
        for name, part in v.parts:
            est = part.estimate
            shown = (
                f"{_label(name)} {fmt(est.value)}"
                if est is not None and est.value is not None
                else _label(name)
            )
            groups.setdefault(part.status, []).append(shown)
        words = []
        for status in (claims.HOLDS, claims.DOES_NOT_HOLD, claims.INCONCLUSIVE, claims.NOT_MEASURABLE):
            if status in groups:
                words.append(f"{VERB[status]} for {joined(groups[status])}")
        label = {**claims.SETTINGS, **claims.PHOTO_SETTINGS}.get(setting, setting)
        bits.append(f"{label}: it {joined(words)}")
    if not bits:
        return ""
    return f"* *{claim.statement}* ({claim.threshold_text}). " + "; ".join(bits) + "."


def summary_paragraph(results_dir: str | Path, rows: Sequence[Row]) -> str:
    """The front page's short summary: the verdict counts, the per-interpreter reading of the
    claims made for every interpreter, and chapter 3's convergence note; every number from
    ``rows`` (the verdicts in the results files) and the results files themselves."""
    main = [
        (setting, cid, v)
        for _, setting, cid, v in rows
        if claims.is_front_page_setting(setting) and cid in claims.FRONT_PAGE_CLAIMS
    ]
    seen: dict[tuple[str, str], Verdict] = {}
    for setting, cid, v in main:
        seen.setdefault((setting, cid), v)
    if not seen:
        return "**In short.** No verdict has been published yet: run the book (`make book`)."
    counts = Counter(v.status for v in seen.values())
    n_claims = len({cid for _, cid in seen})
    labels = claims.front_page_settings(st for st, _ in seen)
    settings = [s for s in labels if any(s == st for st, _ in seen)]
    tally = counted(counts)
    text = [
        f"**In short.** This run tests {n_claims} of the paper's claims on {len(settings)} settings "
        f"({joined([labels[s] for s in settings])}): of the {len(seen)} verdicts, {tally}. "
        "A claim the paper makes for every interpreter holds only where it holds for each, so its "
        "verdict hides where it does reproduce; per interpreter (or noise type), with the estimate "
        "each verdict was decided on:"
    ]
    for cid in claims.FRONT_PAGE_CLAIMS:
        found = {s: seen[(s, cid)] for s in settings if (s, cid) in seen}
        sentence = _per_part_sentence(claims.CLAIMS[cid], found)
        if sentence:
            text.append(sentence)
    note = photo_curves_note(_numbers(Path(results_dir), "03_adv2").get("numbers", {}))
    if note:
        text.append(f"* *How far chapter 3's photo attacks ran.* {note}")
    return text[0] + ("\n\n" + "\n".join(text[1:]) if len(text) > 1 else "")


# ----------------------------------------------------------------------------- the chapter list
def chapter_title(notebooks_dir: str | Path, stem: str) -> str:
    """The chapter's title from its published notebook's first heading ("" when unreadable)."""
    try:
        nb = json.loads((Path(notebooks_dir) / f"{stem}.ipynb").read_text())
    except (OSError, ValueError):
        return ""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", [])).splitlines():
                if line.startswith("# "):
                    title = line[2:].strip()
                    head, _, rest = title.partition(". ")
                    return rest if head.isdigit() and rest else title
    return ""


def chapters_table(results_dir: str | Path, notebooks_dir: str | Path, rows: Sequence[Row]) -> str:
    """Markdown: one row per chapter with a results file, its verdicts and its wall time."""
    stems = sorted(p.stem for p in Path(results_dir).glob("[0-9][0-9]_*.json"))
    by_stem: dict[str, Counter] = {}
    for stem, _, _, v in rows:
        by_stem.setdefault(stem, Counter())[v.status] += 1
    lines = [
        "| chapter | title | verdicts it decides | wall time (profile) |",
        "|---|---|---|---|",
    ]
    for stem in stems:
        profile = str((_numbers(Path(results_dir), stem).get("params") or {}).get("profile", ""))
        seconds = timings.seconds_of(stem, profile, results_dir) if profile else None
        c = by_stem.get(stem)
        decided = counted(c) if c else "no claim (curves and readings)"
        title = chapter_title(notebooks_dir, stem) or stem
        link = (
            f"[{title}](notebooks/{stem}.ipynb)"
            if (Path(notebooks_dir) / f"{stem}.ipynb").is_file()
            else title
        )
        when = f"{timings.minutes(seconds)} (`{profile}`)" if profile else timings.NOT_MEASURED
        lines.append(f"| {int(stem[:2])} | {link} | {decided} | {when} |")
    return "\n".join(lines)


__all__ = ["chapter_title", "chapters_table", "photo_curves_note", "summary_paragraph"]
