"""Comparative words come from numbers (issue 26 item 2): adv2.core.phrases."""

from __future__ import annotations

import math

import pytest

from adv2.core import phrases


def test_compare_numbers_and_intervals():
    assert phrases.compare(0.787, 0.373) == phrases.ABOVE
    assert phrases.compare(0.373, 0.787) == phrases.BELOW
    assert phrases.compare(0.50, 0.51) == phrases.SAME  # within 5 %
    assert phrases.compare(0.0, 0.005) == phrases.SAME  # both about zero
    assert phrases.compare(None, 1.0) is None and phrases.compare(math.nan, 1.0) is None
    # intervals decide when given: overlapping intervals read "about the same"
    assert phrases.compare(0.6, 0.4, a_interval=(0.45, 0.75), b_interval=(0.3, 0.5)) == phrases.SAME
    assert phrases.compare(0.6, 0.4, a_interval=(0.55, 0.65), b_interval=(0.3, 0.5)) == phrases.ABOVE
    assert phrases.compare(0.4, 0.6, a_interval=(0.3, 0.5), b_interval=(0.55, 0.65)) == phrases.BELOW


def test_change_and_gap_trend():
    assert phrases.change(0.1, 0.2) == phrases.RISES
    assert phrases.change(0.2, 0.1) == phrases.FALLS
    assert phrases.change(0.2, 0.201) == phrases.STEADY
    # Grad's gap widening from -0.56 to -0.72 is moving away, not towards
    assert phrases.gap_trend(0.44, 1.0, 0.28, 1.0) == phrases.AWAY
    assert phrases.gap_trend(0.5, 1.0, 0.9, 1.0) == phrases.TOWARDS
    assert phrases.gap_trend(1.0, 1.0, 1.0, 1.0) == phrases.KEEPS


def test_flattens_at():
    assert phrases.flattens_at([0, 3, 6, 9, 12], [0.4, 0.2, 0.21, 0.21, 0.21]) == 6
    assert phrases.flattens_at([0, 3, 6], [0.4, 0.2, 0.1]) is None  # still falling
    assert phrases.flattens_at([0], [0.4]) is None
    with pytest.raises(ValueError):
        phrases.flattens_at([0, 1], [0.1])


def test_joined():
    assert phrases.joined(["a"]) == "a"
    assert phrases.joined(["a", "b", "c"]) == "a, b and c"
