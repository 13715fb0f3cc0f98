"""The corpus runner: many recordings, parallel front-end, batched network, resumable output.

One runner serves ``Extractor.process_files(..., jobs=N)`` and ``speechae extract``, in modules
named for what they own:

- :mod:`~speechae.corpus.planning`: items, their results, and batches cut from the headers;
- :mod:`~speechae.corpus.batches`: one batch through the pipeline, never raising for one item;
- :mod:`~speechae.corpus.workers`: worker processes and the tasks they run;
- :mod:`~speechae.corpus.runner`: :func:`run_items`, batches scheduled over an executor;
- :mod:`~speechae.corpus.outputs`: :func:`extract_corpus`, the store, the table and its lists;
- :mod:`~speechae.corpus.claims`: the files a run writes, kept apart from its inputs, and its lock;
- :mod:`~speechae.corpus.records`: what a run did (:class:`RunSummary`, :func:`file_record`);
- :mod:`~speechae.corpus.shards` and :mod:`~speechae.corpus.sidecars`: job arrays and merging.

Example:
    >>> from speechae import Extractor  # doctest: +SKIP
    >>> summary = extract_corpus(Extractor("cae-256"), items, "features.parquet", jobs=2)  # doctest: +SKIP
"""

from __future__ import annotations

from speechae.corpus.claims import OutputLock, check_apart, written_paths
from speechae.corpus.outputs import Extraction, extract_corpus
from speechae.corpus.planning import BATCH_WINDOWS, LONG_FILE_WINDOWS, ItemResult, plan_batches
from speechae.corpus.records import RECORD_COLUMNS, RunSummary, file_record, interrupted_text
from speechae.corpus.runner import ItemRun, run_items
from speechae.corpus.shards import check_same_run, merge_shards, merge_sidecars, shard_output
from speechae.corpus.workers import AUTO, Machine, choose_jobs, use_threads

__all__ = [
    "AUTO",
    "BATCH_WINDOWS",
    "LONG_FILE_WINDOWS",
    "RECORD_COLUMNS",
    "Extraction",
    "ItemResult",
    "ItemRun",
    "Machine",
    "OutputLock",
    "RunSummary",
    "check_apart",
    "check_same_run",
    "choose_jobs",
    "extract_corpus",
    "file_record",
    "interrupted_text",
    "merge_shards",
    "merge_sidecars",
    "plan_batches",
    "run_items",
    "shard_output",
    "use_threads",
    "written_paths",
]
