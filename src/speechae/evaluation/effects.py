"""How measures differ between classes, on one value per group so that no speaker counts twice.

For each measure (a Mel band's mean reconstruction error, a recording-quality measure), every
group's recordings are averaged first. Then

- binary task: Cohen's d, the difference of the class means (positive minus negative) over the
  pooled standard deviation, with the p-value of Student's two-sample t-test;
- regression: Spearman's rho between the measure and the group's mean target, with its p-value;
- multi-class: eta squared (the share of variance between classes) with one-way ANOVA's p-value.

q-values are the Benjamini-Hochberg adjusted p-values over the measures compared together.

Example:
    >>> values = pd.DataFrame({"band": [1.0, 1.2, 3.0, 3.1, 2.9, 1.1]})
    >>> classes = pd.Series([0, 0, 1, 1, 1, 0]); groups = pd.Series(list("abcdef"))
    >>> effects = group_effects(values, classes, groups, task="binary")
    >>> float(round(effects.loc["band", "effect_size"], 1))
    19.0
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["benjamini_hochberg", "group_effects"]

EFFECT_COLUMNS = ["effect_size", "p_value", "q_value"]


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values; NaN p-values stay NaN and do not count.

    Example:
        >>> benjamini_hochberg(np.array([0.01, 0.04, np.nan, 0.03]))
        array([0.03, 0.04,  nan, 0.04])
    """
    p_values = np.asarray(p_values, float)
    q_values = np.full(p_values.shape, np.nan)
    finite = np.isfinite(p_values)
    if finite.any():
        q_values[finite] = stats.false_discovery_control(p_values[finite], method="bh")
    return q_values


def _cohen_d(positive: np.ndarray, negative: np.ndarray) -> tuple[float, float]:
    n1, n0 = len(positive), len(negative)
    if n1 < 2 or n0 < 2:
        return np.nan, np.nan
    pooled = np.sqrt(((n1 - 1) * positive.var(ddof=1) + (n0 - 1) * negative.var(ddof=1)) / (n1 + n0 - 2))
    if pooled == 0:  # each class constant: apart entirely, or not at all
        difference = positive.mean() - negative.mean()
        return (np.nan, np.nan) if difference == 0 else (float(np.copysign(np.inf, difference)), 0.0)
    return float((positive.mean() - negative.mean()) / pooled), float(
        stats.ttest_ind(positive, negative).pvalue
    )


def _spearman(values: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    if len(values) < 3 or np.ptp(values) == 0 or np.ptp(target) == 0:
        return np.nan, np.nan
    result = stats.spearmanr(values, target)
    return float(result.statistic), float(result.pvalue)


def _eta_squared(values: np.ndarray, classes: np.ndarray) -> tuple[float, float]:
    samples = [values[classes == value] for value in np.unique(classes)]
    total = ((values - values.mean()) ** 2).sum()
    if total == 0 or any(len(sample) < 2 for sample in samples):
        return np.nan, np.nan
    between = sum(len(sample) * (sample.mean() - values.mean()) ** 2 for sample in samples)
    return float(between / total), float(stats.f_oneway(*samples).pvalue)


def group_effects(values: pd.DataFrame, target: pd.Series, groups: pd.Series, *, task: str) -> pd.DataFrame:
    """``effect_size``, ``p_value`` and ``q_value`` of each column of ``values`` (rows: recordings).

    Args:
        values: one column per measure, one row per recording (NaN: not measured, left out).
        target: per recording; for a binary task 1 marks the positive class.
        groups: per recording; each group's recordings are averaged before comparing.
        task: ``"binary"``, ``"multiclass"`` or ``"regression"``.

    Returns:
        a table indexed by the columns of ``values``.
    """
    keys = np.asarray(groups)
    per_group = values.groupby(keys).mean()
    truth = pd.Series(np.asarray(target), index=keys)
    truth = truth.groupby(level=0).mean() if task == "regression" else truth.groupby(level=0).first()
    truth = truth.loc[per_group.index].to_numpy()
    rows = []
    for column in per_group.columns:
        measured = per_group[column].to_numpy(float)
        finite = np.isfinite(measured)
        measured, classes = measured[finite], truth[finite]
        if task == "binary":
            rows.append(_cohen_d(measured[classes == 1], measured[classes == 0]))
        elif task == "regression":
            rows.append(_spearman(measured, classes.astype(float)))
        else:
            rows.append(_eta_squared(measured, classes))
    effects = pd.DataFrame(rows, index=per_group.columns, columns=EFFECT_COLUMNS[:2])
    effects["q_value"] = benjamini_hochberg(effects["p_value"].to_numpy())
    return effects
