"""adv2.chapters.claims: each claim's rule on holds / does not hold / inconclusive / not measurable inputs,
the 0 %-success case, the front page's table, run checks; adv2.core.paper: one source of the paper's
numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from adv2.book import claimspage
from adv2.chapters import claim_rules
from adv2.chapters import claims as C
from adv2.core import paper
from adv2.core.stats import Estimate

N = 32


def _rng(seed=0):
    return np.random.default_rng(seed)


def _l1_pair(ratio, n=N, seed=0, spread=0.1):
    """Per-image PGD and ADV2 map distances with ADV2 ~ ratio x PGD."""
    rng = _rng(seed)
    pgd = rng.uniform(0.2, 0.4, n)
    return ratio * pgd * rng.uniform(1 - spread, 1 + spread, n), pgd


# ----------------------------------------------------------------------------- registry
def test_registry_lists_every_claim_once():
    # the paper's claims are the front page's rows; the book's own questions (chapter 7) are not
    assert set(C.FRONT_PAGE_CLAIMS) == set(C.CLAIMS) - set(C.BOOK_QUESTIONS)
    assert set(C.BOOK_QUESTIONS) <= set(C.CLAIMS)
    for cid, claim in C.CLAIMS.items():
        assert claim.id == cid and claim.statement and claim.rule and claim.paper
        assert claim.direction in (C.AT_MOST, C.AT_LEAST)
        assert f"{abs(claim.threshold):g}" in claim.rule  # the rule text names its threshold
        assert all(3 <= ch <= 9 for ch in claim.chapters)
    assert C.CLAIMS["rtsa_like_rts_on_benign"].chapters == (4, 6)


def test_unknown_claim_id():
    with pytest.raises(ValueError, match="valid: adv2_success_like_pgd"):
        C.decide("no_such_claim", Estimate(0.1, 0.0, 0.2, 10, "x"))


# ----------------------------------------------------------------------------- claim 3.1
def test_success_like_pgd_four_outcomes():
    ones = np.ones(N, bool)
    v = claim_rules.adv2_success_like_pgd(ones, ones)
    assert v.status == C.HOLDS and v.estimate.value == 0 and v.estimate.low >= -0.15
    half = np.arange(N) % 2 == 0
    v = claim_rules.adv2_success_like_pgd(half, ones)
    assert v.status == C.DOES_NOT_HOLD and v.estimate.high < -0.15
    a = np.ones(16, bool)
    a[:2] = False  # 14/16 vs 16/16: -0.125, interval reaches -0.15
    v = claim_rules.adv2_success_like_pgd(a, np.ones(16, bool))
    assert v.status == C.INCONCLUSIVE and v.n_needed > 16
    assert "inconclusive at this sample size" in v.reason and str(v.n_needed) in v.reason
    v = claim_rules.adv2_success_like_pgd(ones[:4], ones[:4])
    assert v.status == C.NOT_MEASURABLE and "illustration" in v.reason


def test_zero_success_is_never_holds():
    """Issue 12 item 4: both attacks reach 0 % -> "not measurable", not "0 is within 0.15 of 0"."""
    zeros = np.zeros(N, bool)
    v = claim_rules.adv2_success_like_pgd(zeros, zeros)
    assert v.status == C.NOT_MEASURABLE and "none of 32" in v.reason
    v = claim_rules.adv2_success_like_pgd({"grad": zeros, "cam": zeros}, {"grad": zeros, "cam": zeros})
    assert v.status == C.NOT_MEASURABLE
    adv, pgd = _l1_pair(0.3)
    v = claim_rules.adv2_maps_closer_than_pgd(adv, pgd, zeros)
    assert v.status == C.NOT_MEASURABLE and "0 of 32" in v.reason
    assert claim_rules.adv2_keeps_rts_maps_close(adv, pgd, zeros).status == C.NOT_MEASURABLE
    v = claim_rules.aid_separates_adv2_maps(adv, zeros, adv, zeros)
    assert v.status == C.NOT_MEASURABLE and v.estimate is None
    assert "nan" not in json.dumps(v.as_dict()).lower()


def test_success_flags_from_torch_and_nan():
    a = torch.ones(N, dtype=torch.bool)
    p = np.ones(N)
    p[:3] = np.nan  # images without a PGD outcome are left out
    v = claim_rules.adv2_success_like_pgd(a, p)
    assert v.status == C.HOLDS and v.estimate.n == N - 3
    with pytest.raises(ValueError, match="same images"):
        claim_rules.adv2_success_like_pgd(a, p[:-1])
    with pytest.raises(ValueError, match="success flags"):
        claim_rules.adv2_success_like_pgd(np.full(N, 0.5), p)


# ----------------------------------------------------------------------------- claim 3.2 / 6.2
@pytest.mark.parametrize("ratio, status", [(0.25, C.HOLDS), (0.63, C.DOES_NOT_HOLD)])
def test_maps_closer_than_pgd(ratio, status):
    adv, pgd = _l1_pair(ratio)
    v = claim_rules.adv2_maps_closer_than_pgd(adv, pgd, np.ones(N, bool))
    assert v.status == status
    assert v.estimate.value == pytest.approx(adv.mean() / pgd.mean())


def test_maps_closer_inconclusive_and_failures_ignored():
    adv, pgd = _l1_pair(0.5, n=12, spread=0.8, seed=3)
    v = claim_rules.adv2_maps_closer_than_pgd(adv, pgd, np.ones(12, bool))
    assert v.status == C.INCONCLUSIVE and v.n_needed > 12
    # ADV2's distance on a failed image does not count, whatever it is
    adv, pgd = _l1_pair(0.25)
    ok = np.ones(N, bool)
    ok[:4] = False
    adv_bad = adv.copy()
    adv_bad[:4] = 100.0
    adv_nan = adv.copy()
    adv_nan[:4] = np.nan
    v1 = claim_rules.adv2_maps_closer_than_pgd(adv_bad, pgd, ok)
    v2 = claim_rules.adv2_maps_closer_than_pgd(adv_nan, pgd, ok)
    assert v1 == v2 and v1.status == C.HOLDS
    assert v1.estimate.value == pytest.approx(adv[4:].mean() / pgd.mean())


def test_chapter3_and_chapter6_share_one_rule():
    """Issue 12 item 4: the same ADV2/PGD ratio gives the same verdict in chapters 3 and 6."""
    for ratio in (0.3, 0.5, 0.63):
        adv, pgd = _l1_pair(ratio, spread=0.5, seed=1)
        ok = np.ones(N, bool)
        v3 = claim_rules.adv2_maps_closer_than_pgd({"rts": adv}, {"rts": pgd}, {"rts": ok})
        v6 = claim_rules.adv2_keeps_rts_maps_close(adv, pgd, ok)
        assert v3.status == v6.status
        assert v3.estimate == v6.estimate
        assert v3.claim_id != v6.claim_id


def test_maps_closer_every_interpreter():
    good, pgd = _l1_pair(0.2)
    bad, _ = _l1_pair(0.8)
    ok = np.ones(N, bool)
    v = claim_rules.adv2_maps_closer_than_pgd(
        {"cam": good, "grad": bad}, {"cam": pgd, "grad": pgd}, {"cam": ok, "grad": ok}
    )
    assert v.status == C.DOES_NOT_HOLD and dict(v.parts)["cam"].status == C.HOLDS
    assert v.reason.startswith("grad:")
    with pytest.raises(ValueError, match="different parts"):
        claim_rules.adv2_maps_closer_than_pgd({"cam": good}, {"grad": pgd}, {"cam": ok})
    with pytest.raises(ValueError, match="not a mix"):
        claim_rules.adv2_maps_closer_than_pgd({"cam": good}, pgd, ok)


def test_maps_closer_pgd_maps_unchanged():
    v = claim_rules.adv2_maps_closer_than_pgd(np.full(N, 0.1), np.zeros(N), np.ones(N, bool))
    assert v.status == C.NOT_MEASURABLE and "undefined" in v.reason


# ----------------------------------------------------------------------------- claim 4 / 6.1
def test_rtsa_like_rts_on_benign():
    rng = _rng(4)
    assert claim_rules.rtsa_like_rts_on_benign(rng.uniform(0.02, 0.04, 64)).status == C.HOLDS
    assert claim_rules.rtsa_like_rts_on_benign(rng.uniform(0.08, 0.12, 64)).status == C.DOES_NOT_HOLD
    spread = rng.uniform(0.0, 0.1, 64)
    v = claim_rules.rtsa_like_rts_on_benign(spread - spread.mean() + 0.049)  # mean just below 0.05
    assert v.status == C.INCONCLUSIVE and v.n_needed > 64
    v = claim_rules.rtsa_like_rts_on_benign(np.full(16, np.nan))
    assert v.status == C.NOT_MEASURABLE and "no image" in v.reason
    v = claim_rules.rtsa_like_rts_on_benign([0.01, np.nan, 0.02])
    assert v.status == C.NOT_MEASURABLE and "only 2 images" in v.reason
    # smaller settings may lower the bar to 2 images explicitly
    assert claim_rules.rtsa_like_rts_on_benign([0.01, 0.02, 0.015], min_images=2).status == C.HOLDS


# ----------------------------------------------------------------------------- claim 5
def test_rtsa_more_noise_sensitive():
    rng = _rng(5)
    rts = rng.uniform(0.05, 0.15, 100)
    strong = rts * rng.uniform(1.8, 2.2, 100)
    weak = rts * rng.uniform(0.9, 1.1, 100)
    v = claim_rules.rtsa_more_noise_sensitive(
        {"normal": rts, "uniform": rts}, {"normal": strong, "uniform": strong}
    )
    assert v.status == C.HOLDS and len(v.parts) == 2
    v = claim_rules.rtsa_more_noise_sensitive(
        {"normal": rts, "uniform": rts}, {"normal": strong, "uniform": weak}
    )
    assert v.status == C.DOES_NOT_HOLD and v.reason.startswith("uniform:")
    wide = rts * rng.uniform(0.3, 2.3, 100)
    v = claim_rules.rtsa_more_noise_sensitive(rts, wide)
    assert v.status == C.INCONCLUSIVE
    assert claim_rules.rtsa_more_noise_sensitive(np.zeros(100), strong).status == C.NOT_MEASURABLE


def test_rtsa_more_noise_sensitive_pools_training_seeds():
    """Issue 27: ``BySeed`` inputs are decided on the pooled ratio (images and seeds); one seed, or
    plain arrays, give the image-only estimate exactly; a seed with too few images ends the rule."""
    from adv2.core.seed_stats import BySeed, ratio_ci_seeds
    from adv2.core.stats import ratio_ci

    rng = _rng(7)
    rts = [rng.uniform(0.05, 0.15, 60) for _ in range(2)]
    rtsa = [rts[0] * rng.uniform(1.9, 2.1, 60), rts[1] * rng.uniform(1.0, 1.2, 60)]  # seed 1: barely
    rts[0][[3, 8]] = np.nan  # an image without RTS's map: both sides drop it
    plain = claim_rules.rtsa_more_noise_sensitive(rts[0], rtsa[0])
    keep = np.isfinite(rts[0])
    assert plain.status == C.HOLDS
    assert plain.estimate == ratio_ci(rtsa[0][keep], rts[0][keep], paired=True)
    assert claim_rules.rtsa_more_noise_sensitive(BySeed(rts[:1]), BySeed(rtsa[:1])) == plain
    both = claim_rules.rtsa_more_noise_sensitive(BySeed(rts), BySeed(rtsa))
    masked = [np.where(keep, rtsa[0], np.nan), rtsa[1]]
    assert both.estimate == ratio_ci_seeds(masked, [rts[0], rts[1]])
    assert both.estimate.method == "paired bootstrap ratio 95% + t over 2 seeds"
    assert both.status != C.HOLDS  # seed 0 alone holds; seed 1's ratio near 1.1 unsettles it
    per_type = claim_rules.rtsa_more_noise_sensitive(
        {"normal": BySeed(rts), "uniform": BySeed(rts)}, {"normal": BySeed(rtsa), "uniform": BySeed(rtsa)}
    )
    assert dict(per_type.parts)["normal"].estimate == both.estimate
    sparse = np.where(np.arange(60) < 3, rts[1], np.nan)  # seed 1 measured on 3 images only
    few = claim_rules.rtsa_more_noise_sensitive(BySeed([rts[0], sparse]), BySeed(rtsa))
    assert few.status == C.NOT_MEASURABLE and "one of the 2 training seeds" in few.reason
    with pytest.raises(ValueError, match="BySeed for all"):
        claim_rules.rtsa_more_noise_sensitive(BySeed(rts), rtsa[0])


# ----------------------------------------------------------------------------- claim 6.3
def test_aid_separates_adv2_maps():
    rng = _rng(6)
    rts = rng.uniform(0.01, 0.02, N)
    ok = np.ones(N, bool)
    assert claim_rules.aid_separates_adv2_maps(rts, ok, 10 * rts, ok).status == C.HOLDS
    assert claim_rules.aid_separates_adv2_maps(rts, ok, 1.2 * rts, ok).status == C.DOES_NOT_HOLD
    v = claim_rules.aid_separates_adv2_maps(rts, ok, rts * rng.uniform(0.5, 9.5, N), ok)
    assert v.status == C.INCONCLUSIVE
    one = np.zeros(N, bool)
    one[0] = True
    v = claim_rules.aid_separates_adv2_maps(rts, ok, rts, one)
    assert v.status == C.NOT_MEASURABLE and "RTSA reached the target on 1 of 32" in v.reason


# ----------------------------------------------------------------------------- combination
def _v(status, value=0.3, need=None):
    est = None if status == C.NOT_MEASURABLE else Estimate(value, value - 0.1, value + 0.1, 20, "x")
    return C.Verdict("adv2_maps_closer_than_pgd", "s", "r", status, "why", est, need)


def test_all_of_precedence():
    h, d, i, m = _v(C.HOLDS), _v(C.DOES_NOT_HOLD, 0.8), _v(C.INCONCLUSIVE, 0.5, 90), _v(C.NOT_MEASURABLE)
    cid = "adv2_maps_closer_than_pgd"
    assert C.all_of(cid, {"a": h, "b": h}).status == C.HOLDS
    assert C.all_of(cid, {"a": h, "b": i}).status == C.INCONCLUSIVE
    assert C.all_of(cid, {"a": h, "b": i}).n_needed == 90
    assert C.all_of(cid, {"a": i, "b": m}).status == C.NOT_MEASURABLE
    assert C.all_of(cid, {"a": m, "b": d, "c": h}).status == C.DOES_NOT_HOLD
    assert C.all_of(cid, {}).status == C.NOT_MEASURABLE
    with pytest.raises(ValueError, match="status"):
        C.Verdict("x", "s", "r", "holds for one noise type", "", None, None)


def test_verdict_str_json_round_trip():
    adv, pgd = _l1_pair(0.63)
    ok = np.ones(N, bool)
    v = claim_rules.adv2_maps_closer_than_pgd(
        {"cam": adv, "rts": adv}, {"cam": pgd, "rts": pgd}, {"cam": ok, "rts": ok}
    )
    assert str(v) == "does not hold"
    assert v.cell().startswith("does not hold (0.6")
    d = json.loads(json.dumps(v.as_dict()))
    assert set(d) >= {"claim_id", "statement", "rule", "status", "reason", "estimate", "n_needed"}
    assert C.Verdict.from_dict(d) == v


# ----------------------------------------------------------------------------- front page
def test_claims_table_one_column_per_setting():
    adv, pgd = _l1_pair(0.2)
    ok = np.ones(N, bool)
    resnet = {
        "adv2_maps_closer_than_pgd": claim_rules.adv2_maps_closer_than_pgd(adv, pgd, ok),
        "adv2_success_like_pgd": claim_rules.adv2_success_like_pgd(np.zeros(N), np.zeros(N)),
    }
    rows = claimspage.claims_table({"resnet": resnet})
    headers = claimspage.claims_table_headers()
    assert headers[-3:] == ["photos (EfficientNet-Lite0)", "Fashion-MNIST ResNet", "Fashion-MNIST DenseNet"]
    assert all(len(r) == len(headers) for r in rows)
    main = [r for r in rows if not r[0].startswith("↳")]  # ↳ rows: parts and like quantities
    assert len(main) == len(C.FRONT_PAGE_CLAIMS)
    by_id = dict(zip(C.FRONT_PAGE_CLAIMS, main))
    assert by_id["adv2_maps_closer_than_pgd"][5].startswith("holds: ")
    assert by_id["adv2_success_like_pgd"][5] == "not measurable"
    assert by_id["adv2_maps_closer_than_pgd"][4] == "—"  # photos not run
    assert by_id["rtsa_like_rts_on_benign"][5] == "—"  # claim not run
    assert by_id["aid_separates_adv2_maps"][3] == "ratio 10 (Table 10: 0.10 / 0.01)"
    assert by_id["aid_separates_adv2_maps"][2] == "ADV2 L1 ratio RTSA / RTS ≥ 5"
    text = json.dumps(rows)
    assert "nan" not in text and "None" not in text and "n/a" not in text
    with pytest.raises(ValueError, match="valid: photos, resnet, densenet"):
        claimspage.claims_table({"fashion-mnist": resnet})


# ----------------------------------------------------------------------------- paper
def test_paper_numbers_are_the_ones_the_chapters_use():
    from adv2.core import paper

    assert paper.PAPER_TABLE10 == paper.PAPER_TABLE10
    assert paper.PAPER_FIG15_L1 == paper.PAPER_FIG15_L1
    assert paper.PAPER_TABLE10_RATIO == pytest.approx(10)
    assert paper.fig15_ratio() == pytest.approx({"normal": 0.17 / 0.09, "uniform": 1.7})
    assert paper.fig15_ratio(paper.PAPER_FIG15_L1_H1) == pytest.approx(
        {"normal": 8.5, "uniform": 0.17 / 0.03}
    )
    # both parses decode the same 12 numbers
    flat = lambda t: sorted(v for i in t.values() for k in i.values() for v in k.values())
    assert flat(paper.PAPER_FIG15_L1) == flat(paper.PAPER_FIG15_L1_H1)


def test_paper_sources_cover_every_number():
    numbers = {name: json.loads(json.dumps(getattr(paper, name))) for name in paper.SOURCES}  # plain JSON
    public = {n for n in paper.__all__ if n.isupper() and n != "SOURCES"}
    assert public <= set(paper.SOURCES)
    assert numbers["PAPER_ADV2_STEPS"]["rts"] == [300, 1200]


def test_rule_texts_name_the_interval_the_code_computes():
    """Issue 26: the success claim's rule named Newcombe's paired interval while the code computed
    Bonett and Price's; the text and the method now come from one name."""
    import numpy as np

    from adv2.core import stats

    rule = C.CLAIMS["adv2_success_like_pgd"].rule
    assert stats.PAIRED_RATE_DIFF in rule and "Newcombe" not in rule
    est = stats.rate_diff_ci(np.array([1, 1, 0, 1]), np.array([1, 0, 0, 1]), paired=True)
    assert est.method.startswith("bonett-price paired") and "Bonett and Price" in stats.PAIRED_RATE_DIFF
