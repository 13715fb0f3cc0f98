from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import soundfile as sf

from speechae import frontend, resampling
from speechae.audio import read_audio, spool_audio
from speechae.errors import NonFiniteAudioError, SegmentedResamplingWarning
from speechae.resampling import fft_resample, resample_in_segments


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("length", "target"), [(1000, 2000), (1001, 2002), (999, 333), (1000, 363), (48000, 16000)]
)
def test_fft_resample_is_scipy_signal_resample_bit_for_bit(dtype, length, target):
    scipy = pytest.importorskip("scipy")
    if tuple(int(part) for part in scipy.__version__.split(".")[:2]) < (1, 17):
        pytest.skip("the reference's resampling arithmetic is SciPy 1.17's; older SciPy rounds differently")
    import scipy.signal

    x = np.random.default_rng(length).standard_normal(length).astype(dtype)
    expected = scipy.signal.resample(x, target)
    got = fft_resample(x, target)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def periodic_tones(n: int, highest: float, seed: int = 0) -> np.ndarray:
    """A signal of period ``n`` made of 40 tones below ``highest`` cycles per sample."""
    rng = np.random.default_rng(seed)
    cycles = rng.integers(1, int(highest * n), 40)
    phases = rng.uniform(0, 2 * np.pi, 40)
    t = np.arange(n)[:, None]
    return np.cos(2 * np.pi * cycles * t / n + phases).sum(axis=1)


@pytest.mark.parametrize(
    ("rate", "seconds"), [(44100, 3.0), (48000, 2.5), (22050, 3.0), (8000, 5.0), (11025, 4.0)]
)
def test_segments_equal_the_whole_signal_transform_away_from_the_cutoff(rate, seconds):
    n = int(rate * seconds) + 7  # not a multiple of the ratio: output positions fall between inputs
    target = int(n * 16000 / rate)
    x = periodic_tones(n, highest=0.9 * min(n, target) / (2 * n))
    whole = fft_resample(x, target)
    pieces = resample_in_segments(x, target, outputs_per_segment=6000, margin=4096)
    np.testing.assert_allclose(pieces, whole, rtol=0, atol=1e-9 * np.abs(whole).max())


def test_segments_keep_the_source_compact_and_mix_it_as_the_whole_signal_is():
    stereo = np.random.default_rng(2).integers(-30000, 30000, (50001, 2)).astype(np.int16)
    mixed = stereo.astype(np.float64).mean(axis=1)
    np.testing.assert_array_equal(
        resample_in_segments(stereo, 18140, outputs_per_segment=5000, margin=2048),
        resample_in_segments(mixed, 18140, outputs_per_segment=5000, margin=2048),
    )
    single = resample_in_segments(
        stereo[:, 0].astype(np.float32), 18140, outputs_per_segment=5000, margin=2048
    )
    assert single.dtype == np.float32


class ListedSource:
    """A :class:`~speechae.resampling.SampleSource` over an array that records what was read."""

    def __init__(self, samples: np.ndarray) -> None:
        self.samples, self.dtype, self.ndim, self.reads = samples, samples.dtype, samples.ndim, []

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, first: int, last: int) -> np.ndarray:
        self.reads.append((first, last))
        return self.samples[first:last].copy()


@pytest.mark.parametrize(("n", "per_segment", "margin"), [(50001, 5000, 2048), (3001, 400, 2500)])
def test_segments_read_from_a_source_equal_segments_of_the_array(n, per_segment, margin):
    stereo = np.random.default_rng(6).integers(-30000, 30000, (n, 2)).astype(np.int16)
    source = ListedSource(stereo)
    target = int(n * 16000 / 44100)
    from_source = resample_in_segments(source, target, outputs_per_segment=per_segment, margin=margin)
    np.testing.assert_array_equal(
        from_source, resample_in_segments(stereo, target, outputs_per_segment=per_segment, margin=margin)
    )
    assert all(0 <= first <= last <= n for first, last in source.reads)
    assert any(last == n for _, last in source.reads)  # the first segment wraps round to the end


def test_condition_signal_takes_a_spooled_recording(tmp_path, monkeypatch):
    path = tmp_path / "talk.wav"
    rate, n = 44100, 44100 * 2 + 5
    sf.write(path, periodic_tones(n, highest=0.15) / 45, rate, subtype="PCM_24")
    stored, _ = read_audio(path, native=True)
    with spool_audio(path, block_frames=10000) as spooled:
        np.testing.assert_array_equal(
            frontend.condition_signal(spooled, rate), frontend.condition_signal(stored, rate)
        )
        monkeypatch.setattr(frontend, "WHOLE_SIGNAL_SAMPLES", 50000)
        with pytest.warns(SegmentedResamplingWarning):
            segmented = frontend.condition_signal(spooled, rate, name="talk.wav")
        with pytest.warns(SegmentedResamplingWarning):
            np.testing.assert_array_equal(segmented, frontend.condition_signal(stored, rate))


@pytest.mark.parametrize("whole_signal_samples", [2**25, 50000])
def test_non_finite_samples_in_a_spooled_recording_are_refused(tmp_path, monkeypatch, whole_signal_samples):
    monkeypatch.setattr(frontend, "WHOLE_SIGNAL_SAMPLES", whole_signal_samples)
    samples = periodic_tones(44100 * 2, highest=0.15).astype(np.float32) / 45
    samples[70000] = np.nan
    path = tmp_path / "broken.wav"
    sf.write(path, samples, 44100, subtype="FLOAT")
    with spool_audio(path) as spooled, warnings.catch_warnings():
        warnings.simplefilter("ignore", SegmentedResamplingWarning)
        with pytest.raises(NonFiniteAudioError, match="NaN or infinite"):
            frontend.condition_signal(spooled, 44100)


def test_the_difference_from_the_whole_transform_lies_near_the_cutoff():
    rng = np.random.default_rng(3)
    n = 44100 * 4 + 3
    x = rng.standard_normal(n)  # white noise: full energy right at the 8 kHz cut-off
    target = int(n * 16000 / 44100)
    difference = resample_in_segments(x, target, outputs_per_segment=8000, margin=8192) - fft_resample(
        x, target
    )
    spectrum = np.abs(np.fft.rfft(difference)) ** 2
    hertz = np.fft.rfftfreq(target, 1 / 16000)
    assert spectrum[hertz < 7000].sum() < 1e-3 * spectrum.sum()


def test_condition_signal_resamples_long_signals_in_segments_with_a_warning(monkeypatch):
    monkeypatch.setattr(frontend, "WHOLE_SIGNAL_SAMPLES", 50000)
    rate, n = 44100, 44100 * 2 + 5
    x = periodic_tones(n, highest=0.15)
    with pytest.warns(SegmentedResamplingWarning, match="talk.wav: 0.0 minutes at 44100 Hz"):
        long = frontend.condition_signal(x, rate, name="talk.wav")
    monkeypatch.setattr(frontend, "WHOLE_SIGNAL_SAMPLES", 2**25)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exact = frontend.condition_signal(x, rate, name="talk.wav")
    np.testing.assert_allclose(long, exact, atol=1e-9)


def test_signals_at_16k_are_never_resampled(monkeypatch):
    monkeypatch.setattr(frontend, "WHOLE_SIGNAL_SAMPLES", 1000)
    x = np.random.default_rng(4).standard_normal(20000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = frontend.condition_signal(x, 16000)
    np.testing.assert_array_equal(out, (x - x.mean()) / np.abs(x - x.mean()).max())


def test_output_positions_stay_exact_in_a_hundred_hour_recording():
    n = 100 * 3600 * 44100 + 7  # m * n passes 2**63 near the end
    target = int(n * 16000 / 44100)
    constant = np.broadcast_to(np.float64(0.5), (n,))  # no memory for the samples themselves
    plan = resampling._SegmentPlan(n, target, margin=4096)
    values = plan.run(constant, range(target - 2000, target - 1000))
    np.testing.assert_allclose(values, 0.5, atol=1e-9)


def test_extreme_upsampling_keeps_the_grid_of_a_segment_small():
    # a header claiming 1 Hz: 16000 grid samples per input; the default margin of 2**19 inputs
    # would need a grid of 1.7e10 points
    n, rng = 300, np.random.default_rng(5)
    cycles, phases = rng.uniform(1, 0.35 * n, 20), rng.uniform(0, 6, 20)
    x = np.sin(2 * np.pi * np.outer(np.arange(n) / n, cycles) + phases).sum(axis=1)
    target = n * 16000
    plan = resampling._SegmentPlan(n, target, margin=2**19)
    assert plan.margin * plan.oversampling <= 2**21
    pieces = resample_in_segments(x, target)  # margins of 131 inputs: error 2e-6 of the peak
    np.testing.assert_allclose(pieces, fft_resample(x, target), atol=1e-5 * np.abs(x).max())


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads the resident size from /proc")
def test_plans_of_long_transforms_do_not_pile_up_in_scipy_fft_cache(monkeypatch):
    # prime lengths: Bluestein plans of about 70 bytes per sample, 90 MB each if they stayed cached;
    # with their outputs, 5.4 million samples of transforms, so the fourth one flushes the cache
    monkeypatch.setattr(resampling._FFT_PLANS, "samples", 0)
    rng = np.random.default_rng(8)
    fft_resample(rng.standard_normal(1000), 362)
    before = _resident_bytes()
    for n in (1_000_003, 1_000_033, 1_000_037, 1_000_039):
        fft_resample(rng.standard_normal(n), n * 16000 // 44100)
    assert _resident_bytes() - before < 100 * 2**20
