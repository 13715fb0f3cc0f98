"""Shared fixtures: paths, pretrained extractors, small random models and synthetic signals."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch

from speechae.audio import SampleSpool
from speechae.errors import TemporaryStorageError
from speechae.models import ConvAutoencoder, RecurrentAutoencoder

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
EXAMPLE = REPO / "examples" / "cmu_arctic_us_aew_a0001.wav"
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"
PARITY = SHARED / "parity"

needs_shared = pytest.mark.skipif(
    not (CORPUS.is_dir() and PARITY.is_dir()),
    reason="../shared/corpus and ../shared/parity (the project's test corpus) are not beside this "
    "checkout; the committed example still checks parity",
)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, needs_cuda])]


def copy_corpus(folder: Path, names: list[str]) -> Path:
    """Copy shared recordings into ``folder`` (skipping the test where ../shared is absent)."""
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is not beside this checkout")
    for name in names:
        shutil.copy(CORPUS / name, folder / name)
    return folder


def stored_count(output: Path) -> int:
    """Recordings committed so far to the store of a run writing ``output`` (0 if none yet)."""
    from speechae.store import store_path

    try:
        return sqlite3.connect(store_path(output)).execute("SELECT COUNT(*) FROM features").fetchone()[0]
    except sqlite3.Error:
        return 0


def parity_manifest() -> list[dict]:
    """Entries of ../shared/parity/manifest.json, or none without the shared folder."""
    manifest = PARITY / "manifest.json"
    return json.loads(manifest.read_text())["files"] if manifest.is_file() else []


@pytest.fixture(scope="session")
def cae():
    from speechae import Extractor

    return Extractor("cae-256", level="dynamic")


@pytest.fixture(scope="session")
def rae():
    from speechae import Extractor

    return Extractor("rae-256", level="dynamic")


@pytest.fixture()
def small_cae() -> ConvAutoencoder:
    torch.manual_seed(0)
    return ConvAutoencoder(bottleneck=16).requires_grad_(False)


@pytest.fixture()
def small_rae() -> RecurrentAutoencoder:
    torch.manual_seed(0)
    return RecurrentAutoencoder(bottleneck=16).requires_grad_(False)


@pytest.fixture()
def speech_like() -> np.ndarray:
    """3 s of a noisy harmonic signal at 16 kHz, 11 windows."""
    rng = np.random.default_rng(1)
    t = np.arange(48000) / 16000
    tone = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8))
    return tone * (1 + np.sin(2 * np.pi * 3 * t)) + 0.05 * rng.standard_normal(len(t))


@pytest.fixture()
def spools(monkeypatch) -> list:
    """Recordings beyond 100,000 samples are resampled in segments; their spools are listed here."""
    from speechae import audio, frontend

    spooled = []

    def spool_and_record(*args, **kwargs):
        spooled.append(audio.spool_audio(*args, **kwargs))
        return spooled[-1]

    monkeypatch.setattr(frontend, "WHOLE_SIGNAL_SAMPLES", 100000)
    monkeypatch.setattr("speechae.recordings.spool_audio", spool_and_record)
    return spooled


class FillingSpool(SampleSpool):
    """A spool on a disk that is full beyond ``writable`` bytes."""

    writable: int | None = None

    def __setitem__(self, positions: slice, values: np.ndarray) -> None:
        if self.writable is not None and positions.stop > self.writable:
            raise TemporaryStorageError("disk full")
        super().__setitem__(positions, values)


class Spills:
    """A ``spill`` that records its storages; calls numbered in ``refused`` find no room."""

    def __init__(self, refused: tuple[int, ...] = (), writable: int | None = None) -> None:
        self.created: list[SampleSpool] = []
        self.refused, self.writable = refused, writable
        self.calls = 0

    def __call__(self, size: int, dtype: np.dtype) -> SampleSpool:
        self.calls += 1
        if self.calls in self.refused:
            raise TemporaryStorageError("no room")
        self.created.append(FillingSpool.create(size, dtype, "spill"))
        self.created[-1].writable = self.writable
        return self.created[-1]
