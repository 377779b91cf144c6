"""Chapter times for the teaching and re-running pages, read from the run the book shows (no number
typed by hand).

Every time comes from results/timings-<profile>.json, the one source of run times
(`adv2.book.timings`: the run box, the front page's chapter list and the README read it too, and
show a time the same way, `timings.minutes`): each chapter's wall time in the published run, the
whole book's wall time as one run where a run of every notebook recorded it, and each chapter's
time run alone from an empty cache (benchmarks/bench_alone.py merges it in). Where a chapter's time
alone is not measured, its cold-cache time is derived as an upper bound: its own time in the
published run + the training time of the models it loads from the cache that earlier chapters fill,
as recorded in the results files of the chapters that trained them. The values become MyST
substitutions ({{ ch3_cold }}, {{ book_run }} etc.) used by book/teaching.md and book/rerunning.md."""

from __future__ import annotations

import json
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# Models each chapter loads from the cache and which chapter trains them first.
NEEDS = {
    "01_target_models": [],
    "02_interpreters": ["classifiers"],
    "03_adv2": ["classifiers", "rts"],
    "04_aid_defense": ["classifiers", "rts"],
    "05_noise_sensitivity": ["classifiers", "rts", "rtsa"],
    "06_table10": ["classifiers", "rts", "rtsa"],
    "07_input_size": [],  # trains its own classifiers, one per input side
    "08_scaling": ["classifiers", "rts"],
}
MISSING = "not measured"


def _timings():
    from adv2.book import timings  # the library's one reader of the timings files (needs lib/ on the path)

    return timings


def _load(name: str) -> dict:
    path = ROOT / "results" / name
    return json.loads(path.read_text()) if path.is_file() else {}


def training_seconds() -> dict[str, float | None]:
    """Seconds the published run spent training each kind of model (all classifiers together)."""
    ch1 = _load("01_target_models.json").get("numbers", {}).get("fashion_mnist", {})
    ch2 = _load("02_interpreters.json").get("numbers", {})
    ch4 = _load("04_aid_defense.json").get("numbers", {})
    archs = [a for a in ("resnet", "densenet") if a in ch1]

    def total(values):
        values = list(values)
        return float(sum(values)) if values and all(v is not None for v in values) else None

    return {
        "classifiers": total(ch1[a].get("train_seconds") for a in archs),
        "rts": total(ch2.get(a, {}).get("rts", {}).get("train_seconds") for a in archs),
        "rtsa": total(ch4.get(a, {}).get("cost_aid_seconds") for a in archs),
    }


def minutes(seconds: float | None) -> str:
    return _timings().minutes(seconds)


def substitutions(profile: str = "quick") -> dict[str, str]:
    timings = _timings().read(profile, ROOT / "results")
    seconds = timings["seconds"]
    train = training_seconds()
    subs = {
        "timings_profile": profile,
        "timings_date": timings.get("environment", {}).get("date", MISSING),
        "train_classifiers": minutes(train["classifiers"]),
        "train_rts": minutes(train["rts"]),
        "train_rtsa": minutes(train["rtsa"]),
        "book_run": book_run(profile),
        "book_target": f"{_timings().BOOK_TARGET_MINUTES} minutes",
        "chapter_target": f"{_timings().CHAPTER_TARGET_MINUTES} minutes",
    }
    alone = measured_alone(profile)
    for i, stem in enumerate(CHAPTERS, start=1):
        own = seconds.get(stem)
        extra = [train[k] for k in NEEDS.get(stem, ["classifiers", "rts"])]
        cold = None if own is None or any(e is None for e in extra) else own + sum(extra)
        subs[f"ch{i}_own"] = minutes(own)
        subs[f"ch{i}_cold"] = (
            f"{minutes(alone[stem])} (measured)" if stem in alone else f"{minutes(cold)} (derived)"
        )
    return subs


def measured_alone(profile: str) -> dict[str, float]:
    """Each chapter's measured time alone from an empty cache at ``profile`` (finished chapters
    only), from the timings file's ``alone`` entry: what the teaching page shows instead of the
    derived time, which cannot know which models ship as committed checkpoints."""
    return _timings().alone_seconds(profile, ROOT / "results")


def book_run(profile: str) -> str:
    """The whole book's wall time as one run at ``profile``, for the teaching page; where no run of
    every notebook recorded one, the sum of the chapters' times, said to be a sum."""
    timings = _timings()
    run = timings.whole_run(profile, ROOT / "results")
    if run is not None:
        return timings.whole_run_words(run)
    total = timings.total_seconds(profile, ROOT / "results")
    if total is None:
        return MISSING
    return f"{minutes(total)}, the sum of the chapters' own times (no run of the whole book recorded its wall time)"


def book_minutes(profile: str) -> str:
    """The whole book's wall time as one run at ``profile`` ("14.4 min"; "not measured")."""
    timings = _timings()
    return timings.minutes(timings.run_wall_seconds(profile, ROOT / "results"))


def profile_summary(profile: str) -> str:
    """One line for the re-running page: the whole book's wall time as one run at ``profile`` (else
    the chapters' sum, said to be one), each chapter's time and each alone from an empty cache,
    from results/timings-<profile>.json (with their dates)."""
    return _timings().summary_line(profile, ROOT / "results")


def add_substitutions(app, config) -> None:
    subs = {
        **substitutions(),
        "smoke_times": profile_summary("smoke"),
        "quick_times": profile_summary("quick"),
        "full_times": profile_summary("full"),
        # the front page's "how long": the whole book as one run, from the same file
        **{f"{p}_book_minutes": book_minutes(p) for p in ("quick", "full")},
    }
    if MISSING in subs.values():
        logger.info("run_timings: some chapter times are missing from results/")
    config.myst_substitutions = {**subs, **(config.myst_substitutions or {})}


def chapter_time_line(stem: str) -> str | None:
    """ "This chapter took 23.0 min at profile quick (recorded 2026-12-05; ...)" for a published
    chapter, from its results file's profile and the timings file (None when either is missing)."""
    data = _load(f"{stem}.json")
    profile = (data.get("params") or {}).get("profile")
    if not profile:
        return None
    t = _timings().read(profile, ROOT / "results")
    seconds = t["seconds"].get(stem)
    if seconds is None:
        return None
    date = t["environment"].get("date", "an unrecorded date")
    return (
        f"Run time: this chapter took {minutes(seconds)} at profile {profile} in the run this book "
        f"shows (results/timings-{profile}.json, {date}); the front page's run box says which models "
        "it trained and whether other jobs shared the machine."
    )


def add_chapter_time(app, doctree) -> None:
    """Put each chapter's run time under its title (issue 26: times at the top of each chapter)."""
    from docutils import nodes

    docname = app.env.docname
    if not docname.startswith("book/notebooks/"):
        return
    line = chapter_time_line(docname.rsplit("/", 1)[-1])
    section = next(iter(doctree.findall(nodes.section)), None)
    if line is None or section is None or not section.children:
        return
    para = nodes.paragraph(classes=["adv2-run-time"])
    para += nodes.emphasis(text=line)
    section.insert(1, para)


def setup(app):
    app.connect("config-inited", add_substitutions, priority=900)
    app.connect("doctree-read", add_chapter_time)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
