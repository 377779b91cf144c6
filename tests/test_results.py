import errno
import json
import os

import pytest
import torch

from adv2.chapters import results
from adv2.trained import files
from standins import small_tmpfs


def test_save_results_mode_0644_and_no_temporary_left(tmp_path):
    """Issue 11 item 7: results files were written 0600 (mkstemp's mode)."""
    path = results.save_results(
        "01_x", {"acc": torch.tensor(0.5), "nan": float("nan")}, {"seed": 0}, tmp_path
    )
    assert path == tmp_path / "01_x.json" and (path.stat().st_mode & 0o777) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["01_x.json"]
    payload = results.read_json(path)
    assert payload["numbers"] == {"acc": 0.5, "nan": None} and payload["params"] == {"seed": 0}


def test_atomic_write_text_replaces_whole_file(tmp_path):
    path = tmp_path / "sub" / "t.json"
    assert files.atomic_write_text(path, "old") == path
    os.chmod(path, 0o600)
    files.atomic_write_text(path, "new text")
    assert path.read_text() == "new text" and (path.stat().st_mode & 0o777) == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["t.json"]


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "t.json"
    files.atomic_write_text(path, "old")

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        files.atomic_write_text(path, "half")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["t.json"]


def test_disk_full_is_named(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(
        files.DiskFull, match=f"no space left under {tmp_path} while writing 03_adv2.json"
    ) as err:
        results.save_results("03_adv2", {"a": 1}, {}, tmp_path)
    assert err.value.errno == errno.ENOSPC and not list(tmp_path.iterdir())


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs (needs root and mount rights; skipped otherwise)."""
    with small_tmpfs(tmp_path / "small", "64k") as mnt:
        yield mnt


def test_real_full_disk(small_disk):
    files.atomic_write_text(small_disk / "keep.json", '{"a": 1}')
    with pytest.raises(OSError, match=f"no space left under {small_disk} while writing big.json"):
        files.atomic_write_text(small_disk / "big.json", "x" * 200_000)
    assert sorted(p.name for p in small_disk.iterdir()) == ["keep.json"]
    assert results.read_json(small_disk / "keep.json") == {"a": 1}


@pytest.mark.parametrize("text", ['{"numbers": {"a": ', "", "\xff\xfe"])
def test_corrupt_results_file_is_named(tmp_path, text):
    """Issue 11 item 7: another chapter's corrupt results file ended the run with a raw
    JSONDecodeError."""
    path = tmp_path / "02_y.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(results.CorruptFile) as err:
        results.read_json(path)
    assert str(path) in str(err.value) and err.value.path == path
    assert isinstance(err.value, ValueError)


def test_set_aside_keeps_the_corrupt_file(tmp_path):
    path = tmp_path / "timings-quick.json"
    path.write_text("{broken")
    with pytest.raises(results.CorruptFile, match="timings-quick.json"):
        results.read_json(path)
    first = files.set_aside(path)
    assert not path.exists() and first.read_text() == "{broken"
    assert first.name.startswith("timings-quick.json.corrupt-")
    path.write_text("{again")
    second = files.set_aside(path)  # same second: a new name, nothing overwritten
    assert second != first and first.exists() and second.read_text() == "{again"
    files.atomic_write_text(path, json.dumps({"rebuilt": True}))
    assert results.read_json(path) == {"rebuilt": True}


def test_is_disk_full():
    assert files.is_disk_full(OSError(errno.ENOSPC, "x"))
    assert files.is_disk_full(OSError(errno.EDQUOT, "x"))
    assert not files.is_disk_full(OSError(errno.EACCES, "x"))
    assert not files.is_disk_full(ValueError("enforce fail"))


def test_glued_numbers_read_at_three_significant_digits(monkeypatch):
    """Issue 26 item 5: glued values printed "20.288 s" and "alpha = 0.00392157"; every glued float
    now reads as the book's one number format (adv2.core.formatting.fmt) writes it."""
    import myst_nb

    from adv2.core.formatting import fmt

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: glued.setdefault(name, value))
    numbers = {
        "seconds": 20.288,
        "alpha": 1 / 255,
        "ratio": 16.0,
        "n": 10655,
        "word": "holds",
        "none": None,
        "nan": float("nan"),
        "d": {"x-y": torch.tensor(0.123456)},
    }
    results.glue_numbers(numbers, "chX_")
    assert glued == {
        "chX_seconds": "20.3",
        "chX_alpha": "0.00392",
        "chX_ratio": "16.0",
        "chX_n": 10655,
        "chX_word": "holds",
        "chX_none": "—",
        "chX_nan": "—",
        "chX_d_x_y": "0.123",
    }
    assert all(glued[k] == fmt(v) for k, v in (("chX_seconds", 20.288), ("chX_alpha", 1 / 255)))
