"""The IVR's :class:`ivr.channel.Channel` over a FastAGI session.

The adapter between two layers that do not know each other: the FastAGI server raises its
own :class:`~telephony.agi.server.AgiSessionError`, the IVR flow catches its own
:class:`~ivr.channel.ChannelError`. Every exception this channel raises is both, so the flow
sees a hang-up as :class:`~ivr.channel.CallerHungUp` and the server hosting the session still
logs it as the hang-up it is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final, Protocol

from ivr.channel import CallerHungUp, ChannelError
from ivr.keys import ROUTINE, KeyProgram, KeyTrace, KeyTraceError, parse_trace
from telephony.agi.protocol import AgiArgumentError, AgiReply
from telephony.agi.server import AgiHungUpError, AgiSessionError
from telephony.core.text import ascii_digits

# DTMF digits GET DATA can return: 0-9, * and the rarely seen A-D; "#" is handled apart.
_DIGITS: Final = frozenset("0123456789*ABCD")
# Any DTMF key stops a leading prompt, as "#" and every digit would stop GET DATA's prompt.
_ESCAPE_DIGITS: Final = "0123456789*#ABCD"
# Plain variable names only: SET VARIABLE also accepts "FUNC(args)", which would run a
# dialplan function write (DB(), FILE(), ...) if a name were ever built from input.
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# The line's FastAGI server sends this before a session's first command (FastAgiConfig.
# opening): the routine lifts the dialplan's first-command deadline (extensions.conf). Not
# before the menu GOSUB (OPENED_BY_MENU), whose routine runs it itself: see collect_keys.
OPENING: Final = ("GOSUB", "siaga112-agi-alive", "s", "1")
# Values MSet carries unchanged in one argument list: no separator (",", "="), no quote or
# backslash its parser would take, no "$" or "[" a substitution could see, and not empty (an
# entry "NAME=" is not reliably a set). Anything else goes by SET VARIABLE, quoted.
_MSET_VALUE = re.compile(r"[A-Za-z0-9_./:+@-]+")
OPENED_BY_MENU: Final = ("GOSUB", *ROUTINE)


class AgiChannelError(ChannelError, AgiSessionError):
    """The channel could not carry out a command (the IVR's and the FastAGI server's word)."""


class AgiCallerHungUp(CallerHungUp, AgiHungUpError):
    """The caller hung up (the IVR's and the FastAGI server's word)."""


class AgiCommandSession(Protocol):
    """What :class:`AgiChannel` needs from a session (see ``telephony.agi.server.AgiSession``)."""

    async def command(self, verb: str, *arguments: str, session_bound: bool = False) -> AgiReply:
        """Send one command and return its reply; raises :class:`AgiSessionError`.
        ``session_bound``: only the session's time limit bounds the reply."""
        ...


def _describe(verb: str, arguments: tuple[str, ...]) -> str:
    return " ".join([verb, *(repr(argument) for argument in arguments)])


class AgiChannel:
    """Implements :class:`ivr.channel.Channel` with GOSUB (the menu), GET DATA, STREAM FILE
    and SET VARIABLE.

    ``result=-1`` is reported as :class:`CallerHungUp`: Asterisk also sends it when a prompt
    file is missing, but either way the IVR must stop and let the dialplan carry the call on.
    """

    def __init__(self, session: AgiCommandSession) -> None:
        self._session = session

    async def ask_digit(self, prompts: Sequence[str], timeout_ms: int) -> str | None:
        """Play ``prompts`` with barge-in and wait ``timeout_ms`` after the last for one digit.

        GET DATA streams a single file, so every prompt but the last is a STREAM FILE that
        any digit interrupts; the last is a GET DATA, which also waits for the timeout.
        """
        if isinstance(prompts, str):
            # A str is a Sequence[str] too: one prompt name would be played letter by letter.
            raise TypeError("prompts must be a sequence of prompt names, not a str")
        # GET DATA treats 0 as "Asterisk's default" (6 s) and a negative value as "forever".
        if timeout_ms < 1:
            raise ValueError(f"timeout_ms must be positive, got {timeout_ms}")
        *leading, last = prompts or [""]
        for prompt in leading:
            reply = await self._run("STREAM FILE", prompt, _ESCAPE_DIGITS)
            if reply.result != "0":
                return self._interrupting_digit(prompt, reply)
        reply = await self._run("GET DATA", last, str(timeout_ms), "1")
        result = reply.result
        if result == "-1":
            raise AgiCallerHungUp(f"GET DATA {last!r}: caller hung up (result=-1)")
        if result == "":
            if reply.data == "timeout":
                return None
            # "#" ends GET DATA's input and is never stored: pressed first, it yields an empty
            # result without "(timeout)" (AST_GETDATA_EMPTY_END_TERMINATED in Asterisk).
            return "#"
        if result in _DIGITS:
            return result
        raise AgiChannelError(f"GET DATA {last!r}: unexpected reply {reply.line!r}")

    async def collect_keys(self, program: KeyProgram) -> KeyTrace:
        """Run the menu routine ``[siaga112-menu]`` in one GOSUB and read what it heard.

        This must be the session's first command: res_agi discards the keys that arrive while
        it waits for a command, so the shorter that wait, the fewer keys can be lost (only
        those pressed in the few milliseconds before the GOSUB arrives, before the caller has
        heard anything). Inside the GOSUB nothing is discarded. The routine also lifts the
        dialplan's first-command deadline itself, so the server sends no OPENING before it.
        """
        reply = await self._run("GOSUB", *ROUTINE, program.arguments(), session_bound=True)
        if reply.result != "0":
            raise AgiChannelError(f"GOSUB {ROUTINE[0]}: {reply.line!r}")
        # The routine's Return() value; after the GOSUB nothing we ask needs a key any more.
        value = await self._run("GET VARIABLE", "GOSUB_RETVAL")
        if "abnormal exit" in reply.line:
            # The routine did not Return() (a hang-up ends it so, and the GET VARIABLE above
            # has then raised CallerHungUp): what it heard is unknown, fail open. Asterisk
            # logs a NOTICE for it, expected on every hang-up in the menu (extensions.conf,
            # [siaga112-menu], says why no dialplan can Return() there).
            raise AgiChannelError(f"GOSUB {ROUTINE[0]}: {reply.line!r}")
        try:
            return parse_trace((value.data or "") if value.result == "1" else "")
        except KeyTraceError as exc:
            raise AgiChannelError(f"GOSUB {ROUTINE[0]}: {exc.message}") from None

    async def play(self, prompt: str) -> None:
        """Play ``prompt`` to the end; no digit interrupts it."""
        reply = await self._run("STREAM FILE", prompt, "")
        if reply.result == "-1":
            raise AgiCallerHungUp(f"STREAM FILE {prompt!r}: caller hung up (result=-1)")
        if reply.result is None or not ascii_digits(reply.result):
            raise AgiChannelError(f"STREAM FILE {prompt!r}: unexpected reply {reply.line!r}")

    async def set_variable(self, name: str, value: str) -> None:
        """Set channel variable ``name``; ``value`` is quoted so it stays one argument."""
        if not _VARIABLE_NAME.fullmatch(name):
            raise AgiChannelError(f"SET VARIABLE: {name!r} is not a plain variable name")
        reply = await self._run("SET VARIABLE", name, value)
        if reply.result != "1":
            raise AgiChannelError(f"SET VARIABLE {name!r}: unexpected reply {reply.line!r}")

    async def set_variables(self, values: Sequence[tuple[str, str]]) -> None:
        """Set several variables with as few round trips as the values allow: one
        ``EXEC MSet`` for every value it carries as it is, a ``SET VARIABLE`` each for the
        others (set first, so that the last pair given is still the last set)."""
        for name, _ in values:
            if not _VARIABLE_NAME.fullmatch(name):
                raise AgiChannelError(f"SET VARIABLE: {name!r} is not a plain variable name")
        plain = [(n, v) for n, v in values if _MSET_VALUE.fullmatch(v)]
        for name, value in values:
            if (name, value) not in plain:
                await self.set_variable(name, value)
        if not plain:
            return
        reply = await self._run("EXEC", "MSet", ",".join(f"{n}={v}" for n, v in plain))
        if reply.result == "-2":  # no MSet in this Asterisk: one by one, as before
            for name, value in plain:
                await self.set_variable(name, value)
        elif reply.result != "0":
            raise AgiChannelError(f"EXEC MSet: unexpected reply {reply.line!r}")

    @staticmethod
    def _interrupting_digit(prompt: str, reply: AgiReply) -> str:
        """The digit that stopped a STREAM FILE: its result is the digit's ASCII code."""
        if reply.result == "-1":
            raise AgiCallerHungUp(f"STREAM FILE {prompt!r}: caller hung up (result=-1)")
        if reply.result is not None and ascii_digits(reply.result):
            digit = chr(int(reply.result))
            if digit in _ESCAPE_DIGITS:
                return digit
        raise AgiChannelError(f"STREAM FILE {prompt!r}: unexpected reply {reply.line!r}")

    async def _run(self, verb: str, *arguments: str, session_bound: bool = False) -> AgiReply:
        try:
            reply = await self._session.command(verb, *arguments, session_bound=session_bound)
        except AgiArgumentError as exc:
            raise AgiChannelError(f"{_describe(verb, arguments)}: {exc}") from None
        except AgiHungUpError as exc:
            raise AgiCallerHungUp(exc.message) from None
        except AgiSessionError as exc:
            raise AgiChannelError(exc.message) from None
        if reply.code == 511:
            # "Command Not Permitted on a dead channel": with AGISIGHUP=no Asterisk sends no
            # HANGUP line, and this refusal is the only sign that the caller has gone.
            raise AgiCallerHungUp(f"{_describe(verb, arguments)}: channel is dead ({reply.line})")
        if not reply.ok:
            raise AgiChannelError(f"{_describe(verb, arguments)} refused: {reply.line}")
        return reply
