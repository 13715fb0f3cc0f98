"""Progress of a corpus run: files, audio hours, speed (times real time) and time left.

On a terminal one status line is redrawn in place; otherwise a plain line is logged every
``interval`` seconds, so CI logs and batch-job outputs stay readable. ``quiet`` prints nothing.

Example:
    >>> import io
    >>> stream = io.StringIO()
    >>> progress = Progress(stream=stream, interval=0)
    >>> progress.start(files=2, seconds=7200.0)
    >>> print(progress.line(elapsed=60.0).split(" | ")[0])
    [....................] 0/2 files
"""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO

__all__ = ["Progress", "TrainingProgress", "bar", "clock"]


class Finished(Protocol):
    """What :meth:`Progress.advance` reads of a finished item (a corpus run's ``ItemResult``)."""

    ok: bool
    reused: bool
    seconds: float


def clock(seconds: float) -> str:
    """``h:mm:ss`` for a number of seconds.

    Example:
        >>> clock(3725.4)
        '1:02:05'
    """
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def bar(fraction: float, width: int = 20) -> str:
    """A text progress bar.

    Example:
        >>> bar(0.5, width=10)
        '[#####.....]'
    """
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


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

    def advance(self, result: Finished) -> None:
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
            f"{bar(self.done / self.files) if self.files else bar(1.0)} {self.done}/{self.files} files",
            f"{self.failed} failed",
            f"{self.reused} reused",
            f"{self.audio_done / 3600:.2f}/{self.seconds / 3600:.2f} h audio",
            f"{speed:.1f}x real time",
            f"ETA {clock(left) if left == left else '?'}",
        ]
        return " | ".join(parts)

    def _show(self, line: str) -> None:
        _write_status(self.stream, self.terminal, line, final=self.done == self.files)


def _write_status(stream: TextIO, terminal: bool, line: str, *, final: bool) -> None:
    """Redraw the status line on a terminal; elsewhere log it as a line of its own."""
    if terminal:
        stream.write(f"\r\033[K{line}{chr(10) if final else ''}")
    else:
        stream.write(f"speechae: {line}\n")
    stream.flush()


class TrainingProgress:
    """Render the progress of :func:`speechae.training.train`.

    A bar per epoch on a terminal, one line per epoch elsewhere: epoch, batch, training loss and
    validation loss.

    Example:
        >>> import io
        >>> stream = io.StringIO()
        >>> progress = TrainingProgress(epochs=2, stream=stream)
        >>> progress(1, 4, 4, 0.5, 0.25)
        >>> stream.getvalue().strip()
        'speechae: epoch 1/2 [####################] batch 4/4 | training loss 0.5 | validation loss 0.25'
    """

    def __init__(self, *, epochs: int, stream: TextIO | None = None, interval: float = 0.2) -> None:
        self.epochs = epochs
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty()
        self.interval = interval
        self.shown = 0.0

    def __call__(
        self, epoch: int, batch: int, n_batches: int, train_loss: float, validation_loss: float | None
    ) -> None:
        """The training callback: called after every batch, and with the validation loss per epoch."""
        epoch_done = validation_loss is not None
        now = time.monotonic()
        if not epoch_done and (not self.terminal or now - self.shown < self.interval):
            return
        self.shown = now
        done = batch / n_batches if n_batches else 1.0
        parts = [f"epoch {epoch}/{self.epochs} {bar(done)} batch {batch}/{n_batches}"]
        if train_loss == train_loss:  # NaN before the first epoch
            parts.append(f"training loss {train_loss:.6g}")
        if epoch_done:
            parts.append(f"validation loss {validation_loss:.6g}")
        _write_status(self.stream, self.terminal, " | ".join(parts), final=epoch_done)
