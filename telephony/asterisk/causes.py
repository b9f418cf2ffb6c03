"""Asterisk's hang-up cause texts: what the AMI ``Hangup`` event's ``Cause-txt`` says for a
``Cause`` (Asterisk's ``ast_cause2str``, main/channel.c, over the Q.850 codes of causes.h).

Why here: a hang-up the line did not hear is known from the dialplan's ``HANGUPCAUSE`` alone
(the number; telephony/calls/backfill.py reads it from the queue_log), and the call must be
stored as the tracker would have stored it from the ``Hangup`` event, text included.
"""

from __future__ import annotations

from typing import Final

UNKNOWN: Final = "Unknown"  # ast_cause2str's answer for a code not in its table

CAUSE_TEXTS: Final[dict[int, str]] = {
    1: "Unallocated (unassigned) number",
    2: "No route to specified transmit network",
    3: "No route to destination",
    5: "Misdialed trunk prefix",
    6: "Channel unacceptable",
    7: "Call awarded and being delivered in an established channel",
    8: "Pre-empted",
    14: "Number ported elsewhere",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    20: "Subscriber absent",
    21: "Call Rejected",
    22: "Number changed",
    23: "Redirected to new destination",
    26: "Answered elsewhere",
    27: "Destination out of order",
    28: "Invalid number format",
    29: "Facility rejected",
    30: "Response to STATus ENQuiry",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    41: "Temporary failure",
    42: "Switching equipment congestion",
    43: "Access information discarded",
    44: "Requested channel not available",
    50: "Facility not subscribed",
    52: "Outgoing call barred",
    54: "Incoming call barred",
    57: "Bearer capability not authorized",
    58: "Bearer capability not available",
    65: "Bearer capability not implemented",
    66: "Channel not implemented",
    69: "Facility not implemented",
    81: "Invalid call reference value",
    88: "Incompatible destination",
    95: "Invalid message unspecified",
    96: "Mandatory information element is missing",
    97: "Message type nonexist.",
    98: "Wrong message",
    99: "Info. element nonexist or not implemented",
    100: "Invalid information element contents",
    101: "Message not compatible with call state",
    102: "Recover on timer expiry",
    103: "Mandatory IE length error",
    111: "Protocol error, unspecified",
    127: "Interworking, unspecified",
}

MAX_CAUSE: Final = 127  # Q.850 codes are 7 bits; 0 is Asterisk's "not defined"

# Q.850 causes that say the network lost the call, not that someone hung up (the call-back
# worklist calls such callers back; screening does not count such a call as the caller's):
#   27 destination out of order (SIP 502: the path to the caller broke)
#   34 no circuit/channel available (SIP 503 from a trunk out of capacity)
#   38 network out of order (the carrier's own failure indication)
#   41 temporary failure (SIP 500/503: a transient failure along the way)
#   42 switching equipment congestion (an overloaded exchange)
#   44 requested circuit/channel not available
#   47 resource unavailable, unspecified
#  102 recovery on timer expiry (SIP 408/504: the caller's side stopped answering, e.g. lost
#      coverage, and a timer ran out)
# Not: 16 normal clearing and 31 normal unspecified (how ordinary hang-ups end; Asterisk uses
# 31 for many of them), 17 busy, 18/19 no answer, 21 rejected (not meaningful for a caller's
# own leg), 1/3/28 number problems (the number, not the network).
NETWORK_CAUSES: Final = frozenset({27, 34, 38, 41, 42, 44, 47, 102})


def cause_text(cause: int) -> str:
    """The text Asterisk gives ``cause`` in a ``Hangup`` event's ``Cause-txt``."""
    return CAUSE_TEXTS.get(cause, UNKNOWN)
