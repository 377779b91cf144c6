"""The book's run times, from one place: ``results/timings-<profile>.json``.

Publishing a run merges each notebook's wall time (the run record's) into that file
(:func:`adv2.book.publish.merge_timings`); every page that quotes a run time reads it back here:
the front page's run box (:mod:`adv2.book.runbox`) and chapter list (:mod:`adv2.book.frontpage`),
the re-running and teaching pages (``book/_ext/run_timings.py``) and the README's *Run time*
section, which ``make readme`` rewrites between its markers (:func:`update_readme`; a test checks
that the README says what the file says).

``python -m adv2.book.timings [--readme]`` prints (or writes) that section.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from adv2.book.paths import PUBLISHED_RESULTS_DIR, read_json_quietly
from adv2.core.config import REPO_ROOT
from adv2.trained.files import atomic_write_text

README = REPO_ROOT / "README.md"
BEGIN, END = "<!-- run-times: begin (make readme) -->", "<!-- run-times: end -->"
NOT_MEASURED = "not measured"


def read(profile: str, results_dir: str | Path | None = None) -> dict[str, Any]:
    """``{"seconds": {stem: s}, "environment": {...}}`` of ``timings-<profile>.json`` ({} parts
    when the file is missing or damaged)."""
    data = read_json_quietly(Path(results_dir or PUBLISHED_RESULTS_DIR) / f"timings-{profile}.json")
    if not isinstance(data, dict):
        return {"seconds": {}, "environment": {}}
    seconds = data.get("seconds") if isinstance(data.get("seconds"), dict) else {}
    env = data.get("environment") if isinstance(data.get("environment"), dict) else {}
    return {
        "seconds": {k: float(v) for k, v in seconds.items() if isinstance(v, (int, float))},
        "environment": env,
    }


def seconds_of(stem: str, profile: str, results_dir: str | Path | None = None) -> float | None:
    """One notebook's recorded wall time at ``profile`` (None when none is recorded)."""
    return read(profile, results_dir)["seconds"].get(stem)


def minutes(seconds: float | None) -> str:
    """The one way a run time is shown: "6.6 min" (one decimal), "not measured" for None."""
    return NOT_MEASURED if seconds is None else f"{seconds / 60:.1f} min"


def total_seconds(profile: str, results_dir: str | Path | None = None) -> float | None:
    seconds = read(profile, results_dir)["seconds"]
    return sum(seconds.values()) if seconds else None


def summary_line(profile: str, results_dir: str | Path | None = None) -> str:
    """Each chapter's time at ``profile`` and the total, with the date: the sentence every page uses."""
    t = read(profile, results_dir)
    if not t["seconds"]:
        return NOT_MEASURED
    parts = [f"chapter {int(stem[:2])} {minutes(s)}" for stem, s in sorted(t["seconds"].items())]
    date = t["environment"].get("date", "date not recorded")
    return f"{minutes(sum(t['seconds'].values()))} in all ({', '.join(parts)}; recorded {date})"


def readme_section(results_dir: str | Path | None = None) -> str:
    """The README's *Run time* paragraph, between its markers."""
    lines = [BEGIN]
    for profile in ("full", "quick", "smoke", "paper"):
        t = read(profile, results_dir)
        if not t["seconds"]:
            continue
        device = t["environment"].get("device", "an unrecorded device")
        device = "CPU" if device == "cpu" else device
        lines.append(
            f"* `{profile}` on {device}: {summary_line(profile, results_dir)}, from "
            f"`results/timings-{profile}.json`."
        )
    if len(lines) == 1:
        lines.append("* no run time recorded yet (`results/timings-<profile>.json` is missing).")
    lines.append(END)
    return "\n".join(lines)


def update_readme(readme: str | Path = README, results_dir: str | Path | None = None) -> Path:
    """Rewrite the README's run-time section between its markers (ValueError if they are missing)."""
    path = Path(readme)
    text = path.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{path} has no run-time markers ({BEGIN} ... {END})")
    return atomic_write_text(path, pattern.sub(lambda _: readme_section(results_dir), text))


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - `make readme`
    argv = sys.argv[1:] if argv is None else argv
    if "--readme" in argv:
        print(f"rewrote the run times in {update_readme()}")
    else:
        print(readme_section())


if __name__ == "__main__":  # pragma: no cover
    main()
