from __future__ import annotations

import math
import random
import warnings
from dataclasses import astuple

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from conftest import CORPUS, DEVICES, needs_shared
from speechae import Extractor
from speechae.audio import read_audio
from speechae.errors import DroppedWindowsWarning, ParameterError, SkippedFileWarning
from speechae.frontend import LogMelFrontEnd
from speechae.models import FileBatchNorm2d
from speechae.pipeline import compute_features
from speechae.training import (
    evaluate,
    log_mel_windows,
    read_speaker_manifest,
    split_files,
    train,
)
from speechae.weights import import_weights, load_model, model_info
from test_pipeline import integer_noise_with_silence

TRAINING_FILES = [
    "disvoice_001_a1_PCGITA.wav",
    "disvoice_098_u1_PCGITA.wav",
    "cmu_arctic_us_aew_a0001.wav",
    "disvoice_001_ddk1_PCGITA.wav",
    "vctk_p240_00000.mp3",
]
HELD_OUT_FILES = ["librispeech_1320_00000.mp3", "aespeech_pakata.wav"]


def quiet(*_progress) -> None:
    """A progress callback that shows nothing."""


class Interrupted(Exception):
    pass


def voice(seconds: float, f0: float, seed: int, rate: int = 16000) -> np.ndarray:
    """A noisy harmonic tone with a slow amplitude modulation, peak below 3."""
    t = np.arange(round(seconds * rate)) / rate
    tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6)) * (
        1 + 0.5 * np.sin(2 * np.pi * 2 * t)
    )
    return tone + 0.05 * np.random.default_rng(seed).standard_normal(len(t))


@pytest.fixture(scope="module")
def voices(tmp_path_factory) -> list[str]:
    """Five 2 s recordings (7 windows each) of different pitch, as 16-bit WAV."""
    folder = tmp_path_factory.mktemp("voices")
    paths = []
    for k, f0 in enumerate((110, 140, 180, 220, 260)):
        path = folder / f"voice{k}.wav"
        sf.write(path, voice(2.0, f0, k) / 4, 16000, subtype="PCM_16")
        paths.append(str(path))
    return paths


def corpus(names: list[str]) -> list[str]:
    return [str(CORPUS / name) for name in names]


def same_weights(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)


def weights_of(path) -> dict:
    return load_file(str(path))


# --- front-end, split and arguments (always run) ---


def test_scaled_log_mel_windows_are_exactly_the_extraction_input(small_cae):
    signal = integer_noise_with_silence(48000, slice(20000, 21000))
    log_mel = log_mel_windows(signal, 16000)
    kept = ~np.isnan(log_mel[:, 0, 0])
    features = compute_features(signal, 16000, small_cae, keep_spectrograms=True)
    assert kept.tolist() == [k not in (4, 5) for k in range(11)]
    assert np.isnan(log_mel[~kept]).all()
    scaled = LogMelFrontEnd().scale(torch.from_numpy(log_mel[kept])).numpy()
    np.testing.assert_array_equal(scaled, features.spectrogram)


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize(("n_files", "fraction", "n_validation"), [(2, 0.2, 1), (10, 0.2, 2), (10, 0.95, 9)])
def test_split_by_file_is_disjoint_complete_and_fixed_by_the_seed(seed, n_files, fraction, n_validation):
    files = [f"f{k}.wav" for k in range(n_files)]
    train_files, validation_files = split_files(files, validation_fraction=fraction, seed=seed)
    assert len(validation_files) == n_validation
    assert set(train_files).isdisjoint(validation_files)
    assert sorted(train_files + validation_files) == sorted(files)
    shuffled = random.Random(seed).sample(files, len(files))
    assert set(split_files(shuffled, validation_fraction=fraction, seed=seed)[1]) == set(validation_files)


def test_different_seeds_give_different_splits():
    files = [f"f{k}.wav" for k in range(20)]
    splits = {tuple(split_files(files, seed=seed)[1]) for seed in range(5)}
    assert len(splits) > 1


def test_split_by_speaker_keeps_every_speaker_on_one_side():
    speakers = {f"s{k // 3}_{k % 3}.wav": f"s{k // 3}" for k in range(15)}
    train_files, validation_files = split_files(list(speakers), validation_fraction=0.4, speakers=speakers)
    train_speakers = {speakers[file] for file in train_files}
    validation_speakers = {speakers[file] for file in validation_files}
    assert train_speakers.isdisjoint(validation_speakers)
    assert len(validation_speakers) == 2 and len(validation_files) == 6


@pytest.mark.parametrize(
    ("files", "speakers", "message"),
    [
        (["a.wav"], None, "at least 2 files, not 1"),
        (["a.wav", "b.wav"], {"a.wav": "x", "b.wav": "x"}, "at least 2 speakers, not 1"),
        (["a.wav", "b.wav"], {"a.wav": "x"}, "no speaker is given for 'b.wav'"),
    ],
)
def test_split_rejects_what_cannot_be_split(files, speakers, message):
    with pytest.raises(ParameterError, match=message):
        split_files(files, speakers=speakers)


def test_speaker_manifest_paths_are_relative_to_it(tmp_path):
    manifest = tmp_path / "speakers.csv"
    manifest.write_text("file,speaker,age\na.wav,s1,40\nsub/b.wav,s2,51\n")
    assert read_speaker_manifest(manifest) == {
        str(tmp_path / "a.wav"): "s1",
        str(tmp_path / "sub/b.wav"): "s2",
    }
    manifest.write_text("path,speaker\na.wav,s1\n")
    with pytest.raises(ParameterError, match=r"lacking \['file'\]"):
        read_speaker_manifest(manifest)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"architecture": "vae"}, "architecture must be one of .* not 'vae'"),
        ({"bottleneck": 0}, "bottleneck must be a whole number of at least 1, not 0"),
        ({"epochs": 2.5}, "epochs must be a whole number of at least 1, not 2.5"),
        ({"batch_size": -4}, "batch_size must be a whole number of at least 1, not -4"),
        ({"patience": 0}, "patience must be a whole number of at least 1, not 0"),
        ({"seed": -1}, "seed must be a non-negative integer, not -1"),
        ({"learning_rate": 0.0}, "learning_rate must be a positive number, not 0.0"),
        ({"learning_rate": math.nan}, "learning_rate must be a positive number, not nan"),
        ({"validation_fraction": 1.0}, r"validation_fraction must be between 0 and 1 .*, not 1.0"),
        ({"output": "model.pt"}, "output must be a .safetensors file, not 'model.pt'"),
        ({"resume": True}, r"--resume \(resume=True\) but there is no checkpoint .*safetensors\.checkp"),
        ({"speakers": {}}, r"no speaker is given for '.*voice0.wav' \(5 files lack one\)"),
    ],
)
def test_bad_arguments_are_rejected_naming_the_value(voices, tmp_path, arguments, message):
    settings = {"output": tmp_path / "model.safetensors", "on_progress": quiet, **arguments}
    with pytest.raises(ParameterError, match=message):
        train(voices, **settings)


def test_an_output_that_cannot_be_written_is_refused_before_training(voices, tmp_path, monkeypatch):
    import speechae.training.loop

    monkeypatch.setattr(speechae.training.loop, "load_recordings", lambda *_: pytest.fail("training began"))
    (tmp_path / "model.safetensors").mkdir()
    (tmp_path / "file").write_text("")
    for output, message in (
        (tmp_path / "model.safetensors", "model.safetensors: is a folder"),
        (tmp_path / "file" / "m.safetensors", "file is a file, not a folder"),
    ):
        with pytest.raises(ParameterError, match=message):
            train(voices, output=output, on_progress=quiet)


def test_too_few_usable_files_are_rejected_and_the_unusable_reported(voices, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio")
    with pytest.warns(SkippedFileWarning, match="broken.wav: not a readable audio file"):
        with pytest.raises(ParameterError, match="at least 2 files, not 1"):
            train([voices[0], broken], output=tmp_path / "m.safetensors", on_progress=quiet)


def test_file_batch_norm_ignores_train_and_eval_mode():
    layer = FileBatchNorm2d(4)
    x = torch.randn(6, 4, 5, 5)
    file_index = torch.tensor([0, 0, 0, 1, 1, 1])
    in_training = layer.train()(x, file_index)
    assert torch.equal(layer.eval()(x, file_index), in_training)
    assert torch.equal(layer.running_mean, torch.zeros(4)) and int(layer.num_batches_tracked) == 0


# --- training on synthetic recordings (always run) ---


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("architecture", ["cae", "rae"])
def test_interrupted_and_resumed_run_ends_with_the_uninterrupted_weights(
    architecture, device, voices, tmp_path
):
    settings = {
        "architecture": architecture,
        "device": device,
        "bottleneck": 8,
        "epochs": 2,
        "learning_rate": 1e-3,
        "batch_size": 8,
        "seed": 3,
        "validation_fraction": 0.25,
    }
    calls = []
    torch_state = torch.get_rng_state()
    whole = train(
        voices, output=tmp_path / "whole.safetensors", on_progress=lambda *c: calls.append(c), **settings
    )
    assert (
        torch.equal(torch.get_rng_state(), torch_state) and not torch.are_deterministic_algorithms_enabled()
    )
    assert calls[0] == (0, 0, 0, pytest.approx(math.nan, nan_ok=True), whole.history[0].validation_loss)
    assert [c[1:3] for c in calls if c[0] == 1] == [(1, 4), (2, 4), (3, 4), (4, 4), (4, 4)]
    assert [c[4] for c in calls if c[0] == 1] == [None] * 4 + [whole.history[1].validation_loss]

    def interrupt(epoch, batch, n_batches, train_loss, validation_loss):
        if (epoch, batch) == (2, 2):
            raise Interrupted

    part = tmp_path / "part.safetensors"
    with pytest.raises(Interrupted):
        train(voices, output=part, on_progress=interrupt, **settings)
    checkpoint = tmp_path / "part.safetensors.checkpoints"
    assert (checkpoint / "last.pt").is_file() and not part.exists()
    with pytest.raises(ParameterError, match="a checkpoint of an interrupted run exists"):
        train(voices, output=part, on_progress=quiet, **settings)
    with pytest.raises(ParameterError, match="made with seed=3, not 4"):
        train(voices, output=part, on_progress=quiet, resume=True, **{**settings, "seed": 4})
    with pytest.raises(
        ParameterError, match=r"the usable files \(4\) are not those of the interrupted run \(5\)"
    ):
        train(voices[:4], output=part, on_progress=quiet, resume=True, **settings)
    resumed = train(voices, output=part, on_progress=quiet, resume=True, **settings)
    assert same_weights(weights_of(whole.output), weights_of(part))
    np.testing.assert_array_equal([astuple(r) for r in resumed.history], [astuple(r) for r in whole.history])
    assert resumed.epochs_run == 2
    assert not checkpoint.exists()


def test_unusable_files_and_dropped_windows_are_reported_not_fatal(voices, tmp_path):
    broken, short, gappy = tmp_path / "broken.wav", tmp_path / "short.wav", tmp_path / "gappy.wav"
    broken.write_bytes(b"RIFF....WAVEfmt ")
    sf.write(short, voice(0.3, 150, 9), 16000)
    sf.write(gappy, integer_noise_with_silence(32000, slice(20000, 21000)) / 32768, 16000, subtype="DOUBLE")
    files = [*voices, broken, short, gappy, voices[1]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(
            files,
            output=tmp_path / "m.safetensors",
            architecture="rae",
            bottleneck=4,
            epochs=1,
            on_progress=quiet,
        )
    assert set(result.skipped) == {str(broken), str(short), voices[1]}
    assert result.skipped[voices[1]].endswith(f"the same audio as {voices[1]}, which is used once")
    assert "shorter than one 0.5 s window" in result.skipped[str(short)]
    messages = [str(w.message) for w in caught]
    assert any("broken.wav: not a readable audio file" in m for m in messages)
    assert any(
        issubclass(w.category, DroppedWindowsWarning)
        and "2 windows in 1 of the files (e.g." in str(w.message)
        for w in caught
    )
    assert result.metadata["dropped_windows"] == "2" and result.metadata["skipped_files"] == "3"
    assert len(result.train_files) + len(result.validation_files) == 6


def test_spectrogram_cache_gives_the_same_model(voices, tmp_path):
    settings = {"architecture": "rae", "bottleneck": 4, "epochs": 1, "seed": 1, "on_progress": quiet}
    plain = train(voices, output=tmp_path / "plain.safetensors", **settings)
    cache = tmp_path / "cache"
    filled = train(voices, output=tmp_path / "filled.safetensors", spectrogram_cache=cache, **settings)
    entries = sorted(cache.glob("*.npy"))
    assert len(entries) == len(voices)
    assert np.load(entries[0]).shape == (7, 128, 126)
    stamps = [entry.stat().st_mtime_ns for entry in entries]
    reused = train(voices, output=tmp_path / "reused.safetensors", spectrogram_cache=cache, **settings)
    assert [entry.stat().st_mtime_ns for entry in entries] == stamps
    assert same_weights(weights_of(plain.output), weights_of(filled.output))
    assert same_weights(weights_of(plain.output), weights_of(reused.output))
    assert plain.metadata["data_sha256"] == reused.metadata["data_sha256"]
    assert plain.config.learning_rate == 1e-3 and plain.metadata["learning_rate"] == "0.001"  # RAE default


def test_early_stopping_keeps_the_best_epoch(voices, tmp_path):
    result = train(
        voices,
        output=tmp_path / "m.safetensors",
        architecture="rae",
        bottleneck=4,
        epochs=30,
        learning_rate=0.3,
        patience=2,
        on_progress=quiet,
    )
    losses = [record.validation_loss for record in result.history]
    assert result.stopped_early and result.epochs_run < 30
    assert result.best_epoch == int(np.argmin(losses)) == result.epochs_run - 2
    assert evaluate(result.output, result.validation_files) == pytest.approx(min(losses), rel=1e-9)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("architecture", ["cae", "rae"])
def test_mixed_precision_trains(architecture, device, voices, tmp_path):
    result = train(
        voices,
        output=tmp_path / "m.safetensors",
        architecture=architecture,
        bottleneck=4,
        epochs=1,
        device=device,
        mixed_precision=True,
        on_progress=quiet,
    )
    assert math.isfinite(result.history[1].train_loss) and result.metadata["mixed_precision"] == "True"


def test_split_by_speaker_in_training(voices, tmp_path):
    manifest = tmp_path / "speakers.csv"
    manifest.write_text(
        "".join(["file,speaker\n"] + [f"{path},{'ab'[k % 2]}\n" for k, path in enumerate(voices)])
    )
    speakers = read_speaker_manifest(manifest)
    result = train(
        voices,
        output=tmp_path / "m.safetensors",
        bottleneck=4,
        epochs=1,
        speakers=speakers,
        on_progress=quiet,
    )
    assert {speakers[f] for f in result.train_files}.isdisjoint(
        {speakers[f] for f in result.validation_files}
    )
    assert result.metadata["validation_split"] == "speaker"
    assert result.config.architecture == "cae" and result.config.learning_rate == 1e-4  # the defaults


# --- training on the shared corpus ---


@needs_shared
@pytest.mark.parametrize("architecture", ["cae", "rae"])
def test_small_model_learns_and_its_file_serves_every_loader(architecture, tmp_path, monkeypatch):
    output = tmp_path / f"{architecture}.safetensors"
    result = train(
        corpus(TRAINING_FILES),
        output=output,
        architecture=architecture,
        bottleneck=16,
        epochs=3,
        learning_rate=1e-3,
        validation_fraction=0.25,
        on_progress=quiet,
    )
    losses = [record.validation_loss for record in result.history]
    assert losses[3] < losses[2] < losses[1] < losses[0]
    assert result.best_epoch == 3 and result.best_validation_loss == losses[3]
    # the loaded model runs in channels-last layout: equal to float32 rounding
    assert evaluate(output, result.validation_files) == pytest.approx(losses[3], rel=1e-6)

    table = Extractor(output, level="dynamic").process_file(result.validation_files[0])
    assert table.shape[1] == 16 + 128 and len(table) > 0
    loaded = load_model(output)
    assert (loaded.architecture, loaded.bottleneck) == (architecture, 16)
    info = model_info(output)
    assert info["epochs_run"] == "3" and info["train_files"] == "4" and info["validation_files"] == "1"
    assert info["learning_rate"] == "0.001" and info["init"] == "random" and len(info["data_sha256"]) == 64
    monkeypatch.setenv("SPEECHAE_CACHE_DIR", str(tmp_path / "cache"))
    (imported,) = import_weights(output, name="mine")
    assert load_model("mine").weights_sha256 == loaded.weights_sha256 and imported.is_file()

    assert result.loss_csv.read_text().splitlines()[0] == "epoch,train_loss,validation_loss"
    assert len(result.loss_csv.read_text().splitlines()) == 5
    assert result.loss_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_shared
def test_fitted_scaling_constants_are_stored_and_used_by_the_extractor(tmp_path):
    output = tmp_path / "fitted.safetensors"
    result = train(
        corpus(TRAINING_FILES),
        output=output,
        architecture="rae",
        bottleneck=4,
        epochs=1,
        fit_scaling=True,
        on_progress=quiet,
    )
    low, high = float(result.metadata["min_scaler"]), float(result.metadata["max_scaler"])
    assert (low, high) != (-50.527256, 6.8561997)
    extractor = Extractor(output)
    assert (extractor.frontend.config.min_scaler, extractor.frontend.config.max_scaler) == (low, high)
    inputs = [
        compute_features(
            *read_audio(file), extractor.model.network, frontend=extractor.frontend, keep_spectrograms=True
        )
        for file in result.train_files
    ]
    assert min(f.spectrogram.min() for f in inputs) == pytest.approx(0.0, abs=1e-6)
    assert max(f.spectrogram.max() for f in inputs) == pytest.approx(1.0, abs=1e-6)


@needs_shared
@pytest.mark.weights
def test_fine_tuning_cae_256_does_not_worsen_held_out_reconstruction(tmp_path):
    held_out = corpus(HELD_OUT_FILES)
    before = evaluate("cae-256", held_out)
    result = train(
        corpus(TRAINING_FILES),
        output=tmp_path / "tuned.safetensors",
        init="cae-256",
        epochs=1,
        learning_rate=1e-5,
        on_progress=quiet,
    )
    after = evaluate(result.output, held_out)
    assert result.best_epoch == 1 and not same_weights(
        load_model("cae-256").network.state_dict(), weights_of(result.output)
    )
    assert after <= before
    assert result.metadata["init"] == "cae-256" and result.metadata["bottleneck"] == "256"


@pytest.mark.weights
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"architecture": "rae"}, "architecture 'rae' differs from the 'cae' of the initial model 'cae-256'"),
        ({"bottleneck": 64}, "bottleneck 64 differs from the 256 of the initial model 'cae-256'"),
    ],
)
def test_fine_tuning_rejects_a_different_architecture(voices, tmp_path, arguments, message):
    with pytest.raises(ParameterError, match=message):
        train(voices, output=tmp_path / "m.safetensors", init="cae-256", on_progress=quiet, **arguments)
