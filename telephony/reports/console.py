"""The supervisor's report pages: shift reports and the daily summary (the live wallboard's
page is the wallboard's, ``telephony.wallboard.console``).

The report pages are plain HTML rendered here, with bar charts as inline SVG drawn from
attributes (the console's Content-Security-Policy allows no inline style) and links to the
CSV of every table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from telephony.calls.archive import CATEGORY_LABELS
from telephony.calls.shifts import ShiftSlot
from telephony.reports.csvexport import TABLES
from telephony.reports.http import DAILY_TABLES, category_label, report_type_label
from telephony.reports.model import SERVICE_LEVEL_SECONDS, InvalidPeriod, Period, Ratio
from telephony.reports.service import ReportService
from telephony.screening.features import NUISANCE, Label
from telephony.web.console.render import PAGE, PREFIX, page
from telephony.web.request import FIRST_DAY, LAST_DAY
from telephony.web.routing import OVERSIGHT, Route

REPORTS: Final = f"{PREFIX}/reports"
DAILY: Final = f"{PREFIX}/daily"
BAR_WIDTH: Final = 220  # SVG units of the longest bar
TABLE_TITLES: Final = {"shifts": "per sif", "operators": "per operator", "queues": "per antrean",
                       "categories": "kategori", "report_types": "jenis laporan",
                       "villages": "desa/kelurahan"}


@dataclass(frozen=True)
class Bar:
    """One bar of a chart: its label, the figure written beside it, its length in SVG
    units, and a CSS class for its colour."""

    label: str
    text: str
    width: float
    kind: str


BarItem = tuple[str, float | None, str, str]  # label, value, text, kind


def bars(items: Sequence[BarItem], *, top: float | None = None) -> list[Bar]:
    """Bars for (label, value, text, kind) items, scaled so ``top`` (default: the largest
    value) is :data:`BAR_WIDTH` long; an unknown value draws no bar."""
    largest = top if top is not None else max((v or 0.0 for _, v, _, _ in items), default=0.0)
    scale = BAR_WIDTH / largest if largest > 0 else 0.0
    return [Bar(label, text, round((value or 0.0) * scale, 1), kind)
            for label, value, text, kind in items]


def percent(ratio: Ratio) -> str:
    """A share as people read it: "87,5%", or "-" when nothing was counted."""
    value = ratio.percent
    return "-" if value is None else f"{value:.1f}%".replace(".", ",")


def seconds(value: float | None) -> str:
    """Seconds as "42 dtk" or "2:05 mnt"; "-" when unknown."""
    if value is None:
        return "-"
    whole = round(value)
    if whole < 60:
        return f"{whole} dtk"
    return f"{whole // 60}:{whole % 60:02d} mnt"


def _formats() -> dict[str, Any]:
    return {"pct": percent, "secs": seconds, "levels": SERVICE_LEVEL_SECONDS}


def _day(request: web.Request, name: str, default: date) -> date:
    raw = request.query.get(name) or None
    if raw is None:
        return default
    try:
        day = date.fromisoformat(raw)
    except ValueError as exc:
        raise InvalidPeriod(name, "Tanggal harus berbentuk YYYY-MM-DD.") from exc
    # The API's bounds (query_day): at the calendar's end a report's next day does not exist
    # (an OverflowError, a 500), and no call of the line is older than 1970.
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidPeriod(name, f"Tanggal harus antara {FIRST_DAY.isoformat()} dan "
                                  f"{LAST_DAY.isoformat()}.")
    return day


def _csv_links(path: str, query: Mapping[str, str], tables: Sequence[str]
               ) -> list[tuple[str, str]]:
    return [(TABLE_TITLES[t], f"{path}?{urlencode({**query, 'table': t})}") for t in tables]


class ReportPages:
    """The pages, over the report service."""

    def __init__(self, reports: ReportService) -> None:
        self._reports = reports

    async def reports_page(self, request: web.Request) -> web.StreamResponse:
        """Shift reports for a run of days, one shift or all, with charts and CSV links."""
        names = self._reports.calendar.names
        today = self._reports.today()
        shift = request.query.get("shift") or None
        values: dict[str, Any] = {"shift_names": names, "report": None, "error": None,
                                  "first": today, "last": today, "shift": shift}
        try:
            first = _day(request, "from", today)
            last = _day(request, "to", first)
            values.update(first=first, last=last)
            report = await self._reports.shift_report(Period(first, last, shift))
        except InvalidPeriod as exc:
            values["error"] = exc.message
            return page(request, "reports.html", status=422, title="Laporan sif",
                        **values, **_formats())
        query = {"from": first.isoformat(), "to": last.isoformat(),
                 **({"shift": shift} if shift else {})}
        values.update(
            report=report,
            csv=_csv_links("/api/reports/shifts.csv", query, TABLES),
            shift_bars=bars([item for slot, f in report.shifts for item in (
                (_slot_label(slot), float(f.answered), f"{f.answered} dijawab", "answered"),
                ("", float(f.abandoned), f"{f.abandoned} ditinggalkan", "abandoned"))]),
            level_bars=bars([(_slot_label(slot), f.service_levels[20].percent,
                              percent(f.service_levels[20]), "level")
                             for slot, f in report.shifts], top=100.0),
            operator_bars=bars([(name, float(f.answered), str(f.answered), "answered")
                                for _, name, f in report.operators]),
            queue_bars=bars([(queue, float(f.offered), str(f.offered), "offered")
                             for queue, f in report.queues]),
        )
        return page(request, "reports.html", title="Laporan sif", **values, **_formats())

    async def daily_page(self, request: web.Request) -> web.StreamResponse:
        """The regency head's day: calls by category and village, genuine versus prank,
        ratings."""
        day = _day(request, "day", self._reports.today())
        summary = await self._reports.daily_summary(day)
        counts = summary.labels
        labels: list[BarItem] = [
            (label.label, float(counts.get(label.value, 0)), str(counts.get(label.value, 0)),
             "nuisance" if label in NUISANCE else "answered")
            for label in Label]
        labels.append(("Belum dilabel", float(counts.get("", 0)), str(counts.get("", 0)),
                       "unknown"))
        ratings = summary.ratings
        return page(
            request, "daily.html", title=f"Ringkasan harian {day:%d-%m-%Y}", day=day,
            summary=summary, category_label=category_label,
            report_type_label=report_type_label, categories=CATEGORY_LABELS,
            csv=_csv_links("/api/reports/daily.csv", {"day": day.isoformat()}, DAILY_TABLES),
            category_bars=bars([(category_label(c.code), float(c.calls), str(c.calls),
                                 "offered") for c in summary.categories]),
            label_bars=bars(labels),
            rating_bars=bars([("★" * r, float(n), str(n), "rating")
                              for r, n in sorted(ratings.counts.items(), reverse=True)]),
            **_formats())

    def routes(self) -> list[Route]:
        """The pages, with who may open them (those who may read what they show)."""
        tag = "konsol"
        return [
            Route("GET", REPORTS, self.reports_page, OVERSIGHT, "Laporan sif", tag, PAGE),
            Route("GET", DAILY, self.daily_page, OVERSIGHT, "Ringkasan harian", tag, PAGE),
        ]


def _slot_label(slot: ShiftSlot) -> str:
    return f"{slot.day:%d-%m} {slot.name}"
