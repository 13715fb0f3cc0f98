"""Dask scale-out: a LocalCluster gives the single-process result, survives a lost worker, resumes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from conftest import EXAMPLE, copy_corpus, stored_count
from speechae import Extractor
from speechae.cluster import dask_executor
from speechae.corpus import extract_corpus
from speechae.errors import ParameterError
from speechae.inputs import collect_items
from speechae.store import store_path
from speechae.writers import read_table

pytest.importorskip("dask.distributed")
pytestmark = [pytest.mark.weights, pytest.mark.slow]

FILES = [
    "cmu_arctic_us_aew_a0001.wav",
    "disvoice_001_ddk1_PCGITA.wav",
    "disvoice_001_readtext_PCGITA.wav",
    "asterisk_it_demo-congrats.wav",
    "aespeech_pataka.wav",
    "librosa_198-209-0000.ogg",
]


@pytest.fixture(autouse=True)
def _environment_restored():
    """Dask's nannies set OMP_NUM_THREADS=1 in this process: later tests' subprocesses must not inherit it."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = copy_corpus(tmp_path_factory.mktemp("corpus"), FILES)
    (folder / "empty.wav").write_bytes(b"")
    return folder


@pytest.fixture(scope="module")
def single_process(corpus, tmp_path_factory):
    items, _ = collect_items([corpus], root=corpus)
    out = tmp_path_factory.mktemp("single") / "out.parquet"
    extract_corpus(Extractor("cae-256", level="dynamic"), items, out, batch_windows=64)
    return read_table(out)


def assert_same_table(table, expected):
    """Same rows and values; workers use one thread each, which may change float32 rounding."""
    assert table.index.equals(expected.index)
    np.testing.assert_allclose(table.to_numpy(), expected.to_numpy(), rtol=1e-4, atol=1e-5)


def test_local_cluster_equals_the_single_process_run(corpus, single_process, tmp_path):
    items, _ = collect_items([corpus], root=corpus)
    out = tmp_path / "out.parquet"
    with dask_executor("local:2") as executor:
        summary = extract_corpus(
            Extractor("cae-256", level="dynamic"),
            items,
            out,
            executor=executor,
            network_in_workers=True,
            batch_windows=64,
        )
    assert [str(f.error) for f in summary.failures] == [
        f"{corpus / 'empty.wav'}: the file is empty (0 bytes)"
    ]
    assert_same_table(read_table(out), single_process)


def test_a_lost_worker_loses_no_file(corpus, single_process, tmp_path):
    from dask.distributed import Client, LocalCluster

    items, _ = collect_items([corpus], root=corpus)
    out = tmp_path / "out.parquet"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            pids = list(client.run(os.getpid).values())
            killed_at = []

            def kill_a_worker_mid_run() -> None:
                while not store_path(out).exists() or stored_count(out) < 1:
                    time.sleep(0.02)
                killed_at.append(stored_count(out))
                os.kill(pids[0], signal.SIGKILL)

            killer = threading.Thread(target=kill_a_worker_mid_run, daemon=True)
            killer.start()
            summary = extract_corpus(  # a Client is an executor too
                Extractor("cae-256", level="dynamic"), items, out, executor=client, batch_windows=16
            )
            killer.join(timeout=60)
    assert killed_at and killed_at[0] < len(FILES), "the worker should die mid-run"
    assert summary.computed == len(FILES)
    assert_same_table(read_table(out), single_process)


def test_interrupted_cluster_run_resumes(corpus, tmp_path):
    out = tmp_path / "out.parquet"
    command = [
        sys.executable,
        "-m",
        "speechae",
        "extract",
        str(corpus),
        "--root",
        str(corpus),
        "-o",
        str(out),
        "--dask",
        "local:2",
        "--batch-windows",
        "16",
        "-q",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    stored = 0
    while time.monotonic() < deadline and process.poll() is None and stored < 2:
        if store_path(out).exists():
            try:
                stored = (
                    sqlite3.connect(store_path(out)).execute("SELECT COUNT(*) FROM features").fetchone()[0]
                )
            except sqlite3.Error:
                pass
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=120)
    finished = stored_count(out)
    assert finished >= 2
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 3, result.stderr
    assert f"{finished} reused from the store" in result.stdout and "6 ok" in result.stdout


def test_bad_cluster_addresses():
    with pytest.raises(ParameterError, match="expected local:N"), dask_executor("local:many"):
        pass


def test_example_through_the_cli_with_dask(tmp_path):
    out = tmp_path / "one.csv"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "speechae",
            "extract",
            str(EXAMPLE),
            "-o",
            str(out),
            "--dask",
            "local:1",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert read_table(out).shape == (1, 1536)


def test_a_local_cluster_leaves_the_environment_as_it_found_it():
    before = dict(os.environ)
    with dask_executor("local:1"):
        pass
    assert dict(os.environ) == before  # no OMP_NUM_THREADS=1 for the next process this one starts
