"""From features to findings: grouped cross-validation, metrics with intervals, per-band effects.

The models and the report need the ``[ml]`` extra (scikit-learn). See :func:`evaluate` and
:func:`write_evaluation`.
"""

from speechae.evaluation.crossval import MODELS
from speechae.evaluation.evaluate import (
    AGGREGATES,
    Evaluation,
    check_evaluation_paths,
    evaluate,
    evaluation_paths,
    evaluation_text,
    write_evaluation,
)
from speechae.evaluation.labels import TASKS

__all__ = [
    "AGGREGATES",
    "MODELS",
    "TASKS",
    "Evaluation",
    "check_evaluation_paths",
    "evaluate",
    "evaluation_paths",
    "evaluation_text",
    "write_evaluation",
]
