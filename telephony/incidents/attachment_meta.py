"""What is recorded of the files field teams attach to an incident, and the checks that keep
their names from escaping the storage root. Pure: storing the bytes is ``attachments``'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from telephony.core.text import holds_invisible
from telephony.incidents.errors import ValidationError


@dataclass(frozen=True)
class AttachmentMeta:
    """Validated metadata of one file a field team attached."""

    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    stored_path: str


@dataclass(frozen=True)
class Attachment:
    """An attachment as stored."""

    attachment_id: int
    incident_id: int
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    stored_path: str
    uploaded_by: str
    uploaded_at: datetime


_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Characters that mean something to a file system or a shell on some platform.
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")


def _path_segment(field: str, value: str, what: str) -> str:
    # Said apart from the rest: a name cut from a long page title is no attack, and "tidak
    # sah" left the field team guessing what to change.
    if len(value) > 200:
        raise ValidationError(field, f"{what} terlalu panjang (maksimal 200 karakter).")
    if (not value or value != value.strip() or value.startswith(".")
            or _UNSAFE_NAME.search(value) or holds_invisible(value)):
        raise ValidationError(field, f"{what} tidak sah: {value[:60]!r}.")
    return value


def check_filename(filename: object) -> str:
    """An attachment's display name as a client sends it: one plain name, no directories,
    no leading dot (checked before the upload is stored, so nothing is kept for a bad one)."""
    if not isinstance(filename, str):
        raise ValidationError("filename", "Nama berkas wajib diisi.")
    return _path_segment("filename", filename, "Nama berkas")


def parse_attachment(
    filename: object,
    content_type: object,
    size_bytes: object,
    sha256: object,
    stored_path: object,
    *,
    max_bytes: int,
) -> AttachmentMeta:
    """Validate attachment metadata; names that could escape the storage root are refused.

    ``filename`` is one plain name (no directories, no leading dot); ``stored_path`` is
    relative to the attachment storage root, made of such names.
    """
    name = check_filename(filename)
    if not isinstance(content_type, str) or not _CONTENT_TYPE.fullmatch(content_type.lower()):
        raise ValidationError("content_type", "Jenis berkas (content type) tidak sah.")
    if isinstance(size_bytes, bool) or not isinstance(size_bytes, int) or size_bytes < 0:
        raise ValidationError("size_bytes", "Ukuran berkas tidak sah.")
    if size_bytes == 0:
        # What a phone sends when the photo was not ready yet, or an upload cut short.
        raise ValidationError("size_bytes", "Berkas kosong (0 bita); pilih berkasnya lagi lalu "
                                            "unggah ulang.")
    if size_bytes > max_bytes:
        raise ValidationError(
            "size_bytes",
            f"Berkas terlalu besar (maksimal {max_bytes / 1_048_576:.0f} MB).",
        )
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256.lower()):
        raise ValidationError("sha256", "Checksum SHA-256 tidak sah.")
    if not isinstance(stored_path, str) or not stored_path or len(stored_path) > 500:
        raise ValidationError("stored_path", "Lokasi simpan berkas tidak sah.")
    for segment in stored_path.split("/"):
        _path_segment("stored_path", segment, "Lokasi simpan berkas")
    return AttachmentMeta(name, content_type.lower(), size_bytes, sha256.lower(), stored_path)
