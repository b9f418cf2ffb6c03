"""What the admin services refuse, in words for the admin at the console (Bahasa Indonesia).

A refused request has changed nothing, except :class:`ApplyFailed`, which says what was kept
(the change is stored, Asterisk did not take it yet) so the admin can apply it again.
"""

from __future__ import annotations

from telephony.core.errors import Conflict, Invalid, NotFound, SiagaError, Unavailable


class AdminError(SiagaError):
    """A request the admin rules refuse."""

    status = 400
    code = "admin_error"


class InvalidConfig(Invalid, AdminError):
    """A document or value does not validate."""


class ConfigNotFound(NotFound, AdminError):
    """No such version, prompt or queue."""


class StaleSettings(Conflict, AdminError):
    """Another admin stored the settings since this admin's form was made from them
    (optimistic concurrency): storing this form would undo their change unseen."""

    code = "stale"


class ApplyFailed(AdminError):
    """Asterisk (or the files it reads) could not be brought to the new configuration."""

    status = 502  # Asterisk, a dependency, did not follow: the admin may apply again
    code = "apply_failed"


class AsteriskDown(Unavailable, AdminError):
    """Asterisk has no AMI session with the line now: a change it must carry out is refused
    at once (503, try again shortly), having changed nothing."""

    code = "asterisk_unavailable"
