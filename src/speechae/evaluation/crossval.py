"""Grouped cross-validation: folds that never split a group, a searched model, its predictions.

The models are those of the papers these features come from: an RBF support-vector machine on
standardised features (a support-vector regression for a numeric target), or a logistic
regression. Missing values (the skewness and kurtosis of a recording with one window) are
replaced by the training folds' median. C (and gamma) are chosen in each training fold by an
inner grouped cross-validation, so the test fold never takes part in the choice.

Example:
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(12), 3)
    >>> target = (groups % 2).astype(int)
    >>> values = rng.standard_normal((36, 5)) + target[:, None]
    >>> folds = assign_folds(target, groups, folds=3, seed=0)
    >>> predicted = predict(values, target, groups, folds, task="binary", model="logistic", seed=0)
    >>> bool((predicted.prediction == target).mean() > 0.8)
    True
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

import numpy as np

from speechae.errors import MissingDependencyError, ParameterError

__all__ = ["MODELS", "Predictions", "assign_folds", "predict", "require_scikit_learn", "strata"]

#: What ``--model`` accepts: an RBF SVM (SVR for regression), or a logistic regression.
MODELS = ("svm", "logistic")

#: The grids searched in each training fold.
GRIDS = {
    "svm": {"C": [0.1, 1.0, 10.0, 100.0], "gamma": [1e-5, 1e-4, 1e-3, 1e-2]},
    "logistic": {"C": [1e-4, 1e-3, 1e-2, 1e-1, 1.0]},
}

#: Most folds of the inner search (fewer when a class of the training fold has fewer groups).
INNER_FOLDS = 3

#: Bins of a numeric target that its folds are stratified by.
REGRESSION_STRATA = 5


def require_scikit_learn(what: str = "an evaluation") -> None:
    """Refuse at once, with how to install it, when scikit-learn (the ``[ml]`` extra) is missing.

    scikit-learn is imported where it is used, so that the rest of speechae works without it.

    Raises:
        MissingDependencyError: naming ``what`` needs it.
    """
    if importlib.util.find_spec("sklearn") is None:
        raise MissingDependencyError(f"{what} needs scikit-learn: pip install 'speechae[ml]'")


@dataclass
class Predictions:
    """What a cross-validation predicted for each row.

    Attributes:
        fold: the 0-based test fold of each row.
        prediction: the predicted class (1/0 for a binary task) or value.
        score: the decision score (binary: higher for the positive class; multi-class: one
            column per class; regression: the predicted value).
        chosen: the parameters chosen in each fold.
        warnings: ``{"kind": "model", ...}`` where a fold could not search its parameters.
    """

    fold: np.ndarray
    prediction: np.ndarray
    score: np.ndarray
    chosen: list[dict[str, object]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)


def strata(target: np.ndarray, groups: np.ndarray, task: str) -> np.ndarray:
    """What folds are stratified by: the class, or the quantile bin of the group's mean target."""
    if task != "regression":
        return target
    means = {group: np.mean(target[groups == group]) for group in np.unique(groups)}
    per_group = np.array([means[group] for group in groups])
    edges = np.quantile(list(means.values()), np.linspace(0, 1, REGRESSION_STRATA + 1)[1:-1])
    return np.searchsorted(edges, per_group)


def assign_folds(stratum: np.ndarray, groups: np.ndarray, *, folds: int, seed: int) -> np.ndarray:
    """The 0-based test fold of each row: stratified, and every group in one fold only.

    Raises:
        ParameterError: fewer than 2 folds, or more folds than groups.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if folds < 2 or folds > len(np.unique(groups)):
        raise ParameterError(
            f"--folds must lie between 2 and the {len(np.unique(groups))} groups, not {folds}"
        )
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold = np.empty(len(groups), dtype=int)
    for number, (_, test) in enumerate(splitter.split(np.zeros(len(groups)), stratum, groups)):
        fold[test] = number
    return fold


def _estimator(task: str, model: str) -> tuple[object, dict[str, list]]:
    """The pipeline of one fold and its parameter grid."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, SVR

    if model not in MODELS:
        raise ParameterError(f"the model must be one of {', '.join(MODELS)}, not {model!r}")
    if task == "regression":
        if model != "svm":
            raise ParameterError(
                "a numeric target is predicted by a support-vector regression: use --model svm"
            )
        core = TransformedTargetRegressor(regressor=SVR(kernel="rbf"), transformer=StandardScaler())
        prefix = "transformedtargetregressor__regressor__"
    elif model == "svm":
        core, prefix = SVC(kernel="rbf", class_weight="balanced"), "svc__"
    else:
        core, prefix = LogisticRegression(class_weight="balanced", max_iter=5000), "logisticregression__"
    pipeline = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), core)
    return pipeline, {prefix + name: values for name, values in GRIDS[model].items()}


def _fitted(
    values, target, groups, stratum, task: str, model: str, seed: int
) -> tuple[object, dict, str | None]:
    """The fold's model fitted on its training rows, the parameters chosen, and why none were searched."""
    from sklearn.model_selection import GridSearchCV, GroupKFold, StratifiedGroupKFold

    pipeline, grid = _estimator(task, model)
    per_stratum = [len(np.unique(groups[stratum == value])) for value in np.unique(stratum)]
    inner = min(INNER_FOLDS, min(per_stratum) if task != "regression" else len(np.unique(groups)))
    if inner < 2:
        pipeline.fit(values, target)
        return pipeline, {}, "a class of the training fold has one group, so its defaults were kept"
    if task == "regression":
        splitter = GroupKFold(n_splits=inner, shuffle=True, random_state=seed)
    else:
        splitter = StratifiedGroupKFold(n_splits=inner, shuffle=True, random_state=seed)
    scoring = "neg_mean_absolute_error" if task == "regression" else "balanced_accuracy"
    search = GridSearchCV(pipeline, grid, cv=splitter, scoring=scoring)
    search.fit(values, target, groups=groups)
    chosen = {name.rsplit("__", 1)[1]: value for name, value in search.best_params_.items()}
    return search.best_estimator_, chosen, None


def predict(
    values: np.ndarray,
    target: np.ndarray,
    groups: np.ndarray,
    fold: np.ndarray,
    *,
    task: str,
    model: str,
    seed: int,
) -> Predictions:
    """Predict each fold's rows from a model fitted (and searched) on the other folds.

    ``target`` is 1/0 for a binary task (1: positive), classes for a multi-class one, numbers
    for a regression.
    """
    n_classes = len(np.unique(target)) if task == "multiclass" else 1
    prediction = np.empty(len(target), dtype=target.dtype if task != "regression" else float)
    score = np.empty((len(target), n_classes) if task == "multiclass" else len(target))
    stratum = strata(target, groups, task)
    chosen, warnings = [], []
    for number in np.unique(fold):
        train, test = fold != number, fold == number
        fitted, parameters, why = _fitted(
            values[train], target[train], groups[train], stratum[train], task, model, seed
        )
        chosen.append(parameters)
        if why:
            warnings.append({"kind": "model", "message": f"fold {number}: {why}"})
        prediction[test] = fitted.predict(values[test])
        score[test] = prediction[test] if task == "regression" else fitted.decision_function(values[test])
    return Predictions(fold, prediction, score, chosen, warnings)
