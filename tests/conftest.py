"""Shared fixtures. Tests run on CPU with few threads, quiet progress bars and a private cache."""

from __future__ import annotations

import os
import shutil
import tempfile

# Before anything imports adv2: the suite's artifacts (trained classifiers, RTS, RTSA) go to a
# private folder, never into the repository's (or the reader's $ADV2_ARTIFACTS) cache. Set
# ADV2_TEST_ARTIFACTS to a folder to keep that private cache between runs (faster reruns).
_KEEP = os.environ.get("ADV2_TEST_ARTIFACTS")
PRIVATE_ARTIFACTS = _KEEP or tempfile.mkdtemp(prefix="adv2-test-artifacts-")
os.environ["ADV2_ARTIFACTS"] = PRIVATE_ARTIFACTS
os.environ.setdefault("ADV2_THREADS", "2")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["ADV2_THREADS"]))


def pytest_collection_modifyitems(config, items):
    """Tests that need the session's trained classifier are slow (it trains for 10-30 s): they
    are left out of `make test-fast` with the tests marked slow by hand."""
    for item in items:
        if "small_trained_resnet" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


def pytest_sessionfinish(session, exitstatus):
    if not _KEEP:
        shutil.rmtree(PRIVATE_ARTIFACTS, ignore_errors=True)


@pytest.fixture(scope="session")
def fmnist():
    from adv2.trained.data import load_fashion_mnist

    return load_fashion_mnist()


@pytest.fixture(scope="session")
def session_artifacts():
    """The suite's private artifact cache (see above): the smoke-profile notebooks train the same
    classifiers, so the whole suite trains each one once."""
    return PRIVATE_ARTIFACTS


@pytest.fixture(scope="session")
def small_trained_resnet(fmnist, session_artifacts):
    """A small ResNet trained for a few seconds (4000 images): accurate enough to attack."""
    from adv2.trained import loading, recipes

    recipe = recipes.ClassifierRecipe("resnet", epochs=1, train_subset=4000, train_seed=0)
    model, art = loading.load_classifier(recipe, fmnist, artifacts_dir=session_artifacts, progress=False)
    return model
