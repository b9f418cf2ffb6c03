"""Repairing the sizes of a WAV header that Asterisk never finalised (pure, on bytes)."""

import io
import struct
import wave

import pytest

from recordings.wavheader import repaired_wav


def pcm_wav(frames: int, rate: int = 8000) -> bytes:
    """A finalised 16-bit mono PCM WAV, as Asterisk's format_wav closes it (44-byte header)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(range(256)) * (frames * 2 // 256) + b"\x01" * (frames * 2 % 256))
    return buffer.getvalue()


def unfinalised(data: bytes, *, riff: int = 0, size: int = 0, data_at: int = 40) -> bytes:
    """``data`` with its RIFF and data sizes as a crashed Asterisk leaves them."""
    broken = bytearray(data)
    struct.pack_into("<I", broken, 4, riff)
    struct.pack_into("<I", broken, data_at, size)
    return bytes(broken)


def g711_wav(samples: int, tag: int = 6) -> bytes:
    """A finalised A-law (6) or mu-law (7) WAV with an 18-byte fmt chunk and a fact chunk."""
    fmt = struct.pack("<HHIIHHH", tag, 1, 8000, 8000, 1, 8, 0)
    fact = struct.pack("<I", samples)
    audio = bytes(range(256)) * (samples // 256) + b"\xd5" * (samples % 256)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"fact" + struct.pack("<I", len(fact)) + fact
            + b"data" + struct.pack("<I", len(audio)) + audio)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def frames_of(data: bytes) -> int:
    with wave.open(io.BytesIO(data), "rb") as read:
        return read.getnframes()


def test_a_finalised_wav_needs_no_repair() -> None:
    assert repaired_wav(pcm_wav(8000)) is None
    assert repaired_wav(g711_wav(8000)) is None


@pytest.mark.parametrize(("riff", "size"), [(0, 0), (0xFFFFFFFF, 0xFFFFFFFF), (36, 0),
                                            (0, 0x7FFFFFFF)])
def test_sizes_that_are_zero_or_past_the_end_are_recomputed_from_the_length(
    riff: int, size: int
) -> None:
    good = pcm_wav(8000)
    repaired = repaired_wav(unfinalised(good, riff=riff, size=size))
    assert repaired == good
    assert repaired is not None and frames_of(repaired) == 8000


def test_only_the_riff_size_is_repaired_when_the_data_size_is_right() -> None:
    good = pcm_wav(800)
    broken = bytearray(good)
    struct.pack_into("<I", broken, 4, 0)
    assert repaired_wav(bytes(broken)) == good


def test_a_frame_cut_by_the_crash_is_dropped() -> None:
    good = pcm_wav(800)
    repaired = repaired_wav(unfinalised(good) + b"\x07")  # half a 16-bit sample
    assert repaired == good


@pytest.mark.parametrize("tag", [6, 7])
def test_g711_with_extra_chunks_is_repaired(tag: int) -> None:
    good = g711_wav(4001, tag)
    data_at = good.index(b"data") + 4
    repaired = repaired_wav(unfinalised(good, data_at=data_at))
    assert repaired == good


def test_the_original_bytes_are_left_alone() -> None:
    broken = unfinalised(pcm_wav(800))
    before = bytes(broken)
    repaired_wav(broken)
    assert broken == before


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"RIFF\x00\x00\x00\x00WAVE",  # no chunk at all
        b"RIFF\x00\x00\x00\x00WAVEjunk\xff\xff\xff\x7f" + bytes(4000),  # garbage chunk
        b"RIFX" + unfinalised(pcm_wav(800))[4:],  # big-endian RIFF: not Asterisk's
        unfinalised(pcm_wav(800))[:30],  # header cut short inside fmt
        unfinalised(pcm_wav(800))[:44],  # a header and not one frame
        b"RIFF\x00\x00\x00\x00WAVEdata\x00\x00\x00\x00" + bytes(800),  # audio without format
        b"OggS" + bytes(4000),
    ],
    ids=["empty", "no-chunks", "garbage", "rifx", "cut-fmt", "no-frames", "no-fmt", "ogg"],
)
def test_anything_but_a_trustworthy_header_is_left_to_the_decoder(data: bytes) -> None:
    assert repaired_wav(data) is None


@pytest.mark.parametrize(
    ("offset", "value", "pack"),
    [
        (20, 0xFFFE, "<H"),  # WAVE_FORMAT_EXTENSIBLE: not a plain header
        (20, 85, "<H"),  # MP3 in a WAV
        (22, 0, "<H"),  # no channels
        (24, 100, "<I"),  # 100 Hz
        (28, 12345, "<I"),  # byte rate disagrees with rate and frame size
        (32, 3, "<H"),  # frame size disagrees with channels and bits
        (34, 12, "<H"),  # 12-bit PCM
    ],
)
def test_an_inconsistent_format_chunk_is_not_trusted(offset: int, value: int, pack: str) -> None:
    broken = bytearray(unfinalised(pcm_wav(800)))
    struct.pack_into(pack, broken, offset, value)
    assert repaired_wav(bytes(broken)) is None


def test_a_plausible_smaller_data_size_is_kept() -> None:
    """Trailing bytes after a finalised data chunk are not ours to reinterpret."""
    good = pcm_wav(800)
    assert repaired_wav(good + b"LIST\x04\x00\x00\x00abcd") is None
