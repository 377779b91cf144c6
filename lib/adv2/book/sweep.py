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

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adv2.book import sweeplock, sweepplan
from adv2.book.paths import shown_path, sweeps_root
from adv2.book.raylocal import connect, ray_session, shutdown, task_resources
from adv2.book.runner import resolve_profile
from adv2.book.sweepplan import POINT_RECORD, SWEEP_RECORD, Plan
from adv2.book.sweepworker import run_group
from adv2.core.progress import progress_bar
from adv2.trained.files import atomic_write_json, atomic_write_text

_POLL_S = 0.5
_WATCH_S = 2.0  # how often a running sweep records its local Ray's processes (a /proc scan)


@dataclass
class SweepResult:
    plan: Plan
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: int = 0
    seconds: float = 0.0

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [o for o in self.outcomes.values() if o.get("status") != "ok"]


def _task(notebook: str, points: list[dict[str, Any]], board: Any) -> list[dict[str, Any]]:
    """One Ray task: run a group of points in one kernel, posting each start and outcome."""
    import ray

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
    return shown_path(notebook)  # relative to the repository: each node resolves its own


def _point_arg(point: sweepplan.Point, code: str) -> dict[str, Any]:
    # the plan's code fingerprint goes with the point: the worker records the very value that
    # decided the point was to run, and the driver's copy of the record keeps it
    return {"id": point.id, "params": point.params, "folder": shown_path(point.folder), "code": code}


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
    profile = resolve_profile(profile)
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


def _run(
    plan: Plan,
    lock: sweeplock.SweepLock,
    before_run: Callable[[], None] | None,
    address: str | None,
    num_cpus: int | None,
    cpus_per_task: float,
    progress: bool,
) -> SweepResult:
    notebook = plan.notebook
    result = SweepResult(plan)
    started = time.time()
    if not plan.todo:
        print(f"[adv2] {plan.summary()}; nothing to run ({shown_path(plan.folder)})", flush=True)
        return result
    if before_run is not None:
        before_run()
    import ray

    ours = connect(address, num_cpus)
    # a local Ray this sweep started: its processes are recorded, for a cleanup after a kill -9
    session = ray_session() if ours and not address else None
    watch = (lambda: lock.record_ray(session)) if session else (lambda: None)
    try:
        watch()
        resources, slots = task_resources(cpus_per_task)
        plan.tasks = sweepplan.group(plan.todo, notebook.stem, slots)
        result.tasks = len(plan.tasks)
        print(
            f"[adv2] {plan.summary()} (up to {slots} at once, each task {resources}; points that share "
            "their trained models run in one kernel, one after another: the attacks take one epsilon "
            f"per call); folder {shown_path(plan.folder)}",
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


__all__ = ["SweepResult", "failure_report", "run_sweep"]
