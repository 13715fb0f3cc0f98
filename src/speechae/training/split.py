"""Splitting files into training and validation sets, by file or by speaker.

Example:
    >>> split_files(["a", "b", "c", "d", "e"], validation_fraction=0.4, seed=0)
    (['a', 'b', 'd'], ['c', 'e'])
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from speechae.errors import ParameterError
from speechae.training.config import check_fraction

__all__ = ["read_speaker_manifest", "speakers_by_name", "split_files"]


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


def _resolved(file: str | os.PathLike[str]) -> Path:
    return Path(file).expanduser().resolve()


def _require_speakers(files: Iterable[str], speakers: Mapping[str, str]) -> None:
    unknown = [file for file in files if file not in speakers]
    if unknown:
        raise ParameterError(
            f"no speaker is given for {unknown[0]!r} ({len(unknown)} files lack one); "
            "add every file to the speaker mapping"
        )


def speakers_by_name(files: Sequence[str], speakers: Mapping[str | os.PathLike[str], str]) -> dict[str, str]:
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
    check_fraction(validation_fraction)
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
