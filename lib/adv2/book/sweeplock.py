"""One sweep at a time per name, and no Ray process left behind by a killed sweep.

A running sweep holds ``runs/sweeps/NAME/sweep.lock`` with ``flock``: the kernel lets go of it
when the holder ends in any way (kill -9 included), so a lock is never held by a dead process and
needs no guess about pids. The holder describes itself in ``sweep.holder.json`` beside it: host,
pid, start time and, when the sweep started a local Ray, that Ray's session folder and processes.
The holder removes that file when it ends normally; a holder file without a holder (the lock is
free) is what a killed sweep leaves: the next sweep (any name) or ``python -m adv2 sweep --cleanup``
ends the processes it lists, marks the sweep's record "interrupted" and removes it.

Ray's processes are recorded by pid while the sweep runs because a killed driver's dashboard and
runtime-env agents rename themselves (``ray::DashboardAgent``), are re-parented to init and ignore
SIGTERM: afterwards nothing but the recorded pid finds them. Each pid goes with its start time
(``/proc/PID/stat``), so a pid the system has since given to another process is never signalled.

Linux only (``/proc``, ``flock``), like the local Ray it cleans up after.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

from adv2.book.sweepplan import SWEEP_RECORD
from adv2.core.config import ParameterError
from adv2.trained.files import atomic_write_json

LOCK = "sweep.lock"
HOLDER = "sweep.holder.json"
GRACE_S = 5.0  # SIGTERM first; what is still alive after this gets SIGKILL


# ----------------------------------------------------------------------------- processes
def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, start time in clock ticks since boot, state) of a process, None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[1]), int(fields[19]), fields[0]
    except (OSError, ValueError, IndexError):
        return None


def start_time(pid: int) -> int | None:
    """The process's start time (its identity with the pid), None if it is gone or a zombie."""
    st = _stat(pid)
    return None if st is None or st[2] in ("Z", "X") else st[1]


def alive(pid: int, start: int) -> bool:
    """Whether ``pid`` is still the process that started at ``start`` (not dead, not a zombie,
    not a new process that got the same pid)."""
    return start_time(pid) == start


def processes() -> dict[int, tuple[int, int, str]]:
    """Every live process but this one: pid -> (parent pid, start time, command line)."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        st = _stat(int(entry))
        if st is None or st[2] in ("Z", "X"):
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        out[int(entry)] = (st[0], st[1], cmdline)
    return out


def session_processes(session: str) -> dict[int, int]:
    """pid -> start time of one local Ray session's processes: those whose command line names its
    session folder, and all their descendants (the agents and workers rename themselves; the
    workers' Jupyter kernels name nothing of Ray)."""
    name = os.path.basename(os.path.normpath(session))
    if not name.startswith("session_"):
        return {}
    table = processes()
    found = {pid for pid, (_, _, cmd) in table.items() if name in cmd}
    while True:
        more = {pid for pid, (ppid, _, _) in table.items() if ppid in found} - found
        if not more:
            break
        found |= more
    return {pid: table[pid][1] for pid in found}


def end_processes(procs: dict[int, int], grace: float | None = None) -> list[int]:
    """End the processes ``{pid: start time}`` that are still those processes: SIGTERM, then
    SIGKILL for whatever is alive after ``grace`` seconds (default :data:`GRACE_S`). Returns the
    pids that were alive."""
    grace = GRACE_S if grace is None else grace
    targets = {pid: start for pid, start in procs.items() if alive(pid, start)}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid, start in targets.items():
            if alive(pid, start):
                try:
                    os.kill(pid, sig)
                except OSError:  # ended meanwhile
                    pass
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline and any(alive(p, s) for p, s in targets.items()):
            time.sleep(0.1)
    return sorted(targets)


# ----------------------------------------------------------------------------- the lock
def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class SweepLock:
    """The lock of one sweep folder (see the module's docstring). :meth:`acquire` refuses with a
    :class:`ParameterError` naming the holder while another process runs the sweep."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.fd: int | None = None
        self.info: dict[str, Any] = {}

    @property
    def holder_file(self) -> Path:
        return self.folder / HOLDER

    def acquire(self) -> str | None:
        """Take the lock; returns what was cleaned up after a killed earlier holder (or None)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ParameterError(busy_message(self.folder, _read(self.holder_file))) from None
        self.fd = fd
        cleaned = clear_leftovers(self.folder)  # a holder file here is a killed holder's
        self.info = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "pid_start": start_time(os.getpid()),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "ray_session": None,
            "ray_processes": {},
        }
        atomic_write_json(self.holder_file, self.info)
        return cleaned

    def record_ray(self, session: str) -> None:
        """Record (again) the processes of the local Ray session this sweep started: called when
        Ray is up and while the sweep runs (workers and their kernels come and go)."""
        procs = session_processes(session)
        known = {int(p): s for p, s in self.info.get("ray_processes", {}).items()}
        if self.info.get("ray_session") == session and set(procs) <= set(known):
            return
        known.update(procs)  # ended ones stay listed: their start time tells they are gone
        self.info.update(ray_session=session, ray_processes={str(p): s for p, s in sorted(known.items())})
        atomic_write_json(self.holder_file, self.info)

    def release(self) -> None:
        if self.fd is None:
            return
        self.holder_file.unlink(missing_ok=True)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> SweepLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def busy_message(folder: Path, holder: dict[str, Any] | None) -> str:
    who = "another process"
    if holder:
        who = f"process {holder.get('pid')} on {holder.get('host')} (started {holder.get('started')})"
        pid, start = holder.get("pid"), holder.get("pid_start")
        if holder.get("host") == socket.gethostname() and isinstance(pid, int) and not alive(pid, start):
            # flock is inherited by forked children: they hold it after their parent is gone
            who += f", which is gone while processes it forked still hold the lock (fuser {folder / LOCK})"
    return (
        f"sweep {folder.name!r} is running now in {who}; wait for it to finish, or give this sweep "
        f"another name (--name); lock: {folder / LOCK}"
    )


def clear_leftovers(folder: Path) -> str | None:
    """With the lock held (or known free): end what a killed holder left (its recorded Ray
    processes, on this host), mark its record interrupted, remove its holder file. Returns a
    one-line account, or None when there was nothing to clear."""
    path = Path(folder) / HOLDER
    holder = _read(path)
    if holder is None:
        path.unlink(missing_ok=True)  # unreadable: a write cut short, it lists nothing
        return None
    procs = {int(p): int(s) for p, s in (holder.get("ray_processes") or {}).items()}
    here = holder.get("host") == socket.gethostname()
    ended = end_processes(procs) if here else []
    record = _read(Path(folder) / SWEEP_RECORD)
    marked = record is not None and record.get("status") == "running"
    if marked:
        record["status"] = "interrupted"
        record["interrupted"] = (
            f"its process {holder.get('pid')} on {holder.get('host')} ended without finishing "
            f"(killed?); found {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
        )
        atomic_write_json(Path(folder) / SWEEP_RECORD, record)
    path.unlink(missing_ok=True)
    where = (
        f"ended its {len(ended)} leftover Ray process(es)"
        if here
        else (f"its Ray processes were on {holder.get('host')}, not here: end them there")
    )
    return f"sweep {Path(folder).name!r} was killed (process {holder.get('pid')}): {where}" + (
        "; its record now says interrupted" if marked else ""
    )


def cleanup(root: Path) -> list[str]:
    """Clear every killed sweep under ``root`` (a sweep running now is left alone); returns one
    line per sweep cleared."""
    lines = []
    for path in sorted(Path(root).glob(f"*/{HOLDER}")):
        lock = SweepLock(path.parent)
        try:
            cleaned = lock.acquire()
        except ParameterError:  # running now
            continue
        lock.release()
        if cleaned:
            lines.append(cleaned)
    return lines


__all__ = [
    "GRACE_S",
    "HOLDER",
    "LOCK",
    "SweepLock",
    "alive",
    "busy_message",
    "cleanup",
    "end_processes",
    "processes",
    "session_processes",
    "start_time",
]
