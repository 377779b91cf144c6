"""Tests of the AID defense (adv2.core.defenses) and the noise-sensitivity tools (adv2.core.noise).

All models here are tiny and untrained or closed-form, so the file runs in well under a minute on
one CPU thread and needs no dataset.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from adv2.chapters import aid_eval
from adv2.core import defenses, noise, paper
from adv2.core.classifier import freeze
from adv2.core.interpreters.rts import RTSNet
from adv2.core.metrics import l1_distance
from adv2.core.models import build_small_cnn
from adv2.trained import cached, loading, recipes

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- helpers
class Prototype(torch.nn.Module):
    """Nearest-prototype classifier (logits = -squared distance): a small closed-form model."""

    def __init__(self, prototypes: torch.Tensor):
        super().__init__()
        self.register_buffer("p", prototypes.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -torch.cdist(x.flatten(1), self.p).pow(2)


def prototype_problem(n: int = 400, classes: int = 10, side: int = 8, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    protos = torch.rand(classes, 1, side, side, generator=gen)
    y = torch.randint(0, classes, (n,), generator=gen)
    x = (protos[y] + 0.15 * torch.randn(n, 1, side, side, generator=gen)).clamp(0, 1)
    return Prototype(protos), x, y


@pytest.fixture(scope="module")
def tiny_rts():
    torch.manual_seed(0)
    model = freeze(build_small_cnn("resnet", 10, [str(i) for i in range(10)]))
    rts = RTSNet(model).eval().requires_grad_(False)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(96, 1, 28, 28, generator=gen)
    y = model(x).argmax(1)  # labels the classifier agrees with
    return model, rts, x, y


# ----------------------------------------------------------------------------- noise calibration
@pytest.mark.parametrize("kind", noise.NOISE_TYPES)
def test_calibration_reaches_target_rates_within_tolerance(kind):
    model, x, y = prototype_problem()
    x, y, _ = noise.correctly_classified(model, x, y)
    assert len(x) > 300
    tol = 0.01
    search = noise.NoiseSearch(rates=(0.0, 0.03, 0.3), tolerance=tol, seed=0)
    cals, draws = noise.calibrate_levels(model, x, y, search, kinds=[kind])
    got = cals[kind]
    for rate in (0.03, 0.3):
        c = got[rate]
        assert c.within_tolerance, c
        assert abs(c.rate - rate) <= tol + 1e-6
        # the reported rate is reproducible from the fixed draw
        pred = model(noise.add_noise(x, draws[kind], c.magnitude)).argmax(1)
        assert abs((pred != y).float().mean().item() - c.rate) < 1e-6
    assert got[0.0].rate == 0 and got[0.0].within_tolerance
    assert 0 < got[0.0].magnitude < got[0.03].magnitude < got[0.3].magnitude
    assert got[0.3].evaluations <= 20


def test_noise_search_refuses_bad_settings_before_any_pass():
    assert noise.NoiseSearch().rates == (0.0, 0.03, 0.3)
    with pytest.raises(ValueError, match="0 <= rate < 1"):
        noise.NoiseSearch(rates=(0.0, 1.0))
    with pytest.raises(ValueError, match="at least 1 pass"):
        noise.NoiseSearch(max_iter=0)
    with pytest.raises(ValueError, match="tolerance > 0"):
        noise.NoiseSearch(tolerance=0)


def test_noise_draw_is_seeded_and_typed():
    a = noise.noise_draw((4, 1, 5, 5), "uniform", seed=3)
    b = noise.noise_draw((4, 1, 5, 5), "uniform", seed=3)
    assert torch.equal(a, b) and a.abs().max() <= 1
    with pytest.raises(ValueError):
        noise.noise_draw((2,), "laplace")
    x = torch.full((2, 1, 3, 3), 0.9)
    assert noise.add_noise(x, torch.ones_like(x), 0.5).max() == 1.0


def test_noise_sensitivity_table_shape():
    model, x, y = prototype_problem(n=200)
    x, y, _ = noise.correctly_classified(model, x, y)

    def pooled(xx, tt):  # a toy "interpreter": 4x4 average of the input, class-independent
        return F.avg_pool2d(xx, 2)

    cals, draws = noise.calibrate_levels(
        model, x, y, noise.NoiseSearch(rates=(0.0, 0.03, 0.3), tolerance=0.02)
    )
    res = noise.noise_sensitivity(model, {"rts": pooled, "rtsa": pooled}, x, y, cals, draws)
    levels = ["0%", "3%", "30%"]
    for name in ("rts", "rtsa"):
        for kind in noise.NOISE_TYPES:
            vals = [res["l1"][name][kind][lvl] for lvl in levels]
            assert vals[0] <= vals[1] <= vals[2]  # stronger noise, farther maps
    rows, headers = noise.fig15_rows(res["l1"], levels)
    assert len(rows) == 3 and len(headers) == 1 + 2 * 4 and all(len(r) == len(headers) for r in rows)
    assert rows[2][2] == paper.PAPER_FIG15_L1["rts"]["normal"]["30%"]


# ----------------------------------------------------------------------------- AID
def test_aid_config_validates():
    with pytest.raises(ValueError):
        defenses.AIDConfig(beta=-1)
    with pytest.raises(ValueError):
        defenses.AIDConfig(epsilon=0)
    cfg = defenses.AIDConfig(iterations=10, beta=2.0, beta_warmup=0.5)
    assert cfg.beta_at(0) == pytest.approx(0.4) and cfg.beta_at(9) == 2.0


def test_aid_training_changes_the_interpreter(tiny_rts):
    model, rts, x, y = tiny_rts
    before = {k: v.clone() for k, v in rts.state_dict().items()}
    cfg = defenses.AIDConfig(
        iterations=3,
        batch_size=8,
        aid_batch_size=4,
        pool_size=16,
        stage1_steps=2,
        stage2_steps=2,
        lr=1e-3,
        beta=2.0,
        beta_warmup=0,
    )
    rtsa, metrics = defenses.train_rtsa(model, rts, x, y, cfg, x_probe=x[:8], y_probe=y[:8], progress=False)
    # RTS itself is untouched (AID fine-tunes a copy) and RTSA is frozen afterwards
    assert all(torch.equal(before[k], v) for k, v in rts.state_dict().items())
    assert not any(p.requires_grad for p in rtsa.parameters())
    # the encoder and selector are not trained, the decoder is
    for k, v in rtsa.state_dict().items():
        if k.startswith(("encoder.", "selector.")):
            assert torch.equal(v, before[k]), k
    m_rts = aid_eval.rts_maps(rts, x[:16], y[:16])
    m_rtsa = aid_eval.rts_maps(rtsa, x[:16], y[:16])
    assert l1_distance(m_rts, m_rtsa).mean() > 1e-4
    assert metrics["step"][-1] == 3 and len(metrics["aid_l1"]) == len(metrics["step"])
    assert 0 <= metrics["aid_l1"][-1] <= 1 and metrics["final_probe_drift"] > 0
    assert metrics["seconds"] > 0 and metrics["images_attacked"] == 12


def test_rtsa_is_cached(tiny_rts, tmp_path):
    model, rts, x, y = tiny_rts

    class Data:
        name = "fashion-mnist"
        x_train, y_train, x_test, y_test = x, y, x, y

    recipe = recipes.RTSARecipe(
        recipes.RTSRecipe(recipes.ClassifierRecipe("resnet")),
        iterations=2,
        batch_size=4,
        attack_batch_size=4,
        pool_size=8,
        stage1_steps=1,
        stage2_steps=1,
        distill_weight=10.0,
        train_encoder=False,
        n_probe=4,
    )

    class RTSArtifact:  # what load_rts returns beside the net
        path = tmp_path / "rts" / recipe.rts.key
        metrics = {"seconds": 10.0}
        params = {"phase1_iterations": 5, "phase2_iterations": 5}

    kw = dict(artifacts_dir=str(tmp_path), progress=False)
    a1_net, a1 = loading.load_rtsa(recipe, Data, model, rts, RTSArtifact, **kw)
    a2_net, a2 = loading.load_rtsa(recipe, Data, model, rts, RTSArtifact, **kw)
    assert not a1.from_cache and a2.from_cache and a1.path == a2.path
    assert a1.params["rts"] == recipe.rts.key and a1.params["beta"] == recipe.beta
    assert torch.equal(aid_eval.rts_maps(a1_net, x[:4], y[:4]), aid_eval.rts_maps(a2_net, x[:4], y[:4]))
    cost = cached.training_cost(RTSArtifact, a2)
    assert cost["rts_seconds"] == 10.0 and cost["aid_seconds"] > 0
    assert cost["per_iteration_ratio"] > 0
    # another AID setting is another artifact
    _, a3 = loading.load_rtsa(dataclasses.replace(recipe, beta=0.5), Data, model, rts, RTSArtifact, **kw)
    assert a3.path != a1.path


# ----------------------------------------------------------------------------- Table 10
def test_table10_numbers_and_keys():
    gen = torch.Generator().manual_seed(0)
    benign = torch.rand(6, 1, 14, 14, generator=gen) * 0.5
    success = torch.tensor([True, True, True, True, False, False])
    out = aid_eval.table10(
        benign,
        benign + 0.03,
        benign + 0.01,
        benign + 0.03 + 0.1,
        success,
        success.clone(),
        confidence_rts=torch.full((6,), 0.9),
        confidence_rtsa=torch.full((6,), 0.8),
    )
    assert set(out) == set(aid_eval.TABLE10_KEYS)
    assert out["benign_l1_rts_vs_rtsa"] == pytest.approx(0.03, abs=1e-6)
    assert out["adv2_l1_rts"] == pytest.approx(0.01, abs=1e-6)
    assert out["adv2_l1_rtsa"] == pytest.approx(0.10, abs=1e-6)
    assert out["adv2_l1_ratio"] == pytest.approx(10, rel=1e-4)
    assert out["adv2_success_rts"] == pytest.approx(4 / 6) and out["n_success_rtsa"] == 4
    assert out["adv2_confidence_rtsa"] == pytest.approx(0.8)
    assert math.isnan(out["pgd_l1_rts"])  # optional parts absent -> NaN (saved as null)
    # restricted to successes vs all images
    adv = benign.clone()
    adv[4:] += 0.5
    r1 = aid_eval.table10(benign, benign, adv, adv, success, success)
    r2 = aid_eval.table10(benign, benign, adv, adv, success, success, restrict_to_success=False)
    assert r1["adv2_l1_rts"] == pytest.approx(0.0, abs=1e-7) and r2["adv2_l1_rts"] > 0.1
    none = aid_eval.table10(
        benign, benign, adv, adv, torch.zeros(6, dtype=torch.bool), torch.zeros(6, dtype=torch.bool)
    )
    assert math.isnan(none["adv2_l1_rts"]) and math.isnan(none["adv2_l1_ratio"])
    rows, headers = aid_eval.table10_rows({"resnet": out, "densenet": r1})
    assert headers[:2] == ["measure", "paper (ResNet-50)"] and len(headers) == 4
    assert all(len(r) == 4 for r in rows)
    assert rows[0][1] == 0.03 and rows[1][1] == 0.01 and rows[2][1] == 0.10
    assert rows[2][2] == out["adv2_l1_rtsa"]


def test_adv2_on_rts_and_rtsa_runs(tiny_rts):
    from adv2.core.attacks import RTSConfig

    model, rts, x, y = tiny_rts
    rtsa = defenses.train_rtsa(
        model,
        rts,
        x,
        y,
        defenses.AIDConfig(
            iterations=1, batch_size=4, aid_batch_size=4, pool_size=4, stage1_steps=1, stage2_steps=1
        ),
        progress=False,
    )[0]
    target = (y[:4] + 1) % 10
    cfg = RTSConfig(stage1_steps=2, stage2_steps=2)
    out = aid_eval.adv2_on_rts_and_rtsa(
        model, rts, rtsa, x[:4], y[:4], target, cfg, restrict_to_success=False
    )
    assert set(aid_eval.TABLE10_KEYS) <= set(out["numbers"])
    assert out["adv"]["rts"].shape == x[:4].shape
    assert (out["adv"]["rtsa"] - x[:4]).abs().max() <= cfg.epsilon + 1e-6
    assert out["adv_maps"]["rtsa"].shape == (4, 1, rts.map_size, rts.map_size)
    assert not math.isnan(out["numbers"]["adv2_l1_rtsa"])


def test_aid_options_encoder_and_persistence(tiny_rts):
    model, rts, x, y = tiny_rts
    clf_before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = defenses.AIDConfig(
        iterations=2,
        batch_size=4,
        aid_batch_size=4,
        pool_size=4,
        stage1_steps=1,
        stage2_steps=1,
        train_encoder=True,
        persistent=True,
        distill_weight=0.0,
        beta_warmup=0,
    )
    rtsa, _ = defenses.train_rtsa(model, rts, x, y, cfg, progress=False)
    enc_a, enc_b = rtsa.encoder.state_dict(), rts.encoder.state_dict()
    assert any(not torch.equal(enc_a[k], enc_b[k]) for k in enc_a)  # encoder copy trained
    assert all(torch.equal(v, clf_before[k]) for k, v in model.state_dict().items())  # classifier not


# ----------------------------------------------------------------------------- AIDConfig's cache key
_OLD_COMMIT = "5c937a9"  # the last commit where AIDConfig copied the attack's fields flat


def _old_aid_config():
    """AIDConfig as defined at ``_OLD_COMMIT``, compiled from git history (skip without it)."""
    import ast
    import subprocess
    from dataclasses import dataclass
    from typing import Any

    from adv2.core.config import REPO_ROOT

    try:
        src = subprocess.run(
            ["git", "show", f"{_OLD_COMMIT}:lib/adv2/core/defenses.py"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        pytest.skip(f"git history with commit {_OLD_COMMIT} is not available")
    tree = ast.parse(src)
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "AIDConfig")
    module = ast.Module(body=[node], type_ignores=[])
    namespace = {"dataclass": dataclass, "dataclasses": __import__("dataclasses"), "Any": Any}
    exec(compile(module, "old_defenses.py", "exec"), namespace)  # noqa: S102 - our own history
    return namespace["AIDConfig"]


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {
            "iterations": 7,
            "epsilon": 0.1,
            "step_size": 0.0125,
            "stage1_steps": 3,
            "stage2_steps": 2,
            "beta": 0.5,
            "aid_batch_size": 4,
            "persistent": False,
            "seed": 3,
        },
        {"lam_start": 1.0, "lam_end": 2.0, "encoder_weight": 0.0, "area_weight": 2.0, "train_encoder": True},
    ],
)
def test_cache_params_equal_the_old_flat_dict(kw):
    """The RTSA cache key (and chapter 4's table) must not move: the same flat dict, same order."""
    old = _old_aid_config()(**kw).as_dict()
    new = defenses.AIDConfig(**kw)
    assert list(new.cache_params().items()) == list(old.items())
    assert list(new.as_dict().items()) == list(old.items())
    assert defenses.AIDConfig(**new.as_dict()) == new  # the flat dict round-trips


def test_aid_config_holds_its_inner_attack():
    from adv2.core.attacks import RTSConfig

    cfg = defenses.AIDConfig(epsilon=0.1, stage2_steps=3, aid_batch_size=6)
    assert isinstance(cfg.attack, RTSConfig) and cfg.attack.epsilon == 0.1 and cfg.epsilon == 0.1
    inner = cfg.inner_attack()
    assert (inner.stage1_steps, inner.stage2_steps, inner.batch_size) == (0, 3, 6)
    same = defenses.AIDConfig(
        attack=RTSConfig(stage1_steps=20, stage2_steps=3, epsilon=0.1), aid_batch_size=6
    )
    assert same.cache_params() == cfg.cache_params()
    # an inner-attack field outside the flat names is part of the key (only when not default)
    other = defenses.AIDConfig(attack=dataclasses.replace(cfg.attack, int_reduction="sum"))
    assert other.cache_params()["attack_extra"] == {"int_reduction": "sum"}
    with pytest.raises(TypeError, match="not both"):
        defenses.AIDConfig(attack=RTSConfig(), epsilon=0.1)
    with pytest.raises(TypeError, match="unknown"):
        defenses.AIDConfig(epsilonn=0.1)
