"""The corpus runner: bad files never stop a run, runs resume, jobs and shards change nothing."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import CORPUS, EXAMPLE, copy_corpus, needs_shared, stored_count
from speechae import Extractor
from speechae.cli import EXIT_PARTIAL
from speechae.corpus import check_same_run, extract_corpus, merge_sidecars, plan_batches
from speechae.errors import DamagedStoreWarning, ParameterError
from speechae.inputs import collect_items
from speechae.store import FeatureStore, store_path
from speechae.writers import merge_tables, read_table

pytestmark = pytest.mark.weights

GOOD = [
    "cmu_arctic_us_aew_a0001.wav",
    "disvoice_001_ddk1_PCGITA.wav",
    "librispeech_1320_00000.mp3",
    "librosa_198-209-0000.ogg",
    "librivox_pie_and_patty_pan_48k_stereo.mp3",
    "whisper_jfk.flac",
    "fsdd_0_jackson_0.wav",
]
BROKEN = {
    "empty.wav": "the file is empty",
    "not_audio.flac": "not a readable audio file",
    "too_short.wav": "shorter than one 0.5 s window",
    "silent.wav": "silent",
    "truncated.wav": "truncated",
}


def make_broken(folder):
    (folder / "empty.wav").write_bytes(b"")
    (folder / "not_audio.flac").write_text("this is a text file, not audio\n" * 20)
    sf.write(folder / "too_short.wav", 0.1 * np.ones(4000), 16000)
    sf.write(folder / "silent.wav", np.zeros(32000), 16000, subtype="PCM_16")
    data = (CORPUS / "disvoice_001_a1_PCGITA.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(data[: len(data) // 3])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = copy_corpus(tmp_path_factory.mktemp("corpus"), GOOD)
    make_broken(folder)
    return folder


def speechae(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "speechae", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        **kwargs,
    )


@pytest.fixture(scope="module")
def reference_run(corpus, tmp_path_factory):
    """One uninterrupted single-process run: --jobs 1, small batches so files share batches."""
    out = tmp_path_factory.mktemp("reference") / "features.parquet"
    result = speechae("extract", corpus, "--root", corpus, "-o", out, "--batch-windows", 40, "-q")
    return out, result


@pytest.mark.filterwarnings("ignore::speechae.errors.SingleWindowWarning")
def test_good_files_equal_the_single_file_result_and_bad_files_are_listed(corpus, reference_run, cae):
    out, result = reference_run
    assert result.returncode == EXIT_PARTIAL, result.stderr
    table = read_table(out)
    assert list(table.index) == sorted(GOOD)
    static = Extractor("cae-256")
    for name in GOOD:
        alone = static.process_file(corpus / name).to_numpy()[0]
        np.testing.assert_array_equal(table.loc[name].to_numpy(), alone, err_msg=name)
    errors = pd.read_csv(out.with_name(out.name + ".errors.csv"))
    failed = errors[errors["error"] != "DecoderWarning"]
    listed = dict(zip(failed["file"], failed["reason"], strict=True))
    assert sorted(listed) == sorted(BROKEN)
    for name, reason in BROKEN.items():
        assert reason in listed[name] and listed[name].startswith(str(corpus / name)), listed[name]
    assert "failed: 5" in result.stdout and "Traceback" not in result.stderr


def test_a_file_read_despite_decoder_damage_is_listed_in_every_run(corpus, reference_run):
    out, result = reference_run
    damaged = "librivox_pie_and_patty_pan_48k_stereo.mp3"
    expected = [damaged, "DecoderWarning", f"{corpus / damaged}: the MP3 stream ends inside a frame"]
    for rerun in (False, True):  # the rerun takes every file from the store
        if rerun:
            result = speechae("extract", corpus, "--root", corpus, "-o", out, "-q")
            assert "0 computed" in result.stdout
        errors = pd.read_csv(out.with_name(out.name + ".errors.csv"), keep_default_na=False)
        warned = errors[errors["error"] == "DecoderWarning"].to_numpy().tolist()
        assert [[row[0], row[3], row[4][: len(expected[2])]] for row in warned] == [expected]
        assert "read despite damage the decoder reported (DecoderWarning): 1, listed in" in result.stdout
        assert damaged in read_table(out).index


def test_jobs_two_is_byte_identical_to_jobs_one(corpus, reference_run, tmp_path):
    out = tmp_path / "features.parquet"
    result = speechae(
        "extract", corpus, "--root", corpus, "-o", out, "--batch-windows", 40, "--jobs", 2, "-q"
    )
    assert result.returncode == EXIT_PARTIAL, result.stderr
    assert out.read_bytes() == reference_run[0].read_bytes()


def test_killed_run_resumes_without_recomputing_and_ends_byte_identical(corpus, reference_run, tmp_path):
    out = tmp_path / "features.parquet"
    command = [
        sys.executable,
        "-m",
        "speechae",
        "extract",
        str(corpus),
        "-o",
        str(out),
        "--batch-windows",
        "10",
        "-q",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None and stored_count(out) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists(), "the output appears only when the run is complete"
    finished = len(FeatureStore(store_path(out)))
    assert 2 <= finished < len(GOOD), "the kill should land mid-run"
    result = speechae("extract", corpus, "-o", out, "--batch-windows", 10, "-q")
    assert result.returncode == EXIT_PARTIAL, result.stderr
    assert f"{finished} reused from the store" in result.stdout
    assert f"({len(GOOD) - finished} computed" in result.stdout
    expected = tmp_path / "expected.parquet"
    speechae("extract", corpus, "-o", expected, "--batch-windows", 10, "-q")
    assert out.read_bytes() == expected.read_bytes()


def test_a_second_command_on_a_running_output_stops_and_sigterm_ends_the_first_cleanly(tmp_path, speech_like):
    folder = tmp_path / "inputs"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder)
    sf.write(folder / "long.wav", np.tile(speech_like, 200) / 8, 16000)  # 10 minutes, ~10 s of work
    out = tmp_path / "features.csv"
    command = [sys.executable, "-m", "speechae", "extract", folder, "-o", out, "--jobs", "2"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and first.poll() is None and not Path(f"{out}.lock").exists():
        time.sleep(0.05)
    second = speechae("extract", folder, "-o", out, "--level", "dynamic")
    assert second.returncode == 1 and second.stdout == ""
    assert second.stderr.startswith(f"speechae: error: {out}: another speechae run (process {first.pid} on ")
    first.send_signal(signal.SIGTERM)
    stderr = first.communicate(timeout=120)[1]
    assert first.returncode == 130 and not out.exists()
    assert f"speechae: interrupted before writing {out}; finished recordings are kept in" in stderr
    assert "Traceback" not in stderr and "leaked" not in stderr and "semaphore" not in stderr
    assert not Path(f"{out}.lock").exists()
    resumed = speechae("extract", folder, "-o", out, "-q")
    assert resumed.returncode == 0 and "files: 2 ok" in resumed.stdout


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended


IDLE_WORKER = """
import multiprocessing, time
from speechae.corpus.workers import init_worker

def idle():
    init_worker()
    time.sleep(600)

if __name__ == "__main__":
    worker = multiprocessing.get_context("spawn").Process(target=idle)
    worker.start()
    print(worker.pid, flush=True)
    time.sleep(600)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_a_worker_ends_when_its_run_is_killed(tmp_path):
    # an idle worker of a ProcessPoolExecutor otherwise waits for tasks forever
    script = tmp_path / "run.py"
    script.write_text(IDLE_WORKER)
    run = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(run.stdout.readline())
    time.sleep(1.0)  # the worker is set up and idle
    assert _running(worker)
    run.kill()
    run.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _running(worker):
        time.sleep(0.1)
    outlived = _running(worker)
    if outlived:
        os.kill(worker, signal.SIGKILL)
    assert not outlived, "the worker outlived its run"


def test_changed_settings_never_reuse_stale_results(corpus, tmp_path):
    out = tmp_path / "features.csv"
    files = [corpus / GOOD[0], corpus / GOOD[1]]
    first = speechae("extract", *files, "-o", out, "-q")
    assert "2 computed, 0 reused" in first.stdout
    again = speechae("extract", *files, "-o", out, "-q")
    assert "0 computed, 2 reused" in again.stdout
    other_model = speechae("extract", *files, "-o", out, "--model", "rae-256", "-q")
    assert "2 computed, 0 reused" in other_model.stdout
    shutil.copy(EXAMPLE, tmp_path / "changed.wav")
    data = bytearray((tmp_path / "changed.wav").read_bytes())
    data[-2:] = b"\x10\x00"  # one sample differs: a different recording
    (tmp_path / GOOD[0]).write_bytes(bytes(data))
    changed = speechae("extract", tmp_path / GOOD[0], files[1], "-o", out, "-q")
    assert "1 computed, 1 reused" in changed.stdout


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".npz", ".ark"])
def test_shards_merge_into_the_unsharded_output(corpus, tmp_path, suffix, rae):
    items, _ = collect_items([corpus], root=corpus)
    whole = tmp_path / f"whole{suffix}"
    extract_corpus(rae, items, whole, batch_windows=40)
    shards = [tmp_path / f"part-{index}{suffix}" for index in range(3)]
    for index, path in enumerate(shards):
        extract_corpus(rae, items, path, shard=(index, 3), batch_windows=40)
    done = [path for path in shards if path.exists() or path.with_suffix(".scp").exists()]
    assert len(done) == 3
    merged = tmp_path / f"merged{suffix}"
    merge_tables(shards, merged)
    assert merge_sidecars(shards, merged)["errors"] == len(BROKEN) + 1  # and the MP3 with decoder damage
    for kind in ("errors", "dropped"):
        whole_list, merged_list = (Path(f"{path}.{kind}.csv") for path in (whole, merged))
        assert whole_list.exists() == merged_list.exists()
        assert not whole_list.exists() or merged_list.read_bytes() == whole_list.read_bytes()
    if suffix == ".ark":
        merged, whole = merged.with_suffix(".scp"), whole.with_suffix(".scp")
        assert merged.read_text().replace("merged", "X") == whole.read_text().replace("whole", "X")
        merged, whole = merged.with_suffix(".ark"), whole.with_suffix(".ark")
    assert merged.read_bytes() == whole.read_bytes()


def test_merge_from_the_command_line(corpus, reference_run, tmp_path):
    out, _ = reference_run
    result = speechae("merge", out, "-o", tmp_path / "copy.parquet")
    assert result.returncode == 0 and (tmp_path / "copy.parquet").read_bytes() == out.read_bytes()


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".npy", ".npz", ".pt", ".ark"])
def test_every_output_format_reads_back(corpus, tmp_path, suffix, rae):
    out = tmp_path / f"windows{suffix}"
    items, _ = collect_items([corpus / GOOD[0], corpus / GOOD[1]], root=corpus)
    extract_corpus(rae, items, out)
    table = read_table(out)
    assert table.shape == (14 + 13, 384)
    assert sorted(set(table.index.get_level_values("file"))) == sorted(GOOD[:2])


def test_merge_refuses_shards_of_other_models_inputs_or_batches(corpus, tmp_path, cae, rae):
    items, _ = collect_items([corpus / name for name in GOOD[:3]], root=corpus)

    def shard(name, index, extractor=rae, inputs=items, batch_windows=10):
        path = tmp_path / f"{name}.shard-{index}-of-2.csv"
        extract_corpus(extractor, inputs, path, shard=(index, 2), batch_windows=batch_windows)
        return path

    first = shard("run", 0)
    assert speechae("merge", first, shard("run", 1), "-o", tmp_path / "ok.csv").returncode == 0
    for other, differs in (
        (shard("cae", 1, extractor=cae), "the model, precision or front-end settings differ"),
        (shard("fewer", 1, inputs=items[:2]), "the inputs differ"),
        (shard("batches", 1, batch_windows=20), "--batch-windows"),
    ):
        result = speechae("merge", first, other, "-o", tmp_path / "merged.csv")
        assert result.returncode == 1 and f"{other}: comes from another run than {first}" in result.stderr
        assert differs in result.stderr and "Traceback" not in result.stderr
    undescribed = shard("old", 1)
    Path(f"{undescribed}.run.json").unlink()  # as shards were written before runs described themselves
    with pytest.raises(ParameterError, match=r"old\.shard-1-of-2\.csv: has no run description"):
        check_same_run([first, undescribed])
    check_same_run([undescribed, undescribed.with_name("old.shard-0-of-2.csv")])


def test_a_damaged_store_entry_is_computed_again_and_the_output_is_unchanged(corpus, tmp_path, rae):
    out = tmp_path / "windows.parquet"
    items, _ = collect_items([corpus / GOOD[0], corpus / GOOD[1]], root=corpus)
    extract_corpus(rae, items, out)
    expected = out.read_bytes()
    with sqlite3.connect(store_path(out)) as db:
        db.execute("UPDATE features SET error = zeroblob(length(error)) WHERE windows = 14")
    damaged = rf"store\.sqlite: the stored features of {GOOD[0]} are damaged"
    with pytest.warns(DamagedStoreWarning, match=damaged):
        summary = extract_corpus(rae, items, out)
    assert (summary.computed, summary.reused) == (1, 1)
    assert out.read_bytes() == expected
    assert extract_corpus(rae, items, out).reused == 2  # the entry was repaired


def test_the_summary_counts_the_decoded_audio_not_the_header_estimate(corpus, tmp_path, rae, monkeypatch):
    from speechae import audio
    from speechae.corpus import planning

    def overestimated(path, **segment):
        frames, rate = audio.audio_frames(path, **segment)
        return 2 * frames, rate  # as an MP3 header may misjudge a variable bit rate

    monkeypatch.setattr(planning, "audio_frames", overestimated)
    items, _ = collect_items([corpus / GOOD[0]], root=corpus)
    summary = extract_corpus(rae, items, tmp_path / "out.csv")
    assert summary.computed_seconds == pytest.approx(sf.info(corpus / GOOD[0]).duration)
    assert summary.audio_seconds == pytest.approx(summary.computed_seconds)


def test_manifest_segments_and_root(corpus, tmp_path, cae):
    manifest = tmp_path / "segments.csv"
    segments = {"file": [GOOD[0], GOOD[0], "missing.wav"], "start": [0.0, 1.0, None], "end": [2.0, 3.5, None]}
    pd.DataFrame(segments).to_csv(manifest, index=False)
    out = tmp_path / "segments.out.csv"
    result = speechae("extract", manifest, "--root", corpus, "--level", "dynamic", "-o", out, "-q")
    assert result.returncode == EXIT_PARTIAL and "missing.wav: no such file" in result.stderr
    table = pd.read_csv(out)
    assert len(table) == 7 + 9  # 2 s and 2.5 s segments; rows follow the segments' order
    second = table.iloc[7:]
    assert second["start"].tolist() == [1.0 + 0.25 * k for k in range(9)]
    assert set(second["segment_start"]) == {1.0} and set(second["segment_end"]) == {3.5}
    alone = cae.process_file(corpus / GOOD[0], start=1.0, end=3.5)
    np.testing.assert_array_equal(second.iloc[:, 5:].to_numpy(np.float32), alone.to_numpy())
    assert second["start"].tolist() == alone.index.get_level_values("start").total_seconds().tolist()


def test_overlapping_segments_keep_their_windows_apart_through_shards_and_merge(tmp_path, rae):
    from speechae.inputs import Item

    items = [
        Item("a.wav", str(EXAMPLE), 0.0, 2.0),
        Item("a.wav", str(EXAMPLE), 1.0, 3.5),
        Item("a.wav", str(EXAMPLE)),
    ]
    whole = tmp_path / "whole.csv"
    extract_corpus(rae, items, whole, batch_windows=8)
    table = read_table(whole)
    assert table.index.names == ["file", "segment_start", "segment_end", "start", "end"]
    assert table.index.is_unique and len(table) == 7 + 9 + 14
    shards = [tmp_path / f"out.shard-{index}-of-2.csv" for index in range(2)]
    for index, path in enumerate(shards):
        extract_corpus(rae, items, path, shard=(index, 2), batch_windows=8)
    merge_tables(shards, tmp_path / "merged.csv")
    assert (tmp_path / "merged.csv").read_bytes() == whole.read_bytes()


def test_dropped_windows_name_their_segment_through_shards_and_merge(tmp_path, rae):
    from speechae.inputs import Item

    rng = np.random.default_rng(5)

    def zero_sum_noise(length: int) -> np.ndarray:
        half = rng.integers(-3000, 3000, length // 2)
        return rng.permutation(np.concatenate([half, -half]))

    # digital silence at 1.25-1.3125 s that stays zero in both segments: each has a zero mean
    stretches = [zero_sum_noise(16000), zero_sum_noise(4000), np.zeros(1000, np.int64)]
    stretches += [zero_sum_noise(11000), zero_sum_noise(16000)]
    path = tmp_path / "talk.wav"
    sf.write(path, np.concatenate(stretches).astype(np.int16), 16000, subtype="PCM_16")
    items = [Item("talk.wav", str(path), 0.0, 2.0), Item("talk.wav", str(path), 1.0, 3.0)]
    whole = tmp_path / "whole.csv"
    extract_corpus(rae, items, whole, batch_windows=4)
    dropped = pd.read_csv(f"{whole}.dropped.csv")
    assert dropped.columns.tolist() == ["file", "segment_start", "segment_end", "start"]
    assert dropped.iloc[:, 1:].to_numpy().tolist() == [
        [0.0, 2.0, 1.0],
        [0.0, 2.0, 1.25],
        [1.0, 3.0, 1.0],
        [1.0, 3.0, 1.25],
    ]
    shards = [tmp_path / f"out.shard-{index}-of-2.csv" for index in range(2)]
    for index, path in enumerate(shards):
        extract_corpus(rae, items, path, shard=(index, 2), batch_windows=4)
    merged = tmp_path / "merged.csv"
    assert merge_sidecars(shards, merged)["dropped"] == 4
    assert Path(f"{merged}.dropped.csv").read_bytes() == Path(f"{whole}.dropped.csv").read_bytes()


def test_a_segment_of_digital_silence_fails_naming_the_segment(tmp_path, rae):
    from speechae.inputs import Item

    silence = np.zeros(8000, np.int16)
    silence[:2] = (1000, -1000)  # zero mean: the samples stay exactly zero after DC removal
    noise = np.random.default_rng(6).integers(-3000, 3000, 16000).astype(np.int16)
    path = tmp_path / "gap.wav"
    sf.write(path, np.concatenate([noise, silence]), 16000, subtype="PCM_16")
    summary = extract_corpus(rae, [Item("gap.wav", str(path), 1.0, 1.5)], tmp_path / "out.csv")
    [failure] = summary.failures
    assert f"{path} [1-1.5 s]: all 1 windows have Mel values <= 0" in str(failure.error)


def test_strict_stops_at_the_first_failure(corpus, tmp_path):
    out = tmp_path / "features.csv"
    result = speechae("extract", corpus / GOOD[0], corpus / "empty.wav", "-o", out, "--strict", "-q")
    assert result.returncode != 0 and "stopped at the first failure" in result.stdout
    assert not out.exists() and "earlier run" not in result.stdout
    speechae("extract", corpus / GOOD[0], "-o", out, "-q")
    earlier = out.read_bytes()
    again = speechae("extract", corpus / GOOD[1], corpus / "empty.wav", "-o", out, "--strict", "-q")
    assert f"output: {out} is from an earlier run: this one wrote no table" in again.stdout
    assert out.read_bytes() == earlier


def test_api_runner_matches_and_accepts_an_executor(corpus, cae):
    from concurrent.futures import ThreadPoolExecutor

    files = [corpus / name for name in GOOD[:3]]
    alone = pd.concat([cae.process_file(f) for f in files])
    with ThreadPoolExecutor(2) as pool:
        together = cae.process_files(files, executor=pool)
    assert list(together.index.get_level_values("file").unique()) == [str(f) for f in files]
    assert together.equals(alone) and cae.process_files(files, jobs=2).equals(together)


def test_extract_corpus_api_summary(corpus, tmp_path):
    items, failures = collect_items([corpus], root=corpus)
    assert not failures and [i.key for i in items] == sorted(i.key for i in items)
    chosen = [item for item in items if item.key in GOOD[:3]]
    summary = extract_corpus(Extractor("rae-256"), chosen, tmp_path / "out.parquet")
    assert summary.computed == 3 and summary.records["status"].eq("ok").all()
    assert "3 ok (3 computed, 0 reused" in summary.text()


def test_plan_batches_is_deterministic():
    assert plan_batches([5, 5, 5, 5], batch_windows=10, long_file_windows=100) == [[0, 1], [2, 3]]
    assert plan_batches([5, 500, 5], batch_windows=10, long_file_windows=100) == [[0], [1], [2]]
    assert plan_batches([], batch_windows=10, long_file_windows=100) == []


@needs_shared
def test_long_files_are_processed_alone_in_chunks(tmp_path, cae):
    items, _ = collect_items([CORPUS / "aeneas_de.mp3", EXAMPLE])
    summary = extract_corpus(cae, items, tmp_path / "o.parquet", batch_windows=16)
    assert summary.computed == 2
    table = read_table(tmp_path / "o.parquet")
    alone = cae.process_file(CORPUS / "aeneas_de.mp3")
    np.testing.assert_array_equal(table.loc[str(CORPUS / "aeneas_de.mp3")].to_numpy(), alone.to_numpy())


def test_segments_are_named_apart_in_run_records(corpus, tmp_path, rae):
    from speechae.inputs import Item

    path = str(corpus / GOOD[0])
    items = [Item(GOOD[0], path, 0.0, 2.0), Item(GOOD[0], path, 1.0, 3.5)]
    summary = extract_corpus(rae, items, tmp_path / "segments.parquet")
    assert summary.records["file"].tolist() == [f"{GOOD[0]} [0-2 s]", f"{GOOD[0]} [1-3.5 s]"]
    levels = ["file", "segment_start", "segment_end", "start", "end"]
    assert read_table(tmp_path / "segments.parquet").index.names == levels


@pytest.mark.filterwarnings("ignore::speechae.errors.SegmentedResamplingWarning")
def test_recordings_resampled_in_segments_are_spooled_in_a_corpus_run(tmp_path, spools, cae, speech_like):
    from speechae.inputs import Item

    path = tmp_path / "long.wav"
    sf.write(path, np.stack([speech_like, speech_like[::-1]], axis=1).repeat(3, axis=0) / 8, 48000)
    summary = extract_corpus(cae, [Item("long.wav", str(path))], tmp_path / "o.parquet")
    assert summary.computed == 1 and len(spools) == 1 and spools[0].closed
    expected = cae.process_file(path)
    assert len(spools) == 2
    np.testing.assert_array_equal(read_table(tmp_path / "o.parquet").to_numpy(), expected.to_numpy())


def test_odd_names_and_dead_links_are_reported_per_file_and_the_run_finishes(tmp_path, rae):
    folder = tmp_path / "odd"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / "good.wav")
    shutil.copy(EXAMPLE, os.fsdecode(bytes(folder) + b"/caf\xe9.wav"))  # not UTF-8
    (folder / "dead.wav").symlink_to("nowhere.wav")
    (folder / "loop1.wav").symlink_to("loop2.wav")
    (folder / "loop2.wav").symlink_to("loop1.wav")
    items, failures = collect_items([folder, folder / "loop1.wav"], root=folder)
    assert not failures and [item.key for item in items] == [
        "caf\\xe9.wav",
        "dead.wav",
        "good.wav",
        "loop1.wav",
        "loop2.wav",
    ]
    summary = extract_corpus(rae, items, tmp_path / "out.csv")
    assert summary.computed == 2 and summary.audio_seconds == pytest.approx(2 * 3.88, abs=0.01)
    reasons = {failure.item.key: str(failure.error) for failure in summary.failures}
    assert reasons["dead.wav"].endswith("dead.wav: a symbolic link to a missing file (or a loop of links)")
    assert reasons["loop1.wav"].endswith("loop1.wav: a symbolic link to a missing file (or a loop of links)")
    table = read_table(tmp_path / "out.csv")
    assert table.index.get_level_values("file").unique().tolist() == ["caf\\xe9.wav", "good.wav"]
    errors = pd.read_csv(tmp_path / "out.csv.errors.csv")
    assert errors["file"].tolist() == ["dead.wav", "loop1.wav", "loop2.wav"]


def test_kaldi_keys_are_checked_before_any_work_and_name_segments_apart(tmp_path, rae):
    from speechae.errors import ParameterError
    from speechae.inputs import Item

    spaced = Item("a b.wav", str(EXAMPLE))
    with pytest.raises(ParameterError, match=r"a b\.wav: Kaldi keys cannot contain white space"):
        extract_corpus(rae, [spaced], tmp_path / "spaced.ark")
    assert not list(tmp_path.iterdir())
    items = [
        Item("a.wav", str(EXAMPLE), 0.0, 2.0),
        Item("a.wav", str(EXAMPLE), 1.0, 3.5),
        Item("a.wav", str(EXAMPLE)),
    ]
    extract_corpus(rae, items, tmp_path / "segments.ark")
    keys = read_table(tmp_path / "segments.ark").index.unique().tolist()
    assert keys == ["a.wav[0-2]", "a.wav", "a.wav[1-3.5]"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".npy", ".npz", ".pt", ".ark"])
@pytest.mark.parametrize(
    ("level", "segment", "index_names"),
    [
        ("static", False, ["file"]),
        ("static", True, ["file", "start", "end"]),
        ("dynamic", False, ["file", "start", "end"]),
        ("dynamic", True, ["file", "segment_start", "segment_end", "start", "end"]),
    ],
)
def test_a_run_without_results_replaces_an_older_output_with_an_empty_table(
    tmp_path, suffix, level, segment, index_names
):
    from speechae.inputs import Item
    from speechae.writers import kaldi_paths

    out = tmp_path / f"features{suffix}"
    older = kaldi_paths(out) if suffix == ".ark" else [out]
    for path in older:
        path.write_text("an older run's output")
    extractor = Extractor("rae-256", level=level)
    missing = str(tmp_path / "missing.wav")
    items = [Item("missing.wav", missing, 0.0, 2.0) if segment else Item("missing.wav", missing)]
    summary = extract_corpus(extractor, items, out)
    assert summary.output == out and f"output: {out} (no rows: no file succeeded)" in summary.text()
    empty_shard = extract_corpus(extractor, items, tmp_path / f"shard{suffix}", shard=(1, 2))
    assert "(no rows: no files to process)" in empty_shard.text()
    table = read_table(out)
    assert len(table) == 0
    if suffix == ".ark":  # Kaldi keeps neither column names nor times
        assert table.index.names == ["file"] and table.columns.empty
    else:
        assert table.index.names == index_names and list(table.columns) == extractor.column_names


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_file_rewritten_after_hashing_fails_instead_of_being_stored_under_the_old_hash(
    tmp_path, monkeypatch, rae, jobs
):
    from speechae.corpus import planning
    from speechae.inputs import Item

    path = tmp_path / "talk.wav"
    shutil.copy(EXAMPLE, path)
    hashed = planning.file_sha256

    def hash_then_rewrite(file):
        digest = hashed(file)
        samples, rate = sf.read(EXAMPLE)
        sf.write(path, samples[: len(samples) // 2], rate)  # another recording, decoded after hashing
        return digest

    monkeypatch.setattr(planning, "file_sha256", hash_then_rewrite)
    out = tmp_path / "out.csv"
    summary = extract_corpus(rae, [Item("talk.wav", str(path))], out, jobs=jobs)
    assert [str(failure.error) for failure in summary.failures] == [
        f"{path}: changed while it was being processed; run again"
    ]
    assert stored_count(out) == 0
    monkeypatch.undo()
    again = extract_corpus(rae, [Item("talk.wav", str(path))], out)
    assert again.computed == 1 and not again.failures


def test_a_strict_stop_names_no_errors_file(tmp_path, rae):
    from speechae.inputs import Item

    summary = extract_corpus(
        rae, [Item("missing.wav", str(tmp_path / "missing.wav"))], tmp_path / "o.csv", strict=True
    )
    assert summary.stopped_early and "failed: 1\n" in summary.text() and "None" not in summary.text()


def test_a_strict_stop_after_dropped_windows_names_no_dropped_file(tmp_path, rae):
    from speechae.inputs import Item
    from test_pipeline import integer_noise_with_silence

    sf.write(tmp_path / "a.wav", integer_noise_with_silence(48000, slice(20000, 21000)), 16000, "DOUBLE")
    items = [Item("a.wav", str(tmp_path / "a.wav")), Item("b.wav", str(tmp_path / "b.wav"))]
    summary = extract_corpus(rae, items, tmp_path / "o.csv", strict=True)
    text = summary.text()
    assert summary.stopped_early and "windows dropped for Mel values <= 0: 2\n" in text
    assert "None" not in text


@pytest.mark.parametrize(
    ("cores", "device", "seconds", "expected"),
    [
        (2, "cpu", [3.0] * 330, 1),  # the network takes both cores: workers would slow the run
        (4, "cpu", [3.0] * 330, 1),
        (8, "cpu", [3.0] * 330, 2),
        (16, "cpu", [3.0] * 330, 4),
        (64, "cpu", [3.0] * 330, 8),  # at most eight
        (16, "cpu", [3.0] * 30, 1),  # 90 s of audio do not pay for a second worker's start-up
        (16, "cpu", [600.0, 600.0], 2),  # never more workers than recordings
        (2, "cuda", [3.0] * 330, 1),
        (4, "cuda", [3.0] * 330, 3),  # the GPU leaves the cores to the workers
        (16, "cuda", [], 1),
    ],
)
def test_the_automatic_worker_count_follows_the_cores_the_work_and_the_device(
    cores, device, seconds, expected
):
    import torch

    from speechae.corpus import Machine, choose_jobs

    assert choose_jobs(seconds, device=torch.device(device), machine=Machine(cores)) == expected


@pytest.mark.parametrize(
    ("quota", "cores"), [("max 100000\n", 0), ("200000 100000\n", 2), ("50000 100000", 1)]
)
def test_a_cgroup_cpu_quota_limits_the_cores(tmp_path, quota, cores):
    from speechae.corpus.workers import _cgroup_quota

    (tmp_path / "cpu.max").write_text(quota)
    assert _cgroup_quota(str(tmp_path / "cpu.max")) == cores
    assert _cgroup_quota(str(tmp_path / "missing")) == 0


def test_the_summary_says_how_many_workers_auto_chose(corpus, tmp_path, rae):
    items, _ = collect_items([corpus / name for name in GOOD[:2]], root=corpus)
    summary = extract_corpus(rae, items, tmp_path / "out.csv", jobs="auto")
    assert "recordings read in this process (--jobs auto, " in summary.text()  # two short files: no workers
    with pytest.raises(ParameterError, match="jobs must be a whole number of at least 1, not 'two'"):
        extract_corpus(rae, items, tmp_path / "other.csv", jobs="two")
    assert not (tmp_path / "other.csv").exists()


def test_an_interrupted_run_says_whose_table_is_at_the_output_path(tmp_path):
    from speechae.corpus import interrupted_text

    out = tmp_path / "o.csv"
    kept = f"finished recordings are kept in {out}.store.sqlite, and the same command resumes from them"
    assert interrupted_text(out) == f"interrupted before writing {out}; {kept}"
    out.write_text("an older run's table\n")
    assert interrupted_text(out) == f"interrupted: {out} is an earlier run's output, not this run's; {kept}"


def test_a_run_never_writes_one_of_its_inputs(tmp_path, cae):
    from speechae.inputs import collect_items

    audio = tmp_path / "a.wav"
    shutil.copy(EXAMPLE, audio)
    (tmp_path / "m.csv").write_text("file\na.wav\n")
    (tmp_path / "linked.csv").symlink_to(tmp_path / "m.csv")
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    for output, inputs in [
        (audio, [audio]),  # the output is the audio
        (tmp_path / "m.csv", [tmp_path / "m.csv"]),  # the output is the manifest
        (tmp_path / "linked.csv", [tmp_path / "m.csv"]),  # through a link
        (tmp_path / "a", [tmp_path / "a.errors.csv"]),  # a file beside the output
        (tmp_path / "k.ark", [tmp_path / "k.scp"]),  # the other file of a Kaldi pair
        (tmp_path / "n.npy", [tmp_path / "n.index.csv"]),  # a file beside an npy matrix
    ]:
        for listing in ("a.errors.csv", "k.scp", "n.index.csv"):
            (tmp_path / listing).write_text("file\na.wav\n")
        items, _ = collect_items(inputs, root=tmp_path)
        fmt = None if output.suffix in (".ark", ".npy") else "csv"
        with pytest.raises(ParameterError, match="this run would write it, but it is also an input"):
            extract_corpus(cae, items, output, fmt=fmt, inputs=inputs)
        for listing in ("a.errors.csv", "k.scp", "n.index.csv"):
            (tmp_path / listing).unlink()
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_a_second_run_on_the_same_output_stops_at_once_or_waits(tmp_path, cae):
    import threading

    from speechae.corpus import OutputLock
    from speechae.errors import OutputInUseError
    from speechae.inputs import Item

    out = tmp_path / "o.csv"
    items = [Item("example.wav", str(EXAMPLE))]
    holder = f"another speechae run (process {os.getpid()} on "
    with OutputLock(out):
        with pytest.raises(OutputInUseError) as refused:
            extract_corpus(cae, items, out)
        assert str(refused.value).startswith(f"{out}: {holder}")
        assert not out.exists()
        done = []
        waiting = threading.Thread(target=lambda: done.append(extract_corpus(cae, items, out, wait=True)))
        waiting.start()
        time.sleep(0.5)
        assert not done  # still waiting for the lock
    waiting.join(timeout=120)
    assert done and done[0].output == out and len(pd.read_csv(out)) == len(cae.process_file(EXAMPLE))
    assert not Path(f"{out}.lock").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs the proc file system")
def test_an_output_where_no_file_can_be_made_is_refused_in_one_sentence(cae):
    from speechae.inputs import Item

    with pytest.raises(ParameterError) as refused:
        extract_corpus(cae, [Item("example.wav", str(EXAMPLE))], "/proc/features.csv")
    assert str(refused.value).startswith("/proc/features.csv: its folder cannot take the run's files (")


def test_torch_threads_follow_the_request_then_omp_num_threads_then_the_cores_allowed(monkeypatch):
    import torch

    from speechae.corpus import Machine, use_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert use_threads(machine=Machine(3)) == 3 == torch.get_num_threads()
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert use_threads(machine=Machine(3)) == 2 == torch.get_num_threads()
        assert use_threads(1, machine=Machine(3)) == 1 == torch.get_num_threads()
        monkeypatch.setenv("OMP_NUM_THREADS", "lots")
        assert use_threads(machine=Machine(3)) == 3
        with pytest.raises(ParameterError, match="threads must be a whole number of at least 1, not 0"):
            use_threads(0)
    finally:
        torch.set_num_threads(before)


def test_a_batch_leaves_the_network_what_its_spectrograms_leave_of_the_budget(tmp_path, monkeypatch):
    from speechae.corpus import run_items
    from speechae.inputs import Item
    from speechae.pipeline import Pipeline, held_bytes

    seen = []
    run = Pipeline.run

    def note(self, prepared, **options):
        seen.append((options["memory_budget"], sum(held_bytes(p.inputs) for p in prepared), len(prepared)))
        return run(self, prepared, **options)

    monkeypatch.setattr(Pipeline, "run", note)
    budget = 50 * 2**20
    extractor = Extractor("cae-256", memory_budget=budget)
    items = [Item(f"{k}.wav", str(EXAMPLE)) for k in range(2)]
    assert all(result.ok for result in run_items(extractor.pipeline, items))
    (left, spectrograms, files), *_ = seen
    assert files == 2 and spectrograms == 2 * 14 * 128 * 126 * 4  # held twice while joined
    assert left == budget - 2 * spectrograms
