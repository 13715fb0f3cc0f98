from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from speechae.errors import WeightsIntegrityError
from speechae.models import (
    ConvAutoencoder,
    FileBatchNorm2d,
    RecurrentAutoencoder,
    architecture_from_state_dict,
    build_autoencoder,
    upsampled_transposed_conv,
)

DISVOICE_CAE_KEYS = {
    *(f"encoder.conv{k}.weight" for k in range(1, 5)),
    *(f"decoder.conv{k}.weight" for k in range(1, 5)),
    *(
        f"{part}.bn{k}.{p}"
        for part, n in (("encoder", 5), ("decoder", 4))
        for k in range(1, n)
        for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    ),
    "encoder.linear.weight",
    "encoder.linear.bias",
    "decoder.linear.weight",
    "decoder.linear.bias",
}


def test_cae_has_disvoice_state_dict_layout():
    state = ConvAutoencoder(256).state_dict()
    assert set(state) == DISVOICE_CAE_KEYS
    assert state["encoder.linear.weight"].shape == (256, 128 * 8 * 7)


def test_rae_has_disvoice_state_dict_layout():
    state = RecurrentAutoencoder(256).state_dict()
    assert "encoder.lstm1.weight_hh_l0_reverse" in state and "decoder.lstm.weight_ih_l1" in state
    assert state["decoder.lstm.weight_ih_l0"].shape == (512, 256)


@pytest.mark.parametrize("architecture", [ConvAutoencoder, RecurrentAutoencoder])
@pytest.mark.parametrize("bottleneck", [64, 128, 512, 1024])
def test_any_bottleneck_width_round_trips(architecture, bottleneck):
    model = build_autoencoder(architecture(bottleneck).state_dict())
    assert isinstance(model, architecture) and model.bottleneck == bottleneck
    reconstruction, code = model(torch.rand(2, 1, 128, 126))
    assert reconstruction.shape == (2, 1, 128, 126) and code.shape == (2, bottleneck)


def test_unrecognised_or_mismatched_weights_are_rejected():
    with pytest.raises(WeightsIntegrityError, match="neither a CAE nor a RAE"):
        architecture_from_state_dict({"weight": torch.zeros(1)})
    state = ConvAutoencoder(64).state_dict()
    del state["decoder.conv4.weight"]
    with pytest.raises(WeightsIntegrityError, match="CAE weights do not fit"):
        build_autoencoder(state)


def test_file_batchnorm_equals_torch_training_batchnorm_for_one_file():
    torch.manual_seed(0)
    bn = FileBatchNorm2d(8)
    bn.weight.data.uniform_(0.5, 2)
    bn.bias.data.normal_()
    x = torch.randn(6, 8, 10, 9) * 3 + 5
    expected = F.batch_norm(x, None, None, bn.weight, bn.bias, training=True, eps=bn.eps)
    torch.testing.assert_close(bn(x), expected, rtol=1e-5, atol=1e-5)


def test_file_batchnorm_keeps_each_files_statistics_in_a_shared_batch():
    torch.manual_seed(0)
    bn = FileBatchNorm2d(4)
    first, second = torch.randn(3, 4, 5, 5), torch.randn(2, 4, 5, 5) * 10 - 3
    together = bn(torch.cat([first, second]), torch.tensor([0, 0, 0, 1, 1]))
    torch.testing.assert_close(together[:3], bn(first), rtol=0, atol=1e-6)
    torch.testing.assert_close(together[3:], bn(second), rtol=0, atol=1e-6)


def test_normalising_in_place_gives_the_same_bits_in_the_same_memory():
    bn = FileBatchNorm2d(4)
    x = (torch.randn(3, 5, 5, 4) * 2 + 1).permute(0, 3, 1, 2)  # channels-last, as in the engine
    index = torch.tensor([0, 1, 1])
    mean, var = torch.rand(2, 4, dtype=torch.float64), torch.rand(2, 4, dtype=torch.float64) + 0.5
    expected = bn.normalise(x, mean, var, index)
    assert bn.normalise(x, mean, var, index, inplace=True).data_ptr() != x.data_ptr()  # autograd on
    with torch.no_grad():
        result = bn.normalise(x, mean, var, index, inplace=True)
    assert result.data_ptr() == x.data_ptr() and torch.equal(result, expected)


def test_running_statistics_are_never_used_or_changed():
    bn = FileBatchNorm2d(4).eval()
    before = bn.running_mean.clone()
    x = torch.randn(3, 4, 5, 5) + 7
    y = bn(x)
    assert torch.equal(bn.running_mean, before)
    assert y.mean().abs() < 1e-5  # normalised with the batch, not the running mean of 0


def test_cae_features_of_a_file_do_not_depend_on_other_files_in_the_batch(small_cae):
    torch.manual_seed(1)
    a, b = torch.rand(4, 1, 128, 126), torch.rand(3, 1, 128, 126)
    joint_rec, joint_code = small_cae(torch.cat([a, b]), torch.tensor([0] * 4 + [1] * 3))
    alone_rec, alone_code = small_cae(a)
    torch.testing.assert_close(joint_code[:4], alone_code, rtol=0, atol=1e-5)
    torch.testing.assert_close(joint_rec[:4], alone_rec, rtol=0, atol=1e-5)


def test_cae_window_depends_on_its_file_like_disvoice(small_cae):
    """Without eval mode a window's code changes with the other windows of its file."""
    torch.manual_seed(2)
    x = torch.rand(4, 1, 128, 126)
    _, all_windows = small_cae(x)
    _, first_two = small_cae(x[:2])
    assert not torch.allclose(all_windows[:2], first_two, atol=1e-4)


def test_rae_windows_are_independent(small_rae):
    torch.manual_seed(3)
    x = torch.rand(5, 1, 128, 126)
    _, code = small_rae(x)
    _, alone = small_rae(x[2:3])
    torch.testing.assert_close(code[2:3], alone, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("channels", "size", "padding"),
    [((128, 64), (8, 7), (1, 0)), ((64, 32), (16, 16), 1), ((16, 1), (64, 64), 1), ((3, 5), (5, 4), 0)],
)
def test_phase_split_equals_transposed_conv_of_upsampled_input(channels, size, padding):
    torch.manual_seed(0)
    conv = torch.nn.ConvTranspose2d(*channels, kernel_size=3, padding=padding, bias=False).double()
    x = torch.randn(3, channels[0], *size, dtype=torch.float64, requires_grad=True)
    expected = conv(F.interpolate(x, scale_factor=2))
    got = upsampled_transposed_conv(x, conv)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    # training back-propagates through it: gradients agree too
    weights = torch.randn_like(expected)
    (expected_input, expected_weight) = torch.autograd.grad((expected * weights).sum(), (x, conv.weight))
    (got_input, got_weight) = torch.autograd.grad((got * weights).sum(), (x, conv.weight))
    torch.testing.assert_close(got_input, expected_input, rtol=0, atol=1e-11)
    torch.testing.assert_close(got_weight, expected_weight, rtol=0, atol=1e-10)


def test_phase_split_follows_weights_changed_in_place():
    conv = torch.nn.ConvTranspose2d(4, 2, kernel_size=3, padding=1, bias=False).requires_grad_(False)
    x = torch.randn(1, 4, 5, 5)
    before = upsampled_transposed_conv(x, conv)  # caches the phase kernels
    with torch.no_grad():
        conv.weight.mul_(2.0)
    torch.testing.assert_close(upsampled_transposed_conv(x, conv), 2 * before)


def test_phase_kernel_cache_survives_autocast_inference_mode_and_input_gradients():
    torch.manual_seed(0)
    conv = torch.nn.ConvTranspose2d(4, 2, kernel_size=3, padding=1, bias=False).requires_grad_(False)
    x = torch.randn(1, 4, 5, 5)
    expected = conv(F.interpolate(x, scale_factor=2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        upsampled_transposed_conv(x, conv)  # caches while autocast is on
    with torch.inference_mode():
        upsampled_transposed_conv(x, conv)  # and inside inference mode
    torch.testing.assert_close(upsampled_transposed_conv(x, conv), expected, rtol=0, atol=1e-5)
    saliency = x.clone().requires_grad_(True)  # frozen weights, gradient wrt the input
    upsampled_transposed_conv(saliency, conv).sum().backward()
    assert saliency.grad is not None


def test_a_model_built_in_inference_mode_runs(small_cae):
    with torch.inference_mode():
        model = build_autoencoder(small_cae.state_dict())
        reconstruction, _ = model(torch.rand(3, 1, 128, 126))
    assert reconstruction.shape == (3, 1, 128, 126)
