"""Peak memory of `speechae extract` against the length of one recording, as a table and a PNG.

For each rate and length, a recording made from the shared recordings one after another
(compare_disvoice.long_file, 16-bit WAV) is extracted by the CLI (CAE, static, fresh store) under
GNU time, which reports the peak RSS of the whole process. Prints one row per file and draws
`--png` (peak RSS against minutes, one line per rate, the 1.2 GiB target dashed).

usage: python benchmarks/memory_by_length.py [--minutes 1,5,10,30,60,120] [--rates 16000,44100]
           [--png benchmarks/results/memory_by_length.png]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from compare_disvoice import long_file

TARGET_GIB = 1.2


def peak_rss(path: Path, output: Path) -> tuple[float, float]:
    """Peak RSS in GiB and wall seconds of one CLI run."""
    command = ["/usr/bin/time", "-f", "%M %e", sys.executable, "-m", "speechae", "extract", str(path)]
    result = subprocess.run([*command, "-o", str(output), "-q"], check=True, capture_output=True, text=True)
    kib, seconds = result.stderr.strip().splitlines()[-1].split()
    return int(kib) / 2**20, float(seconds)


def draw(rows: list[dict], target: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.subplots()
    for rate in sorted({row["rate"] for row in rows}):
        chosen = [row for row in rows if row["rate"] == rate]
        axes.plot([r["minutes"] for r in chosen], [r["peak_gib"] for r in chosen], "o-", label=f"{rate} Hz")
    axes.axhline(TARGET_GIB, color="grey", linestyle="--", label=f"{TARGET_GIB} GiB")
    axes.set_xlabel("recording length (minutes)")
    axes.set_ylabel("peak RSS of speechae extract (GiB)")
    axes.set_ylim(bottom=0)
    axes.legend()
    figure.savefig(target, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", default="1,5,10,30,60,120")
    parser.add_argument("--rates", default="16000,44100")
    parser.add_argument("--png", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="speechae-memory-") as tmp:
        for rate in map(int, args.rates.split(",")):
            for minutes in map(float, args.minutes.split(",")):
                path = long_file(Path(tmp) / "recording.wav", seconds=minutes * 60, rate=rate)
                for stale in Path(tmp).glob("out.csv*"):
                    stale.unlink()
                gib, seconds = peak_rss(path, Path(tmp) / "out.csv")
                rows.append({"rate": rate, "minutes": minutes, "peak_gib": round(gib, 3), "wall_s": seconds})
                print(f"{rate:>6} Hz {minutes:>6g} min  peak {gib:.2f} GiB  {seconds:7.1f} s", flush=True)
    if args.png:
        draw(rows, Path(args.png))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
