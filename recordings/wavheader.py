"""Repairing the header of a WAV file that Asterisk never finalised (pure: bytes in, bytes out).

Asterisk writes a WAV header with RIFF and data sizes of 0 when it opens a recording and fills
them in when it closes the file. If Asterisk crashes (or is SIGKILLed) during the call, the
file holds every frame written so far behind a header that says it holds nothing: decoders read
0 bytes of audio and the recording would be quarantined as empty. The sizes are redundant with
the file's length, so they can be recomputed from it.

This is done only for a header we can trust otherwise (RIFF/WAVE, a plain PCM or G.711 ``fmt ``
chunk whose numbers agree with each other, well-formed chunks up to ``data``) and only when a
size is 0 or points past the end of the file; anything else is left for the decoder to judge,
so a truncated or garbage file is still quarantined. The repaired copy is what gets decoded;
the original bytes are never changed here.
"""

from __future__ import annotations

import struct

PCM = 1
ALAW = 6
MULAW = 7
_BITS = {PCM: (8, 16, 24, 32), ALAW: (8,), MULAW: (8,)}
_FMT_SIZES = (16, 18)  # WAVEFORMAT (PCM) and WAVEFORMATEX (cbSize 0, as G.711 files carry)
_MAX_CHUNKS = 32  # Asterisk writes fmt and data; a few fact/LIST chunks at most elsewhere


def repaired_wav(data: bytes) -> bytes | None:
    """``data`` with its RIFF and data chunk sizes recomputed from its length; None when there
    is nothing to repair or the header is not one to trust (decode the file as it is).

    A data size that is 0 or runs past the end becomes what the file holds, rounded down to
    whole frames (a crash may cut the last one), and the copy drops the partial frame; a RIFF
    size that is 0 or runs past the end becomes the copy's length less 8.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    block_align: int | None = None
    position = 12
    for _ in range(_MAX_CHUNKS):
        if position + 8 > len(data):
            return None  # no data chunk
        chunk_id = data[position:position + 4]
        (size,) = struct.unpack_from("<I", data, position + 4)
        start = position + 8
        if chunk_id == b"data":
            if block_align is None:
                return None  # audio before its format: not a header we wrote or can read
            return _with_sizes(data, start, size, block_align)
        if not _is_chunk_id(chunk_id) or start + size > len(data):
            return None  # garbage, or a header cut short: not ours to guess at
        if chunk_id == b"fmt ":
            if block_align is not None:
                return None
            block_align = _block_align(data[start:start + size])
            if block_align is None:
                return None
        position = start + size + (size & 1)  # chunks are padded to even sizes
    return None


def _with_sizes(data: bytes, start: int, size: int, block_align: int) -> bytes | None:
    """The copy with the data size (chunk payload from ``start``) and the RIFF size mended."""
    available = len(data) - start
    data_repaired = size == 0 or size > available
    if data_repaired:
        size = available - available % block_align
        if size == 0:
            return None  # no whole frame: nothing to recover, the decoder reports it empty
    (riff_size,) = struct.unpack_from("<I", data, 4)
    if not data_repaired and 0 < riff_size <= len(data) - 8:
        return None  # both sizes are plausible: nothing to repair
    repaired = bytearray(data[:start + size] if data_repaired else data)
    struct.pack_into("<I", repaired, 4, len(repaired) - 8)
    struct.pack_into("<I", repaired, start - 4, size)
    return bytes(repaired)


def _block_align(fmt: bytes) -> int | None:
    """The frame size of a plain PCM or G.711 format chunk whose fields agree; else None."""
    if len(fmt) not in _FMT_SIZES:
        return None
    fields: tuple[int, ...] = struct.unpack_from("<HHIIHH", fmt)
    tag, channels, rate, byte_rate, block_align, bits = fields
    if len(fmt) == 18 and struct.unpack_from("<H", fmt, 16)[0] != 0:
        return None  # extra format bytes: not a plain PCM or G.711 header
    if tag not in _BITS or bits not in _BITS[tag] or not 1 <= channels <= 8:
        return None
    if not 4000 <= rate <= 192_000 or block_align != channels * bits // 8:
        return None
    if byte_rate != rate * block_align:
        return None
    return block_align


def _is_chunk_id(chunk_id: bytes) -> bool:
    """Four printable ASCII characters, as every RIFF chunk id is."""
    return all(0x20 <= byte < 0x7F for byte in chunk_id)
