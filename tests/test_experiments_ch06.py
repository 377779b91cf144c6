"""Chapter 6's protocol (adv2.chapters.ch06): ADV2 against a stand-in RTS and RTSA on a tiny linear
classifier, end to end, and the claim rules on hand-made Table 10 numbers."""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from adv2.chapters import (
    _common,
    aid_eval,
    aid_photo_eval,
    aid_photo_pools,
    aid_photos,
    aid_trial,
    ch06,
    claims,
    results,
)
from adv2.core import attacks, formatting, paper, seed_stats, stats
from standins import FakeRTS, glue_keys_in_markdown

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "06_table10.ipynb"
EPSILON = 0.1


@pytest.fixture(scope="module")
def chapter():
    cache = {}

    def run(archs):
        key = tuple(archs)
        if key not in cache:
            torch.manual_seed(0)
            model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()
            nets = {
                a: SimpleNamespace(model=model, rts=FakeRTS(1), rtsa=FakeRTS(2), control=FakeRTS(3))
                for a in archs
            }
            g = torch.Generator().manual_seed(0)
            x = torch.rand(200, 1, 28, 28, generator=g)
            y = model(x).argmax(1)
            cfg = attacks.default_config(
                "rts", epsilon=EPSILON, step_size=0.02, stage1_steps=3, stage2_steps=3
            )
            cache[key] = ch06.attack(
                nets,
                x,
                y,
                n_images=6,
                num_classes=10,
                seed=0,
                attack_cfg=cfg,
                restrict_to_success=True,
                adaptive=True,
            )
        return cache[key]

    return run


@pytest.mark.parametrize("archs", [["densenet"], ["resnet"]])
def test_glue_covers_every_key_the_chapter_reads(chapter, archs):
    # photos off: glued as not run (so is the photo pool study without its report)
    glued = {
        **chapter(archs).glue(),
        **aid_photos.all_photo_glue({}, {}, {}),  # every photo classifier's names
        **aid_photo_pools.glue(None, "not run"),
        **aid_photo_eval.glue(None, "not run"),
    }
    wanted = glue_keys_in_markdown(NOTEBOOK)
    assert wanted, "no {glue} references found in the chapter's markdown"
    assert wanted <= set(glued), sorted(wanted - set(glued))
    other = ({"resnet", "densenet"} - set(archs)).pop()
    assert glued[f"ch6_{other}_adv2_l1_rts_ci"] == "not run"
    assert glued[f"ch6_{other}_verdict_ratio"] == "not run"
    for name, value in glued.items():
        assert value is not None and not (isinstance(value, float) and math.isnan(value)), name


def test_numbers_per_image_and_check(chapter):
    result = chapter(["resnet"])
    n = result.numbers()
    assert set(n) == {"resnet", "paper", "attack", "intervals", "verdicts", "train_seeds", "interval_covers"}
    est = n["intervals"]["resnet"]
    for key in (
        "benign_l1_rts_vs_rtsa",
        "adv2_l1_rts",
        "adv2_l1_rtsa",
        "adv2_l1_ratio",
        "adv2_success_rts",
        "pgd_l1_rts",
    ):
        value, got = n["resnet"][key], est[key]["value"]
        assert (got is None and (value is None or math.isnan(value))) or got == pytest.approx(
            value, rel=1e-5
        ), key
    assert set(n["verdicts"]["resnet"]) == set(ch06.CLAIM_GLUE)
    # six images: an illustration, not a measurement, whatever the numbers
    assert {v["status"] for v in n["verdicts"]["resnet"].values()} == {claims.NOT_MEASURABLE}
    assert set(aid_eval.TABLE10_KEYS) <= set(n["resnet"])
    attacked = ("rts", "rtsa", "control")
    assert set(n["resnet"]["seconds"]) == {"stage1", *attacked, *(f"adaptive_{k}" for k in attacked)}
    # the adaptive attacker keeps the best of three attempts, the standard attack among them
    pi = result.per_image["resnet"]
    for k in attacked:
        ok = pi[f"success_{k}"].bool()
        assert bool(pi[f"adaptive_success_{k}"][ok].all())
        assert bool((pi[f"adaptive_adv2_l1_{k}"][ok] <= pi[f"adv2_l1_{k}"][ok] + 1e-6).all())
    assert set(n["resnet"]["control"]) >= set(aid_eval.TABLE10_KEYS)
    assert n["resnet"]["quartiles"]["adv2_rts"]["n"] == int(pi["success_rts"].sum())
    assert n["paper"] == paper.PAPER_TABLE10 and n["attack"]["stage2_steps"] == 3
    pi = result.per_image["resnet"]
    assert len(pi["adv2_l1_rts"]) == n["resnet"]["n_images"] == 6
    assert float(pi["benign_l1_rts_vs_rtsa"].mean()) == pytest.approx(n["resnet"]["benign_l1_rts_vs_rtsa"])
    assert float(pi["pgd_l1_rtsa"].mean()) == pytest.approx(n["resnet"]["pgd_l1_rtsa"])
    ok = pi["success_rts"]
    if ok.any():
        assert float(pi["adv2_l1_rts"][ok].mean()) == pytest.approx(n["resnet"]["adv2_l1_rts"])
    json.dumps(results._plain(n))
    ch06.check(result, epsilon=EPSILON)
    with pytest.raises(AssertionError, match=r"beyond the budget epsilon = 0.001"):
        ch06.check(result, epsilon=0.001)


def test_tables_and_figure_have_no_nan_or_none(chapter):
    result = chapter(["densenet"])
    text = ch06.table10_table(result) + ch06.transfer_table(result)
    assert "nan" not in text and "None" not in text
    cells, labels, fa = ch06.figure16_cells(result, [f"class {i}" for i in range(10)], rows=2)
    assert fa == "densenet" and len(cells) == len(labels) == 2 and len(cells[0]) == 7
    assert "ε = 0.1" in ch06.describe_attack(attacks.default_config("rts", epsilon=0.1))


def _fake(
    n=20, benign=0.02, adv_rts=0.01, adv_rtsa=0.10, pgd_rts=0.1, success_rts=1.0, success_rtsa=1.0
) -> ch06.Ch06Result:
    """A result with hand-made per-image arrays (means as given, a little spread)."""
    g = torch.Generator().manual_seed(0)

    def spread(m):
        return m * (0.8 + 0.4 * torch.rand(n, generator=g))

    res = ch06.Ch06Result.__new__(ch06.Ch06Result)
    res.archs, res.restrict = ["resnet"], {"resnet": True}
    res.train_seed, res.more_seeds = 0, {}
    res.per_image = {
        "resnet": {
            "benign_l1_rts_vs_rtsa": spread(benign),
            "adv2_l1_rts": spread(adv_rts),
            "adv2_l1_rtsa": spread(adv_rtsa),
            "pgd_l1_rts": spread(pgd_rts),
            "pgd_l1_rtsa": spread(pgd_rts),
            "success_rts": torch.arange(n) < round(success_rts * n),
            "success_rtsa": torch.arange(n) < round(success_rtsa * n),
        }
    }
    return res


def test_verdicts_come_from_the_claims_layer():
    v = ch06.verdicts(_fake())["resnet"]
    assert all(isinstance(x, claims.Verdict) for x in v.values())
    assert {x.status for x in v.values()} == {claims.HOLDS}
    v = ch06.verdicts(_fake(benign=0.1, adv_rts=0.08, adv_rtsa=0.2))["resnet"]
    assert {x.status for x in v.values()} == {claims.DOES_NOT_HOLD}
    # no successful attack against RTS: the two map claims are not measurable (0 % success)
    v = ch06.verdicts(_fake(success_rts=0.0))["resnet"]
    assert (
        v["adv2_keeps_rts_maps_close"].status == v["aid_separates_adv2_maps"].status == claims.NOT_MEASURABLE
    )
    assert "0 of 20 images" in v["aid_separates_adv2_maps"].reason
    # the same rule as chapter 3: one threshold, in adv2.chapters.claims
    assert claims.CLAIMS["adv2_keeps_rts_maps_close"].threshold == claims.MAPS_CLOSE_RATIO
    assert claims.CLAIMS["aid_separates_adv2_maps"].threshold == claims.AID_RATIO_MIN


# ----------------------------------------------------------------------------- training seeds (issue 27)
# every interval the chapter computed before train_seeds, and its method: the default keeps them
DEFAULT_INTERVALS = {
    "bootstrap 95%": (
        "benign_l1_rts_vs_rtsa", "adv2_l1_rts", "adv2_l1_rtsa", "pgd_l1_rts", "pgd_l1_rtsa",
        "benign_l1_rts_vs_control", "adv2_l1_control", "adaptive_adv2_l1_rts", "adaptive_adv2_l1_rtsa",
        "adaptive_success_rtsa",
    ),
    "paired bootstrap ratio 95%": (
        "adv2_l1_ratio", "adv2_l1_ratio_control", "adv2_l1_rtsa_over_control", "ceiling", "ceiling_control",
        "adaptive_ratio", "adaptive_ratio_control",
    ),
    "paired bootstrap share 95%": ("share", "share_control", "adaptive_share"),
    "wilson 95%": ("adv2_success_rts", "adv2_success_rtsa"),
}  # fmt: skip


def test_default_train_seed_alone_keeps_the_image_only_intervals(chapter):
    """Without ``train_seeds`` every interval is the image-only estimator of adv2.core.stats, with
    the keys and methods it had; the results and the prose say what they cover."""
    result = chapter(["resnet"])
    est, p = result.intervals()["resnet"], result.per_image["resnet"]
    assert {k: e.method for k, e in est.items()} == {
        k: method for method, keys in DEFAULT_INTERVALS.items() for k in keys
    }
    own = {k: aid_trial.where_succeeded(p[f"adv2_l1_{k}"], p[f"success_{k}"], True) for k in ("rts", "rtsa")}
    assert est["adv2_l1_ratio"] == stats.ratio_ci(own["rtsa"], own["rts"], paired=True)
    assert est["benign_l1_rts_vs_rtsa"] == stats.mean_ci(p["benign_l1_rts_vs_rtsa"])
    assert est["adv2_success_rtsa"] == stats.rate_ci(p["success_rtsa"])
    assert est["ceiling"] == stats.ratio_ci(p["pgd_l1_rtsa"], own["rts"], paired=True)
    assert est["share"] == stats.share_ci(own["rtsa"], own["rts"], p["pgd_l1_rtsa"])
    n = result.numbers()
    assert n["train_seeds"] == [0] and n["interval_covers"] == "images"
    assert "images only" in result.glue()["ch6_interval_scope"]
    assert "RTSA" in result.glue()["ch6_interval_scope"]


def test_train_seeds_is_validated_and_defaults_to_train_seed_alone():
    from adv2.chapters.schema import defaults, validate_chapter
    from adv2.core.config import ParameterError

    assert defaults(ch06.STEM)["train_seeds"] == []
    assert validate_chapter(ch06.STEM, {"train_seed": 3, "train_seeds": [2, 3]})["train_seeds"] == [2, 3]
    with pytest.raises(ParameterError, match="'train_seeds' has value \\[1, 2\\], which does not contain"):
        validate_chapter(ch06.STEM, {"train_seed": 0, "train_seeds": [1, 2]})
    for bad in ([0, 0], 1, [0, -1]):
        with pytest.raises(ParameterError, match="train_seeds"):
            validate_chapter(ch06.STEM, {"train_seeds": bad})


def test_further_training_seeds_are_attacked_on_the_same_images_and_pooled():
    """Another seed's models (a nudged classifier, other stand-in interpreters) attacked on the
    same images; the intervals and verdicts pool both seeds, the numbers stay train_seed's."""
    import copy

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()
    other = copy.deepcopy(model)
    with torch.no_grad():
        for w in other.parameters():
            w.add_(1e-3 * torch.randn_like(w))
    x = torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = model(x).argmax(1)
    nets = {"resnet": SimpleNamespace(model=model, rts=FakeRTS(1), rtsa=FakeRTS(2), control=FakeRTS(3))}
    others = {
        5: {"resnet": SimpleNamespace(model=other, rts=FakeRTS(4), rtsa=FakeRTS(5), control=FakeRTS(6))}
    }
    cfg = attacks.default_config("rts", epsilon=EPSILON, step_size=0.02, stage1_steps=3, stage2_steps=3)
    kw = dict(n_images=8, num_classes=10, seed=0, attack_cfg=cfg, restrict_to_success=True, adaptive=False)
    one = ch06.attack(nets, x, y, **kw)
    two = ch06.attack(nets, x, y, train_seed=0, others=others, **kw)
    assert two.train_seeds == [0, 5] and list(two.more_seeds) == [5]
    s = two.attack_sets["resnet"]
    assert two.more_seeds[5].attack_sets["resnet"] is s
    assert bool((other(s.x).argmax(1) == s.y).all())  # every seed's classifier gets them right
    assert torch.equal(s.index, one.attack_sets["resnet"].index)
    n, n_one = two.numbers(), one.numbers()
    assert n["train_seeds"] == [0, 5] and n["interval_covers"] == "images and training seeds"
    drop = lambda d: {k: v for k, v in d.items() if k != "seconds"}  # noqa: E731
    assert json.dumps(results._plain(drop(n["resnet"]))) == json.dumps(results._plain(drop(n_one["resnet"])))
    est = two.intervals()["resnet"]
    assert all(e.method.endswith("t over 2 seeds") for e in est.values())
    runs = two.per_image_by_seed("resnet")
    own = {
        k: [aid_trial.where_succeeded(r[f"adv2_l1_{k}"], r[f"success_{k}"], True) for r in runs]
        for k in ("rts", "rtsa")
    }
    assert est["adv2_l1_ratio"] == seed_stats.ratio_ci_seeds(own["rtsa"], own["rts"])
    assert est["share"] == seed_stats.share_ci_seeds(
        own["rtsa"], own["rts"], [r["pgd_l1_rtsa"] for r in runs]
    )
    assert set(n["verdicts"]["resnet"]) == set(ch06.CLAIM_GLUE)
    glued = two.glue()
    assert "training seeds 0 and 5" in glued["ch6_interval_scope"]
    assert (
        "the transfer and quartile tables, the box plots and Figure 16 show seed 0's"
        in glued["ch6_interval_scope"]
    )
    # the paper table's Table 10 rows are the pooled values with their intervals, as Table 10
    for key in ch06.GLUED_KEYS:
        assert glued[f"ch6_resnet_{key}_ci"] == str(est[key]), key
    assert glued["ch6_resnet_adv2_l1_rts_ci"] != one.glue()["ch6_resnet_adv2_l1_rts_ci"]
    assert "train_seed 5, the same images:" in ch06.attack_log(two)
    ch06.check(two, epsilon=EPSILON)  # every seed's attacks


def test_verdicts_pool_the_training_seeds():
    res = _fake()
    res.more_seeds = {1: _fake(adv_rtsa=0.06)}
    v = ch06.verdicts(res)["resnet"]
    runs = res.per_image_by_seed("resnet")
    ratio = v["aid_separates_adv2_maps"].estimate
    assert ratio.method == "paired bootstrap ratio 95% + t over 2 seeds"
    assert ratio.value == pytest.approx((0.10 + 0.06) / 2 / 0.01, rel=0.15)
    assert ratio == seed_stats.ratio_ci_seeds(
        [r["adv2_l1_rtsa"] for r in runs], [r["adv2_l1_rts"] for r in runs]
    )
    assert v["rtsa_like_rts_on_benign"].estimate == seed_stats.mean_ci_seeds(
        [r["benign_l1_rts_vs_rtsa"] for r in runs]
    )


def test_table10_ratio_half_width_and_sample_size_text():
    res = _fake()
    half = ch06.verdicts(res)["resnet"]["aid_separates_adv2_maps"].estimate.half_width
    assert half is not None and half > 0
    assert f"±{formatting.fmt(half, 2)}" in ch06.sample_size_text(res)
    assert "settles the claim" in ch06.sample_size_text(res)


# ----------------------------------------------------------------------------- photos
def test_photo_table10_ablation_verdicts_and_glue(chapter, monkeypatch):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()
    x = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    y = model(x).argmax(1)
    net = SimpleNamespace(
        model=model,
        rts=FakeRTS(1),
        rtsa=FakeRTS(2),
        control=None,
        rtsa_artifact=SimpleNamespace(
            params={"iterations": 5, "stage2_steps": 1}, metrics={"aid_l1": [0.1, 0.2], "pool_images": 30}
        ),
    )

    def chosen(m, n_images, *, seed, device="cpu", classifier="efficientnet-lite0"):
        return None, SimpleNamespace(x=x[:n_images], y=y[:n_images], target=(y[:n_images] + 3) % 10)

    monkeypatch.setattr(ch06, "photo_attack_set", chosen)
    cfg = attacks.default_config("rts", epsilon=EPSILON, step_size=0.02, stage1_steps=2, stage2_steps=3)
    photo = ch06.attack_photos(net, n_images=8, seed=0, attack_cfg=cfg, restrict_to_success=False)
    assert photo.archs == ["photos"]
    ab = aid_photos.inner_budget_ablation(net, photo, cfg, stage2_steps=1)
    assert ab["inner_stage2_steps"] == 1 and 0 <= ab["inner_success_rts"] <= 1
    assert "RTSA / RTS" in aid_photos.ablation_table(photo, ab)
    numbers = _common.add_setting(chapter(["resnet"]).numbers(), aid_photos.photo_numbers(photo, net, ab))
    assert set(numbers["verdicts"]) == {"resnet", "photos"}
    # no beta = 0 control on the photos: the trial's two claims are not judged there
    trial = {"aid_removes_adv2_advantage", "aid_beats_its_control"}
    assert set(numbers["verdicts"]["photos"]) == set(ch06.CLAIM_GLUE) - trial
    assert numbers["photos"]["ablation_inner_budget"]["inner_stage2_steps"] == 1
    json.dumps(numbers)
    glued = aid_photos.photo_glue(photo, net, ab)
    wanted = {  # EfficientNet-Lite0's section (Lite2's: tests/test_photo_classifiers_ch04_06.py)
        k for k in glue_keys_in_markdown(NOTEBOOK) if k.startswith("ch6_photos_") and "_lite2_" not in k
    }
    assert wanted and wanted <= set(glued)
    assert glued["ch6_photos_stage2_steps"] == 3 and glued["ch6_photos_aid_gap_last"] == 0.2
    assert glued["ch6_photos_adv2_l1_ratio"] == photo.per_arch["photos"]["adv2_l1_ratio"] or math.isnan(
        photo.per_arch["photos"]["adv2_l1_ratio"]
    )
    off = aid_photos.photo_glue(None)
    assert all(off[k] == "not run" for k in wanted)
    assert glued["ch6_photos_share_ci"] == "not run"
    # with RTSA's beta = 0 control attacked too, the trial's claims are judged on the photos
    net.control = FakeRTS(3)
    photo = ch06.attack_photos(net, n_images=8, seed=0, attack_cfg=cfg, restrict_to_success=False)
    numbers = aid_photos.photo_numbers(photo, net, ab)
    assert set(numbers["verdicts"]["photos"]) == set(ch06.CLAIM_GLUE)
    glued = aid_photos.photo_glue(photo, net, ab)
    assert glued["ch6_photos_share_ci"] != "not run" and glued["ch6_photos_verdict_control"] != "not run"


def test_photo_attack_config_is_the_papers_budget():
    cfg = ch06.photo_attack_config(0.01)
    assert cfg.epsilon == 0.031 and cfg.step_size == pytest.approx(1 / 255)
    assert (cfg.stage1_steps, cfg.stage2_steps) == (3, 12)
