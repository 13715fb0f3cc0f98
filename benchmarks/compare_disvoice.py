"""Side-by-side timing of speechae and the real DisVoice 0.1.10 on the same files, in one run.

Cases (issue "Speed and memory"):
  corpus   every recording of ../shared/corpus that DisVoice can process (>= 0.5 s), decoded to
           float32 WAV as the parity references were, static features, CAE and RAE;
  long     a 10-minute 16 kHz recording made by concatenating shared recordings, CAE static;
  cli      one 2 s file as a whole process, imports and model loading included, CAE static.

DisVoice runs through ../shared/tools/disvoice (set up with its setup.sh) in its own process;
speechae runs through benchmarks/time_speechae.py in its own process, so both pay the same kind of
start-up and are measured the same way (extraction wall time after the model is loaded, and peak
RSS of the process). Both use torch's default thread count (the machine's cores).

usage:
    python benchmarks/compare_disvoice.py [--cases corpus,long,cli] [--repeat N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
DISVOICE = Path(os.environ.get("DISVOICE_REF", Path(tempfile.gettempdir()) / "disvoice-ref"))
TOOL = SHARED / "tools" / "disvoice"


def disvoice(model: str, target: Path, cwd: Path) -> dict:
    if not (DISVOICE / "venv" / "bin" / "python").exists():
        subprocess.run(["bash", str(TOOL / "setup.sh"), str(DISVOICE)], check=True)
    command = [
        str(DISVOICE / "venv" / "bin" / "python"),
        str(TOOL / "disvoice_ref.py"),
        "time",
        "--model",
        model,
        str(target),
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=cwd).stdout
    return json.loads(output.strip().splitlines()[-1])


def ours(model: str, target: Path, *options: str) -> dict:
    command = [sys.executable, str(HERE / "time_speechae.py"), "--model", model, *options, str(target)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def whole_process(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def corpus_folder(folder: Path) -> Path:
    """Shared recordings DisVoice can read: float32 WAV at their own rate, at least 0.5 s long."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted((SHARED / "corpus").iterdir()):
        if path.suffix.lower() not in (".wav", ".flac", ".ogg", ".mp3"):
            continue
        samples, rate = sf.read(path, dtype="float32")
        if len(samples) / rate >= 0.5:
            sf.write(folder / f"{path.stem}.wav", samples, rate, subtype="FLOAT")
    return folder


def long_file(path: Path, seconds: float = 600.0, rate: int = 16000) -> Path:
    """An int16 recording of ``seconds`` at ``rate`` made from the shared recordings, one after another."""
    from scipy.signal import resample_poly

    pieces, total = [], 0
    names = sorted(
        p for p in (SHARED / "corpus").iterdir() if p.suffix.lower() in (".wav", ".flac", ".ogg", ".mp3")
    )
    while total < seconds * rate:
        for name in names:
            samples, native_rate = sf.read(name, dtype="float64")
            if samples.ndim == 2:
                samples = samples.mean(axis=1)
            if native_rate != rate:
                samples = resample_poly(samples, rate, native_rate)
            samples = samples / max(np.abs(samples).max(), 1e-9) * 0.5
            pieces.append(samples)
            total += len(samples)
    signal = np.concatenate(pieces)[: int(seconds * rate)]
    sf.write(path, signal, rate, subtype="PCM_16")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", default="corpus,long,cli")
    parser.add_argument("--repeat", type=int, default=1, help="run every comparison this many times")
    parser.add_argument("--json", default=None, help="also write all measurements to this file")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="speechae-bench-") as tmp:
        for run in range(1, args.repeat + 1):
            for row in compare(args.cases.split(","), Path(tmp)):
                results.append({**row, "run": run})
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def compare(cases: list[str], tmp: Path) -> list[dict]:
    """One side-by-side measurement of each case."""
    results = []
    if "corpus" in cases:
        folder = corpus_folder(tmp / "corpus")
        for model in ("CAE", "RAE"):
            reference = disvoice(model, Path(str(folder) + "/"), tmp)
            for jobs in ("1", "2"):
                mine = ours(model, folder, "--jobs", jobs)
                case = f"corpus {model} static (--jobs {jobs})"
                results.append({"case": case, "disvoice": reference, "speechae": mine})
    if "long" in cases:
        path = long_file(tmp / "ten_minutes.wav")
        mine = ours("CAE", path)
        reference = disvoice("CAE", path, tmp)
        results.append({"case": "10-minute file CAE static", "disvoice": reference, "speechae": mine})
    if "cli" in cases:
        short = SHARED / "corpus" / "disvoice_001_a1_PCGITA.wav"
        command = [sys.executable, "-m", "speechae", "extract", str(short), "-q", "-o"]
        ours_s = min(whole_process([*command, str(tmp / f"o{k}.csv")]) for k in range(3))
        reference = [str(DISVOICE / "venv" / "bin" / "python"), str(TOOL / "disvoice_ref.py")]
        disvoice_s = min(whole_process([*reference, "time", "--model", "CAE", str(short)]) for _ in range(3))
        results.append(
            {
                "case": "2 s file, whole CLI process (best of 3)",
                "disvoice": {"extract_s": disvoice_s, "audio_s": 2.009},
                "speechae": {"extract_s": ours_s, "audio_s": 2.009},
            }
        )
    return results


def report(results: list[dict]) -> None:
    print(
        f"{'run':>3s} {'case':46s} {'audio s':>8s} {'DisVoice s':>11s} {'speechae s':>11s} {'ratio':>7s} "
        f"{'DV RSS MB':>10s} {'our RSS MB':>10s}"
    )
    for row in results:
        dv, me = row["disvoice"], row["speechae"]
        print(
            f"{row['run']:3d} {row['case']:46s} {me['audio_s']:8.1f} {dv['extract_s']:11.2f} "
            f"{me['extract_s']:11.2f} {dv['extract_s'] / me['extract_s']:6.1f}x "
            f"{dv.get('peak_rss_mb', float('nan')):10.0f} {me.get('peak_rss_mb', float('nan')):10.0f}"
        )


if __name__ == "__main__":
    main()
