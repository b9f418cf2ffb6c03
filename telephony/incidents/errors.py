"""Every refusal of the incident feature, on the project's one error base.

A refusal always means nothing was changed. Each class keeps the HTTP status and ``code`` the
API has always answered with, so error bodies stay the same: a malformed value is ``422
invalid`` with its ``field``, a conflict with the stored state is ``409`` with its own code,
a missing thing ``404 not_found``, an upload past the limit ``413 too_large``, any other
refusal ``400`` with its code. Messages are Bahasa Indonesia, for the operator's screen.
"""

from __future__ import annotations

from telephony.core.errors import Conflict, Invalid, NotFound, SiagaError


class IncidentError(SiagaError):
    """A request the incident rules refuse; nothing was changed."""

    status = 400
    code = "incident_error"


class ValidationError(Invalid, IncidentError):
    """A value is missing, malformed or out of range."""

    # Field first, as every rule in the feature names the input before saying what is wrong.
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field)


class InvalidTransition(Conflict, IncidentError):
    """The incident (or dispatch) is not in a state that allows this change."""

    code = "invalid_transition"


class IncidentNotFound(NotFound, IncidentError):
    """No incident has this id."""

    def __init__(self, incident_id: int) -> None:
        super().__init__(f"Insiden #{incident_id} tidak ditemukan.")
        self.incident_id = incident_id


class CallNotFound(NotFound, IncidentError):
    """No call has this id."""

    def __init__(self, call_id: str) -> None:
        super().__init__(f"Panggilan {call_id} tidak ditemukan.")
        self.call_id = call_id


class DispatchNotFound(NotFound, IncidentError):
    """No dispatch has this id."""

    def __init__(self, dispatch_id: int) -> None:
        super().__init__(f"Pengiriman #{dispatch_id} tidak ditemukan.")
        self.dispatch_id = dispatch_id


class RecipientNotFound(NotFound, IncidentError):
    """No notification recipient has this id."""

    def __init__(self, recipient_id: int) -> None:
        super().__init__(f"Penerima pemberitahuan #{recipient_id} tidak ditemukan.")
        self.recipient_id = recipient_id


class CallAlreadyLinked(Conflict, IncidentError):
    """The call already belongs to an incident (a call belongs to at most one)."""

    code = "call_already_linked"

    def __init__(self, call_id: str, incident_id: int) -> None:
        super().__init__(f"Panggilan {call_id} sudah tercatat pada insiden #{incident_id}.")
        self.call_id = call_id
        self.incident_id = incident_id


class StaleIncident(Conflict, IncidentError):
    """Someone else changed the incident since the caller read it (optimistic concurrency)."""

    code = "stale"

    def __init__(self, incident_id: int, expected: int, actual: int) -> None:
        super().__init__(
            f"Insiden #{incident_id} baru saja diubah petugas lain (versi {actual}, bukan "
            f"{expected}). Muat ulang lalu ulangi."
        )
        self.expected = expected
        self.actual = actual


class UploadTooLarge(SiagaError):
    """An attachment upload went past the size limit; nothing of it was kept."""

    status = 413
    code = "too_large"

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"Berkas terlalu besar (maksimal {max_bytes / 1_048_576:.0f} MB).")
        self.max_bytes = max_bytes


class NotificationFailed(SiagaError):
    """One delivery attempt did not reach the recipient's endpoint.

    Never answered to a client: the outbox catches it and tries again later. Should one ever
    escape, it is a dependency that failed (502), not our fault.
    """

    status = 502
    code = "notification_failed"
