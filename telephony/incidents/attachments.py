"""Storing the files field teams attach to incidents.

An upload is streamed to a partial file under the storage root while its size is counted and
its SHA-256 computed; past the size limit the partial file is removed at once and nothing is
kept. A complete upload is flushed to disk and renamed to a name we make up
(``YYYY/MM/DD/<incident>-<random>.<ext>``): the client's file name is only ever a label in the
database, never part of a path. The content type is what the first bytes say the file is, not
what the client claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import uuid
from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Final
from zoneinfo import ZoneInfo

from telephony.core.storage import fsync_dir, stored_file
from telephony.incidents.errors import UploadTooLarge

log = logging.getLogger("telephony.incidents.attachments")

_PARTIAL_DIR: Final = ".partial"  # a leading dot: no stored path can name it
SNIFF_BYTES: Final = 512
OCTET_STREAM: Final = "application/octet-stream"

# Magic numbers of what field teams send: photos, documents, voice notes and videos.
_MAGIC: Final[tuple[tuple[bytes, int, str], ...]] = (
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"%PDF-", 0, "application/pdf"),
    (b"OggS", 0, "audio/ogg"),
    (b"ID3", 0, "audio/mpeg"),
    (b"PK\x03\x04", 0, "application/zip"),  # also docx / xlsx / odt
)
_EXTENSIONS: Final = {
    "image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp",
    "image/heic": "heic", "application/pdf": "pdf", "audio/ogg": "ogg",
    "audio/mpeg": "mp3", "audio/wav": "wav", "video/mp4": "mp4", "application/zip": "zip",
    "text/plain": "txt", OCTET_STREAM: "bin",
}


def sniff_content_type(head: bytes) -> str:
    """The content type the first bytes of a file show (``application/octet-stream`` when
    they show none we know). Pure."""
    for magic, offset, kind in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[4:8] == b"ftyp":
        return "image/heic" if head[8:12] in (b"heic", b"heix", b"mif1") else "video/mp4"
    if head and b"\x00" not in head:
        try:
            # A multi-byte character may be cut at the end of the sniffed bytes.
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 3:
                return OCTET_STREAM
        return "text/plain"
    return OCTET_STREAM


@dataclass(frozen=True)
class StoredUpload:
    """A complete upload in its final place."""

    stored_path: str  # relative to the storage root
    size_bytes: int
    sha256: str
    content_type: str


class AttachmentStore:
    """Attachment files under ``root``."""

    def __init__(self, root: Path, timezone: str) -> None:
        self._root = root
        self._zone = ZoneInfo(timezone)

    async def receive(
        self, incident_id: int, chunks: AsyncIterable[bytes], *, max_bytes: int
    ) -> StoredUpload:
        """Store an upload; :class:`UploadTooLarge` (nothing kept) past ``max_bytes``.

        Whatever ends the upload early (the limit, the client going away, a full disk), the
        partial file is removed.
        """
        partial_dir = self._root / _PARTIAL_DIR
        await asyncio.to_thread(partial_dir.mkdir, parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        partial = partial_dir / token
        digest = hashlib.sha256()
        head = b""
        size = 0
        handle: BinaryIO = await asyncio.to_thread(partial.open, "xb")
        try:
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise UploadTooLarge(max_bytes)
                    digest.update(chunk)
                    if len(head) < SNIFF_BYTES:
                        head += chunk[:SNIFF_BYTES - len(head)]
                    await asyncio.to_thread(handle.write, chunk)
                await asyncio.to_thread(_flush, handle)
            finally:
                await asyncio.to_thread(handle.close)
            content_type = sniff_content_type(head)
            now = datetime.now(self._zone)
            relative = (f"{now:%Y}/{now:%m}/{now:%d}/"
                        f"{incident_id}-{token}.{_EXTENSIONS[content_type]}")
            await asyncio.to_thread(_put_in_place, partial, self._root / relative)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        log.info("attachment of incident #%d stored as %s (%d bytes, %s)", incident_id,
                 relative, size, content_type)
        return StoredUpload(relative, size, digest.hexdigest(), content_type)

    def file(self, stored_path: str) -> Path:
        """The stored file; :class:`~telephony.core.storage.StoredFileError` if the path is unsafe
        or the file is gone."""
        return stored_file(self._root, stored_path)

    def discard(self, stored_path: str) -> None:
        """Remove a stored upload whose record could not be written."""
        with contextlib.suppress(OSError):
            (self._root / stored_path).unlink(missing_ok=True)


def _flush(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _put_in_place(partial: Path, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    partial.rename(final)
    fsync_dir(final.parent)
