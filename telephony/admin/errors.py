"""What the admin services refuse, in words for the admin at the console (Bahasa Indonesia).

A refused request has changed nothing, except :class:`ApplyFailed`, which says what was kept
(the change is stored, Asterisk did not take it yet) so the admin can apply it again.
"""

from __future__ import annotations

from typing import ClassVar


class AdminError(Exception):
    """A request the admin rules refuse."""

    code: ClassVar[str] = "admin_error"

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidConfig(AdminError):
    """A document or value does not validate."""

    code = "invalid"


class ConfigNotFound(AdminError):
    """No such version, prompt or queue."""

    code = "not_found"


class ApplyFailed(AdminError):
    """Asterisk (or the files it reads) could not be brought to the new configuration."""

    code = "apply_failed"
