"""Writing feature tables to files; the format follows the file extension.

Static tables get one row per file with the index ``file``; dynamic tables one row per window with
the index ``(file, start, end)`` in seconds. Every file is written under a temporary name and
renamed when complete, so a reader never sees half a file.

Example:
    >>> import tempfile, pandas as pd
    >>> from pathlib import Path
    >>> table = pd.DataFrame({"x": [1.0]}, index=pd.MultiIndex.from_tuples(
    ...     [("a.wav", pd.Timedelta(0), pd.Timedelta(seconds=2))], names=["file", "start", "end"]))
    >>> path = Path(tempfile.mkdtemp()) / "features.csv"
    >>> write_table(table, path, level="static")
    >>> path.read_text().splitlines()[1]
    'a.wav,1.0'
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from speechae.errors import ParameterError

__all__ = ["FORMATS", "format_of", "to_flat_table", "write_table"]


def to_flat_table(table: pd.DataFrame, *, level: str) -> pd.DataFrame:
    """Index ``file`` (static) or ``(file, start, end)`` with times as float seconds (dynamic).

    Example:
        >>> t = pd.DataFrame({"x": [1.0]}, index=pd.MultiIndex.from_tuples(
        ...     [("a", pd.Timedelta(0), pd.Timedelta(seconds=0.5))], names=["file", "start", "end"]))
        >>> to_flat_table(t, level="dynamic").index.tolist()
        [('a', 0.0, 0.5)]
    """
    flat = table.copy()
    if level == "static":
        flat.index = pd.Index(table.index.get_level_values("file"), name="file")
        return flat
    flat.index = pd.MultiIndex.from_arrays(
        [
            table.index.get_level_values("file"),
            table.index.get_level_values("start").total_seconds(),
            table.index.get_level_values("end").total_seconds(),
        ],
        names=["file", "start", "end"],
    )
    return flat


@contextmanager
def _atomic(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial{path.suffix}")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _write_csv(flat: pd.DataFrame, path: Path) -> None:
    with _atomic(path) as partial:
        flat.to_csv(partial)


def _write_parquet(flat: pd.DataFrame, path: Path) -> None:
    with _atomic(path) as partial:
        flat.to_parquet(partial, engine="pyarrow")


def _write_npy(flat: pd.DataFrame, path: Path) -> None:
    with _atomic(path.with_name(f"{path.stem}.index.csv")) as partial:
        flat.index.to_frame().to_csv(partial, index=False)
    with _atomic(path) as partial, open(partial, "wb") as handle:
        np.save(handle, flat.to_numpy())


def _write_pt(flat: pd.DataFrame, path: Path) -> None:
    import torch

    index = flat.index.to_frame()
    content = {
        "features": torch.tensor(flat.to_numpy()),
        "columns": list(flat.columns),
        "index": {name: index[name].tolist() for name in index.columns},
    }
    with _atomic(path) as partial:
        torch.save(content, partial)


FORMATS: dict[str, Callable[[pd.DataFrame, Path], None]] = {
    "csv": _write_csv,
    "parquet": _write_parquet,
    "npy": _write_npy,
    "pt": _write_pt,
}


def format_of(path: str | os.PathLike[str]) -> str:
    """Output format named by the extension of ``path``.

    Example:
        >>> format_of("out/features.parquet")
        'parquet'
    """
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ParameterError(
            f"{path}: unknown output format {suffix!r}; use one of "
            + ", ".join(f".{name}" for name in FORMATS)
        )
    return suffix


def write_table(table: pd.DataFrame, path: str | os.PathLike[str], *, level: str) -> None:
    """Write a table from :class:`speechae.Extractor` to ``path`` in the format of its extension.

    ``.npy`` writes the feature matrix and ``<name>.index.csv`` beside it; ``.pt`` writes a dict
    with ``features`` (tensor), ``columns`` and ``index`` (readable with ``weights_only=True``).
    """
    path = Path(path)
    FORMATS[format_of(path)](to_flat_table(table, level=level), path)
