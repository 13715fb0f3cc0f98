"""Exceptions and warnings raised by speechae.

Every exception derives from :class:`SpeechaeError` and also from the builtin that fits it, so
``except ValueError`` and ``except speechae.SpeechaeError`` both work::

    >>> from speechae.errors import AudioTooShortError, SpeechaeError
    >>> issubclass(AudioTooShortError, (SpeechaeError, ValueError))
    True
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings


class SpeechaeError(Exception):
    """Base class of every error raised by speechae."""


class ParameterError(SpeechaeError, ValueError):
    """An argument has a value outside what the function accepts.

    Raised for: an argument out of range: a segment outside the recording or with bounds that are
    not numbers, a signal that is a single number or has no channels, a sampling rate outside 4–384
    kHz given with an array, an output that is a folder or is also an input, a place where the run's
    files cannot be created.
    """


class AudioError(SpeechaeError, ValueError):
    """A recording cannot be turned into features."""


class AudioFileNotFoundError(AudioError, FileNotFoundError):
    """The audio file does not exist.

    Raised for: the file (or a link's target) does not exist.
    """


class AudioDecodeError(AudioError):
    """The file is not audio, is corrupt, or is in a format that cannot be decoded.

    Raised for: not audio, corrupt or unsupported; a pipe, device or socket (refused before it is
    opened: reading one may never end); a header with a sampling rate outside 4–384 kHz, or that
    claims more than 10,000 frames per byte of file (hours in a few kilobytes); a file cut short
    where its container records its length (see "Damaged and unusual inputs" on the exactness page).
    """


class EmptyAudioError(AudioError):
    """The recording holds no samples.

    Raised for: a 0-byte file, or one that decodes to no samples.
    """


class AudioTooShortError(AudioError):
    """The recording is shorter than one 500 ms analysis window.

    Raised for: shorter than one 0.5 s window (its length is never rounded up to it).
    """


class SilentAudioError(AudioError):
    """Every sample of the recording has the same value, so it cannot be peak-normalised.

    Raised for: every sample has the same value, so it cannot be peak-normalised.
    """


class NoUsableWindowsError(AudioError):
    """Every window of the recording was dropped (its Mel spectrogram has a value <= 0).

    Raised for: every window was dropped (its Mel spectrogram has a value <= 0).
    """


class NonFiniteAudioError(AudioError):
    """The recording contains NaN or infinite samples.

    Raised for: NaN or infinite samples, or samples so large that float32 sums overflow.
    """


class NoAudioFilesError(AudioError):
    """A folder or list of inputs contains no audio file.

    Raised for: a folder with no audio file of the extensions asked for, or an empty list of files.
    """


class InputError(SpeechaeError, ValueError):
    """An input of a corpus run (a folder, list file or manifest) gave no recordings to process.

    Raised for: an input of a corpus run gave nothing to process: an empty folder, a list file or
    manifest that names no file, a manifest without a `file` column or that pandas/pyarrow cannot
    parse (0-byte CSV, corrupt Parquet, an unterminated quote).
    """


class LabelsError(SpeechaeError, ValueError):
    """The labels of an evaluation cannot be used as they are (a group in two classes, one class...).

    Raised for: labels an evaluation cannot use: a missing column, a group in two classes or two
    predefined folds, one class only, a class with fewer groups than folds, a file or group with two
    different targets.
    """


class MissingDependencyError(SpeechaeError, ImportError):
    """An optional dependency that the task needs is not installed (the message says which extra).

    Raised for: an optional dependency the task needs is missing (evaluation: scikit-learn, `pip
    install "speechae[ml]"`).
    """


class TemporaryStorageError(SpeechaeError, OSError):
    """A long recording's decoded samples cannot be parked in the temporary folder (``TMPDIR``).

    Raised for: no room in `TMPDIR` for a long recording's samples (speechae then keeps them in
    memory).
    """


class ModelError(SpeechaeError, RuntimeError):
    """A model cannot be found, fetched, verified or loaded.

    Raised for: the base of the three above; `AudioError` is the base of the audio errors above it.
    """


class UnknownModelError(ModelError, KeyError):
    """The model name is neither a registered model nor an existing file.

    Raised for: a model name that is neither registered nor a file.
    """

    def __str__(self) -> str:  # KeyError would otherwise wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class WeightsFetchError(ModelError):
    """The pretrained weights could not be downloaded."""


class WeightsIntegrityError(ModelError):
    """A weights file does not have the expected checksum or layout.

    Raised for: weights with the wrong checksum or layout, that do not fit the network, or with NaN
    or infinite values.
    """


class StoreError(SpeechaeError, RuntimeError):
    """The resumable store of a corpus run cannot be opened or is not a speechae store.

    Raised for: the run's store cannot be opened or is not a speechae store.
    """


class DamagedStoreEntryError(StoreError):
    """An entry of the store no longer matches the digest it was written with.

    Raised for: a store entry no longer matches its digest (the recording is computed again).
    """


class ExtractionError(SpeechaeError, RuntimeError):
    """An unexpected failure while processing one recording (a corpus run goes on)."""


class OutputInUseError(SpeechaeError, RuntimeError):
    """Another corpus run is writing the same output (it holds ``OUT.lock``).

    Raised for: another run is writing the same output (it holds `OUT.lock`); `--wait` waits for it.
    """


class NonFiniteFeaturesError(SpeechaeError, RuntimeError):
    """The network gave NaN or infinite features for a finite recording."""


class FileChangedError(SpeechaeError, RuntimeError):
    """A recording changed on disk after it was hashed, so its features are not stored.

    Raised for: a recording changed on disk while it was processed ("run again").
    """


def all_dropped(name: str, n_windows: int) -> NoUsableWindowsError:
    """The error of a recording whose every window has a Mel value <= 0.

    Example:
        >>> str(all_dropped("a.wav", 3))
        'a.wav: all 3 windows have Mel values <= 0 (digital silence), so no features can be computed'
    """
    return NoUsableWindowsError(
        f"{name or 'the signal'}: all {n_windows} windows have Mel values <= 0 (digital silence), "
        "so no features can be computed"
    )


def check_counts(**counts: object) -> None:
    """Refuse any value that is not a whole number of at least 1, naming it.

    Example:
        >>> check_counts(jobs=2, batch_windows=256)
        >>> check_counts(jobs=0)
        Traceback (most recent call last):
        ...
        speechae.errors.ParameterError: jobs must be a whole number of at least 1, not 0
    """
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ParameterError(f"{name} must be a whole number of at least 1, not {value!r}")


def naming(error: BaseException, name: str, *, named_as: str | None = None) -> SpeechaeError:
    """``error`` as one sentence that begins with ``name`` (a file, with its segment if any).

    A message that already begins with ``named_as`` (default: ``name``), as the errors of
    :mod:`speechae.audio` name their file, is kept as it is. An error that is not speechae's
    becomes an :class:`ExtractionError` that says what it was.

    Example:
        >>> str(naming(SilentAudioError("the recording is silent"), "a.wav [1-2 s]"))
        'a.wav [1-2 s]: the recording is silent'
        >>> str(naming(KeyError("x"), "a.wav"))
        "a.wav: unexpected error (KeyError: 'x')"
    """
    message = str(error)
    if not isinstance(error, SpeechaeError):
        return ExtractionError(f"{name}: unexpected error ({type(error).__name__}: {message})")
    if not name or message.startswith(named_as or name):
        return error
    return type(error)(f"{name}: {message}")


def print_warning(
    message: Warning | str, category: type, filename: str, lineno: int, file=None, line=None
) -> None:
    """A :func:`warnings.showwarning` that prints one line of ours: ``speechae: warning: ...``.

    The command line and corpus workers use it: their warnings name the file they are about,
    not the line of code that raised them.
    """
    print(f"speechae: warning: {message}", file=file or sys.stderr)


def warn(warning: Warning) -> None:
    """Emit ``warning`` as raised by the first caller outside speechae (the user's own line)."""
    ours = (os.path.dirname(os.path.abspath(__file__)), os.path.abspath(contextlib.__file__))
    frame, level = sys._getframe(1), 2  # level 1 is this function
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(ours):
        frame, level = frame.f_back, level + 1  # a context manager of ours runs inside contextlib
    warnings.warn(warning, stacklevel=level)


class SpeechaeWarning(UserWarning):
    """Base class of every warning emitted by speechae."""


class DroppedWindowsWarning(SpeechaeWarning):
    """Windows were left out because their Mel spectrogram had a value <= 0."""


class SkippedFileWarning(SpeechaeWarning):
    """A file was left out of a run (training) because it cannot be used; the run goes on."""


class SingleWindowWarning(SpeechaeWarning):
    """A recording has one window, so its skewness and kurtosis are NaN."""


class SegmentedResamplingWarning(SpeechaeWarning):
    """A long recording was resampled in overlapping segments instead of with one FFT."""


class DecoderWarning(SpeechaeWarning):
    """The decoder skipped data of a file that is not audio (damage, or a stray tag); the rest was read."""


class DamagedStoreWarning(SpeechaeWarning):
    """A finished result in the store was damaged on disk, so the recording is processed again."""
