"""The Ray a sweep runs on: a cluster to join, or a local Ray started (and stopped) on this
machine, with the workarounds a busy machine needs; what one task asks for."""

from __future__ import annotations

import glob
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from adv2.trained.files import atomic_write_text


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


def ray_session() -> str | None:
    """The session folder of the Ray this process is connected to (None if unknown)."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    try:
        return node.get_session_dir_path() if node is not None else None
    except Exception:  # noqa: BLE001  (a private API: without it the sweep still runs)
        return None
