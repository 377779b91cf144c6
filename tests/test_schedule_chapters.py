"""The chapters' ``schedule`` parameter: authors (the paper's constant sign steps) or fast (the same
step budgets, decaying steps, per-image early stopping), wired through chapters 3, 6, 7 and 8."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from adv2.book import scalingsweep
from adv2.chapters import _compare, ch05, schema
from adv2.chapters.ch03 import configs, photo_attacks, photo_report
from adv2.core import config
from adv2.core.config import ParameterError
from adv2.core.noise import NoiseSearch

CHAPTERS = ("03_adv2", "06_table10", "07_input_size", "08_scaling")


@pytest.mark.parametrize("stem", CHAPTERS)
def test_the_schedule_is_a_parameter_authors_by_default_fast_at_quick(stem):
    assert schema.defaults(stem)["schedule"] == "authors"
    assert config.load_profile("quick", stem)["schedule"] == "fast"
    assert config.load_profile("paper", stem).get("schedule", "authors") == "authors"
    with pytest.raises(ParameterError) as err:
        schema.validate_chapter(stem, {"schedule": "quick"})
    for word in ("'schedule'", "'quick'", "'authors'", "'fast'"):
        assert word in str(err.value)


def _configs(schedule: str):
    return configs.fmnist_configs(
        ["grad", "cam", "rts", "mask"],
        epsilon=0.1,
        step_size=0.0125,
        step_scale=0.05,
        mask_step_scale=0.03,
        mask_checkpoints=2,
        schedule=schedule,
    )


def test_fast_configs_keep_the_budgets_and_run_their_own_stage_1():
    fast, authors = _configs("fast"), _configs("authors")
    for name in fast:
        assert fast[name].schedule == "fast" and authors[name].schedule == "authors"
        assert (fast[name].stage1_steps, fast[name].stage2_steps) == (
            authors[name].stage1_steps,
            authors[name].stage2_steps,
        )
    n_pgd = _compare.pgd_steps(0.05)
    assert _compare.warm_starts(fast, n_pgd) == [n_pgd]  # the baseline only
    assert set(_compare.warm_starts(authors, n_pgd)) == {
        n_pgd,
        authors["cam"].stage1_steps,
        authors["grad"].stage1_steps,
    }
    snaps = {s: torch.full((1,), float(s)) for s in _compare.warm_starts(authors, n_pgd)}
    assert _compare.shared_stage1(fast["cam"], snaps) is None
    assert _compare.shared_stage1(authors["mask"], snaps) is None  # margin loss: its own stage 1
    assert float(_compare.shared_stage1(authors["cam"], snaps)) == authors["cam"].stage1_steps
    assert _compare.schedule_of(fast) == "fast" and _compare.schedule_of(authors) == "authors"
    with pytest.raises(ValueError, match="mix"):
        _compare.schedule_of({"cam": fast["cam"], "grad": authors["grad"]})
    assert "fast schedule" in configs.schedule_text("fast", "step_scale")
    assert "authors'" in configs.schedule_text("authors", "step_scale")


def test_the_sweep_passes_the_schedule_to_every_point():
    spec = scalingsweep.sweep_spec("quick")
    assert spec["fixed"]["schedule"] == "fast"
    assert scalingsweep.sweep_spec("quick", {"schedule": "authors"})["fixed"]["schedule"] == "authors"


def test_a_fast_photo_run_draws_curves_from_the_clean_photo_to_the_result():
    """A real (tiny) photo run on the fast schedule: ADV2's curve counts both stages from the
    clean photo and ends at the reported numbers; MASK draws none."""
    ph = photo_attacks.attack_photos(
        interpreters=["cam", "mask"],
        n_images=2,
        step_scale=0.004,
        mask_step_scale=0.002,
        mask_checkpoints=1,
        mask_iterations=2,
        seed=0,
        curve_every=2,
        schedule="fast",
        log=None,
    )
    assert set(ph.curves) == {"cam"}
    c, cfg, per = ph.curves["cam"], ph.cfgs["cam"], ph.per_image["cam"]
    assert c["adv2"]["step"][0] == 0 and c["adv2"]["step"][-1] == cfg.stage1_steps + cfg.stage2_steps
    assert c["adv2"]["l1"][-1] == pytest.approx(sum(per["adv2"]["l1"]) / 2, rel=1e-4)
    assert photo_report.photo_glue(ph)["ch3_photo_curve_note"].startswith("On the fast schedule")
    assert "fast schedule" in photo_report.photo_glue(ph)["ch3_photo_schedule"]


def test_calibration_does_not_depend_on_the_batch(fmnist):
    """Chapter 5's photo passes run in chunks of PHOTO_BATCH: the calibration is the same."""
    from adv2.core.classifier import freeze
    from adv2.core.models import build_small_cnn

    torch.manual_seed(0)
    net = SimpleNamespace(model=freeze(build_small_cnn("resnet", fmnist.num_classes, fmnist.class_names)))
    x, y = fmnist.x_test[:1000], fmnist.y_test[:1000]
    search = NoiseSearch(rates=[0.0, 0.3], tolerance=0.05, max_iter=6, seed=0)
    one = ch05.calibrate({"a": net}, x, y, search, n_calib=20, batch_size=500)["a"]
    chunked = ch05.calibrate({"a": net}, x, y, search, n_calib=20, batch_size=3)["a"]
    for kind, levels in one.levels.items():
        for rate, c in levels.items():
            other = chunked.levels[kind][rate]
            assert (c.magnitude, c.rate) == pytest.approx((other.magnitude, other.rate))


def test_chunks_that_stop_at_different_steps_merge_their_histories():
    """Fast MASK in several batch chunks: each chunk stops (and records) at its own steps."""
    from adv2.core.attacks.adv2 import _merge_histories
    from adv2.core.attacks.common import AttackResult

    def part(n, steps, success):
        return AttackResult(
            torch.zeros(n, 1), torch.ones(n), torch.ones(n), None, {"step": steps, "success": success}
        )

    merged = _merge_histories([part(2, [2, 4, 6], [0.5, 1.0, 1.0]), part(2, [2, 4], [0.0, 1.0])])
    assert merged == {"step": [2, 4, 6], "success": [0.25, 1.0, 1.0]}
    merged = _merge_histories([part(3, [3], [1.0]), part(1, [2, 4], [0.0, 0.5])])
    assert merged["step"] == [2, 3, 4]
    assert merged["success"] == pytest.approx([0.75, 0.75, 0.875])
