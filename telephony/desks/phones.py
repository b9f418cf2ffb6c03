"""Registering operator phones: one digest secret per phone, generated when an admin puts
an operator at a desk (or asks for a new one), shown once, stored only as Asterisk needs it.

A desk's phone is of one of two kinds (:class:`PhoneKind`): a SIP phone on the desk, whose
secret the admin types into it, or the browser: the console's WebRTC softphone, whose secret
is generated afresh whenever the operator's desk page opens and handed to that page alone
(``telephony/desks/service.py``), never shown to a person.

A phone registers as its endpoint name (``PJSIP/op2001`` registers as ``op2001``) with the
generated secret; Asterisk checks it against MD5(username:realm:secret) read from the line's
database (``telephony/db/migrations/0010_phones.sql``). A new secret replaces the stored
digest, so the old secret stops working at the phone's next REGISTER.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from telephony.ami.actions import AmiActionRefusedError, AmiListActions
from telephony.core.errors import SiagaError
from telephony.core.labels import LabelledStrEnum

INTERFACE_PREFIX = "PJSIP/"
# A browser's secret is never typed: longer than a desk phone's, from the same alphabet.
BROWSER_SECRET_LENGTH = 32
DESK_SECRET_LENGTH = 20


class PhoneKind(LabelledStrEnum):
    """What rings at a desk. The interface (``PJSIP/op2001``) is the desk's either way."""

    DESK = "desk", "Telepon meja"
    BROWSER = "browser", "Softphone di browser"


@dataclass(frozen=True)
class RtpTimeouts:
    """How long an operator phone's call may receive no media (no BYE: the phone died or lost
    its network) before Asterisk hangs it up, in seconds, as the site's settings say: a
    browser's, held or not (it sends ICE consent checks all call long), and a desk phone's,
    talking and held (a SIP phone may send nothing while held). The endpoints'
    ``rtp_timeout`` and ``rtp_timeout_hold`` (migration 0049)."""

    browser: int
    desk: int
    desk_hold: int


@dataclass(frozen=True)
class PhoneSecret:
    """A freshly generated secret and the digest stored for it."""

    username: str  # what the phone registers as: the endpoint name
    realm: str
    secret: str  # shown once, never stored
    md5_cred: str


class UnknownPhoneKind(SiagaError, ValueError):
    """A phone kind that is neither desk nor browser."""

    status = 400
    code = "invalid_phone"

    def __init__(self, raw: str) -> None:
        super().__init__(f"Jenis telepon harus desk atau browser, bukan {raw[:40]!r}.", "phone")


def phone_kind(raw: str) -> PhoneKind:
    """``desk`` or ``browser`` as typed into a form; refuses anything else."""
    try:
        return PhoneKind(raw)
    except ValueError:
        raise UnknownPhoneKind(raw) from None


def phone_username(interface: str) -> str:
    """``PJSIP/op2001`` -> ``op2001`` (the interface is checked by the desk service)."""
    return interface.removeprefix(INTERFACE_PREFIX)


def digest(username: str, realm: str, secret: str) -> str:
    """MD5(username:realm:secret), the HA1 of RFC 2617 that Asterisk's auth checks with."""
    return hashlib.md5(f"{username}:{realm}:{secret}".encode(), usedforsecurity=False).hexdigest()


def new_phone_secret(interface: str, realm: str, *,
                     length: int = DESK_SECRET_LENGTH) -> PhoneSecret:
    """A new random secret for the phone at ``interface`` (letters and digits only, so that
    a desk phone's can be typed into its keypad menu)."""
    alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    secret = "".join(secrets.choice(alphabet) for _ in range(length))
    username = phone_username(interface)
    return PhoneSecret(username, realm, secret, digest(username, realm, secret))


# Where Asterisk keeps the phones' registrations: AstDB, family ``registrar/contact``
# (res_pjsip's default sorcery wizard for contacts; asterisk-conf/sorcery.conf sets none),
# each contact under its id, ``<aor>;@<hash>`` (a permanent contact, such as a cluster
# front's, is ``<aor>@@<hash>`` and lives in the configuration, not here).
CONTACTS_FAMILY = "registrar/contact"
_REGISTERED_ID = ";@"
_GONE = "Database entry not found"  # DBDel's refusal of a key that is not there


async def end_registration(ami: AmiListActions, interface: str) -> list[str]:
    """End the current registration of the phone at ``interface`` at once; the contacts (their
    URIs) it had. A renewed secret is what an admin does about a lost or stolen phone: the
    old credentials stop at the next REGISTER, but the registration they made would go on
    ringing that phone with callers until it expires (an hour, a phone asking so). Asterisk
    has no action that removes a registered contact, so its AstDB entry is deleted
    (``DBDel``, class ``system``); the PJSIP reload that follows a stored secret then tells
    the queues the phone is unreachable until it registers again, with the new secret.
    Raises :class:`~telephony.ami.actions.AmiActionError` if Asterisk could not be asked."""
    aor = phone_username(interface)
    events = await ami.send_list_action({"Action": "PJSIPShowEndpoint", "Endpoint": aor})
    ended: list[str] = []
    for event in events:
        contact = str(event.get("ID", ""))
        if (str(event.get("Event", "")) != "ContactStatusDetail"
                or str(event.get("AOR", "")) != aor or _REGISTERED_ID not in contact):
            continue
        try:
            await ami.send_action({"Action": "DBDel", "Family": CONTACTS_FAMILY,
                                   "Key": contact})
        except AmiActionRefusedError as exc:
            if _GONE not in exc.message:
                raise
            continue  # expired (or unregistered) meanwhile: nothing left to end
        ended.append(str(event.get("URI", "")))
    return ended

