"""Run a group of sweep points, one after another, in one Jupyter kernel (what one Ray task does).

Kernels talk over IPC sockets in a private temporary folder, not TCP ports: jupyter_client picks
"free" TCP ports by binding and releasing them, and kernels started at the same moment by parallel
papermill runs can get the same ports ("Address already in use"). Files in a folder of their own
cannot collide. Between points the kernel's namespace is reset (``%reset -f``), so a point never
sees an earlier point's variables; imported modules (torch, adv2) stay loaded.

A failed point is retried once in a fresh kernel; if it fails again it is reported (its
parameters, the failing cell's index and first line, the error) and the group goes on.
No Ray here: :mod:`adv2.book.sweep` wraps :func:`run_group` in a Ray task.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adv2.book.execute import RunError, execute_notebook
from adv2.book.sweepplan import POINT_RECORD, code_fingerprint
from adv2.core.config import REPO_ROOT

ATTEMPTS = 2  # a failed point runs once more, in a fresh kernel


class IpcKernel:
    """A python3 kernel on IPC sockets in its own temporary folder (no TCP ports)."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="adv2-k-")  # short: a socket path has <= 107 bytes
        self.km: Any = None

    def manager(self) -> Any:
        from jupyter_client.manager import AsyncKernelManager

        if self.km is None:
            self.km = AsyncKernelManager(
                kernel_name="python3",
                transport="ipc",
                ip=os.path.join(self.folder, "k"),
                connection_file=os.path.join(self.folder, "kernel.json"),
            )
        return self.km

    def reset(self) -> None:
        """Clear the user namespace of a running kernel (modules stay imported)."""
        from jupyter_core.utils import run_sync

        if self.km is None or not run_sync(self.km.is_alive)():
            return
        kc = self.km.client()
        kc.start_channels()
        try:
            run_sync(kc.wait_for_ready)(timeout=60)
            run_sync(kc.execute_interactive)("%reset -f", timeout=60, store_history=False)
        finally:
            kc.stop_channels()

    def shutdown(self) -> None:
        from jupyter_core.utils import run_sync

        if self.km is not None:
            try:
                if run_sync(self.km.is_alive)():
                    run_sync(self.km.shutdown_kernel)(now=True)
            except Exception:  # noqa: BLE001  (a dead kernel: nothing left to stop)
                pass
            self.km = None
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = tempfile.mkdtemp(prefix="adv2-k-")

    def close(self) -> None:
        self.shutdown()
        shutil.rmtree(self.folder, ignore_errors=True)


def _resolve(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else REPO_ROOT / p


def failed_cell(executed: Path) -> str:
    """The first line of the cell with an error output in a failed copy ('' if none is found;
    papermill adds a banner cell at the top of a failed copy, so its cell index is off by one)."""
    import nbformat  # lazy: nbformat loads jsonschema (seconds); the command line starts without it

    if not executed.is_file():
        return ""
    try:
        cells = nbformat.read(executed, as_version=4).cells
    except Exception:  # noqa: BLE001  (a broken copy: the report still has the error)
        return ""
    for cell in cells:
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            lines = [line for line in cell.source.splitlines() if line.strip()]
            return lines[0][:200] if lines else ""
    return ""


def _run_point(kernel: IpcKernel, notebook: Path, point: dict[str, Any]) -> dict[str, Any]:
    folder = _resolve(point["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    started = time.time()
    try:
        execute_notebook(notebook, point["params"], folder, progress=False, kernel_manager=kernel.manager())
    except RunError as err:
        failed = folder / f"{notebook.stem}.failed.ipynb"
        return {
            "status": "failed",
            "seconds": round(time.time() - started, 1),
            "error": f"{err.ename}: {err.evalue}" if err.ename else str(err),
            "cell": err.cell,
            "cell_source": failed_cell(failed),
        }
    return {"status": "ok", "seconds": round(time.time() - started, 1), "error": None, "cell": None}


def _files(folder: Path, stem: str) -> dict[str, str]:
    """The point's outputs as text, so the driver can write them where the sweep lives (another
    node of a cluster may not share this one's disk)."""
    out = {}
    for name in (f"{stem}.ipynb", f"{stem}.failed.ipynb", f"{stem}.json"):
        if (folder / name).is_file():
            out[name] = (folder / name).read_text(encoding="utf-8")
    return out


def run_group(
    notebook: str, points: list[dict[str, Any]], report: Callable[[str, dict[str, Any]], None]
) -> list[dict[str, Any]]:
    """Run ``points`` (dicts with ``id``, ``params``, ``folder``) of ``notebook`` in one kernel.

    ``report(kind, payload)`` is called with ``("started", {"id": ...})`` before each point and
    ``("finished", outcome)`` after it (outcome: id, status, seconds, attempts, error, cell,
    cell_source, params, code, files). Returns the outcomes.
    """
    nb = _resolve(notebook)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the kernel inherits it: one thread per task
    os.environ.setdefault("ADV2_THREADS", "1")
    kernel = IpcKernel()
    outcomes = []
    try:
        for i, point in enumerate(points):
            report("started", {"id": point["id"]})
            for attempt in range(1, ATTEMPTS + 1):
                if i > 0 or attempt > 1:
                    kernel.reset()
                outcome = _run_point(kernel, nb, point)
                if outcome["status"] == "ok":
                    break
                kernel.shutdown()  # the retry gets a fresh kernel
            folder = _resolve(point["folder"])
            # the library that computed it (the plan's fingerprint): other code recomputes the point
            code = point.get("code") or code_fingerprint()
            outcome.update(id=point["id"], attempts=attempt, params=point["params"], code=code)
            record = {k: v for k, v in outcome.items() if k != "files"}
            (folder / POINT_RECORD).write_text(json.dumps(record, indent=2, sort_keys=True))
            outcome["files"] = _files(folder, nb.stem)
            report("finished", outcome)
            outcomes.append(outcome)
    finally:
        kernel.close()
    return outcomes


__all__ = ["ATTEMPTS", "IpcKernel", "failed_cell", "run_group"]
