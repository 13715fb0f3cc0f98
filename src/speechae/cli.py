"""Command-line interface: parses arguments and calls the library, nothing more.

Example:
    $ speechae extract recording.wav -o features.csv
    $ speechae extract corpus/ --level dynamic --model rae-256 -o windows.parquet
    $ speechae models list
"""

from __future__ import annotations

import argparse
import gc
import inspect
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class _Parser(argparse.ArgumentParser):
    """argparse with the exit code of every other wrong command (argparse's own is 2)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def defaults(function: Callable) -> dict[str, Any]:
    """The keyword defaults of a library function: the CLI's defaults are the API's.

    Example:
        >>> defaults(lambda path, *, jobs=1: None)
        {'jobs': 1}
    """
    parameters = inspect.signature(function).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def _size(text: str) -> int:
    """``--memory-budget``: bytes, or a number with K, M or G (powers of 1024)."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    unit = units.get(text[-1:].upper(), 1)
    return round(float(text[:-1] if unit > 1 else text) * unit)


def _jobs(text: str) -> int | str:
    """``--jobs``: a number, or ``auto``; the library checks the number."""
    return text if text == "auto" else int(text)


def _parser() -> argparse.ArgumentParser:
    from speechae.corpus import AUTO, extract_corpus
    from speechae.engine import DEFAULT_MEMORY_BUDGET, PRECISIONS
    from speechae.evaluation import AGGREGATES, MODELS, TASKS, evaluate
    from speechae.extractor import Extractor
    from speechae.models import ARCHITECTURES
    from speechae.pipeline import LEVELS
    from speechae.resampling import RESAMPLING
    from speechae.training import train
    from speechae.version import __version__
    from speechae.writers import FORMATS

    api, run, fit, judged = defaults(Extractor), defaults(extract_corpus), defaults(train), defaults(evaluate)
    figure = defaults(Extractor.file_features)

    parser = _Parser(
        prog="speechae",
        description="Autoencoder features of speech recordings, equal to DisVoice's RepLearning.",
    )
    parser.add_argument("--version", action="version", version=f"speechae {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    extract = commands.add_parser(
        "extract",
        help="extract features from audio files, folders, lists and manifests",
        description="Extract autoencoder features into one table. Finished work is kept in "
        "OUTPUT.store.sqlite, so an interrupted run resumes where it stopped when the same command is "
        "run again; a changed setting or model never reuses stale results. A file that cannot be "
        "processed is listed with its reason in OUTPUT.errors.csv and in the summary; each recording's "
        "quality measures (bandwidth, clipping, SNR, ...) go to OUTPUT.quality.csv. The exit code is "
        f"0 when every file succeeded, {EXIT_PARTIAL} when some failed and {EXIT_ERROR} when none "
        "succeeded or the command itself is wrong.",
    )
    extract.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="audio files (any format libsndfile reads: WAV, FLAC, OGG, MP3, ...), folders, list files "
        "(.txt/.lst: one path per line) or manifests (.csv/.tsv/.parquet with a 'file' column and "
        "optional 'start'/'end' columns in seconds to process segments)",
    )
    extract.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="output file; the format follows the extension: .csv, .parquet, .npy (with "
        "NAME.index.csv and NAME.columns.txt beside it), .npz, .pt, or .ark/.scp (Kaldi, one matrix "
        "per file)",
    )
    extract.add_argument(
        "--format",
        choices=FORMATS,
        default=run["fmt"],
        help="output format when the extension does not say it",
    )
    extract.add_argument(
        "--level",
        choices=LEVELS,
        default=api["level"],
        help="static: one row of functionals (mean, std, skewness, kurtosis) per file, 1536 with "
        "the pretrained models; dynamic: one row of features per 500 ms window (384), with start "
        "and end times "
        f"(default: {api['level']})",
    )
    extract.add_argument(
        "--model",
        default=api["model"],
        help="a registered model (cae-256: convolutional, rae-256: recurrent; see "
        "'speechae models list') or the path of a .pt/.safetensors file "
        f"(default: {api['model']})",
    )
    extract.add_argument(
        "--device",
        default=api["device"],
        help=f"where the network runs: cpu or cuda (default: {api['device']})",
    )
    extract.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=api["precision"],
        help="fp32: DisVoice's numbers (default); bf16: faster on CPUs with bfloat16 instructions "
        "and on GPUs, but approximate (deviations in benchmarks/RESULTS.md); never mix the two",
    )
    extract.add_argument(
        "--memory-budget",
        type=_size,
        default=api["memory_budget"],
        metavar="SIZE",
        help="memory a recording may keep at once (its conditioned signal, spectrograms and the "
        "network's activations), e.g. 512M or 2G; the rest goes to temporary files in TMPDIR, with "
        f"the same numbers (default: {DEFAULT_MEMORY_BUDGET // 2**20}M on a CPU, an eighth of a "
        "GPU's memory)",
    )
    extract.add_argument(
        "--resampling",
        choices=RESAMPLING,
        default=api["resampling"],
        help="how recordings at other rates reach 16 kHz: 'exact' resamples with one FFT of the "
        "whole signal as DisVoice does (up to 2^25 samples; a length with a large prime factor may "
        "need more memory than the budget), 'segmented' in overlapping segments within the budget "
        "at any length, with numbers that differ from DisVoice's in near-empty Mel bands "
        "(default: %(default)s)",
    )
    extract.add_argument(
        "--lowpass",
        type=float,
        default=api["lowpass"],
        metavar="HZ",
        help="low-pass every recording at HZ before extraction (8th-order Butterworth), so that "
        "recordings of different bandwidths are compared on a common channel; the report suggests a "
        "value when the bandwidths differ (default: none, as DisVoice)",
    )
    extract.add_argument(
        "-j",
        "--jobs",
        type=_jobs,
        default=AUTO,
        metavar="N|auto",
        help="worker processes that decode, resample and compute spectrograms while the network "
        "runs; 1: everything in one process; auto (default): chosen from the cores this process "
        "may use, the recordings and the device, never slower than 1 (the summary says how many)",
    )
    extract.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="torch threads of this process (default: OMP_NUM_THREADS when set, else the cores its "
        "CPU affinity and quota allow); give fewer when other runs share the machine",
    )
    extract.add_argument(
        "--dask",
        default=None,
        metavar="CLUSTER",
        help="run on Dask instead of local processes: local:N starts N single-threaded workers on "
        "this machine, tcp://HOST:PORT connects to a running scheduler (e.g. from dask-jobqueue); "
        "workers compute whole batches and must see the same audio paths (needs speechae[dask])",
    )
    extract.add_argument("--recursive", action="store_true", help="also search sub-folders of folder inputs")
    extract.add_argument(
        "--extensions",
        default=None,
        help="comma-separated extensions of the audio files to take from folders, e.g. wav,flac "
        "(default: every format libsndfile reads)",
    )
    extract.add_argument(
        "--root",
        default=None,
        help="write file paths relative to this folder (also the base of relative paths in lists "
        "and manifests; default: paths as given, lists relative to their own folder)",
    )
    extract.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="process only shard I of N (0 <= I < N), e.g. $SLURM_ARRAY_TASK_ID/8, into "
        "OUT with '.shard-I-of-N' before its extension; join the shards with 'speechae merge'",
    )
    extract.add_argument(
        "--batch-windows",
        type=int,
        default=run["batch_windows"],
        help="500 ms windows per network batch; files are grouped until a batch is full "
        "(default: %(default)s)",
    )
    extract.add_argument("--strict", action="store_true", help="stop at the first file that fails")
    extract.add_argument(
        "--wait",
        action="store_true",
        default=run["wait"],
        help="when another run is writing the same output, wait for it to finish instead of stopping",
    )
    extract.add_argument(
        "--report",
        default=None,
        metavar="HTML",
        help="also write one self-contained HTML page summarising the run: failures, dropped "
        "windows, the distribution of reconstruction errors and figures of the worst files",
    )
    extract.add_argument(
        "-q", "--quiet", action="store_true", help="no progress display (the summary is still printed)"
    )
    extract.set_defaults(handler=_extract)

    plot = commands.add_parser(
        "plot",
        help="draw what the autoencoder heard in one recording",
        description="Draw the input log-Mel spectrogram and its reconstruction over time, the "
        "reconstruction error of each window and of each Mel band, and where windows were dropped.",
    )
    plot.add_argument("file", metavar="FILE", help="an audio file")
    plot.add_argument(
        "-o", "--output", required=True, metavar="FIGURE", help="the figure: .png, .svg or .pdf"
    )
    plot.add_argument("--model", default=api["model"], help=f"model name or path (default: {api['model']})")
    plot.add_argument("--device", default=api["device"], help=f"cpu or cuda (default: {api['device']})")
    plot.add_argument(
        "--start",
        type=float,
        default=figure["start"],
        metavar="SECONDS",
        help="draw from here (default: the beginning)",
    )
    plot.add_argument(
        "--end",
        type=float,
        default=figure["end"],
        metavar="SECONDS",
        help="draw up to here (default: the end)",
    )
    plot.add_argument("--title", default=None, help="figure title (default: the file name)")
    plot.set_defaults(handler=_plot)

    train = commands.add_parser(
        "train",
        help="train a CAE or RAE on your own recordings",
        description="Train an autoencoder on audio files with the extraction front-end, split into "
        "training and validation by file (or by speaker with --manifest), with the original "
        "recipe as defaults (MSE on min-max scaled log-Mel, Adam, batch 16, up to 50 epochs, "
        "keeping the best validation loss). A checkpoint is written after every epoch; --resume "
        "continues an interrupted run exactly. The model is a .safetensors file that extract, "
        "plot and 'models import' accept; the loss curve goes beside it as .loss.csv and .loss.png.",
    )
    train.add_argument("inputs", nargs="*", metavar="AUDIO", help="audio files or folders")
    train.add_argument(
        "-o", "--output", required=True, metavar="MODEL", help="the .safetensors file to write"
    )
    train.add_argument(
        "--manifest",
        default=None,
        help="CSV with 'file' and 'speaker' columns: train on its files and keep each speaker's "
        "files on one side of the split",
    )
    train.add_argument(
        "--arch",
        choices=tuple(ARCHITECTURES),
        default=fit["architecture"],
        help="architecture (default: cae)",
    )
    train.add_argument(
        "--bottleneck", type=int, default=fit["bottleneck"], help="bottleneck width (default: 256)"
    )
    train.add_argument("--epochs", type=int, default=fit["epochs"], help="most epochs (default: %(default)s)")
    train.add_argument(
        "--lr", type=float, default=fit["learning_rate"], help="learning rate (default: 1e-4 CAE, 1e-3 RAE)"
    )
    train.add_argument(
        "--batch-size", type=int, default=fit["batch_size"], help="windows per batch (default: %(default)s)"
    )
    train.add_argument(
        "--seed",
        type=int,
        default=fit["seed"],
        help="seed of split, weights and order (default: %(default)s)",
    )
    train.add_argument("--device", default=fit["device"], help=f"cpu or cuda (default: {fit['device']})")
    train.add_argument(
        "--validation-fraction",
        type=float,
        default=fit["validation_fraction"],
        help="share of files held out (default: %(default)s)",
    )
    train.add_argument(
        "--patience",
        type=int,
        default=fit["patience"],
        help="stop after this many epochs without improvement (default: %(default)s)",
    )
    train.add_argument(
        "--init", default=fit["init"], help="fine-tune this model (e.g. cae-256) instead of starting afresh"
    )
    train.add_argument(
        "--fit-scaling",
        action="store_true",
        help="take the min-max scaling constants from the training data (stored in the model)",
    )
    train.add_argument(
        "--mixed-precision",
        action="store_true",
        help="train under autocast (float16 on CUDA, where it pays; bfloat16 on the CPU is slower)",
    )
    train.add_argument("--resume", action="store_true", help="continue the interrupted run of this output")
    train.add_argument(
        "--cache-spectrograms",
        default=None,
        metavar="DIR",
        help="keep each file's spectrograms in DIR for later runs",
    )
    train.set_defaults(handler=_train)

    evaluation = commands.add_parser(
        "evaluate",
        help="cross-validate a classifier (or regression) on extracted features, by speaker",
        description="Tell classes apart (or predict a score) from a static table that 'speechae "
        "extract' wrote, with stratified cross-validation whose folds never split a group (speaker): "
        "an RBF SVM on standardised features with C and gamma searched inside each training fold (or "
        "a logistic regression; an SVR for a numeric target). Metrics come with 95 %% intervals by "
        "bootstrap over groups. For each Mel band, the effect of the target on its mean "
        "reconstruction error is measured on one value per group, with Benjamini-Hochberg q-values. "
        "Writes RESULTS.json, RESULTS.json.bands.csv and RESULTS.json.predictions.csv.",
    )
    evaluation.add_argument(
        "features", metavar="FEATURES", help="a static table written by 'speechae extract'"
    )
    evaluation.add_argument(
        "--labels",
        required=True,
        metavar="LABELS",
        help="CSV/TSV/Parquet with a 'file' column (named as in FEATURES, or as the extraction's inputs "
        "were, see --root), the target and group columns; rows with a group and no file label all of "
        "that group's files",
    )
    evaluation.add_argument("--target", required=True, metavar="COL", help="the labels column to predict")
    evaluation.add_argument(
        "--group", required=True, metavar="COL", help="the labels column of groups kept together (speaker)"
    )
    evaluation.add_argument("-o", "--output", required=True, metavar="RESULTS", help="the results (.json)")
    evaluation.add_argument("--report", default=None, metavar="HTML", help="also write an HTML report")
    evaluation.add_argument(
        "--anonymise", action="store_true", help="the report names files and groups by stable codes"
    )
    evaluation.add_argument(
        "--root", default=judged["root"], help="the --root the features were extracted with"
    )
    evaluation.add_argument(
        "--task", choices=TASKS, default=judged["task"], help="what to do with the target (default: auto)"
    )
    evaluation.add_argument(
        "--positive", default=judged["positive"], help="the positive class (default: the less frequent one)"
    )
    evaluation.add_argument(
        "--folds", type=int, default=judged["folds"], help="cross-validation folds (default: %(default)s)"
    )
    evaluation.add_argument(
        "--repeats",
        type=int,
        default=judged["repeats"],
        help="repeats with other folds (default: %(default)s)",
    )
    evaluation.add_argument(
        "--seed", type=int, default=judged["seed"], help="seed of folds, bootstrap, permutations (default: 0)"
    )
    evaluation.add_argument(
        "--split",
        default=judged["split"],
        metavar="COL",
        help="a labels column of predefined test folds (e.g. the corpus) instead of --folds",
    )
    evaluation.add_argument(
        "--model", choices=MODELS, default=judged["model"], help="classifier (default: %(default)s)"
    )
    evaluation.add_argument(
        "--permutations",
        type=int,
        default=judged["permutations"],
        metavar="N",
        help="label permutations respecting the groups, for a p-value of the headline metric",
    )
    evaluation.add_argument(
        "--aggregate",
        choices=AGGREGATES,
        default=judged["aggregate"],
        help="'group': metrics per group (mean decision score of its recordings) too",
    )
    evaluation.add_argument(
        "--covariates",
        default="",
        metavar="COLS",
        help="labels columns (e.g. age,sex) compared between the classes with the recordings' channel "
        "measures (FEATURES.quality.csv) and used with them alone in the same cross-validation",
    )
    evaluation.set_defaults(handler=_evaluate)

    merge = commands.add_parser(
        "merge",
        help="join shard outputs into one table",
        description="Join the outputs of 'speechae extract --shard I/N' runs into one table, "
        "identical to the output of the same run done in one piece, and their lists of failed "
        "files and dropped windows (OUT.errors.csv, OUT.dropped.csv).",
    )
    merge.add_argument("shards", nargs="+", metavar="SHARD", help="shard outputs (same format)")
    merge.add_argument("-o", "--output", required=True, metavar="OUT", help="the joined table")
    merge.add_argument("--format", choices=FORMATS, default=None, help="output format (default: extension)")
    merge.set_defaults(handler=_merge)

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
    importer.add_argument("--replace", action="store_true", help="replace an imported model of the same name")
    importer.set_defaults(handler=_models_import)
    info = actions.add_parser("info", help="show a model's metadata")
    info.add_argument("model", metavar="NAME_OR_PATH")
    info.set_defaults(handler=_models_info)
    return parser


def _extract(args: argparse.Namespace) -> int:
    from speechae.audio import AUDIO_EXTENSIONS
    from speechae.corpus import (
        check_apart,
        extract_corpus,
        interrupted_text,
        shard_output,
        use_threads,
        written_paths,
    )
    from speechae.errors import InputError
    from speechae.extractor import Extractor
    from speechae.inputs import collect_items, parse_shard
    from speechae.progress import Progress
    from speechae.writers import check_output_path

    check_output_path(args.output, args.format)
    shard = parse_shard(args.shard) if args.shard else (0, 1)
    output = shard_output(args.output, shard) if args.shard else Path(args.output)
    extensions = AUDIO_EXTENSIONS
    if args.extensions:
        extensions = tuple(e if e.startswith(".") else f".{e}" for e in args.extensions.split(",") if e)
    items, input_failures = collect_items(
        args.inputs, recursive=args.recursive, extensions=extensions, root=args.root
    )
    if args.strict and input_failures:
        raise InputError(input_failures[0][1])
    use_threads(args.threads)
    extractor = Extractor(
        args.model,
        level=args.level,
        device=args.device,
        precision=args.precision,
        memory_budget=args.memory_budget,
        resampling=args.resampling,
        lowpass=args.lowpass,
    )
    options = {
        "fmt": args.format,
        "jobs": args.jobs,
        "shard": shard,
        "strict": args.strict,
        "progress": Progress(quiet=args.quiet),
        "batch_windows": args.batch_windows,
        "failed_inputs": input_failures,
        "inputs": args.inputs,
        "wait": args.wait,
    }
    if args.report:  # never an input, nor a file the run writes
        written = written_paths(output, args.format)
        check_apart([args.report], [*(item.path for item in items), *args.inputs, *written])
    try:
        if args.dask:
            from speechae.cluster import dask_executor

            with dask_executor(args.dask) as executor:
                summary = extract_corpus(
                    extractor, items, output, executor=executor, network_in_workers=True, **options
                )
        else:
            summary = extract_corpus(extractor, items, output, **options)
    except KeyboardInterrupt:
        print(f"speechae: {interrupted_text(output)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if summary.failures:
        print(summary.failures_text(), file=sys.stderr)
    print(summary.text())
    if args.report:
        from speechae.report import report_run

        report_run(args.report, extractor, items, summary, command=" ".join(["speechae", *sys.argv[1:]]))
        print(f"report: {args.report}")
    succeeded = int((summary.records["status"] == "ok").sum())
    if summary.stopped_early or (succeeded == 0 and summary.failures):
        return EXIT_ERROR if succeeded == 0 else EXIT_PARTIAL
    return EXIT_PARTIAL if summary.failures else EXIT_OK


def _plot(args: argparse.Namespace) -> int:
    from speechae.atomic import check_target
    from speechae.extractor import Extractor
    from speechae.plots import check_figure_path, recording_figure, save_figure

    check_figure_path(args.output)
    check_target(args.output)
    extractor = Extractor(args.model, device=args.device)
    features = extractor.file_features(args.file, start=args.start, end=args.end, keep_spectrograms=True)
    figure = recording_figure(
        features, title=args.title or Path(args.file).name, config=extractor.frontend.config
    )
    save_figure(figure, args.output)
    print(f"speechae: wrote {args.output}")
    return EXIT_OK


def _train(args: argparse.Namespace) -> int:
    from speechae.errors import NoAudioFilesError
    from speechae.inputs import collect_items
    from speechae.progress import TrainingProgress
    from speechae.training import read_speaker_manifest, train

    speakers = read_speaker_manifest(args.manifest) if args.manifest else None
    items, failures = collect_items(args.inputs)
    for _, reason in failures:
        print(f"speechae: skipped input: {reason}", file=sys.stderr)
    files = [item.path for item in items] + list(speakers or {})
    if not files:
        raise NoAudioFilesError("no audio files to train on (give AUDIO paths or --manifest)")
    try:
        result = train(
            files,
            output=args.output,
            architecture=args.arch,
            bottleneck=args.bottleneck,
            epochs=args.epochs,
            learning_rate=args.lr,
            batch_size=args.batch_size,
            seed=args.seed,
            device=args.device,
            validation_fraction=args.validation_fraction,
            speakers=speakers,
            init=args.init,
            fit_scaling=args.fit_scaling,
            patience=args.patience,
            mixed_precision=args.mixed_precision,
            resume=args.resume,
            spectrogram_cache=args.cache_spectrograms,
            on_progress=TrainingProgress(epochs=args.epochs),
        )
    except KeyboardInterrupt:
        print("speechae: interrupted; continue with the same command and --resume", file=sys.stderr)
        return 130
    print(
        f"speechae: wrote {result.output} (best epoch {result.best_epoch} of {result.epochs_run}, "
        f"validation loss {result.best_validation_loss:.6g}); loss curve {result.loss_png}"
    )
    return EXIT_PARTIAL if result.skipped else EXIT_OK


def _evaluate(args: argparse.Namespace) -> int:
    from speechae.evaluation import check_evaluation_paths, evaluate, evaluation_text, write_evaluation
    from speechae.evaluation.report import write_evaluation_report

    inputs = (args.features, args.labels)
    check_evaluation_paths(args.output, inputs, report=args.report)
    evaluation = evaluate(
        args.features,
        args.labels,
        target=args.target,
        group=args.group,
        root=args.root,
        task=args.task,
        positive=args.positive,
        folds=args.folds,
        repeats=args.repeats,
        seed=args.seed,
        split=args.split,
        model=args.model,
        permutations=args.permutations,
        aggregate=args.aggregate,
        covariates=[name.strip() for name in args.covariates.split(",") if name.strip()],
    )
    written = write_evaluation(evaluation, args.output, inputs=inputs)
    if args.report:
        write_evaluation_report(evaluation, args.report, anonymise=args.anonymise)
    print(evaluation_text(evaluation, [*written.values(), *([args.report] if args.report else [])]))
    return EXIT_OK


def _merge(args: argparse.Namespace) -> int:
    from speechae.corpus import merge_shards

    counts = merge_shards(args.shards, args.output, fmt=args.format)
    print(f"speechae: merged {len(args.shards)} shard(s), {counts.pop('rows')} row(s) into {args.output}")
    for kind, count in counts.items():
        if count:
            print(f"speechae: {count} {kind} row(s) of the shards into {args.output}.{kind}.csv")
    return EXIT_OK


def _models_list(args: argparse.Namespace) -> int:
    from speechae.weights import list_models, models_dir

    print(f"{'name':<12} {'arch':<5} {'bottleneck':>10}  {'cached':<6}  description")
    for model in list_models():
        cached = "yes" if model.cached else "no"
        columns = f"{model.name:<12} {model.architecture:<5} {model.bottleneck:>10}  {cached:<6}"
        print(f"{columns}  {model.description}")
    print(f"cache: {models_dir()}")
    return EXIT_OK


def _models_fetch(args: argparse.Namespace) -> int:
    from speechae.weights import PRETRAINED, fetch

    for name in args.names or list(PRETRAINED):
        print(f"{name}: {fetch(name)}")
    return EXIT_OK


def _models_import(args: argparse.Namespace) -> int:
    from speechae.weights import import_weights

    for path in import_weights(args.path, name=args.name, replace=args.replace):
        print(f"imported {path.stem}: {path}")
    return EXIT_OK


def _models_info(args: argparse.Namespace) -> int:
    from speechae.weights import model_info

    for key, value in model_info(args.model).items():
        print(f"{key}: {value}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Example:
        >>> main(["models", "list"])  # doctest: +SKIP
        0
    """
    args = _parser().parse_args(argv)
    from speechae.errors import SpeechaeError, print_warning

    previous, warnings.showwarning = warnings.showwarning, print_warning
    terminate = signal.signal(signal.SIGTERM, _stop) if _main_thread() else None
    try:
        return args.handler(args)
    except SpeechaeError as error:
        print(f"speechae: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("speechae: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        warnings.showwarning = previous
        if terminate is not None:
            signal.signal(signal.SIGTERM, terminate)


def _stop(number: int, frame: object) -> NoReturn:
    """SIGTERM (a job scheduler's stop) ends a run as Ctrl-C does: its workers and files closed."""
    raise KeyboardInterrupt


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def entry_point() -> NoReturn:
    """The ``speechae`` command (and ``python -m speechae``): :func:`main`, then a quick exit.

    Every output is written and closed when :func:`main` returns. Freezing the garbage
    collector's objects then spares the interpreter's last collection over torch's and pandas's
    hundreds of thousands of objects: 0.3 s of the 1.8 s a short file takes.
    """
    # waiting OpenMP threads sleep instead of spinning, so runs that share cores do not stall
    # each other (read when torch loads its OpenMP runtime, so before any import of torch)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # the reader went away (``speechae models list | head -1``)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        code = EXIT_OK
    gc.freeze()
    sys.exit(code)
