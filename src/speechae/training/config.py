"""The settings of a training run, what it records per epoch, and what it returns.

:class:`TrainingConfig` holds the settings as asked (``None`` where a default depends on the
architecture or the initial model) and, once :meth:`TrainingConfig.resolved`, as used: that is the
form a checkpoint stores and a resumed run must match.

Example:
    >>> TrainingConfig(architecture="rae").resolved()[0].learning_rate
    0.001
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from speechae.errors import ParameterError, check_counts
from speechae.models import ARCHITECTURES
from speechae.weights import LoadedModel, load_model

__all__ = [
    "DEFAULT_LEARNING_RATES",
    "EpochRecord",
    "ProgressCallback",
    "TrainingConfig",
    "TrainingResult",
    "check_fraction",
    "log_progress",
]

DEFAULT_ARCHITECTURE = "cae"
DEFAULT_BOTTLENECK = 256
DEFAULT_LEARNING_RATES: dict[str, float] = {"cae": 1e-4, "rae": 1e-3}

ProgressCallback = Callable[[int, int, int, float, float | None], None]
"""``on_progress(epoch, batch, n_batches, train_loss, validation_loss)``.

Called after every training batch with the mean training loss of the epoch so far and
``validation_loss=None``, and at the end of every epoch with ``batch == n_batches``, the epoch's
training loss and its validation loss. Epoch 0 is the model before training: ``(0, 0, 0, nan,
validation_loss)``.
"""


@dataclass(frozen=True)
class TrainingConfig:
    """The settings of a training run (see :func:`speechae.training.train` for each).

    ``architecture``, ``bottleneck`` and ``learning_rate`` left ``None`` take their defaults
    (``"cae"``, 256, and 1e-4 for the CAE or 1e-3 for the RAE), or the initial model's.
    """

    architecture: str | None = None
    bottleneck: int | None = None
    epochs: int = 50
    learning_rate: float | None = None
    batch_size: int = 16
    seed: int = 0
    validation_fraction: float = 0.2
    patience: int = 10
    fit_scaling: bool = False
    mixed_precision: bool = False
    init: str | None = None

    def to_dict(self) -> dict[str, str | int | float | bool | None]:
        """Return the settings as a plain dictionary."""
        return asdict(self)

    def resolved(self, device: str | torch.device = "cpu") -> tuple[TrainingConfig, LoadedModel | None]:
        """The settings checked, with every default filled in, and the initial model on ``device``.

        Raises:
            ParameterError: a setting out of range, or one that contradicts the initial model.
        """
        if self.architecture is not None and self.architecture not in ARCHITECTURES:
            raise ParameterError(
                f"architecture must be one of {sorted(ARCHITECTURES)}, not {self.architecture!r}"
            )
        if self.bottleneck is not None:
            check_counts(bottleneck=self.bottleneck)
        check_counts(epochs=self.epochs, batch_size=self.batch_size, patience=self.patience)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ParameterError(f"seed must be a non-negative integer, not {self.seed!r}")
        rate = self.learning_rate
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise ParameterError(f"learning_rate must be a positive number, not {rate!r}")
        check_fraction(self.validation_fraction)
        init = None if self.init is None else os.fspath(self.init)
        initial = None if init is None else load_model(init, device=device)
        architecture, bottleneck = self.architecture, self.bottleneck
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
        architecture = architecture or DEFAULT_ARCHITECTURE
        resolved = replace(
            self,
            architecture=architecture,
            bottleneck=bottleneck or DEFAULT_BOTTLENECK,
            learning_rate=rate or DEFAULT_LEARNING_RATES[architecture],
            init=init,
        )
        return resolved, initial


def check_fraction(validation_fraction: float) -> None:
    """Refuse a validation share outside (0, 1)."""
    if not 0 < validation_fraction < 1:
        raise ParameterError(
            f"validation_fraction must be between 0 and 1 (exclusive), not {validation_fraction!r}"
        )


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
