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
    assert "3.0 min in all (chapter 1 1.0 min, chapter 2 2.0 min; recorded 2030-01-01)" in text
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


def test_teaching_page_shows_a_measured_chapter_alone_time_over_the_derived_one(monkeypatch):
    """Quick's models ship as checkpoints, so a derived cold time (own + training) overstates; a
    chapter bench_alone.json measured at the same profile is shown instead, marked as measured."""
    ext = _run_timings_extension()
    real_load = ext._load
    report = {"profile": "quick", "chapters": {"03_adv2": {"seconds": 300.0, "returncode": 0}}}
    monkeypatch.setattr(ext, "_load", lambda name: report if name == "bench_alone.json" else real_load(name))
    subs = ext.substitutions("quick")
    assert subs["ch3_cold"] == f"{ext.minutes(300.0)} (measured)"
    assert subs["ch4_cold"].endswith("(derived)")
    report["chapters"]["03_adv2"]["returncode"] = 1  # a failed chapter is not a measured time
    assert ext.substitutions("quick")["ch3_cold"].endswith("(derived)")
    report.update(profile="smoke", chapters={"03_adv2": {"seconds": 300.0, "returncode": 0}})
    assert ext.substitutions("quick")["ch3_cold"].endswith("(derived)")
