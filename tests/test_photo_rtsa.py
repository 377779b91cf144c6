"""The photo RTSA recipe and loader (adv2.trained.photo_photo_recipes.PhotoRTSARecipe, adv2.trained.photomodels.load_photo_rtsa) on a tiny
stand-in classifier, RTS and uint8 pool: trained by the library's own AID code, cached, looked up
in the committed checkpoints, retrained when asked or when the recipe changes."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from adv2.core.config import PHOTO_CLASSIFIERS, ParameterError
from adv2.core.interpreters.rts import RTSNet
from adv2.core.models import build_small_cnn
from adv2.trained import checkpoint_pins, checkpoints, photo_recipes, photomodels
from adv2.trained.files import file_sha256

RTS_RECIPE = SimpleNamespace(
    key="standin-rts", arch="efficientnet-lite0", area_weight=None, smooth_weight=None, preserver_weight=0.3
)


def tiny_recipe(**changes) -> photo_recipes.PhotoRTSARecipe:
    base = photo_recipes.PhotoRTSARecipe(
        rts=RTS_RECIPE,
        iterations=1,
        batch_size=2,
        attack_batch_size=2,
        pool_size=2,
        train_images=8,
        stage1_steps=1,
        stage2_steps=1,
        n_probe=0,
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
def standins(tmp_path, monkeypatch):
    monkeypatch.setenv("ADV2_CHECKPOINTS", str(tmp_path / "checkpoints"))
    torch.manual_seed(0)
    model = build_small_cnn("resnet", 10, [str(i) for i in range(10)]).eval()
    rts = RTSNet(model).eval()
    pool = (torch.rand(12, 1, 28, 28) * 255).to(torch.uint8)
    art = SimpleNamespace(path=Path("rts/standin-rts"), metrics={"seconds": 1.0})
    kw = {"model": model, "rts": rts, "rts_artifact": art, "pool": pool, "progress": False}
    return kw, tmp_path


def test_recipe_defaults_are_the_papers_budget_and_the_rts_loss_weights():
    r = photo_recipes.PhotoRTSARecipe()
    cfg = r.aid_config()
    assert cfg.epsilon == 0.031 and cfg.step_size == pytest.approx(1 / 255)
    rts = r.rts_recipe()
    assert (cfg.area_weight, cfg.smooth_weight) == (rts.area_weight, rts.smooth_weight)
    assert r.cache_params()["rts"] == rts.key and r.cache_params()["dataset"] == "photos"
    assert dataclasses.replace(r, iterations=r.iterations + 1).key != r.key


def test_trains_once_then_cache_then_checkpoint(standins, monkeypatch):
    kw, tmp = standins
    net, art = photomodels.load_photo_rtsa(tiny_recipe(), artifacts_dir=str(tmp / "a"), **kw)
    assert art.origin == "computed" and art.metrics["pool_images"] == 8  # train_images of the pool
    assert art.metrics["seconds"] > 0 and len(art.metrics["aid_l1"]) > 0
    assert not any(k.startswith("encoder.") for k in art.state)  # the classifier's copy is not stored
    again, art2 = photomodels.load_photo_rtsa(tiny_recipe(), artifacts_dir=str(tmp / "a"), **kw)
    assert art2.origin == "cache"
    x = torch.rand(3, 1, 28, 28)
    c = torch.tensor([0, 1, 2])
    assert torch.equal(net(x, c).mask, again(x, c).mask)
    # shipped as a checkpoint: an empty cache loads it instead of training
    path = checkpoints.save_checkpoint("rtsa", art.params, art.state, art.metrics)
    monkeypatch.setitem(checkpoint_pins.PINS, path.name, file_sha256(path))  # pinned, as committed ones are
    _, art3 = photomodels.load_photo_rtsa(tiny_recipe(), artifacts_dir=str(tmp / "b"), **kw)
    assert art3.origin == "checkpoint"
    # retrain: computed in any case; another recipe: another key, trained
    _, art4 = photomodels.load_photo_rtsa(tiny_recipe(), artifacts_dir=str(tmp / "b"), retrain=True, **kw)
    assert art4.origin == "computed"
    _, art5 = photomodels.load_photo_rtsa(tiny_recipe(beta=1.0), artifacts_dir=str(tmp / "b"), **kw)
    assert art5.origin == "computed" and art5.path.name != art.path.name


def test_rtsa_trained_with_its_encoder_reloads_bit_for_bit(standins):
    """AID with ``train_encoder`` moves RTSA's own encoder copy: the cached state must keep it, or
    a reload pairs the trained decoder with the classifier's encoder (the bug of issue 23)."""
    kw, tmp = standins
    recipe = tiny_recipe(train_encoder=True, lr=0.05)
    net, art = photomodels.load_photo_rtsa(recipe, artifacts_dir=str(tmp / "a"), **kw)
    assert art.origin == "computed" and any(k.startswith("encoder.") for k in art.state)
    trained = net.encoder.state_dict()
    original = kw["model"].state_dict()
    assert any(not torch.equal(trained[k], original[k]) for k in original)  # AID moved the encoder
    again, art2 = photomodels.load_photo_rtsa(recipe, artifacts_dir=str(tmp / "a"), **kw)
    assert art2.origin == "cache"
    for k, v in net.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
    x, c = torch.rand(3, 1, 28, 28), torch.tensor([0, 1, 2])
    assert torch.equal(net(x, c).mask, again(x, c).mask)


def test_lite2_loads_its_own_committed_rts_rtsa_and_control(tmp_path, monkeypatch):
    """Issue 27: ``load_photo_interpreted(classifier="efficientnet-lite2")`` loads Lite2's committed
    checkpoints into an empty model cache (nothing trains: training here fails the test)."""

    def no_training(*args, **kwargs):
        raise AssertionError("trained instead of loading the committed checkpoint")

    monkeypatch.setattr(photomodels, "train_photo_rts", no_training)
    monkeypatch.setattr(photomodels, "train_rtsa", no_training)
    im = photomodels.load_photo_interpreted(
        classifier="efficientnet-lite2", artifacts_dir=str(tmp_path), progress=False
    )
    assert (im.model.name, im.model.input_size, im.rts.map_size) == ("efficientnet-lite2", 260, 65)
    rtsa = photo_recipes.PhotoRTSARecipe.for_classifier("efficientnet-lite2")  # its own anchor
    arts = (im.rts_artifact, im.rtsa_artifact, im.control_artifact)
    assert [a.origin for a in arts] == ["checkpoint"] * 3
    assert [a.path.name for a in arts] == [rtsa.rts_recipe().key, rtsa.key, rtsa.control().key]
    with pytest.raises(ParameterError, match="classifier='efficientnet-lite2'.*'efficientnet-lite0'"):
        photomodels.load_photo_interpreted(photo_recipes.PhotoRTSARecipe(), classifier="efficientnet-lite2")


def test_each_photo_classifier_has_an_anchor_and_lite0_keeps_its_key():
    """``PhotoRTSARecipe.for_classifier``: every photo classifier has an anchor; Lite0's recipe is
    the class default (its committed checkpoint's key), Lite2's builds on Lite2's RTS."""
    assert set(photo_recipes.PHOTO_RTSA_ANCHORS) == set(PHOTO_CLASSIFIERS)
    lite0 = photo_recipes.PhotoRTSARecipe.for_classifier("efficientnet-lite0")
    assert (lite0.key, lite0.control().key) == ("6236cb40b6237796", "5b49cd034303ae9a")
    lite2 = photo_recipes.PhotoRTSARecipe.for_classifier("efficientnet-lite2")
    assert lite2.rts_recipe().arch == "efficientnet-lite2"
    assert lite2.distill_weight == photo_recipes.PHOTO_RTSA_ANCHORS["efficientnet-lite2"]
    with pytest.raises(ParameterError, match="'resnet' has no RTSA; valid: efficientnet-lite0"):
        photo_recipes.PhotoRTSARecipe.for_classifier("resnet")
