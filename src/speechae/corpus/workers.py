"""Worker processes of a corpus run: how they start, stop, and what they are given to do.

A local run uses a ``spawn`` process pool (one torch thread per worker, Ctrl-C left to the main
process, every worker gone as soon as the main process is) or, for one job, runs tasks at once
in this process. A worker either reads items and computes their spectrograms
(:func:`~speechae.corpus.batches.prepare_item`) or, on a cluster, computes whole batches with a
pipeline it rebuilds once from its spec (:func:`compute_batch_task`).
"""

from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from speechae.corpus.batches import compute_batch, read_item
from speechae.corpus.planning import ItemResult, Planned
from speechae.errors import check_counts, print_warning
from speechae.pipeline import PipelineSpec

__all__ = ["AUTO", "InlineExecutor", "Machine", "choose_jobs", "compute_batch_task", "init_worker", "pool"]

#: ``jobs=AUTO`` lets :func:`choose_jobs` pick the number of worker processes.
AUTO = "auto"
#: Seconds of audio that one more worker must have to read before its start-up (importing torch,
#: about two seconds) pays for itself.
AUDIO_PER_WORKER = 60.0
MOST_WORKERS = 8


@dataclass(frozen=True)
class Machine:
    """What this process may use: the cores of its CPU affinity and CPU quota (SLURM, containers).

    Example:
        >>> Machine.this().cores >= 1
        True
    """

    cores: int

    @classmethod
    def this(cls) -> Machine:
        """This process's machine: ``sched_getaffinity`` and the cgroup's ``cpu.max`` quota."""
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        quota = _cgroup_quota()
        return cls(max(1, min(cores, quota) if quota else cores))


def _cgroup_quota(path: str = "/sys/fs/cgroup/cpu.max") -> int:
    """Whole cores of a cgroup v2 CPU quota (``"200000 100000"`` -> 2), or 0 without a quota."""
    try:
        limit, period = Path(path).read_text().split()[:2]
    except (OSError, ValueError):
        return 0
    return 0 if limit == "max" else max(1, int(limit) // int(period))


def use_threads(threads: int | None = None, *, machine: Machine | None = None) -> int:
    """Set this process's torch threads; returns how many.

    ``threads`` when given, else ``OMP_NUM_THREADS`` when set, else the cores :meth:`Machine.this`
    may use: torch otherwise starts a thread per core of the whole machine, whatever the CPU
    affinity or quota (SLURM, containers) allows, and more threads than cores spin against each
    other.

    Example:
        >>> before = torch.get_num_threads()
        >>> use_threads(1), torch.get_num_threads()
        (1, 1)
        >>> _ = use_threads(before)

    Raises:
        ParameterError: ``threads`` below 1.
    """
    if threads is None:
        threads = _omp_threads() or (machine or Machine.this()).cores
    check_counts(threads=threads)
    torch.set_num_threads(threads)
    return threads


def _omp_threads() -> int:
    """``OMP_NUM_THREADS`` as a number of threads, or 0 when it is unset or not a number."""
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(value) if value.isdigit() and int(value) > 0 else 0


def choose_jobs(seconds: Sequence[float], *, device: torch.device, machine: Machine | None = None) -> int:
    """Worker processes for items of ``seconds`` (those read in workers) on ``device``.

    On a CPU the network runs on every core in the main process, so workers only pay where cores
    are plentiful: one per four cores (none on a 2-core machine, where two workers made runs half
    as fast). On a GPU the main process leaves the CPU to them: one per core but one. Never more
    workers than items, than minutes of audio (a worker's start-up costs seconds), or eight.

    Example:
        >>> choose_jobs([30.0] * 100, device=torch.device("cpu"), machine=Machine(2))
        1
        >>> choose_jobs([30.0] * 100, device=torch.device("cpu"), machine=Machine(16))
        4
        >>> choose_jobs([30.0] * 100, device=torch.device("cuda"), machine=Machine(16))
        8
    """
    machine = machine or Machine.this()
    spare = machine.cores // 4 if device.type == "cpu" else machine.cores - 1
    worthwhile = int(sum(seconds) // AUDIO_PER_WORKER)
    workers = min(spare, worthwhile, len(seconds), MOST_WORKERS)
    return workers if workers >= 2 else 1


def init_worker() -> None:
    """Set up a worker process: one torch thread, Ctrl-C left to the main process, short warnings.

    A worker also exits as soon as the main process is gone: killed, it would leave the workers
    waiting for tasks forever.
    """
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warnings.showwarning = print_warning  # one line that names the file, as in the main process
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


class InlineExecutor(futures.Executor):
    """Runs tasks at submission, in this process (``jobs=1`` without process start-up)."""

    def submit(self, fn: Callable, /, *args: object, **kwargs: object) -> futures.Future:
        """Run ``fn`` now; the future holds its result."""
        future: futures.Future = futures.Future()
        future.set_result(fn(*args, **kwargs))
        return future


def pool(jobs: int) -> futures.Executor:
    """``jobs`` spawned worker processes, or an :class:`InlineExecutor` for one."""
    if jobs <= 1:
        return InlineExecutor()
    return futures.ProcessPoolExecutor(
        max_workers=jobs, mp_context=multiprocessing.get_context("spawn"), initializer=init_worker
    )


def compute_batch_task(
    spec: PipelineSpec, entries: Sequence[Planned], chunk_size: int | None, memory_budget: int | None
) -> list[ItemResult]:
    """Worker task: a whole batch, front-end and network; the pipeline is built once per worker."""
    if multiprocessing.parent_process() is not None:
        torch.set_num_threads(1)  # one thread per worker process; the processes share the cores
    pipeline = spec.build()
    outcomes = [None if entry.long else read_item(entry.item, *pipeline.reading) for entry in entries]
    return compute_batch(pipeline, entries, outcomes, chunk_size=chunk_size, memory_budget=memory_budget)
