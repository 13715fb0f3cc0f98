"""The corpus runner: many recordings, parallel front-end, batched network, resumable output.

One engine serves ``Extractor.process_files(..., num_workers=N)`` and ``speechae extract``:

1. Items are sorted by key and cut into **batches** of about ``batch_windows`` windows (counted
   from the file headers); a recording longer than ``long_file_windows`` forms a batch alone and is
   processed in bounded memory (:mod:`speechae.engine`).
2. Decoding, resampling and the log-Mel front-end run in worker processes of any
   ``concurrent.futures.Executor`` (by default a ``spawn`` process pool, one torch thread per
   worker); the main process runs the network on each batch, every file with its own BatchNorm
   statistics. With ``network_in_workers`` (Dask clusters) the workers compute whole batches and
   return features instead, loading the model once each (see :mod:`speechae.cluster`).
3. The batches depend only on the sorted inputs, never on timing, so ``--jobs 2`` equals
   ``--jobs 1`` bit for bit, a resumed run computes exactly what an uninterrupted one would, and
   ``--shard i/N`` (which takes every N-th batch) merges into the unsharded result.

:func:`extract_corpus` adds the store (finished batches are committed as they complete and never
recomputed), streamed output written atomically, an errors file and a summary.

Example:
    >>> from speechae import Extractor  # doctest: +SKIP
    >>> summary = extract_corpus(Extractor("cae-256"), items, "features.parquet", jobs=2)  # doctest: +SKIP
"""

from __future__ import annotations

import concurrent.futures as futures
import csv
import hashlib
import io
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from speechae.atomic import atomic_path
from speechae.audio import audio_frames, file_sha256
from speechae.engine import DEFAULT_CHUNK, TensorInputs, run_autoencoder
from speechae.errors import (
    DamagedStoreEntryError,
    DamagedStoreWarning,
    InputError,
    NoUsableWindowsError,
    ParameterError,
    SpeechaeError,
)
from speechae.extractor import recording_samples
from speechae.features import FileFeatures, transform_conditioned
from speechae.frontend import FrontEndConfig, LogMelFrontEnd, condition_signal, window_count
from speechae.inputs import Item, item_order, printable, segment_span, with_segment
from speechae.progress import Progress, clock
from speechae.store import FeatureStore, entry_key, store_path
from speechae.writers import TableWriter, check_kaldi_key, check_output_path, format_of

__all__ = [
    "BATCH_WINDOWS",
    "LONG_FILE_WINDOWS",
    "RECORD_COLUMNS",
    "ItemResult",
    "RunSummary",
    "check_same_run",
    "extract_corpus",
    "file_record",
    "merge_sidecars",
    "plan_batches",
    "run_items",
]

BATCH_WINDOWS = 256
LONG_FILE_WINDOWS = 2048


class ExtractionError(SpeechaeError, RuntimeError):
    """An unexpected failure while processing one recording (the run goes on)."""


class FileChangedError(SpeechaeError, RuntimeError):
    """A recording changed on disk after it was hashed, so its features are not stored."""


@dataclass
class ItemResult:
    """The outcome for one item: features, or the error that stopped it."""

    item: Item
    features: FileFeatures | None = None
    error: SpeechaeError | None = None
    audio_sha256: str | None = None
    key: str | None = None
    seconds: float = 0.0
    reused: bool = False
    position: int = -1

    @property
    def ok(self) -> bool:
        """Whether features were computed (or found in the store)."""
        return self.error is None


@dataclass
class _Planned:
    item: Item
    position: int
    windows: int
    seconds: float
    audio_sha256: str | None = None
    key: str | None = None
    error: SpeechaeError | None = None
    signature: tuple[int, int, int] | None = None


def _result(planned: _Planned, **outcome: object) -> ItemResult:
    return ItemResult(
        planned.item,
        audio_sha256=planned.audio_sha256,
        key=planned.key,
        seconds=planned.seconds,
        position=planned.position,
        **outcome,
    )


def _describe(item: Item, error: BaseException) -> SpeechaeError:
    """The error as one sentence that names the file (and segment)."""
    path = printable(item.path)
    where = with_segment(path, item.start, item.end)
    message = printable(str(error))
    if not isinstance(error, SpeechaeError):
        return ExtractionError(f"{where}: unexpected error ({type(error).__name__}: {message})")
    return type(error)(message if message.startswith(path) else f"{where}: {message}")


def _plan(item: Item, position: int, config: FrontEndConfig) -> _Planned:
    """Read the header only: enough to cut batches before any audio is read."""
    try:
        frames, rate = audio_frames(item.path, start=item.start, end=item.end)
        seconds = frames / rate
    except Exception:  # unreadable headers fail properly, with their reason, when the item is read
        seconds = 0.0
    windows = window_count(int(seconds * config.sampling_rate), config=config)
    return _Planned(item, position, windows, seconds)


def _identify(planned: _Planned, settings: dict) -> None:
    """Hash the audio and derive the store key (when its batch comes up, not all up front)."""
    item = planned.item
    try:
        planned.signature = _signature(item.path)  # before hashing, so that no change goes unseen
        planned.audio_sha256 = file_sha256(item.path)
        planned.key = entry_key(planned.audio_sha256, item.start, item.end, settings)
    except SpeechaeError as error:
        planned.error = _describe(item, error)


def _signature(path: str) -> tuple[int, int, int] | None:
    """What changes when a file is rewritten or replaced: its size, modification time and inode."""
    try:
        status = os.stat(path)
    except OSError:
        return None  # hashing the file fails with the reason
    return status.st_size, status.st_mtime_ns, status.st_ino


def _unchanged(result: ItemResult, planned: _Planned) -> ItemResult:
    """The result, or a failure when its file changed since it was hashed.

    Its features may then come from the new content and must not be stored under the old hash.
    """
    if not result.ok or result.reused or _signature(planned.item.path) == planned.signature:
        return result
    changed = FileChangedError("changed while it was being processed; run again")
    return _result(planned, error=_describe(planned.item, changed))


def plan_batches(
    windows: Sequence[int], *, batch_windows: int = BATCH_WINDOWS, long_file_windows: int = LONG_FILE_WINDOWS
) -> list[list[int]]:
    """Cut items (given by their window counts, in run order) into batches of item positions.

    A batch closes once it holds ``batch_windows`` windows; an item of more than
    ``long_file_windows`` windows is a batch alone.

    Example:
        >>> plan_batches([100, 100, 100, 5000, 10], batch_windows=150, long_file_windows=1000)
        [[0, 1], [2], [3], [4]]
    """
    batches: list[list[int]] = []
    current: list[int] = []
    filled = 0
    for position, count in enumerate(windows):
        if count > long_file_windows:
            if current:
                batches.append(current)
                current, filled = [], 0
            batches.append([position])
            continue
        current.append(position)
        filled += count
        if filled >= batch_windows:
            batches.append(current)
            current, filled = [], 0
    if current:
        batches.append(current)
    return batches


_WORKER_FRONTENDS: dict[FrontEndConfig, LogMelFrontEnd] = {}


def _init_worker() -> None:
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


def _decode(item: Item, config: FrontEndConfig) -> tuple[str, object]:
    """Read and condition one item (never raises): ``("ok", (conditioned, duration))``."""
    try:
        with recording_samples(item.path, item.start, item.end, config) as (signal, rate):
            return "ok", (condition_signal(signal, rate, config=config, name=item.path), len(signal) / rate)
    except Exception as error:  # a corpus run never dies on one file
        return "failed", _describe(item, error)


def _transform(item: Item, decoded: tuple[str, object], frontend: LogMelFrontEnd) -> tuple[str, object]:
    """Spectrograms of a decoded item (never raises): ``("ok", (mel, starts, dropped, duration))``."""
    if decoded[0] != "ok":
        return decoded
    try:
        conditioned, duration = decoded[1]
        prepared = transform_conditioned(conditioned, duration, frontend, memory_budget=sys.maxsize)
        mel = prepared.inputs.get(0, len(prepared.inputs)).numpy()
        return "ok", (mel, prepared.starts, prepared.dropped, prepared.duration)
    except Exception as error:
        return "failed", _describe(item, error)


def _cpu_frontend(config: FrontEndConfig) -> LogMelFrontEnd:
    return _WORKER_FRONTENDS.setdefault(config, LogMelFrontEnd(config))


def _prepare(item: Item, config: FrontEndConfig) -> tuple[str, object]:
    """Worker task: decode, resample and transform one item (never raises)."""
    return _transform(item, _decode(item, config), _cpu_frontend(config))


def _prepare_here(
    entries: list[_Planned], config: FrontEndConfig, long_file_windows: int, threads: futures.Executor
) -> list:
    """``_prepare`` for a batch of items, in this process.

    Two items are decoded and resampled at a time in threads (libsndfile, numpy and scipy.fft
    release the GIL, and nothing else runs meanwhile); their spectrograms are then computed one
    after another in this thread, so torch never runs in two threads at once.
    """
    short = [entry for entry in entries if entry.windows <= long_file_windows]
    decoded = iter(list(threads.map(lambda entry: _decode(entry.item, config), short)))
    frontend = _cpu_frontend(config)  # spectrograms on the CPU, as in worker processes
    return [
        None if entry.windows > long_file_windows else _transform(entry.item, next(decoded), frontend)
        for entry in entries
    ]


class _InlineExecutor(futures.Executor):
    """Runs tasks at submission, in this process (``jobs=1`` without process start-up)."""

    def submit(self, fn: Callable, /, *args: object, **kwargs: object) -> futures.Future:
        future: futures.Future = futures.Future()
        future.set_result(fn(*args, **kwargs))
        return future


def _pool(jobs: int) -> futures.Executor:
    if jobs <= 1:
        return _InlineExecutor()
    return futures.ProcessPoolExecutor(
        max_workers=jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker
    )


def _offset(item: Item, features: FileFeatures) -> FileFeatures:
    return features.shift(item.start or 0.0)


class _BatchRunner:
    """Runs the network on one batch of prepared items, each file with its own statistics."""

    def __init__(self, extractor, chunk_size: int, memory_budget: int | None) -> None:
        self.extractor = extractor
        self.chunk_size = chunk_size
        self.memory_budget = memory_budget

    def run(self, prepared: list[tuple[_Planned, tuple]]) -> list[ItemResult]:
        results, usable = [], []
        for planned, (mel, starts, dropped, duration) in prepared:
            if len(mel) == 0:
                item = planned.item
                error = NoUsableWindowsError(
                    f"{with_segment(printable(item.path), item.start, item.end)}: all {len(dropped)} "
                    "windows have Mel values <= 0 "
                    "(digital silence), so no features can be computed"
                )
                results.append(_result(planned, error=error))
            else:
                usable.append((planned, mel, starts, dropped, duration))
        if usable:
            results += self._network(usable)
        return results

    def _network(self, usable: list) -> list[ItemResult]:
        device = self.extractor.device
        counts = [len(mel) for _, mel, *_ in usable]
        windows = torch.from_numpy(np.concatenate([mel for _, mel, *_ in usable])).to(device)
        file_index = torch.repeat_interleave(
            torch.arange(len(usable), device=device), torch.tensor(counts, device=device)
        )
        with torch.inference_mode():
            output = run_autoencoder(
                self.extractor.model.network,
                TensorInputs(windows),
                file_index,
                chunk_size=self.chunk_size,
                memory_budget=self.memory_budget,
                precision=self.extractor.precision,
            )
        codes = output.code.cpu().numpy()
        errors = output.error.cpu().numpy()
        bounds = np.cumsum([0, *counts])
        results = []
        for k, (planned, _, starts, dropped, duration) in enumerate(usable):
            features = FileFeatures(
                bottleneck=codes[bounds[k] : bounds[k + 1]],
                error=errors[bounds[k] : bounds[k + 1]],
                starts=starts,
                dropped=dropped,
                duration=duration,
            )
            results.append(_result(planned, features=_offset(planned.item, features)))
        return results


def _long_item(extractor, planned: _Planned, chunk_size: int, memory_budget: int | None) -> ItemResult:
    """A recording too long for a shared batch: computed alone, in chunks, in this process."""
    item = planned.item
    try:
        features = extractor.recording_features(
            item.path, start=item.start, end=item.end, chunk_size=chunk_size, memory_budget=memory_budget
        )
    except Exception as error:  # a corpus run never dies on one file
        return _result(planned, error=_describe(item, error))
    return _result(planned, features=_offset(item, features))


def _compute(
    extractor,
    entries: list[_Planned],
    prepared: list,
    chunk_size: int | None,
    memory_budget: int | None,
    long_file_windows: int,
) -> list[ItemResult]:
    """Results of one batch's entries, given each entry's front-end outcome (None for long files)."""
    results, ready = [], []
    for entry, outcome in zip(entries, prepared, strict=True):
        if entry.windows > long_file_windows:
            results.append(_long_item(extractor, entry, chunk_size, memory_budget))
        elif outcome[0] == "ok":
            ready.append((entry, outcome[1]))
        else:
            results.append(_result(entry, error=outcome[1]))
    return results + _BatchRunner(extractor, chunk_size, memory_budget).run(ready)


_WORKER_EXTRACTORS: dict[tuple, object] = {}


def _compute_batch(
    spec: dict,
    entries: list[_Planned],
    chunk_size: int | None,
    memory_budget: int | None,
    long_file_windows: int,
) -> list[ItemResult]:
    """Worker task: a whole batch, front-end and network; the model is loaded once per worker."""
    from speechae.extractor import Extractor

    key = tuple(sorted(spec.items()))
    if key not in _WORKER_EXTRACTORS:
        if multiprocessing.parent_process() is not None:
            torch.set_num_threads(1)  # one thread per worker process; the processes share the cores
        _WORKER_EXTRACTORS[key] = Extractor(**spec)
    extractor = _WORKER_EXTRACTORS[key]
    config = extractor.frontend.config
    prepared = [None if e.windows > long_file_windows else _prepare(e.item, config) for e in entries]
    return _compute(extractor, entries, prepared, chunk_size, memory_budget, long_file_windows)


def run_items(
    extractor,
    items: Sequence[Item],
    *,
    jobs: int = 1,
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
        extractor: a :class:`speechae.Extractor` (its model, front-end and device are used).
        items: what to process, in run order (outputs sort them; the API keeps the caller's order).
        jobs: worker processes for decoding and the front-end (1: in this process).
        executor: any ``concurrent.futures.Executor`` to use instead of a process pool; a Dask
            ``Client`` (or its ``get_executor()``) implies ``network_in_workers``.
        network_in_workers: workers compute whole batches, network included, and return features
            (each loads the model once); otherwise they return spectrograms and the network runs
            here. Results agree to float32 rounding (workers use one torch thread each).
        store: finished results; items found there are not recomputed, and every computed batch is
            committed to it before its results are yielded (a file that changed since it was
            hashed fails instead).
        shard: ``(i, N)``: process only batches ``i, i + N, ...``.
        batch_windows: windows per network batch (see :func:`plan_batches`).
        long_file_windows: longer recordings are processed alone, in chunks.
        chunk_size: windows per forward step (see :func:`speechae.engine.run_autoencoder`).
        memory_budget: bytes of activations kept between layers (default:
            :func:`~speechae.engine.memory_budget_for` the device).
        progress: told the work planned, then each result.
    """
    config = extractor.frontend.config
    settings = extractor.settings() if store is not None else None
    planned = [_plan(item, position, config) for position, item in enumerate(items)]
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
    pool = None if in_process else executor or _pool(jobs)
    decoders = futures.ThreadPoolExecutor(2) if in_process else None
    options = (chunk_size, memory_budget, long_file_windows)

    def outcome(entry: _Planned) -> ItemResult | None:
        if entry.error is not None:
            return _result(entry, error=entry.error)
        if store is not None and _reusable(store, entry):
            return _result(entry, reused=True)
        return None

    def submit(batch: list[int]) -> tuple[list[ItemResult], list[_Planned], object]:
        known, todo = [], []
        for position in batch:
            if settings is not None:
                _identify(planned[position], settings)
            result = outcome(planned[position])
            (known.append(result) if result is not None else todo.append(planned[position]))
        if network_in_workers:
            return (
                known,
                todo,
                pool.submit(_compute_batch, extractor.spec(), todo, *options) if todo else None,
            )
        if in_process:
            return known, todo, None  # prepared when collected, while nothing else runs
        handles = [
            None if entry.windows > long_file_windows else pool.submit(_prepare, entry.item, config)
            for entry in todo
        ]
        return known, todo, handles

    def collect(known: list[ItemResult], todo: list[_Planned], handle: object) -> list[ItemResult]:
        if not todo:
            return known
        if network_in_workers:
            return known + handle.result()
        if in_process:
            prepared = _prepare_here(todo, config, long_file_windows, decoders)
        else:
            prepared = [None if h is None else h.result() for h in handle]
        return known + _compute(extractor, todo, prepared, *options)

    ahead = max(jobs, 2)
    try:
        submitted = [submit(batch) for batch in batches[:ahead]]
        for number, batch in enumerate(batches):
            if number + ahead < len(batches):
                submitted.append(submit(batches[number + ahead]))
            results = collect(*submitted[number])
            submitted[number] = None
            if store is not None:  # the batch is decoded by now, in workers or here
                results = [_unchanged(result, planned[result.position]) for result in results]
                computed = [r for r in results if r.ok and not r.reused]
                if computed:
                    store.put_many([(r.key, r.features, r.audio_sha256) for r in computed])
            for result in _in_batch_order(results, batch):
                if progress is not None:
                    progress.advance(result)
                yield result
    finally:
        for own in (decoders, None if executor else pool):
            if own is not None:
                own.shutdown(wait=False, cancel_futures=True)


def _in_batch_order(results: list[ItemResult], batch: list[int]) -> list[ItemResult]:
    rank = {position: k for k, position in enumerate(batch)}
    return sorted(results, key=lambda result: rank[result.position])


@dataclass
class RunSummary:
    """What a corpus run did; ``records`` has one row per item (for reports).

    ``output`` is None when a strict run stopped, which writes no output; ``earlier_output`` is
    then the output path if a file from an earlier run is there.
    """

    output: Path | None
    records: pd.DataFrame
    failures: list[ItemResult] = field(default_factory=list)
    wall_seconds: float = 0.0
    computed: int = 0
    computed_seconds: float = 0.0
    reused: int = 0
    stopped_early: bool = False
    level: str = "static"
    earlier_output: Path | None = None

    @property
    def audio_seconds(self) -> float:
        """Seconds of audio in the items that succeeded."""
        ok = self.records["status"] == "ok"
        return float(self.records.loc[ok, "duration"].sum())

    def text(self) -> str:
        """A few lines for the end of a run."""
        ok = int((self.records["status"] == "ok").sum())
        speed = self.computed_seconds / self.wall_seconds if self.wall_seconds else 0.0
        lines = [
            f"files: {ok} ok ({self.computed} computed, {self.reused} reused from the store), "
            f"{len(self.failures)} failed",
            f"audio: {clock(self.audio_seconds)}, of which {clock(self.computed_seconds)} computed in "
            f"{clock(self.wall_seconds)} wall time ({speed:.1f}x real time)",
        ]
        if self.level == "static":
            one_window = int(((self.records["status"] == "ok") & (self.records["windows"] == 1)).sum())
            if one_window:
                lines.append(f"files with a single window, so NaN skewness and kurtosis: {one_window}")
        dropped = int(self.records["dropped"].sum()) if len(self.records) else 0
        if dropped:
            listed = f" (listed in {_sidecar(self.output, 'dropped')})" if self.output is not None else ""
            lines.append(f"windows dropped for Mel values <= 0: {dropped}{listed}")
        if self.failures:
            listed = f" ({_sidecar(self.output, 'errors')})" if self.output is not None else ""
            lines.append(f"failed{listed}:")
            lines += [f"  {failure.error}" for failure in self.failures]
        if self.stopped_early:
            lines.append("stopped at the first failure (--strict); finished files are kept in the store")
            if self.earlier_output is not None:
                lines.append(f"output: {self.earlier_output} is from an earlier run: this one wrote no table")
        elif ok:
            lines.append(f"output: {self.output}")
        else:
            why = "no file succeeded" if self.failures else "no files to process"
            lines.append(f"output: {self.output} (no rows: {why})")
        return "\n".join(lines)


RECORD_COLUMNS = ("file", "status", "reason", "duration", "windows", "dropped", "dropped_at", "mean_error")


def file_record(
    file: str | os.PathLike[str],
    features: FileFeatures | None = None,
    *,
    reason: str = "",
    duration: float = math.nan,
) -> dict[str, object]:
    """One row of the ``records`` table of :func:`write_report`.

    Args:
        file: the input file as the user named it.
        features: the file's features; omit them for a file that failed.
        reason: why the file failed (required exactly when ``features`` is omitted).
        duration: seconds, for a failed file whose length is known.

    Example:
        >>> file_record("a.wav", reason="the recording is silent")["status"]
        'failed'
    """
    if (features is None) == (not reason):
        raise ParameterError(
            f"{file}: give either features (a processed file) or a reason (a failed file), "
            f"not {'both' if reason else 'neither'}"
        )
    if features is None:
        windows, dropped, error = 0, [], math.nan
    else:
        windows, dropped, duration = len(features.starts), features.dropped.tolist(), features.duration
        error = float(features.error.mean()) if windows else math.nan
    return {
        "file": os.fspath(file),
        "status": "failed" if features is None else "ok",
        "reason": reason,
        "duration": duration,
        "windows": windows,
        "dropped": len(dropped),
        "dropped_at": dropped,
        "mean_error": error,
    }


def _sidecar(output: Path | None, kind: str) -> Path | None:
    return None if output is None else output.with_name(f"{output.name}.{kind}.csv")


def _listed_item_order(file: str, start: str, end: str) -> tuple[str, float, float]:
    """:func:`speechae.inputs.item_order` of an item as a CSV row gives it (no segment: empty)."""
    return file, float(start or 0), float(end or math.inf)


#: Header and row order (as in :func:`speechae.inputs.item_order`) of each list beside an output;
#: the item's segment is ``start, end`` in errors, ``segment_start, segment_end`` in dropped windows.
_SIDECARS = {
    "errors": (["file", "start", "end", "error", "reason"], lambda row: _listed_item_order(*row[:3])),
    "dropped": (
        ["file", "segment_start", "segment_end", "start"],
        lambda row: (*_listed_item_order(*row[:3]), float(row[3])),
    ),
}


def merge_sidecars(
    shards: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str]
) -> dict[str, int]:
    """Join the shards' lists of failed files and dropped windows beside a merged ``output``.

    ``SHARD.errors.csv`` and ``SHARD.dropped.csv`` become ``OUTPUT.errors.csv`` and
    ``OUTPUT.dropped.csv`` (each written only if a shard has rows), in the order a single run
    writes them.

    Returns:
        the number of rows of each kind, e.g. ``{"errors": 2, "dropped": 0}``.
    """
    counts = {}
    for kind, (header, order) in _SIDECARS.items():
        rows = []
        for shard in shards:
            path = _sidecar(Path(shard), kind)
            if path.exists():
                with path.open(newline="") as handle:
                    rows += list(csv.reader(handle))[1:]
        rows.sort(key=order)
        _write_csv_atomically(_sidecar(Path(output), kind), header, rows)
        counts[kind] = len(rows)
    return counts


def _run_description(extractor, items: Sequence[Item], shard: tuple[int, int], batch_windows: int) -> dict:
    """What makes shards parts of one run: settings, level, batches and the whole list of inputs."""
    listed = json.dumps([[item.key, item.start, item.end] for item in sorted(items, key=item_order)])
    return {
        "settings": extractor.settings(),
        "level": extractor.level,
        "batch_windows": batch_windows,
        "inputs": len(items),
        "inputs_sha256": hashlib.sha256(listed.encode()).hexdigest(),
        "shard": list(shard),
    }


def _description_path(output: Path) -> Path:
    return output.with_name(f"{output.name}.run.json")


def _write_run_description(output: Path, description: dict) -> None:
    with atomic_path(_description_path(output)) as partial:
        partial.write_text(json.dumps(description, indent=1, sort_keys=True) + "\n")


_DIFFERENCES = {
    "settings": "the model, precision or front-end settings",
    "level": "the level (static or dynamic)",
    "batch_windows": "--batch-windows, so the shards split the inputs differently",
    "inputs_sha256": "the inputs",
}


def check_same_run(shards: Sequence[str | os.PathLike[str]]) -> None:
    """Refuse shards that are not parts of one run, by their ``SHARD.run.json`` descriptions.

    Shards written before runs described themselves have none and are left to the column check
    of :func:`speechae.writers.merge_tables`.

    Raises:
        ParameterError: one shard has a description and another has not, or two differ in
            anything but the shard number.
    """
    described = [(Path(shard), _description_path(Path(shard))) for shard in shards]
    present = [(shard, path) for shard, path in described if path.exists()]
    if not present:
        return
    if len(present) < len(described):
        shard = next(shard for shard, path in described if not path.exists())
        raise ParameterError(
            f"{shard}: has no run description ({_description_path(shard).name}) unlike the other "
            "shards; merge only the shards of one run"
        )
    (first, first_path), *rest = present
    expected = json.loads(first_path.read_text())
    for shard, path in rest:
        description = json.loads(path.read_text())
        for part, meaning in _DIFFERENCES.items():
            if description.get(part) != expected.get(part):
                raise ParameterError(
                    f"{shard}: comes from another run than {first} ({meaning} differ); "
                    "merge only the shards of one run"
                )


def _write_csv_atomically(path: Path, header: list[str], rows: list[list[object]]) -> None:
    if not rows:
        path.unlink(missing_ok=True)
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    with atomic_path(path) as partial:
        partial.write_text(buffer.getvalue())


@dataclass(frozen=True)
class _Layout:
    """The table of a run: its level, whether its inputs are segments, its feature columns."""

    level: str
    segments: bool
    columns: list[str]
    window_seconds: float

    @classmethod
    def of(cls, extractor, items: Sequence[Item]) -> _Layout:
        config = extractor.frontend.config
        return cls(
            extractor.level,
            any(item.is_segment for item in items),
            extractor.column_names,
            config.window_length / config.sampling_rate,
        )

    @property
    def index_names(self) -> list[str]:
        """The index levels (see :data:`speechae.writers.INDEX_LEVELS`)."""
        if self.level == "static":
            return ["file", "start", "end"] if self.segments else ["file"]
        segment = ["segment_start", "segment_end"] if self.segments else []
        return ["file", *segment, "start", "end"]

    @property
    def dtype(self) -> str:
        return "float64" if self.level == "static" else "float32"

    def rows(self, item: Item, features: FileFeatures) -> pd.DataFrame:
        """The table rows of one item."""
        values = features.static[None, :] if self.level == "static" else features.dynamic
        start = item.start or 0.0
        end = start + features.duration
        count = len(values)
        levels = {"file": [item.key] * count, "segment_start": [start] * count, "segment_end": [end] * count}
        if self.level == "static":  # a static row's times are its segment's
            levels.update(start=[start], end=[end])
        else:
            levels.update(start=features.starts, end=features.starts + self.window_seconds)
        names = self.index_names
        if len(names) == 1:
            index = pd.Index(levels["file"], name="file")
        else:
            index = pd.MultiIndex.from_arrays([levels[name] for name in names], names=names)
        return pd.DataFrame(values, columns=self.columns, index=index)


def extract_corpus(
    extractor,
    items: Sequence[Item],
    output: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    jobs: int = 1,
    executor: futures.Executor | None = None,
    network_in_workers: bool = False,
    shard: tuple[int, int] = (0, 1),
    strict: bool = False,
    progress: Progress | None = None,
    batch_windows: int = BATCH_WINDOWS,
    failed_inputs: Sequence[tuple[str, str]] = (),
) -> RunSummary:
    """Extract features of ``items`` into ``output``, resumably; never stops on a bad file.

    Finished batches are committed to ``OUTPUT.store.sqlite``; re-running the same call after an
    interruption recomputes nothing that was finished and writes a byte-identical output. Failures
    go to ``OUTPUT.errors.csv``, dropped windows to ``OUTPUT.dropped.csv``. The output always
    reflects this run: when no item succeeds, it is a table with no rows.

    Args:
        extractor: the :class:`speechae.Extractor` (model, level, device).
        items: from :func:`speechae.inputs.collect_items`.
        output: the output file; its format follows the extension unless ``fmt`` is given.
        fmt: the output format (default: from the extension).
        jobs: worker processes (see :func:`run_items`).
        executor: a ``concurrent.futures.Executor`` to use instead of a process pool.
        network_in_workers: let the workers run the network too (see :func:`run_items`).
        shard: ``(i, N)`` to process only every N-th batch (see :func:`run_items`).
        strict: stop at the first failure (nothing but the store is written).
        progress: where to report progress.
        batch_windows: windows per network batch.
        failed_inputs: ``(input, reason)`` of inputs that gave no items (the failures of
            :func:`speechae.inputs.collect_items`): listed with the failed files.
    """
    started = time.monotonic()
    output = Path(output)
    check_output_path(output, fmt)
    if format_of(output, fmt) == "kaldi":  # before any work, not when the output is written
        for item in items:
            check_kaldi_key(_kaldi_key(item))
    layout = _Layout.of(extractor, items)
    store = FeatureStore(store_path(output))
    failures = [ItemResult(Item(printable(path), path), error=InputError(why)) for path, why in failed_inputs]
    finished: list[ItemResult] = []
    stopped = False
    try:
        for result in run_items(
            extractor,
            items,
            jobs=jobs,
            executor=executor,
            network_in_workers=network_in_workers,
            store=store,
            shard=shard,
            batch_windows=batch_windows,
            progress=progress,
        ):
            (finished if result.ok else failures).append(result)
            if result.features is not None:  # the decoded length, not the header's estimate
                result.seconds = result.features.duration
            result.features = None  # the store holds them; keep memory flat
            if strict and not result.ok:
                stopped = True
                break
        records = _write_outputs(store, finished, failures, output, fmt, layout, write=not stopped)
        if shard[1] > 1 and not stopped:
            _write_run_description(output, _run_description(extractor, items, shard, batch_windows))
    finally:
        store.close()
    return RunSummary(
        output=None if stopped else output,
        records=records,
        failures=failures,
        wall_seconds=time.monotonic() - started,
        computed=sum(not r.reused for r in finished),
        computed_seconds=sum(r.seconds for r in finished if not r.reused),
        reused=sum(r.reused for r in finished),
        stopped_early=stopped,
        level=layout.level,
        earlier_output=output if stopped and output.exists() else None,
    )


def _write_outputs(
    store: FeatureStore,
    finished: list[ItemResult],
    failures: list[ItemResult],
    output: Path,
    fmt: str | None,
    layout: _Layout,
    *,
    write: bool,
) -> pd.DataFrame:
    """Records of every item; with ``write``, also the output (rows or not) and its sidecars.

    The store is read one recording at a time, so memory stays flat.
    """
    finished = sorted(finished, key=lambda r: item_order(r.item))
    records = [file_record(_label(r.item), reason=str(r.error), duration=r.seconds) for r in failures]
    dropped_rows, total_rows = [], 0
    for result in finished:
        item, features = result.item, store.get(result.key)
        records.append(file_record(_label(item), features))
        dropped_rows += [[item.key, item.start, item.end, start] for start in features.dropped]
        total_rows += 1 if layout.level == "static" else len(features.starts)
    if write:
        _write_table(store, finished, output, fmt, layout, total_rows)
        failures = sorted(failures, key=lambda r: item_order(r.item))
        _write_csv_atomically(
            _sidecar(output, "errors"),
            _SIDECARS["errors"][0],
            [[r.item.key, r.item.start, r.item.end, type(r.error).__name__, str(r.error)] for r in failures],
        )
        _write_csv_atomically(_sidecar(output, "dropped"), _SIDECARS["dropped"][0], dropped_rows)
    records.sort(key=lambda record: record["file"])
    return pd.DataFrame.from_records(records, columns=list(RECORD_COLUMNS))


def _reusable(store: FeatureStore, entry: _Planned) -> bool:
    """Whether ``store`` holds intact features for ``entry``; a damaged entry is computed again."""
    try:
        return store.get(entry.key) is not None
    except DamagedStoreEntryError:
        damaged = f"{store.path}: the stored features of {_label(entry.item)} are damaged"
        warnings.warn(DamagedStoreWarning(f"{damaged}; computing them again"), stacklevel=2)
        return False


def _label(item: Item) -> str:
    """How an item is named in records: its key, with the segment when it is one."""
    return with_segment(item.key, item.start, item.end)


def _kaldi_key(item: Item) -> str:
    """An item's Kaldi key: its key, with the segment when it is one (``talk.wav[1-3.5]``)."""
    return f"{item.key}[{segment_span(item.start, item.end)}]" if item.is_segment else item.key


def _write_table(
    store: FeatureStore,
    finished: list[ItemResult],
    output: Path,
    fmt: str | None,
    layout: _Layout,
    total_rows: int,
) -> None:
    with TableWriter(
        output,
        columns=layout.columns,
        index_names=layout.index_names,
        dtype=layout.dtype,
        total_rows=total_rows,
        fmt=fmt,
    ) as writer:
        for result in finished:
            writer.write(layout.rows(result.item, store.get(result.key)), key=_kaldi_key(result.item))
