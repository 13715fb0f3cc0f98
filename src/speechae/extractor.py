"""The :class:`Extractor`: recordings in, feature tables indexed by ``(file, start, end)`` out.

Every entry point (``process_signal``, ``process_file``, ``process_files``, ``process_folder``)
funnels into :meth:`Extractor.signal_features` (arrays) or :meth:`Extractor.recording_features`
(files, whose samples are released once conditioned), which both end in
:func:`speechae.features.conditioned_features`.

Example:
    >>> extractor = Extractor("cae-256", level="dynamic")  # doctest: +SKIP
    >>> table = extractor.process_file("recording.wav")  # doctest: +SKIP
    >>> table.index.names  # doctest: +SKIP
    FrozenList(['file', 'start', 'end'])
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch

from speechae.allocator import retain_freed_memory
from speechae.audio import (
    AUDIO_EXTENSIONS,
    SampleSpool,
    SpooledAudio,
    audio_frames,
    find_audio_files,
    read_audio,
    segment_frames,
    spool_audio,
)
from speechae.engine import DEFAULT_CHUNK, PRECISIONS
from speechae.errors import (
    AudioError,
    DroppedWindowsWarning,
    NoAudioFilesError,
    NoUsableWindowsError,
    ParameterError,
    SingleWindowWarning,
    TemporaryStorageError,
)
from speechae.features import (
    FileFeatures,
    conditioned_features,
    dynamic_feature_names,
    static_feature_names,
)
from speechae.frontend import (
    DEFAULT_FRONTEND,
    ConditionedSignal,
    FrontEndConfig,
    LogMelFrontEnd,
    check_sampling_rate,
    condition_signal,
    frontend_config,
    spools_conditioned,
)
from speechae.inputs import with_segment
from speechae.weights import LoadedModel, load_model

__all__ = ["LEVELS", "Extractor", "recording_samples"]

LEVELS = ("static", "dynamic")


def _seconds(values: Sequence[float] | np.ndarray) -> pd.TimedeltaIndex:
    return pd.to_timedelta(np.asarray(values, dtype=np.float64), unit="s")


def _warn_dropped(features: FileFeatures, name: str, offset: float = 0.0) -> None:
    """Warn of dropped windows, with their times in the recording (``offset``: the segment's start)."""
    if len(features.dropped):
        total = len(features.starts) + len(features.dropped)
        times = ", ".join(f"{t:g}" for t in offset + features.dropped)
        warnings.warn(
            DroppedWindowsWarning(
                f"{name or 'the signal'}: {len(features.dropped)} of {total} windows dropped because "
                f"their Mel spectrogram has values <= 0 (digital silence); they start at {times} s"
            ),
            stacklevel=4,
        )


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


def static_of(features: FileFeatures, name: str) -> np.ndarray:
    """Static features of ``features``, warning once when one window makes them partly NaN."""
    if len(features.starts) == 1:
        warnings.warn(
            SingleWindowWarning(
                f"{name or 'the signal'}: only one 500 ms window, so skewness and kurtosis are NaN"
            ),
            stacklevel=3,
        )
    return features.static


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``; an unknown device, or CUDA without a GPU, is a clear error."""
    try:
        device = torch.device(device)
    except RuntimeError as error:
        raise ParameterError(f"device {str(device)!r} is not one torch knows ({error})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device {str(device)!r} was requested but no CUDA GPU is available")
    return device


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

    Example:
        >>> import numpy as np
        >>> extractor = Extractor("cae-256")  # doctest: +SKIP
        >>> extractor.process_signal(np.random.randn(32000), 16000).shape  # doctest: +SKIP
        (1, 1536)
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "cae-256",
        *,
        level: str = "static",
        device: str | torch.device = "cpu",
        precision: str = "fp32",
    ) -> None:
        if level not in LEVELS:
            raise ParameterError(f"level must be one of {LEVELS}, not {level!r}")
        if precision not in PRECISIONS:
            raise ParameterError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        retain_freed_memory()
        self.precision = precision
        self._model_reference = os.fspath(model)
        self.level = level
        self.device = resolve_device(device)
        self.model: LoadedModel = load_model(model, device=self.device)
        self.frontend = LogMelFrontEnd(frontend_config(self.model.metadata)).to(self.device)

    def __repr__(self) -> str:
        return f"Extractor(model={self.model.name!r}, level={self.level!r}, device={self.device.type!r})"

    @property
    def column_names(self) -> list[str]:
        """Names of the feature columns at this extractor's level."""
        names = static_feature_names if self.level == "static" else dynamic_feature_names
        return names(self.model.bottleneck, self.frontend.config.n_mels)

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
            ParameterError: a bad sampling rate, shape or segment; AudioError (see
            :meth:`signal_features`).
        """
        samples = np.asarray(signal)
        check_sampling_rate(sampling_rate, name=file)
        first, last = segment_frames(start, end, sampling_rate, len(samples), name=file)
        label = with_segment(file, start, end) if file else file
        features = self._process(samples[first:last], sampling_rate, label, offset=first / sampling_rate)
        return self._table([(file, first / sampling_rate, features)])

    def process_file(
        self, file: str | os.PathLike[str], *, start: float | None = None, end: float | None = None
    ) -> pd.DataFrame:
        """Features of one audio file (any format libsndfile reads), optionally a segment."""
        return self._table([self._process_file(file, start, end)])

    def process_files(
        self,
        files: Iterable[str | os.PathLike[str]],
        *,
        num_workers: int = 1,
        executor: Executor | None = None,
    ) -> pd.DataFrame:
        """Features of several files, rows in the order given.

        Uses the corpus runner: with ``num_workers > 1`` (or an ``executor``) files are decoded
        and transformed in parallel and the network runs on batches mixing several files, each
        keeping its own BatchNorm statistics. The first failure is raised; use
        :func:`speechae.corpus.extract_corpus` to go on past bad files. A single path is taken
        as one file.
        """
        from speechae.corpus import run_items
        from speechae.inputs import Item

        if isinstance(files, (str, os.PathLike)):  # one file, not its characters
            files = [files]
        items = [Item(key=os.fspath(file), path=os.fspath(file)) for file in files]
        if not items:
            raise NoAudioFilesError("no files were given")
        results = {r.position: r for r in run_items(self, items, jobs=num_workers, executor=executor)}
        ordered = [results[position] for position in range(len(items))]
        for result in ordered:
            if not result.ok:
                raise result.error
        for result in ordered:
            _warn_dropped(result.features, result.item.key)
        return self._table([(result.item.key, 0.0, result.features) for result in ordered])

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
    ) -> FileFeatures:
        """Per-window features of a file as arrays, before any table is made.

        Window times are seconds in the recording, also for a segment. With ``keep_spectrograms``
        the input and decoded spectrograms come along (for plots).
        """
        _, offset, features = self._process_file(file, start, end, keep_spectrograms)
        return features.shift(offset)

    def _process_file(
        self,
        file: str | os.PathLike[str],
        start: float | None,
        end: float | None,
        keep_spectrograms: bool = False,
    ) -> tuple[str, float, FileFeatures]:
        name = os.fspath(file)
        label = with_segment(name, start, end)
        conditioned, duration, offset = self._conditioned_recording(file, start, end, label)
        features = self._conditioned_features(
            conditioned, duration, label, keep_spectrograms, DEFAULT_CHUNK, None
        )
        _warn_dropped(features, label, offset)
        return name, offset, features

    def _process(
        self, signal: np.ndarray, sampling_rate: int, file: str, offset: float = 0.0
    ) -> FileFeatures:
        features = self.signal_features(signal, sampling_rate, name=file)
        _warn_dropped(features, file, offset)
        return features

    def signal_features(
        self,
        signal: np.ndarray,
        sampling_rate: int,
        *,
        name: str = "",
        keep_spectrograms: bool = False,
        chunk_size: int | None = DEFAULT_CHUNK,
        memory_budget: int | None = None,
    ) -> FileFeatures:
        """Per-window features of one signal, alone in its batch, in bounded memory.

        Errors name ``name``; dropped windows are in the result (no warning is emitted).

        Raises:
            AudioError: the signal is too short, silent or not finite, or every window was dropped.
        """
        conditioned = self._condition(signal, sampling_rate, name)
        return self._conditioned_features(
            conditioned, len(signal) / sampling_rate, name, keep_spectrograms, chunk_size, memory_budget
        )

    def recording_features(
        self,
        path: str | os.PathLike[str],
        *,
        start: float | None = None,
        end: float | None = None,
        keep_spectrograms: bool = False,
        chunk_size: int | None = DEFAULT_CHUNK,
        memory_budget: int | None = None,
    ) -> FileFeatures:
        """:meth:`signal_features` of a file, whose samples are released before the network runs.

        Example:
            >>> features = Extractor("cae-256").recording_features("talk.wav")  # doctest: +SKIP
        """
        label = with_segment(os.fspath(path), start, end)
        conditioned, duration, _ = self._conditioned_recording(path, start, end, label)
        return self._conditioned_features(
            conditioned, duration, label, keep_spectrograms, chunk_size, memory_budget
        )

    def _conditioned_recording(
        self, path: str | os.PathLike[str], start: float | None, end: float | None, label: str
    ) -> tuple[np.ndarray, float, float]:
        """The conditioned signal, the seconds read and the time of the first frame read.

        ``label`` names the recording (and segment) in errors.

        The samples as read die with this call.
        """
        with recording_samples(path, start, end, self.frontend.config) as (signal, sampling_rate):
            first = segment_frames(start, end, sampling_rate, 0)[0]
            conditioned = self._condition(signal, sampling_rate, label)
            return conditioned, len(signal) / sampling_rate, first / sampling_rate

    def _condition(self, signal: np.ndarray, sampling_rate: int, name: str) -> np.ndarray | ConditionedSignal:
        """The conditioned signal; a long one in a temporary file, closed by :meth:`_conditioned_features`."""
        spool = functools.partial(SampleSpool.create, name=name)
        try:
            return condition_signal(
                signal, sampling_rate, config=self.frontend.config, name=name, spool=spool
            )
        except AudioError as error:
            if not name:
                raise
            raise type(error)(f"{name}: {error}") from None

    def _conditioned_features(
        self,
        conditioned: np.ndarray | ConditionedSignal,
        duration: float,
        name: str,
        keep_spectrograms: bool,
        chunk_size: int | None,
        memory_budget: int | None,
    ) -> FileFeatures:
        """Features of a conditioned signal, whose temporary file (if any) is closed here.

        Activations too large for ``memory_budget`` are kept in temporary files too.
        """
        try:
            features = conditioned_features(
                conditioned,
                duration,
                self.model.network,
                frontend=self.frontend,
                device=self.device,
                keep_spectrograms=keep_spectrograms,
                chunk_size=chunk_size,
                memory_budget=memory_budget,
                precision=self.precision,
                spill=functools.partial(SampleSpool.create, name=name),
            )
        finally:
            if isinstance(conditioned, ConditionedSignal):
                conditioned.close()
        if len(features.starts) == 0:
            raise NoUsableWindowsError(
                f"{name or 'the signal'}: all {len(features.dropped)} windows have Mel values <= 0 "
                "(digital silence), so no features can be computed"
            )
        return features

    def spec(self) -> dict[str, str]:
        """Arguments that rebuild this extractor elsewhere (a worker process or cluster node).

        The model travels by name or path, never pickled; a worker loads it from its cache.
        """
        return {
            "model": self._model_reference,
            "level": self.level,
            "device": str(self.device),
            "precision": self.precision,
        }

    def settings(self) -> dict[str, object]:
        """Everything that determines the features besides the audio (part of cache keys)."""
        from speechae import __version__

        return {
            "frontend": self.frontend.config.to_dict(),
            "architecture": self.model.architecture,
            "bottleneck": self.model.bottleneck,
            "weights_sha256": self.model.weights_sha256,
            "precision": self.precision,
            "speechae": __version__,
        }

    def _table(self, results: list[tuple[str, float, FileFeatures]]) -> pd.DataFrame:
        if self.level == "static":
            values = np.stack([static_of(features, file) for file, _, features in results])
            files = [file for file, _, _ in results]
            starts = [offset for _, offset, _ in results]
            ends = [offset + features.duration for _, offset, features in results]
        else:
            values = np.concatenate([features.dynamic for _, _, features in results])
            files = [file for file, _, features in results for _ in features.starts]
            starts = np.concatenate([offset + features.starts for _, offset, features in results])
            ends = starts + self.frontend.config.window_length / self.frontend.config.sampling_rate
        index = pd.MultiIndex.from_arrays(
            [pd.Index(files, dtype="string"), _seconds(starts), _seconds(ends)],
            names=["file", "start", "end"],
        )
        table = pd.DataFrame(values, index=index, columns=self.column_names)
        table.attrs.update(
            model=self.model.name,
            weights_sha256=self.model.weights_sha256,
            level=self.level,
            dropped_windows={
                file: (offset + features.dropped).tolist() for file, offset, features in results
            },
        )
        return table
