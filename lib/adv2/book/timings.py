"""The book's run times, from one place: ``results/timings-<profile>.json``.

The file holds three kinds of time, each with its date:

* ``seconds``: each notebook's wall time in the run that published it (kernel start included);
  publishing merges them in (:func:`adv2.book.publish.merge_timings`), chapter by chapter;
* ``run``: the wall time of the last published run that executed *every* notebook, as one run,
  from its start to its last notebook's end (``wall_seconds``, ``notebooks``, ``date``, ``cold``:
  whether the model cache held no model when it began, ``other_jobs_cores``). A run of some
  chapters leaves it as it is and lists those chapters in ``later_chapters`` (their ``seconds``
  now come from that later run); the next whole run replaces it;
* ``alone``: each chapter run alone in a fresh process from an empty model cache
  (``benchmarks/bench_alone.py`` writes it with :func:`merge_alone`; ``results/bench_alone.json``
  keeps its detailed report).

Every page that quotes a run time reads it back here: the front page's run box
(:mod:`adv2.book.runbox`) and chapter list (:mod:`adv2.book.frontpage`), the re-running and
teaching pages (``book/_ext/run_timings.py``), the Performance page (``book/_ext/bench_numbers.py``)
and the README's *Run time* section, which ``make readme`` rewrites between its markers
(:func:`update_readme`; a test checks that the README says what the file says).

``python -m adv2.book.timings [--readme]`` prints (or writes) that section.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adv2.book.paths import PUBLISHED_RESULTS_DIR, read_json_quietly
from adv2.core.config import REPO_ROOT
from adv2.trained.files import atomic_write_json, atomic_write_text, set_aside

README = REPO_ROOT / "README.md"
BEGIN, END = "<!-- run-times: begin (make readme) -->", "<!-- run-times: end -->"
NOT_MEASURED = "not measured"
# issue 27 (`quick` fits a class): the whole book as one run from an empty model cache on 2 idle
# cores, and each chapter run alone from an empty cache (benchmarks/bench_alone.py)
BOOK_TARGET_MINUTES = 15
CHAPTER_TARGET_MINUTES = 5


def path_of(profile: str, results_dir: str | Path | None = None) -> Path:
    """``timings-<profile>.json`` in ``results_dir`` (default: the published results)."""
    return Path(results_dir or PUBLISHED_RESULTS_DIR) / f"timings-{profile}.json"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numbers(values: Any) -> dict[str, float]:
    """The numeric entries of ``values`` (a damaged entry is left out, not a crash)."""
    if not isinstance(values, dict):
        return {}
    return {k: float(v) for k, v in values.items() if _is_number(v)}


def read(profile: str, results_dir: str | Path | None = None) -> dict[str, Any]:
    """``timings-<profile>.json`` read defensively: ``{"seconds": {stem: s}, "environment": {...},
    "run": {...} or None, "alone": {"seconds": {stem: s}, ...} or None}`` (empty parts when the file
    is missing or damaged, None for a ``run`` without a wall time or an ``alone`` without times)."""
    data = read_json_quietly(path_of(profile, results_dir))
    if not isinstance(data, dict):
        data = {}
    env = data.get("environment") if isinstance(data.get("environment"), dict) else {}
    run = data.get("run")
    if not isinstance(run, dict) or not _is_number(run.get("wall_seconds")):
        run = None
    alone = data.get("alone")
    if isinstance(alone, dict) and _numbers(alone.get("seconds")):
        alone = {**alone, "seconds": _numbers(alone.get("seconds"))}
    else:
        alone = None
    return {"seconds": _numbers(data.get("seconds")), "environment": env, "run": run, "alone": alone}


def seconds_of(stem: str, profile: str, results_dir: str | Path | None = None) -> float | None:
    """One notebook's recorded wall time at ``profile`` (None when none is recorded)."""
    return read(profile, results_dir)["seconds"].get(stem)


def whole_run(profile: str, results_dir: str | Path | None = None) -> dict[str, Any] | None:
    """The ``run`` entry: the last whole-book run's own wall time and facts (None when none)."""
    return read(profile, results_dir)["run"]


def run_wall_seconds(profile: str, results_dir: str | Path | None = None) -> float | None:
    """The whole book's wall time as one run at ``profile`` (None when no whole run is recorded)."""
    run = whole_run(profile, results_dir)
    return None if run is None else float(run["wall_seconds"])


def alone_seconds(profile: str, results_dir: str | Path | None = None) -> dict[str, float]:
    """Each chapter's time run alone from an empty cache at ``profile`` (finished chapters only)."""
    alone = read(profile, results_dir)["alone"]
    return {} if alone is None else alone["seconds"]


def minutes(seconds: float | None) -> str:
    """The one way a run time is shown: "6.6 min" (one decimal), "not measured" for None."""
    return NOT_MEASURED if seconds is None else f"{seconds / 60:.1f} min"


def total_seconds(profile: str, results_dir: str | Path | None = None) -> float | None:
    """The sum of the chapters' recorded times (not one run's wall time: see :func:`run_wall_seconds`)."""
    seconds = read(profile, results_dir)["seconds"]
    return sum(seconds.values()) if seconds else None


def chapter_number(stem: str) -> str:
    return str(int(stem[:2])) if stem[:2].isdigit() else stem


def _chapters(stems: Any) -> str:
    numbers = [chapter_number(stem) for stem in sorted(stems)]
    if len(numbers) == 1:
        return f"chapter {numbers[0]}"
    return "chapters " + ", ".join(numbers[:-1]) + " and " + numbers[-1]


def _listed(seconds: dict[str, float]) -> str:
    """``1: 0.3 min, 2: 1.2 min`` (chapter number: time), in chapter order."""
    return ", ".join(f"{chapter_number(stem)}: {minutes(s)}" for stem, s in sorted(seconds.items()))


def cache_words(run: dict[str, Any]) -> str:
    """How the whole run began, for a reader: " from an empty model cache" and so on."""
    cold = run.get("cold")
    if cold is True:
        return " from an empty model cache"
    if cold is False:
        return " that began with trained models already in the cache"
    return ""


def whole_run_words(run: dict[str, Any]) -> str:
    """ "14.2 min as one run from an empty model cache (9 notebooks, kernel starts included,
    2026-12-06)": a whole run's own wall time, from its start to its last notebook's end."""
    return (
        f"{minutes(run['wall_seconds'])} as one run{cache_words(run)} "
        f"({run.get('notebooks', '?')} notebooks, kernel starts included, "
        f"{run.get('date') or 'date not recorded'})"
    )


def _alone_words(t: dict[str, Any]) -> str | None:
    """Each chapter alone from an empty cache, for a reader (``t``: :func:`read`'s dict): "1: 0.4
    min, ..., all within 5 min (measured 2026-12-06)", naming chapters not measured or that did not
    finish (None: none measured)."""
    alone = t["alone"]
    if alone is None:
        return None
    seconds = alone["seconds"]
    target = alone.get("target_minutes", CHAPTER_TARGET_MINUTES)
    within = sum(s <= 60 * target for s in seconds.values())
    verdict = (
        f"all within {target} min"
        if within == len(seconds)
        else f"{within} of {len(seconds)} within {target} min"
    )
    failed = [s for s in alone.get("failed") or [] if isinstance(s, str)]
    unmeasured = sorted(set(t["seconds"]) - set(seconds) - set(failed))
    if failed:
        verdict += f"; {_chapters(failed)} did not finish"
    if unmeasured:
        verdict += f"; {_chapters(unmeasured)} not measured alone"
    return f"{_listed(seconds)}, {verdict} (measured {alone.get('date', 'on an unrecorded date')})"


def summary_line(profile: str, results_dir: str | Path | None = None) -> str:
    """The sentence every page uses for ``profile``: the whole book's wall time as one run where
    one is recorded (else the sum of the chapters' times, said to be a sum), each chapter's time
    in that run, and each chapter's time alone from an empty cache where measured."""
    t = read(profile, results_dir)
    if not t["seconds"]:
        return NOT_MEASURED
    chapters = _listed(t["seconds"])
    run = t["run"]
    if run is not None:
        text = f"the whole book in {whole_run_words(run)}; chapter by chapter {chapters}"
        later = [s for s in run.get("later_chapters") or [] if isinstance(s, str)]
        if later:
            text += f" ({_chapters(later)} from a later run of some chapters)"
    else:
        date = t["environment"].get("date", "date not recorded")
        text = (
            f"{minutes(sum(t['seconds'].values()))} in all, the sum of the chapters' times (no "
            f"whole-book run's own wall time recorded; chapter by chapter {chapters}; recorded {date})"
        )
    alone = _alone_words(t)
    if alone is not None:
        text += f"; each chapter alone from an empty cache: {alone}"
    return text


def parse(old: bytes | None) -> tuple[dict[str, Any], str | None]:
    """(the timings object in ``old``, a timings file's bytes; why they were unusable or None).
    No file (None) is an empty object; damaged bytes give an empty object and the reason."""
    if old is None:
        return {}, None
    try:
        payload = json.loads(old)
    except (ValueError, UnicodeDecodeError) as err:
        return {}, str(err).splitlines()[0][:120]
    if not isinstance(payload, dict) or not isinstance(payload.get("seconds", {}), dict):
        return {}, "not a timings object"
    return payload, None


def update(path: str | Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """Apply ``change`` to the timings file ``path`` in place (atomic: the file is whole or as it
    was; a damaged one is set aside and rebuilt from an empty object)."""
    path = Path(path)
    payload, damaged = parse(path.read_bytes() if path.is_file() else None)
    if damaged is not None:
        set_aside(path, damaged)
    change(payload)
    return atomic_write_json(path, payload)


def merge_alone(path: str | Path, alone: dict[str, Any]) -> Path:
    """Write ``alone`` (``{"seconds": {stem: s}, "date": ..., "target_minutes": ..., ...}``) as the
    ``alone`` entry of the timings file ``path``, replacing the previous one and keeping every other
    key (:func:`update`)."""
    return update(path, lambda payload: payload.__setitem__("alone", alone))


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
