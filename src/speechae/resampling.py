"""FFT resampling of a whole recording, as DisVoice does it, and its bounded-memory counterpart.

DisVoice resamples with ``scipy.signal.resample``: one real FFT of the whole signal, its spectrum
cut or zero-padded at the lower Nyquist frequency, one inverse FFT. :func:`fft_resample` repeats
that arithmetic bit for bit. Its memory grows with the recording and, for lengths with a large
prime factor, reaches several times the signal's size (Bluestein's algorithm): a 60-minute
44.1 kHz file needs more than 24 GB. :func:`resample_in_segments` computes the same ideal
low-pass resampling segment by segment in bounded memory. :func:`speechae.frontend.condition_signal`
uses the whole-signal arithmetic up to :data:`WHOLE_SIGNAL_SAMPLES` samples (every recording
DisVoice itself can process) and segments beyond.

Example:
    >>> x = np.sin(np.arange(44100) / 7.0)
    >>> whole = fft_resample(x, 16000)
    >>> pieces = resample_in_segments(x, 16000, outputs_per_segment=4000, margin=2000)
    >>> bool(np.allclose(pieces, whole, atol=1e-4))
    True
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np

from speechae.errors import ParameterError

__all__ = [
    "RESAMPLING",
    "SEGMENT_SPAN",
    "WHOLE_SIGNAL_SAMPLES",
    "SampleSink",
    "SampleSource",
    "fft_resample",
    "resample_in_segments",
]

#: Longest signal (input or output samples) resampled with one FFT of the whole signal, as
#: DisVoice does: about 12.7 minutes at 44.1 kHz, 35 minutes from 8 kHz. At this size the FFTs
#: need up to about 4 GB; DisVoice's network runs out of memory on 24 GB after 11 minutes anyway.
WHOLE_SIGNAL_SAMPLES = 2**25

#: How recordings at other rates reach 16 kHz: ``"exact"`` (the default) keeps DisVoice's
#: whole-signal FFT up to :data:`WHOLE_SIGNAL_SAMPLES` samples and segments beyond;
#: ``"segmented"`` resamples in segments at any length, so that a short recording whose length has
#: a large prime factor stays within the memory budget, at the cost of DisVoice's exact bits.
RESAMPLING = ("exact", "segmented")

#: Input (or output, whichever is more) samples in the core of one segment by default.
SEGMENT_SPAN = 2**22

#: Most grid samples a segment's margins may span: the margin shrinks for upsampling by more
#: than 4 (from under 4 kHz), whose grid has as many samples per input sample as the ratio.
_MARGIN_GRID_SAMPLES = 2**21

#: Interpolation taps on each side and the shape of their window (exponential of a semicircle,
#: also the bell of the margins' smooth steps), chosen for interpolation errors below 1e-12 of
#: the peak when the band fills at most 0.19 of the grid's rate.
_TAPS = 16
_WINDOW_SHAPE = 1.875 * _TAPS
_INTERPOLATION_RUN = 2**16
_BAND_PER_GRID_SAMPLE = 0.19


class SampleSink(Protocol):
    """A 1-D signal written by ranges (``sink[first:last] = values``) from several threads."""

    dtype: np.dtype

    def __len__(self) -> int: ...

    def __setitem__(self, frames: slice, values: np.ndarray) -> None: ...


class SampleSource(Protocol):
    """Samples ``(n,)`` or ``(n, channels)`` read by ranges, e.g. :class:`speechae.audio.SpooledAudio`."""

    dtype: np.dtype
    ndim: int

    def __len__(self) -> int: ...

    def read(self, first: int, last: int) -> np.ndarray:
        """Samples ``first..last-1`` as a new array."""
        ...


def fft_resample(samples: np.ndarray, target: int) -> np.ndarray:
    """Resample a whole signal to ``target`` samples by cutting or zero-padding its spectrum.

    The same arithmetic, in the same precision, as ``scipy.signal.resample`` without a window
    (SciPy 1.17), which the reference uses: real FFT, keep the lowest ``min(n, target)`` bins, halve
    (upsampling) or double (downsampling) an unpaired Nyquist bin, divide by ``n / target``,
    inverse real FFT. Importing ``scipy.fft`` alone is half a second faster than ``scipy.signal``.

    Example:
        >>> fft_resample(np.cos(np.pi * np.arange(8) / 2), 16)[:4].round(6).tolist()
        [1.0, 0.707107, 0.0, -0.707107]
    """
    import scipy.fft

    n = len(samples)
    kept = min(n, target)
    spectrum = scipy.fft.rfft(samples)[: kept // 2 + 1]
    if kept % 2 == 0 and target != n:
        spectrum[kept // 2] *= 2 if target < n else 0.5
    resampled = scipy.fft.irfft(spectrum / (n / target), n=target, overwrite_x=True)
    _FFT_PLANS.used(n + target)
    return resampled


def resample_in_segments(
    source: np.ndarray | SampleSource,
    target: int,
    *,
    outputs_per_segment: int | None = None,
    margin: int = 2**19,
    out: np.ndarray | SampleSink | None = None,
) -> np.ndarray | SampleSink:
    """Ideal low-pass resampling of a periodic signal to ``target`` samples, one segment at a time.

    ``source`` is ``(n,)`` or ``(n, channels)`` of any numeric type, an array or a
    :class:`SampleSource` (such as a recording spooled to disk); each segment is read, brought to
    the working precision and mixed to mono as the whole signal would be (float32 stays float32,
    everything else becomes float64), so the source can stay in its compact stored form. Output
    sample ``m`` lies at input position ``m * n / target``, as in :func:`fft_resample`.

    Each segment covers ``outputs_per_segment`` outputs (by default as many as
    :data:`SEGMENT_SPAN` input samples give, at most that many) plus ``margin`` input samples on
    either side (fewer when upsampling more than four times), tapered by smooth steps; its
    spectrum is cut at the same frequency as the whole signal's, and the band-limited result is
    interpolated at the exact output positions (error below 1e-12 of the peak). The difference
    from :func:`fft_resample` is the part of the ideal filter's slowly decaying response beyond
    the margin: it lies within a fraction of a hertz of the cut-off (8 kHz when downsampling) and
    reaches about 1e-4 of the peak, most near the ends, where the whole-signal FFT rings from the
    jump between the last and the first sample.

    Memory: about ``40 * (span + 2 * margin)`` bytes per segment, two segments at a time, with
    ``span`` the larger of a segment's input and output samples, besides the output: under 1 GB
    at any rate and length with the defaults. ``out`` (``target`` samples of the working
    precision, e.g. a :class:`speechae.audio.SampleSpool`) receives the output instead of a new
    array and is returned.
    """
    n = len(source)
    if outputs_per_segment is None:
        outputs_per_segment = max(1, min(SEGMENT_SPAN, SEGMENT_SPAN * target // n))
    plan = _SegmentPlan(n, target, margin)
    dtype = np.float32 if source.dtype == np.float32 else np.float64
    result = np.empty(target, dtype=dtype) if out is None else out
    if len(result) != target or result.dtype != dtype:
        raise ParameterError(f"out must hold {target} samples of {np.dtype(dtype)}")

    def fill(first: int) -> None:
        outputs = range(first, min(first + outputs_per_segment, target))
        result[outputs.start : outputs.stop] = plan.run(source, outputs)

    # pocketfft and NumPy release the GIL: two segments at a time use both cores
    with ThreadPoolExecutor(max_workers=2) as pool:
        for _ in pool.map(fill, range(0, target, outputs_per_segment)):
            pass  # re-raises a segment's error here
    _FFT_PLANS.used(n + target)
    return result


class _FftPlanCache:
    """Keeps scipy.fft's cache of plans from holding gigabytes across a corpus.

    ``scipy.fft`` keeps the plans of the last 16 transform lengths it saw, per precision, with
    no way to clear them; a plan holds up to about 70 bytes per sample (Bluestein's chirps for
    lengths with a large prime factor). A 5-minute 44.1 kHz recording of prime length leaves
    900 MB behind, and recordings of new lengths pile up to 16 times that. Once transforms
    totalling :attr:`samples_between_flushes` samples have run, 16 tiny transforms in each
    precision push the large plans out (6 ms), so the cache stays under about 300 MB.
    """

    slots = 16
    samples_between_flushes = 2**22

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.samples = 0

    def used(self, samples: int) -> None:
        """Count transforms of ``samples`` samples in all; flush the cache when it may be large."""
        import scipy.fft

        with self.lock:
            self.samples += samples
            if self.samples < self.samples_between_flushes:
                return
            self.samples = 0
            for length in range(2, 2 + self.slots):
                for dtype in (np.float32, np.float64):
                    scipy.fft.rfft(np.zeros(length, dtype))


_FFT_PLANS = _FftPlanCache()


class _SegmentPlan:
    """What every segment of one resampling shares: sizes, cut-off, grid and taper."""

    def __init__(self, n: int, target: int, margin: int) -> None:
        self.n, self.target = n, target
        self.kept_bins = min(n, target) // 2  # the whole-signal FFT keeps frequencies up to this / n
        if target % n == 0:  # upsampling by an integer (8 to 16 kHz): outputs on the grid itself
            self.oversampling = target // n
        else:
            self.oversampling = max(1, math.ceil(self.kept_bins / n / _BAND_PER_GRID_SAMPLE))
        # a file claiming 1 Hz upsamples 16000 times: a margin of 2**19 inputs would need 8e9 grid points
        margin = self.margin = max(1, min(margin, _MARGIN_GRID_SAMPLES // self.oversampling))
        # a smooth step (the running sum of a bell): its leakage falls off exponentially
        bell = _bell((np.arange(margin) + 0.5) / margin * 2 - 1)
        self.ramp = np.cumsum(bell) / bell.sum()

    def run(self, source: np.ndarray, outputs: range) -> np.ndarray:
        """Resampled values of ``outputs`` (a range of output indices)."""
        import scipy.fft

        n, target, margin = self.n, self.target, self.margin
        low = outputs.start * n // target - _TAPS
        high = -(-(outputs.stop - 1) * n // target) + _TAPS + 1
        start = low - margin
        length = 2 * scipy.fft.next_fast_len((high + margin - start + 1) // 2, real=True)
        segment = _mono_float64(_read_periodic(source, start, length))
        segment[:margin] *= self.ramp
        segment[high - start : high - start + margin] *= self.ramp[::-1]
        segment[high - start + margin :] = 0.0
        spectrum = scipy.fft.rfft(segment, overwrite_x=True)
        del segment
        spectrum[self.kept_bins * length // n + 1 :] = 0.0
        if target > n:
            spectrum[-1] *= 0.5  # the segment's Nyquist bin, split as the whole signal's is
        grid = scipy.fft.irfft(spectrum, n=length * self.oversampling, overwrite_x=True)
        grid *= self.oversampling
        del spectrum
        # grid position of output m times target, exact in integers; counted from the segment's
        # first output so that int64 holds it however long the recording
        positions = np.arange(len(outputs), dtype=np.int64) * n + (outputs.start * n - start * target)
        positions *= self.oversampling
        return _interpolate(grid, positions // target, (positions % target) / target)


def _read_periodic(source: np.ndarray | SampleSource, start: int, length: int) -> np.ndarray:
    """Samples ``start..start+length-1`` of the periodic extension of ``source``, as a new array."""
    n = len(source)
    read = source.read if hasattr(source, "read") else lambda first, last: source[first:last].copy()
    pieces, position = [], start
    while position < start + length:
        first = position % n
        last = min(n, first + start + length - position)
        pieces.append(read(first, last))
        position += last - first
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


def _mono_float64(block: np.ndarray) -> np.ndarray:
    """The mono mix of ``block`` in the working precision (float32 mixes in float32), as float64."""
    working = np.float32 if block.dtype == np.float32 else np.float64
    if block.ndim == 2:
        block = block.mean(axis=1, dtype=working)
    return block.astype(np.float64, copy=False)


def _bell(x: np.ndarray, half_width: float = 1.0) -> np.ndarray:
    """The exponential-of-semicircle window on ``|x| < half_width`` (zero outside)."""
    inside = np.clip(1.0 - np.square(x / half_width), 0.0, None)
    return np.exp(_WINDOW_SHAPE * (np.sqrt(inside) - 1.0))


def _interpolate(grid: np.ndarray, base: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """Values of the band-limited ``grid`` at ``base + fraction`` (windowed-sinc interpolation).

    Computed in runs of :data:`_INTERPOLATION_RUN` outputs: each tap's temporaries span one run,
    not the segment (a dozen arrays of a segment's length took 0.3 GB per thread).
    """
    values = np.empty(len(base))
    for first in range(0, len(base), _INTERPOLATION_RUN):
        run = slice(first, first + _INTERPOLATION_RUN)
        values[run] = _interpolate_run(grid, base[run], fraction[run])
    return values


def _interpolate_run(grid: np.ndarray, base: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    sine = np.sin(np.pi * fraction)
    on_grid = fraction == 0.0
    values = np.zeros(len(base))
    for tap in range(-_TAPS + 1, _TAPS + 1):
        offset = fraction - tap
        with np.errstate(divide="ignore", invalid="ignore"):
            weight = (sine if tap % 2 == 0 else -sine) / (np.pi * offset)
        if tap == 0:
            weight[on_grid] = 1.0
        weight *= _bell(offset, _TAPS)
        values += grid[base + tap] * weight
    return values
