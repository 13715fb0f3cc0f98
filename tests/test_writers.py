from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from speechae.errors import ParameterError
from speechae.writers import TableWriter, format_of, kaldi_paths, merge_tables, read_table, write_table


def table(level: str, files=("a.wav", "b c.wav")) -> pd.DataFrame:
    rows = 1 if level == "static" else 3
    tuples = [
        (
            f,
            pd.Timedelta(seconds=0.25 * k),
            pd.Timedelta(seconds=0.25 * k + (2.0 if level == "static" else 0.5)),
        )
        for f in files
        for k in range(rows)
    ]
    rng = np.random.default_rng(0)
    values = rng.standard_normal((len(tuples), 3)).astype(np.float64 if level == "static" else np.float32)
    index = pd.MultiIndex.from_tuples(tuples, names=["file", "start", "end"])
    return pd.DataFrame(values, index=index, columns=["f0", "f1", "f2"])


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".npy", ".npz", ".pt"])
@pytest.mark.parametrize("level", ["static", "dynamic"])
def test_every_format_round_trips_with_its_own_library(tmp_path, suffix, level):
    path = tmp_path / f"out{suffix}"
    original = table(level)
    write_table(original, path, level=level)
    back = read_table(path)
    expected_index = ["file"] if level == "static" else ["file", "start", "end"]
    assert list(back.index.names) == expected_index
    assert back.index.get_level_values("file").tolist() == original.index.get_level_values("file").tolist()
    np.testing.assert_array_equal(back.to_numpy(dtype=original.dtypes.iloc[0]), original.to_numpy())
    assert list(back.columns) == ["f0", "f1", "f2"]
    if level == "dynamic":
        assert back.index.get_level_values("start").tolist() == [0.0, 0.25, 0.5] * 2
    assert not [p.name for p in tmp_path.iterdir() if "partial" in p.name]


@pytest.mark.parametrize("level", ["static", "dynamic"])
def test_parquet_read_by_pandas_alone_has_the_index(tmp_path, level):
    path = tmp_path / "out.parquet"
    write_table(table(level), path, level=level)
    plain = pd.read_parquet(path)
    assert list(plain.index.names) == list(read_table(path).index.names)
    pd.testing.assert_frame_equal(plain, read_table(path))


def test_kaldi_writes_one_matrix_per_file(tmp_path):
    import kaldiio

    original = table("dynamic", files=("spk1/a.wav", "spk2/b.wav"))
    write_table(original, tmp_path / "feats.ark", level="dynamic")
    ark, scp = kaldi_paths(tmp_path / "feats.ark")
    matrices = kaldiio.load_scp(str(scp))
    assert list(matrices) == ["spk1/a.wav", "spk2/b.wav"] and matrices["spk1/a.wav"].shape == (3, 3)
    assert str(ark) in scp.read_text() and "partial" not in scp.read_text()
    np.testing.assert_array_equal(read_table(scp).to_numpy(), original.to_numpy())


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".npy", ".npz", ".pt", ".ark"])
def test_an_empty_table_reads_back_and_merges_into_nothing(tmp_path, suffix):
    empty, full = tmp_path / f"empty{suffix}", tmp_path / f"full{suffix}"
    with TableWriter(
        empty, columns=["f0", "f1", "f2"], index_names=["file", "start", "end"], dtype="float32", total_rows=0
    ):
        pass
    assert read_table(empty).shape == (0, 0 if suffix == ".ark" else 3)
    write_table(table("dynamic", files=("a.wav", "b.wav")), full, level="dynamic")
    alone, merged = tmp_path / f"alone{suffix}", tmp_path / f"merged{suffix}"
    assert merge_tables([full], alone) == merge_tables([empty, full], merged) == 6
    pairs = (
        zip(kaldi_paths(alone), kaldi_paths(merged), strict=True) if suffix == ".ark" else [(alone, merged)]
    )
    for one, other in pairs:
        assert one.read_bytes().replace(b"alone", b"merged") == other.read_bytes()
    assert merge_tables([empty], tmp_path / f"none{suffix}") == 0
    assert read_table(tmp_path / f"none{suffix}").empty


def test_kaldi_scp_names_the_ark_by_its_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_table(table("dynamic", files=("a.wav", "b.wav")), "feats.ark", level="dynamic")
    assert f" {tmp_path / 'feats.ark'}:" in (tmp_path / "feats.scp").read_text()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert read_table(tmp_path / "feats.scp").shape == (6, 3)


def test_kaldi_rejects_keys_with_spaces(tmp_path):
    with pytest.raises(ParameterError, match="white space"):
        write_table(table("dynamic"), tmp_path / "feats.scp", level="dynamic")
    assert list(tmp_path.iterdir()) == []


def test_writing_twice_gives_identical_bytes(tmp_path):
    for suffix in (".csv", ".parquet", ".npz", ".pt", ".npy"):
        first, second = tmp_path / f"1{suffix}", tmp_path / f"2{suffix}"
        write_table(table("dynamic"), first, level="dynamic")
        write_table(table("dynamic"), second, level="dynamic")
        assert first.read_bytes() == second.read_bytes(), suffix
    assert (tmp_path / "1.columns.txt").read_text() == "f0\nf1\nf2\n"


def test_npy_needs_the_row_count(tmp_path):
    with pytest.raises(ParameterError, match="needs total_rows"):
        TableWriter(tmp_path / "x.npy", columns=["a"], index_names=["file"], dtype="float64")


def test_unknown_extension_and_format():
    with pytest.raises(ParameterError, match=r"unknown output format 'xlsx'; use one of .csv"):
        format_of("features.xlsx")
    with pytest.raises(ParameterError, match="unknown output format 'hdf'"):
        format_of("features.csv", "hdf")
    assert format_of("features.txt", "parquet") == "parquet"


def test_merge_refuses_missing_repeated_foreign_and_incomplete_shards(tmp_path):
    from speechae.corpus import merge_shards

    def shard(index: int, count: int, level: str = "dynamic", files=("a.wav",)) -> str:
        path = tmp_path / f"out.shard-{index}-of-{count}.csv"
        write_table(table(level, files=files), path, level=level)
        return str(path)

    first, second = shard(0, 2), shard(1, 2, files=("b.wav",))
    assert merge_shards([first, second], tmp_path / "out.csv")["rows"] == 6
    with pytest.raises(ParameterError, match=r"out\.shard-0-of-3\.csv: no such shard output"):
        merge_shards([first, str(tmp_path / "out.shard-0-of-3.csv")], tmp_path / "x.csv")
    with pytest.raises(ParameterError, match="given twice"):
        merge_shards([first, second, first], tmp_path / "x.csv")
    with pytest.raises(ParameterError, match=r"shard\(s\) 1 of this run are missing"):
        merge_shards([first], tmp_path / "x.csv")
    with pytest.raises(ParameterError, match=r"split \[2, 3\] ways"):
        merge_shards([first, second, shard(2, 3)], tmp_path / "x.csv")
    with pytest.raises(ParameterError, match="holds other features"):
        merge_shards([first, shard(1, 2, level="static", files=("b.wav",))], tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


def test_a_folder_as_output_is_called_a_folder_whatever_its_name(tmp_path):
    from speechae.errors import ParameterError
    from speechae.writers import check_output_path

    (tmp_path / "features").mkdir()
    with pytest.raises(ParameterError, match="features: is a folder; give the path of the file to write"):
        check_output_path(tmp_path / "features")
