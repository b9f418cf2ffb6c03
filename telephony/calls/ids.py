"""The words every part of the line uses for a call and its caller.

- A call's id is Asterisk's unique id of the caller channel (``<epoch>.<sequence>``, e.g.
  ``1795430334.0``; ``node1-1795430334.0`` on a cluster node whose systemname is node1):
  recordings name files after it and URLs carry it, so an id of any other
  shape (``../x``, an empty string, a name with a slash) is refused before it names anything.
- A caller id is the number the carrier presented; :func:`parse_caller_id` tells what kind it
  is and the key a caller's history is kept under (screening scores it, the call log and the
  operator console show it).

Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from telephony.core.text import ascii_digits, holds_invisible, invisible

# A cluster node's Uniqueids start with its systemname (Settings.asterisk_systemname).
CALL_ID_PATTERN: Final = r"(?:[a-z0-9][a-z0-9_]{0,31}-)?[0-9]+\.[0-9]+"
UNIQUEID: Final = re.compile(CALL_ID_PATTERN)


def valid_call_id(value: str) -> bool:
    """True for an Asterisk unique id (digits, a dot, digits; after a cluster node's
    ``<systemname>-``) and nothing else."""
    return UNIQUEID.fullmatch(value) is not None


def node_of(call_id: str) -> str:
    """The cluster node a call id belongs to (its systemname prefix), ``""`` for a plain id
    (a single node's)."""
    head, sep, _ = call_id.rpartition("-")
    return head if sep else ""


def node_name(call_id: str | None) -> str | None:
    """The cluster node carrying the call ``call_id`` (or the call-back leg whose channel's
    Uniqueid it is), ``None`` for none or a single node's."""
    return node_of(call_id) or None if call_id is not None else None


# The SIP Call-ID the carrier's INVITE came with (RFC 3261 ``callid = word [ "@" word ]``):
# what ties a call the cluster's front dispatched to the call record a node made of it. Only
# the characters of an RFC ``word``, bounded: a value of any other shape is no Call-ID of a
# call we took, and is never stored as one.
_SIP_WORD: Final = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]"
SIP_CALL_ID: Final = re.compile(rf"{_SIP_WORD}{{1,128}}(?:@{_SIP_WORD}{{1,127}})?")


def valid_sip_call_id(value: str) -> bool:
    """True for a SIP Call-ID of :data:`SIP_CALL_ID`'s shape."""
    return SIP_CALL_ID.fullmatch(value) is not None


class CallerIdKind(StrEnum):
    """What the presented caller id is."""

    NUMBER = "number"  # a well-formed Indonesian or international number
    WITHHELD = "withheld"  # hidden (*#31#), anonymous, or not passed by the carrier
    MALFORMED = "malformed"  # present but not a number we can trust as an identity
    SIMLESS = "simless"  # a phone without SIM: the carrier passes the handset's IMEI


# What carriers and Asterisk put in the caller number when the caller hid it. The browser
# softphone is handed the same list (telephony/desks/console.py) to name the caller of the
# call ringing as caller_shown does.
WITHHELD_NUMBERS: Final = frozenset(
    {"", "anonymous", "unknown", "<unknown>", "restricted", "private", "unavailable", "withheld"}
)
_IMEI_URN = "urn:gsma:imei:"
# Some networks deliver a SIM-less call's identity as "IMEI" + the digits, sometimes with a
# colon or a space between (the words after the prefix are separators, not identity).
_IMEI_PREFIX = "imei"
_SVN_PARAM: Final = re.compile(r"svn=[0-9]{2}")
_SEPARATORS = str.maketrans("", "", " -().")
# Indonesian numbers in E.164 are 62 + 8..12 digits (landline area code + subscriber, or 8xx
# mobile); nationally they are 0 + the same 8..12 digits.
_ID_NATIONAL_DIGITS = range(8, 13)
# Some carriers present a mobile caller by the national significant number alone, without
# the trunk 0 (812… for 0812…). Only mobile numbers are read that way: they start with 8 and a
# non-zero digit (08xx operators 811-899; 0800 toll-free and 0809 premium numbers are no
# callers) and are 9-12 digits long (0812-345-678 to 0812-3456-78901). A landline without its
# trunk 0 (21…, 24…) is not taken: its digits cannot be told from a local number, an
# extension or a service code, so it stays malformed rather than merging strangers' histories.
_MOBILE_NSN: Final = re.compile(r"8[1-9][0-9]{7,10}")
_E164_DIGITS = range(8, 16)
_IMEI_DIGITS = 15


@dataclass(frozen=True, slots=True)
class CallerId:
    """A presented caller id, what kind it is, and the identity its history is kept under.

    ``key`` is ``None`` when the id cannot identify a caller (withheld, malformed, or a
    placeholder IMEI, see :func:`imei_key`): such a call has no history, rather than sharing
    one with every other caller who presented "0".
    """

    raw: str
    kind: CallerIdKind
    key: str | None


def luhn_valid(digits: str) -> bool:
    """True when the last digit is the Luhn check digit of the others (as in an IMEI)."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def imei_key(digits: str) -> str | None:
    """The history key of a SIM-less phone whose IMEI (or IMEISV) is ``digits``: ``imei:`` and
    its 14 identity digits; ``None`` for what a handset without a real IMEI reports (a
    counterfeit or badly repaired phone, the kind an IMEI block leaves able to call 112 only):
    a type allocation code of zeros, or one digit repeated. Many unrelated phones present the
    same such number, so it identifies nobody: one child's silent calls would have lowered
    every other null-IMEI caller's emergency."""
    identity = digits[:14]
    if identity.startswith("00000000") or len(set(identity)) == 1:
        return None
    return "imei:" + identity


def _national(digits: str) -> bool:
    """An Indonesian number in its national form: the trunk 0, then 8-12 digits, not 00."""
    return (digits.startswith("0") and len(digits) - 1 in _ID_NATIONAL_DIGITS
            and digits[1] != "0")


def _imei(digits: str) -> bool:
    """Fifteen digits with a valid Luhn check digit: an IMEI (no Indonesian number is that
    long)."""
    return len(digits) == _IMEI_DIGITS and luhn_valid(digits)


def parse_caller_id(raw: str) -> CallerId:
    """Classify a presented caller number and normalise it to a history key.

    Numbers become E.164 digits without ``+`` (``0812…``, ``+62812…``, ``+62 (0)812…`` with
    the trunk 0 kept after the country code, and a mobile number without its trunk 0,
    ``812…``, are one caller; :func:`national_mobile`). A
    SIM-less phone's IMEI, passed as ``urn:gsma:imei:…`` (with RFC 7254's ``;svn=NN`` for an
    IMEISV), as ``IMEI`` + digits, or as 15
    Luhn-valid digits (no Indonesian number is that long), becomes ``imei:`` + its 14 identity
    digits, so an IMEI and the IMEISV of the same handset share a history. The URN and the
    ``IMEI`` prefix name the identifier outright, so their digits are keyed as delivered (14-16
    digits; no check digit is required of them); a placeholder IMEI keys nothing
    (:func:`imei_key`). This is the one place that decides a caller is SIM-less: screening
    marks it, the call-back worklist never dials it. Control and format characters (a
    zero-width space) are not part of the id, as the call store keeps it.
    """
    text = raw
    if holds_invisible(text):
        # What the call store keeps of a caller id (telephony.ami.tracker.caller_id_text):
        # without control and format characters. The IVR reads the same caller id raw from
        # the AGI environment; with a zero-width space or a direction mark in it, it found no
        # key while the calls were stored, and labelled, under the number's: the history an
        # operator built was never read before the queue.
        text = "".join(char for char in text if not invisible(char))
    text = text.strip()
    lowered = text.lower()
    if lowered in WITHHELD_NUMBERS:
        return CallerId(raw, CallerIdKind.WITHHELD, None)
    for prefix in (_IMEI_URN, _IMEI_PREFIX):
        if lowered.startswith(prefix):
            digits = lowered[len(prefix):].lstrip(":")
            if prefix == _IMEI_URN:
                # RFC 7254 adds the software version as a parameter, ";svn=42": the IMEISV of
                # the same handset, whose identity is the digits before it.
                digits, _, params = digits.partition(";")
                if params and not _SVN_PARAM.fullmatch(params):
                    return CallerId(raw, CallerIdKind.MALFORMED, None)
            digits = digits.translate(_SEPARATORS)
            if ascii_digits(digits) and len(digits) in (14, 15, 16):
                return CallerId(raw, CallerIdKind.SIMLESS, imei_key(digits))
            return CallerId(raw, CallerIdKind.MALFORMED, None)
    compact = text.translate(_SEPARATORS)
    international = compact.startswith("+")
    if international:
        compact = compact[1:]
    elif compact.startswith("00"):
        international, compact = True, compact[2:]
    # isascii: str.isdigit also accepts Arabic-Indic and superscript digits.
    if not ascii_digits(compact):
        return CallerId(raw, CallerIdKind.MALFORMED, None)
    if compact.startswith("620"):
        # The trunk 0 kept after the country code ("+62 (0)812…", "620812…", as some trunks
        # present it): no Indonesian number starts with 0 after 62, so this is the national
        # number 0812… and the same caller, with the same history. Fifteen bare digits that
        # pass the Luhn check stay an IMEI, as below.
        national = compact[2:]
        if _national(national) and (international or not _imei(compact)):
            return CallerId(raw, CallerIdKind.NUMBER, "62" + national[1:])
        if international:
            return CallerId(raw, CallerIdKind.MALFORMED, None)
    elif compact.startswith("62") and len(compact) - 2 in _ID_NATIONAL_DIGITS:
        return CallerId(raw, CallerIdKind.NUMBER, compact)
    if international:
        if len(compact) in _E164_DIGITS and compact[0] != "0":
            return CallerId(raw, CallerIdKind.NUMBER, compact)
        return CallerId(raw, CallerIdKind.MALFORMED, None)
    if _imei(compact):
        return CallerId(raw, CallerIdKind.SIMLESS, imei_key(compact))
    if _national(compact):
        return CallerId(raw, CallerIdKind.NUMBER, "62" + compact[1:])
    if _MOBILE_NSN.fullmatch(compact):
        return CallerId(raw, CallerIdKind.NUMBER, "62" + compact)
    return CallerId(raw, CallerIdKind.MALFORMED, None)


# How every page names a caller who hid their number: not as Asterisk's "anonymous" (English,
# and a code an operator read as a name) nor as a blank.
WITHHELD_TEXT: Final = "(nomor disembunyikan)"


def caller_shown(raw: str) -> str:
    """The caller as the console names them: the number presented, or that it was withheld
    (:data:`WITHHELD_TEXT`) when :func:`parse_caller_id` finds it so. The one wording of the
    call-back list, the incident pages and the operator's desk."""
    return WITHHELD_TEXT if parse_caller_id(raw).kind is CallerIdKind.WITHHELD else raw


def national_mobile(number: str) -> str:
    """``number`` with its trunk 0 back when it is a mobile number presented without it
    (``812…`` becomes ``0812…``), else ``number`` unchanged: the form the carrier is asked to
    dial, since a bare ``812…`` dialled out is not a national number."""
    return "0" + number if _MOBILE_NSN.fullmatch(number) else number
