"""Writing facts in batches gives exactly the tables that writing them one by one gives.

The facts are those the tracker makes of the recorded and synthetic AMI transcripts, several
calls at once, interleaved at random, with what happens in life on top: duplicated and
replayed facts, calls that vanish (before, during or after their own facts), facts in the
old one-variable IVR format (a spool written by an earlier version), malformed IVR values,
operators changing state at the same instant, queue re-joins, and legs' progress in any order.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from telephony.ami.tracker import CallTracker
from telephony.calls.facts import (
    AsteriskBooted,
    CallEnded,
    CallFact,
    CallVanished,
    IvrVariableSet,
    IvrVariablesSet,
    LegProgressed,
    OperatorStateChanged,
    QueueJoined,
    QueueLeft,
    fact_from_json,
    fact_to_json,
)
from telephony.calls.legs import LegKind
from telephony.calls.store import CallRepository, LegRepository
from telephony.db.embedded import EmbeddedPostgres
from tests.support.ami import FIXTURES, NOW, events, existing
from tests.support.calls import CALENDAR
from tests.support.db import create_database, drop_database

TRANSCRIPTS = existing("ami_call_answered.txt", "ami_call_abandoned.txt",
                       "ami_synthetic_call_answered.txt", "ami_synthetic_call_abandoned.txt")
LEGS = 4
# Columns the database fills with the time of the transaction, and event ids (a duplicate
# that one by one tried its insert used up a sequence number): they differ between runs. The
# events' order is compared (rows ordered by event id).
NOW_COLUMNS = frozenset({"updated_at", "recorded_at", "created_at", "requested_at",
                         "event_id"})
TABLES = {
    "calls": "call_id",
    "call_events": "event_id",
    "queue_visits": "call_id, queue, joined_at",
    "operator_state_changes": "operator, queue, at, state, paused",
    "queue_members": "operator, queue",
    "operators": "operator",
    "call_legs": "leg_id",
}


def transcript_facts(path: Path) -> list[CallFact]:
    """The calls' facts (the greeting's AsteriskBooted is no call's: test_outage_store.py)."""
    tracker = CallTracker(clock=lambda: NOW)
    return [fact for event in events(path) for fact in tracker.handle(event)
            if not isinstance(fact, AsteriskBooted)]


def renamed(fact: CallFact, copy: int) -> CallFact:
    body = json.loads(fact_to_json(fact))
    if "call_id" in body:
        body["call_id"] = f"{body['call_id']}-{copy}"
    return fact_from_json(json.dumps(body))


def random_history(seed: int) -> list[CallFact]:
    rng = random.Random(seed)
    base = [transcript_facts(path) for path in TRANSCRIPTS]
    calls = [[renamed(fact, copy) for fact in rng.choice(base)] for copy in range(8)]
    noisy: list[list[CallFact]] = []
    for facts in calls:
        out: list[CallFact] = []
        for original in facts:
            fact = original
            if isinstance(fact, IvrVariablesSet) and rng.random() < 0.3:
                # A line that disagrees with the call's start: the first one set is kept.
                fact = dataclasses.replace(fact, variables=tuple(
                    (name, "119" if name == "line" and value == "112" else value)
                    for name, value in fact.variables))
            if isinstance(fact, IvrVariablesSet) and rng.random() < 0.4:
                # As an earlier version recorded them: one fact per variable.
                out += [IvrVariableSet(fact.call_id, name, value, fact.at)
                        for name, value in fact.variables]
            elif isinstance(fact, IvrVariablesSet) and rng.random() < 0.2:
                out.append(dataclasses.replace(
                    fact, variables=(*fact.variables, ("score", "not a number"))))
            else:
                out.append(fact)
            if isinstance(fact, QueueLeft) and rng.random() < 0.5:
                # Back into the same queue (a re-join), or a resync re-reporting the wait.
                out.append(QueueJoined(fact.call_id, fact.queue, 2,
                                       fact.at + timedelta(seconds=1)))
            if rng.random() < 0.05:
                out.append(CallVanished(getattr(fact, "call_id", "x"), fact.at))
        noisy.append(out)
    # A call whose hang-up was never seen: a resync declares it vanished at the end.
    noisy[1] = [fact for fact in noisy[1] if not isinstance(fact, CallEnded)]
    history: list[CallFact] = []
    while any(noisy):
        history.append(rng.choice([facts for facts in noisy if facts]).pop(0))
    history.append(CallVanished(getattr(calls[1][0], "call_id", "x"), NOW))
    # Calls that vanish before anything else of theirs is known, and ones nobody knows.
    history.insert(0, CallVanished(getattr(calls[0][0], "call_id", "x"), NOW))
    history.insert(0, CallVanished(getattr(calls[1][0], "call_id", "x"),
                                   NOW - timedelta(hours=1)))
    history.insert(rng.randrange(len(history)), CallVanished("nobody.1", NOW))
    # Operators changing at the same instant: the later fact wins.
    for index in range(10):
        state = rng.choice(["idle", "ringing", "talking", "paused"])
        at = NOW + timedelta(seconds=rng.choice([0, 0, 1]))
        history.insert(rng.randrange(len(history)), OperatorStateChanged(
            "PJSIP/op1001", "medical", state, state == "paused", f"r{index}", at))
    for _ in range(12):
        leg = rng.randint(1, LEGS)
        state = rng.choice(["dialling", "answered", "ended"])
        status = rng.choice(["", "ANSWER", "BUSY", "NOANSWER"]) if state == "ended" else ""
        at = NOW + timedelta(seconds=rng.randint(0, 5))
        history.insert(rng.randrange(len(history)), LegProgressed(
            leg, state, status, f"ch.{rng.randint(1, 2)}", at))
    # Duplicates: a replayed event, a spool replayed after a crash.
    for _ in range(15):
        history.insert(rng.randrange(len(history)), rng.choice(history))
    return history


def batches(facts: Sequence[CallFact], rng: random.Random) -> list[Sequence[CallFact]]:
    if rng.random() < 0.5:
        return [facts]  # all at once: every reordering of the batch is exercised
    out: list[Sequence[CallFact]] = []
    start = 0
    while start < len(facts):
        size = rng.choice([1, 2, 3, 7, 20, 60, 500])
        out.append(facts[start:start + size])
        start += size
    return out


async def apply(dsn: str, chunks: list[Sequence[CallFact]]) -> dict[str, list[dict[str, Any]]]:
    repository = CallRepository(CALENDAR)
    connection = await asyncpg.connect(dsn)
    try:
        for number in range(LEGS):
            await connection.execute("INSERT INTO calls (call_id) VALUES ($1)",
                                     f"leg-call-{number}")
            await LegRepository().open(
                connection, kind=LegKind.CONFERENCE, call_id=f"leg-call-{number}",
                incident_id=None, operator="PJSIP/op1001", actor="budi", number="0293110",
                target="Polsek")
        for chunk in chunks:
            await repository.apply(connection, chunk)
        tables = {}
        for table, order in TABLES.items():
            rows = await connection.fetch(f"SELECT * FROM {table} ORDER BY {order}")
            tables[table] = [{k: v for k, v in row.items() if k not in NOW_COLUMNS}
                             for row in rows]
        return tables
    finally:
        await connection.close()


@pytest.mark.parametrize("seed", range(8))
async def test_batches_write_what_one_by_one_writes(
    seed: int, database_dsn: str, pg_cluster: EmbeddedPostgres
) -> None:
    history = random_history(seed)
    other = await create_database(pg_cluster)
    try:
        one_by_one = await apply(database_dsn, [[fact] for fact in history])
        batched = await apply(other, batches(history, random.Random(seed)))
    finally:
        await drop_database(pg_cluster, other)
    for table in TABLES:
        assert batched[table] == one_by_one[table], table
    # Not a vacuous comparison: the history filled every table.
    assert all(one_by_one[table] for table in TABLES)
    assert any(row["vanished"] for row in one_by_one["calls"])
    assert any(row["prank_score"] is None and row["ivr_queue"] for row in one_by_one["calls"])


def test_the_transcripts_are_there() -> None:
    assert len(TRANSCRIPTS) == 4, FIXTURES
