"""Chapter 2's protocol module: glue coverage for a subset run, result layout, explained checks."""

from __future__ import annotations

import math
import re
from pathlib import Path

import nbformat
import pytest
import torch

from adv2.chapters._common import NOT_RUN, ChapterCheckFailed
from adv2.chapters.ch02 import fmnist_maps, photo_maps, report
from standins import glue_keys_in_markdown

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "02_interpreters.ipynb"
LOADING_CELL = "42f8b41f"  # RTS loading, the last model-loading cell


@pytest.fixture(scope="module")
def subset_run(fmnist):
    """interpreters=[cam, grad], archs=[densenet] on an untrained DenseNet and 6 test images."""
    from adv2.core.classifier import freeze
    from adv2.core.models import build_small_cnn

    torch.manual_seed(0)
    net = freeze(build_small_cnn("densenet", fmnist.num_classes, fmnist.class_names))
    x, y = fmnist.x_test[:6], fmnist.y_test[:6]
    maps = fmnist_maps.compute_maps(
        {"densenet": net},
        {},
        x,
        y,
        archs=["densenet"],
        interpreters=["cam", "grad"],
        mask_iterations=2,
        seed=0,
        log=None,
    )
    sanity = fmnist_maps.evaluate(
        {"densenet": net},
        maps,
        x,
        y,
        rts_nets={},
        rts_metrics={},
        accuracy={"densenet": 0.1},
        num_classes=10,
        deletion_steps=4,
        seed=0,
    )
    return maps, report.collect(sanity)


def test_subset_run_glues_every_key_the_chapter_quotes(subset_run):
    _, result = subset_run
    glue = result.glue()
    wanted = glue_keys_in_markdown(NOTEBOOK)
    assert wanted and wanted <= set(glue), sorted(wanted - set(glue))
    assert glue["ch2_resnet_grad_deletion_auc"] == NOT_RUN
    assert glue["ch2_densenet_rts_mask_area_true_class"] == NOT_RUN
    assert isinstance(glue["ch2_densenet_cam_deletion_auc"], float)
    assert not any(v is None or (isinstance(v, float) and math.isnan(v)) for v in glue.values())


def test_numbers_and_per_image(subset_run):
    maps, result = subset_run
    numbers = result.numbers()
    assert set(numbers) == {"densenet", "intervals", "efficientnet_lite0", "efficientnet_lite0_rts"}
    ci = numbers["intervals"]["densenet"]["cam"]
    assert ci["preserve_destroy"]["method"] and ci["deletion_auc"]["low"] <= ci["deletion_auc"]["high"]
    assert numbers["efficientnet_lite0"] == {} and numbers["efficientnet_lite0_rts"] == {}
    assert result.glue()["ch2_photo_rts_rts_deletion_auc"] == NOT_RUN
    assert set(numbers["densenet"]) == {"cam", "grad", "test_accuracy"}
    assert set(numbers["densenet"]["cam"]) == {
        "deletion_auc",
        "random_deletion_auc",
        "preserve_destroy",
        "random_preserve_destroy",
        "preserve",
        "destroy",
        "map_mean",
    }
    per = result.per_image["fashion-mnist"]["densenet"]["cam"]["deletion_auc"]
    assert len(per) == 6
    assert sum(per) / 6 == pytest.approx(numbers["densenet"]["cam"]["deletion_auc"], rel=1e-5)
    assert maps.maps["densenet"]["cam"].shape[-1] == 7
    report.check(result, maps, "smoke")


def test_check_explains_maps_that_do_not_beat_chance(subset_run):
    maps, result = subset_run
    r = result.sanity.numbers["densenet"]["grad"]
    saved = dict(r)
    r["deletion_auc"], r["random_deletion_auc"] = 0.6, 0.5
    try:
        with pytest.raises(
            ChapterCheckFailed,
            match=r"grad on the small densenet: deletion AUC 0.600 .*"
            r"random order's 0.500.*raise n_images",
        ):
            report.check(result, maps, "quick")
    finally:
        r.update(saved)


def test_sanity_table_has_no_nan():
    s = fmnist_maps.Sanity(
        ["resnet"],
        ["cam"],
        4,
        {
            "resnet": {
                "cam": {
                    "deletion_auc": float("nan"),
                    "random_deletion_auc": 0.5,
                    "preserve_destroy": None,
                    "random_preserve_destroy": 0.1234567,
                }
            }
        },
        {},
    )
    table = fmnist_maps.sanity_table(s)
    assert "nan" not in table and "None" not in table and "—" in table and "0.123" in table


def test_protocol_cells_are_short():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    ids = [c.get("id") for c in nb.cells]
    for cell in nb.cells[ids.index(LOADING_CELL) + 1 :]:
        if cell.cell_type == "code":
            assert len(cell.source.splitlines()) <= 15, cell.source
            assert not re.search(r"^\s*for .*:\s*$", cell.source, re.MULTILINE), cell.source


def test_rts_curves_figure_for_one_classifier():
    from types import SimpleNamespace

    art = SimpleNamespace(
        metrics={
            "phase1_step": [0, 1],
            "phase1_accuracy": [0.5, 0.7],
            "phase2_step": [0, 1],
            "phase2_total": [2.0, 1.0],
            "phase2_destroyer": [1.0, 0.5],
            "phase2_preserver": [1.0, 0.5],
        }
    )
    fig = fmnist_maps.rts_curves_figure({"densenet": art}, ["densenet"])
    assert len([ax for ax in fig.axes if ax.axison]) == 3  # panel_axes hides the 4th slot


@pytest.mark.slow
def test_photo_rts_quality_from_the_committed_checkpoint(tmp_path, subset_run):
    """The photo RTS loads from checkpoints/ (no training, no pool) and is measured on two
    held-out photos; its numbers and glue fill the chapter's keys."""
    maps, result = subset_run
    q = photo_maps.photo_rts_quality(
        n_images=2, deletion_steps=2, random_trials=1, artifacts_dir=str(tmp_path), seed=0
    )
    assert q.status.startswith("loaded from the committed checkpoint checkpoints/rts-")
    assert q.maps.shape == (2, 1, 56, 56) and q.other_maps.shape == (2, 1, 56, 56)
    assert set(q.estimates) == set(photo_maps.PHOTO_RTS_ROWS)
    assert 0 <= q.estimates["rts"]["deletion_auc"].value <= 1
    both = report.collect(result.sanity, None, q)
    glue = both.glue()
    assert all(glue[k] != NOT_RUN for k in photo_maps.PHOTO_RTS_GLUE), [
        k for k in photo_maps.PHOTO_RTS_GLUE if glue[k] == NOT_RUN
    ]
    assert both.numbers()["efficientnet_lite0_rts"]["n_photos"] == 2
    assert "photo RTS" in photo_maps.photo_rts_table(q)
    report.check(both, maps, "smoke")


@pytest.mark.slow
def test_lite2_photo_rts_quality_has_its_own_names_and_leaves_lite0s_unchanged(tmp_path, subset_run):
    """Issue 27: EfficientNet-Lite2's photo RTS (its committed checkpoint, 260 px photos, 65x65 maps)
    measured beside Lite0's: its glue under ``ch2_photo_lite2_rts_*`` (every Lite2 name the prose
    quotes), its numbers under ``efficientnet_lite2_rts``; Lite0's numbers and glue unchanged."""
    maps, result = subset_run
    kw = {"n_images": 2, "deletion_steps": 2, "random_trials": 1, "artifacts_dir": str(tmp_path), "seed": 0}
    q0 = photo_maps.photo_rts_quality(**kw)
    q2 = photo_maps.photo_rts_quality(classifier="efficientnet-lite2", **kw)
    assert q2.classifier == "efficientnet-lite2" and q2.x.shape[-1] == 260
    assert q2.maps.shape == (2, 1, 65, 65) and "checkpoints/rts-ffadc6f0" in q2.status
    alone = report.collect(result.sanity, None, q0)
    both = report.collect(result.sanity, None, {"efficientnet-lite0": q0, "efficientnet-lite2": q2})
    n1, n2 = alone.numbers(), both.numbers()
    assert "efficientnet_lite2_rts" not in n1 and "efficientnet_lite2" not in n1
    assert n2["efficientnet_lite2_rts"]["n_photos"] == 2
    assert n1["efficientnet_lite0_rts"] == n2["efficientnet_lite0_rts"]
    g1, g2 = alone.glue(), both.glue()
    names2 = photo_maps.photo_rts_glue_names("efficientnet-lite2")
    assert all(k.startswith("ch2_photo_lite2_rts_") for k in names2)
    assert all(g1[k] == NOT_RUN for k in names2) and all(g2[k] != NOT_RUN for k in names2)
    assert all(g1[k] == g2[k] for k in photo_maps.PHOTO_RTS_GLUE)
    assert g2["ch2_photo_rts_classifiers"] == "EfficientNet-Lite0 and EfficientNet-Lite2"
    wanted = {k for k in glue_keys_in_markdown(NOTEBOOK) if "lite2" in k}
    assert wanted and wanted <= set(names2) | {"ch2_photo_rts_classifiers"}
    report.check(both, maps, "smoke")
    with pytest.raises(ValueError, match="classifier"):
        photo_maps.photo_rts_quality(recipe=q0_recipe(), classifier="efficientnet-lite2")


def q0_recipe():
    from adv2.trained.photo_recipes import PhotoRTSRecipe

    return PhotoRTSRecipe()
