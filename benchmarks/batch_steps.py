"""What steps that never mix files cost: a corpus run with them and with the former mixed steps.

The network takes each file's windows in steps of their own (``engine._ranges_per_file``) so a
file's features have the same bits whichever files share its batch. This times
``extract_corpus`` on FOLDER alternately with those steps and with steps cut across the whole
batch, as before, in one process, and prints each time and the best of each.

usage:
    python benchmarks/batch_steps.py [--model cae-256] [--repeat 4] [--cut SECONDS] FOLDER

``--cut 3`` first cuts every recording of FOLDER into 3-second files (in a temporary folder),
the corpus of short recordings where the steps matter most.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import soundfile as sf

from speechae import Extractor, engine
from speechae.corpus import extract_corpus
from speechae.inputs import collect_items


def cut(folder: Path, seconds: float, into: Path) -> Path:
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() != ".wav":
            continue
        samples, rate = sf.read(path, dtype="float32")
        step = int(seconds * rate)
        for number, first in enumerate(range(0, len(samples) - step + 1, step)):
            sf.write(into / f"{path.stem}_{number:03d}.wav", samples[first : first + step], rate)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="cae-256")
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--cut", type=float, default=None)
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = cut(args.folder, args.cut, Path(scratch)) if args.cut else args.folder
        items, _ = collect_items([folder])
        extractor = Extractor(args.model)
        per_file = engine._ranges_per_file
        variants = {
            "steps per file": per_file,
            "mixed steps": lambda file_index, size: engine._ranges(len(file_index), size),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeat):
            for name, steps in variants.items():
                engine._ranges_per_file = steps
                started = time.perf_counter()
                extract_corpus(extractor, items, Path(scratch) / "out" / "features.parquet")
                times[name].append(time.perf_counter() - started)
                shutil.rmtree(Path(scratch) / "out")  # the store too: every run computes
        engine._ranges_per_file = per_file
    print(f"{args.model}, {len(items)} files")
    for name, measured in times.items():
        print(f"{name:15s} {' '.join(f'{t:.2f}' for t in measured)}  best {min(measured):.2f} s")


if __name__ == "__main__":
    main()
