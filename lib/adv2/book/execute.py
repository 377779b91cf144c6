"""Executing one notebook with papermill in a kernel, and how a run ends early.

A notebook is executed into ``<stem>.running.ipynb`` and renamed to ``<stem>.ipynb`` only when every
cell finished; a failed one becomes ``<stem>.failed.ipynb`` (:class:`RunError`), an interrupted one
(Ctrl-C, SIGTERM) ``<stem>.interrupted.ipynb`` (:class:`RunInterrupted`).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from adv2.book.publish import describe_os_error, notebook_problem
from adv2.core.config import REPO_ROOT
from adv2.core.progress import QUIET_ENV


class RunError(RuntimeError):
    """A notebook failed, or the request named something that does not exist. When a cell failed,
    ``cell`` is its index in the executed notebook and ``ename`` / ``evalue`` its exception."""

    def __init__(self, message: str, cell: int | None = None, ename: str = "", evalue: str = "") -> None:
        super().__init__(message)
        self.cell, self.ename, self.evalue = cell, ename, evalue


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM while a run was going; ``signum`` gives the exit status 128 + signum."""

    def __init__(self, reason: str = "Ctrl-C", signum: int = signal.SIGINT) -> None:
        super().__init__(reason)
        self.signum = int(signum)


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM ends a run the way Ctrl-C does (marked interrupted) instead of killing it silently."""

    def handler(signum: int, frame: Any) -> None:
        raise RunInterrupted(signal.Signals(signum).name, signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _quiet_progress() -> Iterator[None]:
    # the kernel inherits this: no progress widgets in the executed copies the book renders
    previous = os.environ.get(QUIET_ENV)
    os.environ[QUIET_ENV] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(QUIET_ENV, None)
        else:
            os.environ[QUIET_ENV] = previous


def execute_notebook(
    notebook: Path, params: dict[str, Any], run_dir: Path, progress: bool = True, kernel_manager: Any = None
) -> Path:
    """Execute into ``<stem>.running.ipynb``; rename to ``<stem>.ipynb`` only if every cell finished.

    A failing cell leaves ``<stem>.failed.ipynb`` (RunError), an interruption
    ``<stem>.interrupted.ipynb`` (RunInterrupted); a kill -9 leaves the ``.running`` file.
    ``kernel_manager`` (a jupyter_client kernel manager) runs it in that kernel, started if needed
    and left running (the sweep runs several points in one kernel); default: a fresh kernel.
    """
    from papermill.exceptions import PapermillExecutionError

    stem = notebook.stem
    final, running = run_dir / f"{stem}.ipynb", run_dir / f"{stem}.running.ipynb"
    failed, interrupted = run_dir / f"{stem}.failed.ipynb", run_dir / f"{stem}.interrupted.ipynb"
    for old in (final, running, failed, interrupted):  # an earlier run's copy in a reused folder
        old.unlink(missing_ok=True)
    own_kernel = kernel_manager is None
    if own_kernel:  # ours to stop: at once when interrupted (see _stop_kernel)
        from jupyter_client.manager import AsyncKernelManager

        kernel_manager = AsyncKernelManager(kernel_name="python3")
    try:
        _execute(notebook, running, params, progress, kernel_manager, own_kernel)
    except PapermillExecutionError as err:
        if err.ename == "KeyboardInterrupt":
            _rename(running, interrupted)
            raise RunInterrupted("the kernel was interrupted") from None
        _rename(running, failed)
        raise RunError(
            f"notebook {stem} failed in cell {err.cell_index} "
            f"(execution count {err.exec_count}): {err.ename}: {err.evalue}",
            cell=err.cell_index,
            ename=err.ename,
            evalue=err.evalue,
        ) from None
    except KeyboardInterrupt:
        _rename(running, interrupted)
        raise
    except OSError as err:  # the disk is full, the folder went away, ...
        _rename(running, failed)
        raise RunError(f"notebook {stem} failed: {describe_os_error(err)}") from None
    except Exception as err:  # the kernel died, could not start, ...
        _rename(running, failed)
        raise RunError(f"notebook {stem} failed: {type(err).__name__}: {err}") from err
    except BaseException:
        _rename(running, failed)
        raise
    problem = notebook_problem(running)
    if problem is not None:
        _rename(running, failed)
        raise RunError(f"notebook {stem} did not finish: {problem}")
    os.replace(running, final)
    return final


def _execute(
    notebook: Path, output: Path, params: dict[str, Any], progress: bool, km: Any, own_kernel: bool
) -> None:
    """papermill in the kernel of ``km``; a kernel of our own is stopped afterwards: gently when the
    notebook ended (its atexit handlers run), at once when this process was interrupted (asked to
    shut down mid-cell, the kernel printed a zmq traceback on its way out)."""
    import papermill

    interrupted = False
    try:
        with _quiet_progress():
            papermill.execute_notebook(
                str(notebook),
                str(output),
                parameters=params,
                cwd=str(REPO_ROOT),
                progress_bar=progress,
                kernel_name="python3",
                report_mode=False,
                km=km,
            )
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (RunInterrupted)
        interrupted = True
        raise
    finally:
        if own_kernel:
            _stop_kernel(km, now=interrupted)


def _stop_kernel(km: Any, now: bool) -> None:
    from jupyter_core.utils import run_sync

    try:
        if run_sync(km.is_alive)():
            run_sync(km.shutdown_kernel)(now=now)
    except Exception:  # noqa: BLE001  (a kernel that died or never started: nothing left to stop)
        pass


def _rename(src: Path, dst: Path) -> None:
    if src.exists():
        os.replace(src, dst)
