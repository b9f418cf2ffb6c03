"""A supervisor's listening modes and the AMI action that starts one. Pure.

The line rings the supervisor's own phone with ``Originate``; once answered, that channel runs
Asterisk's ``ChanSpy`` on the operator's channel of the call. ``ChanSpy``'s first argument is
spliced into the action, so it is the exact channel name Asterisk reported for the operator
(``PJSIP/op2001-0000002a``), checked against a strict pattern, never text from a request.

Options every mode shares (app_chanspy, Asterisk 22):

- ``u``: the argument is one full channel name, not a prefix. The supervisor hears exactly
  the call the audit entry names, never a later call of the same operator, and digits typed
  on their phone cannot make ChanSpy hop to another channel (without ``u``, ``1234#`` builds a
  new name to spy on). If that channel is already gone, ChanSpy ends at once.
- ``E``: end when the spied-on channel hangs up (the call is over); the supervisor's phone is
  hung up with it instead of waiting for another channel.
- ``q``: no beep and no channel name spoken when spying starts: the supervisor's phone already
  shows whom they hear, in its caller ID.

Then ``w`` (whisper: the operator hears the supervisor, the caller does not) or ``B`` (barge:
both hear them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from telephony.accounts.model import Role
from telephony.ami.originate import reason_label
from telephony.core.labels import LabelledStrEnum
from telephony.desks.operators import check_interface

AUDIT_PREFIX: Final = "supervision."
# Every entry of listening in is about the operator's desk, as the desk's own (join, pause ...).
AUDIT_OBJECT: Final = "desk"
# The second audit line of an attempt Asterisk did not carry out (the first one stands).
FAILED_ACTION: Final = "supervision.failed"
SHARED_OPTIONS: Final = "qEu"
# The ActionID of a supervisor's Originate: its OriginateResponse carries it back.
ACTION_PREFIX: Final = "siaga112-spy-"
# chan_pjsip names a channel "PJSIP/<endpoint>-<8 hex digits>".
_CHANNEL_SUFFIX: Final = re.compile(r"-[0-9a-f]{8}")
_TOKEN: Final = re.compile(r"[0-9a-f]{32}")


class SpyMode(LabelledStrEnum):
    """How the supervisor joins the operator's call."""

    LISTEN = "listen", "Dengarkan"
    WHISPER = "whisper", "Bisikkan"
    BARGE = "barge", "Sela"

    @property
    def options(self) -> str:
        """ChanSpy's options for this mode."""
        return SHARED_OPTIONS + {"listen": "", "whisper": "w", "barge": "B"}[self.value]

    @property
    def audit_action(self) -> str:
        """The audit log's action: ``supervision.listen`` ..."""
        return AUDIT_PREFIX + self.value


class SupervisionInputError(ValueError):
    """A mode, interface or channel that is not one; nothing may be sent."""


def parse_mode(text: str) -> SpyMode:
    """``listen``, ``whisper`` or ``barge``."""
    try:
        return SpyMode(text)
    except ValueError:
        raise SupervisionInputError(f"not a mode: {text[:40]!r}") from None


def operator_interface(text: str) -> str:
    """``text`` if it is a phone's interface (``PJSIP/op2001``)."""
    try:
        return check_interface(text)
    except ValueError:
        raise SupervisionInputError(f"not an interface: {text[:80]!r}") from None


def spied_channel(channel: str, interface: str) -> str:
    """``channel`` if it is a channel of the phone at ``interface`` as chan_pjsip names it
    (``PJSIP/op2001-0000002a`` for ``PJSIP/op2001``): nothing else may reach ChanSpy."""
    name, dash, suffix = channel.rpartition("-")
    if (name != operator_interface(interface) or not dash
            or _CHANNEL_SUFFIX.fullmatch(dash + suffix) is None):
        raise SupervisionInputError(f"not a channel of {interface}: {channel[:80]!r}")
    return channel


def endpoint_of(interface: str) -> str:
    """``PJSIP/op2001`` -> ``op2001``."""
    return operator_interface(interface).partition("/")[2]


def action_id(token: str) -> str:
    """The ActionID of the Originate ``token`` (32 hex digits, e.g. a uuid4's) names."""
    if _TOKEN.fullmatch(token) is None:
        raise SupervisionInputError(f"not a token: {token[:40]!r}")
    return ACTION_PREFIX + token


def is_ours(action: str) -> bool:
    """Whether ``action`` (an event's ActionID) is one of a supervisor's Originates."""
    return (action.startswith(ACTION_PREFIX)
            and _TOKEN.fullmatch(action[len(ACTION_PREFIX):]) is not None)


def originate_action(*, phone: str, channel: str, operator: str, mode: SpyMode,
                     ring_seconds: float, token: str) -> dict[str, str]:
    """The ``Originate`` that rings the supervisor's ``phone`` and, once answered, spies on
    ``channel`` (the operator's, at ``operator``) in ``mode``.

    ``Async``: the action returns once Asterisk has queued the call, not after the
    supervisor answered (that may take ``ring_seconds``); whether the phone answered, was
    busy or could not be reached comes later as an ``OriginateResponse`` carrying the
    ActionID made of ``token``. The phone shows the mode and the operator as the caller,
    e.g. ``Dengarkan op2001``."""
    spied = spied_channel(channel, operator)
    endpoint = endpoint_of(operator)
    return {
        "Action": "Originate",
        "ActionID": action_id(token),
        "Channel": operator_interface(phone),
        "Application": "ChanSpy",
        "Data": f"{spied},{mode.options}",
        "Timeout": str(round(ring_seconds * 1000)),
        "CallerID": f'"{mode.label} {endpoint}" <{endpoint}>',
        "Async": "true",
    }


# Why a supervisor's ringing phone was hung up by the line: the call it was to listen to
# ended before they answered (telephony/supervision/service.py).
SPIED_CALL_ENDED: Final = "Panggilan operator sudah berakhir sebelum telepon supervisor diangkat"
# ... or its supervisor lost the right to listen in (another role, disabled) meanwhile.
RIGHT_REVOKED: Final = "Hak mendengarkan supervisor dicabut sebelum teleponnya diangkat"


def failure_reason(code: int | None) -> str:
    """Why the supervisor's phone did not take the call, from its OriginateResponse's
    ``Reason`` (busy, not answered, unreachable ...), for the ``supervision.failed`` entry."""
    return f"Telepon supervisor {reason_label(code)}" + (
        f" (Reason {code})" if code is not None else "")


# -- a right taken away ---------------------------------------------------------------------

SPY_APPLICATION: Final = "ChanSpy"
# The line hung up a listening in whose supervisor no longer may (telephony/supervision/rights.py).
REVOKED_ACTION: Final = "supervision.revoked"


@dataclass(frozen=True)
class SpyLeg:
    """The supervisor's phone channel of a listening in (running ChanSpy, or just answered to
    run it): what ending it needs and its audit entry names."""

    leg: str  # the supervisor's channel, PJSIP/sup01-0000002c
    spied: str  # the operator's channel; "" when not known
    mode: str  # SpyMode's value; "" when not known

    @property
    def phone(self) -> str:
        """The supervisor's phone: ``PJSIP/sup01``."""
        return self.leg.rpartition("-")[0]

    @property
    def operator(self) -> str:
        """The spied operator's interface when the spied channel is one as chan_pjsip names
        it (``PJSIP/op2001``); else the supervisor's phone (the entry is still about it)."""
        interface = self.spied.rpartition("-")[0]
        try:
            spied_channel(self.spied, interface)
        except SupervisionInputError:
            return self.phone
        return interface


def spy_leg(channel: str, application: str, data: str) -> SpyLeg | None:
    """The listening in a channel runs (``CoreShowChannel``'s Channel, Application and
    ApplicationData), or ``None`` for a channel not in ChanSpy. Whichever way it was started:
    a ChanSpy not started by this line is still someone listening in from that phone."""
    if application != SPY_APPLICATION or not channel.rpartition("-")[0]:
        return None
    spied, _, options = data.partition(",")
    mode = next((m.value for m in SpyMode if m.options == options), "")
    return SpyLeg(channel, spied, mode)


@dataclass(frozen=True)
class PhoneHolder:
    """The account working at a phone now."""

    username: str
    role: Role
    active: bool


def revoked_reason(holder: PhoneHolder | None) -> str | None:
    """Why a listening in from a phone held by ``holder`` must end now (the audit entry's
    reason), or ``None`` while an active supervisor holds it."""
    if holder is None:
        return "Telepon ini tidak lagi dipegang akun supervisor"
    if not holder.active:
        return f"Akun {holder.username} dinonaktifkan"
    if holder.role is not Role.SUPERVISOR:
        return f"Peran akun {holder.username} kini {holder.role.label}, bukan Supervisor"
    return None
