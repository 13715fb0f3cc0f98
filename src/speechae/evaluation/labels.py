"""Labels for an evaluation: matched to the rows of a features table, checked before any work.

A labels file (CSV, TSV or Parquet) has a ``file`` column and the target and group columns. Its
files are matched to the table's ``file`` values with the rules of the corpus runner's inputs
(:func:`speechae.inputs.item_key`: relative to ``root`` when it is given, else to the labels
file's folder), or as written. A row with a group and no file labels every file of that group;
a file not listed by itself belongs to the group named by one of its folders.

Example:
    >>> import pandas as pd
    >>> table = pd.DataFrame({"mean_error_0": [1.0, 2.0, 3.0]},
    ...                      index=pd.Index(["s1/a.wav", "s1/b.wav", "s2/a.wav"], name="file"))
    >>> labels = pd.DataFrame({"file": [None, None], "speaker": ["s1", "s2"], "pd": ["yes", "no"]})
    >>> matched = match_labels(table, labels, target="pd", group="speaker")
    >>> matched.target.tolist(), matched.groups.tolist()
    (['yes', 'yes', 'no'], ['s1', 's1', 's2'])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from speechae.errors import LabelsError, ParameterError
from speechae.inputs import item_key, read_manifest

__all__ = ["TASKS", "Labelled", "check_labels", "choose_task", "match_labels", "read_labels"]

#: What ``--task`` accepts; ``auto`` decides from the target's values (see :func:`choose_task`).
TASKS = ("auto", "classification", "regression")

#: Most classes a non-numeric target may have for ``auto`` to call it a classification.
MOST_CLASSES = 10


@dataclass
class Labelled:
    """The rows of a features table that have labels, with their labels.

    Attributes:
        features: the table's rows that have labels, in the table's order.
        target: the target of each row.
        groups: the group (e.g. speaker) of each row, as text.
        split: the predefined fold of each row (``--split``), or None.
        covariates: further columns of the labels asked for, one row per table row.
        warnings: ``{"kind": "labels", "message": ...}`` for what was left out.
    """

    features: pd.DataFrame
    target: pd.Series
    groups: pd.Series
    split: pd.Series | None = None
    covariates: pd.DataFrame = field(default_factory=pd.DataFrame)
    warnings: list[dict[str, str]] = field(default_factory=list)


def read_labels(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The labels file's table (CSV, TSV or Parquet; a byte-order mark is ignored).

    Raises:
        ParameterError: the file is missing or cannot be parsed.
    """
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"{path}: no such labels file")
    return read_manifest(path, kind="labels file")


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == ""


def _file_keys(table: pd.DataFrame) -> pd.Index:
    return table.index.get_level_values("file") if "file" in table.index.names else table.index


def match_labels(
    table: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    target: str,
    group: str,
    root: str | os.PathLike[str] | None = None,
    base: str | os.PathLike[str] = ".",
    split: str | None = None,
    covariates: Sequence[str] = (),
    name: str = "labels",
) -> Labelled:
    """Give each row of ``table`` (indexed by ``file``, maybe with segments) its labels.

    Args:
        table: a static features table as :func:`speechae.writers.read_table` reads it.
        labels: a ``file`` column (rows without one label a whole group), ``target`` and ``group``.
        root: the ``--root`` of the extraction, so that label paths are keyed as its files were.
        base: the folder relative paths in ``labels`` start from when there is no ``root``.
        target: the column to predict.
        group: the column of the groups (e.g. speakers) whose files stay together.
        split: a column of predefined folds.
        covariates: further columns to carry along.
        name: how messages name the labels (its file).

    Raises:
        LabelsError: a column is missing, a file or group has two different targets, or no
            row of the table has a label.
    """
    needed = [target, group, *([split] if split else []), *covariates]
    missing = [column for column in ("file", *needed) if column not in labels.columns]
    if missing:
        raise LabelsError(
            f"{name}: no column {', '.join(map(repr, missing))} (found {', '.join(map(str, labels.columns))})"
        )
    keys = set(_file_keys(table))
    root_path = Path(root) if root is not None else None
    start = root_path if root_path is not None else Path(base)
    by_file: dict[str, dict] = {}
    by_group: dict[str, dict] = {}
    unmatched = 0
    for row, record in enumerate(labels[["file", *dict.fromkeys(needed)]].to_dict("records"), start=2):
        if _blank(record[group]):
            raise LabelsError(f"{name}, row {row}: no {group!r} (every labelled file needs a group)")
        record[group] = str(record[group])
        if _blank(record["file"]):
            _merge(by_group, record[group], record, f"{name}: the group {record[group]}")
            continue
        entry = str(record["file"])
        candidates = (PurePosixPath(entry.replace(os.sep, "/")).as_posix(), item_key(entry, start, root_path))
        key = next((candidate for candidate in candidates if candidate in keys), None)
        if key is None:
            unmatched += 1
            continue
        _merge(by_file, key, record, f"{name}: the file {key}")
    rows = {
        key: _labels_of(key, by_file.get(key), by_group, group) for key in dict.fromkeys(_file_keys(table))
    }
    labelled = {
        key: record for key, record in rows.items() if record is not None and not _blank(record[target])
    }
    kept = np.array([key in labelled for key in _file_keys(table)], dtype=bool)
    if not kept.any():
        raise LabelsError(f"{name}: no file of the features table has a label in {target!r}")
    warnings = _left_out(unmatched, int((~kept).sum()), len(rows) - len(labelled), name)
    features = table[kept]
    chosen = [labelled[key] for key in _file_keys(features)]
    column = lambda c: pd.Series([record[c] for record in chosen], index=features.index, name=c)  # noqa: E731
    return Labelled(
        features=features,
        target=column(target),
        groups=column(group),
        split=column(split) if split else None,
        covariates=pd.DataFrame({c: column(c) for c in covariates}, index=features.index),
        warnings=warnings,
    )


def _merge(known: dict[str, dict], key: str, record: dict, where: str) -> None:
    """Add ``record`` under ``key``; a value that contradicts an earlier row of it is an error."""
    earlier = known.setdefault(key, {})
    for column, value in record.items():
        if _blank(value) or column == "file":
            continue
        if column in earlier and earlier[column] != value:
            raise LabelsError(f"{where} has two values of {column!r}: {earlier[column]!r} and {value!r}")
        earlier[column] = value


def _labels_of(key: str, own: dict | None, by_group: dict[str, dict], group: str) -> dict | None:
    """A file's labels: its own row's, completed by its group's row."""
    if own is None:
        folders = PurePosixPath(key).parts[:-1]
        named = [folder for folder in folders if folder in by_group]
        if len(named) != 1:
            return None
        own = {group: named[0]}
    merged = dict(by_group.get(own[group], {}))
    for column, value in own.items():
        if column in merged and merged[column] != value:
            raise LabelsError(
                f"the file {key} has {column}={value!r} but its group {own[group]} has {merged[column]!r}"
            )
        merged[column] = value
    return merged


def _left_out(unmatched: int, rows_without: int, files_without: int, name: str) -> list[dict[str, str]]:
    warnings = []
    if unmatched:
        warnings.append(
            f"{unmatched} file(s) in {name} have no features (not extracted, or they failed) and are left out"
        )
    if rows_without:
        warnings.append(
            f"{files_without} file(s) of the features table ({rows_without} row(s)) have no label "
            "and are left out"
        )
    return [{"kind": "labels", "message": message} for message in warnings]


def choose_task(target: pd.Series, task: str = "auto") -> str:
    """``"binary"``, ``"multiclass"`` or ``"regression"`` for ``target`` and the ``--task`` asked.

    ``auto``: two distinct values are a binary classification, 3 to :data:`MOST_CLASSES`
    non-numeric values a multi-class one, numbers otherwise a regression.

    Example:
        >>> choose_task(pd.Series(["PD", "HC", "PD"])), choose_task(pd.Series([12.0, 30.5, 7.0]))
        ('binary', 'regression')

    Raises:
        LabelsError: the target cannot be that task (or ``auto`` cannot tell).
    """
    if task not in TASKS:
        raise LabelsError(f"the task must be one of {', '.join(TASKS)}, not {task!r}")
    values = target.dropna().unique()
    numeric = pd.api.types.is_numeric_dtype(pd.Series(list(values)).infer_objects())
    if len(values) < 2:
        raise LabelsError(
            f"the target {target.name!r} has one value only ({values[0]!r}): nothing to tell apart"
        )
    if task == "regression" or (task == "auto" and numeric and len(values) > 2):
        if not numeric:
            raise LabelsError(f"the target {target.name!r} is not numeric, so it cannot be a regression")
        return "regression"
    if task == "auto" and len(values) > MOST_CLASSES:
        raise LabelsError(
            f"the target {target.name!r} has {len(values)} non-numeric values: too many classes for "
            "--task auto (give --task classification to insist)"
        )
    return "binary" if len(values) == 2 else "multiclass"


def check_labels(labelled: Labelled, task: str, *, folds: int | None, name: str = "labels") -> None:
    """Refuse labels a grouped cross-validation cannot use, in one sentence each, before any work.

    A group in two classes (or two predefined folds), a single class, and a class with fewer
    groups than folds are refused (``folds`` is None for predefined folds).

    Raises:
        LabelsError: naming the group or class and what to do.
    """
    groups = labelled.groups
    columns = [("predefined folds", labelled.split)] if labelled.split is not None else []
    if task != "regression":
        columns.insert(0, ("classes", labelled.target))
    for what, values in columns:
        spread = values.astype(str).groupby(groups).unique()
        mixed = spread[spread.map(len) > 1]
        if len(mixed):
            raise LabelsError(
                f"{name}: the group {mixed.index[0]} has files in two {what} ({', '.join(mixed.iloc[0])}); "
                "a group's files must be on one side of every test"
            )
    if task == "regression":
        return
    per_class = labelled.target.groupby(groups).first().value_counts()
    if len(per_class) < 2:
        raise LabelsError(
            f"{name}: every labelled file is of the class {per_class.index[0]!r}: nothing to tell apart"
        )
    if folds is not None and per_class.min() < folds:
        raise LabelsError(
            f"{name}: the class {per_class.idxmin()!r} has {per_class.min()} group(s), fewer than the "
            f"{folds} folds (every test fold needs one): use --folds {max(per_class.min(), 2)} or label more "
            "groups"
        )
