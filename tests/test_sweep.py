"""Parameter sweeps on Ray (adv2.book.sweepplan, adv2.book.sweepworker, adv2.book.sweep, adv2.book.sweeptable).

The planning tests are fast. The tests marked slow start a local Ray (1 thread per task) and real
Jupyter kernels: a 4-point smoke sweep of chapter 3, resume after an interrupted sweep, a failing
point among good ones, and 8 kernels started at once (no port collisions).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from adv2.book import cli, paths, raylocal, sweepplan, sweeptable
from adv2.core.config import REPO_ROOT, ParameterError

CH3 = REPO_ROOT / "notebooks" / "03_adv2.ipynb"


def standin_notebook(path: Path) -> Path:
    """A notebook that squares ``x``, fails when ``x == fail_at``, waits for ``gate`` (a file)
    when ``x >= gate_from``, waits until ``barrier_n`` points have entered the folder ``barrier``,
    and records its pid and start/end times."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(
        'x = 1.0\nfail_at = -1.0\nsleep = 0.0\ngate = ""\ngate_from = 1e9\nbarrier = ""\nbarrier_n = 0\n'
        'results_dir = "."'
    )
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(
            "import json, os, time\nstarted = time.time()\n"
            'assert "leftover" not in globals(), "the namespace was not reset"\nleftover = 1'
        ),
        nbformat.v4.new_code_cell(
            "while gate and x >= gate_from and not os.path.exists(gate) and time.time() - started < 120:\n"
            "    time.sleep(0.2)\ntime.sleep(sleep)\n"
            "if barrier:  # wait until barrier_n points are running at once\n"
            "    open(os.path.join(barrier, str(x)), 'w').close()\n"
            "    while len(os.listdir(barrier)) < barrier_n and time.time() - started < 300:\n"
            "        time.sleep(0.2)\n"
            "    assert len(os.listdir(barrier)) >= barrier_n, 'the points did not run at the same time'"
        ),
        nbformat.v4.new_code_cell('if x == fail_at:\n    raise ValueError(f"deliberate failure at x={x}")'),
        nbformat.v4.new_code_cell(
            "numbers = {'square': x * x, 'pid': os.getpid(), 'started': started, 'ended': time.time()}\n"
            "json.dump({'numbers': numbers, 'params': {'x': x}},"
            " open(os.path.join(results_dir, 'standin.json'), 'w'))"
        ),
    ]
    nbformat.write(nb, path)
    return path


# ----------------------------------------------------------------------------- planning (fast)
def test_split_and_parse_grid():
    assert sweepplan.split_values("0.05, 0.1,[grad,cam]") == ["0.05", "0.1", "[grad,cam]"]
    grid = sweepplan.parse_grid([["epsilon", "0.05,0.1"], ["interpreters", "[grad],[grad,cam]"]])
    assert grid == {"epsilon": [0.05, 0.1], "interpreters": [["grad"], ["grad", "cam"]]}
    with pytest.raises(ParameterError, match="repeats"):
        sweepplan.parse_grid([["seed", "1,1"]])
    with pytest.raises(ParameterError, match="twice"):
        sweepplan.parse_grid([["seed", "1"], ["seed", "2"]])


def test_point_ids_are_stable_and_readable():
    assert sweepplan.point_id({"seed": 1, "epsilon": 0.05}) == "epsilon-0.05_seed-1"
    assert sweepplan.point_id({"archs": ["resnet", "densenet"]}) == "archs-resnet+densenet"


def test_every_point_is_validated_before_anything_runs(tmp_path):
    with pytest.raises(ParameterError) as err:
        sweepplan.plan(CH3, "smoke", {"epsilon": [0.05, 2.0]}, {}, "bad", tmp_path)
    msg = str(err.value)
    assert "point epsilon-2.0" in msg and "'epsilon'" in msg and "2.0" in msg
    assert not (tmp_path / "bad").exists()  # nothing written
    with pytest.raises(ParameterError, match="bogus"):
        sweepplan.plan(CH3, "smoke", {"bogus": [1, 2]}, {}, "bad", tmp_path)
    with pytest.raises(ParameterError, match="both"):
        sweepplan.plan(CH3, "smoke", {"seed": [0, 1]}, {"seed": 2}, "bad", tmp_path)


def test_plan_expands_the_grid_into_folders_outside_the_book(tmp_path):
    plan = sweepplan.plan(CH3, "smoke", {"epsilon": [0.05, 0.1], "seed": [0, 1, 2]}, {}, None, tmp_path)
    assert len(plan.points) == 6 and plan.name == "03-smoke-epsilon-seed"
    p = plan.points[0]
    assert p.params["epsilon"] == 0.05 and p.params["seed"] == 0
    assert p.params["results_dir"] == str(tmp_path / plan.name / p.id)
    assert not any(pt.done for pt in plan.points)


def test_grouping_keeps_every_slot_busy_and_splits_by_trained_models(tmp_path):
    grid = {"epsilon": [0.05, 0.1], "seed": [0, 1], "train_seed": [0, 1]}
    plan = sweepplan.plan(CH3, "smoke", grid, {}, "g", tmp_path)
    # 8 points, 2 recipes (train_seed): with 2 slots, 4 points per task, never two recipes in one
    tasks = sweepplan.group(plan.points, "03_adv2", slots=2)
    assert len(tasks) == 2
    for t in tasks:
        assert len({p.params["train_seed"] for p in t}) == 1
    assert len(sweepplan.group(plan.points, "03_adv2", slots=8)) == 8
    assert sum(len(t) for t in sweepplan.group(plan.points, "03_adv2", slots=3)) == 8


def test_a_point_is_complete_only_with_its_own_parameters(tmp_path):
    nb = standin_notebook(tmp_path / "standin.ipynb")
    plan = sweepplan.plan(nb, "smoke", {"x": [1.0]}, {}, "c", tmp_path)
    p = plan.points[0]
    p.folder.mkdir(parents=True)
    assert not sweepplan.is_complete(p, "standin")
    (p.folder / "standin.ipynb").write_text("{}")
    (p.folder / "standin.json").write_text("{}")
    code = sweepplan.code_fingerprint()
    (p.folder / "point.json").write_text(json.dumps({"status": "ok", "params": p.params, "code": code}))
    assert sweepplan.is_complete(p, "standin")
    (p.folder / "point.json").write_text(
        json.dumps({"status": "ok", "params": {**p.params, "x": 2.0}, "code": code})
    )
    assert not sweepplan.is_complete(p, "standin")
    # computed by other library code (or on models it trained): not this code's result
    (p.folder / "point.json").write_text(json.dumps({"status": "ok", "params": p.params, "code": "other"}))
    assert not sweepplan.is_complete(p, "standin")
    assert not sweepplan.is_complete(p, "standin", code="another")


def test_the_driver_records_a_finished_point_with_the_plans_code(tmp_path):
    """The worker's outcome comes back to the driver, which rewrites the point's record on the
    sweep's own disk: that record must still name the code, or a resumed sweep re-runs the point."""
    from adv2.book import sweep

    nb = standin_notebook(tmp_path / "standin.ipynb")
    plan = sweepplan.plan(nb, "smoke", {"x": [1.0]}, {}, "d", tmp_path)
    p = plan.points[0]
    assert plan.code == sweepplan.code_fingerprint()
    arg = sweep._point_arg(p, plan.code)
    assert arg["code"] == plan.code
    outcome = {"id": p.id, "status": "ok", "params": arg["params"], "code": arg["code"]}
    outcome["files"] = {"standin.ipynb": "{}", "standin.json": "{}"}
    sweep._write_outcome(plan, outcome)
    again = sweepplan.plan(nb, "smoke", {"x": [1.0]}, {}, "d", tmp_path)
    assert again.points[0].done and not again.todo
    # nothing left to run: the sweep's preparation (chapter 8 trains its models there) is skipped
    result = sweep.run_sweep(
        nb, {"x": [1.0]}, {}, "smoke", "d", root=tmp_path, progress=False, before_run=pytest.fail
    )
    assert not result.outcomes


def test_sweep_and_table_commands_parse():
    parser = cli.build_parser()
    args = parser.parse_args(
        ["sweep", "03", "-g", "epsilon", "0.05,0.1", "-p", "seed", "1", "--address", "auto"]
    )
    assert args.notebook == "03" and args.grid == [["epsilon", "0.05,0.1"]] and args.address == "auto"
    assert parser.parse_args(["sweep-table", "x"]).name == "x"


def test_table_has_one_row_per_point_with_headline_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.RUNS_ENV, str(tmp_path))
    folder = tmp_path / "sweeps" / "t"
    points = []
    for i, status in enumerate(["ok", "ok", "failed"]):
        pid = f"epsilon-0.{i + 1}"
        (folder / pid).mkdir(parents=True)
        (folder / pid / "point.json").write_text(json.dumps({"status": status, "seconds": 1.0}))
        numbers = {
            "classifier_accuracy": {"resnet": 0.9},
            "fashion-mnist": {"resnet": {"grad": {"adv2": {"success_rate": 0.5 + i / 10, "l1_mean": 0.1}}}},
        }
        if status == "ok":
            (folder / pid / "03_adv2.json").write_text(json.dumps({"numbers": numbers}))
        points.append({"id": pid, "grid": {"epsilon": (i + 1) / 10}, "status": status})
    (folder / "sweep.json").write_text(
        json.dumps({"notebook": "03_adv2", "grid": {"epsilon": [0.1, 0.2, 0.3]}, "points": points})
    )
    columns, rows = sweeptable.gather("t")
    assert len(rows) == 3 and "epsilon" in columns
    assert "fashion-mnist.resnet.grad.adv2.success_rate" in columns
    assert rows[1]["fashion-mnist.resnet.grad.adv2.success_rate"] == pytest.approx(0.6)
    assert rows[2]["status"] == "failed" and rows[2]["fashion-mnist.resnet.grad.adv2.l1_mean"] is None
    csv_path, json_path = sweeptable.write_table("t")
    assert len(csv_path.read_text().strip().splitlines()) == 4
    assert len(json.loads(json_path.read_text())["rows"]) == 3
    with pytest.raises(ParameterError, match="no sweep 'nope'"):
        sweeptable.gather("nope")


# ----------------------------------------------------------------------------- one sweep per name (fast)
def _complete_point(nb: Path, name: str, root: Path, grid: dict | None = None) -> None:
    """Record sweep ``name`` with its one point complete, as a finished sweep leaves it (no Ray)."""
    from adv2.book import sweep

    grid = grid or {"x": [1.0]}
    plan = sweepplan.plan(nb, "smoke", grid, {}, name, root)
    for p in plan.points:
        outcome = {"id": p.id, "status": "ok", "params": p.params, "code": plan.code}
        sweep._write_outcome(plan, {**outcome, "files": {"standin.ipynb": "{}", "standin.json": "{}"}})
    result = sweep.SweepResult(plan, {p.id: {"status": "ok"} for p in plan.points})
    sweep._write_record(result, "ok", None)


def _lib_env(**extra: str) -> dict[str, str]:
    import adv2

    return {**os.environ, "PYTHONPATH": str(Path(adv2.__file__).resolve().parents[1]), **extra}


_HOLDER_SCRIPT = """
import json, sys, time
from pathlib import Path
from adv2.book import sweeplock
folder = Path(sys.argv[1])
lock = sweeplock.SweepLock(folder)
lock.acquire()
if len(sys.argv) > 2:  # a sweep that started a local Ray (session folder) and wrote its record
    (folder / "sweep.json").write_text(json.dumps({"notebook": "standin", "grid": {"x": [1.0]},
                                                   "status": "running", "points": []}))
    lock.record_ray(sys.argv[2])
print("held", flush=True)
time.sleep(600)
"""


def _hold(folder: Path, session: str | None = None) -> subprocess.Popen:
    """A process that holds the sweep lock of ``folder`` (and records ``session``'s processes)."""
    args = [sys.executable, "-c", _HOLDER_SCRIPT, str(folder)] + ([session] if session else [])
    proc = subprocess.Popen(args, env=_lib_env(), stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


_STUBBORN = (
    "import signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as Ray's agents do\n"
    "if len(sys.argv) > 1:  # the 'raylet': names its session, starts an 'agent' that names nothing\n"
    "    subprocess.Popen([sys.executable, '-c', sys.argv[2]])\n"
    "time.sleep(600)\n"
)


def test_a_second_sweep_of_a_running_name_is_refused_naming_its_process(tmp_path):
    from adv2.book import sweep

    nb = standin_notebook(tmp_path / "standin.ipynb")
    _complete_point(nb, "busy", tmp_path)
    holder = _hold(tmp_path / "busy")
    try:
        with pytest.raises(ParameterError, match=f"sweep 'busy' is running now in process {holder.pid} "):
            sweep.run_sweep(nb, {"x": [1.0]}, {}, "smoke", "busy", root=tmp_path, progress=False)
        # another name is free
        _complete_point(nb, "other", tmp_path)
        sweep.run_sweep(nb, {"x": [1.0]}, {}, "smoke", "other", root=tmp_path, progress=False)
    finally:
        holder.kill()
        holder.wait()
    # the holder was killed: the lock is free, the name usable again
    result = sweep.run_sweep(nb, {"x": [1.0]}, {}, "smoke", "busy", root=tmp_path, progress=False)
    assert not result.outcomes and not (tmp_path / "busy" / "sweep.holder.json").exists()


def test_another_grid_under_an_existing_name_is_refused(tmp_path):
    from adv2.book import sweep

    nb = standin_notebook(tmp_path / "standin.ipynb")
    _complete_point(nb, "g", tmp_path, {"x": [1.0, 2.0]})
    with pytest.raises(ParameterError) as err:
        sweep.run_sweep(nb, {"x": [3.0]}, {}, "smoke", "g", root=tmp_path, progress=False)
    msg = str(err.value)
    assert "sweep name 'g' already holds another sweep" in msg
    assert '{"x": [1.0, 2.0]}' in msg and '{"x": [3.0]}' in msg  # both grids
    assert "--name g-2" in msg and "rm -r" in msg
    with pytest.raises(ParameterError, match="already holds another sweep"):  # --check says so too
        sweepplan.plan(nb, "smoke", {"x": [1.0], "sleep": [0.0]}, {}, "g", tmp_path)
    record = json.loads((tmp_path / "g" / "sweep.json").read_text())
    assert record["grid"] == {"x": [1.0, 2.0]} and len(record["points"]) == 2  # untouched
    # the same grid, its values in another order: the same points, accepted
    assert not sweepplan.plan(nb, "smoke", {"x": [2.0, 1.0]}, {}, "g", tmp_path).todo


def _stubborn_session(tmp_path: Path) -> tuple[str, subprocess.Popen, int]:
    """A stand-in local Ray: a 'raylet' whose command line names the session folder and an
    'agent' it starts whose command line names nothing; both ignore SIGTERM. Returns (session,
    raylet, agent pid)."""
    session = str(tmp_path / f"session_adv2test_{os.getpid()}")
    raylet = subprocess.Popen(
        [sys.executable, "-c", _STUBBORN, session, _STUBBORN.split("if len")[0] + "time.sleep(600)"]
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        children = Path(f"/proc/{raylet.pid}/task/{raylet.pid}/children").read_text().split()
        if children:
            return session, raylet, int(children[0])
        time.sleep(0.1)
    raylet.kill()
    pytest.fail("the stand-in agent did not start")


def test_a_killed_sweep_leaves_no_process_behind_and_its_record_says_interrupted(
    tmp_path, monkeypatch, capsys
):
    from adv2.book import sweep, sweeplock

    monkeypatch.setattr(sweeplock, "GRACE_S", 0.5)
    session, raylet, agent = _stubborn_session(tmp_path)
    folder = tmp_path / "killed"
    driver = _hold(folder, session)
    try:
        holder = json.loads((folder / "sweep.holder.json").read_text())
        assert {raylet.pid, agent} <= {int(p) for p in holder["ray_processes"]}
        driver.kill()  # kill -9: no finally, no shutdown
        driver.wait()
        raylet.kill()  # the raylet dies with its driver; the agent, re-parented, lives on
        raylet.wait()
        assert sweeplock.start_time(agent) is not None, "the stand-in agent should still be alive"
        # the next sweep (here of another name) ends the leftovers first
        nb = standin_notebook(tmp_path / "standin.ipynb")
        _complete_point(nb, "next", tmp_path)
        sweep.run_sweep(nb, {"x": [1.0]}, {}, "smoke", "next", root=tmp_path, progress=False)
        out = capsys.readouterr().out
        assert (
            f"sweep 'killed' was killed (process {driver.pid}): ended its 1 leftover Ray process(es)" in out
        )
        assert sweeplock.start_time(agent) is None  # SIGTERM ignored: SIGKILL after the grace period
        record = json.loads((folder / "sweep.json").read_text())
        assert record["status"] == "interrupted" and str(driver.pid) in record["interrupted"]
        assert not (folder / "sweep.holder.json").exists()
        assert sweeplock.cleanup(tmp_path) == []  # nothing left to clear
    finally:
        for proc in (driver, raylet):
            proc.kill()
            proc.wait()
        if sweeplock.start_time(agent) is not None:
            os.kill(agent, signal.SIGKILL)


def test_cleanup_command_clears_a_killed_sweep_and_leaves_a_running_one(tmp_path):
    """``python -m adv2 sweep --cleanup``: a pid the system gave to another process meanwhile is
    never signalled (its start time differs), and a sweep that runs now is left alone."""
    from adv2.book import sweeplock
    from adv2.trained import files

    sweeps = tmp_path / "sweeps"
    (sweeps / "dead").mkdir(parents=True)
    (sweeps / "dead" / "sweep.json").write_text(json.dumps({"status": "running", "grid": {}}))
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        start = sweeplock.start_time(bystander.pid)
        files.atomic_write_json(
            sweeps / "dead" / "sweep.holder.json",
            {
                "host": os.uname().nodename,
                "pid": 1,
                "pid_start": 0,
                "ray_processes": {str(bystander.pid): start + 1},
            },  # same pid, another process
        )
        running = _hold(sweeps / "alive")
        try:
            cmd = [sys.executable, "-m", "adv2", "sweep", "--cleanup"]
            proc = subprocess.run(
                cmd,
                env=_lib_env(**{paths.RUNS_ENV: str(tmp_path)}),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert proc.returncode == 0, proc.stderr
            assert "sweep 'dead' was killed (process 1): ended its 0 leftover" in proc.stdout
            assert "1 killed sweep(s) cleared" in proc.stdout
            assert (sweeps / "alive" / "sweep.holder.json").is_file() and running.poll() is None
        finally:
            running.kill()
            running.wait()
        assert bystander.poll() is None
        assert json.loads((sweeps / "dead" / "sweep.json").read_text())["status"] == "interrupted"
        bad = cli.main(["sweep", "03", "--cleanup"])
        assert bad == 2
    finally:
        bystander.kill()
        bystander.wait()


def test_sweep_table_writes_only_under_runs_sweeps(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(paths.RUNS_ENV, str(tmp_path / "runs"))
    outside = tmp_path / "x"
    outside.mkdir()
    (outside / "sweep.json").write_text(json.dumps({"notebook": "standin", "grid": {}, "points": []}))
    (tmp_path / "runs" / "sweeps" / "t").mkdir(parents=True)
    (tmp_path / "runs" / "sweeps" / "t" / "sweep.json").write_text((outside / "sweep.json").read_text())
    monkeypatch.chdir(tmp_path / "runs" / "sweeps")
    for argv in (["../../x"], [str(outside)], ["t", "--output", "../../x/table"]):
        assert cli.main(["sweep-table", *argv]) == 2, argv
        assert "sweep-table writes only under" in capsys.readouterr().err
    assert sorted(p.name for p in outside.iterdir()) == ["sweep.json"]  # nothing written there
    assert cli.main(["sweep-table", "t"]) == 0
    assert (tmp_path / "runs" / "sweeps" / "t" / "table.csv").is_file()


# ----------------------------------------------------------------------------- kernels (slow)
def _one_point(args):
    from adv2.book import sweepworker

    nb, point = args
    return sweepworker.run_group(nb, [point], lambda kind, payload: None)[0]


@pytest.mark.slow
def test_eight_kernels_started_at_once_do_not_collide(tmp_path):
    """What 8 concurrent sweep tasks do, without Ray: 8 processes each start a kernel at the same
    moment (IPC sockets in private folders: no TCP ports to race for)."""
    from concurrent.futures import ProcessPoolExecutor

    nb = str(standin_notebook(tmp_path / "standin.ipynb"))
    points = [
        {
            "id": f"x-{i}",
            "params": {"x": float(i), "sleep": 3.0, "results_dir": str(tmp_path / f"x-{i}")},
            "folder": str(tmp_path / f"x-{i}"),
        }
        for i in range(8)
    ]
    with ProcessPoolExecutor(8) as pool:
        outcomes = list(pool.map(_one_point, [(nb, p) for p in points]))
    assert [o["status"] for o in outcomes] == ["ok"] * 8, [o["error"] for o in outcomes]
    runs = [json.loads((tmp_path / f"x-{i}" / "standin.json").read_text())["numbers"] for i in range(8)]
    assert len({r["pid"] for r in runs}) == 8
    assert max(r["started"] for r in runs) < min(r["ended"] for r in runs)  # all alive at once


@pytest.mark.slow
def test_a_group_runs_in_one_kernel_with_a_fresh_namespace_and_retries_a_failure(tmp_path):
    from adv2.book import sweepworker

    nb = str(standin_notebook(tmp_path / "standin.ipynb"))
    points = [
        {"id": f"x-{i}", "params": {"x": float(i), "fail_at": 2.0, "results_dir": str(tmp_path / f"x-{i}")}}
        for i in (1, 3, 2)
    ]
    for p in points:
        p["folder"] = p["params"]["results_dir"]
    events = []
    outcomes = sweepworker.run_group(nb, points, lambda kind, payload: events.append((kind, payload["id"])))
    assert [o["status"] for o in outcomes] == ["ok", "ok", "failed"]
    assert [o["attempts"] for o in outcomes] == [1, 1, 2]
    # points 1 and 3 ran in the same kernel (the namespace check in the notebook passed)
    pids = [json.loads((tmp_path / f"x-{i}" / "standin.json").read_text())["numbers"]["pid"] for i in (1, 3)]
    assert pids[0] == pids[1]
    assert outcomes[2]["cell_source"].startswith("if x == fail_at")
    assert events == [
        ("started", "x-1"),
        ("finished", "x-1"),
        ("started", "x-3"),
        ("finished", "x-3"),
        ("started", "x-2"),
        ("finished", "x-2"),
    ]


# ----------------------------------------------------------------------------- Ray (slow)
@pytest.fixture(scope="module")
def ray8():
    """A local Ray with 8 logical CPUs (so 8 kernels start at once), 1 thread per task."""
    pytest.importorskip("ray")

    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["ADV2_THREADS"] = "1"
    raylocal.connect(None, 8)
    yield
    raylocal.shutdown()


@pytest.mark.slow
def test_eight_points_start_at_once_without_port_collisions(ray8, tmp_path):
    from adv2.book import sweep

    nb = standin_notebook(tmp_path / "standin.ipynb")
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    result = sweep.run_sweep(
        nb,
        {"x": [float(i) for i in range(8)]},
        {"barrier": str(barrier), "barrier_n": 8},
        "smoke",
        "eight",
        root=tmp_path,
        progress=False,
    )
    assert result.tasks == 8 and not result.failed, sweep.failure_report(result)
    runs = [json.loads((tmp_path / "eight" / p.id / "standin.json").read_text()) for p in result.plan.points]
    assert len({r["numbers"]["pid"] for r in runs}) == 8  # 8 kernels
    # all 8 kernels were alive at the same moment
    assert max(r["numbers"]["started"] for r in runs) < min(r["numbers"]["ended"] for r in runs)


@pytest.mark.slow
def test_a_failing_point_is_retried_reported_and_does_not_stop_the_others(ray8, tmp_path, capsys):
    from adv2.book import sweep

    nb = standin_notebook(tmp_path / "standin.ipynb")
    grid = {"x": [1.0, 2.0, 3.0, 4.0]}
    result = sweep.run_sweep(nb, grid, {"fail_at": 3.0}, "smoke", "fail", root=tmp_path, progress=False)
    assert [o["id"] for o in result.failed] == ["x-3.0"]
    bad = result.failed[0]
    assert bad["attempts"] == 2 and "deliberate failure at x=3.0" in bad["error"]
    assert bad["cell_source"].startswith("if x == fail_at") and bad["params"]["x"] == 3.0
    assert (tmp_path / "fail" / "x-3.0" / "standin.failed.ipynb").is_file()
    for x in ("1.0", "2.0", "4.0"):
        assert json.loads((tmp_path / "fail" / f"x-{x}" / "point.json").read_text())["status"] == "ok"
    out = capsys.readouterr().out
    assert "point x-3.0 {'x': 3.0} failed after 2 attempt(s) in cell" in out
    record = json.loads((tmp_path / "fail" / "sweep.json").read_text())
    assert record["status"] == "failed" and len(record["points"]) == 4
    # the table: one row per point, the failed one without numbers
    columns, rows = sweeptable.gather(tmp_path / "fail")
    assert [r["point"] for r in rows] == ["x-1.0", "x-2.0", "x-3.0", "x-4.0"]
    assert rows[2]["status"] == "failed" and rows[2]["square"] is None and rows[3]["square"] == 16.0


@pytest.mark.slow
def test_resume_after_an_interrupted_sweep_runs_only_the_missing_points(ray8, tmp_path):
    from adv2.book import sweep

    nb = standin_notebook(tmp_path / "standin.ipynb")
    gate = tmp_path / "gate"
    env = {**os.environ, paths.RUNS_ENV: str(tmp_path), "PYTHONPATH": str(REPO_ROOT / "lib")}
    cmd = [sys.executable, "-m", "adv2", "sweep", str(nb), "-g", "x", "1,2,3,4", "-p", "gate", str(gate)]
    cmd += [
        "-p",
        "gate_from",
        "3",
        "--name",
        "resume",
        "--num-cpus",
        "2",
        "--profile",
        "smoke",
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    folder = tmp_path / "sweeps" / "resume"
    deadline = time.time() + 480  # the subprocess starts its own Ray first
    done = lambda: [x for x in ("1", "2") if (folder / f"x-{x}" / "point.json").is_file()]
    while len(done()) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    if len(done()) < 2:
        proc.send_signal(signal.SIGINT)  # let it stop its Ray
        pytest.fail(f"points 1 and 2 did not finish: {proc.communicate(timeout=120)[0][-2000:]}")
    proc.send_signal(signal.SIGINT)  # points 3 and 4 are waiting for the gate
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode != 0 and "interrupted" in out, out
    assert json.loads((folder / "sweep.json").read_text())["status"] == "interrupted"
    before = {x: (folder / f"x-{x}" / "standin.ipynb").stat().st_mtime_ns for x in ("1", "2")}
    gate.write_text("open")
    prepared: list[int] = []
    result = sweep.run_sweep(
        nb,
        {"x": [1, 2, 3, 4]},
        {"gate": str(gate), "gate_from": 3},
        "smoke",
        "resume",
        root=tmp_path / "sweeps",
        progress=False,
        before_run=lambda: prepared.append(1),
    )
    assert sorted(result.outcomes) == ["x-3", "x-4"] and not result.failed
    assert prepared == [1]  # once, before the points that were left
    assert {x: (folder / f"x-{x}" / "standin.ipynb").stat().st_mtime_ns for x in ("1", "2")} == before
    assert len(sweeptable.gather(folder)[1]) == 4


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_a_stopped_sweep_driver_leaves_no_ray_process(tmp_path, sig):
    """A real local Ray, its driver stopped while a point runs. SIGTERM: the sweep stops its Ray
    itself and marks its record interrupted. kill -9: Ray's dashboard and runtime-env agents
    outlive it (re-parented, SIGTERM ignored) until ``sweep --cleanup`` ends every process the
    sweep recorded and marks the record interrupted."""
    pytest.importorskip("ray")
    from adv2.book import sweeplock

    nb = standin_notebook(tmp_path / "standin.ipynb")
    gate = tmp_path / "gate"  # never opened: the point waits until the driver is stopped
    env = _lib_env(**{paths.RUNS_ENV: str(tmp_path), "OMP_NUM_THREADS": "1", "ADV2_THREADS": "1"})
    cmd = [sys.executable, "-m", "adv2", "sweep", str(nb), "-g", "x", "1", "-p", "gate", str(gate)]
    cmd += ["-p", "gate_from", "0", "--name", "k", "--num-cpus", "1", "--profile", "smoke", "--no-progress"]
    driver = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    folder = tmp_path / "sweeps" / "k"
    deadline = time.time() + 300  # Ray starts slowly on a busy machine

    def holder() -> dict:
        try:
            return json.loads((folder / sweeplock.HOLDER).read_text())
        except (OSError, ValueError):
            return {}

    def kernel_recorded() -> bool:
        return any("ipykernel" in _cmdline(int(p)) for p in holder().get("ray_processes", {}))

    # wait until the point's kernel runs (the driver records a worker's children every 2 s)
    while time.time() < deadline and driver.poll() is None and not kernel_recorded():
        time.sleep(0.5)
    recorded, running = holder(), kernel_recorded()
    driver.send_signal(sig)
    out = driver.communicate(timeout=120)[0]
    procs = {int(p): s for p, s in recorded.get("ray_processes", {}).items()}
    assert running, out[-2000:]
    time.sleep(2)  # Ray's own processes notice their driver is gone; the agents do not
    cleanup = [sys.executable, "-m", "adv2", "sweep", "--cleanup"]
    if sig == signal.SIGTERM:
        assert "sweep k interrupted" in out, out[-2000:]
        assert not (folder / sweeplock.HOLDER).exists()
        assert "0 killed sweep(s) cleared" in subprocess.check_output(cleanup, env=env, text=True)
    else:
        assert any(sweeplock.alive(p, s) for p, s in procs.items()), "nothing was left to clean up"
        proc = subprocess.run(cleanup, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and "sweep 'k' was killed" in proc.stdout, proc.stdout + proc.stderr
    left = [p for p, s in procs.items() if sweeplock.alive(p, s)]
    assert not left, [_cmdline(p) for p in left]
    assert not sweeplock.session_processes(recorded["ray_session"])  # nothing of that Ray at all
    assert json.loads((folder / "sweep.json").read_text())["status"] == "interrupted"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.slow
def test_four_point_smoke_sweep_of_chapter_3_in_under_three_minutes(small_trained_resnet, tmp_path):
    """The real chapter 3 at the smoke profile (grad and CAM, FMNIST only) on a local Ray with 2
    CPUs; the smoke classifier comes from the session's cache (the fixture trains it once)."""
    ray = pytest.importorskip("ray")
    from adv2.book import sweep

    if ray.is_initialized():
        raylocal.shutdown()
    started = time.time()
    result = sweep.run_sweep(
        CH3,
        {"epsilon": [0.05, 0.1], "seed": [0, 1]},
        {"interpreters": ["grad", "cam"], "imagenet_sample": False},
        "smoke",
        "smoke4",
        num_cpus=2,
        root=tmp_path,
        progress=False,
    )
    seconds = time.time() - started
    assert not result.failed, sweep.failure_report(result)
    assert result.tasks == 2 and len(result.outcomes) == 4
    assert seconds < 180, f"the 4-point smoke sweep took {seconds:.0f} s"
    columns, rows = sweeptable.gather(tmp_path / "smoke4")
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    key = "fashion-mnist.resnet.grad.adv2.success_rate"
    assert key in columns and all(0 <= r[key] <= 1 for r in rows)
    print(f"4-point smoke sweep: {seconds:.0f} s, {result.tasks} tasks")


def test_the_code_fingerprint_covers_the_whole_library(tmp_path, monkeypatch):
    """A sweep point is reused only when every floor's code is the same (the fingerprint once
    covered only the module's own folder after the move into floors)."""
    import shutil

    from adv2.book import sweepplan

    root = sweepplan.library_root()
    assert (root / "core" / "attacks" / "adv2.py").is_file() and (root / "chapters").is_dir()
    copy = tmp_path / "adv2"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(sweepplan, "library_root", lambda: copy)
    before = sweepplan.code_fingerprint()
    (copy / "core" / "attacks" / "adv2.py").write_text(
        (copy / "core" / "attacks" / "adv2.py").read_text() + "\n# changed\n"
    )
    assert sweepplan.code_fingerprint() != before
