"""Figures of one recording: its log-Mel spectrogram, the autoencoder's reconstruction and the errors.

Every function either creates a :class:`matplotlib.figure.Figure` or draws into Axes it is given;
pyplot's global state is never touched, so figures can be made in scripts, worker processes and
notebooks alike (a ``Figure`` displays itself in Jupyter). The spectrograms need features computed
with ``keep_spectrograms=True``.

Example:
    >>> import numpy as np
    >>> from speechae.pipeline import compute_features
    >>> from speechae.models import ConvAutoencoder
    >>> signal = np.random.default_rng(0).standard_normal(32000)
    >>> features = compute_features(signal, 16000, ConvAutoencoder(8), keep_spectrograms=True)
    >>> figure = recording_figure(features, title="white noise")
    >>> [axes.get_label() for axes in figure.axes]
    ['input', 'reconstruction', 'window error', 'band error', 'colour bar']
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.collections import QuadMesh
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from speechae.atomic import atomic_path
from speechae.errors import ParameterError
from speechae.features import FileFeatures
from speechae.frontend import DEFAULT_FRONTEND, FrontEndConfig, mel_band_edges

__all__ = [
    "FIGURE_FORMATS",
    "check_figure_path",
    "dropped_spans",
    "error_profile_axes",
    "error_profile_figure",
    "mark_dropped_windows",
    "recording_figure",
    "save_figure",
    "set_mel_frequency_axis",
    "spectrogram_axes",
    "window_error_axes",
]

FIGURE_FORMATS = ("png", "svg", "pdf")
FREQUENCY_TICKS_HZ = (0, 250, 500, 1000, 2000, 4000, 8000)
SPECTROGRAM_COLOURS = "magma"
NO_DATA_COLOUR = "#d0d0d0"
DROPPED_COLOUR = "#00a5c8"
ERROR_COLOUR = "#c0392b"
ERROR_LABEL = "reconstruction error\n(MSE, scaled log-Mel)"
KINDS = {"input": "Input log-Mel spectrogram", "reconstruction": "Reconstruction by the autoencoder"}


def _log_mel(scaled: np.ndarray, config: FrontEndConfig) -> np.ndarray:
    """Undo the min-max scaling: natural log of the Mel power of the peak-normalised signal."""
    return scaled * (config.max_scaler - config.min_scaler) + config.min_scaler


def _needs_spectrograms(features: FileFeatures, config: FrontEndConfig) -> None:
    if features.spectrogram is None or features.reconstruction is None:
        raise ParameterError(
            "the features hold no spectrograms; compute them with "
            "compute_features(..., keep_spectrograms=True) to plot them"
        )
    if len(features.starts) == 0:
        raise ParameterError(
            f"the recording has no kept window (all {len(features.dropped)} were dropped), "
            "so there is nothing to plot"
        )
    expected = (len(features.starts), config.n_mels, config.n_frames)
    if features.spectrogram.shape != expected or features.reconstruction.shape != expected:
        raise ParameterError(
            f"the spectrograms have shapes {features.spectrogram.shape} and "
            f"{features.reconstruction.shape}, but {len(features.starts)} kept windows and these "
            f"front-end settings need {expected}; pass the config the features were computed with"
        )


def set_mel_frequency_axis(axes: Axes, *, axis: str = "y", config: FrontEndConfig = DEFAULT_FRONTEND) -> None:
    """Give ``axes`` a frequency axis in Hz on which the Mel bands are equally spaced.

    Data on that axis are frequencies in Hz; ticks are labelled in Hz at Mel-spaced positions.

    Args:
        axes: the Axes to change.
        axis: ``"x"`` or ``"y"``.
        config: front-end settings whose Mel bands define the scale.

    Example:
        >>> from matplotlib.figure import Figure
        >>> axes = Figure().add_subplot()
        >>> set_mel_frequency_axis(axes, axis="x")
        >>> axes.get_xlabel()
        'Frequency (Hz)'
    """
    if axis not in ("x", "y"):
        raise ParameterError(f"axis must be 'x' or 'y', not {axis!r}")
    edges = mel_band_edges(config=config)
    positions = np.arange(len(edges), dtype=np.float64)

    def to_bands(hz: np.ndarray) -> np.ndarray:
        return np.interp(hz, edges, positions)

    def to_hz(bands: np.ndarray) -> np.ndarray:
        return np.interp(bands, positions, edges)

    target = axes.xaxis if axis == "x" else axes.yaxis
    (axes.set_xscale if axis == "x" else axes.set_yscale)("function", functions=(to_bands, to_hz))
    (axes.set_xlim if axis == "x" else axes.set_ylim)(config.fmin, config.fmax)
    target.set_major_locator(
        ticker.FixedLocator([f for f in FREQUENCY_TICKS_HZ if config.fmin <= f <= config.fmax])
    )
    target.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    target.set_minor_locator(ticker.NullLocator())
    target.set_label_text("Frequency (Hz)")


def dropped_spans(
    dropped: np.ndarray | list[float], *, config: FrontEndConfig = DEFAULT_FRONTEND
) -> list[tuple[float, float]]:
    """Time spans in seconds covered by dropped windows, overlapping windows merged.

    Example:
        >>> dropped_spans([1.0, 1.25, 3.0])
        [(1.0, 1.75), (3.0, 3.5)]
    """
    length = config.window_seconds
    spans: list[tuple[float, float]] = []
    for start in sorted(float(value) for value in dropped):
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], start + length)
        else:
            spans.append((start, start + length))
    return spans


def mark_dropped_windows(
    axes: Axes, dropped: np.ndarray, *, config: FrontEndConfig = DEFAULT_FRONTEND
) -> list[Rectangle]:
    """Hatch the time spans of dropped windows on a time axis and label them for the legend.

    Args:
        axes: Axes whose x axis is time in seconds.
        dropped: start in seconds of each dropped window (``FileFeatures.dropped``).
        config: front-end settings (window length).

    Returns:
        one Rectangle per span of overlapping dropped windows; only the first carries the label.

    Example:
        >>> from matplotlib.figure import Figure
        >>> spans = mark_dropped_windows(Figure().add_subplot(), np.array([1.0, 1.25]))
        >>> [(span.get_x(), span.get_width()) for span in spans]
        [(1.0, 0.75)]
    """
    count = len(dropped)
    label = f"dropped: {count} window{'s' if count != 1 else ''} (Mel value ≤ 0, digital silence)"
    return [
        axes.axvspan(
            begin,
            end,
            facecolor=(1, 1, 1, 0.35),
            edgecolor=DROPPED_COLOUR,
            hatch="///",
            linewidth=1.5,
            label=label if number == 0 else "_nolegend_",
            zorder=3,
        )
        for number, (begin, end) in enumerate(dropped_spans(dropped, config=config))
    ]


def _tiles(values: np.ndarray, starts: np.ndarray, config: FrontEndConfig) -> tuple[np.ndarray, np.ndarray]:
    """Lay the frames of overlapping windows out on one time axis.

    Each instant is shown by the kept window whose centre is nearest to it: two overlapping
    neighbours meet halfway between their centres, a window without a kept neighbour reaches its
    own edge, and time covered by no kept window becomes a column of NaN. Positions are counted
    in half samples, so a frame on a boundary always goes to the later window.

    Args:
        values: ``(windows, n_mels, n_frames)``.
        starts: ``(windows,)`` window starts in seconds, increasing.
        config: front-end settings (sampling rate, window and hop lengths).

    Returns:
        ``(edges, image)``: column edges in seconds ``(columns + 1,)`` and ``(n_mels, columns)``.
    """
    rate, length = config.sampling_rate, config.window_length
    half_hop = config.hop_length / rate / 2
    firsts = np.rint(np.asarray(starts) * rate).astype(np.int64)
    offsets = np.arange(values.shape[-1], dtype=np.int64) * config.hop_length
    edges: list[np.ndarray] = []
    columns: list[np.ndarray] = []
    low = 2 * firsts[0]
    for number, (first, window) in enumerate(zip(firsts, values, strict=True)):
        following = firsts[number + 1] if number + 1 < len(firsts) else None
        touching = following is not None and following <= first + length
        high = first + following + length if touching else 2 * (first + length) + 1
        positions = 2 * (first + offsets)
        shown = (positions >= low) & (positions < high)
        times = (first + offsets[shown]) / rate
        edges.append(np.concatenate(([times[0] - half_hop], (times[1:] + times[:-1]) / 2)))
        columns.append(window[:, shown])
        if following is not None and not touching:
            edges.append(np.array([times[-1] + half_hop]))
            columns.append(np.full((values.shape[1], 1), np.nan, dtype=values.dtype))
            high = 2 * following
        low = high
    edges.append(np.array([times[-1] + half_hop]))
    return np.concatenate(edges), np.concatenate(columns, axis=1)


def spectrogram_axes(
    axes: Axes,
    features: FileFeatures,
    *,
    kind: str = "input",
    config: FrontEndConfig = DEFAULT_FRONTEND,
    norm: Normalize | None = None,
    cmap: str = SPECTROGRAM_COLOURS,
) -> QuadMesh:
    """Draw the input or reconstructed log-Mel spectrogram of a recording over its true times.

    The 500 ms windows overlap by half, so every kept window contributes the part of the time
    axis nearest its centre: its middle 250 ms, or up to its own edge where the neighbour was
    dropped. Unlike DisVoice's every-other-window tiling, this shows the reconstruction of every
    window that enters the features, keeps the time axis true (gaps stay gaps), and hides the
    first and last frames of a window, whose zero-padded STFT frames darken the input at every
    tile seam. Time covered by no kept window stays grey; dropped windows are hatched.

    Args:
        axes: where to draw.
        features: computed with ``keep_spectrograms=True``.
        kind: ``"input"`` or ``"reconstruction"``.
        config: the front-end settings the features were computed with.
        norm: colour scale of the log-Mel values (default: the range of the input and output).
        cmap: a Matplotlib colour map name.

    Returns:
        the mesh, for a colour bar (``figure.colorbar(mesh, ax=axes)``).

    Raises:
        ParameterError: ``kind`` is unknown or the features hold no spectrograms.

    Example:
        >>> from matplotlib.figure import Figure
        >>> from speechae.pipeline import compute_features
        >>> from speechae.models import ConvAutoencoder
        >>> signal = np.random.default_rng(0).standard_normal(32000)
        >>> features = compute_features(signal, 16000, ConvAutoencoder(8), keep_spectrograms=True)
        >>> figure = Figure()
        >>> axes = figure.add_subplot()
        >>> mesh = spectrogram_axes(axes, features, kind="reconstruction")
        >>> _ = figure.colorbar(mesh, ax=axes, label="ln Mel power")
    """
    if kind not in KINDS:
        raise ParameterError(f"kind must be one of {tuple(KINDS)}, not {kind!r}")
    _needs_spectrograms(features, config)
    scaled = features.spectrogram if kind == "input" else features.reconstruction
    times, image = _tiles(_log_mel(scaled, config), features.starts, config)
    if norm is None:
        norm = _shared_norm(features, config)
    frequencies = np.interp(
        np.arange(config.n_mels + 1) + 0.5, np.arange(config.n_mels + 2), mel_band_edges(config=config)
    )
    mesh = axes.pcolormesh(
        times, frequencies, np.ma.masked_invalid(image), norm=norm, cmap=cmap, rasterized=True
    )
    axes.set_facecolor(NO_DATA_COLOUR)
    set_mel_frequency_axis(axes, axis="y", config=config)
    axes.set_xlim(features.offset, features.offset + features.duration)
    axes.set_xlabel("Time (s)")
    axes.set_title(KINDS[kind], loc="left", fontsize="medium")
    covered = np.diff(times)[~np.isnan(image).all(axis=0)].sum()
    if features.duration - covered > 0.01 * features.duration:
        axes.set_title("grey: not in any kept window", loc="right", fontsize="small", color="dimgray")
    if len(features.dropped):
        mark_dropped_windows(axes, features.dropped, config=config)
        axes.legend(loc="upper right", fontsize="small", framealpha=0.9)
    return mesh


def _shared_norm(features: FileFeatures, config: FrontEndConfig) -> Normalize:
    values = _log_mel(np.stack((features.spectrogram, features.reconstruction)), config)
    return Normalize(float(values.min()), float(values.max()))


def window_error_axes(
    axes: Axes, features: FileFeatures, *, config: FrontEndConfig = DEFAULT_FRONTEND
) -> Line2D:
    """Draw the mean reconstruction error of each window at its centre time.

    The line breaks where windows were dropped; those spans are hatched.

    Returns:
        the line of per-window errors.

    Example:
        >>> from matplotlib.figure import Figure
        >>> from speechae.pipeline import compute_features
        >>> from speechae.models import ConvAutoencoder
        >>> signal = np.random.default_rng(0).standard_normal(32000)
        >>> features = compute_features(signal, 16000, ConvAutoencoder(8))
        >>> line = window_error_axes(Figure().add_subplot(), features)
        >>> line.get_xdata().tolist()
        [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
    """
    half = config.window_seconds / 2
    starts = np.concatenate((features.starts, features.dropped))
    errors = np.concatenate((features.error.mean(axis=1), np.full(len(features.dropped), np.nan)))
    order = np.argsort(starts, kind="stable")
    (line,) = axes.plot(
        starts[order] + half, errors[order], color=ERROR_COLOUR, marker="o", markersize=3, linewidth=1
    )
    axes.set_xlim(features.offset, features.offset + features.duration)
    axes.set_ylim(bottom=0)
    axes.set_xlabel("Time (s)")
    axes.set_ylabel(ERROR_LABEL)
    axes.set_title("Mean reconstruction error of each 500 ms window", loc="left", fontsize="medium")
    axes.grid(alpha=0.3)
    if len(features.dropped):
        mark_dropped_windows(axes, features.dropped, config=config)
    return line


def error_profile_axes(
    axes: Axes, features: FileFeatures, *, config: FrontEndConfig = DEFAULT_FRONTEND
) -> Line2D:
    """Draw the mean ± std over windows of the reconstruction error of each Mel band.

    Each band is plotted at its centre frequency on a Mel-spaced axis in Hz. The values are the
    features ``error_0 … error_127``: squared errors of the min-max scaled log-Mel spectrogram.

    Returns:
        the line of mean errors.

    Example:
        >>> from matplotlib.figure import Figure
        >>> from speechae.pipeline import compute_features
        >>> from speechae.models import ConvAutoencoder
        >>> signal = np.random.default_rng(0).standard_normal(32000)
        >>> features = compute_features(signal, 16000, ConvAutoencoder(8))
        >>> line = error_profile_axes(Figure().add_subplot(), features)
        >>> bool(np.allclose(line.get_ydata(), features.error.mean(axis=0)))
        True
    """
    if len(features.error) == 0:
        raise ParameterError("the recording has no kept window, so it has no reconstruction error")
    centres = mel_band_edges(config=config)[1:-1]
    mean = features.error.mean(axis=0)
    spread = features.error.std(axis=0)
    axes.fill_between(
        centres,
        np.maximum(mean - spread, 0),
        mean + spread,
        color=ERROR_COLOUR,
        alpha=0.25,
        linewidth=0,
        label="± 1 standard deviation over windows",
    )
    (line,) = axes.plot(centres, mean, color=ERROR_COLOUR, linewidth=1.5, label="mean over windows")
    set_mel_frequency_axis(axes, axis="x", config=config)
    axes.set_ylim(bottom=0)
    axes.set_ylabel(ERROR_LABEL)
    axes.set_title("Reconstruction error of each Mel band", loc="left", fontsize="medium")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper right", fontsize="small")
    return line


def _summary(features: FileFeatures) -> str:
    kept, dropped = len(features.starts), len(features.dropped)
    error = f"mean reconstruction error {features.error.mean():.4g}" if kept else "no kept window"
    windows = "window" if kept == 1 else "windows"
    span = f"{features.duration:.2f} s"
    if features.offset:
        span = f"{features.offset:.2f}–{features.offset + features.duration:.2f} s"
    return f"{span} · {kept} {windows} kept, {dropped} dropped · {error}"


def error_profile_figure(
    features: FileFeatures, *, title: str = "", config: FrontEndConfig = DEFAULT_FRONTEND
) -> Figure:
    """A figure of the reconstruction error per Mel band (no spectrograms needed).

    Example:
        >>> from speechae.pipeline import compute_features
        >>> from speechae.models import ConvAutoencoder
        >>> signal = np.random.default_rng(0).standard_normal(32000)
        >>> figure = error_profile_figure(compute_features(signal, 16000, ConvAutoencoder(8)))
        >>> figure.axes[0].get_xlabel()
        'Frequency (Hz)'
    """
    figure = Figure(figsize=(9, 4), layout="constrained")
    axes = figure.add_subplot(label="band error")
    error_profile_axes(axes, features, config=config)
    figure.suptitle(f"{title}\n{_summary(features)}" if title else _summary(features), fontsize="medium")
    return figure


def recording_figure(
    features: FileFeatures, *, title: str = "", config: FrontEndConfig = DEFAULT_FRONTEND
) -> Figure:
    """Input and reconstructed log-Mel spectrograms, error over time and error per Mel band.

    From top to bottom: the input log-Mel spectrogram and the autoencoder's reconstruction on one
    colour scale (natural log of the Mel power of the peak-normalised signal), the mean error of
    each window over time, and the error of each Mel band (mean ± std over windows). Time is in
    seconds from the start of the recording and frequency in Hz on a Mel-spaced axis. Dropped
    windows are hatched and named in the legend; the grey background is time no kept window
    covers. The spectrograms show every kept window, each over the part of the time axis nearest
    its centre (see :func:`spectrogram_axes`); the axes carry the labels ``input``,
    ``reconstruction``, ``window error``, ``band error`` and ``colour bar``.

    Args:
        features: computed with ``keep_spectrograms=True``.
        title: shown above the panels, e.g. the file name.
        config: the front-end settings the features were computed with (the extractor's
            ``frontend.config``), for the scaling constants, window and hop lengths, Mel bands.

    Raises:
        ParameterError: the features hold no spectrograms or no kept window.

    Example:
        >>> from speechae.pipeline import compute_features
        >>> from speechae.models import ConvAutoencoder
        >>> signal = np.random.default_rng(0).standard_normal(32000)
        >>> features = compute_features(signal, 16000, ConvAutoencoder(8), keep_spectrograms=True)
        >>> figure = recording_figure(features, title="noise.wav")
        >>> save_figure(figure, "noise.png")  # doctest: +SKIP
    """
    _needs_spectrograms(features, config)
    figure = Figure(figsize=(11, 10.5), layout="constrained")
    grid = figure.add_gridspec(4, 2, width_ratios=(1, 0.018), height_ratios=(3, 3, 1.5, 2.2))
    spectrogram = figure.add_subplot(grid[0, 0], label="input")
    reconstruction = figure.add_subplot(grid[1, 0], label="reconstruction", sharex=spectrogram)
    over_time = figure.add_subplot(grid[2, 0], label="window error", sharex=spectrogram)
    per_band = figure.add_subplot(grid[3, 0], label="band error")
    colour_bar = figure.add_subplot(grid[0:2, 1], label="colour bar")
    norm = _shared_norm(features, config)
    mesh = spectrogram_axes(spectrogram, features, kind="input", config=config, norm=norm)
    spectrogram_axes(reconstruction, features, kind="reconstruction", config=config, norm=norm)
    window_error_axes(over_time, features, config=config)
    error_profile_axes(per_band, features, config=config)
    figure.colorbar(mesh, cax=colour_bar, label="log-Mel power (natural log)")
    figure.suptitle(f"{title}\n{_summary(features)}" if title else _summary(features), fontsize="large")
    return figure


def check_figure_path(path: str | os.PathLike[str]) -> str:
    """The figure format named by ``path``'s extension: ``png``, ``svg`` or ``pdf``.

    Example:
        >>> check_figure_path("figures/talk.PDF")
        'pdf'

    Raises:
        ParameterError: the extension is not one of those three.
    """
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FIGURE_FORMATS:
        raise ParameterError(
            f"{path}: unknown figure format {suffix!r}; use one of "
            + ", ".join(f".{name}" for name in FIGURE_FORMATS)
        )
    return suffix


def save_figure(figure: Figure, path: str | os.PathLike[str], *, dpi: float | None = None) -> None:
    """Write a figure to ``path`` as PNG, SVG or PDF, chosen by the extension.

    The file is written under a temporary name and renamed when complete; the figure stays open
    and can be changed or saved again.

    Args:
        figure: any Matplotlib figure.
        path: ends in ``.png``, ``.svg`` or ``.pdf``; missing folders are created.
        dpi: resolution of PNG files and rasterised parts (default: the figure's, 100).

    Raises:
        ParameterError: the extension is not one of those three.

    Example:
        >>> save_figure(recording_figure(features), "recording.pdf")  # doctest: +SKIP
    """
    path = Path(path)
    suffix = check_figure_path(path)
    with atomic_path(path) as partial:
        figure.savefig(partial, format=suffix, dpi=dpi or "figure")
