"""Feature tables as files: streaming writers, one per format, and a reader for each.

The format follows the file extension (or is named explicitly):

======== ===================================================================================
csv      one header line, then one line per row; index columns first
parquet  Apache Parquet (pyarrow), row groups of up to 8192 rows
npy      the feature matrix, with ``NAME.index.csv`` (file, start, end per row) and
         ``NAME.columns.txt`` (one column name per line) beside it
npz      ``features``, ``columns``, ``file``, ``start``, ``end`` arrays in one zip
pt       a dict ``features`` (tensor), ``columns``, ``index`` (``torch.load(weights_only=True)``)
ark/scp  Kaldi ``NAME.ark`` + ``NAME.scp`` via kaldiio: one matrix per file, keyed by its name;
         the scp names the ark by its absolute path
======== ===================================================================================

Static tables have one row per file and the index ``file`` (``file, start, end`` when the inputs
are segments); dynamic tables one row per window and the index ``file, start, end`` in seconds.
Static values are float64, dynamic values float32. Rows arrive file by file through
:meth:`TableWriter.write`; every file appears under a temporary name and is renamed when complete.
HDF5 is not offered: Parquet and npz cover the same use without another binary dependency.

Example:
    >>> import tempfile, pandas as pd
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "features.csv"
    >>> with TableWriter(path, columns=["x"], index_names=["file"], dtype="float64") as writer:
    ...     writer.write(pd.DataFrame({"x": [1.5]}, index=pd.Index(["a.wav"], name="file")))
    >>> path.read_text().splitlines()
    ['file,x', 'a.wav,1.5']
"""

from __future__ import annotations

import itertools
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from speechae.atomic import check_target, partial_path
from speechae.errors import ParameterError

__all__ = [
    "FORMATS",
    "INDEX_LEVELS",
    "TableWriter",
    "check_kaldi_key",
    "check_output_path",
    "format_of",
    "kaldi_paths",
    "merge_tables",
    "read_table",
    "table_paths",
    "to_flat_table",
    "write_table",
]

#: Index levels a table may have: ``file``; ``start`` and ``end`` (of a window in dynamic
#: tables, of the segment in static ones); ``segment_start`` and ``segment_end`` in dynamic tables
#: of segments, which tell apart the windows of overlapping segments.
INDEX_LEVELS = ("file", "segment_start", "segment_end", "start", "end")

FORMATS = ("csv", "parquet", "npy", "npz", "pt", "kaldi")
_EXTENSIONS = {
    "csv": "csv",
    "parquet": "parquet",
    "npy": "npy",
    "npz": "npz",
    "pt": "pt",
    "ark": "kaldi",
    "scp": "kaldi",
}
_ROW_GROUP = 8192
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def format_of(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """The output format: ``fmt`` when given, else named by the extension of ``path``.

    Example:
        >>> format_of("out/features.parquet"), format_of("feats.ark"), format_of("x.txt", "csv")
        ('parquet', 'kaldi', 'csv')
    """
    if fmt is not None:
        if fmt not in FORMATS:
            raise ParameterError(f"unknown output format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in _EXTENSIONS:
        raise ParameterError(
            f"{path}: unknown output format {suffix!r}; use one of "
            + ", ".join(f".{name}" for name in _EXTENSIONS)
        )
    return _EXTENSIONS[suffix]


def check_kaldi_key(key: str) -> None:
    """Refuse a Kaldi key with white space (Kaldi splits keys from values there).

    Example:
        >>> check_kaldi_key("spk1/utt1.wav")  # "spk1/utt 1.wav" would raise

    Raises:
        ParameterError: naming the key.
    """
    if any(c.isspace() for c in key):
        raise ParameterError(
            f"{key}: Kaldi keys cannot contain white space; rename the file or write another format"
        )


def check_output_path(path: str | os.PathLike[str], fmt: str | None = None) -> None:
    """Refuse, before any work, an output that cannot be written; create its missing folders.

    Example:
        >>> import tempfile
        >>> check_output_path(tempfile.mkdtemp(suffix=".csv"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        speechae.errors.ParameterError: /...: is a folder; give the path of the file to write

    Raises:
        ParameterError: an unknown format, or :func:`speechae.atomic.check_target`'s reasons
            for the output (both files of a Kaldi pair).
    """
    if Path(path).is_dir():  # said before its format, which a folder's name does not give
        check_target(path)
    for target in table_paths(path, fmt):
        check_target(target)


def table_paths(path: str | os.PathLike[str], fmt: str | None = None) -> tuple[Path, ...]:
    """Every file a table written to ``path`` (in ``fmt``, default: from the extension) takes.

    Example:
        >>> [p.name for p in table_paths("feats.npy")]
        ['feats.npy', 'feats.index.csv', 'feats.columns.txt']
    """
    fmt, path = format_of(path, fmt), Path(path)
    if fmt == "kaldi":
        return kaldi_paths(path)
    return (path, *_npy_sidecars(path)) if fmt == "npy" else (path,)


def kaldi_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """The ``.ark`` and ``.scp`` files of a Kaldi output named ``NAME``, ``NAME.ark`` or ``NAME.scp``.

    Example:
        >>> [p.name for p in kaldi_paths("feats.scp")]
        ['feats.ark', 'feats.scp']
    """
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".ark", ".scp") else path
    return stem.with_name(stem.name + ".ark"), stem.with_name(stem.name + ".scp")


def _npy_sidecars(path: Path) -> tuple[Path, Path]:
    """The index and column-name files beside the matrix ``NAME.npy``."""
    return path.with_name(f"{path.stem}.index.csv"), path.with_name(f"{path.stem}.columns.txt")


def to_flat_table(table: pd.DataFrame, *, level: str) -> pd.DataFrame:
    """Turn an :class:`~speechae.Extractor` table into the file layout (times as seconds).

    Static tables keep only ``file`` when every row is a whole recording (unique files, all
    starting at 0); segments keep ``file, start, end``.

    Example:
        >>> t = pd.DataFrame({"x": [1.0]}, index=pd.MultiIndex.from_tuples(
        ...     [("a", pd.Timedelta(0), pd.Timedelta(seconds=0.5))], names=["file", "start", "end"]))
        >>> to_flat_table(t, level="dynamic").index.tolist()
        [('a', 0.0, 0.5)]
    """
    files = table.index.get_level_values("file")
    starts = table.index.get_level_values("start").total_seconds()
    ends = table.index.get_level_values("end").total_seconds()
    flat = table.copy()
    whole_files = files.is_unique and not starts.any()
    if level == "static" and whole_files:
        flat.index = pd.Index(files, name="file")
    else:
        flat.index = pd.MultiIndex.from_arrays([files, starts, ends], names=["file", "start", "end"])
    return flat


class TableWriter:
    """Write a feature table file by file, in bounded memory (``pt`` and ``npz`` keep the index).

    Args:
        path: the output file (for Kaldi: ``NAME``, ``NAME.ark`` or ``NAME.scp``).
        columns: feature column names.
        index_names: some of :data:`INDEX_LEVELS`, in that order.
        dtype: ``"float32"`` (dynamic) or ``"float64"`` (static).
        total_rows: number of rows to come; needed by ``npy`` and ``npz``.
        fmt: the format; default from the extension of ``path``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        columns: Sequence[str],
        index_names: Sequence[str],
        dtype: str,
        total_rows: int | None = None,
        fmt: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.format = format_of(self.path, fmt)
        self.columns = list(columns)
        self.index_names = list(index_names)
        self.dtype = np.dtype(dtype)
        self.total_rows = total_rows
        if self.format in ("npy", "npz") and total_rows is None:
            raise ParameterError(f"{self.path}: the {self.format} writer needs total_rows")
        self.rows = 0
        self._index: list[pd.DataFrame] = []
        self._values: list[np.ndarray] = []
        self._buffer: list[pd.DataFrame] = []
        self._targets: list[tuple[Path, Path]] = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        getattr(self, f"_open_{self.format}", lambda: None)()

    def _target(self, path: Path) -> Path:
        partial = partial_path(path)
        self._targets.append((partial, path))
        return partial

    def _open_csv(self) -> None:
        self._handle = open(self._target(self.path), "w", newline="")
        self._handle.write(",".join([*self.index_names, *self.columns]) + "\n")

    def _open_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        index_types = [pa.string()] + [pa.float64()] * (len(self.index_names) - 1)
        value_type = pa.from_numpy_dtype(self.dtype)
        fields = [pa.field(n, t) for n, t in zip(self.index_names, index_types, strict=True)]
        fields += [pa.field(name, value_type) for name in self.columns]
        self._schema = pa.schema(fields, metadata=self._pandas_metadata())
        self._parquet = pq.ParquetWriter(self._target(self.path), self._schema)

    def _pandas_metadata(self) -> dict[bytes, bytes]:
        """The index levels described as pandas describes them, so ``pd.read_parquet`` restores them."""
        import pyarrow as pa

        levels = [np.empty(0, dtype=str if n == "file" else np.float64) for n in self.index_names]
        index = pd.MultiIndex.from_arrays(levels, names=self.index_names)
        if len(self.index_names) == 1:
            index = index.get_level_values(0)
        # the value columns are left to their Arrow types: 1536 entries would take 170 kB
        no_values = pd.DataFrame(index=index, columns=pd.Index([], dtype=str))  # names are text
        return pa.Schema.from_pandas(no_values, preserve_index=True).metadata

    def _open_npy(self) -> None:
        self._matrix = np.lib.format.open_memmap(
            self._target(self.path), mode="w+", dtype=self.dtype, shape=(self.total_rows, len(self.columns))
        )
        index_path, columns_path = _npy_sidecars(self.path)
        self._target(columns_path).write_text("".join(f"{name}\n" for name in self.columns))
        self._handle = open(self._target(index_path), "w", newline="")
        self._handle.write(",".join(self.index_names) + "\n")

    def _open_npz(self) -> None:
        self._zip = zipfile.ZipFile(self._target(self.path), "w", zipfile.ZIP_STORED, allowZip64=True)
        info = zipfile.ZipInfo("features.npy", date_time=_ZIP_TIME)
        self._stream = self._zip.open(info, "w", force_zip64=True)
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (self.total_rows, len(self.columns)),
        }
        np.lib.format.write_array_header_1_0(self._stream, header)

    def _open_kaldi(self) -> None:
        import kaldiio

        ark, scp = kaldi_paths(self.path)
        self._kaldi = kaldiio.WriteHelper(f"ark,scp:{self._target(ark)},{self._target(scp)}")
        self._scp_partial = self._targets[-1][0]
        self._ark_partial, self._ark = self._targets[-2]

    def write(self, rows: pd.DataFrame, key: str | None = None) -> None:
        """Append the rows of one file (index and columns as given to the constructor).

        ``key`` names the rows' matrix in Kaldi output (default: their ``file``); each must be
        unique, e.g. one per segment of a recording.
        """
        values = np.ascontiguousarray(rows.to_numpy(dtype=self.dtype))
        if self.format == "csv":
            rows.astype(self.dtype).to_csv(self._handle, header=False)
        elif self.format == "parquet":
            self._buffer.append(rows)
            if sum(len(b) for b in self._buffer) >= _ROW_GROUP:
                self._flush_parquet()
        elif self.format == "npy":
            self._matrix[self.rows : self.rows + len(values)] = values
            rows.index.to_frame().to_csv(self._handle, header=False, index=False)
        elif self.format == "npz":
            self._stream.write(values.tobytes())
            self._index.append(rows.index.to_frame(index=False))
        elif self.format == "pt":
            self._values.append(values)
            self._index.append(rows.index.to_frame(index=False))
        else:
            key = str(rows.index.get_level_values("file")[0]) if key is None else key
            check_kaldi_key(key)
            self._kaldi(key, values.astype(np.float32))
        self.rows += len(values)

    def _flush_parquet(self) -> None:
        import pyarrow as pa

        if not self._buffer:
            return
        frame = pd.concat(self._buffer)
        index = frame.index.to_frame(index=False)
        values = np.asfortranarray(frame.to_numpy(dtype=self.dtype))  # contiguous columns
        columns = [index[name].to_numpy() for name in self.index_names]
        columns += list(values.T)
        # from_arrays instead of from_pandas: twice as fast with 1536 columns
        self._parquet.write_table(pa.Table.from_arrays(columns, schema=self._schema))
        self._buffer = []

    def close(self) -> None:
        """Finish the file(s) and move them into place."""
        if self.total_rows is not None and self.rows != self.total_rows:
            raise ParameterError(f"{self.path}: {self.rows} rows written, {self.total_rows} announced")
        if self.format == "csv":
            self._handle.close()
        elif self.format == "parquet":
            self._flush_parquet()
            self._parquet.close()
        elif self.format == "npy":
            self._matrix.flush()
            del self._matrix
            self._handle.close()
        elif self.format == "npz":
            self._stream.close()
            self._close_npz()
        elif self.format == "pt":
            self._save_pt()
        else:
            self._kaldi.close()
            # point the entries at the ark's final name, absolute so that the scp works from any folder
            text = self._scp_partial.read_text()
            self._scp_partial.write_text(text.replace(str(self._ark_partial), str(self._ark.absolute())))
        for partial, final in self._targets:
            os.replace(partial, final)
        self._targets = []

    def _close_npz(self) -> None:
        index = (
            pd.concat(self._index, ignore_index=True)
            if self._index
            else pd.DataFrame(columns=self.index_names)
        )
        arrays = {"columns": np.array(self.columns), "file": index["file"].to_numpy(dtype=str)}
        for name in self.index_names[1:]:
            arrays[name] = index[name].to_numpy(dtype=np.float64)
        for name, array in arrays.items():
            with self._zip.open(zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME), "w") as stream:
                np.lib.format.write_array(stream, array, allow_pickle=False)
        self._zip.close()

    def _save_pt(self) -> None:
        import io

        import torch

        index = (
            pd.concat(self._index, ignore_index=True)
            if self._index
            else pd.DataFrame(columns=self.index_names)
        )
        values = np.concatenate(self._values) if self._values else np.zeros((0, len(self.columns)))
        content = {
            "features": torch.tensor(values.astype(self.dtype)),
            "columns": self.columns,
            "index": {name: index[name].tolist() for name in self.index_names},
        }
        buffer = io.BytesIO()  # saving to a buffer keeps the temporary file name out of the archive
        torch.save(content, buffer)
        self._target(self.path).write_bytes(buffer.getvalue())

    def discard(self) -> None:
        """Abandon the output: remove every temporary file."""
        for handle in ("_handle", "_stream"):
            if hasattr(self, handle) and not getattr(self, handle).closed:
                getattr(self, handle).close()
        for partial, _ in self._targets:
            partial.unlink(missing_ok=True)
        self._targets = []

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()


def write_table(
    table: pd.DataFrame, path: str | os.PathLike[str], *, level: str, fmt: str | None = None
) -> None:
    """Write a whole table from :class:`speechae.Extractor` to ``path``, one file's rows at a time."""
    flat = to_flat_table(table, level=level)
    dtype = "float64" if level == "static" else "float32"
    with TableWriter(
        path, columns=flat.columns, index_names=flat.index.names, dtype=dtype, total_rows=len(flat), fmt=fmt
    ) as writer:
        _write_by_file(writer, flat)


def _write_by_file(writer: TableWriter, table: pd.DataFrame) -> None:
    """Write a table whose rows are grouped by file, one file's rows at a time."""
    if len(table) == 0:
        return
    files = table.index.get_level_values("file")
    boundaries = np.flatnonzero(np.r_[True, files[1:] != files[:-1], True])
    for first, last in itertools.pairwise(boundaries):
        writer.write(table.iloc[first:last])


def read_table(path: str | os.PathLike[str], *, fmt: str | None = None) -> pd.DataFrame:
    """Read a table written by :class:`TableWriter` back, with its index and dtypes.

    Kaldi outputs carry no times: their index is ``file`` only, one matrix's rows per file; nor
    column names, so an empty one reads back without columns.
    """
    path = Path(path)
    fmt = format_of(path, fmt)
    if fmt == "kaldi":
        import kaldiio

        matrices = kaldiio.load_scp(str(kaldi_paths(path)[1]))
        frames = [
            pd.DataFrame(np.asarray(m), index=pd.Index([k] * len(m), name="file"))
            for k, m in matrices.items()
        ]
        return pd.concat(frames) if frames else pd.DataFrame(index=pd.Index([], dtype=str, name="file"))
    if fmt == "csv":
        with path.open() as handle:
            header = handle.readline().strip().split(",")
        index_names = [n for n in INDEX_LEVELS if n in header]
        dtypes = {name: str if name == "file" else np.float64 for name in header}  # also with no rows
        table = pd.read_csv(path, index_col=index_names, dtype=dtypes)
    elif fmt == "parquet":
        table = pd.read_parquet(path)
        index_names = [n for n in INDEX_LEVELS if n in table.columns]
        if index_names:  # written before the files carried pandas' description of the index
            table = table.set_index(index_names)
    elif fmt == "npy":
        index_path, columns_path = _npy_sidecars(path)
        index = pd.read_csv(index_path, dtype={"file": str})
        # outputs of earlier versions have no column names: their columns are numbered
        columns = columns_path.read_text().splitlines() if columns_path.exists() else None
        table = pd.DataFrame(np.load(path), index=pd.MultiIndex.from_frame(index), columns=columns)
    elif fmt == "npz":
        with np.load(path, allow_pickle=False) as archive:
            names = [n for n in INDEX_LEVELS if n in archive.files]
            index = pd.MultiIndex.from_arrays([archive[n] for n in names], names=names)
            table = pd.DataFrame(archive["features"], index=index, columns=list(archive["columns"]))
    else:
        import torch

        content = torch.load(path, weights_only=True)
        index = pd.MultiIndex.from_frame(pd.DataFrame(content["index"]))
        table = pd.DataFrame(content["features"].numpy(), index=index, columns=content["columns"])
    if table.index.nlevels == 1:
        table.index = pd.Index(table.index.get_level_values(0), name="file")
    return table


def _value_dtype(table: pd.DataFrame) -> str:
    """float32 for dynamic tables, float64 for static ones (CSV reads both back as float64)."""
    if all(d == np.float32 for d in table.dtypes) or str(table.columns[0]).startswith("bottleneck_"):
        return "float32"
    return "float64"


def merge_tables(
    inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *, fmt: str | None = None
) -> int:
    """Join tables of one run's parts into one, rows sorted as a single run sorts them.

    The result is byte-identical to the output of the same run done in one piece
    (:func:`speechae.corpus.merge_shards` checks first that the parts are one run's shards).

    Returns:
        the number of rows written.

    Raises:
        ParameterError: a table holds other features than the rest (static and dynamic, other
            models).
    """
    tables = [read_table(path) for path in inputs]
    # an empty Kaldi shard cannot say which features it holds: Kaldi keeps no column names
    described = [(path, table) for path, table in zip(inputs, tables, strict=True) if len(table.columns)]
    for path, table in described[1:]:
        first_path, first = described[0]
        if list(table.columns) != list(first.columns) or table.index.names != first.index.names:
            raise ParameterError(
                f"{path}: holds other features than {first_path} (static and dynamic, or another "
                "model); merge only the shards of one run"
            )
    # empty tables left out: their index levels carry no dtypes to agree with the others'
    table = pd.concat([t for t in tables if len(t)] or tables[:1]).sort_index(kind="stable")
    with TableWriter(
        output,
        columns=[str(c) for c in table.columns],
        index_names=table.index.names,
        dtype=_value_dtype(table),
        total_rows=len(table),
        fmt=fmt,
    ) as writer:
        _write_by_file(writer, table)
    return len(table)
