"""From a features table and labels to findings: grouped cross-validation and per-band effects.

:func:`evaluate` reads a static table that ``speechae extract`` wrote and a labels file, checks
the labels, cross-validates a model with folds that never split a group, and measures for each
Mel band how its mean reconstruction error differs with the target, one value per group.
:func:`write_evaluation` writes ``RESULTS.json`` and its side files.

Example:
    >>> result = evaluate("features.parquet", "labels.csv", target="diagnosis",
    ...                   group="speaker")  # doctest: +SKIP
    >>> result.metrics["balanced_accuracy"]  # doctest: +SKIP
    {'value': 0.81, 'ci95': [0.7, 0.9]}
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from speechae.atomic import atomic_path, check_target
from speechae.corpus.claims import check_apart
from speechae.corpus.sidecars import sidecar_path
from speechae.errors import LabelsError, ParameterError
from speechae.evaluation.confounds import (
    chance_level,
    confound_message,
    covariate_columns,
    numeric_measures,
    quality_rows,
    read_quality,
)
from speechae.evaluation.crossval import (
    GRIDS,
    MODELS,
    Predictions,
    assign_folds,
    predict,
    require_scikit_learn,
    strata,
)
from speechae.evaluation.effects import group_effects
from speechae.evaluation.labels import Labelled, check_labels, choose_task, match_labels, read_labels
from speechae.evaluation.metrics import (
    HEADLINE,
    binary_metrics,
    bootstrap_intervals,
    multiclass_metrics,
    regression_metrics,
)
from speechae.features import static_feature_names
from speechae.frontend import DEFAULT_FRONTEND, mel_band_edges
from speechae.inputs import Item
from speechae.version import __version__
from speechae.writers import read_table

__all__ = [
    "AGGREGATES",
    "Evaluation",
    "check_evaluation_paths",
    "evaluate",
    "evaluation_paths",
    "evaluation_text",
    "write_evaluation",
]

#: What ``--aggregate`` accepts: metrics per recording only, or per group (speaker) too.
AGGREGATES = ("recording", "group")

#: A band (or measure) whose q-value is below this is marked significant.
SIGNIFICANCE = 0.05

BAND_COLUMNS = ["band", "centre_hz", "effect_size", "p_value", "q_value"]


@dataclass
class Evaluation:
    """What :func:`evaluate` found; :meth:`results` is the content of ``RESULTS.json``.

    Attributes:
        task: ``"binary"``, ``"multiclass"`` or ``"regression"``.
        positive_class: the positive class of a binary task (None otherwise).
        metrics: ``{name: {"value": v, "ci95": [low, high]}}`` per recording.
        metrics_by_group: the same on each group's mean decision score (``aggregate="group"``).
        confusion_matrix: ``{"labels": [...], "matrix": [[...]]}``, rows true, columns predicted,
            summed over repeats (None for a regression).
        permutation_p: the p-value of the headline metric from group-respecting permutations.
        predictions: one row per recording and repeat: ``file`` (``start``, ``end`` for segments),
            ``group``, ``target``, ``fold``, (``repeat``), ``prediction``, ``score``.
        bands: ``band, centre_hz, effect_size, p_value, q_value``, one row per Mel band.
        warnings: ``{"kind": ..., "message": ...}``.
        details: settings, model, counts and version, as written to the results.
        confounds: ``{measure: {"effect_size", "p_value", "q_value"}}`` of the channel measures
            and covariates between the classes (see :mod:`speechae.evaluation.confounds`).
        quality_only: the headline metric of the same cross-validation on those measures alone.
    """

    task: str
    positive_class: object
    metrics: dict[str, dict[str, object]]
    metrics_by_group: dict[str, dict[str, object]] | None
    confusion_matrix: dict[str, list] | None
    permutation_p: float | None
    predictions: pd.DataFrame
    bands: pd.DataFrame
    warnings: list[dict[str, str]] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)
    confounds: dict[str, dict[str, float]] | None = None
    quality_only: dict[str, dict[str, object]] | None = None

    @property
    def headline(self) -> str:
        """The metric the report leads with: balanced accuracy, or Spearman's rho for a regression."""
        return HEADLINE[self.task]

    def folds(self) -> dict[str, int]:
        """The test fold of each recording in the first repeat, named as in the features table."""
        predictions = self.predictions
        first = predictions[predictions["repeat"] == 0] if "repeat" in predictions else predictions
        return {_row_name(row): int(row["fold"]) for row in first.to_dict("records")}

    def results(self) -> dict[str, object]:
        """The results as ``RESULTS.json`` holds them (undefined numbers are None)."""
        return _finite(
            {
                "task": self.task,
                "positive_class": self.positive_class,
                "metrics": self.metrics,
                **({"metrics_by_group": self.metrics_by_group} if self.metrics_by_group is not None else {}),
                "confusion_matrix": self.confusion_matrix,
                **({"permutation_p": self.permutation_p} if self.permutation_p is not None else {}),
                **({"confounds": self.confounds} if self.confounds is not None else {}),
                **({"quality_only": self.quality_only} if self.quality_only is not None else {}),
                "folds": self.folds(),
                "warnings": self.warnings,
                **self.details,
            }
        )


def _row_name(row: dict) -> str:
    if "start" not in row:
        return str(row["file"])
    start, end = (
        None if value is None or pd.isna(value) else float(value) for value in (row["start"], row["end"])
    )
    return (
        Item(row["file"], row["file"], start, end).kaldi_key if (start, end) != (None, None) else row["file"]
    )


def _finite(value: object) -> object:
    """``value`` with NaN and infinities as None and NumPy scalars as Python numbers (JSON)."""
    if isinstance(value, dict):
        return {str(key): _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _static_table(features: pd.DataFrame, name: str) -> pd.DataFrame:
    """The static table with DisVoice's column names (a Kaldi table has none: they are implied)."""
    if any(str(column).startswith(("bottleneck_", "error_")) for column in features.columns):
        raise ParameterError(f"{name}: a per-window table; evaluate needs per-file features (--level static)")
    if not all(isinstance(column, str) for column in features.columns):
        width = features.shape[1] // 4 - DEFAULT_FRONTEND.n_mels
        names = static_feature_names(width, DEFAULT_FRONTEND.n_mels)
        if width < 1 or len(names) != features.shape[1] or features.index.duplicated().any():
            raise ParameterError(f"{name}: not a static features table ({features.shape[1]} columns per row)")
        features = features.set_axis(names, axis=1)
    if f"mean_error_{DEFAULT_FRONTEND.n_mels - 1}" not in features.columns:
        raise ParameterError(f"{name}: not a static features table of speechae (no mean_error_ columns)")
    return features


def _encoded(labelled: Labelled, task: str, positive: object) -> tuple[np.ndarray, object, list[str]]:
    """The target as the models take it, the positive class (binary) and the classes in order."""
    text = labelled.target.astype(str)
    if task == "regression":
        return labelled.target.to_numpy(float), None, []
    classes = sorted(text.unique())
    if task == "multiclass":
        return text.to_numpy(), None, classes
    if positive is None:
        counts = text.value_counts()
        positive = sorted(counts.index, key=lambda value: (counts[value], value))[0]  # the less frequent
    elif str(positive) not in classes:
        raise LabelsError(
            f"--positive {positive}: not a value of the target (its values: {', '.join(classes)})"
        )
    positive = str(positive)
    originals = dict(zip(text, labelled.target, strict=True))
    negative = next(value for value in classes if value != positive)
    return (text == positive).to_numpy(int), originals[positive], [negative, positive]


def _metric_functions(task: str, classes: list[str]):
    if task == "binary":
        return binary_metrics
    return multiclass_metrics(classes) if task == "multiclass" else regression_metrics


def _binary_score(score: np.ndarray, task: str) -> np.ndarray | None:
    return score if task == "binary" else None


def _by_group(
    runs: list[Predictions], truth: np.ndarray, groups: np.ndarray, task: str, classes: list[str]
) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray | None]], np.ndarray]:
    """Each repeat's ``(truth, prediction, score)`` per group, from its recordings' mean score."""
    names, codes = np.unique(groups, return_inverse=True)
    count = np.bincount(codes)
    first = np.array([np.flatnonzero(codes == code)[0] for code in range(len(names))])
    columns = []
    for run in runs:
        score = run.score.reshape(len(truth), -1)
        mean = np.stack(
            [np.bincount(codes, weights=score[:, k]) / count for k in range(score.shape[1])], axis=1
        )
        if task == "binary":
            columns.append((truth[first], (mean[:, 0] > 0).astype(int), mean[:, 0]))
        elif task == "multiclass":
            columns.append((truth[first], np.asarray(classes)[mean.argmax(axis=1)], None))
        else:
            columns.append((np.bincount(codes, weights=truth) / count, mean[:, 0], None))
    return columns, names


def evaluate(
    features: str | os.PathLike[str] | pd.DataFrame,
    labels: str | os.PathLike[str] | pd.DataFrame,
    *,
    target: str,
    group: str,
    root: str | os.PathLike[str] | None = None,
    task: str = "auto",
    positive: object = None,
    folds: int = 5,
    repeats: int = 1,
    seed: int = 0,
    split: str | None = None,
    model: str = MODELS[0],
    permutations: int = 0,
    aggregate: str = AGGREGATES[0],
    covariates: Sequence[str] = (),
    quality: pd.DataFrame | None = None,
) -> Evaluation:
    """Cross-validate ``model`` on the labelled rows of ``features`` and measure per-band effects.

    Args:
        features: a static table that ``speechae extract`` wrote (any format), or that table.
        labels: a labels file (CSV, TSV, Parquet) or table: ``file``, ``target``, ``group``
            columns (see :mod:`speechae.evaluation.labels`).
        target: the labels column to predict.
        group: the labels column of the groups kept together (e.g. the speaker).
        root: the ``--root`` the features were extracted with (label paths are keyed alike).
        task: ``"auto"``, ``"classification"`` or ``"regression"``.
        positive: the positive class of a binary task (default: the less frequent one).
        folds: stratified, grouped folds.
        repeats: the cross-validation repeated with other shuffles of the folds.
        seed: seeds the folds, the inner searches, the bootstrap and the permutations.
        split: a labels column of predefined folds (instead of ``folds``), e.g. a corpus name.
        model: ``"svm"`` (RBF SVM, SVR for a regression) or ``"logistic"``.
        permutations: label permutations, respecting the groups, for the headline metric's p-value.
        aggregate: ``"group"`` also reports metrics on each group's mean decision score.
        covariates: labels columns (age, sex, ...) compared between the classes with the channel
            measures, and used with them alone as features (see
            :mod:`~speechae.evaluation.confounds`).
        quality: the features' quality table (``OUT.quality.csv``); read from beside
            ``features`` when it is a path.

    Raises:
        LabelsError: labels that cannot be used (see :func:`~speechae.evaluation.labels.check_labels`).
        ParameterError: a setting out of range, or a table that is not static features.
    """
    require_scikit_learn()
    if aggregate not in AGGREGATES:
        raise ParameterError(f"--aggregate must be one of {', '.join(AGGREGATES)}, not {aggregate!r}")
    if repeats < 1 or permutations < 0:
        raise ParameterError(
            f"--repeats must be at least 1 and --permutations at least 0, not {repeats}, {permutations}"
        )
    if split is not None and repeats > 1:
        raise ParameterError("predefined folds (--split) cannot be repeated with other shuffles (--repeats)")
    features_name = "features" if isinstance(features, pd.DataFrame) else os.fspath(features)
    table = _static_table(
        features if isinstance(features, pd.DataFrame) else read_table(features), features_name
    )
    labels_name = "labels" if isinstance(labels, pd.DataFrame) else os.fspath(labels)
    base = Path(".") if isinstance(labels, pd.DataFrame) else Path(labels).parent
    labelled = match_labels(
        table,
        labels if isinstance(labels, pd.DataFrame) else read_labels(labels),
        target=target,
        group=group,
        root=root,
        base=base,
        split=split,
        covariates=covariates,
        name=labels_name,
    )
    task = choose_task(labelled.target, task)
    check_labels(labelled, task, folds=None if split else folds, name=labels_name)
    truth, positive_class, classes = _encoded(labelled, task, positive)
    groups = labelled.groups.to_numpy(str)
    values = labelled.features.to_numpy(float)
    warnings = list(labelled.warnings)
    missing = int(np.isnan(values).any(axis=1).sum())
    if missing:
        warnings.append(
            {
                "kind": "imputed",
                "message": f"{missing} recording(s) have undefined features (a single window: no skewness or "
                "kurtosis); each is replaced by the median of the training folds",
            }
        )
    if split is not None:
        names = sorted(labelled.split.astype(str).unique())
        fold_sets = [np.searchsorted(names, labelled.split.astype(str).to_numpy())]
        if len(names) < 2:
            raise LabelsError(f"{labels_name}: the column {split!r} names one fold only: nothing to test on")
    else:
        stratum = strata(truth, groups, task)
        fold_sets = [
            assign_folds(stratum, groups, folds=folds, seed=seed + repeat) for repeat in range(repeats)
        ]
    runs = [predict(values, truth, groups, fold, task=task, model=model, seed=seed) for fold in fold_sets]
    for run in runs:
        warnings.extend(run.warnings)
    settings = {
        "features": features_name,
        "labels": labels_name,
        "target": target,
        "group": group,
        "root": None if root is None else os.fspath(root),
        "folds": None if split else folds,
        "repeats": repeats,
        "seed": seed,
        "split": split,
        "model": model,
        "permutations": permutations,
        "aggregate": aggregate,
    }
    metric = _metric_functions(task, classes)
    columns = [(truth, run.prediction, _binary_score(run.score, task)) for run in runs]
    metrics = bootstrap_intervals(metric, columns, groups, seed=seed)
    metrics_by_group = None
    if aggregate == "group":
        grouped, group_names = _by_group(runs, truth, groups, task, classes)
        metrics_by_group = bootstrap_intervals(metric, grouped, group_names, seed=seed)
    if quality is None and not isinstance(features, pd.DataFrame):
        quality = read_quality(features)
    if quality is None:
        warnings.append(
            {
                "kind": "quality",
                "message": f"no quality measures beside {features_name} (FEATURES.quality.csv, written by "
                "speechae extract): the recording channels of the classes were not compared",
            }
        )
    confounds, quality_only = _confounds(
        labelled, quality, covariates, truth, groups, fold_sets, task, classes, model, seed, warnings
    )
    permutation_p = None
    if permutations:
        permutation_p = _permutation_p(
            values, truth, groups, fold_sets[0], columns[0], task, model, seed, permutations, metric
        )
    return Evaluation(
        task=task,
        positive_class=positive_class,
        metrics=metrics,
        metrics_by_group=metrics_by_group,
        confusion_matrix=_confusion(runs, truth, task, classes),
        permutation_p=permutation_p,
        predictions=_predictions(labelled, runs, truth, task, classes),
        bands=_bands(labelled, truth, task),
        warnings=warnings,
        details=_details(labelled, task, classes, truth, runs, settings),
        confounds=confounds,
        quality_only=quality_only,
    )


def _confounds(
    labelled: Labelled,
    quality: pd.DataFrame | None,
    covariates: Sequence[str],
    truth: np.ndarray,
    groups: np.ndarray,
    fold_sets: list[np.ndarray],
    task: str,
    classes: list[str],
    model: str,
    seed: int,
    warnings: list[dict[str, str]],
) -> tuple[dict | None, dict | None]:
    """The effects of the channel measures and covariates, and their headline metric alone.

    A ``confound`` warning goes first into ``warnings`` when they separate or differ between the
    classes.
    """
    channel = quality_rows(quality, labelled.features.index) if quality is not None else None
    measures = numeric_measures(channel, covariate_columns(labelled.covariates, covariates))
    if not measures.shape[1]:
        return None, None
    effects = group_effects(measures, pd.Series(truth, index=measures.index), labelled.groups, task=task)
    usable = measures.loc[:, measures.notna().any() & (measures.nunique() > 1)]
    quality_only, separable = None, None
    if usable.shape[1]:
        metric, headline = _metric_functions(task, classes), HEADLINE[task]
        runs = [
            predict(usable.to_numpy(float), truth, groups, fold, task=task, model=model, seed=seed)
            for fold in fold_sets
        ]
        columns = [(truth, run.prediction, _binary_score(run.score, task)) for run in runs]
        quality_only = {headline: bootstrap_intervals(metric, columns, groups, seed=seed)[headline]}
        value, (low, high) = quality_only[headline]["value"], quality_only[headline]["ci95"]
        if np.isfinite(low) and low > chance_level(task, len(classes)):
            separable = f"{headline} {value:.2f}, 95 % CI {low:.2f} to {high:.2f}"
    differing = [str(name) for name, row in effects.iterrows() if row["q_value"] < SIGNIFICANCE]
    message = confound_message(separable, differing)
    if message:
        warnings.insert(0, {"kind": "confound", "message": message})
    return {str(name): row.to_dict() for name, row in effects.iterrows()}, quality_only


def _permutation_p(values, truth, groups, fold, observed, task, model, seed, permutations, metric) -> float:
    """The share of group-respecting label permutations whose headline metric reaches the observed one.

    Each group's label moves as a whole (a regression's groups swap their mean targets); the folds
    of the first repeat are kept. ``(1 + reached) / (1 + permutations)``.
    """
    headline = HEADLINE[task]
    reference = metric(*observed)[headline]
    names, codes = np.unique(groups, return_inverse=True)
    per_group = (
        np.bincount(codes, weights=truth) / np.bincount(codes)
        if task == "regression"
        else np.array([truth[codes == code][0] for code in range(len(names))])
    )
    generator = np.random.default_rng(seed)
    reached = 0
    for _ in range(permutations):
        shuffled = generator.permutation(per_group)[codes]
        run = predict(values, shuffled, groups, fold, task=task, model=model, seed=seed)
        value = metric(shuffled, run.prediction, _binary_score(run.score, task))[headline]
        reached += bool(np.isfinite(value) and value >= reference)
    return (1 + reached) / (1 + permutations)


def _labels_of(encoded: np.ndarray, task: str, classes: list[str]) -> np.ndarray:
    return np.asarray(classes, dtype=object)[encoded] if task == "binary" else encoded


def _confusion(runs: list[Predictions], truth: np.ndarray, task: str, classes: list[str]) -> dict | None:
    if task == "regression":
        return None
    position = {value: k for k, value in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=int)
    for run in runs:
        pairs = zip(_labels_of(truth, task, classes), _labels_of(run.prediction, task, classes), strict=True)
        for true, predicted in pairs:
            matrix[position[true], position[predicted]] += 1
    return {"labels": classes, "matrix": matrix.tolist()}


def _predictions(
    labelled: Labelled, runs: list[Predictions], truth: np.ndarray, task: str, classes: list[str]
) -> pd.DataFrame:
    index = labelled.features.index.to_frame(index=False)
    keep = ["file", *[name for name in ("start", "end") if name in index.columns]]
    frames = []
    for repeat, run in enumerate(runs):
        frame = index[keep].copy()
        frame["group"] = labelled.groups.to_numpy()
        frame["target"] = labelled.target.to_numpy()
        frame["fold"] = run.fold
        if len(runs) > 1:
            frame["repeat"] = repeat
        if task == "multiclass":
            frame["prediction"] = run.prediction
            frame["score"] = run.score.max(axis=1)
        else:
            frame["prediction"] = (
                _labels_of(run.prediction, task, classes) if task == "binary" else run.prediction
            )
            frame["score"] = run.score
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _bands(labelled: Labelled, truth: np.ndarray, task: str) -> pd.DataFrame:
    """The effect of the target on each Mel band's mean reconstruction error, one value per group."""
    n_mels = DEFAULT_FRONTEND.n_mels
    errors = labelled.features[[f"mean_error_{band}" for band in range(n_mels)]]
    effects = group_effects(errors, pd.Series(truth, index=errors.index), labelled.groups, task=task)
    effects.insert(0, "centre_hz", mel_band_edges(config=DEFAULT_FRONTEND)[1:-1])
    effects.insert(0, "band", np.arange(n_mels))
    return effects.reset_index(drop=True)[BAND_COLUMNS]


def _details(
    labelled: Labelled,
    task: str,
    classes: list[str],
    truth: np.ndarray,
    runs: list[Predictions],
    settings: dict[str, object],
) -> dict[str, object]:
    groups = labelled.groups.to_numpy(str)
    counts: dict[str, object] = {"recordings": len(groups), "groups": len(np.unique(groups))}
    if task != "regression":
        names = _labels_of(truth, task, classes)
        counts["classes"] = {
            value: {
                "recordings": int((names == value).sum()),
                "groups": len(np.unique(groups[names == value])),
            }
            for value in classes
        }
    model = settings["model"]
    described = {
        "svm": "support-vector regression (RBF) on standardised features and target"
        if task == "regression"
        else "support-vector machine (RBF, balanced class weights) on standardised features",
        "logistic": "logistic regression (L2, balanced class weights) on standardised features",
    }[model]
    return {
        "settings": settings,
        "model": {
            "name": model,
            "description": described + "; missing values replaced by the training median; parameters "
            "chosen by an inner grouped cross-validation in each training fold",
            "grid": GRIDS[model],
            "chosen": [run.chosen for run in runs],
        },
        "counts": counts,
        "version": __version__,
    }


def evaluation_paths(output: str | os.PathLike[str]) -> dict[str, Path]:
    """The files an evaluation writes: ``results``, ``bands`` and ``predictions``.

    Example:
        >>> print(*(path.name for path in evaluation_paths("out/results.json").values()))
        results.json results.json.bands.csv results.json.predictions.csv
    """
    output = Path(output)
    return {
        "results": output,
        "bands": sidecar_path(output, "bands"),
        "predictions": sidecar_path(output, "predictions"),
    }


def check_evaluation_paths(
    output: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    *,
    report: str | os.PathLike[str] | None = None,
) -> None:
    """Refuse, before any work, outputs that would replace an input or cannot be written.

    Raises:
        ParameterError: naming the path and why.
    """
    written = [*evaluation_paths(output).values(), *([Path(report)] if report is not None else [])]
    check_apart(written, inputs)
    for path in written:
        check_target(path)


def write_evaluation(
    evaluation: Evaluation, output: str | os.PathLike[str], *, inputs: Sequence[str | os.PathLike[str]] = ()
) -> dict[str, Path]:
    """Write ``RESULTS.json``, ``RESULTS.json.bands.csv`` and ``RESULTS.json.predictions.csv``.

    ``inputs`` (the features and labels files) are never overwritten. Each file appears complete
    or not at all.

    Raises:
        ParameterError: an output path is an input or cannot be written.
    """
    check_evaluation_paths(output, inputs)
    paths = evaluation_paths(output)
    with atomic_path(paths["bands"]) as partial:
        evaluation.bands.to_csv(partial, index=False)
    with atomic_path(paths["predictions"]) as partial:
        evaluation.predictions.to_csv(partial, index=False)
    with atomic_path(paths["results"]) as partial:
        partial.write_text(
            json.dumps(evaluation.results(), indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
    return paths


def evaluation_text(evaluation: Evaluation, written: Sequence[str | os.PathLike[str]] = ()) -> str:
    """A few lines for the end of ``speechae evaluate``: what was evaluated, the metrics, the files.

    The warnings follow the metrics, a ``confound`` warning first.
    """
    counts = evaluation.details.get("counts", {})
    task = evaluation.task + (
        f", positive class {evaluation.positive_class!r}" if evaluation.task == "binary" else ""
    )
    lines = [f"task: {task}; {counts.get('recordings')} recordings of {counts.get('groups')} groups"]
    for title, metrics in (("", evaluation.metrics), (" per group", evaluation.metrics_by_group)):
        for name, metric in (metrics or {}).items():
            low, high = (f"{bound:.3f}" if np.isfinite(bound) else "-" for bound in metric["ci95"])
            value = f"{metric['value']:.3f}" if np.isfinite(metric["value"]) else "undefined"
            lines.append(f"{name}{title}: {value} (95 % CI {low} to {high})")
    if evaluation.permutation_p is not None:
        lines.append(f"permutation p-value of {evaluation.headline}: {evaluation.permutation_p:.3g}")
    significant = int((evaluation.bands["q_value"] < SIGNIFICANCE).sum())
    lines.append(
        f"Mel bands whose error differs (q < {SIGNIFICANCE}): {significant} of {len(evaluation.bands)}"
    )
    if evaluation.quality_only:
        alone = evaluation.quality_only[evaluation.headline]
        lines.append(
            f"{evaluation.headline} of the channel measures and covariates alone: {alone['value']:.3f}"
        )
    lines += [f"warning ({w['kind']}): {w['message']}" for w in evaluation.warnings]
    lines += [f"wrote {os.fspath(path)}" for path in written]
    return "\n".join(lines)
