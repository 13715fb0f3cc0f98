from __future__ import annotations

import shutil
import tempfile
import weakref

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from conftest import EXAMPLE
from speechae import Extractor, audio, pipeline
from speechae.errors import (
    AudioDecodeError,
    AudioFileNotFoundError,
    AudioTooShortError,
    DroppedWindowsWarning,
    EmptyAudioError,
    NoAudioFilesError,
    NonFiniteAudioError,
    NoUsableWindowsError,
    ParameterError,
    SegmentedResamplingWarning,
    SilentAudioError,
    SingleWindowWarning,
    TemporaryStorageError,
)
from speechae.frontend import condition_signal
from speechae.models import ConvAutoencoder
from speechae.recordings import Recording
from test_pipeline import integer_noise_with_silence


@pytest.fixture()
def small_model_path(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "small.pt"
    torch.save(ConvAutoencoder(8).state_dict(), path)
    return path


@pytest.fixture()
def static(small_model_path):
    return Extractor(small_model_path)


@pytest.fixture()
def dynamic(small_model_path):
    return Extractor(small_model_path, level="dynamic")


def test_static_table_shape_index_and_metadata(static, speech_like):
    table = static.process_signal(speech_like, 16000, file="x")
    assert table.shape == (1, 4 * 8 + 4 * 128)
    assert list(table.columns[:2]) == ["mean_bottleneck_0", "mean_bottleneck_1"]
    assert table.index.names == ["file", "start", "end"]
    assert table.index[0] == ("x", pd.Timedelta(0), pd.Timedelta(seconds=3))
    assert table.attrs["level"] == "static" and table.attrs["dropped_windows"] == {"x": []}
    assert len(table.attrs["weights_sha256"]) == 64


def test_dynamic_rows_carry_window_times(dynamic, speech_like):
    table = dynamic.process_signal(speech_like, 16000)
    assert table.shape == (11, 8 + 128)
    starts = table.index.get_level_values("start").total_seconds()
    ends = table.index.get_level_values("end").total_seconds()
    np.testing.assert_allclose(starts, 0.25 * np.arange(11))
    np.testing.assert_allclose(ends - starts, 0.5)


def test_file_and_array_give_equal_tables(dynamic, speech_like, tmp_path):
    path = tmp_path / "speech.wav"
    sf.write(path, speech_like / 4, 16000, subtype="DOUBLE")
    from_file = dynamic.process_file(path)
    from_array = dynamic.process_signal(speech_like / 4, 16000, file=str(path))
    pd.testing.assert_frame_equal(from_file, from_array)


def test_files_resampled_in_segments_are_spooled_not_held_in_memory(dynamic, speech_like, tmp_path, spools):
    path = tmp_path / "speech.wav"
    stereo = np.stack([speech_like, speech_like[::-1]], axis=1) / 8
    sf.write(path, np.repeat(stereo, 3, axis=0), 48000, subtype="PCM_24")
    with pytest.warns(SegmentedResamplingWarning):
        from_file = dynamic.process_file(path, start=0.5)
    assert len(spools) == 1 and spools[0].closed
    samples, _ = audio.read_audio(path, native=True)
    with pytest.warns(SegmentedResamplingWarning):
        from_array = dynamic.process_signal(samples, 48000, file=str(path), start=0.5)
    pd.testing.assert_frame_equal(from_file, from_array)


def test_samples_as_read_are_released_before_the_network_runs(dynamic, speech_like, tmp_path, monkeypatch):
    path = tmp_path / "speech.wav"
    sf.write(path, speech_like, 16000, subtype="FLOAT")
    read, alive_at_network = [], []

    def read_and_track(*args, **kwargs):
        samples, rate = audio.read_audio(*args, **kwargs)
        read.append(weakref.ref(samples))
        return samples, rate

    run_network = pipeline.run_network

    def track_and_compute(*args, **kwargs):
        alive_at_network.append(read[-1]() is not None)
        return run_network(*args, **kwargs)

    monkeypatch.setattr("speechae.recordings.read_audio", read_and_track)
    monkeypatch.setattr("speechae.pipeline.run_network", track_and_compute)
    dynamic.process_file(path)
    assert alive_at_network == [False]


def test_dropped_window_leaves_a_gap_and_is_reported(dynamic):
    signal = integer_noise_with_silence(48000, slice(20000, 21000))
    with pytest.warns(DroppedWindowsWarning, match=r"rec: 2 of 11 windows dropped .* start at 1, 1.25 s"):
        table = dynamic.process_signal(signal, 16000, file="rec")
    starts = table.index.get_level_values("start").total_seconds().tolist()
    assert starts == [0.25 * k for k in range(11) if k not in (4, 5)]
    assert table.attrs["dropped_windows"] == {"rec": [1.0, 1.25]}


def test_segments_keep_times_of_the_whole_recording(dynamic, speech_like, tmp_path):
    path = tmp_path / "speech.wav"
    sf.write(path, speech_like / 4, 16000, subtype="DOUBLE")
    table = dynamic.process_file(path, start=1.0, end=2.5)
    starts = table.index.get_level_values("start").total_seconds()
    np.testing.assert_allclose(starts, 1.0 + 0.25 * np.arange(5))
    same = dynamic.process_signal(speech_like / 4, 16000, file=str(path), start=1.0, end=2.5)
    pd.testing.assert_frame_equal(table, same)


def test_process_files_and_folder_keep_order_and_files_are_independent(static, speech_like, tmp_path):
    rng = np.random.default_rng(0)
    for name, signal in (("b.wav", speech_like), ("a.flac", rng.standard_normal(20000))):
        sf.write(tmp_path / name, signal / np.abs(signal).max() / 2, 16000)
    folder = static.process_folder(tmp_path)
    assert [p.rsplit("/", 1)[-1] for p in folder.index.get_level_values("file")] == ["a.flac", "b.wav"]
    one = static.process_file(tmp_path / "b.wav")  # alone, not sharing a batch: the same bits
    assert folder.iloc[[1]].equals(one)


def test_one_window_warns_once_and_gives_nan(static):
    signal = np.random.default_rng(0).standard_normal(8000)
    with pytest.warns(SingleWindowWarning, match="one.wav: only one 500 ms window"):
        table = static.process_signal(signal, 16000, file="one.wav")
    assert table.isna().sum(axis=1).iloc[0] == 2 * 8 + 2 * 128


def test_all_windows_dropped_is_an_error(dynamic):
    signal = np.zeros(8000)
    signal[:2] = (1000.0, -1000.0)
    with pytest.raises(NoUsableWindowsError, match=r"z\.wav: all 1 windows have Mel values <= 0"):
        dynamic.process_signal(signal, 16000, file="z.wav")
    speech = np.concatenate([np.random.default_rng(1).standard_normal(16000), signal])
    with pytest.raises(NoUsableWindowsError, match=r"z\.wav \[1-1\.5 s\]: all 1 windows have Mel"):
        dynamic.process_signal(speech, 16000, file="z.wav", start=1, end=1.5)


def test_bad_level_and_device(small_model_path):
    with pytest.raises(ParameterError, match="level must be one of"):
        Extractor(small_model_path, level="frames")
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="no CUDA GPU"):
            Extractor(small_model_path, device="cuda")


def write_audio(path, signal, subtype="PCM_16"):
    sf.write(path, signal, 16000, subtype=subtype)
    return path


def write_bytes(path, content: bytes):
    path.write_bytes(content)
    return path


BAD_INPUTS = {
    "missing": (lambda d: d / "missing.wav", AudioFileNotFoundError, "no such file"),
    "empty": (lambda d: write_bytes(d / "empty.wav", b""), EmptyAudioError, "empty"),
    "corrupt": (
        lambda d: write_bytes(d / "corrupt.wav", b"RIFF....WAVEfmt " + bytes(40)),
        AudioDecodeError,
        "not a readable audio file",
    ),
    "not_audio": (
        lambda d: write_bytes(d / "text.mp3", b"just text\n" * 50),
        AudioDecodeError,
        "unsupported format or corrupt",
    ),
    "short": (
        lambda d: write_audio(d / "short.wav", np.ones(7000) * 0.1),
        AudioTooShortError,
        "lasts 0.4375 s",
    ),
    "silent": (lambda d: write_audio(d / "silent.wav", np.zeros(16000)), SilentAudioError, "silent"),
    "nan": (
        lambda d: write_audio(d / "nan.wav", np.r_[np.ones(8000), np.nan, np.ones(8000)], subtype="FLOAT"),
        NonFiniteAudioError,
        "NaN or infinite",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_raise_one_clear_error_naming_the_file(case, static, tmp_path):
    make, error, message = BAD_INPUTS[case]
    path = make(tmp_path)
    with pytest.raises(error, match=rf"^{path}: .*{message}"):
        static.process_file(path)


def test_folder_with_no_audio(static, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(NoAudioFilesError, match=rf"{tmp_path}: no audio files"):
        static.process_folder(tmp_path)
    with pytest.raises(NoAudioFilesError, match="no files were given"):
        static.process_files([])


@pytest.mark.weights
def test_pretrained_extractor_on_the_example(tmp_path):
    extractor = Extractor("cae-256")
    copy = shutil.copy(EXAMPLE, tmp_path / "example.wav")
    table = extractor.process_file(copy)
    assert table.shape == (1, 1536) and not table.isna().any().any()
    assert repr(extractor) == "Extractor(model='cae-256', level='static', device='cpu')"


@pytest.mark.weights
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("model", ["cae-256", "rae-256"])
def test_cuda_equals_cpu(model):
    cpu = Extractor(model, level="dynamic").process_file(EXAMPLE)
    gpu = Extractor(model, level="dynamic", device="cuda").process_file(EXAMPLE)
    np.testing.assert_allclose(gpu.iloc[:, :256], cpu.iloc[:, :256], rtol=0, atol=1e-5)
    np.testing.assert_allclose(gpu.iloc[:, 256:], cpu.iloc[:, 256:], rtol=1e-4, atol=1e-9)


@pytest.mark.weights
def test_bf16_mode_is_close_but_never_the_default(cae):
    fast = Extractor("cae-256", level="dynamic", precision="bf16")
    exact = cae.process_file(EXAMPLE)
    approximate = fast.process_file(EXAMPLE)
    assert approximate.shape == exact.shape and approximate.dtypes.iloc[0] == np.float32
    correlation = np.corrcoef(approximate.to_numpy().ravel(), exact.to_numpy().ravel())[0, 1]
    assert 0.999 < correlation < 1.0
    assert fast.settings()["precision"] == "bf16" and cae.settings()["precision"] == "fp32"
    assert Extractor.__init__.__kwdefaults__["precision"] == "fp32"
    with pytest.raises(ParameterError, match="precision must be one of"):
        Extractor("cae-256", precision="fp16")


def test_a_segment_of_a_signal_reports_dropped_windows_at_recording_times(dynamic):
    segment = integer_noise_with_silence(48000, slice(20000, 21000))  # zero mean: the zeros stay
    signal = np.concatenate([np.full(8000, 100.0), segment])
    dropped = r"rec \[0\.5-end s\]: 2 of 11 windows dropped .* start at 1.5, 1.75 s"
    with pytest.warns(DroppedWindowsWarning, match=dropped):
        table = dynamic.process_signal(signal, 16000, file="rec", start=0.5)
    assert table.attrs["dropped_windows"] == {"rec": [1.5, 1.75]}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"start": -1}, r"rec: the segment starts at -1 s, before the recording starts"),
        ({"end": -0.5}, r"rec: the segment ends at -0\.5 s, not after its start at 0 s"),
        ({"start": 2, "end": 1}, r"rec: the segment ends at 1 s, not after its start at 2 s"),
        ({"start": 10}, r"rec: the segment starts at 10 s, after the end of the recording \(3\.00 s\)"),
        ({"start": float("nan")}, r"rec: the segment nan-None s needs finite numbers of seconds"),
        ({"sampling_rate": 0}, r"rec: the sampling rate must be a positive number of Hz, not 0"),
        ({"sampling_rate": "16k"}, r"rec: the sampling rate must be a positive number of Hz, not '16k'"),
        ({"signal": np.zeros((2, 48000))}, r"rec: a signal of shape \(2, 48000\) would have more channels"),
        ({"signal": np.zeros((48000, 2, 1))}, r"rec: a signal is \(samples,\) or \(samples, channels\)"),
        ({"signal": np.ones(48000, complex)}, r"rec: samples must be integers or floats, not complex128"),
        ({"signal": np.ones(48000, bool)}, r"rec: samples must be integers or floats, not bool"),
    ],
)
def test_signals_refuse_bad_segments_rates_and_shapes_in_one_sentence(dynamic, speech_like, options, message):
    arguments = {"signal": speech_like, "sampling_rate": 16000, **options}
    with pytest.raises(ParameterError, match=message):
        dynamic.process_signal(
            arguments.pop("signal"), arguments.pop("sampling_rate"), file="rec", **arguments
        )


def test_a_file_segment_is_indexed_from_the_first_frame_read(dynamic, speech_like, tmp_path):
    path = tmp_path / "speech.wav"
    sf.write(path, speech_like, 16000, subtype="FLOAT")
    from_file = dynamic.process_file(path, start=1.00003)
    from_signal = dynamic.process_signal(speech_like, 16000, file=str(path), start=1.00003)
    assert from_file.index.get_level_values("start")[0] == pd.Timedelta(seconds=1.0)
    pd.testing.assert_index_equal(from_file.index, from_signal.index)


def test_one_path_is_one_file_and_a_file_is_not_a_folder(dynamic):
    pd.testing.assert_frame_equal(dynamic.process_files(str(EXAMPLE)), dynamic.process_files([EXAMPLE]))
    with pytest.raises(NoAudioFilesError, match=r"is a file, not a folder of audio files"):
        dynamic.process_folder(EXAMPLE)


def test_file_features_of_a_segment_are_timed_in_the_recording(dynamic):
    whole = dynamic.file_features(EXAMPLE)
    segment = dynamic.file_features(EXAMPLE, start=1.0, end=3.0)
    assert whole.starts[0] == 0.0 and segment.starts.tolist() == [1.0 + 0.25 * k for k in range(7)]


def test_a_long_recording_is_conditioned_outside_memory_with_the_same_features(
    dynamic, speech_like, tmp_path, spools, monkeypatch
):
    # 16 kHz needs no resampling, yet beyond WHOLE_SIGNAL_SAMPLES it is kept on disk, not in memory
    path = tmp_path / "long.wav"
    samples = np.tile(speech_like, 3)[:130_001] / 4
    sf.write(path, samples, 16000, subtype="PCM_16")
    conditioned = []

    class RecordedSpool(audio.SampleSpool):
        @classmethod
        def create(cls, *args, **kwargs):
            conditioned.append(audio.SampleSpool.create(*args, **kwargs))
            return conditioned[-1]

    monkeypatch.setattr("speechae.recordings.SampleSpool", RecordedSpool)
    monkeypatch.setattr("speechae.pipeline.SampleSpool", RecordedSpool)
    spooled = dynamic.file_features(path)
    assert len(spools) == 1 and spools[0].closed
    assert len(conditioned) == 1 and conditioned[0].closed
    stored, _ = audio.read_audio(path)
    in_memory = pipeline.recording_features(
        Recording(condition_signal(stored, 16000), len(stored) / 16000),
        dynamic.model.network,
        dynamic.frontend,
        memory_budget=0,
    )
    np.testing.assert_array_equal(spooled.starts, in_memory.starts)
    np.testing.assert_allclose(spooled.bottleneck, in_memory.bottleneck, rtol=0, atol=1e-5)
    np.testing.assert_allclose(spooled.error, in_memory.error, rtol=1e-4, atol=1e-9)
    # spectrograms and activations beyond the memory budget go to temporary files too
    from_disk = dynamic.file_features(path, memory_budget=0)
    assert len(conditioned) == 1 + (1 + 1 + 5) and all(spool.closed for spool in conditioned)
    np.testing.assert_array_equal(from_disk.bottleneck, spooled.bottleneck)
    np.testing.assert_array_equal(from_disk.error, spooled.error)


def test_a_long_recording_is_read_into_memory_when_the_temporary_folder_has_no_room(
    dynamic, speech_like, tmp_path, spools, monkeypatch
):
    path = tmp_path / "long.wav"
    sf.write(path, np.tile(speech_like, 3)[:130_001] / 4, 16000, subtype="PCM_16")
    spooled = dynamic.file_features(path)
    assert len(spools) == 1
    no_room = shutil.disk_usage(tempfile.gettempdir())._replace(free=0)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: no_room)
    with pytest.raises(TemporaryStorageError):
        audio.spool_audio(path)
    in_memory = dynamic.file_features(path)
    assert len(spools) == 1  # no second spool was made
    np.testing.assert_array_equal(in_memory.bottleneck, spooled.bottleneck)
    np.testing.assert_array_equal(in_memory.error, spooled.error)


@pytest.mark.weights
def test_file_names_that_are_not_utf8_are_written_as_the_command_line_writes_them(tmp_path):
    import os

    name = os.fsdecode(bytes(tmp_path) + b"/caf\xe9.wav")
    shutil.copy(EXAMPLE, name)
    extractor = Extractor("cae-256")
    expected = f"{tmp_path}/caf\\xe9.wav"
    for table in (
        extractor.process_file(name),
        extractor.process_files([name]),
        extractor.process_folder(tmp_path),
    ):
        assert table.index.get_level_values("file").tolist() == [expected]
        assert list(table.attrs["dropped_windows"]) == [expected]
