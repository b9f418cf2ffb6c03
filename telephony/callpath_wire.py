"""What the line and its call path process (telephony/callpath.py, telephony/callpath_child.py)
say to each other over the child's stdin and stdout: the messages, and their frames.

A frame is a 4-byte big-endian length and a pickle of one message. Pickle because the first
message carries the line's :class:`~telephony.settings.Settings` as they are (tests build them
in code, so the child cannot read them from a file or the environment); both ends run the
same code from the same tree. The line reads the child's frames through
:class:`FrameDecoder` with ``allowed=CHILD_MESSAGES``: only these classes and plain values are
rebuilt, anything else is refused, so a child that went wrong can end its own session but
never run code in the line. Frames are bounded either way.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from telephony.settings import Settings

_LENGTH = struct.Struct(">I")
# The settings are a few KiB; a batch of figures holds a fifth of a second of a surge's AGI
# commands (about 100 at 50 calls/s). A frame past this is a bug, and ends the session.
MAX_FRAME: Final = 1 << 20
# A log message or traceback forwarded to the line is cut to this many characters.
MAX_LOG_TEXT: Final = 16384


class WireError(ValueError):
    """A frame that is too long or that does not hold an allowed message."""


# --- the line to the child ----------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """The first frame: what the child serves with. ``log_level``: the line's root level (the
    child forwards only records at least that severe); ``instrument``: modules the child
    imports before it serves (a test's instrumentation, a profiler)."""

    settings: Settings
    log_level: int
    instrument: tuple[str, ...] = ()
    # The line's current value of each file the child watches ("menu": an IvrMenu,
    # "screening": a ScoreConfig): what the child starts with if the file does not load now,
    # an edit the line refused and kept its last good value against.
    last_good: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Stop:
    """Stop listening, let the sessions in progress finish (``shutdown_drain_seconds``), exit."""


@dataclass(frozen=True)
class Answer:
    """The line's answer to :class:`SurveyCall` ``call``: ``value``, or the reason it failed
    (``unavailable``: the database; ``failed``: anything else)."""

    call: int
    value: bool | None = None
    unavailable: str | None = None
    failed: str | None = None


@dataclass(frozen=True)
class Probe:
    """Also probe the child's loop every ``interval`` seconds and send every stall back in
    :attr:`Figures.probe` (benchmarks); ``None`` stops that probe."""

    interval: float | None


# --- the child to the line ----------------------------------------------------------------


@dataclass(frozen=True)
class Listening:
    """The FastAGI server listens on ``port``."""

    port: int


@dataclass(frozen=True)
class StartFailed:
    """The FastAGI server could not start: ``errno`` when the socket refused (a taken port)."""

    errno: int | None
    reason: str


@dataclass(frozen=True)
class SurveyCall:
    """A survey route's question for the line's survey service: ``begin`` when ``rating`` is
    not asked for (``finish`` False), else ``finish`` with ``rating``."""

    call: int
    survey_id: int
    attempt: int
    finish: bool = False
    rating: int | None = None


@dataclass(frozen=True)
class Figures:
    """What the child measured since its last figures, for the line's metrics. Sent a few
    times a second even when empty: the line hears the child is alive."""

    sessions: tuple[tuple[str, str, float], ...] = ()  # route, outcome, seconds
    commands: tuple[tuple[str, float], ...] = ()  # verb, seconds
    stalls: tuple[float, ...] = ()  # the loop probe's, as LoopStalls measures the others
    probe: tuple[float, ...] = ()  # the benchmark's probe (:class:`Probe`)
    dropped: int = 0  # figures and log records not sent: the line did not read them in time


@dataclass(frozen=True)
class LogLine:
    """A log record of the child, for the line's own handlers."""

    name: str
    level: int
    message: str
    exc_text: str | None = None
    created: float = 0.0


CHILD_MESSAGES: Final = frozenset({Listening, StartFailed, SurveyCall, Figures, LogLine})
# What a child's frame may rebuild besides those: the values their fields hold.
_PLAIN: Final = frozenset({("builtins", "tuple"), ("builtins", "frozenset"),
                           ("builtins", "set"), ("builtins", "list"), ("builtins", "dict")})


def encode(message: object) -> bytes:
    """One frame holding ``message``."""
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    if len(payload) > MAX_FRAME:
        raise WireError(f"a {type(message).__name__} of {len(payload)} bytes is over the "
                        f"frame bound ({MAX_FRAME})")
    return _LENGTH.pack(len(payload)) + payload


class _Restricted(pickle.Unpickler):
    def __init__(self, data: bytes, allowed: frozenset[type]) -> None:
        super().__init__(io.BytesIO(data))
        self._allowed = {(kind.__module__, kind.__qualname__) for kind in allowed} | _PLAIN

    def find_class(self, module: str, name: str) -> type:
        if (module, name) not in self._allowed:
            raise WireError(f"{module}.{name} is not a message")
        found: type = super().find_class(module, name)
        return found


class FrameDecoder:
    """Splits bytes as they arrive into messages. ``allowed``: the only classes a frame may
    hold (``None``: any, for the line's own frames to the child)."""

    def __init__(self, allowed: frozenset[type] | None = None, *,
                 max_frame: int = MAX_FRAME) -> None:
        self._allowed = allowed
        self._max_frame = max_frame
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[object]:
        """The messages completed by ``data``; :class:`WireError` on a bad frame (the stream
        cannot be trusted after it)."""
        self._buffer += data
        messages: list[object] = []
        while len(self._buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._buffer)
            if length > self._max_frame:
                raise WireError(f"a frame of {length} bytes is over the bound "
                                f"({self._max_frame})")
            end = _LENGTH.size + length
            if len(self._buffer) < end:
                break
            payload = bytes(self._buffer[_LENGTH.size:end])
            del self._buffer[:end]
            messages.append(self._load(payload))
        return messages

    def _load(self, payload: bytes) -> object:
        try:
            if self._allowed is None:
                return pickle.loads(payload)  # noqa: S301 - the line's own frames to its child
            message = _Restricted(payload, self._allowed).load()
        except WireError:
            raise
        except Exception as exc:  # a truncated or garbled pickle raises almost anything
            raise WireError(f"an unreadable frame: {exc}") from exc
        if type(message) not in self._allowed:
            raise WireError(f"a frame holding {type(message).__name__}, not a message")
        return message


@dataclass
class FigureBatch:
    """The child's figures since the last :meth:`take` (the child's AgiObserver, and the sink
    of its loop probes)."""

    sessions: list[tuple[str, str, float]] = field(default_factory=list)
    commands: list[tuple[str, float]] = field(default_factory=list)
    stalls: list[float] = field(default_factory=list)
    probe: list[float] = field(default_factory=list)
    dropped: int = 0

    def session_ended(self, route: str, outcome: str, seconds: float) -> None:
        """See :class:`telephony.agi.server.AgiObserver`."""
        self.sessions.append((route, outcome, seconds))

    def command_answered(self, verb: str, seconds: float) -> None:
        """See :class:`telephony.agi.server.AgiObserver`."""
        self.commands.append((verb, seconds))

    def take(self) -> Figures:
        """The figures gathered, which are then forgotten here."""
        figures = Figures(tuple(self.sessions), tuple(self.commands), tuple(self.stalls),
                          tuple(self.probe), self.dropped)
        self.sessions.clear()
        self.commands.clear()
        self.stalls.clear()
        self.probe.clear()
        self.dropped = 0
        return figures
