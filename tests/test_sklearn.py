"""The scikit-learn transformer: the Extractor's numbers, pandas output, clone, pickle, the store, CV."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from sklearn.base import clone
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils import estimator_checks as checks
from sklearn.utils import get_tags

from conftest import EXAMPLE
from speechae import Extractor
from speechae.errors import AudioFileNotFoundError, NoAudioFilesError, ParameterError, SingleWindowWarning
from speechae.sklearn import AutoencoderFeatures
from speechae.store import FeatureStore

weights = pytest.mark.weights
quiet = pytest.mark.filterwarnings("ignore::speechae.errors.SingleWindowWarning")

#: Segments of the example recording (3.88 s); the last one is a single 500 ms window.
SPANS = [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, None), (None, 1.5), (1.5, 2.5), (2.5, 3.5), (0.25, 0.75)]


@pytest.fixture()
def segments() -> pd.DataFrame:
    """The spans as a manifest-like table with labels and speakers (two per class), indexed by name."""
    return pd.DataFrame(
        {
            "file": str(EXAMPLE),
            "start": [np.nan if start is None else start for start, _ in SPANS],
            "end": np.array([end for _, end in SPANS], dtype=object),  # None, like NaN: to the end
            "label": [0, 0, 0, 0, 1, 1, 1, 1],
            "speaker": ["a", "a", "b", "b", "c", "c", "d", "d"],
        },
        index=[f"segment{k}" for k in range(len(SPANS))],
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Three short recordings cut from the example."""
    folder = tmp_path_factory.mktemp("recordings")
    samples, rate = sf.read(EXAMPLE)
    for k, name in enumerate(("a.wav", "b.wav", "c.wav")):
        sf.write(folder / name, samples[k * rate : (k + 1) * rate + rate // 2], rate)
    return folder


@pytest.fixture()
def computed(monkeypatch) -> list:
    """The items the corpus runner computes (not those it finds in a store), as they are computed."""
    import speechae.corpus.runner as runner

    items = []

    def counting(pipeline, todo, outcomes, **kwargs):
        items.extend(entry.item for entry in todo)
        return compute_batch(pipeline, todo, outcomes, **kwargs)

    compute_batch = runner.compute_batch
    monkeypatch.setattr(runner, "compute_batch", counting)
    return items


@weights
@pytest.mark.parametrize("model", ["cae-256", "rae-256"])
def test_files_equal_process_files(folder, model):
    given = ["a.wav", folder / "b.wav", "c.wav"]  # relative ones are taken from root
    values = AutoencoderFeatures(model, root=folder).fit_transform(given)
    expected = Extractor(model).process_files([folder / name for name in ("a.wav", "b.wav", "c.wav")])
    assert values.dtype == np.float64
    np.testing.assert_array_equal(values, expected.to_numpy())


@weights
def test_segments_equal_process_file(segments):
    features = AutoencoderFeatures().fit(segments)
    with pytest.warns(SingleWindowWarning, match="only one 500 ms window"):
        values = features.transform(segments)
    extractor = Extractor()
    with pytest.warns(SingleWindowWarning):
        expected = [extractor.process_file(EXAMPLE, start=start, end=end) for start, end in SPANS]
    np.testing.assert_array_equal(values, pd.concat(expected).to_numpy())  # NaN where expected has NaN
    single = values[-1, features.get_feature_names_out() == "skewness_bottleneck_0"]
    assert np.isnan(single).all() and np.isfinite(values[:-1]).all()


@weights
@quiet
def test_pandas_output_has_the_extractor_columns(segments):
    features = AutoencoderFeatures().set_output(transform="pandas")
    assert features.fit(segments) is features and features.n_features_out_ == 1536
    table = features.transform(segments)
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == Extractor().column_names
    assert table.index.equals(segments.index)
    names = features.get_feature_names_out()
    assert names.dtype == object and list(names) == list(table.columns)


@weights
def test_clone_and_pickle(folder):
    features = AutoencoderFeatures("rae-256", jobs=1, root=folder).fit(["a.wav"])
    copy = clone(features)
    assert copy.get_params() == features.get_params() and not hasattr(copy, "n_features_out_")
    data = pickle.dumps(features)
    assert len(data) < 10_000  # parameters, never the network
    restored = pickle.loads(data)
    assert restored.get_params() == features.get_params() and restored.n_features_out_ == 1536
    np.testing.assert_array_equal(restored.transform(["b.wav"]), features.transform(["b.wav"]))


@weights
@quiet
def test_store_computes_each_recording_once(segments, computed, tmp_path):
    store = tmp_path / "features.store.sqlite"
    features = AutoencoderFeatures(store=store)
    first = features.fit_transform(segments)
    assert len(computed) == len(segments)
    second = features.transform(segments.iloc[::-1])  # rows in X's order, from the store
    assert len(computed) == len(segments)
    np.testing.assert_array_equal(second, first[::-1])
    stored = FeatureStore(store)
    assert len(stored) == len(segments)
    stored.close()


@weights
@quiet
def test_cross_validation_computes_each_recording_once(segments, computed, tmp_path):
    model = make_pipeline(
        AutoencoderFeatures(store=tmp_path / "cv.store.sqlite"), SimpleImputer(), StandardScaler(), SVC()
    )
    y, groups, cv = segments["label"], segments["speaker"], StratifiedGroupKFold(n_splits=2)
    predicted = cross_val_predict(model, segments, y, groups=groups, cv=cv)
    assert predicted.shape == (len(segments),)
    search = GridSearchCV(model, {"svc__C": [0.1, 10.0]}, cv=cv).fit(segments, y, groups=groups)
    assert search.best_params_["svc__C"] in (0.1, 10.0)
    assert len(computed) == len(set(computed)) == len(segments)  # each once, over both


@pytest.mark.parametrize(
    ("X", "message"),
    [
        (3, r"X must be a sequence of audio file paths .*, not int"),
        ("a.wav", r"X must be a sequence .*, not str"),
        (np.array([["a.wav"]]), r"X must be a sequence .*, not a 2-dimensional array"),
        (pd.DataFrame({"path": ["a.wav"]}), r"this DataFrame has no 'file' column \(its columns: path\)"),
        ([Path("a.wav"), None], r"X\[1\]: None is not an audio file path"),
        (pd.DataFrame({"file": ["a.wav"], "start": ["soon"]}), r"X row 0, start: 'soon' is not a time"),
    ],
)
def test_bad_X_is_refused_with_a_sentence(X, message):
    with pytest.raises(ParameterError, match=message):
        AutoencoderFeatures().fit(X)
    with pytest.raises(ParameterError, match=message):
        AutoencoderFeatures().transform(X)


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"jobs": 0}, "jobs must be a whole number of at least 1, not 0"),
        ({"root": "/no/such/folder"}, "root /no/such/folder: no such folder"),
        ({"store": 3}, "store must be a path or None, not 3"),
    ],
)
def test_bad_parameters_are_refused_at_fit(parameters, message):
    with pytest.raises(ParameterError, match=message):
        AutoencoderFeatures(**parameters).fit(["a.wav"])


def test_no_recordings():
    with pytest.raises(NoAudioFilesError, match="X holds no recordings"):
        AutoencoderFeatures().fit([])


@weights
def test_a_missing_file_raises_naming_it(tmp_path):
    missing = tmp_path / "missing.wav"
    with pytest.raises(AudioFileNotFoundError, match=f"{re.escape(str(missing))}: no such file"):
        AutoencoderFeatures().fit_transform([EXAMPLE, missing])


def test_tags_say_paths_in_and_no_fit_needed():
    tags = get_tags(AutoencoderFeatures())
    assert not tags.input_tags.two_d_array and tags.input_tags.string and not tags.requires_fit


@pytest.mark.parametrize(
    "check",
    [
        checks.check_estimator_cloneable,
        checks.check_estimator_repr,
        checks.check_no_attributes_set_in_init,
        checks.check_parameters_default_constructible,
        checks.check_get_params_invariance,
        checks.check_set_params,
        checks.check_do_not_raise_errors_in_init_or_set_params,
        checks.check_mixin_order,
        checks.check_valid_tag_types,
    ],
    ids=lambda check: check.__name__,
)
def test_scikit_learn_api_checks(check):
    check("AutoencoderFeatures", AutoencoderFeatures())
