"""Issue 27: chapters 4, 5 and 6 run their photo sections once per classifier of
``photo_classifiers`` (EfficientNet-Lite0 alone by default, -Lite2 beside it at ``full``): each
classifier's photos at its side, its numbers and verdicts under its setting (``photos``,
``photos_lite2``), its glue under its own names (``ch4_photos_*``, ``ch4_photos_lite2_*``), and
Lite0's unchanged by Lite2's presence. Tiny stand-in classifiers, RTS and RTSA (no EfficientNet
runs here; the notebooks' smoke runs exercise the real ones)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import pytest
import torch
from torch import nn

from adv2.chapters import _common, aid_photos, ch04, ch05, ch06, claims, results, schema
from adv2.core import attacks, defenses, noise
from adv2.core.config import PHOTO_CLASSIFIERS, ParameterError
from standins import FakeRTS, glue_keys_in_markdown

LITE0, LITE2 = "efficientnet-lite0", "efficientnet-lite2"
BOTH = [LITE0, LITE2]
STEMS = ("04_aid_defense", "05_noise_sensitivity", "06_table10")
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def markdown_names(stem: str, prefix: str) -> set[str]:
    return {k for k in glue_keys_in_markdown(NOTEBOOKS / f"{stem}.ipynb") if k.startswith(prefix)}


def no_nan_or_none(glued: dict) -> None:
    for name, value in glued.items():  # the prose never reads None or nan
        assert value is not None and not (isinstance(value, float) and math.isnan(value)), name


# ----------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("stem", STEMS)
def test_photo_classifiers_parameter_default_choices_and_errors(stem):
    assert schema.defaults(stem)["photo_classifiers"] == [LITE0]  # the published numbers
    assert schema.validate_chapter(stem, {"photo_classifiers": BOTH}) == {"photo_classifiers": BOTH}
    assert schema.validate_chapter(stem, {"photo_classifiers": LITE2}) == {"photo_classifiers": [LITE2]}
    for bad, words in (
        (["efficientnet-lite4"], ["efficientnet-lite4", "'efficientnet-lite0'", "'efficientnet-lite2'"]),
        ([LITE0, LITE0], ["distinct"]),
        ([], ["non-empty"]),
    ):
        with pytest.raises(ParameterError) as err:  # what the runner checks before any notebook runs
            schema.validate_chapter(stem, {"photo_classifiers": bad})
        for w in ["'photo_classifiers'", *words]:
            assert w in str(err.value), (w, str(err.value))
    # and the notebook's own first cell, before it loads anything
    namespace = {**schema.defaults(stem), "photo_classifiers": ["resnet"]}
    with pytest.raises(ParameterError, match=r"'photo_classifiers'.*'resnet'.*'efficientnet-lite2'"):
        schema.check_notebook_globals(stem, namespace)


@pytest.mark.parametrize("stem", ["04_aid_defense", "06_table10"])
def test_photo_n_images_takes_0_for_every_photo_and_at_most_18(stem):
    assert schema.validate_chapter(stem, {"photo_n_images": 0}) == {"photo_n_images": 0}
    assert schema.validate_chapter(stem, {"photo_n_images": 18}) == {"photo_n_images": 18}
    with pytest.raises(ParameterError) as err:
        schema.validate_chapter(stem, {"photo_n_images": 19})
    for w in ("'photo_n_images'", "19", "<= 18", "0: every held-out photo"):
        assert w in str(err.value), (w, str(err.value))


@pytest.mark.parametrize("stem", STEMS)
def test_full_runs_both_classifiers_on_every_photo_quick_runs_lite0(stem):
    """The run box's sentence for `full` ("both photo classifiers on every photo each gets right")
    holds for chapters 4-6 too; quick keeps EfficientNet-Lite0 alone."""
    full, quick = schema.profile_values(stem, "full"), schema.profile_values(stem, "quick")
    assert full["photo_classifiers"] == list(PHOTO_CLASSIFIERS) and full["photos"]
    assert quick["photo_classifiers"] == [LITE0]
    if "photo_n_images" in full:
        assert full["photo_n_images"] == 0


# ----------------------------------------------------------------------------- the photos per classifier
def test_photo_attack_set_reads_each_classifiers_side_and_counts(monkeypatch):
    """Each classifier's photos at its side; 0: every labelled photo it gets right (unlabelled ones
    never); more than it gets right: an error naming the parameter, the value and the classifier."""
    n, labels = 12, torch.arange(12) % 5
    labels[3] = -1  # an unlabelled photo
    sides = []

    def sample(size=224, include_extra=True):
        sides.append(size)
        x = (torch.arange(n).float() / 100).view(n, 1, 1, 1).expand(n, 3, 4, 4).clone()
        return SimpleNamespace(x_test=x, y_test=labels.clone(), class_names=[f"c{i}" for i in range(1000)])

    wrong = {0, 5, 7}  # the classifier's mistakes; index 3 is unlabelled

    class ByIndex(nn.Module):  # predicts each photo's label except for ``wrong`` (index in the pixels)
        def forward(self, x):
            i = (x[:, 0, 0, 0] * 100).round().long()
            pred = torch.where(torch.tensor([j in wrong for j in i.tolist()]), labels[i] + 1, labels[i])
            return nn.functional.one_hot(pred.clamp(min=0), 1000).float()

    monkeypatch.setattr(_common.data, "load_imagenet_sample", sample)
    photos, every = _common.photo_attack_set(ByIndex(), 0, seed=0, classifier=LITE2)
    assert sides == [260] and photos.x_test.shape[0] == n
    assert sorted(every.index.tolist()) == sorted(set(range(n)) - wrong - {3})
    _, four = _common.photo_attack_set(ByIndex(), 4, seed=0)
    assert sides[-1] == 224 and four.index.tolist() == every.index.tolist()[:4]  # the same seeded order
    with pytest.raises(ParameterError, match=r"photo_n_images=9, but EfficientNet-Lite2 gets only 8 .*0 for"):
        _common.photo_attack_set(ByIndex(), 9, seed=0, classifier=LITE2)


def stand_in(seed: int):
    """A photo classifier with its RTS, RTSA, control and artifacts, in a few weights."""
    torch.manual_seed(seed)
    return SimpleNamespace(
        arch="photos",
        model=nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval(),
        rts=FakeRTS(seed + 1),
        rtsa=FakeRTS(seed + 2),
        control=FakeRTS(seed + 3),
        classifier_artifact=None,
        rts_artifact=SimpleNamespace(metrics={"seconds": 4.0}, params={"phase1_iterations": 2}),
        rtsa_artifact=SimpleNamespace(
            params={
                **defenses.AIDConfig(iterations=3, distill_weight=20.0 + seed).as_dict(),
                "stage2_steps": 1,
            },
            metrics={
                "aid_l1": [0.1, 0.2],
                "attack_success": [0.3, 0.5],
                "final_probe_drift": 0.02,
                "seconds": 6.0,
                "seconds_attack": 3.0,
                "seconds_per_iteration": 2.0,
                "pool_images": 30,
            },
            path=Path("artifacts/rtsa/abc"),
            from_cache=True,
        ),
    )


@pytest.fixture
def photo_sets(monkeypatch):
    """Each classifier's held-out photos (stand-ins: 28-px images its own model gets right); the
    classifiers the chapters asked for, in order."""
    asked = []
    x = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(1))

    def chosen(model, n_images, *, seed, device="cpu", classifier=LITE0):
        asked.append(classifier)
        y = model(x).argmax(1)
        names = SimpleNamespace(class_names=[f"c{i}" for i in range(10)])
        return names, SimpleNamespace(x=x[:n_images], y=y[:n_images], target=(y[:n_images] + 3) % 10)

    for module in (ch04, ch06):
        monkeypatch.setattr(module, "photo_attack_set", chosen)
    return asked


def base_numbers() -> dict:
    return {"resnet": {"x": 1}, "intervals": {"resnet": {}}, "verdicts": {"resnet": {}}}


def written(value) -> str:
    """What the results file would hold (NaN written as NaN, so two runs compare equal)."""
    return json.dumps(results._plain(value), sort_keys=True)


def check_settings(numbers: dict, lite0_alone: dict) -> None:
    """Lite2's setting beside Lite0's, Lite0's exactly as without Lite2, the front page's column."""
    assert {"photos", "photos_lite2"} <= set(numbers) and "photos_lite2" not in lite0_alone
    for block in ("intervals", "verdicts"):
        assert set(numbers[block]) == {"resnet", "photos", "photos_lite2"}
    without = {k: v for k, v in numbers.items() if k != "photos_lite2"}
    without = {
        **without,
        **{
            b: {s: v for s, v in numbers[b].items() if s != "photos_lite2"} for b in ("intervals", "verdicts")
        },
    }
    assert written(without) == written(lite0_alone)
    assert "photos_lite2" in claims.front_page_settings(numbers["verdicts"])


def check_glue(glued: dict, lite0_alone: dict, stem: str, prefix: str) -> None:
    """Every name of the Lite2 section glued with a value; Lite0's names and values unchanged."""
    lite2 = markdown_names(stem, f"{prefix}photos_lite2_")
    assert lite2, f"{stem} has no EfficientNet-Lite2 section"
    assert lite2 <= set(glued) and all(glued[k] != "not run" for k in lite2), sorted(lite2 - set(glued))
    lite0 = {k: v for k, v in glued.items() if not k.startswith(f"{prefix}photos_lite2_")}
    assert lite0 == {k: v for k, v in lite0_alone.items() if not k.startswith(f"{prefix}photos_lite2_")}
    assert all(lite0_alone[k] == "not run" for k in lite2)  # Lite0 alone: Lite2's cells say so
    no_nan_or_none(glued)


def test_chapter_4_benign_photos_per_classifier(photo_sets):
    runs = {c: ch04.benign_photos(stand_in(i), n_images=8, seed=0, classifier=c) for i, c in enumerate(BOTH)}
    assert photo_sets == BOTH
    assert runs[LITE2].setting == "photos_lite2" and runs[LITE2].result.archs == ["photos_lite2"]
    numbers = ch04.add_photos(base_numbers(), runs)
    check_settings(numbers, ch04.add_photos(base_numbers(), {LITE0: runs[LITE0]}))
    assert numbers["photos_lite2"]["n_images"] == 8
    assert numbers["photos_lite2"]["aid_config"]["distill_weight"] == 21.0  # its own RTSA's anchor
    v = numbers["verdicts"]["photos_lite2"]["rtsa_like_rts_on_benign"]
    assert v["status"] in claims.STATUSES
    glued = ch04.all_photo_glue(runs)
    check_glue(glued, ch04.all_photo_glue({LITE0: runs[LITE0]}), "04_aid_defense", "ch4_")
    assert glued["ch4_photos_lite2_aid_distill_weight"] == 21.0
    assert glued["ch4_photos_lite2_verdict_benign"].split(" (")[0] == v["status"]
    assert set(ch04.photo_glue(None)) == set(ch04.photo_glue(runs[LITE0]))  # Lite0: the same names
    table = ch04.photo_benign_tables(runs)
    assert "**EfficientNet-Lite0**" in table and "**EfficientNet-Lite2**" in table
    assert "**" not in ch04.photo_benign_tables({LITE0: runs[LITE0]})  # one classifier: as before
    fig = ch04.photo_maps_figure(runs[LITE2])
    assert "EfficientNet-Lite2" in fig._suptitle.get_text()
    plt.close(fig)  # only this test's: other files build their figures at collection


def test_chapter_5_noise_on_each_classifiers_pool(monkeypatch):
    pools = []

    def pool_of(recipe, n_images=None):  # the pool of each classifier's own photo RTS, at its side
        pools.append(recipe.arch)
        return torch.rand(60, 1, 28, 28, generator=torch.Generator().manual_seed(3))

    monkeypatch.setattr(ch05, "photo_pool_images", pool_of)
    search = noise.NoiseSearch(rates=[0.0, 0.03, 0.3], tolerance=0.05, max_iter=8, seed=0)
    runs = {
        c: ch05.noise_photos(stand_in(i), search, n_calib=30, map_class="predicted", classifier=c)
        for i, c in enumerate(BOTH)
    }
    assert pools == BOTH
    assert runs[LITE2].archs == ["photos_lite2"] and len(runs[LITE2].calibration["photos_lite2"].x) == 30
    numbers = ch05.add_photos(base_numbers(), runs)
    check_settings(numbers, ch05.add_photos(base_numbers(), {LITE0: runs[LITE0]}))
    assert set(numbers["verdicts"]["photos_lite2"]) == {"rtsa_more_noise_sensitive"}
    glued = ch05.all_photo_glue(runs)
    check_glue(glued, ch05.all_photo_glue({LITE0: runs[LITE0]}), "05_noise_sensitivity", "ch5_")
    assert glued["ch5_photos_lite2_n_calib"] == 30
    l1 = runs[LITE2].sens["photos_lite2"]["l1"]["rts"]["normal"]["30%"]
    assert glued["ch5_photos_lite2_l1_rts_normal_30pct"] == pytest.approx(l1, rel=1e-6)
    assert "**EfficientNet-Lite2**" in ch05.photo_tables(runs)
    fig = ch05.photo_figure(runs[LITE2])
    assert "EfficientNet-Lite2" in fig._suptitle.get_text()
    plt.close(fig)  # only this test's: other files build their figures at collection


def test_chapter_6_table10_and_ablation_per_classifier(photo_sets):
    nets = {c: stand_in(i) for i, c in enumerate(BOTH)}
    cfg = attacks.default_config("rts", epsilon=0.1, step_size=0.02, stage1_steps=2, stage2_steps=3)
    runs = {
        c: ch06.attack_photos(n, n_images=8, seed=0, attack_cfg=cfg, restrict_to_success=False, classifier=c)
        for c, n in nets.items()
    }
    assert photo_sets == BOTH and runs[LITE2].archs == ["photos_lite2"]
    # the inner budget: each RTSA's own recipe's (1 here) unless given
    ablations = {c: aid_photos.inner_budget_ablation(nets[c], r, cfg) for c, r in runs.items()}
    assert ablations[LITE2]["inner_stage2_steps"] == 1
    numbers = aid_photos.add_photos(base_numbers(), runs, nets, ablations)
    lite0 = {LITE0: runs[LITE0]}
    check_settings(numbers, aid_photos.add_photos(base_numbers(), lite0, nets, ablations))
    assert set(numbers["verdicts"]["photos_lite2"]) == set(ch06.CLAIM_GLUE)  # with its control
    assert numbers["photos_lite2"]["ablation_inner_budget"]["inner_stage2_steps"] == 1
    glued = aid_photos.all_photo_glue(runs, nets, ablations)
    check_glue(glued, aid_photos.all_photo_glue(lite0, nets, ablations), "06_table10", "ch6_")
    assert glued["ch6_photos_lite2_n_images"] == 8 and glued["ch6_photos_lite2_stage2_steps"] == 3
    assert glued["ch6_photos_lite2_aid_gap_last"] == 0.2
    for text in (aid_photos.photo_tables(runs), aid_photos.ablation_tables(runs, ablations)):
        assert "**EfficientNet-Lite0**" in text and "**EfficientNet-Lite2**" in text
    fig = aid_photos.photo_figure16(runs[LITE2], rows=2)
    assert "EfficientNet-Lite2" in fig._suptitle.get_text()
    plt.close(fig)  # only this test's: other files build their figures at collection
