"""Decoding of the Asterisk Manager Interface byte stream, and the panoramisk protocol using it.

:class:`AmiFrameDecoder` is sans-IO: bytes in, frames out. An AMI frame is a block of
``Key: value`` lines ended by a blank line. Keys may repeat (``Variable:`` in a ``Status``
event, ``Output:`` in a command response), so a frame keeps its lines as ordered pairs.
Every frame the decoder cannot accept (too big, too many lines, not ``Key: value``,
neither an event nor a response) is reported as a :class:`RejectedFrame` and skipped; the
stream continues with the next frame. Bytes that are not UTF-8 are escaped, not refused
(:func:`telephony.core.text.escaped_utf8`).

:class:`AmiProtocol` plugs the decoder into panoramisk (``Manager(protocol_factory=...)``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import ItemsView, Iterator
from dataclasses import dataclass
from typing import Any

from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from telephony.core.text import escaped_utf8

logger = logging.getLogger("telephony.ami")

BANNER_PREFIX = b"Asterisk Call Manager/"
DEFAULT_MAX_FRAME_BYTES = 65536
DEFAULT_MAX_FRAME_LINES = 1024
# Legacy (Asterisk < 14) "Response: Follows" command output ends with this line.
_END_COMMAND = "--END COMMAND--"
# A header name the fast path takes as it is: printable ASCII, no space, no colon, so that
# "Key: value" splits there and nowhere else, and ``key.strip()`` is the key itself.
_SIMPLE_KEY = re.compile(r"[!-9;-~]+")
# Lines seen lately -> their (key, value). Most lines of a busy stream repeat ("Privilege:
# dialplan,all", "Context: from-carrier", a live call's "Channel: ..."): a hit costs one lookup,
# and every frame shares the same pair. Emptied when full, so it holds what is current.
_pairs: dict[str, tuple[str, str]] = {}
_MAX_PAIRS = 8192


def _simple_pair(line: str) -> tuple[str, str] | None:
    """(key, value) of a ``Key: value`` line with a simple key, else None."""
    key, separator, value = line.partition(": ")
    if not separator or _SIMPLE_KEY.fullmatch(key) is None:
        return None
    if len(_pairs) >= _MAX_PAIRS:
        _pairs.clear()
    pair = _pairs[line] = (key, value)
    return pair


def _decode_simple_frame(lines: list[str]) -> AmiFrame | None:
    """The frame of these lines (decoded, none blank) when every one is ``Key: value`` with a
    simple key and the first is a non-empty Event or Response; else None, and
    :meth:`AmiFrameDecoder._decode` decodes them exactly, line by line.

    For such lines the result is what ``_decode`` gives: each has ": ", so there is no legacy
    command output, and a simple key has no colon and no space around it to strip.
    """
    fields = []
    known = _pairs.get
    for line in lines:
        pair = known(line) or _simple_pair(line)
        if pair is None:
            return None
        fields.append(pair)
    name, first = fields[0]
    if not first or name not in ("Event", "Response"):
        return None
    return AmiFrame(tuple(fields))


@dataclass(frozen=True, slots=True)
class AmiFrame:
    """One decoded AMI message: its ``Key: value`` lines, in order, repeated keys kept."""

    fields: tuple[tuple[str, str], ...]
    # Non-empty when invalid UTF-8 was escaped (\xNN): says where, for one log line.
    repaired: str = ""

    def get(self, key: str, default: str = "") -> str:
        """The first value of ``key`` (case-insensitive, as Asterisk matches headers)."""
        wanted = key.lower()
        return next((v for k, v in self.fields if k.lower() == wanted), default)

    def getall(self, key: str) -> list[str]:
        """Every value of ``key``, in order (case-insensitive)."""
        wanted = key.lower()
        return [v for k, v in self.fields if k.lower() == wanted]

    def to_message(self) -> Message:
        """The same frame as a panoramisk :class:`~panoramisk.message.Message`.

        panoramisk's convention for a repeated key is a list value (``Message.getdict`` and
        ``Action`` both expect it); a key seen once stays a plain string. Command output
        (``Output:`` lines) also becomes the message ``content``, as panoramisk expects.
        """
        fields = self.fields
        store = {pair[0].lower(): pair for pair in fields}
        if len(store) == len(fields):  # no key repeated (in any spelling): the common case
            output = store.get("output")
            store["content"] = ("content", output[1] if output is not None else "")
            return AmiMessage.from_store(store)
        headers: dict[str, Any] = {}
        names: dict[str, str] = {}
        for key, value in fields:
            name = names.setdefault(key.lower(), key)
            if name not in headers:
                headers[name] = value
            elif isinstance(headers[name], list):
                headers[name].append(value)
            else:
                headers[name] = [headers[name], value]
        return AmiMessage(headers, "\n".join(self.getall("Output")))


class AmiMessage(Message):  # type: ignore[misc]  # panoramisk ships no type hints
    """A panoramisk :class:`~panoramisk.message.Message` that is quicker to build and to read.

    ``Message(headers, content)`` stores each header through ``__setitem__`` and iterates
    ``items()`` through ``__getitem__``, a Python call per header each way, which cost more
    than decoding the frame. This one is made from its finished store, and iterates it
    directly; what it holds and yields is the same (tests/unit/test_ami_framing.py compares the
    two). ``_store`` (lower-cased key -> (key, value)) is panoramisk 1.4's own layout
    (``CaseInsensitiveDict``), which pyproject.toml pins.
    """

    @classmethod
    def from_store(cls, store: dict[str, tuple[str, Any]]) -> AmiMessage:
        """The message whose ``_store`` is ``store``, as ``Message.__init__`` would leave it."""
        message: AmiMessage = cls.__new__(cls)
        message._store = store
        message.manager = None
        return message

    def items(self) -> ItemsView[str, Any]:
        """(key, value) pairs in order, as ``Mapping.items`` gives them, without a call each."""
        return _StoreItems(self)


class _StoreItems(ItemsView[str, Any]):
    _mapping: AmiMessage

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(self._mapping._store.values())


@dataclass(frozen=True)
class RejectedFrame:
    """A frame the decoder skipped, and why (one line, safe to log)."""

    reason: str


class AmiFrameDecoder:
    """Incremental AMI frame decoder with bounded memory.

    ``feed`` accepts any split of the stream, down to single bytes. Lines end at ``\\n`` with
    an optional ``\\r`` before it: Asterisk writes ``\\r\\n`` but some paths (and relays) send a
    lone ``\\n``. The ``Asterisk Call Manager/x.y.z`` banner, if it is the first line, is
    recorded in :attr:`version` rather than taken as a frame.
    """

    # False: every line through the exact line-by-line path (the tests compare the two).
    _fast = True

    def __init__(
        self,
        *,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        max_frame_lines: int = DEFAULT_MAX_FRAME_LINES,
    ) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.max_frame_lines = max_frame_lines
        self.version: str | None = None
        self._buffer = bytearray()  # the incomplete line at the end of what was fed
        self._lines: list[bytes] = []  # complete lines of the current frame
        self._frame_bytes = 0
        self._at_start = True
        self._skipping = False
        # While skipping, part of the current line may already have been thrown away: then the
        # line is not blank even if what is left of it is.
        self._line_discarded = False

    def feed(self, data: bytes) -> list[AmiFrame | RejectedFrame]:
        """Consume ``data`` and return the frames it completed, rejections included, in order."""
        out: list[AmiFrame | RejectedFrame] = []
        buffer = self._buffer
        buffer += data
        start = 0
        if self._fast:
            # Line by line to the end of the frame the last feed left open (or of the banner,
            # or of a frame being skipped); then whole frames at once.
            while self._lines or self._skipping or self._at_start:
                end = buffer.find(b"\n", start)
                if end < 0:
                    break
                self._take_line(bytes(buffer[start:end]), out)
                start = end + 1
            else:
                start = self._take_frames(start, out)
        # The exact path, one line at a time: what the fast path left (the frame this feed
        # ends inside of, or everything after a lone LF).
        while (end := buffer.find(b"\n", start)) >= 0:
            self._take_line(bytes(buffer[start:end]), out)
            start = end + 1
        del buffer[:start]
        self._bound_partial_line(out)
        return out

    def _take_frames(self, start: int, out: list[AmiFrame | RejectedFrame]) -> int:
        """The fast path: the whole frames from ``start`` (a line start between frames), each
        split and decoded at once; returns where it stopped.

        It gives exactly what the line-by-line path gives the same bytes. Where every ``\n``
        follows a ``\r``, lines are what lies between ``\r\n``, a frame ends at ``\r\n\r\n``
        and nowhere else, and a frame within both bounds does not trip one line by line
        either. So it stops at the first frame with a lone LF (the line-by-line path takes
        everything from there), and hands a frame over a bound to that path line by line.
        """
        buffer = self._buffer
        end = buffer.rfind(b"\r\n\r\n", start)
        while end >= start + 2 and buffer[end - 2 : end] == b"\r\n":
            end -= 2  # more blank lines after the last frame: it ended at the first
        if end < 0:
            return start
        position = start
        for part in bytes(buffer[start:end]).split(b"\r\n\r\n"):
            at = position
            position += len(part) + 4
            piece = part.removeprefix(b"\r\n")  # one more blank line between frames: nothing
            if not piece:
                continue
            try:
                text: str | None = piece.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if text is not None:
                lines = text.split("\r\n")
                count = len(lines)
                lone_lf = text.count("\n") != count - 1
            else:
                count = piece.count(b"\r\n") + 1
                lone_lf = piece.count(b"\n") != count - 1
            if lone_lf:
                return at
            if len(piece) + 2 > self.max_frame_bytes or count > self.max_frame_lines:
                for raw in (piece + b"\r\n\r\n").split(b"\n")[:-1]:
                    self._take_line(raw, out)
                continue
            frame = _decode_simple_frame(lines) if text is not None else None
            out.append(frame or self._decode(piece.split(b"\r\n")))
        return end + 4

    def _take_line(self, raw: bytes, out: list[AmiFrame | RejectedFrame]) -> None:
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if self._at_start:
            self._at_start = False
            if line.startswith(BANNER_PREFIX):
                self.version = line[len(BANNER_PREFIX) :].decode("ascii", "replace").strip()
                return
        if self._skipping:
            if not line and not self._line_discarded:
                self._skipping = False
            self._line_discarded = False
            return
        if not line:
            if self._lines:
                out.append(self._decode(self._lines))
            self._reset_frame()
            return
        self._lines.append(line)
        self._frame_bytes += len(raw) + 1
        if self._frame_bytes > self.max_frame_bytes:
            self._start_skipping(out, f"frame exceeds {self.max_frame_bytes} bytes")
        elif len(self._lines) > self.max_frame_lines:
            self._start_skipping(out, f"frame exceeds {self.max_frame_lines} lines")

    def _bound_partial_line(self, out: list[AmiFrame | RejectedFrame]) -> None:
        if not self._skipping and self._frame_bytes + len(self._buffer) > self.max_frame_bytes:
            self._start_skipping(out, f"frame exceeds {self.max_frame_bytes} bytes")
        if self._skipping and self._buffer and self._buffer != b"\r":
            # Keep a trailing \r: with the \n still to come it may end a line we must see whole.
            self._line_discarded = True
            keep_cr = self._buffer.endswith(b"\r")
            self._buffer.clear()
            if keep_cr:
                self._buffer += b"\r"

    def _start_skipping(self, out: list[AmiFrame | RejectedFrame], reason: str) -> None:
        out.append(RejectedFrame(f"{reason}; skipped to the next blank line"))
        self._reset_frame()
        self._skipping = True

    def _reset_frame(self) -> None:
        self._lines = []
        self._frame_bytes = 0

    @staticmethod
    def _decode(raw_lines: list[bytes]) -> AmiFrame | RejectedFrame:
        fields: list[tuple[str, str]] = []
        in_output = False
        repaired = ""
        for number, raw in enumerate(raw_lines, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                # Asterisk passes caller numbers and names through as the carrier sent them.
                # Dropping the frame would drop that call's events (its Newchannel, its
                # Hangup): keep it, the bad bytes escaped as the IVR and the queue_log reader
                # escape them (escaped_utf8), and say so once.
                line = escaped_utf8(raw)
                repaired = repaired or (
                    f"invalid UTF-8 at byte {exc.start} of line {number} escaped: {raw[:80]!r}"
                )
            key, colon, value = line.partition(":")
            key = key.strip()
            legacy_output = in_output or (not colon and fields[:1] == [("Response", "Follows")])
            if legacy_output:
                # Asterisk < 14 wrote command output as raw lines after the headers.
                in_output = True
                if line != _END_COMMAND:
                    fields.append(("Output", line))
            elif not colon or not key:
                return RejectedFrame(f"line {number} is not 'Key: value': {line[:80]!r}")
            else:
                fields.append((key, value.removeprefix(" ")))
        frame = AmiFrame(tuple(fields), repaired)
        if not frame.get("Event") and not frame.get("Response"):
            keys = [key[:40] for key, _ in frame.fields[:5]]
            return RejectedFrame(f"neither Event nor Response, keys {keys!r}")
        return frame


class AmiProtocol(AMIProtocol):  # type: ignore[misc]  # panoramisk ships no type hints
    """panoramisk's AMI protocol, reading the stream through :class:`AmiFrameDecoder`."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start a fresh decoder for each connection (each one opens with its own banner)."""
        super().connection_made(transport)
        self.decoder = AmiFrameDecoder()

    def data_received(self, data: bytes) -> None:
        """Decode frames and hand each one to panoramisk's ``handle_message``.

        We replace panoramisk's ``data_received`` because it decodes with ``errors='ignore'``
        (silently dropping bytes, so a mangled value passes as a valid one), buffers without
        any bound, and splits frames only on ``\\r\\n\\r\\n`` (a frame ended by lone ``\\n``
        merges into the next one).
        """
        items = self.decoder.feed(data)
        self.version = self.decoder.version
        for item in items:
            if isinstance(item, RejectedFrame):
                logger.warning("rejected AMI frame: %s", item.reason)
            else:
                if item.repaired:
                    logger.warning("AMI frame kept: %s", item.repaired)
                self.handle_message(item.to_message())
