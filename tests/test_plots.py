from __future__ import annotations

import warnings

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from conftest import CORPUS, EXAMPLE, needs_shared
from speechae.audio import read_audio
from speechae.errors import ParameterError
from speechae.frontend import DEFAULT_FRONTEND, FrontEndConfig, mel_band_edges
from speechae.pipeline import compute_features
from speechae.plots import (
    DROPPED_COLOUR,
    dropped_spans,
    error_profile_figure,
    mark_dropped_windows,
    recording_figure,
    save_figure,
    set_mel_frequency_axis,
    spectrogram_axes,
)
from test_pipeline import integer_noise_with_silence

MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "svg": b"<?xml", "pdf": b"%PDF-"}


def with_spectrograms(network, signal, rate, frontend=None):
    return compute_features(signal, rate, network, frontend=frontend, keep_spectrograms=True)


def pretrained_features(extractor, signal, rate):
    return with_spectrograms(extractor.model.network, signal, rate, extractor.frontend)


def rendered(figure: Figure, path) -> np.ndarray:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        save_figure(figure, path)
    assert [str(warning.message) for warning in caught] == []
    return imread(path)


def axes_by_label(figure: Figure) -> dict:
    return {axes.get_label(): axes for axes in figure.axes}


def dropped_pixels(image: np.ndarray) -> int:
    """Pixels in the hatch colour of dropped windows (no colour map or line uses it)."""
    hatch = np.array([int(DROPPED_COLOUR[k : k + 2], 16) / 255 for k in (1, 3, 5)])
    return int((np.abs(image[..., :3] - hatch).max(axis=-1) < 0.08).sum())


@pytest.fixture(scope="module")
def dropped_features(cae):
    return pretrained_features(cae, integer_noise_with_silence(48000, slice(20000, 21000)), 16000)


@pytest.mark.weights
@pytest.mark.parametrize(
    ("model", "recording"),
    [
        ("cae", EXAMPLE),
        ("rae", EXAMPLE),
        pytest.param("cae", CORPUS / "disvoice_001_a1_PCGITA.wav", marks=needs_shared, id="cae-vowel"),
        pytest.param("cae", CORPUS / "librosa_198-209-0000.ogg", marks=needs_shared, id="cae-ogg-22k"),
        pytest.param("cae", CORPUS / "fsdd_0_jackson_0.wav", marks=needs_shared, id="cae-one-window"),
    ],
)
def test_recording_figure_renders_labelled_panels(model, recording, request, tmp_path):
    extractor = request.getfixturevalue(model)
    features = pretrained_features(extractor, *read_audio(recording))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure = recording_figure(features, title=recording.name, config=extractor.frontend.config)
    assert [str(warning.message) for warning in caught] == []
    image = rendered(figure, tmp_path / "figure.png")
    width, height = figure.get_size_inches() * figure.dpi
    assert image.shape[:2] == (round(height), round(width))
    assert image.std() > 0.1
    assert (image[..., :3] < 0.9).any(axis=-1).mean() > 0.3
    assert dropped_pixels(image) == 0
    panels = axes_by_label(figure)
    for name in ("input", "reconstruction"):
        assert "s" in panels[name].get_xlabel() and "Hz" in panels[name].get_ylabel()
        assert panels[name].get_xlim() == (0, features.duration)
    assert panels["window error"].get_xlabel() == "Time (s)"
    assert "Hz" in panels["band error"].get_xlabel()
    assert "log-Mel" in panels["colour bar"].get_ylabel()
    assert recording.name in figure.get_suptitle()
    assert f"{len(features.starts)} window" in figure.get_suptitle()


@pytest.mark.weights
def test_dropped_windows_are_hatched_and_named(dropped_features, tmp_path):
    figure = recording_figure(dropped_features, title="silence inside")
    panels = axes_by_label(figure)
    for name in ("input", "reconstruction", "window error"):
        spans = [patch for patch in panels[name].patches if patch.get_label().startswith("dropped")]
        assert [(span.get_x(), span.get_width()) for span in spans] == [(1.0, 0.75)]
    legend = [text.get_text() for text in panels["input"].get_legend().get_texts()]
    assert legend == ["dropped: 2 windows (Mel value ≤ 0, digital silence)"]
    assert "9 windows kept, 2 dropped" in figure.get_suptitle()
    assert panels["input"].get_title(loc="right") == "grey: not in any kept window"
    assert dropped_pixels(rendered(figure, tmp_path / "dropped.png")) > 2000


@pytest.mark.weights
def test_no_kept_window_covers_the_gap_of_dropped_windows(dropped_features):
    mesh = spectrogram_axes(Figure().add_subplot(), dropped_features)
    edges = mesh.get_coordinates()[0, :, 0]
    blank = np.ma.getmaskarray(mesh.get_array()).all(axis=0)
    assert blank.sum() == 1
    column = int(np.flatnonzero(blank)[0])
    np.testing.assert_allclose(edges[column : column + 2], [1.252, 1.498])


@pytest.mark.weights
def test_a_segment_is_drawn_on_the_time_axis_of_its_recording(cae):
    features = cae.file_features(EXAMPLE, start=1.0, end=3.5, keep_spectrograms=True)
    assert features.offset == 1.0 and features.duration == pytest.approx(2.5)
    figure = recording_figure(features, title="a segment")
    panels = axes_by_label(figure)
    for name in ("input", "reconstruction", "window error"):
        assert panels[name].get_xlim() == pytest.approx((1.0, 3.5))
    assert panels["input"].get_title(loc="right") == ""  # the tiles cover the segment
    assert "1.00–3.50 s · 9 windows kept" in figure.get_suptitle()


def test_every_window_is_shown_around_its_centre(small_cae, speech_like):
    features = with_spectrograms(small_cae, speech_like, 16000)
    axes = Figure().add_subplot()
    mesh = spectrogram_axes(axes, features, kind="reconstruction")
    assert (
        axes.get_title(loc="left") == "Reconstruction by the autoencoder"
        and axes.get_title(loc="right") == ""
    )
    image = mesh.get_array()
    assert image.shape == (128, 94 + 9 * 62 + 94) and not np.ma.getmaskarray(image).any()
    centres = mesh.get_coordinates()[0, :, 0]
    centres = (centres[1:] + centres[:-1]) / 2
    low, high = DEFAULT_FRONTEND.min_scaler, DEFAULT_FRONTEND.max_scaler
    for window, frame in ((0, 0), (0, 93), (5, 32), (5, 62), (5, 93), (10, 125)):
        column = int(np.argmin(np.abs(centres - (0.25 * window + 0.004 * frame))))
        expected = features.reconstruction[window, :, frame] * (high - low) + low
        np.testing.assert_allclose(image[:, column], expected, rtol=1e-6)
    both = np.stack((features.spectrogram, features.reconstruction)) * (high - low) + low
    assert mesh.norm.vmin == pytest.approx(both.min()) and mesh.norm.vmax == pytest.approx(both.max())


def test_mel_axis_spaces_bands_evenly_and_labels_hertz():
    axes = Figure().add_subplot()
    set_mel_frequency_axis(axes, axis="y")
    pixels = axes.transData.transform(np.column_stack((np.zeros(128), mel_band_edges()[1:-1])))[:, 1]
    np.testing.assert_allclose(np.diff(pixels), np.diff(pixels).mean(), rtol=1e-6)
    assert axes.get_yticks().tolist() == [0, 250, 500, 1000, 2000, 4000, 8000]
    assert axes.get_ylim() == (0.0, 8000.0) and axes.get_ylabel() == "Frequency (Hz)"
    with pytest.raises(ParameterError, match="axis must be 'x' or 'y', not 'z'"):
        set_mel_frequency_axis(axes, axis="z")


@pytest.mark.parametrize(
    ("starts", "spans"),
    [
        ([], []),
        ([1.0, 1.25], [(1.0, 1.75)]),
        ([2.0, 0.0], [(0.0, 0.5), (2.0, 2.5)]),
        ([0.5, 1.0, 1.25], [(0.5, 1.75)]),
    ],
)
def test_dropped_spans_merge_overlapping_windows(starts, spans):
    assert dropped_spans(np.array(starts)) == spans
    rectangles = mark_dropped_windows(Figure().add_subplot(), np.array(starts))
    assert [(r.get_x(), r.get_x() + r.get_width()) for r in rectangles] == spans
    assert [r.get_label().startswith("dropped") for r in rectangles] == [k == 0 for k in range(len(spans))]


def test_error_profile_is_mean_and_spread_per_band(small_rae, speech_like):
    features = compute_features(speech_like, 16000, small_rae)
    figure = error_profile_figure(features, title="harmonic")
    (axes,) = figure.axes
    (line,) = axes.get_lines()
    np.testing.assert_allclose(line.get_xdata(), mel_band_edges()[1:-1])
    np.testing.assert_allclose(line.get_ydata(), features.error.mean(axis=0))
    band = axes.collections[0].get_paths()[0].vertices[:, 1]
    assert band.max() == pytest.approx((features.error.mean(axis=0) + features.error.std(axis=0)).max())
    assert "Hz" in axes.get_xlabel() and figure.get_suptitle().startswith("harmonic\n3.00 s")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"spectrogram": None}, r"no spectrograms; compute them with .*keep_spectrograms=True"),
        ({"starts": np.empty(0), "dropped": np.arange(11) * 0.25}, "all 11 were dropped"),
        ({"spectrogram": np.zeros((11, 64, 126), np.float32)}, r"shapes \(11, 64, 126\) and"),
    ],
)
def test_recording_figure_refuses_features_it_cannot_draw(small_cae, speech_like, change, message):
    features = with_spectrograms(small_cae, speech_like, 16000)
    for name, value in change.items():
        setattr(features, name, value)
    with pytest.raises(ParameterError, match=message):
        recording_figure(features)


def test_unknown_spectrogram_kind(small_cae, speech_like):
    features = with_spectrograms(small_cae, speech_like, 16000)
    with pytest.raises(
        ParameterError, match=r"kind must be one of \('input', 'reconstruction'\), not 'error'"
    ):
        spectrogram_axes(Figure().add_subplot(), features, kind="error")


def test_other_front_end_settings_change_the_scale(small_cae, speech_like):
    config = FrontEndConfig(min_scaler=-40.0, max_scaler=10.0)
    features = with_spectrograms(small_cae, speech_like, 16000)
    mesh = spectrogram_axes(Figure().add_subplot(), features, config=config)
    assert mesh.norm.vmin == pytest.approx(
        min(features.spectrogram.min(), features.reconstruction.min()) * 50 - 40
    )


@pytest.fixture(scope="module")
def small_figure() -> Figure:
    figure = Figure(figsize=(2, 1.5))
    figure.add_subplot(label="line").plot([0, 1], [1, 0])
    return figure


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf", ".PNG"])
def test_save_figure_writes_the_format_of_the_extension(small_figure, tmp_path, suffix):
    path = tmp_path / "new folder" / f"figure{suffix}"
    save_figure(small_figure, path)
    save_figure(small_figure, path)
    assert path.read_bytes().startswith(MAGIC[suffix[1:].lower()])
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert small_figure.axes[0].get_label() == "line"


@pytest.mark.parametrize(
    ("name", "shown"), [("figure.jpg", "'jpg'"), ("figure.png.txt", "'txt'"), ("figure", "''")]
)
def test_save_figure_rejects_other_extensions(small_figure, tmp_path, name, shown):
    with pytest.raises(
        ParameterError, match=rf"figure{'.*'}: unknown figure format {shown}; use one of .png, .svg, .pdf"
    ):
        save_figure(small_figure, tmp_path / name)
    assert list(tmp_path.iterdir()) == []
