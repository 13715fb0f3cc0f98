"""CUDA check: parity with DisVoice's references on the GPU, GPU vs CPU, and GPU throughput.

Run on a machine with a CUDA GPU, with a folder holding the shared corpus recordings and their
parity references (``<recording>.<CAE|RAE>.npz``) and the model cache:

    SPEECHAE_CACHE_DIR=cache python benchmarks/gpu_check.py DATA_DIR [--minutes 60]

Prints one JSON line per check and a final line ``N passed, M failed``. The long file runs on the
GPU in fp32 (with the GPU's memory budget and with the CPU's) and bf16 and, as a baseline on the
same machine, on its CPU; each row's deviation is from the first run of its model.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from speechae import Extractor
from speechae.corpus import extract_corpus
from speechae.engine import DEFAULT_MEMORY_BUDGET, memory_budget_for
from speechae.inputs import collect_items

TOLERANCES = {"static": (1e-4, 1e-4), "bottleneck": (1e-5, 0.0), "error": (1e-9, 1e-4)}


def worst_excess(ours: np.ndarray, reference: np.ndarray, part: str) -> float:
    atol, rtol = TOLERANCES[part]
    excess = np.abs(ours - reference) / (atol + rtol * np.abs(reference))
    excess[np.isnan(ours) & np.isnan(reference)] = 0.0
    return float(np.nanmax(excess)) if excess.size else 0.0


def parity(data: Path) -> list[dict]:
    rows = []
    for model in ("CAE", "RAE"):
        gpu = Extractor(f"{model.lower()}-256", device="cuda")
        cpu = Extractor(f"{model.lower()}-256", device="cpu")
        for reference_path in sorted(data.glob(f"*.{model}.npz")):
            audio = data / reference_path.name[: -len(f".{model}.npz")]
            reference = np.load(reference_path)
            features = gpu.file_features(audio)
            on_cpu = cpu.file_features(audio)
            width = features.bottleneck.shape[1]
            ratios = {
                "bottleneck": worst_excess(
                    features.bottleneck, reference["dynamic"][:, :width], "bottleneck"
                ),
                "error": worst_excess(features.error, reference["dynamic"][:, width:], "error"),
                "static": worst_excess(features.static, reference["static"], "static"),
                "gpu_vs_cpu_bottleneck": float(np.abs(features.bottleneck - on_cpu.bottleneck).max()),
            }
            ok = (
                len(features.starts) == len(reference["dynamic"])
                and max(ratios["bottleneck"], ratios["error"], ratios["static"]) <= 1.0
            )
            rows.append({"check": "parity", "model": model, "file": audio.name, "ok": ok, **ratios})
    return rows


def timed_run(extractor: Extractor, audio: Path, memory_budget: int | None) -> tuple[float, np.ndarray]:
    """Seconds of the second of two runs (the first warms kernels and allocator), static features."""
    extractor.file_features(audio, memory_budget=memory_budget)
    synchronize(extractor.device)
    started = time.perf_counter()
    features = extractor.file_features(audio, memory_budget=memory_budget)
    synchronize(extractor.device)
    return time.perf_counter() - started, features.static


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def throughput(data: Path, minutes: float) -> list[dict]:
    recordings = [sf.read(p, dtype="float32") for p in sorted(data.glob("*.wav"))]
    signal = np.concatenate([s if s.ndim == 1 else s.mean(axis=1) for s, rate in recordings if rate == 16000])
    signal = np.tile(signal, int(np.ceil(minutes * 60 * 16000 / len(signal))))[: int(minutes * 60 * 16000)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        long_file = Path(tmp) / "long.wav"
        sf.write(long_file, signal, 16000, subtype="FLOAT")
        exact = {}
        # (model, device, precision, memory budget): None is the device's default
        runs = [("cae-256", "cuda", "fp32", None), ("rae-256", "cuda", "fp32", None)]
        runs += [("cae-256", "cuda", "bf16", None), ("cae-256", "cuda", "fp32", DEFAULT_MEMORY_BUDGET)]
        runs += [("cae-256", "cpu", "fp32", None), ("rae-256", "cpu", "fp32", None)]
        for model, device, precision, budget in runs:
            torch.cuda.reset_peak_memory_stats()
            extractor = Extractor(model, device=device, precision=precision)
            seconds, static = timed_run(extractor, long_file, budget)
            row = {
                "check": "long file",
                "model": model,
                "device": device,
                "precision": precision,
                "memory_budget_mb": (budget or memory_budget_for(device)) // 2**20,
                "audio_s": minutes * 60,
                "wall_s": round(seconds, 3),
                "x_real_time": round(minutes * 60 / seconds, 1),
                "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20),
                "ok": True,
            }
            if model not in exact:
                exact[model] = static
            else:
                deviation = worst_excess(static, exact[model], "static")
                row["static_vs_first_run_in_tolerances"] = deviation
                row["ok"] = precision == "bf16" or deviation <= 1.0
            rows.append(row)
        items, _ = collect_items([data])
        audio_s = sum(sf.info(item.path).duration for item in items)
        started = time.perf_counter()
        summary = extract_corpus(
            Extractor("cae-256", device="cuda"), items, Path(tmp) / "out.parquet", jobs=4
        )
        seconds = time.perf_counter() - started
        rows.append(
            {
                "check": "corpus runner",
                "model": "cae-256",
                "files_ok": int((summary.records["status"] == "ok").sum()),
                "audio_s": round(audio_s, 1),
                "wall_s": round(seconds, 2),
                "x_real_time": round(audio_s / seconds, 1),
                "ok": not summary.failures or all("shorter than" in str(f.error) for f in summary.failures),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", type=Path)
    parser.add_argument("--minutes", type=float, default=60.0)
    args = parser.parse_args()
    print(json.dumps({"device": torch.cuda.get_device_name(0), "torch": torch.__version__}))
    rows = parity(args.data) + throughput(args.data, args.minutes)
    for row in rows:
        print(json.dumps(row))
    failed = sum(not row["ok"] for row in rows)
    print(f"{len(rows) - failed} passed, {failed} failed")


if __name__ == "__main__":
    main()
