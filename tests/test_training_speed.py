"""Issue 13, item 3: faster training with the same objective (channels-last, one black-box pass,
jobs side by side), deterministic, and the training benchmark's smoke run."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from adv2.core import classifier, models, parallel
from adv2.core.interpreters.rts import RTSNet
from adv2.core.interpreters.rts_training import rts_loss, train_rts
from standins import load_script

ROOT = Path(__file__).resolve().parents[1]
NAMES = [str(i) for i in range(10)]


def _data(n: int = 96, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def _net(arch: str, seed: int = 0) -> classifier.ImageClassifier:
    with parallel.seeded(seed):
        return models.build_small_cnn(arch, 10, NAMES)


def _grads(model) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters()]


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-3) -> bool:
    """Equal up to float32 summation order: relative error of the whole tensor below ``tol``."""
    return float((a - b).norm()) <= tol * max(float(a.norm()), 1e-12)


@pytest.mark.parametrize("arch", ["resnet", "densenet"])
def test_channels_last_step_has_the_same_loss_and_gradients(arch):
    """Same loss; the gradient as close to the float64 one as the old code's, up to float32
    summation order (the DenseNet's BatchNorm-after-BatchNorm makes both roughly 1e-2 off)."""
    x, y = _data(32)
    old = _net(arch).train()
    new = models.channels_last(copy.deepcopy(old))
    ref = copy.deepcopy(old).double()
    assert new.stages[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    losses = [
        models.classifier_loss(m, xx, y)
        for m, xx in ((old, x), (new, x.contiguous(memory_format=torch.channels_last)), (ref, x.double()))
    ]
    for loss in losses:
        loss.backward()
    values = [float(loss.detach()) for loss in losses]
    assert abs(values[0] - values[1]) < 1e-5 and abs(values[2] - values[1]) < 1e-5

    def flat(m):
        return torch.cat([p.grad.double().flatten() for p in m.parameters()])

    g_ref = flat(ref)
    err_old = float((flat(old) - g_ref).norm() / g_ref.norm())
    err_new = float((flat(new) - g_ref).norm() / g_ref.norm())
    assert err_new <= 10 * err_old + 1e-3, (err_old, err_new)
    # and back: the default memory order for every other caller
    assert models.contiguous(new).stages[0][0].weight.is_contiguous()


def test_fast_training_matches_the_old_code_over_a_few_steps():
    x, y = _data(96)
    runs = {}
    for fast in (False, True):
        model = _net("resnet")
        m = models.train_classifier(
            model, x, y, x[:16], y[:16], epochs=1, batch_size=32, lr=5e-3, weight_decay=5e-4,
            seed=0, device=torch.device("cpu"), progress=False, fast=fast,
        )  # fmt: skip
        runs[fast] = (models.contiguous(model).state_dict(), m)
    (s_old, m_old), (s_new, m_new) = runs[False], runs[True]
    assert m_old["steps"] == m_new["steps"] == 3
    # Adam's normalised steps carry float32 differences along; they stay far below a step's size
    assert m_new["curve_train_loss"] == pytest.approx(m_old["curve_train_loss"], rel=5e-3)
    flat_old = torch.cat([v.double().flatten() for v in s_old.values()])
    flat_new = torch.cat([s_new[k].double().flatten() for k in s_old])
    start = torch.cat([v.double().flatten() for v in _net("resnet").state_dict().values()])
    moved, apart = float((flat_old - start).norm()), float((flat_new - flat_old).norm())
    assert apart < 0.05 * moved, (apart, moved)


def test_rts_loss_one_pass_is_the_two_pass_objective():
    model = classifier.freeze(_net("resnet"))
    torch.manual_seed(0)
    rts = RTSNet(model).train()
    x, y = _data(16)
    out = {}
    for one_pass in (False, True):
        rts.zero_grad(set_to_none=True)
        gen = torch.Generator().manual_seed(3)
        loss, parts = rts_loss(model, rts, x, y, generator=gen, one_pass=one_pass)
        loss.backward()
        out[one_pass] = (loss.detach(), parts, [p.grad.clone() for p in rts.decoder_parameters()])
    (l2, p2, g2), (l1, p1, g1) = out[False], out[True]
    assert torch.allclose(l1, l2, atol=1e-5)
    for key in ("destroyer", "preserver", "area", "smooth"):
        assert torch.allclose(p1[key], p2[key], atol=1e-5), key
    for a, b in zip(g1, g2):
        assert _close(a, b)


def _train_cls(seed: int):
    def job():
        x, y = _data(64)
        model = _net("resnet", seed)
        models.train_classifier(
            model, x, y, x[:8], y[:8], epochs=1, batch_size=32, lr=5e-3, weight_decay=5e-4,
            seed=seed, device=torch.device("cpu"), progress=False,
        )  # fmt: skip
        return models.contiguous(model).state_dict()

    return job


def _train_rts(seed: int):
    def job():
        x, y = _data(64)
        net, _ = train_rts(
            classifier.freeze(_net("resnet")), x, y, phase1_iterations=2, phase2_iterations=2,
            phase1_batch_size=16, batch_size=8, seed=seed, progress=False,
        )  # fmt: skip
        return net.state_dict()

    return job


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("make", [_train_cls, _train_rts], ids=["classifier", "rts"])
def test_same_seed_same_weights_alone_or_side_by_side(make):
    before = torch.get_num_threads()
    alone = [make(s)() for s in (0, 1)]
    side_by_side = parallel.run_concurrently([make(0), make(1)], concurrent=True)
    assert torch.get_num_threads() == before  # restored
    assert _same(alone[0], side_by_side[0]) and _same(alone[1], side_by_side[1])
    assert not _same(alone[0], alone[1])  # the seed matters


def test_run_concurrently_keeps_order_and_raises():
    assert parallel.run_concurrently([lambda: 1, lambda: 2, lambda: 3], concurrent=True) == [1, 2, 3]
    assert parallel.run_concurrently([lambda: 1], concurrent=True) == [1]

    def boom():
        raise RuntimeError("job failed")

    with pytest.raises(RuntimeError, match="job failed"):
        parallel.run_concurrently([lambda: 1, boom], concurrent=True)


def test_load_side_by_side_times_each_loader_and_runs_side_by_side_only_on_a_cpu(monkeypatch):
    import threading
    import time

    threads = []

    def loader(name: str, pause: float):
        def load():
            threads.append((name, threading.current_thread().name, torch.get_num_threads()))
            time.sleep(pause)
            return name, f"{name}-artifact"

        return load

    out = parallel.load_side_by_side([loader("a", 0.2), loader("b", 0.0)], "cpu")
    assert [o[:2] for o in out] == [("a", "a-artifact"), ("b", "b-artifact")]  # in order
    assert out[0][2] >= 0.2 > out[1][2]  # each loader's own seconds
    if parallel.cores() >= 2:  # side by side on a CPU, one intra-op thread each
        assert all(t.startswith("adv2-train") and n == 1 for _, t, n in threads)
    # an accelerator: one after the other
    asked = []

    def one_after_the_other(jobs, concurrent):
        asked.append(concurrent)
        return [job() for job in jobs]

    monkeypatch.setattr(parallel, "run_concurrently", one_after_the_other)
    assert [o[0] for o in parallel.load_side_by_side([loader("a", 0.0), loader("b", 0.0)], "cuda")] == [
        "a",
        "b",
    ]
    assert asked == [False]


@pytest.mark.slow
def test_bench_training_smoke(tmp_path):
    mod = load_script(ROOT / "benchmarks" / "bench_training.py")
    out = tmp_path / "bench_training.json"
    rep = mod.main(["--tiny", "--archs", "resnet", "--output", str(out)])
    assert json.loads(out.read_text())["target"] == 2.0
    for part in ("classifier", "rts"):
        pair = rep[part]["pair"]
        assert pair["old_images_per_s"] > 0 and pair["new_images_per_s"] > 0
        assert rep[part]["one_thread"]["resnet"]["old_images_per_cpu_s"] > 0
    assert rep["pass"] == (rep["speedup"] >= rep["target"])
    assert "other_jobs_cores" in rep


_module = load_script


def _training_report(speedup_cls=2.4, speedup_rts=1.8):
    def part(s):
        return {
            "pair": {"old_images_per_s": 100.0, "new_images_per_s": 100.0 * s, "speedup": s},
            "one_thread": {
                "resnet": {
                    "old_images_per_s": 50.0,
                    "new_images_per_s": 70.0,
                    "speedup": 1.4,
                    "cpu_speedup": 1.35,
                }
            },
        }

    s = min(speedup_cls, speedup_rts)
    return {
        "target": 2.0,
        "speedup": s,
        "pass": s >= 2.0,
        "other_jobs_cores": 0.1,
        "cpu_count": 2,
        "cores": 2,
        "date": "2026-12-02",
        "classifier": part(speedup_cls),
        "rts": part(speedup_rts),
        "accuracy": {"resnet": {"old": {"test_accuracy": 0.8788}, "new": {"test_accuracy": 0.878}}},
    }


def test_training_report_lines_and_page_numbers(tmp_path, monkeypatch):
    report = _module(ROOT / "benchmarks" / "bench_report.py", "bench_report")
    ext = _module(ROOT / "book" / "_ext" / "bench_numbers.py", "bench_numbers")
    monkeypatch.setattr(ext, "ROOT", tmp_path)
    (tmp_path / "results").mkdir()
    assert report.training_lines(tmp_path / "results")[0].endswith(
        "not measured (python benchmarks/bench_training.py)"
    )
    assert ext.training()["train_cls_speedup"] == ext.MISSING
    rep = _training_report()
    (tmp_path / "results" / "bench_training.json").write_text(json.dumps(rep))
    lines = report.training_lines(tmp_path / "results")
    assert any("training speedup 1.80x (target >= 2) FAIL" in line for line in lines)
    assert any("classifiers, both archs on 2 cores: 100 -> 240 images/s = 2.40x" in line for line in lines)
    subs = ext.training()
    assert subs["train_verdict"] == "1.80x (≥ 2: FAIL)"
    assert subs["train_acc_resnet"] == "0.8788 → 0.8780"
    assert subs["train_compile_resnet"] == ext.MISSING
    # 1.96 sqrt((.8788 .1212 + .878 .122) / 10000) = 0.0091: a difference of 0.0008 lies within it
    assert subs["train_acc_noise"] == "±0.0091" and subs["train_acc_verdict"].startswith("every difference")
    far = {"resnet": {"old": {"test_accuracy": 0.90}, "new": {"test_accuracy": 0.88, "n_test": 10000}}}
    assert ext._accuracy_noise(far)["train_acc_verdict"] == "the difference is larger for resnet (-0.0200)"
    comp = {"compile_seconds": 38.2, "saved_seconds_at_quick": -23.1}
    assert ext._compile_text(comp) == "38 s to compile, then 23 s lost"
    bad = dict(rep, speedup=2.5)
    with pytest.raises(ValueError, match="pass disagrees"):
        report.check_training(bad)
