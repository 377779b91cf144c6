"""Shared fixtures. Tests run on CPU with few threads, quiet progress bars and a private cache."""
from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("ADV2_THREADS", "2")
torch.set_num_threads(int(os.environ["ADV2_THREADS"]))


@pytest.fixture(scope="session")
def fmnist():
    from adv2.data import load_fashion_mnist

    return load_fashion_mnist()


@pytest.fixture(scope="session")
def session_artifacts():
    """The repository's artifact cache: the smoke-profile notebooks train the same classifiers,
    so the whole suite trains each one once (the cache is keyed by recipe, never stale)."""
    return None


@pytest.fixture(scope="session")
def small_trained_resnet(fmnist, session_artifacts):
    """A small ResNet trained for a few seconds (4000 images): accurate enough to attack."""
    from adv2.models import trained_small_cnn

    model, art = trained_small_cnn("resnet", fmnist, epochs=1, train_subset=4000, seed=0,
                                   artifacts_dir=session_artifacts, progress=False)
    return model
