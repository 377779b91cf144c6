"""benchmarks/bench_gpu.py on a machine without a GPU: it says so and exits 0, its CPU smoke path
runs every attack, and the ResNet-50 it times is one CAM can read."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "benchmarks" / "bench_gpu.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_gpu"] = mod
    spec.loader.exec_module(mod)
    return mod


bench_gpu = _module()


def test_without_cuda_it_writes_null_and_exits_0(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "bench_gpu.json"
    t0 = time.time()
    report = bench_gpu.main(["--output", str(out)])
    assert time.time() - t0 < 5
    saved = json.loads(out.read_text())
    assert saved == report
    assert saved["gpu"] is None and "no CUDA device" in saved["reason"]
    assert "results" not in saved


def test_asking_for_cuda_without_one_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit):
        bench_gpu.main(["--device", "cuda", "--output", str(tmp_path / "x.json")])
    with pytest.raises(SystemExit):
        bench_gpu.main(["--device", "cpu", "--batch", "0", "--output", str(tmp_path / "x.json")])


def test_cpu_smoke_run_times_every_attack(tmp_path, monkeypatch):
    """The whole measuring path on a tiny 3-channel stand-in (ResNet-50 itself is the next test)."""
    from adv2.models import freeze, small_resnet

    def tiny(device):
        torch.manual_seed(0)
        net = small_resnet(1000, [str(i) for i in range(1000)], in_channels=3, width=4)
        net.in_channels = 3
        return freeze(net).to(device)

    monkeypatch.setattr(bench_gpu, "resnet50", tiny)
    out = tmp_path / "bench_gpu.json"
    args = ["--device", "cpu", "--batch", "2", "--steps", "2", "--size", "28", "--repeats", "1"]
    report = bench_gpu.main([*args, "--output", str(out)])
    assert json.loads(out.read_text()) == report
    assert report["gpu"] is None and report["device"] == "cpu"
    assert set(report["results"]) == {"fp32"}
    for kind in bench_gpu.ATTACKS:
        r = report["results"]["fp32"][kind]
        assert r["image_steps_per_s"] > 0
        assert r["image_steps_per_s"] == pytest.approx(2 / r["seconds_per_step"])


@pytest.mark.slow
def test_resnet50_random_weights_works_with_cam():
    """torchvision's ResNet-50, no download, wrapped so that CAM reads its last stage."""
    from adv2.interpreters import CAMInterpreter

    model = bench_gpu.resnet50(torch.device("cpu"))
    assert model.name == "resnet50" and model.head.in_features == 2048
    cam = CAMInterpreter(model)
    assert cam.map_size == 7  # at 224 px
    x = torch.rand(1, 3, 64, 64)
    logits, maps = cam.attribute_with_logits(x, torch.tensor([3]))
    assert logits.shape == (1, 1000) and maps.shape == (1, 1, 2, 2)
    assert torch.allclose(logits, model(x), atol=1e-4)


def test_make_bench_runs_it():
    makefile = (ROOT / "Makefile").read_text()
    bench = makefile.split("\nbench:")[1].split("\n\n")[0]
    assert "benchmarks/bench_gpu.py" in bench


@pytest.mark.slow
def test_script_runs_as_a_command(tmp_path):
    out = tmp_path / "g.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT / "lib"), "CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["gpu"] is None
