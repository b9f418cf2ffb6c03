"""The call-backs' refusals, each with its message in Bahasa Indonesia. A refusal sent nothing
to Asterisk and changed nothing."""

from __future__ import annotations

from telephony.ami.actions import AsteriskUnavailable
from telephony.core.errors import Conflict, Invalid, NotFound, SiagaError


class CallbackError(SiagaError):
    """A call-back request that is refused."""

    status = 400
    code = "callback_error"


class InvalidClosure(Invalid, CallbackError):
    """A closing reason or note that is not valid."""

    code = "invalid_closure"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field)


class UnknownCall(NotFound, CallbackError):
    """No call of the line has this id."""

    code = "call_not_found"

    def __init__(self) -> None:
        super().__init__("Panggilan tidak ditemukan.")


class NotOnList(Conflict, CallbackError):
    """The call is not (or no longer) on the worklist."""

    code = "not_on_worklist"

    def __init__(self) -> None:
        super().__init__("Panggilan ini tidak ada di daftar panggilan balik: penelepon sudah "
                         "terhubung, entri sudah ditutup, atau sudah lewat jendela waktunya. "
                         "Muat ulang daftar.")


class NotPossible(Conflict, CallbackError):
    """The caller's number is withheld or cannot be dialled."""

    code = "callback_not_possible"

    def __init__(self) -> None:
        super().__init__("Nomor penelepon disembunyikan atau tidak valid: tidak bisa "
                         "dihubungi kembali.")


class CallbackBusy(Conflict, CallbackError):
    """The operator is on a call, or the caller is being called back already."""

    code = "callback_busy"


class UnknownCallBack(NotFound, CallbackError):
    """No call-back has this id."""

    code = "callback_not_found"

    def __init__(self) -> None:
        super().__init__("Panggilan balik tidak ditemukan.")


class NotReached(Conflict, CallbackError):
    """A call-back that cannot be marked as not having reached its caller: it was never
    answered (the caller is still on the list), or it is older than the list's window."""

    code = "callback_not_answered"


class CallbackUnavailable(AsteriskUnavailable, CallbackError):
    """Asterisk did not take the call-back (no AMI session, refused)."""

    def __init__(self, message: str = "Asterisk tidak menjalankan panggilan balik (tidak "
                                      "terhubung atau menolak). Coba lagi sebentar lagi.") -> None:
        super().__init__(message)


class CallbackUnconfirmed(CallbackUnavailable):
    """Asterisk was sent the call-back and did not answer in time: it may be under way, so the
    caller counts as being called back until it reports or its ring time is over."""

    def __init__(self) -> None:
        super().__init__("Asterisk belum menjawab perintah panggilan balik: telepon Anda "
                         "mungkin tetap berdering sebentar lagi. Bila tidak, coba lagi setelah "
                         "daftar tidak lagi menulis penelepon ini sedang dihubungi.")
