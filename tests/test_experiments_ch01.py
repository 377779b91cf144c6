"""Chapter 1's protocol module: glue coverage for a subset run, result layout, explained checks."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
import torch

from adv2.chapters import _loaders, ch01
from adv2.chapters._common import NOT_RUN, ChapterCheckFailed
from standins import glue_keys_in_markdown

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_target_models.ipynb"
LOADING_CELL = "1cc8cb33"  # the classifiers' training / loading cell


def fake_art(acc: float) -> SimpleNamespace:
    return SimpleNamespace(
        metrics={
            "test_accuracy": acc,
            "train_seconds": 12.5,
            "n_parameters": 123_456,
            "images_seen": 4000,
            "curve_step": [0, 1],
            "curve_train_loss": [2, 1],
            "curve_val_acc": [0.1, acc],
        }
    )


def fake_photos(n_correct_foolbox: int, classifier: str = "efficientnet-lite0") -> ch01.PhotoPredictions:
    y = torch.tensor(list(range(20)) + [5, -1, 7])
    pred = y.clone()
    pred[n_correct_foolbox:20] = 999
    pred[21] = 3
    names = [f"c{i}" for i in range(1000)]
    return ch01.PhotoPredictions(torch.zeros(23, 3, 8, 8), y, pred, names, classifier, 4_652_008)


def test_subset_run_glues_every_key_the_chapter_quotes():
    result = ch01.collect({"densenet": fake_art(0.9)}, ["densenet"])
    glue = result.glue()
    wanted = glue_keys_in_markdown(NOTEBOOK)
    assert wanted and wanted <= set(glue), sorted(wanted - set(glue))
    assert glue["ch1_resnet_acc_pct"] == NOT_RUN
    assert glue["ch1_efficientnet_lite0_top1_foolbox20"] == NOT_RUN
    assert glue["ch1_efficientnet_lite2_top1_foolbox20"] == NOT_RUN
    assert glue["ch1_densenet_acc_pct"] == 90.0
    assert glue["ch1_fashion_mnist_densenet_n_parameters"] == 123_456


def test_numbers_keep_the_results_file_layout():
    result = ch01.collect({"resnet": fake_art(0.9)}, ["resnet"], [fake_photos(18)])
    numbers = result.numbers()
    assert numbers["fashion_mnist"] == {
        "resnet": {"test_accuracy": 0.9, "train_seconds": 12.5, "n_parameters": 123_456, "images_seen": 4000}
    }
    assert numbers["efficientnet_lite0"] == {
        "top1_foolbox20": 18,
        "top1_all_labelled": pytest.approx(20 / 22),
        "n_labelled": 22,
        "n_photos": 23,
    }
    assert numbers["imagenet"] == {} and numbers["efficientnet_lite2"] == {}  # not run
    assert len(result.per_image["efficientnet_lite0"]["correct"]) == 22
    assert "| 4.7M |" in ch01.accuracy_table(result)  # counted from the model
    table = ch01.accuracy_table(result)
    assert "0.900" in table and "0.900" in table.splitlines()[-1] and "None" not in table


def test_check_explains_a_weak_classifier():
    weak = ch01.collect({"resnet": fake_art(0.8)}, ["resnet"])
    ch01.check(weak, "smoke")
    with pytest.raises(
        ChapterCheckFailed, match=r"80.0 %; the quick profile needs at least 87 %.*raise train_epochs"
    ):
        ch01.check(weak, "quick")
    with pytest.raises(ChapterCheckFailed, match=r"12 of the 20 foolbox photos.*at least 14"):
        ch01.check(ch01.collect({"resnet": fake_art(0.9)}, ["resnet"], [fake_photos(12)]), "quick")
    lite2_weak = [fake_photos(17), fake_photos(13, "efficientnet-lite2")]
    with pytest.raises(ChapterCheckFailed, match=r"EfficientNet-Lite2 classifies 13 of the 20"):
        ch01.check(ch01.collect({"resnet": fake_art(0.9)}, ["resnet"], lite2_weak), "quick")


def test_both_photo_classifiers_side_by_side():
    """Issue 27: Lite2 beside Lite0 in the numbers, the glue, the per-photo arrays and the table."""
    photos = [fake_photos(17), fake_photos(18, "efficientnet-lite2")]
    result = ch01.collect({"resnet": fake_art(0.9)}, ["resnet"], photos)
    numbers, glue = result.numbers(), result.glue()
    assert (
        numbers["efficientnet_lite0"]["top1_foolbox20"],
        numbers["efficientnet_lite2"]["top1_foolbox20"],
    ) == (17, 18)
    assert (glue["ch1_efficientnet_lite0_top1_foolbox20"], glue["ch1_efficientnet_lite2_top1_foolbox20"]) == (
        17,
        18,
    )
    assert set(result.per_image) == {"efficientnet_lite0", "efficientnet_lite2"}
    rows = ch01.accuracy_table(result).splitlines()
    assert "EfficientNet-Lite0 (ImageNet weights, 224 px)" in rows[-2] and "0.850" in rows[-2]
    assert "EfficientNet-Lite2 (ImageNet weights, 260 px)" in rows[-1] and "0.900" in rows[-1]
    summary = ch01.photos_summary(photos)
    assert "EfficientNet-Lite2 (260 px) top-1 on the 20 foolbox photos: 18/20" in summary
    assert summary.endswith("EfficientNet-Lite0, then EfficientNet-Lite2's prediction")


def test_protocol_cells_are_short():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    ids = [c.get("id") for c in nb.cells]
    for cell in nb.cells[ids.index(LOADING_CELL) + 1 :]:
        if cell.cell_type == "code":
            assert len(cell.source.splitlines()) <= 15, cell.source
            assert not re.search(r"^\s*for .*:\s*$", cell.source, re.MULTILINE), cell.source


def test_seed_repeats_train_the_recipe_again_with_the_next_seeds(monkeypatch):
    from adv2.trained import loading, recipes

    asked = []

    def fake_load(recipe, data, **kwargs):
        asked.append(recipe)
        art = fake_art({6: 0.88, 7: 0.875}[recipe.train_seed])
        art.from_cache = False
        return object(), art

    monkeypatch.setattr(loading, "load_classifier", fake_load)
    params = {"dataset": "fashion-mnist", "train_seed": 5, "train_epochs": 1, "train_subset": 100}
    seeds = ch01.seed_runs(params, object(), {"resnet": fake_art(0.87)}, 3, log=lambda *_: None)
    # the extra classifiers differ from the chapter's recipe in their training seed only
    base = recipes.classifier_recipe(params, "resnet")
    assert sorted(r.train_seed for r in asked) == [6, 7]  # side by side: in any order
    assert all(r == base.__class__(**{**vars(base), "train_seed": r.train_seed}) for r in asked)
    assert seeds == {"resnet": {"train_seeds": [5, 6, 7], "test_accuracy": [0.87, 0.88, 0.875]}}

    result = ch01.collect({"resnet": fake_art(0.87)}, ["resnet"], seeds=seeds)
    numbers = result.numbers()
    # the existing layout is unchanged; the seeds come under their own key
    assert numbers["fashion_mnist"]["resnet"]["test_accuracy"] == 0.87
    over = numbers["fashion_mnist_over_seeds"]["resnet"]
    assert over["test_accuracy"] == [0.87, 0.88, 0.875]
    assert over["mean_test_accuracy"]["method"] == "t over seeds" and over["mean_test_accuracy"]["n"] == 3
    assert over["mean_test_accuracy"]["low"] < 0.875 < over["mean_test_accuracy"]["high"]
    assert "0.875 [0.863, 0.887] over 3 seeds" in ch01.accuracy_table(result)


def test_one_seed_adds_no_training_and_says_there_is_no_interval(monkeypatch):
    from adv2.trained import loading

    monkeypatch.setattr(loading, "load_classifier", lambda *a, **k: pytest.fail("no extra training"))
    params = {"dataset": "fashion-mnist", "train_seed": 0, "train_epochs": 1, "train_subset": 0}
    seeds = ch01.seed_runs(params, object(), {"resnet": fake_art(0.9)}, 1)
    result = ch01.collect({"resnet": fake_art(0.9)}, ["resnet"], seeds=seeds)
    plain = ch01.collect({"resnet": fake_art(0.9)}, ["resnet"]).numbers()
    assert {k: v for k, v in result.numbers().items() if k != "fashion_mnist_over_seeds"} == plain
    assert result.numbers()["fashion_mnist_over_seeds"]["resnet"]["mean_test_accuracy"]["low"] is None
    assert "1 seed: no interval across training runs" in ch01.accuracy_table(result)


def test_a_cached_classifier_is_logged_with_its_re_measured_accuracy(monkeypatch):
    """Issue 24: a classifier from the cache shows what its weights scored when loaded, beside the
    accuracy its training recorded."""

    from adv2.trained import loading

    cached = fake_art(0.87)
    cached.from_cache = True
    cached.metrics.update(recheck_accuracy=0.876, recheck_images=1000)
    trained = fake_art(0.88)
    trained.from_cache = False
    monkeypatch.setattr(
        loading,
        "load_classifiers_side_by_side",
        lambda rs, *a, **k: [(object(), cached, 0.1), (object(), trained, 42.0)],
    )
    lines = []
    params = {"dataset": "fashion-mnist", "train_seed": 0, "train_epochs": 1, "train_subset": 100}
    _loaders.load_classifiers(params, object(), ["resnet", "densenet"], log=lines.append)
    assert lines[0].startswith(
        "resnet: test accuracy 0.8700 (loaded from cache, re-measured 0.8760 on the first 1000"
    )
    assert lines[1].startswith("densenet: test accuracy 0.8800 (trained in 42 s;")
