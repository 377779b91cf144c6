import json

import pytest
import torch

from adv2 import artifacts


def compute_factory(calls):
    def compute():
        calls.append(1)
        return {"w": torch.arange(3.0)}, {"accuracy": 0.5}
    return compute


def test_miss_then_hit(tmp_path):
    calls = []
    a = artifacts.load_or_compute("thing", {"lr": 1}, compute_factory(calls), root=tmp_path)
    b = artifacts.load_or_compute("thing", {"lr": 1}, compute_factory(calls), root=tmp_path)
    assert len(calls) == 1 and not a.from_cache and b.from_cache
    assert torch.equal(b.state["w"], torch.arange(3.0)) and b.metrics == {"accuracy": 0.5}
    assert json.loads((b.path / "params.json").read_text()) == {"lr": 1}


def test_changed_parameters_invalidate(tmp_path):
    calls = []
    artifacts.load_or_compute("thing", {"lr": 1}, compute_factory(calls), root=tmp_path)
    c = artifacts.load_or_compute("thing", {"lr": 2}, compute_factory(calls), root=tmp_path)
    assert len(calls) == 2 and not c.from_cache


def test_key_ignores_order():
    assert artifacts.artifact_key({"a": 1, "b": 2}) == artifacts.artifact_key({"b": 2, "a": 1})


def test_interrupted_compute_leaves_nothing_trusted(tmp_path):
    def killed():
        raise KeyboardInterrupt  # a run killed half-way

    with pytest.raises(KeyboardInterrupt):
        artifacts.load_or_compute("thing", {"lr": 3}, killed, root=tmp_path)
    kind_dir = tmp_path / "thing"
    assert not kind_dir.exists() or not any(kind_dir.iterdir())
    calls = []
    d = artifacts.load_or_compute("thing", {"lr": 3}, compute_factory(calls), root=tmp_path)
    assert len(calls) == 1 and not d.from_cache


def test_partial_folder_is_not_trusted(tmp_path):
    """A folder without its metrics.json (e.g. copied half-way) is recomputed."""
    folder = tmp_path / "thing" / artifacts.artifact_key({"lr": 4})
    folder.mkdir(parents=True)
    torch.save({"w": torch.zeros(1)}, folder / artifacts.WEIGHTS)
    calls = []
    e = artifacts.load_or_compute("thing", {"lr": 4}, compute_factory(calls), root=tmp_path)
    assert len(calls) == 1 and torch.equal(e.state["w"], torch.arange(3.0))
