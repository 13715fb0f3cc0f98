"""Time speechae the way ../shared/tools/disvoice/disvoice_ref.py times DisVoice.

Loads the model, then times the extraction of static features of one file (``process_file``) or of
a folder (the corpus runner, fresh store, ``--jobs N``), and prints one JSON line: audio seconds,
model load and extraction wall seconds, real-time factor and peak RSS of this process.

usage:
    python benchmarks/time_speechae.py --model CAE [--jobs 2] [--precision bf16] FILE_OR_FOLDER
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import soundfile as sf


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="CAE", choices=["CAE", "RAE"])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--level", default="static", choices=["static", "dynamic"])
    parser.add_argument("target")
    args = parser.parse_args()

    started = time.perf_counter()
    from speechae import Extractor
    from speechae.corpus import extract_corpus
    from speechae.inputs import collect_items

    extractor = Extractor(
        f"{args.model.lower()}-256", level=args.level, device=args.device, precision=args.precision
    )
    loaded = time.perf_counter()
    target = Path(args.target)
    if target.is_dir():
        items, _ = collect_items([target])
        audio_s = sum(sf.info(item.path).duration for item in items)
        with tempfile.TemporaryDirectory() as tmp:
            summary = extract_corpus(extractor, items, Path(tmp) / "out.parquet", jobs=args.jobs)
        shape = [len(summary.records), len(extractor.column_names)]
    else:
        audio_s = sf.info(target).duration
        shape = list(extractor.process_file(target).shape)
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "target": str(target),
                "model": args.model,
                "jobs": args.jobs,
                "precision": args.precision,
                "audio_s": round(audio_s, 3),
                "load_s": round(loaded - started, 3),
                "extract_s": round(done - loaded, 3),
                "rtf": round(audio_s / (done - loaded), 2),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "shape": shape,
            }
        )
    )


if __name__ == "__main__":
    main()
