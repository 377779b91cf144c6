"""bf16 autocast for the forward passes, fp32 for losses, maps and metrics (adv2.core.precision).

CI has no GPU, so the CUDA mode is checked on the CPU: ``ADV2_PRECISION=bf16`` turns on the same
``torch.autocast(dtype=torch.bfloat16)`` there. The default on the CPU must leave every result
bitwise as it was (no autocast at all)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from adv2.core import attacks, precision
from adv2.core.classifier import freeze
from adv2.core.interpreters import CAMInterpreter, GradInterpreter, MaskInterpreter, RTSInterpreter, RTSNet
from adv2.core.models import build_small_cnn
from standins import naive_pgd

NAMES = [str(i) for i in range(10)]
KINDS = ("pgd", "cam", "grad", "rts", "mask")


def tiny_setup(seed: int = 3, n: int = 3):
    """A random Fashion-MNIST-sized ResNet and a batch with target classes."""
    torch.manual_seed(seed)
    model = freeze(build_small_cnn("resnet", 10, NAMES))
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.rand(n, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    return model, x, y, (y + 1 + torch.randint(0, 9, (n,), generator=gen)) % 10


def interpreter_for(kind: str, model: nn.Module):
    if kind == "cam":
        return CAMInterpreter(model)
    if kind == "grad":
        return GradInterpreter(model)
    if kind == "rts":
        torch.manual_seed(0)
        return RTSInterpreter(model, RTSNet(model))  # untrained decoder: a differentiable map
    return MaskInterpreter(model, iterations=4)


def tiny_config(kind: str, **kw):
    """A few steps of each schedule (stage 1 + joint stage)."""
    if kind == "mask":
        base = dict(stage1_steps=2, stage2_steps=2, resolve_every=1, track_steps=1, unroll_steps=1)
        base.update(bisection_steps=2)
        return attacks.default_config("mask").__class__(**{**base, **kw})
    base = dict(epsilon=0.1, step_size=0.02, stage1_steps=2, stage2_steps=3)
    if kind == "grad":  # its phases set the joint stage's length
        base.update(select_every=2, phase_steps=(3,), phase_lams=(0.01,))
    return attacks.default_config(kind).__class__(**{**base, **kw})


def run_attack(kind: str, model, x, y, t, interp=None, interp_loss=None, **cfg):
    if kind == "pgd":
        x_adv = attacks.pgd(model, x, t, epsilon=0.1, step_size=0.02, steps=3, **cfg)
        return attacks.assess(model, x_adv, t)
    interp = interp or interpreter_for(kind, model)
    return attacks.adv2_attack(
        model, interp, x, y, t, config=tiny_config(kind, **cfg), interp_loss=interp_loss
    )


# ----------------------------------------------------------------------------- the mode
def test_modes_and_devices(monkeypatch):
    monkeypatch.delenv(precision.ENV, raising=False)
    assert precision.autocast_dtype("cpu") is None  # the CPU default: no autocast
    assert precision.autocast_dtype("cuda") is torch.bfloat16  # the CUDA default (no GPU needed)
    assert precision.autocast_dtype(torch.zeros(1)) is None
    assert precision.autocast_dtype("cuda", "fp32") is None
    assert precision.autocast_dtype("cpu", "bf16") is torch.bfloat16
    monkeypatch.setenv(precision.ENV, "bf16")
    assert precision.autocast_dtype("cpu") is torch.bfloat16
    assert precision.autocast_dtype("cpu", "auto") is None  # the argument wins over the variable
    monkeypatch.setenv(precision.ENV, "half")
    with pytest.raises(ValueError, match=r"ADV2_PRECISION has value 'half'.*'auto', 'bf16', 'fp32'"):
        precision.forward_precision("cpu")
    with pytest.raises(ValueError, match="precision has value 'fp16'"):
        precision.forward_precision("cpu", "fp16")


def test_fp32_casts_only_what_needs_it():
    t = torch.ones(2)
    assert precision.fp32(t) is t  # fp32 runs are untouched
    assert precision.fp32(None) is None
    assert precision.fp32(torch.ones(2, dtype=torch.long)).dtype == torch.long
    assert precision.fp32(t.bfloat16()).dtype == torch.float32


def test_forward_precision_autocasts_convolutions():
    conv = nn.Conv2d(1, 2, 3)
    x = torch.rand(1, 1, 5, 5)
    with precision.forward_precision("cpu", "bf16"):
        assert conv(x).dtype == torch.bfloat16
        with precision.full_precision("cpu"):
            assert conv(x).dtype == torch.float32
    with precision.forward_precision("cpu"):
        assert conv(x).dtype == torch.float32


# ----------------------------------------------------------------------------- (a) forced bf16
@pytest.mark.parametrize("kind", KINDS)
def test_forced_bf16_forwards_fp32_losses_maps_and_metrics(kind, monkeypatch):
    monkeypatch.setenv(precision.ENV, "bf16")
    model, x, y, t = tiny_setup()
    interp = None if kind == "pgd" else interpreter_for(kind, model)  # (its dummy shape pass)
    conv_dtypes: set[torch.dtype] = set()
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: conv_dtypes.add(out.dtype))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    loss_dtypes: set[torch.dtype] = set()
    map_dtypes: set[torch.dtype] = set()

    def recording_loss(maps, benign):  # the map loss the attack minimises
        map_dtypes.add(maps.dtype)
        out = (maps - benign).pow(2).flatten(1).sum(1)
        loss_dtypes.add(out.dtype)
        return out

    prediction_dtypes: set[torch.dtype] = set()
    pgd_module = sys.modules["adv2.core.attacks.pgd"]
    real = pgd_module.prediction_loss

    def recording_prediction(kind_, logits, target):
        prediction_dtypes.add(logits.dtype)
        return real(kind_, logits, target)

    monkeypatch.setattr(pgd_module, "prediction_loss", recording_prediction)
    try:
        res = run_attack(kind, model, x, y, t, interp, None if kind == "pgd" else recording_loss)
    finally:
        for h in hooks:
            h.remove()
    assert conv_dtypes == {torch.bfloat16}, "every convolution of the classifier runs in bf16"
    if kind != "mask":  # MASK's stage 1 is a margin PGD too
        assert prediction_dtypes == {torch.float32}, "the prediction loss reads fp32 logits"
    if kind != "pgd":
        assert map_dtypes == {torch.float32}, "the map loss compares fp32 maps"
        assert loss_dtypes == {torch.float32}
        assert res.maps.dtype == torch.float32
        assert torch.isfinite(res.maps).all()
    assert res.x_adv.dtype == torch.float32
    assert res.confidence.dtype == torch.float32
    assert res.success.dtype == torch.bool


def test_forced_bf16_interpreter_maps_are_fp32(monkeypatch):
    monkeypatch.setenv(precision.ENV, "bf16")
    model, x, y, _ = tiny_setup()
    for kind in ("cam", "grad", "rts", "mask"):
        maps = interpreter_for(kind, model)(x, y)
        assert maps.dtype == torch.float32, kind
        assert torch.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1, kind


# ----------------------------------------------------------------------------- (b) CPU unchanged


def test_default_cpu_pgd_is_bitwise_the_fp32_loop(monkeypatch):
    monkeypatch.delenv(precision.ENV, raising=False)
    model, x, _, t = tiny_setup()
    ours = attacks.pgd(model, x, t, epsilon=0.1, step_size=0.02, steps=3)
    assert torch.equal(ours, naive_pgd(model, x, t, 0.1, 0.02, 3))


@pytest.mark.parametrize("kind", KINDS)
def test_default_cpu_path_is_unchanged(kind, monkeypatch):
    """auto on the CPU = no autocast: bitwise the fp32 results; bf16 really is another path."""
    model, x, y, t = tiny_setup()
    modes = ("auto", "fp32", "bf16") if kind in ("pgd", "cam") else ("auto", "fp32")
    results = {}
    for mode in modes:
        monkeypatch.setenv(precision.ENV, mode)
        results[mode] = run_attack(kind, model, x, y, t)
    auto, full = results["auto"], results["fp32"]
    assert torch.equal(auto.x_adv, full.x_adv)
    assert torch.equal(auto.confidence, full.confidence)
    if kind != "pgd":
        assert torch.equal(auto.maps, full.maps)
    if "bf16" in results:  # and the switch is real: bf16 forwards give other numbers
        assert not torch.equal(auto.confidence, results["bf16"].confidence)


# ----------------------------------------------------------------------------- where a run goes
def test_runner_says_where_the_book_runs(monkeypatch):
    from adv2.book import runner
    from adv2.core.config import AUTO_PROFILE_CPU

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runner.resolve_profile("auto") == AUTO_PROFILE_CPU  # `make book` on a CPU machine
    assert runner.device_note("quick") == "CPU (no CUDA device)"
    assert "meant for a GPU" in runner.device_note("paper")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA H200")
    assert runner.resolve_profile("auto") == "paper"  # `make book` on a GPU machine: the paper's budgets
    monkeypatch.delenv(precision.ENV, raising=False)
    assert (
        runner.device_note("paper") == "CUDA (NVIDIA H200; bf16 autocast forwards, fp32 losses and metrics)"
    )
    monkeypatch.setenv(precision.ENV, "fp32")
    assert runner.device_note("paper") == "CUDA (NVIDIA H200; fp32)"


def test_profiles_leave_the_device_to_auto():
    """Nothing forces the CPU: every profile a GPU machine runs says ``device: auto``, which picks
    CUDA when present (adv2.core.config.resolve_device)."""
    import yaml

    from adv2.core import config

    root = Path(__file__).resolve().parents[1]
    for name in ("quick", "full", "paper", "imagenet"):
        data = yaml.safe_load((root / "params" / f"{name}.yaml").read_text())
        devices = {data["common"].get("device")} | {
            (v or {}).get("device") for k, v in data.items() if k != "common" and isinstance(v, dict)
        }
        assert devices <= {"auto", None}, (name, devices)
    assert config.resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
