from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from conftest import Spills
from speechae import frontend
from speechae.audio import SampleSpool
from speechae.errors import AudioTooShortError, NonFiniteAudioError, ParameterError, SilentAudioError
from speechae.frontend import (
    ConditionedSignal,
    FrontEndConfig,
    LogMelFrontEnd,
    band_groups,
    condition_signal,
    frame_range,
    frame_signal,
    mel_band_edges,
    mel_filterbank,
    window_count,
    window_starts,
)


@pytest.mark.parametrize(("samples", "expected"), [(7999, 0), (8000, 1), (11999, 1), (12000, 2), (48000, 11)])
def test_window_count_follows_disvoice(samples, expected):
    assert window_count(samples) == expected


def test_frame_signal_cuts_half_second_windows_every_quarter_second():
    signal = np.arange(20500, dtype=np.float64)
    windows = frame_signal(signal)
    assert windows.shape == (4, 8000)
    assert windows[:, 0].tolist() == [0, 4000, 8000, 12000]
    np.testing.assert_array_equal(windows[3], signal[12000:20000])
    assert window_starts(4).tolist() == [0.0, 0.25, 0.5, 0.75]


def test_condition_signal_mixes_removes_dc_and_normalises_peak():
    rng = np.random.default_rng(0)
    stereo = rng.standard_normal((16000, 2)) + 3.0
    out = condition_signal(stereo, 16000)
    mono = stereo.mean(axis=1) - stereo.mean()
    np.testing.assert_allclose(out, mono / np.abs(mono).max())
    assert abs(out.mean()) < 1e-12 and np.abs(out).max() == 1.0


@pytest.mark.parametrize(("rate", "length"), [(8000, 8000), (22050, 30000), (44100, 44100), (48000, 24000)])
def test_condition_signal_resamples_to_16k_with_disvoice_length(rate, length):
    out = condition_signal(np.random.default_rng(0).standard_normal(length), rate)
    assert len(out) == int(length * 16000 / rate)


def test_band_groups_hold_every_nonzero_weight():
    bank = mel_filterbank()
    covered = np.zeros_like(bank)
    for bands, bins in band_groups(bank):
        covered[bands, bins] = bank[bands, bins]
    np.testing.assert_array_equal(covered, bank)
    assert sum(bins.stop - bins.start for _, bins in band_groups(bank)) < 300  # vs 8 x 257 dense


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_condition_signal_leaves_its_input_alone(dtype):
    x = (np.random.default_rng(0).standard_normal(16000) * 1000).astype(dtype)
    before = x.copy()
    condition_signal(x, 16000)
    np.testing.assert_array_equal(x, before)


def test_float32_stays_float32_and_integers_become_float64():
    x = np.random.default_rng(0).standard_normal(16000)
    assert condition_signal(x.astype(np.float32), 16000).dtype == np.float32
    assert condition_signal(x.astype(np.float32), 8000).dtype == np.float32
    assert condition_signal((x * 1000).astype(np.int16), 16000).dtype == np.float64


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_rejected(bad):
    x = np.ones(16000)
    x[100] = bad
    with pytest.raises(NonFiniteAudioError, match="NaN or infinite"):
        condition_signal(x, 16000)


def test_silent_and_short_signals_are_rejected():
    with pytest.raises(SilentAudioError, match="silent"):
        condition_signal(np.full(16000, 0.25), 16000)
    with pytest.raises(AudioTooShortError, match=r"lasts 0.4 s, shorter than one 0.5 s window"):
        condition_signal(np.ones(3200), 8000)


def test_mel_filterbank_is_slaney_normalised_triangles():
    bank = mel_filterbank()
    edges = mel_band_edges()
    assert bank.shape == (128, 257) and bank.dtype == np.float32
    assert edges[0] == 0 and edges[-1] == pytest.approx(8000)
    # Slaney's scale: 200/3 Hz per Mel up to 1 kHz (15 Mel), logarithmic above (27 Mel per 6.4x)
    top_mel = 15 + np.log(8) / (np.log(6.4) / 27)
    linear = edges[edges < 1000]
    np.testing.assert_allclose(np.diff(linear), top_mel / 129 * 200 / 3)
    above = edges[edges > 1000]
    np.testing.assert_allclose(np.diff(np.log(above)), np.log(6.4) / 27 * top_mel / 129)
    # Slaney normalisation: every triangle has unit area in Hz (31.25 Hz per FFT bin)
    wide = (edges[2:] - edges[:-2]) > 400
    np.testing.assert_allclose(bank[wide].sum(axis=1) * 31.25, 1.0, rtol=0.02)


def numpy_reference_log_mel(window: np.ndarray) -> np.ndarray:
    """Straight-line single-window log-Mel, written independently of the batched module."""
    padded = np.pad(window, 256)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)
    frames = np.stack([padded[t * 64 : t * 64 + 512] * hann for t in range(126)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    mel = mel_filterbank().astype(np.float64) @ power.T
    return np.log(mel.astype(np.float32))


def test_batched_front_end_equals_a_per_window_loop(speech_like):
    signal = condition_signal(speech_like, 16000)
    windows = frame_signal(signal)
    scaled, valid = LogMelFrontEnd()(torch.from_numpy(np.array(windows)))
    assert valid.all() and scaled.shape == (11, 1, 128, 126) and scaled.dtype == torch.float32
    config = FrontEndConfig()
    for k in (0, 5, 10):
        expected = (numpy_reference_log_mel(windows[k]) - config.min_scaler) / (
            config.max_scaler - config.min_scaler
        )
        np.testing.assert_allclose(scaled[k, 0].numpy(), expected, rtol=0, atol=2e-6)


def test_window_with_a_run_of_digital_silence_is_invalid(speech_like):
    signal = condition_signal(speech_like, 16000)
    signal[20000:21000] = 0.0  # windows 4 (16000-24000) and 5 (20000-28000) hold these zeros
    _, valid = LogMelFrontEnd()(torch.from_numpy(np.array(frame_signal(signal))))
    assert (~valid).nonzero().flatten().tolist() == [4, 5]


def test_front_end_buffers_follow_the_module():
    front = LogMelFrontEnd()
    assert {name for name, _ in front.named_buffers()} == {"window", "filterbank"}
    assert front.state_dict() == {}


def test_float32_power_rounds_as_numpy_does():
    """The reference squares NumPy's complex64 magnitude; PyTorch's differs in the last bit."""
    from speechae.frontend import _float32_power

    spectrum = torch.randn(4, 126, 257, dtype=torch.complex128).to(torch.complex64) * 30
    expected = np.abs(spectrum.numpy()) ** 2
    assert np.array_equal(_float32_power(spectrum).numpy(), expected)
    assert not np.array_equal(spectrum.abs().square().numpy(), expected)


def _spool(length: int, dtype: np.dtype) -> SampleSpool:
    return SampleSpool.create(length, dtype, "long.wav")


@pytest.mark.filterwarnings("ignore::speechae.errors.SegmentedResamplingWarning")
@pytest.mark.parametrize(
    ("rate", "dtype"),
    [(16000, np.int16), (16000, np.float32), (22050, np.float64), (8000, np.float32)],
)
def test_long_signals_conditioned_into_a_spool_read_back_as_in_memory(monkeypatch, rate, dtype):
    monkeypatch.setattr(frontend, "WHOLE_SIGNAL_SAMPLES", 30000)
    monkeypatch.setattr(frontend, "_BLOCK", 7001)  # several blocks, not aligned with anything
    rng = np.random.default_rng(3)
    stereo = rng.standard_normal((50000, 2)) * 3000 + 500
    stereo = stereo.astype(dtype)
    in_memory = condition_signal(stereo, rate)
    with condition_signal(stereo, rate, spool=_spool) as spooled:
        assert isinstance(spooled, ConditionedSignal) and spooled.dtype == in_memory.dtype
        assert len(spooled) == len(in_memory)
        np.testing.assert_array_equal(spooled.read(0, len(spooled)), in_memory)
        np.testing.assert_array_equal(frame_range(spooled, 3, 9), frame_signal(in_memory)[3:9])
        assert frame_range(spooled, 5, 5).shape == (0, 8000)
    assert spooled.stored.closed


def test_short_signals_stay_in_memory_with_a_spool():
    x = np.random.default_rng(4).standard_normal(40000)
    np.testing.assert_array_equal(condition_signal(x, 16000, spool=_spool), condition_signal(x, 16000))


@pytest.mark.parametrize(("fill", "error"), [(np.nan, NonFiniteAudioError), (0.25, SilentAudioError)])
def test_a_spooled_signal_that_cannot_be_conditioned_closes_its_spool(monkeypatch, fill, error):
    monkeypatch.setattr(frontend, "WHOLE_SIGNAL_SAMPLES", 30000)
    spools = []

    def spool(length: int, dtype: np.dtype) -> SampleSpool:
        spools.append(_spool(length, dtype))
        return spools[-1]

    x = np.full(40000, 0.25)
    x[-1] = fill
    with _spool(len(x), x.dtype) as source:  # a source read by ranges is checked as it is read
        source[:] = x
        with pytest.raises(error):
            condition_signal(source, 16000, spool=spool)
    assert len(spools) == 1 and spools[0].closed


@pytest.mark.parametrize(
    "room", [{"refused": (1,)}, {"writable": 20000}], ids=["no room", "the disk fills up"]
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_long_signal_without_room_in_the_spool_is_conditioned_in_memory_to_the_same_values(
    monkeypatch, room, dtype
):
    spills = Spills(**room)
    monkeypatch.setattr(frontend, "WHOLE_SIGNAL_SAMPLES", 30000)
    monkeypatch.setattr(frontend, "_BLOCK", 7001)
    x = np.random.default_rng(6).standard_normal(40000).astype(dtype) + 0.3
    with condition_signal(x, 16000, spool=_spool) as spooled:
        expected = spooled.read(0, len(spooled))
    in_memory = condition_signal(x, 16000, spool=spills)
    assert isinstance(in_memory, np.ndarray) and all(spool.closed for spool in spills.created)
    np.testing.assert_array_equal(in_memory, expected)


@pytest.mark.parametrize("rate", [8000, 22050, 44100])
def test_segmented_resampling_at_any_length_stays_close_to_the_whole_signal_fft(rate):
    t = np.arange(3 * rate) / rate
    tones = sum(np.sin(2 * np.pi * f * t + f) for f in (180.0, 1250.0, 3300.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # chosen, so not warned about
        segmented = condition_signal(tones, rate, resampling="segmented")
    exact = condition_signal(tones, rate)
    assert len(segmented) == len(exact) and not np.array_equal(segmented, exact)
    np.testing.assert_allclose(segmented, exact, rtol=0, atol=1e-6)


def test_segmented_resampling_leaves_16k_signals_as_they_are_and_other_modes_are_refused(speech_like):
    np.testing.assert_array_equal(
        condition_signal(speech_like, 16000, resampling="segmented"), condition_signal(speech_like, 16000)
    )
    with pytest.raises(ParameterError, match="resampling must be one of"):
        condition_signal(speech_like, 16000, resampling="polyphase")


def test_signal_shapes_without_samples_or_channels_are_named():
    with pytest.raises(ParameterError, match="not a single number"):
        condition_signal(np.float64(0.3), 16000)
    with pytest.raises(ParameterError, match=r"a signal of shape \(16000, 0\) has no channels"):
        condition_signal(np.zeros((16000, 0)), 16000)


def test_a_recording_just_short_of_one_window_says_so_without_rounding_up():
    with pytest.raises(
        AudioTooShortError, match=r"^the audio lasts 0\.499937 s, shorter than one 0\.5 s window$"
    ):
        condition_signal(np.random.default_rng(0).standard_normal(7999), 16000)


def test_finite_samples_too_large_for_float32_sums_are_refused_for_what_they_are():
    huge = np.full(32000, np.finfo(np.float32).max, np.float32)
    huge[::2] *= -1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warnings stay inside
        with pytest.raises(NonFiniteAudioError, match="too large for float32 arithmetic"):
            condition_signal(huge, 16000)
