"""Per-window and per-file features of one recording: what they are, their names, their statistics.

The network's outputs become :class:`FileFeatures` in :mod:`speechae.pipeline`; the functionals
of the static level and the column names in DisVoice's order are decided here. Arrays only.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> static_features(rng.standard_normal((5, 8)), rng.standard_normal((5, 128))).shape
    (544,)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "STATISTICS",
    "FileFeatures",
    "dynamic_feature_names",
    "static_feature_names",
    "static_features",
]

STATISTICS = ("mean", "std", "skewness", "kurtosis")


@dataclass
class FileFeatures:
    """Per-window features of one recording and what was left out.

    Attributes:
        bottleneck: float32 ``(windows, bottleneck)``.
        error: float32 ``(windows, n_mels)``, squared reconstruction error averaged over time.
        starts: ``(windows,)`` start of each kept window in seconds, on the recording's time
            axis (a segment's windows start where the segment starts in its recording).
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

    @property
    def span(self) -> tuple[float, float]:
        """``(start, end)`` in seconds of what was read: the static level's times.

        Example:
            >>> empty = np.zeros((0, 1), np.float32)
            >>> FileFeatures(empty, empty, np.array([]), np.array([1.5, 1.75]), 0.75).span
            (1.5, 2.25)
        """
        return self.offset, self.offset + self.duration


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
