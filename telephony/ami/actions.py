"""The port through which services act on Asterisk over AMI, and its errors.

Services (desks, queues, surveys, the admin) depend on this small interface, never on the
concrete listener (``telephony.ami.listener.AmiListener`` implements it), so they can be
tested with a fake and do not pull panoramisk in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from telephony.core.errors import SiagaError, Unavailable


class AmiActionError(SiagaError):
    """An AMI action could not be carried out (refused, timed out, or no connection)."""


class AmiActionRefusedError(AmiActionError):
    """Asterisk answered the action with an error (bad arguments, missing permission...)."""


class AsteriskUnavailable(Unavailable):
    """What a client is told when a service's AMI action failed (no AMI session, refused,
    no answer): nothing was done, try again. A feature subclasses it with its own base error
    and says what was not done; the service has already logged what Asterisk answered."""

    code = "asterisk_unavailable"
    logged = True

    def __init__(self, message: str = "Asterisk tidak menjalankan perintah (tidak terhubung "
                                      "atau menolak). Coba lagi sebentar lagi.") -> None:
        super().__init__(message)


class AmiActions(Protocol):
    """Send one AMI action (QueueAdd, QueuePause, Originate...)."""

    async def send_action(self, action: Mapping[str, str]) -> Any:
        """Send ``action`` and return Asterisk's response; raises :class:`AmiActionError`
        (:class:`AmiActionRefusedError` when Asterisk answers with an error)."""
        ...


class AmiListActions(AmiActions, Protocol):
    """Also send actions that Asterisk answers with a list of events (QueueStatus...)."""

    async def send_list_action(self, action: Mapping[str, str]) -> list[Any]:
        """Send ``action`` and return the events of its list; raises like ``send_action``."""
        ...
