"""The live wallboard over HTTP: a JSON snapshot, and a WebSocket that pushes it whenever it
changes. Supervisors and admins may use it: it carries no caller data (no numbers, no
locations), only queues, operators, counts and incident numbers.

The WebSocket (``GET /api/wallboard/live``) authenticates like every other route (session
cookie or bearer token, checked by the security middleware before the upgrade), refuses a
page of another origin (the cookie would otherwise let any site a supervisor visits read the
board), sends the snapshot at once, then again on every change, at most every
:data:`PUSH_INTERVAL` seconds (a surge of events becomes one message), and at least every
:data:`HEARTBEAT_SECONDS` (waits and counters move with time). It re-checks the session every
:data:`SESSION_CHECK_SECONDS`, and at once when its account's rights changed (another role,
disabled: :meth:`WallboardApi.rights_changed`), and closes (code 4401) once the session has
ended (a database outage is no ended session: the board stays open), and closes (1001) when the
line stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any, Final
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from telephony.calls.archive import CATEGORY_LABELS
from telephony.db.connection import DatabaseUnavailable
from telephony.desks.operators import pause_label
from telephony.reports.http import figures_json, rounded
from telephony.wallboard.service import WallboardService, WallboardSnapshot
from telephony.wallboard.state import OperatorState
from telephony.web.errors import ApiError, dumps
from telephony.web.request import instant_json, json_response, query_of
from telephony.web.routing import OVERSIGHT, SESSION, Reply, Route
from telephony.web.security import authenticate

PUSH_INTERVAL: Final = 0.5
HEARTBEAT_SECONDS: Final = 5.0
SESSION_CHECK_SECONDS: Final = 60.0
CLOSE_SESSION_ENDED: Final = 4401  # private-use close code: log in again


def wallboard_json(snapshot: WallboardSnapshot) -> dict[str, Any]:
    """The wallboard as the page draws it."""
    board, counters = snapshot.board, snapshot.counters
    longest = board.longest_wait
    names = counters.names if counters is not None else {}
    return {
        "generated_at": instant_json(board.at),
        "connected": snapshot.connected,
        "queues": [{
            "queue": q.queue, "members": q.members, "available": q.available,
            "longest_wait_seconds": rounded(q.longest_wait),
            "callers": [{
                "position": c.position, "joined_at": instant_json(c.joined_at),
                "wait_seconds": rounded(c.wait_seconds), "line": c.line,
                "category": c.category,
                "category_label": CATEGORY_LABELS.get(c.category or "", c.category),
                "node": c.node,
            } for c in q.callers],
        } for q in board.queues],
        "operators": [{
            "operator": o.operator, "name": names.get(o.operator) or o.operator,
            "state": o.state.value, "state_label": o.state.label,
            "reason": o.reason, "reason_label": pause_label(o.reason) if o.reason else "",
            "since": instant_json(o.since), "queues": o.queues,
        } for o in board.operators],
        "operator_counts": {state.value: board.counts.get(state, 0) for state in OperatorState},
        "longest_wait": None if longest is None else {
            "queue": longest[0], "wait_seconds": rounded(longest[1])},
        "shift": None if counters is None else {
            "day": counters.shift.day.isoformat(), "name": counters.shift.name,
            "started_at": instant_json(counters.shift_started),
            "ends_at": instant_json(counters.shift_ends),
            "figures": figures_json(counters.shift_figures)},
        "today": None if counters is None else {
            "day": counters.shift.day.isoformat(),
            "started_at": instant_json(counters.day_started),
            "figures": figures_json(counters.day_figures)},
        "counters_at": instant_json(counters.at) if counters is not None else None,
        "counters_stale": snapshot.counters_stale,
        "refreshed_at": instant_json(snapshot.refreshed_at),
        "callbacks": None if snapshot.callbacks is None else {
            "waiting": snapshot.callbacks.waiting,
            "not_possible": snapshot.callbacks.not_possible,
            "oldest_at": instant_json(snapshot.callbacks.oldest_at),
            "oldest_seconds": None if snapshot.callbacks.oldest_at is None else rounded(
                (board.at - snapshot.callbacks.oldest_at).total_seconds()),
        },
        "overdue_incidents": [{
            "incident_id": b.incident.incident_id,
            "report_type": b.incident.report_type.value,
            "report_type_label": b.incident.report_type.label,
            "priority": int(b.incident.priority),
            "priority_label": b.incident.priority.label,
            "status": b.incident.status.value,
            "status_label": b.incident.status.label,
            "due_at": instant_json(b.clock.due_at),
            "overdue_seconds": int(b.clock.overdue.total_seconds()),
        } for b in snapshot.overdue],
    }


def _same_origin(request: web.Request) -> bool:
    """Whether a browser's ``Origin`` (if it sent one) is this server."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser page: a script with a bearer token or the cookie jar
    parts = urlsplit(origin)
    return parts.netloc == request.host and parts.scheme in ("http", "https")


class WallboardApi:
    """The handlers, over the wallboard service."""

    def __init__(self, wallboard: WallboardService) -> None:
        self._wallboard = wallboard
        # How often each account's rights changed (another role, disabled: every line hears
        # it, telephony/supervision/rights.py): its open boards check their session at once,
        # not up to SESSION_CHECK_SECONDS later with the listen-in buttons still on them.
        self._rights_changes: Counter[str] = Counter()

    def rights_changed(self, username: str) -> None:
        """``username``'s rights changed: its open boards check their session now."""
        self._rights_changes[username] += 1

    async def wallboard(self, request: web.Request) -> web.StreamResponse:
        """The wallboard now: callers waiting, operators, the shift's and day's figures."""
        query_of(request)  # it takes none: ``?queue=medical`` must not look like a filter
        return json_response(wallboard_json(self._wallboard.snapshot()))

    async def wallboard_live(self, request: web.Request) -> web.StreamResponse:
        """The wallboard over a WebSocket: the snapshot now, then on every change."""
        query_of(request)  # refused before the upgrade, as on the snapshot
        if not _same_origin(request):
            raise ApiError(403, "forbidden", "Papan dinding hanya dapat dibuka dari konsol ini.")
        socket = web.WebSocketResponse(heartbeat=30.0)
        await socket.prepare(request)
        changed = self._wallboard.subscribe()
        reader = asyncio.create_task(self._drain(socket))
        loop = asyncio.get_running_loop()
        checked = loop.time()
        username = request[SESSION].account.username
        changes = self._rights_changes[username]
        try:
            while not socket.closed:
                if self._wallboard.closed:
                    await socket.close(code=WSCloseCode.GOING_AWAY,
                                       message=b"Layanan dihentikan.")
                    break
                changed.clear()
                await socket.send_str(dumps(wallboard_json(self._wallboard.snapshot())))
                waiter = asyncio.ensure_future(changed.wait())
                try:
                    await asyncio.wait([reader, waiter], timeout=HEARTBEAT_SECONDS,
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                if reader.done():
                    break
                if (loop.time() - checked >= SESSION_CHECK_SECONDS
                        or self._rights_changes[username] != changes):
                    checked, changes = loop.time(), self._rights_changes[username]
                    if not await self._session_alive(request):
                        await socket.close(code=CLOSE_SESSION_ENDED,
                                           message=b"Sesi berakhir; silakan masuk lagi.")
                        break
                await asyncio.sleep(PUSH_INTERVAL)  # let a burst of changes settle into one
        except ConnectionResetError:
            pass  # the page went away mid-send
        finally:
            self._wallboard.unsubscribe(changed)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        return socket

    @staticmethod
    async def _drain(socket: web.WebSocketResponse) -> None:
        """Read (and ignore) what the page sends; returns when it closes."""
        async for message in socket:
            if message.type == WSMsgType.ERROR:
                return

    @staticmethod
    async def _session_alive(request: web.Request) -> bool:
        """Whether the session is still live; while the database is away it cannot be told,
        and the board (whose counters go on from the facts) stays open: the next check
        decides. Raised here, the outage cut every open wallboard and wrote an HTTP error
        into the upgraded socket."""
        try:
            await authenticate(request)
        except ApiError:
            return False
        except DatabaseUnavailable:
            pass  # cannot be told now: the next check decides
        return True

    def routes(self) -> list[Route]:
        """The wallboard's routes, with who may call them."""
        return [
            Route("GET", "/api/wallboard", self.wallboard, OVERSIGHT,
                  "Papan dinding: antrean, operator, angka sif dan hari ini", "supervisor",
                  Reply(200, "Wallboard"), errors=(422,)),
            Route("GET", "/api/wallboard/live", self.wallboard_live, OVERSIGHT,
                  "Papan dinding lewat WebSocket: cuplikan sekarang, lalu setiap perubahan "
                  f"(paling sering tiap {PUSH_INTERVAL} detik)", "supervisor",
                  Reply(101, None, description="WebSocket; setiap pesan teks adalah objek "
                                               "Wallboard dalam JSON"), errors=(422,)),
        ]
