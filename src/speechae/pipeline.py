"""The one compute path: recordings in, per-window features of each out.

Every way of asking for features ends here: :class:`speechae.Extractor` and
:class:`speechae.RepLearning`, the corpus runner (in this process, in worker processes, on Dask),
``speechae plot``, the report's figures and training's front-end. Two steps:

1. :func:`prepare` puts a :class:`~speechae.recordings.Recording` through the log-Mel front-end:
   the scaled spectrograms of its usable windows (in memory, in a temporary file, or recomputed
   when read), the times of those windows and of the dropped ones, on the recording's time axis.
2. :meth:`Pipeline.run` pushes the windows of one or several prepared recordings through the
   autoencoder (:func:`speechae.engine.run_autoencoder`), every recording with its own BatchNorm
   statistics and in steps of its own, so a recording's features have the same bits whichever
   recordings share the call, and cuts the results into one :class:`FileFeatures` each.

A :class:`Pipeline` (model, front-end, device, precision) is rebuilt in a worker from its
:class:`PipelineSpec`; the network itself is never pickled.

Example:
    >>> import numpy as np
    >>> from speechae.models import ConvAutoencoder
    >>> rng = np.random.default_rng(0)
    >>> result = compute_features(rng.standard_normal(24000), 16000, ConvAutoencoder(8))
    >>> result.bottleneck.shape, result.error.shape, result.starts.tolist()
    ((5, 8), (5, 128), [0.0, 0.25, 0.5, 0.75, 1.0])
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial

import numpy as np
import torch
from torch import nn

from speechae.allocator import retain_freed_memory, return_free_memory
from speechae.audio import SampleSpool
from speechae.engine import (
    DEFAULT_CHUNK,
    PRECISIONS,
    NetworkOutput,
    Spill,
    SpillStorage,
    TensorInputs,
    memory_budget_for,
    run_autoencoder,
)
from speechae.errors import NonFiniteFeaturesError, ParameterError, TemporaryStorageError, all_dropped
from speechae.features import FileFeatures, dynamic_feature_names, static_feature_names
from speechae.frontend import (
    ConditionedSignal,
    FrontEndConfig,
    LogMelFrontEnd,
    check_lowpass,
    frame_range,
    frontend_config,
    window_count,
)
from speechae.recordings import Recording, read_recording, signal_recording, window_times
from speechae.resampling import RESAMPLING
from speechae.weights import LoadedModel, load_model

__all__ = [
    "DEFAULT_DEVICE",
    "DEFAULT_MODEL",
    "DEFAULT_PRECISION",
    "DEFAULT_RESAMPLING",
    "FRONTEND_CHUNK",
    "LEVELS",
    "Pipeline",
    "PipelineSpec",
    "PreparedRecording",
    "check_finite",
    "compute_features",
    "frontend_chunks",
    "prepare",
    "recording_features",
    "resolve_device",
    "run_network",
]

LEVELS = ("static", "dynamic")
DEFAULT_MODEL = "cae-256"
DEFAULT_DEVICE = "cpu"
DEFAULT_PRECISION = PRECISIONS[0]
DEFAULT_RESAMPLING = RESAMPLING[0]
FRONTEND_CHUNK = 256


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``; an unknown device, or CUDA without a GPU, is a clear error.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    try:
        device = torch.device(device)
    except RuntimeError as error:
        raise ParameterError(f"device {str(device)!r} is not one torch knows ({error})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device {str(device)!r} was requested but no CUDA GPU is available")
    return device


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
    recomputed on demand (:class:`SignalInputs`). ``starts`` and ``dropped`` are the start
    times of the kept and dropped windows on the recording's time axis; ``warnings`` and
    ``quality`` are the recording's own (:class:`Recording`). :meth:`close` deletes
    the temporary file. In memory, it pickles as a NumPy array (a worker process's result).
    """

    inputs: TensorInputs | SpilledInputs | SignalInputs
    starts: np.ndarray
    dropped: np.ndarray
    duration: float
    name: str = ""
    warnings: tuple[str, ...] = ()
    quality: dict[str, float] = field(default_factory=dict)

    def close(self) -> None:
        """Release the inputs' temporary file, if any."""
        if isinstance(self.inputs, SpilledInputs):
            self.inputs.close()

    def __reduce__(self) -> tuple:
        if not isinstance(self.inputs, TensorInputs):
            raise TypeError(
                f"{self.name or 'a recording'}: only spectrograms in memory travel to another process"
            )
        windows = self.inputs.windows.cpu().numpy()
        return _unpickled, (
            windows,
            self.starts,
            self.dropped,
            self.duration,
            self.name,
            self.warnings,
            self.quality,
        )


def _unpickled(windows: np.ndarray, *fields: object) -> PreparedRecording:
    return PreparedRecording(TensorInputs(torch.from_numpy(windows)), *fields)


def held_bytes(data: object) -> int:
    """Bytes of memory ``data`` holds: an array's or a tensor's storage, nothing for data on disk.

    Example:
        >>> held_bytes(np.zeros(1000)), held_bytes(TensorInputs(torch.zeros(10, 1, 128, 126)))
        (8000, 645120)
    """
    if isinstance(data, np.ndarray):
        return data.nbytes
    if isinstance(data, TensorInputs):
        return data.windows.untyped_storage().nbytes()
    return 0


def frontend_chunks(
    signal: np.ndarray | ConditionedSignal, frontend: LogMelFrontEnd, *, device: str | torch.device = "cpu"
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """``(first, mel, usable)`` for every :data:`FRONTEND_CHUNK` windows of a conditioned signal.

    ``mel`` is ``frontend``'s output for windows ``first, first + 1, ...`` and ``usable`` says
    which of them have no Mel value <= 0.

    Example:
        >>> signal = np.random.default_rng(0).standard_normal(24000)
        >>> [(first, tuple(mel.shape)) for first, mel, _ in frontend_chunks(signal, LogMelFrontEnd())]
        [(0, (5, 1, 128, 126))]
    """
    config = frontend.config
    n_windows = window_count(len(signal), config=config)
    for first in range(0, n_windows, FRONTEND_CHUNK):
        last = min(first + FRONTEND_CHUNK, n_windows)
        chunk = torch.from_numpy(np.array(frame_range(signal, first, last, config=config)))
        with torch.no_grad():
            mel, usable = frontend(chunk.to(device))
        yield first, mel, usable


def prepare(
    recording: Recording,
    frontend: LogMelFrontEnd,
    *,
    device: str | torch.device = "cpu",
    memory_budget: int | None = None,
    spill: Spill | None = None,
) -> PreparedRecording:
    """Frame ``recording`` and put its windows through ``frontend`` (which must be on ``device``).

    Spectrograms beyond ``memory_budget`` (default: :func:`~speechae.engine.memory_budget_for`
    the device) go to a temporary file from ``spill`` (see
    :func:`~speechae.engine.run_autoencoder`) or, without one or without room, are recomputed
    when needed; the recording must then stay open while the result is used. Close the result
    when done.

    Raises:
        NoUsableWindowsError: every window was dropped for Mel values <= 0 (digital silence).
    """
    config = frontend.config
    conditioned = recording.signal
    n_windows = window_count(len(conditioned), config=config)
    starts = window_times(recording, n_windows, config=config)
    window_shape = (1, config.n_mels, config.n_frames)
    if memory_budget is None:
        memory_budget = memory_budget_for(device)
    in_memory = n_windows * 4 * int(np.prod(window_shape)) <= memory_budget
    spilled = None if in_memory else _spilled_inputs(spill, n_windows, window_shape, device)
    # filled in place: a list of chunks joined at the end would hold every spectrogram twice
    scaled = torch.empty((n_windows, *window_shape), device=device) if in_memory else None
    kept, filled = np.zeros(n_windows, dtype=bool), 0
    try:
        for first, mel, usable in frontend_chunks(conditioned, frontend, device=device):
            kept[first : first + len(mel)] = usable.cpu().numpy()
            if in_memory:
                windows = mel[usable]
                scaled[filled : filled + len(windows)] = windows
                filled += len(windows)
            elif spilled is not None:
                spilled = _append_or_give_up(spilled, mel[usable])
        if not kept.any():
            raise all_dropped(recording.name, n_windows)
    except BaseException:
        if spilled is not None:
            spilled.close()
        raise
    if in_memory:
        inputs = TensorInputs(scaled[:filled])
    elif spilled is not None:
        inputs = spilled
    else:
        inputs = SignalInputs(conditioned, np.flatnonzero(kept), frontend, device)
    return PreparedRecording(
        inputs,
        starts[kept],
        starts[~kept],
        recording.duration,
        recording.name,
        recording.warnings,
        recording.quality,
    )


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


def run_network(
    network: nn.Module,
    prepared: Sequence[PreparedRecording],
    *,
    device: str | torch.device = "cpu",
    chunk_size: int | None = DEFAULT_CHUNK,
    memory_budget: int | None = None,
    keep_spectrograms: bool = False,
    precision: str = "fp32",
    spill: Spill | None = None,
) -> list[FileFeatures]:
    """Features of prepared recordings, each normalised with its own BatchNorm statistics.

    One recording is read from its inputs as they are (in memory, spilled or recomputed); several
    are joined in memory. With ``keep_spectrograms`` the scaled input and the reconstruction come
    along. ``spill`` lets the network keep activations in temporary files (see
    :func:`~speechae.engine.run_autoencoder`).
    """
    device = torch.device(device)
    counts = [len(p.inputs) for p in prepared]
    if len(prepared) == 1:
        inputs = prepared[0].inputs
    else:
        inputs = TensorInputs(torch.cat([p.inputs.get(0, len(p.inputs)) for p in prepared]).to(device))
    file_index = torch.repeat_interleave(
        torch.arange(len(prepared), device=device), torch.tensor(counts, device=device)
    )
    with torch.inference_mode():
        output = run_autoencoder(
            network,
            inputs,
            file_index,
            chunk_size=chunk_size,
            memory_budget=memory_budget,
            keep_reconstruction=keep_spectrograms,
            precision=precision,
            spill=spill,
        )
    bounds = np.cumsum([0, *counts])
    return [
        _features(recording, output, first, last, keep_spectrograms)
        for recording, first, last in zip(prepared, bounds[:-1], bounds[1:], strict=True)
    ]


def _features(
    prepared: PreparedRecording, output: NetworkOutput, first: int, last: int, keep_spectrograms: bool
) -> FileFeatures:
    spectrogram = reconstruction = None
    if keep_spectrograms:
        spectrogram = prepared.inputs.get(0, len(prepared.inputs))[:, 0].cpu().numpy()
        reconstruction = output.reconstruction[first:last, 0].cpu().numpy()
    return FileFeatures(
        bottleneck=output.code[first:last].cpu().numpy(),
        error=output.error[first:last].cpu().numpy(),
        starts=prepared.starts,
        dropped=prepared.dropped,
        duration=prepared.duration,
        spectrogram=spectrogram,
        reconstruction=reconstruction,
    )


@dataclass(frozen=True)
class PipelineSpec:
    """What rebuilds a :class:`Pipeline` elsewhere (a worker process, a cluster node).

    The model travels by name or path, never pickled; a worker loads it from its cache once.

    Example:
        >>> PipelineSpec("rae-256", "cpu", "fp32", None, "exact").to_dict()["resampling"]
        'exact'
    """

    model: str
    device: str
    precision: str
    memory_budget: int | None
    resampling: str
    lowpass: float | None = None

    def to_dict(self) -> dict[str, str | int | None]:
        """The spec as keyword arguments of :class:`Pipeline`."""
        return asdict(self)

    def build(self) -> Pipeline:
        """The pipeline, built once per process and spec."""
        if self not in _BUILT:
            _BUILT[self] = Pipeline(**self.to_dict())
        return _BUILT[self]


_BUILT: dict[PipelineSpec, Pipeline] = {}


class Pipeline:
    """A model with its front-end, device and precision: recordings in, :class:`FileFeatures` out.

    Args:
        model: a registered model name (``"cae-256"``, ``"rae-256"``) or the path of a ``.pt`` or
            ``.safetensors`` file.
        device: ``"cpu"`` (default) or ``"cuda"``.
        precision: ``"fp32"`` (default): DisVoice's numbers; ``"bf16"``: faster, approximate.
        memory_budget: bytes a recording may keep in memory at once: its conditioned signal,
            spectrograms and the network's kept activations (default:
            :func:`~speechae.engine.memory_budget_for` the device); the rest goes to temporary
            files or is recomputed, with the same numbers.
        resampling: ``"exact"`` (default): DisVoice's whole-signal FFT wherever memory allows it,
            segments beyond; ``"segmented"``: segments at any length, so that recordings at
            other rates stay within the budget, with numbers that differ from DisVoice's in
            near-empty Mel bands (:data:`~speechae.resampling.RESAMPLING`).
        lowpass: a cut-off in Hz: every recording is low-pass filtered before extraction
            (:func:`~speechae.frontend.low_passed`), so that recordings of different bandwidths
            are compared on a common channel; None (default): as DisVoice, unfiltered.

    Example:
        >>> pipeline = Pipeline("cae-256")  # doctest: +SKIP
        >>> features = pipeline.features(pipeline.read("talk.wav", start=1.0, end=4.0))  # doctest: +SKIP
        >>> features.starts[:2]  # doctest: +SKIP
        array([1.  , 1.25])
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_MODEL,
        *,
        device: str | torch.device = DEFAULT_DEVICE,
        precision: str = DEFAULT_PRECISION,
        memory_budget: int | None = None,
        resampling: str = DEFAULT_RESAMPLING,
        lowpass: float | None = None,
    ) -> None:
        check_lowpass(lowpass)
        if precision not in PRECISIONS:
            raise ParameterError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        if resampling not in RESAMPLING:
            raise ParameterError(f"resampling must be one of {RESAMPLING}, not {resampling!r}")
        if memory_budget is not None and (
            isinstance(memory_budget, bool) or not isinstance(memory_budget, int) or memory_budget < 0
        ):
            raise ParameterError(f"memory_budget must be a whole number of bytes, not {memory_budget!r}")
        retain_freed_memory()
        self.device = resolve_device(device)
        self.precision = precision
        self.memory_budget = memory_budget
        self.resampling = resampling
        self.lowpass = lowpass
        self.model: LoadedModel = load_model(model, device=self.device)
        self.frontend = LogMelFrontEnd(frontend_config(self.model.metadata)).to(self.device)
        self.spec = PipelineSpec(
            os.fspath(model), str(self.device), precision, memory_budget, resampling, lowpass
        )
        _BUILT.setdefault(self.spec, self)

    def __repr__(self) -> str:
        return (
            f"Pipeline(model={self.model.name!r}, device={self.device.type!r}, precision={self.precision!r})"
        )

    def settings(self) -> dict[str, object]:
        """Everything that determines the features besides the audio (part of cache keys)."""
        from speechae.version import __version__

        return {
            "frontend": self.frontend.config.to_dict(),
            "architecture": self.model.architecture,
            "bottleneck": self.model.bottleneck,
            "weights_sha256": self.model.weights_sha256,
            "precision": self.precision,
            "resampling": self.resampling,
            **({"lowpass_hz": self.lowpass} if self.lowpass is not None else {}),
            "speechae": __version__,
        }

    @property
    def reading(self) -> tuple[FrontEndConfig, str, float | None]:
        """How this pipeline reads recordings: its front-end settings, resampling and low-pass."""
        return self.frontend.config, self.resampling, self.lowpass

    def column_names(self, level: str) -> list[str]:
        """Names of the feature columns at ``level`` (``"static"`` or ``"dynamic"``)."""
        names = static_feature_names if level == "static" else dynamic_feature_names
        return names(self.model.bottleneck, self.frontend.config.n_mels)

    @property
    def budget(self) -> int:
        """Bytes a recording may keep in memory: ``memory_budget``, or the device's default."""
        return memory_budget_for(self.device) if self.memory_budget is None else self.memory_budget

    def _budget(self, memory_budget: int | None) -> int | None:
        """``memory_budget``, or the pipeline's when it is None."""
        return self.memory_budget if memory_budget is None else memory_budget

    def read(
        self, path: str | os.PathLike[str], *, start: float | None = None, end: float | None = None
    ) -> Recording:
        """The file (or its segment) read and conditioned: :func:`~speechae.recordings.read_recording`."""
        return read_recording(
            path,
            start=start,
            end=end,
            config=self.frontend.config,
            resampling=self.resampling,
            lowpass=self.lowpass,
        )

    def signal(
        self,
        samples: np.ndarray,
        sampling_rate: int,
        *,
        start: float | None = None,
        end: float | None = None,
        name: str = "",
    ) -> Recording:
        """Samples conditioned: :func:`~speechae.recordings.signal_recording`."""
        return signal_recording(
            samples,
            sampling_rate,
            start=start,
            end=end,
            config=self.frontend.config,
            name=name,
            resampling=self.resampling,
            lowpass=self.lowpass,
        )

    def prepare(self, recording: Recording, *, memory_budget: int | None = None) -> PreparedRecording:
        """:func:`prepare` on this pipeline's device, spilling what does not fit to temporary files."""
        return prepare(
            recording,
            self.frontend,
            device=self.device,
            memory_budget=memory_budget,
            spill=partial(SampleSpool.create, name=recording.name),
        )

    def run(
        self,
        prepared: Sequence[PreparedRecording],
        *,
        chunk_size: int | None = DEFAULT_CHUNK,
        memory_budget: int | None = None,
        keep_spectrograms: bool = False,
    ) -> list[FileFeatures]:
        """Features of each prepared recording, each with its own statistics (:func:`run_network`)."""
        name = prepared[0].name if len(prepared) == 1 else ""
        return run_network(
            self.model.network,
            prepared,
            device=self.device,
            chunk_size=chunk_size,
            memory_budget=self._budget(memory_budget),
            keep_spectrograms=keep_spectrograms,
            precision=self.precision,
            spill=partial(SampleSpool.create, name=name),
        )

    def features(
        self,
        recording: Recording,
        *,
        keep_spectrograms: bool = False,
        chunk_size: int | None = DEFAULT_CHUNK,
        memory_budget: int | None = None,
    ) -> FileFeatures:
        """Features of one recording alone, in bounded memory; the recording is closed here.

        What does not fit ``memory_budget`` (default: the pipeline's) goes to temporary files.

        Raises:
            NoUsableWindowsError: every window was dropped.
        """
        return recording_features(
            recording,
            self.model.network,
            self.frontend,
            device=self.device,
            keep_spectrograms=keep_spectrograms,
            chunk_size=chunk_size,
            memory_budget=self._budget(memory_budget),
            precision=self.precision,
            spill=partial(SampleSpool.create, name=recording.name),
        )


def check_finite(features: FileFeatures, name: str) -> FileFeatures:
    """``features``, refused when the network gave NaN or infinite values for a finite recording.

    Raises:
        NonFiniteFeaturesError: naming ``name`` (damaged weights, or a model trained to diverge).
    """
    for what, values in (("bottleneck", features.bottleneck), ("reconstruction error", features.error)):
        if not np.isfinite(values).all():
            bad = int((~np.isfinite(values)).sum())
            raise NonFiniteFeaturesError(
                f"{name or 'the signal'}: the model gave {bad} non-finite {what} values for finite "
                "audio; its weights are damaged or it does not suit these recordings"
            )
    return features


def recording_features(
    recording: Recording,
    network: nn.Module,
    frontend: LogMelFrontEnd,
    *,
    device: str | torch.device = "cpu",
    keep_spectrograms: bool = False,
    chunk_size: int | None = DEFAULT_CHUNK,
    memory_budget: int | None = None,
    precision: str = "fp32",
    spill: Spill | None = None,
) -> FileFeatures:
    """:func:`prepare` then :func:`run_network` of one recording, which is closed here.

    ``memory_budget`` (default: :func:`~speechae.engine.memory_budget_for` the device) bounds
    everything the recording keeps in memory at once: its conditioned signal, its spectrograms
    (in memory when they take at most a quarter of what the signal leaves: read back from a
    temporary file they cost little) and the network's kept activations (the rest). What does
    not fit goes to temporary files from ``spill`` or is recomputed: the same numbers, more
    slowly.
    """
    budget = memory_budget_for(device) if memory_budget is None else memory_budget
    with recording:
        left = budget - held_bytes(recording.signal)
        return_free_memory()  # what conditioning left free would add to the next stages' peaks
        prepared = prepare(recording, frontend, device=device, memory_budget=left // 4, spill=spill)
        return_free_memory()
        try:
            (features,) = run_network(
                network,
                [prepared],
                device=device,
                chunk_size=chunk_size,
                memory_budget=max(left - held_bytes(prepared.inputs), 0),
                keep_spectrograms=keep_spectrograms,
                precision=precision,
                spill=spill,
            )
        finally:
            prepared.close()
    return check_finite(features, recording.name)


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
    """Bottleneck and reconstruction-error features of every window of a signal, for any network.

    The path of :class:`Pipeline` for a network built in code (tests, figures, training):
    BatchNorm layers normalise with the statistics of all windows of the recording, as in
    DisVoice; long recordings are processed in chunks with exactly the same statistics.

    Args:
        signal: samples ``(samples,)`` or ``(samples, channels)`` at ``sampling_rate``.
        sampling_rate: in Hz.
        network: an autoencoder from :mod:`speechae.models` on ``device``.
        frontend: the log-Mel front-end (default settings if omitted).
        device: where the front-end and network run.
        keep_spectrograms: also return the scaled input and reconstructed spectrograms.
        chunk_size: windows per forward step.
        memory_budget: bytes the recording may keep in memory at once: conditioned signal,
            spectrograms and activations (see :func:`recording_features`).
        precision: ``"fp32"`` (exact) or ``"bf16"`` (fast, approximate).
        name: the recording's file, for messages.

    Raises:
        AudioError: the signal is too short, silent or not finite, or every window was dropped.
    """
    frontend = (frontend or LogMelFrontEnd()).to(device)
    return recording_features(
        signal_recording(signal, sampling_rate, config=frontend.config, name=name),
        network,
        frontend,
        device=device,
        keep_spectrograms=keep_spectrograms,
        chunk_size=chunk_size,
        memory_budget=memory_budget,
        precision=precision,
    )
