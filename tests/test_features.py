from __future__ import annotations

import json

import numpy as np
import scipy.stats

from conftest import PARITY, needs_shared
from speechae.features import FileFeatures, dynamic_feature_names, static_feature_names, static_features


def test_names_have_disvoice_layout():
    static = static_feature_names()
    assert len(static) == 1536 and len(dynamic_feature_names()) == 384
    assert static[:2] == ["mean_bottleneck_0", "mean_bottleneck_1"]
    assert static[256] == "std_bottleneck_0" and static[1023] == "kurtosis_bottleneck_255"
    assert static[1024] == "mean_error_0" and static[-1] == "kurtosis_error_127"


@needs_shared
def test_names_equal_the_reference_names():
    reference = json.loads((PARITY / "feature_names.json").read_text())
    assert static_feature_names() == reference["static"]
    assert dynamic_feature_names() == reference["dynamic"]


def test_static_features_are_the_four_functionals():
    rng = np.random.default_rng(0)
    bottleneck, error = rng.standard_normal((9, 3)).astype(np.float32), rng.random((9, 2)).astype(np.float32)
    values = static_features(bottleneck, error)
    assert values.shape == (4 * 3 + 4 * 2,)
    np.testing.assert_allclose(values[3:6], bottleneck.astype(np.float64).std(axis=0))
    # the same arithmetic as scipy.stats (DisVoice's), so the same bits
    np.testing.assert_array_equal(values[6:9], scipy.stats.skew(bottleneck.astype(np.float64)))
    np.testing.assert_array_equal(values[-2:], scipy.stats.kurtosis(error.astype(np.float64)))


def test_one_window_gives_nan_skewness_and_kurtosis():
    values = static_features(np.ones((1, 2), np.float32), np.ones((1, 3), np.float32))
    assert np.isnan(values).sum() == 2 * 2 + 2 * 3
    assert not np.isnan(values[:4]).any()


def test_a_segments_span_starts_at_its_first_window_kept_or_dropped():
    empty = np.zeros((0, 2), np.float32)
    features = FileFeatures(empty, empty, np.array([1.75]), np.array([1.5]), 0.8)
    assert features.offset == 1.5 and features.span == (1.5, 2.3)
