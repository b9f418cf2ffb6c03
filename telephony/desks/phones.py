"""Registering operator phones: one digest secret per phone, generated when an admin puts
an operator at a desk (or asks for a new one), shown once, stored only as Asterisk needs it.

A phone registers as its endpoint name (``PJSIP/op2001`` registers as ``op2001``) with the
generated secret; Asterisk checks it against MD5(username:realm:secret) read from the line's
database (``telephony/db/migrations/0010_phones.sql``). A new secret replaces the stored
digest, so the old secret stops working at the phone's next REGISTER.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

INTERFACE_PREFIX = "PJSIP/"


@dataclass(frozen=True)
class PhoneSecret:
    """A freshly generated secret and the digest stored for it."""

    username: str  # what the phone registers as: the endpoint name
    realm: str
    secret: str  # shown once, never stored
    md5_cred: str


def phone_username(interface: str) -> str:
    """``PJSIP/op2001`` -> ``op2001`` (the interface is checked by the desk service)."""
    return interface.removeprefix(INTERFACE_PREFIX)


def digest(username: str, realm: str, secret: str) -> str:
    """MD5(username:realm:secret), the HA1 of RFC 2617 that Asterisk's auth checks with."""
    return hashlib.md5(f"{username}:{realm}:{secret}".encode(), usedforsecurity=False).hexdigest()


def new_phone_secret(interface: str, realm: str) -> PhoneSecret:
    """A new random secret for the phone at ``interface`` (20 characters, letters and
    digits only, so that it can be typed into a desk phone's keypad menu)."""
    alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    secret = "".join(secrets.choice(alphabet) for _ in range(20))
    username = phone_username(interface)
    return PhoneSecret(username, realm, secret, digest(username, realm, secret))
