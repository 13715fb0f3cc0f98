"""Running a corpus: batches scheduled over an executor, results yielded batch after batch.

1. Items are planned from their headers and cut into batches (:mod:`speechae.corpus.planning`).
2. Reading and conditioning, and on the CPU the spectrograms too, run in worker processes of any
   ``concurrent.futures.Executor`` (by default a ``spawn`` process pool) a few batches ahead; the
   main process runs the network on each batch through the one pipeline. With
   ``network_in_workers`` (Dask clusters) the workers compute whole batches and return features.
3. Finished batches are committed to the store before their results are yielded.

Example:
    >>> from speechae.pipeline import Pipeline  # doctest: +SKIP
    >>> results = list(run_items(Pipeline("cae-256"), items, jobs=2))  # doctest: +SKIP
"""

from __future__ import annotations

import concurrent.futures as futures
import warnings
from collections.abc import Iterator, Sequence

from speechae.corpus.batches import Outcome, compute_batch, prepare_item, read_item
from speechae.corpus.planning import (
    BATCH_WINDOWS,
    LONG_FILE_WINDOWS,
    ItemResult,
    Planned,
    plan,
    plan_batches,
)
from speechae.corpus.workers import AUTO, Machine, choose_jobs, compute_batch_task, pool
from speechae.engine import DEFAULT_CHUNK
from speechae.errors import DamagedStoreEntryError, DamagedStoreWarning, check_counts
from speechae.inputs import Item
from speechae.pipeline import Pipeline
from speechae.progress import Progress
from speechae.store import FeatureStore

__all__ = ["resolve_jobs", "run_items"]


def run_items(
    pipeline: Pipeline,
    items: Sequence[Item],
    *,
    jobs: int | str = 1,
    executor: futures.Executor | None = None,
    network_in_workers: bool = False,
    store: FeatureStore | None = None,
    shard: tuple[int, int] = (0, 1),
    batch_windows: int = BATCH_WINDOWS,
    long_file_windows: int = LONG_FILE_WINDOWS,
    chunk_size: int | None = DEFAULT_CHUNK,
    memory_budget: int | None = None,
    progress: Progress | None = None,
) -> Iterator[ItemResult]:
    """Process items batch by batch; yields every item's result, batch after batch.

    Args:
        pipeline: the :class:`~speechae.pipeline.Pipeline` (model, front-end, device).
        items: what to process, in run order (outputs sort them; the API keeps the caller's order).
        jobs: worker processes for reading and the front-end (1: in this process; ``"auto"``:
            chosen by :func:`resolve_jobs` from the machine, the items and the device).
        executor: any ``concurrent.futures.Executor`` to use instead of a process pool; a Dask
            ``Client`` (or its ``get_executor()``) implies ``network_in_workers``.
        network_in_workers: workers compute whole batches, network included, and return features
            (each builds the pipeline once); otherwise they return spectrograms (on a GPU:
            conditioned signals, whose spectrograms are computed on the GPU) and the network runs
            here. Results agree to float32 rounding (workers use one torch thread each).
        store: finished results; items found there are not recomputed, and every computed batch is
            committed to it before its results are yielded (a file that changed since it was
            hashed fails instead).
        shard: ``(i, N)``: process only batches ``i, i + N, ...``.
        batch_windows: windows per network batch (see :func:`~speechae.corpus.plan_batches`).
        long_file_windows: longer recordings are processed alone, in chunks.
        chunk_size: windows per forward step (see :func:`speechae.engine.run_autoencoder`).
        memory_budget: bytes of activations kept between layers (default:
            :func:`~speechae.engine.memory_budget_for` the device).
        progress: told the work planned, then each result.

    Raises:
        ParameterError: ``jobs``, ``batch_windows`` or ``long_file_windows`` below 1 (at once,
            before any item is read).
    """
    jobs = resolve_jobs(jobs, pipeline, items, long_file_windows=long_file_windows)
    check_counts(batch_windows=batch_windows, long_file_windows=long_file_windows)
    return _run(
        pipeline,
        items,
        jobs,
        executor,
        network_in_workers,
        store,
        shard,
        batch_windows,
        long_file_windows,
        chunk_size,
        memory_budget,
        progress,
    )


def resolve_jobs(
    jobs: int | str,
    pipeline: Pipeline,
    items: Sequence[Item],
    *,
    long_file_windows: int = LONG_FILE_WINDOWS,
    machine: Machine | None = None,
) -> int:
    """``jobs``, checked, or for ``"auto"`` the number :func:`~speechae.corpus.workers.choose_jobs` picks.

    Only the recordings read in workers count: long ones are computed alone in this process.

    Raises:
        ParameterError: ``jobs`` is neither ``"auto"`` nor a whole number of at least 1.
    """
    if jobs != AUTO:
        check_counts(jobs=jobs)
        return jobs
    config = pipeline.frontend.config
    planned = [plan(item, position, config, long_file_windows) for position, item in enumerate(items)]
    seconds = [entry.seconds for entry in planned if not entry.long]
    return choose_jobs(seconds, device=pipeline.device, machine=machine)


def _run(
    pipeline: Pipeline,
    items: Sequence[Item],
    jobs: int,
    executor: futures.Executor | None,
    network_in_workers: bool,
    store: FeatureStore | None,
    shard: tuple[int, int],
    batch_windows: int,
    long_file_windows: int,
    chunk_size: int | None,
    memory_budget: int | None,
    progress: Progress | None,
) -> Iterator[ItemResult]:
    config = pipeline.frontend.config
    settings = pipeline.settings() if store is not None else None
    planned = [plan(item, position, config, long_file_windows) for position, item in enumerate(items)]
    batches = plan_batches(
        [p.windows for p in planned], batch_windows=batch_windows, long_file_windows=long_file_windows
    )
    batches = batches[shard[0] :: shard[1]]
    if progress is not None:
        chosen = [planned[position] for batch in batches for position in batch]
        progress.start(len(chosen), sum(p.seconds for p in chosen))
    if executor is not None and type(executor).__module__.split(".")[0] == "distributed":
        executor = getattr(executor, "get_executor", lambda: executor)()  # a Client works too
        network_in_workers = True  # cluster workers return features, never spectrograms
    in_process = executor is None and jobs <= 1 and not network_in_workers
    workers = None if in_process else executor or pool(jobs)
    readers = futures.ThreadPoolExecutor(2) if in_process else None
    # spectrograms are computed on the pipeline's device: by CPU workers only for a CPU pipeline
    read_task = prepare_item if pipeline.device.type == "cpu" else read_item
    options = {"chunk_size": chunk_size, "memory_budget": memory_budget}

    def known(entry: Planned) -> ItemResult | None:
        if entry.error is not None:
            return entry.result(error=entry.error)
        if store is not None and _reusable(store, entry):
            return entry.result(reused=True)
        return None

    def submit(batch: list[int]) -> tuple[list[ItemResult], list[Planned], object]:
        done, todo = [], []
        for position in batch:
            if settings is not None:
                planned[position].identify(settings)
            result = known(planned[position])
            (done.append(result) if result is not None else todo.append(planned[position]))
        if not todo or in_process:
            return done, todo, None  # in this process, read when collected, while nothing else runs
        if network_in_workers:
            return done, todo, workers.submit(compute_batch_task, pipeline.spec, todo, *options.values())
        return (
            done,
            todo,
            [None if entry.long else workers.submit(read_task, entry.item, config) for entry in todo],
        )

    def collect(done: list[ItemResult], todo: list[Planned], handle: object) -> list[ItemResult]:
        if not todo:
            return done
        if network_in_workers:
            return done + handle.result()
        if in_process:
            outcomes = _read_here(todo, config, readers)
        else:
            outcomes = [None if h is None else h.result() for h in handle]
        return done + compute_batch(pipeline, todo, outcomes, **options)

    ahead = max(jobs, 2)
    try:
        submitted = [submit(batch) for batch in batches[:ahead]]
        for number, batch in enumerate(batches):
            if number + ahead < len(batches):
                submitted.append(submit(batches[number + ahead]))
            results = collect(*submitted[number])
            submitted[number] = None
            if store is not None:  # the batch is read by now, in workers or here
                results = [planned[result.position].unchanged(result) for result in results]
                computed = [r for r in results if r.ok and not r.reused]
                if computed:
                    store.put_many([(r.key, r.features, r.audio_sha256) for r in computed])
            for result in _in_batch_order(results, batch):
                if progress is not None:
                    progress.advance(result)
                yield result
    finally:
        for own in (readers, None if executor else workers):
            if own is not None:
                own.shutdown(wait=False, cancel_futures=True)


def _read_here(entries: list[Planned], config, readers: futures.Executor) -> list[Outcome | None]:
    """:func:`read_item` for a batch's short items, in this process.

    Two items are read and conditioned at a time in threads (libsndfile, numpy and scipy.fft
    release the GIL, and nothing else runs meanwhile); their spectrograms are then computed one
    after another in this thread by :func:`compute_batch`, so torch never runs in two threads at
    once.
    """
    short = [entry for entry in entries if not entry.long]
    read = iter(list(readers.map(lambda entry: read_item(entry.item, config), short)))
    return [None if entry.long else next(read) for entry in entries]


def _reusable(store: FeatureStore, entry: Planned) -> bool:
    """Whether ``store`` holds intact features for ``entry``; a damaged entry is computed again."""
    try:
        return store.get(entry.key) is not None
    except DamagedStoreEntryError:
        damaged = f"{store.path}: the stored features of {entry.item.label} are damaged"
        warnings.warn(DamagedStoreWarning(f"{damaged}; computing them again"), stacklevel=2)
        return False


def _in_batch_order(results: list[ItemResult], batch: list[int]) -> list[ItemResult]:
    rank = {position: k for k, position in enumerate(batch)}
    return sorted(results, key=lambda result: rank[result.position])
