from __future__ import annotations

import copy
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import DEVICES, EXAMPLE, Spills
from speechae import engine
from speechae.audio import read_audio
from speechae.engine import TensorInputs, run_autoencoder
from speechae.pipeline import compute_features


def one_file(n: int) -> torch.Tensor:
    return torch.zeros(n, dtype=torch.long)


@pytest.mark.parametrize("budget", [0, 300_000, 700_000, 1_400_000, 2**30])  # keeps none, some, all
@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_chunked_statistics_equal_one_batch(small_cae, chunk, budget):
    torch.manual_seed(0)
    x = torch.rand(10, 1, 128, 126)
    reconstruction, code = small_cae(x)
    result = run_autoencoder(
        small_cae,
        TensorInputs(x),
        one_file(10),
        chunk_size=chunk,
        memory_budget=budget,
        keep_reconstruction=True,
    )
    torch.testing.assert_close(result.code, code, rtol=0, atol=1e-5)
    torch.testing.assert_close(result.reconstruction, reconstruction, rtol=0, atol=1e-5)
    expected_error = (x - reconstruction).square().mean(dim=3)[:, 0]
    torch.testing.assert_close(result.error, expected_error, rtol=1e-4, atol=1e-9)


# CPU convolutions keep the layout of the loaded (channels-last) weights; CUDA's give NCHW
LAYOUTS = pytest.mark.parametrize(
    "layout", [torch.channels_last, torch.contiguous_format], ids=["channels-last", "NCHW"]
)


@LAYOUTS
def test_files_sharing_chunks_keep_their_own_statistics(small_cae, layout):
    small_cae = small_cae.to(memory_format=layout)
    torch.manual_seed(1)
    a, b, c = torch.rand(5, 1, 128, 126), torch.rand(2, 1, 128, 126) * 0.5, torch.rand(4, 1, 128, 126)
    index = torch.tensor([0] * 5 + [1] * 2 + [2] * 4)
    joint = run_autoencoder(
        small_cae, TensorInputs(torch.cat([a, b, c])), index, chunk_size=3, memory_budget=0
    )
    for part, rows in ((a, slice(0, 5)), (b, slice(5, 7)), (c, slice(7, 11))):
        alone = run_autoencoder(small_cae, TensorInputs(part), one_file(len(part)), chunk_size=3)
        torch.testing.assert_close(joint.code[rows], alone.code, rtol=0, atol=0)
        torch.testing.assert_close(joint.error[rows], alone.error, rtol=0, atol=0)


@pytest.mark.weights
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("model", ["cae", "rae"])
def test_a_files_features_have_the_same_bits_whichever_files_share_its_batch(model, device, request):
    # float32 matrix products round differently with their number of rows (here with fewer than
    # four, and for one window), so each file meets the network in steps of its own
    network = copy.deepcopy(request.getfixturevalue(model).model.network).to(device)
    torch.manual_seed(3)
    with torch.inference_mode():
        for windows in (1, 2, 7):
            file = torch.rand(windows, 1, 128, 126, device=device)
            alone = run_autoencoder(network, TensorInputs(file), one_file(windows).to(device))
            for before, after in ((1, 0), (0, 1), (3, 5), (255, 3)):
                noise_before, noise_after = (
                    torch.rand(n, 1, 128, 126, device=device) for n in (before, after)
                )
                batch = torch.cat([noise_before, file, noise_after])
                index = torch.tensor([0] * before + [1] * windows + [2] * after, device=device)
                index = torch.unique_consecutive(index, return_inverse=True)[1]
                joint = run_autoencoder(network, TensorInputs(batch), index)
                rows = slice(before, before + windows)
                torch.testing.assert_close(joint.code[rows], alone.code, rtol=0, atol=0)
                torch.testing.assert_close(joint.error[rows], alone.error, rtol=0, atol=0)


@LAYOUTS
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "spill_settings",
    [{}, {"refused": (1, 3, 5)}, {"writable": 500_000}],
    ids=["every layer spilled", "some refused", "disks fill up"],
)
def test_spilled_activations_give_the_bits_of_activations_kept_in_memory(
    small_cae, spill_settings, device, layout, monkeypatch
):
    spills = Spills(**spill_settings)
    monkeypatch.setattr(engine, "SPILL_WINDOW_VALUES", 2**30)  # every layer worth spilling
    small_cae = small_cae.to(device, memory_format=layout)
    torch.manual_seed(2)
    x = torch.rand(10, 1, 128, 126, device=device)
    index = one_file(10).to(device)
    kept = run_autoencoder(small_cae, TensorInputs(x), index, chunk_size=3, memory_budget=2**30)
    spilled = run_autoencoder(small_cae, TensorInputs(x), index, chunk_size=3, memory_budget=0, spill=spills)
    assert spills.calls == 7 and all(spool.closed for spool in spills.created)
    torch.testing.assert_close(spilled.code, kept.code, rtol=0, atol=0)
    torch.testing.assert_close(spilled.error, kept.error, rtol=0, atol=0)


def test_large_layers_and_layers_beyond_the_disk_budget_are_recomputed_not_spilled(small_cae):
    x = torch.rand(6, 1, 128, 126)
    spills = Spills()
    run_autoencoder(small_cae, TensorInputs(x), one_file(6), memory_budget=0, spill=spills)
    # not the first convolution's output (64,512 values per window) nor the last one's input
    assert spills.calls == 5 and all(spool.closed for spool in spills.created)
    spills = Spills()
    run_autoencoder(small_cae, TensorInputs(x), one_file(6), memory_budget=0, spill=spills, disk_budget=0)
    assert spills.calls == 0


@pytest.mark.parametrize("device", DEVICES)
def test_the_default_budget_keeps_on_a_gpu_the_layers_a_cpu_spills(small_cae, device, monkeypatch):
    monkeypatch.setattr(engine, "DEFAULT_MEMORY_BUDGET", 100_000)  # below every layer of 6 windows
    x = torch.rand(6, 1, 128, 126, device=device)
    spills = Spills()
    run_autoencoder(small_cae.to(device), TensorInputs(x), one_file(6).to(device), spill=spills)
    assert spills.calls == (5 if device == "cpu" else 0)


def test_rae_chunks_are_independent(small_rae):
    x = torch.rand(7, 1, 128, 126)
    whole = run_autoencoder(small_rae, TensorInputs(x), one_file(7))
    chunked = run_autoencoder(small_rae, TensorInputs(x), one_file(7), chunk_size=2)
    torch.testing.assert_close(chunked.code, whole.code, rtol=0, atol=1e-6)


@pytest.mark.weights
@pytest.mark.parametrize("device", DEVICES)
def test_long_file_path_equals_in_memory_run_with_pretrained_cae(cae, device):
    """A budget too small for the spectrograms forces recomputation from the signal in chunks."""
    signal, rate = read_audio(EXAMPLE)
    signal = np.concatenate([signal, signal[::-1], signal])  # 11.6 s, 45 windows
    network = copy.deepcopy(cae.model.network).to(device)
    in_memory = compute_features(signal, rate, network, frontend=cae.frontend, device=device)
    chunked = compute_features(
        signal, rate, network, frontend=cae.frontend, device=device, chunk_size=8, memory_budget=200_000
    )
    assert len(chunked.starts) == len(in_memory.starts) == 45
    np.testing.assert_allclose(chunked.bottleneck, in_memory.bottleneck, rtol=0, atol=1e-5)
    np.testing.assert_allclose(chunked.error, in_memory.error, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(chunked.static, in_memory.static, rtol=1e-4, atol=1e-4)


def test_kept_activations_are_reused_by_the_next_call_and_large_ones_freed(small_cae, monkeypatch):
    from speechae import engine

    x, files = torch.rand(6, 1, 128, 126), torch.tensor([0, 0, 0, 1, 1, 1])
    buffers = engine._KeptBuffers.of_this_thread()
    first = run_autoencoder(small_cae, TensorInputs(x), files)
    storages = [s.data_ptr() for s in buffers.storages if s is not None]
    second = run_autoencoder(small_cae, TensorInputs(x), files)
    assert storages and [s.data_ptr() for s in buffers.storages if s is not None] == storages
    assert torch.equal(first.code, second.code) and torch.equal(first.error, second.error)
    monkeypatch.setattr(engine, "RETAINED_BUFFER_BYTES", 6 * 16 * 64 * 63 * 4 - 1)  # first layer's
    third = run_autoencoder(small_cae, TensorInputs(x), files)
    assert all(s is None or s.nbytes < 6 * 16 * 64 * 63 * 4 for s in buffers.storages)
    assert torch.equal(first.code, third.code)


# Runs a CAE over the same windows four times and prints each run's page faults.
REPEATED_RUNS = """
import resource, torch
from speechae.engine import TensorInputs, run_autoencoder
from speechae.models import ConvAutoencoder
torch.manual_seed(0)
network = ConvAutoencoder(8).to(memory_format=torch.channels_last).requires_grad_(False)
windows, files = TensorInputs(torch.rand(96, 1, 128, 126)), torch.arange(96) // 40
faults = []
with torch.inference_mode():
    for _ in range(4):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        run_autoencoder(network, windows, files)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(*faults)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="counts page faults as Linux reports them")
def test_repeated_runs_touch_no_fresh_memory():
    """Freshly mapped memory costs a page fault per 4 kB: 18,000 per run here before reuse."""
    # without the malloc settings other tests leave behind (Dask's LocalCluster sets a trim threshold)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    command = [sys.executable, "-c", REPEATED_RUNS]
    output = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    faults = [int(count) for count in output.stdout.split()]
    assert faults[2] + faults[3] < 1000, faults


def test_buffers_kept_in_inference_mode_serve_a_call_outside_it(small_cae):
    x, files = torch.rand(4, 1, 128, 126), one_file(4)
    with torch.inference_mode():
        inside = run_autoencoder(small_cae, TensorInputs(x), files)
    outside = run_autoencoder(small_cae, TensorInputs(x), files)
    assert torch.equal(inside.code, outside.code)


def test_a_failure_while_a_layer_is_spilled_closes_its_file(small_cae, monkeypatch):
    stage, third_stage_calls = small_cae.stage, []

    def fail_in_the_second_chunk_of_the_third_stage(k, *args, **kwargs):
        third_stage_calls.extend([k] if k == 2 else [])
        if len(third_stage_calls) == 2:
            raise RuntimeError("out of memory")
        return stage(k, *args, **kwargs)

    monkeypatch.setattr(small_cae, "stage", fail_in_the_second_chunk_of_the_third_stage)
    spills = Spills()
    x = torch.rand(6, 1, 128, 126)
    with pytest.raises(RuntimeError, match="out of memory"):
        run_autoencoder(small_cae, TensorInputs(x), one_file(6), chunk_size=2, memory_budget=0, spill=spills)
    # the layer kept before (the second) and the one being written (the third)
    assert spills.calls == 2 and all(spool.closed for spool in spills.created)


@pytest.mark.parametrize("layers", [0, 1, 1.5, 2])
def test_kept_activations_never_hold_more_than_the_budget_the_layer_being_read_included(small_cae, layers):
    from speechae import engine

    x, files = torch.rand(6, 1, 128, 126), torch.tensor([0, 0, 0, 1, 1, 1])
    first_layer = 6 * 16 * 64 * 63 * 4  # the largest: each later one is half as large or less
    budget = int(layers * first_layer)
    everything = run_autoencoder(small_cae, TensorInputs(x), files, memory_budget=10**9)
    buffers = engine._KeptBuffers.of_this_thread()
    within = run_autoencoder(small_cae, TensorInputs(x), files, memory_budget=budget)
    assert sum(storage.nbytes for storage in buffers.storages if storage is not None) <= budget
    assert torch.equal(within.code, everything.code) and torch.equal(within.error, everything.error)
