"""Committed checkpoints (adv2.checkpoints) as the artifact cache uses them: hit, miss on a recipe
change, checksum mismatch, forced retrain; with a tiny model, in temporary folders."""

import json

import pytest
import torch
from torch import nn

from adv2 import artifacts, checkpoints


def tiny_training(calls, seed=0):
    """A 'training' of a 2x3 linear layer that records that it ran."""

    def compute():
        calls.append(1)
        torch.manual_seed(seed)
        layer = nn.Linear(3, 2)
        return {k: v.clone() for k, v in layer.state_dict().items()}, {"seconds": 1.5, "loss": 0.25}

    return compute


def publish(tmp_path, params, seed=0):
    """Train once into a scratch cache and commit the result as a checkpoint."""
    art = artifacts.load_or_compute("tiny", params, tiny_training([], seed), root=tmp_path / "scratch")
    return checkpoints.save_checkpoint("tiny", params, art.state, art.metrics, tmp_path / "ckpt"), art


def test_hit_loads_the_checkpoint_without_training(tmp_path):
    params = {"lr": 1, "iterations": 5}
    path, trained = publish(tmp_path, params)
    assert path.name == f"tiny-{artifacts.artifact_key(params)}.pt"
    manifest = json.loads((tmp_path / "ckpt" / "manifest.json").read_text())
    entry = manifest["checkpoints"][path.name]
    assert entry["sha256"] == artifacts.file_sha256(path) and entry["trained_seconds"] == 1.5
    calls = []
    art = artifacts.load_or_compute(
        "tiny", params, tiny_training(calls), root=tmp_path / "cache", checkpoints=tmp_path / "ckpt"
    )
    assert calls == [] and art.origin == "checkpoint" and art.checkpoint.endswith(path.name)
    assert all(torch.equal(art.state[k], trained.state[k]) for k in trained.state)
    # the checkpoint was copied into the cache: the next load is a cache hit that remembers it
    again = artifacts.load_or_compute(
        "tiny", params, tiny_training(calls), root=tmp_path / "cache", checkpoints=tmp_path / "ckpt"
    )
    assert calls == [] and again.origin == "cache" and again.checkpoint == art.checkpoint


def test_changed_recipe_misses_and_trains(tmp_path):
    publish(tmp_path, {"lr": 1, "iterations": 5})
    calls = []
    art = artifacts.load_or_compute(
        "tiny",
        {"lr": 1, "iterations": 6},
        tiny_training(calls),
        root=tmp_path / "cache",
        checkpoints=tmp_path / "ckpt",
    )
    assert calls == [1] and art.origin == "computed" and art.checkpoint is None


def test_checksum_mismatch_warns_and_trains(tmp_path):
    params = {"lr": 1}
    path, _ = publish(tmp_path, params)
    blob = bytearray(path.read_bytes())
    blob[-20] ^= 0xFF  # one flipped byte
    path.write_bytes(bytes(blob))
    with pytest.raises(checkpoints.CheckpointDamaged, match="sha256"):
        checkpoints.load_checkpoint("tiny", artifacts.artifact_key(params), tmp_path / "ckpt")
    calls = []
    with pytest.warns(checkpoints.DamagedCheckpointWarning, match="sha256"):
        art = artifacts.load_or_compute(
            "tiny", params, tiny_training(calls), root=tmp_path / "cache", checkpoints=tmp_path / "ckpt"
        )
    assert calls == [1] and art.origin == "computed" and "damaged" in art.note


def test_unlisted_checkpoint_is_damaged(tmp_path):
    params = {"lr": 1}
    path, _ = publish(tmp_path, params)
    (tmp_path / "ckpt" / "manifest.json").write_text(json.dumps({"format": 1, "checkpoints": {}}))
    with pytest.raises(checkpoints.CheckpointDamaged, match="not listed"):
        checkpoints.load_checkpoint("tiny", artifacts.artifact_key(params), tmp_path / "ckpt")


def test_retrain_ignores_checkpoint(tmp_path):
    params = {"lr": 1}
    publish(tmp_path, params, seed=0)
    calls = []
    art = artifacts.load_or_compute(
        "tiny",
        params,
        tiny_training(calls, seed=1),
        root=tmp_path / "cache",
        checkpoints=tmp_path / "ckpt",
        force=True,
    )
    assert calls == [1] and art.origin == "computed"


def test_rejected_state_counts_as_damaged(tmp_path):
    params = {"lr": 1}
    publish(tmp_path, params)

    def check(state):
        nn.Linear(4, 2).load_state_dict(state)  # another architecture: does not fit

    calls = []
    with pytest.warns(checkpoints.DamagedCheckpointWarning, match="rejected"):
        art = artifacts.load_or_compute(
            "tiny",
            params,
            tiny_training(calls),
            root=tmp_path / "cache",
            checkpoints=tmp_path / "ckpt",
            check=check,
        )
    assert calls == [1] and art.origin == "computed"


def test_status_line_says_where_the_weights_came_from(tmp_path):
    from adv2.photorts import status_line

    params = {"lr": 1}
    publish(tmp_path, params)
    art = artifacts.load_or_compute(
        "tiny", params, tiny_training([]), root=tmp_path / "cache", checkpoints=tmp_path / "ckpt"
    )
    assert status_line(art).startswith("loaded from the committed checkpoint")
    fresh = artifacts.load_or_compute("tiny", {"lr": 9}, tiny_training([]), root=tmp_path / "cache")
    assert status_line(fresh).startswith("trained here in")
