"""Accounts, roles, sessions and login throttling: the rules. Pure: no I/O, no clock, no
randomness of its own (instants and tokens come in as arguments).

Every refusal is an :class:`AccountError` with a stable ``code`` and a message in Bahasa
Indonesia for the person at the screen; a refusal changed nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from telephony.core.errors import Conflict, Invalid, NotFound, SiagaError
from telephony.core.labels import LabelledStrEnum
from telephony.core.text import BIDI_MESSAGE, bidi_control, unsafe_line

# --------------------------------------------------------------------------------------------
# Errors


class AccountError(SiagaError):
    """A request about accounts or sessions that is refused; nothing was changed."""

    status = 400
    code = "account_error"


class InvalidAccountInput(Invalid, AccountError):
    """A username, role, display name or password is malformed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field)


class AccountExists(Conflict, AccountError):
    """The username is taken."""

    code = "account_exists"

    def __init__(self, username: str) -> None:
        super().__init__(f"Akun {username} sudah ada.")


class AccountNotFound(NotFound, AccountError):
    """No account has this username."""

    def __init__(self, username: str) -> None:
        super().__init__(f"Akun {username} tidak ditemukan.")


class RoleChangeRefused(Conflict, AccountError):
    """A role change the account's present state does not allow (its desk, or the last
    admin); nothing was changed."""

    code = "role_change_refused"


class LoginRefused(AccountError):
    """Wrong username or password, or a disabled account (the caller is not told which)."""

    status = 401
    code = "login_refused"
    logged = True  # the account service logs every failed login with its reason

    def __init__(self) -> None:
        super().__init__("Nama pengguna atau kata sandi salah.")


class LoginThrottled(AccountError):
    """Too many failed logins: no attempt is even checked until ``retry_after`` has passed."""

    status = 429
    code = "login_throttled"
    logged = True  # as LoginRefused

    def __init__(self, retry_after: timedelta) -> None:
        seconds = max(1, int(retry_after.total_seconds() + 0.999))
        super().__init__(
            f"Terlalu banyak percobaan masuk yang gagal. Coba lagi dalam {seconds} detik."
        )
        self.retry_after_seconds = seconds

    @property
    def headers(self) -> Mapping[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


# --------------------------------------------------------------------------------------------
# Roles and accounts


class Role(LabelledStrEnum):
    """What a person does at the centre; every route names the roles it serves."""

    OPERATOR = "operator", "Operator"
    SUPERVISOR = "supervisor", "Supervisor"
    ADMIN = "admin", "Administrator"


# Who may see callers' data (numbers, what they said, their calls): those who handle or
# review calls. Admins run the system and see none (telephony/web/routing.py's CASEWORK and
# PLAYBACK, which serve calls and recordings, are these roles).
CALLER_DATA_ROLES: Final = frozenset({Role.OPERATOR, Role.SUPERVISOR})
# Where the audit log holds callers' data, by action: the number searched (call.search: its
# object and its query; incident.search: its object, a number or a place), the number called
# back (callback.call), an operator's note on a call-back (callback.close). Each path is
# "object_id" or "detail" and keys into it.
AUDIT_CALLER_DATA: Final[Mapping[str, tuple[tuple[str, ...], ...]]] = {
    "call.search": (("object_id",), ("detail", "query", "caller_number")),
    "incident.search": (("object_id",),),
    "callback.call": (("detail", "number"),),
    "callback.close": (("detail", "note"),),
}
MASKED: Final = "[disembunyikan]"


def sees_caller_data(role: Role) -> bool:
    """Whether ``role`` may see callers' data."""
    return role in CALLER_DATA_ROLES


def _masked_detail(detail: Mapping[str, Any], path: tuple[str, ...]) -> Mapping[str, Any]:
    head, rest = path[0], path[1:]
    if head not in detail:
        return detail
    value = detail[head]
    if rest:
        if not isinstance(value, Mapping):
            return detail
        return {**detail, head: _masked_detail(value, rest)}
    return {**detail, head: MASKED if value not in (None, "") else value}


def masked_audit(action: str, object_id: str, detail: Mapping[str, Any]
                 ) -> tuple[str, Mapping[str, Any]]:
    """An audit entry's object and detail with the callers' data it holds masked (for a
    reader who may not see it)."""
    for where, *path in AUDIT_CALLER_DATA.get(action, ()):
        if where == "object_id":
            object_id = MASKED if object_id else object_id
        else:
            detail = _masked_detail(detail, tuple(path))
    return object_id, detail


def masks_object(action: str) -> bool:
    """Whether an entry of ``action`` has callers' data as its object (so that a reader who
    may not see it cannot find it by its object either)."""
    return ("object_id",) in AUDIT_CALLER_DATA.get(action, ())


@dataclass(frozen=True)
class Account:
    """An account as stored (without its password hash)."""

    account_id: int
    username: str
    display_name: str
    role: Role
    active: bool
    created_at: datetime
    password_changed_at: datetime


@dataclass(frozen=True)
class Session:
    """A live session: whose, until when, and the token its cookie-borne changes must carry."""

    token_sha256: str
    account: Account
    csrf_token: str
    expires_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True)
class NewSession:
    """What a successful login hands out; ``token`` is never stored, only its digest."""

    token: str
    session: Session


_USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,31}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
PASSWORD_MIN: Final = 10
PASSWORD_MAX: Final = 256  # argon2 takes any length; this bounds the work one request costs
THROTTLE_KEY_MAX: Final = 64


def clean_username(value: object) -> str:
    """A username: 2-32 lower-case letters, digits, dots, dashes and underscores."""
    if isinstance(value, str):
        name = value.strip().lower()
        if _USERNAME.fullmatch(name):
            return name
    raise InvalidAccountInput(
        "username",
        "Nama pengguna harus 2-32 karakter: huruf kecil, angka, titik, minus atau garis bawah.",
    )


def throttle_key(value: object) -> str:
    """What failed logins are counted under: the name as typed, normalised and cut short, so
    attempts at names that do not exist (or are malformed) are throttled all the same."""
    text = value if isinstance(value, str) else ""
    return text.strip().lower()[:THROTTLE_KEY_MAX]


def parse_role(value: object) -> Role:
    """A role from its code."""
    if isinstance(value, Role):
        return value
    if isinstance(value, str):
        try:
            return Role(value.strip().lower())
        except ValueError:
            pass
    raise InvalidAccountInput("role", "Peran harus operator, supervisor atau admin.")


def clean_display_name(value: object) -> str:
    """A display name: any printable text up to 100 characters, on one line and without bidi
    controls (an override would show it reversed: one operator passing for another)."""
    if isinstance(value, str) and bidi_control(value):
        raise InvalidAccountInput("display_name", f"Nama tampilan {BIDI_MESSAGE}.")
    if not isinstance(value, str) or unsafe_line(value) or len(value.strip()) > 100:
        raise InvalidAccountInput("display_name", "Nama tampilan tidak sah (maksimal 100 "
                                  "karakter, tanpa karakter kendali).")
    return value.strip()


def check_password(value: object) -> str:
    """A new password: long enough to resist guessing, short enough to hash cheaply."""
    if not isinstance(value, str) or _CONTROL.search(value):
        raise InvalidAccountInput("password", "Kata sandi tidak boleh berisi karakter kendali.")
    if not PASSWORD_MIN <= len(value) <= PASSWORD_MAX:
        raise InvalidAccountInput(
            "password", f"Kata sandi harus {PASSWORD_MIN}-{PASSWORD_MAX} karakter.")
    if not value.strip():
        raise InvalidAccountInput("password", "Kata sandi tidak boleh hanya spasi.")
    return value


def login_password(value: object) -> str | None:
    """A password as typed at login; ``None`` for input no password can match (not text,
    empty, or longer than any password we accept), which is never hashed."""
    if not isinstance(value, str) or not value or len(value) > PASSWORD_MAX:
        return None
    return value


def token_digest(token: str) -> str:
    """What the sessions table stores of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class DeskHeld:
    """What an account holds at its phone, as a role change must weigh it: the interface,
    its skills, whether the phone is the browser's softphone, and the queues it is in."""

    interface: str
    skills: Mapping[str, int]
    browser: bool
    queues: tuple[str, ...]


_LISTENING_ENDED = " Mendengarkan panggilan yang sedang berjalan juga dihentikan."


def ended_by_role(old: Role, new: Role) -> str:
    """Why the sessions of an account given another role ended, told to its owner."""
    return (f"Sesi Anda diakhiri: peran akun Anda diganti menjadi {new.label}. Masuk lagi "
            "dengan peran baru." + (_LISTENING_ENDED if old is Role.SUPERVISOR else ""))


def ended_by_disable(role: Role) -> str:
    """Why the sessions of a disabled account ended, told to its owner."""
    return ("Sesi Anda diakhiri: akun Anda dinonaktifkan oleh admin."
            + (_LISTENING_ENDED if role is Role.SUPERVISOR else ""))


ENDED_BY_RESET: Final = ("Sesi Anda diakhiri: kata sandi akun Anda diganti. Masuk dengan "
                            "kata sandi baru.")


def check_role_change(username: str, old: Role, new: Role, desk: DeskHeld | None, *,
                      other_admins: int) -> None:
    """Refuse (:class:`RoleChangeRefused`) a change from ``old`` to ``new`` that would leave
    the account, or the centre, in a state no role has: an admin at a phone (admins see no
    caller data and never take or hear a call), a supervisor in queues or at a browser
    softphone (their phone is only for listening in, and a softphone registers only from an
    operator's desk page), or no active admin left to run the system. A supervisor's phone
    keeps no skills: the operator's skills are dropped by the change itself."""
    if old is Role.ADMIN and new is not Role.ADMIN and other_admins == 0:
        raise RoleChangeRefused(
            f"Akun {username} adalah admin aktif terakhir: jadikan akun lain admin dahulu.")
    if desk is None or new is old:
        return
    if new is Role.ADMIN:
        raise RoleChangeRefused(
            f"Akun {username} bekerja di telepon {desk.interface}; admin tidak memakai "
            "telepon dan tidak melihat data penelepon. Buat akun admin tersendiri.")
    if new is Role.SUPERVISOR and desk.queues:
        raise RoleChangeRefused(
            f"Akun {username} masih di antrean {', '.join(desk.queues)}: keluarkan dari "
            "antrean dahulu (Keluar di layar operator), lalu ulangi.")
    if new is Role.SUPERVISOR and desk.browser:
        raise RoleChangeRefused(
            f"Telepon {desk.interface} milik {username} adalah softphone di browser; "
            "supervisor mendengarkan lewat telepon meja: ubah dahulu dengan siaga112 "
            f"account desk {username} {desk.interface} --phone desk, lalu ulangi.")


def account_json(account: Account) -> dict[str, Any]:
    """An account for the API and the log (never the password hash)."""
    return {
        "username": account.username,
        "display_name": account.display_name,
        "role": account.role.value,
        "role_label": account.role.label,
        "active": account.active,
    }


# --------------------------------------------------------------------------------------------
# Login throttling


@dataclass(frozen=True)
class ThrottlePolicy:
    """After ``max_failures`` failures within ``window`` under one name from one address (and
    ``max_failures_per_address`` from one address under any names) each further attempt
    from that address must wait ``first_delay``, doubling with every further failure, but
    never longer than the window.

    The name is never locked as such: failures under a name from elsewhere do not slow its
    owner down, so nobody can keep an admin locked out by guessing at the admin's name."""

    max_failures: int = 5
    max_failures_per_address: int = 20
    window: timedelta = timedelta(hours=1)
    first_delay: timedelta = timedelta(seconds=30)


@dataclass(frozen=True)
class Failures:
    """Failed logins within the window: how many, and the last one."""

    count: int
    last_at: datetime | None


def _lockout_end(failures: Failures, limit: int, policy: ThrottlePolicy) -> datetime | None:
    if failures.count < limit or failures.last_at is None:
        return None
    doublings = min(failures.count - limit, 32)
    delay = min(policy.first_delay * (1 << doublings), policy.window)
    return failures.last_at + delay


def locked_until(
    policy: ThrottlePolicy, *, by_name_here: Failures, by_address: Failures
) -> datetime | None:
    """When the next attempt may be checked; ``None``: now. The later of the two waits wins:
    the name's from this address (``by_name_here``), the address's under any name."""
    ends = [end for end in (
        _lockout_end(by_name_here, policy.max_failures, policy),
        _lockout_end(by_address, policy.max_failures_per_address, policy),
    ) if end is not None]
    return max(ends) if ends else None


def check_not_throttled(
    policy: ThrottlePolicy, *, by_name_here: Failures, by_address: Failures, now: datetime
) -> None:
    """Refuse the attempt (without looking at the password) while a wait runs."""
    until = locked_until(policy, by_name_here=by_name_here, by_address=by_address)
    if until is not None and until > now:
        raise LoginThrottled(until - now)
