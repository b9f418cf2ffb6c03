"""The FastAGI wire protocol, without I/O (sans-IO, in the style of h11).

Asterisk's res_agi opens a TCP connection to us, sends an environment block (``agi_key: value``
lines ended by a blank line), then answers each command line we send with one reply. This
module turns bytes into typed objects and commands into bytes; the asyncio layer in
:mod:`telephony.agi.server` only moves bytes.

We do not reuse panoramisk here: its ``parse_agi_result`` needs a non-empty value, so
``200 result= (timeout)`` loses the timeout, and its FastAGI handler loops on
``reader.read()`` until a blank line with an unbounded buffer, spinning forever at EOF
(``read()`` then returns at once without yielding, so the whole event loop freezes).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, TypeVar

from telephony.core.errors import SiagaError
from telephony.core.text import ascii_digits, escaped_utf8

DEFAULT_MAX_FRAME_BYTES: Final = 16384
# Asterisk sends ~22 lines plus one per AGI() argument, and splits at most 128 arguments.
DEFAULT_MAX_ENVIRONMENT_LINES: Final = 256
DEFAULT_MAX_USAGE_LINES: Final = 256
# res_agi reads a FastAGI command with fgets() into char buf[AGI_BUF_LEN = 8192]: 8191 bytes
# including the newline fit; a longer line would be split into two commands.
MAX_COMMAND_BYTES: Final = 8191
# res_agi's parse_args() keeps MAX_ARGS - 1 = 127 words and silently truncates the rest.
MAX_COMMAND_WORDS: Final = 127

_KEY = re.compile(r"agi_[a-z0-9_]+")
_VERB = re.compile(r"[A-Z]+(?: [A-Z]+)*")
_STATUS = re.compile(r"(?P<code>[0-9]{3})(?P<sep>[ -])(?P<rest>.*)")
_RESULT = re.compile(r"result=(?P<result>\S*)(?: (?P<tail>.*))?")
_ENDPOS = re.compile(r"(?:^|\s)endpos=(?P<endpos>-?[0-9]+)$")
_USAGE_END = "520 End of proper usage."
_UNSAFE_IN_ARGUMENT = re.compile(r"[\r\n\0]")
# The only characters res_agi's parse_args() treats specially.
_NEEDS_QUOTES = re.compile(r'[ \t"\\]')
_SHOWN_CHARS = 60
_K = TypeVar("_K")
_V = TypeVar("_V")


class AgiProtocolError(SiagaError):
    """The peer broke the AGI protocol, or a command could not be encoded safely."""


class AgiDecodeError(AgiProtocolError):
    """A line is not valid UTF-8."""


class AgiSyntaxError(AgiProtocolError):
    """A line does not follow the environment or reply grammar."""


class AgiEnvironmentKeyError(AgiProtocolError):
    """An environment key does not start with ``agi_``, has odd characters, or repeats."""


class AgiFrameTooLargeError(AgiProtocolError):
    """A line, the environment block or a multi-line reply exceeds its bound."""


class AgiIncompleteError(AgiProtocolError):
    """The connection ended in the middle of a line or a block."""


class AgiArgumentError(AgiProtocolError, ValueError):
    """A command or argument cannot be sent safely (CR/LF/NUL, too long, bad verb)."""


def _shown(text: str) -> str:
    """Untrusted text for a one-line message: repr() escapes newlines, and it is cut short."""
    if len(text) > _SHOWN_CHARS:
        return repr(text[:_SHOWN_CHARS]) + "..."
    return repr(text)


class _LineSplitter:
    """Cuts a byte stream into lines. It does not bound them: each parser bounds what it owns."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """How many bytes wait for their newline."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Every line ``data`` completes, without its newline (a trailing CR is kept)."""
        if not self._buffer and data.endswith(b"\n"):
            return data[:-1].split(b"\n")  # the usual read: whole lines, nothing left over
        self._buffer += data
        end = self._buffer.rfind(b"\n")
        if end == -1:
            return []
        complete = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return complete.split(b"\n")

    def take_rest(self) -> bytes:
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest


def _index(lines: list[bytes], line: bytes) -> int:
    """Where ``line`` first is in ``lines``, or ``len(lines)``."""
    try:
        return lines.index(line)
    except ValueError:
        return len(lines)


# The agi_* names seen so far: Asterisk sends the same two dozen (and agi_arg_N) every call.
_agi_keys: set[str] = set()
_MAX_AGI_KEYS = 1024  # made-up names must not grow it without end


def _is_agi_key(key: str) -> bool:
    if _KEY.fullmatch(key) is None:
        return False
    if len(_agi_keys) < _MAX_AGI_KEYS:
        _agi_keys.add(key)
    return True


def _strip_cr(line: bytes) -> bytes:
    # Asterisk ends lines with "\n"; a proxy or a hand-written test client may send "\r\n".
    return line[:-1] if line.endswith(b"\r") else line


@dataclass(frozen=True)
class AgiEnvironment:
    """The ``agi_*`` variables Asterisk sends when a session starts.

    Accessors return ``""`` for a key Asterisk did not send. Asterisk itself sends the literal
    ``unknown`` for an absent caller ID, DNID or RDNIS; that is passed through unchanged.
    """

    variables: Mapping[str, str]

    def get(self, key: str, default: str = "") -> str:
        """The value of ``key`` (with its ``agi_`` prefix), or ``default``."""
        return self.variables.get(key, default)

    @property
    def network(self) -> bool:
        """True for a FastAGI (``agi://``) session."""
        return self.get("agi_network") == "yes"

    @property
    def network_script(self) -> str:
        """The part of ``agi://host:port/<script>`` after the slash, query included."""
        return self.get("agi_network_script")

    @property
    def script_path(self) -> str:
        """:attr:`network_script` without a ``?query``; this is what routes match on."""
        return self.network_script.partition("?")[0]

    @property
    def request(self) -> str:
        """The full AGI URL from the dialplan."""
        return self.get("agi_request")

    @property
    def channel(self) -> str:
        """Channel name, e.g. ``PJSIP/caller-00000001``."""
        return self.get("agi_channel")

    @property
    def uniqueid(self) -> str:
        """The channel's unique id, the key that joins AGI, AMI and CDR records."""
        return self.get("agi_uniqueid")

    @property
    def callerid(self) -> str:
        """Caller number (``unknown`` if Asterisk has none)."""
        return self.get("agi_callerid")

    @property
    def calleridname(self) -> str:
        """Caller display name (``unknown`` if Asterisk has none)."""
        return self.get("agi_calleridname")

    @property
    def dnid(self) -> str:
        """The number the caller dialled."""
        return self.get("agi_dnid")

    @property
    def context(self) -> str:
        """Dialplan context the AGI was started from."""
        return self.get("agi_context")

    @property
    def extension(self) -> str:
        """Dialplan extension the AGI was started from."""
        return self.get("agi_extension")

    @property
    def priority(self) -> int | None:
        """Dialplan priority, or None if absent or not a number."""
        value = self.get("agi_priority")
        return int(value) if ascii_digits(value) else None

    @property
    def language(self) -> str:
        """Channel language, which selects the prompt directory."""
        return self.get("agi_language")

    @property
    def enhanced(self) -> bool:
        """True for EAGI (audio on fd 3); never for FastAGI."""
        return self.get("agi_enhanced") == "1.0"

    @property
    def arguments(self) -> tuple[str, ...]:
        """``agi_arg_1``, ``agi_arg_2``, ... in order (the AGI() application's arguments)."""
        args: list[str] = []
        while (key := f"agi_arg_{len(args) + 1}") in self.variables:
            args.append(self.variables[key])
        return tuple(args)


class EnvironmentParser:
    """Parses the environment block; :meth:`feed` returns it once the blank line arrives."""

    def __init__(
        self,
        max_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        max_lines: int = DEFAULT_MAX_ENVIRONMENT_LINES,
    ) -> None:
        self._lines = _LineSplitter()
        self._max_bytes = max_bytes
        self._max_lines = max_lines
        self._block_bytes = 0
        self._line_count = 0
        self._variables: dict[str, str] = {}
        self._environment: AgiEnvironment | None = None
        self._remainder = b""

    @property
    def remainder(self) -> bytes:
        """Bytes fed after the blank line; they belong to the reply stream."""
        return self._remainder

    def feed(self, data: bytes) -> AgiEnvironment | None:
        """Consume ``data``; return the environment once complete, else None.

        Raises a subclass of :class:`AgiProtocolError` on the first violation.
        """
        if self._environment is not None:
            raise RuntimeError("the environment block is already complete")
        lines = self._lines.feed(data)
        # The lines before the blank one, all at once when they are the common case; the loop
        # below then starts at the blank line. Otherwise the loop takes every line itself, and
        # raises at the first bad one.
        end = min(_index(lines, b""), _index(lines, b"\r"))
        done = end if self._add_lines_at_once(lines[:end]) else 0
        for index, raw in enumerate(lines[done:], start=done):
            self._block_bytes += len(raw) + 1
            if self._block_bytes > self._max_bytes:
                raise AgiFrameTooLargeError(
                    f"environment block larger than {self._max_bytes} bytes"
                )
            line = _strip_cr(raw)
            if not line:
                self._environment = AgiEnvironment(MappingProxyType(self._variables))
                after = lines[index + 1 :]
                self._remainder = b"".join(rest + b"\n" for rest in after) + self._lines.take_rest()
                return self._environment
            self._add_line(line)
        if self._lines.pending > self._max_bytes:
            raise AgiFrameTooLargeError(f"environment line longer than {self._max_bytes} bytes")
        if self._block_bytes + self._lines.pending > self._max_bytes:
            raise AgiFrameTooLargeError(f"environment block larger than {self._max_bytes} bytes")
        return None

    def feed_eof(self) -> AgiEnvironment:
        """The connection ended: the environment if it was whole, else raise.

        Raises :class:`AgiIncompleteError` when the blank line never came.
        """
        if self._environment is None:
            raise AgiIncompleteError(
                f"connection closed after {self._line_count} environment lines, "
                "before the blank line"
            )
        return self._environment

    def _add_lines_at_once(self, block: list[bytes]) -> bool:
        """Add ``block`` (lines, none blank) whole and say True, if the line-by-line path
        would accept every one of them (within the bounds, no CR, ``agi_*: value``, no
        key repeated); else change nothing and say False."""
        if not block:
            return True
        size = self._block_bytes + sum(map(len, block)) + len(block)
        if size > self._max_bytes or self._line_count + len(block) > self._max_lines:
            return False
        text = escaped_utf8(b"\n".join(block))
        if "\r" in text:
            return False
        parts = [line.partition(": ") for line in text.split("\n")]
        variables = {
            key: value
            for key, separator, value in parts
            if separator and (key in _agi_keys or _is_agi_key(key))
        }
        if len(variables) != len(parts) or not variables.keys().isdisjoint(self._variables):
            return False
        self._variables.update(variables)
        self._block_bytes = size
        self._line_count += len(block)
        return True

    def _add_line(self, raw: bytes) -> None:
        self._line_count += 1
        number = self._line_count
        if number > self._max_lines:
            raise AgiFrameTooLargeError(f"environment block longer than {self._max_lines} lines")
        # A value is decoded as escaped_utf8 does: a caller number or name with bytes that are
        # not UTF-8 is the caller's (the carrier's), and refusing it would skip the menu. A key
        # with such bytes holds a backslash then, which no agi_* name does.
        text = escaped_utf8(raw)
        key, separator, value = text.partition(": ")
        if not separator:
            raise AgiSyntaxError(f"environment line {number} has no ': ': {_shown(text)}")
        if not _KEY.fullmatch(key):
            raise AgiEnvironmentKeyError(
                f"environment line {number}: key {_shown(key)} is not an agi_* name"
            )
        if key in self._variables:
            raise AgiEnvironmentKeyError(f"environment line {number}: duplicate key {key}")
        self._variables[key] = value


@dataclass(frozen=True, slots=True)
class AgiReply:
    """One reply to a command.

    ``code`` is 200 on success; 510 (unknown command), 511 (not permitted on a dead channel),
    520 (usage) and other 5xx are refusals. For 200, ``result`` is the raw text after
    ``result=`` (may be empty: ``200 result= (timeout)``), ``data`` the parenthesised text or
    any free text after it, ``endpos`` the playback offset some commands add.
    """

    code: int
    line: str
    result: str | None = None
    data: str | None = None
    endpos: int | None = None

    @property
    def ok(self) -> bool:
        """True for a 200 reply (the command ran; ``result`` says how it went)."""
        return self.code == 200


@dataclass(frozen=True, slots=True)
class AgiHangup:
    """The bare ``HANGUP`` line res_agi sends to a FastAGI peer when the caller hangs up.

    After it the channel is dead: most commands then answer 511.
    """


AgiEvent = AgiReply | AgiHangup


def _parse_success(line: str, rest: str) -> AgiReply:
    match = _RESULT.fullmatch(rest)
    if match is None:
        raise AgiSyntaxError(f"200 reply without result=: {_shown(line)}")
    tail = match["tail"] or ""
    endpos: int | None = None
    if endpos_match := _ENDPOS.search(tail):
        endpos = int(endpos_match["endpos"])
        tail = tail[: endpos_match.start()]
    tail = tail.strip()
    # GET VARIABLE's value may itself contain parentheses; Asterisk prints "(%s)" verbatim, so
    # the data is everything between the first "(" and the last ")".
    if tail.startswith("(") and tail.endswith(")"):
        data: str | None = tail[1:-1]
    else:
        data = tail or None
    return AgiReply(code=200, line=line, result=match["result"], data=data, endpos=endpos)


# Reply lines seen lately -> what they mean. Replies repeat ("200 result=1", "HANGUP", "200
# result= (timeout)"), and outside a 520 usage block what a line means does not depend on what
# came before it: a line met again is looked up, not parsed. Events are immutable: shared.
_replies: dict[bytes, AgiEvent] = {}
# Commands sent lately -> their line; the IVR sends the same few over and over.
_commands: dict[tuple[str, ...], bytes] = {}
_MAX_REMEMBERED = 1024  # each memo is emptied when full, so it holds what is current


def _remember(memo: dict[_K, _V], key: _K, value: _V) -> None:
    if len(memo) >= _MAX_REMEMBERED:
        memo.clear()
    memo[key] = value


class ReplyParser:
    """Parses the reply stream; :meth:`feed` returns every event completed by ``data``.

    ``100 result=0 Trying...`` (an intermediate notice sent by GOSUB) is skipped. A
    ``520-...`` usage block is returned as one reply when its ``520 End of proper usage.``
    line arrives.
    """

    def __init__(
        self,
        max_line_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        max_usage_lines: int = DEFAULT_MAX_USAGE_LINES,
    ) -> None:
        self._lines = _LineSplitter()
        self._max_line_bytes = max_line_bytes
        self._max_usage_bytes = max_line_bytes
        self._max_usage_lines = max_usage_lines
        self._usage: list[str] | None = None
        self._usage_bytes = 0

    def feed(self, data: bytes) -> list[AgiEvent]:
        """Consume ``data``; return the events it completes, in order."""
        events: list[AgiEvent] = []
        for raw in self._lines.feed(data):
            if len(raw) >= self._max_line_bytes:
                raise AgiFrameTooLargeError(f"reply line longer than {self._max_line_bytes} bytes")
            if self._usage is None and (known := _replies.get(raw)) is not None:
                events.append(known)
                continue
            try:
                line = _strip_cr(raw).decode("utf-8")
            except UnicodeDecodeError:
                raise AgiDecodeError("invalid UTF-8 in an AGI reply") from None
            if self._usage is not None:
                event: AgiEvent | None = self._continue_usage(self._usage, line, len(raw) + 1)
            else:
                event = self._parse_line(line, len(raw) + 1)
                if event is not None:
                    _remember(_replies, raw, event)
            if event is not None:
                events.append(event)
        if self._lines.pending > self._max_line_bytes:
            raise AgiFrameTooLargeError(f"reply line longer than {self._max_line_bytes} bytes")
        return events

    def feed_eof(self) -> None:
        """The connection ended; raises :class:`AgiIncompleteError` mid-line or mid-block."""
        if self._usage is not None:
            raise AgiIncompleteError("connection closed inside a 520 usage block")
        if self._lines.pending:
            raise AgiIncompleteError("connection closed in the middle of a reply line")

    def _parse_line(self, line: str, size: int) -> AgiEvent | None:
        if line == "HANGUP":
            return AgiHangup()
        match = _STATUS.fullmatch(line)
        if match is None:
            raise AgiSyntaxError(f"not an AGI reply: {_shown(line)}")
        code = int(match["code"])
        if match["sep"] == "-":
            if code != 520:
                raise AgiSyntaxError(f"unexpected continuation line: {_shown(line)}")
            self._usage = [line]
            self._usage_bytes = size
            return None
        if code == 100:
            return None
        if code == 200:
            return _parse_success(line, match["rest"])
        if 500 <= code <= 599:
            return AgiReply(code=code, line=line)
        raise AgiSyntaxError(f"unexpected AGI status {code}: {_shown(line)}")

    def _continue_usage(self, usage: list[str], line: str, size: int) -> AgiReply | None:
        usage.append(line)
        self._usage_bytes += size
        if self._usage_bytes > self._max_usage_bytes:
            raise AgiFrameTooLargeError(
                f"520 usage block larger than {self._max_usage_bytes} bytes"
            )
        if len(usage) > self._max_usage_lines:
            raise AgiFrameTooLargeError(
                f"520 usage block longer than {self._max_usage_lines} lines"
            )
        if not line.startswith(_USAGE_END):
            return None
        reply = AgiReply(code=520, line="\n".join(usage))
        self._usage = None
        return reply


def _quote(argument: str) -> str:
    if argument and not _NEEDS_QUOTES.search(argument):
        return argument
    escaped = argument.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def encode_command(verb: str, *arguments: str) -> bytes:
    """Build one command line, e.g. ``encode_command("SET VARIABLE", "X", 'a "b"')``.

    ``verb`` is the fixed upper-case command name (``GET DATA``). Each argument becomes exactly
    one argument of res_agi's parse_args(): it is double-quoted with ``\\`` and ``"``
    backslash-escaped when it is empty or holds a space, tab, quote or backslash. CR, LF and
    NUL are refused, quoted or not: a newline ends the line and would run the rest (maybe
    caller-controlled) as a second command, a CR is one to any CRLF-tolerant reader, and a NUL
    silently cuts the line short in Asterisk's C strings.
    """
    if (known := _commands.get((verb, *arguments))) is not None:
        return known
    if not _VERB.fullmatch(verb):
        raise AgiArgumentError(f"not an AGI command name: {_shown(verb)}")
    for position, argument in enumerate(arguments, start=1):
        if _UNSAFE_IN_ARGUMENT.search(argument):
            raise AgiArgumentError(f"{verb}: argument {position} contains CR, LF or NUL")
    if verb.count(" ") + 1 + len(arguments) > MAX_COMMAND_WORDS:
        raise AgiArgumentError(f"{verb}: more than {MAX_COMMAND_WORDS} words")
    try:
        line = " ".join([verb, *map(_quote, arguments)]).encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        raise AgiArgumentError(f"{verb}: an argument cannot be encoded as UTF-8") from None
    if len(line) > MAX_COMMAND_BYTES:
        raise AgiArgumentError(f"{verb}: command longer than {MAX_COMMAND_BYTES} bytes")
    _remember(_commands, (verb, *arguments), line)
    return line
