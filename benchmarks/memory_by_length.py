"""Peak memory of `speechae extract` against the length of one recording, as a table and a PNG.

For each rate and length, a recording made from the shared recordings one after another
(compare_disvoice.long_file, 16-bit WAV; `--channels 2` adds a second channel, the first delayed
by one sample) is extracted by the CLI (CAE, static, fresh store) under GNU time, which reports
the peak RSS of the whole process. `--code DIR` runs the package of another checkout (its `src`
first on PYTHONPATH), so an older commit is measured beside this one; `--label` names the rows
and `--append` adds them to an existing `--json`. Prints one row per file and draws `--png` from
every row of the JSON (peak RSS against minutes, one line per label and rate, the 1.2 GiB target
dashed). Extra CLI options go after `--`.

usage: python benchmarks/memory_by_length.py [--minutes 1,5,10,30,60,120] [--rates 16000,44100]
           [--channels 1] [--code DIR --label before] [--json FILE [--append]] [--png FILE]
           [-- --resampling segmented]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from compare_disvoice import long_file

TARGET_GIB = 1.2


def peak_rss(path: Path, output: Path, code: Path | None, options: list[str]) -> tuple[float, float]:
    """Peak RSS in GiB and wall seconds of one CLI run (of the checkout ``code``, if given)."""
    environment = dict(os.environ)
    if code is not None:
        environment["PYTHONPATH"] = str(code.resolve() / "src")
    command = ["/usr/bin/time", "-f", "%M %e", sys.executable, "-m", "speechae", "extract", str(path)]
    result = subprocess.run(
        [*command, "-o", str(output), "-q", *options],
        check=True,
        capture_output=True,
        text=True,
        env=environment,
    )
    kib, seconds = result.stderr.strip().splitlines()[-1].split()
    return int(kib) / 2**20, float(seconds)


def recording(folder: Path, minutes: float, rate: int, channels: int) -> Path:
    """The benchmark's recording of ``minutes`` at ``rate`` with ``channels`` channels."""
    path = long_file(folder / "recording.wav", seconds=minutes * 60, rate=rate)
    if channels == 2:
        mono, _ = sf.read(path, dtype="int16")
        sf.write(path, np.stack([mono, np.roll(mono, 1)], axis=1), rate, subtype="PCM_16")
    return path


def draw(rows: list[dict], target: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.subplots()
    lines = sorted({(row.get("label", ""), row["rate"]) for row in rows})
    for label, rate in lines:
        chosen = [row for row in rows if (row.get("label", ""), row["rate"]) == (label, rate)]
        style = "o--" if label == "before" else "o-"
        axes.plot(
            [r["minutes"] for r in chosen],
            [r["peak_gib"] for r in chosen],
            style,
            label=f"{label} {rate} Hz".strip(),
        )
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
    parser.add_argument("--channels", type=int, choices=(1, 2), default=1)
    parser.add_argument("--code", type=Path, default=None, help="checkout whose package is measured")
    parser.add_argument("--label", default="after")
    parser.add_argument("--png", default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--append", action="store_true", help="add the rows to those already in --json")
    parser.add_argument("options", nargs="*", help="extra options of speechae extract, after --")
    args = parser.parse_args()
    rows = json.loads(Path(args.json).read_text()) if args.append else []
    with tempfile.TemporaryDirectory(prefix="speechae-memory-") as tmp:
        for rate in map(int, args.rates.split(",")):
            for minutes in map(float, args.minutes.split(",")):
                path = recording(Path(tmp), minutes, rate, args.channels)
                for stale in Path(tmp).glob("out.csv*"):
                    stale.unlink()
                gib, seconds = peak_rss(path, Path(tmp) / "out.csv", args.code, args.options)
                options = " ".join(args.options)
                row = {"label": args.label, "rate": rate, "channels": args.channels, "minutes": minutes}
                rows.append({**row, "options": options, "peak_gib": round(gib, 3), "wall_s": seconds})
                print(
                    f"{args.label:>8} {rate:>6} Hz x{args.channels} {minutes:>6g} min {options}"
                    f"  peak {gib:.2f} GiB  {seconds:7.1f} s",
                    flush=True,
                )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.png:
        draw([row for row in rows if row.get("channels", 1) == 1 and not row.get("options")], Path(args.png))


if __name__ == "__main__":
    main()
