"""What a corpus run processes: audio files, folders, list files and manifests, as items.

An input is one of
- an audio file;
- a folder (its audio files, sub-folders too with ``recursive``);
- a list file (``.txt``, ``.lst``, ``.list``): one audio path per line; blank lines and lines
  that begin with ``#`` are skipped (a ``#`` later in a line is part of the name);
- a manifest (``.csv``, ``.tsv``, ``.parquet``) with a ``file`` column and optional ``start`` and
  ``end`` columns in seconds, to process segments.

Relative paths inside list files and manifests are taken relative to ``root`` when it is given,
else relative to the list file's folder. Every item has a ``key``: its path relative to ``root``
(or as given), which names it in outputs.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> (folder / "a.wav").touch(); (folder / "b.flac").touch()
    >>> items, failures = collect_items([folder], root=folder)
    >>> [item.key for item in items], failures
    (['a.wav', 'b.flac'], [])
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from speechae.audio import AUDIO_EXTENSIONS, find_audio_files
from speechae.errors import ParameterError, SpeechaeError
from speechae.recordings import segment_span, with_segment

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "LIST_EXTENSIONS",
    "MANIFEST_EXTENSIONS",
    "Item",
    "collect_items",
    "item_key",
    "item_order",
    "parse_shard",
    "printable",
    "read_manifest",
    "segment_seconds",
]

LIST_EXTENSIONS = (".txt", ".lst", ".list")
MANIFEST_EXTENSIONS = (".csv", ".tsv", ".parquet")


@dataclass(frozen=True)
class Item:
    """One recording, or a segment of one, to process.

    Items sort by ``key`` then segment, which is the order of rows in every output.
    """

    key: str
    path: str
    start: float | None = None
    end: float | None = None

    @property
    def is_segment(self) -> bool:
        """Whether only part of the recording is processed."""
        return self.start is not None or self.end is not None

    @property
    def label(self) -> str:
        """How records and messages name the item: its key, with the segment when it is one.

        Example:
            >>> Item("talk.wav", "/data/talk.wav", 1.0, 3.5).label
            'talk.wav [1-3.5 s]'
        """
        return with_segment(self.key, self.start, self.end)

    @property
    def kaldi_key(self) -> str:
        """The item's Kaldi key: its key, with the segment when it is one.

        Example:
            >>> Item("talk.wav", "/data/talk.wav", 1.0, 3.5).kaldi_key
            'talk.wav[1-3.5]'
        """
        return f"{self.key}[{segment_span(self.start, self.end)}]" if self.is_segment else self.key


def printable(text: str) -> str:
    r"""``text`` with the bytes of a file name that are not UTF-8 written as ``\xNN``.

    Python keeps such bytes as lone surrogates, which no text file, table or terminal takes.

    Example:
        >>> printable(os.fsdecode(b"caf\xe9.wav"))
        'caf\\xe9.wav'
    """
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _key(path: Path, root: Path | None) -> str:
    if root is not None:
        try:  # by name, not following links: a link is named as it lies in the corpus
            return printable(Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix())
        except ValueError:  # outside root
            pass
    return printable(path.as_posix())


def _resolve(entry: str, base: Path) -> Path:
    path = Path(entry).expanduser()
    return path if path.is_absolute() else base / path


def segment_seconds(value: object, where: str) -> float | None:
    """A segment bound in seconds; empty, None, NaN and pandas' NA mean the recording's start or end.

    Example:
        >>> segment_seconds("1.5", "row 2"), segment_seconds(float("nan"), "row 2")
        (1.5, None)

    Raises:
        ParameterError: ``value`` is not a number of seconds (``where`` says which row).
    """
    import pandas as pd

    if (isinstance(value, str) and not value.strip()) or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{where}: {value!r} is not a time in seconds") from None


def item_key(entry: str, base: Path, root: Path | None) -> str:
    """The key of a file named ``entry`` in a list, manifest or labels file (see the module).

    Example:
        >>> item_key("spk1/a.wav", Path("/data/lists"), Path("/data"))
        'lists/spk1/a.wav'
        >>> item_key("/data/spk1/a.wav", Path("/data/lists"), Path("/data"))
        'spk1/a.wav'
    """
    return _key(_resolve(entry, base), root)


def read_manifest(manifest: Path, *, kind: str = "manifest") -> pd.DataFrame:
    """The table of a CSV, TSV or Parquet file; one pandas or pyarrow cannot parse is a ParameterError.

    ``kind`` names the file in messages ("manifest", "labels file").
    """
    import pandas as pd

    try:
        if manifest.suffix.lower() == ".parquet":
            return pd.read_parquet(manifest)
        return pd.read_csv(
            manifest,
            sep="\t" if manifest.suffix.lower() == ".tsv" else ",",
            dtype={"file": object},  # Python strings: surrogates stay as they are
            encoding="utf-8-sig",  # a byte-order mark is not part of the first column's name
            encoding_errors="surrogateescape",  # file names need not be UTF-8
        )
    except pd.errors.EmptyDataError:
        raise ParameterError(f"{manifest}: the {kind} is empty (it needs a 'file' column)") from None
    except Exception as error:  # pandas, pyarrow and the C parser raise many kinds
        reason = " ".join(str(error).split()) or type(error).__name__
        raise ParameterError(f"{manifest}: not a readable {kind} ({reason})") from None


def _manifest_items(manifest: Path, base: Path, root: Path | None) -> list[Item]:
    table = read_manifest(manifest)
    if "file" not in table.columns:
        raise ParameterError(
            f"{manifest}: a manifest needs a 'file' column (found {', '.join(table.columns)})"
        )
    items = []
    for row, record in enumerate(table.to_dict("records"), start=2):
        where = f"{manifest}, row {row}"
        items.append(
            Item(
                item_key(str(record["file"]), base, root),
                str(_resolve(str(record["file"]), base)),
                segment_seconds(record.get("start"), where),
                segment_seconds(record.get("end"), where),
            )
        )
    return items


def _list_items(listing: Path, base: Path, root: Path | None) -> list[Item]:
    items = []
    for line in listing.read_text(encoding="utf-8-sig", errors="surrogateescape").splitlines():
        entry = line.strip()
        if entry and not entry.startswith("#"):  # a '#' inside a name is part of it
            path = _resolve(entry, base)
            items.append(Item(_key(path, root), str(path)))
    return items


def collect_items(
    inputs: Iterable[str | os.PathLike[str]],
    *,
    recursive: bool = False,
    extensions: tuple[str, ...] = AUDIO_EXTENSIONS,
    root: str | os.PathLike[str] | None = None,
) -> tuple[list[Item], list[tuple[str, str]]]:
    """Expand inputs into sorted, de-duplicated items.

    Returns:
        ``(items, failures)``; a failure is ``(input, reason)`` for an input that gave nothing
        (a missing path, an empty folder). A missing audio file is an item: it fails when read.

    Raises:
        ParameterError: ``root`` is not a folder.
    """
    root_path = Path(root) if root is not None else None
    if root_path is not None and not root_path.is_dir():
        raise ParameterError(f"root {root}: no such folder")
    items: set[Item] = set()
    failures: list[tuple[str, str]] = []
    for given in inputs:
        path = Path(given)
        suffix = path.suffix.lower()
        try:
            if path.is_dir():
                files = find_audio_files(path, recursive=recursive, extensions=extensions)
                items.update(Item(_key(f, root_path), str(f)) for f in files)
            elif suffix in LIST_EXTENSIONS + MANIFEST_EXTENSIONS:
                if not path.is_file():
                    raise ParameterError(f"{path}: no such list file or manifest")
                base = root_path if root_path is not None else path.parent
                reader = _manifest_items if suffix in MANIFEST_EXTENSIONS else _list_items
                listed = reader(path, base, root_path)
                if not listed:
                    kind = "manifest" if suffix in MANIFEST_EXTENSIONS else "list file"
                    raise ParameterError(f"{path}: the {kind} names no audio files")
                items.update(listed)
            else:
                items.add(Item(_key(path, root_path), str(path)))
        except SpeechaeError as error:
            failures.append((str(path), str(error)))
    return sorted(items, key=item_order), failures


def item_order(item: Item) -> tuple[str, float, float]:
    """Sort key of items: by key, then segment start and end (the order of rows in outputs)."""
    return (item.key, item.start or 0.0, math.inf if item.end is None else item.end)


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"i/N"`` (0 <= i < N), as in a SLURM job array ``--array=0-(N-1)``.

    Example:
        >>> parse_shard("2/8")
        (2, 8)
    """
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ParameterError(f"shard {text!r} is not of the form i/N, e.g. 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise ParameterError(f"shard {text!r}: need 0 <= i < N")
    return index, count
