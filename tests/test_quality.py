"""Quality measures: planted defects in real recordings are measured where they were planted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from scipy import signal

from conftest import CORPUS, EXAMPLE, needs_shared
from speechae.audio import read_audio, spool_audio
from speechae.quality import QUALITY_COLUMNS, full_scale_of, measure_quality


def stored(samples: np.ndarray, rate: int, tmp_path, subtype: str = "PCM_16") -> tuple[np.ndarray, int]:
    """``samples`` as a WAV file stores and speechae reads them back."""
    sf.write(tmp_path / "planted.wav", samples, rate, subtype=subtype)
    return read_audio(tmp_path / "planted.wav", native=True)


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, int]:
    samples, rate = read_audio(EXAMPLE)
    return 0.5 * samples / np.abs(samples).max(), rate


def test_a_clean_recording_is_full_band_unclipped_and_quiet(speech, tmp_path):
    measures = measure_quality(*stored(*speech, tmp_path))
    assert list(measures) == [column for column in QUALITY_COLUMNS if column != "dropped_windows"]
    assert measures["sample_rate"] == 16000 and measures["bandwidth_hz"] > 6000
    assert measures["clipped_fraction"] == 0 and measures["snr_db"] > 25
    assert measures["duration_s"] == pytest.approx(len(speech[0]) / 16000)
    assert 0.5 < measures["speech_fraction"] < 0.95


@pytest.mark.parametrize("cutoff", [2000, 3000, 5000])
def test_a_low_passed_recording_has_the_bandwidth_of_its_cut_off(speech, tmp_path, cutoff):
    samples, rate = speech
    low_pass = signal.butter(8, cutoff, "low", fs=rate, output="sos")
    measures = measure_quality(*stored(signal.sosfilt(low_pass, samples), rate, tmp_path))
    assert cutoff * 0.9 < measures["bandwidth_hz"] < cutoff * 1.35


def test_a_recording_upsampled_from_8_khz_has_about_4_khz(speech, tmp_path):
    samples, rate = speech
    upsampled = signal.resample_poly(signal.resample_poly(samples, 8000, rate), 44100, 8000)
    measures = measure_quality(*stored(upsampled, 44100, tmp_path))
    assert measures["sample_rate"] == 44100 and 3500 < measures["bandwidth_hz"] < 4500


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_planted_clipping_of_one_percent_is_measured_within_a_factor_of_two(speech, tmp_path, subtype):
    samples, rate = speech
    level = np.quantile(np.abs(samples), 0.99)  # 1 % of the samples reach it
    clipped = np.clip(samples / level, -1, 1) * (
        0.8 if subtype == "FLOAT" else 1.0
    )  # FLOAT: below full scale
    measures = measure_quality(*stored(clipped, rate, tmp_path, subtype))
    assert 0.005 <= measures["clipped_fraction"] <= 0.02


def test_clipping_is_measured_per_channel_before_mixing(speech, tmp_path):
    samples, rate = speech
    level = np.quantile(np.abs(samples), 0.99)
    stereo = np.stack([np.clip(samples / level, -1, 1), 0.5 * samples], axis=1)
    one = measure_quality(*stored(stereo[:, 0], rate, tmp_path))["clipped_fraction"]
    assert measure_quality(*stored(stereo, rate, tmp_path))["clipped_fraction"] == pytest.approx(one / 2)


@pytest.mark.parametrize("snr", [5.0, 15.0])
def test_white_noise_at_a_known_global_snr_is_estimated_within_5_db(speech, tmp_path, snr):
    samples, rate = speech
    noise = np.random.default_rng(0).standard_normal(len(samples))
    noise *= np.sqrt(np.mean(samples**2) / np.mean(noise**2) / 10 ** (snr / 10))
    noisy = samples + noise
    measures = measure_quality(*stored(0.9 * noisy / np.abs(noisy).max(), rate, tmp_path))
    assert abs(measures["snr_db"] - snr) < 5


def test_dc_offset_is_a_fraction_of_full_scale_and_does_not_move_the_other_measures(speech, tmp_path):
    samples, rate = speech
    plain = measure_quality(*stored(samples, rate, tmp_path))
    shifted = measure_quality(*stored(samples + 0.25, rate, tmp_path))
    assert shifted["dc_offset"] == pytest.approx(plain["dc_offset"] + 0.25, abs=1e-4)
    assert shifted["snr_db"] == pytest.approx(plain["snr_db"], abs=0.1)
    assert shifted["bandwidth_hz"] == plain["bandwidth_hz"]


@needs_shared
def test_spooled_samples_measure_as_samples_in_memory(tmp_path):
    path = CORPUS / "librivox_just_like_the_world.flac"
    in_memory = measure_quality(*read_audio(path, native=True))
    with spool_audio(path) as spooled:
        on_disk = measure_quality(spooled, spooled.sampling_rate)
    assert on_disk.keys() == in_memory.keys()
    for measure, value in in_memory.items():
        assert on_disk[measure] == pytest.approx(value, rel=1e-9), measure


def test_silence_and_emptiness_are_undefined_not_errors():
    silent = measure_quality(np.zeros(16000, np.int16), 16000)
    assert np.isnan(silent["bandwidth_hz"]) and np.isnan(silent["snr_db"]) and silent["clipped_fraction"] == 0
    empty = measure_quality(np.zeros(0), 8000)
    assert empty["sample_rate"] == 8000 and np.isnan(empty["duration_s"])
    assert full_scale_of(np.dtype("int32")) == 2**31 - 1


@pytest.mark.weights
def test_extraction_writes_the_measures_beside_its_output_and_the_apis_give_them(tmp_path, cae, speech):
    from speechae.corpus import extract_corpus
    from speechae.inputs import collect_items
    from speechae.sklearn import AutoencoderFeatures

    samples, rate = speech
    sf.write(tmp_path / "a.wav", samples, rate, subtype="PCM_16")
    sf.write(tmp_path / "b.wav", np.clip(samples / np.quantile(np.abs(samples), 0.99), -1, 1), rate)
    items, _ = collect_items([tmp_path], root=tmp_path)
    out = tmp_path / "out" / "features.csv"
    extract_corpus(cae, items, out)
    written = pd.read_csv(f"{out}.quality.csv", index_col="file")
    assert list(written.columns) == ["start", "end", *QUALITY_COLUMNS]
    assert written.loc["b.wav", "clipped_fraction"] > 0.005 and written.loc["a.wav", "clipped_fraction"] == 0
    extract_corpus(cae, items, out)  # from the store
    assert pd.read_csv(f"{out}.quality.csv", index_col="file").equals(written)
    table = cae.process_files([tmp_path / "a.wav", tmp_path / "b.wav"])
    from_api = pd.DataFrame.from_dict(table.attrs["quality"], orient="index")
    assert from_api["clipped_fraction"].tolist() == written["clipped_fraction"].tolist()
    assert cae.process_file(tmp_path / "b.wav").attrs["quality"][str(tmp_path / "b.wav")][
        "snr_db"
    ] == pytest.approx(written.loc["b.wav", "snr_db"])
    quality = AutoencoderFeatures().quality([tmp_path / "a.wav", tmp_path / "b.wav"])
    assert (
        list(quality.columns) == list(QUALITY_COLUMNS)
        and quality["duration_s"].tolist() == [pytest.approx(len(samples) / rate)] * 2
    )


def test_flags_and_the_suggested_low_pass_follow_their_documented_thresholds():
    from speechae.quality import quality_flags, suggested_lowpass

    table = pd.DataFrame(
        {
            "bandwidth_hz": [7800.0, 7600, 3900],
            "clipped_fraction": [0.0, 0.0011, 0.0009],
            "snr_db": [30, 9.9, 10],
        },
        index=["a.wav", "b.wav", "c.wav"],
    )
    assert quality_flags(table).tolist() == [
        "",
        "clipping on 0.11 % of samples; SNR 10 dB",
        "bandwidth 3900 Hz, far below the median 7600 Hz",
    ]
    assert suggested_lowpass(table) == 3500.0
    assert suggested_lowpass(table.iloc[:2]) is None


@pytest.mark.weights
def test_lowpass_filters_before_extraction_is_part_of_the_settings_and_caps_the_bandwidth(speech, tmp_path):
    from speechae import Extractor
    from speechae.frontend import low_passed

    samples, rate = speech
    plain, filtered = Extractor("cae-256"), Extractor("cae-256", lowpass=2000)
    assert "lowpass_hz" not in plain.settings() and filtered.settings()["lowpass_hz"] == 2000
    table = filtered.process_signal(samples, rate)
    expected = plain.process_signal(low_passed(samples, rate, 2000), rate)
    np.testing.assert_array_equal(table.to_numpy(), expected.to_numpy())
    assert not np.array_equal(table.to_numpy(), plain.process_signal(samples, rate).to_numpy())
    assert table.attrs["quality"][""]["bandwidth_hz"] == 2000
    assert low_passed(samples, rate, 9000) is samples  # above the Nyquist frequency: nothing to do


@pytest.mark.weights
def test_a_long_recording_on_disk_is_low_passed_in_blocks_as_in_memory(speech, tmp_path, spools, monkeypatch):
    from speechae import frontend
    from speechae.pipeline import Pipeline

    samples, rate = speech
    sf.write(tmp_path / "a.wav", samples, rate, subtype="FLOAT")
    in_memory = Pipeline("cae-256", lowpass=1500).read(tmp_path / "a.wav")
    monkeypatch.setattr(frontend, "LOWPASS_BLOCK", 1000)  # blocks that cut the recording
    with spool_audio(tmp_path / "a.wav") as spooled:
        on_disk = frontend.low_passed(spooled, rate, 1500, spool=lambda n, dtype: frontend_spool(n, dtype))
        np.testing.assert_allclose(
            on_disk.read(0, len(on_disk)), frontend.low_passed(samples.astype(np.float32), rate, 1500)
        )
    assert in_memory.quality["bandwidth_hz"] <= 1500


def frontend_spool(frames, dtype):
    from speechae.audio import SampleSpool

    return SampleSpool.create(frames, dtype)


@pytest.mark.weights
def test_the_corpus_report_shows_the_quality_flags_and_suggests_a_low_pass(tmp_path, speech):
    import subprocess
    import sys

    samples, rate = speech
    for number in range(3):
        sf.write(tmp_path / f"wide{number}.wav", np.roll(samples, 4000 * number), rate, subtype="PCM_16")
    narrow = signal.resample_poly(signal.resample_poly(samples, 8000, rate), rate, 8000)
    sf.write(tmp_path / "phone.wav", narrow, rate, subtype="PCM_16")
    out = tmp_path / "out" / "features.csv"
    command = [
        sys.executable,
        "-m",
        "speechae",
        "extract",
        tmp_path,
        "-o",
        out,
        "--report",
        tmp_path / "r.html",
        "-q",
    ]
    assert subprocess.run(command, capture_output=True, timeout=600).returncode == 0
    page = (tmp_path / "r.html").read_text()
    assert 'id="quality"><h2>Recording quality (1 flagged)' in page
    assert 'phone.wav</td><td class="text">bandwidth' in page and "<code>--lowpass 3" in page
