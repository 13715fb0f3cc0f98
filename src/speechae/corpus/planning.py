"""Planning a corpus run: items, their results, and batches cut from the file headers alone.

Batches depend only on the sorted inputs, never on timing, so ``--jobs 2`` equals ``--jobs 1``
bit for bit, a resumed run computes exactly what an uninterrupted one would, and ``--shard i/N``
(which takes every N-th batch) merges into the unsharded result. An item's identity in the store
(the hash of its audio and the settings) is derived only when its batch comes up.

Example:
    >>> plan_batches([100, 100, 100, 5000, 10], batch_windows=150, long_file_windows=1000)
    [[0, 1], [2], [3], [4]]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from speechae.audio import audio_frames, file_sha256
from speechae.errors import FileChangedError, SpeechaeError, naming
from speechae.features import FileFeatures
from speechae.frontend import FrontEndConfig, window_count
from speechae.inputs import Item, printable
from speechae.recordings import with_segment
from speechae.store import entry_key

__all__ = ["BATCH_WINDOWS", "LONG_FILE_WINDOWS", "ItemResult", "Planned", "describe", "plan", "plan_batches"]

BATCH_WINDOWS = 256
LONG_FILE_WINDOWS = 2048


@dataclass
class ItemResult:
    """The outcome for one item: features, or the error that stopped it.

    ``warnings`` are the decoder warnings of an item read despite damage, and ``quality`` its
    measures (:mod:`speechae.quality`), also when its features come from the store.
    """

    item: Item
    features: FileFeatures | None = None
    error: SpeechaeError | None = None
    audio_sha256: str | None = None
    key: str | None = None
    seconds: float = 0.0
    reused: bool = False
    position: int = -1
    warnings: tuple[str, ...] = ()
    quality: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether features were computed (or found in the store)."""
        return self.error is None


@dataclass
class Planned:
    """An item with its place in the run, its length from the header and, once known, its identity."""

    item: Item
    position: int
    windows: int
    seconds: float
    audio_sha256: str | None = None
    key: str | None = None
    error: SpeechaeError | None = None
    signature: tuple[int, int, int] | None = None
    frames: int = 0  # as stored, from the header
    long: bool = False  # computed alone, in bounded memory, never in a worker process

    def result(self, **outcome: object) -> ItemResult:
        """The item's result, carrying what the plan knows of it."""
        return ItemResult(
            self.item,
            audio_sha256=self.audio_sha256,
            key=self.key,
            seconds=self.seconds,
            position=self.position,
            **outcome,
        )

    def identify(self, settings: dict) -> None:
        """Hash the audio and derive the store key (when its batch comes up, not all up front)."""
        item = self.item
        if self.error is not None:
            return
        try:
            self.signature = _signature(item.path)  # before hashing, so that no change goes unseen
            self.audio_sha256 = file_sha256(item.path)
            self.key = entry_key(self.audio_sha256, item.start, item.end, settings)
        except SpeechaeError as error:
            self.error = describe(item, error)

    def unchanged(self, result: ItemResult) -> ItemResult:
        """``result``, or a failure when the file changed since it was hashed.

        Its features may then come from the new content and must not be stored under the old hash.
        """
        if not result.ok or result.reused or _signature(self.item.path) == self.signature:
            return result
        changed = FileChangedError("changed while it was being processed; run again")
        return self.result(error=describe(self.item, changed))


def describe(item: Item, error: BaseException) -> SpeechaeError:
    """The error as one printable sentence that names the file (and segment)."""
    named = naming(error, with_segment(printable(item.path), item.start, item.end), named_as=item.path)
    return type(named)(printable(str(named)))


def plan(item: Item, position: int, config: FrontEndConfig, long_file_windows: int) -> Planned:
    """Read the header only: enough to cut batches before any audio is read.

    An item of more than ``long_file_windows`` windows is long (see :func:`plan_batches`).
    """
    try:
        frames, rate = audio_frames(item.path, start=item.start, end=item.end)
        seconds = frames / rate
    except Exception:  # unreadable headers fail properly, with their reason, when the item is read
        frames, seconds = 0, 0.0
    windows = window_count(int(seconds * config.sampling_rate), config=config)
    return Planned(item, position, windows, seconds, frames=frames, long=windows > long_file_windows)


def _signature(path: str) -> tuple[int, int, int] | None:
    """What changes when a file is rewritten or replaced: its size, modification time and inode."""
    try:
        status = os.stat(path)
    except OSError:
        return None  # hashing the file fails with the reason
    return status.st_size, status.st_mtime_ns, status.st_ino


def plan_batches(
    windows: Sequence[int], *, batch_windows: int = BATCH_WINDOWS, long_file_windows: int = LONG_FILE_WINDOWS
) -> list[list[int]]:
    """Cut items (given by their window counts, in run order) into batches of item positions.

    A batch closes once it holds ``batch_windows`` windows; an item of more than
    ``long_file_windows`` windows is a batch alone.
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
