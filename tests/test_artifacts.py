import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from adv2.trained import artifacts, files
from standins import small_tmpfs

LIB = Path(artifacts.__file__).resolve().parents[1]  # the adv2 under test, for subprocesses


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
    assert files.artifact_key({"a": 1, "b": 2}) == files.artifact_key({"b": 2, "a": 1})


def test_interrupted_compute_leaves_nothing_trusted(tmp_path):
    def killed():
        raise KeyboardInterrupt  # a run killed half-way

    with pytest.raises(KeyboardInterrupt):
        artifacts.load_or_compute("thing", {"lr": 3}, killed, root=tmp_path)
    kind_dir = tmp_path / "thing"  # only the key's lock file may remain
    assert not kind_dir.exists() or all(p.name.endswith(".lock") for p in kind_dir.iterdir())
    calls = []
    d = artifacts.load_or_compute("thing", {"lr": 3}, compute_factory(calls), root=tmp_path)
    assert len(calls) == 1 and not d.from_cache


def test_partial_folder_is_not_trusted(tmp_path):
    """A folder without its metrics.json (e.g. copied half-way) is recomputed."""
    folder = tmp_path / "thing" / files.artifact_key({"lr": 4})
    folder.mkdir(parents=True)
    torch.save({"w": torch.zeros(1)}, folder / artifacts.WEIGHTS)
    calls = []
    with pytest.warns(artifacts.DamagedArtifactWarning, match="params.json is missing"):
        e = artifacts.load_or_compute("thing", {"lr": 4}, compute_factory(calls), root=tmp_path)
    assert len(calls) == 1 and torch.equal(e.state["w"], torch.arange(3.0))


# ----------------------------------------------------------------------------- verified entries
def entry(tmp_path, params):
    return tmp_path / "thing" / files.artifact_key(params)


def cached(tmp_path, params, calls=None, **kw):
    calls = [] if calls is None else calls
    return artifacts.load_or_compute("thing", params, compute_factory(calls), root=tmp_path, **kw)


def quarantined(tmp_path):
    q = tmp_path / artifacts.QUARANTINE
    return sorted(q.iterdir()) if q.exists() else []


def test_entry_records_weights_checksum(tmp_path):
    a = cached(tmp_path, {"lr": 5})
    manifest = json.loads((a.path / artifacts.MANIFEST).read_text())
    assert manifest["weights_sha256"] == files.file_sha256(a.path / artifacts.WEIGHTS)
    assert (a.path.stat().st_mode & 0o777) == 0o755  # not mkdtemp's 0700


def _random_tensors(path):
    # issue 11 item 1: a valid file with other numbers used to be trusted
    torch.save({"w": torch.randn(3)}, path)


def _truncate(path):
    path.write_bytes(path.read_bytes()[:20])


def _garbage(path):
    path.write_bytes(b"\x80\x02]q\x00" + bytes(range(50)))  # torch.load: IndexError / Unpickling


def _empty(path):
    path.write_bytes(b"")


def _delete(path):
    path.unlink()


@pytest.mark.parametrize(
    "damage, reason",
    [
        (_random_tensors, "sha256"),
        (_truncate, "sha256"),
        (_garbage, "sha256"),
        (_empty, "sha256"),
        (_delete, "missing"),
    ],
)
def test_damaged_weights_are_quarantined_and_recomputed(tmp_path, damage, reason):
    params = {"lr": 6}
    folder = cached(tmp_path, params).path
    damage(folder / artifacts.WEIGHTS)
    calls = []
    with pytest.warns(artifacts.DamagedArtifactWarning, match=reason) as record:
        again = cached(tmp_path, params, calls)
    assert len(calls) == 1 and not again.from_cache
    assert torch.equal(again.state["w"], torch.arange(3.0))
    (moved,) = quarantined(tmp_path)
    assert moved.name.startswith(f"thing-{folder.name}-")
    message = str(record[0].message)
    assert str(folder) in message and str(moved) in message  # names the bad folder and its new place
    assert cached(tmp_path, params, calls).from_cache and len(calls) == 1  # rebuilt entry is good


@pytest.mark.parametrize("damage", [_truncate, _garbage, _random_tensors])
def test_legacy_entry_without_checksum_damaged_is_caught_by_load_or_check(tmp_path, damage):
    """Without a manifest, unreadable weights are still caught by torch.load, other numbers of
    another shape by ``check``."""
    params = {"lr": 7}
    folder = cached(tmp_path, params).path
    (folder / artifacts.MANIFEST).unlink()
    damage(folder / artifacts.WEIGHTS)

    def check(state):
        if state["w"].shape != (3,) or not torch.equal(state["w"], torch.arange(3.0)):
            raise ValueError("not the trained weights")

    calls = []
    with pytest.warns(artifacts.DamagedArtifactWarning):
        cached(tmp_path, params, calls, check=check)
    assert len(calls) == 1 and len(quarantined(tmp_path)) == 1


def remeasure(state, metrics):
    """A stand-in for a classifier's re-measured accuracy: what the weights give, checked against
    what metrics.json says."""
    measured = float(state["w"].sum()) / 6  # 0.5 for the weights compute_factory writes
    if abs(measured - metrics["accuracy"]) > 0.05:
        raise ValueError(f"re-measured accuracy {measured:.3f}, metrics.json says {metrics['accuracy']}")
    return {"remeasured_accuracy": measured}


def test_legacy_entry_is_kept_and_gets_a_checksum(tmp_path):
    """Entries cached before checksums existed stay usable when re-verified (since issue 24: by
    the caller's ``verify``); the checksum is added on first load."""
    params = {"lr": 8}
    folder = cached(tmp_path, params).path
    (folder / artifacts.MANIFEST).unlink()
    calls = []
    b = cached(tmp_path, params, calls, verify=remeasure)
    assert b.from_cache and not calls
    manifest = json.loads((folder / artifacts.MANIFEST).read_text())
    assert manifest["weights_sha256"] == files.file_sha256(folder / artifacts.WEIGHTS)
    _random_tensors(folder / artifacts.WEIGHTS)  # from now on a change is caught
    with pytest.warns(artifacts.DamagedArtifactWarning, match="sha256"):
        assert not cached(tmp_path, params, calls).from_cache


def test_entry_without_manifest_and_nothing_to_verify_is_recomputed_and_told(tmp_path, capfd):
    """Issue 24: an entry whose manifest.json was deleted was adopted as "legacy" without a word."""
    params = {"lr": 12}
    folder = cached(tmp_path, params).path
    torch.save({"w": torch.arange(3.0) + 1}, folder / artifacts.WEIGHTS)  # other weights
    (folder / artifacts.MANIFEST).unlink()
    capfd.readouterr()
    calls = []
    with pytest.warns(artifacts.DamagedArtifactWarning, match="manifest.json is missing"):
        again = cached(tmp_path, params, calls)
    assert len(calls) == 1 and not again.from_cache and torch.equal(again.state["w"], torch.arange(3.0))
    assert "damaged cache entry set aside" in again.note and len(quarantined(tmp_path)) == 1
    (line,) = [x for x in capfd.readouterr().err.splitlines() if x.startswith("[adv2]")]
    assert str(folder) in line and "manifest.json is missing" in line and "recomputing" in line


def test_entry_without_manifest_is_re_verified_or_recomputed(tmp_path, capfd):
    params = {"lr": 13}
    folder = cached(tmp_path, params).path
    (folder / artifacts.MANIFEST).unlink()
    capfd.readouterr()
    kept = cached(tmp_path, params, verify=remeasure)
    assert kept.from_cache and kept.metrics["remeasured_accuracy"] == 0.5
    assert "re-verified (re-measured: remeasured_accuracy 0.5); checksum recorded" in capfd.readouterr().err
    assert "remeasured_accuracy" not in json.loads((folder / "metrics.json").read_text())  # not saved
    # the same entry with other weights: the re-measurement disagrees, the entry is recomputed
    torch.save({"w": torch.zeros(3)}, folder / artifacts.WEIGHTS)
    (folder / artifacts.MANIFEST).unlink()
    calls = []
    with pytest.warns(
        artifacts.DamagedArtifactWarning, match="re-verification failed.*metrics.json says 0.5"
    ):
        again = cached(tmp_path, params, calls, verify=remeasure)
    assert len(calls) == 1 and not again.from_cache


def test_weights_with_a_rewritten_checksum_are_caught_by_verify(tmp_path, capfd):
    """Issue 24: a cache entry whose weights were replaced and whose weights_sha256 was rewritten
    to match passes the checksum; the re-measurement on every load catches it."""
    params = {"lr": 14}
    folder = cached(tmp_path, params).path
    torch.save({"w": torch.zeros(3)}, folder / artifacts.WEIGHTS)
    (folder / artifacts.MANIFEST).write_text(
        json.dumps({"weights_sha256": files.file_sha256(folder / artifacts.WEIGHTS), "format": 1})
    )
    assert cached(tmp_path, params).from_cache  # the checksum alone cannot tell
    capfd.readouterr()
    calls = []
    with pytest.warns(artifacts.DamagedArtifactWarning, match="re-verification failed"):
        again = cached(tmp_path, params, calls, verify=remeasure)
    assert len(calls) == 1 and torch.equal(again.state["w"], torch.arange(3.0))
    assert "[adv2] damaged cache entry" in capfd.readouterr().err


def test_weights_of_another_architecture_fail_the_check(tmp_path):
    """``check`` loads the state into the architecture; a mismatch quarantines the entry."""
    params = {"arch": "a"}
    other = torch.nn.Linear(4, 2).state_dict()
    artifacts.load_or_compute("thing", params, lambda: (other, {}), root=tmp_path)
    want = torch.nn.Linear(3, 2)

    def compute():
        return want.state_dict(), {}

    with pytest.warns(artifacts.DamagedArtifactWarning, match="size mismatch"):
        a = artifacts.load_or_compute(
            "thing", params, compute, root=tmp_path, check=torch.nn.Linear(3, 2).load_state_dict
        )
    assert not a.from_cache and a.state["weight"].shape == (2, 3)


@pytest.mark.parametrize(
    "name, text",
    [
        ("metrics.json", "{not json"),
        ("params.json", "[1, 2"),
        ("metrics.json", "[1, 2]"),
        ("manifest.json", "\x00\x01"),
        ("params.json", '{"lr": 99}'),
    ],
)
def test_bad_json_is_quarantined(tmp_path, name, text):
    params = {"lr": 9}
    folder = cached(tmp_path, params).path
    (folder / name).write_text(text)
    calls = []
    with pytest.warns(artifacts.DamagedArtifactWarning, match=name):
        again = cached(tmp_path, params, calls)
    assert len(calls) == 1 and again.metrics == {"accuracy": 0.5}
    assert (quarantined(tmp_path)[0] / name).read_text() == text  # kept for inspection


def test_force_replaces_an_entry(tmp_path):
    calls = []
    cached(tmp_path, {"lr": 10}, calls)
    b = cached(tmp_path, {"lr": 10}, calls, force=True)
    assert len(calls) == 2 and not b.from_cache and cached(tmp_path, {"lr": 10}, calls).from_cache
    assert not quarantined(tmp_path)
    assert [p.name for p in (tmp_path / "thing").iterdir() if not p.name.endswith(".lock")] == [b.path.name]


def test_leftover_temporary_folders_of_a_killed_run_are_cleared(tmp_path):
    key = files.artifact_key({"lr": 11})
    (tmp_path / "thing" / f".tmp-{key}-abc").mkdir(parents=True)
    cached(tmp_path, {"lr": 11})
    assert not list((tmp_path / "thing").glob(".tmp-*"))


# ----------------------------------------------------------------------------- concurrency
WORKER = r"""
import json, os, sys, time
import torch
from adv2.trained import artifacts

root, counter = sys.argv[1], sys.argv[2]

def compute():
    with open(counter, "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(1.5)  # long enough that every other process asks while this one computes
    return {"w": torch.arange(5.0) * 7}, {"pid": os.getpid()}

a = artifacts.load_or_compute("shared", {"n": 1}, compute, root=root)
print(json.dumps({"w": a.state["w"].tolist(), "pid": a.metrics["pid"], "cache": a.from_cache}))
"""


@pytest.mark.slow  # real subprocesses: in `make test`, not in `make test-fast`
def test_four_processes_one_new_key_compute_once(tmp_path):
    """Issue 11 item 3: several runs on one new key used to crash (Directory not empty)."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    counter = tmp_path / "computed.txt"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(LIB)] + sys.path), OMP_NUM_THREADS="1")
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "cache"), str(counter)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    got = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert len(counter.read_text().split()) == 1  # computed once
    assert all(g["w"] == [0.0, 7.0, 14.0, 21.0, 28.0] for g in got)
    assert len({g["pid"] for g in got}) == 1  # everyone has the one computation
    assert sum(not g["cache"] for g in got) == 1


# ----------------------------------------------------------------------------- disk full
@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"),
    ],
)
def test_disk_full_while_saving_is_reported_and_leaves_nothing(tmp_path, monkeypatch, error):
    def full(*args, **kwargs):
        raise error

    monkeypatch.setattr(artifacts.torch, "save", full)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10, 10, 0))
    with pytest.raises(OSError, match="no space left under .*thing while writing") as err:
        cached(tmp_path, {"lr": 12})
    assert err.value.errno == errno.ENOSPC
    assert not [p for p in (tmp_path / "thing").iterdir() if not p.name.endswith(".lock")]


def test_other_save_errors_are_not_called_disk_full(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setattr(artifacts.torch, "save", broken)  # plenty of free space under tmp_path
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(2**40, 0, 2**40))
    with pytest.raises(RuntimeError, match="unexpected pos"):
        cached(tmp_path, {"lr": 13})


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (needs root and mount rights; skipped otherwise)."""
    with small_tmpfs(tmp_path / "small", "1m") as mnt:
        yield mnt


def test_real_full_disk(small_disk):
    def big():
        return {"w": torch.zeros(2_000_000)}, {}  # 8 MB on a 1 MiB disk

    with pytest.raises(OSError, match=f"no space left under {small_disk}"):
        artifacts.load_or_compute("thing", {"big": 1}, big, root=small_disk)
    assert not [p for p in (small_disk / "thing").iterdir() if not p.name.endswith(".lock")]
    small = artifacts.load_or_compute("thing", {"small": 1}, compute_factory([]), root=small_disk)
    assert (
        artifacts.load_or_compute("thing", {"small": 1}, compute_factory([]), root=small_disk).from_cache
        and small.path.is_dir()
    )


KILLED = r"""
import os, sys, time
import torch
from adv2.trained import artifacts

root, marker = sys.argv[1], sys.argv[2]

def compute():
    open(marker, "w").close()
    time.sleep(120)  # killed here
    return {"w": torch.zeros(1)}, {}

artifacts.load_or_compute("shared", {"n": 2}, compute, root=root)
"""


@pytest.mark.slow  # real subprocesses: in `make test`, not in `make test-fast`
def test_kill_9_while_computing_leaves_no_stuck_lock(tmp_path):
    """A run killed with SIGKILL while holding the key's lock: the next run is not blocked (the
    kernel drops flock locks with the process) and computes the artifact."""
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    marker = tmp_path / "started"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(LIB)] + sys.path), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "cache"), str(marker)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the worker never started computing"
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    calls = []
    t0 = time.monotonic()
    a = artifacts.load_or_compute("shared", {"n": 2}, compute_factory(calls), root=tmp_path / "cache")
    assert len(calls) == 1 and not a.from_cache and time.monotonic() - t0 < 30


# ----------------------------------------------------------------------------- the terminal
KERNEL_CELL = r"""
import torch
from adv2.trained import artifacts
root = {root!r}
compute = lambda: ({{"w": torch.arange(3.0)}}, {{"accuracy": 0.5}})
folder = artifacts.load_or_compute("thing", {{"lr": 1}}, compute, root=root).path
(folder / artifacts.MANIFEST).unlink()  # a damaged entry: recomputed, with a line on fd 2
artifacts.load_or_compute("thing", {{"lr": 1}}, compute, root=root)
"""


@pytest.mark.slow
def test_a_damaged_entry_inside_a_notebook_is_told_on_the_runners_terminal(tmp_path):
    """Issue 24 item 4: the line reaches the stderr of the process that runs the notebook (the
    terminal of ``python -m adv2 run``), not only the notebook, where ``sys.stderr`` goes."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(KERNEL_CELL.format(root=str(tmp_path / "cache")))]
    nbformat.write(nb, tmp_path / "in.ipynb")
    script = (
        "import papermill; papermill.execute_notebook("
        f"{str(tmp_path / 'in.ipynb')!r}, {str(tmp_path / 'out.ipynb')!r}, kernel_name='python3', progress_bar=False)"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(LIB)] + sys.path), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [x for x in done.stderr.splitlines() if x.startswith("[adv2] damaged cache entry")]
    assert len(lines) == 1 and "manifest.json is missing" in lines[0] and "recomputing" in lines[0]
