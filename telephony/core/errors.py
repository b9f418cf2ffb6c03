"""The one base class of every exception the project raises on purpose.

An error says how a client should be answered, so the web layer needs no ladder of
``isinstance`` checks: ``status`` and ``code`` are class attributes a subclass sets, ``message``
is for the person at the screen (Bahasa Indonesia), ``field`` names the input at fault.
Services still know nothing of HTTP beyond these two words; the web layer turns them into a
response in one place (``telephony.web.errors``).

The default is ``500 internal``: an error that no client caused (a broken file, Asterisk
refusing an action) is a fault of ours, answered with a generic message and logged with its
traceback, never shown to the client as its own text.
"""

from __future__ import annotations

from collections.abc import Mapping


class SiagaError(Exception):
    """Base of the project's exceptions; subclasses set ``status`` and ``code``."""

    # Class attributes that subclasses set; plain annotations, not ClassVar, so that the web
    # layer's own ApiError can carry them per instance.
    status: int = 500
    code: str = "internal"
    # The service already wrote its own log line for this refusal (the web layer adds none).
    logged: bool = False

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    @property
    def headers(self) -> Mapping[str, str]:
        """Extra response headers (``Retry-After`` ...); none by default."""
        return {}

    @property
    def is_refusal(self) -> bool:
        """True when a client's request was refused (4xx) or a dependency is out (502/503):
        the message is then the client's to read. False for our own faults."""
        return self.status != 500


class Invalid(SiagaError):
    """A value is missing, malformed or out of range."""

    status = 422
    code = "invalid"


class NotFound(SiagaError):
    """The thing named does not exist (or is not the caller's to see)."""

    status = 404
    code = "not_found"


class Conflict(SiagaError):
    """The request contradicts the current state (a stale version, a transition not allowed)."""

    status = 409
    code = "conflict"


class Unavailable(SiagaError):
    """A dependency (the database, Asterisk) is not there right now; the client may retry."""

    status = 503
    code = "unavailable"
    retry_after_seconds = 5

    @property
    def headers(self) -> Mapping[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}
