from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import DEVICES, Spills
from speechae.engine import TensorInputs
from speechae.errors import NonFiniteAudioError, NoUsableWindowsError
from speechae.frontend import LogMelFrontEnd, condition_signal
from speechae.pipeline import SignalInputs, SpilledInputs, compute_features, prepare
from speechae.recordings import Recording


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
    in_memory = prepare(Recording(conditioned, 6.0), frontend)
    prepared = prepare(Recording(conditioned, 6.0), frontend, memory_budget=0, spill=spills)
    assert isinstance(prepared.inputs, kind) and len(prepared.inputs) == len(in_memory.inputs) == 23
    torch.testing.assert_close(prepared.inputs.get(3, 17), in_memory.inputs.get(3, 17), rtol=0, atol=0)
    prepared.close()
    assert all(spool.closed for spool in spills.created)


def test_a_front_end_failure_closes_the_spilled_spectrograms(speech_like, monkeypatch):
    monkeypatch.setattr("speechae.pipeline.FRONTEND_CHUNK", 4)
    frontend, calls = LogMelFrontEnd(), []

    def fail_on_the_second_chunk(windows):
        calls.append(len(windows))
        if len(calls) == 2:
            raise RuntimeError("CUDA out of memory")
        return LogMelFrontEnd.forward(frontend, windows)

    monkeypatch.setattr(frontend, "forward", fail_on_the_second_chunk)
    spills = Spills()
    with pytest.raises(RuntimeError, match="out of memory"):
        prepare(Recording(condition_signal(speech_like, 16000), 3.0), frontend, memory_budget=0, spill=spills)
    assert len(spills.created) == 1 and spills.created[0].closed


def test_a_recording_whose_every_window_is_dropped_names_itself():
    with pytest.raises(NoUsableWindowsError, match=r"^talk\.wav: all 5 windows have Mel values <= 0"):
        prepare(Recording(np.zeros(24000), 1.5, name="talk.wav"), LogMelFrontEnd())


def test_window_times_are_on_the_recordings_time_axis(speech_like):
    recording = Recording(condition_signal(speech_like, 16000), 3.0, offset=1.2345625)
    prepared = prepare(recording, LogMelFrontEnd())
    assert prepared.starts[:3].tolist() == [1.2345625, 1.4845625, 1.7345625]


# Every way of asking for features gives the pipeline's bits, window times included.

RECORDINGS = [  # (name, rate, channels, subtype)
    ("a.wav", 8000, 1, "PCM_16"),
    ("b.wav", 22050, 2, "FLOAT"),
    ("c.flac", 44100, 1, "PCM_24"),
    ("d.ogg", 48000, 2, "VORBIS"),
    ("e.wav", 16000, 1, "PCM_32"),
]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> list:
    import soundfile as sf

    folder = tmp_path_factory.mktemp("rates")
    rng = np.random.default_rng(7)
    paths = []
    for k, (name, rate, channels, subtype) in enumerate(RECORDINGS):
        t = np.arange(int((2.3 + 0.4 * k) * rate)) / rate
        voiced = sum(np.sin(2 * np.pi * (110 + 20 * k) * h * t) / h for h in range(1, 9))
        signal = voiced * (1 + np.sin(2 * np.pi * 3 * t)) / 6 + 0.01 * rng.standard_normal(len(t))
        samples = np.stack([signal, signal[::-1]], axis=1)[:, :channels]
        sf.write(folder / name, samples, rate, subtype=subtype)
        paths.append(folder / name)
    return paths


def table_of(paths, tables) -> dict:
    return {str(path): tables.xs(str(path), level="file") for path in paths}


@pytest.mark.weights
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_corpus_run_gives_each_file_the_bits_it_has_alone_on_every_device(recordings, device, jobs):
    from speechae import Extractor

    extractor = Extractor("cae-256", level="dynamic", device=device)
    together = extractor.process_files(recordings, jobs=jobs)  # on a GPU, workers only condition
    for path in recordings:
        alone = extractor.process_file(path)
        np.testing.assert_array_equal(together.xs(str(path), level="file").to_numpy(), alone.to_numpy())
    if device != "cpu":
        on_the_cpu = Extractor("cae-256", level="dynamic").process_files(recordings)
        np.testing.assert_allclose(together.iloc[:, :256], on_the_cpu.iloc[:, :256], rtol=0, atol=1e-5)
        np.testing.assert_allclose(together.iloc[:, 256:], on_the_cpu.iloc[:, 256:], rtol=1e-4, atol=1e-9)


@pytest.mark.weights
def test_a_recording_has_the_same_bits_alone_in_a_corpus_run_on_the_command_line_and_in_replearning(
    recordings, cae, tmp_path
):
    from speechae import RepLearning, cli
    from speechae.writers import read_table

    alone = [cae.process_file(path) for path in recordings]
    together = cae.process_files(recordings, jobs=2)
    out = tmp_path / "cli.parquet"
    assert cli.main(["extract", *map(str, recordings), "--level", "dynamic", "-o", str(out), "-q"]) == 0
    on_the_command_line = read_table(out)
    replearning = RepLearning("CAE")
    for path, table in zip(recordings, alone, strict=True):
        for other in (together.xs(str(path), level="file"), on_the_command_line.loc[str(path)]):
            np.testing.assert_array_equal(other.to_numpy(), table.to_numpy(), err_msg=str(path))
            starts = table.index.get_level_values("start")
            np.testing.assert_array_equal(
                pd_seconds(other.index.get_level_values("start")), pd_seconds(starts)
            )
        frames = replearning.extract_features_file(str(path), static=False, fmt="npy")
        np.testing.assert_array_equal(frames, table.to_numpy(), err_msg=str(path))


def pd_seconds(values) -> np.ndarray:
    """An index level's times as whole nanoseconds, the resolution of the API's Timedelta index.

    Tables written to files keep times as float seconds; the same floats become the API's
    Timedeltas, so both compare exactly once converted alike.
    """
    import pandas as pd

    if not isinstance(values, pd.TimedeltaIndex):
        values = pd.to_timedelta(np.asarray(values, np.float64), unit="s")
    return values.asi8


SEGMENTS = [(1.234567, 3.98765), (0.0003, 1.2), (2.71828, None), (0.5, 0.9999999)]


@pytest.mark.weights
@pytest.mark.parametrize("rate", [8000, 16000, 24000, 44100])
def test_a_segment_has_the_same_features_and_times_by_api_and_by_manifest(rate, cae, tmp_path):
    import pandas as pd
    import soundfile as sf

    from speechae import cli
    from speechae.writers import read_table

    t = np.arange(int(4.5 * rate)) / rate
    path = tmp_path / f"talk{rate}.wav"
    sf.write(path, np.sin(2 * np.pi * 150 * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 3, rate, subtype="PCM_16")
    manifest = tmp_path / "segments.csv"
    pd.DataFrame(
        {"file": [path.name] * 4, "start": [s for s, _ in SEGMENTS], "end": [e for _, e in SEGMENTS]}
    ).to_csv(manifest, index=False)
    out = tmp_path / "segments.parquet"
    assert cli.main(["extract", str(manifest), "--level", "dynamic", "-o", str(out), "-q"]) == 0
    by_manifest = read_table(out)
    for start, end in SEGMENTS:
        by_api = cae.process_file(path, start=start, end=end)
        first = by_api.index.get_level_values("start")[0]
        rows = by_manifest[pd_seconds(by_manifest.index.get_level_values("segment_start")) == first.value]
        assert len(rows) == len(by_api) > 0
        np.testing.assert_array_equal(rows.to_numpy(), by_api.to_numpy())
        api_starts = pd_seconds(by_api.index.get_level_values("start"))
        np.testing.assert_array_equal(pd_seconds(rows.index.get_level_values("start")), api_starts)
        assert abs(first.total_seconds() - start) <= 0.5 / rate + 1e-9  # the sample nearest the asked start


def test_bf16_runs_the_recurrent_layers_of_an_rae_in_float32_on_the_cpu(small_rae, speech_like):
    exact = compute_features(speech_like, 16000, small_rae)
    fast = compute_features(speech_like, 16000, small_rae, precision="bf16")
    assert fast.bottleneck.dtype == np.float32
    np.testing.assert_allclose(fast.bottleneck, exact.bottleneck, atol=0.05)


def test_one_budget_covers_the_signal_the_spectrograms_and_the_activations(
    small_cae, speech_like, monkeypatch
):
    from speechae import pipeline

    seen = {}
    run_network = pipeline.run_network

    def note_the_budget(*args, **kwargs):
        seen["network"] = kwargs["memory_budget"]
        seen["inputs"] = type(args[1][0].inputs)
        return run_network(*args, **kwargs)

    monkeypatch.setattr(pipeline, "run_network", note_the_budget)
    frontend = LogMelFrontEnd()
    signal = condition_signal(speech_like, 16000)  # float64: 384 kB
    spectrograms = 11 * 128 * 126 * 4  # 710 kB
    results = []
    for budget in (signal.nbytes + 4 * spectrograms + 50_000, signal.nbytes + 3 * spectrograms, 0):
        spills = Spills()
        recording = Recording(signal.copy(), 3.0)
        results.append(
            pipeline.recording_features(recording, small_cae, frontend, memory_budget=budget, spill=spills)
        )
        if budget > signal.nbytes + 4 * spectrograms:  # spectrograms take at most a quarter of the rest
            assert seen["inputs"] is TensorInputs and seen["network"] == budget - signal.nbytes - spectrograms
        else:
            assert seen["inputs"] is SpilledInputs and seen["network"] == max(budget - signal.nbytes, 0)
        assert all(spool.closed for spool in spills.created)
    for other in results[1:]:
        np.testing.assert_array_equal(other.bottleneck, results[0].bottleneck)
        np.testing.assert_array_equal(other.error, results[0].error)


@pytest.mark.weights
def test_segmented_resampling_reaches_corpus_workers_the_command_line_and_the_store_keys(
    recordings, tmp_path
):
    from speechae import Extractor, cli
    from speechae.writers import read_table

    exact, segmented = Extractor("cae-256"), Extractor("cae-256", resampling="segmented")
    assert segmented.settings() == {**exact.settings(), "resampling": "segmented"}
    together = segmented.process_files(recordings, jobs=2)
    out = tmp_path / "segmented.csv"
    command = ["extract", *map(str, recordings), "--resampling", "segmented", "-o", str(out), "-q"]
    assert cli.main(command) == 0
    on_the_command_line = read_table(out)
    for path in recordings:
        alone = segmented.process_file(path)
        np.testing.assert_array_equal(together.loc[[str(path)]].to_numpy(), alone.to_numpy())
        np.testing.assert_array_equal(on_the_command_line.loc[[str(path)]].to_numpy(), alone.to_numpy())
        resampled = "e.wav" not in str(path)  # the 16 kHz file is not resampled at all
        assert np.array_equal(alone.to_numpy(), exact.process_file(path).to_numpy()) != resampled


def test_a_network_that_gives_non_finite_features_for_finite_audio_is_an_error(small_cae, speech_like):
    from speechae.errors import NonFiniteFeaturesError

    for parameter in small_cae.parameters():
        if parameter.dim() > 1:
            parameter.mul_(1e30)  # finite weights whose products overflow float32
    with pytest.raises(NonFiniteFeaturesError, match=r"^talk\.wav: the model gave [0-9]+ non-finite "):
        compute_features(speech_like, 16000, small_cae, name="talk.wav")


@pytest.mark.weights
def test_a_corpus_item_with_non_finite_features_fails_alone(tmp_path, recordings, monkeypatch):
    from speechae import Extractor, pipeline
    from speechae.corpus import batches, run_items
    from speechae.errors import NonFiniteFeaturesError
    from speechae.inputs import Item

    extractor = Extractor("cae-256")
    damaged = str(recordings[1])

    def finite_except_one(features, name):
        if name == damaged:
            features.error[0, 0] = np.nan
        return pipeline.check_finite(features, name)

    monkeypatch.setattr(batches, "check_finite", finite_except_one)
    items = [Item(str(path), str(path)) for path in recordings]
    results = sorted(run_items(extractor.pipeline, items, batch_windows=10_000), key=lambda r: r.position)
    assert [result.ok for result in results] == [path != recordings[1] for path in recordings]
    assert isinstance(results[1].error, NonFiniteFeaturesError)
    assert str(results[1].error).startswith(f"{damaged}: the model gave 1 non-finite reconstruction error")


def test_zeros_with_a_click_every_second_drop_every_window_despite_their_non_zero_mean(small_cae):
    clicks = np.zeros(48000)
    clicks[::16000] = 1.0  # the mean is not zero, so the silence becomes a small constant
    with pytest.raises(NoUsableWindowsError, match="all 11 windows have Mel values <= 0"):
        compute_features(clicks, 16000, small_cae)
