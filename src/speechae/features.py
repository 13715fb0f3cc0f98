"""Feature assembly: bottleneck and reconstruction-error features of one recording.

This is the one place a feature is computed; every API funnels into :func:`compute_features`.
It works on arrays and tensors only.

Example:
    >>> import numpy as np
    >>> from speechae.models import ConvAutoencoder
    >>> rng = np.random.default_rng(0)
    >>> result = compute_features(rng.standard_normal(24000), 16000, ConvAutoencoder(8))
    >>> result.bottleneck.shape, result.error.shape, result.starts.tolist()
    ((5, 8), (5, 128), [0.0, 0.25, 0.5, 0.75, 1.0])
    >>> static_features(result.bottleneck, result.error).shape
    (544,)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from speechae.engine import (
    DEFAULT_CHUNK,
    NetworkOutput,
    Spill,
    SpillStorage,
    TensorInputs,
    memory_budget_for,
    run_autoencoder,
)
from speechae.errors import TemporaryStorageError
from speechae.frontend import (
    ConditionedSignal,
    LogMelFrontEnd,
    condition_signal,
    frame_range,
    window_count,
    window_starts,
)

__all__ = [
    "STATISTICS",
    "FileFeatures",
    "compute_features",
    "conditioned_features",
    "dynamic_feature_names",
    "features_from_output",
    "static_feature_names",
    "static_features",
    "transform_conditioned",
]

STATISTICS = ("mean", "std", "skewness", "kurtosis")
FRONTEND_CHUNK = 256


@dataclass
class FileFeatures:
    """Per-window features of one recording and what was left out.

    Attributes:
        bottleneck: float32 ``(windows, bottleneck)``.
        error: float32 ``(windows, n_mels)``, squared reconstruction error averaged over time.
        starts: ``(windows,)`` start of each kept window in seconds.
        dropped: start in seconds of each window dropped for a Mel value <= 0.
        duration: length of the recording (or of the segment) in seconds.
        spectrogram: scaled log-Mel input ``(windows, n_mels, frames)``, when asked for.
        reconstruction: the autoencoder's output, same shape, when asked for.
    """

    bottleneck: np.ndarray
    error: np.ndarray
    starts: np.ndarray
    dropped: np.ndarray
    duration: float
    spectrogram: np.ndarray | None = None
    reconstruction: np.ndarray | None = None

    @property
    def dynamic(self) -> np.ndarray:
        """``(windows, bottleneck + n_mels)``: bottleneck values then errors, per window."""
        return np.concatenate((self.bottleneck, self.error), axis=1)

    @property
    def static(self) -> np.ndarray:
        """The 4 functionals of every dynamic feature, see :func:`static_features`."""
        return static_features(self.bottleneck, self.error)

    @property
    def offset(self) -> float:
        """Where the features' time axis starts: 0, or a segment's start in its recording.

        Every recording or segment starts with a window, kept or dropped.

        Example:
            >>> empty = np.zeros((0, 1), np.float32)
            >>> FileFeatures(empty, empty, np.array([]), np.array([1.5, 1.75]), 0.75).offset
            1.5
        """
        firsts = [float(times[0]) for times in (self.starts, self.dropped) if len(times)]
        return min(firsts, default=0.0)

    def shift(self, seconds: float) -> FileFeatures:
        """Move the window times by ``seconds`` (where a segment starts in its recording), in place.

        Returns ``self``.
        """
        if seconds:
            self.starts = self.starts + seconds
            self.dropped = self.dropped + seconds
        return self


def _functionals(values: np.ndarray) -> np.ndarray:
    """Mean, std, skewness and excess kurtosis of each column, as ``scipy.stats`` defines them.

    Biased estimates, NaN where the variance is zero to rounding; ``scipy.stats`` itself takes
    most of a second to import, so the four lines are written here.
    """
    values = values.astype(np.float64)
    mean = values.mean(axis=0)
    centred = values - mean
    squares = centred * centred  # scipy.stats forms the powers by multiplication, as here
    m2, m3, m4 = squares.mean(axis=0), (squares * centred).mean(axis=0), (squares * squares).mean(axis=0)
    constant = m2 <= (np.finfo(np.float64).eps * mean) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        skewness = np.where(constant, np.nan, m3 / m2**1.5)
        kurtosis = np.where(constant, np.nan, m4 / m2**2 - 3.0)
    return np.concatenate((mean, np.sqrt(m2), skewness, kurtosis))


def static_features(bottleneck: np.ndarray, error: np.ndarray) -> np.ndarray:
    """Mean, std (ddof 0), skewness and kurtosis (biased, Fisher) over windows.

    The layout is DisVoice's: the four functionals of the bottleneck, then those of the error.
    One window gives NaN skewness and kurtosis, as in DisVoice.

    Returns:
        float64 array of shape ``(4 * bottleneck + 4 * n_mels,)``.
    """
    return np.concatenate((_functionals(bottleneck), _functionals(error)))


def dynamic_feature_names(bottleneck: int = 256, n_mels: int = 128) -> list[str]:
    """Column names of the per-window features.

    Example:
        >>> dynamic_feature_names(2, 2)
        ['bottleneck_0', 'bottleneck_1', 'error_0', 'error_1']
    """
    return [f"bottleneck_{k}" for k in range(bottleneck)] + [f"error_{k}" for k in range(n_mels)]


def static_feature_names(bottleneck: int = 256, n_mels: int = 128) -> list[str]:
    """Column names of the per-file features, in DisVoice's order.

    Example:
        >>> static_feature_names(1, 1)[:5]
        ['mean_bottleneck_0', 'std_bottleneck_0', 'skewness_bottleneck_0', \
'kurtosis_bottleneck_0', 'mean_error_0']
    """
    return [
        f"{statistic}_{part}_{k}"
        for part, size in (("bottleneck", bottleneck), ("error", n_mels))
        for statistic in STATISTICS
        for k in range(size)
    ]


class SignalInputs:
    """Windows of a conditioned signal, put through the front-end each time they are read.

    Used for files whose spectrograms would not fit the memory budget; the front-end costs a few
    percent of the network, so recomputing beats keeping gigabytes of spectrograms. The signal
    may be a :class:`~speechae.frontend.ConditionedSignal` outside memory.
    """

    def __init__(
        self,
        signal: np.ndarray | ConditionedSignal,
        kept: np.ndarray,
        frontend: LogMelFrontEnd,
        device: torch.device | str,
    ) -> None:
        self.signal, self.kept, self.frontend, self.device = signal, kept, frontend, device

    def __len__(self) -> int:
        return len(self.kept)

    def get(self, first: int, last: int) -> torch.Tensor:
        """Scaled log-Mel of kept windows ``first..last-1``."""
        kept = self.kept[first:last]
        if len(kept) == 0:
            config = self.frontend.config
            return torch.zeros(0, 1, config.n_mels, config.n_frames, device=self.device)
        windows = frame_range(self.signal, kept[0], kept[-1] + 1, config=self.frontend.config)
        chunk = torch.from_numpy(np.ascontiguousarray(windows[kept - kept[0]]))
        return self.frontend(chunk.to(self.device))[0]


class SpilledInputs:
    """Scaled log-Mel windows in a temporary file, appended once and read back by ranges.

    Reading them back costs a fraction of recomputing them (:class:`SignalInputs`), which long
    files otherwise do for every pass of the network.
    """

    def __init__(
        self, storage: SpillStorage, window_shape: tuple[int, ...], device: torch.device | str
    ) -> None:
        self.storage, self.window_shape, self.device = storage, window_shape, device
        self.window_values = int(np.prod(window_shape))
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def append(self, windows: torch.Tensor) -> None:
        """Add float32 windows ``(m, *window_shape)`` after those already written."""
        values = windows.cpu().numpy().reshape(-1)
        first = self.count * self.window_values
        self.storage[first : first + len(values)] = values
        self.count += len(windows)

    def get(self, first: int, last: int) -> torch.Tensor:
        """Windows ``first..last-1``."""
        values = self.storage.read(first * self.window_values, last * self.window_values)
        return torch.from_numpy(values).view(last - first, *self.window_shape).to(self.device)

    def close(self) -> None:
        """Delete the temporary file."""
        self.storage.close()


@dataclass
class PreparedRecording:
    """A recording after the front-end: its usable windows and where they lie in time.

    ``inputs`` holds the scaled log-Mel of the kept windows, in memory (:class:`TensorInputs`)
    when they fit the memory budget, else in a temporary file (:class:`SpilledInputs`) or
    recomputed on demand (:class:`SignalInputs`). :meth:`close` deletes the temporary file.
    """

    inputs: TensorInputs | SpilledInputs | SignalInputs
    starts: np.ndarray
    dropped: np.ndarray
    duration: float

    def close(self) -> None:
        """Release the inputs' temporary file, if any."""
        if isinstance(self.inputs, SpilledInputs):
            self.inputs.close()


def transform_conditioned(
    conditioned: np.ndarray | ConditionedSignal,
    duration: float,
    frontend: LogMelFrontEnd,
    *,
    device: str | torch.device = "cpu",
    memory_budget: int | None = None,
    spill: Spill | None = None,
) -> PreparedRecording:
    """Frame and transform a signal from :func:`condition_signal` (``duration``: of the original).

    Spectrograms beyond ``memory_budget`` go to a temporary file from ``spill`` (see
    :func:`~speechae.engine.run_autoencoder`) or, without one or without room, are recomputed
    when needed; a :class:`~speechae.frontend.ConditionedSignal` must then stay open while the
    result is used. Close the result when done.
    """
    config = frontend.config
    n_windows = window_count(len(conditioned), config=config)
    starts = window_starts(n_windows, config=config)
    window_shape = (1, config.n_mels, config.n_frames)
    if memory_budget is None:
        memory_budget = memory_budget_for(device)
    in_memory = n_windows * 4 * int(np.prod(window_shape)) <= memory_budget
    spilled = None if in_memory else _spilled_inputs(spill, n_windows, window_shape, device)
    scaled, kept = [], np.zeros(n_windows, dtype=bool)
    try:
        with torch.inference_mode():
            for first in range(0, n_windows, FRONTEND_CHUNK):
                last = min(first + FRONTEND_CHUNK, n_windows)
                chunk = torch.from_numpy(np.array(frame_range(conditioned, first, last, config=config)))
                mel, usable = frontend(chunk.to(device))
                kept[first:last] = usable.cpu().numpy()
                if in_memory:
                    scaled.append(mel[usable])
                elif spilled is not None:
                    spilled = _append_or_give_up(spilled, mel[usable])
    except BaseException:
        if spilled is not None:
            spilled.close()
        raise
    if in_memory:
        inputs = TensorInputs(torch.cat(scaled))
    elif spilled is not None:
        inputs = spilled
    else:
        inputs = SignalInputs(conditioned, np.flatnonzero(kept), frontend, device)
    return PreparedRecording(inputs=inputs, starts=starts[kept], dropped=starts[~kept], duration=duration)


def _spilled_inputs(
    spill: Spill | None, n_windows: int, window_shape: tuple[int, ...], device: torch.device | str
) -> SpilledInputs | None:
    if spill is None:
        return None
    try:
        storage = spill(n_windows * int(np.prod(window_shape)), np.dtype(np.float32))
    except TemporaryStorageError:
        return None
    return SpilledInputs(storage, window_shape, device)


def _append_or_give_up(spilled: SpilledInputs, windows: torch.Tensor) -> SpilledInputs | None:
    """Append ``windows``; on a full disk, drop the file (the windows will be recomputed)."""
    try:
        spilled.append(windows)
    except TemporaryStorageError:
        spilled.close()
        return None
    return spilled


def features_from_output(
    prepared: PreparedRecording, output: NetworkOutput, *, keep_spectrograms: bool = False
) -> FileFeatures:
    """Assemble :class:`FileFeatures` from a recording and the network's output for its windows."""
    spectrogram = reconstruction = None
    if keep_spectrograms:
        spectrogram = prepared.inputs.get(0, len(prepared.inputs))[:, 0].cpu().numpy()
        reconstruction = output.reconstruction[:, 0].cpu().numpy()
    return FileFeatures(
        bottleneck=output.code.cpu().numpy(),
        error=output.error.cpu().numpy(),
        starts=prepared.starts,
        dropped=prepared.dropped,
        duration=prepared.duration,
        spectrogram=spectrogram,
        reconstruction=reconstruction,
    )


def compute_features(
    signal: np.ndarray,
    sampling_rate: int,
    network: nn.Module,
    *,
    frontend: LogMelFrontEnd | None = None,
    device: str | torch.device = "cpu",
    keep_spectrograms: bool = False,
    chunk_size: int | None = DEFAULT_CHUNK,
    memory_budget: int | None = None,
    precision: str = "fp32",
    name: str = "",
) -> FileFeatures:
    """Bottleneck and reconstruction-error features of every window, from one forward pass.

    BatchNorm layers normalise with the statistics of all windows of the recording, as in
    DisVoice; long recordings are processed in chunks with exactly the same statistics
    (see :mod:`speechae.engine`), so memory stays bounded.

    Args:
        signal: samples ``(samples,)`` or ``(samples, channels)`` at ``sampling_rate``.
        sampling_rate: in Hz.
        network: an autoencoder from :mod:`speechae.models` on ``device``.
        frontend: the log-Mel front-end (default settings if omitted).
        device: where the front-end and network run.
        keep_spectrograms: also return the scaled input and reconstructed spectrograms.
        chunk_size: windows per forward step.
        memory_budget: bytes of spectrograms and activations kept in memory at once (default:
            :func:`~speechae.engine.memory_budget_for` the device).
        precision: ``"fp32"`` (exact) or ``"bf16"`` (fast, approximate).
        name: the recording's file, for warnings.

    Raises:
        AudioError: the signal is too short, silent or not finite (see :func:`condition_signal`).
    """
    frontend = (frontend or LogMelFrontEnd()).to(device)
    conditioned = condition_signal(signal, sampling_rate, config=frontend.config, name=name)
    return conditioned_features(
        conditioned,
        len(signal) / sampling_rate,
        network,
        frontend=frontend,
        device=device,
        keep_spectrograms=keep_spectrograms,
        chunk_size=chunk_size,
        memory_budget=memory_budget,
        precision=precision,
    )


def conditioned_features(
    conditioned: np.ndarray | ConditionedSignal,
    duration: float,
    network: nn.Module,
    *,
    frontend: LogMelFrontEnd,
    device: str | torch.device = "cpu",
    keep_spectrograms: bool = False,
    chunk_size: int | None = DEFAULT_CHUNK,
    memory_budget: int | None = None,
    precision: str = "fp32",
    spill: Spill | None = None,
) -> FileFeatures:
    """:func:`compute_features` of a signal already through :func:`condition_signal`.

    Callers that read a long recording can drop its samples before the network runs;
    ``duration`` is that of the original signal and ``frontend`` must be on ``device``.
    ``spill`` lets the network keep activations in temporary files (see
    :func:`~speechae.engine.run_autoencoder`).
    """
    prepared = transform_conditioned(
        conditioned, duration, frontend, device=device, memory_budget=memory_budget, spill=spill
    )
    n_windows = len(prepared.inputs)
    try:
        with torch.inference_mode():
            if n_windows:
                output = run_autoencoder(
                    network,
                    prepared.inputs,
                    torch.zeros(n_windows, dtype=torch.long, device=device),
                    chunk_size=chunk_size,
                    memory_budget=memory_budget,
                    keep_reconstruction=keep_spectrograms,
                    precision=precision,
                    spill=spill,
                )
            else:
                empty = torch.zeros(0, 1, frontend.config.n_mels, frontend.config.n_frames)
                output = NetworkOutput(
                    torch.zeros(0, network.bottleneck), torch.zeros(0, frontend.config.n_mels), empty
                )
        return features_from_output(prepared, output, keep_spectrograms=keep_spectrograms)
    finally:
        prepared.close()
