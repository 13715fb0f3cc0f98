"""The resumable store of a corpus run: finished results, keyed so that nothing stale is reused.

A run keeps an SQLite database beside its output (``OUTPUT.store.sqlite``). SQLite is embedded
(part of Python), keeps everything in one file, and commits each finished recording as one
transaction in write-ahead-log mode with full synchronisation: a run killed at any moment (Ctrl-C,
``kill -9``, power loss) leaves every committed recording intact and nothing half-written.

Each entry holds a recording's per-window arrays (bottleneck, error, window times, dropped
windows, duration); static features are derived from them when the output is written. The key is
a sha256 over the audio file's content hash, the segment, the front-end settings, the model's
weight hash and the package version, so changing any of them never reuses an old entry. Each
entry also carries a sha256 of its own contents: an entry damaged on disk is recomputed, never
reused, and a database SQLite cannot read is reported as damaged, by name.

Example:
    >>> import tempfile, numpy as np
    >>> from pathlib import Path
    >>> from speechae.features import FileFeatures
    >>> store = FeatureStore(Path(tempfile.mkdtemp()) / "run.store.sqlite")
    >>> f = FileFeatures(np.ones((2, 3), np.float32), np.ones((2, 4), np.float32),
    ...                  np.array([0.0, 0.25]), np.array([]), 0.75)
    >>> store.put("k1", f, audio_sha256="abc")
    >>> store.get("k1").bottleneck.shape, "k1" in store, store.get("other")
    ((2, 3), True, None)
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from speechae.errors import DamagedStoreEntryError, StoreError
from speechae.features import FileFeatures

__all__ = ["FeatureStore", "entry_key", "store_path"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS features (
    key TEXT PRIMARY KEY,
    audio_sha256 TEXT NOT NULL,
    windows INTEGER NOT NULL,
    bottleneck_width INTEGER NOT NULL,
    n_mels INTEGER NOT NULL,
    bottleneck BLOB NOT NULL,
    error BLOB NOT NULL,
    starts BLOB NOT NULL,
    dropped BLOB NOT NULL,
    duration REAL NOT NULL,
    digest TEXT
)
"""
#: What was learnt of each entry's recording while reading it (JSON): the decoder warnings of a
#: recording read despite damage, and its quality measures.
NOTES_SCHEMA = "CREATE TABLE IF NOT EXISTS notes (key TEXT PRIMARY KEY, notes TEXT NOT NULL)"
COLUMNS = "key, audio_sha256, windows, bottleneck_width, n_mels, bottleneck, error, starts, dropped, duration"

Result = TypeVar("Result")


def _entry_digest(row: tuple) -> str:
    """sha256 over an entry's columns after the key, in order (numbers as text, blobs as bytes)."""
    digest = hashlib.sha256()
    for value in row:
        data = value if isinstance(value, bytes) else repr(value).encode()
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


def store_path(output: str | os.PathLike[str]) -> Path:
    """Where the store of a run writing ``output`` lives.

    Example:
        >>> store_path("out/features.parquet").name
        'features.parquet.store.sqlite'
    """
    output = Path(output)
    return output.with_name(output.name + ".store.sqlite")


def entry_key(audio_sha256: str, start: float | None, end: float | None, settings: dict) -> str:
    """Store key of a recording (or segment) under given extraction settings.

    Example:
        >>> entry_key("ab", None, None, {"model": "x"}) == entry_key("ab", None, None, {"model": "y"})
        False
    """
    payload = json.dumps([audio_sha256, start, end, settings], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _reporting_damage(method: Callable[..., Result]) -> Callable[..., Result]:
    """Turn SQLite's errors on an open store into a :class:`StoreError` that names the file."""

    @functools.wraps(method)
    def guarded(self: FeatureStore, *args: object, **kwargs: object) -> Result:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as error:
            raise StoreError(
                f"{self.path}: the store cannot be read or written ({error}); move it aside "
                "to start the run afresh"
            ) from None

    return guarded


class FeatureStore:
    """Finished per-window features, committed one recording at a time."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(SCHEMA)
            self._db.execute(NOTES_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(features)")}
            if "digest" not in columns:  # a store written before entries carried their digest
                self._db.execute("ALTER TABLE features ADD COLUMN digest TEXT")
            self._db.commit()
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{self.path}: not a usable speechae store ({error})") from None

    @_reporting_damage
    def __contains__(self, key: str) -> bool:
        return self._db.execute("SELECT 1 FROM features WHERE key = ?", (key,)).fetchone() is not None

    @_reporting_damage
    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM features").fetchone()[0]

    def put(self, key: str, features: FileFeatures, *, audio_sha256: str) -> None:
        """Commit one recording's features (replacing an entry with the same key)."""
        self.put_many([(key, features, audio_sha256)])

    @_reporting_damage
    def put_many(
        self, entries: list[tuple[str, FileFeatures, str]], *, notes: dict[str, dict] | None = None
    ) -> None:
        """Commit several recordings ``(key, features, audio_sha256)`` in one transaction.

        ``notes`` maps keys to what reading the recording taught (``{"warnings": [...],
        "quality": {...}}``), kept beside its features.
        """
        rows = []
        for key, features, audio_sha256 in entries:
            row = (
                audio_sha256,
                len(features.starts),
                features.bottleneck.shape[1],
                features.error.shape[1],
                np.ascontiguousarray(features.bottleneck, np.float32).tobytes(),
                np.ascontiguousarray(features.error, np.float32).tobytes(),
                np.asarray(features.starts, np.float64).tobytes(),
                np.asarray(features.dropped, np.float64).tobytes(),
                float(features.duration),
            )
            rows.append((key, *row, _entry_digest(row)))
        with self._db:
            self._db.executemany(
                f"INSERT OR REPLACE INTO features ({COLUMNS}, digest) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows
            )
            self._db.executemany("DELETE FROM notes WHERE key = ?", [(key,) for key, _, _ in entries])
            self._db.executemany(
                "INSERT INTO notes (key, notes) VALUES (?, ?)",
                [(key, json.dumps(about)) for key, about in (notes or {}).items() if about],
            )

    @_reporting_damage
    def notes(self, key: str) -> dict:
        """What reading the entry's recording taught: ``warnings`` and ``quality`` (empty if none)."""
        row = self._db.execute("SELECT notes FROM notes WHERE key = ?", (key,)).fetchone()
        return {"warnings": [], "quality": {}} | (json.loads(row[0]) if row is not None else {})

    @_reporting_damage
    def get(self, key: str) -> FileFeatures | None:
        """The stored features, or None.

        Raises:
            DamagedStoreEntryError: the entry's contents no longer match its digest or shape.
        """
        row = self._db.execute(f"SELECT {COLUMNS}, digest FROM features WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        *fields, digest = row[1:]
        _, windows, width, n_mels, bottleneck, error, starts, dropped, duration = fields
        sizes = (len(bottleneck), len(error), len(starts))
        sizes_fit = sizes == (4 * windows * width, 4 * windows * n_mels, 8 * windows)
        if not sizes_fit or digest not in (None, _entry_digest(tuple(fields))):  # None: written unsigned
            raise DamagedStoreEntryError(f"{self.path}: the entry {key} is damaged")
        return FileFeatures(
            bottleneck=np.frombuffer(bottleneck, np.float32).reshape(windows, width),
            error=np.frombuffer(error, np.float32).reshape(windows, n_mels),
            starts=np.frombuffer(starts, np.float64),
            dropped=np.frombuffer(dropped, np.float64),
            duration=duration,
        )

    def close(self) -> None:
        """Close the database."""
        self._db.close()
