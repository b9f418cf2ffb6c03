"""Why a supervisor's request to listen in is refused, in Bahasa Indonesia. A refusal before
the audit entry sent nothing to Asterisk and changed nothing."""

from __future__ import annotations

from telephony.ami.actions import AsteriskUnavailable
from telephony.core.errors import Conflict, Invalid, NotFound, SiagaError


class SupervisionError(SiagaError):
    """A request to listen in that is refused."""

    status = 400
    code = "supervision_error"


class InvalidSupervision(Invalid, SupervisionError):
    """A mode, interface or call id that is not one (hostile or mistyped input)."""

    status = 400

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field)


class NotSupervisor(SupervisionError):
    """Only supervisors listen in (the route already says so; the service holds to it too)."""

    status = 403
    code = "forbidden"

    def __init__(self) -> None:
        super().__init__("Hanya supervisor yang dapat mendengarkan panggilan operator.")


class UnknownOperator(NotFound, SupervisionError):
    """No operator account works at the interface named."""

    def __init__(self, interface: str) -> None:
        super().__init__(f"Tidak ada operator di {interface}.", "operator")


class NoSupervisorPhone(Conflict, SupervisionError):
    """The supervisor has no phone to listen on."""

    code = "no_phone"

    def __init__(self, username: str) -> None:
        super().__init__(f"Akun {username} belum punya telepon untuk mendengarkan. Minta "
                         "admin menjalankan: siaga112 account desk NAMA PJSIP/...")


class PhoneBusy(Conflict, SupervisionError):
    """The supervisor's phone is in a call or ringing already (still listening, say, or a
    second click): ringing it again would only be a call waiting, and the audit log would
    name a mode they never heard."""

    code = "phone_busy"

    def __init__(self, phone: str) -> None:
        super().__init__(f"Telepon Anda ({phone}) sedang dipakai atau berdering. Tutup dulu "
                         "panggilan itu (juga bila Anda masih mendengarkan), lalu pilih lagi.",
                         "phone")


class PhoneUnreachable(Conflict, SupervisionError):
    """Asterisk could not ring the supervisor's phone at all (not registered, refused at once):
    said while they still wait for the answer, rather than promising a ring that never comes.
    The audit log has the attempt and its ``supervision.failed``."""

    code = "phone_unreachable"

    def __init__(self, phone: str, why: str) -> None:
        super().__init__(f"Telepon Anda ({phone}) tidak dapat dihubungi ({why}). Pastikan "
                         "telepon menyala dan terdaftar, lalu pilih lagi.", "phone")


class NoLiveCall(Conflict, SupervisionError):
    """The operator is not on an answered call now (or not on the call named)."""

    code = "no_live_call"

    def __init__(self, interface: str) -> None:
        super().__init__(f"{interface} sedang tidak dalam panggilan yang tersambung.",
                         "operator")


class SupervisionUnavailable(AsteriskUnavailable, SupervisionError):
    """Asterisk could not be asked, or did not carry the action out."""
