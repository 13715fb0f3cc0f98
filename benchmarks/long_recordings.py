"""Memory and accuracy of hour-long recordings at other rates than 16 kHz.

usage:
    python benchmarks/long_recordings.py make DIR
        write the 60-minute test files of RESULTS.md ("Memory: a 60-minute file") into DIR
        (about 4.7 GB); then time each with
        /usr/bin/time -v speechae extract DIR/FILE -o FILE.csv -q
    python benchmarks/long_recordings.py corpus DIR
        write six 5-minute 44.1 kHz recordings of prime lengths into DIR (160 MB), a corpus whose
        whole-signal resampling plans would pile up in scipy.fft's cache; then
        /usr/bin/time -v speechae extract DIR -o corpus.csv -q
    python benchmarks/long_recordings.py condition FILE
        read and condition FILE as the extractor does (spooled, and conditioned into a temporary
        file, when long) and print the seconds taken and the process's peak RSS
    python benchmarks/long_recordings.py spill FILE
        features of FILE as the extractor computes them (spectrograms and activations beyond the
        memory budget in temporary files), then of the same signal conditioned in memory without
        temporary files (recomputed per layer); prints both times and the largest difference
    python benchmarks/long_recordings.py segments FILE START END
        resample FILE's START..END seconds (short enough for one FFT) in segments of several sizes
        and print how far each is from the whole-signal FFT, as a fraction of the peak
"""

from __future__ import annotations

import argparse
import functools
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

from speechae.audio import SampleSpool, read_audio
from speechae.frontend import DEFAULT_FRONTEND, condition_signal
from speechae.recordings import recording_samples
from speechae.resampling import resample_in_segments

HOUR = 3600


def make(folder: Path) -> None:
    """The hour at 8 kHz, 16 kHz (int16 and float32), 22.05 kHz (Vorbis, MP3), 44.1 kHz, and
    stereo at 48 and 96 kHz."""
    from scipy.signal import resample_poly

    sys.path.insert(0, str(Path(__file__).parent))
    from compare_disvoice import long_file

    folder.mkdir(parents=True, exist_ok=True)
    base = long_file(folder / "sixty16.wav", HOUR, 16000)
    long_file(folder / "sixty44.wav", HOUR, 44100)
    long_file(folder / "sixty8.wav", HOUR, 8000)
    mono22, _ = sf.read(long_file(folder / "sixty22.wav", HOUR, 22050), dtype="float32")
    (folder / "sixty22.wav").unlink()
    for name, extra in (("sixty22.ogg", {"format": "OGG", "subtype": "VORBIS"}), ("sixty22.mp3", {})):
        # one call with the whole hour leaves an empty Ogg file
        with sf.SoundFile(folder / name, "w", 22050, 1, **extra) as encoded:
            for first in range(0, len(mono22), 2**18):
                encoded.write(mono22[first : first + 2**18])
    del mono22
    mono, _ = sf.read(base, dtype="float32")
    sf.write(folder / "sixty16f.wav", mono, 16000, subtype="FLOAT")
    for factor, cut, rate, outputs in (
        (3, 12_345, 48000, {"sixty48st.wav": "FLOAT", "sixty48st.flac": "PCM_16", "sixty48st.mp3": None}),
        (6, 54_321, 96000, {"sixty96st.wav": "PCM_24"}),
    ):
        upsampled = resample_poly(mono.astype(np.float64), factor, 1)[:-cut]  # an awkward length
        stereo = np.stack([upsampled, 0.8 * np.roll(upsampled, 7)], axis=1).astype(np.float32)
        del upsampled
        for name, subtype in outputs.items():
            extra = {"format": "MP3"} if name.endswith(".mp3") else {"subtype": subtype}
            sf.write(folder / name, stereo, rate, **extra)
        del stereo


def corpus(folder: Path) -> None:
    """Six 5-minute stretches of the 44.1 kHz hour, each of a prime number of samples."""
    from sympy import prevprime

    sys.path.insert(0, str(Path(__file__).parent))
    from compare_disvoice import long_file

    folder.mkdir(parents=True, exist_ok=True)
    hour, rate = sf.read(long_file(folder / "hour.wav", 1800, 44100), dtype="int16")
    (folder / "hour.wav").unlink()
    for number in range(6):
        start = number * 300 * rate
        length = prevprime(300 * rate - number * 1000)
        sf.write(folder / f"part{number}.wav", hour[start : start + length], rate, subtype="PCM_16")


def condition(path: Path) -> None:
    started = time.perf_counter()
    spool = functools.partial(SampleSpool.create, name=path)
    with recording_samples(path, None, None, DEFAULT_FRONTEND) as (signal, rate):
        conditioned = condition_signal(signal, rate, name=str(path), spool=spool)
    seconds = time.perf_counter() - started
    if hasattr(conditioned, "close"):
        conditioned.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"{path.name}: {len(conditioned)} samples conditioned in {seconds:.1f} s, peak RSS {peak_mb} MB")


def spill(path: Path) -> None:
    from speechae import Extractor
    from speechae.pipeline import recording_features
    from speechae.recordings import Recording

    extractor = Extractor("cae-256")
    started = time.perf_counter()
    spilled = extractor.file_features(path)
    spilled_s = time.perf_counter() - started
    samples, rate = read_audio(path)
    conditioned = condition_signal(samples, rate)
    del samples
    started = time.perf_counter()
    network, frontend = extractor.model.network, extractor.frontend
    recomputed = recording_features(Recording(conditioned, spilled.duration), network, frontend)
    recomputed_s = time.perf_counter() - started
    print(f"temporary files {spilled_s:.1f} s, recomputed {recomputed_s:.1f} s")
    for part in ("bottleneck", "error", "static"):
        difference = np.abs(getattr(spilled, part) - getattr(recomputed, part))
        print(f"{part}: largest difference {np.nanmax(difference):.3g}")


def segments(path: Path, start: float, end: float) -> None:
    samples, rate = read_audio(path, native=True, start=start, end=end)
    target = int(len(samples) * DEFAULT_FRONTEND.sampling_rate / rate)
    whole = condition_signal(samples, rate)
    for label, outputs in (("2^20 outputs", 2**20), ("2^21 outputs", 2**21), ("default", None)):
        resampled = resample_in_segments(samples, target, outputs_per_segment=outputs)
        resampled = resampled - resampled.mean()
        resampled /= max(resampled.max(), -resampled.min())
        difference = np.abs(resampled - whole)
        rms = np.sqrt(np.mean(difference**2))
        print(f"{label}: max |segmented - whole| {difference.max():.3g}, rms {rms:.3g}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("make").add_argument("folder", type=Path)
    commands.add_parser("corpus").add_argument("folder", type=Path)
    commands.add_parser("condition").add_argument("path", type=Path)
    commands.add_parser("spill").add_argument("path", type=Path)
    segmented = commands.add_parser("segments")
    segmented.add_argument("path", type=Path)
    segmented.add_argument("start", type=float)
    segmented.add_argument("end", type=float)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.command == "make":
        make(args.folder)
    elif args.command == "corpus":
        corpus(args.folder)
    elif args.command == "condition":
        condition(args.path)
    elif args.command == "spill":
        spill(args.path)
    else:
        segments(args.path, args.start, args.end)


if __name__ == "__main__":
    main()
