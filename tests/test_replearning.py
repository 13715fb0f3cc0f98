from __future__ import annotations

import shutil

import kaldiio
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import DATA, EXAMPLE
from speechae import RepLearning
from speechae.errors import ParameterError

pytestmark = pytest.mark.weights


@pytest.fixture(scope="module")
def replearning():
    return RepLearning("CAE")


@pytest.fixture(scope="module")
def reference():
    return np.load(DATA / f"{EXAMPLE.name}.CAE.npz")


def test_npy_and_txt_return_disvoice_shapes_and_values(replearning, reference):
    static = replearning.extract_features_file(str(EXAMPLE), static=True, plots=False, fmt="npy")
    dynamic = replearning.extract_features_file(str(EXAMPLE), static=False, fmt="txt")
    assert static.shape == (1, 1536) and dynamic.shape == reference["dynamic"].shape
    assert static.dtype == dynamic.dtype == np.float32  # as DisVoice returns both
    np.testing.assert_allclose(static[0], reference["static"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dynamic[:, :256], reference["dynamic"][:, :256], rtol=0, atol=1e-5)


def test_dataframe_has_disvoice_columns(replearning, reference):
    table = replearning.extract_features_file(EXAMPLE, static=True, fmt="dataframe")
    assert isinstance(table, pd.DataFrame) and table.shape == (1, 1536)
    assert table.columns[0] == "mean_bottleneck_0" and table.columns[-1] == "kurtosis_error_127"
    np.testing.assert_allclose(table.to_numpy()[0], reference["static"], rtol=1e-4, atol=1e-4)
    dynamic = replearning.extract_features_file(EXAMPLE, static=False, fmt="csv")
    assert list(dynamic.columns[[0, 256]]) == ["bottleneck_0", "error_0"]


def test_torch_returns_a_tensor(replearning):
    tensor = replearning.extract_features_file(EXAMPLE, static=False, fmt="torch")
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (14, 384)
    static = replearning.extract_features_file(EXAMPLE, static=True, fmt="torch")
    assert static.dtype == tensor.dtype == torch.float32


def test_kaldi_writes_ark_and_scp_without_kaldi(replearning, tmp_path):
    target = tmp_path / "feats"
    assert (
        replearning.extract_features_file(EXAMPLE, static=False, fmt="kaldi", kaldi_file=str(target)) is None
    )
    matrices = kaldiio.load_scp(f"{target}.scp")
    assert list(matrices) == [EXAMPLE.name] and matrices[EXAMPLE.name].shape == (14, 384)


def test_path_api_stacks_files_and_adds_ids(replearning, tmp_path):
    for name in ("b.wav", "a.wav"):
        shutil.copy(EXAMPLE, tmp_path / name)
    static = replearning.extract_features_path(str(tmp_path) + "/", static=True, fmt="dataframe")
    assert static["id"].tolist() == ["a.wav", "b.wav"] and static.shape == (2, 1537)
    dynamic = replearning.extract_features_path(tmp_path, static=False, fmt="npy")
    assert dynamic.shape == (28, 384)
    replearning.extract_features_path(tmp_path, static=False, fmt="kaldi", kaldi_file=str(tmp_path / "k"))
    assert sorted(kaldiio.load_scp(str(tmp_path / "k.scp"))) == ["a.wav", "b.wav"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fmt": "xlsx"}, "fmt 'xlsx' is not supported"),
        ({"fmt": "kaldi", "static": True, "kaldi_file": "x"}, "only supported for dynamic"),
        ({"fmt": "kaldi", "static": False}, "needs kaldi_file"),
    ],
)
def test_bad_formats_raise_before_any_work(replearning, kwargs, message):
    with pytest.raises(ParameterError, match=message):
        replearning.extract_features_file("does-not-matter.wav", **kwargs)
    with pytest.raises(ValueError):
        replearning.extract_features_path("does-not-matter/", **kwargs)


def test_rae_model_name():
    assert RepLearning("RAE").extract_features_file(EXAMPLE, fmt="npy").shape == (1, 1536)


def test_attributes_are_disvoices():
    replearning = RepLearning("cae")  # DisVoice's names in any case
    assert replearning.size_bottleneck == 256
    assert replearning.statistics == ["mean", "std", "skewness", "kurtosis"]
    assert isinstance(replearning.head_dyn, np.ndarray) and replearning.head_dyn.tolist()[255:257] == [
        "bottleneck_255",
        "error_0",
    ]
    assert isinstance(replearning.head_st, list) and len(replearning.head_st) == 1536


def test_plots_are_written_and_features_still_returned(tmp_path, reference):
    replearning = RepLearning("CAE", plots_dir=tmp_path)
    features = replearning.extract_features_file(EXAMPLE, static=True, plots=True, fmt="npy")
    np.testing.assert_allclose(features[0], reference["static"], rtol=1e-4, atol=1e-4)
    assert (tmp_path / f"{EXAMPLE.name}.png").stat().st_size > 10_000


@pytest.mark.weights
def test_folders_with_names_that_kaldi_or_utf8_cannot_take_are_handled_before_any_work(tmp_path):
    import os

    from speechae import RepLearning
    from speechae.errors import ParameterError

    shutil.copy(EXAMPLE, os.fsdecode(bytes(tmp_path) + b"/caf\xe9.wav"))
    replearning = RepLearning("CAE")
    table = replearning.extract_features_path(tmp_path, static=True, fmt="csv")
    assert table["id"].tolist() == ["caf\\xe9.wav"]
    shutil.copy(EXAMPLE, tmp_path / "take 1.wav")
    with pytest.raises(ParameterError, match=r"^take 1\.wav: Kaldi keys cannot contain white space"):
        replearning.extract_features_path(tmp_path, static=False, fmt="kaldi", kaldi_file=str(tmp_path / "k"))
    assert not list(tmp_path.glob("k.*"))


@pytest.mark.weights
def test_warnings_point_at_the_callers_line_not_at_speechae(tmp_path):
    import soundfile as sf

    from speechae import RepLearning
    from speechae.errors import SingleWindowWarning

    sf.write(tmp_path / "one.wav", np.sin(np.arange(9000) / 7.0) * 0.3, 16000)
    with pytest.warns(SingleWindowWarning) as warned:
        RepLearning("CAE").extract_features_file(str(tmp_path / "one.wav"), static=True)
    assert [w.filename for w in warned] == [__file__]
