"""The small channel interface an IVR flow talks to.

One flow runs over FastAGI (``telephony.agi.channel.AgiChannel``) and, in tests, over a
scripted channel. Every method may raise :class:`CallerHungUp` when the caller has gone.
"""

from __future__ import annotations

from typing import Protocol


class ChannelError(Exception):
    """The channel could not carry out a command (protocol error, timeout, refused command)."""


class CallerHungUp(ChannelError):
    """The caller hung up; the flow must stop at once."""


class Channel(Protocol):
    """What an IVR flow may do with the caller's channel."""

    async def ask_digit(self, prompt: str, timeout_ms: int) -> str | None:
        """Play ``prompt`` and return the first DTMF digit pressed, during it or after.

        Barge-in: a digit pressed while the prompt plays stops it. Waits ``timeout_ms`` after
        the prompt ends; returns ``None`` if nothing was pressed.
        """
        ...

    async def play(self, prompt: str) -> None:
        """Play ``prompt`` to the end (no digits accepted)."""
        ...

    async def set_variable(self, name: str, value: str) -> None:
        """Set a channel variable that the dialplan and AMI see."""
        ...
