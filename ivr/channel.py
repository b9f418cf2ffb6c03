"""The small channel interface an IVR flow talks to.

One flow runs over FastAGI (``telephony.agi.channel.AgiChannel``) and, in tests, over a
scripted channel. Every method may raise :class:`CallerHungUp` when the caller has gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ivr.keys import KeyProgram, KeyTrace
from telephony.core.errors import SiagaError


class ChannelError(SiagaError):
    """The channel could not carry out a command (protocol error, timeout, refused command)."""


class CallerHungUp(ChannelError):
    """The caller hung up; the flow must stop at once."""


class Channel(Protocol):
    """What an IVR flow may do with the caller's channel."""

    async def ask_digit(self, prompts: Sequence[str], timeout_ms: int) -> str | None:
        """Play ``prompts`` one after another and return the first DTMF digit pressed.

        Barge-in: a digit pressed while a prompt plays stops the playback. Waits
        ``timeout_ms`` after the last prompt ends; returns ``None`` if nothing was pressed.
        """
        ...

    async def play(self, prompt: str) -> None:
        """Play ``prompt`` to the end (no digits accepted)."""
        ...

    async def set_variable(self, name: str, value: str) -> None:
        """Set a channel variable that the dialplan and AMI see."""
        ...

    async def set_variables(self, values: Sequence[tuple[str, str]]) -> None:
        """Set channel variables, in the order given, in as few commands as the channel can
        (each command is a round trip through Asterisk the caller waits for)."""
        ...


class MenuChannel(Channel, Protocol):
    """A channel the IVR's menu can be asked on: a :class:`Channel` that also collects keys."""

    async def collect_keys(self, program: KeyProgram) -> KeyTrace:
        """Ask a line's whole menu tree in ONE command (the dialplan routine of
        :mod:`ivr.keys`) and return every answer it heard, with its time.

        One command, because Asterisk throws away keys that arrive between two commands.
        """
        ...
