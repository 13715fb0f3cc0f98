from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.stats
import torch

from conftest import PARITY, Spills, needs_shared
from speechae.errors import NonFiniteAudioError
from speechae.features import (
    SignalInputs,
    SpilledInputs,
    compute_features,
    dynamic_feature_names,
    static_feature_names,
    static_features,
    transform_conditioned,
)
from speechae.frontend import LogMelFrontEnd, condition_signal


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


@pytest.mark.parametrize("model_fixture", ["small_cae", "small_rae"])
def test_compute_features_shapes_and_times(model_fixture, speech_like, request):
    model = request.getfixturevalue(model_fixture)
    result = compute_features(speech_like, 16000, model)
    assert result.bottleneck.shape == (11, 16) and result.error.shape == (11, 128)
    assert result.bottleneck.dtype == np.float32
    assert result.dynamic.shape == (11, 16 + 128)
    assert result.starts.tolist() == [0.25 * k for k in range(11)]
    assert result.dropped.size == 0 and result.duration == 3.0
    assert (result.error >= 0).all()


def integer_noise_with_silence(length: int, silent: slice) -> np.ndarray:
    """Integer-valued noise with an exactly zero mean, so its silent run stays exactly zero."""
    signal = np.random.default_rng(4).integers(-3000, 3000, length).astype(np.float64)
    signal[silent] = 0.0
    signal[0] -= signal.sum()
    return signal


def test_dropped_windows_are_reported_with_their_times(small_cae):
    signal = integer_noise_with_silence(48000, slice(20000, 21000))
    result = compute_features(signal, 16000, small_cae)
    assert result.dropped.tolist() == [1.0, 1.25]  # windows 4 and 5 hold the zeros
    assert result.starts.tolist() == [0.25 * k for k in range(11) if k not in (4, 5)]
    assert len(result.bottleneck) == 9


def test_error_is_mean_squared_reconstruction_error_per_band(small_rae, speech_like):
    import torch

    from speechae.frontend import LogMelFrontEnd, condition_signal, frame_signal

    result = compute_features(speech_like, 16000, small_rae)
    scaled, _ = LogMelFrontEnd()(
        torch.from_numpy(np.array(frame_signal(condition_signal(speech_like, 16000))))
    )
    reconstruction, _ = small_rae(scaled)
    expected = ((scaled - reconstruction) ** 2).mean(dim=3)[:, 0].numpy()
    np.testing.assert_allclose(result.error, expected, rtol=1e-6)


def test_non_finite_input_raises(small_cae):
    signal = np.ones(16000)
    signal[5] = np.nan
    with pytest.raises(NonFiniteAudioError):
        compute_features(signal, 16000, small_cae)


@pytest.mark.parametrize(
    ("spills", "kind"),
    [
        (Spills(), SpilledInputs),
        (Spills(refused=(1,)), SignalInputs),  # no room for the file
        (Spills(writable=200_000), SignalInputs),  # the disk fills up while it is written
    ],
)
def test_spectrograms_beyond_the_memory_budget_are_spilled_or_else_recomputed(speech_like, spills, kind):
    frontend = LogMelFrontEnd()
    conditioned = condition_signal(np.tile(speech_like, 2), 16000)
    in_memory = transform_conditioned(conditioned, 6.0, frontend)
    prepared = transform_conditioned(conditioned, 6.0, frontend, memory_budget=0, spill=spills)
    assert isinstance(prepared.inputs, kind) and len(prepared.inputs) == len(in_memory.inputs) == 23
    torch.testing.assert_close(prepared.inputs.get(3, 17), in_memory.inputs.get(3, 17), rtol=0, atol=0)
    prepared.close()
    assert all(spool.closed for spool in spills.created)


def test_a_front_end_failure_closes_the_spilled_spectrograms(speech_like, monkeypatch):
    monkeypatch.setattr("speechae.features.FRONTEND_CHUNK", 4)
    frontend, calls = LogMelFrontEnd(), []

    def fail_on_the_second_chunk(windows):
        calls.append(len(windows))
        if len(calls) == 2:
            raise RuntimeError("CUDA out of memory")
        return LogMelFrontEnd.forward(frontend, windows)

    monkeypatch.setattr(frontend, "forward", fail_on_the_second_chunk)
    spills = Spills()
    with pytest.raises(RuntimeError, match="out of memory"):
        transform_conditioned(
            condition_signal(speech_like, 16000), 3.0, frontend, memory_budget=0, spill=spills
        )
    assert len(spills.created) == 1 and spills.created[0].closed
