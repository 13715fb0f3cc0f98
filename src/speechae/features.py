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
import scipy.stats
import torch
from torch import nn

from speechae.frontend import (
    LogMelFrontEnd,
    condition_signal,
    frame_signal,
    window_starts,
)

__all__ = [
    "STATISTICS",
    "FileFeatures",
    "compute_features",
    "dynamic_feature_names",
    "static_feature_names",
    "static_features",
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
        duration: length of the recording in seconds.
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


def _functionals(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    return np.concatenate(
        (
            values.mean(axis=0),
            values.std(axis=0),
            scipy.stats.skew(values, axis=0),
            scipy.stats.kurtosis(values, axis=0),
        )
    )


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


def compute_features(
    signal: np.ndarray,
    sampling_rate: int,
    network: nn.Module,
    *,
    frontend: LogMelFrontEnd | None = None,
    device: str | torch.device = "cpu",
    keep_spectrograms: bool = False,
) -> FileFeatures:
    """Bottleneck and reconstruction-error features of every window, from one forward pass.

    All windows of the recording go through the network as one batch, so BatchNorm layers see
    the statistics of the whole file, as in DisVoice.

    Args:
        signal: samples ``(samples,)`` or ``(samples, channels)`` at ``sampling_rate``.
        sampling_rate: in Hz.
        network: an autoencoder from :mod:`speechae.models` on ``device``.
        frontend: the log-Mel front-end (default settings if omitted).
        device: where the front-end and network run.
        keep_spectrograms: also return the scaled input and reconstructed spectrograms.

    Raises:
        AudioError: the signal is too short, silent or not finite (see :func:`condition_signal`).
    """
    frontend = (frontend or LogMelFrontEnd()).to(device)
    config = frontend.config
    conditioned = condition_signal(signal, sampling_rate, config=config)
    windows = frame_signal(conditioned, config=config)
    starts = window_starts(len(windows), config=config)
    with torch.inference_mode():
        inputs, valid = [], []
        for first in range(0, len(windows), FRONTEND_CHUNK):
            chunk = torch.from_numpy(np.array(windows[first : first + FRONTEND_CHUNK]))
            scaled, usable = frontend(chunk.to(device))
            inputs.append(scaled[usable])
            valid.append(usable.cpu())
        kept = torch.cat(valid).numpy()
        batch = torch.cat(inputs)
        if len(batch):
            reconstruction, code = network(batch)
        else:
            reconstruction, code = batch, batch.new_zeros(0, network.bottleneck)
        error = (batch - reconstruction).square().mean(dim=-1)[:, 0]
    return FileFeatures(
        bottleneck=code.cpu().numpy(),
        error=error.cpu().numpy(),
        starts=starts[kept],
        dropped=starts[~kept],
        duration=len(signal) / sampling_rate,
        spectrogram=batch[:, 0].cpu().numpy() if keep_spectrograms else None,
        reconstruction=reconstruction[:, 0].cpu().numpy() if keep_spectrograms else None,
    )
