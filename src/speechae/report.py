"""A self-contained HTML report of a corpus run, to check it before using the features.

The page shows what was processed and what was not: a summary, the failed files and why, the
files with dropped windows and where, a histogram of the per-file reconstruction error with the
worst-reconstructed files marked, figures of those files and the settings of the run. Images are
embedded as base64 PNG and the styles are inline, so the single file opens offline and can be
mailed or archived as it is.

Example:
    >>> import tempfile
    >>> import numpy as np, pandas as pd
    >>> from pathlib import Path
    >>> from speechae.corpus import file_record
    >>> from speechae.pipeline import compute_features
    >>> from speechae.models import ConvAutoencoder
    >>> signal = np.random.default_rng(0).standard_normal(32000)
    >>> features = compute_features(signal, 16000, ConvAutoencoder(8), keep_spectrograms=True)
    >>> records = pd.DataFrame([file_record("noise.wav", features),
    ...                         file_record("short.wav", reason="shorter than 0.5 s")])
    >>> path = Path(tempfile.mkdtemp()) / "report.html"
    >>> write_report(path, records, {"model": "random CAE"}, {"noise.wav": features})
    >>> 'id="summary"' in path.read_text()
    True
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from speechae import pages
from speechae.corpus import RECORD_COLUMNS, Extraction, RunSummary
from speechae.corpus.sidecars import sidecar_path
from speechae.errors import DroppedWindowsWarning, ParameterError
from speechae.features import FileFeatures
from speechae.frontend import DEFAULT_FRONTEND, FrontEndConfig
from speechae.inputs import Item
from speechae.plots import dropped_spans, recording_figure
from speechae.progress import clock
from speechae.quality import (
    FLAG_BANDWIDTH_SHARE,
    FLAG_CLIPPED_FRACTION,
    FLAG_SNR_DB,
    quality_flags,
    suggested_lowpass,
)
from speechae.recordings import with_segment

__all__ = ["write_report"]

STATUSES = ("ok", "failed")
WORST = 6
THUMBNAIL_DPI = 80
WORST_COLOUR = "#c0392b"


def _validated(records: pd.DataFrame, worst: int) -> pd.DataFrame:
    missing = [column for column in RECORD_COLUMNS if column not in records.columns]
    if missing:
        raise ParameterError(
            f"records lack the columns {missing}; expected {list(RECORD_COLUMNS)} (see file_record)"
        )
    repeated = sorted(set(records.loc[records["file"].duplicated(), "file"]))
    if repeated:
        raise ParameterError(f"records list the files {repeated} more than once; give one row per file")
    unknown = sorted(set(records["status"]) - set(STATUSES))
    if unknown:
        raise ParameterError(f"records have the status values {unknown}; expected 'ok' or 'failed'")
    if isinstance(worst, bool) or not isinstance(worst, (int, np.integer)) or worst < 0:
        raise ParameterError(f"worst must be a whole number >= 0, not {worst!r}")
    return records.reset_index(drop=True)


def _times(values: object) -> list[float]:
    if isinstance(values, (list, tuple, np.ndarray, pd.Series)):
        return [float(value) for value in values]
    return []


def _summary(records: pd.DataFrame) -> str:
    ok = records[records["status"] == "ok"]
    errors = ok["mean_error"].astype(float)
    durations = ok["duration"].astype(float)
    unknown = int(durations.isna().sum())
    duration = clock(float(durations.sum())) + (f" ({unknown} unknown)" if unknown else "")
    rows = [
        ("Files", str(len(records))),
        ("Processed", str(len(ok))),
        ("Failed", str(len(records) - len(ok))),
        ("Audio duration of processed files (h:mm:ss)", duration),
        ("Windows analysed (500 ms)", str(int(ok["windows"].sum()))),
        ("Windows dropped", str(int(records["dropped"].fillna(0).sum()))),
        ("Files with dropped windows", str(int((records["dropped"].fillna(0) > 0).sum()))),
        ("Median per-file reconstruction error", pages.number(float(errors.median()), ".4g")),
    ]
    table = pages.table(
        ("", "value"),
        ((("text", pages.escape(name)), ("number", pages.escape(value))) for name, value in rows),
    )
    return f'<section id="summary"><h2>Summary</h2>{table}</section>'


def _failures(records: pd.DataFrame) -> str:
    failed = records[records["status"] == "failed"]
    if failed.empty:
        content = '<p class="note">Every file was processed.</p>'
    else:
        content = '<p class="note">These files have no features in the output.</p>' + pages.table(
            ("file", "reason"),
            (
                (("text", pages.escape(row.file)), ("text", pages.escape(row.reason)))
                for row in failed.itertuples()
            ),
        )
    return f'<section id="failures"><h2>Failed files ({len(failed)})</h2>{content}</section>'


def _dropped(records: pd.DataFrame, config: FrontEndConfig) -> str:
    affected = records[records["dropped"].fillna(0) > 0]
    note = (
        '<p class="note">A window is left out of the features, as in DisVoice, when its Mel '
        "spectrogram has a value ≤ 0: it holds at least 512 samples that are exactly zero once the "
        "recording's mean is removed (digital silence in a recording whose mean is zero). The spans "
        "below are the times the dropped windows cover.</p>"
    )
    if affected.empty:
        content = '<p class="note">No window was dropped.</p>'
    else:
        rows = []
        for row in affected.itertuples():
            spans = ", ".join(
                f"{a:.2f}–{b:.2f} s" for a, b in dropped_spans(_times(row.dropped_at), config=config)
            )
            total = int(row.windows) + int(row.dropped)
            rows.append(
                (
                    ("text", pages.escape(row.file)),
                    ("number", pages.escape(f"{int(row.dropped)} of {total}")),
                    ("text", pages.escape(spans or pages.MISSING)),
                )
            )
        content = note + pages.table(("file", "dropped windows", "time spans"), rows)
    return f'<section id="dropped"><h2>Files with dropped windows ({len(affected)})</h2>{content}</section>'


def _histogram(errors: pd.Series, worst: pd.Series) -> Figure:
    figure = Figure(figsize=(9, 3.4), layout="constrained")
    axes = figure.add_subplot()
    values = errors.to_numpy(dtype=np.float64)
    spread = values.max() - values.min()
    low, high = (
        (values.min(), values.max()) if spread > 0 else (values.min() * 0.9, values.max() * 1.1 + 1e-12)
    )
    bins = min(len(np.histogram_bin_edges(values, bins="auto", range=(low, high))) - 1, 40)
    axes.hist(values, bins=max(bins, 5), range=(low, high), color="#5b7fb5", edgecolor="white", label="files")
    axes.axvline(float(np.median(values)), color="#333333", linestyle="--", linewidth=1, label="median")
    for rank, value in enumerate(worst, start=1):
        axes.axvline(
            value, color=WORST_COLOUR, linewidth=1.2, label="worst (numbered as below)" if rank == 1 else None
        )
        axes.annotate(
            f"#{rank}",
            (value, 1.0 - 0.09 * ((rank - 1) % 4)),
            xycoords=("data", "axes fraction"),
            xytext=(3, -10),
            textcoords="offset points",
            color=WORST_COLOUR,
            fontsize="small",
        )
    axes.set_xlabel("mean reconstruction error of the file (MSE, scaled log-Mel)")
    axes.set_ylabel("number of files")
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.legend(loc="lower left", bbox_to_anchor=(0, 1.01), ncols=3, fontsize="small", frameon=False)
    axes.grid(axis="y", alpha=0.3)
    return figure


#: The quality measures drawn in the report, with their axis labels.
QUALITY_FIGURES = {
    "bandwidth_hz": "bandwidth (Hz)",
    "snr_db": "estimated SNR (dB)",
    "clipped_fraction": "share of clipped samples",
    "speech_fraction": "share of speech frames",
}


def _quality_section(quality: pd.DataFrame | None) -> str:
    """Distributions of the recordings' quality measures, the files flagged and why."""
    if quality is None or quality.empty:
        return (
            '<section id="quality"><h2>Recording quality</h2><p class="note">No quality measures '
            "(OUT.quality.csv) beside this run's output.</p></section>"
        )
    figure = Figure(figsize=(10, 2.6), layout="constrained")
    panels = figure.subplots(1, len(QUALITY_FIGURES))
    for axes, (measure, label) in zip(panels, QUALITY_FIGURES.items(), strict=True):
        values = quality[measure].to_numpy(dtype=np.float64)
        values = values[np.isfinite(values)]
        if len(values):
            axes.hist(values, bins=min(30, max(5, len(values) // 3)), color="#5b7fb5", edgecolor="white")
        axes.set_xlabel(label)
        axes.yaxis.get_major_locator().set_params(integer=True)
    flags = quality_flags(quality)
    flagged = flags[flags != ""]
    note = (
        '<p class="note">Measured on each recording as stored (see speechae.quality). Flagged: a bandwidth '
        f"under {FLAG_BANDWIDTH_SHARE:.0%} of the corpus median, clipping on more than "
        f"{FLAG_CLIPPED_FRACTION:.1%} of the samples, an estimated SNR below {FLAG_SNR_DB:.0f} dB. "
        "Recordings that differ in these may be told apart by their channel rather than their speech.</p>"
    )
    cutoff = suggested_lowpass(quality)
    if cutoff is not None:
        note += (
            f'<p class="note">The bandwidths differ: extracting with <code>--lowpass {cutoff:.0f}</code> '
            "compares every recording on a common channel.</p>"
        )
    rows = (
        (("text", pages.escape(file)), ("text", pages.escape(reason))) for file, reason in flagged.items()
    )
    listed = (
        pages.table(("file", "why"), rows) if len(flagged) else '<p class="note">No recording is flagged.</p>'
    )
    content = note + pages.png(figure, 100, "distributions of the quality measures") + listed
    return f'<section id="quality"><h2>Recording quality ({len(flagged)} flagged)</h2>{content}</section>'


def _error_section(records: pd.DataFrame, worst: pd.Series) -> str:
    errors = records.loc[records["status"] == "ok", "mean_error"].astype(float).dropna()
    note = (
        '<p class="note">How closely the autoencoder reproduces each recording\'s log-Mel '
        "spectrogram: the squared error averaged over windows and Mel bands, on the model's 0–1 "
        "scale. A file far to the right of the others is reconstructed poorly; listen to it and "
        "check it for noise, clipping, music, other speakers or a wrong channel before using its "
        "features.</p>"
    )
    if errors.empty:
        content = '<p class="note">No file was processed, so there is no error to show.</p>'
    else:
        content = note + pages.png(
            _histogram(errors, worst), 100, "histogram of per-file reconstruction errors"
        )
    return f'<section id="errors-histogram"><h2>Reconstruction error per file</h2>{content}</section>'


def _worst_section(
    records: pd.DataFrame, worst: pd.Series, thumbnails: dict[str, FileFeatures], config: FrontEndConfig
) -> str:
    if worst.empty:
        return '<section id="worst"><h2>Worst-reconstructed files</h2><p class="note">None.</p></section>'
    median = float(records.loc[records["status"] == "ok", "mean_error"].astype(float).median())
    by_file = records.set_index("file")
    rows = [
        (
            ("number", str(rank)),
            ("text", pages.escape(file)),
            ("number", pages.number(error, ".4g")),
            ("number", pages.number(error / median if median > 0 else math.nan, ".2f")),
            ("number", pages.number(float(by_file.at[file, "duration"]), ".2f")),
            (
                "number",
                pages.escape(f"{int(by_file.at[file, 'windows'])} / {int(by_file.at[file, 'dropped'])}"),
            ),
        )
        for rank, (file, error) in enumerate(worst.items(), start=1)
    ]
    table = pages.table(
        ("#", "file", "mean error", "× median", "duration (s)", "windows kept / dropped"), rows
    )
    ranks = {file: rank for rank, file in enumerate(worst.index, start=1)}
    order = sorted(thumbnails, key=lambda file: ranks.get(file, len(ranks) + 1))
    figures = []
    for file in order:
        try:
            figure = recording_figure(thumbnails[file], title=file, config=config)
        except ParameterError as error:
            raise ParameterError(f"thumbnail of {file}: {error}") from None
        caption = f"#{ranks[file]} " if file in ranks else ""
        figures.append(
            f"<figure><figcaption>{pages.escape(caption + file)}</figcaption>"
            f"{pages.png(figure, THUMBNAIL_DPI, f'spectrograms and errors of {file}')}</figure>"
        )
    note = (
        '<p class="note">For each file: the input log-Mel spectrogram and its reconstruction, the '
        "error of each 500 ms window over time and the error of each Mel band.</p>"
    )
    grid = note + f'<div class="grid">{"".join(figures)}</div>' if figures else ""
    return f'<section id="worst"><h2>Worst-reconstructed files ({len(worst)})</h2>{table}{grid}</section>'


def _settings(settings: dict[str, str]) -> str:
    rows = ((("text", pages.escape(name)), ("text", pages.escape(value))) for name, value in settings.items())
    content = pages.table(("setting", "value"), rows)
    return f'<section id="settings"><h2>Model and settings</h2>{content}</section>'


def worst_files(records: pd.DataFrame, worst: int = WORST) -> pd.Series:
    """The ``worst`` processed files of highest mean reconstruction error, highest first.

    Ties keep the records' order.

    Returns:
        ``mean_error`` indexed by ``file``.

    Example:
        >>> records = pd.DataFrame({"file": ["a", "b", "c"], "status": ["ok", "ok", "failed"],
        ...                         "mean_error": [0.1, 0.3, float("nan")]})
        >>> worst_files(records, 1).to_dict()
        {'b': 0.3}
    """
    ok = records[records["status"] == "ok"]
    errors = pd.Series(ok["mean_error"].astype(float).to_numpy(), index=ok["file"]).dropna()
    return errors.sort_values(ascending=False, kind="stable").head(worst)


def report_run(
    path: str | os.PathLike[str],
    extraction: Extraction,
    items: Sequence[Item],
    summary: RunSummary,
    *,
    worst: int = WORST,
    command: str = "",
) -> None:
    """Write the report of a corpus run (:func:`speechae.corpus.extract_corpus`) to ``path``.

    The figures of the ``worst`` files are computed again through the run's pipeline, with
    their spectrograms; the settings table names the model, the level, the precision, the
    device and ``command`` (the command line that made the run, if any).

    Example:
        >>> summary = extract_corpus(extractor, items, "out.parquet")  # doctest: +SKIP
        >>> report_run("report.html", extractor, items, summary)  # doctest: +SKIP
    """
    from speechae.version import __version__

    pipeline = extraction.pipeline
    by_label = {item.label: item for item in items}
    thumbnails = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedWindowsWarning)  # the run has reported them
        for file in worst_files(summary.records, worst).index:
            if file in by_label:
                item = by_label[file]
                recording = pipeline.read(item.path, start=item.start, end=item.end)
                thumbnails[file] = pipeline.features(recording, keep_spectrograms=True)
    model = pipeline.model
    settings = {
        "model": model.name,
        "architecture": model.architecture,
        "bottleneck": str(model.bottleneck),
        "weights sha256": model.weights_sha256,
        "level": extraction.level,
        "precision": pipeline.precision,
        "device": str(pipeline.device),
        "speechae": __version__,
        **({"command": command} if command else {}),
        "output": str(summary.output),
    }
    quality = None
    if summary.output is not None and sidecar_path(summary.output, "quality").is_file():
        table = pd.read_csv(sidecar_path(summary.output, "quality"), dtype={"file": str})
        spans = [
            with_segment(f, s, e) if pd.notna(s) else f
            for f, s, e in zip(table["file"], table["start"], table["end"], strict=True)
        ]
        quality = table.drop(columns=["file", "start", "end"]).set_axis(spans)
    write_report(
        path,
        summary.records,
        settings,
        thumbnails,
        worst=worst,
        config=pipeline.frontend.config,
        quality=quality,
    )


def write_report(
    path: str | os.PathLike[str],
    records: pd.DataFrame,
    settings: dict[str, str],
    thumbnails: dict[str, FileFeatures],
    *,
    worst: int = WORST,
    config: FrontEndConfig = DEFAULT_FRONTEND,
    quality: pd.DataFrame | None = None,
) -> None:
    """Write one self-contained HTML page that summarises a corpus run.

    Sections (with their ``id``): ``summary``, ``failures``, ``dropped``, ``errors-histogram``,
    ``worst``, ``quality`` and ``settings``. The page is written under a temporary name and renamed when
    complete.

    Args:
        path: the HTML file to write; missing folders are created.
        records: one row per input file with the columns :data:`RECORD_COLUMNS` (build rows with
            :func:`file_record`): ``file``, ``status`` (``"ok"`` or ``"failed"``), ``reason``,
            ``duration`` (s), ``windows`` and ``dropped`` (counts), ``dropped_at`` (start times in
            s) and ``mean_error`` (mean over windows and bands; NaN for failed files).
        settings: shown as a table in the given order (model, weights checksum, version, ...).
        thumbnails: features with spectrograms (``keep_spectrograms=True``) of the files to show
            as figures, keyed by their ``file`` in ``records``; usually the ``worst`` files with the
            highest ``mean_error``. Those figures come first, in rank order.
        worst: how many of the files with the highest error to list and mark in the histogram.
        config: the front-end settings the features were computed with.
        quality: the recordings' quality measures (``OUT.quality.csv``, indexed by file), for
            the ``quality`` section.

    Raises:
        ParameterError: a column is missing, a status is unknown, ``worst`` is negative or a
            thumbnail has no spectrograms.

    Example:
        >>> write_report("report.html", records, {"model": "cae-256"}, {})  # doctest: +SKIP
    """
    records = _validated(records, worst)
    ranked = worst_files(records, worst)
    processed = int((records["status"] == "ok").sum())
    heading = f"{len(records)} file{'s' if len(records) != 1 else ''}: {processed} processed, "
    heading += f"{len(records) - processed} failed"
    sections = (
        _summary(records),
        _failures(records),
        _dropped(records, config),
        _error_section(records, ranked),
        _worst_section(records, ranked, thumbnails, config),
        _quality_section(quality),
        _settings(settings),
    )
    pages.write_page(path, "speechae report", heading, sections)
