"""What a recording's channel and speech look like, measured from its samples as stored.

The channel measures tell recordings apart by how they were made, which a classifier must not
learn instead of the speech: a class recorded over the telephone, upsampled from 8 kHz, clipped
or noisier than the other. The speech measures describe the talking itself (patients may pause
more); they are reported, never treated as confounds. Each is measured on the samples as read,
before mixing, resampling or normalisation, in one pass over the recording (in blocks, so that a
long recording kept on disk is never loaded whole).

- ``sample_rate``: the stored sampling rate in Hz.
- ``bandwidth_hz``: the effective bandwidth: the highest frequency whose long-term power is
  within :data:`BANDWIDTH_FLOOR_DB` (40 dB) of the long-term spectrum's peak. The spectrum is
  Welch's average of Hann-windowed periodograms (windows of about 32 ms, half overlapping) of the
  channels' mean. Speech recorded at full band keeps power within 40 dB of its peak up to 6-8 kHz
  and beyond; a recording upsampled from 8 kHz stops near 4 kHz, a low-passed one near its cut-off
  (within about a quarter of it for an 8th-order Butterworth filter). An extraction with
  ``--lowpass`` reports at most its cut-off: the bandwidth the features see.
- ``clipped_fraction``: the share of samples, over all channels before mixing, that lie in runs of
  at least 3 equal samples at the format's full scale or at the channel's own extreme (clipping
  before a gain change): a waveform's peak rarely stays flat for three samples.
- ``dc_offset``: the mean of the channels' mean, as a fraction of full scale.
- ``snr_db``: an estimate of the global signal-to-noise ratio (speech power over noise power)
  from the distribution of frame powers (frames of half a spectrum window, 16-23 ms), as pauses
  hold noise alone (the idea of minimum statistics, Martin 2001, IEEE Trans. Speech Audio
  Process. 9:504-512): the noise power is the mean power of the 10 % of frames whose local level
  (the median over 0.2 s) is lowest, and the speech power the mean power of all frames less it.
  The median makes it blind to a slow modulation of the whole signal (an added tremor), which
  would otherwise pass its troughs off as a quieter background. Capped at :data:`SNR_CAP_DB`
  (pauses of digital silence). White noise at 5 dB is estimated within about 3 dB on real
  speech; a recording without pauses (a sustained vowel) reads as noisier than it is.
- ``duration_s``: seconds of audio read.
- ``speech_fraction``: the share of frames whose power is at least :data:`SPEECH_MARGIN_DB` (6 dB)
  above that noise power and within 50 dB of the loudest frame.
- ``dropped_windows``: windows the features left out (Mel values <= 0), added with the features.

Example:
    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(48000) / 16000
    >>> tone = np.sin(2 * np.pi * 300 * t) * (t % 1 < 0.6) + 0.01 * rng.standard_normal(48000)
    >>> measures = measure_quality(tone, 16000)
    >>> measures["sample_rate"], round(measures["bandwidth_hz"]), round(measures["speech_fraction"], 1)
    (16000, 438, 0.6)
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import pandas as pd

__all__ = [
    "BANDWIDTH_FLOOR_DB",
    "CHANNEL_MEASURES",
    "QUALITY_COLUMNS",
    "SNR_CAP_DB",
    "SPEECH_MARGIN_DB",
    "SPEECH_MEASURES",
    "full_scale_of",
    "measure_quality",
    "quality_flags",
    "suggested_lowpass",
]

#: The channel measures, compared between classes by an evaluation.
CHANNEL_MEASURES = ("sample_rate", "bandwidth_hz", "clipped_fraction", "dc_offset", "snr_db")
#: The speech measures: reported, never treated as confounds.
SPEECH_MEASURES = ("duration_s", "speech_fraction", "dropped_windows")
#: The columns of ``OUT.quality.csv`` after the index, in order.
QUALITY_COLUMNS = CHANNEL_MEASURES + SPEECH_MEASURES

BANDWIDTH_FLOOR_DB = 40.0
SNR_CAP_DB = 100.0
SPEECH_MARGIN_DB = 6.0
#: A frame louder than this below the loudest one is never counted as speech.
SPEECH_RANGE_DB = 50.0
#: Share of the quietest frames whose mean power estimates the noise.
NOISE_SHARE = 0.1
#: Seconds of frames whose median power is a frame's local level: a cycle or more of a 5-12 Hz
#: tremor, while pauses of 0.1 s still hold half of it.
NOISE_SMOOTHING_S = 0.2
#: A pause frame more than this above its local level is taken for speech.
NOISE_OUTLIER_DB = 6.0
#: Equal samples in a row at an extreme that make a clipped run.
CLIPPED_RUN = 3
#: Spectrum windows per block read (a few MB of temporary arrays at any rate).
BLOCK_WINDOWS = 256


class Samples(Protocol):
    """Samples in memory or a :class:`~speechae.audio.SpooledAudio`: a length, a dtype, ranges."""

    dtype: np.dtype

    def __len__(self) -> int: ...


def full_scale_of(dtype: np.dtype) -> float:
    """The largest magnitude a sample of ``dtype`` holds at full scale (1.0 for floating point).

    Example:
        >>> full_scale_of(np.dtype("int16")), full_scale_of(np.dtype("float32"))
        (32767.0, 1.0)
    """
    dtype = np.dtype(dtype)
    return float(np.iinfo(dtype).max) if dtype.kind in "iu" else 1.0


def _frames(samples: np.ndarray | Samples, first: int, last: int) -> np.ndarray:
    block = samples[first:last] if isinstance(samples, np.ndarray) else samples.read(first, last)
    return block.reshape(len(block), -1)


def _clipped(channel: np.ndarray, extreme: float, full_scale: float, high: bool) -> int:
    """Samples of ``channel`` in runs of :data:`CLIPPED_RUN` or more at full scale or at ``extreme``."""
    if high:
        at = (channel >= full_scale) | ((channel == extreme) & (extreme > 0))
    else:
        at = (channel <= -full_scale) | ((channel == extreme) & (extreme < 0))
    edges = np.flatnonzero(np.diff(np.concatenate(([0], at.view(np.int8), [0]))))
    lengths = edges[1::2] - edges[::2]
    return int(lengths[lengths >= CLIPPED_RUN].sum())


def measure_quality(samples: np.ndarray | Samples, sampling_rate: int) -> dict[str, float]:
    """The measures of a recording (all but ``dropped_windows``), see the module.

    Args:
        samples: ``(frames,)`` or ``(frames, channels)`` as read (integers at their type's full
            scale, or floating point at 1.0), in memory or spooled to disk.
        sampling_rate: the stored rate in Hz.

    Returns:
        ``{measure: value}``; NaN where a measure is undefined (no frame, no power).
    """
    total, full_scale = len(samples), full_scale_of(samples.dtype)
    window = 1 << max(4, math.ceil(math.log2(0.032 * sampling_rate)))
    hop, block = window // 2, BLOCK_WINDOWS * window // 2
    blocks = range(0, total, block)
    highs, lows, total_sum = None, None, 0.0
    for first in blocks:  # first the extremes and the mean, then everything measured against them
        frames = _frames(samples, first, min(first + block, total))
        highs = frames.max(axis=0) if highs is None else np.maximum(highs, frames.max(axis=0))
        lows = frames.min(axis=0) if lows is None else np.minimum(lows, frames.min(axis=0))
        total_sum += float(frames.sum(dtype=np.float64)) / frames.shape[1]
    if not total:
        return {measure: math.nan for measure in QUALITY_COLUMNS[:-1]} | {"sample_rate": sampling_rate}
    dc = total_sum / total / full_scale
    taper = np.hanning(window)
    spectrum, windows, clipped, powers = np.zeros(window // 2 + 1), 0, 0, []
    for first in blocks:
        own = min(block, total - first)
        frames = _frames(samples, first, min(first + block + window - hop, total))
        clipped += sum(
            _clipped(frames[:own, c], float(extreme), full_scale, high)
            for c in range(frames.shape[1])
            for extreme, high in ((highs[c], True), (lows[c], False))
        )
        mono = frames.mean(axis=1, dtype=np.float64) / full_scale - dc
        powers.append((mono[: own // hop * hop].reshape(-1, hop) ** 2).mean(axis=1))
        starts = np.arange(0, min(own, len(mono) - window + 1), hop)
        if len(starts):
            segments = mono[starts[:, None] + np.arange(window)] * taper
            spectrum += (np.abs(np.fft.rfft(segments, axis=1)) ** 2).sum(axis=0)
            windows += len(starts)
    measures = {
        "sample_rate": sampling_rate,
        "bandwidth_hz": _bandwidth(spectrum, windows, sampling_rate, window),
        "clipped_fraction": clipped / (total * len(highs)),
        "dc_offset": dc,
        "duration_s": total / sampling_rate,
        **_frame_measures(np.concatenate(powers), max(1, round(NOISE_SMOOTHING_S * sampling_rate / hop))),
    }
    return {measure: measures[measure] for measure in QUALITY_COLUMNS if measure in measures}


def _bandwidth(spectrum: np.ndarray, windows: int, sampling_rate: int, window: int) -> float:
    if windows == 0 or spectrum.max() <= 0:
        return math.nan
    above = np.flatnonzero(spectrum >= spectrum.max() * 10 ** (-BANDWIDTH_FLOOR_DB / 10))
    return float(above[-1] * sampling_rate / window)


def _frame_measures(power: np.ndarray, smoothing: int) -> dict[str, float]:
    """``snr_db`` and ``speech_fraction`` from the powers of the frames (DC removed).

    Pause frames are those whose local level (the median power of the ``smoothing`` frames
    around them) is among the lowest :data:`NOISE_SHARE`, less any frame more than
    :data:`NOISE_OUTLIER_DB` above that level (a speech onset); the noise power is their mean.
    A median over a cycle or more of a slow modulation of the whole signal (a tremor) finds the
    same pauses whatever its phase, and the mean keeps noise and speech power on one footing.
    """
    if len(power) == 0 or power.max() <= 0:
        return {"snr_db": math.nan, "speech_fraction": math.nan}
    before, after = smoothing // 2, smoothing - 1 - smoothing // 2
    padded = np.pad(power, (before, after), mode="edge")
    level = np.median(np.lib.stride_tricks.sliding_window_view(padded, smoothing), axis=1)
    pause = (level <= np.quantile(level, NOISE_SHARE)) & (power <= level * 10 ** (NOISE_OUTLIER_DB / 10))
    noise = float(power[pause].mean()) if pause.any() else float(level.min())
    speech = float(power.mean()) - noise
    snr = SNR_CAP_DB if noise <= 0 else min(SNR_CAP_DB, 10 * math.log10(max(speech, 1e-30) / noise))
    threshold = max(noise * 10 ** (SPEECH_MARGIN_DB / 10), power.max() * 10 ** (-SPEECH_RANGE_DB / 10))
    return {"snr_db": snr, "speech_fraction": float(np.mean(power > threshold))}


#: Documented thresholds of the corpus report's flags (see :func:`quality_flags`).
FLAG_BANDWIDTH_SHARE = 0.75
FLAG_CLIPPED_FRACTION = 0.001
FLAG_SNR_DB = 10.0


def quality_flags(quality: pd.DataFrame) -> pd.Series:
    """Why each recording of a corpus may be on another channel than the rest (empty: no reason).

    A bandwidth under three quarters of the corpus median (:data:`FLAG_BANDWIDTH_SHARE`; audio
    upsampled from 8 kHz among 16 kHz recordings has about half), clipping on more than 0.1 % of
    the samples, an estimated SNR below 10 dB.

    Example:
        >>> table = pd.DataFrame({"bandwidth_hz": [7000.0, 7200, 3400], "clipped_fraction": [0, 0.02, 0],
        ...                       "snr_db": [30.0, 25, 8]}, index=["a", "b", "c"])
        >>> quality_flags(table).tolist()
        ['', 'clipping on 2 % of samples', 'bandwidth 3400 Hz, far below the median 7000 Hz; SNR 8 dB']
    """
    median = quality["bandwidth_hz"].median()
    reasons = []
    for row in quality.itertuples():
        found = []
        if row.bandwidth_hz < FLAG_BANDWIDTH_SHARE * median:
            found.append(f"bandwidth {row.bandwidth_hz:.0f} Hz, far below the median {median:.0f} Hz")
        if row.clipped_fraction > FLAG_CLIPPED_FRACTION:
            found.append(f"clipping on {100 * row.clipped_fraction:.2g} % of samples")
        if row.snr_db < FLAG_SNR_DB:
            found.append(f"SNR {row.snr_db:.0f} dB")
        reasons.append("; ".join(found))
    return pd.Series(reasons, index=quality.index, dtype=object)


def suggested_lowpass(quality: pd.DataFrame) -> float | None:
    """A ``--lowpass`` cut-off that puts every recording on one channel, when bandwidths differ.

    The lowest bandwidth (with a tenth off for the filter's slope) rounded down to 100 Hz; None
    when every bandwidth is within a fifth of the highest.

    Example:
        >>> suggested_lowpass(pd.DataFrame({"bandwidth_hz": [7900.0, 7500, 3900]}))
        3500.0
    """
    bandwidths = quality["bandwidth_hz"].dropna()
    if bandwidths.empty or bandwidths.min() >= 0.8 * bandwidths.max():
        return None
    return float(max(100, math.floor(0.9 * bandwidths.min() / 100) * 100))
