"""A scikit-learn transformer: audio files in, DisVoice's 1536 static features out.

:class:`AutoencoderFeatures` puts a speechae extraction inside a scikit-learn pipeline, so that
features, imputation, scaling and a classifier are cross-validated together. It computes through
the corpus runner (:func:`speechae.corpus.run_items`), like :meth:`speechae.Extractor.process_files`,
and gives the same numbers bit for bit. With ``store=`` every recording is computed once, however
many folds, grid points and refits ask for it. Needs the ``[ml]`` extra (scikit-learn).

Example:
    >>> from sklearn.impute import SimpleImputer
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn.svm import SVC
    >>> model = make_pipeline(
    ...     AutoencoderFeatures("cae-256", store="features.store.sqlite"),
    ...     SimpleImputer(),  # recordings of one 500 ms window have NaN skewness and kurtosis
    ...     StandardScaler(),
    ...     SVC(),
    ... )
    >>> model.fit(["patient.wav", "control.wav"], [1, 0])  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import Tags

from speechae.corpus import AUTO, ItemResult, run_items
from speechae.errors import NoAudioFilesError, ParameterError, check_counts
from speechae.extractor import static_of, warn_dropped
from speechae.features import FileFeatures
from speechae.inputs import Item, printable, segment_seconds
from speechae.pipeline import (
    DEFAULT_DEVICE,
    DEFAULT_MODEL,
    DEFAULT_PRECISION,
    DEFAULT_RESAMPLING,
    Pipeline,
    PipelineSpec,
)
from speechae.quality import QUALITY_COLUMNS
from speechae.store import FeatureStore

if TYPE_CHECKING:
    import torch

__all__ = ["AutoencoderFeatures", "Recordings"]

#: What ``X`` may be: audio paths, or a table with a ``file`` column (see :class:`AutoencoderFeatures`).
Recordings = Sequence[str | os.PathLike[str]] | pd.DataFrame

_EXPECTED = (
    "X must be a sequence of audio file paths or a pandas DataFrame with a 'file' column "
    "(and optional 'start' and 'end' columns in seconds)"
)


class AutoencoderFeatures(TransformerMixin, BaseEstimator):
    """DisVoice's static autoencoder features of recordings, as a scikit-learn transformer.

    ``X`` is a sequence of audio paths, or a pandas DataFrame with a ``file`` column and optional
    ``start`` and ``end`` columns in seconds (NaN or None: from the beginning, to the end) to take
    segments; other columns (labels, speakers) are ignored. :meth:`transform` gives one row of
    1536 functionals per row of ``X``, in its order, as
    ``Extractor(model).process_files(...)`` (or ``process_file(start=, end=)``) gives them.

    Nothing is learnt from the data: :meth:`fit` checks ``X`` and the parameters and loads the
    model, and :meth:`transform` works unfitted too. A recording with a single 500 ms window has
    NaN skewness and kurtosis (a :class:`~speechae.errors.SingleWindowWarning` says so): impute
    them downstream, e.g. with :class:`sklearn.impute.SimpleImputer`. The first recording that
    fails raises its speechae error, which names the file.

    The network is never pickled: an instance pickles as its parameters, and the model is loaded
    again, once per process, when it is next used.

    Args:
        model: a registered model name (``"cae-256"``, ``"rae-256"``) or the path of a ``.pt`` or
            ``.safetensors`` file, as :class:`~speechae.Extractor` takes.
        jobs: worker processes reading recordings, or ``"auto"`` (see
            :func:`~speechae.corpus.run_items`).
        device: ``"cpu"`` or ``"cuda"``.
        precision: ``"fp32"`` (DisVoice's numbers) or ``"bf16"`` (faster, approximate).
        resampling: ``"exact"`` or ``"segmented"`` (see :class:`~speechae.pipeline.Pipeline`).
        store: the path of a store file (:class:`~speechae.store.FeatureStore`); every transform
            reuses what it holds and commits what it computes, so cross-validation computes each
            recording once. Its keys cover the audio, the segment, the settings and the weights,
            so one store may serve several models.
        root: the folder that relative paths in ``X`` are taken from (default: the working
            directory). Warnings name recordings by their paths as given.
        lowpass: a cut-off in Hz to low-pass every recording first (see
            :class:`~speechae.pipeline.Pipeline`); None: unfiltered.

    Attributes:
        n_features_out_: the number of output columns (1536 for a bottleneck of 256); their
            names, DisVoice's, come from :meth:`get_feature_names_out`.

    Example:
        >>> features = AutoencoderFeatures("rae-256", jobs=2)
        >>> features.get_params()["jobs"]
        2
        >>> features.set_output(transform="pandas").fit_transform(["a.wav"]).shape  # doctest: +SKIP
        (1, 1536)
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_MODEL,
        *,
        jobs: int | str = 1,
        device: str | torch.device = DEFAULT_DEVICE,
        precision: str = DEFAULT_PRECISION,
        resampling: str = DEFAULT_RESAMPLING,
        store: str | os.PathLike[str] | None = None,
        root: str | os.PathLike[str] | None = None,
        lowpass: float | None = None,
    ) -> None:
        self.model = model
        self.jobs = jobs
        self.device = device
        self.precision = precision
        self.resampling = resampling
        self.store = store
        self.root = root
        self.lowpass = lowpass

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # paths, or a table naming them: not numbers
        tags.input_tags.one_d_array = True
        tags.input_tags.string = True
        tags.transformer_tags.preserves_dtype = []  # always float64, whatever X holds
        tags.requires_fit = False  # nothing is learnt; transform loads the model itself
        return tags

    def fit(self, X: Recordings, y: object = None) -> AutoencoderFeatures:
        """Check ``X`` and the parameters and load the model; nothing is learnt.

        Args:
            X: audio paths, or a DataFrame with a ``file`` column (see the class).
            y: ignored; accepted so that the transformer fits in a supervised pipeline.

        Returns:
            The transformer.

        Raises:
            ParameterError: ``X`` or a parameter is not one the transformer accepts.
            NoAudioFilesError: ``X`` holds no recordings.
            ModelError: the model cannot be found or loaded.
        """
        if self.jobs != AUTO:
            check_counts(jobs=self.jobs)
        self._items(X)
        self.n_features_out_ = len(self.get_feature_names_out())
        return self

    def transform(self, X: Recordings) -> np.ndarray:
        """Static features of every recording (or segment) in ``X``.

        Args:
            X: audio paths, or a DataFrame with a ``file`` column (see the class).

        Returns:
            float64 array ``(len(X), 1536)``, rows in the order of ``X``.

        Raises:
            ParameterError: ``X`` or a parameter is not one the transformer accepts.
            NoAudioFilesError: ``X`` holds no recordings.
            SpeechaeError: that of the first recording that cannot be processed (an
                :class:`~speechae.errors.AudioError` for a missing or unreadable file), naming it.
            StoreError: ``store`` is not a usable store.
        """
        pipeline = self._pipeline()
        items = self._items(X)
        values = np.empty((len(items), len(pipeline.column_names("static"))), dtype=np.float64)
        for result, features in self._results(items, pipeline):
            values[result.position] = static_of(features, result.item.key)
        return values

    def quality(self, X: Recordings) -> pd.DataFrame:
        """The quality measures of every recording (or segment) in ``X`` (:mod:`speechae.quality`).

        Computed in the same pass as the features; with ``store``, recordings already done are
        not read again.

        Args:
            X: audio paths, or a DataFrame with a ``file`` column (see the class).

        Returns:
            one row per row of ``X``, in its order, with the columns of
            :data:`~speechae.quality.QUALITY_COLUMNS` (a DataFrame ``X`` keeps its index).

        Raises:
            the errors of :meth:`transform`.
        """
        items = self._items(X)
        rows: list[dict[str, float]] = [{} for _ in items]
        for result, features in self._results(items, self._pipeline()):
            rows[result.position] = {**result.quality, "dropped_windows": len(features.dropped)}
        index = X.index if isinstance(X, pd.DataFrame) else None
        return pd.DataFrame(rows, columns=list(QUALITY_COLUMNS), index=index)

    def _results(self, items: list[Item], pipeline: Pipeline) -> Iterator[tuple[ItemResult, FileFeatures]]:
        """Each item's result with its features (from the store when it held them)."""
        store = None if self.store is None else FeatureStore(self.store)
        try:
            run = run_items(pipeline, items, jobs=self.jobs, store=store)
            with closing(run.results) as results:  # a failure stops the workers at once
                for result in results:
                    if not result.ok:
                        raise result.error
                    features = result.features if result.features is not None else store.get(result.key)
                    warn_dropped(features, result.item.key)
                    yield result, features
        finally:
            if store is not None:
                store.close()

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Names of the output columns: DisVoice's, for the model's bottleneck width.

        Args:
            input_features: ignored (the names depend only on the model).

        Returns:
            object array of 1536 names, ``mean_bottleneck_0`` to ``kurtosis_error_127``.
        """
        return np.asarray(self._pipeline().column_names("static"), dtype=object)

    def _pipeline(self) -> Pipeline:
        """The pipeline of the current parameters, loaded once per process (never pickled)."""
        if not isinstance(self.model, (str, os.PathLike)):
            raise ParameterError(
                f"model must be a registered model name or a weights path, not {self.model!r}"
            )
        return PipelineSpec(
            os.fspath(self.model), str(self.device), self.precision, None, self.resampling, self.lowpass
        ).build()

    def _items(self, X: object) -> list[Item]:
        """One item per row of ``X``, relative paths taken from ``root``."""
        for name in ("store", "root"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise ParameterError(f"{name} must be a path or None, not {value!r}")
        if self.root is not None and not Path(self.root).is_dir():
            raise ParameterError(f"root {self.root}: no such folder")
        if isinstance(X, pd.DataFrame):
            if "file" not in X.columns:
                found = ", ".join(map(str, X.columns)) or "none"
                raise ParameterError(
                    f"{_EXPECTED}; this DataFrame has no 'file' column (its columns: {found})"
                )
            rows = [f"X row {label}" for label in X.index]
            files = X["file"].tolist()
            starts, ends = (X[c].tolist() if c in X.columns else [None] * len(X) for c in ("start", "end"))
        elif isinstance(X, (Sequence, np.ndarray, pd.Series)) and not isinstance(X, (str, bytes)):
            if isinstance(X, np.ndarray) and X.ndim != 1:
                raise ParameterError(f"{_EXPECTED}, not a {X.ndim}-dimensional array")
            rows = [f"X[{position}]" for position in range(len(X))]
            files, starts, ends = list(X), [None] * len(X), [None] * len(X)
        else:
            raise ParameterError(f"{_EXPECTED}, not {type(X).__name__}")
        if not files:
            raise NoAudioFilesError("X holds no recordings; give at least one audio file")
        return [
            self._item(
                row, file, segment_seconds(start, f"{row}, start"), segment_seconds(end, f"{row}, end")
            )
            for row, file, start, end in zip(rows, files, starts, ends, strict=True)
        ]

    def _item(self, row: str, file: object, start: float | None, end: float | None) -> Item:
        if not isinstance(file, (str, os.PathLike)):
            raise ParameterError(f"{row}: {file!r} is not an audio file path")
        path = Path(file).expanduser()
        if self.root is not None and not path.is_absolute():
            path = Path(self.root) / path
        return Item(key=printable(os.fspath(file)), path=str(path), start=start, end=end)
