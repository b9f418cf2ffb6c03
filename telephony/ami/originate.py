"""What an AMI ``Originate`` reports back, for every service that places calls with one (the
caller-rating survey, an operator's call-back): the ``OriginateResponse`` event, its
``Reason`` code, and header values read safely. Pure: no I/O.

An ``Async`` Originate is answered at once ("successfully queued"); how the call went comes
later as ``OriginateResponse`` with the action's ``ActionID``: ``Response: Success`` once the
originated channel answered (and went on into the dialplan), ``Failure`` otherwise, with
``Reason`` the control frame the dial ended on.
"""

from __future__ import annotations

import re
from typing import Final

from telephony.core.labels import LabelledIntEnum

ORIGINATE_RESPONSE: Final = "OriginateResponse"
MAX_TEXT: Final = 200
_CODE = re.compile(r"[0-9]{1,3}")


class OriginateReason(LabelledIntEnum):
    """``OriginateResponse``'s ``Reason``: the control frame the dial ended on (Asterisk's
    pbx.c, pbx_dial_reason)."""

    FAILURE = 0, "gagal"
    HUNG_UP = 1, "ditutup sebelum diangkat"
    NO_ANSWER = 3, "tidak diangkat"
    ANSWERED = 4, "diangkat"
    BUSY = 5, "sibuk"
    CONGESTION = 8, "ditolak atau tidak terjangkau"


def printable(value: object) -> str:
    """An AMI header's value as one bounded, printable line ("" when absent)."""
    return "".join(ch for ch in str(value or "") if ch.isprintable())[:MAX_TEXT]


def parse_code(text: str) -> int | None:
    """An OriginateResponse Reason or a Hangup Cause as a number, ``None`` if not one."""
    return int(text) if _CODE.fullmatch(text) else None


def reason_label(code: int | None) -> str:
    """A Reason code in words, for a log or a stored status."""
    try:
        return OriginateReason(code).label if code is not None else "tanpa alasan"
    except ValueError:
        return f"alasan {code}"
