"""What a finished training run leaves beside its model: loss curves (CSV and PNG) and metadata."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from speechae.atomic import atomic_path
from speechae.training.checkpoints import CHECKPOINT_FILE
from speechae.training.config import EpochRecord
from speechae.training.data import TrainingRecording

__all__ = ["data_sha256", "paths_beside", "write_loss_csv", "write_loss_png"]


def data_sha256(recordings: Iterable[TrainingRecording]) -> str:
    """One hash of the recordings' contents, whatever their order."""
    return hashlib.sha256("\n".join(sorted(r.sha256 for r in recordings)).encode()).hexdigest()


def paths_beside(output: Path) -> tuple[Path, Path, Path]:
    """The checkpoint, loss CSV and loss PNG paths of ``output``."""
    stem = output.with_suffix("")
    checkpoint = output.with_name(f"{output.name}.checkpoints") / CHECKPOINT_FILE
    return checkpoint, stem.with_name(f"{stem.name}.loss.csv"), stem.with_name(f"{stem.name}.loss.png")


def write_loss_csv(history: Sequence[EpochRecord], target: Path) -> None:
    """One row per epoch: training and validation loss."""
    with atomic_path(target) as partial, partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "train_loss", "validation_loss"])
        writer.writerows((r.epoch, repr(r.train_loss), repr(r.validation_loss)) for r in history)


def write_loss_png(history: Sequence[EpochRecord], best_epoch: int, target: Path) -> None:
    """The loss curves, the best epoch marked."""
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
