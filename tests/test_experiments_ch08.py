"""Chapter 8 (How the attacks scale): the sweep it asks for and the readings of its table."""

from __future__ import annotations

import pytest

from adv2.book import scalingsweep
from adv2.chapters import _common, ch08, schema
from adv2.core.config import ParameterError


def _rows():
    """A synthetic sweep table: ADV2's success climbs to PGD's by epsilon 0.1, its maps stay closer."""
    rows = []
    for eps, adv2_success in ((0.031, 0.5), (0.1, 0.95), (0.2, 1.0)):
        for seed in (0, 1):
            for budget in (0.01, 0.03):
                row = {"status": "ok", "epsilon": eps, "seed": seed, "step_scale": budget}
                c = lambda a, m: ch08.column("resnet", "grad", a, m)
                row[c("adv2", "success_rate")] = adv2_success
                row[c("pgd", "success_rate")] = 1.0
                row[c("adv2", "l1_mean")] = 0.10 + 0.01 * seed
                row[c("pgd", "l1_mean")] = 0.10 + eps + 0.01 * seed
                rows.append(row)
    return rows


def _scaling(rows):
    return ch08.Scaling(rows, ["resnet"], ["grad"], [0.031, 0.1, 0.2], [0.01, 0.03], [0, 1], 0.1, 0)


def test_curves_average_over_seeds_at_the_largest_budget():
    s = _scaling(_rows())
    c = s.vs_epsilon("resnet", "grad", "adv2", "l1_mean")
    assert c.x == [0.031, 0.1, 0.2] and c.n == [2, 2, 2]
    assert c.mean[0] == pytest.approx(0.105) and c.std[0] == pytest.approx(0.00707, abs=1e-4)
    b = s.vs_budget("resnet", "grad", "pgd", "l1_mean")
    assert b.x == [0.01, 0.03] and b.mean == pytest.approx([0.205, 0.205])


def test_readings_find_where_adv2_reaches_pgd_and_where_maps_separate():
    r = _scaling(_rows()).readings()[0]
    assert r["reach_epsilon"] == 0.1  # 0.95 is within 0.05 of PGD's 1.0
    assert r["separate_epsilon"] == 0.031  # PGD's L1 is 0.031 above ADV2's; spreads are 0.007
    n = _scaling(_rows()).numbers()
    assert n["pairs"] == 1 and n["pairs_reaching_pgd"] == 1 and n["pairs_separating"] == 1
    assert "not in the grid" not in _scaling(_rows()).readings_table()


def test_a_failed_point_is_left_out_of_the_curves():
    rows = _rows()
    rows[0]["status"] = "failed"
    c = _scaling(rows).vs_epsilon("resnet", "grad", "adv2", "success_rate")
    assert c.n == [2, 2, 2]  # rows[0] is at the smaller budget: the curves use the largest
    rows[1]["status"] = "failed"
    assert _scaling(rows).vs_epsilon("resnet", "grad", "adv2", "success_rate").n == [1, 2, 2]


def test_the_sweep_is_chapter_3_over_the_chapters_grid():
    spec = scalingsweep.sweep_spec("quick")
    assert spec["notebook"].stem == "03_adv2" and spec["name"].startswith("scaling-quick-")
    assert set(spec["grid"]) == {"epsilon", "step_scale", "seed"}
    assert spec["fixed"]["imagenet_sample"] is False
    other = scalingsweep.sweep_spec("quick", {"seeds": [0, 1, 2]})
    assert other["grid"]["seed"] == [0, 1, 2]
    # another grid, another sweep folder (the old one's points are not mixed in, nor refused)
    assert other["name"].startswith("scaling-quick-") and other["name"] != spec["name"]
    assert scalingsweep.sweep_spec("quick", {"sweep_name": "mine"})["name"] == "mine"
    elsewhere = scalingsweep.sweep_spec("quick", {"artifacts_dir": "/tmp/elsewhere"})
    assert elsewhere["name"] == spec["name"]  # the model cache is no part of the sweep's identity


def test_budget_epsilon_must_be_on_the_grid():
    with pytest.raises(ParameterError, match="budget_epsilon"):
        schema.validate_chapter("08_scaling", {"epsilons": [0.05, 0.2], "budget_epsilon": 0.1})


def test_a_missing_sweep_says_how_to_run_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ADV2_RUNS_DIR", str(tmp_path))
    params = {**schema.defaults("08_scaling"), "profile": "smoke"}
    with pytest.raises(ParameterError, match="python -m adv2 sweep --for 08 --profile smoke"):
        scalingsweep.load(params)


def test_the_setup_cell_runs_without_a_device_parameter():
    """Chapter 8 declares no `device` (its points choose theirs): the shared setup must not ask."""
    namespace = dict(schema.defaults("08_scaling"))
    params, device, _ = _common.start(ch08.STEM, namespace)
    assert "device" not in params and str(device) in ("cpu", "cuda")


def test_the_points_shared_models_are_trained_once_before_the_points(tmp_path, monkeypatch):
    """On an empty cache every task's first point would train the same models; chapter 8 trains
    them first, side by side, and the points then find them in the cache."""
    monkeypatch.setenv(
        "ADV2_CHECKPOINTS", str(tmp_path / "no-checkpoints")
    )  # smoke's classifier ships as one
    spec = scalingsweep.sweep_spec("smoke", {"artifacts_dir": str(tmp_path), "interpreters": ["cam", "rts"]})
    lines: list[str] = []
    scalingsweep.prepare_models(spec, "smoke", log=lines.append)
    archs = spec["fixed"]["archs"]
    for kind in ("classifier", "rts"):  # one cache entry per classifier (lock files aside)
        assert len([d for d in (tmp_path / kind).iterdir() if d.is_dir()]) == len(archs)
    assert sum("trained in" in line for line in lines) == 2 * len(archs)
    again: list[str] = []
    scalingsweep.prepare_models(spec, "smoke", log=again.append)
    assert again and all("cache" in line for line in again), again
    # on a cluster the nodes may not share this disk: no preparation there
    assert scalingsweep.preparation(spec, "smoke", "ray://head:10001") is None
    assert callable(scalingsweep.preparation(spec, "smoke", None))


def test_the_exercises_worked_solution_runs_on_the_chapters_scaling(capsys):
    """Issue 26 item 7: chapter 8's worked solution reads the chapter's ``scaling`` through the
    library; run it on the synthetic sweep table: one line per pair, each attack's change with the
    seeds' spread (PGD's success does not move over the budget here, ADV2's neither)."""
    from pathlib import Path

    from standins import solution_code

    blocks = solution_code(Path(__file__).resolve().parents[1] / "notebooks" / "08_scaling.ipynb")
    assert len(blocks) == 1
    exec(blocks[0], {"scaling": _scaling(_rows())})
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [
        "resnet / grad: adv2 success_rate 0 (spread 0); adv2 l1_mean 0 (spread 0.00707); "
        "pgd success_rate 0 (spread 0); pgd l1_mean 0 (spread 0.00707)"
    ]
    one_budget = ch08.Scaling(_rows(), ["resnet"], ["grad"], [0.031, 0.1, 0.2], [0.03], [0, 1], 0.1, 0)
    one_budget.rows = [r for r in one_budget.rows if r["step_scale"] == 0.03]
    exec(blocks[0], {"scaling": one_budget})
    assert "fewer than two budgets measured" in capsys.readouterr().out
