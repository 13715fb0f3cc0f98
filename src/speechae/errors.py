"""Exceptions and warnings raised by speechae.

Every exception derives from :class:`SpeechaeError` and also from the builtin that fits it, so
``except ValueError`` and ``except speechae.SpeechaeError`` both work::

    >>> from speechae.errors import AudioTooShortError, SpeechaeError
    >>> issubclass(AudioTooShortError, (SpeechaeError, ValueError))
    True
"""

from __future__ import annotations


class SpeechaeError(Exception):
    """Base class of every error raised by speechae."""


class ParameterError(SpeechaeError, ValueError):
    """An argument has a value outside what the function accepts."""


class AudioError(SpeechaeError, ValueError):
    """A recording cannot be turned into features."""


class AudioFileNotFoundError(AudioError, FileNotFoundError):
    """The audio file does not exist."""


class AudioDecodeError(AudioError):
    """The file is not audio, is corrupt, or is in a format that cannot be decoded."""


class EmptyAudioError(AudioError):
    """The recording holds no samples."""


class AudioTooShortError(AudioError):
    """The recording is shorter than one 500 ms analysis window."""


class SilentAudioError(AudioError):
    """Every sample of the recording has the same value, so it cannot be peak-normalised."""


class NoUsableWindowsError(AudioError):
    """Every window of the recording was dropped (its Mel spectrogram has a value <= 0)."""


class NonFiniteAudioError(AudioError):
    """The recording contains NaN or infinite samples."""


class NoAudioFilesError(AudioError):
    """A folder or list of inputs contains no audio file."""


class InputError(SpeechaeError, ValueError):
    """An input of a corpus run (a folder, list file or manifest) gave no recordings to process."""


class TemporaryStorageError(SpeechaeError, OSError):
    """A long recording's decoded samples cannot be parked in the temporary folder (``TMPDIR``)."""


class ModelError(SpeechaeError, RuntimeError):
    """A model cannot be found, fetched, verified or loaded."""


class UnknownModelError(ModelError, KeyError):
    """The model name is neither a registered model nor an existing file."""

    def __str__(self) -> str:  # KeyError would otherwise wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class WeightsFetchError(ModelError):
    """The pretrained weights could not be downloaded."""


class WeightsIntegrityError(ModelError):
    """A weights file does not have the expected checksum or layout."""


class StoreError(SpeechaeError, RuntimeError):
    """The resumable store of a corpus run cannot be opened or is not a speechae store."""


class DamagedStoreEntryError(StoreError):
    """An entry of the store no longer matches the digest it was written with."""


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


class DamagedStoreWarning(SpeechaeWarning):
    """A finished result in the store was damaged on disk, so the recording is processed again."""
