"""Text no record of the line can hold, whichever way it came in (a JSON body, a form, a
document an admin pasted, a header)."""

from __future__ import annotations

import errno
import re
import unicodedata
from typing import Final

# NUL (PostgreSQL refuses it in text and JSONB) and lone surrogates (they cannot be encoded, so
# no query, file or log line could carry them; undecodable bytes arrive as those).
_UNSAFE_TEXT: Final = re.compile(r"[\x00\ud800-\udfff]")


# Bidirectional formatting characters: the embeddings and overrides (U+202A-U+202E), the
# isolates (U+2066-U+2069) and the marks (U+200E, U+200F). Invisible, and an override shows
# what follows it reversed: in a name, "\u202eanirS" displays as "Srina", so one record can
# pass for another. No keyboard types them; they come pasted.
_BIDI: Final = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# What cannot be part of one line: C0 and C1 controls (line breaks and tabs among them), DEL,
# and the line and paragraph separators.
_LINE_BREAKING: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")

BIDI_MESSAGE: Final = ("tidak boleh berisi karakter pengatur arah teks (bidi), yang bisa "
                       "membuat nama tampil terbalik")


# The Unicode categories no name, caller id, note or log line needs: controls, format
# characters (the bidi overrides that show "gpj.exe" as "exe.jpg", zero-width joiners), private
# use, surrogates, unassigned code points, and the line and paragraph separators. Each can hide
# or disguise what a record says.
INVISIBLE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})


def invisible(char: str) -> bool:
    """Whether ``char`` is in one of the :data:`INVISIBLE_CATEGORIES`."""
    return unicodedata.category(char) in INVISIBLE_CATEGORIES


def holds_invisible(text: str) -> bool:
    """Whether any character of ``text`` is :func:`invisible`."""
    # A printable string has no character in any "Other" or "Separator" category but the
    # space, so the common case needs no lookup per character
    # (tests/unit/test_core_text.py checks this on every code point).
    return not text.isprintable() and any(invisible(char) for char in text)


def unsafe_text(text: str) -> bool:
    """Whether ``text`` holds a NUL or a lone surrogate."""
    return _UNSAFE_TEXT.search(text) is not None


def bidi_control(text: str) -> bool:
    """Whether ``text`` holds a bidirectional formatting character (override, embedding,
    isolate or mark). Single-line names and identifiers refuse them; multi-line free text
    keeps them (see ``telephony.incidents.model.clean_text``)."""
    return _BIDI.search(text) is not None


def unsafe_line(text: str) -> bool:
    """Whether ``text`` cannot be one line of a name or identifier: :func:`unsafe_text`, a
    control character (a line break, a tab), a line or paragraph separator, or a bidi
    control (:func:`bidi_control`)."""
    return unsafe_text(text) or _LINE_BREAKING.search(text) is not None or bidi_control(text)


def holds_unsafe_text(value: object) -> bool:
    """Whether decoded JSON holds unsafe text in any string or key, at any depth (walked
    without recursion: the value may be hostile)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str) and unsafe_text(item):
            return True
    return False


def escaped_utf8(raw: bytes) -> str:
    """``raw`` decoded as UTF-8, each byte that is not part of valid UTF-8 written as ``\\xNN``.

    Asterisk passes a caller's number and name through as the carrier sent them (PJSIP
    unescapes ``%C3%28`` in the From user), into the AGI environment, every AMI event of the
    channel and the queue_log alike. Each reader decodes them this one way, so the IVR runs its
    menu for such a caller, the call is recorded with the number visible, and the IVR's
    screening finds the history the recorder wrote under the same text. U+FFFD would hide
    which bytes came, and two different numbers would read the same.
    """
    return raw.decode("utf-8", "backslashreplace")


def ascii_digits(text: str) -> bool:
    """Whether ``text`` is one or more of the digits 0-9. ``str.isdigit()`` and ``isdecimal()``
    also take other scripts' digits ("١٢") and, isdigit, superscripts ("²"), which ``int()``
    reads as another number or refuses with a ValueError: a number we parse is ASCII."""
    return text.isascii() and text.isdigit()


# No number a person or client gives us (an id, a level, a priority, a page) has more digits;
# past 4300 Python's int() refuses the text with a ValueError, where the caller expects a
# number or a refusal of its own (a 500 in the API).
MAX_DIGITS: Final = 18


def whole_number(text: str) -> int | None:
    """``text`` as a whole number when it is 1-18 ASCII digits; ``None`` otherwise."""
    return int(text) if ascii_digits(text) and len(text) <= MAX_DIGITS else None


# The reasons an administrator meets when the line cannot read or write a file, in the
# language of the rest of the message. ``strerror`` is the C library's, in English; any errno
# not named here keeps it, which is still one readable line.
_OS_REASONS: Final[dict[int, str]] = {
    errno.ENOENT: "berkas atau direktori tidak ada",
    errno.EACCES: "izin ditolak",
    errno.EPERM: "operasi tidak diizinkan",
    errno.ENOSPC: "ruang disk habis",
    errno.EDQUOT: "kuota disk habis",
    errno.EROFS: "sistem berkas hanya-baca",
    errno.ENOTDIR: "bagian jalurnya bukan direktori",
    errno.EISDIR: "jalur itu sebuah direktori",
    errno.EEXIST: "berkas sudah ada",
    errno.ENAMETOOLONG: "nama berkas terlalu panjang",
    errno.EIO: "galat masukan/keluaran pada disk",
    errno.ENOEXEC: "berkas tidak dapat dijalankan",
    errno.ENOMEM: "memori tidak cukup",
    errno.EMFILE: "terlalu banyak berkas terbuka",
}


def os_reason(exc: OSError) -> str:
    """Why ``exc`` happened, in Bahasa Indonesia where the errno is a common one."""
    if exc.errno is not None and exc.errno in _OS_REASONS:
        return _OS_REASONS[exc.errno]
    return exc.strerror or str(exc)
