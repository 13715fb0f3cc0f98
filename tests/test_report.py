from __future__ import annotations

import base64
import io
import math
import shutil
import subprocess
from html.parser import HTMLParser

import pandas as pd
import pytest
from matplotlib.image import imread

from conftest import CORPUS, needs_shared
from speechae.audio import read_audio
from speechae.corpus import RECORD_COLUMNS, file_record
from speechae.errors import AudioError, ParameterError
from speechae.pipeline import compute_features
from speechae.report import write_report
from test_pipeline import integer_noise_with_silence

SECTIONS = {"summary", "failures", "dropped", "errors-histogram", "worst", "settings"}
PROCESSED = ("cmu_arctic_us_aew_a0001.wav", "disvoice_001_a1_PCGITA.wav", "disvoice_098_u1_PCGITA.wav")
TOO_SHORT = "fsdd_5_yweweler_0.wav"
ODD_NAME = "<b>&.wav"
SETTINGS = {
    "model": "cae-256",
    "level": "static",
    "weights sha256": "0" * 64,
    "command line": "speechae extract corpus/ --report '<script>alert(1)</script>.html'",
}
CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (Debian: apt-get install -y chromium); it renders the report "
    "headlessly to check that the page displays offline",
)


class Page(HTMLParser):
    """Element ids, tags, URLs and the text of every table cell, per section."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.tags: list[str] = []
        self.urls: list[tuple[str, str]] = []
        self.cells: dict[str, list[list[str]]] = {}
        self.text: list[str] = []
        self.captions: list[str] = []
        self._section = ""
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append(tag)
        if "id" in attributes:
            self.ids.append(attributes["id"])
        if tag == "section":
            self._section = attributes.get("id", "")
        self.urls += [(tag, value) for name, value in attrs if name in ("src", "href")]
        if tag == "tr":
            self.cells.setdefault(self._section, []).append([])
        if tag in ("td", "th", "figcaption"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "figcaption":
            self.captions.append("".join(self._cell))
        elif tag in ("td", "th"):
            self.cells[self._section][-1].append("".join(self._cell))
        self._cell = None if tag in ("td", "th", "figcaption") else self._cell

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def table(self, section: str) -> dict[str, list[str]]:
        """Rows of the tables of a section keyed by their first cell."""
        return {row[0]: row[1:] for row in self.cells.get(section, []) if row}


def spectrogram_features(extractor, signal, rate):
    network, frontend = extractor.model.network, extractor.frontend
    return compute_features(signal, rate, network, frontend=frontend, keep_spectrograms=True)


@pytest.fixture(scope="module")
def run(cae):
    """Records of three corpus files, one too short and one with dropped windows, and features."""
    features, rows = {}, []
    for name in PROCESSED:
        features[name] = spectrogram_features(cae, *read_audio(CORPUS / name))
        rows.append(file_record(name, features[name]))
    with pytest.raises(AudioError) as failure:
        spectrogram_features(cae, *read_audio(CORPUS / TOO_SHORT))
    rows.append(file_record(TOO_SHORT, reason=str(failure.value), duration=0.3))
    signal = integer_noise_with_silence(48000, slice(20000, 21000))
    features[ODD_NAME] = spectrogram_features(cae, signal, 16000)
    rows.append(file_record(ODD_NAME, features[ODD_NAME]))
    return pd.DataFrame(rows), features


@pytest.fixture(scope="module")
def report(run, tmp_path_factory):
    records, features = run
    worst = records.sort_values("mean_error", ascending=False)["file"].head(2).tolist()
    path = tmp_path_factory.mktemp("report") / "corpus report.html"
    write_report(path, records, SETTINGS, {file: features[file] for file in worst}, worst=2)
    return path, worst


@pytest.fixture(scope="module")
def page(report):
    return Page(report[0].read_text(encoding="utf-8"))


@pytest.mark.weights
@needs_shared
def test_report_is_one_self_contained_page(report, page):
    assert SECTIONS <= set(page.ids)
    assert {"script", "link", "iframe", "object"}.isdisjoint(page.tags)
    assert not [url for _, url in page.urls if not url.startswith("data:image/png;base64,")]
    images = [imread(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) for _, url in page.urls]
    assert len(images) == 1 + 2
    assert all(image.shape[1] >= 500 and image.std() > 0.05 for image in images)
    assert [path.name for path in report[0].parent.iterdir()] == ["corpus report.html"]


@pytest.mark.weights
@needs_shared
def test_text_is_escaped(report, page):
    text = report[0].read_text(encoding="utf-8")
    assert ODD_NAME not in text and "&lt;b&gt;&amp;.wav" in text
    assert "<script>" not in text and "b" not in page.tags
    assert ODD_NAME in page.table("dropped")
    assert page.table("settings")["command line"] == [SETTINGS["command line"]]


@pytest.mark.weights
@needs_shared
def test_summary_counts_files_windows_and_time(run, page):
    records, _ = run
    summary = {name: values[0] for name, values in page.table("summary").items()}
    processed = records[records["status"] == "ok"]
    seconds = round(processed["duration"].sum())
    assert seconds < 60
    assert summary["Files"] == "5" and summary["Processed"] == "4" and summary["Failed"] == "1"
    assert summary["Audio duration of processed files (h:mm:ss)"] == f"0:00:{seconds:02d}"
    assert summary["Windows analysed (500 ms)"] == str(processed["windows"].sum())
    assert summary["Windows dropped"] == "2" and summary["Files with dropped windows"] == "1"
    assert float(summary["Median per-file reconstruction error"]) == pytest.approx(
        processed["mean_error"].median(), rel=1e-3
    )


@pytest.mark.weights
@needs_shared
def test_failures_dropped_windows_worst_files_and_settings_are_listed(report, page):
    failures = page.table("failures")
    assert failures[TOO_SHORT] == ["the audio lasts 0.303125 s, shorter than one 0.5 s window"]
    assert page.table("dropped")[ODD_NAME] == ["2 of 11", "1.00–1.75 s"]
    _, worst = report
    ranked = [row[1] for row in page.cells["worst"][1:]]
    assert ranked == worst
    assert page.captions == [f"#{rank} {file}" for rank, file in enumerate(worst, start=1)]
    assert list(page.table("settings"))[1:] == list(SETTINGS)


@pytest.mark.weights
@needs_shared
@needs_chromium
@pytest.mark.slow
def test_chromium_displays_the_report_offline(report, tmp_path):
    arguments = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,2000",
    ]
    url = report[0].as_uri()
    shot = tmp_path / "shot.png"
    subprocess.run([*arguments, f"--screenshot={shot}", url], capture_output=True, timeout=120, check=True)
    image = imread(shot)[..., :3]
    assert image.shape == (2000, 1280, 3)
    assert image.std() > 0.05
    assert (image < 0.5).any(axis=-1).mean() > 0.01
    dom = subprocess.run(
        [*arguments, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
    )
    rendered = Page(dom.stdout)
    assert SECTIONS <= set(rendered.ids)
    assert rendered.table("summary")["Files"] == ["5"]
    assert rendered.tags.count("img") == 3


def test_a_report_without_processed_files(tmp_path):
    records = pd.DataFrame([file_record("a.wav", reason="the file holds no audio samples")])
    path = tmp_path / "sub" / "report.html"
    write_report(path, records, {}, {})
    page = Page(path.read_text(encoding="utf-8"))
    assert SECTIONS <= set(page.ids) and "img" not in page.tags
    assert page.table("summary")["Audio duration of processed files (h:mm:ss)"] == ["0:00:00"]
    assert "No file was processed, so there is no error to show." in page.text


def test_file_record_of_processed_and_failed_files(small_cae, speech_like):
    features = compute_features(speech_like, 16000, small_cae)
    processed = file_record("a.wav", features)
    assert list(processed) == list(RECORD_COLUMNS)
    assert processed["status"] == "ok" and processed["reason"] == "" and processed["windows"] == 11
    assert processed["mean_error"] == pytest.approx(float(features.error.mean()))
    failed = file_record("b.wav", reason="too short", duration=0.2)
    assert (failed["status"], failed["windows"], failed["dropped_at"]) == ("failed", 0, [])
    assert math.isnan(failed["mean_error"]) and failed["duration"] == 0.2
    with pytest.raises(ParameterError, match=r"c\.wav: give either features .* not neither"):
        file_record("c.wav")
    with pytest.raises(ParameterError, match="not both"):
        file_record("c.wav", features, reason="why")


def valid_records() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {**file_record("a.wav", reason="silent"), "status": "ok", "reason": "", "mean_error": 0.001},
            file_record("b.wav", reason="silent"),
        ]
    )


@pytest.mark.parametrize(
    ("change", "arguments", "message"),
    [
        (
            lambda r: r.drop(columns=["mean_error", "dropped_at"]),
            {},
            r"lack the columns \['dropped_at', 'mean_error'\]",
        ),
        (
            lambda r: r.assign(status=["ok", "error"]),
            {},
            r"status values \['error'\]; expected 'ok' or 'failed'",
        ),
        (lambda r: r.assign(file=["a.wav", "a.wav"]), {}, r"files \['a.wav'\] more than once"),
        (lambda r: r, {"worst": -1}, "worst must be a whole number >= 0, not -1"),
        (lambda r: r, {"worst": 2.5}, "not 2.5"),
    ],
)
def test_invalid_records_are_refused(tmp_path, change, arguments, message):
    path = tmp_path / "report.html"
    with pytest.raises(ParameterError, match=message):
        write_report(path, change(valid_records()), {}, {}, **arguments)
    assert not path.exists()


def test_thumbnails_need_spectrograms(tmp_path, small_cae, speech_like):
    features = compute_features(speech_like, 16000, small_cae)
    records = pd.DataFrame([file_record("a.wav", features)])
    with pytest.raises(ParameterError, match=r"thumbnail of a\.wav: the features hold no spectrograms"):
        write_report(tmp_path / "report.html", records, {}, {"a.wav": features})
    assert list(tmp_path.iterdir()) == []


def test_identical_errors_still_give_a_histogram(tmp_path, small_cae, speech_like):
    features = compute_features(speech_like, 16000, small_cae)
    records = pd.DataFrame([file_record(f"{k}.wav", features) for k in range(3)])
    write_report(tmp_path / "report.html", records, {"model": "small"}, {}, worst=1)
    page = Page((tmp_path / "report.html").read_text(encoding="utf-8"))
    assert page.tags.count("img") == 1
    assert [row[1] for row in page.cells["worst"][1:]] == ["0.wav"]
    median = page.table("summary")["Median per-file reconstruction error"][0]
    assert float(median) == pytest.approx(features.error.mean(), rel=1e-3)
