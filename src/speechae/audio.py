"""Reading audio files: the only place that touches the file system for sound.

Any format libsndfile decodes is accepted (WAV of any integer or float width, FLAC, OGG/Vorbis,
Opus, MP3, AIFF, ...). Samples come back in the precision the reference pipeline computes in:
integer WAV as float64, float WAV in its own width, compressed formats as float32 (the reference
outputs were made by decoding those to float32 WAV).

Example:
    >>> import tempfile, numpy as np, soundfile as sf
    >>> path = tempfile.mktemp(suffix=".wav")
    >>> sf.write(path, np.zeros((16000, 2)), 16000, subtype="PCM_16")
    >>> samples, rate = read_audio(path)
    >>> samples.shape, samples.dtype, rate
    ((16000, 2), dtype('float64'), 16000)
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from speechae.errors import (
    AudioDecodeError,
    AudioFileNotFoundError,
    DecoderWarning,
    EmptyAudioError,
    NoAudioFilesError,
    ParameterError,
    TemporaryStorageError,
    warn,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "MAX_FRAMES_PER_BYTE",
    "SAMPLING_RATES",
    "SampleSpool",
    "SpooledAudio",
    "audio_duration",
    "audio_frames",
    "check_sampling_rate",
    "decoder_warnings",
    "file_sha256",
    "find_audio_files",
    "read_audio",
    "segment_frames",
    "spool_audio",
]

AUDIO_EXTENSIONS: tuple[str, ...] = (
    ".wav",
    ".flac",
    ".ogg",
    ".oga",
    ".opus",
    ".mp3",
    ".aif",
    ".aiff",
    ".au",
    ".caf",
    ".w64",
)


#: What libmpg123 prints on the error stream, libsndfile offering no way to quiet it: notes on
#: data it skips (which become one DecoderWarning of ours), and seeking advice that is not ours.
_MPEG_DAMAGE = re.compile(r"^Note: Illegal Audio-MPEG-Header 0x[0-9a-f]+ at offset (\d+)")
_MPEG_NOISE = re.compile(r"^(Note|Warning|\[[^]]*\] (warning|error)): ")
_ERROR_STREAM = threading.Lock()
_COLLECTED = threading.local()


@contextmanager
def decoder_warnings() -> Iterator[list[str]]:
    """Keep, besides warning them, the messages of the decoder warnings given in this thread.

    A corpus run lists them with its failures: a file read despite damage is never silent.

    Example:
        >>> with decoder_warnings() as messages:
        ...     samples, rate = read_audio("cut.mp3")  # doctest: +SKIP
        >>> messages  # doctest: +SKIP
        ['cut.mp3: the MP3 stream ends inside a frame after byte 9216 (is the file cut short?); ...']
    """
    collected: list[str] = []
    stack = _COLLECTED.__dict__.setdefault("stack", [])
    stack.append(collected)
    try:
        yield collected
    finally:
        stack.remove(collected)


@contextmanager
def _decoder_messages(path: Path, *, report: bool) -> Iterator[None]:
    """Keep the MP3 decoder's messages about ``path`` off the terminal.

    The process's error stream goes to a temporary file while the decoder runs (one decoder at a
    time); what others wrote meanwhile is written on afterwards. With ``report``, skipped data
    becomes one :class:`~speechae.errors.DecoderWarning` naming the file.
    """
    if path.suffix.lower() != ".mp3":
        yield
        return
    with _ERROR_STREAM, tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode("utf-8", "replace").splitlines()
    others = [line for line in lines if not _MPEG_NOISE.match(line)]
    if others:
        print("\n".join(others), file=sys.stderr)
    skipped = [int(match.group(1)) for line in lines if (match := _MPEG_DAMAGE.match(line))]
    if report and skipped:
        if any(line.startswith("Note: Hit end of (available) data") for line in lines):
            what = f"the MP3 stream ends inside a frame after byte {skipped[-1]} (is the file cut short?)"
            what += "; the frames before it were read"
        else:
            what = f"the MP3 decoder skipped data that is not audio from byte {skipped[0]} on"
            what += " (is the file damaged?); the frames around it were read"
        message = f"{path}: {what}"
        for collected in getattr(_COLLECTED, "stack", ()):
            collected.append(message)
        warn(DecoderWarning(message))


def _soundfile_name(path: Path) -> str | bytes:
    """The name libsndfile opens: the file system's own bytes (names that are not UTF-8 open too)."""
    return str(path) if os.name == "nt" else os.fsencode(path)


def _missing(path: Path) -> AudioFileNotFoundError:
    if path.is_symlink():
        return AudioFileNotFoundError(f"{path}: a symbolic link to a missing file (or a loop of links)")
    return AudioFileNotFoundError(f"{path}: no such file")


#: Sampling rates speechae reads, in Hz: telephone speech at 4 kHz up to studio audio at 384 kHz.
#: A header outside them is damage, not audio (a WAV claiming 1 Hz would be taken as hours).
SAMPLING_RATES = (4000, 384000)

#: The most frames per byte of file a header may claim. The most compact codecs keep real speech
#: under a few hundred frames per byte (Opus at 6 kbit/s: 64 at 48 kHz); a header claiming more
#: is damage, whose decoding would cost far more than the file's size suggests.
MAX_FRAMES_PER_BYTE = 10_000

_SPECIAL_FILES = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def check_sampling_rate(sampling_rate: float, *, name: str = "") -> None:
    """Refuse a sampling rate that is not a number of Hz within :data:`SAMPLING_RATES`.

    Example:
        >>> check_sampling_rate(44100)
        >>> check_sampling_rate(1, name="talk.wav")
        Traceback (most recent call last):
        speechae.errors.ParameterError: talk.wav: the sampling rate of 1 Hz is outside 4000-384000 Hz

    Raises:
        ParameterError: naming ``name`` and the rate.
    """
    where = f"{name}: " if name else ""
    try:
        valid = not isinstance(sampling_rate, bool) and np.isfinite(sampling_rate) and sampling_rate > 0
    except TypeError:
        valid = False
    if not valid:
        raise ParameterError(
            f"{where}the sampling rate must be a positive number of Hz, not {sampling_rate!r}"
        )
    low, high = SAMPLING_RATES
    if not low <= sampling_rate <= high:
        raise ParameterError(f"{where}the sampling rate of {sampling_rate:g} Hz is outside {low}-{high} Hz")


def _regular_file(path: Path) -> os.stat_result:
    """The file's status; a missing file, a folder or a special file is refused."""
    try:
        status = path.stat()
    except OSError:
        raise _missing(path) from None
    if stat.S_ISDIR(status.st_mode):
        raise AudioDecodeError(f"{path}: is a folder, not an audio file")
    if not stat.S_ISREG(status.st_mode):  # reading a pipe or a device may never end
        kind = _SPECIAL_FILES.get(stat.S_IFMT(status.st_mode), "not a regular file")
        raise AudioDecodeError(f"{path}: is {kind}, not an audio file")
    return status


def _open_info(path: Path) -> sf._SoundFileInfo:
    size = _regular_file(path).st_size
    if size == 0:
        raise EmptyAudioError(f"{path}: the file is empty (0 bytes)")
    try:
        with _decoder_messages(path, report=False):
            info = sf.info(_soundfile_name(path))
    except (sf.LibsndfileError, RuntimeError):
        raise AudioDecodeError(
            f"{path}: not a readable audio file (unsupported format or corrupt data)"
        ) from None
    try:
        check_sampling_rate(info.samplerate, name=str(path))
    except ParameterError as error:
        raise AudioDecodeError(str(error)) from None
    if info.frames > MAX_FRAMES_PER_BYTE * size:
        hours = info.frames / info.samplerate / 3600
        raise AudioDecodeError(
            f"{path}: damaged header: it claims {info.frames} frames ({hours:.1f} h) in a file of "
            f"{size} bytes, more than {MAX_FRAMES_PER_BYTE} per byte"
        )
    return info


def _declared_wav_bytes(path: Path) -> tuple[int, int] | None:
    """``(data offset, declared data bytes)`` from a RIFF/WAVE header, or None if not told."""
    with open(path, "rb") as handle:
        if handle.read(4) != b"RIFF":
            return None
        handle.read(4)
        if handle.read(4) != b"WAVE":
            return None
        while len(chunk := handle.read(8)) == 8:
            size = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                return (handle.tell(), size) if 0 < size < 0xFFFFFFFF else None
            handle.seek(size + size % 2, os.SEEK_CUR)
    return None


def _check_complete(path: Path, info: sf._SoundFileInfo, frames_read: int, whole: bool) -> None:
    """Refuse a file whose audio data ends before its container says it does.

    Checked: a FLAC header's frame count, an MP3's Xing/Info frame count (LAME and FFmpeg write
    one; without it the length is an estimate), an Ogg stream's end-of-stream page, and a WAV
    header's data size. A file of another format, or an MP3 without that frame, cut exactly at
    a frame boundary cannot be told from a shorter recording.
    """
    short = whole and frames_read < info.frames  # the header is read only then
    if short and (info.format == "FLAC" or (info.format == "MP3" and _mp3_counts_frames(path))):
        raise AudioDecodeError(
            f"{path}: truncated or corrupt: {frames_read} of the {info.frames} frames its header "
            "records decode"
        )
    if info.format == "OGG" and not _ogg_stream_ends(path):
        raise AudioDecodeError(f"{path}: truncated: the Ogg stream stops before its end-of-stream page")
    declared = _declared_wav_bytes(path) if info.format in ("WAV", "WAVEX") else None
    if declared is not None:
        offset, size = declared
        available = path.stat().st_size - offset
        if available < size:
            raise AudioDecodeError(
                f"{path}: truncated: the header announces {size} bytes of audio, the file holds {available}"
            )


def _mp3_counts_frames(path: Path) -> bool:
    """Whether the MP3's first frame is a Xing/Info frame that records the number of frames."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
        if head[:3] == b"ID3":  # skip an ID3v2 tag: 10 bytes, a syncsafe size, a footer if flagged
            size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
            handle.seek(10 + size + (10 if head[5] & 0x10 else 0))
            head = handle.read(1 << 16)
    sync = next((i for i in range(len(head) - 3) if head[i] == 0xFF and head[i + 1] & 0xE0 == 0xE0), None)
    if sync is None:
        return False
    mpeg1, mono = (head[sync + 1] >> 3) & 3 == 3, (head[sync + 3] >> 6) & 3 == 3
    side_information = (17 if mono else 32) if mpeg1 else (9 if mono else 17)
    tag = sync + 4 + side_information
    flags = int.from_bytes(head[tag + 4 : tag + 8], "big")
    return head[tag : tag + 4] in (b"Xing", b"Info") and bool(flags & 1)


def _ogg_stream_ends(path: Path) -> bool:
    """Whether the file's last Ogg page is complete and marks the end of its stream."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        handle.seek(max(0, size - 70_000))  # a page is at most 65,307 bytes
        tail = handle.read()
    page = tail.rfind(b"OggS")
    if page < 0 or len(tail) < page + 27:
        return False
    segments = tail[page + 26]
    table = tail[page + 27 : page + 27 + segments]
    complete = len(table) == segments and page + 27 + segments + sum(table) <= len(tail)
    return complete and bool(tail[page + 5] & 0x04)


def _reference_dtype(info: sf._SoundFileInfo, native: bool) -> str:
    if info.format not in ("WAV", "WAVEX"):
        return "float32"
    if info.subtype == "FLOAT":
        return "float32"
    if native and info.subtype in _NATIVE_INTEGERS:
        return _NATIVE_INTEGERS[info.subtype]
    return "float64"


#: Integer WAV subtypes and the integer type that holds their samples without loss.
_NATIVE_INTEGERS = {
    "PCM_U8": "int16",
    "PCM_S8": "int16",
    "PCM_16": "int16",
    "PCM_24": "int32",
    "PCM_32": "int32",
}


def read_audio(
    path: str | os.PathLike[str],
    *,
    start: float | None = None,
    end: float | None = None,
    native: bool = False,
) -> tuple[np.ndarray, int]:
    """Decode an audio file, optionally only the part from ``start`` to ``end`` seconds.

    With ``native``, integer WAV comes back as integers (int16, or int32 for 24 and 32 bits)
    scaled to the full range of that type instead of float64: a quarter or half of the memory,
    and :func:`~speechae.frontend.condition_signal` gives the same result for both.

    Returns:
        ``(samples, sampling_rate)``; samples have shape ``(frames,)`` for mono or
        ``(frames, channels)``.

    Raises:
        AudioFileNotFoundError, AudioDecodeError (also for a truncated file), EmptyAudioError,
        ParameterError.
    """
    path = Path(path)
    info = _open_info(path)
    first, last = _frame_range(path, info, start, end)
    try:
        with _decoder_messages(path, report=True):
            samples, rate = sf.read(
                _soundfile_name(path),
                start=first,
                stop=last,
                dtype=_reference_dtype(info, native),
                always_2d=False,
            )
    except (sf.LibsndfileError, RuntimeError) as error:
        raise AudioDecodeError(f"{path}: the audio data cannot be decoded ({error})") from None
    _check_decoded(path, info, samples.shape[0], whole=start is None and end is None, first=first)
    return samples, rate


def _frame_range(
    path: Path, info: sf._SoundFileInfo, start: float | None, end: float | None
) -> tuple[int, int | None]:
    return segment_frames(start, end, info.samplerate, info.frames, name=str(path))


def segment_frames(
    start: float | None, end: float | None, sampling_rate: float, frames: int, *, name: str = ""
) -> tuple[int, int | None]:
    """Frames ``first, last`` of the part from ``start`` to ``end`` seconds (``last`` None: to the end).

    Example:
        >>> segment_frames(0.5, None, 16000, 48000)
        (8000, None)

    Raises:
        ParameterError (naming ``name``): a bound that is not a finite number, a negative start,
        an end not after the start, or a start at or after the end of the ``frames`` frames
        (when ``frames`` is known, i.e. positive).
    """
    where = f"{name}: " if name else ""
    try:
        finite = all(bound is None or np.isfinite(bound) for bound in (start, end))
    except TypeError:
        finite = False
    if not finite:
        raise ParameterError(f"{where}the segment {start!r}-{end!r} s needs finite numbers of seconds")
    first = 0 if start is None else _frame(start, sampling_rate)
    last = None if end is None else _frame(end, sampling_rate)
    if last is not None and 0 < frames <= last:
        last = None  # an end past the recording is its end
    if first < 0:
        raise ParameterError(f"{where}the segment starts at {start:g} s, before the recording starts")
    if last is not None and last <= first:
        raise ParameterError(f"{where}the segment ends at {end:g} s, not after its start at {start or 0:g} s")
    if frames > 0 and first >= frames:
        raise ParameterError(
            f"{where}the segment starts at {start:g} s, after the end of the recording "
            f"({frames / sampling_rate:.2f} s)"
        )
    return first, last


def _frame(seconds: float, sampling_rate: float) -> int:
    """The frame at ``seconds``; times beyond any recording (1e308 s) give a frame beyond too."""
    position = seconds * sampling_rate
    return round(position) if abs(position) < 2**62 else int(np.sign(position)) * 2**62


def _check_decoded(path: Path, info: sf._SoundFileInfo, frames_read: int, whole: bool, first: int) -> None:
    if frames_read == 0 and first > 0:  # the header overestimated the length (MP3, Vorbis)
        raise ParameterError(
            f"{path}: the segment starts at {first / info.samplerate:g} s, after the end of the "
            "audio that decodes (the header's length is an estimate)"
        )
    if frames_read == 0:
        raise EmptyAudioError(f"{path}: the file holds no audio samples")
    _check_complete(path, info, frames_read, whole)


class _TemporarySamples:
    """Samples ``(frames,)`` or ``(frames, channels)`` in an anonymous temporary file.

    Reads and writes by frame range are safe from any thread; the file disappears on
    :meth:`close` (also a context manager).
    """

    def __init__(self, handle: BinaryIO, frames: int, channels: int, dtype: np.dtype, path: Path) -> None:
        self._handle = handle
        self._lock = threading.Lock()  # segments are read and written from several threads
        self.frames, self.channels = frames, channels
        self.dtype = np.dtype(dtype)
        self.ndim = 1 if channels == 1 else 2
        self.path = path

    def __len__(self) -> int:
        return self.frames

    def _check_range(self, first: int, last: int) -> None:
        if not 0 <= first <= last <= self.frames:
            raise ParameterError(f"frames {first}-{last} lie outside the recording's {self.frames}")

    def read(self, first: int, last: int) -> np.ndarray:
        """Frames ``first..last-1`` (within the recording) as a new array; safe from any thread.

        Raises:
            ParameterError: the range lies outside the recording.
            TemporaryStorageError: the temporary file lost samples (it was truncated meanwhile).
        """
        self._check_range(first, last)
        shape = (last - first,) if self.ndim == 1 else (last - first, self.channels)
        samples = np.empty(shape, dtype=self.dtype)
        view = memoryview(samples.reshape(-1).view(np.uint8))
        with self._lock:
            self._handle.seek(first * self.channels * self.dtype.itemsize)
            filled = 0
            while filled < len(view):  # a read may return less than asked
                count = self._handle.readinto(view[filled:])
                if not count:
                    raise TemporaryStorageError(
                        f"{self.path}: the temporary copy of the samples ends before frame {last}"
                    )
                filled += count
        return samples

    def close(self) -> None:
        """Delete the temporary file."""
        self._handle.close()

    @property
    def closed(self) -> bool:
        """Whether the temporary file is gone."""
        return self._handle.closed

    def __enter__(self) -> _TemporarySamples:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SpooledAudio(_TemporarySamples):
    """A decoded recording parked in an anonymous temporary file and read back by frame ranges.

    It holds the samples :func:`read_audio` with ``native=True`` would return, in the same dtype
    and shape, without keeping them in memory: an hour of 48 kHz stereo is 1.4 GB as float32.
    The file disappears when the object is closed (it is a context manager).

    Example:
        >>> import tempfile, numpy as np, soundfile as sf
        >>> path = tempfile.mktemp(suffix=".flac")
        >>> sf.write(path, np.zeros((48000, 2)), 48000)
        >>> with spool_audio(path) as audio:
        ...     len(audio), audio.read(100, 103).shape, audio.dtype, audio.sampling_rate
        (48000, (3, 2), dtype('float32'), 48000)
    """

    def __init__(
        self,
        handle: BinaryIO,
        frames: int,
        channels: int,
        dtype: np.dtype,
        sampling_rate: int,
        path: Path,
    ) -> None:
        super().__init__(handle, frames, channels, dtype, path)
        self.sampling_rate = sampling_rate


class SampleSpool(_TemporarySamples):
    """A signal of known length and dtype kept in an anonymous temporary file, filled by ranges.

    What :func:`speechae.frontend.condition_signal` keeps a long recording in (``spool``), so an
    hour at 16 kHz costs no 460 MB of memory. Writes (``spool[a:b] = values``) and reads may come
    from several threads.

    Example:
        >>> with SampleSpool.create(6, np.float64, "talk.wav") as spool:
        ...     spool[2:5] = [1.0, 2.0, 3.0]
        ...     spool.read(1, 4).tolist()
        [0.0, 1.0, 2.0]
    """

    @classmethod
    def create(cls, frames: int, dtype: np.dtype | type, name: str | os.PathLike[str] = "") -> SampleSpool:
        """A zero-filled spool of ``frames`` samples; ``name`` (the recording) is used in errors.

        Raises:
            TemporaryStorageError: the temporary folder has less free space than it needs.
        """
        path = Path(os.fspath(name) or "a recording")
        size = frames * np.dtype(dtype).itemsize
        handle = _temporary_file(path, size)
        try:
            handle.truncate(size)
        except OSError as error:
            handle.close()
            raise _no_room(path, error) from None
        return cls(handle, frames, 1, np.dtype(dtype), path)

    def __setitem__(self, frames: slice, values: np.ndarray) -> None:
        first, last, step = frames.indices(self.frames)
        if step != 1:
            raise ParameterError("a spool is written by contiguous ranges")
        block = np.ascontiguousarray(values, dtype=self.dtype)
        if block.shape != (last - first,):
            raise ParameterError(f"{block.shape} values given for frames {first}-{last}")
        with self._lock:
            self._handle.seek(first * self.dtype.itemsize)
            _write_all(self._handle, block, self.path)


class _ContinuousReader(sf.SoundFile):
    """A SoundFile whose reads go on where the previous one stopped, with no seek in between.

    python-soundfile seeks to the position it expects after every read of a seekable file;
    libsndfile's MP3 decoder restarts on a seek and then decodes the next frames without their
    bit reservoir: wrong samples, up to half the full scale, wherever sound follows near-silence.
    """

    def seekable(self) -> bool:
        return False


def spool_audio(
    path: str | os.PathLike[str],
    *,
    start: float | None = None,
    end: float | None = None,
    block_frames: int = 2**20,
) -> SpooledAudio:
    """Decode a file block by block into a :class:`SpooledAudio` (``read_audio(native=True)``'s samples).

    Memory stays at one block whatever the recording's length; the temporary file (in the
    system's temporary folder, ``TMPDIR``) takes the samples' size on disk, or in memory where
    that folder is a RAM disk (tmpfs). The samples equal one whole read's bit for bit, in every
    format: blocks are decoded one after another without seeking between them.

    Raises:
        AudioFileNotFoundError, AudioDecodeError (also for a truncated file), EmptyAudioError,
        ParameterError, TemporaryStorageError (no room for the samples in the temporary folder).
    """
    path = Path(path)
    info = _open_info(path)
    first, last = _frame_range(path, info, start, end)
    dtype = np.dtype(_reference_dtype(info, native=True))
    # the header's frame count: an estimate for MP3, and 2**63 - 1 for a stream of unknown length
    expected_frames = (info.frames if last is None else last) - first if info.frames < 2**62 else 0
    handle = _temporary_file(path, max(expected_frames, 0) * info.channels * dtype.itemsize)
    frames = 0
    try:
        with _decoder_messages(path, report=True), _ContinuousReader(_soundfile_name(path)) as source:
            source.seek(first)  # even to 0, as one whole read does
            while last is None or first + frames < last:
                wanted = block_frames if last is None else min(block_frames, last - first - frames)
                block = source.read(wanted, dtype=dtype.name, always_2d=False)
                if len(block) == 0:
                    break
                _write_all(handle, np.ascontiguousarray(block), path)
                frames += len(block)
        _check_decoded(path, info, frames, whole=start is None and end is None, first=first)
    except (sf.LibsndfileError, RuntimeError) as error:
        handle.close()
        raise AudioDecodeError(f"{path}: the audio data cannot be decoded ({error})") from None
    except BaseException:
        handle.close()
        raise
    return SpooledAudio(handle, frames, info.channels, dtype, info.samplerate, path)


def _write_all(handle: BinaryIO, block: np.ndarray, path: Path) -> None:
    data = memoryview(block.reshape(-1).view(np.uint8))
    try:
        while data:  # an unbuffered write may take only part of the data
            data = data[handle.write(data) :]
    except OSError as error:
        raise _no_room(path, error) from None


def _temporary_file(path: Path, size: int) -> BinaryIO:
    """An unbuffered anonymous temporary file for ``size`` bytes of ``path``'s samples.

    Raises:
        TemporaryStorageError: the temporary folder has less free space than ``size``, or no
            file can be created there (no file descriptors or inodes left, a read-only folder).
    """
    try:
        free = shutil.disk_usage(tempfile.gettempdir()).free
        if size > free:
            raise OSError(errno.ENOSPC, f"{size} bytes needed, {free} free")
        return tempfile.TemporaryFile(buffering=0)
    except OSError as error:
        raise _no_room(path, error) from None


def _no_room(path: Path, error: OSError) -> TemporaryStorageError:
    return TemporaryStorageError(
        f"{path}: the samples do not fit in the temporary folder {tempfile.gettempdir()} "
        f"({error.strerror or error}); point TMPDIR at a folder with more free space"
    )


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes: what identifies a recording in caches and stores.

    Raises:
        AudioFileNotFoundError, AudioDecodeError (the file cannot be read).
    """
    path = Path(path)
    _regular_file(path)
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    except FileNotFoundError:
        raise _missing(path) from None
    except OSError as error:
        raise AudioDecodeError(f"{path}: the file cannot be read ({error.strerror or error})") from None
    return digest.hexdigest()


def audio_frames(
    path: str | os.PathLike[str], *, start: float | None = None, end: float | None = None
) -> tuple[int, int]:
    """``(frames, sampling_rate)`` of a file, or of its part from ``start`` to ``end`` seconds.

    Read from the header without decoding: MP3 and Vorbis headers give estimates.

    Example:
        >>> import tempfile, numpy as np, soundfile as sf
        >>> path = tempfile.mktemp(suffix=".wav")
        >>> sf.write(path, np.zeros(16000), 8000)
        >>> audio_frames(path, start=0.5)
        (12000, 8000)
    """
    path = Path(path)
    info = _open_info(path)
    first, last = _frame_range(path, info, start, end)
    return max(0, min(info.frames, info.frames if last is None else last) - first), info.samplerate


def audio_duration(path: str | os.PathLike[str]) -> float:
    """Duration in seconds from the file header (no decoding).

    Example:
        >>> import tempfile, numpy as np, soundfile as sf
        >>> path = tempfile.mktemp(suffix=".flac")
        >>> sf.write(path, np.zeros(8000), 16000)
        >>> audio_duration(path)
        0.5
    """
    info = _open_info(Path(path))
    return info.frames / info.samplerate


def _not_a_folder(path: Path) -> bool:
    """A file, a link to nothing or a special file: listed so that reading it says what is wrong."""
    return not path.is_dir()


def find_audio_files(
    folder: str | os.PathLike[str],
    *,
    recursive: bool = False,
    extensions: tuple[str, ...] = AUDIO_EXTENSIONS,
) -> list[Path]:
    """Audio files in ``folder`` (by extension, case-insensitive), sorted by path.

    Raises:
        AudioFileNotFoundError: the folder does not exist.
        NoAudioFilesError: the folder has no file with one of ``extensions``.
    """
    folder = Path(folder)
    if not extensions or not all(extension.strip(".") for extension in extensions):
        raise ParameterError(f"{folder}: no file extensions to look for ({', '.join(extensions) or 'none'})")
    if folder.is_file():
        raise NoAudioFilesError(f"{folder}: is a file, not a folder of audio files")
    if not folder.is_dir():
        raise AudioFileNotFoundError(f"{folder}: no such folder")
    wanted = {ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in extensions}
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in folder.glob(pattern) if p.suffix.lower() in wanted and _not_a_folder(p))
    if not files:
        has_subfolders = not recursive and any(p.is_dir() for p in folder.iterdir())
        raise NoAudioFilesError(
            f"{folder}: no audio files ({', '.join(sorted(wanted))}) found"
            + ("; its sub-folders are searched only when recursion is asked for" if has_subfolders else "")
        )
    return files
