"""The supervisor's API: the live wallboard (a JSON snapshot, and a WebSocket that pushes it
whenever it changes), shift reports with CSV export, and the regency head's daily summary.

Supervisors and admins may use all of it: none of it carries caller data (no numbers, no
locations), only queues, operators, counts and incident numbers.

The WebSocket (``GET /api/wallboard/live``) authenticates like every other route (session
cookie or bearer token, checked by the security middleware before the upgrade), refuses a
page of another origin (the cookie would otherwise let any site a supervisor visits read the
board), sends the snapshot at once, then again on every change, at most every
:data:`PUSH_INTERVAL` seconds (a surge of events becomes one message), and at least every
:data:`HEARTBEAT_SECONDS` (waits and counters move with time). It re-checks the session every
:data:`SESSION_CHECK_SECONDS` and closes (code 4401) once the session has ended, and closes
(1001) when the line stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Final
from urllib.parse import quote, urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from telephony.incidents.model import PRIORITY_LABELS, REPORT_TYPE_LABELS, STATUS_LABELS
from telephony.reports.csvexport import TABLES, render, report_csv, text_cell
from telephony.reports.model import (
    SERVICE_LEVEL_SECONDS,
    DailySummary,
    Figures,
    Period,
    Ratio,
    ShiftReport,
)
from telephony.reports.service import ReportService
from telephony.screening.features import Label
from telephony.wallboard.service import WallboardService, WallboardSnapshot
from telephony.wallboard.state import OperatorState
from telephony.web.api import OVERSIGHT, _json, _query, _query_choice
from telephony.web.errors import ApiError, dumps
from telephony.web.routing import Param, Reply, Route
from telephony.web.security import authenticate
from telephony.web.serialize import CATEGORY_LABELS, pause_label

log = logging.getLogger("telephony.web")

PUSH_INTERVAL: Final = 0.5
HEARTBEAT_SECONDS: Final = 5.0
SESSION_CHECK_SECONDS: Final = 60.0
CLOSE_SESSION_ENDED: Final = 4401  # private-use close code: log in again
DAILY_TABLES: Final = ("categories", "report_types", "villages")


def _instant(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _round(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def _ratio(ratio: Ratio) -> dict[str, Any]:
    return {"count": ratio.numerator, "of": ratio.denominator,
            "percent": _round(ratio.percent)}


def figures_json(f: Figures) -> dict[str, Any]:
    """One group's figures (times in seconds, shares in percent with their counts)."""
    return {
        "calls": f.calls, "offered": f.offered, "answered": f.answered,
        "abandoned": f.abandoned,
        "service_levels": [{"seconds": t, **_ratio(f.service_levels[t])}
                           for t in SERVICE_LEVEL_SECONDS],
        "mean_wait_seconds": _round(f.mean_wait), "p90_wait_seconds": _round(f.p90_wait),
        "mean_talk_seconds": _round(f.mean_talk),
        "mean_wrapup_seconds": _round(f.mean_wrapup),
        "prank_share": _ratio(f.prank_share),
    }


def wallboard_json(snapshot: WallboardSnapshot) -> dict[str, Any]:
    """The wallboard as the page draws it."""
    board, counters = snapshot.board, snapshot.counters
    longest = board.longest_wait
    names = counters.names if counters is not None else {}
    return {
        "generated_at": _instant(board.at),
        "connected": snapshot.connected,
        "queues": [{
            "queue": q.queue, "members": q.members, "available": q.available,
            "longest_wait_seconds": _round(q.longest_wait),
            "callers": [{
                "position": c.position, "joined_at": _instant(c.joined_at),
                "wait_seconds": _round(c.wait_seconds), "line": c.line,
                "category": c.category,
                "category_label": CATEGORY_LABELS.get(c.category or "", c.category),
            } for c in q.callers],
        } for q in board.queues],
        "operators": [{
            "operator": o.operator, "name": names.get(o.operator) or o.operator,
            "state": o.state.value, "state_label": o.state.label,
            "reason": o.reason, "reason_label": pause_label(o.reason) if o.reason else "",
            "since": _instant(o.since), "queues": o.queues,
        } for o in board.operators],
        "operator_counts": {state.value: board.counts.get(state, 0) for state in OperatorState},
        "longest_wait": None if longest is None else {
            "queue": longest[0], "wait_seconds": _round(longest[1])},
        "shift": None if counters is None else {
            "day": counters.shift.day.isoformat(), "name": counters.shift.name,
            "figures": figures_json(counters.shift_figures)},
        "today": None if counters is None else {
            "day": counters.shift.day.isoformat(), "figures": figures_json(counters.day_figures)},
        "counters_at": _instant(counters.at) if counters is not None else None,
        "counters_stale": snapshot.counters_stale,
        "overdue_incidents": [{
            "incident_id": b.incident.incident_id,
            "report_type": b.incident.report_type.value,
            "report_type_label": REPORT_TYPE_LABELS[b.incident.report_type],
            "priority": int(b.incident.priority),
            "priority_label": PRIORITY_LABELS[b.incident.priority],
            "status": b.incident.status.value,
            "status_label": STATUS_LABELS[b.incident.status],
            "due_at": _instant(b.clock.due_at),
            "overdue_seconds": int(b.clock.overdue.total_seconds()),
        } for b in snapshot.overdue],
    }


def report_json(report: ShiftReport) -> dict[str, Any]:
    """A shift report with all its tables."""
    period = report.period
    return {
        "from": period.first.isoformat(), "to": period.last.isoformat(),
        "shift": period.shift, "generated_at": _instant(report.generated_at),
        "total": figures_json(report.total),
        "shifts": [{"day": slot.day.isoformat(), "shift": slot.name, "figures": figures_json(f)}
                   for slot, f in report.shifts],
        "operators": [{"operator": op, "name": name, "figures": figures_json(f)}
                      for op, name, f in report.operators],
        "queues": [{"queue": queue, "figures": figures_json(f)} for queue, f in report.queues],
    }


def daily_json(summary: DailySummary) -> dict[str, Any]:
    """The daily summary."""
    return {
        "day": summary.day.isoformat(), "generated_at": _instant(summary.generated_at),
        "figures": figures_json(summary.figures),
        "lines": [{"line": line, "calls": n} for line, n in sorted(summary.lines.items())],
        "categories": [{"category": c.code, "category_label": category_label(c.code),
                        "calls": c.calls} for c in summary.categories],
        "report_types": [{"report_type": c.code,
                          "report_type_label": report_type_label(c.code),
                          "calls": c.calls, "incidents": c.incidents}
                         for c in summary.report_types],
        "villages": [{"village_code": v.village_code, "village_name": v.village_name,
                      "sub_district_name": v.sub_district_name, "calls": v.calls,
                      "incidents": v.incidents} for v in summary.villages],
        "labels": [{"label": label or None, "label_text": _label_text(label), "calls": n}
                   for label, n in summary.labels.items()],
        "ratings": {"counts": [{"rating": r, "count": n}
                               for r, n in sorted(summary.ratings.counts.items())],
                    "total": summary.ratings.total, "mean": _round(summary.ratings.mean)},
    }


def category_label(code: str | None) -> str:
    """An IVR category as people read it (a call that ended before choosing has none)."""
    if code is None:
        return "Tanpa kategori (berakhir sebelum memilih)"
    return CATEGORY_LABELS.get(code, code)


def report_type_label(code: str | None) -> str:
    """An incident report type as people read it."""
    labels = {t.value: text for t, text in REPORT_TYPE_LABELS.items()}
    return labels.get(code or "", code or "")


def _label_text(label: str) -> str:
    return Label.labels().get(label, "Belum dilabel")


def daily_csv(summary: DailySummary, table: str) -> str:
    """One of the daily summary's tables (:data:`DAILY_TABLES`) as CSV."""
    if table == "categories":
        return render(["Kategori", "Panggilan"],
                      [[text_cell(category_label(c.code)), str(c.calls)]
                       for c in summary.categories])
    if table == "report_types":
        return render(["Jenis laporan", "Panggilan", "Insiden"],
                      [[text_cell(report_type_label(c.code)), str(c.calls), str(c.incidents)]
                       for c in summary.report_types])
    return render(["Kode desa", "Desa/kelurahan", "Kecamatan", "Panggilan", "Insiden"],
                  [[v.village_code or "", text_cell(v.village_name or "Belum ditentukan"),
                    text_cell(v.sub_district_name or ""), str(v.calls), str(v.incidents)]
                   for v in summary.villages])


def _query_day(query: Mapping[str, str], name: str, default: date) -> date:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise ApiError(422, "invalid", f"{name} harus tanggal YYYY-MM-DD, mis. 2025-01-31.",
                       field=name) from exc


def _csv(body: str, filename: str) -> web.Response:
    return web.Response(text=body, content_type="text/csv", charset="utf-8", headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"})


def _same_origin(request: web.Request) -> bool:
    """Whether a browser's ``Origin`` (if it sent one) is this server."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser page: a script with a bearer token or the cookie jar
    parts = urlsplit(origin)
    return parts.netloc == request.host and parts.scheme in ("http", "https")


class SupervisorApi:
    """The handlers, over the wallboard and report services."""

    def __init__(self, wallboard: WallboardService, reports: ReportService) -> None:
        self._wallboard = wallboard
        self._reports = reports

    def _period(self, request: web.Request) -> Period:
        query = _query(request)
        today = self._reports.today()
        first = _query_day(query, "from", today)
        return Period(first, _query_day(query, "to", first),
                      _query_choice(query, "shift", self._reports.calendar.names))

    async def wallboard(self, request: web.Request) -> web.StreamResponse:
        """The wallboard now: callers waiting, operators, the shift's and day's figures."""
        return _json(wallboard_json(self._wallboard.snapshot()))

    async def wallboard_live(self, request: web.Request) -> web.StreamResponse:
        """The wallboard over a WebSocket: the snapshot now, then on every change."""
        if not _same_origin(request):
            raise ApiError(403, "forbidden", "Papan dinding hanya dapat dibuka dari konsol ini.")
        socket = web.WebSocketResponse(heartbeat=30.0)
        await socket.prepare(request)
        changed = self._wallboard.subscribe()
        reader = asyncio.create_task(self._drain(socket))
        loop = asyncio.get_running_loop()
        checked = loop.time()
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
                if loop.time() - checked >= SESSION_CHECK_SECONDS:
                    checked = loop.time()
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
        try:
            await authenticate(request)
        except ApiError:
            return False
        return True

    async def shift_report(self, request: web.Request) -> web.StreamResponse:
        """Figures of a run of shifts: in total, per shift, per operator, per queue."""
        return _json(report_json(await self._reports.shift_report(self._period(request))))

    async def shift_report_csv(self, request: web.Request) -> web.StreamResponse:
        """One table of a shift report as CSV (``;``-separated, decimal comma)."""
        table = _query_choice(_query(request), "table", TABLES) or "shifts"
        period = self._period(request)
        report = await self._reports.shift_report(period)
        suffix = f"-{period.shift}" if period.shift else ""
        name = f"laporan-{table}-{period.first}_{period.last}{suffix}.csv"
        return _csv(report_csv(report, table), name)

    async def daily_summary(self, request: web.Request) -> web.StreamResponse:
        """The regency head's summary of one operational day."""
        day = _query_day(_query(request), "day", self._reports.today())
        return _json(daily_json(await self._reports.daily_summary(day)))

    async def daily_summary_csv(self, request: web.Request) -> web.StreamResponse:
        """One table of the daily summary as CSV."""
        query = _query(request)
        day = _query_day(query, "day", self._reports.today())
        table = _query_choice(query, "table", DAILY_TABLES) or "villages"
        summary = await self._reports.daily_summary(day)
        return _csv(daily_csv(summary, table), f"ringkasan-{table}-{day}.csv")

    def routes(self) -> list[Route]:
        """The supervisor's routes, with who may call them."""
        day = {"type": "string", "format": "date"}
        period = (
            Param("from", day, "Tanggal sif pertama (YYYY-MM-DD); bawaan: hari ini"),
            Param("to", day, "Tanggal sif terakhir; bawaan: sama dengan from"),
            Param("shift", {"type": "string", "enum": list(self._reports.calendar.names)},
                  "Hanya sif ini"),
        )
        csv_reply = Reply(200, None, {"text/csv": {}},
                          "CSV: pemisah ';', koma desimal, UTF-8 dengan BOM")
        return [
            Route("GET", "/api/wallboard", self.wallboard, OVERSIGHT,
                  "Papan dinding: antrean, operator, angka sif dan hari ini", "supervisor",
                  Reply(200, "Wallboard")),
            Route("GET", "/api/wallboard/live", self.wallboard_live, OVERSIGHT,
                  "Papan dinding lewat WebSocket: cuplikan sekarang, lalu setiap perubahan "
                  f"(paling sering tiap {PUSH_INTERVAL} detik)", "supervisor",
                  Reply(101, None, description="WebSocket; setiap pesan teks adalah objek "
                                               "Wallboard dalam JSON")),
            Route("GET", "/api/reports/shifts", self.shift_report, OVERSIGHT,
                  "Laporan sif: total, per sif, per operator, per antrean", "supervisor",
                  Reply(200, "ShiftReport"), query=period),
            Route("GET", "/api/reports/shifts.csv", self.shift_report_csv, OVERSIGHT,
                  "Laporan sif sebagai CSV (satu tabel)", "supervisor", csv_reply,
                  query=(*period, Param("table", {"type": "string", "enum": list(TABLES)},
                                        "Tabel: shifts, operators, atau queues"))),
            Route("GET", "/api/reports/daily", self.daily_summary, OVERSIGHT,
                  "Ringkasan harian untuk bupati", "supervisor", Reply(200, "DailySummary"),
                  query=(Param("day", day, "Hari operasional (YYYY-MM-DD); bawaan: hari ini"),)),
            Route("GET", "/api/reports/daily.csv", self.daily_summary_csv, OVERSIGHT,
                  "Ringkasan harian sebagai CSV (satu tabel)", "supervisor", csv_reply,
                  query=(Param("day", day, "Hari operasional (YYYY-MM-DD)"),
                         Param("table", {"type": "string", "enum": list(DAILY_TABLES)},
                               "Tabel: categories, report_types, atau villages"))),
        ]
