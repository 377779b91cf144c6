"""Parameter sweeps on Ray: a grid of chapter runs, local by default, on a cluster when there is one.

    python -m adv2 sweep 03 -g epsilon 0.03,0.1,0.2 -g seed 0,1 -p interpreters '[grad,cam]'
    python -m adv2 sweep 03 -g epsilon 0.03,0.1 --address auto       # an existing Ray cluster
    python -m adv2 sweep-table 03-quick-epsilon-seed                  # one row per point

The grid is expanded and every point validated before anything starts (:mod:`adv2.book.sweepplan`);
then each group of points is one Ray task (:mod:`adv2.book.sweepworker`). Without ``--address`` a
local Ray starts on this machine's cores (``--num-cpus``); a task asks for one GPU when the
cluster has GPUs and for ``--cpus-per-task`` cores otherwise, so how many points run at once
follows the resources. Every point writes into ``runs/sweeps/<name>/<point id>/`` (never into the
published book); a sweep started again skips its complete points; a failed point is retried once,
then reported while the others finish.

A name is one sweep: while it runs, another sweep of that name is refused (:mod:`adv2.book.sweeplock`),
and a name that holds another grid is refused (:func:`adv2.book.sweepplan.check_same_grid`). A sweep
killed outright (kill -9) leaves its local Ray's agents alive: the next sweep, or
``python -m adv2 sweep --cleanup``, ends them and marks its record "interrupted".
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adv2.book import sweeplock, sweepplan
from adv2.core.config import ParameterError
from adv2.core.progress import progress_bar
from adv2.trained.files import atomic_write_json, atomic_write_text
from adv2.book.sweepplan import POINT_RECORD, SWEEP_RECORD, Plan

SWEEPS_DIR = "sweeps"  # under the runs folder (runner.runs_root(): runs/ or $ADV2_RUNS_DIR)
_POLL_S = 0.5
_WATCH_S = 2.0  # how often a running sweep records its local Ray's processes (a /proc scan)


def sweeps_root() -> Path:
    from adv2.book import runner

    return runner.runs_root() / SWEEPS_DIR


@dataclass
class SweepResult:
    plan: Plan
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: int = 0
    seconds: float = 0.0

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [o for o in self.outcomes.values() if o.get("status") != "ok"]


# ----------------------------------------------------------------------------- Ray
def connect(address: str | None, num_cpus: int | None) -> bool:
    """Join the cluster at ``address`` (``auto``, ``ray://host:port``) or start a local Ray with
    ``num_cpus`` logical CPUs (default: this machine's). Returns whether this call started Ray
    (then :func:`run_sweep` shuts it down)."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline machines: no usage report
    # a busy machine starts worker processes slowly: let them register (default 60 s)
    os.environ.setdefault("RAY_worker_register_timeout_seconds", "600")
    common = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
    if address:
        ray.init(address=address, **common)
        return True
    cpus = num_cpus or os.cpu_count() or 1
    try:
        # "local": a new Ray of our own, even where `ray start` left a cluster to join
        ray.init(address="local", num_cpus=cpus, object_store_memory=_OBJECT_STORE, **common)
        return True
    except Exception as err:  # noqa: BLE001  (Ray raises a bare Exception for this)
        if "timed out during startup" not in str(err):
            raise
    # Ray's raylet gives its Python agents 15 s (fixed) to report their ports. On a machine busy
    # with other jobs they miss it; then start the head with fixed ports instead (ray start), which
    # leaves one port file to wait for, the one the minimal agent fills with -1 ("no HTTP server").
    _stop_session_leftovers()
    print(
        "[adv2] the local Ray did not start in time (busy machine); starting it with fixed ports", flush=True
    )
    head = _start_head(cpus)
    _HEADS.append((head, os.path.realpath("/tmp/ray/session_latest")))  # its session, to stop it
    ray.init(address=head, **common)
    return True


_OBJECT_STORE = 100 * 2**20
# local heads this process started with `ray start`: (address, session folder), stopped at the end
_HEADS: list[tuple[str, str]] = []


def _free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for sk in socks:
            sk.bind(("127.0.0.1", 0))
        return [sk.getsockname()[1] for sk in socks]
    finally:
        for sk in socks:
            sk.close()


def _start_head(cpus: int) -> str:
    """``ray start --head`` with fixed agent ports; returns the address to ``ray.init``."""
    import glob
    import subprocess
    import sys
    import threading

    gcs, grpc, export, runtime_env = _free_ports(4)
    started = time.time()
    done = threading.Event()

    def fill_listen_port() -> None:
        # the minimal (ray without [default]) dashboard agent writes -1 here: no HTTP server
        while not done.wait(0.2):
            for f in glob.glob("/tmp/ray/session_2*/gcs_server_port_*"):  # not the session_latest link
                try:
                    if os.path.getmtime(f) < started:
                        continue
                    node = f.rsplit("gcs_server_port_", 1)[1]
                    target = os.path.join(os.path.dirname(f), f"dashboard_agent_listen_port_{node}")
                    if not os.path.exists(target):
                        atomic_write_text(target, "-1")
                except OSError:  # an old session removed meanwhile
                    continue

    watcher = threading.Thread(target=fill_listen_port, daemon=True)
    watcher.start()
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "ray"),
        "start",
        "--head",
        f"--port={gcs}",
        f"--num-cpus={cpus}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--dashboard-agent-grpc-port={grpc}",
        f"--metrics-export-port={export}",
        f"--runtime-env-agent-port={runtime_env}",
        f"--object-store-memory={_OBJECT_STORE}",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    finally:
        done.set()
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed: {proc.stderr.strip().splitlines()[-1:]}")
    return f"127.0.0.1:{gcs}"


def shutdown() -> None:
    """Disconnect from Ray and stop a local head :func:`connect` started."""
    import ray

    ray.shutdown()
    _stop_heads()


def _stop_heads() -> None:
    """Stop the local heads this process started (their processes only, by session)."""
    while _HEADS:
        head, session = _HEADS.pop()
        _stop_session_leftovers(session)
        marker = "/tmp/ray/ray_current_cluster"  # where `ray start` records the cluster to join
        try:
            with open(marker) as f:
                if f.read().strip().endswith(":" + head.rsplit(":", 1)[1]):
                    os.unlink(marker)
        except OSError:
            pass


def _stop_session_leftovers(session: str | None = None) -> None:
    """End the processes of one local Ray session (default: the latest, e.g. a failed start's):
    those whose command line names its session folder."""
    import signal

    session = session or os.path.realpath("/tmp/ray/session_latest")
    if not os.path.basename(session).startswith("session_"):
        return
    procs = {}  # pid -> (parent pid, command line)
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        procs[int(entry)] = (ppid, cmdline)
    name = os.path.basename(session)
    doomed = {pid for pid, (_, cmd) in procs.items() if name in cmd}
    # Ray's agents rename themselves (ray::DashboardAgent): they go with the raylet that started them
    doomed |= {pid for pid, (ppid, _) in procs.items() if ppid in doomed}
    for pid in doomed:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(1)


def task_resources(cpus_per_task: float) -> tuple[dict[str, float], int]:
    """(resources one task asks for, tasks the cluster can run at once)."""
    import ray

    total = ray.cluster_resources()
    if total.get("GPU", 0) >= 1:
        return {"num_gpus": 1, "num_cpus": 1}, int(total["GPU"])
    return {"num_cpus": cpus_per_task}, max(1, int(total.get("CPU", 1) // cpus_per_task))


def _task(notebook: str, points: list[dict[str, Any]], board: Any) -> list[dict[str, Any]]:
    """One Ray task: run a group of points in one kernel, posting each start and outcome."""
    import ray

    from adv2.book.sweepworker import run_group

    return run_group(notebook, points, lambda kind, payload: ray.get(board.post.remote(kind, payload)))


class _Board:
    """A tiny actor the tasks post to; the driver drains it to write files and draw progress."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def post(self, kind: str, payload: dict[str, Any]) -> None:
        self.events.append((kind, payload))

    def drain(self) -> list[tuple[str, dict[str, Any]]]:
        out, self.events = self.events, []
        return out


# ----------------------------------------------------------------------------- the sweep
def _notebook_arg(notebook: Path) -> str:
    from adv2.book import runner

    return runner.shown_path(notebook)  # relative to the repository: each node resolves its own


def _point_arg(point: sweepplan.Point, code: str) -> dict[str, Any]:
    from adv2.book import runner

    # the plan's code fingerprint goes with the point: the worker records the very value that
    # decided the point was to run, and the driver's copy of the record keeps it
    return {"id": point.id, "params": point.params, "folder": runner.shown_path(point.folder), "code": code}


def _write_outcome(plan: Plan, outcome: dict[str, Any]) -> None:
    """Put a finished point's files where the sweep lives (the driver's disk)."""
    folder = plan.folder / outcome["id"]
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (outcome.get("files") or {}).items():
        atomic_write_text(folder / name, text)
    if outcome.get("status") == "ok":
        (folder / f"{plan.notebook.stem}.failed.ipynb").unlink(missing_ok=True)
    atomic_write_json(folder / POINT_RECORD, {k: v for k, v in outcome.items() if k != "files"})


def _write_record(result: SweepResult, status: str, address: str | None) -> None:
    plan = result.plan
    points = []
    for p in plan.points:
        o = result.outcomes.get(p.id, {"status": "ok (earlier run)" if p.done else "not run"})
        points.append(
            {"id": p.id, "grid": p.grid, **{k: v for k, v in o.items() if k not in ("files", "id")}}
        )
    atomic_write_json(
        plan.folder / SWEEP_RECORD,
        {
            "name": plan.name,
            "notebook": plan.notebook.stem,
            "profile": plan.profile,
            "grid": plan.grid,
            "fixed": plan.fixed,
            "address": address or "local",
            "status": status,
            "points_total": len(plan.points),
            "points_run": len(result.outcomes),
            "tasks": result.tasks,
            "seconds": round(result.seconds, 1),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "points": points,
        },
    )


def failure_report(result: SweepResult) -> str:
    lines = []
    for o in result.failed:
        where = f"cell {o['cell']}" if o.get("cell") is not None else "before any cell"
        if o.get("cell_source"):
            where += f" ({o['cell_source']!r})"
        shown = {k: v for k, v in (o.get("params") or {}).items() if k in result.plan.grid}
        lines.append(
            f"  point {o['id']} {shown} failed after {o.get('attempts', 1)} attempt(s) in {where}: "
            f"{o.get('error')}\n    see {result.plan.folder / o['id']}"
        )
    return "\n".join(lines)


def run_sweep(
    notebook: Path,
    grid: dict[str, list[Any]],
    fixed: dict[str, Any] | None = None,
    profile: str = "auto",
    name: str | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    cpus_per_task: float = 1,
    root: Path | None = None,
    progress: bool = True,
    before_run: Callable[[], None] | None = None,
) -> SweepResult:
    """Plan, validate, skip complete points, run the rest on Ray; return what happened.
    ``before_run`` is called once before the first point, only when there is one to run (chapter
    8 trains the points' shared models there).

    Raises :class:`ParameterError` (before anything runs) for an invalid point; a failed point
    does not raise: it is in ``result.failed`` (and in ``sweep.json``)."""
    from adv2.book import runner

    profile = runner.resolve_profile(profile)
    root = root or sweeps_root()
    # validated, and checked against the name's record, before anything is written
    plan = sweepplan.plan(notebook, profile, grid, dict(fixed or {}), name, root)
    for line in sweeplock.cleanup(root):  # what killed sweeps left behind (their Ray processes)
        print(f"[adv2] {line}", flush=True)
    lock = sweeplock.SweepLock(plan.folder)
    cleaned = lock.acquire()  # refused while another process runs this sweep
    if cleaned:  # a sweep of this name killed since the cleanup above
        print(f"[adv2] {cleaned}", flush=True)
    try:
        sweepplan.refresh(plan)  # another sweep of this name may have run meanwhile
        return _run(plan, lock, before_run, address, num_cpus, cpus_per_task, progress)
    finally:
        lock.release()


def _ray_session() -> str | None:
    """The session folder of the Ray this process is connected to (None if unknown)."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    try:
        return node.get_session_dir_path() if node is not None else None
    except Exception:  # noqa: BLE001  (a private API: without it the sweep still runs)
        return None


def _run(
    plan: Plan,
    lock: sweeplock.SweepLock,
    before_run: Callable[[], None] | None,
    address: str | None,
    num_cpus: int | None,
    cpus_per_task: float,
    progress: bool,
) -> SweepResult:
    from adv2.book import runner

    notebook = plan.notebook
    result = SweepResult(plan)
    started = time.time()
    if not plan.todo:
        print(f"[adv2] {plan.summary()}; nothing to run ({runner.shown_path(plan.folder)})", flush=True)
        return result
    if before_run is not None:
        before_run()
    import ray

    ours = connect(address, num_cpus)
    # a local Ray this sweep started: its processes are recorded, for a cleanup after a kill -9
    session = _ray_session() if ours and not address else None
    watch = (lambda: lock.record_ray(session)) if session else (lambda: None)
    try:
        watch()
        resources, slots = task_resources(cpus_per_task)
        plan.tasks = sweepplan.group(plan.todo, notebook.stem, slots)
        result.tasks = len(plan.tasks)
        print(
            f"[adv2] {plan.summary()} (up to {slots} at once, each task {resources}; points that share "
            "their trained models run in one kernel, one after another: the attacks take one epsilon "
            f"per call); folder {runner.shown_path(plan.folder)}",
            flush=True,
        )
        plan.folder.mkdir(parents=True, exist_ok=True)
        _write_record(result, "running", address)
        board = ray.remote(num_cpus=0)(_Board).remote()
        remote = ray.remote(_task).options(max_retries=1, **resources)
        pending = [
            remote.remote(_notebook_arg(notebook), [_point_arg(p, plan.code) for p in t], board)
            for t in plan.tasks
        ]
        members = dict(zip(pending, plan.tasks))
        _follow(result, pending, members, board, progress, address, watch)
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C; SIGTERM (ray.init makes it sys.exit)
        result.seconds = time.time() - started
        _write_record(result, "interrupted", address)
        print(
            f"\n[adv2] sweep {plan.name} interrupted; {len(result.outcomes)} point(s) finished and are kept: "
            "run the same command again to run only the missing ones",
            flush=True,
        )
        raise
    finally:
        if ours:
            shutdown()
    result.seconds = time.time() - started
    _write_record(result, "failed" if result.failed else "ok", address)
    ok = len(result.outcomes) - len(result.failed)
    print(
        f"[adv2] sweep {plan.name}: {ok} point(s) ran, {len(result.failed)} failed, "
        f"{len(plan.points) - len(plan.todo)} skipped; {result.tasks} task(s) in {result.seconds:.0f} s",
        flush=True,
    )
    if result.failed:
        print(failure_report(result), flush=True)
    return result


def _follow(
    result: SweepResult,
    pending: list,
    members: dict,
    board: Any,
    progress: bool,
    address: str | None,
    watch: Callable[[], None],
) -> None:
    """Wait for the tasks, writing each point's files as it finishes and drawing the progress;
    ``watch`` (every few seconds) records the local Ray's processes as workers and kernels start."""
    import ray

    running: set[str] = set()
    watched = time.monotonic()
    bar = progress_bar(total=len(result.plan.todo), desc=f"sweep {result.plan.name}", enabled=progress)

    def drain() -> None:
        for kind, payload in ray.get(board.drain.remote()):
            if kind == "started":
                running.add(payload["id"])
            else:
                running.discard(payload["id"])
                _write_outcome(result.plan, payload)
                result.outcomes[payload["id"]] = payload
                bar.update(1)
        bar.set_postfix_str(f"running {len(running)}, failed {len(result.failed)}")

    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=_POLL_S)
            drain()
            for ref in ready:
                try:
                    ray.get(ref)
                except ray.exceptions.RayError as err:  # the worker died twice (Ray retried it once)
                    for p in members[ref]:
                        if p.id not in result.outcomes:
                            outcome = {
                                "id": p.id,
                                "status": "failed",
                                "params": p.params,
                                "attempts": 2,
                                "cell": None,
                                "error": f"{type(err).__name__}: {str(err).splitlines()[0]}",
                            }
                            _write_outcome(result.plan, outcome)
                            result.outcomes[p.id] = outcome
                            running.discard(p.id)
                            bar.update(1)
            if ready:
                _write_record(result, "running", address)
            if time.monotonic() - watched > _WATCH_S:
                watch()
                watched = time.monotonic()
        drain()
    finally:
        bar.close()


def main(args: Any) -> int:
    """``python -m adv2 sweep`` (arguments parsed by :func:`adv2.book.runner.build_parser`)."""
    from adv2.book import runner

    if getattr(args, "cleanup", False):
        if args.notebook or args.grid or args.for_chapter:
            raise ParameterError("--cleanup takes no notebook, -g or --for: it only clears killed sweeps")
        lines = sweeplock.cleanup(sweeps_root())
        for line in lines:
            print(f"[adv2] {line}", flush=True)
        print(
            f"[adv2] cleanup: {len(lines)} killed sweep(s) cleared under {runner.shown_path(sweeps_root())}"
        )
        return 0
    if args.for_chapter:
        from adv2.chapters import ch08

        if args.notebook or args.grid:
            raise ParameterError("--for takes the grid from the chapter; give no notebook and no -g")
        spec = ch08.sweep_spec(runner.resolve_profile(args.profile), runner.parse_overrides(args.parameter))
        notebook, grid, fixed, name = spec["notebook"], spec["grid"], spec["fixed"], args.name or spec["name"]
    else:
        if not args.notebook:
            raise ParameterError("give a notebook (e.g. 03) or --for CHAPTER")
        notebook = _select(args.notebook)
        grid, fixed, name = sweepplan.parse_grid(args.grid), runner.parse_overrides(args.parameter), args.name
    if args.artifacts_dir:
        fixed["artifacts_dir"] = args.artifacts_dir
    if args.check:
        profile = runner.resolve_profile(args.profile)
        plan = sweepplan.plan(notebook, profile, grid, fixed, name, sweeps_root())
        print(f"[adv2] check: {plan.summary().replace(' as 0 task(s)', '')}; nothing ran")
        for p in plan.points:
            print(f"  {p.id}: {'complete' if p.done else 'to run'}")
        return 0
    try:
        with runner._sigterm_interrupts():  # SIGTERM stops the sweep as Ctrl-C does (Ray stopped)
            result = run_sweep(
                notebook,
                grid,
                fixed,
                args.profile,
                name,
                args.address,
                args.num_cpus,
                args.cpus_per_task,
                progress=not args.no_progress,
                before_run=ch08.preparation(spec, args.profile, args.address) if args.for_chapter else None,
            )
    except KeyboardInterrupt as err:
        return 128 + getattr(err, "signum", 2)  # run_sweep said what is kept and how to resume
    print(f"[adv2] the table: python -m adv2 sweep-table {result.plan.name}", flush=True)
    return 1 if result.failed else 0


def _select(name: str) -> Path:
    from adv2.book import runner

    path = Path(name)
    if path.suffix == ".ipynb" and path.is_file():
        return path.resolve()
    notebooks = runner.select_notebooks([name])
    if len(notebooks) != 1:
        raise ParameterError(f"{name!r} names {len(notebooks)} notebooks; a sweep runs one")
    return notebooks[0]


__all__ = [
    "SWEEPS_DIR",
    "SweepResult",
    "connect",
    "failure_report",
    "main",
    "run_sweep",
    "shutdown",
    "sweeps_root",
]
