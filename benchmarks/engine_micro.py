"""Network throughput of the exact engine, side by side, in one run: chunk sizes and precision.

usage:
    python benchmarks/engine_micro.py            # windows/s of whole networks
    python benchmarks/engine_micro.py --stages   # ms per window of each CAE stage by chunk size

The first form runs 256 random windows of one file (per-file BatchNorm statistics) through each
configuration, best of three. The second times each of the CAE's eight stages alone (the input
of a BatchNorm layer to the input of the next) on chunks of 1 to 256 windows; the fastest chunk
of each stage guides ``ConvAutoencoder.cpu_chunks`` (then checked on the whole network, where
each chunk also pays for its BatchNorm bookkeeping).
"""

from __future__ import annotations

import argparse
import time

import torch

from speechae.allocator import retain_freed_memory
from speechae.engine import TensorInputs, run_autoencoder
from speechae.weights import load_model

STAGE_INPUTS = [
    (1, 128, 126),
    (16, 64, 63),
    (32, 32, 31),
    (64, 16, 15),
    (128, 8, 7),
    (64, 16, 16),
    (32, 32, 32),
    (16, 64, 64),
]
CHUNKS = (1, 2, 4, 8, 16, 32, 64, 256)


def windows_per_second(network, x, **options) -> float:
    file_index = torch.zeros(len(x), dtype=torch.long)
    run_autoencoder(network, TensorInputs(x), file_index, **options)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        run_autoencoder(network, TensorInputs(x), file_index, **options)
        best = min(best, time.perf_counter() - started)
    return len(x) / best


def networks() -> None:
    torch.manual_seed(0)
    x = torch.rand(256, 1, 128, 126)
    cae = load_model("cae-256").network
    rows = [("CAE, chunk per stage (the default)", {})]
    rows += [(f"CAE, chunk {chunk} for every stage", {"chunk_size": chunk}) for chunk in (256, 16, 4)]
    rows.append(("CAE, chunk per stage, bf16", {"precision": "bf16"}))
    with torch.inference_mode():
        for name, options in rows:
            print(f"{name:40s} {windows_per_second(cae, x, **options):7.0f} windows/s")
        rate = windows_per_second(load_model("rae-256").network, x)
        print(f"{'RAE, chunk 16':40s} {rate:7.0f} windows/s")


def stages() -> None:
    retain_freed_memory()  # as run_autoencoder does
    cae = load_model("cae-256").network
    print("stage  " + " ".join(f"{chunk:>7d}" for chunk in CHUNKS) + "   (ms per window by chunk size)")
    with torch.inference_mode():
        for k, shape in enumerate(STAGE_INPUTS):
            row = []
            for chunk in CHUNKS:
                x = torch.rand(chunk, *shape).contiguous(memory_format=torch.channels_last)
                repeats = max(3, 128 // chunk)
                cae.stage(k, x.clone())
                started = time.perf_counter()
                for _ in range(repeats):
                    cae.stage(k, x.clone())  # stages overwrite their input
                row.append((time.perf_counter() - started) / repeats / chunk * 1000)
            print(f"{k:5d}  " + " ".join(f"{ms:7.3f}" for ms in row))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stages", action="store_true", help="time each CAE stage by chunk size")
    stages() if parser.parse_args().stages else networks()


if __name__ == "__main__":
    main()
