"""Independent training jobs side by side, one core each (issue 13: no idle core while the other waits).

The small Fashion-MNIST networks use two intra-op threads poorly: their convolutions are too small
to split well, and on a shared machine a two-thread team waits for its slower thread at every
operation. Chapter 1 trains two classifiers and chapter 2 two RTS, which are independent: run as two
Python threads with one intra-op thread each (torch releases the GIL inside its operations), both
cores do useful work all the time.

Determinism: each job draws its training randomness from its own ``torch.Generator``; the only use
of torch's *global* generator, the initialisation of a network's weights, happens under
:data:`INIT_LOCK` (:func:`seeded`), so a job gives the same weights whether it runs alone or beside
another one (tests/test_training_speed.py checks it).
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import torch

from adv2.core.config import seed_everything

T = TypeVar("T")

# held while a job seeds torch's global generator and initialises a network from it
INIT_LOCK = threading.RLock()


@contextmanager
def seeded(seed: int) -> Iterator[torch.Generator]:
    """``seed_everything(seed)`` and the block after it (a network's initialisation) as one step no
    other job's seeding interleaves with; yields the job's own generator."""
    with INIT_LOCK:
        yield seed_everything(seed)


def seeded_generator(seed: int) -> torch.Generator:
    """``seed_everything(seed)`` under :data:`INIT_LOCK`: the job's own generator."""
    with seeded(seed) as gen:
        return gen


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@contextmanager
def one_thread() -> Iterator[None]:
    """One intra-op thread for the block, the previous count restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_cpu_thread(fn: Callable[..., T]) -> Callable[..., T]:
    """Run a training function on one intra-op thread when its ``device`` keyword is the CPU.

    Floating-point reductions split differently over two threads than over one, so a network
    trained alone on two threads would differ from the same recipe trained beside another job:
    the cache would then hold whichever ran first. One thread always keeps the weights a function
    of the recipe. ``single_thread=False`` (e.g. the 224-px photo RTS) opts out."""

    @functools.wraps(fn)
    def wrapper(*args, single_thread: bool = True, **kwargs):
        if not single_thread or torch.device(kwargs.get("device", "cpu")).type != "cpu":
            return fn(*args, **kwargs)
        with one_thread():
            return fn(*args, **kwargs)

    return wrapper


def _one_thread(job: Callable[[], T]) -> T:
    # OpenMP gives a new thread the process's default team size, not the caller's: set it here
    torch.set_num_threads(1)
    return job()


def run_concurrently(jobs: Sequence[Callable[[], T]], *, concurrent: bool | None = None) -> list[T]:
    """Results of ``jobs`` (in order), run side by side with one intra-op thread each.

    ``concurrent`` None: side by side when there are at least two jobs and two cores, else one
    after the other (as before). torch's intra-op thread count is restored afterwards. An
    exception in a job is raised here, after the other jobs finished.
    """
    n_workers = min(len(jobs), cores())
    if concurrent is None:
        concurrent = n_workers >= 2
    if not concurrent or len(jobs) < 2:
        return [job() for job in jobs]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max_workers=max(2, n_workers), thread_name_prefix="adv2-train") as pool:
            futures = [pool.submit(_one_thread, job) for job in jobs]
            return [f.result() for f in futures]
    finally:
        torch.set_num_threads(before)


def load_side_by_side(loaders: Sequence[Callable[[], tuple]], device: torch.device | str) -> list[tuple]:
    """Each loader's result (``(model, artifact)``: from the cache, else trained) with the seconds
    it took appended: on a CPU the loaders run side by side, one core each
    (:func:`run_concurrently`), on an accelerator one after the other."""

    def timed(load: Callable[[], tuple]) -> Callable[[], tuple]:
        def run() -> tuple:
            started = time.time()
            return (*load(), time.time() - started)

        return run

    on_cpu = torch.device(device).type == "cpu"
    return run_concurrently([timed(load) for load in loaders], concurrent=None if on_cpu else False)


__all__ = [
    "INIT_LOCK",
    "cores",
    "load_side_by_side",
    "one_cpu_thread",
    "one_thread",
    "run_concurrently",
    "seeded",
    "seeded_generator",
]
