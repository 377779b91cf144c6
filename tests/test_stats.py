"""adv2.core.stats: intervals over images and the book's number format."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import torch

from adv2.core import stats
from adv2.core.formatting import fmt
from adv2.core.stats import Estimate, diff_ci, images_needed, mean_ci, rate_ci, rate_diff_ci, ratio_ci


# ----------------------------------------------------------------------------- fmt
@pytest.mark.parametrize(
    "value, shown",
    [
        (0.12345, "0.123"),
        (12.345, "12.3"),
        (1234.5, "1230"),
        (0.1, "0.100"),
        (1.0, "1.00"),
        (0.5625, "0.562"),
        (9.996, "10.0"),
        (0.0009996, "0.00100"),
        (-0.00012345, "-0.000123"),
        (1e-9, "1.00e-09"),
        (0.0, "0"),
        (-0.0, "0"),
        (32, "32"),
        (np.int64(7), "7"),
        (np.float32(0.25), "0.250"),
        (torch.tensor(0.75), "0.750"),
        (None, "—"),
        (float("nan"), "—"),
        (np.nan, "—"),
        (float("inf"), "∞"),
        ("n/a", "n/a"),
        (True, "yes"),
    ],
)
def test_fmt_three_significant_digits(value, shown):
    assert fmt(value) == shown


def test_fmt_digits_and_errors():
    assert fmt(0.123456, digits=2) == "0.12"
    assert fmt(2 / 3, digits=4) == "0.6667"
    with pytest.raises(ValueError, match="digits"):
        fmt(0.5, digits=0)
    with pytest.raises(TypeError, match="one number"):
        fmt(np.array([1.0, 2.0]))


# ----------------------------------------------------------------------------- Estimate
def test_estimate_str_dict_and_half_width():
    e = Estimate(0.1234, 0.1, 0.15, 32, "bootstrap 95%")
    assert str(e) == "0.123 [0.100, 0.150]"
    assert e.half_width == pytest.approx(0.025)
    d = e.as_dict()
    assert d == {"value": 0.1234, "low": 0.1, "high": 0.15, "n": 32, "method": "bootstrap 95%"}
    assert Estimate.from_dict(json.loads(json.dumps(d))) == e
    assert str(Estimate(None, None, None, 0, "x")) == "—"
    assert str(Estimate(0.5, None, None, 1, "x")) == "0.500"
    assert Estimate(0.5, None, None, 1, "x").half_width is None


# ----------------------------------------------------------------------------- mean_ci
def test_mean_ci_bootstrap_coverage_on_normal_samples():
    """200 replications of n = 50 normal samples: the 95 % interval covers the mean 90-98 %."""
    rng = np.random.default_rng(123)
    covered = 0
    for rep in range(200):
        x = rng.normal(1.0, 2.0, size=50)
        e = mean_ci(x, seed=rep)
        covered += e.low <= 1.0 <= e.high
    assert 0.90 <= covered / 200 <= 0.98, covered


def test_mean_ci_seeded_and_input_types():
    x = np.random.default_rng(0).uniform(size=40)
    a, b = mean_ci(x, seed=3), mean_ci(x, seed=3)
    assert a == b
    assert mean_ci(x, seed=4) != a  # the seed is really used
    assert mean_ci(list(x), seed=3) == a
    assert mean_ci(torch.tensor(x), seed=3) == a
    assert a.value == pytest.approx(x.mean()) and a.low < a.value < a.high
    assert a.n == 40 and "bootstrap" in a.method


def test_mean_ci_nan_small_and_constant():
    e = mean_ci([0.2, np.nan, 0.4, np.nan])
    assert e.n == 2 and e.value == pytest.approx(0.3)
    one = mean_ci([0.5, np.nan])
    assert one.n == 1 and one.value == 0.5 and one.low is None and one.high is None
    none = mean_ci([np.nan, np.nan])
    assert none.n == 0 and none.value is None
    assert mean_ci([]).value is None
    flat = mean_ci([0.3] * 10)
    assert flat.low == flat.high == pytest.approx(0.3)
    with pytest.raises(ValueError, match="1-D"):
        mean_ci(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="level"):
        mean_ci([1.0, 2.0], level=95)


def test_mean_ci_is_fast():
    x = np.random.default_rng(0).uniform(size=1000)
    mean_ci(x)
    started = time.perf_counter()
    for _ in range(5):
        mean_ci(x)
    per_call = (time.perf_counter() - started) / 5
    assert per_call < 0.1, per_call  # ~10-20 ms on an idle core; loose for shared CI


def test_wider_interval_for_fewer_images():
    rng = np.random.default_rng(1)
    small, large = mean_ci(rng.normal(size=10)), mean_ci(rng.normal(size=400))
    assert small.half_width > 3 * large.half_width


# ----------------------------------------------------------------------------- rate_ci
def test_rate_ci_wilson_known_value():
    e = rate_ci([1] * 5 + [0] * 5)
    assert e.value == 0.5
    assert (e.low, e.high) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert e.method.startswith("wilson")


@pytest.mark.parametrize("n", [1, 8, 32])
def test_rate_ci_edges_are_not_degenerate(n):
    zero, full = rate_ci([False] * n), rate_ci(np.ones(n, bool))
    assert zero.value == 0 and zero.low == 0 and 0 < zero.high < 1
    assert full.value == 1 and full.high == 1 and 0 < full.low < 1
    assert zero.high == pytest.approx(1 - full.low)
    if n == 32:
        assert zero.high == pytest.approx(0.1072, abs=1e-4)


def test_rate_ci_inputs():
    assert rate_ci(torch.tensor([True, False, True, True])).value == 0.75
    assert rate_ci([1, np.nan, 0]).n == 2
    assert rate_ci([]).value is None
    with pytest.raises(ValueError, match="0/1"):
        rate_ci([0.5, 1])


# ----------------------------------------------------------------------------- differences
def test_rate_diff_ci_paired_edges_and_correlation():
    same = rate_diff_ci([1] * 8, [1] * 8, paired=True)
    assert same.value == 0 and same.low < 0 < same.high  # 8 images cannot pin it to 0
    assert rate_diff_ci([1] * 32, [1] * 32, paired=True).half_width < same.half_width
    rng = np.random.default_rng(0)
    b = rng.random(60) < 0.6
    a = b.copy()
    a[:6] = False  # a = b on 54 of 60 images
    paired, unpaired = rate_diff_ci(a, b, paired=True), rate_diff_ci(a, b, paired=False)
    assert paired.value == pytest.approx(unpaired.value)
    assert paired.half_width < unpaired.half_width  # pairing uses the correlation
    with pytest.raises(ValueError, match="per image"):
        rate_diff_ci([1, 0], [1], paired=True)


def test_diff_ci_paired_and_unpaired():
    rng = np.random.default_rng(2)
    base = rng.normal(size=50)
    a, b = base + 0.1, base + rng.normal(0, 0.01, 50)
    paired, unpaired = diff_ci(a, b, paired=True), diff_ci(a, b, paired=False)
    assert paired.value == pytest.approx(unpaired.value)
    assert paired.low > 0 and unpaired.low < 0 < unpaired.high


# ----------------------------------------------------------------------------- ratio_ci
def test_ratio_ci_paired_vs_unpaired():
    rng = np.random.default_rng(5)
    den = rng.uniform(0.1, 0.5, 40)  # per-image scale shared by both numbers
    num = 0.6 * den * rng.uniform(0.95, 1.05, 40)
    p, u = ratio_ci(num, den, paired=True), ratio_ci(num, den, paired=False)
    assert p.value == pytest.approx(u.value) == pytest.approx(num.mean() / den.mean())
    assert p.low <= p.value <= p.high and u.low <= u.value <= u.high
    assert p.half_width < u.half_width / 3
    assert p == ratio_ci(num, den, paired=True)  # seeded
    assert p.method.startswith("paired")
    with pytest.raises(ValueError, match="paired=False"):
        ratio_ci(num, den[:-1], paired=True)


def test_ratio_ci_numerator_on_some_images():
    """ADV2's distance exists on its successes only; PGD's on all images (the authors' means)."""
    num = np.array([0.1, np.nan, 0.2, np.nan, 0.3, 0.2, np.nan, 0.1])
    den = np.full(8, 0.4)
    e = ratio_ci(num, den, paired=True)
    assert e.n == 8
    assert e.value == pytest.approx(np.nanmean(num) / 0.4)


def test_ratio_ci_undefined():
    assert ratio_ci([0.1, 0.2], [0.0, 0.0], paired=True).value is None
    assert ratio_ci([np.nan, np.nan], [0.1, 0.2], paired=True).value is None
    e = ratio_ci([0.1, np.nan], [0.1, 0.2], paired=True)
    assert e.value is not None and e.low is None  # one numerator value: no interval


# ----------------------------------------------------------------------------- images_needed
def test_images_needed():
    e = Estimate(0.0484, 0.0417, 0.0549, 64, "bootstrap 95%")
    need = images_needed(e, 0.05)
    assert need > 64
    assert need == math.ceil(64 * ((0.0549 - 0.0484) / (0.05 - 0.0484)) ** 2)
    assert images_needed(Estimate(0.045, 0.0417, 0.0549, 64, "x"), 0.05) < need  # bigger gap
    assert images_needed(Estimate(0.5, None, None, 1, "x"), 0.3) is None
    assert images_needed(Estimate(0.3, 0.2, 0.4, 10, "x"), 0.3) is None
    # already decided: the current n (or fewer) suffices
    assert images_needed(Estimate(0.2, 0.15, 0.25, 40, "x"), 0.5) <= 40


def test_paired_rate_difference_is_not_certain_when_both_succeed_on_the_same_images():
    """Two attacks that succeed on exactly the same 4 of 8 images: the difference is 0, but 8
    images cannot pin it to exactly 0 (a zero-width interval would let a claim 'hold' by luck)."""
    flags = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    est = rate_diff_ci(flags, flags, paired=True)
    assert est.value == 0 and est.low < -0.1 and est.high > 0.1
    # more images, the same pattern: narrower
    many = np.tile(flags, 16)
    wide, narrow = est.half_width, rate_diff_ci(many, many, paired=True).half_width
    assert narrow < wide / 2


# ----------------------------------------------------------------------------- seeds_ci
def test_t_quantile_matches_closed_forms():
    # df 1 (Cauchy): t = tan(pi * level / 2); df 2: t = (2p - 1) / sqrt(2 p (1 - p)), p = (1 + level) / 2
    assert stats.t_quantile(0.95, 1) == pytest.approx(math.tan(math.pi * 0.95 / 2), rel=1e-9)
    p = 0.975
    assert stats.t_quantile(0.95, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-9)
    # many degrees of freedom approach the normal quantile from above
    assert 1.959964 < stats.t_quantile(0.95, 2000) < 1.962
    with pytest.raises(ValueError, match="df must be an integer >= 1"):
        stats.t_quantile(0.95, 0)


def test_seeds_ci_is_the_t_interval_over_seeds():
    est = stats.seeds_ci([0.87, 0.88, 0.875])
    p = 0.975
    t2 = (2 * p - 1) / math.sqrt(2 * p * (1 - p))  # df = 2
    half = t2 * 0.005 / math.sqrt(3)  # sample sd of the three values is 0.005
    assert est.value == pytest.approx(0.875)
    assert (est.low, est.high) == (pytest.approx(0.875 - half), pytest.approx(0.875 + half))
    assert est.n == 3 and est.method == "t over seeds"
    assert str(est) == "0.875 [0.863, 0.887]"


def test_seeds_ci_without_an_interval_below_two_seeds():
    one = stats.seeds_ci([0.9])
    assert (one.value, one.low, one.high, one.n) == (0.9, None, None, 1)
    assert stats.seeds_ci([]).value is None
    same = stats.seeds_ci([0.5, 0.5])
    assert same.low == same.high == 0.5
