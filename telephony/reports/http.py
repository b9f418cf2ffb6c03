"""The reports' HTTP routes: shift reports with CSV export, and the regency head's daily
summary. Supervisors and admins may use them: none of it carries caller data (no numbers, no
locations), only queues, operators, counts and incident numbers. The live wallboard's routes
are the wallboard's (``telephony.wallboard.http``).
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote

from aiohttp import web

from telephony.calls.archive import CATEGORY_LABELS
from telephony.incidents.model import ReportType
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
from telephony.web.request import (
    instant_json,
    json_response,
    query_choice,
    query_day,
    query_of,
)
from telephony.web.routing import OVERSIGHT, Param, Reply, Route

DAILY_TABLES: Final = ("categories", "report_types", "villages")


def rounded(value: float | None) -> float | None:
    """A time or share to one decimal, as the reports and the wallboard show it."""
    return round(value, 1) if value is not None else None


def _ratio(ratio: Ratio) -> dict[str, Any]:
    return {"count": ratio.numerator, "of": ratio.denominator,
            "percent": rounded(ratio.percent)}


def figures_json(f: Figures) -> dict[str, Any]:
    """One group's figures (times in seconds, shares in percent with their counts)."""
    return {
        "calls": f.calls, "offered": f.offered, "answered": f.answered,
        "abandoned": f.abandoned,
        "service_levels": [{"seconds": t, **_ratio(f.service_levels[t])}
                           for t in SERVICE_LEVEL_SECONDS],
        "mean_wait_seconds": rounded(f.mean_wait), "p90_wait_seconds": rounded(f.p90_wait),
        "mean_talk_seconds": rounded(f.mean_talk),
        "mean_wrapup_seconds": rounded(f.mean_wrapup),
        "prank_share": _ratio(f.prank_share),
    }




def report_json(report: ShiftReport) -> dict[str, Any]:
    """A shift report with all its tables."""
    period = report.period
    return {
        "from": period.first.isoformat(), "to": period.last.isoformat(),
        "shift": period.shift, "generated_at": instant_json(report.generated_at),
        "ends_at": instant_json(report.ends_at), "complete": report.complete,
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
        "day": summary.day.isoformat(), "generated_at": instant_json(summary.generated_at),
        "ends_at": instant_json(summary.ends_at), "complete": summary.complete,
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
                    "total": summary.ratings.total, "mean": rounded(summary.ratings.mean)},
    }


def category_label(code: str | None) -> str:
    """An IVR category as people read it. A call has none when the caller hung up before
    choosing, and also when the IVR failed open (its server down or stalled: the dialplan
    queues the caller at once, extensions.conf), so the label names both: after an IVR
    outage those are answered calls, not callers who gave up."""
    if code is None:
        return "Tanpa kategori (IVR gangguan, atau berakhir sebelum memilih)"
    return CATEGORY_LABELS.get(code, code)


def report_type_label(code: str | None) -> str:
    """An incident report type as people read it."""
    return ReportType.labels().get(code or "", code or "")


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




def _partial(report: ShiftReport | DailySummary) -> str:
    """A CSV's file name says when its figures are of shifts not over yet: the file is what
    gets forwarded (to the regency head), without the page that says so."""
    return "" if report.complete else "-sementara"


def _csv(body: str, filename: str) -> web.Response:
    return web.Response(text=body, content_type="text/csv", charset="utf-8", headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"})




class ReportApi:
    """The handlers, over the report service."""

    def __init__(self, reports: ReportService) -> None:
        self._reports = reports

    def _period(self, request: web.Request) -> Period:
        query = query_of(request)
        today = self._reports.today()
        first = query_day(query, "from", today)
        return Period(first, query_day(query, "to", first),
                      query_choice(query, "shift", self._reports.calendar.names))

    async def shift_report(self, request: web.Request) -> web.StreamResponse:
        """Figures of a run of shifts: in total, per shift, per operator, per queue."""
        return json_response(report_json(await self._reports.shift_report(self._period(request))))

    async def shift_report_csv(self, request: web.Request) -> web.StreamResponse:
        """One table of a shift report as CSV (``;``-separated, decimal comma)."""
        table = query_choice(query_of(request), "table", TABLES) or "shifts"
        period = self._period(request)
        report = await self._reports.shift_report(period)
        suffix = f"-{period.shift}" if period.shift else ""
        name = f"laporan-{table}-{period.first}_{period.last}{suffix}{_partial(report)}.csv"
        return _csv(report_csv(report, table), name)

    async def daily_summary(self, request: web.Request) -> web.StreamResponse:
        """The regency head's summary of one operational day."""
        day = query_day(query_of(request), "day", self._reports.today())
        return json_response(daily_json(await self._reports.daily_summary(day)))

    async def daily_summary_csv(self, request: web.Request) -> web.StreamResponse:
        """One table of the daily summary as CSV."""
        query = query_of(request)
        day = query_day(query, "day", self._reports.today())
        table = query_choice(query, "table", DAILY_TABLES) or "villages"
        summary = await self._reports.daily_summary(day)
        return _csv(daily_csv(summary, table),
                    f"ringkasan-{table}-{day}{_partial(summary)}.csv")

    def routes(self) -> list[Route]:
        """The reports' routes, with who may call them."""
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
