"""Whether the classes differ by how they were recorded: channel measures and covariates as confounds.

The channel measures of :mod:`speechae.quality` (``OUT.quality.csv`` beside the features) and the
covariates named from the labels (age, sex, ...) are compared between the classes as the band
effects are, one value per group, and are used alone as features in the same grouped
cross-validation. When they alone separate the classes (the interval of the headline metric lies
above chance), or one of them differs after correction, the evaluation warns (kind ``confound``):
the features may then tell recording set-ups apart rather than speech.

Example:
    >>> table = pd.DataFrame({"age": [61, 70, 58], "sex": ["f", "m", "f"]})
    >>> covariate_columns(table, ["age", "sex"]).columns.tolist()
    ['age', 'sex=m']
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from speechae.corpus.sidecars import sidecar_path
from speechae.quality import CHANNEL_MEASURES

__all__ = [
    "CHANCE",
    "chance_level",
    "confound_message",
    "covariate_columns",
    "numeric_measures",
    "quality_rows",
    "read_quality",
]

#: The headline metric's value by chance: balanced accuracy 1/classes, Spearman's rho 0.
CHANCE = {
    "binary": lambda classes: 0.5,
    "multiclass": lambda classes: 1 / classes,
    "regression": lambda _: 0.0,
}


def read_quality(features: str | os.PathLike[str]) -> pd.DataFrame | None:
    """``FEATURES.quality.csv`` beside a features table, or None where there is none."""
    path = sidecar_path(Path(features), "quality")
    if not path.is_file():
        return None
    return pd.read_csv(path, dtype={"file": str}, keep_default_na=True)


def quality_rows(quality: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    """The channel measures of each row of a features table (``index``: its index), NaN where missing.

    A table of whole recordings is matched by ``file``; one of segments by ``file, start, end``.
    """
    names = [name for name in ("file", "start", "end") if name in (index.names or [])]
    keyed = quality.set_index(names if len(names) > 1 else "file")
    keyed = keyed[~keyed.index.duplicated(keep="first")]
    return keyed.reindex(index)[list(CHANNEL_MEASURES)].astype(float)


def covariate_columns(labels: pd.DataFrame, covariates: Sequence[str]) -> pd.DataFrame:
    """Numeric columns of the covariates: numbers as they are, each other value as a 0/1 column.

    A categorical covariate of k values gives k - 1 indicator columns ``name=value`` (the first
    value in sorted order is the reference).
    """
    columns = {}
    for name in covariates:
        values = labels[name]
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().sum() == values.notna().sum():
            columns[name] = numeric.astype(float)
            continue
        present = values.notna()
        for category in sorted(values[present].astype(str).unique())[1:]:
            columns[f"{name}={category}"] = (values.astype(str) == category).astype(float).where(present)
    return pd.DataFrame(columns, index=labels.index)


def chance_level(task: str, classes: int) -> float:
    """What the headline metric reaches by chance for ``task`` with ``classes`` classes."""
    return CHANCE[task](classes)


def confound_message(separable: str | None, differing: list[str]) -> str | None:
    """The ``confound`` warning's message, or None when there is nothing to warn of."""
    parts = []
    if separable:
        parts.append(f"the channel measures and covariates alone separate the classes ({separable})")
    if differing:
        parts.append(f"the classes differ in {', '.join(differing)} (q < 0.05)")
    if not parts:
        return None
    return (
        "; ".join(parts)
        + ": the features may tell recording set-ups apart rather than speech (record the classes on "
        "one channel, or compare on a common one with speechae extract --lowpass)"
    )


def numeric_measures(quality: pd.DataFrame | None, covariates: pd.DataFrame) -> pd.DataFrame:
    """The measures compared between classes: channel measures (when known), then covariates."""
    frames = [frame for frame in (quality, covariates) if frame is not None and frame.shape[1]]
    if not frames:
        return pd.DataFrame(index=covariates.index)
    return pd.concat(frames, axis=1).astype(float)
