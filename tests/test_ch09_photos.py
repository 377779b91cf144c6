"""Chapter 9 on each photo classifier (issue 27): EfficientNet-Lite2 beside EfficientNet-Lite0.

Stand-in classifiers (a few weights, with the interface Grad and CAM need) and stand-in photos
replace EfficientNet-Lite and the offline photos, so chapter 3's real photo attack and chapter 9's
real per-classifier loop run in seconds: each classifier gets its own setting (``photos``,
``photos_lite2``), reads the attacks chapter 3 stored for it under the same keys, and Lite0's
numbers, glue and verdicts are the same with or without Lite2."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import pytest
import torch
from torch import nn

from adv2.chapters import attack_store, schema
from adv2.chapters._common import NOT_RUN
from adv2.chapters.ch03 import configs, photo_attacks
from adv2.chapters.ch09 import figures, report, settings, sources
from adv2.core.config import PHOTO_CLASSIFIER, PHOTO_CLASSIFIERS, ParameterError
from adv2.trained import data, pretrained
from standins import glue_keys_in_markdown

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "09_defense1.ipynb"
LITE2 = "efficientnet-lite2"
N_PHOTOS = 10
# labelled photos each stand-in gets right (the real ones: Lite0 18, Lite2 20 of the 23 labelled)
N_RIGHT = {PHOTO_CLASSIFIER: 6, LITE2: 7}
N_WRONG = 2  # labelled photos it gets wrong; the rest carry no label


class StandInPhotoClassifier(nn.Module):
    """A photo classifier's interface (``features``, ``logits_from_features``, ``head``,
    ``input_size``) in a few weights: 1000 ImageNet classes, at an eighth of the real side."""

    def __init__(self, side: int, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.input_size = side
        self.body = nn.Sequential(nn.Conv2d(3, 8, 4, stride=4), nn.ReLU())
        self.head = nn.Linear(8, 1000)

    def features(self, x):
        return self.body(x)

    def logits_from_features(self, f):
        return self.head(f.mean((2, 3)))

    def forward(self, x):
        return self.logits_from_features(self.features(x))


@pytest.fixture
def stand_ins(monkeypatch):
    """EfficientNet-Lite0 and -Lite2 and the offline photos, replaced for chapters 3 and 9 alike;
    the photos at each classifier's side, labelled so that it gets ``N_RIGHT`` of them right."""
    models = {
        c: StandInPhotoClassifier(side // 8, seed=i).eval()
        for i, (c, side) in enumerate(PHOTO_CLASSIFIERS.items())
    }
    by_side = {side: c for c, side in PHOTO_CLASSIFIERS.items()}

    def load_imagenet_sample(include_extra: bool = True, size: int = 224):
        model = models[by_side[size]]
        x = torch.rand(N_PHOTOS, 3, size // 8, size // 8, generator=torch.Generator().manual_seed(size))
        with torch.no_grad():
            pred = model(x).argmax(1)
        right = N_RIGHT[by_side[size]]
        y = torch.full((N_PHOTOS,), -1, dtype=torch.int64)
        y[:right] = pred[:right]
        y[right : right + N_WRONG] = (pred[right : right + N_WRONG] + 1) % 1000
        return data.Dataset("imagenet-sample", [f"class {i}" for i in range(1000)], x[:0], y[:0], x, y)

    def efficientnet_lite(class_names, name=PHOTO_CLASSIFIER):
        return models[name]

    monkeypatch.setattr(data, "load_imagenet_sample", load_imagenet_sample)
    monkeypatch.setattr(data, "imagenet_class_names", lambda: [f"class {i}" for i in range(1000)])
    monkeypatch.setattr(pretrained, "efficientnet_lite", efficientnet_lite)
    return models


def params(tmp_path, **changes):
    """Chapter 9's defaults with the ensemble Grad + CAM and a tiny photo budget (chapter 3's)."""
    return {
        **schema.defaults("09_defense1"),
        "interpreters": ["grad", "cam"],
        "adaptive_interpreters": ["grad", "cam"],
        "photo_classifiers": list(PHOTO_CLASSIFIERS),
        "imagenet_n_images": 0,
        "imagenet_step_scale": 0.005,
        "imagenet_mask_step_scale": 0.002,
        "mask_checkpoints": 1,
        "imagenet_mask_iterations": 3,
        "artifacts_dir": str(tmp_path),
        **changes,
    }


def chapter3_attack(p, classifier):
    """Chapter 3's photo attack of ``classifier`` at chapter 9's parameters ``p`` (as chapter 3's
    notebook runs it for each classifier of its photo_classifiers)."""
    return photo_attacks.attack_photos(
        interpreters=p["interpreters"], n_images=p["imagenet_n_images"], step_scale=p["imagenet_step_scale"],
        mask_step_scale=p["imagenet_mask_step_scale"], mask_checkpoints=p["mask_checkpoints"],
        mask_iterations=p["imagenet_mask_iterations"], seed=p["seed"], schedule=p["schedule"],
        artifacts_dir=p["artifacts_dir"], log=None, classifier=classifier,
    )  # fmt: skip


def handed_chapter3(calls: list):
    """Chapter 3's code as the notebook hands it over, its attack recorded in ``calls``."""

    def attack_photos(**kw):
        calls.append((kw["classifier"], list(kw["interpreters"])))
        return photo_attacks.attack_photos(**kw)

    return SimpleNamespace(
        photo_configs=configs.photo_configs, attacked_interpreter=configs.attacked_interpreter,
        photo_rts=None, attack_photos=attack_photos,
    )  # fmt: skip


def test_each_photo_classifier_reads_chapter3s_attacks_under_chapter3s_keys(stand_ins, tmp_path, monkeypatch):
    """Chapter 3 attacks EfficientNet-Lite2; chapter 9's loop then yields ``photos`` and
    ``photos_lite2``, attacks only what the store lacks (Lite0), builds for Lite2 exactly the keys
    chapter 3 wrote, reads back chapter 3's very inputs, and calibrates on the other photos."""
    p = params(tmp_path)
    written, read = [], []
    store, gather = attack_store.store, sources.gather
    monkeypatch.setattr(attack_store, "store", lambda prm, *a: (written.append(prm), store(prm, *a))[1])
    monkeypatch.setattr(sources, "gather", lambda s, keys, *a: (read.append(keys), gather(s, keys, *a))[1])
    ph2 = chapter3_attack(p, LITE2)
    lite2_keys = {k["interpreter"]: k for k in written}
    assert ph2.n_correct == N_RIGHT[LITE2] and set(lite2_keys) == {"grad", "cam"}

    calls: list = []
    got = list(settings.photo_settings(p, handed_chapter3(calls), device="cpu", progress=False))
    assert [(c, s.name, s.src.setting) for c, s, _ in got] == [
        (PHOTO_CLASSIFIER, "photos", "photos"),
        (LITE2, "photos_lite2", "photos_lite2"),
    ]
    assert calls == [(PHOTO_CLASSIFIER, ["grad", "cam"])]  # Lite2's came from chapter 3's store
    assert read[1] == lite2_keys  # the keys chapter 9 builds for Lite2 are the ones chapter 3 wrote
    assert read[0] != read[1] and read[0]["cam"]["classifier"] != lite2_keys["cam"]["classifier"]
    lite0, lite2 = got[0][1], got[1][1]
    assert set(lite2.src.origin.values()) == {sources.REUSED}
    assert set(lite0.src.origin.values()) == {sources.COMPUTED}
    for name in ("grad", "cam"):
        assert torch.equal(lite2.src.x_adv[name], ph2.runs[name]["adv2"].x_adv.cpu())
    assert torch.equal(lite2.src.x_pgd, ph2.x_pgd.cpu()) and torch.equal(lite2.src.x, ph2.attack_set.x)
    # every photo it gets right is attacked; the other offline photos calibrate the detector
    assert (lite0.src.n, len(lite0.calibration_x)) == (6, N_PHOTOS - 6)
    assert (lite2.src.n, len(lite2.calibration_x)) == (7, N_PHOTOS - 7)
    assert lite2.src.x.shape[-1] == PHOTO_CLASSIFIERS[LITE2] // 8
    # the adaptive attacks: EfficientNet-Lite0 alone by default (adaptive_classifiers)
    assert got[0][2] is not None and got[1][2] is None
    calls.clear()
    again = settings.photo_settings(p, handed_chapter3(calls), device="cpu", progress=False)
    assert [s.src.origin for _, s, _ in again] == [{n: sources.REUSED for n in ("grad", "cam")}] * 2
    assert calls == []  # both now from the store


def test_lite2_gets_its_own_setting_and_leaves_lite0s_numbers_glue_and_verdicts_alone(stand_ins, tmp_path):
    p = params(tmp_path)
    runs = {}
    for _, s, _ in settings.photo_settings(p, handed_chapter3([]), device="cpu", progress=False):
        runs[s.name] = report.run_setting(
            s.name, s.model, s.interpreters, s.src, s.calibration_x, target_fpr=0.1, adaptive_cfg=None,
            detector_weight=1.0, batch_size=4, device="cpu",
        )  # fmt: skip
    both, alone = report.Ch09Result(runs, p), report.Ch09Result({"photos": runs["photos"]}, p)
    report.check(both)  # the diagonal equals chapter 3's stored maps on both classifiers
    assert set(both.verdicts()) == {"photos", "photos_lite2"}
    n1, n2 = alone.numbers(), both.numbers()
    assert n2["photos_lite2"]["n_images"] == 7 and n2["photos_lite2"]["n_calibration"] == 3
    assert set(n2["intervals"]) == {"photos", "photos_lite2"} and "photos_lite2" in n2["verdicts"]

    def same(a, b):  # as the results file writes them
        return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)

    assert same(n1["photos"], n2["photos"])
    assert same(n1["intervals"]["photos"], n2["intervals"]["photos"])
    assert same(n1["verdicts"]["photos"], n2["verdicts"]["photos"])
    g1, g2 = alone.glue(), both.glue()
    padded = set(report.Ch09Result({}, {}).glue())  # the names the prose may quote: "not run" if left out
    assert padded <= set(g1) <= set(g2) and any("lite2" in k for k in padded)
    assert {k: v for k, v in g1.items() if "lite2" not in k} == {
        k: v for k, v in g2.items() if "lite2" not in k
    }
    assert g1["ch9_photos_lite2_n_images"] == NOT_RUN and g2["ch9_photos_lite2_n_images"] == 7
    assert g1["ch9_photos_lite2_transfer_verdict"] == NOT_RUN != g2["ch9_photos_lite2_transfer_verdict"]
    assert g2["ch9_photos_lite2_auc_cam"] != NOT_RUN and g2["ch9_photos_lite2_adaptive_words"] == NOT_RUN
    wanted = {k for k in glue_keys_in_markdown(NOTEBOOK) if "lite2" in k}
    assert wanted and wanted <= set(g2), sorted(wanted - set(g2))
    # each classifier's tables and figures under its name where both ran; Lite0 alone as before
    assert report.heading(runs["photos"], alone.runs) is None
    assert report.titled(alone.runs, report.average_table) == report.average_table(runs["photos"])
    assert report.heading(runs["photos_lite2"], runs) == "**photos (EfficientNet-Lite2)**"
    text = report.titled(runs, report.adaptive_table)
    assert "**photos (EfficientNet-Lite0)**" in text and "`adaptive_classifiers`" in text
    fig = figures.matrix_figure(runs["photos_lite2"])
    assert "EfficientNet-Lite2" in fig.axes[0].get_title()
    plt.close(fig)


def test_photo_classifiers_are_checked_before_any_work(monkeypatch):
    """A bad name fails in the parameter check (the runner and the notebook's first cell) and in
    the library's loop before a photo or a model is loaded."""
    for name in ("photo_classifiers", "adaptive_classifiers"):
        with pytest.raises(ParameterError, match=f"'{name}'.*'efficientnet-lite0', 'efficientnet-lite2'"):
            schema.validate_chapter("09_defense1", {name: ["efficientnet-lite3"]})
        with pytest.raises(ParameterError, match="distinct"):
            schema.validate_chapter("09_defense1", {name: [LITE2, LITE2]})
        assert schema.validate_chapter("09_defense1", {name: LITE2}) == {name: [LITE2]}
        assert schema.defaults("09_defense1")[name] == [PHOTO_CLASSIFIER]  # the published book's

    def no_work(*a, **k):
        raise AssertionError("loaded before the classifiers were checked")

    monkeypatch.setattr(data, "load_imagenet_sample", no_work)
    monkeypatch.setattr(pretrained, "efficientnet_lite", no_work)
    p = {"photo_classifiers": [PHOTO_CLASSIFIER, "efficientnet-lite3"], "adaptive": True}
    with pytest.raises(ValueError, match="efficientnet-lite3.*valid: efficientnet-lite0, efficientnet-lite2"):
        next(settings.photo_settings(p, None, device="cpu", progress=False))


def test_the_adaptive_attacks_run_on_the_named_photo_classifiers():
    base = {"adaptive": True, "adaptive_classifiers": [PHOTO_CLASSIFIER]}
    assert settings.adaptive_on(base, PHOTO_CLASSIFIER) and not settings.adaptive_on(base, LITE2)
    assert not settings.adaptive_on({**base, "adaptive": False}, PHOTO_CLASSIFIER)
    assert settings.adaptive_on({**base, "adaptive_classifiers": LITE2}, LITE2)
