"""Drop-in replacement for DisVoice's ``RepLearning`` class, with the same return values.

Unlike the original it reads any audio format, computes each file in one pass, and reports the
windows it drops. It funnels into the same private path as :class:`speechae.Extractor`.

Example:
    >>> from speechae import RepLearning
    >>> replearning = RepLearning("CAE")  # doctest: +SKIP
    >>> replearning.extract_features_file("001_a1_PCGITA.wav", static=True, fmt="npy").shape
    ... # doctest: +SKIP
    (1, 1536)
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from speechae.audio import find_audio_files
from speechae.errors import ParameterError
from speechae.extractor import Extractor, static_of
from speechae.features import FileFeatures, dynamic_feature_names, static_feature_names
from speechae.inputs import printable
from speechae.writers import check_kaldi_key

__all__ = ["FORMATS", "RepLearning"]

FORMATS = ("npy", "txt", "dataframe", "csv", "torch", "kaldi")
_MODELS = {"CAE": "cae-256", "RAE": "rae-256"}


class RepLearning:
    """DisVoice-compatible interface: ``RepLearning('CAE')`` or ``RepLearning('RAE')``.

    Args:
        model: ``"CAE"`` or ``"RAE"`` (DisVoice's names, in any case), or anything
            :class:`Extractor` takes.
        device: ``"cpu"`` (default) or ``"cuda"``.
        plots_dir: where ``plots=True`` writes ``<recording name>.png`` (``a.wav.png``) outside
            Jupyter (in a notebook the figure is shown inline instead).
    """

    def __init__(
        self, model: str = "CAE", *, device: str = "cpu", plots_dir: str | os.PathLike[str] = "."
    ) -> None:
        named = _MODELS.get(model.upper(), model) if isinstance(model, str) else model
        self._extractor = Extractor(named, level="static", device=device)
        self.size_bottleneck = self._extractor.model.bottleneck
        self.statistics = ["mean", "std", "skewness", "kurtosis"]
        sizes = (self.size_bottleneck, self._extractor.frontend.config.n_mels)
        self.head_st = static_feature_names(*sizes)
        self.head_dyn = np.array(dynamic_feature_names(*sizes))  # an array in DisVoice too
        self.plots_dir = Path(plots_dir)

    def _features(self, audio: str | os.PathLike[str], plots: bool) -> FileFeatures:
        features = self._extractor.file_features(audio, keep_spectrograms=plots)
        if plots:
            self._show(features, Path(audio))
        return features

    def _show(self, features: FileFeatures, audio: Path) -> None:
        """Show the figure inline in Jupyter, else write it to ``plots_dir`` (never blocks)."""
        from speechae.plots import recording_figure, save_figure

        figure = recording_figure(features, title=audio.name, config=self._extractor.frontend.config)
        if _in_notebook():
            from IPython.display import display

            display(figure)
        else:
            target = self.plots_dir / f"{audio.name}.png"  # a.wav and a.flac apart
            save_figure(figure, target)
            logging.getLogger("speechae").info("figure of %s written to %s", audio, target)

    def extract_features_file(
        self,
        audio: str | os.PathLike[str],
        static: bool = True,
        plots: bool = False,
        fmt: str = "npy",
        kaldi_file: str = "",
    ) -> Any:
        """Features of one file, returned as DisVoice returns them.

        ``npy``/``txt``: ndarray (1 x 1536 static, or windows x 384); ``dataframe``/``csv``:
        DataFrame with DisVoice's columns; ``torch``: tensor; ``kaldi``: writes
        ``kaldi_file.ark`` and ``kaldi_file.scp`` and returns None. ``plots=True`` also draws the
        input and decoded spectrograms and the reconstruction errors (see ``plots_dir``).
        """
        _check(static, fmt, kaldi_file)
        features = self._features(audio, plots)
        matrix = _matrix(features, os.fspath(audio), static)
        if fmt == "kaldi":
            _write_kaldi({os.path.basename(os.fspath(audio)): matrix}, kaldi_file)
            return None
        return self._convert(matrix, static, fmt)

    def extract_features_path(
        self,
        path_audio: str | os.PathLike[str],
        static: bool = True,
        plots: bool = False,
        fmt: str = "npy",
        kaldi_file: str = "",
    ) -> Any:
        """Features of every audio file in a folder, stacked in sorted order.

        ``dataframe``/``csv`` add an ``id`` column with the file name; ``kaldi`` writes one matrix
        per file.
        """
        _check(static, fmt, kaldi_file)
        files = find_audio_files(path_audio)
        names = [printable(file.name) for file in files]
        if fmt == "kaldi":  # before any work
            for name in names:
                check_kaldi_key(name)
        matrices = {}
        for file, name in zip(files, names, strict=True):
            features = self._features(file, plots)
            matrices[name] = _matrix(features, os.fspath(file), static)
        if fmt == "kaldi":
            _write_kaldi(matrices, kaldi_file)
            return None
        result = self._convert(np.concatenate(list(matrices.values())), static, fmt)
        if isinstance(result, pd.DataFrame):
            result["id"] = np.repeat(list(matrices), [len(m) for m in matrices.values()])
        return result

    def _convert(self, matrix: np.ndarray, static: bool, fmt: str) -> Any:
        if fmt in ("npy", "txt"):
            return matrix
        if fmt in ("dataframe", "csv"):
            return pd.DataFrame(matrix, columns=self.head_st if static else self.head_dyn)
        import torch

        return torch.from_numpy(matrix)


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    ipython = shell.get_ipython()
    return ipython is not None and type(ipython).__name__ == "ZMQInteractiveShell"


def _matrix(features: FileFeatures, name: str, static: bool) -> np.ndarray:
    """The 1 x 1536 static row or the windows x 384 dynamic rows, in float32 as DisVoice gives both."""
    if static:
        return static_of(features, name)[None, :].astype(np.float32)
    return features.dynamic


def _check(static: bool, fmt: str, kaldi_file: str) -> None:
    if fmt not in FORMATS:
        raise ParameterError(f"fmt {fmt!r} is not supported; use one of {', '.join(FORMATS)}")
    if fmt == "kaldi" and static:
        raise ParameterError("Kaldi output is only supported for dynamic features (static=False)")
    if fmt == "kaldi" and not kaldi_file:
        raise ParameterError("fmt='kaldi' needs kaldi_file, the path without .ark/.scp")


def _write_kaldi(matrices: dict[str, np.ndarray], kaldi_file: str) -> None:
    import kaldiio

    with kaldiio.WriteHelper(f"ark,scp:{kaldi_file}.ark,{kaldi_file}.scp") as writer:
        for key, matrix in matrices.items():
            writer(key, np.asarray(matrix, dtype=np.float32))
