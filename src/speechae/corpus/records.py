"""What a corpus run did: one record per item, and the summary printed at its end.

The records table (:data:`RECORD_COLUMNS`) is what :func:`speechae.report.write_report` draws.

Example:
    >>> file_record("a.wav", reason="the recording is silent")["status"]
    'failed'
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from speechae.corpus.planning import ItemResult
from speechae.corpus.sidecars import sidecar_path
from speechae.errors import ParameterError
from speechae.features import FileFeatures
from speechae.progress import clock
from speechae.store import store_path

__all__ = ["RECORD_COLUMNS", "RunSummary", "file_record", "interrupted_text"]


@dataclass
class RunSummary:
    """What a corpus run did; ``records`` has one row per item (for reports).

    ``output`` is None when a strict run stopped, which writes no output; ``earlier_output`` is
    then the output path if a file from an earlier run is there. ``warned`` are the items read
    despite damage their decoder reported (their features are in the output).
    """

    output: Path | None
    records: pd.DataFrame
    failures: list[ItemResult] = field(default_factory=list)
    warned: list[ItemResult] = field(default_factory=list)
    wall_seconds: float = 0.0
    computed: int = 0
    computed_seconds: float = 0.0
    reused: int = 0
    stopped_early: bool = False
    level: str = "static"
    earlier_output: Path | None = None
    #: Where recordings were read and transformed, e.g. "in 2 worker processes".
    workers: str = "in this process"

    @property
    def audio_seconds(self) -> float:
        """Seconds of audio in the items that succeeded."""
        ok = self.records["status"] == "ok"
        return float(self.records.loc[ok, "duration"].sum())

    def text(self) -> str:
        """A few lines for the end of a run."""
        ok = int((self.records["status"] == "ok").sum())
        speed = self.computed_seconds / self.wall_seconds if self.wall_seconds else 0.0
        lines = [
            f"files: {ok} ok ({self.computed} computed, {self.reused} reused from the store), "
            f"{len(self.failures)} failed",
            f"audio: {clock(self.audio_seconds)}, of which {clock(self.computed_seconds)} computed in "
            f"{clock(self.wall_seconds)} wall time ({speed:.1f}x real time)",
            f"recordings read {self.workers}",
        ]
        if self.level == "static":
            one_window = int(((self.records["status"] == "ok") & (self.records["windows"] == 1)).sum())
            if one_window:
                lines.append(f"files with a single window, so NaN skewness and kurtosis: {one_window}")
        dropped = int(self.records["dropped"].sum()) if len(self.records) else 0
        if dropped:
            listed = f" (listed in {sidecar_path(self.output, 'dropped')})" if self.output is not None else ""
            lines.append(f"windows dropped for Mel values <= 0: {dropped}{listed}")
        listed = f", listed in {sidecar_path(self.output, 'errors')}" if self.output is not None else ""
        if self.warned:
            lines.append(
                f"read despite damage the decoder reported (DecoderWarning): {len(self.warned)}{listed}"
            )
        if self.failures:
            lines.append(f"failed: {len(self.failures)}{listed}")
        if self.stopped_early:
            lines.append("stopped at the first failure (--strict); finished files are kept in the store")
            if self.earlier_output is not None:
                lines.append(f"output: {self.earlier_output} is from an earlier run: this one wrote no table")
        elif ok:
            lines.append(
                f"output: {self.output} (quality of each recording: {sidecar_path(self.output, 'quality')})"
            )
        else:
            why = "no file succeeded" if self.failures else "no files to process"
            lines.append(f"output: {self.output} (no rows: {why})")
        return "\n".join(lines)

    def failures_text(self) -> str:
        """One line per failed item and why (empty when none failed), for the error stream."""
        return "\n".join(f"failed: {failure.error}" for failure in self.failures)


def interrupted_text(output: str | os.PathLike[str]) -> str:
    """What an interrupted run leaves: whose output is at ``output``, and where its work is kept."""
    output = Path(output)
    kept = f"finished recordings are kept in {store_path(output)}, and the same command resumes from them"
    if output.exists():
        return f"interrupted: {output} is an earlier run's output, not this run's; {kept}"
    return f"interrupted before writing {output}; {kept}"


RECORD_COLUMNS = ("file", "status", "reason", "duration", "windows", "dropped", "dropped_at", "mean_error")


def file_record(
    file: str | os.PathLike[str],
    features: FileFeatures | None = None,
    *,
    reason: str = "",
    duration: float = math.nan,
) -> dict[str, object]:
    """One row of the ``records`` table of :func:`write_report`.

    Args:
        file: the input file as the user named it.
        features: the file's features; omit them for a file that failed.
        reason: why the file failed (required exactly when ``features`` is omitted).
        duration: seconds, for a failed file whose length is known.

    """
    if (features is None) == (not reason):
        raise ParameterError(
            f"{file}: give either features (a processed file) or a reason (a failed file), "
            f"not {'both' if reason else 'neither'}"
        )
    if features is None:
        windows, dropped, error = 0, [], math.nan
    else:
        windows, dropped, duration = len(features.starts), features.dropped.tolist(), features.duration
        error = float(features.error.mean()) if windows else math.nan
    return {
        "file": os.fspath(file),
        "status": "failed" if features is None else "ok",
        "reason": reason,
        "duration": duration,
        "windows": windows,
        "dropped": len(dropped),
        "dropped_at": dropped,
        "mean_error": error,
    }
