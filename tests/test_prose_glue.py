"""Comparative words in the prose are computed (issue 26 item 2): each chapter's phrase glue is a
function of its results file's numbers, so changing a number in a copy changes the sentence."""

from __future__ import annotations

import copy
import json
import re

import pytest

from adv2.core.config import REPO_ROOT
from adv2.core.phrases import ABOVE, BELOW, SAME

RESULTS = REPO_ROOT / "results"
NOTEBOOKS = REPO_ROOT / "notebooks"


def _numbers(stem):
    path = RESULTS / f"{stem}.json"
    if not path.is_file():
        pytest.skip(f"no published {stem}")
    return json.loads(path.read_text())


def test_ch3_confidence_word_follows_the_numbers():
    from adv2.chapters.ch03 import report

    data = _numbers("03_adv2")
    n, schedule = data["numbers"], data["params"]["schedule"]
    s = n["summary"]
    glue = report.phrase_glue(n, schedule)
    expected = ABOVE if s["confidence_adv2_mean"] > 1.05 * s["confidence_pgd_mean"] else None
    if expected:
        assert glue["ch3_summary_confidence_adv2_vs_pgd"] == expected
    low = copy.deepcopy(n)
    low["summary"]["confidence_adv2_mean"] = 0.5 * low["summary"]["confidence_pgd_mean"]
    g2 = report.phrase_glue(low, schedule)
    assert g2["ch3_summary_confidence_adv2_vs_pgd"] == BELOW
    assert g2["ch3_summary_confidence_reading"] != glue["ch3_summary_confidence_reading"]
    low["summary"]["confidence_adv2_mean"] = low["summary"]["confidence_pgd_mean"]
    assert report.phrase_glue(low, schedule)["ch3_summary_confidence_adv2_vs_pgd"] == SAME


def test_ch3_curves_reading_follows_the_curves():
    from adv2.chapters.ch03 import report

    data = _numbers("03_adv2")
    n = data["numbers"]
    if not (n.get("photos") or {}).get("curves"):
        pytest.skip("the published run drew no photo curves")
    text = report.phrase_glue(n, "fast")["ch3_photo_curves_reading"]
    assert "PGD stops each image once it is at the target" in text
    flat = copy.deepcopy(n)
    for c in flat["photos"]["curves"].values():
        c["adv2"]["l1"] = c["adv2"]["l1"][:-2] + [c["adv2"]["l1"][-3]] * 2
    assert "flattened" in report.phrase_glue(flat, "fast")["ch3_photo_curves_reading"]


def test_ch7_gap_trend_says_away_when_the_gap_widens():
    from adv2.chapters.ch07 import reading

    n = _numbers("07_input_size")["numbers"]
    glue = reading.phrase_glue(n)
    arch = next(iter(n["curve"]))
    small, large = str(n["sizes"][0]), str(n["sizes"][-1])
    changed = copy.deepcopy(n)

    def set_rate(size, n_, att, value):  # the curve's (train_seed's run) and its pooled value
        changed["curve"][arch][size][n_][att]["success_rate"] = value
        changed["intervals"][arch][size][n_][att]["success_rate"]["value"] = value

    for n_ in n["interpreters"]:
        set_rate(small, n_, "adv2", 0.2)
        set_rate(small, n_, "pgd", 0.9)
        set_rate(large, n_, "adv2", 0.9)
        set_rate(large, n_, "pgd", 0.9)
    text = reading.phrase_glue(changed)["ch7_success_gap_reading"]
    assert text.count("moves towards PGD's") == len(n["interpreters"])
    for n_ in n["interpreters"]:
        set_rate(large, n_, "adv2", 0.1)
    text = reading.phrase_glue(changed)["ch7_success_gap_reading"]
    assert text.count("moves away from PGD's") == len(n["interpreters"])
    assert glue["ch7_success_gap_reading"] != text


def test_ch8_top_readings_follow_the_numbers():
    from adv2.chapters import ch08

    n = _numbers("08_scaling")["numbers"]
    changed = copy.deepcopy(n)
    for r in changed["readings"].values():
        r["adv2_success_top"], r["pgd_success_top"] = 1.0, 1.0
    text = ch08.top_readings(changed)["ch8_top_success_reading"]
    assert text == f"ADV2's success is about the same as PGD's for {len(n['readings'])} pairs"


def test_ch8_reaching_where_both_fail_is_told_apart():
    """'ADV2 reaches PGD's success at 0.031' where both are near 0 is counted apart and shown
    with both rates."""
    from adv2.chapters import ch08

    params = {
        "archs": ["resnet"],
        "interpreters": ["cam"],
        "epsilons": [0.031, 0.1],
        "step_scales": [0.03],
        "seeds": [0],
        "budget_epsilon": 0.1,
    }
    col = lambda att, m: ch08.column("resnet", "cam", att, m)
    rows = [
        {
            "status": "ok",
            "epsilon": 0.031,
            "step_scale": 0.03,
            col("adv2", "success_rate"): 0.0,
            col("pgd", "success_rate"): 0.03,
            col("adv2", "l1_mean"): 0.1,
            col("pgd", "l1_mean"): 0.3,
        },
        {
            "status": "ok",
            "epsilon": 0.1,
            "step_scale": 0.03,
            col("adv2", "success_rate"): 1.0,
            col("pgd", "success_rate"): 1.0,
            col("adv2", "l1_mean"): 0.1,
            col("pgd", "l1_mean"): 0.3,
        },
    ]
    s = ch08.scaling(params, rows)
    glue = s.glue()["ch8"]
    assert glue["pairs_reaching_both_failing"] == 1 and glue["pairs_reaching_pgd_succeeding"] == 0
    pytest.importorskip("torch")
    assert "where both fail (ADV2 0, PGD 0.0300)" in s.readings_table()


def test_no_bold_glue_and_no_typed_comparatives_left():
    """The sentences issue 26 named are gone, and no glued value is set in bold mid-sentence."""
    for stem, gone in (
        ("03_adv2", "tends to\nsit a little below PGD's"),
        ("07_input_size", "ADV2's success moves towards PGD's"),
        ("08_scaling", "ADV2's success climbs to\nPGD's"),
    ):
        text = "".join(
            "".join(c["source"]) for c in json.loads((NOTEBOOKS / f"{stem}.ipynb").read_text())["cells"]
        )
        assert gone not in text, (stem, gone)
        assert not re.search(r"\*\*\{glue:text\}`[^`]+`\*\*", text), f"{stem}: a glued value in bold"


def test_rule_text_names_the_interval_the_code_computes():
    """The success claim's rule names the paired interval rate_diff_ci computes (one constant)."""
    import numpy as np

    from adv2.chapters import claims
    from adv2.core import stats

    assert stats.PAIRED_RATE_DIFF in claims.CLAIMS["adv2_success_like_pgd"].rule
    est = stats.rate_diff_ci(np.ones(20), np.r_[np.ones(15), np.zeros(5)], paired=True)
    assert "bonett" in est.method.lower() and "bonett" in stats.PAIRED_RATE_DIFF.lower()
