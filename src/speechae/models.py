"""Autoencoder architectures that load DisVoice's state dicts unchanged.

DisVoice never puts its models in eval mode, so the CAE's BatchNorm layers normalise with the
statistics of all windows of the file being processed. :class:`FileBatchNorm2d` reproduces that
for any number of files sharing one batch: ``file_index`` says which file each window belongs to,
and every file is normalised with its own mean and (biased) variance.

Example:
    >>> model = ConvAutoencoder(bottleneck=64)
    >>> x = torch.rand(5, 1, 128, 126)
    >>> reconstruction, code = model(x, torch.tensor([0, 0, 0, 1, 1]))
    >>> tuple(reconstruction.shape), tuple(code.shape)
    ((5, 1, 128, 126), (5, 64))
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from speechae.errors import WeightsIntegrityError

__all__ = [
    "ARCHITECTURES",
    "ConvAutoencoder",
    "FileBatchNorm2d",
    "RecurrentAutoencoder",
    "architecture_from_state_dict",
    "build_autoencoder",
]


def _single_file(x: torch.Tensor) -> torch.Tensor:
    return torch.zeros(x.shape[0], dtype=torch.long, device=x.device)


class ChannelMoments:
    """Per-file, per-channel mean and biased variance, accumulated over chunks of windows.

    Sums run in float64 around a shift (the mean of each file's first window), so the variance
    has no cancellation problem and chunked results equal one-batch results to rounding. The
    shift depends on the file alone, so a file's statistics do not change with the windows of
    other files that share its chunks.

    Example:
        >>> x = torch.randn(6, 2, 4, 4) + 3
        >>> moments = ChannelMoments(n_files=1, channels=2)
        >>> for part in x.split(2):
        ...     moments.update(part, torch.zeros(len(part), dtype=torch.long))
        >>> mean, var = moments.result()
        >>> torch.allclose(var[0], x.double().var(dim=(0, 2, 3), unbiased=False))
        True
    """

    def __init__(self, n_files: int, channels: int, device: torch.device | str = "cpu") -> None:
        options = {"dtype": torch.float64, "device": device}
        self.count = torch.zeros(n_files, **options)
        self.shift = torch.zeros(n_files, channels, **options)
        self.shifted_sum = torch.zeros(n_files, channels, **options)
        self.shifted_squares = torch.zeros(n_files, channels, **options)

    def update(self, x: torch.Tensor, file_index: torch.Tensor) -> None:
        """Add a chunk ``x`` ``(n, c, h, w)`` whose windows belong to the files in ``file_index``."""
        # bfloat16 activations (fast mode) are summed in float32, then float64. The sums run over
        # an (n, pixels, c) view whatever the layout of x: the order of a sum, and with it its
        # rounding, follows the layout (CUDA's convolutions give NCHW, the kept buffers hold
        # channels-last), and reducing one axis of a view is ten times faster than reducing (h, w).
        x = x.float().contiguous(memory_format=torch.channels_last)
        values = x.permute(0, 2, 3, 1).flatten(1, 2)
        pixels = values.shape[1]
        counts = torch.bincount(file_index, minlength=len(self.count)).to(torch.float64) * pixels
        unseen = (self.count == 0).tolist()
        runs = _file_runs(file_index)
        for file, first, _ in runs:
            if unseen[file]:
                # the mean of a new file's first window, summed in float64 one window at a time:
                # the same bits whichever windows share the chunk
                self.shift[file] = values[first].double().sum(dim=0) / pixels
        shift = self.shift.to(x.dtype)[file_index]
        centred = values - shift.view(len(file_index), 1, -1)
        _add_per_file(self.shifted_sum, centred.sum(dim=1).double(), runs)
        centred.square_()
        _add_per_file(self.shifted_squares, centred.sum(dim=1).double(), runs)
        self.count += counts

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, variance)``, each float64 ``(n_files, channels)``."""
        count = self.count[:, None]
        offset = self.shifted_sum / count
        return self.shift + offset, self.shifted_squares / count - offset.square()


def _file_runs(file_index: torch.Tensor) -> list[tuple[int, int, int]]:
    """``(file, first, last)`` of each run of consecutive windows of one file."""
    files, counts = torch.unique_consecutive(file_index, return_counts=True)
    lasts = counts.cumsum(0).tolist()
    return [
        (file, last - count, last)
        for file, count, last in zip(files.tolist(), counts.tolist(), lasts, strict=True)
    ]


def _add_per_file(totals: torch.Tensor, rows: torch.Tensor, runs: list[tuple[int, int, int]]) -> None:
    """Add each run's rows to its file's total, in an order fixed by the run alone.

    ``index_add_`` would be shorter, but on CUDA it adds with atomics in an order that changes
    from call to call, and so did the float32 statistics in their last bit.
    """
    for file, first, last in runs:
        totals[file] += rows[first:last].sum(dim=0)


class FileBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that always normalises with per-file batch statistics.

    The running averages are kept in the state dict (so DisVoice's files load unchanged) but are
    never used or updated: a file's output depends on the windows of that file only.

    Example:
        >>> bn = FileBatchNorm2d(3)
        >>> x = torch.randn(4, 3, 5, 5)
        >>> y = bn(x, torch.tensor([0, 0, 1, 1]))
        >>> torch.allclose(y[:2], bn(x[:2], torch.tensor([0, 0])), atol=1e-6)
        True
    """

    def forward(self, x: torch.Tensor, file_index: torch.Tensor | None = None) -> torch.Tensor:
        """Normalise ``x`` ``(n, c, h, w)``; ``file_index`` ``(n,)`` maps each window to its file."""
        if file_index is None:
            file_index = _single_file(x)
        moments = ChannelMoments(int(file_index.max()) + 1, x.shape[1], x.device)
        moments.update(x, file_index)
        return self.normalise(x, *moments.result(), file_index)

    def normalise(
        self,
        x: torch.Tensor,
        mean: torch.Tensor,
        var: torch.Tensor,
        file_index: torch.Tensor,
        *,
        inplace: bool = False,
    ) -> torch.Tensor:
        """Apply known per-file statistics ``(n_files, channels)`` to the windows of ``x``.

        With ``inplace`` the result overwrites ``x`` (same values) unless gradients are being
        recorded.
        """
        scale = torch.rsqrt(var + self.eps) * self.weight.to(torch.float64)
        shift = self.bias.to(torch.float64) - mean * scale
        scale = scale.to(x.dtype)[file_index][:, :, None, None]
        shift = shift.to(x.dtype)[file_index][:, :, None, None]
        return torch.addcmul(shift, x, scale, out=x if inplace and not torch.is_grad_enabled() else None)


def max_pool_2x2(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``F.max_pool2d(x, 2)`` without computing the indices of the maxima.

    Two elementwise maxima over strided views; 2-3x faster than PyTorch's CPU pooling, which
    always finds the indices. The values are the same (NaN included; only the sign of a zero
    maximum may differ), and on ties the gradient is shared instead of going to one input.
    ``out`` (optional) receives the result.

    Example:
        >>> x = torch.randn(2, 3, 7, 6)
        >>> torch.equal(max_pool_2x2(x), F.max_pool2d(x, 2))
        True
    """
    height, width = x.shape[2] // 2 * 2, x.shape[3] // 2 * 2
    rows = torch.maximum(x[:, :, 0:height:2, :width], x[:, :, 1:height:2, :width])
    return torch.maximum(rows[:, :, :, 0::2], rows[:, :, :, 1::2], out=out)


def _phase_taps(kernel: int, padding: int) -> tuple[list[int], torch.Tensor]:
    """Where the taps of a stride-1 convolution over a 2x nearest-upsampled axis land.

    Output sample ``2j + a`` (phase ``a``) reads original samples ``j + offsets[a] + u`` for
    ``u < span``. Returns ``offsets`` and a 0/1 tensor ``(2, span, kernel)`` mapping each tap to
    its ``u``.
    """
    positions = [[(a + d - padding) // 2 for d in range(kernel)] for a in (0, 1)]
    offsets = [min(row) for row in positions]
    span = max(max(row) - low + 1 for row, low in zip(positions, offsets, strict=True))
    placement = torch.zeros(2, span, kernel)
    for a, row in enumerate(positions):
        for d, position in enumerate(row):
            placement[a, position - offsets[a], d] = 1.0
    return offsets, placement


def _phase_weights(conv: nn.ConvTranspose2d) -> tuple[torch.Tensor, list[int], list[int]]:
    """The four phases' 2x2 kernels as one conv2d weight ``(4 * out, in, 2, 2)`` and the offsets.

    Kernels are built in the weight's own precision (autocast casts them at the convolution, as
    it casts any weight). They are cached on ``conv`` as an ordinary tensor without gradient,
    keyed by the weight's storage and version, while the weight needs no gradient; training
    recomputes them so gradients reach the weight. (Changing ``conv.weight.data`` in place does
    not bump the version; assign or ``load_state_dict`` instead.)
    """
    weight = conv.weight
    training = torch.is_grad_enabled() and weight.requires_grad
    cacheable = not training and not weight.is_inference()  # inference tensors have no version
    key = (weight.data_ptr(), weight._version, weight.dtype, weight.device) if cacheable else None
    cached = getattr(conv, "_phase_weights", None)
    if cacheable and cached is not None and cached[0] == key:
        return cached[1]
    with (
        torch.autocast(weight.device.type, enabled=False),
        torch.inference_mode(False),
        torch.set_grad_enabled(training),
    ):
        result = _fuse_phases(conv)
    if cacheable:
        conv._phase_weights = (key, result)
    return result


def _fuse_phases(conv: nn.ConvTranspose2d) -> tuple[torch.Tensor, list[int], list[int]]:
    weight = conv.weight.transpose(0, 1).flip(2, 3)  # the equivalent conv2d weight (stride 1)
    pads = [k - 1 - p for k, p in zip(conv.kernel_size, conv.padding, strict=True)]
    row_offsets, row_taps = _phase_taps(weight.shape[2], pads[0])
    col_offsets, col_taps = _phase_taps(weight.shape[3], pads[1])
    fused = torch.einsum("oiyx,auy,bvx->aboiuv", weight, row_taps.to(weight), col_taps.to(weight))
    fused = fused.reshape(-1, *fused.shape[3:]).contiguous(memory_format=torch.channels_last)
    return fused, row_offsets, col_offsets


def upsampled_transposed_conv(
    x: torch.Tensor, conv: nn.ConvTranspose2d, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``conv(interpolate(x, scale_factor=2))`` for a 3x3 ``conv``, without upsampling ``x``.

    Over a nearest-upsampled image, each of the four output phases (even/odd row and column) of
    a 3x3 convolution is a 2x2 convolution of the original image with summed taps: 16 instead of
    36 multiplications per input pixel and channel pair. The four phases run as one convolution
    (phase-major output channels) and are then interleaved. Equal up to float32 rounding (sums of
    taps are formed first). The result is in channels-last layout; ``out`` (optional, channels-last
    and dense) receives it.

    Example:
        >>> conv = nn.ConvTranspose2d(4, 3, kernel_size=3, padding=(1, 0), bias=False)
        >>> x = torch.randn(2, 4, 6, 5)
        >>> expected = conv(F.interpolate(x, scale_factor=2))
        >>> torch.allclose(upsampled_transposed_conv(x, conv), expected, atol=1e-5)
        True
    """
    fused, row_offsets, col_offsets = _phase_weights(conv)
    pad_rows, pad_cols = (k - 1 - p for k, p in zip(conv.kernel_size, conv.padding, strict=True))
    n, _, height, width = x.shape
    phase_rows = height + pad_rows - (conv.kernel_size[0] - 1) // 2  # output rows of each phase
    phase_cols = width + pad_cols - (conv.kernel_size[1] - 1) // 2
    # with 3x3 kernels the 2x2 taps of every phase need the same padding on both sides
    top, left = -min(row_offsets), -min(col_offsets)
    phases = F.conv2d(x, fused, padding=(top, left))
    phases = phases.permute(0, 2, 3, 1).unflatten(3, (2, 2, -1))  # (n, rows, cols, a, b, channels)
    shape = (n, phase_rows, 2, phase_cols, 2, conv.out_channels)
    pixels = phases.new_empty(shape) if out is None else out.permute(0, 2, 3, 1).view(shape)
    for a, row in enumerate(row_offsets):
        for b, col in enumerate(col_offsets):
            rows, cols = slice(row + top, row + top + phase_rows), slice(col + left, col + left + phase_cols)
            pixels[:, :, a, :, b] = phases[:, rows, cols, a, b]
    return pixels.flatten(1, 2).flatten(2, 3).permute(0, 3, 1, 2)


class ConvEncoder(nn.Module):
    """Four conv -> max-pool -> BatchNorm -> leaky ReLU blocks and a linear bottleneck."""

    def __init__(self, bottleneck: int = 256) -> None:
        super().__init__()
        widths = (1, 16, 32, 64, 128)
        for k in range(1, 5):
            conv = nn.Conv2d(widths[k - 1], widths[k], kernel_size=3, padding=1, bias=False)
            self.add_module(f"conv{k}", conv)
            self.add_module(f"bn{k}", FileBatchNorm2d(widths[k]))
        self.linear = nn.Linear(128 * 8 * 7, bottleneck)


class ConvDecoder(nn.Module):
    """Linear expansion, then upsample -> transposed conv -> BatchNorm blocks and a sigmoid."""

    def __init__(self, bottleneck: int = 256) -> None:
        super().__init__()
        self.linear = nn.Linear(bottleneck, 128 * 8 * 7)
        self.conv1 = nn.ConvTranspose2d(128, 64, kernel_size=3, padding=(1, 0), bias=False)
        self.bn1 = FileBatchNorm2d(64)
        self.conv2 = nn.ConvTranspose2d(64, 32, kernel_size=3, padding=1, bias=False)
        self.bn2 = FileBatchNorm2d(32)
        self.conv3 = nn.ConvTranspose2d(32, 16, kernel_size=3, padding=1, bias=False)
        self.bn3 = FileBatchNorm2d(16)
        self.conv4 = nn.ConvTranspose2d(16, 1, kernel_size=3, padding=1, bias=False)


class ConvAutoencoder(nn.Module):
    """DisVoice's convolutional autoencoder (CAE) with per-file BatchNorm statistics.

    The network is a chain of :attr:`norms` (seven BatchNorm layers) separated by stages:
    ``stage(0, x)`` gives the input of ``norms[0]``, ``stage(k, normalised)`` the input of
    ``norms[k]`` and ``stage(7, ...)`` the reconstruction; ``stage(4, ...)`` also yields the
    bottleneck. This lets :mod:`speechae.engine` compute exact per-file statistics layer by layer
    on files too long for one batch.
    """

    n_stages = 8
    #: Windows per step for each stage on a CPU: small where a stage's intermediate tensors are
    #: large (the first convolution's output is 1 MB per window), so they stay near the L2
    #: cache; large at the bottleneck, whose two 7 MB weight matrices are read once per step.
    #: Measured with ``benchmarks/engine_micro.py --stages``, then on the whole network.
    cpu_chunks = (8, 8, 16, 32, 256, 16, 16, 16)

    def __init__(self, bottleneck: int = 256) -> None:
        super().__init__()
        self.bottleneck = bottleneck
        self.encoder = ConvEncoder(bottleneck)
        self.decoder = ConvDecoder(bottleneck)

    @property
    def norms(self) -> list[FileBatchNorm2d]:
        """The BatchNorm layers in the order the data passes them."""
        enc, dec = self.encoder, self.decoder
        return [enc.bn1, enc.bn2, enc.bn3, enc.bn4, dec.bn1, dec.bn2, dec.bn3]

    def stage(
        self, k: int, x: torch.Tensor, out: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run stage ``k``; returns ``(output, bottleneck or None)``.

        For ``k >= 1``, ``x`` is a norm's output and is overwritten (activation in place).
        Stages 0-6 give channels-last outputs and write them into ``out`` when given (a dense
        channels-last tensor). Convolutions round differently with the layout of their input, and
        CUDA's return NCHW: one layout keeps a window's numbers the same whether its activations
        were kept, read back from a file or recomputed.
        """
        enc, dec = self.encoder, self.decoder
        if k < 4:
            if k > 0:
                x = F.leaky_relu(x, inplace=True)
            pooled = max_pool_2x2(getattr(enc, f"conv{k + 1}")(x), out)
            return pooled.contiguous(memory_format=torch.channels_last), None
        x = F.leaky_relu(x, inplace=True)
        if k == 4:
            code = enc.linear(x.flatten(1))
            expanded = dec.linear(code).view(-1, 128, 8, 7).contiguous(memory_format=torch.channels_last)
            return upsampled_transposed_conv(expanded, dec.conv1, out), code
        if k < 7:
            return upsampled_transposed_conv(x, getattr(dec, f"conv{k - 3}"), out), None
        return torch.sigmoid(upsampled_transposed_conv(x, dec.conv4))[:, :, :, :-2], None

    def forward(
        self, x: torch.Tensor, file_index: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(reconstruction, bottleneck)`` for scaled log-Mel input ``(n, 1, 128, 126)``."""
        x, code = self.stage(0, x)
        for k, norm in enumerate(self.norms, start=1):
            x, emitted = self.stage(k, norm(x, file_index))
            code = emitted if emitted is not None else code
        return x, code


def _run_lstm(lstm: nn.LSTM, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """``lstm(x)``, in float32 on the CPU even under bfloat16 autocast.

    oneDNN has no bfloat16 LSTM on every CPU ("could not create a primitive descriptor"), so a
    bf16 run's recurrent layers stay in float32 there; in float32 this changes nothing.
    """
    if x.device.type != "cpu":
        return lstm(x)
    with torch.autocast("cpu", enabled=False):
        return lstm(x.float())


class RecurrentEncoder(nn.Module):
    """Bidirectional LSTM over time; last outputs and final states feed a linear bottleneck."""

    def __init__(self, bottleneck: int = 256, n_mels: int = 128) -> None:
        super().__init__()
        self.lstm1 = nn.LSTM(n_mels, 64, batch_first=True, bidirectional=True)
        self.linear = nn.Linear(256, bottleneck)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, 1, n_mels, frames)`` -> ``(n, bottleneck)``."""
        outputs, (final_hidden, _) = _run_lstm(self.lstm1, x[:, 0].transpose(1, 2))
        summary = torch.cat((outputs[:, -1], final_hidden.transpose(0, 1).flatten(1)), dim=1)
        return F.leaky_relu(self.linear(summary))


class RecurrentDecoder(nn.Module):
    """Two-layer LSTM fed the bottleneck at every time step."""

    def __init__(self, bottleneck: int = 256, n_frames: int = 126) -> None:
        super().__init__()
        self.lstm = nn.LSTM(bottleneck, 128, batch_first=True, num_layers=2)
        self.n_frames = n_frames

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        """``(n, bottleneck)`` -> ``(n, 1, 128, frames)``."""
        steps = code.unsqueeze(1).expand(-1, self.n_frames, -1).contiguous()
        outputs, _ = _run_lstm(self.lstm, steps)
        return outputs.transpose(1, 2).unsqueeze(1)


class RecurrentAutoencoder(nn.Module):
    """DisVoice's recurrent autoencoder (RAE); windows are independent of each other."""

    def __init__(self, bottleneck: int = 256) -> None:
        super().__init__()
        self.bottleneck = bottleneck
        self.encoder = RecurrentEncoder(bottleneck)
        self.decoder = RecurrentDecoder(bottleneck)

    def forward(
        self, x: torch.Tensor, file_index: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(reconstruction, bottleneck)``; ``file_index`` is accepted and unused."""
        code = self.encoder(x)
        return self.decoder(code), code


ARCHITECTURES: dict[str, type[nn.Module]] = {
    "cae": ConvAutoencoder,
    "rae": RecurrentAutoencoder,
}


def architecture_from_state_dict(state: Mapping[str, torch.Tensor]) -> tuple[str, int]:
    """Recognise ``(architecture, bottleneck)`` from a DisVoice-layout state dict.

    Example:
        >>> architecture_from_state_dict(ConvAutoencoder(64).state_dict())
        ('cae', 64)
    """
    if "encoder.conv1.weight" in state and "encoder.linear.weight" in state:
        return "cae", int(state["encoder.linear.weight"].shape[0])
    if "encoder.lstm1.weight_ih_l0" in state and "encoder.linear.weight" in state:
        return "rae", int(state["encoder.linear.weight"].shape[0])
    raise WeightsIntegrityError(
        "the weights are neither a CAE nor a RAE state dict in DisVoice's layout "
        "(expected keys such as 'encoder.conv1.weight' or 'encoder.lstm1.weight_ih_l0')"
    )


def build_autoencoder(state: Mapping[str, torch.Tensor]) -> nn.Module:
    """Create the matching architecture and load ``state`` into it strictly.

    Example:
        >>> model = build_autoencoder(RecurrentAutoencoder(32).state_dict())
        >>> model.bottleneck
        32
    """
    architecture, bottleneck = architecture_from_state_dict(state)
    model = ARCHITECTURES[architecture](bottleneck)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        details = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]  # one per tensor
        why = "; ".join(details) or str(error)
        raise WeightsIntegrityError(f"the {architecture.upper()} weights do not fit: {why}") from None
    if architecture == "cae":
        model = model.to(memory_format=torch.channels_last)  # oneDNN's and cuDNN's fast layout
    return model.requires_grad_(False)
