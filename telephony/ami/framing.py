"""Decoding of the Asterisk Manager Interface byte stream, and the panoramisk protocol using it.

:class:`AmiFrameDecoder` is sans-IO: bytes in, frames out. An AMI frame is a block of
``Key: value`` lines ended by a blank line. Keys may repeat (``Variable:`` in a ``Status``
event, ``Output:`` in a command response), so a frame keeps its lines as ordered pairs.
Every frame the decoder cannot accept (too big, too many lines, not UTF-8, not ``Key: value``,
neither an event nor a response) is reported as a :class:`RejectedFrame` and skipped; the
stream continues with the next frame.

:class:`AmiProtocol` plugs the decoder into panoramisk (``Manager(protocol_factory=...)``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

logger = logging.getLogger("telephony.ami")

BANNER_PREFIX = b"Asterisk Call Manager/"
DEFAULT_MAX_FRAME_BYTES = 65536
DEFAULT_MAX_FRAME_LINES = 1024
# Legacy (Asterisk < 14) "Response: Follows" command output ends with this line.
_END_COMMAND = "--END COMMAND--"


@dataclass(frozen=True)
class AmiFrame:
    """One decoded AMI message: its ``Key: value`` lines, in order, repeated keys kept."""

    fields: tuple[tuple[str, str], ...]
    # Non-empty when invalid UTF-8 was replaced by U+FFFD: says where, for one log line.
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
        headers: dict[str, Any] = {}
        names: dict[str, str] = {}
        for key, value in self.fields:
            name = names.setdefault(key.lower(), key)
            if name not in headers:
                headers[name] = value
            elif isinstance(headers[name], list):
                headers[name].append(value)
            else:
                headers[name] = [headers[name], value]
        return Message(headers, "\n".join(self.getall("Output")))


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
        self._buffer += data
        start = 0
        while (end := self._buffer.find(b"\n", start)) >= 0:
            line = bytes(self._buffer[start:end])
            start = end + 1
            self._take_line(line, out)
        del self._buffer[:start]
        self._bound_partial_line(out)
        return out

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
                # Asterisk passes caller names through as the carrier sent them. Dropping the
                # frame would drop that call's events (its Newchannel, its Hangup): keep it,
                # with the bad bytes visibly replaced, and say so once.
                line = raw.decode("utf-8", errors="replace")
                repaired = repaired or (
                    f"invalid UTF-8 at byte {exc.start} of line {number} replaced: {raw[:80]!r}"
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
