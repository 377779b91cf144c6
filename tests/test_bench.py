"""The benchmark outputs (results/bench_*.json) and the Performance page's substitutions: format only."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from standins import load_script  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


_module = load_script


report = _module(ROOT / "benchmarks" / "bench_report.py", "bench_report")


def _attacks_report(ratio_cam=1.05):
    adv2 = {
        n: {
            "seconds_per_step": 0.1,
            "ratio_to_pgd": r,
            "ratio_low": r - 0.05,
            "ratio_high": r + 0.1,
            "rounds": 5,
            "target": t,
            "pass": r - 0.05 <= t,
        }
        for n, r, t in (("cam", ratio_cam, 1.1), ("grad", 3.5, 3.0), ("rts", 2.0, 2.5), ("mask", 9.0, 8.0))
    }
    lib = {"steps": 10, "seconds": 1.0, "steps_per_s": 10.0, "max_abs_diff": 0.0, "equal": True}
    model = {
        "batch": 64,
        "pgd": {"steps": 10, "seconds": 0.9, "steps_per_s": 11.1},
        "foolbox_pgd": {
            **lib,
            "ours_speedup": 1.1,
            "speedup_low": 0.97,
            "speedup_high": 1.2,
            "rounds": 9,
            "pass": True,
        },
        "torchattacks_pgd": {**lib, "ours_speedup": 1.0, "pass": True},
        "adv2": adv2,
    }
    return {
        "targets": {"cam": 1.1, "grad": 3.0, "rts": 2.5, "mask": 8.0},
        "other_jobs_cores": 0.1,
        "cpu_threads": 1,
        "results": {"cpu": {"fmnist-resnet": model}},
    }


def test_attack_report_format_and_pass_marks():
    rep = _attacks_report()
    report.check_attacks(rep)
    lines = report.lines(rep, {})
    assert any("ADV2-CAM step = 1.05 [1.00, 1.15] PGD steps (target <= 1.1) PASS" in line for line in lines)
    assert any("ADV2-GRAD step = 3.50 [3.45, 3.60] PGD steps (target <= 3) FAIL" in line for line in lines)
    bad = copy.deepcopy(rep)
    bad["results"]["cpu"]["fmnist-resnet"]["adv2"]["cam"]["pass"] = False
    with pytest.raises(ValueError, match="pass disagrees"):
        report.check_attacks(bad)
    del bad["results"]["cpu"]["fmnist-resnet"]["adv2"]["mask"]
    with pytest.raises(ValueError, match="adv2 must time"):
        report.check_attacks(bad)


@pytest.mark.parametrize("setting", ["fmnist", "photos"])
def test_committed_convergence_results_have_the_format(setting):
    path = ROOT / "results" / f"bench_convergence_{setting}.json"
    if not path.is_file():
        pytest.skip(f"{path.name} not measured yet")
    rep = json.loads(path.read_text())
    report.check_convergence(rep)
    for r in rep["interpreters"].values():
        assert r["fast_budget"] <= r["authors_steps"] / 4
        assert r["curves"]["fast"]["step"][-1] == r["fast_steps_taken"]


def test_convergence_format_errors():
    curve = {
        "step": [0, 4],
        "success": [0.0, 1.0],
        "l1": [float("nan"), 0.1],
        "steps_budget": 4,
        "steps_taken": 4,
        "seconds": 1.0,
    }
    entry = {
        "authors_steps": 16,
        "authors_l1": 0.1,
        "authors_success": 1.0,
        "fast_budget": 4,
        "fast_steps_taken": 4,
        "fast_l1": 0.1,
        "fast_success": 1.0,
        "fast_steps_to_reach": 4,
        "step_limit": 4.0,
        "pass": True,
        "curves": {"authors": {**curve, "schedule": "authors"}, "fast": {**curve, "schedule": "fast"}},
    }
    rep = {
        "setting": "fmnist",
        "n_images": 2,
        "scale": 0.1,
        "other_jobs_cores": 0.0,
        "interpreters": {"cam": entry},
    }
    report.check_convergence(rep)
    bad = copy.deepcopy(rep)
    bad["interpreters"]["cam"]["fast_budget"] = 5
    with pytest.raises(ValueError, match="quarter"):
        report.check_convergence(bad)
    bad = copy.deepcopy(rep)
    bad["interpreters"]["cam"]["curves"]["fast"]["l1"] = [0.1]
    with pytest.raises(ValueError, match="align"):
        report.check_convergence(bad)


def test_performance_page_substitutions_cover_the_page(tmp_path, monkeypatch):
    ext = _module(ROOT / "book" / "_ext" / "bench_numbers.py", "bench_numbers")
    page = (ROOT / "book" / "performance.md").read_text()
    import re

    used = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", page))
    monkeypatch.setattr(ext, "ROOT", tmp_path)  # nothing measured: every value says so
    (tmp_path / "results").mkdir()
    subs = {
        **ext.step_costs(),
        **ext.convergence(),
        **ext.gpu(),
        **ext.training(),
        **ext.laptop(),
        **ext.alone(),
    }
    assert used <= set(subs)
    assert subs["bench_resnet_cam"] == ext.MISSING
    (tmp_path / "results" / "bench_attacks.json").write_text(json.dumps(_attacks_report()))
    subs = ext.step_costs()
    assert subs["bench_rounds"] == "5"
    assert subs["bench_resnet_cam"] == "1.05x [1.00, 1.15] (≤ 1.1: pass)"
    assert subs["bench_resnet_grad"] == "3.50x [3.45, 3.60] (≤ 3: FAIL)"
    assert subs["bench_resnet_foolbox"] == "1.10x [0.97, 1.20] (pass), equal outputs"
    assert subs["bench_resnet_torchattacks"] == "1.00x (pass), equal outputs"  # a report without the interval


def test_paired_speedup_is_the_median_ratio_with_an_order_statistic_interval():
    bench = _module(ROOT / "benchmarks" / "bench_attacks.py", "bench_attacks")
    assert bench.median_interval([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0)
    called = []
    fns = {k: (lambda k=k: called.append(k)) for k in "abc"}
    times = bench.rounds(fns, bench.torch.device("cpu"), 3)
    assert "".join(called) == "abcbcacab"  # no function always runs first in its round
    assert all(len(t) == 3 for t in times.values())
    ours = [1.0] * 9
    theirs = [0.90, 0.95, 0.97, 0.99, 1.00, 1.02, 1.03, 1.05, 1.20]
    # 9 rounds: [r_2, r_8] covers the median with 1 - 2 * 10 / 512 = 96 %
    assert bench.paired_speedup(theirs[::-1], ours) == (1.00, 0.95, 1.05)
    # each ratio is within its round: a slow round slows both and cancels
    assert bench.paired_speedup([2.0, 1.0, 1.1], [2.0, 1.0, 1.0]) == (1.0, 1.0, 1.1)
    # below 6 rounds no narrower interval reaches 95 %: the whole range
    assert bench.paired_speedup([0.8, 0.9, 1.3, 1.0, 0.95], [1.0] * 5)[1:] == (0.8, 1.3)


def test_laptop_budget_reads_the_published_notebooks(tmp_path, monkeypatch):
    import nbformat

    ext = _module(ROOT / "book" / "_ext" / "bench_numbers.py", "bench_numbers")
    monkeypatch.setattr(ext, "ROOT", tmp_path)
    assert ext.laptop()["laptop_total"] == ext.MISSING
    folder = tmp_path / "book" / "notebooks"
    folder.mkdir(parents=True)
    for stem, seconds, cached, others in (("01_a", 120, 0, 0.1), ("02_b", 420, 2, 0.3)):
        nb = nbformat.v4.new_notebook()
        nb.metadata["papermill"] = {"duration": seconds, "parameters": {"profile": "quick"}}
        nb.metadata["adv2"] = {"models_cached_at_start": cached, "other_jobs_cores": others}
        nbformat.write(nb, folder / f"{stem}.ipynb")
    subs = ext.laptop()
    assert subs["laptop_total"] == ("9.0 min at `quick`, the sum of the chapters' times (≤ 15: pass)")
    assert subs["laptop_slowest"] == "02_b, 7.0 min (≤ 5: FAIL)"
    assert subs["laptop_cache"] == "an empty cache"
    assert subs["laptop_idle"] == "at most 0.10 cores, except 0.30 during 02_b"
    assert subs["laptop_runs"] == "one run"
    (tmp_path / "results").mkdir()  # a whole run recorded its own wall time: that, not the sum
    (tmp_path / "results" / "timings-quick.json").write_text(
        json.dumps({"seconds": {"01_a": 120, "02_b": 420}, "run": {"wall_seconds": 960.0}})
    )
    assert ext.laptop()["laptop_total"] == "16.0 min as one run at `quick` (≤ 15: FAIL)"
    nb = nbformat.read(folder / "02_b.ipynb", as_version=4)
    nb.metadata["papermill"].update(
        start_time="2026-12-02T12:58:07+00:00",
        parameters={"profile": "quick", "results_dir": "runs/b/results"},
    )
    nbformat.write(nb, folder / "02_b.ipynb")
    assert ext.laptop()["laptop_runs"].startswith("2 runs (begun 2026-12-02 12:58 UTC, an unknown time)")


def test_convergence_merge_keeps_the_other_interpreters(tmp_path):
    conv = _module(ROOT / "benchmarks" / "bench_convergence.py", "bench_convergence")
    base = {"setting": "fmnist", "n_images": 16, "scale": 0.25, "every": 4, "date": "d", "seconds": 1.0}
    path = tmp_path / "conv.json"
    path.write_text(
        json.dumps({**base, "other_jobs_cores": 1.0, "interpreters": {"cam": {"x": 1}, "mask": {"x": 2}}})
    )
    new = {**base, "seconds": 2.0, "other_jobs_cores": 0.5, "interpreters": {"mask": {"x": 3}}}
    merged = conv.merge(path, copy.deepcopy(new))
    assert merged["interpreters"] == {"cam": {"x": 1}, "mask": {"x": 3}}
    assert [r["seconds"] for r in merged["runs"]] == [1.0, 2.0] and merged["runs"][1]["interpreters"] == [
        "mask"
    ]
    path.write_text(json.dumps(merged))  # a rerun of MASK replaces the superseded run's entry
    again = conv.merge(path, {**copy.deepcopy(new), "seconds": 3.0})
    assert [r["seconds"] for r in again["runs"]] == [1.0, 3.0]
    assert again["runs"][0]["interpreters"] == ["cam", "mask"]
    other = conv.merge(path, {**copy.deepcopy(new), "scale": 0.5})  # another scale: not merged
    assert other["interpreters"] == {"mask": {"x": 3}}


def _alone_report():
    return {
        "profile": "quick",
        "target_minutes": 5,
        "other_jobs_cores": 0.02,
        "cpu_count": 2,
        "date": "2026-12-02",
        "chapters": {
            "01_target_models": {"seconds": 138.0, "returncode": 0, "pass": True},
            "03_adv2": {"seconds": 480.0, "returncode": 0, "pass": False, "other_jobs_cores": 0.9},
            "08_scaling": {"seconds": 100.0, "returncode": 1, "pass": False},
        },
    }


def test_each_chapter_alone_report_and_page_numbers(tmp_path, monkeypatch):
    ext = _module(ROOT / "book" / "_ext" / "bench_numbers.py", "bench_numbers")
    monkeypatch.setattr(ext, "ROOT", tmp_path)
    (tmp_path / "results").mkdir()
    assert report.alone_lines(tmp_path / "results")[0].endswith(
        "not measured (python benchmarks/bench_alone.py)"
    )
    assert ext.alone()["alone_03"] == ext.MISSING
    assert ext.alone()["alone_summary"].startswith("not measured yet")
    (tmp_path / "results" / "bench_alone.json").write_text(json.dumps(_alone_report()))
    lines = report.alone_lines(tmp_path / "results")
    assert "  03_adv2: 8.00 min, other jobs 0.90 cores (target <= 5) FAIL" in lines
    assert "  08_scaling: 1.67 min, exit code 1 (target <= 5) FAIL" in lines  # fast, but it failed
    subs = ext.alone()
    assert (
        subs["alone_01"] == "2.3 min (pass)" and subs["alone_03"] == "8.0 min, other jobs 0.90 cores (FAIL)"
    )
    assert subs["alone_08"] == "1.7 min, exit code 1 (FAIL)" and subs["alone_02"] == ext.MISSING
    assert subs["alone_summary"].startswith(
        "1 of 3 chapters within 5 minutes (measured 2026-12-02; other jobs used"
    )
    bad = _alone_report()
    bad["chapters"]["03_adv2"]["pass"] = True
    with pytest.raises(ValueError, match="pass disagrees"):
        report.check_alone(bad)


def test_bench_alone_merges_the_finished_chapters_into_the_timings_file(tmp_path, monkeypatch):
    """Issue 27 item 3: the chapters-alone times go into timings-<profile>.json beside the report
    (the one file the README, run box and teaching page read), every other key kept; a failed
    chapter's time is not shown as a time."""
    bench = _module(ROOT / "benchmarks" / "bench_alone.py", "bench_alone")
    fake = {"01_target_models": (138.0, 0), "03_adv2": (480.0, 0), "08_scaling": (100.0, 1)}
    monkeypatch.setattr(
        bench,
        "run_alone",
        lambda stem, profile, scratch: {"seconds": fake[stem][0], "returncode": fake[stem][1], "pass": False},
    )
    timings_path = tmp_path / "timings-quick.json"
    kept = {
        "seconds": {"01_target_models": 15.5},
        "environment": {"date": "2030-01-01"},
        "run": {"wall_seconds": 900.0, "notebooks": 9},
    }
    timings_path.write_text(json.dumps(kept))
    out = tmp_path / "bench_alone.json"
    bench.main(["--chapters", "01", "03", "08", "--output", str(out)])
    data = json.loads(timings_path.read_text())
    assert {k: data[k] for k in kept} == kept
    alone = data["alone"]
    assert alone["seconds"] == {"01_target_models": 138.0, "03_adv2": 480.0}
    assert alone["failed"] == ["08_scaling"] and alone["target_minutes"] == 5
    assert alone["date"] == json.loads(out.read_text())["date"]  # the detailed report stays beside it
    assert set(json.loads(out.read_text())["chapters"]) == set(fake)
    bench.main(["--chapters", "01", "--profile", "smoke", "--output", str(out)])  # another profile's file
    assert json.loads(timings_path.read_text())["alone"] == alone
    assert json.loads((tmp_path / "timings-smoke.json").read_text())["alone"]["seconds"] == {
        "01_target_models": 138.0
    }


def test_bench_alone_rejects_a_wrong_chapter_before_running_any():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_alone.py"), "--chapters", "01", "99"],
        capture_output=True,
        text=True,
    )
    assert (
        out.returncode == 2 and "no notebook matches '99'" in out.stderr and "01_target_models" in out.stderr
    )
