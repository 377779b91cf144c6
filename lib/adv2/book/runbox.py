"""The front page's run box (``book/_run_info.md``): which run the published book shows.

It is read from the published executed notebooks themselves (papermill records their parameters
and wall time; the runner adds models trained and other jobs' CPU under ``metadata.adv2``) and
written only by :func:`adv2.book.publish.publish`. The CPU-load helpers the runner uses to fill
``metadata.adv2`` live here too: they exist for this box.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from adv2.book import timings
from adv2.book.paths import BOOK_NOTEBOOKS_DIR, PUBLISHED_RESULTS_DIR, RUN_INFO, read_json_quietly
from adv2.chapters.results import environment
from adv2.core.config import PROFILES, ParameterError, load_profile
from adv2.trained.files import atomic_write_text

# Paths and plumbing a reader need not see as "changed parameters".
PLUMBING = ("results_dir", "artifacts_dir", "profile")

# What the published run's profile means for its numbers: the one place the book says it (the run
# box, which the front page and the teaching page include). A test keeps each sentence true of its
# profile file (photos and photo classifiers of chapter 3).
PROFILE_NOTES: dict[str, str] = {
    "quick": (
        "This book shows the `quick` profile: a CPU run with budgets far below the paper's (fewer "
        "images, attack steps and training epochs), which a `full` run on a CPU or a `paper` run on "
        "a GPU replaces. It is sized for a class (the whole book in about 15 minutes on 2 CPU "
        "cores): it attacks only 4 of the photos, with one photo classifier, fewer than the 8 "
        "images a verdict needs, so its photo verdicts read *not measurable* (`full` decides "
        "them); its 95 % intervals cover the choice of images only, not the training: the "
        "classifiers, RTS and RTSA trained again (another seed, another machine) can move a value "
        "outside them."
    ),
    "full": (
        "This book shows the `full` profile: a CPU run of every chapter, both photo classifiers on "
        "every photo each gets right, with budgets below the paper's (fewer Fashion-MNIST images, "
        "attack steps and training epochs); a `paper` run on a GPU replaces it as soon as one "
        "exists. Chapter 1's accuracies and the Fashion-MNIST intervals of chapters 3 to 7 and 9 "
        "cover three training seeds of the classifiers (and their RTS; in chapters 4 to 6 their "
        "RTSA too) as well as the choice of images; chapter 2's intervals and every photo interval "
        "cover the images only (one training seed; the photo classifiers are pretrained), so a "
        "retrained classifier, RTS or RTSA can move their values outside them. Each chapter says "
        "where the smaller budgets matter."
    ),
}
# any other run that is not all `paper` (smoke, imagenet, a mix without quick or full)
OTHER_PROFILES_NOTE = (
    "No GPU run of the `paper` profile has been recorded yet, so this book shows CPU runs with "
    "budgets far below the paper's (fewer images, attack steps and training epochs); a `paper` run "
    "replaces them as soon as one exists. Each chapter says where the smaller budgets matter."
)


def profile_note(profiles: set[str]) -> str:
    """What the run box says about the run's profile(s): nothing for a `paper` run, each profile's
    :data:`PROFILE_NOTES` sentence, else :data:`OTHER_PROFILES_NOTE`."""
    if profiles <= {"paper"}:
        return ""
    notes = [PROFILE_NOTES[p] for p in PROFILES if p in profiles and p in PROFILE_NOTES]
    return " ".join(notes) or OTHER_PROFILES_NOTE


# ----------------------------------------------------------------------------- CPU and cache facts
MODEL_KINDS = ("classifier", "rts", "rtsa")  # the cache's other entries (chapter 3's attacks) are not models


def count_models(root: str | None) -> tuple[int, int]:
    """``(in the cache, trained here)``: models (classifiers, RTS, RTSA) in the cache, and those of
    them trained rather than copied from a committed checkpoint (their metrics name it). The run
    box says which chapter trained what, since a chapter's wall time depends on whether its models
    had to be trained."""
    from adv2.trained.artifacts import artifact_root  # imports torch: publishing stays light

    base = artifact_root(root)
    paths = [path for kind in MODEL_KINDS for path in base.glob(f"{kind}/*/metrics.json")]
    return len(paths), sum("checkpoint" not in (read_json_quietly(path) or {}) for path in paths)


def busy_cpu_seconds() -> float | None:
    """CPU seconds all processes have used since boot (Linux), None elsewhere."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """This process and its finished children (the notebook's kernel)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class CpuMeter:
    """Cores' worth of CPU that *other* jobs used while a chapter ran: they slow the chapter."""

    def __init__(self) -> None:
        self.busy, self.own = busy_cpu_seconds(), own_cpu_seconds()

    def other_jobs_cores(self, seconds: float) -> float | None:
        busy = busy_cpu_seconds()
        if self.busy is None or busy is None:
            return None
        others = (busy - self.busy) - (own_cpu_seconds() - self.own)
        return round(max(0.0, others) / max(seconds, 1e-9), 2)


# ----------------------------------------------------------------------------- the box
def non_default_parameters(stem: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a run of ``stem`` that differ from its profile's values (the runner passes
    only profile values and the user's overrides, so anything else is an override)."""
    try:
        profile = load_profile(params.get("profile", ""), stem)
    except (ParameterError, OSError):
        profile = {}
    missing = object()
    return {k: v for k, v in sorted(params.items()) if k not in PLUMBING and profile.get(k, missing) != v}


def _shown(params: dict[str, Any]) -> str:
    if not params:
        return "none"
    return ", ".join(f"`{k}={v}`".replace("|", "\\|") for k, v in params.items())


def render_run_info(notebooks_dir: Path, results_dir: Path) -> str:
    import nbformat  # lazy: nbformat loads jsonschema (seconds); the command line starts without it

    rows, profiles, devices, smoke_stems, others, total = [], set(), set(), [], [], 0.0
    for nb_path in sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb")):
        metadata = nbformat.read(nb_path, as_version=4).metadata
        meta = metadata.get("papermill", {})
        facts = metadata.get("adv2", {})
        trained = facts.get("models_trained", "?")
        others.append((facts.get("other_jobs_cores"), nb_path.stem))
        params = meta.get("parameters", {})
        prof = params.get("profile", "?")
        # the one source of run times (adv2.book.timings), the notebook's own record where it has none
        recorded = timings.seconds_of(nb_path.stem, prof, results_dir)
        seconds = recorded if recorded is not None else float(meta.get("duration") or 0.0)
        date = (meta.get("end_time") or "")[:10]
        profiles.add(prof)
        if prof == "smoke":
            smoke_stems.append(nb_path.stem)
        total += seconds
        # another chapter's damaged results file must not stop the box: named, device unknown
        # (left where it is: publishing renders this box before it changes any published file)
        result_path = Path(results_dir) / f"{nb_path.stem}.json"
        result = read_json_quietly(result_path)
        if result is None and result_path.exists():
            print(
                f"warning: results file {result_path.name} is not valid JSON; the run box shows no "
                f"device for {nb_path.stem}",
                file=sys.stderr,
                flush=True,
            )
        device = (result or {}).get("environment", {}).get("device") if isinstance(result, dict) else None
        if device:
            devices.add(device)
        changed = _shown(non_default_parameters(nb_path.stem, params))
        rows.append(
            f"| {nb_path.stem} | `{prof}` | {changed} | {timings.minutes(seconds)} | {trained} | {date} |"
        )
    env = environment()
    total_rows, wall_note = _total_rows(profiles, total, results_dir)
    devices = devices or {env["device"]}
    hardware = ", ".join(d if d != "cpu" else f"CPU only ({os.cpu_count()} cores)" for d in sorted(devices))
    shown = ", ".join(f"`{p}`" for p in sorted(profiles))
    note = profile_note(profiles)
    caveat = f"\n\n{note}" if note else ""
    measured = [(x, stem) for x, stem in others if x is not None]
    busiest = max((x for x, _ in measured), default=None)
    busy_stems = [stem for x, stem in measured if x > 0.25]
    if busiest is None:
        caveat += (
            "\n\nWhether other jobs shared the machine during the run was not recorded; "
            "if they did, the wall times overstate what free cores need."
        )
    elif busiest > 0.25:
        caveat += (
            f"\n\nOther jobs shared the machine during {', '.join(busy_stems)} (up to {busiest:.1f} "
            "cores' worth of CPU; a chapter's own worker processes, such as chapter 8's Ray "
            "workers, count among them), so their wall times may overstate what free cores need."
        )
    else:
        caveat += (
            "\n\nThe machine was otherwise idle during the run (other jobs used at most "
            f"{busiest:.2f} cores' worth of CPU)."
        )
    if smoke_stems:
        caveat += (
            "\n\n**" + ", ".join(smoke_stems) + " show the `smoke` profile** (the test "
            "budget: tiny classifiers, a handful of images and attack steps), so their numbers "
            "only illustrate the method; re-run them with `python -m adv2 run` at `quick` or "
            "`paper` for results to compare with the paper."
        )
    return (
        f"```{{admonition}} The run this book shows\n"
        f"Profile(s) {shown} on {hardware}; adv2 {env['adv2']}, torch {env['torch']}, "
        f"Python {env['python']}.\n\n"
        "| notebook | profile | parameters changed | wall time | models trained | date |\n"
        "|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + total_rows
        + "\n\nWall times are read from `results/timings-<profile>.json`, as every other page's"
        + wall_note
        + ". "
        "*Parameters changed* lists the values that differ from the profile's "
        "(`params/<profile>.yaml`). *Models trained* counts the classifiers, RTS and RTSA "
        "networks a chapter trained; the others came from the committed checkpoints "
        "(`checkpoints/`) or from the cache (`artifacts/`) that earlier chapters filled, so a "
        "chapter re-run on its own with a warm cache is faster."
        f"{caveat}\n```\n"
    )


def _total_rows(profiles: set[str], total: float, results_dir: Path) -> tuple[str, str]:
    """(the box's last rows, a note on them): the whole book's wall time as one run where the
    timings file records one for the box's profile, beside the sum of the chapters' times."""
    rows = f"\n| sum of the chapters | | | {timings.minutes(total)} | | |"
    run = timings.whole_run(next(iter(profiles)), results_dir) if len(profiles) == 1 else None
    if run is None:
        return rows, (
            "; no run of the whole book has recorded its own wall time, so the box gives the sum "
            "of the chapters' times"
        )
    rows += f"\n| the whole book as one run | | | {timings.minutes(run['wall_seconds'])} | | {run.get('date') or ''} |"
    note = (
        f"; *the whole book as one run* is the wall time of one run of every notebook"
        f"{timings.cache_words(run)}, from its start to its last notebook's end, every kernel's "
        "start included"
    )
    later = [s for s in run.get("later_chapters") or [] if isinstance(s, str)]
    if later:
        note += (
            f" ({', '.join(sorted(later))} re-run since in a run of some chapters: their rows show that run)"
        )
    return rows, note


def write_run_info(
    notebooks_dir: Path | None = None, results_dir: Path | None = None, path: Path | None = None
) -> Path:
    """Rewrite the run box (atomically) from the notebooks in ``notebooks_dir`` (default: the
    published ones). Called by publishing only: a run on its own never changes the front page."""
    notebooks_dir = Path(notebooks_dir or BOOK_NOTEBOOKS_DIR)
    results_dir = Path(results_dir or PUBLISHED_RESULTS_DIR)
    path = Path(path or RUN_INFO)
    return atomic_write_text(path, render_run_info(notebooks_dir, results_dir))
