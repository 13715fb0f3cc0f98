from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from speechae.errors import ParameterError
from speechae.writers import format_of, write_table


def table(level: str) -> pd.DataFrame:
    rows = 1 if level == "static" else 3
    index = pd.MultiIndex.from_arrays(
        [
            ["a.wav"] * rows,
            pd.to_timedelta(0.25 * np.arange(rows), unit="s"),
            pd.to_timedelta(0.25 * np.arange(rows) + (2.0 if level == "static" else 0.5), unit="s"),
        ],
        names=["file", "start", "end"],
    )
    return pd.DataFrame(
        np.arange(rows * 2, dtype=np.float32).reshape(rows, 2), index=index, columns=["f0", "f1"]
    )


def read_back(path):
    fmt = format_of(path)
    if fmt == "csv":
        return pd.read_csv(path)
    if fmt == "parquet":
        return pd.read_parquet(path).reset_index()
    if fmt == "npy":
        values = np.load(path)
        index = pd.read_csv(path.with_name(path.stem + ".index.csv"))
        return pd.concat([index, pd.DataFrame(values, columns=["f0", "f1"])], axis=1)
    saved = torch.load(path, weights_only=True)
    return pd.concat(
        [pd.DataFrame(saved["index"]), pd.DataFrame(saved["features"].numpy(), columns=saved["columns"])],
        axis=1,
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".npy", ".pt"])
@pytest.mark.parametrize("level", ["static", "dynamic"])
def test_every_format_round_trips(tmp_path, suffix, level):
    path = tmp_path / f"out{suffix}"
    write_table(table(level), path, level=level)
    back = read_back(path)
    expected_index = ["file"] if level == "static" else ["file", "start", "end"]
    assert list(back.columns) == [*expected_index, "f0", "f1"]
    np.testing.assert_allclose(back[["f0", "f1"]].to_numpy(), table(level).to_numpy())
    if level == "dynamic":
        assert back["start"].tolist() == [0.0, 0.25, 0.5] and back["end"].tolist() == [0.5, 0.75, 1.0]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_unknown_extension():
    with pytest.raises(ParameterError, match=r"unknown output format 'xlsx'; use one of .csv"):
        format_of("features.xlsx")
