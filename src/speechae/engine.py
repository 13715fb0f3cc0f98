"""Running an autoencoder over many windows with exact per-file BatchNorm statistics.

DisVoice pushes all windows of a file through the CAE as one batch, so every BatchNorm layer
normalises with the statistics of the whole file. A long file does not fit in memory that way.
:func:`run_autoencoder` gets the same numbers in chunks, layer by layer: it accumulates each
BatchNorm layer's per-file statistics over all chunks (float64 sums) before any window passes that
layer. Activations in front of a layer are kept between passes when they fit ``memory_budget``,
or else in a temporary file from the caller's ``spill`` when they fit ``disk_budget`` and are
small enough per window to be written faster than recomputed; otherwise they are recomputed
from the nearest kept layer (or the input). With a large budget this costs one forward pass;
a 60-minute file at 16 kHz costs about two without ``spill``, half as much time with it.

Windows of several files can share a call: ``file_index`` says which file each window belongs to
and every file gets its own statistics, so results never depend on the batch composition.

Example:
    >>> import torch
    >>> from speechae.models import ConvAutoencoder
    >>> model = ConvAutoencoder(8)
    >>> x = torch.rand(6, 1, 128, 126)
    >>> whole = run_autoencoder(model, TensorInputs(x), torch.zeros(6, dtype=torch.long))
    >>> chunked = run_autoencoder(model, TensorInputs(x), torch.zeros(6, dtype=torch.long),
    ...                           chunk_size=2, memory_budget=0)
    >>> torch.allclose(whole.code, chunked.code, atol=1e-5)
    True
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from speechae.allocator import retain_freed_memory
from speechae.errors import ParameterError, TemporaryStorageError
from speechae.models import ChannelMoments

__all__ = [
    "DEFAULT_CHUNK",
    "DEFAULT_DISK_BUDGET",
    "DEFAULT_MEMORY_BUDGET",
    "PRECISIONS",
    "FileNorm",
    "NetworkOutput",
    "StagedNetwork",
    "TensorInputs",
    "chunk_for",
    "memory_budget_for",
    "run_autoencoder",
]

PRECISIONS = ("fp32", "bf16")
DEFAULT_CHUNK = None
DEFAULT_MEMORY_BUDGET = 512 * 2**20
#: Largest layer of activations kept in a temporary file.
DEFAULT_DISK_BUDGET = 8 * 2**30
#: Layers with more values per window are recomputed rather than spilled: writing the CAE's
#: largest (64,512 values per window after its first convolution, 49,152 before its last) costs
#: more than computing them again (benchmarks/RESULTS.md, "Memory: a 60-minute file").
SPILL_WINDOW_VALUES = 2**15
CPU_CHUNK = 16
GPU_CHUNK = 512
#: Kept-activation storages up to this size are reused by the next call in the same thread.
RETAINED_BUFFER_BYTES = 128 * 2**20
_THREAD_STATE = threading.local()


class SpillStorage(Protocol):
    """Values in a temporary file, written and read by ranges (:class:`speechae.audio.SampleSpool`)."""

    def __setitem__(self, positions: slice, values: np.ndarray) -> None: ...

    def read(self, first: int, last: int) -> np.ndarray: ...

    def close(self) -> None: ...


#: ``spill(length, dtype)`` gives a :class:`SpillStorage` of ``length`` values, or raises
#: :class:`~speechae.errors.TemporaryStorageError` when there is no room for it.
Spill = Callable[[int, np.dtype], SpillStorage]


class WindowInputs(Protocol):
    """Scaled log-Mel windows that can be read in ranges, possibly more than once."""

    def __len__(self) -> int: ...

    def get(self, first: int, last: int) -> torch.Tensor:
        """Windows ``first..last-1`` as float32 ``(m, 1, n_mels, frames)``."""
        ...


class FileNorm(Protocol):
    """A BatchNorm layer that applies given per-file statistics (:class:`speechae.models.FileBatchNorm2d`)."""

    def normalise(
        self,
        x: torch.Tensor,
        mean: torch.Tensor,
        var: torch.Tensor,
        file_index: torch.Tensor,
        *,
        inplace: bool = False,
    ) -> torch.Tensor:
        """``x`` normalised with the ``(n_files, channels)`` statistics of each window's file."""
        ...


@runtime_checkable
class StagedNetwork(Protocol):
    """What :func:`run_autoencoder` needs of a network with BatchNorm layers.

    The network is a chain of ``n_stages`` stages separated by its :attr:`norms`:
    ``stage(0, x)`` gives the input of ``norms[0]``, ``stage(k, normalised)`` the input of
    ``norms[k]`` and the last stage the reconstruction; one stage also yields the bottleneck.
    Stages before the last give channels-last outputs, written into ``out`` when it is given; a
    stage may overwrite its (normalised) input. Networks without BatchNorm layers (the RAE) are
    run as ``network(x) -> (reconstruction, bottleneck)``, window by window independently.
    """

    #: ``len(norms) + 1``.
    n_stages: int
    #: Windows per step of each stage on a CPU.
    cpu_chunks: tuple[int, ...]

    @property
    def norms(self) -> Sequence[FileNorm]:
        """The BatchNorm layers in the order the data passes them."""
        ...

    def stage(
        self, k: int, x: torch.Tensor, out: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run stage ``k``: ``(output, bottleneck or None)``."""
        ...


class TensorInputs:
    """Windows already in memory.

    Example:
        >>> len(TensorInputs(torch.zeros(3, 1, 128, 126)))
        3
    """

    def __init__(self, windows: torch.Tensor) -> None:
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def get(self, first: int, last: int) -> torch.Tensor:
        """Windows ``first..last-1``."""
        return self.windows[first:last]


@dataclass
class NetworkOutput:
    """Per-window results of the network.

    ``code`` is ``(n, bottleneck)``, ``error`` ``(n, n_mels)`` and, on request,
    ``reconstruction`` ``(n, 1, n_mels, frames)``.
    """

    code: torch.Tensor
    error: torch.Tensor
    reconstruction: torch.Tensor | None = None


def chunk_for(device: torch.device | str) -> int:
    """Windows per forward step that run fastest on ``device`` for a network without stages.

    On a CPU small chunks keep each layer's data in cache; a GPU wants large ones. The CAE
    refines this per stage (:attr:`speechae.models.ConvAutoencoder.cpu_chunks`).

    Example:
        >>> chunk_for("cpu")
        16
    """
    return CPU_CHUNK if torch.device(device).type == "cpu" else GPU_CHUNK


def memory_budget_for(device: torch.device | str) -> int:
    """Bytes a recording may keep in memory at once on ``device`` unless told otherwise.

    They are its conditioned signal, spectrograms and kept activations
    (:func:`speechae.pipeline.recording_features`). On a CPU they count towards the process's
    memory: 512 MiB keeps ``speechae extract`` of one file of any length, rate and number of
    channels under 1.2 GiB, the process's own 300-400 MB and the network's working buffers
    included (measured in ``benchmarks/RESULTS.md``). On a GPU they take the GPU's own memory,
    an eighth of it (at least as much as on a CPU), which keeps an hour-long file's layers there.

    Example:
        >>> memory_budget_for("cpu") // 2**20
        512
    """
    device = torch.device(device)
    if device.type != "cuda":
        return DEFAULT_MEMORY_BUDGET
    return max(DEFAULT_MEMORY_BUDGET, torch.cuda.get_device_properties(device).total_memory // 8)


def _stage_chunks(network: nn.Module, device: torch.device, chunk_size: int | None) -> list[int]:
    """Windows per step for each stage of a staged network (one entry for other networks)."""
    if not isinstance(network, StagedNetwork):
        return [chunk_size or chunk_for(device)]
    if chunk_size:
        return [chunk_size] * network.n_stages
    if device.type == "cpu":
        return list(network.cpu_chunks)
    return [chunk_for(device)] * network.n_stages


def _ranges(total: int, chunk: int) -> list[tuple[int, int]]:
    return [(first, min(first + chunk, total)) for first in range(0, total, chunk)]


def _ranges_per_file(file_index: torch.Tensor, chunk: int) -> list[tuple[int, int]]:
    """Steps of at most ``chunk`` windows that never mix files and start at each file's first window.

    Matrix products round differently with the number of rows, so a file's windows must meet the
    network in the same steps whichever files come before or after it.
    """
    ranges, first = [], 0
    for count in torch.unique_consecutive(file_index, return_counts=True)[1].tolist():
        ranges += [(first + a, first + b) for a, b in _ranges(count, chunk)]
        first += count
    return ranges


def _reconstruction_error(inputs: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    return (inputs - reconstruction.float()).square().mean(dim=-1)[:, 0]


class _KeptBuffers:
    """Two storages for kept activations, reused layer after layer and, per thread, call after call.

    One holds the activations being read, the other receives the next layer's. Reusing them
    saves the page faults of fresh allocations (about 0.2 ms per window, 13% of the network), and
    one block per layer never fragments the heap as chunk-sized tensors would (hundreds of MB on
    an hour-long file). CPU storages of up to :data:`RETAINED_BUFFER_BYTES` stay allocated for
    the next call in the same thread (a corpus's batches, a loop over files); larger ones, such as
    a long file's, are freed when the call ends.
    """

    def __init__(self) -> None:
        self.storages: list[torch.Tensor | None] = [None, None]
        self.reading = 0

    @classmethod
    def of_this_thread(cls) -> _KeptBuffers:
        """The buffers of the calling thread (threads never share activations), for a new call.

        Every call starts with the same slot, so each slot keeps receiving the same layers and
        its storage, once large enough, is never replaced.
        """
        buffers = getattr(_THREAD_STATE, "kept_buffers", None)
        if buffers is None:
            buffers = _THREAD_STATE.kept_buffers = cls()
        buffers.reading = 0
        return buffers

    def hold_at_most(self, budget: int) -> None:
        """Free retained storages, the largest first, until they hold at most ``budget`` bytes."""
        for slot in sorted((0, 1), key=lambda k: -self.held(k)):
            if self.held(0) + self.held(1) > budget:
                self.storages[slot] = None

    def held(self, slot: int) -> int:
        """Bytes of the storage in ``slot``."""
        storage = self.storages[slot]
        return 0 if storage is None else storage.nbytes

    def release_large(self) -> None:
        """Free the storages not worth keeping until the next call."""
        for slot, storage in enumerate(self.storages):
            if storage is None:
                continue
            if storage.device.type != "cpu" or storage.nbytes > RETAINED_BUFFER_BYTES:
                self.storages[slot] = None

    def next(self, like: torch.Tensor, windows: int, most: int) -> torch.Tensor:
        """An uninitialised channels-last tensor for ``windows`` windows shaped like ``like``.

        Its storage is reused unless it is too small, or larger than ``most`` bytes.
        """
        slot = 1 - self.reading
        _, channels, height, width = like.shape
        size = windows * channels * height * width
        storage = self.storages[slot]
        fits = storage is not None and size <= storage.numel() and storage.nbytes <= most
        if not fits or (storage.dtype, storage.device) != (like.dtype, like.device):
            self.storages[slot] = None  # free the old one first
            with torch.inference_mode(False):  # a normal tensor can be written in and out of that mode
                storage = self.storages[slot] = torch.empty(size, dtype=like.dtype, device=like.device)
        return storage[:size].view(windows, height, width, channels).permute(0, 3, 1, 2)

    def swap(self) -> None:
        """The tensor last given by :meth:`next` is now the one being read."""
        self.reading = 1 - self.reading


class _NetworkInputs:
    """Nothing kept: the windows start from the network's input (layer -1)."""

    layer = -1

    def __init__(self, inputs: WindowInputs) -> None:
        self.inputs = inputs

    def read(self, first: int, last: int, consume: bool) -> tuple[torch.Tensor, bool]:
        """Inputs of windows ``first..last-1``, channels-last, and that they may be overwritten."""
        return self.inputs.get(first, last).contiguous(memory_format=torch.channels_last), True

    def close(self) -> None:
        """Nothing to release."""


class _KeptInMemory:
    """One layer's activations of every window in a :class:`_KeptBuffers` tensor."""

    def __init__(self, layer: int, activations: torch.Tensor) -> None:
        self.layer, self.activations = layer, activations

    def read(self, first: int, last: int, consume: bool) -> tuple[torch.Tensor, bool]:
        """Windows ``first..last-1`` where they lie; with ``consume`` they may be overwritten."""
        return self.activations[first:last], consume

    def destination(self, first: int, last: int) -> torch.Tensor:
        """Where a stage writes the activations of windows ``first..last-1``."""
        return self.activations[first:last]

    def write(self, first: int, last: int, x: torch.Tensor) -> _KeptInMemory:
        """Keep the activations ``x`` of windows ``first..last-1``."""
        self.activations[first:last] = x
        return self

    def close(self) -> None:
        """Nothing to release: the buffers are reused by the next layer."""


class _SpilledActivations:
    """One layer's activations of every window in a temporary file, read back by window ranges."""

    def __init__(self, layer: int, storage: SpillStorage, like: torch.Tensor) -> None:
        self.layer, self.storage = layer, storage
        _, channels, height, width = like.shape
        self.pixel_shape = (height, width, channels)  # channels-last, as the stages write them
        self.dtype, self.device = like.dtype, like.device
        self.window_bytes = channels * height * width * like.element_size()

    def read(self, first: int, last: int, consume: bool) -> tuple[torch.Tensor, bool]:
        """Windows ``first..last-1``, a new channels-last tensor on the layer's device."""
        data = torch.from_numpy(self.storage.read(first * self.window_bytes, last * self.window_bytes))
        pixels = data.view(self.dtype).view(last - first, *self.pixel_shape)
        return pixels.permute(0, 3, 1, 2).to(self.device), True

    def destination(self, first: int, last: int) -> None:
        """Stages cannot write into a file: :meth:`write` copies their output."""
        return None

    def write(self, first: int, last: int, x: torch.Tensor) -> _SpilledActivations | None:
        """Keep windows ``first..last-1``; on a full disk, drop the file (the layer is recomputed)."""
        data = x.permute(0, 2, 3, 1).contiguous().cpu().view(torch.uint8).numpy().reshape(-1)
        try:
            self.storage[first * self.window_bytes : last * self.window_bytes] = data
        except TemporaryStorageError:
            self.close()
            return None
        return self

    def close(self) -> None:
        """Delete the temporary file."""
        self.storage.close()


#: The activations that later passes start from: in memory, in a temporary file, or none (the
#: network's input, from which every layer is recomputed).
_Kept = _NetworkInputs | _KeptInMemory | _SpilledActivations


class _LayerwiseRun:
    """State of one layer-by-layer pass over a staged network: statistics so far, kept activations."""

    def __init__(
        self,
        network: StagedNetwork,
        inputs: WindowInputs,
        file_index: torch.Tensor,
        memory_budget: int,
        spill: Spill | None = None,
        disk_budget: int = 0,
    ) -> None:
        self.network = network
        self.inputs = inputs
        self.file_index = file_index
        self.n_files = int(file_index.max()) + 1
        self.statistics: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.kept: _Kept = _NetworkInputs(inputs)
        self.buffers = _KeptBuffers.of_this_thread()
        self.memory_budget = memory_budget
        self.buffers.hold_at_most(memory_budget)
        self.code: torch.Tensor | None = None
        self.spill, self.disk_budget = spill, disk_budget

    def _keep(self, layer: int, x: torch.Tensor) -> _KeptInMemory | _SpilledActivations | None:
        """Storage for the output of ``layer``, whose first chunk is ``x``, if any fits.

        A layer kept in memory fits when it does beside the layer being read: both are held
        while it is computed.
        """
        size = x[0].numel() * x.element_size() * len(self.inputs)
        reading = self.buffers.reading  # where a layer kept in memory lies, or an unused storage
        if size > self.memory_budget - self.buffers.held(reading) and not isinstance(
            self.kept, _KeptInMemory
        ):
            self.buffers.storages[reading] = None
        room = self.memory_budget - self.buffers.held(reading)
        if size <= room:
            kept = _KeptInMemory(layer, self.buffers.next(x, len(self.inputs), most=room))
            self.buffers.swap()
            return kept
        if self.spill is None or size > self.disk_budget or x[0].numel() > SPILL_WINDOW_VALUES:
            return None
        try:
            return _SpilledActivations(layer, self.spill(size, np.dtype(np.uint8)), x)
        except TemporaryStorageError:
            return None  # no room: recompute instead

    def release(self) -> None:
        """Free the kept activations (temporary files included)."""
        self.kept.close()
        self.kept = _NetworkInputs(self.inputs)
        self.buffers.release_large()

    def advance(
        self, first: int, last: int, until: int, out: torch.Tensor | None = None, consume: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Output of stage ``until`` for windows ``first..last-1``, from the kept layer.

        ``out``, if given, receives the output. With ``consume`` these windows' kept activations
        are read for the last time and are normalised where they lie; the intermediate outputs
        of this call always are (a new tensor per layer costs 10%).
        """
        x, owned = self.kept.read(first, last, consume)
        index = self.file_index[first:last]
        code = None
        for k in range(self.kept.layer + 1, until + 1):
            if k > 0:
                norm = self.network.norms[k - 1]
                x = norm.normalise(x, *self.statistics[k - 1], index, inplace=owned)
            x, emitted = self.network.stage(k, x, out if k == until else None)
            code = emitted if emitted is not None else code
            owned = True  # this call's own output from here on
        return x, code

    def find_statistics(self, layer: int, chunks: list[tuple[int, int]]) -> None:
        """Accumulate the statistics in front of norm ``layer``, keeping activations if they fit.

        Stages write activations kept in memory straight into a :class:`_KeptBuffers` tensor.
        Spilled ones are copied to their file; should the disk fill up meanwhile, the layer is
        not kept after all (the layer in front of it is then still intact).
        """
        moments = kept = None
        try:
            for first, last in chunks:
                # once this layer is kept in memory, the kept layer in front of it is never read again
                out = None if kept is None else kept.destination(first, last)
                x, code = self.advance(first, last, until=layer, out=out, consume=out is not None)
                if moments is None:
                    moments = ChannelMoments(self.n_files, x.shape[1], x.device)
                    kept = self._keep(layer, x)
                if kept is not None and out is None:
                    kept = kept.write(first, last, x)
                moments.update(x, self.file_index[first:last])
                if code is not None:
                    if self.code is None:
                        self.code = code.new_empty((len(self.inputs), code.shape[1]))
                    self.code[first:last] = code
        except BaseException:
            if kept is not None:
                kept.close()
            raise
        self.statistics.append(moments.result())
        if kept is not None:
            self.kept.close()
            self.kept = kept


def run_autoencoder(
    network: nn.Module,
    inputs: WindowInputs,
    file_index: torch.Tensor,
    *,
    chunk_size: int | None = DEFAULT_CHUNK,
    memory_budget: int | None = None,
    keep_reconstruction: bool = False,
    precision: str = "fp32",
    spill: Spill | None = None,
    disk_budget: int = DEFAULT_DISK_BUDGET,
) -> NetworkOutput:
    """Bottleneck and reconstruction error of every window, with per-file BatchNorm statistics.

    Args:
        network: a CAE or RAE from :mod:`speechae.models` (RAE windows are independent).
        inputs: the scaled log-Mel windows.
        file_index: ``(n,)`` file number of each window (0-based, contiguous numbering).
        chunk_size: windows per forward step (default: per stage and device, see
            :func:`chunk_for`). Steps never mix files, so a file's results have the same bits
            whichever files share the batch.
        memory_budget: bytes of activations held between layers, the layer being read and the one
            being kept together (default:
            :func:`memory_budget_for` the device).
        keep_reconstruction: also return the decoded spectrograms.
        precision: ``"fp32"`` (exact, the default) or ``"bf16"``: convolutions and linear layers
            in bfloat16 under autocast, BatchNorm statistics still summed in float64. Faster on
            CPUs with bfloat16 instructions and on GPUs; not equal to DisVoice (see the README).
        spill: where a layer's activations too large for ``memory_budget`` are kept instead
            of being recomputed for every later layer (e.g. ``SampleSpool.create``); the
            results are the same.
        disk_budget: the largest layer kept through ``spill``, in bytes.
    """
    if precision not in PRECISIONS:
        raise ParameterError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    retain_freed_memory()
    if memory_budget is None:
        memory_budget = memory_budget_for(file_index.device)
    steps = _stage_chunks(network, file_index.device, chunk_size)
    # cuDNN rounds convolution inputs to TF32 (10-bit mantissa) by default on Ampere and newer
    # GPUs (errors of 1e-3, a hundred times the parity tolerance), and even in float32 its kernels
    # sum in other orders than the CPU's: its LSTM moved the RAE's errors by 2e-4 relative over
    # 126 steps. PyTorch's own CUDA kernels stay within 2e-5 of the CPU, at a fraction of the
    # speed that still runs thousands of times faster than real time.
    device_type = file_index.device.type
    with (
        torch.backends.cudnn.flags(enabled=False, allow_tf32=False),
        torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16"),
    ):
        output = _run(
            network, inputs, file_index, steps, memory_budget, keep_reconstruction, spill, disk_budget
        )
    output.code, output.error = output.code.float(), output.error.float()
    if output.reconstruction is not None:
        output.reconstruction = output.reconstruction.float()
    return output


def _run(
    network: nn.Module,
    inputs: WindowInputs,
    file_index: torch.Tensor,
    steps: list[int],
    memory_budget: int,
    keep_reconstruction: bool,
    spill: Spill | None,
    disk_budget: int,
) -> NetworkOutput:
    chunks = [_ranges_per_file(file_index, size) for size in steps]
    if not isinstance(network, StagedNetwork):
        return _run_independent(network, inputs, chunks[0], keep_reconstruction)
    run = _LayerwiseRun(network, inputs, file_index, memory_budget, spill, disk_budget)
    try:
        last_stage = network.n_stages - 1
        for layer in range(last_stage):
            run.find_statistics(layer, chunks[layer])
        errors, reconstructions = None, []
        for first, last in chunks[last_stage]:
            reconstruction, _ = run.advance(first, last, until=last_stage, consume=True)
            error = _reconstruction_error(inputs.get(first, last), reconstruction)
            if errors is None:
                errors = error.new_empty((len(inputs), error.shape[1]))
            errors[first:last] = error
            if keep_reconstruction:
                reconstructions.append(reconstruction)
    finally:
        run.release()
    return NetworkOutput(
        code=run.code,
        error=errors,
        reconstruction=torch.cat(reconstructions) if keep_reconstruction else None,
    )


def _run_independent(
    network: nn.Module, inputs: WindowInputs, chunks: list[tuple[int, int]], keep_reconstruction: bool
) -> NetworkOutput:
    codes, errors, reconstructions = [], [], []
    for first, last in chunks:
        x = inputs.get(first, last)
        reconstruction, code = network(x)
        codes.append(code)
        errors.append(_reconstruction_error(x, reconstruction))
        if keep_reconstruction:
            reconstructions.append(reconstruction)
    return NetworkOutput(
        code=torch.cat(codes),
        error=torch.cat(errors),
        reconstruction=torch.cat(reconstructions) if keep_reconstruction else None,
    )
