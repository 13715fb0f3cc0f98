"""Training CAE and RAE autoencoders on your own recordings, with the extraction front-end.

Windows go straight from audio through the same front-end as extraction (read -> condition ->
frame -> log-Mel); a window whose Mel power has a value <= 0 is dropped, as at extraction. Each
recording's log-Mel windows are kept in memory (about 0.9 GB per hour of audio), or memory-mapped
from one ``.npy`` file per recording when ``spectrogram_cache`` names a folder. Files are split
into training and validation sets by file, or by speaker, deterministically from the seed. The
loss is the original recipe's: mean squared error between the min-max scaled log-Mel input and
its reconstruction, minimised with Adam.

The validation loss is the reconstruction error extraction reports: the CAE's BatchNorm layers
normalise every validation file with the statistics of all its windows, through the extraction
engine (:func:`speechae.engine.run_autoencoder`). Training batches mix windows of several files
and are normalised with their own statistics, as in ordinary training-mode BatchNorm.

After every epoch a checkpoint is written atomically to ``<output>.checkpoints/`` (and removed
when the run finishes); a run that was interrupted continues with ``resume=True`` and, on the CPU
with the same settings, ends with exactly the weights an uninterrupted run gives. The finished
model is a safetensors file that :func:`speechae.weights.load_model` and
:class:`speechae.Extractor` read, with the loss history as CSV and PNG beside it.

Example:
    >>> result = train(["a.wav", "b.wav", "c.wav"], output="mine.safetensors")  # doctest: +SKIP
    >>> Extractor(result.output, level="dynamic").process_file("d.wav")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import random
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechae.atomic import atomic_path, check_target
from speechae.audio import audio_duration, file_sha256, read_audio
from speechae.engine import run_autoencoder
from speechae.errors import (
    AudioError,
    DroppedWindowsWarning,
    NoUsableWindowsError,
    ParameterError,
    SkippedFileWarning,
)
from speechae.extractor import resolve_device
from speechae.features import FRONTEND_CHUNK
from speechae.frontend import (
    DEFAULT_FRONTEND,
    FrontEndConfig,
    LogMelFrontEnd,
    condition_signal,
    frame_signal,
    frontend_config,
)
from speechae.models import ARCHITECTURES
from speechae.weights import LoadedModel, load_model, save_weights

__all__ = [
    "DEFAULT_LEARNING_RATES",
    "EpochRecord",
    "ProgressCallback",
    "TrainingConfig",
    "TrainingResult",
    "evaluate",
    "log_mel_windows",
    "log_progress",
    "read_speaker_manifest",
    "split_files",
    "train",
]

DEFAULT_LEARNING_RATES: dict[str, float] = {"cae": 1e-4, "rae": 1e-3}
CACHE_FORMAT = "speechae-log-mel-1"
CHECKPOINT_FILE = "last.pt"

ProgressCallback = Callable[[int, int, int, float, float | None], None]
"""``on_progress(epoch, batch, n_batches, train_loss, validation_loss)``.

Called after every training batch with the mean training loss of the epoch so far and
``validation_loss=None``, and at the end of every epoch with ``batch == n_batches``, the epoch's
training loss and its validation loss. Epoch 0 is the model before training: ``(0, 0, 0, nan,
validation_loss)``.
"""


@dataclass(frozen=True)
class TrainingConfig:
    """The settings of a training run, as checked by :func:`train` and stored in its checkpoint."""

    architecture: str
    bottleneck: int
    epochs: int
    learning_rate: float
    batch_size: int
    seed: int
    validation_fraction: float
    patience: int
    fit_scaling: bool
    mixed_precision: bool
    init: str | None

    def to_dict(self) -> dict[str, str | int | float | bool | None]:
        """Return the settings as a plain dictionary."""
        return asdict(self)


@dataclass(frozen=True)
class EpochRecord:
    """Losses after one epoch; epoch 0 is the model before training (``train_loss`` is NaN)."""

    epoch: int
    train_loss: float
    validation_loss: float


@dataclass(frozen=True)
class TrainingResult:
    """What :func:`train` wrote and how the run went.

    Attributes:
        output: the safetensors model (the weights of the best validation epoch).
        loss_csv: ``<output stem>.loss.csv``, one row per epoch.
        loss_png: ``<output stem>.loss.png``, the loss curves.
        config: the settings used.
        history: one record per epoch, starting with epoch 0 (before training).
        best_epoch: epoch whose weights were saved (0 when no epoch improved on the start).
        best_validation_loss: its validation loss.
        epochs_run: training epochs done, over all resumed parts of the run.
        stopped_early: training stopped after ``patience`` epochs without improvement.
        train_files: files in the training set, as given.
        validation_files: files in the validation set, as given.
        skipped: file -> why it was left out (unreadable, too short, silent, duplicate content).
        metadata: the metadata stored in the model file.
    """

    output: Path
    loss_csv: Path
    loss_png: Path
    config: TrainingConfig
    history: tuple[EpochRecord, ...]
    best_epoch: int
    best_validation_loss: float
    epochs_run: int
    stopped_early: bool
    train_files: tuple[str, ...]
    validation_files: tuple[str, ...]
    skipped: Mapping[str, str]
    metadata: Mapping[str, str]


@dataclass
class _Recording:
    """The log-Mel windows of one file; ``log_mel`` may be memory-mapped from the cache."""

    name: str
    sha256: str
    duration: float
    log_mel: np.ndarray
    kept: np.ndarray


def log_progress(
    epoch: int, batch: int, n_batches: int, train_loss: float, validation_loss: float | None
) -> None:
    """Default progress display: one line per epoch on standard error.

    Example:
        >>> log_progress(3, 10, 10, 0.0123, 0.0134)  # doctest: +SKIP
        epoch 3: training loss 0.012300, validation loss 0.013400
    """
    if validation_loss is None:
        return
    training = "" if math.isnan(train_loss) else f"training loss {train_loss:.6f}, "
    print(f"epoch {epoch}: {training}validation loss {validation_loss:.6f}", file=sys.stderr, flush=True)


def log_mel_windows(
    signal: np.ndarray, sampling_rate: int, *, config: FrontEndConfig = DEFAULT_FRONTEND
) -> np.ndarray:
    """Unscaled log-Mel spectrogram of every window, computed by the extraction front-end.

    Scaling with ``LogMelFrontEnd(config).scale`` gives exactly the autoencoder input that
    extraction computes; windows the front-end drops (a Mel value <= 0) are NaN.

    Args:
        signal: samples ``(samples,)`` or ``(samples, channels)`` at ``sampling_rate``.
        sampling_rate: in Hz.
        config: front-end settings; the scaling constants are not used.

    Returns:
        float32 array ``(windows, n_mels, n_frames)``.

    Raises:
        AudioError: the signal is too short, silent or not finite.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> log_mel_windows(rng.standard_normal(16000), 16000).shape
        (3, 128, 126)
    """
    # Scaling constants 0 and 1 make the front-end's min-max scaling the identity.
    frontend = LogMelFrontEnd(replace(config, min_scaler=0.0, max_scaler=1.0))
    windows = frame_signal(condition_signal(signal, sampling_rate, config=config), config=config)
    result = np.empty((len(windows), config.n_mels, config.n_frames), dtype=np.float32)
    with torch.inference_mode():
        for first in range(0, len(windows), FRONTEND_CHUNK):
            log_mel, valid = frontend(torch.from_numpy(np.array(windows[first : first + FRONTEND_CHUNK])))
            log_mel[~valid] = math.nan
            result[first : first + len(log_mel)] = log_mel[:, 0].numpy()
    return result


def read_speaker_manifest(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a CSV file with columns ``file`` and ``speaker`` (others are ignored).

    Relative file paths are taken relative to the manifest's folder.

    Returns:
        file path -> speaker, in the manifest's order.

    Raises:
        ParameterError: the file is missing, lacks a column or has an empty speaker.

    Example:
        >>> speakers = read_speaker_manifest("corpus/speakers.csv")  # doctest: +SKIP
        >>> train(list(speakers), output="m.safetensors", speakers=speakers)  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"speaker manifest {path} does not exist; give a CSV file with file,speaker")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"file", "speaker"} - set(reader.fieldnames or ())
        if missing:
            raise ParameterError(
                f"speaker manifest {path} has columns {reader.fieldnames}, lacking {sorted(missing)}; "
                "add a 'file' and a 'speaker' column"
            )
        speakers = {}
        for line, row in enumerate(reader, start=2):
            if not row["speaker"] or not row["file"]:
                raise ParameterError(f"speaker manifest {path}, line {line}: the file or speaker is empty")
            speakers[os.fspath(path.parent / row["file"])] = row["speaker"]
    return speakers


def _check_fraction(validation_fraction: float) -> None:
    if not 0 < validation_fraction < 1:
        raise ParameterError(
            f"validation_fraction must be between 0 and 1 (exclusive), not {validation_fraction!r}"
        )


def _resolved(file: str | os.PathLike[str]) -> Path:
    return Path(file).expanduser().resolve()


def _require_speakers(files: Iterable[str], speakers: Mapping[str, str]) -> None:
    unknown = [file for file in files if file not in speakers]
    if unknown:
        raise ParameterError(
            f"no speaker is given for {unknown[0]!r} ({len(unknown)} files lack one); "
            "add every file to the speaker mapping"
        )


def _speakers_by_name(files: Sequence[str], speakers: Mapping[str | os.PathLike[str], str]) -> dict[str, str]:
    """The speaker of each name in ``files``, matching paths after resolving them."""
    known = {_resolved(file): speaker for file, speaker in speakers.items()}
    found = {name: known[_resolved(name)] for name in files if _resolved(name) in known}
    _require_speakers(files, found)
    return found


def split_files(
    files: Sequence[str],
    *,
    validation_fraction: float = 0.2,
    seed: int = 0,
    speakers: Mapping[str, str] | None = None,
) -> tuple[list[str], list[str]]:
    """Split files into training and validation sets by file or, given ``speakers``, by speaker.

    ``round(validation_fraction * groups)`` files (or speakers), at least one and at most all but
    one, go to validation; which ones depends only on ``seed`` and the set of names, not on their
    order. No speaker is in both sets.

    Args:
        files: names of the files.
        validation_fraction: share of files (or speakers) for validation, in (0, 1).
        seed: seed of the random choice.
        speakers: file name -> speaker, for every file.

    Returns:
        ``(train, validation)``, each in the order of ``files``.

    Raises:
        ParameterError: fewer than two files (or speakers), or a file without a speaker.

    Example:
        >>> split_files(["a", "b", "c", "d", "e"], validation_fraction=0.4, seed=0)
        (['a', 'b', 'd'], ['c', 'e'])
    """
    _check_fraction(validation_fraction)
    if speakers is None:
        groups, unit = {file: file for file in files}, "files"
    else:
        _require_speakers(files, speakers)
        groups, unit = {file: speakers[file] for file in files}, "speakers"
    labels = sorted(set(groups.values()))
    if len(labels) < 2:
        raise ParameterError(
            f"splitting into training and validation sets needs at least 2 {unit}, not {len(labels)}; "
            f"give more {unit}"
        )
    n_validation = min(max(round(validation_fraction * len(labels)), 1), len(labels) - 1)
    order = np.random.default_rng(seed).permutation(len(labels))
    held_out = {labels[k] for k in order[:n_validation]}
    train_files = [file for file in files if groups[file] not in held_out]
    validation_files = [file for file in files if groups[file] in held_out]
    return train_files, validation_files


def _cache_key(sha256: str, config: FrontEndConfig) -> str:
    from speechae import __version__

    settings = {key: value for key, value in config.to_dict().items() if not key.endswith("_scaler")}
    text = json.dumps([CACHE_FORMAT, __version__, sha256, settings], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _file_log_mel(path: Path, sha256: str, config: FrontEndConfig, cache: Path | None) -> np.ndarray:
    cached = None if cache is None else cache / f"{_cache_key(sha256, config)}.npy"
    if cached is not None and cached.is_file():
        return np.load(cached, mmap_mode="r")
    signal, sampling_rate = read_audio(path, native=True)
    try:
        log_mel = log_mel_windows(signal, sampling_rate, config=config)
    except AudioError as error:
        raise type(error)(f"{path}: {error}") from None
    if cached is None:
        return log_mel

    with atomic_path(cached) as partial, partial.open("wb") as handle:
        np.save(handle, log_mel)
    return np.load(cached, mmap_mode="r")


def _load_recordings(
    files: Iterable[str | os.PathLike[str]], config: FrontEndConfig, cache: Path | None
) -> tuple[list[_Recording], dict[str, str]]:
    """Log-Mel windows of every usable file and, for the others, why they were left out."""
    recordings: list[_Recording] = []
    skipped: dict[str, str] = {}
    first_with: dict[str, str] = {}
    for file in files:
        name, path = os.fspath(file), Path(file)
        try:
            sha256 = file_sha256(path)
            if sha256 in first_with:
                skipped[name] = f"{name}: the same audio as {first_with[sha256]}, which is used once"
                continue
            log_mel = _file_log_mel(path, sha256, config, cache)
            kept = np.flatnonzero(~np.isnan(log_mel[:, 0, 0]))
            if len(kept) == 0:
                raise NoUsableWindowsError(
                    f"{path}: all {len(log_mel)} windows have Mel values <= 0 (digital silence)"
                )
            duration = audio_duration(path)
        except AudioError as error:
            skipped[name] = str(error)
            continue
        first_with[sha256] = name
        recordings.append(_Recording(name, sha256, duration, log_mel, kept))
    for reason in skipped.values():
        warnings.warn(SkippedFileWarning(f"{reason}; the file is left out"), stacklevel=3)
    dropped = {r.name: len(r.log_mel) - len(r.kept) for r in recordings if len(r.kept) < len(r.log_mel)}
    if dropped:
        warnings.warn(
            DroppedWindowsWarning(
                f"{sum(dropped.values())} windows in {len(dropped)} of the files (e.g. "
                f"{next(iter(dropped))}) are left out because their Mel spectrogram has values <= 0 "
                "(digital silence)"
            ),
            stacklevel=3,
        )
    return recordings, skipped


class _Windows:
    """The kept windows of several recordings, scaled; reads by position (the engine's ``WindowInputs``)."""

    def __init__(self, recordings: list[_Recording], frontend: LogMelFrontEnd, device: torch.device) -> None:
        self.recordings = recordings
        self.frontend = frontend
        self.device = device
        self.owner = np.concatenate([np.full(len(r.kept), k) for k, r in enumerate(recordings)])
        self.window = np.concatenate([r.kept for r in recordings])

    def __len__(self) -> int:
        return len(self.window)

    def get(self, first: int, last: int) -> torch.Tensor:
        """Windows ``first..last-1`` as float32 ``(m, 1, n_mels, frames)``."""
        return self.take(np.arange(first, last))

    def take(self, positions: np.ndarray) -> torch.Tensor:
        """The windows at ``positions``, in that order."""
        pairs = zip(self.owner[positions], self.window[positions], strict=True)
        log_mel = np.stack([self.recordings[owner].log_mel[window] for owner, window in pairs])
        return self.frontend.scale(torch.from_numpy(log_mel).unsqueeze(1).to(self.device))


def _reconstruction_loss(network: nn.Module, windows: _Windows) -> float:
    """Mean squared error per window, with each file's BatchNorm statistics as at extraction."""
    network.eval()
    with torch.inference_mode():
        file_index = torch.from_numpy(windows.owner).to(windows.device)
        output = run_autoencoder(network, windows, file_index)
    return output.error.double().mean().item()


def evaluate(
    model: str | os.PathLike[str],
    files: Iterable[str | os.PathLike[str]],
    *,
    device: str | torch.device = "cpu",
    spectrogram_cache: str | os.PathLike[str] | None = None,
) -> float:
    """Reconstruction loss of a model on files, computed exactly as :func:`train` validates.

    The model's own scaling constants are used and the CAE normalises each file with the
    statistics of all its windows, as at extraction; the result is the mean squared error
    averaged over all kept windows.

    Args:
        model: anything :func:`speechae.weights.load_model` accepts.
        files: audio files; unusable ones are skipped with a warning.
        device: ``"cpu"`` or ``"cuda"``.
        spectrogram_cache: folder of cached log-Mel spectrograms (read and filled).

    Raises:
        ParameterError: no file is usable.

    Example:
        >>> evaluate("cae-256", ["held_out.wav"])  # doctest: +SKIP
        0.0041
    """
    device = resolve_device(device)
    loaded = load_model(model, device=device)
    config = frontend_config(loaded.metadata)
    cache = None if spectrogram_cache is None else Path(spectrogram_cache)
    recordings, _ = _load_recordings(files, config, cache)
    if not recordings:
        raise ParameterError("none of the files given to evaluate is usable; give readable audio files")
    return _reconstruction_loss(
        loaded.network, _Windows(recordings, LogMelFrontEnd(config).to(device), device)
    )


def _check_positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParameterError(f"{name} must be a positive integer, not {value!r}")


def _training_config(
    *,
    architecture: str | None,
    bottleneck: int | None,
    epochs: int,
    learning_rate: float | None,
    batch_size: int,
    seed: int,
    validation_fraction: float,
    patience: int,
    fit_scaling: bool,
    mixed_precision: bool,
    init: str | None,
    device: torch.device,
) -> tuple[TrainingConfig, LoadedModel | None]:
    """Check the settings and load the initial model, if any, onto ``device``."""
    if architecture is not None and architecture not in ARCHITECTURES:
        raise ParameterError(f"architecture must be one of {sorted(ARCHITECTURES)}, not {architecture!r}")
    if bottleneck is not None:
        _check_positive_int("bottleneck", bottleneck)
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("patience", patience)):
        _check_positive_int(name, value)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, not {seed!r}")
    if learning_rate is not None and not (math.isfinite(learning_rate) and learning_rate > 0):
        raise ParameterError(f"learning_rate must be a positive number, not {learning_rate!r}")
    _check_fraction(validation_fraction)
    initial = None if init is None else load_model(init, device=device)
    if initial is not None:
        for name, wanted, found in (
            ("architecture", architecture, initial.architecture),
            ("bottleneck", bottleneck, initial.bottleneck),
        ):
            if wanted is not None and wanted != found:
                raise ParameterError(
                    f"{name} {wanted!r} differs from the {found!r} of the initial model {init!r}; "
                    f"leave {name} out to take it from the model"
                )
        architecture, bottleneck = initial.architecture, initial.bottleneck
    architecture = architecture or "cae"
    config = TrainingConfig(
        architecture=architecture,
        bottleneck=bottleneck or 256,
        epochs=epochs,
        learning_rate=learning_rate or DEFAULT_LEARNING_RATES[architecture],
        batch_size=batch_size,
        seed=seed,
        validation_fraction=validation_fraction,
        patience=patience,
        fit_scaling=fit_scaling,
        mixed_precision=mixed_precision,
        init=init,
    )
    return config, initial


@contextlib.contextmanager
def _reproducible(device: torch.device, seed: int) -> Iterator[None]:
    """Seed torch, numpy and Python and use deterministic algorithms; the caller's state returns after."""
    numpy_state, python_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.manual_seed(seed)
            np.random.seed(seed)  # noqa: NPY002
            random.seed(seed)
            yield
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        np.random.set_state(numpy_state)  # noqa: NPY002
        random.setstate(python_state)


def _rng_states(device: torch.device) -> dict[str, object]:
    numpy_state = np.random.get_state(legacy=False)  # noqa: NPY002
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": numpy_state,
        "python": random.getstate(),
    }


def _set_rng_states(states: Mapping[str, object], device: torch.device) -> None:
    torch.set_rng_state(states["torch"])
    if device.type == "cuda" and states["cuda"] is not None:
        torch.cuda.set_rng_state(states["cuda"], device)
    numpy_state = states["numpy"]
    key = np.array(numpy_state["state"]["key"], dtype=np.uint32)
    np.random.set_state({**numpy_state, "state": {**numpy_state["state"], "key": key}})  # noqa: NPY002
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


def _data_sha256(recordings: Iterable[_Recording]) -> str:
    return hashlib.sha256("\n".join(sorted(r.sha256 for r in recordings)).encode()).hexdigest()


def _paths_beside(output: Path) -> tuple[Path, Path, Path]:
    """The checkpoint, loss CSV and loss PNG paths of ``output``."""
    stem = output.with_suffix("")
    checkpoint = output.with_name(f"{output.name}.checkpoints") / CHECKPOINT_FILE
    return checkpoint, stem.with_name(f"{stem.name}.loss.csv"), stem.with_name(f"{stem.name}.loss.png")


def _write_loss_csv(history: Sequence[EpochRecord], target: Path) -> None:
    with atomic_path(target) as partial, partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "train_loss", "validation_loss"])
        writer.writerows((r.epoch, repr(r.train_loss), repr(r.validation_loss)) for r in history)


def _write_loss_png(history: Sequence[EpochRecord], best_epoch: int, target: Path) -> None:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.subplots()
    trained = history[1:]
    axes.plot([r.epoch for r in trained], [r.train_loss for r in trained], "o-", label="training")
    axes.plot([r.epoch for r in history], [r.validation_loss for r in history], "s-", label="validation")
    axes.axvline(best_epoch, color="grey", linestyle=":", label=f"best (epoch {best_epoch})")
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("mean squared error")
    axes.set_yscale("log")
    axes.legend()
    with atomic_path(target) as partial:
        figure.savefig(partial, format="png", dpi=100)


class _Run:
    """The state of one training run: what a checkpoint holds and what an epoch changes."""

    def __init__(
        self,
        config: TrainingConfig,
        network: nn.Module,
        device: torch.device,
        frontend: LogMelFrontEnd,
        train_set: list[_Recording],
        validation_set: list[_Recording],
    ) -> None:
        self.config = config
        self.network = network
        self.device = device
        self.frontend = frontend
        self.train_windows = _Windows(train_set, frontend, device)
        self.validation_windows = _Windows(validation_set, frontend, device)
        self.optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
        self.scaler = torch.amp.GradScaler(
            device.type, enabled=config.mixed_precision and device.type == "cuda"
        )
        self.history: list[EpochRecord] = []
        self.best_state: dict[str, torch.Tensor] = {}
        self.best_epoch = 0
        self.waiting = 0

    @property
    def best_loss(self) -> float:
        return self.history[self.best_epoch].validation_loss

    @property
    def n_batches(self) -> int:
        return math.ceil(len(self.train_windows) / self.config.batch_size)

    @property
    def stopped_early(self) -> bool:
        return self.waiting >= self.config.patience

    def record(self, epoch: int, train_loss: float) -> EpochRecord:
        """Validate after ``epoch`` and keep the weights when they are the best so far."""
        loss = _reconstruction_loss(self.network, self.validation_windows)
        self.history.append(EpochRecord(epoch, train_loss, loss))
        if epoch == 0 or loss < self.best_loss:
            self.best_epoch, self.waiting = epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in self.network.state_dict().items()}
        else:
            self.waiting += 1
        return self.history[-1]

    def train_epoch(self, epoch: int, on_progress: ProgressCallback) -> float:
        """One pass over the training windows in an order fixed by the seed and the epoch."""
        order = np.random.default_rng([self.config.seed, epoch]).permutation(len(self.train_windows))
        batches = np.array_split(order, self.n_batches)
        low_precision = torch.bfloat16 if self.device.type == "cpu" else torch.float16
        self.network.train()
        total, seen = 0.0, 0
        for number, positions in enumerate(batches, start=1):
            inputs = self.train_windows.take(positions)
            with torch.autocast(self.device.type, dtype=low_precision, enabled=self.config.mixed_precision):
                reconstruction, _ = self.network(inputs)
            loss = F.mse_loss(reconstruction.float(), inputs)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            total, seen = total + loss.item() * len(positions), seen + len(positions)
            on_progress(epoch, number, len(batches), total / seen, None)
        return total / seen

    def checkpoint(self) -> dict[str, object]:
        """Everything needed to continue the run exactly."""
        return {
            "config": self.config.to_dict(),
            "model": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "history": [asdict(r) for r in self.history],
            "best_state": self.best_state,
            "best_epoch": self.best_epoch,
            "waiting": self.waiting,
            "scaling": (self.frontend.config.min_scaler, self.frontend.config.max_scaler),
            "split": tuple(
                [r.sha256 for r in w.recordings] for w in (self.train_windows, self.validation_windows)
            ),
            "rng": _rng_states(self.device),
        }

    def restore(self, state: Mapping[str, object]) -> None:
        """Continue from a checkpoint made by :meth:`checkpoint`."""
        self.network.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.history = [EpochRecord(**r) for r in state["history"]]
        self.best_state = {k: v.to(self.device) for k, v in state["best_state"].items()}
        self.best_epoch = state["best_epoch"]
        self.waiting = state["waiting"]
        _set_rng_states(state["rng"], self.device)


def _save_checkpoint(state: dict[str, object], target: Path) -> None:
    with atomic_path(target) as partial:
        torch.save(state, partial)


def _read_checkpoint(target: Path, config: TrainingConfig) -> dict[str, object]:
    if not target.is_file():
        raise ParameterError(
            f"--resume (resume=True) but there is no checkpoint {target}; give the output of the "
            "interrupted run or train without resuming"
        )
    state = torch.load(target, map_location="cpu", weights_only=True)
    for key, value in config.to_dict().items():
        if state["config"][key] != value:
            raise ParameterError(
                f"the checkpoint {target} was made with {key}={state['config'][key]!r}, not {value!r}; "
                "resume with the same settings or delete the checkpoint folder to start anew"
            )
    return state


def _split_recordings(
    recordings: list[_Recording],
    config: TrainingConfig,
    speakers: Mapping[str, str] | None,
    split: tuple[list[str], list[str]] | None,
) -> tuple[list[_Recording], list[_Recording]]:
    """Split ``recordings`` anew, or as ``split`` (content hashes) from a checkpoint says."""
    if split is not None:
        by_hash = {r.sha256: r for r in recordings}
        if set(by_hash) != set(split[0]) | set(split[1]):
            raise ParameterError(
                f"the usable files ({len(recordings)}) are not those of the interrupted run "
                f"({len(split[0]) + len(split[1])}); resume with the same files or train without resume"
            )
        return [by_hash[h] for h in split[0]], [by_hash[h] for h in split[1]]
    train_names, _ = split_files(
        [r.name for r in recordings],
        validation_fraction=config.validation_fraction,
        seed=config.seed,
        speakers=speakers,
    )
    chosen = set(train_names)
    return (
        [r for r in recordings if r.name in chosen],
        [r for r in recordings if r.name not in chosen],
    )


def _fitted_config(base: FrontEndConfig, train_set: Sequence[_Recording]) -> FrontEndConfig:
    """``base`` with the min-max scaling constants of the training windows' log-Mel."""
    low = min(float(np.min(r.log_mel[r.kept])) for r in train_set)
    high = max(float(np.max(r.log_mel[r.kept])) for r in train_set)
    return replace(base, min_scaler=low, max_scaler=high)


def _metadata(run: _Run, data_sha256: str, skipped: Mapping[str, str], split_by: str) -> dict[str, str]:
    from speechae import __version__

    config = run.config
    summary = {}
    for part, windows in (("train", run.train_windows), ("validation", run.validation_windows)):
        summary[f"{part}_files"] = str(len(windows.recordings))
        summary[f"{part}_hours"] = f"{sum(r.duration for r in windows.recordings) / 3600:.4f}"
        summary[f"{part}_windows"] = str(len(windows))
    everything = run.train_windows.recordings + run.validation_windows.recordings
    return {
        "architecture": config.architecture,
        "bottleneck": str(config.bottleneck),
        **{key: repr(value) for key, value in run.frontend.config.to_dict().items()},
        "source": "speechae.training.train",
        "speechae_version": __version__,
        "init": config.init or "random",
        **summary,
        "dropped_windows": str(sum(len(r.log_mel) - len(r.kept) for r in everything)),
        "skipped_files": str(len(skipped)),
        "validation_split": split_by,
        "data_sha256": data_sha256,
        "epochs_run": str(run.history[-1].epoch),
        "best_epoch": str(run.best_epoch),
        "best_validation_loss": repr(run.best_loss),
        "stopped_early": str(run.stopped_early),
        "learning_rate": repr(config.learning_rate),
        "batch_size": str(config.batch_size),
        "seed": str(config.seed),
        "patience": str(config.patience),
        "fit_scaling": str(config.fit_scaling),
        "mixed_precision": str(config.mixed_precision),
    }


def train(
    files: Iterable[str | os.PathLike[str]],
    *,
    output: str | os.PathLike[str],
    architecture: str | None = None,
    bottleneck: int | None = None,
    epochs: int = 50,
    learning_rate: float | None = None,
    batch_size: int = 16,
    seed: int = 0,
    device: str | torch.device = "cpu",
    validation_fraction: float = 0.2,
    speakers: Mapping[str | os.PathLike[str], str] | None = None,
    init: str | os.PathLike[str] | None = None,
    fit_scaling: bool = False,
    patience: int = 10,
    mixed_precision: bool = False,
    resume: bool = False,
    spectrogram_cache: str | os.PathLike[str] | None = None,
    on_progress: ProgressCallback | None = None,
) -> TrainingResult:
    """Train a CAE or RAE on audio files and save the best model as safetensors.

    Args:
        files: audio files; unreadable, too short, silent and duplicate files are skipped with a
            warning and listed in :attr:`TrainingResult.skipped`.
        output: the ``.safetensors`` file to write; the checkpoint folder
            ``<output>.checkpoints/`` and the loss curves ``<stem>.loss.csv``/``.png`` go beside it.
        architecture: ``"cae"`` or ``"rae"``; default ``"cae"``, or that of ``init``.
        bottleneck: width of the bottleneck; default 256, or that of ``init``.
        epochs: most epochs to train.
        learning_rate: Adam's learning rate; default 1e-4 for the CAE and 1e-3 for the RAE.
        batch_size: windows per training batch.
        seed: seed of the split, the initial weights and the order of the windows.
        device: ``"cpu"`` or ``"cuda"``.
        validation_fraction: share of the files (or speakers) held out for validation.
        speakers: file -> speaker for every file (e.g. from :func:`read_speaker_manifest`); the
            split then keeps each speaker's files together.
        init: a model to fine-tune, anything :func:`speechae.weights.load_model` accepts (e.g.
            ``"cae-256"``); its architecture, bottleneck and scaling constants are used.
        fit_scaling: take the min-max scaling constants from the training windows' log-Mel
            instead of the defaults (or those of ``init``); they are stored in the model.
        patience: stop after this many epochs without a lower validation loss.
        mixed_precision: train under autocast (bfloat16 on the CPU, float16 with gradient
            scaling on CUDA); validation stays in float32.
        resume: continue the interrupted run whose checkpoint is beside ``output``; the settings
            must equal the interrupted run's (the device may differ).
        spectrogram_cache: folder for one log-Mel ``.npy`` per file, keyed by the file's content
            and the front-end settings; later runs memory-map them instead of decoding audio.
        on_progress: called during training (see :data:`ProgressCallback`); default
            :func:`log_progress`.

    Returns:
        the paths written, the loss history, the split and the stored metadata.

    Raises:
        ParameterError: a bad argument, fewer than two usable files (or speakers), an existing
            checkpoint without ``resume``, or a checkpoint that does not fit.

    Example:
        >>> files = ["a.wav", "b.wav", "c.wav", "d.wav", "e.wav"]
        >>> result = train(files, output="rae.safetensors", architecture="rae")  # doctest: +SKIP
        >>> result.best_epoch, result.best_validation_loss  # doctest: +SKIP
        (37, 0.0052)
    """
    device = resolve_device(device)
    output = Path(output)
    if output.suffix != ".safetensors":
        raise ParameterError(f"output must be a .safetensors file, not {os.fspath(output)!r}")
    for target in (output, *_paths_beside(output)[1:]):  # before any training, not after it
        check_target(target)
    config, initial = _training_config(
        architecture=architecture,
        bottleneck=bottleneck,
        epochs=epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        seed=seed,
        validation_fraction=validation_fraction,
        patience=patience,
        fit_scaling=fit_scaling,
        mixed_precision=mixed_precision,
        init=None if init is None else os.fspath(init),
        device=device,
    )
    files = [os.fspath(file) for file in files]
    speaker_of = None if speakers is None else _speakers_by_name(files, speakers)
    checkpoint_path, loss_csv, loss_png = _paths_beside(output)
    state = _read_checkpoint(checkpoint_path, config) if resume else None
    if state is None and checkpoint_path.exists():
        raise ParameterError(
            f"a checkpoint of an interrupted run exists in {checkpoint_path.parent}; continue it with "
            "--resume (resume=True) or delete the folder to start anew"
        )
    base = DEFAULT_FRONTEND if initial is None else frontend_config(initial.metadata)
    cache = None if spectrogram_cache is None else Path(spectrogram_cache)
    recordings, skipped = _load_recordings(files, base, cache)
    split = None if state is None else state["split"]
    train_set, validation_set = _split_recordings(recordings, config, speaker_of, split)
    if state is not None:
        scaled = replace(base, min_scaler=state["scaling"][0], max_scaler=state["scaling"][1])
    else:
        scaled = _fitted_config(base, train_set) if config.fit_scaling else base
    progress = on_progress or log_progress
    with _reproducible(device, config.seed):
        if initial is None:
            network = ARCHITECTURES[config.architecture](config.bottleneck).to(device)
        else:
            network = initial.network.requires_grad_(True)
        frontend = LogMelFrontEnd(scaled).to(device)
        run = _Run(config, network, device, frontend, train_set, validation_set)
        if state is None:
            progress(0, 0, 0, math.nan, run.record(0, math.nan).validation_loss)
        else:
            run.restore(state)
        for epoch in range(len(run.history), config.epochs + 1):
            if run.stopped_early:
                break
            record = run.record(epoch, run.train_epoch(epoch, progress))
            _save_checkpoint(run.checkpoint(), checkpoint_path)
            progress(epoch, run.n_batches, run.n_batches, record.train_loss, record.validation_loss)
    metadata = _metadata(run, _data_sha256(recordings), skipped, "file" if speakers is None else "speaker")
    save_weights({k: v.cpu() for k, v in run.best_state.items()}, output, metadata)
    _write_loss_csv(run.history, loss_csv)
    _write_loss_png(run.history, run.best_epoch, loss_png)
    checkpoint_path.unlink()
    with contextlib.suppress(OSError):
        checkpoint_path.parent.rmdir()
    return TrainingResult(
        output=output,
        loss_csv=loss_csv,
        loss_png=loss_png,
        config=config,
        history=tuple(run.history),
        best_epoch=run.best_epoch,
        best_validation_loss=run.best_loss,
        epochs_run=run.history[-1].epoch,
        stopped_early=run.stopped_early,
        train_files=tuple(r.name for r in train_set),
        validation_files=tuple(r.name for r in validation_set),
        skipped=dict(skipped),
        metadata=metadata,
    )
