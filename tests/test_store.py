"""The store of a corpus run: entries round-trip, damage is detected and named, old stores open."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from speechae.errors import DamagedStoreEntryError, StoreError
from speechae.features import FileFeatures
from speechae.store import FeatureStore


def features(windows: int = 3, seed: int = 0) -> FileFeatures:
    rng = np.random.default_rng(seed)
    return FileFeatures(
        bottleneck=rng.standard_normal((windows, 8)).astype(np.float32),
        error=rng.random((windows, 5)).astype(np.float32),
        starts=0.25 * np.arange(windows),
        dropped=np.array([0.75 * windows]),
        duration=0.25 * windows + 0.5,
    )


def test_entries_round_trip(tmp_path):
    store = FeatureStore(tmp_path / "run.store.sqlite")
    store.put_many([("a", features(3, 1), "sha-a"), ("b", features(0, 2), "sha-b")])
    for key, original in (("a", features(3, 1)), ("b", features(0, 2))):
        stored = store.get(key)
        for name in ("bottleneck", "error", "starts", "dropped"):
            np.testing.assert_array_equal(getattr(stored, name), getattr(original, name))
        assert stored.duration == original.duration
    assert len(store) == 2 and store.get("c") is None


def test_notes_are_kept_with_their_entry_and_replaced_with_it(tmp_path):
    store = FeatureStore(tmp_path / "run.store.sqlite")
    cut = {"warnings": ["a.mp3: the MP3 stream ends inside a frame"], "quality": {"snr_db": 31.5}}
    store.put_many([("a", features(), "sha-a"), ("b", features(), "sha-b")], notes={"a": cut})
    assert store.notes("a") == cut and store.notes("b") == {"warnings": [], "quality": {}}
    store.close()
    store = FeatureStore(tmp_path / "run.store.sqlite")
    assert store.notes("a") == cut
    store.put("a", features(), audio_sha256="sha-a")  # computed again, by a version without notes
    assert store.notes("a") == {"warnings": [], "quality": {}}


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE features SET bottleneck = zeroblob(length(bottleneck))",  # same size, other bytes
        "UPDATE features SET error = substr(error, 1, 8)",  # cut short
        "UPDATE features SET duration = duration + 1",
        "UPDATE features SET windows = 2, starts = substr(starts, 1, 16)",  # consistent sizes
    ],
)
def test_a_damaged_entry_is_detected_and_named(tmp_path, damage):
    path = tmp_path / "run.store.sqlite"
    FeatureStore(path).put("a", features(), audio_sha256="sha-a")
    with sqlite3.connect(path) as db:
        db.execute(damage)
    with pytest.raises(DamagedStoreEntryError, match=r"run\.store\.sqlite: the entry a is damaged"):
        FeatureStore(path).get("a")
    store = FeatureStore(path)
    store.put("a", features(), audio_sha256="sha-a")  # writing it again repairs it
    np.testing.assert_array_equal(store.get("a").bottleneck, features().bottleneck)


def test_a_store_written_before_entries_carried_digests_is_read(tmp_path):
    path = tmp_path / "run.store.sqlite"
    FeatureStore(path).put("a", features(), audio_sha256="sha-a")
    with sqlite3.connect(path) as db:  # the table as stores were written before
        db.execute("CREATE TABLE old AS SELECT * FROM features")
        db.execute("DROP TABLE features")
        db.execute("ALTER TABLE old DROP COLUMN digest")
        db.execute("ALTER TABLE old RENAME TO features")
    store = FeatureStore(path)
    np.testing.assert_array_equal(store.get("a").error, features().error)
    store.put("b", features(4), audio_sha256="sha-b")
    assert store.get("b").bottleneck.shape == (4, 8)


def test_a_database_damaged_on_disk_is_a_store_error_naming_the_file(tmp_path):
    path = tmp_path / "run.store.sqlite"
    store = FeatureStore(path)
    store.put_many([(f"k{k}", features(200, k), "sha") for k in range(20)])
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = 4096
    data[page : len(data) - page] = b"\xff" * (len(data) - 2 * page)  # every page but the first and last
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"run\.store\.sqlite: .*move it aside"):
        store = FeatureStore(path)
        store.get("k3")
