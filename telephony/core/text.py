"""Text no record of the line can hold, whichever way it came in (a JSON body, a form, a
document an admin pasted, a header)."""

from __future__ import annotations

import re
from typing import Final

# NUL (PostgreSQL refuses it in text and JSONB) and lone surrogates (they cannot be encoded, so
# no query, file or log line could carry them; undecodable bytes arrive as those).
_UNSAFE_TEXT: Final = re.compile(r"[\x00\ud800-\udfff]")


def unsafe_text(text: str) -> bool:
    """Whether ``text`` holds a NUL or a lone surrogate."""
    return _UNSAFE_TEXT.search(text) is not None


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


def ascii_digits(text: str) -> bool:
    """Whether ``text`` is one or more of the digits 0-9. ``str.isdigit()`` and ``isdecimal()``
    also take other scripts' digits ("١٢") and, isdigit, superscripts ("²"), which ``int()``
    reads as another number or refuses with a ValueError: a number we parse is ASCII."""
    return text.isascii() and text.isdigit()
