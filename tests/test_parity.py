"""Features equal DisVoice 0.1.10's outputs within the tolerances of ../shared/parity/README.md."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import CORPUS, DATA, EXAMPLE, PARITY, needs_shared, parity_manifest
from speechae.errors import AudioTooShortError

pytestmark = pytest.mark.weights

STATIC = (1e-4, 1e-4)
BOTTLENECK = (1e-5, 0.0)
ERROR = (1e-9, 1e-4)


def assert_matches(ours: np.ndarray, reference: np.ndarray, tolerance: tuple[float, float], what: str):
    atol, rtol = tolerance
    assert ours.shape == reference.shape, f"{what}: shape {ours.shape} != {reference.shape}"
    both_nan = np.isnan(ours) & np.isnan(reference)
    excess = np.abs(ours - reference) - (atol + rtol * np.abs(reference))
    bad = ~both_nan & ~(excess <= 0)
    assert not bad.any(), f"{what}: {bad.sum()} values off, worst excess {np.nanmax(excess):.3g}"


def check_against(extractor, audio, reference_npz):
    reference = np.load(reference_npz)
    features = extractor.file_features(audio)
    width = features.bottleneck.shape[1]
    dynamic = reference["dynamic"]
    assert len(features.starts) == len(dynamic), "window counts differ"
    assert_matches(features.bottleneck, dynamic[:, :width], BOTTLENECK, f"{audio} bottleneck")
    assert_matches(features.error, dynamic[:, width:], ERROR, f"{audio} error")
    assert_matches(features.static, reference["static"], STATIC, f"{audio} static")


@pytest.mark.parametrize("model", ["CAE", "RAE"])
def test_committed_example_matches_disvoice(model, cae, rae):
    """Runs on every checkout: the example recording against its copied DisVoice reference."""
    extractor = cae if model == "CAE" else rae
    check_against(extractor, EXAMPLE, DATA / f"{EXAMPLE.name}.{model}.npz")


CASES = [
    pytest.param(entry, model, id=f"{entry['file']}-{model}")
    for entry in parity_manifest()
    for model in ("CAE", "RAE")
]


@needs_shared
@pytest.mark.parametrize(("entry", "model"), CASES)
def test_shared_corpus_matches_disvoice(entry, model, cae, rae):
    extractor = cae if model == "CAE" else rae
    audio = CORPUS / entry["file"]
    expected = entry[model]
    if "error" in expected:
        assert "too short" in expected["error"]
        with pytest.raises(AudioTooShortError, match=rf"{entry['file']}: .* shorter than one 0.5 s"):
            extractor.file_features(audio)
        return
    check_against(extractor, audio, PARITY / expected["npz"])


@needs_shared
def test_every_corpus_file_has_a_case():
    covered = {entry["file"] for entry in parity_manifest()}
    on_disk = {p.name for p in CORPUS.iterdir() if p.suffix in (".wav", ".mp3", ".flac", ".ogg")}
    assert on_disk <= covered
