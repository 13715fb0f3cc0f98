"""Metrics of predictions, with confidence intervals by bootstrap over groups.

Each metric is a plain function of ``(truth, prediction, score)`` arrays, written with NumPy so
that a thousand bootstrap resamples take moments; the tests check each against scikit-learn's
own function. A metric that is undefined on its data (AUC with one class, a correlation of a
constant) is NaN, which the results file writes as ``null``.

Example:
    >>> truth, score = np.array([0, 0, 1, 1]), np.array([-1.0, 0.5, 0.2, 2.0])
    >>> binary_metrics(truth, (score > 0).astype(int), score)["roc_auc"]
    0.75
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

__all__ = [
    "HEADLINE",
    "binary_metrics",
    "bootstrap_intervals",
    "multiclass_metrics",
    "regression_metrics",
]

#: The metric a permutation test and the report lead with, per task.
HEADLINE = {"binary": "balanced_accuracy", "multiclass": "balanced_accuracy", "regression": "spearman_r"}

#: Bootstrap resamples of the groups for each confidence interval.
RESAMPLES = 1000

Metrics = Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, float]]


def _recall(truth: np.ndarray, prediction: np.ndarray, value: object) -> float:
    chosen = truth == value
    return float(np.mean(prediction[chosen] == value)) if chosen.any() else np.nan


def _auc(truth: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a positive scores above a negative (ties: half)."""
    positives = int(truth.sum())
    negatives = len(truth) - positives
    if positives == 0 or negatives == 0:
        return np.nan
    ranks = stats.rankdata(score)
    return float((ranks[truth == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def binary_metrics(truth: np.ndarray, prediction: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """``accuracy``, ``balanced_accuracy`` (UAR), ``roc_auc``, ``sensitivity``, ``specificity``.

    ``truth`` and ``prediction`` are 1 for the positive class, 0 otherwise; ``score`` is higher
    for the positive class.
    """
    sensitivity, specificity = _recall(truth, prediction, 1), _recall(truth, prediction, 0)
    return {
        "accuracy": float(np.mean(truth == prediction)),
        "balanced_accuracy": float(np.nanmean([sensitivity, specificity]))
        if np.isfinite([sensitivity, specificity]).any()
        else np.nan,
        "roc_auc": _auc(truth, score),
        "sensitivity": sensitivity,
        "specificity": specificity,
    }


def multiclass_metrics(classes: Sequence[object]) -> Metrics:
    """The metrics of a multi-class task: ``accuracy``, ``balanced_accuracy``, ``recall_<class>``.

    Example:
        >>> metrics = multiclass_metrics(["a", "b", "c"])
        >>> truth = np.array(["a", "b", "c", "c"])
        >>> metrics(truth, np.array(["a", "c", "c", "c"]), None)["balanced_accuracy"]
        0.6666666666666666
    """

    def metrics(truth: np.ndarray, prediction: np.ndarray, score: object) -> dict[str, float]:
        recalls = {f"recall_{value}": _recall(truth, prediction, value) for value in classes}
        present = [recall for recall in recalls.values() if np.isfinite(recall)]
        return {
            "accuracy": float(np.mean(truth == prediction)),
            "balanced_accuracy": float(np.mean(present)) if present else np.nan,
            **recalls,
        }

    return metrics


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan
    return float(np.corrcoef(x, y)[0, 1])


def regression_metrics(truth: np.ndarray, prediction: np.ndarray, score: object = None) -> dict[str, float]:
    """``spearman_r``, ``pearson_r`` and ``mae`` (mean absolute error) of predicted values."""
    truth, prediction = np.asarray(truth, float), np.asarray(prediction, float)
    return {
        "spearman_r": _correlation(stats.rankdata(truth), stats.rankdata(prediction)),
        "pearson_r": _correlation(truth, prediction),
        "mae": float(np.mean(np.abs(truth - prediction))),
    }


def bootstrap_intervals(
    metrics: Metrics,
    columns: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    groups: np.ndarray,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict[str, dict[str, object]]:
    """Each metric's value and 95 % interval, resampling whole groups with replacement.

    ``columns`` holds ``(truth, prediction, score)`` of each repeat of a cross-validation, rows
    aligned with ``groups``; a metric's value (and each resample's) is its mean over repeats.
    The interval is the 2.5th to 97.5th percentile of the resamples where the metric is defined.

    Returns:
        ``{metric: {"value": v, "ci95": [low, high]}}``, NaN where undefined.
    """
    _, codes = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(codes == code) for code in range(codes.max() + 1)]

    def averaged(rows: np.ndarray | slice) -> dict[str, float]:
        per_repeat = [metrics(t[rows], p[rows], None if s is None else s[rows]) for t, p, s in columns]
        return {
            name: float(np.nanmean(values)) if np.isfinite(values).any() else np.nan
            for name, values in ((name, [r[name] for r in per_repeat]) for name in per_repeat[0])
        }

    value = averaged(slice(None))
    generator = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {name: [] for name in value}
    for _ in range(resamples):
        chosen = generator.integers(0, len(members), len(members))
        for name, metric in averaged(np.concatenate([members[g] for g in chosen])).items():
            samples[name].append(metric)
    intervals = {}
    for name, metric in value.items():
        finite = np.asarray(samples[name])[np.isfinite(samples[name])]
        low, high = np.percentile(finite, [2.5, 97.5]) if len(finite) else (np.nan, np.nan)
        intervals[name] = {"value": metric, "ci95": [float(low), float(high)]}
    return intervals
