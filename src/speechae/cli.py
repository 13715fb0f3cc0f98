"""Command-line interface: parses arguments and calls the library, nothing more.

Example:
    $ speechae extract recording.wav -o features.csv
    $ speechae extract corpus/ --level dynamic --model rae-256 -o windows.parquet
    $ speechae models list
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_PARTIAL = 3

DEFAULT_MODEL = "cae-256"
DEFAULT_LEVEL = "static"
DEFAULT_DEVICE = "cpu"


def _parser() -> argparse.ArgumentParser:
    from speechae import __version__

    parser = argparse.ArgumentParser(
        prog="speechae",
        description="Autoencoder features of speech recordings, equal to DisVoice's RepLearning.",
    )
    parser.add_argument("--version", action="version", version=f"speechae {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    extract = commands.add_parser(
        "extract",
        help="extract features from audio files and folders",
        description="Extract autoencoder features from audio files and folders into one table. "
        "A file that cannot be processed is reported and skipped; the exit code is 0 when every "
        f"file succeeded, {EXIT_PARTIAL} when some failed and {EXIT_ERROR} when none succeeded.",
    )
    extract.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="audio files (any format libsndfile reads: WAV, FLAC, OGG, MP3, ...) or folders",
    )
    extract.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="output file; the format follows the extension: .csv, .parquet, .npy (with "
        "OUT.index.csv beside it) or .pt",
    )
    extract.add_argument(
        "--level",
        choices=("static", "dynamic"),
        default=DEFAULT_LEVEL,
        help="static: one row of 1536 functionals (mean, std, skewness, kurtosis) per file; "
        "dynamic: one row of 384 features per 500 ms window, with start and end times "
        f"(default: {DEFAULT_LEVEL})",
    )
    extract.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="a registered model (cae-256: convolutional, rae-256: recurrent; see "
        "'speechae models list') or the path of a .pt/.safetensors file "
        f"(default: {DEFAULT_MODEL})",
    )
    extract.add_argument(
        "--device",
        default=DEFAULT_DEVICE,
        help=f"where the network runs: cpu or cuda (default: {DEFAULT_DEVICE})",
    )
    extract.add_argument("--recursive", action="store_true", help="also search sub-folders of folder inputs")
    extract.set_defaults(handler=_extract)

    models = commands.add_parser(
        "models",
        help="list, fetch, import and describe models",
        description="Manage the pretrained models and the local model cache.",
    )
    actions = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="list registered and imported models").set_defaults(handler=_models_list)
    fetch = actions.add_parser("fetch", help="download pretrained models into the cache")
    fetch.add_argument("names", nargs="*", metavar="NAME", help="models to fetch (default: all)")
    fetch.set_defaults(handler=_models_fetch)
    importer = actions.add_parser(
        "import", help="import weights from a DisVoice wheel, a .pt or a .safetensors file"
    )
    importer.add_argument("path", metavar="PATH")
    importer.add_argument("--name", help="name to import under (default: registry name or stem)")
    importer.set_defaults(handler=_models_import)
    info = actions.add_parser("info", help="show a model's metadata")
    info.add_argument("model", metavar="NAME_OR_PATH")
    info.set_defaults(handler=_models_info)
    return parser


def _inputs(paths: Sequence[str], recursive: bool) -> tuple[list[str], list[tuple[str, str]]]:
    from pathlib import Path

    from speechae.audio import find_audio_files
    from speechae.errors import SpeechaeError

    files, failures = [], []
    for path in paths:
        if Path(path).is_dir():
            try:
                files.extend(str(p) for p in find_audio_files(path, recursive=recursive))
            except SpeechaeError as error:
                failures.append((path, str(error)))
        else:
            files.append(path)
    return files, failures


def _extract(args: argparse.Namespace) -> int:
    from speechae.errors import AudioError, NoAudioFilesError
    from speechae.extractor import Extractor
    from speechae.writers import format_of, write_table

    format_of(args.output)
    files, failures = _inputs(args.inputs, args.recursive)
    if not files:
        raise NoAudioFilesError("; ".join(reason for _, reason in failures) or "no inputs")
    extractor = Extractor(args.model, level=args.level, device=args.device)
    tables = []
    for file in files:
        try:
            tables.append(extractor.process_file(file))
        except AudioError as error:
            failures.append((file, str(error)))
            print(f"speechae: skipped: {error}", file=sys.stderr)
    if tables:
        import pandas as pd

        table = pd.concat(tables)
        write_table(table, args.output, level=args.level)
        print(f"speechae: wrote {len(tables)} file(s), {len(table)} row(s) to {args.output}")
    if failures:
        print(f"speechae: {len(failures)} input(s) failed:", file=sys.stderr)
        for _, reason in failures:
            print(f"  {reason}", file=sys.stderr)
    if not tables:
        return EXIT_ERROR
    return EXIT_PARTIAL if failures else EXIT_OK


def _models_list(args: argparse.Namespace) -> int:
    from speechae.weights import PRETRAINED, cache_dir

    folder = cache_dir() / "models"
    print(f"{'name':<12} {'arch':<5} {'bottleneck':>10}  {'cached':<6}  description")
    for spec in PRETRAINED.values():
        cached = "yes" if (folder / f"{spec.name}.safetensors").is_file() else "no"
        print(
            f"{spec.name:<12} {spec.architecture:<5} {spec.bottleneck:>10}  {cached:<6}  {spec.description}"
        )
    imported = sorted(p.stem for p in folder.glob("*.safetensors") if p.stem not in PRETRAINED)
    for name in imported:
        print(f"{name:<12} {'':<5} {'':>10}  {'yes':<6}  imported (speechae models info {name})")
    print(f"cache: {folder}")
    return EXIT_OK


def _models_fetch(args: argparse.Namespace) -> int:
    from speechae.weights import PRETRAINED, fetch

    for name in args.names or list(PRETRAINED):
        print(f"{name}: {fetch(name)}")
    return EXIT_OK


def _models_import(args: argparse.Namespace) -> int:
    from speechae.weights import import_weights

    for path in import_weights(args.path, name=args.name):
        print(f"imported {path.stem}: {path}")
    return EXIT_OK


def _models_info(args: argparse.Namespace) -> int:
    from speechae.weights import model_info

    for key, value in model_info(args.model).items():
        print(f"{key}: {value}")
    return EXIT_OK


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"speechae: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Example:
        >>> main(["models", "list"])  # doctest: +SKIP
        0
    """
    args = _parser().parse_args(argv)
    from speechae.errors import SpeechaeError

    previous, warnings.showwarning = warnings.showwarning, _show_warning
    try:
        return args.handler(args)
    except SpeechaeError as error:
        print(f"speechae: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("speechae: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = previous
