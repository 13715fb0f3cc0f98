"""Peak memory of a corpus run with worker processes: the main process, each worker, and all together.

A corpus of recordings made from the shared ones (compare_disvoice.long_file, 16-bit WAV;
`--minutes` lengths at `--rates`, each pair once) is extracted by the CLI with `--jobs N`; every
0.1 s the resident memory of the run's processes is read from /proc. Prints the peak of the main
process, of the largest worker, and of their sum at any one moment.

usage: python benchmarks/memory_jobs.py [--jobs 1,2,4] [--minutes 1,3,8] [--rates 16000,44100]
           [-- --resampling segmented]
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


def resident(pid: int) -> int:
    """Resident bytes of process ``pid`` (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return 0
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")


def children(pid: int) -> list[int]:
    try:
        listed = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    found = [int(child) for child in listed]
    return found + [grandchild for child in found for grandchild in children(child)]


def peaks(command: list[str]) -> tuple[float, float, float, float]:
    """Peak GiB of the main process, the largest worker and the sum, and the wall seconds."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    main = worker = total = 0
    while process.poll() is None:
        own, others = resident(process.pid), [resident(child) for child in children(process.pid)]
        main, worker = max(main, own), max([worker, *others])
        total = max(total, own + sum(others))
        time.sleep(0.1)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed")
    return main / 2**30, worker / 2**30, total / 2**30, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", default="1,2,4")
    parser.add_argument("--minutes", default="1,3,8")
    parser.add_argument("--rates", default="16000,44100")
    parser.add_argument("options", nargs="*", help="extra options of speechae extract, after --")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="speechae-memory-jobs-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        for rate in map(int, args.rates.split(",")):
            for minutes in map(float, args.minutes.split(",")):
                long_file(corpus / f"{rate}_{minutes:g}.wav", seconds=minutes * 60, rate=rate)
        print("jobs   main (GiB)   largest worker (GiB)   all together (GiB)   wall (s)")
        for jobs in args.jobs.split(","):
            output = Path(tmp) / f"out{jobs}.csv"
            command = [sys.executable, "-m", "speechae", "extract", str(corpus), "-o", str(output)]
            main_peak, worker_peak, total, seconds = peaks([*command, "--jobs", jobs, "-q", *args.options])
            print(
                f"{jobs:>4} {main_peak:12.2f} {worker_peak:22.2f} {total:20.2f} {seconds:10.1f}", flush=True
            )


if __name__ == "__main__":
    main()
