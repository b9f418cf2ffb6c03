"""Screening storage against a real PostgreSQL: the history query agrees with
``summarise_history``, labels, post-call rescoring, and the IVR's screening variables."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from ivr.flow import IvrResult, Outcome, ScreeningVerdict
from ivr.menu import Route
from telephony.calls.facts import (
    CallCut,
    CallEnded,
    CallFact,
    CallStarted,
    CallVanished,
    IvrVariableSet,
)
from telephony.calls.store import CallRepository
from telephony.db.connection import Database
from telephony.db.embedded import EmbeddedPostgres
from telephony.screening.features import (
    DEFAULT_LOOKBACK,
    IvrBehaviour,
    Label,
    LabelEvent,
    PastCall,
    summarise_history,
)
from telephony.screening.ivr import PreQueueScreener
from telephony.screening.score import ScoreConfig, pre_queue_score
from telephony.screening.service import (
    SCORING_MAX_AGE,
    ScreeningService,
    ScreeningUnavailable,
    call_features,
)
from telephony.screening.store import (
    EndedCall,
    InvalidLabel,
    ScreeningRepository,
    UnknownCall,
)
from telephony.settings import Settings
from tests.support.calls import CALENDAR, call_facts
from tests.support.db import (
    create_database_before,
    drop_database,
    frozen,
    line_dsn,
    upgrade_database,
)
from tests.support.net import free_port
from tests.support.polling import eventually
from tests.support.screening import HeldPass

T0 = datetime(2026, 11, 23, 7, 0, 0, tzinfo=UTC)  # 14:00 in Jakarta
REPO = ScreeningRepository()


class FixedConfig:
    """A config source that never changes."""

    def current(self) -> ScoreConfig:
        return ScoreConfig()


@pytest.fixture
async def connection(database_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_dsn)
    yield conn
    await conn.close()


@pytest.fixture
async def service(database_dsn: str, settings: Settings) -> AsyncIterator[ScreeningService]:
    database = Database(replace(settings, database_dsn=database_dsn))
    yield ScreeningService(database, FixedConfig(), "Asia/Jakarta")
    await database.close()


# ------------------------------------------------------------------ randomized history vs SQL

CALL_COLUMNS = (
    "call_id", "caller_number", "caller_key", "line", "arrived_at", "ended_at", "answered_at",
    "talk_seconds", "ended_by", "ivr_outcome", "ivr_first_key_ms", "ivr_invalid_keys", "queue",
    "hangup_cause", "cut_reason",
)
# Offsets from "now" that sit on or next to a window's edge.
EDGE = timedelta(microseconds=1)
BOUNDARIES = [
    timedelta(0), timedelta(hours=1), timedelta(hours=24), timedelta(hours=168), DEFAULT_LOOKBACK,
]


@dataclass
class StoredRow:
    """One random ``calls`` row, in CALL_COLUMNS order, with its expected silence."""

    values: tuple[object, ...]
    ended: EndedCall | None  # None while in progress


def random_row(rng: random.Random, call_id: str, key: str, arrived: datetime,
               ends: datetime | None = None) -> StoredRow:
    """A random row; ``ends``: when it ends, if it ends (otherwise random)."""
    ended_at: datetime | None = None
    answered_at: datetime | None = None
    talk: int | None = None
    ended_by: str | None = None
    if rng.random() < 0.9:
        if rng.random() < 0.5:
            answered_at = arrived + timedelta(seconds=rng.uniform(0, 30))
            # Around the 5 s quick hang-up, exactly on it included.
            hold = rng.choice([0.0, 2.0, 4.999, 5.0, 5.001, 6.0, 40.0])
            ended_at = answered_at + timedelta(seconds=hold)
            if rng.random() < 0.6:
                talk = rng.choice([0, 3, 5, 6, 30])
                ended_by = rng.choice(["caller", "agent", "transfer", None])
        else:
            ended_at = arrived + timedelta(seconds=rng.uniform(0, 60))
    if ended_at is not None and ends is not None:
        ended_at = max(ends, answered_at or ends)
    first_key = rng.choice([None, None, 0, 900, 3500])
    invalid = rng.choice([None, 0, 2]) if first_key is not None else rng.choice([None, 0])
    outcome = rng.choice([None, "chosen", "no_input", "invalid", "direct", "failopen"])
    queue = rng.choice([None, "fire", "emergency-general"])
    line = rng.choice(["112", "119"])
    # Ordinary hang-ups, network ones (27, 38, 102) and none; now and then a cut.
    cause = rng.choice([None, 16, 16, 31, 27, 38, 102])
    cut = rng.choice([None] * 9 + ["asterisk_crash"])
    values = (call_id, key, key, line, arrived, ended_at, answered_at, talk, ended_by, outcome,
              first_key, invalid, queue, cause, cut)
    ended = None
    if ended_at is not None:
        ended = EndedCall(call_id, key, line, arrived, ended_at, answered_at, talk, ended_by,
                          outcome, first_key, invalid, queue, None, cause, cut)
    return StoredRow(values, ended)


@dataclass
class Case:
    key: str
    now: datetime
    lookback: timedelta
    calls: list[PastCall]
    labels: list[LabelEvent]


# call_id, caller_key, arrived_at, looked_silent, post_score
Screened = tuple[str, str, datetime, bool, float]
SUSPECT = 0.8  # the post-call score from which an unlabelled call is suspected
Labelled = tuple[str, str, str, datetime]  # call_id, caller_key, label, labelled_at


def random_case(rng: random.Random, index: int, rows: list[StoredRow],
                screened: list[Screened], labels: list[Labelled]) -> Case:
    key = f"62812{index:07d}"
    now = T0 + timedelta(days=index, microseconds=rng.randrange(1_000_000))
    lookback = rng.choice([DEFAULT_LOOKBACK, timedelta(days=10), timedelta(hours=30)])
    calls: list[PastCall] = []
    for n in range(rng.choice([0, 1, 3, 8, 20])):
        if rng.random() < 0.3:
            edge = rng.choice([*BOUNDARIES, lookback])
            age = edge + rng.choice([-EDGE, timedelta(0), EDGE])
        else:
            age = timedelta(seconds=rng.uniform(-7200, lookback.total_seconds() * 1.1))
        arrived = now - age  # negative ages: calls after "now", which must not count
        call_id = f"c{index}.{n}"
        # Some end right at "now" (not yet history), some just before (history).
        ends = rng.choice([None, None, now, now - EDGE]) if arrived < now else None
        row = random_row(rng, call_id, key, arrived, ends)
        rows.append(row)
        silent = row.ended is not None and call_features(row.ended).looks_silent
        suspected = False
        if row.ended is not None and rng.random() < 0.4:
            silent = rng.random() < 0.5  # the post-call result overrides the row's guess
            score = rng.choice([0.3, SUSPECT, 0.95])
            suspected = score >= SUSPECT
            screened.append((call_id, key, arrived, silent, score))
        if row.ended is not None and row.ended.ended_at < now:  # a past call has ended
            calls.append(PastCall(call_id, arrived, silent, suspected))
    events: list[LabelEvent] = []
    for _ in range(rng.choice([0, 1, 4, 10])):
        if not calls:
            break
        target = rng.choice(calls)
        at = rng.choice([
            target.at + timedelta(minutes=rng.uniform(0, 600)),
            now, now - EDGE, now + EDGE,  # entered right at "now", just before, just after
            events[-1].at if events else now,  # a correction in the same instant
        ])
        event = LabelEvent(target.call_id, rng.choice(list(Label)), at)
        events.append(event)
        labels.append((event.call_id, key, event.label.value, event.at))
    return Case(key, now, lookback, calls, events)


async def test_history_query_agrees_with_summarise_history(
    connection: asyncpg.Connection,
) -> None:
    rng = random.Random(20261123)
    rows: list[StoredRow] = []
    screened: list[Screened] = []
    labels: list[Labelled] = []
    cases = [random_case(rng, index, rows, screened, labels) for index in range(400)]
    # Another caller in every window, to prove the key is what selects.
    noise_now = T0 + timedelta(days=7)
    for n in range(50):
        rows.append(random_row(rng, f"noise.{n}", "6285700000000",
                               noise_now - timedelta(minutes=n)))
    await connection.copy_records_to_table(
        "calls", records=[row.values for row in rows], columns=CALL_COLUMNS)
    await connection.copy_records_to_table(
        "call_screening", records=[(*row, "[]") for row in screened],
        columns=("call_id", "caller_key", "arrived_at", "looked_silent", "post_score",
                 "post_reasons"))
    await connection.copy_records_to_table(
        "call_labels", records=[(*row, "op") for row in labels],
        columns=("call_id", "caller_key", "label", "labelled_at", "labelled_by"))

    nonempty = 0
    for case in cases:
        expected = summarise_history(case.calls, case.labels, case.now, case.lookback)
        got = await REPO.history(connection, case.key, case.now, case.lookback,
                                 suspect_score=SUSPECT)
        for age in ("seconds_since_last_genuine", "seconds_since_last_nuisance"):
            ours, theirs = getattr(got, age), getattr(expected, age)
            assert (ours is None) == (theirs is None), (age, case)
            assert ours is None or math.isclose(ours, theirs, abs_tol=1e-6), (age, case)
        assert replace(got, seconds_since_last_genuine=expected.seconds_since_last_genuine,
                       seconds_since_last_nuisance=expected.seconds_since_last_nuisance) == \
            expected, case
        nonempty += not expected.first_time
    assert nonempty > 200  # the cases exercise real histories, not mostly empty ones


async def test_generated_silence_column_is_the_features_rule(
    connection: asyncpg.Connection,
) -> None:
    """``calls.looks_silent`` (SQL) and ``call_features(...).looks_silent`` (Python) agree on
    every row shape, the 5 s quick hang-up edge included."""
    rng = random.Random(7)
    rows = [random_row(rng, f"g.{n}", "6281100000000", T0 - timedelta(minutes=n))
            for n in range(600)]
    await connection.copy_records_to_table(
        "calls", records=[row.values for row in rows], columns=CALL_COLUMNS)
    stored = {row["call_id"]: row["looks_silent"]
              for row in await connection.fetch("SELECT call_id, looks_silent FROM calls")}
    for row in rows:
        expected = row.ended is not None and call_features(row.ended).looks_silent
        assert stored[row.values[0]] is expected, row


# ----------------------------------------------------------------------------- through facts


async def test_caller_key_is_set_when_the_call_starts(connection: asyncpg.Connection) -> None:
    calls = CallRepository(CALENDAR)
    # The IVR's variable may be recorded before the call's start (a resync): the key follows.
    early: list[CallFact] = [IvrVariableSet("k.1", "choice", "1", T0),
             CallStarted("k.1", "k.1", "PJSIP/x", "0812-3456-7890", "", "112", T0)]
    await calls.apply(connection, early)
    await calls.apply(connection, call_facts("k.2", "anonymous", at=T0, skill=None))
    await calls.apply(connection, call_facts("k.3", "urn:gsma:imei:35-209900-176148-1",
                                             at=T0, skill=None))
    keys = {row["call_id"]: row["caller_key"]
            for row in await connection.fetch("SELECT call_id, caller_key FROM calls")}
    assert keys == {"k.1": "6281234567890", "k.2": None, "k.3": "imei:35209900176148"}


async def test_first_time_caller(
    connection: asyncpg.Connection, service: ScreeningService,
) -> None:
    """The call being scored is already in ``calls`` (the listener records it first): it is
    not its own history."""
    await CallRepository(CALENDAR).apply(connection, [
        CallStarted("f.1", "f.1", "PJSIP/x", "081234567890", "", "112", T0)])
    score = await service.pre_queue("112", "081234567890", T0 + timedelta(seconds=1))
    assert score.value < service.config().lower_priority_threshold
    assert [r.code for r in score.reasons][-1] == "first_time"


async def test_a_caller_seen_before_the_lookback_is_told_so(
    connection: asyncpg.Connection, service: ScreeningService,
) -> None:
    """The operator screen lists the caller's earlier calls however old (the desk's caller
    history); the screening reason beside it said "no earlier call from this number" when the
    last one was four months ago. It says what the score looked at: the last 90 days."""
    calls = CallRepository(CALENDAR)
    await calls.apply(connection, call_facts("o.1", "081255556666", at=T0 - timedelta(days=120),
                                             skill=None))
    features = await service.pre_queue_features("112", "081255556666", T0)
    assert features.history.first_time
    score = await service.pre_queue("112", "081255556666", T0)
    assert [r.text for r in score.reasons if r.code == "first_time"] == [
        "Belum ada panggilan dari nomor ini dalam 90 hari terakhir"]


async def test_the_history_is_read_before_the_keys_and_scored_with_them(
    connection: asyncpg.Connection, service: ScreeningService,
) -> None:
    """The IVR reads the history while the menu plays and scores it once the keys are in."""
    calls = CallRepository(CALENDAR)
    await calls.apply(connection, call_facts("m.1", "081266660000", at=T0, skill=None))
    now = T0 + timedelta(minutes=10)
    features = await service.pre_queue_features("112", "081266660000", now)
    assert (features.history.calls_last_hour, features.menu) == (1, None)
    nothing = IvrBehaviour(menu_offered=True, no_input=True)
    listened = IvrBehaviour(menu_offered=True, first_key_seconds=6.0)
    config = service.config()
    scored = await service.pre_queue("112", "081266660000", now, nothing)
    assert scored == pre_queue_score(replace(features, menu=nothing), config)
    assert (pre_queue_score(replace(features, menu=listened), config).value
            < (await service.pre_queue("112", "081266660000", now)).value < scored.value)


async def test_withheld_number_needs_no_database(settings: Settings) -> None:
    """No identity, no history: scored with the database unreachable; a real number is not."""
    down = Database(replace(settings, database_dsn=f"postgresql://127.0.0.1:{free_port()}/x",
                            db_connect_timeout=2))
    service = ScreeningService(down, FixedConfig(), "Asia/Jakarta")
    try:
        score = await service.pre_queue("112", "anonymous", T0)
        assert "withheld" in [r.code for r in score.reasons]
        with pytest.raises(ScreeningUnavailable):
            await service.pre_queue("112", "081234567890", T0)
    finally:
        await down.close()


async def test_a_caller_the_network_cut_in_the_menu_is_not_lowered_when_ringing_back(
    connection: asyncpg.Connection, service: ScreeningService,
) -> None:
    """The network dropped the caller in the menu (BYE with Q.850 38) before a key; they ring
    straight back: the new call is not lowered as a nuisance number's, before the queue or
    once the dropped call's post-call score is in. Nor is a caller a crash cut there. A
    caller who hung up there themselves (16) still is."""
    calls = CallRepository(CALENDAR)
    at = datetime.now(UTC) - timedelta(minutes=2)  # within the post-call upkeep's reach
    for number, cause in (("081277770038", 38), ("081277770016", 16)):
        facts = call_facts(f"n.{cause}", number, at=at, skill=None)
        ended = facts[-1]
        assert isinstance(ended, CallEnded)
        facts[-1] = replace(ended, cause=cause, cause_text="")
        await calls.apply(connection, facts)
    # The cut is known once Asterisk is back, after the call's end was written.
    await calls.apply(connection, call_facts("n.cut", "081277770099", at=at, skill=None))
    await calls.apply(connection, [CallCut("n.cut", "asterisk_crash", at)])
    now = at + timedelta(seconds=40)
    config = service.config()
    for scored in (False, True):
        dropped = await service.pre_queue("119", "081277770038", now)
        cut = await service.pre_queue("119", "081277770099", now)
        left = await service.pre_queue("119", "081277770016", now)
        assert dropped.value < config.lower_priority_threshold, (scored, dropped.reasons)
        assert cut.value < config.lower_priority_threshold, (scored, cut.reasons)
        assert left.value >= config.lower_priority_threshold
        if not scored:
            assert await service.rescore_ended_calls() == 3
    silent = await connection.fetch(
        "SELECT call_id FROM call_screening WHERE looked_silent ORDER BY call_id")
    assert [row["call_id"] for row in silent] == ["n.16"]


async def test_silent_burst_counts_before_any_post_call_scoring(
    connection: asyncpg.Connection, service: ScreeningService,
) -> None:
    """Six calls hung up in the IVR without a key: the next call is screened at once."""
    calls = CallRepository(CALENDAR)
    for n in range(6):
        await calls.apply(connection, call_facts(f"b.{n}", "081299990000",
                                                 at=T0 + timedelta(minutes=n), skill=None))
    now = T0 + timedelta(minutes=7)
    history = await REPO.history(connection, "6281299990000", now, DEFAULT_LOOKBACK,
                                 suspect_score=SUSPECT)
    assert (history.calls_last_hour, history.silent_last_hour) == (6, 6)
    score = await service.pre_queue("112", "+62 812 9999 0000", now)
    assert score.value >= service.config().screening_threshold
    assert "6 panggilan dalam 1 jam terakhir, 6 di antaranya diam" in [
        r.text for r in score.reasons]


async def test_one_caller_in_several_spellings_has_one_history(
    connection: asyncpg.Connection, service: ScreeningService,
) -> None:
    """A trunk that keeps the trunk 0 after the country code presents 0812... as
    620812...: the pranks an operator labelled on those calls count when the same phone
    calls again as 0812... or +62812..., and the other way round; and when the IVR reads
    the caller id with a zero-width space the call store left out."""
    calls = CallRepository(CALENDAR)
    start = datetime.now(UTC) - timedelta(hours=2)
    spellings = ("620812 4444 0000", "+62 (0) 812-4444-0000")
    for n, spelling in enumerate(spellings):
        await calls.apply(connection, call_facts(
            f"s.{n}", spelling, at=start + timedelta(minutes=n), key="1",
            answered_at=start + timedelta(minutes=n, seconds=10), talk=20))
        await service.label(f"s.{n}", "prank", "op1001")
    now = datetime.now(UTC)
    for spelling in ("081244440000", "+6281244440000", "0812\u200b4444\u200b0000",
                     *spellings):
        features = await service.pre_queue_features("112", spelling, now)
        assert (features.history.calls, features.history.prank_calls) == (2, 2), spelling


async def test_an_upgrade_joins_the_histories_split_by_the_trunk_zero(
    pg_cluster: EmbeddedPostgres, settings: Settings,
) -> None:
    """Migration 0042: calls, labels and post-call results keyed 620812... before it are the
    caller's 62812... history after it; a 620 key that identifies nobody is cleared, and so
    is a placeholder IMEI's, which unrelated phones shared."""
    owner = await create_database_before(pg_cluster, 42)
    database = Database(replace(settings, database_dsn=line_dsn(pg_cluster, owner)))
    connection = await asyncpg.connect(owner)
    try:
        at = datetime.now(UTC) - timedelta(hours=1)
        # As the line keyed them before: the trunk 0 kept, the national form, nobody.
        keyed = (("x.620", "620812 5555 0000", "62081255550000"),
                 ("x.0", "081255550000", "6281255550000"),
                 ("x.bad", "+62008125555", "62008125555"),
                 ("x.null", "IMEI000000000000000", "imei:00000000000000"),
                 ("x.ones", "IMEI11111111111111", "imei:11111111111111"),
                 ("x.imei", "IMEI352099001761481", "imei:35209900176148"))
        await connection.executemany(
            "INSERT INTO calls (call_id, caller_number, caller_key, arrived_at, ended_at) "
            "VALUES ($1, $2, $3, $4::timestamptz, $4::timestamptz + interval '1 minute')",
            [(*row, at) for row in keyed])
        await connection.execute(
            "INSERT INTO call_labels (call_id, caller_key, label, labelled_by) "
            "SELECT call_id, caller_key, 'prank', 'op1001' FROM calls")
        await connection.execute(
            "INSERT INTO call_screening (call_id, caller_key, arrived_at, looked_silent, "
            "post_score, post_reasons) SELECT call_id, caller_key, arrived_at, false, 0.1, '[]' "
            "FROM calls")
        await upgrade_database(pg_cluster, owner)
        for table in ("calls", "call_labels", "call_screening"):
            keys = {row["call_id"]: row["caller_key"] for row in await connection.fetch(
                f"SELECT call_id, caller_key FROM {table}")}
            assert keys == {"x.620": "6281255550000", "x.0": "6281255550000", "x.bad": None,
                            "x.null": None, "x.ones": None, "x.imei": "imei:35209900176148"}
        # Still append-only for everyone else.
        with pytest.raises(asyncpg.RaiseError):
            await connection.execute("UPDATE call_labels SET note = 'x'")
        service = ScreeningService(database, FixedConfig(), "Asia/Jakarta")
        features = await service.pre_queue_features("112", "0812 5555 0000", datetime.now(UTC))
        assert (features.history.calls, features.history.prank_calls) == (2, 2)
    finally:
        await connection.close()
        await database.close()
        await drop_database(pg_cluster, owner)


async def test_prank_label_corrected_to_genuine(
    connection: asyncpg.Connection, service: ScreeningService,
) -> None:
    calls = CallRepository(CALENDAR)
    start = datetime.now(UTC) - timedelta(hours=3)
    await calls.apply(connection, call_facts("p.1", "081277770000", at=start, key="1",
                                             answered_at=start + timedelta(seconds=10), talk=40))
    followed: list[tuple[str, str]] = []  # the wallboard's counters follow labels so
    service.on_labelled(lambda call_id, label: followed.append((call_id, label)))
    labelled = await service.label("p.1", "prank", "op1001", "anak-anak tertawa")
    prank = await service.pre_queue("112", "081277770000", datetime.now(UTC))
    corrected = await service.label("p.1", "genuine", "spv01", "ternyata kebakaran kecil")
    genuine = await service.pre_queue("112", "081277770000", datetime.now(UTC))
    history = await REPO.history(connection, "6281277770000", datetime.now(UTC),
                                 DEFAULT_LOOKBACK, suspect_score=SUSPECT)
    assert (history.prank_calls, history.genuine_calls) == (0, 1)
    assert genuine.value < prank.value
    # The history's reasons (not the hour's "jam ramai panggilan iseng") name the prank.
    history_reasons = {"hour", "day", "prank_labels", "nuisance_share"}
    assert any("iseng" in r.text for r in prank.reasons if r.code in history_reasons)
    assert not any("iseng" in r.text for r in genuine.reasons if r.code in history_reasons)
    timeline = await service.labels("p.1")
    assert [(e.label, e.labelled_by, e.note) for e in timeline] == [
        (Label.PRANK, "op1001", "anak-anak tertawa"),
        (Label.GENUINE, "spv01", "ternyata kebakaran kecil")]
    assert [e.label_id for e in timeline] == [labelled.label_id, corrected.label_id]
    assert followed == [("p.1", "prank"), ("p.1", "genuine")]


async def test_labels_on_unknown_calls_or_values_are_rejected_and_nothing_written(
    connection: asyncpg.Connection, service: ScreeningService, database_owner_dsn: str,
) -> None:
    await CallRepository(CALENDAR).apply(connection, call_facts("u.1", "081200000001", at=T0,
                                                                  skill=None))
    with pytest.raises(UnknownCall) as unknown:
        await service.label("no-such-call", "prank", "op1001")
    assert unknown.value.message == "Panggilan no-such-call tidak ditemukan."
    with pytest.raises(UnknownCall):
        await service.labels("no-such-call")
    for label, actor, note in (("naughty", "op1001", ""), ("prank", "  ", ""),
                               ("prank", "op1001", "x" * 5000)):
        with pytest.raises(InvalidLabel):
            await service.label("u.1", label, actor, note)
    assert await connection.fetchval("SELECT count(*) FROM call_labels") == 0
    assert await service.labels("u.1") == []
    await REPO.add_label(connection, "u.1", "test", "op1001", "")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):  # the line's role
        await connection.execute("UPDATE call_labels SET label = 'prank'")
    owner = await asyncpg.connect(database_owner_dsn)
    try:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await owner.execute("UPDATE call_labels SET label = 'prank'")
    finally:
        await owner.close()


async def test_rescoring_picks_up_a_later_silence_share(
    connection: asyncpg.Connection, service: ScreeningService,
) -> None:
    """Answered, 30 s on the line, no key: not silent by the row; the recording, measured
    later, says 95% silence: rescored as silent, once."""
    ended = datetime.now(UTC) - timedelta(minutes=5)
    await CallRepository(CALENDAR).apply(
        connection, call_facts("r.1", "081255550000", at=ended - timedelta(seconds=40),
                               answered_at=ended - timedelta(seconds=30), talk=30))

    async def result() -> asyncpg.Record:
        row = await connection.fetchrow("SELECT * FROM call_screening WHERE call_id = 'r.1'")
        assert row is not None
        return row

    assert await service.rescore_ended_calls() == 1
    before = await result()
    assert (before["looked_silent"], before["silence_share"]) == (False, None)
    assert await service.rescore_ended_calls() == 0  # nothing new: nothing done
    await connection.execute(
        """
        INSERT INTO recordings (call_id, state, started_at, silence_share)
        VALUES ('r.1', 'done', now(), 0.95)
        """)
    assert await service.rescore_ended_calls() == 1
    after = await result()
    assert (after["looked_silent"], after["silence_share"]) == (True, 0.95)
    assert after["post_score"] > before["post_score"]
    assert "silence" in [reason["code"] for reason in json.loads(after["post_reasons"])]
    assert await service.rescore_ended_calls() == 0
    history = await REPO.history(connection, "6281255550000", datetime.now(UTC),
                                 DEFAULT_LOOKBACK, suspect_score=SUSPECT)
    assert history.silent_calls == 1
    # Measured again: the same share changes nothing; another one is scored again.
    remeasure = "UPDATE recordings SET silence_share = $1 WHERE call_id = 'r.1'"
    await connection.execute(remeasure, 0.95)
    assert await service.rescore_ended_calls() == 0
    await connection.execute(remeasure, 0.1)
    assert await service.rescore_ended_calls() == 1
    again = await result()
    assert (again["looked_silent"], again["silence_share"]) == (False, 0.1)
    assert await service.rescore_ended_calls() == 0


async def test_malformed_ivr_numbers_are_stored_as_null(
    connection: asyncpg.Connection, caplog: pytest.LogCaptureFixture,
) -> None:
    calls = CallRepository(CALENDAR)
    at = T0 + timedelta(seconds=3)
    good = [IvrVariableSet("m.1", name, value, at) for name, value in (
        ("first_key_ms", "1200"), ("invalid_keys", "2"), ("score", "0.731"),
        ("reasons", "7 panggilan dalam 1 jam terakhir"), ("priority", "5"),
        ("screening", "pressed"))]
    bad = [IvrVariableSet("m.2", name, value, at) for name, value in (
        ("first_key_ms", "12a"), ("invalid_keys", "-1"), ("score", "1.5"),
        ("priority", "99999999999"), ("screening", "maybe"))]
    caplog.set_level(logging.WARNING, "telephony.db")
    assert await calls.apply(connection, [CallStarted("m.1", "m.1", "P/1", "0812", "", "112", T0),
                                          *good]) == 7
    assert await calls.apply(connection, [CallStarted("m.2", "m.2", "P/2", "0812", "", "112", T0),
                                          *bad]) == 6
    rows = {row["call_id"]: row for row in await connection.fetch(
        "SELECT call_id, ivr_first_key_ms, ivr_invalid_keys, prank_score, prank_reasons, "
        "queue_priority, screening FROM calls")}
    first = rows["m.1"]
    assert (first["ivr_first_key_ms"], first["ivr_invalid_keys"], first["queue_priority"],
            first["screening"]) == (1200, 2, 5, "pressed")
    assert math.isclose(first["prank_score"], 0.731, rel_tol=1e-6)
    assert first["prank_reasons"] == "7 panggilan dalam 1 jam terakhir"
    second = rows["m.2"]
    assert [second[c] for c in ("ivr_first_key_ms", "ivr_invalid_keys", "prank_score",
                                "queue_priority", "screening")] == [None] * 5
    # Each bad value: one log line naming it; every fact kept in the event log.
    warnings = [r.getMessage() for r in caplog.records if r.name == "telephony.db"]
    assert len(warnings) == 5 and all("m.2: IVR_" in w for w in warnings), warnings
    assert await connection.fetchval(
        "SELECT count(*) FROM call_events WHERE call_id = 'm.2'") == 6
    # A replay (a spool, the backfill) is no new fact: nothing logged again.
    assert await calls.apply(connection, bad) == 0
    assert len([r for r in caplog.records if r.name == "telephony.db"]) == 5


# ------------------------------------------------------------------- the post-call upkeep


async def due_calls(connection: asyncpg.Connection) -> list[str]:
    """The calls in the upkeep's queue (migration 0032), by due row."""
    return [row["call_id"] for row in await connection.fetch(
        "SELECT call_id FROM call_screening_due ORDER BY due_id")]


async def scored_at(connection: asyncpg.Connection, call_id: str) -> datetime | None:
    """When the call's post-call result was stored; ``None``: never scored."""
    value: datetime | None = await connection.fetchval(
        "SELECT scored_at FROM call_screening WHERE call_id = $1", call_id)
    return value


async def test_a_call_is_scored_by_the_first_pass_that_sees_its_end(
    connection: asyncpg.Connection, service: ScreeningService,
) -> None:
    """Not while it runs, nor while the transaction that writes its end is still open (the
    pass runs meanwhile), but by the first pass after that commits, once."""
    calls = CallRepository(CALENDAR)
    start = datetime.now(UTC) - timedelta(minutes=2)
    await calls.apply(connection, [
        CallStarted("e.1", "e.1", "PJSIP/x", "081233330000", "", "112", start)])
    assert await service.rescore_ended_calls() == 0
    async with connection.transaction():
        await calls.apply(connection, [
            CallEnded("e.1", 16, "Normal Clearing", start + timedelta(seconds=30))])
        assert await service.rescore_ended_calls() == 0
    assert await scored_at(connection, "e.1") is None
    assert await service.rescore_ended_calls() == 1
    assert await scored_at(connection, "e.1") is not None
    assert await service.rescore_ended_calls() == 0
    assert await due_calls(connection) == []


async def test_a_measurement_committed_during_a_pass_is_scored_by_the_next(
    connection: asyncpg.Connection, database_dsn: str, settings: Settings,
) -> None:
    """The recording's silence share commits after a pass read the call and before it
    committed: the pass stores what it read, and the next pass scores the call again."""
    held = HeldPass()
    database = Database(replace(settings, database_dsn=database_dsn))
    service = ScreeningService(database, FixedConfig(), "Asia/Jakarta", repository=held)
    ended = datetime.now(UTC) - timedelta(minutes=5)
    await CallRepository(CALENDAR).apply(
        connection, call_facts("w.1", "081244440000", at=ended - timedelta(seconds=40),
                               answered_at=ended - timedelta(seconds=30), talk=30))

    async def measure() -> None:
        await connection.execute(
            """
            INSERT INTO recordings (call_id, state, started_at, silence_share)
            VALUES ('w.1', 'done', now(), 0.95)
            """)

    held.during = measure
    try:
        assert await service.rescore_ended_calls() == 1
        assert held.held == 1
        first = await connection.fetchrow("SELECT * FROM call_screening WHERE call_id = 'w.1'")
        assert first is not None and first["silence_share"] is None
        assert await due_calls(connection) == ["w.1"]  # the measurement's, left for the next
        assert await service.rescore_ended_calls() == 1
        second = await connection.fetchrow("SELECT * FROM call_screening WHERE call_id = 'w.1'")
        assert second is not None
        assert (second["silence_share"], second["looked_silent"]) == (0.95, True)
        assert await service.rescore_ended_calls() == 0
    finally:
        await database.close()


async def test_calls_that_ended_too_long_ago_are_not_scored(
    connection: asyncpg.Connection, service: ScreeningService,
) -> None:
    """An end or a measurement written now of a call that ended more than SCORING_MAX_AGE ago
    (a backfill after a long outage) scores nothing, and leaves nothing queued; a call just
    within the age is scored."""
    calls = CallRepository(CALENDAR)
    now = datetime.now(UTC)
    await calls.apply(connection, call_facts(
        "o.old", "081266660001", at=now - SCORING_MAX_AGE - timedelta(hours=1), skill=None))
    await calls.apply(connection, call_facts(
        "o.recent", "081266660002", at=now - SCORING_MAX_AGE + timedelta(hours=1), skill=None))
    await connection.execute(
        """
        INSERT INTO recordings (call_id, state, started_at, silence_share)
        VALUES ('o.old', 'done', now(), 0.9)
        """)
    assert await service.rescore_ended_calls() == 1
    assert await scored_at(connection, "o.old") is None
    assert await scored_at(connection, "o.recent") is not None
    assert await due_calls(connection) == []


async def test_an_end_moved_later_is_scored_again(
    connection: asyncpg.Connection, service: ScreeningService,
) -> None:
    """A vanished call ends when the resync noticed; Asterisk's crash report then moves its end
    back to when it was last seen alive: the call is scored again with its new end."""
    calls = CallRepository(CALENDAR)
    start = datetime.now(UTC) - timedelta(minutes=10)
    await calls.apply(connection, [
        CallStarted("v.1", "v.1", "PJSIP/x", "081277771111", "", "112", start),
        CallVanished("v.1", start + timedelta(minutes=5))])
    assert await service.rescore_ended_calls() == 1
    first = await scored_at(connection, "v.1")
    await calls.apply(connection, [CallCut("v.1", "asterisk_crash", start + timedelta(seconds=30))])
    assert await connection.fetchval(
        "SELECT ended_at FROM calls WHERE call_id = 'v.1'") == start + timedelta(seconds=30)
    assert await service.rescore_ended_calls() == 1
    second = await scored_at(connection, "v.1")
    assert first is not None and second is not None and second > first
    assert await service.rescore_ended_calls() == 0


async def test_two_lines_never_score_together(
    connection: asyncpg.Connection, database_dsn: str, settings: Settings,
    service: ScreeningService,
) -> None:
    """Two cluster nodes share the queue: a pass that starts while the other node's pass holds
    it does nothing; the other node scores every due call once."""
    held = HeldPass()
    database = Database(replace(settings, database_dsn=database_dsn))
    first = ScreeningService(database, FixedConfig(), "Asia/Jakarta", repository=held)
    calls = CallRepository(CALENDAR)
    for n in range(3):
        await calls.apply(connection, call_facts(f"t.{n}", f"08128888000{n}", skill=None))
    meanwhile: list[int] = []

    async def second_line() -> None:
        meanwhile.append(await service.rescore_ended_calls())

    held.during = second_line
    try:
        assert await first.rescore_ended_calls() == 3
        assert meanwhile == [0]
        assert await service.rescore_ended_calls() == 0
        assert await connection.fetchval("SELECT count(*) FROM call_screening") == 3
    finally:
        await database.close()


async def test_an_upgrade_queues_what_the_window_scan_would_have_scored(
    pg_cluster: EmbeddedPostgres, settings: Settings,
) -> None:
    """Migration 0032 starts the queue with the calls the scan of the last three days would
    have found: ended and never scored, or scored before their recording's silence share was
    measured or re-measured; not the ones scored with it, in progress, or too old."""
    owner = await create_database_before(pg_cluster, 32)
    database = Database(replace(settings, database_dsn=line_dsn(pg_cluster, owner)))
    connection = await asyncpg.connect(owner)
    try:
        # The calls as the line left them before the upgrade (today's call store writes
        # through a function of a later migration).
        recent = datetime.now(UTC) - timedelta(hours=1)
        ended = [(call_id, recent + timedelta(minutes=n))
                 for n, call_id in enumerate(("u.never", "u.scored", "u.measured",
                                              "u.remeasured", "u.same"))]
        ended.append(("u.old", recent - SCORING_MAX_AGE))
        await connection.executemany(
            "INSERT INTO calls (call_id, caller_number, caller_key, arrived_at, ended_at) "
            "VALUES ($1, $2, $2, $3::timestamptz, $3::timestamptz + interval '1 minute')",
            [(call_id, f"081255550{n:04}", at) for n, (call_id, at) in enumerate(ended)])
        await connection.execute(
            "INSERT INTO calls (call_id, caller_number, arrived_at) VALUES ('u.open', '', $1)",
            recent)
        # Scored by main's upkeep with the share of the time (NULL: not measured yet) ...
        await connection.execute(
            """
            INSERT INTO call_screening (call_id, caller_key, arrived_at, looked_silent,
                                        post_score, post_reasons, silence_share)
            SELECT call_id, caller_key, arrived_at, true, 0.5, '[]', share
            FROM calls JOIN (VALUES ('u.scored', NULL), ('u.measured', NULL),
                                    ('u.remeasured', 0.2), ('u.same', 0.9)) s (call_id, share)
                 USING (call_id)
            """)
        # ... and the recordings' shares now.
        await connection.execute(
            """
            INSERT INTO recordings (call_id, state, started_at, silence_share)
            VALUES ('u.measured', 'done', now(), 0.9), ('u.remeasured', 'done', now(), 0.9),
                   ('u.same', 'done', now(), 0.9), ('u.scored', 'pending', now(), NULL)
            """)
        await upgrade_database(pg_cluster, owner)
        assert await due_calls(connection) == ["u.never", "u.measured", "u.remeasured"]
        service = ScreeningService(database, FixedConfig(), "Asia/Jakarta")
        assert await service.rescore_ended_calls() == 3
        shares = {row["call_id"]: row["silence_share"] for row in await connection.fetch(
            "SELECT call_id, silence_share FROM call_screening")}
        assert shares == {"u.never": None, "u.scored": None, "u.measured": 0.9,
                          "u.remeasured": 0.9, "u.same": 0.9}
        assert await service.rescore_ended_calls() == 0
    finally:
        await connection.close()
        await database.close()
        await drop_database(pg_cluster, owner)


async def test_a_history_query_held_by_a_lock_fails_open_within_the_budget(
    connection: asyncpg.Connection, service: ScreeningService, database_dsn: str,
) -> None:
    """The IVR's 300 ms: a history query that PostgreSQL holds (here behind a lock on
    ``calls``) yields no verdict in time, closing the screener does not wait for the query,
    and the next caller is scored once the lock is gone."""
    await CallRepository(CALENDAR).apply(connection, call_facts("l.1", "081277770000", at=T0))
    result = IvrResult(Route("emergency", "general", "emergency-general"), Outcome.CHOSEN, "1",
                       16000, 0)
    locker = await asyncpg.connect(database_dsn)
    try:
        locked = locker.transaction()
        await locked.start()
        await locker.execute("LOCK TABLE calls IN ACCESS EXCLUSIVE MODE")
        loop = asyncio.get_running_loop()
        started = loop.time()
        screener = PreQueueScreener(service, "119", "081277770000", timeout=0.3)
        assert await screener.verdict(result) is None
        await screener.close()
        # The budget and a scheduling margin; the query itself would wait for ever.
        assert loop.time() - started < 0.3 + 0.2
        await locked.rollback()
    finally:
        await locker.close()
    screener = PreQueueScreener(service, "119", "081277770000", timeout=5.0)
    try:
        verdict = await screener.verdict(result)
    finally:
        await screener.close()
    assert verdict is not None and verdict.priority >= service.config().priority_floor


async def test_a_history_query_on_a_hung_server_fails_open_within_the_budget(
    service: ScreeningService, pg_cluster: EmbeddedPostgres,
) -> None:
    """PostgreSQL hung (its processes stopped: the kernel takes connections, nothing answers):
    no verdict within the IVR's 300 ms, and closing the screener, which the caller's way to
    the queue waits for, does not wait for the query's cancellation, which a hung server
    never acknowledges (it waited the pool's acquire timeout, 3 s, for every caller)."""
    result = IvrResult(Route("emergency", "general", "emergency-general"), Outcome.CHOSEN, "1",
                       16000, 0)
    warm = PreQueueScreener(service, "119", "081277770001", timeout=5.0)
    try:  # the pool holds a live connection, as a line's does between calls
        assert await warm.verdict(result) is not None
    finally:
        await warm.close()
    loop = asyncio.get_running_loop()
    with frozen(pg_cluster):
        started = loop.time()
        screener = PreQueueScreener(service, "119", "081277770001", timeout=0.3)
        assert await screener.verdict(result) is None
        await screener.close()
        took = loop.time() - started
    assert took < 0.3 + 0.2, f"the caller waited {took:.2f} s for the screening"

    async def scored() -> ScreeningVerdict | None:  # the pool recovers once the server does
        screener = PreQueueScreener(service, "119", "081277770001", timeout=5.0)
        try:
            return await screener.verdict(result)
        finally:
            await screener.close()

    await eventually("the next caller scored", scored, 10)
