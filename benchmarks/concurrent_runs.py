"""Two `speechae extract` runs at once on one machine, against one alone, for two checkouts.

Each checkout (`--code DIR`, its `src` first on PYTHONPATH; several may be given, each with a
label) extracts the same recording (compare_disvoice.long_file, 16-bit WAV, `--minutes` long)
once alone, then twice at the same time into two outputs; both are timed by wall clock. Rows:
label, alone (s), the pair (s: until both finished), and the pair's time over twice the single
run's (1.0: sharing the cores costs nothing beyond running one after the other).

usage: python benchmarks/concurrent_runs.py --code /tmp/old --label old --code . --label new
           [--minutes 3] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compare_disvoice import long_file


def extract(code: Path, recording: Path, output: Path) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(code.resolve() / "src")}
    command = [sys.executable, "-m", "speechae", "extract", str(recording), "-o", str(output), "-q"]
    return subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def timed(code: Path, recording: Path, folder: Path, runs: int) -> float:
    """Seconds until ``runs`` runs started together have all finished (fresh stores)."""
    for stale in folder.glob("out*"):
        stale.unlink()
    started = time.perf_counter()
    processes = [extract(code, recording, folder / f"out{k}.csv") for k in range(runs)]
    if any(process.wait() != 0 for process in processes):
        raise RuntimeError(f"a run of {code} failed")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--code", type=Path, action="append", required=True)
    parser.add_argument("--label", action="append", required=True)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="speechae-concurrent-") as tmp:
        folder = Path(tmp)
        recording = long_file(folder / "recording.wav", seconds=args.minutes * 60)
        print("label      alone (s)   pair (s)   pair / (2 x alone)")
        for _ in range(args.repeat):  # the checkouts alternate, so drift hits both alike
            for code, label in zip(args.code, args.label, strict=True):
                alone = timed(code, recording, folder, 1)
                pair = timed(code, recording, folder, 2)
                print(f"{label:<10} {alone:9.1f} {pair:10.1f} {pair / (2 * alone):12.2f}", flush=True)


if __name__ == "__main__":
    main()
