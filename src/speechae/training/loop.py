"""The training loop: :func:`train` and :func:`evaluate`.

The validation loss is the reconstruction error extraction reports: the CAE's BatchNorm layers
normalise every validation file with the statistics of all its windows, through the extraction
engine (:func:`speechae.engine.run_autoencoder`). Training batches mix windows of several files
and are normalised with their own statistics, as in ordinary training-mode BatchNorm.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechae.atomic import check_target
from speechae.errors import ParameterError
from speechae.frontend import DEFAULT_FRONTEND, FrontEndConfig, LogMelFrontEnd, frontend_config
from speechae.models import ARCHITECTURES
from speechae.pipeline import resolve_device
from speechae.training.artefacts import data_sha256, paths_beside, write_loss_csv, write_loss_png
from speechae.training.checkpoints import (
    read_checkpoint,
    reproducible,
    rng_states,
    save_checkpoint,
    set_rng_states,
)
from speechae.training.config import (
    EpochRecord,
    ProgressCallback,
    TrainingConfig,
    TrainingResult,
    log_progress,
)
from speechae.training.data import TrainingRecording, Windows, load_recordings, reconstruction_loss
from speechae.training.split import speakers_by_name, split_files
from speechae.weights import load_model, save_weights

__all__ = ["evaluate", "train"]

#: The settings :func:`train` uses unless told otherwise.
DEFAULTS = TrainingConfig()


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
    recordings, _ = load_recordings(files, config, cache)
    if not recordings:
        raise ParameterError("none of the files given to evaluate is usable; give readable audio files")
    return reconstruction_loss(loaded.network, Windows(recordings, LogMelFrontEnd(config).to(device), device))


class _Run:
    """The state of one training run: what a checkpoint holds and what an epoch changes."""

    def __init__(
        self,
        config: TrainingConfig,
        network: nn.Module,
        device: torch.device,
        frontend: LogMelFrontEnd,
        train_set: list[TrainingRecording],
        validation_set: list[TrainingRecording],
    ) -> None:
        self.config = config
        self.network = network
        self.device = device
        self.frontend = frontend
        self.train_windows = Windows(train_set, frontend, device)
        self.validation_windows = Windows(validation_set, frontend, device)
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
        loss = reconstruction_loss(self.network, self.validation_windows)
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
            "rng": rng_states(self.device),
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
        set_rng_states(state["rng"], self.device)


def _split_recordings(
    recordings: list[TrainingRecording],
    config: TrainingConfig,
    speakers: Mapping[str, str] | None,
    split: tuple[list[str], list[str]] | None,
) -> tuple[list[TrainingRecording], list[TrainingRecording]]:
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


def _fitted_config(base: FrontEndConfig, train_set: Sequence[TrainingRecording]) -> FrontEndConfig:
    """``base`` with the min-max scaling constants of the training windows' log-Mel."""
    low = min(float(np.min(r.log_mel[r.kept])) for r in train_set)
    high = max(float(np.max(r.log_mel[r.kept])) for r in train_set)
    return replace(base, min_scaler=low, max_scaler=high)


def _metadata(run: _Run, data_sha256: str, skipped: Mapping[str, str], split_by: str) -> dict[str, str]:
    from speechae.version import __version__

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
    architecture: str | None = DEFAULTS.architecture,
    bottleneck: int | None = DEFAULTS.bottleneck,
    epochs: int = DEFAULTS.epochs,
    learning_rate: float | None = DEFAULTS.learning_rate,
    batch_size: int = DEFAULTS.batch_size,
    seed: int = DEFAULTS.seed,
    device: str | torch.device = "cpu",
    validation_fraction: float = DEFAULTS.validation_fraction,
    speakers: Mapping[str | os.PathLike[str], str] | None = None,
    init: str | os.PathLike[str] | None = DEFAULTS.init,
    fit_scaling: bool = DEFAULTS.fit_scaling,
    patience: int = DEFAULTS.patience,
    mixed_precision: bool = DEFAULTS.mixed_precision,
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
    for target in (output, *paths_beside(output)[1:]):  # before any training, not after it
        check_target(target)
    config, initial = TrainingConfig(
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
        init=init,
    ).resolved(device)
    files = [os.fspath(file) for file in files]
    speaker_of = None if speakers is None else speakers_by_name(files, speakers)
    checkpoint_path, loss_csv, loss_png = paths_beside(output)
    state = read_checkpoint(checkpoint_path, config) if resume else None
    if state is None and checkpoint_path.exists():
        raise ParameterError(
            f"a checkpoint of an interrupted run exists in {checkpoint_path.parent}; continue it with "
            "--resume (resume=True) or delete the folder to start anew"
        )
    base = DEFAULT_FRONTEND if initial is None else frontend_config(initial.metadata)
    cache = None if spectrogram_cache is None else Path(spectrogram_cache)
    recordings, skipped = load_recordings(files, base, cache)
    split = None if state is None else state["split"]
    train_set, validation_set = _split_recordings(recordings, config, speaker_of, split)
    if state is not None:
        scaled = replace(base, min_scaler=state["scaling"][0], max_scaler=state["scaling"][1])
    else:
        scaled = _fitted_config(base, train_set) if config.fit_scaling else base
    progress = on_progress or log_progress
    with reproducible(device, config.seed):
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
            save_checkpoint(run.checkpoint(), checkpoint_path)
            progress(epoch, run.n_batches, run.n_batches, record.train_loss, record.validation_loss)
    metadata = _metadata(run, data_sha256(recordings), skipped, "file" if speakers is None else "speaker")
    save_weights({k: v.cpu() for k, v in run.best_state.items()}, output, metadata)
    write_loss_csv(run.history, loss_csv)
    write_loss_png(run.history, run.best_epoch, loss_png)
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
