"""Training data: every usable recording's log-Mel windows, read once through the extraction front-end.

Each recording is read and conditioned as at extraction (:mod:`speechae.recordings`) and its
windows put through the same log-Mel front-end (:func:`speechae.pipeline.frontend_chunks`),
unscaled; a window with a Mel value <= 0 is NaN and left out. The windows stay in memory, or in
one ``.npy`` file per recording in a cache folder (memory-mapped, also by later runs).

Example:
    >>> rng = np.random.default_rng(0)
    >>> log_mel_windows(rng.standard_normal(16000), 16000).shape
    (3, 128, 126)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from speechae.atomic import atomic_path
from speechae.audio import audio_duration, file_sha256
from speechae.engine import run_autoencoder
from speechae.errors import AudioError, DroppedWindowsWarning, SkippedFileWarning, all_dropped, warn
from speechae.frontend import DEFAULT_FRONTEND, FrontEndConfig, LogMelFrontEnd, window_count
from speechae.pipeline import frontend_chunks
from speechae.recordings import Recording, read_recording, signal_recording

__all__ = ["CACHE_FORMAT", "Windows", "load_recordings", "log_mel_windows", "reconstruction_loss"]

CACHE_FORMAT = "speechae-log-mel-1"


@dataclass
class TrainingRecording:
    """The log-Mel windows of one file; ``log_mel`` may be memory-mapped from the cache."""

    name: str
    sha256: str
    duration: float
    log_mel: np.ndarray
    kept: np.ndarray


def log_mel_windows(
    signal: np.ndarray, sampling_rate: int, *, config: FrontEndConfig = DEFAULT_FRONTEND
) -> np.ndarray:
    """Unscaled log-Mel spectrogram of every window of a signal, as extraction computes it.

    Windows the front-end drops (a Mel value <= 0) are NaN.

    Args:
        signal: samples ``(samples,)`` or ``(samples, channels)`` at ``sampling_rate``.
        sampling_rate: in Hz.
        config: front-end settings; the scaling constants are not used.

    Returns:
        float32 array ``(windows, n_mels, n_frames)``.

    Raises:
        AudioError: the signal is too short, silent or not finite.
    """
    with signal_recording(signal, sampling_rate, config=config) as recording:
        return _recording_log_mel(recording, config)


def _recording_log_mel(recording: Recording, config: FrontEndConfig) -> np.ndarray:
    # Scaling constants 0 and 1 make the front-end's min-max scaling the identity.
    frontend = LogMelFrontEnd(replace(config, min_scaler=0.0, max_scaler=1.0))
    n_windows = window_count(len(recording.signal), config=config)
    result = np.empty((n_windows, config.n_mels, config.n_frames), dtype=np.float32)
    for first, log_mel, valid in frontend_chunks(recording.signal, frontend):
        log_mel[~valid] = math.nan
        result[first : first + len(log_mel)] = log_mel[:, 0].numpy()
    return result


def _cache_key(sha256: str, config: FrontEndConfig) -> str:
    from speechae.version import __version__

    settings = {key: value for key, value in config.to_dict().items() if not key.endswith("_scaler")}
    text = json.dumps([CACHE_FORMAT, __version__, sha256, settings], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _file_log_mel(path: Path, sha256: str, config: FrontEndConfig, cache: Path | None) -> np.ndarray:
    cached = None if cache is None else cache / f"{_cache_key(sha256, config)}.npy"
    if cached is not None and cached.is_file():
        return np.load(cached, mmap_mode="r")
    with read_recording(path, config=config) as recording:
        log_mel = _recording_log_mel(recording, config)
    if cached is None:
        return log_mel

    with atomic_path(cached) as partial, partial.open("wb") as handle:
        np.save(handle, log_mel)
    return np.load(cached, mmap_mode="r")


def load_recordings(
    files: Iterable[str | os.PathLike[str]], config: FrontEndConfig, cache: Path | None
) -> tuple[list[TrainingRecording], dict[str, str]]:
    """Log-Mel windows of every usable file and, for the others, why they were left out."""
    recordings: list[TrainingRecording] = []
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
                raise all_dropped(str(path), len(log_mel))
            duration = audio_duration(path)
        except AudioError as error:
            skipped[name] = str(error)
            continue
        first_with[sha256] = name
        recordings.append(TrainingRecording(name, sha256, duration, log_mel, kept))
    for reason in skipped.values():
        warn(SkippedFileWarning(f"{reason}; the file is left out"))
    dropped = {r.name: len(r.log_mel) - len(r.kept) for r in recordings if len(r.kept) < len(r.log_mel)}
    if dropped:
        warn(
            DroppedWindowsWarning(
                f"{sum(dropped.values())} windows in {len(dropped)} of the files (e.g. "
                f"{next(iter(dropped))}) are left out because their Mel spectrogram has values <= 0 "
                "(digital silence)"
            )
        )
    return recordings, skipped


class Windows:
    """The kept windows of several recordings, scaled; reads by position (the engine's ``WindowInputs``)."""

    def __init__(
        self, recordings: list[TrainingRecording], frontend: LogMelFrontEnd, device: torch.device
    ) -> None:
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


def reconstruction_loss(network: nn.Module, windows: Windows) -> float:
    """Mean squared error per window, with each file's BatchNorm statistics as at extraction."""
    network.eval()
    with torch.inference_mode():
        file_index = torch.from_numpy(windows.owner).to(windows.device)
        output = run_autoencoder(network, windows, file_index)
    return output.error.double().mean().item()
