from __future__ import annotations

import errno
import os
import shutil
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import CORPUS, EXAMPLE, needs_shared
from speechae.audio import (
    SampleSpool,
    audio_duration,
    audio_frames,
    find_audio_files,
    read_audio,
    segment_frames,
    spool_audio,
)
from speechae.errors import (
    AudioDecodeError,
    AudioFileNotFoundError,
    DecoderWarning,
    EmptyAudioError,
    NoAudioFilesError,
    ParameterError,
    SpeechaeError,
    TemporaryStorageError,
)
from speechae.frontend import condition_signal

_TEMPORARY_FILE = tempfile.TemporaryFile
TONE = 0.5 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)


@pytest.mark.parametrize(
    ("suffix", "fmt", "subtype", "dtype", "atol"),
    [
        (".wav", "WAV", "PCM_16", np.float64, 1e-4),
        (".wav", "WAV", "PCM_24", np.float64, 1e-6),
        (".wav", "WAV", "PCM_32", np.float64, 1e-8),
        (".wav", "WAV", "PCM_U8", np.float64, 1e-2),
        (".wav", "WAV", "FLOAT", np.float32, 1e-7),
        (".wav", "WAV", "DOUBLE", np.float64, 0),
        (".flac", "FLAC", "PCM_16", np.float32, 1e-4),
        (".ogg", "OGG", "VORBIS", np.float32, None),
        (".mp3", "MP3", "MPEG_LAYER_III", np.float32, None),
    ],
)
def test_reads_every_common_format_in_the_reference_precision(tmp_path, suffix, fmt, subtype, dtype, atol):
    path = tmp_path / f"tone{suffix}"
    sf.write(path, TONE, 16000, format=fmt, subtype=subtype)
    samples, rate = read_audio(path)
    assert rate == 16000 and samples.dtype == dtype
    if atol is not None:
        np.testing.assert_allclose(samples, TONE, atol=atol)
    else:  # lossy codecs: same length within codec padding, and audible content
        assert abs(len(samples) - len(TONE)) < 2000 and np.abs(samples).max() > 0.3


@pytest.mark.parametrize(
    ("subtype", "dtype"),
    [("PCM_U8", np.int16), ("PCM_16", np.int16), ("PCM_24", np.int32), ("PCM_32", np.int32)],
)
def test_native_integers_condition_to_the_same_bits_as_float64(tmp_path, subtype, dtype):
    path = tmp_path / "noise.wav"
    noise = np.random.default_rng(1).uniform(-0.9, 0.9, (30000, 2))
    sf.write(path, noise, 22050, subtype=subtype)
    stored, rate = read_audio(path, native=True)
    assert stored.dtype == dtype and stored.shape == (30000, 2)
    np.testing.assert_array_equal(condition_signal(stored, rate), condition_signal(read_audio(path)[0], rate))


@pytest.mark.parametrize(
    ("suffix", "subtype", "channels"),
    [(".wav", "PCM_16", 2), (".wav", "PCM_24", 1), (".wav", "FLOAT", 2), (".flac", "PCM_16", 2)],
)
def test_spooled_samples_are_the_native_samples(tmp_path, suffix, subtype, channels):
    path = tmp_path / f"noise{suffix}"
    noise = np.random.default_rng(5).uniform(-0.9, 0.9, (30011, channels)).squeeze()
    sf.write(path, noise, 22050, subtype=subtype)
    stored, _ = read_audio(path, native=True)
    with spool_audio(path, block_frames=1000) as spooled:
        assert (len(spooled), spooled.dtype, spooled.ndim, spooled.sampling_rate) == (
            30011,
            stored.dtype,
            stored.ndim,
            22050,
        )
        np.testing.assert_array_equal(spooled.read(0, 30011), stored)
        np.testing.assert_array_equal(spooled.read(12345, 23456), stored[12345:23456])
        assert len(spooled.read(500, 500)) == 0
        with pytest.raises(ParameterError, match="outside the recording"):
            spooled.read(30000, 30012)
    part, _ = read_audio(path, native=True, start=0.1, end=0.9)
    with spool_audio(path, start=0.1, end=0.9, block_frames=999) as spooled:
        np.testing.assert_array_equal(spooled.read(0, len(spooled)), part)
    assert audio_frames(path, start=0.1, end=0.9) == (len(part), 22050)


@pytest.mark.parametrize(("rate", "channels"), [(48000, 2), (22050, 1), (24000, 1), (16000, 2)])
@pytest.mark.parametrize(("start", "end"), [(None, None), (0.1234, None), (1.0, 9.3)])
def test_spooled_mp3_equals_one_whole_read(tmp_path, rate, channels, start, end):
    # bursts after digital silence: where the MP3 decoder used to restart between blocks, it
    # decoded their first frames without the bit reservoir (errors up to 0.5)
    path = tmp_path / "bursts.mp3"
    rng = np.random.default_rng(6)
    burst = 0.3 * np.sin(2 * np.pi * 300 * np.arange(rate) / rate) + 0.05 * rng.standard_normal(rate)
    signal = np.tile(np.concatenate([burst, np.zeros(rate)]), 5)
    sf.write(path, np.stack([signal, signal[::-1]][:channels], axis=1).squeeze(), rate, format="MP3")
    stored, _ = read_audio(path, native=True, start=start, end=end)
    with spool_audio(path, start=start, end=end, block_frames=4567) as spooled:
        np.testing.assert_array_equal(spooled.read(0, len(spooled)), stored)


def test_spooled_samples_read_from_many_threads_at_once(tmp_path):
    path = tmp_path / "noise.wav"
    noise = np.random.default_rng(7).integers(-30000, 30000, (200000, 2), dtype=np.int16)
    sf.write(path, noise, 48000, subtype="PCM_16")
    ranges = [(k * 997 % 150000, k * 997 % 150000 + 20000 + k) for k in range(400)]
    with spool_audio(path) as spooled, ThreadPoolExecutor(4) as threads:
        parts = list(threads.map(lambda bounds: spooled.read(*bounds), ranges))
    for (first, last), part in zip(ranges, parts, strict=True):
        np.testing.assert_array_equal(part, noise[first:last])


def test_a_spooled_file_cut_short_is_an_error_not_a_hang(tmp_path):
    path = tmp_path / "noise.wav"
    sf.write(path, np.zeros(50000), 16000, subtype="PCM_16")
    with spool_audio(path) as spooled:
        os.ftruncate(spooled._handle.fileno(), 1000)
        cut_short = r"noise\.wav: the temporary copy .* ends before frame 50000"
        with pytest.raises(TemporaryStorageError, match=cut_short):
            spooled.read(0, 50000)


class _FullDisk:
    """A temporary file that takes ``room`` bytes, at most 1000 per write, then fails."""

    def __init__(self, room: int) -> None:
        self.file, self.room = _TEMPORARY_FILE(buffering=0), room

    def write(self, data: memoryview) -> int:
        if self.room == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = self.file.write(data[: min(1000, self.room)])
        self.room -= written
        return written

    def __getattr__(self, name: str):
        return getattr(self.file, name)


def test_spooling_writes_every_byte_and_says_when_the_disk_is_full(tmp_path, monkeypatch):
    path = tmp_path / "noise.wav"
    noise = np.random.default_rng(8).integers(-30000, 30000, 30000, dtype=np.int16)
    sf.write(path, noise, 16000, subtype="PCM_16")
    monkeypatch.setattr(tempfile, "TemporaryFile", lambda **_: _FullDisk(room=10**6))
    with spool_audio(path) as spooled:  # every write is partial
        np.testing.assert_array_equal(spooled.read(0, len(spooled)), noise)
    monkeypatch.setattr(tempfile, "TemporaryFile", lambda **_: _FullDisk(room=5000))
    with pytest.raises(TemporaryStorageError, match=r"noise\.wav: the samples do not fit .* TMPDIR"):
        spool_audio(path)


def test_spooling_refuses_up_front_when_the_temporary_folder_is_too_small(tmp_path, monkeypatch):
    path = tmp_path / "noise.flac"
    sf.write(path, np.zeros((30000, 2)), 16000, subtype="PCM_24")  # 240,000 bytes as int32
    usage = shutil.disk_usage(tempfile.gettempdir())
    created = []
    monkeypatch.setattr(tempfile, "TemporaryFile", lambda **_: created.append(1))
    for free, segment, needed in ((239_999, {}, 240_000), (63_999, {"start": 1.0, "end": 1.5}, 64_000)):
        monkeypatch.setattr(shutil, "disk_usage", lambda _, free=free: usage._replace(free=free))
        no_room = rf"noise\.flac: .*{needed} bytes needed, {free} free"
        with pytest.raises(TemporaryStorageError, match=no_room):
            spool_audio(path, **segment)
    assert created == []


def test_a_segment_after_the_end_is_refused_with_the_duration(tmp_path):
    path = tmp_path / "tone.flac"
    sf.write(path, TONE, 16000)
    after_the_end = r"tone\.flac: the segment starts at 3 s, after the end of the recording \(1\.00 s\)"
    for open_segment in (read_audio, spool_audio, audio_frames):
        with pytest.raises(ParameterError, match=after_the_end):
            open_segment(path, start=3)


def test_spooling_refuses_what_reading_refuses(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, TONE, 16000, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:20000])
    with pytest.raises(AudioDecodeError, match=r"cut\.wav: truncated"):
        spool_audio(path)
    with pytest.raises(AudioFileNotFoundError):
        spool_audio(tmp_path / "missing.wav")
    header_only = tmp_path / "empty.wav"
    sf.write(header_only, np.zeros(0), 16000)
    with pytest.raises(EmptyAudioError, match="no audio samples"):
        spool_audio(header_only)


def test_multichannel_files_keep_their_channels(tmp_path):
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([TONE, -TONE], axis=1), 8000)
    samples, rate = read_audio(path)
    assert samples.shape == (16000, 2) and rate == 8000


def test_reads_a_segment(tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, TONE, 16000, subtype="DOUBLE")
    samples, _ = read_audio(path, start=0.25, end=0.5)
    np.testing.assert_array_equal(samples, TONE[4000:8000])
    assert audio_duration(path) == 1.0
    with pytest.raises(ParameterError, match="segment"):
        read_audio(path, start=0.5, end=0.25)


def test_missing_file(tmp_path):
    with pytest.raises(AudioFileNotFoundError, match=r"nothere\.wav: no such file"):
        read_audio(tmp_path / "nothere.wav")


def test_empty_file(tmp_path):
    (tmp_path / "empty.wav").touch()
    with pytest.raises(EmptyAudioError, match=r"empty\.wav: the file is empty"):
        read_audio(tmp_path / "empty.wav")


def test_header_only_file_has_no_samples(tmp_path):
    path = tmp_path / "header.wav"
    sf.write(path, np.zeros(0), 16000)
    with pytest.raises(EmptyAudioError, match="no audio samples"):
        read_audio(path)


@pytest.mark.parametrize(
    "content", [b"this is not audio at all" * 10, b"RIFF\x10\x00\x00\x00WAVEfmt garbage"]
)
def test_not_audio_or_corrupt(tmp_path, content):
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(AudioDecodeError, match=r"broken\.wav: not a readable audio file"):
        read_audio(path)


def test_unsupported_format(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n" * 100)
    with pytest.raises(AudioDecodeError, match="unsupported format"):
        read_audio(path)


def test_a_folder_is_not_a_file(tmp_path):
    with pytest.raises(AudioDecodeError, match="is a folder"):
        read_audio(tmp_path)


def test_errors_are_both_speechae_and_builtin_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_audio(tmp_path / "x.wav")
    with pytest.raises(SpeechaeError):
        read_audio(tmp_path / "x.wav")


def test_find_audio_files(tmp_path):
    for name in ("b.WAV", "a.flac", "notes.txt", "sub/c.mp3"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).touch()
    assert [p.name for p in find_audio_files(tmp_path)] == ["a.flac", "b.WAV"]
    assert [p.name for p in find_audio_files(tmp_path, recursive=True)] == ["a.flac", "b.WAV", "c.mp3"]


def test_folder_without_audio(tmp_path):
    (tmp_path / "readme.txt").touch()
    with pytest.raises(NoAudioFilesError, match="no audio files"):
        find_audio_files(tmp_path)
    with pytest.raises(AudioFileNotFoundError, match="no such folder"):
        find_audio_files(tmp_path / "missing")


def test_truncated_wav_is_refused(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, TONE, 16000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioDecodeError, match=r"cut\.wav: truncated: the header announces 32000 bytes"):
        read_audio(path)


@pytest.mark.parametrize(("fmt", "suffix"), [("FLAC", ".flac"), ("OGG", ".ogg")])
def test_truncated_compressed_file_is_refused_or_decodes_to_its_header_length(tmp_path, fmt, suffix):
    path = tmp_path / f"cut{suffix}"
    sf.write(path, np.tile(TONE, 4), 16000, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    try:
        samples, _ = read_audio(path)
    except AudioDecodeError as error:
        assert "cut" in str(error)
    else:
        assert len(samples) == sf.info(path).frames


def test_a_sample_spool_is_written_and_read_by_ranges_from_several_threads():
    values = np.random.default_rng(9).standard_normal(100_000)

    def write(first: int) -> None:
        spool[first : first + 999] = values[first : first + 999]

    with SampleSpool.create(len(values), np.float64, "talk.wav") as spool:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(write, range(0, 100_000, 999)))
            reads = list(pool.map(lambda first: spool.read(first, first + 5000), range(0, 100_000, 5000)))
        np.testing.assert_array_equal(np.concatenate(reads), values)
        with pytest.raises(ParameterError, match="outside"):
            spool.read(99_000, 100_001)
        with pytest.raises(ParameterError, match=r"\(3,\) values given for frames 0-2"):
            spool[0:2] = [1.0, 2.0, 3.0]
    assert spool.closed


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need a POSIX system")
def test_special_files_are_refused_before_anything_reads_them(tmp_path):
    from speechae.audio import file_sha256

    pipe = tmp_path / "pipe.wav"
    os.mkfifo(pipe)  # reading it would wait for a writer forever
    for read in (read_audio, file_sha256, lambda path: audio_frames(path)):
        with pytest.raises(
            AudioDecodeError, match=f"^{pipe}: is a named pipe \\(FIFO\\), not an audio file$"
        ):
            read(pipe)
    with pytest.raises(AudioDecodeError, match=r"^/dev/zero: is a character device, not an audio file$"):
        read_audio("/dev/zero")
    shutil.copy(EXAMPLE, tmp_path / "a.wav")
    assert [p.name for p in find_audio_files(tmp_path)] == ["a.wav", "pipe.wav"]  # listed, then refused


def test_sampling_rates_outside_the_documented_range_are_refused_from_the_header(tmp_path):
    import struct

    data = np.zeros(20000, "<i2").tobytes()
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, 1, 2, 2, 16)  # PCM, mono, 1 Hz
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + fmt + b"data"
    (tmp_path / "one_hz.wav").write_bytes(header + struct.pack("<I", len(data)) + data)
    with pytest.raises(
        AudioDecodeError, match=r"one_hz\.wav: the sampling rate of 1 Hz is outside 4000-384000 Hz"
    ):
        audio_frames(tmp_path / "one_hz.wav")


def _claiming_more(path: Path) -> bytes:
    """``path``'s bytes with a header that claims 2**35 frames more: FLAC's STREAMINFO, MP3's Xing."""
    data = bytearray(path.read_bytes())
    if path.suffix == ".flac":  # 36 bits of frames end the 8 bytes after rate, channels and depth
        fields = int.from_bytes(data[18:26], "big")
        data[18:26] = (fields | 1 << 35).to_bytes(8, "big")
    else:  # the MPEG frames the Xing tag counts (1152 samples each at 32-48 kHz, 576 below)
        tag = data.find(b"Xing")
        data[tag + 8 : tag + 12] = (1 << 26).to_bytes(4, "big")
    return bytes(data)


@pytest.mark.parametrize("suffix", [".flac", ".mp3"])
def test_a_small_file_whose_header_claims_hours_is_refused_before_decoding(tmp_path, suffix):
    sf.write(tmp_path / f"real{suffix}", np.sin(np.arange(32000) / 9.0) * 0.3, 16000)
    forged = tmp_path / f"forged{suffix}"
    forged.write_bytes(_claiming_more(tmp_path / f"real{suffix}"))
    claimed = sf.info(forged).frames
    assert claimed > 2**35
    claim = rf"forged\{suffix}: damaged header: it claims {claimed} frames \(\d+\.\d h\) in a file of"
    for read in (audio_frames, read_audio):
        with pytest.raises(
            AudioDecodeError, match=claim + rf" {forged.stat().st_size} bytes, more than 10000 per"
        ):
            read(forged)


def test_an_end_past_any_recording_is_its_end_and_a_start_past_it_is_named():
    assert segment_frames(0.5, 1e308, 16000, 48000) == (8000, None)
    assert segment_frames(0.5, 9.0, 16000, 48000) == (8000, None)
    assert segment_frames(0.5, 2.0, 16000, 48000) == (8000, 32000)
    with pytest.raises(
        ParameterError, match=r"starts at 1e\+308 s, after the end of the recording \(3\.00 s\)"
    ):
        segment_frames(1e308, None, 16000, 48000)
    assert read_audio(EXAMPLE, start=1.0, end=1e308)[0].shape == read_audio(EXAMPLE, start=1.0)[0].shape


def test_no_extensions_to_look_for_is_said_plainly(tmp_path):
    with pytest.raises(ParameterError, match="no file extensions to look for"):
        find_audio_files(tmp_path, extensions=("", ""))


def cut(source, target, fraction: float = 1 / 3):
    data = open(source, "rb").read()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        (".mp3", "truncated or corrupt: [0-9]+ of the 160000 frames its header records decode"),
        (".ogg", "truncated: the Ogg stream stops before its end-of-stream page"),
        (".flac", "lost sync|truncated"),
    ],
)
def test_a_file_cut_short_is_refused_where_its_container_records_its_length(tmp_path, suffix, message):
    samples = np.random.default_rng(0).standard_normal(160000) * 0.1
    whole = tmp_path / f"whole{suffix}"
    sf.write(whole, samples, 16000)
    assert len(read_audio(whole)[0]) >= 159000
    with pytest.raises(AudioDecodeError, match=message):
        read_audio(cut(whole, tmp_path / f"cut{suffix}", fraction=2 / 3))


def test_mp3_decoder_messages_are_kept_off_the_terminal(tmp_path, capfd):
    samples = np.sin(np.arange(48000) / 9.0) * 0.3
    sf.write(tmp_path / "whole.mp3", samples, 16000)
    data = (tmp_path / "whole.mp3").read_bytes()
    (tmp_path / "tail.mp3").write_bytes(data + b"\x32\x33\x2c\x32" * 100)  # stray bytes after the audio
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(
            read_audio(tmp_path / "tail.mp3")[0], read_audio(tmp_path / "whole.mp3")[0]
        )
    assert capfd.readouterr().err == ""  # libmpg123's seeking advice among them


@needs_shared
def test_an_mp3_that_ends_inside_a_frame_is_one_warning_of_ours_naming_the_file(capfd):
    path = CORPUS / "librivox_pie_and_patty_pan_48k_stereo.mp3"
    with pytest.warns(DecoderWarning) as warned:
        read_audio(path)
    assert [str(w.message) for w in warned] == [
        f"{path}: the MP3 stream ends inside a frame after byte 397440 (is the file cut short?); "
        "the frames before it were read"
    ]
    assert capfd.readouterr().err == ""


# Property-based: whatever bytes a file holds, reading it gives decoded audio or one of our errors,
# never another exception, within seconds.

FORMATS = {  # suffix: soundfile subtype
    ".wav": "PCM_16",
    ".flac": "PCM_16",
    ".ogg": "VORBIS",
    ".mp3": "MPEG_LAYER_III",
    ".aiff": "PCM_16",
}


@pytest.fixture(scope="module")
def real_files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("real")
    samples = np.sin(np.arange(24000) / 7.0) * 0.3 * np.sin(np.arange(24000) / 900.0)
    contents = {}
    for suffix, subtype in FORMATS.items():
        sf.write(folder / f"a{suffix}", samples, 16000, subtype=subtype)
        contents[suffix] = (folder / f"a{suffix}").read_bytes()
    return contents


def read_every_way(path) -> None:
    """Each reader of audio.py: decoded samples or a SpeechaeError, within ten seconds."""
    import signal

    def hung(*_):
        raise TimeoutError(f"reading {path} took more than ten seconds")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)
    try:
        for read in (read_audio, audio_frames, spool_audio):
            try:
                result = read(path)
            except SpeechaeError:
                continue
            if read is spool_audio:
                result.close()
            elif read is read_audio:
                assert isinstance(result[0], np.ndarray) and result[0].shape[0] > 0
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def hypothesis_settings():
    from hypothesis import HealthCheck, settings

    return settings(
        max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )


def test_random_bytes_are_audio_or_one_of_our_errors(tmp_path):
    from hypothesis import given
    from hypothesis import strategies as st

    @hypothesis_settings()
    @given(data=st.binary(max_size=2048), suffix=st.sampled_from(sorted(FORMATS)))
    def check(data, suffix):
        path = tmp_path / f"random{suffix}"
        path.write_bytes(data)
        read_every_way(path)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DecoderWarning)
        check()


def test_real_files_cut_or_damaged_anywhere_are_audio_or_one_of_our_errors(tmp_path, real_files):
    from hypothesis import given
    from hypothesis import strategies as st

    @hypothesis_settings()
    @given(
        suffix=st.sampled_from(sorted(FORMATS)),
        cut=st.floats(0.0, 1.0),
        damage=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
    )
    def check(suffix, cut, damage):
        data = bytearray(real_files[suffix][: int(len(real_files[suffix]) * cut)])
        for position, value in damage:  # headers live in the first bytes
            if position < len(data):
                data[position] = value
        path = tmp_path / f"damaged{suffix}"
        path.write_bytes(bytes(data))
        read_every_way(path)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DecoderWarning)
        check()


def test_a_segment_past_the_audio_that_decodes_is_named_as_such(tmp_path, monkeypatch):
    sf.write(tmp_path / "tiny.mp3", np.sin(np.arange(3000) / 5.0) * 0.3, 16000)
    info = sf.info

    def overestimated(path):  # as a variable-rate MP3 without a Xing frame may be
        estimate = info(path)
        estimate.frames *= 4
        return estimate

    monkeypatch.setattr(sf, "info", overestimated)
    with pytest.raises(ParameterError, match=r"the segment starts at 0\.5 s, after the end of the audio"):
        read_audio(tmp_path / "tiny.mp3", start=0.5)
