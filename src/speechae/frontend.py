"""Signal conditioning and the log-Mel front-end, as pure functions on arrays and tensors.

The pipeline reproduces DisVoice's ``RepLearning`` input exactly::

    signal -> mono -> 16 kHz (FFT resampling of the whole signal) -> DC removal -> peak
    normalisation -> 8000-sample windows every 4000 samples -> log-Mel (n_fft 512, hop 64,
    128 Slaney Mel bands up to 8 kHz, Hann, zero-padded centring) -> min-max scaling

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> signal = condition_signal(rng.standard_normal(16000), 16000)
    >>> windows = frame_signal(signal)
    >>> windows.shape
    (3, 8000)
    >>> mel, valid = LogMelFrontEnd()(torch.from_numpy(windows.copy()))  # a view is read-only
    >>> tuple(mel.shape), bool(valid.all())
    ((3, 1, 128, 126), True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from speechae.audio import check_sampling_rate
from speechae.errors import (
    AudioTooShortError,
    NonFiniteAudioError,
    ParameterError,
    SegmentedResamplingWarning,
    SilentAudioError,
    TemporaryStorageError,
    warn,
)
from speechae.resampling import (
    RESAMPLING,
    WHOLE_SIGNAL_SAMPLES,
    SampleSink,
    SampleSource,
    fft_resample,
    resample_in_segments,
)

__all__ = [
    "ConditionedSignal",
    "FrontEndConfig",
    "LogMelFrontEnd",
    "band_groups",
    "check_lowpass",
    "check_sampling_rate",
    "condition_signal",
    "frame_range",
    "frame_signal",
    "frontend_config",
    "low_passed",
    "mel_band_edges",
    "mel_filterbank",
    "resamples_in_segments",
    "spools_conditioned",
    "window_count",
    "window_starts",
]


@dataclass(frozen=True)
class FrontEndConfig:
    """Settings of the front-end; the defaults are DisVoice's and the pretrained models'.

    Example:
        >>> FrontEndConfig().window_length
        8000
    """

    sampling_rate: int = 16000
    window_length: int = 8000
    window_shift: int = 4000
    n_fft: int = 512
    hop_length: int = 64
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float = 8000.0
    min_scaler: float = -50.527256
    max_scaler: float = 6.8561997

    def __post_init__(self) -> None:
        counts = ("sampling_rate", "window_length", "window_shift", "n_fft", "hop_length", "n_mels")
        for name in counts:
            if getattr(self, name) <= 0:
                raise ParameterError(f"front-end setting {name}={getattr(self, name)} must be positive")
        if not 0 <= self.fmin < self.fmax or not self.min_scaler < self.max_scaler:
            raise ParameterError(
                "front-end settings need 0 <= fmin < fmax and min_scaler < max_scaler, not "
                f"fmin={self.fmin}, fmax={self.fmax}, "
                f"min_scaler={self.min_scaler}, max_scaler={self.max_scaler}"
            )

    @property
    def n_frames(self) -> int:
        """Number of STFT frames in one window (126 for the defaults)."""
        return 1 + self.window_length // self.hop_length

    @property
    def window_seconds(self) -> float:
        """Length of one window in seconds (0.5 for the defaults)."""
        return self.window_length / self.sampling_rate

    def to_dict(self) -> dict[str, float | int]:
        """Return the settings as a plain dictionary (for metadata and cache keys)."""
        return asdict(self)


DEFAULT_FRONTEND = FrontEndConfig()


def frontend_config(metadata: dict[str, str]) -> FrontEndConfig:
    """Front-end settings stored in a model's metadata; missing ones take the defaults.

    Example:
        >>> frontend_config({"min_scaler": "-40.0", "architecture": "cae"}).min_scaler
        -40.0
    """
    defaults = DEFAULT_FRONTEND.to_dict()
    stored = {}
    for key, value in defaults.items():
        if key in metadata:
            try:
                stored[key] = type(value)(metadata[key])
            except (TypeError, ValueError):
                raise ParameterError(f"front-end setting {key}={metadata[key]!r} is not a number") from None
    return FrontEndConfig(**{**defaults, **stored})


def condition_signal(
    signal: np.ndarray | SampleSource,
    sampling_rate: int,
    *,
    config: FrontEndConfig = DEFAULT_FRONTEND,
    name: str = "",
    spool: Callable[[int, np.dtype], SampleSink] | None = None,
    resampling: str = RESAMPLING[0],
) -> np.ndarray | ConditionedSignal:
    """Mix to mono, resample, remove the mean and divide by the peak.

    Resampling transforms the whole signal at once, as the reference does, up to
    :data:`~speechae.resampling.WHOLE_SIGNAL_SAMPLES` samples; longer signals are resampled in
    overlapping segments in bounded memory (:func:`~speechae.resampling.resample_in_segments`),
    with a :class:`~speechae.errors.SegmentedResamplingWarning`; ``resampling="segmented"``
    resamples in segments at any length (:data:`~speechae.resampling.RESAMPLING`). Integer
    samples may be given as stored (``read_audio(..., native=True)``): the result is the same as
    for their float64 values.

    Args:
        signal: samples, shape ``(samples,)`` or ``(samples, channels)``, as an array or a
            :class:`~speechae.resampling.SampleSource` (a recording spooled to disk: only the
            segments being resampled are in memory at a time).
        sampling_rate: rate of ``signal`` in Hz.
        config: front-end settings; only ``sampling_rate`` and ``window_length`` are used.
        name: what the warning calls the recording (its file).
        spool: ``spool(length, dtype)`` gives storage for a signal outside memory, such as
            :meth:`speechae.audio.SampleSpool.create`. With it, a signal longer than
            ``WHOLE_SIGNAL_SAMPLES`` (before or after resampling; :func:`spools_conditioned`)
            is kept there and returned as a :class:`ConditionedSignal`, so memory stays flat
            however long the recording; where it raises
            :class:`~speechae.errors.TemporaryStorageError` (no room), in memory as without it.
        resampling: ``"exact"`` or ``"segmented"`` (:data:`~speechae.resampling.RESAMPLING`).

    Returns:
        array of shape ``(samples_16k,)`` with zero mean and peak 1, or a
        :class:`ConditionedSignal` of those samples; float32 when ``signal`` is float32 (as the
        reference computes it), float64 otherwise.

    Raises:
        NonFiniteAudioError: the signal has NaN or infinite samples.
        AudioTooShortError: the signal is shorter than one window after resampling.
        SilentAudioError: every sample has the same value.

    Example:
        >>> x = condition_signal(np.sin(np.arange(8000) / 5.0), 8000)
        >>> x.shape, float(abs(x).max())
        ((16000,), 1.0)
    """
    if resampling not in RESAMPLING:
        raise ParameterError(f"resampling must be one of {RESAMPLING}, not {resampling!r}")
    spooled = hasattr(signal, "read")
    if not spooled:
        signal = _finite(_samples_by_channels(np.asarray(signal), name))
    check_sampling_rate(sampling_rate, name=name)
    target = len(signal)
    if sampling_rate != config.sampling_rate:
        target = _resampled_length(len(signal), sampling_rate, config)
        if target < config.window_length:
            raise _too_short(len(signal) / sampling_rate, config)
    long = spools_conditioned(len(signal), sampling_rate, config=config)
    segmented = resamples_in_segments(len(signal), sampling_rate, config=config, resampling=resampling)
    if segmented and long:
        warn(
            SegmentedResamplingWarning(
                f"{name or 'a recording'}: {len(signal) / sampling_rate / 60:.1f} minutes at "
                f"{sampling_rate} Hz are resampled in overlapping segments to bound memory, not with "
                "one FFT of the whole signal as DisVoice does; Mel bands that hold only rounding "
                "noise or ringing (near-silence, the empty upper bands of upsampled audio) may differ"
            )
        )
    if spool is not None and long:
        conditioned = _spooled_conditioned(signal, target, spool)
        if conditioned is not None:
            return conditioned
    if segmented:
        samples = resample_in_segments(signal, target)
        if spooled:  # a non-finite sample makes its segments' spectra, hence outputs, non-finite
            _finite(samples)
    else:
        samples = _working_precision(_finite(signal.read(0, len(signal))) if spooled else signal)
        if samples.ndim == 2:
            samples = samples.mean(axis=1)
        if target != len(samples):
            samples = fft_resample(samples, target)
    if len(samples) < config.window_length:
        raise _too_short(len(samples) / config.sampling_rate, config)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused below
        mean = _blockwise_mean(samples) if long else samples.mean()
        # in place where the array is already a copy: an hour at 16 kHz is 460 MB per float64 array
        if spooled or not np.may_share_memory(samples, signal):
            samples -= mean
        else:
            samples = samples - mean
        peak = max(samples.max(), -samples.min())
    samples /= _usable_peak(peak, samples.dtype)
    return samples


#: Order of the Butterworth filter of ``--lowpass``: 48 dB per octave above the cut-off.
LOWPASS_ORDER = 8
#: Samples filtered at a time when a long recording is low-passed on disk.
LOWPASS_BLOCK = 1 << 20


def check_lowpass(cutoff_hz: float | None) -> None:
    """Refuse a low-pass cut-off that is not None or a number of Hz from 100 up.

    Raises:
        ParameterError: naming the value.
    """
    if cutoff_hz is None:
        return
    if isinstance(cutoff_hz, bool) or not isinstance(cutoff_hz, (int, float)) or not cutoff_hz >= 100:
        raise ParameterError(f"lowpass must be a cut-off of at least 100 Hz (or None), not {cutoff_hz!r}")


def low_passed(
    signal: np.ndarray | SampleSource,
    sampling_rate: int,
    cutoff_hz: float,
    *,
    spool: Callable[[int, np.dtype], SampleSink] | None = None,
) -> np.ndarray | SampleSource:
    """``signal`` through an 8th-order Butterworth low-pass at ``cutoff_hz`` (a common channel).

    Channels are mixed first, as :func:`condition_signal` mixes them. A signal read by ranges
    (a long recording on disk) is filtered block by block into ``spool``; a cut-off at or above
    the Nyquist frequency leaves ``signal`` as it is.

    Example:
        >>> t = np.arange(16000) / 16000
        >>> mixed = np.sin(2 * np.pi * 200 * t) + np.sin(2 * np.pi * 6000 * t)
        >>> filtered = low_passed(mixed, 16000, 1000)
        >>> float(np.abs(np.fft.rfft(filtered)[6000]) / np.abs(np.fft.rfft(mixed)[6000])) < 1e-3
        True
    """
    from scipy import signal as filters

    if cutoff_hz >= sampling_rate / 2:
        return signal
    sections = filters.butter(LOWPASS_ORDER, cutoff_hz, "low", fs=sampling_rate, output="sos")
    if not hasattr(signal, "read"):
        samples = np.asarray(signal, dtype=np.float64)
        return filters.sosfilt(sections, samples.mean(axis=1) if samples.ndim == 2 else samples)
    storage = spool(len(signal), np.dtype(np.float64))
    state = filters.sosfilt_zi(sections) * 0.0
    for first in range(0, len(signal), LOWPASS_BLOCK):
        block = signal.read(first, min(first + LOWPASS_BLOCK, len(signal))).astype(np.float64)
        block = block.mean(axis=1) if block.ndim == 2 else block
        storage[first : first + len(block)], state = filters.sosfilt(sections, block, zi=state)
    return storage


def _usable_peak(peak: np.floating, dtype: np.dtype) -> np.floating:
    """The peak that normalises a centred signal; an overflow or a silent signal is refused."""
    if not np.isfinite(peak):  # finite samples near float32's limit overflow its sums
        raise NonFiniteAudioError(
            f"the samples are too large for {dtype} arithmetic (their mean or resampling "
            "overflows); scale the recording to the usual range of -1 to 1"
        )
    if peak == 0:
        raise _silent()
    return peak


def _silent() -> SilentAudioError:
    return SilentAudioError(
        "the recording is silent (all samples are equal), so it cannot be peak-normalised"
    )


class ConditionedSignal:
    """A conditioned signal outside memory: stored samples, read by range with the conditioning.

    :func:`condition_signal` makes it for long recordings; ``read`` gives the values the
    in-memory conditioning would hold (the mean removed and the peak divided on the way) and
    :func:`frame_range` cuts windows from it. Closing it closes the storage (a context manager).
    """

    def __init__(self, stored: SampleSource, mean: np.floating, peak: np.floating) -> None:
        self.stored, self.mean, self.peak = stored, mean, peak
        self.dtype = stored.dtype

    def __len__(self) -> int:
        return len(self.stored)

    def read(self, first: int, last: int) -> np.ndarray:
        """Conditioned samples ``first..last-1`` as a new array."""
        samples = self.stored.read(first, last)
        samples -= self.mean
        samples /= self.peak
        return samples

    def close(self) -> None:
        """Release the storage."""
        if hasattr(self.stored, "close"):
            self.stored.close()

    def __enter__(self) -> ConditionedSignal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def spools_conditioned(
    n_samples: int, sampling_rate: int, *, config: FrontEndConfig = DEFAULT_FRONTEND
) -> bool:
    """Whether :func:`condition_signal` keeps a signal of this length in its ``spool``.

    Example:
        >>> spools_conditioned(60 * 60 * 16000, 16000), spools_conditioned(10 * 60 * 16000, 16000)
        (True, False)
    """
    return max(n_samples, _resampled_length(n_samples, sampling_rate, config)) > WHOLE_SIGNAL_SAMPLES


def _resampled_length(n_samples: int, sampling_rate: int, config: FrontEndConfig) -> int:
    """Samples after resampling, as the reference counts them."""
    return int(n_samples * config.sampling_rate / sampling_rate)


def _spooled_conditioned(
    signal: np.ndarray | SampleSource, target: int, spool: Callable[[int, np.dtype], SampleSink]
) -> ConditionedSignal | None:
    """Mono, resampled samples into ``spool``; their mean and peak from one pass over blocks.

    The mean is :func:`_blockwise_mean`'s; the maximum and minimum give the peak of the centred
    samples exactly (rounding is monotone). None when the spool has no room, at its creation or
    later: the signal is then conditioned in memory, to the same values.
    """
    dtype = np.dtype(np.float32 if signal.dtype == np.float32 else np.float64)
    try:
        stored = spool(target, dtype)
    except TemporaryStorageError:
        return None
    try:
        if target != len(signal):
            resample_in_segments(signal, target, out=stored)
        else:
            read = signal.read if hasattr(signal, "read") else lambda a, b: signal[a:b]
            for first in range(0, target, _BLOCK):
                block = _working_precision(read(first, min(first + _BLOCK, target)))
                stored[first : first + len(block)] = block.mean(axis=1) if block.ndim == 2 else block
        total, high, low = 0.0, -np.inf, np.inf
        for first in range(0, target, _BLOCK):
            block = _finite(stored.read(first, min(first + _BLOCK, target)))
            total += block.sum(dtype=np.float64)
            high, low = max(high, block.max()), min(low, block.min())
        mean = dtype.type(total / target)
        with np.errstate(over="ignore"):
            peak = _usable_peak(max(dtype.type(high - mean), -dtype.type(low - mean)), dtype)
    except TemporaryStorageError:
        stored.close()
        return None
    except BaseException:
        stored.close()
        raise
    return ConditionedSignal(stored, mean, peak)


def _blockwise_mean(samples: np.ndarray) -> np.floating:
    """The mean of a long signal as its spooled conditioning forms it: float64 sums of blocks.

    In memory and spooled, a long recording then gets the same values; short ones keep NumPy's
    pairwise mean in their own precision, as the reference computes it.
    """
    total = 0.0
    for block in _blocks(samples):
        total += block.sum(dtype=np.float64)
    return samples.dtype.type(total / len(samples))


def _samples_by_channels(signal: np.ndarray, name: str) -> np.ndarray:
    where = f"{name}: " if name else ""
    if signal.dtype.kind not in "iuf":  # complex values would lose their imaginary part
        raise ParameterError(f"{where}samples must be integers or floats, not {signal.dtype}")
    if signal.ndim not in (1, 2):
        shape = "a single number" if signal.ndim == 0 else f"of shape {signal.shape}"
        raise ParameterError(f"{where}a signal is (samples,) or (samples, channels), not {shape}")
    if signal.ndim == 2 and signal.shape[1] == 0:
        raise ParameterError(f"{where}a signal of shape {signal.shape} has no channels")
    if signal.ndim == 2 and signal.shape[1] > signal.shape[0]:
        raise ParameterError(
            f"{where}a signal of shape {signal.shape} would have more channels than samples; "
            "give it as (samples, channels), e.g. signal.T"
        )
    return signal


def resamples_in_segments(
    n_samples: int,
    sampling_rate: int,
    *,
    config: FrontEndConfig = DEFAULT_FRONTEND,
    resampling: str = RESAMPLING[0],
) -> bool:
    """Whether :func:`condition_signal` resamples a signal of this length in segments.

    Example:
        >>> resamples_in_segments(60 * 60 * 44100, 44100), resamples_in_segments(60 * 60 * 16000, 16000)
        (True, False)
        >>> resamples_in_segments(5 * 60 * 44100, 44100, resampling="segmented")
        True
    """
    if _resampled_length(n_samples, sampling_rate, config) == n_samples:
        return False
    return resampling == "segmented" or spools_conditioned(n_samples, sampling_rate, config=config)


def _finite(samples: np.ndarray) -> np.ndarray:
    if samples.dtype.kind == "f" and not all(np.isfinite(part).all() for part in _blocks(samples)):
        raise NonFiniteAudioError("the recording contains NaN or infinite samples")
    return samples


_BLOCK = 2**22


def _blocks(samples: np.ndarray) -> Iterator[np.ndarray]:
    """Consecutive row blocks of ``samples``, so checks on long signals need little memory."""
    for first in range(0, len(samples), _BLOCK):
        yield samples[first : first + _BLOCK]


def _working_precision(samples: np.ndarray) -> np.ndarray:
    """Keep float32 samples in float32 and bring everything else to float64.

    The reference computes in the precision its WAV reader returns: integer PCM is promoted to
    float64, float32 stays float32 all the way to the Mel spectrogram. Low-energy Mel bands are
    dominated by that rounding, so the precision is part of the result.
    """
    if samples.dtype == np.float32:
        return samples
    return samples.astype(np.float64)


def _too_short(seconds: float, config: FrontEndConfig) -> AudioTooShortError:
    lasts = math.floor(seconds * 1e6) / 1e6  # never rounded up to the window's length
    return AudioTooShortError(
        f"the audio lasts {lasts:g} s, shorter than one {config.window_seconds:g} s window"
    )


def window_count(n_samples: int, *, config: FrontEndConfig = DEFAULT_FRONTEND) -> int:
    """Number of analysis windows DisVoice cuts from ``n_samples`` samples at 16 kHz.

    Example:
        >>> window_count(16000)
        3
    """
    return max(int(n_samples / config.window_shift) - 1, 0)


def window_starts(n_windows: int, *, config: FrontEndConfig = DEFAULT_FRONTEND) -> np.ndarray:
    """Start time in seconds of each of ``n_windows`` consecutive windows.

    Example:
        >>> window_starts(3).tolist()
        [0.0, 0.25, 0.5]
    """
    return np.arange(n_windows) * (config.window_shift / config.sampling_rate)


def frame_signal(signal: np.ndarray, *, config: FrontEndConfig = DEFAULT_FRONTEND) -> np.ndarray:
    """Cut a conditioned 16 kHz signal into overlapping windows (a view, no copy).

    Returns:
        array of shape ``(window_count(len(signal)), window_length)``.

    Example:
        >>> frame_signal(np.zeros(20000)).shape
        (4, 8000)
    """
    n_windows = window_count(len(signal), config=config)
    if n_windows == 0:
        return np.empty((0, config.window_length), dtype=signal.dtype)
    view = np.lib.stride_tricks.sliding_window_view(signal, config.window_length)
    return view[:: config.window_shift][:n_windows]


def frame_range(
    signal: np.ndarray | ConditionedSignal,
    first: int,
    last: int,
    *,
    config: FrontEndConfig = DEFAULT_FRONTEND,
) -> np.ndarray:
    """Windows ``first..last-1`` of :func:`frame_signal`, also of a :class:`ConditionedSignal`.

    Example:
        >>> frame_range(np.arange(20000.0), 1, 3)[:, 0].tolist()
        [4000.0, 8000.0]
    """
    if isinstance(signal, np.ndarray):
        return frame_signal(signal, config=config)[first:last]
    if first >= last:
        return np.empty((0, config.window_length), dtype=signal.dtype)
    begin = first * config.window_shift
    end = min(len(signal), (last - 1) * config.window_shift + config.window_length)
    samples = signal.read(begin, end)
    return np.lib.stride_tricks.sliding_window_view(samples, config.window_length)[:: config.window_shift]


# Slaney's Mel scale: linear (200/3 Hz per Mel) below 1 kHz, logarithmic (27 Mel per 6.4x) above
_HZ_PER_MEL = 200.0 / 3
_BREAK_HZ = 1000.0
_BREAK_MEL = _BREAK_HZ / _HZ_PER_MEL
_LOG_STEP = np.log(6.4) / 27.0


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    above = _BREAK_MEL + np.log(np.maximum(hz, 1e-10) / _BREAK_HZ) / _LOG_STEP
    return np.where(hz >= _BREAK_HZ, above, hz / _HZ_PER_MEL)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    above = _BREAK_HZ * np.exp(_LOG_STEP * (mel - _BREAK_MEL))
    return np.where(mel >= _BREAK_MEL, above, mel * _HZ_PER_MEL)


def mel_band_edges(*, config: FrontEndConfig = DEFAULT_FRONTEND) -> np.ndarray:
    """Edge frequencies in Hz of the Mel triangles, shape ``(n_mels + 2,)``.

    Band ``k`` rises from ``edges[k]``, peaks at ``edges[k + 1]`` and falls to ``edges[k + 2]``.

    Example:
        >>> round(float(mel_band_edges()[-1]), 6)
        8000.0
    """
    mels = np.linspace(_hz_to_mel(config.fmin), _hz_to_mel(config.fmax), config.n_mels + 2)
    return _mel_to_hz(mels)


def mel_filterbank(*, config: FrontEndConfig = DEFAULT_FRONTEND) -> np.ndarray:
    """Slaney-normalised triangular Mel filterbank, shape ``(n_mels, n_fft // 2 + 1)``.

    The weights are rounded to float32, as the reference implementation stores them.

    Example:
        >>> mel_filterbank().shape
        (128, 257)
    """
    fft_freqs = np.fft.rfftfreq(config.n_fft, d=1.0 / config.sampling_rate)
    edges = mel_band_edges(config=config)
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def band_groups(filterbank: np.ndarray, bands_per_group: int = 16) -> list[tuple[slice, slice]]:
    """Split a banded filterbank into blocks of consecutive bands and the FFT bins they touch.

    A Mel triangle covers a few neighbouring FFT bins, so projecting block by block skips the
    zeros of the full matrix (8x fewer multiplications for 128 bands, same sums).

    Returns:
        ``(bands, bins)`` slices; every nonzero weight lies in one ``filterbank[bands, bins]``.

    Example:
        >>> groups = band_groups(mel_filterbank())
        >>> len(groups), groups[0][0]
        (8, slice(0, 16, None))
    """
    groups = []
    for first in range(0, len(filterbank), bands_per_group):
        bands = slice(first, min(first + bands_per_group, len(filterbank)))
        touched = np.flatnonzero(filterbank[bands].any(axis=0))
        bins = slice(int(touched[0]), int(touched[-1]) + 1) if len(touched) else slice(0, 1)
        groups.append((bands, bins))
    return groups


def _float32_power(spectrum: torch.Tensor) -> torch.Tensor:
    """``|spectrum|^2`` of a complex64 spectrum, rounded as the reference rounds it.

    The reference squares NumPy's complex64 magnitude, which differs from PyTorch's in the last
    bit for a third of the values; on a CPU NumPy itself computes it, six times faster.
    """
    if spectrum.device.type != "cpu":
        return spectrum.abs().square()
    magnitude = np.abs(spectrum.numpy())
    return torch.from_numpy(np.square(magnitude, out=magnitude))


class LogMelFrontEnd(nn.Module):
    """Batched log-Mel spectrogram with min-max scaling, as an ``nn.Module``.

    The Hann window and the Mel filterbank are buffers, so ``.to(device)`` moves them.
    Windows are multiplied by the Hann window and transformed in float64. For float32 windows the
    spectrum is then rounded to complex64 and the power and Mel projection run in float32; for
    float64 windows they stay in float64. The logarithm and scaling always run in float32. This is
    exactly where the reference rounds for each input precision. On a CPU the windows are
    transformed a few at a time, so the intermediate spectra stay in cache.

    Example:
        >>> front = LogMelFrontEnd()
        >>> mel, valid = front(torch.zeros(2, 8000, dtype=torch.float64))
        >>> tuple(mel.shape), valid.tolist()
        ((2, 1, 128, 126), [False, False])
    """

    #: Windows per step on a CPU (their spectra take about 4 MB, the size of the L2 caches).
    cpu_chunk = 8

    def __init__(self, config: FrontEndConfig = DEFAULT_FRONTEND) -> None:
        super().__init__()
        self.config = config
        window = torch.hann_window(config.n_fft, periodic=True, dtype=torch.float64)
        self.register_buffer("window", window, persistent=False)
        filterbank = mel_filterbank(config=config)
        self.register_buffer("filterbank", torch.from_numpy(filterbank), persistent=False)
        self.band_groups = band_groups(filterbank)

    def mel_power(self, windows: torch.Tensor) -> torch.Tensor:
        """Mel power spectrogram, ``(n, window_length)`` -> ``(n, n_mels, n_frames)``.

        The result has the dtype of ``windows`` (float32 or float64).
        """
        if windows.device.type == "cpu" and len(windows) > self.cpu_chunk:
            return torch.cat([self.mel_power(part) for part in windows.split(self.cpu_chunk)])
        half = self.config.n_fft // 2
        # widened before framing: casting the overlapping frames' view is 30x slower
        padded = nn.functional.pad(windows.to(torch.float64), (half, half))
        frames = padded.unfold(-1, self.config.n_fft, self.config.hop_length)
        spectrum = torch.fft.rfft(frames * self.window, dim=-1)
        if windows.dtype == torch.float32:
            power = _float32_power(spectrum.to(torch.complex64))  # the reference's float32 rounding
        else:  # |z|^2 without the square root: within an ulp of |z| squared, 3x faster
            power = spectrum.real.square() + spectrum.imag.square()
        filterbank = self.filterbank.to(power.dtype)
        blocks = [power[..., bins] @ filterbank[bands, bins].T for bands, bins in self.band_groups]
        return torch.cat(blocks, dim=-1).transpose(-1, -2)

    def scale(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Min-max scale a float32 log-Mel spectrogram with the model's constants."""
        low, high = self.config.min_scaler, self.config.max_scaler
        return (log_mel - low) / (high - low)

    def forward(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled log-Mel input of the autoencoders and which windows are usable.

        Args:
            windows: ``(n, window_length)`` samples of conditioned windows.

        Returns:
            ``(scaled, valid)``: float32 ``(n, 1, n_mels, n_frames)`` and bool ``(n,)``; a window
            whose Mel power has a value <= 0 is not valid (its log is not finite).
        """
        power = self.mel_power(windows)
        valid = power.flatten(1).amin(dim=1) > 0
        log_mel = torch.log(power.to(torch.float32))
        return self.scale(log_mel).unsqueeze(1), valid
