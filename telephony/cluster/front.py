"""Calls the cluster's SIP front dispatched that no node recorded: the rules (pure).

The front (kamailio-conf/kamailio.cfg) records every call it relays to a node, at the
transaction's final reply, in ``front_calls`` (migration 0026): the carrier's SIP Call-ID, the
caller (From user), the number dialled, the node (the dispatcher's destination URI), when it
dispatched it and the final reply. Every node records each call it takes with that Call-ID
(``calls.sip_call_id``, from the dialplan's first step). A front row whose Call-ID no call
record carries, a grace period after the front wrote it, is a call its node lost: the node
died (``kill -9``, a machine lost) before its line stored the call's start, its AMI events in
the line's memory or never sent. The front is the one witness that survives; a line then
makes the call a record of its own (:class:`telephony.calls.facts.CallLost`), ended where it
arrived, "hilang bersama node <name>".

Everything read from the front's table is checked first: the row is written by another
program from what the carrier sent. A Call-ID of the wrong shape, or a node that is not one of
``cluster_nodes``, makes no record (one log line each); a caller number is cleaned as the AMI
tracker cleans one; a dispatch instant that does not parse, or lies far from when the row was
written, gives way to the row's own time.

The front also tells which of two records of one call is not a call
(:func:`withdrawn_offers`): a node that takes an INVITE after the front's timeout has given it
to the next node starts a channel that the front then cancels (or whose answer the carrier
hangs up). Its line records it, the same Call-ID as the record on the node the front chose,
ended at once, never queued. Such a record is an offer the front withdrew, not a call.

The lost call's id is its node's, ``<node>-<epoch>.<seq>``, so the call counts as the node's
wherever ids are read; ``seq`` is :data:`LOST_SEQ_BASE` plus the front row's id, above any
sequence number Asterisk gives (a C ``int`` counted from 0 at each start), so it never
collides with a Uniqueid the node gave out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from telephony.ami.tracker import caller_id_text, line_of
from telephony.calls.facts import CallLost
from telephony.calls.ids import node_of, valid_call_id, valid_sip_call_id
from telephony.settings import ClusterNode

LOST_SEQ_BASE: Final = 10_000_000_000  # > 2**31: no Asterisk Uniqueid sequence gets there
MAX_REASON: Final = 64
# Kamailio's $TV(Sn): "<seconds>.<microseconds>".
_INSTANT: Final = re.compile(r"([0-9]{1,11})\.([0-9]{1,6})")
_CODE: Final = re.compile(r"[1-6][0-9]{2}")
_REASON: Final = re.compile(r"[\x20-\x7e]*")
# How far the dispatch instant may lie from the row's write (the final reply: an INVITE the
# node accepted but never answered ends at the front's INVITE timer, 120 s).
_EARLIEST: Final = timedelta(minutes=10)
_LATEST: Final = timedelta(seconds=5)
# The longest a record of a withdrawn offer lasts: the front cancels it at the node's first
# reply (measured: ended 2-3 ms after it began), or the carrier hangs up its answer at once.
# A record that lasted longer had a caller on it for a while, whatever the front's row says,
# and stays.
OFFER_SECONDS: Final = 5.0
# When such a record can start, from the front's first dispatch of the call: after it (less a
# clock's skew between the front and a node), and within the time a node may stall and still
# take the INVITE. A record outside is of another call that reused the Call-ID.
OFFER_AFTER: Final = (-_LATEST, _EARLIEST)


class FrontRowError(ValueError):
    """A front row that cannot become a record; the message is one log-safe line."""


@dataclass(frozen=True)
class FrontCall:
    """One row of ``front_calls`` as read (every text as Kamailio wrote it)."""

    id: int
    method: str
    callid: str
    sip_code: str
    sip_reason: str
    caller: str | None
    line: str | None
    node: str | None
    dispatched: str | None
    recorded_at: datetime


@dataclass(frozen=True)
class NodeRecord:
    """A call record carrying a dispatched call's Call-ID, as :func:`withdrawn_offers` reads
    it."""

    call_id: str
    ended: bool
    queued: bool  # it joined a queue: a caller was there, whatever the front did
    lost: bool  # a record a line made of a lost call (cut_reason node_lost)
    seconds: float | None = None  # from its start to its end, if both are known
    arrived: datetime | None = None  # its start


def node_named(uri: str | None, nodes: Sequence[ClusterNode]) -> ClusterNode | None:
    """The node of ``cluster_nodes`` the dispatcher's destination ``sip:<host>:<port>`` is
    (as telephony/kamailio/config.py lists them), else None."""
    return next((node for node in nodes if uri == f"sip:{node.sip_address}"), None)


def dispatched_at(row: FrontCall) -> datetime:
    """When the front dispatched the call: its ``dispatched`` instant if that parses and lies
    near the row's write, else the write itself."""
    match = _INSTANT.fullmatch(row.dispatched or "")
    if match is None:
        return row.recorded_at
    seconds, fraction = match.groups()
    at = datetime.fromtimestamp(int(seconds), UTC) + timedelta(
        microseconds=int(fraction.ljust(6, "0")))
    if not row.recorded_at - _EARLIEST <= at <= row.recorded_at + _LATEST:
        return row.recorded_at
    return at


def reply_text(row: FrontCall) -> str:
    """The front's final reply, "200 OK"; "" if it is not a SIP status."""
    if not _CODE.fullmatch(row.sip_code):
        return ""
    reason = row.sip_reason[:MAX_REASON]
    return f"{row.sip_code} {reason}" if _REASON.fullmatch(reason) and reason else row.sip_code


def lost_call(row: FrontCall, nodes: Sequence[ClusterNode]) -> CallLost:
    """The record of a dispatched call no node recorded; :class:`FrontRowError` if the row
    cannot be one."""
    if row.method != "INVITE":
        raise FrontRowError(f"front call {row.id}: not an INVITE: {row.method[:20]!r}")
    if not valid_sip_call_id(row.callid):
        raise FrontRowError(f"front call {row.id}: Call-ID is malformed: {row.callid[:40]!r}")
    node = node_named(row.node, nodes)
    if node is None:
        raise FrontRowError(f"front call {row.id}: {str(row.node)[:60]!r} is no cluster node")
    at = dispatched_at(row)
    call_id = f"{node.name}-{int(at.timestamp())}.{LOST_SEQ_BASE + row.id}"
    if not valid_call_id(call_id):
        raise FrontRowError(f"front call {row.id}: node {node.name[:40]!r} gives no call id")
    line = line_of(row.line or "")  # as the dialplan routes it
    return CallLost(call_id=call_id, sip_call_id=row.callid, node=node.name,
                    caller_number=caller_id_text(row.caller or ""), line=line,
                    reply=reply_text(row), at=at)


def lost_calls(rows: Sequence[FrontCall], nodes: Sequence[ClusterNode],
               ) -> tuple[list[CallLost], list[FrontRowError]]:
    """The records of ``rows`` (dispatched calls no node recorded), and the rows refused."""
    facts: list[CallLost] = []
    refused: list[FrontRowError] = []
    seen: set[str] = set()
    for row in sorted(rows, key=lambda r: r.id):
        try:
            fact = lost_call(row, nodes)
        except FrontRowError as exc:
            refused.append(exc)
            continue
        if fact.sip_call_id not in seen:  # one record per Call-ID: the first dispatch
            seen.add(fact.sip_call_id)
            facts.append(fact)
    return facts, refused


def withdrawn_offers(row: FrontCall, records: Sequence[NodeRecord],
                     nodes: Sequence[ClusterNode]) -> tuple[list[str], str | None]:
    """The records of ``row``'s call that are offers the front withdrew, and the record the
    call lives on. Withdrawn: on another node than the one the front's row names (the last it
    tried), started within :data:`OFFER_AFTER` of the front's dispatch, ended within
    :data:`OFFER_SECONDS` of its start, never queued, not a lost-call record, while a record
    on the front's node exists. Nothing is withdrawn without that record (a call must keep
    one), nor when the row's node is not a cluster node."""
    node = node_named(row.node, nodes)
    if node is None:
        return [], None
    kept = sorted(record.call_id for record in records if node_of(record.call_id) == node.name)
    if not kept:
        return [], None
    dispatched = dispatched_at(row)
    earliest, latest = (dispatched + offset for offset in OFFER_AFTER)
    withdrawn = [record.call_id for record in records
                 if node_of(record.call_id) not in ("", node.name)
                 and record.ended and not record.queued and not record.lost
                 and record.seconds is not None and record.seconds <= OFFER_SECONDS
                 and record.arrived is not None and earliest <= record.arrived <= latest]
    return sorted(withdrawn), kept[0]
