"""Progress of a corpus run: files, audio hours, speed (times real time) and time left.

On a terminal one status line is redrawn in place; otherwise a plain line is logged every
``interval`` seconds, so CI logs and batch-job outputs stay readable. ``quiet`` prints nothing.

Example:
    >>> import io
    >>> stream = io.StringIO()
    >>> progress = Progress(stream=stream, interval=0)
    >>> progress.start(files=2, seconds=7200.0)
    >>> print(progress.line(elapsed=60.0).split(" | ")[0])
    0/2 files
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from speechae.corpus import ItemResult

__all__ = ["Progress", "clock"]


def clock(seconds: float) -> str:
    """``h:mm:ss`` for a number of seconds.

    Example:
        >>> clock(3725.4)
        '1:02:05'
    """
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Counts results and reports the run's progress on ``stream`` (default: stderr)."""

    def __init__(
        self, *, stream: TextIO | None = None, quiet: bool = False, interval: float | None = None
    ) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.terminal = self.stream.isatty()
        self.interval = interval if interval is not None else (0.2 if self.terminal else 30.0)
        self.files = self.done = self.failed = self.reused = 0
        self.seconds = self.audio_done = self.audio_computed = 0.0
        self.started = self.shown = time.monotonic()

    def start(self, files: int, seconds: float) -> None:
        """The run will process ``files`` items with ``seconds`` of audio in all."""
        self.files, self.seconds = files, seconds
        self.started = self.shown = time.monotonic()

    def advance(self, result: ItemResult) -> None:
        """Count one finished item."""
        self.done += 1
        self.failed += not result.ok
        self.reused += result.reused
        self.audio_done += result.seconds
        if result.ok and not result.reused:
            self.audio_computed += result.seconds
        now = time.monotonic()
        if not self.quiet and (now - self.shown >= self.interval or self.done == self.files):
            self.shown = now
            self._show(self.line(elapsed=now - self.started))

    def line(self, *, elapsed: float) -> str:
        """The status line after ``elapsed`` seconds."""
        speed = self.audio_computed / elapsed if elapsed > 0 else 0.0
        left = (self.seconds - self.audio_done) / speed if speed > 0 else float("nan")
        parts = [
            f"{self.done}/{self.files} files",
            f"{self.failed} failed",
            f"{self.reused} reused",
            f"{self.audio_done / 3600:.2f}/{self.seconds / 3600:.2f} h audio",
            f"{speed:.1f}x real time",
            f"ETA {clock(left) if left == left else '?'}",
        ]
        return " | ".join(parts)

    def _show(self, line: str) -> None:
        if self.terminal:
            end = "\n" if self.done == self.files else ""
            self.stream.write(f"\r\033[K{line}{end}")
        else:
            self.stream.write(f"speechae: {line}\n")
        self.stream.flush()
