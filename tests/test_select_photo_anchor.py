"""benchmarks/select_photo_anchor.py: the rule, and the held-out crops it measures on."""

from __future__ import annotations

import dataclasses

import torch

from adv2.trained.photo_recipes import PhotoRTSARecipe
from adv2.trained.photomodels import photo_pool_images
from standins import load_script

select = load_script("benchmarks/select_photo_anchor.py")


def test_the_rule_takes_the_strongest_anchor_within_the_drift_limit():
    assert select.choose({100.0: 0.06, 200.0: 0.04, 400.0: 0.02}) == 200.0
    assert select.choose({100.0: 0.05, 200.0: 0.04}) == 100.0  # at the limit counts
    assert select.choose({100.0: 0.06, 200.0: 0.051}) is None


def test_held_out_crops_follow_every_crop_the_rts_and_aid_trained_on():
    """The crops are the pool's next ones in its seeded sequence: a longer pool keeps the first
    ``pool_images`` crops (those RTS trained on) unchanged, so the measured ones are new."""
    recipe = PhotoRTSARecipe.for_classifier("efficientnet-lite0")
    rts = recipe.rts_recipe()
    start = max(rts.pool_images, recipe.train_images)
    crops = select.held_out_crops(recipe, 3)
    assert crops.shape == (3, 3, 224, 224) and crops.dtype == torch.float32
    assert 0.0 <= float(crops.min()) and float(crops.max()) <= 1.0
    longer = photo_pool_images(dataclasses.replace(rts, pool_images=start + 3))
    assert torch.equal(longer[:start], photo_pool_images(rts)[:start])
    assert torch.equal(crops, longer[start:].float() / 255.0)
