"""The backup feature's errors."""

from __future__ import annotations

from telephony.core.errors import SiagaError


class BackupError(SiagaError):
    """A backup cannot be written, or a restore refuses (nothing changed) or failed."""

    code = "backup"
