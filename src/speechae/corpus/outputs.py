"""A corpus run into files: the table, the lists beside it, the store, and the summary.

:func:`extract_corpus` adds to :func:`~speechae.corpus.run_items` the store (finished batches are
committed as they complete and never recomputed), an output written atomically from the store one
recording at a time, the lists of failed items and dropped windows, and a summary.

Example:
    >>> from speechae import Extractor  # doctest: +SKIP
    >>> summary = extract_corpus(Extractor("cae-256"), items, "features.parquet", jobs=2)  # doctest: +SKIP
"""

from __future__ import annotations

import concurrent.futures as futures
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

from speechae.corpus.claims import OutputLock, check_apart, written_paths
from speechae.corpus.planning import BATCH_WINDOWS, ItemResult
from speechae.corpus.records import RECORD_COLUMNS, RunSummary, file_record
from speechae.corpus.runner import run_items
from speechae.corpus.shards import run_description, write_run_description
from speechae.corpus.sidecars import SIDECARS, sidecar_path, write_csv_atomically
from speechae.errors import DecoderWarning, InputError, check_counts
from speechae.features import FileFeatures
from speechae.inputs import Item, item_order, printable
from speechae.pipeline import Pipeline
from speechae.progress import Progress
from speechae.quality import QUALITY_COLUMNS
from speechae.store import FeatureStore, store_path
from speechae.writers import TableWriter, check_kaldi_key, check_output_path, format_of

__all__ = ["Extraction", "extract_corpus"]


class Extraction(Protocol):
    """What a run extracts: a pipeline and a level, as a :class:`speechae.Extractor` holds them."""

    pipeline: Pipeline
    level: str


@dataclass(frozen=True)
class _Layout:
    """The table of a run: its level, whether its inputs are segments, its feature columns."""

    level: str
    segments: bool
    columns: list[str]
    window_seconds: float

    @classmethod
    def of(cls, extraction: Extraction, items: Sequence[Item]) -> _Layout:
        pipeline = extraction.pipeline
        return cls(
            extraction.level,
            any(item.is_segment for item in items),
            pipeline.column_names(extraction.level),
            pipeline.frontend.config.window_seconds,
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
        start, end = features.span  # what was read, as Extractor.process_file gives it
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
    extraction: Extraction,
    items: Sequence[Item],
    output: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    jobs: int | str = 1,
    executor: futures.Executor | None = None,
    network_in_workers: bool = False,
    shard: tuple[int, int] = (0, 1),
    strict: bool = False,
    progress: Progress | None = None,
    batch_windows: int = BATCH_WINDOWS,
    failed_inputs: Sequence[tuple[str, str]] = (),
    inputs: Sequence[str | os.PathLike[str]] = (),
    wait: bool = False,
) -> RunSummary:
    """Extract features of ``items`` into ``output``, resumably; never stops on a bad file.

    Finished batches are committed to ``OUTPUT.store.sqlite``; re-running the same call after an
    interruption recomputes nothing that was finished and writes a byte-identical output. Failures
    go to ``OUTPUT.errors.csv``, dropped windows to ``OUTPUT.dropped.csv``. The output always
    reflects this run: when no item succeeds, it is a table with no rows.

    Args:
        extraction: a :class:`speechae.Extractor` (its pipeline and level).
        items: from :func:`speechae.inputs.collect_items`.
        output: the output file; its format follows the extension unless ``fmt`` is given.
        fmt: the output format (default: from the extension).
        jobs: worker processes, or ``"auto"`` (see :func:`~speechae.corpus.run_items`); the
            summary says how many ran.
        executor: a ``concurrent.futures.Executor`` to use instead of a process pool.
        network_in_workers: let the workers run the network too (see :func:`run_items`).
        shard: ``(i, N)`` to process only every N-th batch (see :func:`run_items`).
        strict: stop at the first failure (nothing but the store is written).
        progress: where to report progress.
        batch_windows: windows per network batch.
        failed_inputs: ``(input, reason)`` of inputs that gave no items (the failures of
            :func:`speechae.inputs.collect_items`): listed with the failed files.
        inputs: the inputs the items came from (list files, manifests), which, like the items'
            files, the run never writes.
        wait: wait for another run writing ``output`` to finish instead of stopping.

    Raises:
        ParameterError: the output or a file beside it is one of the inputs.
        OutputInUseError: another run is writing ``output`` (without ``wait``).
    """
    started = time.monotonic()
    output = Path(output)
    check_counts(batch_windows=batch_windows)
    check_output_path(output, fmt)
    check_apart(written_paths(output, fmt), [*(item.path for item in items), *inputs])
    if format_of(output, fmt) == "kaldi":  # before any work, not when the output is written
        for item in items:
            check_kaldi_key(item.kaldi_key)
    with OutputLock(output, wait=wait):
        layout = _Layout.of(extraction, items)
        store = FeatureStore(store_path(output))
        failures = [
            ItemResult(Item(printable(path), path), error=InputError(why)) for path, why in failed_inputs
        ]
        finished: list[ItemResult] = []
        stopped = False
        try:
            run = run_items(
                extraction.pipeline,
                items,
                jobs=jobs,
                executor=executor,
                network_in_workers=network_in_workers,
                store=store,
                shard=shard,
                batch_windows=batch_windows,
                progress=progress,
            )
            for result in run:
                (finished if result.ok else failures).append(result)
                if result.features is not None:  # the decoded length, not the header's estimate
                    result.seconds = result.features.duration
                result.features = None  # the store holds them; keep memory flat
                if strict and not result.ok:
                    stopped = True
                    break
            records = _write_outputs(store, finished, failures, output, fmt, layout, write=not stopped)
            if shard[1] > 1 and not stopped:
                write_run_description(
                    output, run_description(extraction.pipeline, layout.level, items, shard, batch_windows)
                )
        finally:
            store.close()
        return RunSummary(
            output=None if stopped else output,
            records=records,
            failures=failures,
            warned=[r for r in finished if r.warnings],
            wall_seconds=time.monotonic() - started,
            computed=sum(not r.reused for r in finished),
            computed_seconds=sum(r.seconds for r in finished if not r.reused),
            reused=sum(r.reused for r in finished),
            stopped_early=stopped,
            level=layout.level,
            earlier_output=output if stopped and output.exists() else None,
            workers=run.describe(executor),
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
    records = [file_record(r.item.label, reason=str(r.error), duration=r.seconds) for r in failures]
    dropped_rows, quality_rows, total_rows = [], [], 0
    for result in finished:
        item, features = result.item, store.get(result.key)
        records.append(file_record(item.label, features))
        dropped_rows += [[item.key, item.start, item.end, start] for start in features.dropped]
        quality_rows.append(_quality_row(item, features, result.quality, layout))
        total_rows += 1 if layout.level == "static" else len(features.starts)
    if write:
        _write_table(store, finished, output, fmt, layout, total_rows)
        listed = [(r, type(r.error).__name__, str(r.error)) for r in failures]
        listed += [(r, DecoderWarning.__name__, message) for r in finished for message in r.warnings]
        listed.sort(key=lambda row: item_order(row[0].item))
        write_csv_atomically(
            sidecar_path(output, "errors"),
            SIDECARS["errors"][0],
            [[r.item.key, r.item.start, r.item.end, kind, why] for r, kind, why in listed],
        )
        write_csv_atomically(sidecar_path(output, "dropped"), SIDECARS["dropped"][0], dropped_rows)
        write_csv_atomically(sidecar_path(output, "quality"), SIDECARS["quality"][0], quality_rows)
    records.sort(key=lambda record: record["file"])
    return pd.DataFrame.from_records(records, columns=list(RECORD_COLUMNS))


def _quality_row(item: Item, features: FileFeatures, quality: dict[str, float], layout: _Layout) -> list:
    """The item's row of ``OUT.quality.csv``: named as in the static table, measures, dropped windows."""
    start, end = features.span if layout.segments else ("", "")
    measured = [quality.get(measure, "") for measure in QUALITY_COLUMNS if measure != "dropped_windows"]
    return [item.key, start, end, *measured, len(features.dropped)]


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
            writer.write(layout.rows(result.item, store.get(result.key)), key=result.item.kaldi_key)
