"""Outages and cut calls in PostgreSQL (telephony/calls/outage_store.py), through the call
store as the listener writes them: the end a cut moves back, replays, the outage's upsert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from telephony.callbacks.model import CallbackReason, reason_for
from telephony.callbacks.store import CallbackRepository
from telephony.calls.facts import (
    AsteriskBooted,
    AsteriskReturned,
    AsteriskShutdown,
    CallCut,
    CallEnded,
    CallFact,
    CallVanished,
)
from telephony.calls.outage_store import outages
from telephony.calls.outages import OutageKind
from telephony.calls.store import CallRepository
from tests.support.calls import CALENDAR, call_facts

T0 = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def cut_row(connection: asyncpg.Connection, call_id: str) -> tuple[object, ...]:
    row = await connection.fetchrow(
        "SELECT ended_at, vanished, hangup_cause, cut_reason FROM calls WHERE call_id = $1",
        call_id)
    assert row is not None
    return tuple(row)


async def test_a_crash_cut_moves_a_vanished_end_back_and_replays_change_nothing(
    database_dsn: str
) -> None:
    repository = CallRepository(CALENDAR)
    connection = await asyncpg.connect(database_dsn)
    try:
        talking = call_facts("1.1", at=s(-60), answered_at=s(-40), talk=None)
        waiting = call_facts("1.2", at=s(-30), answered_at=None)[:-2]  # still queued
        await repository.apply(connection, [*talking, *waiting])
        outage: list[CallFact] = [
            AsteriskBooted(0, s(12)),
            AsteriskReturned(OutageKind.CRASH.value, s(0), s(0), s(12), 2, s(12))]
        # The resync noticed at 13 s (before the greeting was followed, say); the cut knows
        # the calls were alive until the session died at 0 s.
        vanished: list[CallFact] = [
            CallVanished("1.1", s(13)), CallVanished("1.2", s(13)),
            CallCut("1.1", "asterisk_crash", s(0)), CallCut("1.2", "asterisk_crash", s(0))]
        assert await repository.apply(connection, [*outage, *vanished]) == 6
        for call_id in ("1.1", "1.2"):
            assert await cut_row(connection, call_id) == (s(0), True, None, "asterisk_crash")
        # The answered call talked until it was cut; the queued one never talked.
        rows = await connection.fetch("SELECT call_id, talk_seconds FROM calls")
        talk = {row["call_id"]: row["talk_seconds"] for row in rows}
        assert talk == {"1.1": 40, "1.2": None}
        # A replay, and a second cut of another kind, change nothing.
        assert await repository.apply(connection, [*outage, *vanished]) == 0
        await repository.apply(connection, [CallCut("1.1", "asterisk_restart", s(5))])
        assert await cut_row(connection, "1.1") == (s(0), True, None, "asterisk_crash")
        (stored,) = await outages(connection, since=s(-1))
        assert (stored.kind, stored.began_at, stored.lost_at, stored.booted_at,
                stored.back_at, stored.calls_cut) == (
            OutageKind.CRASH, s(0), s(0), s(12), s(12), 2)
        # Both callers are on the call-back worklist, as cut.
        calls = await CallbackRepository().ended_calls(connection, since=s(-3600))
        assert {c.call_id: reason_for(c) for c in calls} == {
            "1.1": CallbackReason.CUT, "1.2": CallbackReason.CUT}
    finally:
        await connection.close()


async def test_a_restart_cut_keeps_the_hang_up_and_the_outage_is_completed_on_return(
    database_dsn: str
) -> None:
    repository = CallRepository(CALENDAR)
    connection = await asyncpg.connect(database_dsn)
    try:
        await repository.apply(connection, call_facts("2.1", at=s(-60), answered_at=s(-40),
                                                      talk=None))
        await repository.apply(connection, [
            CallEnded("2.1", 16, "Normal Clearing", s(0)),
            AsteriskShutdown(True, s(1.1)),
            CallCut("2.1", "asterisk_restart", s(0))])
        assert await cut_row(connection, "2.1") == (s(0), False, 16, "asterisk_restart")
        (down,) = await outages(connection, since=s(-1))
        assert (down.kind, down.began_at, down.back_at, down.calls_cut) == (
            OutageKind.RESTART, s(1.1), None, 0)
        await repository.apply(connection, [
            AsteriskReturned(OutageKind.RESTART.value, s(1.1), s(1.1), s(2), 1, s(2.5))])
        (back,) = await outages(connection, since=s(-1))
        assert (back.outage_id, back.lost_at, back.booted_at, back.back_at,
                back.calls_cut) == (down.outage_id, s(1.1), s(2), s(2.5), 1)
        assert await outages(connection, since=s(2)) == []
    finally:
        await connection.close()
