"""The lists beside a corpus run's output: ``OUT.errors.csv``, ``OUT.dropped.csv``, ``OUT.quality.csv``.

The errors list holds the failed items and the items read despite damage their decoder reported
(``DecoderWarning`` in its ``error`` column, their features in the output). ``OUT.quality.csv``
holds the quality measures (:mod:`speechae.quality`) of every item in the output, its segment
given as the static table gives it (the span read).

Each has one header and one row order (as :func:`speechae.inputs.item_order` sorts items), so a
single run and merged shards write them identically. An item's segment is given as in its input:
``start, end`` in errors, ``segment_start, segment_end`` in dropped windows (empty for a whole
recording).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from speechae.atomic import atomic_path
from speechae.quality import QUALITY_COLUMNS

__all__ = ["SIDECARS", "sidecar_path", "write_csv_atomically"]


def sidecar_path(output: Path, kind: str) -> Path:
    """``OUT.KIND.csv`` beside ``output``.

    Example:
        >>> sidecar_path(Path("out/features.parquet"), "errors").as_posix()
        'out/features.parquet.errors.csv'
    """
    return output.with_name(f"{output.name}.{kind}.csv")


def _listed_item_order(file: str, start: str, end: str) -> tuple[str, float, float]:
    """:func:`speechae.inputs.item_order` of an item as a CSV row gives it (no segment: empty)."""
    return file, float(start or 0), float(end or math.inf)


#: Header and row order of each list.
SIDECARS = {
    "errors": (["file", "start", "end", "error", "reason"], lambda row: _listed_item_order(*row[:3])),
    "dropped": (
        ["file", "segment_start", "segment_end", "start"],
        lambda row: (*_listed_item_order(*row[:3]), float(row[3])),
    ),
    "quality": (["file", "start", "end", *QUALITY_COLUMNS], lambda row: _listed_item_order(*row[:3])),
}


def write_csv_atomically(path: Path, header: list[str], rows: list[list[object]]) -> None:
    """Write ``rows`` under ``header`` to ``path`` at once; no rows removes ``path``."""
    if not rows:
        path.unlink(missing_ok=True)
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    with atomic_path(path) as partial:
        partial.write_text(buffer.getvalue())
