from __future__ import annotations

import inspect
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import DATA, EXAMPLE
from speechae import Extractor, cli
from speechae.writers import read_table


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "speechae", *args], capture_output=True, text=True, timeout=300
    )


def test_help_explains_every_option():
    result = run("extract", "--help")
    assert result.returncode == 0
    options = (
        "--output",
        "--level",
        "--model",
        "--device",
        "--recursive",
        "--jobs",
        "--format",
        "--root",
        "--shard",
        "--strict",
        "--quiet",
        "--extensions",
        "--batch-windows",
        "--precision",
        "--report",
        ".parquet",
        "cae-256",
    )
    for option in options:
        assert option in result.stdout
    for command in ("plot", "merge", "models"):
        assert run(command, "--help").returncode == 0


#: CLI option (argparse dest) -> the API parameter it sets, for every option that has one.
SAME_DEFAULTS = {
    "extract": {
        "model": ("Extractor", "model"),
        "level": ("Extractor", "level"),
        "device": ("Extractor", "device"),
        "precision": ("Extractor", "precision"),
        "memory_budget": ("Extractor", "memory_budget"),
        "resampling": ("Extractor", "resampling"),
        "lowpass": ("Extractor", "lowpass"),
        "format": ("extract_corpus", "fmt"),
        "batch_windows": ("extract_corpus", "batch_windows"),
        "strict": ("extract_corpus", "strict"),
        "wait": ("extract_corpus", "wait"),
        "threads": ("use_threads", "threads"),
        "recursive": ("collect_items", "recursive"),
        "root": ("collect_items", "root"),
    },
    "plot": {
        "model": ("Extractor", "model"),
        "device": ("Extractor", "device"),
        "start": ("file_features", "start"),
        "end": ("file_features", "end"),
    },
    "train": {
        "arch": ("train", "architecture"),
        "bottleneck": ("train", "bottleneck"),
        "epochs": ("train", "epochs"),
        "lr": ("train", "learning_rate"),
        "batch_size": ("train", "batch_size"),
        "seed": ("train", "seed"),
        "device": ("train", "device"),
        "validation_fraction": ("train", "validation_fraction"),
        "patience": ("train", "patience"),
        "init": ("train", "init"),
        "fit_scaling": ("train", "fit_scaling"),
        "mixed_precision": ("train", "mixed_precision"),
        "resume": ("train", "resume"),
        "cache_spectrograms": ("train", "spectrogram_cache"),
    },
}


@pytest.mark.parametrize("command", sorted(SAME_DEFAULTS))
def test_cli_defaults_equal_api_defaults(command):
    from speechae.corpus import extract_corpus, use_threads
    from speechae.inputs import collect_items
    from speechae.training import train

    api = {
        "Extractor": Extractor,
        "extract_corpus": extract_corpus,
        "use_threads": use_threads,
        "collect_items": collect_items,
        "file_features": Extractor.file_features,
        "train": train,
    }
    required = {
        "extract": ["x.wav", "-o", "o.csv"],
        "plot": ["x.wav", "-o", "o.png"],
        "train": ["-o", "m.st"],
    }
    parsed = vars(cli._parser().parse_args([command, *required[command]]))
    for option, (function, parameter) in SAME_DEFAULTS[command].items():
        expected = inspect.signature(api[function]).parameters[parameter].default
        assert parsed[option] == expected, f"{command} --{option}"
    if command == "extract":  # the one deliberate difference: worker processes need the __main__ guard
        assert parsed["jobs"] == "auto" and inspect.signature(extract_corpus).parameters["jobs"].default == 1
    options = {
        name for name in parsed if name not in ("command", "handler", "inputs", "file", "output", "jobs")
    }
    unmatched = options - set(SAME_DEFAULTS[command])
    assert unmatched <= {"dask", "extensions", "shard", "report", "quiet", "title", "manifest"}, unmatched


@pytest.mark.weights
def test_extract_example_to_csv_equals_disvoice(tmp_path):
    out = tmp_path / "features.csv"
    result = run("extract", str(EXAMPLE), "-o", str(out))
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out, index_col="file")
    assert table.shape == (1, 1536)
    reference = np.load(DATA / f"{EXAMPLE.name}.CAE.npz")["static"]
    np.testing.assert_allclose(table.to_numpy()[0], reference, rtol=1e-4, atol=1e-4)


@pytest.mark.weights
@pytest.mark.parametrize("suffix", [".parquet", ".npy", ".pt"])
def test_extract_dynamic_rae_formats(tmp_path, suffix):
    out = tmp_path / f"windows{suffix}"
    result = run("extract", str(EXAMPLE), "--level", "dynamic", "--model", "rae-256", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "1 ok (1 computed" in result.stdout and f"output: {out}" in result.stdout
    assert read_table(out).shape == (14, 384)


@pytest.mark.weights
def test_bad_files_are_skipped_and_reported_with_a_distinct_exit_code(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / "good.wav")
    (folder / "empty.wav").write_bytes(b"")
    sf.write(folder / "silent.flac", np.zeros(16000), 16000)
    out = tmp_path / "out.csv"
    result = run("extract", str(folder), "-o", str(out))
    assert result.returncode == cli.EXIT_PARTIAL
    assert "Traceback" not in result.stderr and "2 failed" in result.stdout
    assert (  # each failure on the error stream
        "empty.wav: the file is empty" in result.stderr
        and "silent.flac: the recording is silent" in result.stderr
    )
    assert pd.read_csv(out).shape[0] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.wav"], "missing.wav: no such file"),
        (["{tmp}"], "no audio files"),
    ],
)
def test_nothing_to_extract_is_one_line_and_exit_1(tmp_path, args, message, monkeypatch):
    args = [a.format(tmp=tmp_path) for a in args]
    monkeypatch.chdir(tmp_path)
    result = run("extract", *args, "-o", str(tmp_path / "o.csv"), "--model", str(small_model(tmp_path)))
    assert result.returncode == cli.EXIT_ERROR
    assert message in result.stdout + result.stderr and "Traceback" not in result.stderr


def small_model(folder):
    import torch

    from speechae.models import RecurrentAutoencoder

    path = folder / "small.pt"
    torch.save(RecurrentAutoencoder(4).state_dict(), path)
    return path


def test_unknown_model_lists_known_ones(tmp_path):
    result = run("extract", str(EXAMPLE), "--model", "vae-99", "-o", str(tmp_path / "o.csv"))
    assert result.returncode == cli.EXIT_ERROR
    assert "unknown model 'vae-99'" in result.stderr and "cae-256, rae-256" in result.stderr


def test_unknown_output_format(tmp_path):
    result = run("extract", str(EXAMPLE), "-o", str(tmp_path / "o.xlsx"))
    assert result.returncode == cli.EXIT_ERROR and "unknown output format 'xlsx'" in result.stderr


@pytest.mark.weights
def test_models_list_and_info():
    listing = run("models", "list")
    assert listing.returncode == 0 and "cae-256" in listing.stdout and "rae-256" in listing.stdout
    info = run("models", "info", "rae-256")
    assert info.returncode == 0 and "architecture: rae" in info.stdout and "bottleneck: 256" in info.stdout


@pytest.mark.weights
def test_plot_writes_a_figure(tmp_path):
    out = tmp_path / "figure.png"
    result = run("plot", str(EXAMPLE), "-o", str(out))
    assert result.returncode == 0, result.stderr
    import matplotlib.image

    image = matplotlib.image.imread(out)
    assert image.shape[0] > 400 and image.std() > 0.05
    bad = run("plot", str(EXAMPLE), "-o", str(tmp_path / "figure.jpg"))
    assert bad.returncode == cli.EXIT_ERROR and "unknown figure format 'jpg'" in bad.stderr


@pytest.mark.weights
def test_plot_draws_a_segment_and_names_it_in_errors(tmp_path):
    result = run("plot", str(EXAMPLE), "--start", "1", "--end", "3.5", "-o", str(tmp_path / "part.svg"))
    assert result.returncode == 0 and "1.00–3.50 s" in (tmp_path / "part.svg").read_text()
    short = run("plot", str(EXAMPLE), "--end", "0.3", "-o", str(tmp_path / "short.png"))
    assert short.returncode == cli.EXIT_ERROR
    assert f"{EXAMPLE} [0-0.3 s]: the audio lasts 0.3 s" in short.stderr


@pytest.mark.weights
def test_a_report_of_segments_draws_them(tmp_path):
    manifest = tmp_path / "segments.csv"
    manifest.write_text("file,start,end\nexample.wav,0.5,3\nexample.wav,,\n")
    shutil.copy(EXAMPLE, tmp_path / "example.wav")
    report = tmp_path / "report.html"
    result = run("extract", str(manifest), "-o", str(tmp_path / "out.csv"), "--report", str(report), "-q")
    assert result.returncode == 0, result.stderr
    captions = re.findall(r"<figcaption>#\d ([^<]*)</figcaption>", report.read_text())
    recording = str(tmp_path / "example.wav")
    assert sorted(captions) == [recording, f"{recording} [0.5-3 s]"]


@pytest.mark.weights
def test_extract_writes_an_html_report(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / "good.wav")
    (folder / "empty.wav").write_bytes(b"")
    report = tmp_path / "report.html"
    result = run("extract", str(folder), "-o", str(tmp_path / "out.csv"), "--report", str(report), "-q")
    assert result.returncode == cli.EXIT_PARTIAL, result.stderr
    page = report.read_text()
    for section in ('id="summary"', 'id="failures"', 'id="errors-histogram"', 'id="worst"', 'id="settings"'):
        assert section in page
    assert "empty.wav" in page and "data:image/png;base64" in page and "cae-256" in page


def test_train_then_extract_and_inspect_the_model(tmp_path):
    rng = np.random.default_rng(0)
    for k in range(4):
        t = np.arange(24000) / 16000
        sf.write(
            tmp_path / f"rec{k}.wav",
            0.3 * np.sin(2 * np.pi * (150 + 40 * k) * t) + 0.01 * rng.standard_normal(24000),
            16000,
        )
    model = tmp_path / "mine.safetensors"
    trained = run(
        "train",
        *(str(tmp_path / f"rec{k}.wav") for k in range(4)),
        "-o",
        str(model),
        "--arch",
        "rae",
        "--bottleneck",
        "8",
        "--epochs",
        "2",
        "--validation-fraction",
        "0.25",
    )
    assert trained.returncode == 0, trained.stderr
    assert (
        model.is_file() and (tmp_path / "mine.loss.png").is_file() and (tmp_path / "mine.loss.csv").is_file()
    )
    info = run("models", "info", str(model))
    assert (
        "architecture: rae" in info.stdout
        and "bottleneck: 8" in info.stdout
        and "epochs_run: 2" in info.stdout
    )
    out = tmp_path / "features.csv"
    extracted = run(
        "extract",
        str(tmp_path / "rec0.wav"),
        "--model",
        str(model),
        "--level",
        "dynamic",
        "-o",
        str(out),
        "-q",
    )
    assert extracted.returncode == 0, extracted.stderr
    assert pd.read_csv(out).shape == (5, 3 + 8 + 128)


def test_entry_point_exits_with_the_code_of_main_after_freezing_the_collector(monkeypatch):
    import gc

    calls = []
    monkeypatch.setattr(cli, "main", lambda: calls.append("main") or 3)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))  # keep this process's collector
    with pytest.raises(SystemExit) as exit_info:
        cli.entry_point()
    assert exit_info.value.code == 3 and calls == ["main", "freeze"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "the following arguments are required: INPUT"),
        ([str(EXAMPLE), "--level", "frames"], "argument --level: invalid choice: 'frames'"),
        ([str(EXAMPLE), "--device", "tpu"], "device 'tpu' is not one torch knows"),
        ([str(EXAMPLE), "--batch-windows", "0"], "batch_windows must be a whole number of at least 1, not 0"),
        ([str(EXAMPLE), "--root", "{tmp}/nowhere"], "root {tmp}/nowhere: no such folder"),
    ],
)
def test_a_wrong_command_line_is_one_sentence_and_exit_1(tmp_path, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    result = run("extract", *args, "-o", str(tmp_path / "o.csv"), "--model", str(small_model(tmp_path)))
    assert result.returncode == cli.EXIT_ERROR, result.stderr
    assert message.format(tmp=tmp_path) in result.stderr and "Traceback" not in result.stderr


def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "file").write_text("")
    for output, message in (
        (tmp_path / "folder.csv", f"{tmp_path}/folder.csv: is a folder; give the path of the file to write"),
        (tmp_path / "file" / "o.csv", f"{tmp_path}/file/o.csv: {tmp_path}/file is a file, not a folder"),
    ):
        result = run("extract", str(EXAMPLE), "-o", str(output), "--model", str(small_model(tmp_path)))
        assert result.returncode == cli.EXIT_ERROR and message in result.stderr
        assert "Traceback" not in result.stderr and "files:" not in result.stdout  # no work was done
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder.csv", "small.pt"]
    merged = run("merge", str(tmp_path / "a.csv"), "-o", str(tmp_path / "folder.csv"))
    assert merged.returncode == cli.EXIT_ERROR and "is a folder" in merged.stderr
    plotted = run("plot", str(EXAMPLE), "-o", str(tmp_path / "file" / "p.png"), "--model", "nowhere.pt")
    assert plotted.returncode == cli.EXIT_ERROR and "file is a file, not a folder" in plotted.stderr


def test_inputs_that_give_no_files_are_listed_with_the_failures(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "no_file_column.csv").write_text("path\nx.wav\n")
    out = tmp_path / "out.csv"
    inputs = [str(EXAMPLE), str(tmp_path / "empty"), str(tmp_path / "no_file_column.csv")]
    result = run("extract", *inputs, "-o", str(out), "--report", str(tmp_path / "report.html"), "-q")
    assert result.returncode == cli.EXIT_PARTIAL
    assert "1 ok" in result.stdout and "2 failed" in result.stdout
    errors = pd.read_csv(f"{out}.errors.csv")
    assert errors["file"].tolist() == [inputs[1], inputs[2]]
    assert errors["error"].tolist() == ["InputError", "InputError"]
    assert "no_file_column.csv: a manifest needs a" in (tmp_path / "report.html").read_text()
    strict = run("extract", *inputs, "-o", str(tmp_path / "strict.csv"), "--strict", "-q")
    assert strict.returncode == cli.EXIT_ERROR and "no audio files" in strict.stderr


def test_lists_and_manifests_may_name_files_in_any_bytes(tmp_path):
    name = os.fsdecode(b"caf\xe9.wav")
    shutil.copy(EXAMPLE, tmp_path / name)
    (tmp_path / "list.txt").write_bytes(b"caf\xe9.wav\n")
    (tmp_path / "segments.csv").write_bytes(b"file,start,end\ncaf\xe9.wav,0,2\n")
    for listing in ("list.txt", "segments.csv"):
        out = tmp_path / f"{listing}.out.csv"
        result = run("extract", str(tmp_path / listing), "-o", str(out), "--root", str(tmp_path), "-q")
        assert result.returncode == cli.EXIT_OK, result.stderr
        assert pd.read_csv(out)["file"].tolist() == ["caf\\xe9.wav"]


def test_single_window_files_are_counted_in_the_summary(tmp_path):
    short = tmp_path / "short.wav"
    samples, rate = sf.read(EXAMPLE)
    sf.write(short, samples[: int(0.6 * rate)], rate)
    result = run("extract", str(short), "-o", str(tmp_path / "o.csv"), "-q")
    assert "files with a single window, so NaN skewness and kurtosis: 1" in result.stdout


def test_a_reader_that_goes_away_ends_the_output_quietly():
    command = f"{sys.executable} -m speechae models list | head -1"
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() and result.stderr == ""


def test_imported_models_are_listed_with_their_architecture(tmp_path):
    environment = {**os.environ, "SPEECHAE_CACHE_DIR": str(tmp_path / "cache")}

    def models(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "speechae", "models", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)

    assert models("import", str(small_model(tmp_path)), "--name", "mine").returncode == 0
    listed = [line.split() for line in models("list").stdout.splitlines()]
    assert ["mine", "rae", "4", "yes", "imported", "(speechae", "models", "info", "mine)"] in listed
    refused = models("import", str(small_model(tmp_path)), "--name", "rae-256")
    assert refused.returncode == cli.EXIT_ERROR and "is the name of a pretrained model" in refused.stderr


def test_a_run_whose_only_input_gives_no_files_replaces_an_older_output_with_an_empty_table(tmp_path):
    (tmp_path / "header_only.csv").write_text("file,start,end\n")
    out = tmp_path / "out.csv"
    out.write_text("an older run's table\n")
    result = run("extract", str(tmp_path / "header_only.csv"), "-o", str(out), "-q")
    assert result.returncode == cli.EXIT_ERROR and "Traceback" not in result.stderr
    reason = f"{tmp_path}/header_only.csv: the manifest names no audio files"
    assert result.stderr.strip() == f"failed: {reason}"  # failures on the error stream, once
    assert f"output: {out} (no rows: no file succeeded)" in result.stdout and reason not in result.stdout
    table = pd.read_csv(out)
    assert len(table) == 0 and table.columns[0] == "file" and len(table.columns) == 1 + 1536
    assert pd.read_csv(f"{out}.errors.csv")["reason"].tolist() == [reason]


def test_an_output_that_is_an_input_is_refused_before_any_work(tmp_path):
    audio = tmp_path / "a.wav"
    shutil.copy(EXAMPLE, audio)
    manifest = tmp_path / "m.csv"
    manifest.write_text("file\na.wav\n")
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    for inputs, output in [([audio], audio), ([manifest], manifest), ([audio], tmp_path / "r.csv")]:
        report = ["--report", str(audio)] if output.name == "r.csv" else []
        result = run("extract", *map(str, inputs), "-o", str(output), "--format", "csv", *report, "-q")
        assert result.returncode == cli.EXIT_ERROR and "files:" not in result.stdout
        written = audio if report else output
        assert result.stderr.strip() == (
            f"speechae: error: {written}: this run would write it, but it is also an input "
            f"({inputs[0]}); choose another output path"
        )
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_every_error_and_warning_class_says_when_it_happens():
    """The site's error reference is generated from these docstrings (docs/generate.py)."""
    import inspect

    from speechae import errors

    named = {
        name: value
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, (errors.SpeechaeError, errors.SpeechaeWarning))
    }
    assert len(named) > 25
    assert [name for name, value in named.items() if "__doc__" not in vars(value) or not value.__doc__] == []
