"""One source for run times (issue 26 item 3): README, run box, front page, re-running and teaching
pages all read results/timings-<profile>.json through adv2.book.timings."""

from __future__ import annotations

import json
import re

import pytest

from adv2.book import runbox, timings
from adv2.core.config import REPO_ROOT


def test_readme_run_times_match_the_timings_file():
    """`make readme` writes the section; this fails when the README and the file disagree."""
    text = (REPO_ROOT / "README.md").read_text()
    m = re.search(re.escape(timings.BEGIN) + ".*?" + re.escape(timings.END), text, re.S)
    assert m, "README.md lost its run-time markers"
    assert m.group(0) == timings.readme_section(), "README's run times are stale: run `make readme`"


def test_update_readme_follows_a_changed_file(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "timings-quick.json").write_text(
        json.dumps(
            {"seconds": {"01_a": 60.0, "02_b": 120.0}, "environment": {"date": "2030-01-01", "device": "cpu"}}
        )
    )
    readme = tmp_path / "README.md"
    readme.write_text(f"x\n{timings.BEGIN}\nold\n{timings.END}\ny\n")
    timings.update_readme(readme, results)
    text = readme.read_text()
    assert (
        "* `quick` on CPU: 3.0 min in all, the sum of the chapters' times (no whole-book run's own wall "
        "time recorded; chapter by chapter 1: 1.0 min, 2: 2.0 min; recorded 2030-01-01), from `results/timings-quick.json`."
    ) in text
    assert text.startswith("x\n") and text.endswith("y\n") and "old" not in text
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        timings.update_readme(readme, results)


def test_run_box_reads_the_timings_file(tmp_path):
    """The run box's wall times are the timings file's, shown by timings.minutes."""
    nb_dir = REPO_ROOT / "book" / "notebooks"
    if not any(nb_dir.glob("[0-9][0-9]_*.ipynb")):
        pytest.skip("no published notebooks")
    results = tmp_path / "results"
    results.mkdir()
    for p in (REPO_ROOT / "results").glob("*.json"):
        (results / p.name).write_bytes(p.read_bytes())
    stem = sorted(nb_dir.glob("[0-9][0-9]_*.ipynb"))[0].stem
    profile = json.loads((nb_dir / f"{stem}.ipynb").read_text())["metadata"]["papermill"]["parameters"][
        "profile"
    ]
    data = json.loads((results / f"timings-{profile}.json").read_text())
    data["seconds"][stem] = 6000.0
    (results / f"timings-{profile}.json").write_text(json.dumps(data))
    box = runbox.render_run_info(nb_dir, results)
    assert f"| {stem} | `{profile}` | none | 100.0 min |" in box


def _run_timings_extension():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "run_timings", REPO_ROOT / "book" / "_ext" / "run_timings.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _timings_file(results, **entries):
    """A timings-quick.json with two chapters' times and the given ``run`` / ``alone`` entries."""
    results.mkdir(exist_ok=True)
    data = {
        "seconds": {"01_a": 60.0, "02_b": 120.0},
        "environment": {"date": "2030-01-01", "device": "cpu"},
        **entries,
    }
    (results / "timings-quick.json").write_text(json.dumps(data))
    return results


RUN = {"wall_seconds": 852.0, "notebooks": 2, "date": "2030-01-02", "cold": True, "other_jobs_cores": 0.01}
ALONE = {"seconds": {"01_a": 30.0, "02_b": 360.0}, "date": "2030-01-03", "target_minutes": 5}


def test_summary_gives_the_whole_runs_wall_time_and_each_chapter_alone(tmp_path):
    """Issue 27 item 3: one run's own wall time (not a sum) and the chapters-alone times, from the
    one timings file; the README's section says them."""
    results = _timings_file(tmp_path / "results", run=RUN, alone=ALONE)
    assert timings.run_wall_seconds("quick", results) == 852.0
    assert timings.alone_seconds("quick", results) == {"01_a": 30.0, "02_b": 360.0}
    line = timings.summary_line("quick", results)
    assert line == (
        "the whole book in 14.2 min as one run from an empty model cache (2 notebooks, kernel starts "
        "included, 2030-01-02); chapter by chapter 1: 1.0 min, 2: 2.0 min; each chapter alone from an "
        "empty cache: 1: 0.5 min, 2: 6.0 min, 1 of 2 within 5 min (measured 2030-01-03)"
    )
    assert f"* `quick` on CPU: {line}, from `results/timings-quick.json`." in timings.readme_section(results)
    # a warm start, a chapter re-run since on its own, chapters alone all fast, one failed, one missing
    _timings_file(
        results,
        run={**RUN, "cold": False, "later_chapters": ["02_b"]},
        alone={"seconds": {"01_a": 30.0}, "failed": ["02_b"], "date": "2030-01-03", "target_minutes": 5},
    )
    line = timings.summary_line("quick", results)
    assert "as one run that began with trained models already in the cache" in line
    assert "(chapter 2 from a later run of some chapters)" in line
    assert "1: 0.5 min, all within 5 min; chapter 2 did not finish (measured" in line
    _timings_file(results, run=RUN, alone={"seconds": {"01_a": 30.0}, "date": "d", "target_minutes": 5})
    assert "all within 5 min; chapter 2 not measured alone (measured d)" in timings.summary_line(
        "quick", results
    )


def test_without_a_whole_run_the_summary_says_it_is_a_sum(tmp_path):
    results = _timings_file(tmp_path / "results", run={"wall_seconds": "damaged"})
    assert (
        timings.run_wall_seconds("quick", results) is None and timings.alone_seconds("quick", results) == {}
    )
    line = timings.summary_line("quick", results)
    assert line.startswith("3.0 min in all, the sum of the chapters' times") and "alone" not in line
    assert timings.summary_line("smoke", results) == timings.NOT_MEASURED


def test_merge_alone_keeps_every_other_key_and_replaces_the_old_entry(tmp_path, capsys):
    results = _timings_file(tmp_path / "results", run=RUN, alone=ALONE)
    path = results / "timings-quick.json"
    before = json.loads(path.read_text())
    timings.merge_alone(path, {"seconds": {"02_b": 100.0}, "date": "2030-02-01", "target_minutes": 5})
    after = json.loads(path.read_text())
    assert {k: v for k, v in after.items() if k != "alone"} == {
        k: v for k, v in before.items() if k != "alone"
    }
    assert after["alone"]["seconds"] == {"02_b": 100.0}  # this measurement's chapters, not mixed with the old
    path.write_text("[1, 2]")  # not a timings object: set aside, rebuilt
    timings.merge_alone(path, {"seconds": {"01_a": 1.0}})
    assert json.loads(path.read_text()) == {"alone": {"seconds": {"01_a": 1.0}}}
    assert (
        list(results.glob("timings-quick.json.corrupt-*")) and "timings-quick.json" in capsys.readouterr().err
    )


def test_run_box_shows_the_whole_runs_wall_time_beside_the_sum(tmp_path):
    import nbformat

    for stem, seconds in (("01_a", 60.0), ("02_b", 120.0)):
        nb = nbformat.v4.new_notebook()
        nb.metadata["papermill"] = {"parameters": {"profile": "quick"}, "duration": seconds}
        nb.metadata["adv2"] = {"models_trained": 0, "other_jobs_cores": 0.0}
        nbformat.write(nb, tmp_path / f"{stem}.ipynb")
    results = _timings_file(tmp_path / "results")
    box = runbox.render_run_info(tmp_path, results)
    assert "| sum of the chapters | | | 3.0 min | | |" in box and "whole book as one run" not in box
    assert "no run of the whole book has recorded its own wall time" in box
    _timings_file(results, run={**RUN, "later_chapters": ["02_b"]})
    box = runbox.render_run_info(tmp_path, results)
    assert "| sum of the chapters | | | 3.0 min | | |" in box
    assert "| the whole book as one run | | | 14.2 min | | 2030-01-02 |" in box
    assert "one run of every notebook from an empty model cache, from its start" in box
    assert "every kernel's start included (02_b re-run since in a run of some chapters" in box


def test_teaching_page_reads_the_alone_and_whole_run_times_from_the_timings_file(tmp_path, monkeypatch):
    """Quick's models ship as checkpoints, so a derived cold time (own + training) overstates; a
    chapter measured alone at the same profile (the timings file's ``alone``, not bench_alone.json)
    is shown instead, marked as measured; the whole book's time is the run's own wall time."""
    ext = _run_timings_extension()
    monkeypatch.setattr(ext, "ROOT", tmp_path)
    results = tmp_path / "results"
    results.mkdir()
    # bench_alone.json alone is the detailed report, not what the page reads
    (results / "bench_alone.json").write_text(
        json.dumps({"profile": "quick", "chapters": {"03_adv2": {"seconds": 300.0, "returncode": 0}}})
    )
    subs = ext.substitutions("quick")
    assert subs["ch3_cold"].endswith("(derived)") and subs["book_run"] == ext.MISSING
    _timings_file(results, alone={"seconds": {"03_adv2": 300.0}, "date": "d", "target_minutes": 5})
    subs = ext.substitutions("quick")
    assert subs["ch3_cold"] == f"{ext.minutes(300.0)} (measured)"
    assert subs["ch4_cold"].endswith("(derived)")
    assert subs["book_run"].startswith("3.0 min, the sum of the chapters' own times")
    assert subs["book_target"] == "15 minutes" and subs["chapter_target"] == "5 minutes"
    _timings_file(results, run=RUN)
    subs = ext.substitutions("quick")
    assert (
        subs["book_run"]
        == "14.2 min as one run from an empty model cache (2 notebooks, kernel starts included, 2030-01-02)"
    )
    assert subs["ch3_cold"].endswith("(derived)")  # no alone entry any more
    assert ext.profile_summary("quick").startswith("the whole book in 14.2 min as one run")
    page = (REPO_ROOT / "book" / "teaching.md").read_text()
    used = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", page))  # every one the page uses exists
    assert used <= set(subs)
