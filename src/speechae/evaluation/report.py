"""A self-contained HTML page of an evaluation: metrics, ROC curve, confusion matrix, band effects.

Warnings come first, next to the headline metric, so that nobody reads the number without them.
With ``anonymise`` every file and group name on the page is replaced by a stable code (the same
name always gets the same code), since labels of clinical recordings identify people.

Example:
    >>> write_evaluation_report(evaluation, "results.html", anonymise=True)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os

import pandas as pd
from matplotlib.figure import Figure

from speechae import pages
from speechae.evaluation.evaluate import SIGNIFICANCE, Evaluation

__all__ = ["anonymous_code", "write_evaluation_report"]

FIGURE_DPI = 100


def anonymous_code(name: str, prefix: str) -> str:
    """A stable code for ``name``: ``prefix`` and the first 8 hex digits of its sha256.

    Example:
        >>> anonymous_code("spk01", "S")
        'S-e1eddf34'
    """
    return f"{prefix}-{hashlib.sha256(name.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"


def _named(predictions: pd.DataFrame, anonymise: bool) -> pd.DataFrame:
    if not anonymise:
        return predictions
    named = predictions.copy()
    named["file"] = [anonymous_code(str(file), "F") for file in named["file"]]
    named["group"] = [anonymous_code(str(group), "S") for group in named["group"]]
    return named


def _interval(metric: dict[str, object]) -> str:
    low, high = metric["ci95"]
    return f"{pages.number(metric['value'], '.3f')} [{pages.number(low, '.3f')}, {pages.number(high, '.3f')}]"


def _headline(evaluation: Evaluation) -> str:
    name = evaluation.headline
    lines = [f"<p><strong>{pages.escape(name)}: {pages.escape(_interval(evaluation.metrics[name]))}</strong>"]
    if evaluation.task == "binary":
        lines.append(f" (positive class: {pages.escape(evaluation.positive_class)})")
    if evaluation.permutation_p is not None:
        lines.append(f"; permutation p = {evaluation.permutation_p:.3g}")
    lines.append("</p>")
    warnings = "".join(
        f"<li><strong>{pages.escape(w['kind'])}</strong>: {pages.escape(w['message'])}</li>"
        for w in evaluation.warnings
    )
    if warnings:
        lines.append(f'<p class="note">Warnings:</p><ul>{warnings}</ul>')
    return f'<section id="headline"><h2>Result</h2>{"".join(lines)}</section>'


def _metrics(evaluation: Evaluation) -> str:
    tables = []
    for title, metrics in (("per recording", evaluation.metrics), ("per group", evaluation.metrics_by_group)):
        if metrics is None:
            continue
        rows = (
            (
                ("text", pages.escape(name)),
                ("number", pages.number(metric["value"], ".3f")),
                ("number", pages.number(metric["ci95"][0], ".3f")),
                ("number", pages.number(metric["ci95"][1], ".3f")),
            )
            for name, metric in metrics.items()
        )
        tables.append(f"<h3>{title}</h3>" + pages.table(("metric", "value", "95 % CI low", "high"), rows))
    note = (
        '<p class="note">Confidence intervals: 2.5th and 97.5th percentiles of 1000 bootstrap resamples '
        "of whole groups.</p>"
    )
    return f'<section id="metrics"><h2>Metrics</h2>{note}{"".join(tables)}</section>'


def _roc(evaluation: Evaluation) -> str:
    from sklearn.metrics import roc_curve

    first = evaluation.predictions
    first = first[first["repeat"] == 0] if "repeat" in first else first
    truth = (first["target"].astype(str) == str(evaluation.positive_class)).to_numpy(int)
    false_positive, true_positive, _ = roc_curve(truth, first["score"].to_numpy(float))
    figure = Figure(figsize=(4.2, 4.0), layout="constrained")
    axes = figure.add_subplot()
    axes.plot(false_positive, true_positive, color="#1f5fa8", drawstyle="steps-post")
    axes.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=0.8)
    axes.set(xlabel="1 - specificity", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.01))
    auc = pages.escape(_interval(evaluation.metrics["roc_auc"]))
    return (
        f'<section id="roc"><h2>ROC curve</h2><p class="note">AUC {auc} (first repeat\'s folds).</p>'
        f"{pages.png(figure, FIGURE_DPI, 'ROC curve of the cross-validated scores')}</section>"
    )


def _confusion(evaluation: Evaluation) -> str:
    labels, matrix = evaluation.confusion_matrix["labels"], evaluation.confusion_matrix["matrix"]
    rows = (
        (("text", pages.escape(label)), *(("number", str(count)) for count in counts))
        for label, counts in zip(labels, matrix, strict=True)
    )
    content = pages.table(("true \\ predicted", *map(str, labels)), rows)
    return f'<section id="confusion"><h2>Confusion matrix</h2>{content}</section>'


def _confounds(evaluation: Evaluation) -> str:
    headline = evaluation.headline
    alone = (evaluation.quality_only or {}).get(headline)
    note = (
        '<p class="note">The recordings\' channel measures and the covariates, compared between the '
        "classes on one value per group"
        + (
            f"; alone, in the same cross-validation, they reach {headline} {_interval(alone)}"
            if alone
            else ""
        )
        + ".</p>"
    )
    rows = (
        (
            ("text", pages.escape(name)),
            ("number", pages.number(effect["effect_size"], ".3g")),
            ("number", pages.number(effect["p_value"], ".3g")),
            ("number", pages.number(effect["q_value"], ".3g")),
        )
        for name, effect in evaluation.confounds.items()
    )
    content = pages.table(("measure", "effect size", "p", "q"), rows)
    return f'<section id="confounds"><h2>Recording channel and covariates</h2>{note}{content}</section>'


def _bands(evaluation: Evaluation) -> str:
    bands = evaluation.bands
    significant = bands["q_value"] < SIGNIFICANCE
    figure = Figure(figsize=(8.0, 3.4), layout="constrained")
    axes = figure.add_subplot()
    axes.plot(bands["centre_hz"], bands["effect_size"], color="#1f5fa8", linewidth=1.2)
    axes.scatter(
        bands.loc[significant, "centre_hz"],
        bands.loc[significant, "effect_size"],
        color="#c0392b",
        s=14,
        zorder=3,
        label=f"q < {SIGNIFICANCE}",
    )
    axes.axhline(0, color="#999999", linewidth=0.8)
    measure = {"binary": "Cohen's d", "regression": "Spearman's rho", "multiclass": "eta squared"}
    axes.set(xlabel="Mel band centre (Hz)", ylabel=measure[evaluation.task], xlim=(0, None))
    if significant.any():
        axes.legend(loc="best", frameon=False)
    note = (
        f'<p class="note">The effect of the target on each band\'s mean reconstruction error, on one value '
        f"per group (the mean of its recordings); {int(significant.sum())} of {len(bands)} bands have a "
        f"Benjamini-Hochberg q-value below {SIGNIFICANCE}.</p>"
    )
    content = pages.png(figure, FIGURE_DPI, "per-band effect sizes against frequency")
    return f'<section id="bands"><h2>Effects per Mel band</h2>{note}{content}</section>'


def _groups(evaluation: Evaluation, anonymise: bool) -> str:
    first = evaluation.predictions
    first = _named(first[first["repeat"] == 0] if "repeat" in first else first, anonymise)
    summary = first.groupby("group", sort=True).agg(
        target=("target", "first"), recordings=("file", "size"), score=("score", "mean")
    )
    if evaluation.task != "regression":
        correct = (
            (first["prediction"].astype(str) == first["target"].astype(str)).groupby(first["group"]).mean()
        )
        summary["correct"] = correct
    headers = [
        "group",
        "target",
        "recordings",
        "mean score",
        *(["share correct"] if "correct" in summary else []),
    ]
    rows = (
        (
            ("text", pages.escape(group)),
            ("text", pages.escape(row.target)),
            ("number", str(row.recordings)),
            ("number", pages.number(row.score, ".3g")),
            *((("number", pages.number(row.correct, ".2f")),) if "correct" in summary else ()),
        )
        for group, row in summary.iterrows()
    )
    note = '<p class="note">First repeat\'s test predictions, per group.</p>'
    if anonymise:
        note = '<p class="note">First repeat\'s test predictions, per group (names replaced by codes).</p>'
    return f'<section id="groups"><h2>Groups</h2>{note}{pages.table(headers, rows)}</section>'


def _settings(evaluation: Evaluation, anonymise: bool) -> str:
    shown = dict(evaluation.details.get("settings", {}))
    shown["model"] = evaluation.details.get("model", {}).get("description", shown.get("model"))
    shown["version"] = evaluation.details.get("version")
    if anonymise:
        shown = {key: value for key, value in shown.items() if key not in ("features", "labels", "root")}
    rows = ((("text", pages.escape(key)), ("text", pages.escape(value))) for key, value in shown.items())
    return f'<section id="settings"><h2>Settings</h2>{pages.table(("setting", "value"), rows)}</section>'


def write_evaluation_report(
    evaluation: Evaluation, path: str | os.PathLike[str], *, anonymise: bool = False
) -> None:
    """Write one self-contained HTML page of ``evaluation``.

    Sections (with their ``id``): ``headline`` (the headline metric and every warning, a
    ``confound`` first), ``metrics``, ``roc`` (binary tasks), ``confusion`` (classification),
    ``confounds`` (when channel measures or covariates were compared), ``bands``, ``groups`` and
    ``settings``.

    Args:
        evaluation: what :func:`~speechae.evaluation.evaluate` found.
        path: the HTML file to write; missing folders are created.
        anonymise: replace file and group names by stable codes (:func:`anonymous_code`), and
            leave out the paths of the inputs.
    """
    counts = evaluation.details.get("counts", {})
    heading = (
        f"{evaluation.task} task: {counts.get('recordings', len(evaluation.predictions))} recordings of "
        f"{counts.get('groups', '?')} groups"
    )
    sections = [_headline(evaluation), _metrics(evaluation)]
    if evaluation.task == "binary":
        sections.append(_roc(evaluation))
    if evaluation.confusion_matrix is not None:
        sections.append(_confusion(evaluation))
    if evaluation.confounds is not None:
        sections.append(_confounds(evaluation))
    sections += [_bands(evaluation), _groups(evaluation, anonymise), _settings(evaluation, anonymise)]
    pages.write_page(path, "speechae evaluation", heading, sections)
