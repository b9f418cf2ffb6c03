"""The supervisor's API on a loopback socket over a real PostgreSQL: the wallboard's WebSocket
shows a caller waiting and then the answer without a reload, pushes coalesced and checks
sessions; who may see what; the reports as JSON and CSV; the pages render."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from telephony.admin.queues import QueueDefaults
from telephony.admin.store import AdminSettingsRepository
from telephony.callbacks.model import Backlog
from telephony.calls.facts import (
    CallFact,
    CallStarted,
    IvrVariableSet,
    OperatorAnswered,
    OperatorCompleted,
    OperatorStateChanged,
    QueueJoined,
    QueueLeft,
)
from telephony.calls.store import CallRepository
from telephony.db.connection import Database, DatabaseUnavailable
from telephony.reports.console import ReportPages
from telephony.reports.http import ReportApi
from telephony.reports.model import day_bounds
from telephony.reports.service import ReportConfig, ReportService
from telephony.settings import Settings
from telephony.wallboard import console as wallboard_console
from telephony.wallboard import http as wallboard_http
from telephony.wallboard.http import WallboardApi
from telephony.wallboard.service import WallboardService, WallboardSnapshot
from telephony.wallboard.state import LiveBoard
from telephony.web.context import ApiContext
from telephony.web.request import instant_json
from telephony.web.routing import CSRF_HEADER, ROUTE_TABLE
from telephony.web.server import build_app
from tests.support.calls import CALENDAR
from tests.support.db import OutageDatabase
from tests.support.web import PASSWORD, conforms, make_context

OP = "PJSIP/op1001"


@dataclass
class Board:
    client: TestClient[web.Request, web.Application]
    context: ApiContext
    wallboard: WallboardService
    dsn: str
    database: OutageDatabase  # the line's: it can be made to look away
    api: WallboardApi

    async def login(self, username: str, role: str) -> str:
        """Create an account and log in (the client keeps the cookie); the bearer token."""
        await self.context.accounts.create(username, role, PASSWORD, actor="test")
        response = await self.client.post("/api/session",
                                          json={"username": username, "password": PASSWORD})
        assert response.status == 201
        return str((await response.json())["token"])

    @contextlib.asynccontextmanager
    async def database_connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection of its own to the line's database (as an admin's change is made)."""
        connection = await asyncpg.connect(self.dsn)
        try:
            yield connection
        finally:
            await connection.close()

    async def happen(self, *facts: CallFact) -> None:
        """What the listener does with facts: tell its observers, record them, then call
        its after-persisted hooks."""
        self.wallboard.recorded(facts)
        async with self.database_connection() as connection:
            await CallRepository(CALENDAR).apply(connection, facts)
        self.wallboard.persisted(facts)


@pytest.fixture
async def board(database_dsn: str, settings: Settings) -> AsyncIterator[Board]:
    configured = replace(settings, database_dsn=database_dsn)
    database = OutageDatabase(configured)
    context = make_context(configured, database)
    reports = ReportService(database, CALENDAR, ReportConfig(wrapup_seconds=0))
    wallboard = WallboardService(LiveBoard(wrapup_seconds=0), reports, context.dispatches,
                                 refresh_seconds=30.0, min_refresh_seconds=0.05)
    api = WallboardApi(wallboard)
    app = build_app(context, [*api.routes(), *ReportApi(reports).routes(),
                              *wallboard_console.routes(), *ReportPages(reports).routes()])
    client = TestClient(TestServer(app))
    await client.start_server()
    running = asyncio.create_task(wallboard.run())
    yield Board(client, context, wallboard, database_dsn, database, api)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    await client.close()
    await database.close()


async def until(socket: aiohttp.ClientWebSocketResponse, what: str,
                holds: Callable[[dict[str, Any]], bool], within: float = 10.0
                ) -> dict[str, Any]:
    """The first pushed wallboard for which ``holds`` is true (each one checked against the
    documented schema on the way)."""
    deadline = time.monotonic() + within
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no wallboard showed {what}"
        message = await socket.receive(timeout=remaining)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        data: dict[str, Any] = message.json()
        conforms(data, "Wallboard")
        if holds(data):
            return data


def callers(data: dict[str, Any], queue: str) -> list[dict[str, Any]]:
    return next((q["callers"] for q in data["queues"] if q["queue"] == queue), [])


def operator(data: dict[str, Any]) -> str | None:
    return next((o["state"] for o in data["operators"] if o["operator"] == OP), None)


async def test_a_waiting_caller_then_the_answer_appear_without_a_reload(board: Board) -> None:
    await board.login("sari", "supervisor")
    now = datetime.now(UTC)
    await board.happen(OperatorStateChanged(OP, "medical", "idle", False, "", now))
    async with board.client.ws_connect("/api/wallboard/live") as socket:
        first = await until(socket, "the idle operator", lambda d: operator(d) == "idle")
        assert callers(first, "medical") == []
        call_id = "1741600000.1"
        await board.happen(
            CallStarted(call_id, call_id, "PJSIP/carrier-1", "081234567890", "", "112", now),
            IvrVariableSet(call_id, "category", "emergency", now + timedelta(seconds=2)),
            QueueJoined(call_id, "medical", 1, now + timedelta(seconds=3)))
        waiting = await until(socket, "the waiting caller",
                              lambda d: len(callers(d, "medical")) == 1)
        caller = callers(waiting, "medical")[0]
        assert (caller["position"], caller["line"], caller["category_label"]) == (
            1, "112", "Darurat")
        assert "081234567890" not in str(waiting)  # no caller data on the wall
        assert waiting["longest_wait"]["queue"] == "medical"
        answered = now + timedelta(seconds=9)
        await board.happen(
            OperatorStateChanged(OP, "medical", "talking", False, "", answered),
            OperatorAnswered(call_id, "medical", OP, 6, 1, answered),
            QueueLeft(call_id, "medical", 1, answered))
        done = await until(socket, "the answered call counted", lambda d: (
            not callers(d, "medical") and operator(d) == "talking"
            and d["shift"] is not None and d["shift"]["figures"]["answered"] == 1))
        levels = {level["seconds"]: level for level in done["shift"]["figures"]["service_levels"]}
        assert (levels[10]["count"], levels[10]["of"], levels[10]["percent"]) == (1, 1, 100.0)
        assert done["today"]["figures"]["offered"] == 1



@contextlib.asynccontextmanager
async def restarted_wallboard(board: Board, seeded: Callable[[WallboardSnapshot], object]
                              ) -> AsyncIterator[WallboardService]:
    """A wallboard started afresh on the board's database, as a restarted line's, once
    ``seeded`` holds of its snapshot and its counters are read; stopped afterwards."""
    database = Database(replace(Settings(), database_dsn=board.dsn))
    reports = ReportService(database, CALENDAR, ReportConfig())
    fresh = WallboardService(LiveBoard(wrapup_seconds=0), reports, board.context.dispatches)
    running = asyncio.create_task(fresh.run())
    try:
        deadline = time.monotonic() + 10
        while not seeded(snapshot := fresh.snapshot()) or snapshot.counters is None:
            assert time.monotonic() < deadline, "the wallboard was not seeded"
            await asyncio.sleep(0.05)
        yield fresh
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await database.close()

async def test_a_restarted_wallboard_starts_from_the_database(board: Board) -> None:
    now = datetime.now(UTC)
    call_id = "1741600050.1"
    connection = await asyncpg.connect(board.dsn)
    try:
        await CallRepository(CALENDAR).apply(connection, [
            CallStarted(call_id, call_id, "PJSIP/c", "0812", "", "119", now),
            QueueJoined(call_id, "medical", 1, now + timedelta(seconds=2)),
            OperatorStateChanged(OP, "medical", "paused", True, "break", now)])
    finally:
        await connection.close()
    async with restarted_wallboard(board, lambda s: s.board.queues) as fresh:
        data = wallboard_http.wallboard_json(fresh.snapshot())
    conforms(data, "Wallboard")
    assert [(c["position"], c["line"]) for c in callers(data, "medical")] == [(1, "119")]
    assert data["operators"][0]["state"] == "paused"
    assert data["operators"][0]["reason_label"] == "Istirahat"
    assert data["today"]["figures"]["offered"] == 1


async def test_a_restart_after_reconnections_keeps_each_operators_time_in_state(
        board: Board) -> None:
    """Each login to Asterisk lists every member again with the resync's instant (as the
    listener records it): an operator on break since 25 minutes before the restart is shown
    on break that long, not since the last reconnection."""
    now = datetime.now(UTC)
    began = now - timedelta(minutes=25)
    connection = await asyncpg.connect(board.dsn)
    try:
        repository = CallRepository(CALENDAR)
        await repository.apply(connection, [
            OperatorStateChanged(OP, "medical", "paused", True, "break", began)])
        for minutes in (15, 5):  # two reconnections: the same state, reported again
            await repository.apply(connection, [OperatorStateChanged(
                OP, "medical", "paused", True, "break", now - timedelta(minutes=minutes))])
    finally:
        await connection.close()
    async with restarted_wallboard(board, lambda s: s.board.operators) as fresh:
        # The restarted line's own resync reports the same state once more.
        fresh.recorded([OperatorStateChanged(OP, "medical", "paused", True, "break", now)])
        data = wallboard_http.wallboard_json(fresh.snapshot())
    assert [(o["state"], o["since"]) for o in data["operators"]] == [
        ("paused", instant_json(began))]


async def test_while_the_database_is_away_the_board_says_what_is_older_and_since_when(
        board: Board) -> None:
    """The shift's figures go on from the facts while the database is away; what only the
    database gives (overdue incidents, call-backs, names) is as of its last whole read, and
    the board says that instant, not the current one."""
    down = [False]
    clock = [datetime.now(UTC)]

    async def callbacks() -> Backlog:
        if down[0]:
            raise DatabaseUnavailable("connection refused")
        return Backlog(0, 0, None)

    database = Database(replace(Settings(), database_dsn=board.dsn))
    reports = ReportService(database, CALENDAR, ReportConfig())
    wallboard = WallboardService(LiveBoard(wrapup_seconds=0), reports, board.context.dispatches,
                                 callbacks=callbacks, clock=lambda: clock[0])
    try:
        assert await wallboard.seed_counters()
        await wallboard.refresh()
        read = clock[0]
        assert wallboard_http.wallboard_json(wallboard.snapshot())["refreshed_at"] == (
            instant_json(read))
        down[0] = True
        clock[0] = read + timedelta(minutes=3)
        call_id = "1741600070.1"
        wallboard.recorded([
            CallStarted(call_id, call_id, "PJSIP/c", "0812", "", "112",
                        clock[0] - timedelta(seconds=30)),
            QueueJoined(call_id, "medical", 1, clock[0] - timedelta(seconds=25)),
            OperatorAnswered(call_id, "medical", OP, 5, 1, clock[0] - timedelta(seconds=20))])
        await wallboard.refresh()
        data = wallboard_http.wallboard_json(wallboard.snapshot())
        conforms(data, "Wallboard")
        assert (data["counters_stale"], data["refreshed_at"]) == (True, instant_json(read))
        assert data["shift"]["figures"]["answered"] == 1
    finally:
        await database.close()


async def test_an_operator_who_answers_after_logging_out_is_on_the_wall(board: Board) -> None:
    """Out of the queue while its call rang at their phone, then answered: talking, live
    and after a restart (from the database), though in no queue."""
    await board.login("sari", "supervisor")
    now = datetime.now(UTC)
    call_id = "1741600070.1"
    await board.happen(
        OperatorStateChanged(OP, "medical", "idle", False, "", now),
        CallStarted(call_id, call_id, "PJSIP/carrier-1", "081234567890", "", "112", now),
        QueueJoined(call_id, "medical", 1, now + timedelta(seconds=1)),
        OperatorStateChanged(OP, "medical", "ringing", False, "", now + timedelta(seconds=2)),
        OperatorStateChanged(OP, "medical", "logged_out", False, "", now + timedelta(seconds=3)))
    answered = now + timedelta(seconds=4)
    async with board.client.ws_connect("/api/wallboard/live") as socket:
        await until(socket, "the operator gone", lambda d: operator(d) is None)
        await board.happen(OperatorAnswered(call_id, "medical", OP, 3, 2, answered),
                           QueueLeft(call_id, "medical", 1, answered))
        data = await until(socket, "the operator talking", lambda d: operator(d) == "talking")
        (shown,) = data["operators"]
        assert (shown["queues"], shown["state_label"]) == ([], "Berbicara")
        assert data["operator_counts"]["talking"] == 1
    database = Database(replace(Settings(), database_dsn=board.dsn))
    fresh = WallboardService(LiveBoard(wrapup_seconds=0),
                             ReportService(database, CALENDAR, ReportConfig()),
                             board.context.dispatches)
    running = asyncio.create_task(fresh.run())
    try:
        deadline = time.monotonic() + 10
        while not (snapshot := fresh.snapshot()).board.operators:
            assert time.monotonic() < deadline, "the restarted wallboard lists no operator"
            await asyncio.sleep(0.05)
        data = wallboard_http.wallboard_json(snapshot)
        conforms(data, "Wallboard")
        assert operator(data) == "talking"
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await database.close()


async def test_an_operator_wraps_up_for_the_answering_queues_own_time(board: Board) -> None:
    """An admin gave the fire queue 30 s of wrap-up (the file's is 0 here): Asterisk will not
    ring the operator for 30 s after a fire call, so the wall says "Menyelesaikan", not ready."""
    await board.login("sari", "supervisor")
    async with board.database_connection() as connection:
        await AdminSettingsRepository().save_queue_settings(connection, replace(
            QueueDefaults(0, 300).for_queue("fire"), wrapup_seconds=30), "admin")
    await board.wallboard.refresh()
    now = datetime.now(UTC)
    call_id = "1741600090.1"
    answered, done = now - timedelta(seconds=20), now - timedelta(seconds=5)
    await board.happen(
        CallStarted(call_id, call_id, "PJSIP/carrier-1", "081234567890", "", "112",
                    answered - timedelta(seconds=5)),
        QueueJoined(call_id, "fire", 1, answered - timedelta(seconds=3)),
        OperatorAnswered(call_id, "fire", OP, 3, 2, answered),
        OperatorStateChanged(OP, "fire", "talking", False, "", answered),
        OperatorCompleted(call_id, "fire", OP, 3, 15, "caller", done),
        OperatorStateChanged(OP, "fire", "idle", False, "", done))
    async with board.client.ws_connect("/api/wallboard/live") as socket:
        data = await until(socket, "the operator's wrap-up", lambda d: operator(d) == "wrapup")
        assert data["operator_counts"]["idle"] == 0


async def test_the_counters_follow_facts_before_the_database_has_them(board: Board) -> None:
    """Tracked facts move the counters at once, with nothing written (the database is never
    read back for them); facts tracked before the seed are applied again on top of it; a
    label the screening service stores moves the prank share."""
    now = datetime.now(UTC)
    early = "1741600400.1"
    # Tracked before the first seed and never written: the seed must not lose it.
    board.wallboard.recorded([
        CallStarted(early, early, "PJSIP/c", "0812", "", "112", now),
        QueueJoined(early, "medical", 1, now)])
    deadline = time.monotonic() + 10
    while (counters := board.wallboard.snapshot().counters) is None:
        assert time.monotonic() < deadline, "the counters were not seeded"
        await asyncio.sleep(0.05)
    assert (counters.shift_figures.offered, counters.day_figures.offered) == (1, 1)
    call_id = "1741600400.2"
    board.wallboard.recorded([
        CallStarted(call_id, call_id, "PJSIP/c", "0813", "", "119", now),
        QueueJoined(call_id, "fire", 1, now + timedelta(seconds=1)),
        OperatorAnswered(call_id, "fire", OP, 4, 1, now + timedelta(seconds=5))])
    counters = board.wallboard.snapshot().counters
    assert counters is not None
    assert (counters.shift_figures.offered, counters.shift_figures.answered) == (2, 1)
    assert counters.shift_figures.mean_wait == 4.0
    board.wallboard.labelled(call_id, "prank")
    counters = board.wallboard.snapshot().counters
    assert counters is not None and counters.shift_figures.prank_share.percent == 100.0
    # After a resync the counters start again from the database, then the facts again.
    board.wallboard.resynced(None)
    await eventually_seeded_again(board)
    counters = board.wallboard.snapshot().counters
    assert counters is not None
    assert (counters.shift_figures.offered, counters.shift_figures.answered) == (2, 1)


async def eventually_seeded_again(board: Board) -> None:
    """Wait until the wallboard has no seed due."""
    deadline = time.monotonic() + 10
    while board.wallboard.seed_due:
        assert time.monotonic() < deadline, "the counters were not seeded again"
        await asyncio.sleep(0.05)


async def test_bursts_are_pushed_coalesced(board: Board,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wallboard_http, "HEARTBEAT_SECONDS", 1.0)
    await board.login("sari", "supervisor")
    async with board.client.ws_connect("/api/wallboard/live") as socket:
        await socket.receive(timeout=5)
        start = datetime.now(UTC)
        sent = asyncio.gather(*(board.happen(QueueJoined(
            f"1741600100.{n}", "fire", n + 1, start + timedelta(milliseconds=n)))
            for n in range(30)))
        arrivals = []
        while True:
            data = (await socket.receive(timeout=5)).json()
            arrivals.append(time.monotonic())
            if len(callers(data, "fire")) == 30:
                break
        await sent
        gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
        assert all(gap >= wallboard_http.PUSH_INTERVAL * 0.9 for gap in gaps), gaps
        assert len(arrivals) < 10  # 30 changes, a handful of messages


async def test_the_socket_closes_when_the_session_ends(board: Board,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wallboard_http, "SESSION_CHECK_SECONDS", 0.0)
    monkeypatch.setattr(wallboard_http, "HEARTBEAT_SECONDS", 0.2)
    await board.login("sari", "supervisor")
    async with board.client.ws_connect("/api/wallboard/live") as socket:
        await socket.receive(timeout=5)
        csrf = board.client.session.cookie_jar.filter_cookies(
            board.client.make_url("/"))["siaga112_csrf"].value
        response = await board.client.delete("/api/session", headers={CSRF_HEADER: csrf})
        assert response.status == 204
        deadline = time.monotonic() + 5
        while (message := await socket.receive(timeout=5)).type == aiohttp.WSMsgType.TEXT:
            assert time.monotonic() < deadline
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert socket.close_code == wallboard_http.CLOSE_SESSION_ENDED


async def test_a_supervisor_who_loses_the_right_has_the_board_closed_at_once(
        board: Board, monkeypatch: pytest.MonkeyPatch) -> None:
    """Made an operator: the board with its listen-in buttons closes at the line's word of
    the change (telephony/supervision/rights.py), not at the next minute's session check;
    the page then goes to the login form, which says why."""
    monkeypatch.setattr(wallboard_http, "HEARTBEAT_SECONDS", 0.2)
    await board.login("sari", "supervisor")
    async with board.client.ws_connect("/api/wallboard/live") as socket:
        await socket.receive(timeout=5)
        board.api.rights_changed("wakil")  # another's change closes nothing of hers
        await board.context.accounts.set_role("sari", "operator", actor="admin1")
        for _ in range(3):
            assert (await socket.receive(timeout=5)).type == aiohttp.WSMsgType.TEXT
        board.api.rights_changed("sari")
        deadline = time.monotonic() + 5
        while (message := await socket.receive(timeout=5)).type == aiohttp.WSMsgType.TEXT:
            assert time.monotonic() < deadline
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert socket.close_code == wallboard_http.CLOSE_SESSION_ENDED


async def test_an_open_wallboard_stays_live_through_a_database_outage(
        board: Board, monkeypatch: pytest.MonkeyPatch) -> None:
    """The session check cannot read the sessions while the database is away: that is no
    ended session. The board goes on from the facts (what only the database gives marked
    stale) instead of every open wallboard being cut at its next check, unable to reconnect
    until the database is back."""
    monkeypatch.setattr(wallboard_http, "SESSION_CHECK_SECONDS", 0.0)
    monkeypatch.setattr(wallboard_http, "HEARTBEAT_SECONDS", 0.2)
    await board.login("sari", "supervisor")
    async with board.client.ws_connect("/api/wallboard/live") as socket:
        # The start's read of the database done (a late one would undo the outage's mark).
        await until(socket, "the database read once", lambda d: d["refreshed_at"] is not None)
        board.database.down = True
        await board.wallboard.refresh()  # as its periodic one would: the database is away
        board.wallboard.recorded([QueueJoined("1741600200.1", "fire", 1, datetime.now(UTC))])
        data = await until(socket, "the caller who joined during the outage, marked stale",
                           lambda d: bool(callers(d, "fire")) and d["counters_stale"])
        # Several session checks later, still open and pushing.
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            message = await socket.receive(timeout=5)
            assert message.type == aiohttp.WSMsgType.TEXT, message
        board.database.down = False
        joined = QueueJoined("1741600200.1", "fire", 1, datetime.now(UTC))
        board.wallboard.persisted([joined])  # the listener wrote facts: read the rest again
        data = await until(socket, "the database back", lambda d: not d["counters_stale"])
        assert len(callers(data, "fire")) == 1


async def test_open_wallboards_are_closed_when_the_line_stops(board: Board) -> None:
    await board.login("sari", "supervisor")
    async with board.client.ws_connect("/api/wallboard/live") as socket:
        await socket.receive(timeout=5)
        board.wallboard.close()
        while (message := await socket.receive(timeout=3)).type == aiohttp.WSMsgType.TEXT:
            pass
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert socket.close_code == aiohttp.WSCloseCode.GOING_AWAY


async def test_who_may_see_the_wallboard_and_reports(board: Board,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    paths = ["/api/wallboard", "/api/reports/shifts", "/api/reports/daily",
             "/api/reports/shifts.csv", "/api/reports/daily.csv"]
    with caplog.at_level(logging.WARNING, "telephony.web"):
        for path in paths:
            assert (await board.client.get(path)).status == 401, path
        with pytest.raises(aiohttp.WSServerHandshakeError) as anonymous:
            await board.client.ws_connect("/api/wallboard/live")
        assert anonymous.value.status == 401
        operator_token = await board.login("budi", "operator")
        bearer = {"Authorization": f"Bearer {operator_token}"}
        for path in paths:
            assert (await board.client.get(path, headers=bearer)).status == 403, path
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await board.client.ws_connect("/api/wallboard/live", headers=bearer)
        assert refused.value.status == 403
        admin = {"Authorization": f"Bearer {await board.login('andi', 'admin')}"}
        for path in paths:
            assert (await board.client.get(path, headers=admin)).status == 200, path
        async with board.client.ws_connect("/api/wallboard/live", headers=admin) as socket:
            conforms(await socket.receive_json(timeout=5), "Wallboard")
        # Another site's page may carry the cookie; it may not read the board.
        with pytest.raises(aiohttp.WSServerHandshakeError) as foreign:
            await board.client.ws_connect("/api/wallboard/live", headers={
                **admin, "Origin": "https://evil.example"})
        assert foreign.value.status == 403


@pytest.mark.parametrize("query", ["queue=medical", "shift=malam&day=2026-12-01",
                                   "x=%3Cscript%3Ealert(1)%3C/script%3E"])
async def test_the_wallboard_refuses_query_parameters_it_does_not_take(
        board: Board, query: str) -> None:
    # The board takes none: ``?queue=medical`` answered the whole board, as if filtered.
    headers = {"Authorization": f"Bearer {await board.login('sari', 'supervisor')}"}
    response = await board.client.get(f"/api/wallboard?{query}", headers=headers)
    assert response.status == 422
    body = await response.json()
    conforms(body, "Error")
    assert body["error"]["message"].startswith("Parameter tidak dikenal")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await board.client.ws_connect(f"/api/wallboard/live?{query}", headers=headers)
    assert refused.value.status == 422
    document = await (await board.client.get("/api/openapi.json", headers=headers)).json()
    for path in ("/api/wallboard", "/api/wallboard/live"):
        assert "422" in document["paths"][path]["get"]["responses"], path


async def test_reports_as_json_and_csv(board: Board) -> None:
    headers = {"Authorization": f"Bearer {await board.login('sari', 'supervisor')}"}
    now = datetime.now(UTC)
    await board.happen(
        CallStarted("1741600200.1", "1741600200.1", "PJSIP/c", "0812", "", "112", now),
        QueueJoined("1741600200.1", "medical", 1, now),
        OperatorAnswered("1741600200.1", "medical", OP, 4, 1, now + timedelta(seconds=4)))
    day = CALENDAR.slot_for(now).day.isoformat()
    response = await board.client.get("/api/reports/shifts", headers=headers,
                                      params={"from": day})
    assert response.status == 200
    report = await response.json()
    conforms(report, "ShiftReport")
    assert report["total"]["answered"] == 1
    assert len(report["shifts"]) == 3
    # The operational day is not over: the figures, and the file forwarded, say so.
    assert report["complete"] is False
    assert datetime.fromisoformat(report["ends_at"]) == day_bounds(
        CALENDAR, CALENDAR.slot_for(now).day)[1]
    assert report["operators"][0]["operator"] == OP
    response = await board.client.get("/api/reports/shifts.csv", headers=headers,
                                      params={"from": day, "table": "queues"})
    assert response.status == 200
    assert response.content_type == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.headers["Content-Disposition"].endswith(
        f"laporan-queues-{day}_{day}-sementara.csv")
    text = await response.text()
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))
    assert rows[0][0] == "Antrean" and rows[1][:4] == ["medical", "1", "1", "1"]
    daily = await board.client.get("/api/reports/daily", headers=headers)
    summary = await daily.json()
    conforms(summary, "DailySummary")
    # Queued and answered without an IVR category, as every call is while the IVR fails
    # open: its label must not say the caller hung up before choosing.
    (uncategorised,) = summary["categories"]
    assert (uncategorised["category"], uncategorised["calls"]) == (None, 1)
    assert uncategorised["category_label"] == (
        "Tanpa kategori (IVR gangguan, atau berakhir sebelum memilih)")
    assert summary["complete"] is False
    villages = await board.client.get("/api/reports/daily.csv", headers=headers)
    assert (await villages.text()).lstrip("\ufeff").startswith("Kode desa;")
    assert villages.headers["Content-Disposition"].endswith(
        f"ringkasan-villages-{day}-sementara.csv")
    # A day that is over: final figures, and a file name without the mark.
    past = await (await board.client.get("/api/reports/daily", headers=headers,
                                         params={"day": "2025-01-01"})).json()
    conforms(past, "DailySummary")
    assert past["complete"] is True
    past_csv = await board.client.get("/api/reports/shifts.csv", headers=headers,
                                      params={"from": "2025-01-01", "table": "queues"})
    assert past_csv.headers["Content-Disposition"].endswith(
        "laporan-queues-2025-01-01_2025-01-01.csv")


@pytest.mark.parametrize(("params", "field"), [
    ({"from": "31-01-2025"}, "from"),
    ({"from": "2025-01-31", "to": "2025-01-01"}, "to"),
    ({"from": "2025-01-01", "to": "2025-03-01"}, "to"),
    ({"shift": "subuh"}, "shift"),
    ({"sort": "x"}, "sort"),
    ({"table": "calls"}, "table"),
])
async def test_bad_report_parameters_are_refused(board: Board, params: dict[str, str],
                                                 field: str) -> None:
    headers = {"Authorization": f"Bearer {await board.login('sari', 'supervisor')}"}
    path = "/api/reports/shifts.csv" if "table" in params else "/api/reports/shifts"
    response = await board.client.get(path, headers=headers, params=params)
    assert response.status == 422
    body = await response.json()
    conforms(body, "Error")
    assert body["error"]["field"] == field


async def test_the_routes_are_documented(board: Board) -> None:
    headers = {"Authorization": f"Bearer {await board.login('sari', 'supervisor')}"}
    document = await (await board.client.get("/api/openapi.json", headers=headers)).json()
    for path in ("/api/wallboard", "/api/wallboard/live", "/api/reports/shifts",
                 "/api/reports/shifts.csv", "/api/reports/daily", "/api/reports/daily.csv"):
        operation = document["paths"][path]["get"]
        assert operation["x-roles"] == ["admin", "supervisor"], path
    assert "101" in document["paths"]["/api/wallboard/live"]["get"]["responses"]
    for name in ("Wallboard", "ShiftReport", "DailySummary", "Figures", "Share"):
        assert name in document["components"]["schemas"]
    table = board.client.app[ROUTE_TABLE]
    assert {r.path for r in table.routes if r.path.startswith("/console/")} >= {
        "/console/wallboard", "/console/reports", "/console/daily"}


async def test_the_pages_render_for_a_supervisor(board: Board) -> None:
    await board.login("sari", "supervisor")
    now = datetime.now(UTC)
    await board.happen(
        CallStarted("1741600300.1", "1741600300.1", "PJSIP/c", "0812", "", "112", now),
        QueueJoined("1741600300.1", "fire", 1, now),
        OperatorAnswered("1741600300.1", "fire", OP, 12, 1, now + timedelta(seconds=12)))
    wall = await board.client.get("/console/wallboard")
    assert wall.status == 200
    html = await wall.text()
    assert "wallboard.js" in html and 'data-field="waiting"' in html
    assert "Content-Security-Policy" in wall.headers
    reports = await board.client.get("/console/reports")
    html = await reports.text()
    assert reports.status == 200
    assert 'id="table-shifts"' in html and "<svg" in html and "shifts.csv" in html
    assert "Sementara: sif terakhir periode ini berakhir" in html
    assert "style=" not in html  # the CSP would block it
    refused = await board.client.get("/console/reports", params={"from": "2025-01-31",
                                                                 "to": "2025-01-01"})
    assert refused.status == 422
    assert "Tanggal akhir tidak boleh sebelum tanggal awal." in await refused.text()
    daily = await board.client.get("/console/daily")
    assert daily.status == 200
    html = await daily.text()
    assert 'id="table-villages"' in html
    assert 'id="partial"' in html and "Sementara: hari operasional ini berakhir" in html
    assert 'id="partial"' not in await (await board.client.get(
        "/console/daily", params={"day": "2025-01-01"})).text()
    assert 'id="partial"' not in await (await board.client.get(
        "/console/reports", params={"from": "2025-01-01"})).text()
    # A date past the calendar's end (the next day, or the day's next shift, does not
    # exist) or before the line's is refused as the API refuses it, not a server error.
    for path, name in (("/console/reports", "from"), ("/console/reports", "to"),
                       ("/console/daily", "day")):
        for value in ("9999-12-31", "0001-01-01"):
            params = {name: value} if name != "to" else {"from": "2025-01-01", "to": value}
            far = await board.client.get(path, params=params)
            assert far.status == 422, (path, name, value, far.status)
            assert "harus antara 1970-01-01 dan 2999-12-31" in await far.text()
