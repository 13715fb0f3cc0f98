"""The :class:`Extractor`: recordings in, feature tables indexed by ``(file, start, end)`` out.

Every entry point (``process_signal``, ``process_file``, ``process_files``, ``process_folder``,
``file_features``) goes through the extractor's :class:`~speechae.pipeline.Pipeline`; several
files go through the corpus runner (:func:`speechae.corpus.run_items`), which uses the same
pipeline. This module only shapes the results into tables.

Example:
    >>> extractor = Extractor("cae-256", level="dynamic")  # doctest: +SKIP
    >>> table = extractor.process_file("recording.wav")  # doctest: +SKIP
    >>> table.index.names  # doctest: +SKIP
    FrozenList(['file', 'start', 'end'])
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from concurrent.futures import Executor

import numpy as np
import pandas as pd
import torch

from speechae.audio import AUDIO_EXTENSIONS, find_audio_files
from speechae.corpus import run_items
from speechae.engine import DEFAULT_CHUNK
from speechae.errors import (
    DroppedWindowsWarning,
    NoAudioFilesError,
    ParameterError,
    SingleWindowWarning,
    warn,
)
from speechae.features import FileFeatures
from speechae.frontend import LogMelFrontEnd
from speechae.inputs import Item, printable
from speechae.pipeline import (
    DEFAULT_DEVICE,
    DEFAULT_MODEL,
    DEFAULT_PRECISION,
    DEFAULT_RESAMPLING,
    LEVELS,
    Pipeline,
)
from speechae.weights import LoadedModel

__all__ = ["LEVELS", "Extractor", "static_of", "warn_dropped"]


def _seconds(values: Iterable[float] | np.ndarray) -> pd.TimedeltaIndex:
    return pd.to_timedelta(np.asarray(values, dtype=np.float64), unit="s")


def warn_dropped(features: FileFeatures, name: str) -> None:
    """Warn of dropped windows, with their times in the recording."""
    if len(features.dropped):
        total = len(features.starts) + len(features.dropped)
        times = ", ".join(f"{t:g}" for t in features.dropped)
        warn(
            DroppedWindowsWarning(
                f"{name or 'the signal'}: {len(features.dropped)} of {total} windows dropped because "
                f"their Mel spectrogram has values <= 0 (digital silence); they start at {times} s"
            )
        )


def static_of(features: FileFeatures, name: str) -> np.ndarray:
    """Static features of ``features``, warning once when one window makes them partly NaN."""
    if len(features.starts) == 1:
        warn(
            SingleWindowWarning(
                f"{name or 'the signal'}: only one 500 ms window, so skewness and kurtosis are NaN"
            )
        )
    return features.static


class Extractor:
    """Extract DisVoice-exact autoencoder features from signals and files.

    Args:
        model: a registered model name (``"cae-256"``, ``"rae-256"``) or the path of a ``.pt`` or
            ``.safetensors`` file.
        level: ``"static"`` (one row of 1536 functionals per file) or ``"dynamic"`` (one row of
            384 features per 500 ms window).
        device: ``"cpu"`` (default) or ``"cuda"``.
        precision: ``"fp32"`` (default): DisVoice's numbers; ``"bf16"``: faster, approximate
            (measured deviations in ``benchmarks/RESULTS.md``).
        memory_budget: bytes a recording may keep in memory at once (its conditioned signal,
            spectrograms and the network's kept activations; default: 512 MiB on a CPU, an
            eighth of a GPU's memory); the rest goes to temporary files, with the same numbers.
        resampling: ``"exact"`` (default): DisVoice's whole-signal FFT up to 2^25 samples;
            ``"segmented"``: bounded memory at any length, not DisVoice's bits (see
            :class:`~speechae.pipeline.Pipeline`).
        lowpass: a cut-off in Hz to low-pass every recording before extraction (a common
            channel for recordings of different bandwidths); None (default): unfiltered.

    Example:
        >>> import numpy as np
        >>> extractor = Extractor("cae-256")  # doctest: +SKIP
        >>> extractor.process_signal(np.random.randn(32000), 16000).shape  # doctest: +SKIP
        (1, 1536)
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_MODEL,
        *,
        level: str = LEVELS[0],
        device: str | torch.device = DEFAULT_DEVICE,
        precision: str = DEFAULT_PRECISION,
        memory_budget: int | None = None,
        resampling: str = DEFAULT_RESAMPLING,
        lowpass: float | None = None,
    ) -> None:
        if level not in LEVELS:
            raise ParameterError(f"level must be one of {LEVELS}, not {level!r}")
        self.level = level
        self.pipeline = Pipeline(
            model,
            device=device,
            precision=precision,
            memory_budget=memory_budget,
            resampling=resampling,
            lowpass=lowpass,
        )

    def __repr__(self) -> str:
        return f"Extractor(model={self.model.name!r}, level={self.level!r}, device={self.device.type!r})"

    @property
    def model(self) -> LoadedModel:
        """The loaded model (network, name, metadata)."""
        return self.pipeline.model

    @property
    def frontend(self) -> LogMelFrontEnd:
        """The log-Mel front-end, on :attr:`device`."""
        return self.pipeline.frontend

    @property
    def device(self) -> torch.device:
        """Where the front-end and the network run."""
        return self.pipeline.device

    @property
    def precision(self) -> str:
        """``"fp32"`` or ``"bf16"``."""
        return self.pipeline.precision

    @property
    def column_names(self) -> list[str]:
        """Names of the feature columns at this extractor's level."""
        return self.pipeline.column_names(self.level)

    def settings(self) -> dict[str, object]:
        """Everything that determines the features besides the audio (part of cache keys)."""
        return self.pipeline.settings()

    def process_signal(
        self,
        signal: np.ndarray,
        sampling_rate: int,
        *,
        file: str = "",
        start: float | None = None,
        end: float | None = None,
    ) -> pd.DataFrame:
        """Features of a signal ``(samples,)`` or ``(samples, channels)``.

        ``start`` and ``end`` (seconds) select a segment; times in the index are relative to the
        beginning of ``signal``.

        Raises:
            ParameterError: a bad sampling rate, shape or segment.
            AudioError: the signal is too short, silent or not finite, or every window was dropped.
        """
        recording = self.pipeline.signal(signal, sampling_rate, start=start, end=end, name=file)
        features = self.pipeline.features(recording)
        warn_dropped(features, recording.name)
        return self._table([(file, features)], [recording.quality])

    def process_file(
        self, file: str | os.PathLike[str], *, start: float | None = None, end: float | None = None
    ) -> pd.DataFrame:
        """Features of one audio file (any format libsndfile reads), optionally a segment."""
        recording = self.pipeline.read(file, start=start, end=end)
        features = self.pipeline.features(recording)
        warn_dropped(features, recording.name)
        return self._table([(os.fspath(file), features)], [recording.quality])

    def process_files(
        self,
        files: Iterable[str | os.PathLike[str]],
        *,
        jobs: int = 1,
        executor: Executor | None = None,
        num_workers: int | None = None,
    ) -> pd.DataFrame:
        """Features of several files, rows in the order given.

        Uses the corpus runner: with ``jobs > 1`` (or an ``executor``) files are decoded
        and transformed in parallel and the network runs on batches mixing several files, each
        keeping its own BatchNorm statistics. The first failure is raised; use
        :func:`speechae.corpus.extract_corpus` to go on past bad files. A single path is taken
        as one file. ``num_workers`` is the former name of ``jobs``.
        """
        if num_workers is not None:
            warnings.warn(
                "process_files(num_workers=...) is now process_files(jobs=...)",
                DeprecationWarning,
                stacklevel=2,
            )
            jobs = num_workers
        if isinstance(files, (str, os.PathLike)):  # one file, not its characters
            files = [files]
        items = [Item(key=os.fspath(file), path=os.fspath(file)) for file in files]
        if not items:
            raise NoAudioFilesError("no files were given")
        results = {r.position: r for r in run_items(self.pipeline, items, jobs=jobs, executor=executor)}
        ordered = [results[position] for position in range(len(items))]
        for result in ordered:
            if not result.ok:
                raise result.error
        for result in ordered:
            warn_dropped(result.features, result.item.key)
        return self._table(
            [(result.item.key, result.features) for result in ordered], [r.quality for r in ordered]
        )

    def process_folder(
        self,
        root: str | os.PathLike[str],
        *,
        recursive: bool = False,
        extensions: tuple[str, ...] = AUDIO_EXTENSIONS,
    ) -> pd.DataFrame:
        """Features of every audio file in ``root``, sorted by path."""
        return self.process_files(find_audio_files(root, recursive=recursive, extensions=extensions))

    def file_features(
        self,
        file: str | os.PathLike[str],
        *,
        start: float | None = None,
        end: float | None = None,
        keep_spectrograms: bool = False,
        chunk_size: int | None = DEFAULT_CHUNK,
        memory_budget: int | None = None,
    ) -> FileFeatures:
        """Per-window features of a file as arrays, before any table is made.

        Window times are seconds in the recording, also for a segment. With ``keep_spectrograms``
        the input and decoded spectrograms come along (for plots). The samples as read are
        released before the network runs; what does not fit ``memory_budget`` (default: the
        device's) goes to temporary files.

        Example:
            >>> features = Extractor("cae-256").file_features("talk.wav", start=60, end=90)  # doctest: +SKIP
        """
        recording = self.pipeline.read(file, start=start, end=end)
        features = self.pipeline.features(
            recording, keep_spectrograms=keep_spectrograms, chunk_size=chunk_size, memory_budget=memory_budget
        )
        warn_dropped(features, recording.name)
        return features

    def _table(
        self, results: list[tuple[str, FileFeatures]], quality: list[dict[str, float]]
    ) -> pd.DataFrame:
        """The table of ``results``, whose ``attrs`` name the model and each file's drops and quality."""
        if self.level == "static":
            values = np.stack([static_of(features, file) for file, features in results])
            files = [file for file, _ in results]
            starts = [features.span[0] for _, features in results]
            ends = [features.span[1] for _, features in results]
        else:
            values = np.concatenate([features.dynamic for _, features in results])
            files = [file for file, features in results for _ in features.starts]
            starts = np.concatenate([features.starts for _, features in results])
            ends = starts + self.frontend.config.window_seconds
        index = pd.MultiIndex.from_arrays(
            [pd.Index(map(printable, files), dtype="string"), _seconds(starts), _seconds(ends)],
            names=["file", "start", "end"],
        )
        table = pd.DataFrame(values, index=index, columns=self.column_names)
        table.attrs.update(
            model=self.model.name,
            weights_sha256=self.model.weights_sha256,
            level=self.level,
            dropped_windows={printable(file): features.dropped.tolist() for file, features in results},
            quality={
                printable(file): {**measures, "dropped_windows": len(features.dropped)}
                for (file, features), measures in zip(results, quality, strict=True)
            },
        )
        return table
