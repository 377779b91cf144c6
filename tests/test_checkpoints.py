"""Committed checkpoints (adv2.trained.checkpoints) as the artifact cache uses them: hit, miss on a recipe
change, checksum mismatch against the pinned sha256 (adv2.trained.checkpoint_pins), forced retrain; with
a tiny model, in temporary folders, and the repository's own checkpoints in a temporary copy."""

import json
import shutil

import pytest
import torch
from torch import nn

from adv2.core.config import REPO_ROOT
from adv2.trained import artifacts, checkpoint_pins, checkpoints, files


@pytest.fixture(autouse=True)
def pins(monkeypatch):
    """The pin table, restored after each test (``publish`` pins the tiny checkpoints it writes)."""
    table = dict(checkpoint_pins.PINS)
    monkeypatch.setattr(checkpoint_pins, "PINS", table)
    return table


def tiny_training(calls, seed=0):
    """A 'training' of a 2x3 linear layer that records that it ran."""

    def compute():
        calls.append(1)
        torch.manual_seed(seed)
        layer = nn.Linear(3, 2)
        return {k: v.clone() for k, v in layer.state_dict().items()}, {"seconds": 1.5, "loss": 0.25}

    return compute


def publish(tmp_path, params, seed=0, pin=True):
    """Train once into a scratch cache and commit the result as a checkpoint (pinned, as the
    docstring of adv2.trained.checkpoint_pins says to, unless ``pin`` is False)."""
    art = artifacts.load_or_compute("tiny", params, tiny_training([], seed), root=tmp_path / "scratch")
    path = checkpoints.save_checkpoint("tiny", params, art.state, art.metrics, tmp_path / "ckpt")
    if pin:
        checkpoint_pins.PINS[path.name] = files.file_sha256(path)
    return path, art


def test_hit_loads_the_checkpoint_without_training(tmp_path):
    params = {"lr": 1, "iterations": 5}
    path, trained = publish(tmp_path, params)
    assert path.name == f"tiny-{files.artifact_key(params)}.pt"
    manifest = json.loads((tmp_path / "ckpt" / "manifest.json").read_text())
    entry = manifest["checkpoints"][path.name]
    assert entry["sha256"] == files.file_sha256(path) and entry["trained_seconds"] == 1.5
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
        checkpoints.load_checkpoint("tiny", files.artifact_key(params), tmp_path / "ckpt")
    calls = []
    with pytest.warns(checkpoints.DamagedCheckpointWarning, match="sha256"):
        art = artifacts.load_or_compute(
            "tiny",
            params,
            tiny_training(calls),
            root=tmp_path / "cache",
            checkpoints=tmp_path / "ckpt",
            retrain_damaged_checkpoint=True,  # since issue 24 only when asked; else refused (below)
        )
    assert calls == [1] and art.origin == "computed" and "damaged" in art.note


def test_unlisted_checkpoint_is_damaged(tmp_path):
    params = {"lr": 1}
    path, _ = publish(tmp_path, params)
    (tmp_path / "ckpt" / "manifest.json").write_text(json.dumps({"format": 1, "checkpoints": {}}))
    with pytest.raises(checkpoints.CheckpointDamaged, match="not listed"):
        checkpoints.load_checkpoint("tiny", files.artifact_key(params), tmp_path / "ckpt")


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
            retrain_damaged_checkpoint=True,  # since issue 24 only when asked; else refused
        )
    assert calls == [1] and art.origin == "computed"


def test_status_line_says_where_the_weights_came_from(tmp_path):
    from adv2.trained.photomodels import status_line

    params = {"lr": 1}
    publish(tmp_path, params)
    art = artifacts.load_or_compute(
        "tiny", params, tiny_training([]), root=tmp_path / "cache", checkpoints=tmp_path / "ckpt"
    )
    assert status_line(art).startswith("loaded from the committed checkpoint")
    fresh = artifacts.load_or_compute("tiny", {"lr": 9}, tiny_training([]), root=tmp_path / "cache")
    assert status_line(fresh).startswith("trained here in")


# ----------------------------------------------------------------------------- issue 24: pinned sha256
def flip_a_byte(path):
    blob = bytearray(path.read_bytes())
    blob[-20] ^= 0xFF
    path.write_bytes(bytes(blob))


def test_checksum_mismatch_is_refused_unless_asked(tmp_path):
    """The default: a damaged checkpoint stops the computation with one line saying how to
    restore it; nothing is trained around it."""
    params = {"lr": 1}
    path, _ = publish(tmp_path, params)
    flip_a_byte(path)
    calls = []
    with pytest.raises(checkpoints.CheckpointDamaged) as err:
        artifacts.load_or_compute(
            "tiny", params, tiny_training(calls), root=tmp_path / "cache", checkpoints=tmp_path / "ckpt"
        )
    message = str(err.value)
    assert calls == [] and "\n" not in message
    assert "refused" in message and "checkpoint_pins.py pins" in message and "restore it with" in message
    assert not (tmp_path / "cache" / "tiny" / files.artifact_key(params)).exists()


def test_state_rejected_by_the_check_is_refused_unless_asked(tmp_path):
    params = {"lr": 1}
    publish(tmp_path, params)
    calls = []
    with pytest.raises(checkpoints.CheckpointDamaged, match="refused.*rejected"):
        artifacts.load_or_compute(
            "tiny",
            params,
            tiny_training(calls),
            root=tmp_path / "cache",
            checkpoints=tmp_path / "ckpt",
            check=nn.Linear(4, 2).load_state_dict,
        )
    assert calls == []


def test_retrain_after_a_damaged_checkpoint_is_told_on_the_terminal(tmp_path, capfd):
    """Issue 24 item 4: the retraining a damaged checkpoint causes is one line on the process's
    stderr (file descriptor 2, which a notebook kernel echoes to the runner's terminal)."""
    params = {"lr": 1}
    path, _ = publish(tmp_path, params)
    flip_a_byte(path)
    capfd.readouterr()
    with pytest.warns(checkpoints.DamagedCheckpointWarning):
        artifacts.load_or_compute(
            "tiny",
            params,
            tiny_training([]),
            root=tmp_path / "cache",
            checkpoints=tmp_path / "ckpt",
            retrain_damaged_checkpoint=True,
        )
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("[adv2]")]
    assert len(lines) == 1 and "committed checkpoint damaged" in lines[0] and "trained again" in lines[0]
    assert path.name in lines[0]


def test_unpinned_checkpoint_is_refused_and_the_message_gives_the_pin(tmp_path):
    params = {"lr": 2}
    path, _ = publish(tmp_path, params, pin=False)
    with pytest.raises(checkpoints.CheckpointDamaged, match="no sha256 pinned") as err:
        checkpoints.load_checkpoint("tiny", files.artifact_key(params), tmp_path / "ckpt")
    assert checkpoint_pins.pin_line(path).strip() in str(err.value)
    calls = []
    with pytest.raises(checkpoints.CheckpointDamaged, match="refused"):
        artifacts.load_or_compute(
            "tiny", params, tiny_training(calls), root=tmp_path / "cache", checkpoints=tmp_path / "ckpt"
        )
    assert calls == []
    # pasting the printed line is all it takes
    checkpoint_pins.PINS[path.name] = files.file_sha256(path)
    art = artifacts.load_or_compute(
        "tiny", params, tiny_training(calls), root=tmp_path / "cache", checkpoints=tmp_path / "ckpt"
    )
    assert calls == [] and art.origin == "checkpoint"


def test_pin_line_command_prints_the_line_to_paste(tmp_path, capsys):
    path, _ = publish(tmp_path, {"lr": 3}, pin=False)
    assert checkpoint_pins.main([str(path)]) == 0
    line = capsys.readouterr().out.strip()
    assert line == f'"{path.name}": "{files.file_sha256(path)}",'
    assert checkpoint_pins.main([str(tmp_path / "nothing.pt")]) == 2


def test_every_committed_checkpoint_is_pinned_and_matches():
    """The repository's checkpoints hash to their pins, and every pin names a committed file: a
    new checkpoint fails here until its line is in adv2/trained/checkpoint_pins.py."""
    committed = sorted(p.name for p in (REPO_ROOT / "checkpoints").glob("*.pt"))
    assert committed == sorted(checkpoint_pins.PINS)
    for name in committed:
        path = REPO_ROOT / "checkpoints" / name
        assert files.file_sha256(path) == checkpoint_pins.PINS[name], checkpoint_pins.pin_line(path)


def committed_copy(tmp_path, monkeypatch):
    """A copy of the repository's checkpoints folder, used through $ADV2_CHECKPOINTS."""
    copy = tmp_path / "checkpoints"
    shutil.copytree(REPO_ROOT / "checkpoints", copy)
    monkeypatch.setenv("ADV2_CHECKPOINTS", str(copy))
    return copy


RTS = "rts-44b904fb09d9d232.pt"


def test_committed_checkpoint_with_changed_weights_and_rewritten_manifest_is_refused(tmp_path, monkeypatch):
    """Issue 24: other weights saved under the committed name, with their sha256 and size written
    into checkpoints/manifest.json, loaded silently as "the committed checkpoint"."""
    copy = committed_copy(tmp_path, monkeypatch)
    path = copy / RTS
    blob = torch.load(path, map_location="cpu", weights_only=True)
    name = next(k for k, v in blob["state"].items() if v.is_floating_point())
    blob["state"][name] = blob["state"][name] + 0.01  # a valid file, other weights
    torch.save(blob, path)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["checkpoints"][RTS].update(sha256=files.file_sha256(path), bytes=path.stat().st_size)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    key = manifest["checkpoints"][RTS]["key"]
    with pytest.raises(checkpoints.CheckpointDamaged, match="checkpoint_pins.py pins e563323729ee"):
        checkpoints.load_checkpoint("rts", key)
    calls = []
    with pytest.raises(checkpoints.CheckpointDamaged, match="refused"):
        artifacts.load_or_compute(
            "rts", manifest["checkpoints"][RTS]["params"], tiny_training(calls), root=tmp_path / "cache"
        )
    assert calls == []


def test_committed_checkpoint_loads_from_a_copy(tmp_path, monkeypatch):
    """The pins match the committed files: an untouched copy loads as before."""
    copy = committed_copy(tmp_path, monkeypatch)
    key = json.loads((copy / "manifest.json").read_text())["checkpoints"][RTS]["key"]
    state, _metrics, path = checkpoints.load_checkpoint("rts", key)
    assert path == copy / RTS and state


def test_cache_entry_copied_from_a_checkpoint_is_compared_with_it(tmp_path):
    """A cache entry whose weights were replaced and whose manifest.json sha256 was rewritten to
    match is caught: it says it came from a committed checkpoint, and differs from it."""
    params = {"lr": 4}
    _, trained = publish(tmp_path, params)
    load = dict(root=tmp_path / "cache", checkpoints=tmp_path / "ckpt")
    first = artifacts.load_or_compute("tiny", params, tiny_training([]), **load)
    weights = first.path / artifacts.WEIGHTS
    torch.save({k: torch.zeros_like(v) for k, v in first.state.items()}, weights)
    (first.path / artifacts.MANIFEST).write_text(json.dumps({"weights_sha256": files.file_sha256(weights)}))
    calls = []
    with pytest.warns(artifacts.DamagedArtifactWarning, match="differs from the committed checkpoint"):
        again = artifacts.load_or_compute("tiny", params, tiny_training(calls), **load)
    assert calls == [] and again.origin == "checkpoint"
    assert all(torch.equal(again.state[k], trained.state[k]) for k in trained.state)


def test_cache_entry_without_manifest_is_re_verified_against_its_checkpoint(tmp_path, capfd):
    params = {"lr": 5}
    publish(tmp_path, params)
    load = dict(root=tmp_path / "cache", checkpoints=tmp_path / "ckpt")
    first = artifacts.load_or_compute("tiny", params, tiny_training([]), **load)
    (first.path / artifacts.MANIFEST).unlink()
    capfd.readouterr()
    calls = []
    again = artifacts.load_or_compute("tiny", params, tiny_training(calls), **load)
    assert calls == [] and again.origin == "cache" and (first.path / artifacts.MANIFEST).exists()
    err = capfd.readouterr().err
    assert "had no manifest.json; re-verified (equal to the committed checkpoint" in err


def test_cache_entry_of_a_damaged_checkpoint_is_refused_too(tmp_path):
    """The entry cannot be vouched for when the checkpoint it came from is damaged."""
    params = {"lr": 6}
    path, _ = publish(tmp_path, params)
    load = dict(root=tmp_path / "cache", checkpoints=tmp_path / "ckpt")
    artifacts.load_or_compute("tiny", params, tiny_training([]), **load)
    flip_a_byte(path)
    with pytest.raises(checkpoints.CheckpointDamaged, match="refused"):
        artifacts.load_or_compute("tiny", params, tiny_training([]), **load)


def test_a_shipped_cache_entry_loads_bit_for_bit_into_an_empty_cache(tmp_path):
    """`python -m adv2 checkpoint cached` ships what a run trained: once pinned, a reader's empty
    cache loads it without training, with the same state and metrics."""
    params = {"lr": 2, "iterations": 7}
    trained = artifacts.load_or_compute("tiny", params, tiny_training([], seed=3), root=tmp_path / "scratch")
    key = files.artifact_key(params)
    assert artifacts.ship_entry("tiny", "0" * 16, tmp_path / "scratch", tmp_path / "ckpt") is None
    path = artifacts.ship_entry("tiny", key, tmp_path / "scratch", tmp_path / "ckpt")
    assert path == tmp_path / "ckpt" / f"tiny-{key}.pt"
    checkpoint_pins.PINS[path.name] = files.file_sha256(path)
    calls = []
    art = artifacts.load_or_compute(
        "tiny", params, tiny_training(calls), root=tmp_path / "reader", checkpoints=tmp_path / "ckpt"
    )
    assert calls == [] and art.origin == "checkpoint"
    assert all(torch.equal(art.state[k], trained.state[k]) for k in trained.state)
    assert {k: v for k, v in art.metrics.items() if k != "checkpoint"} == trained.metrics


def test_a_damaged_cache_entry_is_not_shipped(tmp_path):
    params = {"lr": 2, "iterations": 8}
    trained = artifacts.load_or_compute("tiny", params, tiny_training([]), root=tmp_path / "scratch")
    weights = trained.path / artifacts.WEIGHTS
    weights.write_bytes(weights.read_bytes()[:-3])
    with pytest.raises(artifacts.ArtifactDamaged):
        artifacts.ship_entry("tiny", files.artifact_key(params), tmp_path / "scratch", tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists() or not list((tmp_path / "ckpt").glob("*.pt"))
