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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

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
from speechae.errors import DamagedStoreEntryError, DamagedStoreWarning, check_counts, warn
from speechae.frontend import FrontEndConfig
from speechae.inputs import Item
from speechae.pipeline import Pipeline
from speechae.progress import Progress
from speechae.store import FeatureStore

__all__ = ["ItemRun", "run_items"]


@dataclass
class ItemRun:
    """What :func:`run_items` started: its results as they come, and who reads the recordings.

    Iterating it iterates the results.
    """

    results: Iterator[ItemResult]
    #: Worker processes that read the recordings (1: this process).
    jobs: int
    #: The machine ``jobs="auto"`` chose for, else None.
    chosen_for: Machine | None = None

    def __iter__(self) -> Iterator[ItemResult]:
        return self.results

    def describe(self, executor: futures.Executor | None = None) -> str:
        """Where recordings were read, as a run's summary says it."""
        if executor is not None:
            return "by the given executor's workers"
        where = "in this process" if self.jobs == 1 else f"in {self.jobs} worker processes"
        return where if self.chosen_for is None else f"{where} (--jobs auto, {self.chosen_for.cores} cores)"


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
) -> ItemRun:
    """Process items batch by batch; yields every item's result, batch after batch.

    The items' headers are read and ``jobs`` is checked (or chosen) at once; the work starts
    when the result is iterated.

    Args:
        pipeline: the :class:`~speechae.pipeline.Pipeline` (model, front-end, device).
        items: what to process, in run order (outputs sort them; the API keeps the caller's order).
        jobs: worker processes for reading and the front-end (1: in this process; ``"auto"``:
            chosen by :func:`~speechae.corpus.choose_jobs` from the machine, the recordings read
            in workers and the device).
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
        memory_budget: bytes a recording may keep in memory (default: the pipeline's).
        progress: told the work planned, then each result.

    Raises:
        ParameterError: ``jobs``, ``batch_windows`` or ``long_file_windows`` below 1.
    """
    check_counts(batch_windows=batch_windows, long_file_windows=long_file_windows)
    if jobs != AUTO:
        check_counts(jobs=jobs)
    config = pipeline.frontend.config
    planned = [plan(item, position, config, long_file_windows) for position, item in enumerate(items)]
    machine = None
    if jobs == AUTO:
        machine = Machine.this()
        seconds = [entry.seconds for entry in planned if not entry.long]  # long ones are read here
        jobs = choose_jobs(seconds, device=pipeline.device, machine=machine)
    batches = plan_batches(
        [p.windows for p in planned], batch_windows=batch_windows, long_file_windows=long_file_windows
    )[shard[0] :: shard[1]]
    if executor is not None and type(executor).__module__.split(".")[0] == "distributed":
        executor = getattr(executor, "get_executor", lambda: executor)()  # a Client works too
        network_in_workers = True  # cluster workers return features, never spectrograms
    batch_run = _BatchRun(pipeline, planned, store, chunk_size, memory_budget)
    results = batch_run.results(batches, jobs, executor, network_in_workers, progress)
    return ItemRun(results, jobs, machine)


class _BatchRun:
    """The batches of one run: what is known of each item, and how a batch is read and computed."""

    def __init__(
        self,
        pipeline: Pipeline,
        planned: list[Planned],
        store: FeatureStore | None,
        chunk_size: int | None,
        memory_budget: int | None,
    ) -> None:
        self.pipeline, self.planned, self.store = pipeline, planned, store
        self.chunk_size = chunk_size
        self.memory_budget = pipeline.budget if memory_budget is None else memory_budget
        self.settings = pipeline.settings() if store is not None else None
        self.reading = pipeline.reading

    def known(self, entry: Planned) -> ItemResult | None:
        """The result of an item that needs no computing: it failed already, or it is stored."""
        if self.settings is not None:
            entry.identify(self.settings)
        if entry.error is not None:
            return entry.result(error=entry.error)
        if self.store is not None and _reusable(self.store, entry):
            notes = self.store.notes(entry.key)
            return entry.result(reused=True, warnings=tuple(notes["warnings"]), quality=notes["quality"])
        return None

    def compute(self, todo: list[Planned], outcomes: list) -> list[ItemResult]:
        """Results of ``todo`` from what reading each item gave."""
        return compute_batch(
            self.pipeline, todo, outcomes, chunk_size=self.chunk_size, memory_budget=self.memory_budget
        )

    def results(
        self,
        batches: list[list[int]],
        jobs: int,
        executor: futures.Executor | None,
        network_in_workers: bool,
        progress: Progress | None,
    ) -> Iterator[ItemResult]:
        """Every item's result, batch after batch, reading a few batches ahead."""
        planned, reading = self.planned, self.reading
        if progress is not None:
            chosen = [planned[position] for batch in batches for position in batch]
            progress.start(len(chosen), sum(p.seconds for p in chosen))
        in_process = executor is None and jobs <= 1 and not network_in_workers
        workers = None if in_process else executor or pool(jobs)
        readers = futures.ThreadPoolExecutor(2) if in_process else None
        # spectrograms are computed on the pipeline's device: by CPU workers only for a CPU pipeline
        read_task = prepare_item if self.pipeline.device.type == "cpu" else read_item

        def submit(batch: list[int]) -> tuple[list[ItemResult], list[Planned], object]:
            done, todo = [], []
            for position in batch:
                result = self.known(planned[position])
                (done.append(result) if result is not None else todo.append(planned[position]))
            if not todo or in_process:
                return done, todo, None  # in this process, read when collected, while nothing else runs
            if network_in_workers:
                task = (compute_batch_task, self.pipeline.spec, todo, self.chunk_size, self.memory_budget)
                return done, todo, workers.submit(*task)
            return done, todo, [None if e.long else workers.submit(read_task, e.item, *reading) for e in todo]

        def collect(done: list[ItemResult], todo: list[Planned], handle: object) -> list[ItemResult]:
            if not todo:
                return done
            if network_in_workers:
                return done + handle.result()
            if in_process:
                return done + self.compute(todo, _read_here(todo, reading, readers, self.memory_budget))
            return done + self.compute(todo, [None if h is None else h.result() for h in handle])

        ahead = max(jobs, 2)
        try:
            submitted = [submit(batch) for batch in batches[:ahead]]
            for number, batch in enumerate(batches):
                if number + ahead < len(batches):
                    submitted.append(submit(batches[number + ahead]))
                results = collect(*submitted[number])
                submitted[number] = None
                if self.store is not None:  # the batch is read by now, in workers or here
                    results = [planned[result.position].unchanged(result) for result in results]
                    computed = [r for r in results if r.ok and not r.reused]
                    if computed:
                        entries = [(r.key, r.features, r.audio_sha256) for r in computed]
                        notes = {
                            r.key: {"warnings": list(r.warnings), "quality": r.quality} for r in computed
                        }
                        self.store.put_many(entries, notes=notes)
                for result in _in_batch_order(results, batch):
                    if progress is not None:
                        progress.advance(result)
                    yield result
        finally:
            for own in (readers, None if executor else workers):
                if own is not None:
                    own.shutdown(wait=False, cancel_futures=True)


def _read_here(
    entries: list[Planned],
    reading: tuple[FrontEndConfig, str, float | None],
    readers: futures.Executor,
    budget: int,
) -> list[Outcome | None]:
    """:func:`read_item` for a batch's short items, in this process.

    Two small items are read and conditioned at a time in threads (libsndfile, numpy and scipy.fft
    release the GIL, and nothing else runs meanwhile); an item whose samples alone take an eighth
    of the memory budget is read by itself, since conditioning needs several times that (a
    whole-signal FFT). Spectrograms are then computed one after another in this thread by
    :func:`compute_batch`, so torch never runs in two threads at once.
    """
    outcomes: dict[int, Outcome] = {}
    small = [entry for entry in entries if not entry.long and entry.frames * 8 <= budget // 8]
    read = readers.map(lambda entry: read_item(entry.item, *reading), small)
    for entry, outcome in zip(small, read, strict=True):
        outcomes[entry.position] = outcome
    for entry in entries:
        if not entry.long and entry.position not in outcomes:
            outcomes[entry.position] = read_item(entry.item, *reading)
    return [None if entry.long else outcomes[entry.position] for entry in entries]


def _reusable(store: FeatureStore, entry: Planned) -> bool:
    """Whether ``store`` holds intact features for ``entry``; a damaged entry is computed again."""
    try:
        return store.get(entry.key) is not None
    except DamagedStoreEntryError:
        damaged = f"{store.path}: the stored features of {entry.item.label} are damaged"
        warn(DamagedStoreWarning(f"{damaged}; computing them again"))
        return False


def _in_batch_order(results: list[ItemResult], batch: list[int]) -> list[ItemResult]:
    rank = {position: k for k, position in enumerate(batch)}
    return sorted(results, key=lambda result: rank[result.position])
