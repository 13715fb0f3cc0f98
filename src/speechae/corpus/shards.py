"""Job arrays: one run split into shards, each described so that only one run's shards merge.

``--shard i/N`` processes every N-th batch into ``OUT.shard-i-of-N.EXT``, beside a description
of the run (``.run.json``: settings, level, batches and the list of inputs); merging refuses
shards of different runs, then joins the tables and their lists of failures and dropped windows.

Example:
    >>> shard_output("out/features.parquet", (0, 4)).as_posix()
    'out/features.shard-0-of-4.parquet'
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from speechae.atomic import atomic_path
from speechae.corpus.sidecars import SIDECARS, sidecar_path, write_csv_atomically
from speechae.errors import ParameterError
from speechae.inputs import Item, item_order
from speechae.pipeline import Pipeline
from speechae.writers import check_output_path, merge_tables

__all__ = [
    "check_same_run",
    "check_shard_set",
    "merge_shards",
    "merge_sidecars",
    "run_description",
    "run_description_path",
    "shard_output",
    "write_run_description",
]


_SHARD_NAME = re.compile(r"\.shard-(\d+)-of-(\d+)(\.[^.]*)?$")


def check_shard_set(paths: Sequence[Path]) -> None:
    """Refuse a missing or repeated shard, and an incomplete set of ``NAME.shard-I-of-N.EXT``.

    Raises:
        ParameterError: naming the shard, or the numbers missing.
    """
    seen: set[Path] = set()
    for path in paths:
        if not path.exists():
            raise ParameterError(f"{path}: no such shard output")
        if path.resolve() in seen:
            raise ParameterError(f"{path}: given twice")
        seen.add(path.resolve())
    numbered = [_SHARD_NAME.search(path.name) for path in paths]
    if not paths or not all(numbered):
        return
    counts = {int(match[2]) for match in numbered}
    if len(counts) > 1:
        raise ParameterError(f"the shards come from runs split {sorted(counts)} ways; merge one run's shards")
    missing = sorted(set(range(counts.pop())) - {int(match[1]) for match in numbered})
    if missing:
        raise ParameterError(f"shard(s) {', '.join(map(str, missing))} of this run are missing")


def shard_output(output: str | os.PathLike[str], shard: tuple[int, int]) -> Path:
    """Output path of one shard: ``features.parquet`` -> ``features.shard-0-of-4.parquet``."""
    path = Path(output)
    return path.with_name(f"{path.stem}.shard-{shard[0]}-of-{shard[1]}{path.suffix}")


def merge_shards(
    shards: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *, fmt: str | None = None
) -> dict[str, int]:
    """Join one run's shards into ``output`` and their lists of failures and dropped windows beside it.

    The table is byte-identical to the output of the same run done in one piece.

    Returns:
        rows written per kind, e.g. ``{"rows": 120, "errors": 2, "dropped": 0}``.

    Raises:
        ParameterError: shards of different runs, a missing, repeated or foreign shard, or an
            output that cannot be written.

    Example:
        >>> shards = ["out.shard-0-of-2.parquet", "out.shard-1-of-2.parquet"]
        >>> merge_shards(shards, "out.parquet")  # doctest: +SKIP
        {'rows': 120, 'errors': 2, 'dropped': 0}
    """
    check_output_path(output, fmt)
    check_same_run(shards)
    check_shard_set([Path(shard) for shard in shards])
    rows = merge_tables(shards, output, fmt=fmt)
    return {"rows": rows, **merge_sidecars(shards, output)}


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
    for kind, (header, order) in SIDECARS.items():
        rows = []
        for shard in shards:
            path = sidecar_path(Path(shard), kind)
            if path.exists():
                with path.open(newline="") as handle:
                    rows += list(csv.reader(handle))[1:]
        rows.sort(key=order)
        write_csv_atomically(sidecar_path(Path(output), kind), header, rows)
        counts[kind] = len(rows)
    return counts


def run_description(
    pipeline: Pipeline, level: str, items: Sequence[Item], shard: tuple[int, int], batch_windows: int
) -> dict:
    """What makes shards parts of one run: settings, level, batches and the whole list of inputs."""
    listed = json.dumps([[item.key, item.start, item.end] for item in sorted(items, key=item_order)])
    return {
        "settings": pipeline.settings(),
        "level": level,
        "batch_windows": batch_windows,
        "inputs": len(items),
        "inputs_sha256": hashlib.sha256(listed.encode()).hexdigest(),
        "shard": list(shard),
    }


def run_description_path(output: Path) -> Path:
    """``OUT.run.json`` beside the shard ``output``."""
    return output.with_name(f"{output.name}.run.json")


def write_run_description(output: Path, description: dict) -> None:
    """Write ``description`` (:func:`run_description`) beside the shard ``output``."""
    with atomic_path(run_description_path(output)) as partial:
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
    described = [(Path(shard), run_description_path(Path(shard))) for shard in shards]
    present = [(shard, path) for shard, path in described if path.exists()]
    if not present:
        return
    if len(present) < len(described):
        shard = next(shard for shard, path in described if not path.exists())
        raise ParameterError(
            f"{shard}: has no run description ({run_description_path(shard).name}) unlike the other "
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
