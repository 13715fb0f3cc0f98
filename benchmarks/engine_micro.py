"""Network throughput of the exact engine, side by side, in one run: layouts, chunk sizes, precision.

usage: python benchmarks/engine_micro.py
Prints windows/s for 256 random windows with per-file BatchNorm statistics (one file).
"""

from __future__ import annotations

import copy
import time

import torch

from speechae.engine import TensorInputs, run_autoencoder
from speechae.weights import load_model


def windows_per_second(network, x, **options) -> float:
    file_index = torch.zeros(len(x), dtype=torch.long)
    run_autoencoder(network, TensorInputs(x), file_index, **options)
    started = time.perf_counter()
    run_autoencoder(network, TensorInputs(x), file_index, **options)
    return len(x) / (time.perf_counter() - started)


def main() -> None:
    torch.manual_seed(0)
    x = torch.rand(256, 1, 128, 126)
    cae = load_model("cae-256").network  # channels-last, as speechae runs it
    contiguous = copy.deepcopy(cae).to(memory_format=torch.contiguous_format)
    with torch.inference_mode():
        rows = [
            (f"CAE contiguous layout, chunk {chunk}", windows_per_second(contiguous, x, chunk_size=chunk))
            for chunk in (256, 16)
        ]
        rows += [
            (f"CAE channels-last, chunk {chunk}", windows_per_second(cae, x, chunk_size=chunk))
            for chunk in (256, 64, 16)
        ]
        rows.append(("CAE channels-last, chunk 16, bf16", windows_per_second(cae, x, precision="bf16")))
        rows.append(("RAE, chunk 16", windows_per_second(load_model("rae-256").network, x)))
    for name, rate in rows:
        print(f"{name:40s} {rate:7.0f} windows/s")


if __name__ == "__main__":
    main()
