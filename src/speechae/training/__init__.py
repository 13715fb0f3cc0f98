"""Training CAE and RAE autoencoders on your own recordings, with the extraction front-end.

Windows go straight from audio through the same front-end as extraction (read -> condition ->
frame -> log-Mel); a window whose Mel power has a value <= 0 is dropped, as at extraction. Each
recording's log-Mel windows are kept in memory (about 0.9 GB per hour of audio), or memory-mapped
from one ``.npy`` file per recording when ``spectrogram_cache`` names a folder. Files are split
into training and validation sets by file, or by speaker, deterministically from the seed. The
loss is the original recipe's: mean squared error between the min-max scaled log-Mel input and
its reconstruction, minimised with Adam.

After every epoch a checkpoint is written atomically to ``<output>.checkpoints/`` (and removed
when the run finishes); a run that was interrupted continues with ``resume=True`` and, on the CPU
with the same settings, ends with exactly the weights an uninterrupted run gives. The finished
model is a safetensors file that :func:`speechae.weights.load_model` and
:class:`speechae.Extractor` read, with the loss history as CSV and PNG beside it.

The modules, each named for what it owns: :mod:`~speechae.training.config` (settings, records,
results), :mod:`~speechae.training.data` (log-Mel windows and their cache),
:mod:`~speechae.training.split` (training and validation sets),
:mod:`~speechae.training.checkpoints` (checkpoints and random state),
:mod:`~speechae.training.artefacts` (loss curves) and :mod:`~speechae.training.loop` (the loop).

Example:
    >>> result = train(["a.wav", "b.wav", "c.wav"], output="mine.safetensors")  # doctest: +SKIP
    >>> Extractor(result.output, level="dynamic").process_file("d.wav")  # doctest: +SKIP
"""

from __future__ import annotations

from speechae.training.config import (
    DEFAULT_LEARNING_RATES,
    EpochRecord,
    ProgressCallback,
    TrainingConfig,
    TrainingResult,
    log_progress,
)
from speechae.training.data import log_mel_windows
from speechae.training.loop import evaluate, train
from speechae.training.split import read_speaker_manifest, split_files

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
