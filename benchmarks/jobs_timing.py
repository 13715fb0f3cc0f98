"""Wall time of `speechae extract` on many short recordings with --jobs 1, --jobs 2 and the default.

Cuts the shared recordings (../shared/corpus) into N pieces of 2–5 s (16-bit WAV at their own
rates), then runs the three commands one after another, R rounds, each with a fresh store, and
prints every wall time and the median per setting. Run it on the machine you want to know about:
the default (--jobs auto) must never be slower than --jobs 1 beyond noise.

usage: python benchmarks/jobs_timing.py [--recordings 330] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SHARED = Path(__file__).resolve().parents[2] / "shared"
SETTINGS = {"--jobs 1": ["--jobs", "1"], "--jobs 2": ["--jobs", "2"], "default (auto)": []}


def short_recordings(folder: Path, count: int) -> Path:
    """``count`` pieces of 2–5 s cut in turn from the shared recordings."""
    rng = np.random.default_rng(0)
    sources = [
        p for p in sorted((SHARED / "corpus").iterdir()) if p.suffix in (".wav", ".flac", ".ogg", ".mp3")
    ]
    made = 0
    while made < count:
        for source in sources:
            samples, rate = sf.read(source, dtype="float32")
            length = int(rng.uniform(2.0, 5.0) * rate)
            if len(samples) <= length or made >= count:
                continue
            first = int(rng.integers(0, len(samples) - length))
            sf.write(folder / f"piece{made:04d}.wav", samples[first : first + length], rate, subtype="PCM_16")
            made += 1
    return folder


def timed(folder: Path, options: list[str], output: Path) -> float:
    for stale in output.parent.glob(f"{output.name}*"):
        stale.unlink()
    started = time.perf_counter()
    command = [sys.executable, "-m", "speechae", "extract", str(folder), "-o", str(output), "-q", *options]
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recordings", type=int, default=330)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="speechae-jobs-") as tmp:
        (Path(tmp) / "corpus").mkdir()
        folder = short_recordings(Path(tmp) / "corpus", args.recordings)
        audio = sum(sf.info(path).duration for path in folder.iterdir())
        print(f"{args.recordings} recordings, {audio / 3600:.2f} h of audio")
        times: dict[str, list[float]] = {name: [] for name in SETTINGS}
        for round_number in range(1, args.rounds + 1):
            for name, options in SETTINGS.items():
                times[name].append(timed(folder, options, Path(tmp) / "out.csv"))
                print(f"round {round_number}  {name:<15} {times[name][-1]:6.1f} s", flush=True)
        for name, values in times.items():
            each = ", ".join(f"{value:.1f}" for value in values)
            print(f"{name:<15} median {statistics.median(values):6.1f} s  ({each})")


if __name__ == "__main__":
    main()
