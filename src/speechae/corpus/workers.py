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
from collections.abc import Callable, Sequence

import torch

from speechae.corpus.batches import compute_batch, read_item
from speechae.corpus.planning import ItemResult, Planned
from speechae.pipeline import PipelineSpec

__all__ = ["InlineExecutor", "compute_batch_task", "init_worker", "pool"]


def init_worker() -> None:
    """Set up a worker process: one torch thread, Ctrl-C left to the main process.

    A worker also exits as soon as the main process is gone: killed, it would leave the workers
    waiting for tasks forever.
    """
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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
    config = pipeline.frontend.config
    outcomes = [None if entry.long else read_item(entry.item, config) for entry in entries]
    return compute_batch(pipeline, entries, outcomes, chunk_size=chunk_size, memory_budget=memory_budget)
