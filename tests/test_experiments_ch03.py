"""Chapter 3's protocol module: glue coverage for a subset run, verdict rules, explained checks."""

from __future__ import annotations

import math
import re
from pathlib import Path

import nbformat
import pytest
import torch

from adv2.chapters import _compare, claims
from adv2.chapters._common import NOT_RUN, ChapterCheckFailed, shown_path
from adv2.chapters.ch03 import configs, fmnist_attacks, photo_attacks, photo_report, report
from adv2.core import metrics
from adv2.core.formatting import MISSING, fmt
from standins import glue_keys_in_markdown

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "03_adv2.ipynb"
LOADING_CELL = "b26693d6"  # the last model-loading cell; the cells after it are the protocol's


def _subset_attacks(fmnist, weights_seed: int = 0, n_images: int = 3) -> fmnist_attacks.FmnistAttacks:
    from adv2.core.classifier import freeze
    from adv2.core.models import build_small_cnn

    torch.manual_seed(weights_seed)
    net = freeze(build_small_cnn("densenet", fmnist.num_classes, fmnist.class_names))
    interpreters = ["cam", "grad"]
    cfgs = configs.fmnist_configs(
        interpreters,
        epsilon=0.1,
        step_size=0.0125,
        step_scale=0.004,
        mask_step_scale=0.005,
        mask_checkpoints=1,
    )
    fm = fmnist_attacks.attack_fmnist(
        {"densenet": net},
        fmnist,
        cfgs,
        archs=["densenet"],
        interpreters=interpreters,
        accuracy={"densenet": 0.1},
        n_images=n_images,
        mask_n_images=2,
        epsilon=0.1,
        step_size=0.0125,
        step_scale=0.004,
        mask_iterations=5,
        attack_batch_size=8,
        seed=0,
        log=None,
    )
    return fm


@pytest.fixture(scope="module")
def subset_result(fmnist):
    """A real (tiny) run with interpreters=[cam, grad] and archs=[densenet]: an untrained
    DenseNet (a few test images are right by chance) and a handful of attack steps."""
    return report.summarize(_subset_attacks(fmnist))


def test_runs_of_several_training_seeds_pool_into_intervals_that_cover_them(fmnist, subset_result):
    """Issue 27: the same attacks on a second classifier (other initial weights standing in for
    another training seed) join the intervals and verdicts; the results file and the prose say so."""
    import dataclasses

    one = _subset_attacks(fmnist, 0, n_images=6)
    two = dataclasses.replace(one, train_seed=0, more_seeds={1: _subset_attacks(fmnist, 1, n_images=6)})
    assert two.train_seeds == [0, 1]
    result = report.summarize(two)
    numbers = result.numbers()
    assert numbers["train_seeds"] == [0, 1]
    assert numbers["interval_covers"] == "images and training seeds"
    est = result.intervals()["fashion-mnist"]["densenet"]["cam"]
    assert est["pgd"]["l1_mean"].method.endswith("t over 2 seeds")
    assert (
        est["pgd"]["l1_mean"]
        == _compare.attack_intervals(two.per_image_by_seed("densenet"))["cam"]["pgd"]["l1_mean"]
    )
    # the figures' run (train_seed's) keeps its own numbers; the pooled value mixes both seeds
    assert numbers["fashion-mnist"] == report.summarize(one).numbers()["fashion-mnist"]
    glue = result.glue()
    assert "training seeds 0 and 1" in glue["ch3_interval_scope"]
    assert "images only" in subset_result.glue()["ch3_interval_scope"]
    # one seed: the intervals are exactly the image-only ones
    assert report.summarize(one).intervals() == {
        "fashion-mnist": {"densenet": _compare.attack_intervals(one.per_image["densenet"])}
    }


def test_train_seeds_must_name_train_seed():
    from adv2.chapters.schema import validate_chapter
    from adv2.core.config import ParameterError

    assert validate_chapter("03_adv2", {"train_seed": 3, "train_seeds": [2, 3]})["train_seeds"] == [2, 3]
    assert validate_chapter("03_adv2", {"train_seeds": []})["train_seeds"] == []
    with pytest.raises(ParameterError, match="'train_seeds' has value \\[1, 2\\], which does not contain"):
        validate_chapter("03_adv2", {"train_seed": 0, "train_seeds": [1, 2]})
    with pytest.raises(ParameterError, match="train_seeds"):
        validate_chapter("03_adv2", {"train_seeds": [0, 0]})
    with pytest.raises(ParameterError, match="train_seeds"):
        validate_chapter("03_adv2", {"train_seeds": 1})


def test_subset_run_glues_every_key_the_chapter_quotes(subset_result):
    glue = subset_result.glue()
    wanted = glue_keys_in_markdown(NOTEBOOK)
    assert wanted, "no glue keys found in the chapter's markdown"
    assert wanted <= set(glue), sorted(wanted - set(glue))
    # what this run left out reads "not run"; nothing reads None or nan
    assert glue["ch3_resnet_budget_eps0031"] == NOT_RUN
    assert glue["ch3_summary_rts_adv2_l1_mean"] == NOT_RUN
    assert glue["ch3_summary_mask_pgd_success_rate"] == NOT_RUN
    assert isinstance(glue["ch3_densenet_budget_eps0031"], float)
    assert glue["ch3_summary_pairs"] == 2
    for name, value in glue.items():
        assert value is not None and not (isinstance(value, float) and math.isnan(value)), name


def test_numbers_keep_the_results_file_layout(subset_result):
    numbers = subset_result.numbers()
    assert set(numbers) == {
        "fashion-mnist",
        "imagenet-sample",
        "photos",  # the photo section's attack set, schedules, curves and acceptance ({} if not run)
        "classifier_accuracy",
        "seconds",
        "summary",
        "pgd_success_by_epsilon",
        "intervals",
        "verdicts",
        "train_seeds",
        "interval_covers",
    }
    assert numbers["train_seeds"] == [0] and numbers["interval_covers"] == "images"
    assert set(numbers["fashion-mnist"]["densenet"]) == {"cam", "grad"}
    assert set(numbers["seconds"]) == {"densenet_pgd", "densenet_cam", "densenet_grad"}
    assert set(numbers["pgd_success_by_epsilon"]["densenet"]) == {"0.031", "0.062", "0.1"}
    assert "rts_pgd_success_rate" not in numbers["summary"]  # padding is for the prose only
    assert numbers["summary"]["claim_success_verdict"] in claims.STATUSES
    # three images: an illustration, not a measurement
    assert numbers["summary"]["claim_success_verdict"] == claims.NOT_MEASURABLE
    assert set(numbers["verdicts"]) == {"densenet"}
    assert set(numbers["verdicts"]["densenet"]) == set(report.CLAIM_IDS)
    # intervals: parallel to the numbers, each value equal to the number it belongs to
    est = numbers["intervals"]["fashion-mnist"]["densenet"]["cam"]
    for att in ("pgd", "adv2"):
        for key in ("success_rate", "l1_mean", "iou_mean"):
            value = numbers["fashion-mnist"]["densenet"]["cam"][att][key]
            got = est[att][key]["value"]
            assert (got is None and math.isnan(value)) or got == pytest.approx(value, rel=1e-5), key
            assert set(est[att][key]) == {"value", "low", "high", "n", "method"}
    assert "l1_ratio_adv2_over_pgd" in est


def test_per_image_arrays_match_the_means(subset_result):
    per = subset_result.per_image["fashion-mnist"]["densenet"]["cam"]
    stats = subset_result.stats["densenet"]["cam"]
    assert len(per["pgd"]["success"]) == stats["pgd"]["n"] == 3
    assert sum(per["pgd"]["success"]) / 3 == pytest.approx(stats["pgd"]["success_rate"])
    assert sum(per["pgd"]["l1"]) / 3 == pytest.approx(stats["pgd"]["l1_mean"], rel=1e-5)
    ok = [l1 for l1, s in zip(per["adv2"]["l1"], per["adv2"]["success"]) if s]
    if ok:
        assert sum(ok) / len(ok) == pytest.approx(stats["adv2"]["l1_mean"], rel=1e-5)


def _fake_result(
    pgd_rate: float,
    adv2_rate: float,
    adv2_l1_shift: float,
    n: int = 10,
    epsilon: float = 0.1,
    pgd_noise: float = 1.0,
) -> report.Ch03Result:
    """One (resnet, cam) pair whose summaries come from adv2.core.metrics.summarize on made-up maps."""
    gen = torch.Generator().manual_seed(0)
    benign = torch.rand(n, 1, 7, 7, generator=gen)
    pgd_maps = (benign + pgd_noise * (torch.rand(n, 1, 7, 7, generator=gen) - benign)).clamp(0, 1)
    adv_maps = (benign + adv2_l1_shift).clamp(0, 1)
    ps = torch.arange(n) < round(pgd_rate * n)
    qs = torch.arange(n) < round(adv2_rate * n)
    conf = torch.full((n,), 0.9)
    numbers = {
        "pgd": metrics.summarize(ps, conf, pgd_maps, benign, restrict_to_success=False),
        "adv2": metrics.summarize(qs, conf, adv_maps, benign, restrict_to_success=True),
    }
    x = torch.zeros(n, 1, 28, 28)
    result = type("R", (), {})
    pgd = result()
    pgd.maps, pgd.success, pgd.confidence = pgd_maps, ps, conf
    adv = result()
    adv.x_adv, adv.maps, adv.success, adv.confidence, adv.history = x + epsilon / 2, adv_maps, qs, conf, {}
    runs = {"resnet": {"cam": {"numbers": numbers, "pgd": pgd, "adv2": adv, "benign": benign}}}
    aset = type("S", (), {"x": x})()
    fm = fmnist_attacks.FmnistAttacks(
        ["resnet"],
        ["cam"],
        epsilon,
        0.0125,
        0.01,
        {"resnet": aset},
        {"resnet": x + epsilon},
        runs,
        {"resnet": 0.9},
        {},
        {"resnet": {}},
        {"resnet": {"cam": _compare.per_image_arrays(runs["resnet"]["cam"])}},
    )
    return report.summarize(fm)


def test_verdicts_come_from_the_claims_layer():
    good = _fake_result(pgd_rate=1.0, adv2_rate=1.0, adv2_l1_shift=0.02, n=40)
    v = report.verdicts(good)
    assert set(v) == {"resnet"}
    assert all(isinstance(x, claims.Verdict) for x in v["resnet"].values())
    assert v["resnet"]["adv2_success_like_pgd"].status == claims.HOLDS
    assert v["resnet"]["adv2_maps_closer_than_pgd"].status == claims.HOLDS
    assert good.summary["claim_success_holds"] is True
    glue = good.glue()
    # the glued verdict is the claims layer's cell: status and estimate with its interval
    assert glue["ch3_summary_claim_maps_verdict"].startswith("holds (")
    assert "[" in glue["ch3_summary_claim_maps_verdict"]
    assert glue["ch3_summary_claim_maps_verdict_settle"].startswith("the interval settles it")
    assert glue["ch3_photos_claim_maps_verdict"] == NOT_RUN
    assert "±" in glue["ch3_sample_size"]
    drop = _fake_result(pgd_rate=1.0, adv2_rate=0.3, adv2_l1_shift=0.02, n=40)
    assert report.verdicts(drop)["resnet"]["adv2_success_like_pgd"].status == claims.DOES_NOT_HOLD
    assert drop.summary["max_success_drop"] == pytest.approx(0.7)


def test_an_inconclusive_verdict_says_how_many_images_would_settle_it():
    # PGD's maps barely further than ADV2's: the ratio's interval straddles 0.5 on 10 images
    near = _fake_result(pgd_rate=1.0, adv2_rate=1.0, adv2_l1_shift=0.13, n=10, pgd_noise=0.7)
    v = report.fmnist_verdicts(near)["adv2_maps_closer_than_pgd"]
    if v.status == claims.INCONCLUSIVE:
        glue = near.glue()
        assert glue["ch3_summary_claim_maps_verdict_n_needed"] == v.n_needed > 10
        assert f"about {v.n_needed} images" in glue["ch3_summary_claim_maps_verdict_settle"]
    else:
        assert v.status in (claims.HOLDS, claims.DOES_NOT_HOLD)


def test_zero_success_reads_not_measurable():
    none = _fake_result(pgd_rate=0.0, adv2_rate=0.0, adv2_l1_shift=0.02, n=20)
    v = report.verdicts(none)["resnet"]
    assert v["adv2_success_like_pgd"].status == claims.NOT_MEASURABLE
    assert v["adv2_maps_closer_than_pgd"].status == claims.NOT_MEASURABLE
    glue = none.glue()
    # the 0 %-success case reads "not measurable", with its reason (never "holds")
    assert glue["ch3_summary_claim_success_verdict"].startswith("not measurable (")
    assert "none of 20 images" in glue["ch3_summary_claim_success_verdict"]
    assert "none of 20 images" in glue["ch3_summary_claim_success_verdict_settle"]
    assert none.glue()["ch3_summary_cam_adv2_l1_mean"] == MISSING
    table = report.claims_table(none)
    assert "not measurable" in table and "nan" not in table and "holds" not in table


def test_tables_show_intervals_and_the_figure_error_bars():
    good = _fake_result(pgd_rate=0.8, adv2_rate=0.7, adv2_l1_shift=0.02, n=20)
    assert re.search(r"\d \[\d[^]]*, \d[^]]*\]", fmnist_attacks.success_table(good.fmnist))
    assert re.search(r"\d \[\d[^]]*, \d[^]]*\]", fmnist_attacks.iou_table(good.fmnist))
    fig = fmnist_attacks.distance_figure(good.fmnist)
    assert any(c.__class__.__name__ == "ErrorbarContainer" for ax in fig.axes for c in ax.containers)
    half = dict(report.verdicts(good)["resnet"]["adv2_maps_closer_than_pgd"].parts)["cam"].estimate.half_width
    assert half is not None and half > 0


def test_check_explains_a_weak_attack():
    weak = _fake_result(pgd_rate=0.16, adv2_rate=0.12, adv2_l1_shift=0.02, n=25)
    report.check(weak, "smoke")  # smoke only checks the invariants, not the working point
    with pytest.raises(
        ChapterCheckFailed, match=r"16 % .* epsilon 0.1.*at least 50 %: raise epsilon or step_scale"
    ):
        report.check(weak, "quick")
    report.check(weak, "quick", check_budget=False)  # a sweep point: a weak attack is data
    assert issubclass(ChapterCheckFailed, AssertionError)


def test_check_catches_a_perturbation_beyond_epsilon():
    bad = _fake_result(pgd_rate=0.8, adv2_rate=0.8, adv2_l1_shift=0.0, epsilon=0.1)
    bad.fmnist.x_pgd["resnet"] = bad.fmnist.x_pgd["resnet"] + 0.05
    with pytest.raises(ChapterCheckFailed, match="beyond epsilon 0.1"):
        report.check(bad, "smoke")


def test_fmt_three_significant_digits_and_dash():
    assert fmt(0.012345) == "0.0123"
    assert fmt(12.345) == "12.3"
    assert fmt(float("nan")) == fmt(None) == "—"
    assert fmt(3) == "3" and fmt("holds") == "holds"


def test_protocol_cells_are_short_and_print_no_paths():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    ids = [c.get("id") for c in nb.cells]
    for cell in nb.cells[ids.index(LOADING_CELL) + 1 :]:
        if cell.cell_type == "code":
            assert len(cell.source.splitlines()) <= 15, cell.source
            assert not re.search(r"^\s*for .*:\s*$", cell.source, re.MULTILINE), (
                cell.source
            )  # no metric loops
            assert 'print(f"wrote {path}")' not in cell.source


def test_results_path_is_shown_without_machine_paths(tmp_path):
    from adv2.core.config import REPO_ROOT

    assert shown_path(REPO_ROOT / "results" / "03_adv2.json") == "results/03_adv2.json"
    assert shown_path(tmp_path / "03_adv2.json") == "03_adv2.json"


# ----------------------------------------------------------------------------- photos (issue 14)
@pytest.fixture(scope="module")
def photo_run():
    """A real, tiny photo section: 2 photos, CAM and RTS (an untrained RTS stand-in), 2 PGD
    steps, every step on the convergence curve."""
    from adv2.core.interpreters.rts import RTSNet
    from adv2.trained import data, pretrained

    torch.manual_seed(0)
    lite = pretrained.efficientnet_lite(data.load_imagenet_sample().class_names)
    return photo_attacks.attack_photos(
        interpreters=["cam", "rts"],
        n_images=2,
        step_scale=0.002,
        mask_step_scale=0.002,
        mask_checkpoints=1,
        mask_iterations=3,
        seed=0,
        curve_every=1,
        rts_net=RTSNet(lite),
        rts_status="an untrained stand-in",
        log=None,
    )


def test_photo_curves_end_at_the_reported_numbers(photo_run):
    ph = photo_run
    assert ph.n_pgd == 2 and len(ph.attack_set.x) == 2
    assert (ph.n_labelled, ph.n_correct) == (23, 18)
    for name in ("cam", "rts"):
        c, cfg, per = ph.curves[name], ph.cfgs[name], ph.per_image[name]
        assert c["pgd"]["step"] == [0, 1, 2]
        # ADV2 from its warm start (a PGD snapshot) through every stage-2 step
        assert c["adv2"]["step"] == list(range(cfg.stage1_steps, cfg.stage1_steps + cfg.stage2_steps + 1))
        assert c["adv2"]["success"][0] == c["pgd"]["success"][cfg.stage1_steps]
        assert all(0 <= v <= 1 for v in c["pgd"]["success"] + c["adv2"]["success"])
        # the last points are the final iterates: the table's numbers (all photos, not only successes)
        assert c["pgd"]["l1"][-1] == pytest.approx(sum(per["pgd"]["l1"]) / 2, rel=1e-4)
        assert c["adv2"]["l1"][-1] == pytest.approx(sum(per["adv2"]["l1"]) / 2, rel=1e-4)
        assert c["adv2"]["success"][-1] == pytest.approx(sum(per["adv2"]["success"]) / 2)
        drift = float((ph.runs[name]["adv2"].x_adv - ph.attack_set.x).abs().max())
        assert drift <= _compare.PHOTO_EPSILON + 1e-5
    assert photo_attacks.photo_curve_figure(ph) is not None


def test_photo_glue_tables_and_results_file(photo_run):
    ph = photo_run
    glue = photo_report.photo_glue(ph)
    assert glue["ch3_photo_n_images"] == 2 and glue["ch3_photo_pgd_steps"] == 2
    assert glue["ch3_photo_rts_status"] == "an untrained stand-in"
    assert glue["ch3_photo_cam_pgd_l1_mean"].count("[") == 1  # value [low, high]
    assert glue["ch3_photo_grad_pgd_l1_mean"] == NOT_RUN  # not attacked in this run
    assert glue["ch3_paper_cam_steps"] == "400 + 1200" and glue["ch3_paper_epsilon"] == 0.031
    assert set(glue) == set(photo_report.photo_glue(None))  # the same names with or without the section
    table = photo_attacks.photo_table(ph)
    assert table.count("| CAM |") == 2 and "confidence" in table
    assert set(photo_attacks.photo_acceptance(ph)) == {"cam", "rts"}
    assert "ADV2 on RTS" in photo_attacks.photo_schedule_table(ph, 3)
    fm = _fake_result(pgd_rate=1.0, adv2_rate=1.0, adv2_l1_shift=0.02, n=10).fmnist
    result = report.summarize(fm, ph)
    numbers = result.numbers()
    assert numbers["photos"]["curves"]["cam"]["pgd"]["step"] == [0, 1, 2]
    assert numbers["photos"]["n_correct"] == 18
    assert set(report.verdicts(result)) == {"resnet", "photos"}
    # 2 photos are below the claims layer's minimum: measured from 8 on
    v = report.verdicts(result)["photos"]["adv2_maps_closer_than_pgd"]
    assert v.status == claims.NOT_MEASURABLE
    assert result.glue()["ch3_photo_cam_steps"] == glue["ch3_photo_cam_steps"]


def test_photo_verdicts_are_measured_from_eight_photos():
    """The quick profile's 8 photos reach the claims layer's MIN_IMAGES: a verdict, not 'not
    measurable'."""
    assert claims.MIN_IMAGES <= 8
    per = {
        "cam": {
            att: {
                "success": [True] * 8,
                "confidence": [0.9] * 8,
                "l1": [0.05 + 0.001 * i if att == "adv2" else 0.25 + 0.01 * i for i in range(8)],
                "l2": [0.1] * 8,
                "iou": [0.8] * 8,
            }
            for att in ("pgd", "adv2")
        }
    }
    v = _compare.setting_verdicts(per)
    assert v["adv2_maps_closer_than_pgd"].status == claims.HOLDS
    assert v["adv2_success_like_pgd"].status != claims.NOT_MEASURABLE


class _Counting:
    """An IterateRecorder that also lists (step, batch size) of every tick."""

    def __new__(cls, steps, offset):
        from adv2.core import attacks

        class Counting(attacks.IterateRecorder):
            def tick(self, x):
                self.seen.append((self.step + 1, len(x)))
                super().tick(x)

        rec = Counting(steps, offset=offset)
        rec.seen = []
        return rec


def test_iterate_recorder_sees_every_step_and_changes_nothing():
    """The convergence-curve hook is read-only: the attack's result is bit-identical with it;
    it counts stage 1 when the attack runs it (MASK's margin warm start) and goes chunk by chunk."""
    from adv2.core import attacks
    from adv2.core.classifier import freeze
    from adv2.core.interpreters import build_interpreter
    from adv2.core.models import build_small_cnn

    torch.manual_seed(0)
    net = freeze(build_small_cnn("resnet", 10, [str(i) for i in range(10)]))
    x = torch.rand(3, 1, 28, 28)
    y, t = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5])
    for name in ("cam", "mask"):
        interp = (
            build_interpreter(name, net, iterations=3, seed=0)
            if name == "mask"
            else build_interpreter(name, net)
        )
        cfg = attacks.default_config(name, scale=0.005, epsilon=0.1, step_size=0.0125)
        total = cfg.stage1_steps + cfg.stage2_steps
        plain = attacks.adv2_attack(net, interp, x, y, t, config=cfg, batch_size=2)
        rec = _Counting(range(1, cfg.stage2_steps + 1), offset=cfg.stage1_steps)
        seen = rec.seen
        traced = attacks.adv2_attack(net, interp, x, y, t, config=cfg, batch_size=2, recorder=rec)
        assert torch.equal(plain.x_adv, traced.x_adv)
        steps = list(range(1, total + 1))
        assert seen == [(s, 2) for s in steps] + [(s, 1) for s in steps]  # chunk by chunk
        snaps = rec.tensors()
        assert sorted(snaps) == list(range(1, cfg.stage2_steps + 1))
        assert all(v.shape == x.shape for v in snaps.values())


def test_photo_attack_set_zero_means_every_correct_photo():
    ph = photo_attacks.attack_photos(
        interpreters=["cam"],
        n_images=0,
        step_scale=0.0005,
        mask_step_scale=0.002,
        mask_checkpoints=1,
        mask_iterations=3,
        seed=0,
        log=None,
    )
    assert len(ph.attack_set.x) == ph.n_correct == 18
    assert not ph.curves  # curve_every=0: no curve
    assert photo_attacks.photo_curve_figure(ph) is None


# ----------------------------------------------------------------------------- photos: EfficientNet-Lite2 (issue 27)
def test_lite2_photo_section_has_its_own_names_settings_and_leaves_lite0s_unchanged(photo_run):
    """EfficientNet-Lite2 beside Lite0: its glue under ``ch3_photo_lite2_*`` (every name the prose
    quotes is there, "not run" without it), its verdicts under ``photos_lite2``, its numbers under
    ``photos_lite2`` and ``imagenet-sample.efficientnet-lite2``; Lite0's numbers and glue are the
    same with or without it, and the store keys differ (the classifier's fingerprint)."""
    import json

    from adv2.chapters import attack_store
    from adv2.trained import pretrained

    ph2 = photo_attacks.attack_photos(
        interpreters=["cam"],
        n_images=2,
        step_scale=0.002,
        mask_step_scale=0.002,
        mask_checkpoints=1,
        mask_iterations=3,
        seed=0,
        log=None,
        classifier="efficientnet-lite2",
    )
    assert ph2.classifier == "efficientnet-lite2" and ph2.attack_set.x.shape[-1] == 260
    assert ph2.label == "EfficientNet-Lite2"
    glue2 = photo_report.photo_glue(ph2)
    assert set(glue2) == set(photo_report.photo_glue(None, "efficientnet-lite2"))
    assert all(k.startswith("ch3_photo_lite2_") for k in glue2)
    assert glue2["ch3_photo_lite2_n_images"] == 2 and glue2["ch3_photo_lite2_cam_l1_ratio"] != NOT_RUN
    fm = _fake_result(pgd_rate=1.0, adv2_rate=1.0, adv2_l1_shift=0.02, n=10).fmnist
    alone, both = (
        report.summarize(fm, photo_run),
        report.summarize(fm, photo_run, more_photos={ph2.classifier: ph2}),
    )
    n1, n2 = alone.numbers(), both.numbers()
    assert "photos_lite2" not in n1 and set(n1["imagenet-sample"]) == {"efficientnet-lite0"}
    assert n2["photos_lite2"]["n_images"] == 2
    assert set(n2["imagenet-sample"]) == {"efficientnet-lite0", "efficientnet-lite2"}
    assert set(report.verdicts(both)) == {"resnet", "photos", "photos_lite2"}

    def same(a, b):  # as the results file writes them (nan == nan there)
        return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)

    for key in ("photos", "summary", "fashion-mnist"):
        assert same(n1[key], n2[key]), key
    assert same(n2["verdicts"]["photos"], n1["verdicts"]["photos"])
    assert same(n2["imagenet-sample"]["efficientnet-lite0"], n1["imagenet-sample"]["efficientnet-lite0"])
    g1, g2 = alone.glue(), both.glue()
    # every other name reads the same (the sample-size sentence adds a line per setting)
    same = [k for k in g1 if "lite2" not in k and k not in ("ch3_photo_classifiers", "ch3_sample_size")]
    assert {k: g1[k] for k in same} == {k: g2[k] for k in same}
    assert g2["ch3_sample_size"].startswith(g1["ch3_sample_size"][:-1])
    assert g1["ch3_photo_classifiers"] == "EfficientNet-Lite0"
    assert g2["ch3_photo_classifiers"] == "EfficientNet-Lite0 and EfficientNet-Lite2"
    assert g1["ch3_photo_lite2_cam_l1_ratio"] == NOT_RUN and g2["ch3_photo_lite2_cam_l1_ratio"] != NOT_RUN
    assert g2["ch3_photos_lite2_claim_maps_verdict"] != NOT_RUN
    wanted = {k for k in glue_keys_in_markdown(NOTEBOOK) if "lite2" in k}
    assert wanted and wanted <= set(g1) and wanted <= set(g2), sorted(wanted - set(g2))
    table = photo_report.classifiers_table(both.photo_runs)
    assert "EfficientNet-Lite2 (260 px)" in table and table.count("| CAM |") == 2
    one, two = photo_report.result_tables(alone.photo_runs), photo_report.result_tables(both.photo_runs)
    assert "**" not in one and one.startswith(photo_attacks.photo_table(photo_run))  # Lite0 alone: as before
    assert "**EfficientNet-Lite2**" in two and table in two
    assert "**EfficientNet-Lite2**" in photo_report.schedule_tables(both.photo_runs, 3)
    lite0 = pretrained.efficientnet_lite(ph2.photos.class_names)
    assert attack_store.fingerprint(lite0) != attack_store.fingerprint(
        pretrained.efficientnet_lite(ph2.photos.class_names, "efficientnet-lite2")
    )
    with pytest.raises(ValueError, match="more_photos"):
        report.summarize(fm, ph2)
