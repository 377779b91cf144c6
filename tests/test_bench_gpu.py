"""benchmarks/bench_gpu.py on a machine without a GPU: it says so and exits 0, its CPU smoke path
runs every attack, and the ResNet-50 it times is one CAM can read."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from standins import load_script

ROOT = Path(__file__).resolve().parents[1]


def _module():
    return load_script(ROOT / "benchmarks" / "bench_gpu.py")


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
    from adv2.core.classifier import freeze
    from adv2.core.models import small_resnet

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
    from adv2.core.interpreters import CAMInterpreter

    model = bench_gpu.resnet50(torch.device("cpu"))
    assert model.name == "resnet50" and model.head.in_features == 2048
    cam = CAMInterpreter(model)
    assert cam.map_size == 7  # at 224 px
    x = torch.rand(1, 3, 64, 64)
    logits, maps = cam.attribute_with_logits(x, torch.tensor([3]))
    assert logits.shape == (1, 1000) and maps.shape == (1, 1, 2, 2)
    assert torch.allclose(logits, model(x), atol=1e-4)


def _module_at(path: Path, name: str):
    return load_script(path, name)


GPU_REPORT = {
    "batch": 64,
    "input_size": 224,
    "date": "2026-12-02",
    "device": "cuda",
    "gpu": "NVIDIA H200",
    "results": {
        mode: {k: {"image_steps_per_s": v * f, "seconds_per_step": 64 / (v * f)} for k, v in rates.items()}
        for mode, f in (("bf16", 2.0), ("fp32", 1.0))
        for rates in [{"pgd": 1000.0, "cam": 990.0, "grad": 300.0}]
    },
    "bf16_speedup": {"pgd": 2.0, "cam": 2.0, "grad": 2.0},
}


def test_report_and_performance_page_read_bench_gpu(tmp_path, monkeypatch):
    report = _module_at(ROOT / "benchmarks" / "bench_report.py", "bench_report_gpu")
    ext = _module_at(ROOT / "book" / "_ext" / "bench_numbers.py", "bench_numbers_gpu")
    monkeypatch.setattr(ext, "ROOT", tmp_path)
    results = tmp_path / "results"
    results.mkdir()
    # missing file: "not measured" everywhere
    assert "not measured" in report.gpu_lines(results)[0]
    assert set(ext.gpu().values()) == {ext.MISSING}
    # a machine without CUDA: the reason is shown
    (results / "bench_gpu.json").write_text(json.dumps({"gpu": None, "reason": "no CUDA device"}))
    assert report.gpu_lines(results) == ["GPU (ResNet-50): not measured (no CUDA device)"]
    assert ext.gpu()["gpu_device"] == "not measured: no CUDA device"
    # measured
    (results / "bench_gpu.json").write_text(json.dumps(GPU_REPORT))
    lines = report.gpu_lines(results)
    assert "NVIDIA H200" in lines[0] and "batch 64" in lines[0]
    assert lines[1] == "  [bf16] PGD 2000.0, ADV2-CAM 1980.0, ADV2-GRAD 600.0"
    assert lines[-1] == "  bf16 speed-up over fp32: pgd 2.00x, cam 2.00x, grad 2.00x"
    subs = ext.gpu()
    assert subs["gpu_bf16_grad"] == "600" and subs["gpu_fp32_pgd"] == "1000"
    assert subs["gpu_device"] == "NVIDIA H200 (2026-12-02)" and subs["gpu_setup"] == "224 px, batch 64"
    page = (ROOT / "book" / "performance.md").read_text()
    assert all("{{ " + k + " }}" in page for k in subs)


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
