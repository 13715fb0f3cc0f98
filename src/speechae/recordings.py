"""A recording, or a segment of one, read and conditioned for the front-end, with its place in time.

Every way of asking for features (a file, a segment of one, an array) becomes a
:class:`Recording` here: 16 kHz samples with their mean removed and peak normalised (see
:func:`~speechae.frontend.condition_signal`), the seconds that were read, and the time of the
first sample read on the recording's own time axis. That time is the one place where a segment's
start is decided; window times follow from it (:func:`window_times`).

Example:
    >>> import numpy as np
    >>> recording = signal_recording(np.sin(np.arange(24000) / 5.0), 8000, start=0.1234567)
    >>> recording.offset, len(recording.signal)
    (0.1235, 46024)
    >>> window_times(recording, 2).tolist()
    [0.1235, 0.3735]
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from speechae.audio import (
    SampleSpool,
    SpooledAudio,
    audio_frames,
    check_sampling_rate,
    decoder_warnings,
    read_audio,
    segment_frames,
    spool_audio,
)
from speechae.errors import SpeechaeError, TemporaryStorageError, naming
from speechae.frontend import (
    DEFAULT_FRONTEND,
    ConditionedSignal,
    FrontEndConfig,
    condition_signal,
    low_passed,
    spools_conditioned,
    window_starts,
)
from speechae.quality import measure_quality
from speechae.resampling import RESAMPLING

__all__ = [
    "Recording",
    "read_recording",
    "recording_samples",
    "segment_span",
    "signal_recording",
    "window_times",
    "with_segment",
]


def with_segment(name: str, start: float | None, end: float | None) -> str:
    """How messages name a recording or a segment of it.

    Example:
        >>> with_segment("talk.wav", 1.0, None), with_segment("talk.wav", None, None)
        ('talk.wav [1-end s]', 'talk.wav')
    """
    return name if start is None and end is None else f"{name} [{segment_span(start, end)} s]"


def segment_span(start: float | None, end: float | None) -> str:
    """A segment as labels and keys write it.

    Example:
        >>> segment_span(1.0, 3.5), segment_span(None, 2.0), segment_span(60.0, None)
        ('1-3.5', '0-2', '60-end')
    """
    return f"{start or 0:g}-{'end' if end is None else f'{end:g}'}"


@dataclass
class Recording:
    """A recording (or segment) ready for the front-end.

    Attributes:
        signal: the conditioned 16 kHz samples, in memory or (long recordings) in a temporary
            file as a :class:`~speechae.frontend.ConditionedSignal`.
        duration: seconds read, at the recording's own rate.
        offset: seconds from the start of the recording to the first sample read (0 for a whole
            recording); the first window starts there.
        name: the file (with the segment, if any) as messages name it; empty for an array.
        warnings: the messages of the decoder warnings given while reading it (damage it was
            read despite), so that a corpus run can list them.
        quality: its channel and speech measures, from the samples as read
            (:func:`~speechae.quality.measure_quality`).
    """

    signal: np.ndarray | ConditionedSignal
    duration: float
    offset: float = 0.0
    name: str = ""
    warnings: tuple[str, ...] = ()
    quality: dict[str, float] = field(default_factory=dict)

    def close(self) -> None:
        """Delete the conditioned signal's temporary file, if it has one."""
        if isinstance(self.signal, ConditionedSignal):
            self.signal.close()

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def window_times(
    recording: Recording, n_windows: int, *, config: FrontEndConfig = DEFAULT_FRONTEND
) -> np.ndarray:
    """Start in seconds, on the recording's time axis, of the first ``n_windows`` windows."""
    return recording.offset + window_starts(n_windows, config=config)


@contextmanager
def recording_samples(
    path: str | os.PathLike[str],
    start: float | None = None,
    end: float | None = None,
    config: FrontEndConfig = DEFAULT_FRONTEND,
) -> Iterator[tuple[np.ndarray | SpooledAudio, int]]:
    """``(samples, sampling_rate)`` of a recording as stored, in memory or spooled to disk.

    Recordings that :func:`~speechae.frontend.condition_signal` keeps outside memory are
    spooled (:func:`~speechae.audio.spool_audio`), since an hour of 48 kHz stereo is 1.4 GB
    even as float32; the temporary file goes when the block ends. Where the temporary folder has
    no room for them, they are read into memory instead.

    Example:
        >>> with recording_samples("talk.wav") as (samples, rate):  # doctest: +SKIP
        ...     conditioned = condition_signal(samples, rate)
    """
    frames, sampling_rate = audio_frames(path, start=start, end=end)
    if not spools_conditioned(frames, sampling_rate, config=config):
        yield read_audio(path, start=start, end=end, native=True)
        return
    try:
        spooled = spool_audio(path, start=start, end=end)
    except TemporaryStorageError:
        yield read_audio(path, start=start, end=end, native=True)
        return
    with spooled:
        yield spooled, spooled.sampling_rate


def _recording(
    samples: np.ndarray | SpooledAudio,
    sampling_rate: int,
    first: int,
    config: FrontEndConfig,
    name: str,
    resampling: str,
    lowpass: float | None,
) -> Recording:
    """The samples read, from frame ``first`` of their recording on, conditioned.

    The one place a recording's (or segment's) times are decided: it starts at its first sample
    read and lasts as long as the samples read. With ``lowpass`` the samples go through
    :func:`~speechae.frontend.low_passed` first. Its quality is measured on the samples as read,
    once conditioning has accepted them; with ``lowpass``, ``bandwidth_hz`` is at most the
    cut-off, the bandwidth the features see.
    """
    duration, offset = len(samples) / sampling_rate, first / sampling_rate
    spool = functools.partial(SampleSpool.create, name=name)
    filtered = samples if lowpass is None else low_passed(samples, sampling_rate, lowpass, spool=spool)
    try:
        conditioned = _conditioned(filtered, sampling_rate, config, name, resampling)
    finally:
        if filtered is not samples and isinstance(filtered, SampleSpool):
            filtered.close()
    quality = measure_quality(samples, sampling_rate)
    if lowpass is not None:  # the channel the features see
        quality["bandwidth_hz"] = min(quality["bandwidth_hz"], lowpass)
    return Recording(conditioned, duration, offset, name, quality=quality)


def _conditioned(
    signal: np.ndarray | SpooledAudio, sampling_rate: int, config: FrontEndConfig, name: str, resampling: str
) -> np.ndarray | ConditionedSignal:
    """:func:`condition_signal` with long signals kept in a temporary file; errors begin with ``name``."""
    try:
        return condition_signal(
            signal,
            sampling_rate,
            config=config,
            name=name,
            spool=functools.partial(SampleSpool.create, name=name),
            resampling=resampling,
        )
    except SpeechaeError as error:
        raise naming(error, name) from None


def read_recording(
    path: str | os.PathLike[str],
    *,
    start: float | None = None,
    end: float | None = None,
    config: FrontEndConfig = DEFAULT_FRONTEND,
    name: str | None = None,
    resampling: str = RESAMPLING[0],
    lowpass: float | None = None,
) -> Recording:
    """Read ``path`` (from ``start`` to ``end`` seconds, when given) and condition it.

    The samples as read are released before this returns; close the result (or use it as a
    context manager) to delete the temporary file of a long recording. ``name`` is how
    messages name it (default: the path, with the segment); ``resampling`` is
    :func:`~speechae.frontend.condition_signal`'s; ``lowpass`` (Hz) filters the samples first
    (:func:`~speechae.frontend.low_passed`).

    Example:
        >>> with read_recording("talk.wav", start=1.5, end=4.0) as recording:  # doctest: +SKIP
        ...     recording.offset, recording.duration
        (1.5, 2.5)

    Raises:
        AudioError: the file cannot be read, or is too short, silent or not finite.
        ParameterError: a segment outside the recording.
    """
    name = with_segment(os.fspath(path), start, end) if name is None else name
    with (
        decoder_warnings() as warnings,
        recording_samples(path, start, end, config) as (samples, sampling_rate),
    ):
        first = segment_frames(start, end, sampling_rate, 0)[0]
        recording = _recording(samples, sampling_rate, first, config, name, resampling, lowpass)
    recording.warnings = tuple(warnings)
    return recording


def signal_recording(
    signal: np.ndarray,
    sampling_rate: int,
    *,
    start: float | None = None,
    end: float | None = None,
    config: FrontEndConfig = DEFAULT_FRONTEND,
    name: str = "",
    resampling: str = RESAMPLING[0],
    lowpass: float | None = None,
) -> Recording:
    """Condition samples ``(samples,)`` or ``(samples, channels)`` (from ``start`` to ``end`` seconds).

    Times are relative to the beginning of ``signal``; ``lowpass`` as in :func:`read_recording`.

    Raises:
        ParameterError: a bad sampling rate or segment; AudioError: see :func:`read_recording`.
    """
    samples = np.asarray(signal)
    check_sampling_rate(sampling_rate, name=name)
    first, last = segment_frames(start, end, sampling_rate, len(samples), name=name)
    name = with_segment(name, start, end) if name else name
    return _recording(samples[first:last], sampling_rate, first, config, name, resampling, lowpass)
