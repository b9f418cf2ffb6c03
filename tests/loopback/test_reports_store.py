"""The report SQL over a real PostgreSQL: a day of calls written as the listener writes them
(facts through the call store), labelled, with incidents, villages, ratings and a wrap-up
pause; the shift report, its CSV, the daily summary, the calls the wallboard's counters start
from and the live picture a restarted wallboard starts from."""

from __future__ import annotations

import asyncio
import csv
import io
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from ivr.menu import load_menu
from telephony.accounts.model import Role
from telephony.accounts.store import AccountRepository
from telephony.admin.queues import QueueDefaults
from telephony.admin.store import AdminSettingsRepository
from telephony.calls.facts import (
    CallEnded,
    CallFact,
    CallStarted,
    IvrVariableSet,
    OperatorAnswered,
    OperatorCompleted,
    OperatorRung,
    OperatorStateChanged,
    QueueAbandoned,
    QueueJoined,
)
from telephony.calls.legs import LegKind
from telephony.calls.shifts import ShiftCalendar, ShiftSlot
from telephony.calls.store import CallRepository, LegRepository
from telephony.db.connection import Database
from telephony.db.embedded import EmbeddedPostgres
from telephony.desks.service import assign_desk
from telephony.incidents.config import IncidentConfig
from telephony.incidents.edits import parse_patch
from telephony.incidents.model import Status
from telephony.incidents.service import IncidentService
from telephony.reports import store as report_store
from telephony.reports.csvexport import BOM, FIGURE_HEADERS, report_csv
from telephony.reports.gate import GateConfig, ReportGate
from telephony.reports.model import UNRECORDED_OPERATOR, Figures, InvalidPeriod, Period
from telephony.reports.service import ReportConfig, ReportService
from telephony.screening.service import ScreeningService, screening_config_source
from telephony.settings import DEFAULT_SHIFTS, Settings, ShiftDefinition
from telephony.transfers.model import Step
from telephony.transfers.store import TransferStore
from telephony.wallboard.counters import ShiftCounters
from tests.support.ami import eventually
from tests.support.db import create_database_before, drop_database, line_dsn, upgrade_database
from tests.support.report_histories import browser_phone, dead_phone_calls, same

JAKARTA = ZoneInfo("Asia/Jakarta")
CALENDAR = ShiftCalendar(DEFAULT_SHIFTS, "Asia/Jakarta")
DAY = date(2025, 3, 10)
A, B = "PJSIP/op1001", "PJSIP/op1002"


def local(hour: int, minute: int = 0, second: int = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=JAKARTA)


def call(call_id: str, arrived: datetime, *, queue: str | None = "medical",
         wait: int | None = None, operator: str = A, talk: int = 60,
         abandon_after: int | None = None, rung: tuple[str, ...] = (),
         category: str = "emergency", end: bool = True) -> list[CallFact]:
    """A call's facts as the tracker gives them: IVR, queue, ring, answer or abandon, end."""
    facts: list[CallFact] = [
        CallStarted(call_id, call_id, f"PJSIP/carrier-{call_id}", "081234567890", "", "112",
                    arrived),
        IvrVariableSet(call_id, "category", category, arrived + timedelta(seconds=3)),
    ]
    end_at = arrived + timedelta(seconds=4)
    if queue is not None:
        joined = arrived + timedelta(seconds=5)
        facts.append(QueueJoined(call_id, queue, 1, joined))
        facts += [OperatorRung(call_id, queue, op, joined + timedelta(seconds=1)) for op in rung]
        if wait is not None:
            answered = joined + timedelta(seconds=wait)
            done = answered + timedelta(seconds=talk)
            facts += [OperatorAnswered(call_id, queue, operator, wait, 1, answered),
                      OperatorCompleted(call_id, queue, operator, wait, talk, "caller", done)]
            end_at = done
        elif abandon_after is not None:
            end_at = joined + timedelta(seconds=abandon_after)
            facts.append(QueueAbandoned(call_id, queue, 1, 1, abandon_after, end_at))
    if end:
        facts.append(CallEnded(call_id, 16, "Normal Clearing", end_at))
    return facts


def pause(operator: str, at: datetime, paused: bool, reason: str = "") -> list[CallFact]:
    return [OperatorStateChanged(operator, queue, "paused" if paused else "idle", paused,
                                 reason, at) for queue in ("medical", "all-operators")]


@dataclass
class Day:
    reports: ReportService
    incidents: IncidentService
    dsn: str
    database: Database


@pytest.fixture
async def day(database_dsn: str, settings: Settings) -> AsyncIterator[Day]:
    configured = replace(settings, database_dsn=database_dsn)
    database = Database(configured)
    facts = [
        # pagi: answered in 7 s by A (then a 90 s wrap-up pause), answered in 15 s by B
        # after ringing both, abandoned after 30 s, and one that ended in the IVR.
        *call("1741572000.1", local(8), wait=7, talk=120, rung=(A,)),
        *pause(A, local(8, 2, 15), True, "wrapup"),
        *pause(A, local(8, 3, 42), False),
        *call("1741575600.2", local(9), queue="fire", wait=15, operator=B, rung=(A, B)),
        *call("1741579200.3", local(10), abandon_after=30, rung=(A,)),
        *call("1741582800.4", local(11), queue=None, category="information"),
        # siang: answered in 3 s by A.
        *call("1741601400.5", local(16, 10), wait=3, talk=30),
        # The night shift's last second, on the next date: still this operational day.
        *call("1741651199.6", local(6, 59, 59, DAY + timedelta(days=1)), wait=25, operator=B,
              talk=45),
        # 07:00 the next morning: the next day's pagi.
        *call("1741651200.7", local(7, 0, 0, DAY + timedelta(days=1)), wait=1),
    ]
    connection = await asyncpg.connect(database_dsn)
    try:
        await CallRepository(CALENDAR).apply(connection, facts)
        await connection.execute(
            "UPDATE operators SET display_name = 'Budi' WHERE operator = $1", B)
    finally:
        await connection.close()
    screening = ScreeningService(database, screening_config_source(None), "Asia/Jakarta")
    await screening.label("1741572000.1", "genuine", "sari")
    await screening.label("1741575600.2", "genuine", "sari")
    await screening.label("1741575600.2", "prank", "budi", "koreksi")  # the later one counts
    await screening.label("1741582800.4", "silent", "sari")
    incidents = IncidentService(database, IncidentConfig())
    reports = ReportService(database, CALENDAR, ReportConfig(wrapup_seconds=5),
                            clock=lambda: local(16, 30))
    yield Day(reports, incidents, database_dsn, database)
    await database.close()


def summary(f: Figures) -> tuple[object, ...]:
    return (f.calls, f.offered, f.answered, f.abandoned,
            f.service_levels[10].percent, f.service_levels[20].percent,
            f.mean_wait, f.p90_wait, f.mean_talk, f.mean_wrapup, f.labelled, f.nuisance)


async def test_shift_report_in_total_per_shift_operator_and_queue(day: Day) -> None:
    report = await day.reports.shift_report(Period(DAY, DAY))
    # Waits 7, 15, 3, 25; talks 120, 60, 30, 45; wrap-ups 90 (paused), then 5 automatic.
    # Service level: of 4 answered and 1 abandoned, 7 s and 3 s within 10, 15 s within 20.
    assert summary(report.total) == (6, 5, 4, 1, 40.0, 60.0, 12.5, 25.0, 63.75, 26.25, 3, 2)
    assert [(slot.name, f.calls, f.answered) for slot, f in report.shifts] == [
        ("pagi", 4, 2), ("siang", 1, 1), ("malam", 1, 1)]
    assert [(queue, f.offered, f.answered, f.abandoned) for queue, f in report.queues] == [
        ("fire", 1, 1, 0), ("medical", 4, 3, 1)]
    operators = {op: (name, f.offered, f.answered, f.abandoned, f.mean_wrapup)
                 for op, name, f in report.operators}
    # These calls were recorded with no account at either phone: each phone is an operator
    # of its own, not named after whoever works there now (the phone's name, Budi).
    assert operators == {A: (UNRECORDED_OPERATOR, 4, 2, 1, 47.5),
                         B: (UNRECORDED_OPERATOR, 2, 2, 0, 5.0)}
    pagi = await day.reports.shift_report(Period(DAY, DAY, "pagi"))
    assert [slot for slot, _ in pagi.shifts] == [ShiftSlot(DAY, "pagi")]
    assert pagi.total.calls == 4


async def test_figures_read_before_their_shifts_end_say_so(day: Day) -> None:
    """At 16:30 on DAY, pagi is over, siang is running and the operational day ends at
    07:00 the next morning: the day's summary and a report of DAY are provisional."""
    summary = await day.reports.daily_summary(DAY)
    assert (summary.ends_at, summary.complete) == (local(7, day=DAY + timedelta(days=1)), False)
    assert (await day.reports.daily_summary(DAY - timedelta(days=1))).complete
    assert (await day.reports.shift_report(Period(DAY, DAY, "pagi"))).complete
    siang = await day.reports.shift_report(Period(DAY, DAY, "siang"))
    assert (siang.ends_at, siang.complete) == (local(23), False)
    assert not (await day.reports.shift_report(Period(DAY - timedelta(days=1), DAY))).complete


async def test_a_shift_renamed_since_keeps_its_calls_in_the_report(day: Day) -> None:
    """An admin went from three shifts to two (pagi 07:00, malam 19:00) after DAY: its calls
    keep the shift they arrived in, siang among them. The report of DAY, cut by the new
    roster, still counts every call of the day, as the daily summary does, and lists the
    old siang slot where its call arrived (16:10)."""
    two = ShiftCalendar([ShiftDefinition("pagi", time(7)), ShiftDefinition("malam", time(19))],
                        "Asia/Jakarta")
    reports = ReportService(day.database, two, ReportConfig(wrapup_seconds=5),
                            clock=lambda: local(16, 30, day=DAY + timedelta(days=2)))
    report = await reports.shift_report(Period(DAY, DAY))
    assert report.total.calls == (await reports.daily_summary(DAY)).figures.calls == 6
    assert summary(report.total)[:4] == (6, 5, 4, 1)
    assert [(slot.name, f.calls) for slot, f in report.shifts] == [
        ("pagi", 4), ("siang", 1), ("malam", 1)]
    # A range whose only calls are of the old shift, and one with none at all.
    assert [(s.name, f.calls) for s, f in (await reports.shift_report(
        Period(DAY + timedelta(days=1), DAY + timedelta(days=1)))).shifts] == [
        ("pagi", 1), ("malam", 0)]
    assert (await reports.shift_report(Period(DAY - timedelta(days=3),
                                              DAY - timedelta(days=1)))).total.calls == 0


async def test_a_day_before_the_roster_changed_lists_its_shifts_as_they_ran(day: Day) -> None:
    """After DAY the roster became pagi 07:00 and malam 15:00 (siang dropped, malam
    earlier). On DAY siang ran from 15:00 (its call at 16:10) and malam from 23:00 (its call
    at 06:59:59 the next morning): the shift table, its CSV and charts list them in that
    order, not malam first because the new roster starts it at 15:00."""
    two = ShiftCalendar([ShiftDefinition("pagi", time(7)), ShiftDefinition("malam", time(15))],
                        "Asia/Jakarta")
    reports = ReportService(day.database, two, ReportConfig(wrapup_seconds=5),
                            clock=lambda: local(16, 30, day=DAY + timedelta(days=2)))
    report = await reports.shift_report(Period(DAY, DAY + timedelta(days=1)))
    assert [(slot.day, slot.name, f.calls) for slot, f in report.shifts] == [
        (DAY, "pagi", 4), (DAY, "siang", 1), (DAY, "malam", 1),
        (DAY + timedelta(days=1), "pagi", 1), (DAY + timedelta(days=1), "malam", 0)]


async def test_the_report_rows_become_figures_off_the_event_loop(
    day: Day, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row per operator: with a surge's thousand operators, tens of milliseconds of Python
    that the loop serving the wallboard and the AMI listener's facts does not run."""
    made_on: list[threading.Thread] = []
    real = report_store.period_figures_of

    def spy(rows: list[asyncpg.Record]) -> object:
        made_on.append(threading.current_thread())
        return real(rows)

    monkeypatch.setattr(report_store, "period_figures_of", spy)
    report = await day.reports.shift_report(Period(DAY, DAY))
    assert report.total.calls == 6
    assert made_on and threading.current_thread() not in made_on


async def test_shift_report_csv_opens_in_an_indonesian_spreadsheet(day: Day) -> None:
    report = await day.reports.shift_report(Period(DAY, DAY))
    text = report_csv(report, "operators")
    assert text.startswith(BOM)
    rows = list(csv.reader(io.StringIO(text[1:]), delimiter=";"))
    assert rows[0] == ["Operator", "Nama", *FIGURE_HEADERS]
    assert rows[2][:6] == [B, UNRECORDED_OPERATOR, "2", "2", "2", "0"]
    wait = FIGURE_HEADERS.index("Rata-rata tunggu (detik)") + 2
    assert rows[2][wait] == "20,0"
    assert rows[-1][0] == "Jumlah"


async def test_a_period_that_cannot_be_reported_is_refused(day: Day) -> None:
    with pytest.raises(InvalidPeriod):
        await day.reports.shift_report(Period(DAY, DAY + timedelta(days=40)))


async def test_daily_summary_by_category_village_label_and_rating(day: Day) -> None:
    first = await day.incidents.create_for_call("1741572000.1", actor="sari")
    await day.incidents.update_details(
        first.incident_id, parse_patch({"village_code": "35.29.01.1016"}), actor="sari")
    second = await day.incidents.create_for_call("1741575600.2", actor="sari")
    await day.incidents.link_call(second.incident_id, "1741601400.5", actor="sari")
    connection = await asyncpg.connect(day.dsn)
    try:
        await connection.execute(
            "UPDATE incidents SET rating = $2, rated_at = $3 WHERE incident_id = $1",
            first.incident_id, 4, local(20))
        await connection.execute(
            "UPDATE incidents SET rating = $2, rated_at = $3 WHERE incident_id = $1",
            second.incident_id, 1, local(8, day=DAY + timedelta(days=1)))  # the next day
    finally:
        await connection.close()
    result = await day.reports.daily_summary(DAY)
    assert result.figures.calls == 6
    assert [(c.code, c.calls) for c in result.categories] == [
        ("emergency", 5), ("information", 1)]
    assert sum(c.calls for c in result.report_types) == 3
    assert sum(c.incidents for c in result.report_types) == 2
    places = {(v.village_name, v.sub_district_name): (v.calls, v.incidents)
              for v in result.villages}
    assert places == {("Pajagalan", "Kota Sumenep"): (1, 1), (None, None): (2, 1)}
    assert result.labels == {"genuine": 1, "prank": 1, "silent": 1, "accidental": 0,
                             "test": 0, "": 3}
    assert (result.ratings.total, result.ratings.mean) == (1, 4.0)


async def test_daily_summary_counts_no_prank_or_cancelled_incident(day: Day) -> None:
    """Every answered call opens an incident, the pranks' too: one the operator marked a
    prank report, or cancelled, is no fire in a village for the regency head. Its calls
    still count under their IVR category and label; the incident tables leave it out."""
    real = await day.incidents.create_for_call("1741572000.1", actor="sari")
    prank = await day.incidents.create_for_call("1741575600.2", actor="sari")
    cancelled = await day.incidents.create_for_call("1741601400.5", actor="sari")
    for incident in (real, prank, cancelled):
        await day.incidents.update_details(
            incident.incident_id, parse_patch({"village_code": "35.29.01.1016"}), actor="sari")
    await day.incidents.change_status(prank.incident_id, Status.PRANK, actor="sari")
    await day.incidents.change_status(cancelled.incident_id, Status.CANCELLED, actor="sari")
    result = await day.reports.daily_summary(DAY)
    assert [(c.code, c.calls, c.incidents) for c in result.report_types] == [
        (real.report_type.value, 1, 1)]
    assert [(v.village_name, v.calls, v.incidents) for v in result.villages] == [
        ("Pajagalan", 1, 1)]
    assert result.figures.calls == 6
    assert sum(c.calls for c in result.categories) == 6


async def test_the_live_counters_start_from_the_days_calls(day: Day) -> None:
    """The wallboard's counters, seeded from the day's calls the clock (16:30, siang) is in,
    show the daily summary's figures for the day, and the shift's part of them."""
    counters = ShiftCounters(CALENDAR)
    counters.seed(DAY, await day.reports.live_calls(DAY))
    live = counters.live(local(16, 30), await day.reports.operator_names())
    assert live is not None and live.shift == ShiftSlot(DAY, "siang")
    assert (live.shift_figures.calls, live.shift_figures.answered) == (1, 1)
    assert live.names == {B: "Budi"}
    same(live.day_figures, (await day.reports.daily_summary(DAY)).figures)
    assert (live.day_figures.calls, live.day_figures.nuisance) == (6, 2)
    # The night before ended long ago: rolled up for the reports now and then. Pagi ended at
    # 15:00, too recently (a wrap-up pause may still end within its window).
    assert await day.reports.roll_up_recent() == 2  # a few at a time, newest first
    slots = await rolled_up_slots(day.dsn)
    assert (DAY - timedelta(days=1), "malam") in slots
    assert (DAY, "pagi") not in slots


async def test_reports_give_way_while_the_call_records_trail(day: Day) -> None:
    """While the recorder trails, a report waits and the wallboard's roll-up skips its round;
    once the records catch up, the report is the same as ever (and rolls up what it reads)."""
    lag = [5.0]
    probes: list[float] = []

    def trailing() -> float:
        probes.append(lag[0])
        return lag[0]

    reports = ReportService(day.database, CALENDAR, ReportConfig(wrapup_seconds=5),
                            gate=ReportGate(trailing, GateConfig(max_wait_seconds=60)),
                            clock=lambda: local(16, 30))
    assert await reports.roll_up_recent() == 0
    asked = asyncio.create_task(reports.shift_report(Period(DAY - timedelta(days=1), DAY)))
    await eventually(lambda: len(probes) >= 5)  # the report polls the gate, and waits
    assert not asked.done()
    assert await reports.roll_up_recent() == 0  # still trailing, and a report has the turn
    assert await rolled_up_slots(day.dsn) == set()
    lag[0] = 0.0
    report = await asyncio.wait_for(asked, 10)
    assert (report.total.calls, report.total.answered) == (6, 4)
    assert (DAY - timedelta(days=1), "malam") in await rolled_up_slots(day.dsn)


async def test_a_report_asked_before_an_admin_renames_a_shift_is_cut_by_one_roster(
        day: Day) -> None:
    """An admin renames siang to sore (the calendar the line holds, at once) while a report
    waits for its turn: the report is cut by the roster it was asked under, whole, instead
    of failing (a 500) on a shift the roster no longer has."""
    lag = [5.0]
    probes: list[float] = []

    def trailing() -> float:
        probes.append(lag[0])
        return lag[0]

    calendar = ShiftCalendar(DEFAULT_SHIFTS, "Asia/Jakarta")
    reports = ReportService(day.database, calendar, ReportConfig(wrapup_seconds=5),
                            gate=ReportGate(trailing, GateConfig(max_wait_seconds=60)),
                            clock=lambda: local(16, 30, day=DAY + timedelta(days=2)))
    for shift in (None, "siang"):
        probes.clear()
        asked = asyncio.create_task(reports.shift_report(Period(DAY, DAY, shift)))
        await eventually(lambda: len(probes) >= 2)  # waiting at the gate
        assert not asked.done()
        calendar.redefine([ShiftDefinition("pagi", time(7)), ShiftDefinition("sore", time(15)),
                           ShiftDefinition("malam", time(23))])
        lag[0] = 0.0
        report = await asyncio.wait_for(asked, 10)
        assert [(slot.name, f.calls) for slot, f in report.shifts] == (
            [("pagi", 4), ("siang", 1), ("malam", 1)] if shift is None else [("siang", 1)])
        calendar.redefine(DEFAULT_SHIFTS)
        lag[0] = 5.0


async def test_reports_share_the_time_while_calls_are_recorded(day: Day) -> None:
    """Back to back while calls are being recorded, a report rests after the one before
    (share 0.01: 99 times its turn, a second or more), and the wallboard's roll-up skips its
    round; once no call fact has come for a while, the report goes, the same as ever."""
    recording = [True]
    gate = ReportGate(lambda: 0.0, GateConfig(max_wait_seconds=60, busy_share=0.01),
                      since_facts=lambda: 0.0 if recording[0] else 60.0)
    reports = ReportService(day.database, CALENDAR, ReportConfig(wrapup_seconds=5), gate=gate,
                            clock=lambda: local(16, 30))
    period = Period(DAY - timedelta(days=1), DAY)
    first = await reports.shift_report(period)
    assert gate.resting() and await reports.roll_up_recent() == 0
    asked = asyncio.create_task(reports.shift_report(period))
    await eventually(lambda: gate.busy)
    assert not asked.done()
    recording[0] = False
    assert await asyncio.wait_for(asked, 10) == first
    assert gate.gave_way == 1
    assert await reports.roll_up_recent() > 0  # its 0 above was the rest: the month has more


async def rolled_up_slots(dsn: str) -> set[tuple[date, str]]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT shift_day, shift_name FROM report_rollup_slots WHERE claim IS NULL")
    finally:
        await connection.close()
    return {(row["shift_day"], row["shift_name"]) for row in rows}


async def test_a_relabel_drops_a_rollup_the_wallboard_rolls_up_again(day: Day) -> None:
    later = ReportService(day.database, CALENDAR, ReportConfig(wrapup_seconds=5),
                          clock=lambda: local(18))
    await later.roll_up_recent()
    assert (DAY, "pagi") in await rolled_up_slots(day.dsn)
    connection = await asyncpg.connect(day.dsn)
    try:  # a late relabel of a pagi call: pagi's rollup goes
        await connection.execute(
            "INSERT INTO call_labels (call_id, label, labelled_by, labelled_at)"
            " VALUES ('1741572000.1', 'prank', 'sari', now() + interval '1 day')")
    finally:
        await connection.close()
    assert (DAY, "pagi") not in await rolled_up_slots(day.dsn)
    labels = {c.call_id: c.label for c in await later.live_calls(DAY)}
    assert labels["1741572000.1"] == "prank"
    await later.roll_up_recent()
    assert (DAY, "pagi") in await rolled_up_slots(day.dsn)  # rolled up again


async def test_the_live_picture_after_a_restart(day: Day) -> None:
    connection = await asyncpg.connect(day.dsn)
    try:
        await CallRepository(CALENDAR).apply(connection, [
            *call("1741599000.8", local(16, 20), wait=None, end=False),
            *call("1741599060.9", local(16, 21), wait=None, end=False),
            *call("1741599120.10", local(16, 22), wait=10, end=False),  # talking now
            OperatorStateChanged(A, "medical", "talking", False, "", local(16, 22, 15)),
            OperatorStateChanged(B, "fire", "logged_out", False, "", local(16, 25)),
        ])
    finally:
        await connection.close()
    picture = await day.reports.live_picture()
    assert [(w.call_id, w.queue, w.position) for w in picture.waiting] == [
        ("1741599000.8", "medical", 1), ("1741599060.9", "medical", 2)]
    assert picture.calls["1741599000.8"].category == "emergency"
    members = {(m.operator, m.queue): m.state for m in picture.members}
    assert members[(A, "medical")] == "talking"
    assert (B, "fire") not in members


async def test_the_live_picture_names_the_three_way_calls_their_operator_left(day: Day
                                                                            ) -> None:
    """An operator left a three-way call (its caller still with the agency): not talking on
    it any more, and its leave is in the picture, so its later completion is no wrap-up."""
    left_call, on_call = "1741599180.11", "1741599240.12"
    connection = await asyncpg.connect(day.dsn)
    try:
        for call_id, arrived in ((left_call, local(16, 23)), (on_call, local(16, 24))):
            await CallRepository(CALENDAR).apply(connection, [
                CallStarted(call_id, call_id, "PJSIP/carrier-1", "0812", "", "112", arrived),
                QueueJoined(call_id, "fire", 1, arrived + timedelta(seconds=5)),
                OperatorAnswered(call_id, "fire", A, 3, 1, arrived + timedelta(seconds=8))])
            leg_id = await LegRepository().open(
                connection, kind=LegKind.CONFERENCE, call_id=call_id, incident_id=None,
                operator=A, actor="sari", number="0275321113", target="")
            if call_id == left_call:
                await TransferStore().add_step(connection, leg_id, Step.LEAVE, "sari",
                                               arrived + timedelta(seconds=40))
    finally:
        await connection.close()
    picture = await day.reports.live_picture()
    assert [(t.operator, t.call_id, t.at) for t in picture.left] == [
        (A, left_call, local(16, 23, 40))]
    assert on_call in {t.call_id for t in picture.talking}
    assert left_call not in {t.call_id for t in picture.talking}


async def test_the_live_picture_has_the_second_operator_of_a_call_talking_not_the_first(
        day: Day) -> None:
    """A answered and blind-transferred to an agency that did not answer; the caller queued
    again and B answers and talks: after a restart the board has B on the call (an operator
    out of every queue is listed from this alone), not A, whose part ended."""
    call_id, arrived = "1741599300.13", local(16, 25)
    connection = await asyncpg.connect(day.dsn)
    try:
        await CallRepository(CALENDAR).apply(connection, [
            CallStarted(call_id, call_id, "PJSIP/carrier-1", "0812", "", "112", arrived),
            QueueJoined(call_id, "fire", 1, arrived + timedelta(seconds=5)),
            OperatorAnswered(call_id, "fire", A, 3, 1, arrived + timedelta(seconds=8)),
            OperatorCompleted(call_id, "fire", A, 3, 20, "transfer",
                              arrived + timedelta(seconds=28)),
            QueueJoined(call_id, "fire", 1, arrived + timedelta(seconds=60)),
            OperatorAnswered(call_id, "fire", B, 10, 1, arrived + timedelta(seconds=70))])
    finally:
        await connection.close()
    picture = await day.reports.live_picture()
    assert [(t.operator, t.at) for t in picture.talking if t.call_id == call_id] == [
        (B, arrived + timedelta(seconds=70))]


async def budi_and_sari(connection: asyncpg.Connection, database: Database | None = None
                        ) -> None:
    """Operators Budi and Sari; with ``database``, at desks A and B with the medical skill."""
    for username in ("budi", "sari"):
        await AccountRepository().insert_account(connection, username, "", Role.OPERATOR, "x")
    if database is not None:
        await assign_desk(database, load_menu(), "budi", A, {"medical": 3})
        await assign_desk(database, load_menu(), "sari", B, {"medical": 3})


async def desks_in_rows(connection: asyncpg.Connection, *desks: tuple[str, str]) -> None:
    """Each (user name, desk) as the desks page puts it, written as rows: a database before
    an upgrade gives the line's role no grants to join a desk with."""
    for username, desk in desks:
        await connection.execute("INSERT INTO operators (operator) VALUES ($1)", desk)
        await connection.execute(
            "INSERT INTO account_operators (account_id, operator) SELECT account_id, $1"
            " FROM accounts WHERE username = $2", desk, username)


async def test_a_report_names_who_answered_then_and_takes_each_queues_wrapup(
        database_dsn: str, settings: Settings) -> None:
    """Budi and Sari swap desks at 10:00; an admin gave the fire queue a 30 s wrap-up, and
    60 s at 10:00. The morning's report gives each call to whoever worked at the phone when
    it rang or was answered, and each answered call its queue's wrap-up as it was then."""
    database = Database(replace(settings, database_dsn=database_dsn))
    calls = CallRepository(CALENDAR)
    queues = AdminSettingsRepository()
    defaults = QueueDefaults(wrapup_seconds=5, max_wait_seconds=300)
    spare = "PJSIP/op1003"
    connection = await asyncpg.connect(database_dsn)
    try:
        for username, name in (("budi", "Budi Santoso"), ("sari", "")):
            await AccountRepository().insert_account(connection, username, name,
                                                     Role.OPERATOR, "x")
        await queues.save_queue_settings(
            connection, replace(defaults.for_queue("fire"), wrapup_seconds=30), "admin")
        await assign_desk(database, load_menu(), "budi", A, {"medical": 3})
        await assign_desk(database, load_menu(), "sari", B, {"fire": 5})
        await calls.apply(connection, [
            *call("1741572000.1", local(8), wait=7, talk=120, rung=(A,)),
            *call("1741573800.2", local(8, 30), queue="fire", wait=15, operator=B,
                  rung=(A, B))])
        for username, desk in (("budi", spare), ("sari", A), ("budi", B)):
            await assign_desk(database, load_menu(), username, desk, {"medical": 3})
        await queues.save_queue_settings(
            connection, replace(defaults.for_queue("fire"), wrapup_seconds=60), "admin")
        await calls.apply(connection, [
            *call("1741579200.3", local(10), queue="fire", wait=4, talk=30, rung=(A,)),
            *call("1741581000.4", local(10, 30), abandon_after=20, rung=(B,))])
        reports = ReportService(database, CALENDAR, ReportConfig(wrapup_seconds=5),
                                clock=lambda: local(16, 30))
        report = await reports.shift_report(Period(DAY, DAY, "pagi"))
        operators = {op: (name, f.offered, f.answered, f.abandoned, f.mean_wrapup)
                     for op, name, f in report.operators}
        assert operators == {
            # Rung for 1 (answered, medical's 5 s), 2 at A and 4 at B (abandoned).
            "budi": ("Budi Santoso", 3, 1, 1, 5.0),
            # Answered 2 at B (fire's 30 s then) and 3 at A (fire's 60 s since).
            "sari": ("sari", 2, 2, 0, 45.0)}
        assert [(queue, f.answered, f.mean_wrapup) for queue, f in report.queues] == [
            ("fire", 2, 45.0), ("medical", 1, 5.0)]
    finally:
        await connection.close()
        await database.close()


async def test_an_upgrade_names_earlier_calls_by_the_desks_joins(
        pg_cluster: EmbeddedPostgres, settings: Settings) -> None:
    """Migration 0044 on calls recorded before it: a call's operator is the account whose
    desk.join at that phone came last before the answer (or, rung, the queue join); a phone
    with no desk.join logged stays unrecorded; a queue's wrap-up is the one set now."""
    owner = await create_database_before(pg_cluster, 44)
    database = Database(replace(settings, database_dsn=line_dsn(pg_cluster, owner)))
    connection = await asyncpg.connect(owner)
    try:
        await budi_and_sari(connection)
        await connection.executemany(
            "INSERT INTO audit_log (at, actor, action, object_type, object_id) "
            "VALUES ($1, $2, 'desk.join', 'desk', $3)",
            [(local(7, 5), "budi", A), (local(12), "sari", A), (local(7), "sari", "PJSIP/x")])
        await AdminSettingsRepository().save_queue_settings(connection, replace(
            QueueDefaults(5, 300).for_queue("fire"), wrapup_seconds=30), "admin")
        await CallRepository(CALENDAR).apply(connection, [
            *call("1741572000.1", local(8), wait=7, talk=60, rung=(A, B)),
            *call("1741575600.2", local(9), queue="fire", wait=5, operator=B, rung=(B,)),
            *call("1741590000.3", local(13), queue="fire", wait=5, talk=30, rung=(A,))])
        await upgrade_database(pg_cluster, owner)
        rows = await connection.fetch(
            "SELECT a.username, c.rung_operators, c.rung_accounts, c.wrapup_seconds "
            "FROM calls c LEFT JOIN accounts a ON a.account_id = c.answered_account "
            "ORDER BY c.call_id")
        budi, sari = [await connection.fetchval(
            "SELECT account_id FROM accounts WHERE username = $1", name)
            for name in ("budi", "sari")]
        assert [tuple(row) for row in rows] == [
            ("budi", [A, B], [budi, None], None),
            (None, [B], [None], 30),
            ("sari", [A], [sari], 30)]
        reports = ReportService(database, CALENDAR, ReportConfig(wrapup_seconds=5),
                                clock=lambda: local(16, 30))
        report = await reports.shift_report(Period(DAY, DAY))
        assert [(op, name, f.offered, f.answered) for op, name, f in report.operators] == [
            (B, UNRECORDED_OPERATOR, 2, 1), ("budi", "budi", 1, 1), ("sari", "sari", 1, 1)]
    finally:
        await connection.close()
        await database.close()
        await drop_database(pg_cluster, owner)


def handed_on(call_id: str, arrived: datetime) -> list[CallFact]:
    """A call A answered and blind-transferred to an agency that did not answer; A did not
    take the caller back, who queued again and B answered (the tracker's facts)."""
    joined = arrived + timedelta(seconds=5)
    transferred = joined + timedelta(seconds=25)  # A answered after 5 s, talked 20 s
    again = transferred + timedelta(seconds=40)  # the agency's ring, then A's phone's
    answered = again + timedelta(seconds=10)
    done = answered + timedelta(seconds=90)
    return [
        CallStarted(call_id, call_id, f"PJSIP/carrier-{call_id}", "081234567890", "", "112",
                    arrived),
        IvrVariableSet(call_id, "category", "emergency", arrived + timedelta(seconds=3)),
        QueueJoined(call_id, "medical", 1, joined),
        OperatorRung(call_id, "medical", A, joined + timedelta(seconds=1)),
        OperatorAnswered(call_id, "medical", A, 5, 1, joined + timedelta(seconds=5)),
        OperatorCompleted(call_id, "medical", A, 5, 20, "transfer", transferred),
        QueueJoined(call_id, "medical", 1, again),
        OperatorRung(call_id, "medical", B, again + timedelta(seconds=1)),
        OperatorAnswered(call_id, "medical", B, 10, 1, answered),
        OperatorCompleted(call_id, "medical", B, 10, 90, "caller", done),
        CallEnded(call_id, 16, "Normal Clearing", done),
    ]


async def test_a_call_two_operators_answered_credits_each_with_their_own_part(
        database_dsn: str, settings: Settings) -> None:
    """Budi answers, blind-transfers to an agency that does not answer, does not take the
    caller back; the caller queues again and Sari answers and talks. Each is credited with
    an answer and their own talk and wrap-up (Budi's wrap-up pause after his part, Sari's
    automatic); the shift counts the call once, its talk both talks. Another call Budi
    talks on with after a transfer came back is his alone, its talk all of his."""
    database = Database(replace(settings, database_dsn=database_dsn))
    connection = await asyncpg.connect(database_dsn)
    try:
        await budi_and_sari(connection, database)
        first = handed_on("1741572000.1", local(8))
        back = local(9)  # answered at 9:00:10, transferred at 9:00:20, talked again to 9:01
        await CallRepository(CALENDAR).apply(connection, [
            *first, *pause(A, local(8, 0, 40), True, "wrapup"),
            *pause(A, local(8, 1, 20), False),
            *call("1741575600.2", back, wait=5, talk=10, end=False)[:-1],
            OperatorCompleted("1741575600.2", "medical", A, 5, 10, "transfer",
                              back + timedelta(seconds=20)),
            # The tracker's completion again, the talk after the caller came back added.
            OperatorCompleted("1741575600.2", "medical", A, 5, 50, "transfer",
                              back + timedelta(seconds=60)),
            CallEnded("1741575600.2", 16, "Normal Clearing", back + timedelta(seconds=60))])
        # Pagi running (computed from its calls), then over (from its rollup).
        for now in (local(14, 59), local(18)):
            reports = ReportService(database, CALENDAR, ReportConfig(wrapup_seconds=5),
                                    clock=lambda now=now: now)  # type: ignore[misc]
            report = await reports.shift_report(Period(DAY, DAY, "pagi"))
            operators = {op: (f.offered, f.answered, f.mean_talk, f.mean_wrapup)
                         for op, _, f in report.operators}
            assert operators == {"budi": (2, 2, 35.0, 27.5),  # talks 20, 50; wraps 50, 5
                                 "sari": (1, 1, 90.0, 5.0)}
            # Once per call; the talk of the first both operators' (110 s), of the second
            # 50 s; a wrap-up after each operator's part (50, 5 and 5).
            assert (report.total.calls, report.total.answered, report.total.mean_talk,
                    report.total.mean_wrapup) == (2, 2, 80.0, 20.0)
            assert [(q, f.answered, f.mean_talk) for q, f in report.queues] == [
                ("medical", 2, 80.0)]
        assert await connection.fetchval("SELECT count(*) FROM report_rollups"
                                         " WHERE kind = 'answer'") == 2
        summary = await reports.daily_summary(DAY)
        assert (summary.figures.answered, summary.figures.mean_talk) == (2, 80.0)
    finally:
        await connection.close()
        await database.close()


async def sari_leaves_a_three_way_call(connection: asyncpg.Connection, call_id: str,
                                       at: datetime) -> None:
    """Sari (B) takes an agency into a three-way call on ``call_id`` and leaves it at
    ``at`` ("Keluar")."""
    leg_id = await LegRepository().open(
        connection, kind=LegKind.CONFERENCE, call_id=call_id, incident_id=None, operator=B,
        actor="sari", number="0275321113", target="")
    await TransferStore().add_step(connection, leg_id, Step.LEAVE, "sari", at)


async def assert_sari_ended_her_part_at_the_leave(database: Database) -> None:
    """The call of :func:`handed_on` at 8:00 Sari left 30.4 s after answering it, her
    wrap-up pause from 8:01:52 to 8:02:30.4: her talk is 30 s, her wrap-up 40 s from the
    leave (not the automatic 5 s from the call's end, her pause long over by then); the
    call's talk Budi's 20 s and her 30 s."""
    for now in (local(14, 59), local(18)):  # computed from the calls, then from the rollup
        reports = ReportService(database, CALENDAR, ReportConfig(wrapup_seconds=5),
                                clock=lambda now=now: now)  # type: ignore[misc]
        report = await reports.shift_report(Period(DAY, DAY, "pagi"))
        assert {op: (f.answered, f.mean_talk, f.mean_wrapup)
                for op, _, f in report.operators} == {"budi": (1, 20.0, 5.0),
                                                      "sari": (1, 30.0, 40.0)}
        assert (report.total.answered, report.total.mean_talk) == (1, 50.0)


@pytest.mark.parametrize("leave_first", [True, False])
async def test_the_second_operator_who_leaves_a_three_way_call_ends_their_part_there(
        database_dsn: str, settings: Settings, leave_first: bool) -> None:
    """Migration 0052: a call two operators answered reads each one's part from
    call_answers; the second, who left a three-way call with an agency, was credited with
    Asterisk's whole talk to the call's end (the caller's with the agency too), and a
    wrap-up from that end. Whichever of the leave and the completion is recorded first."""
    database = Database(replace(settings, database_dsn=database_dsn))
    connection = await asyncpg.connect(database_dsn)
    try:
        await budi_and_sari(connection, database)
        facts = handed_on("1741572000.1", local(8))
        store = CallRepository(CALENDAR)
        left = local(8, 1, 50) + timedelta(seconds=0.4)
        await store.apply(connection, [*facts[:-2], *pause(B, local(8, 1, 52), True, "wrapup"),
                                       *pause(B, local(8, 2, 30) + timedelta(seconds=0.4),
                                              False)])
        if leave_first:
            await sari_leaves_a_three_way_call(connection, "1741572000.1", left)
            await store.apply(connection, facts[-2:])
        else:
            await store.apply(connection, facts[-2:])
            await sari_leaves_a_three_way_call(connection, "1741572000.1", left)
        await assert_sari_ended_her_part_at_the_leave(database)
    finally:
        await connection.close()
        await database.close()


async def test_an_upgrade_ends_the_part_of_an_operator_who_left_before_it(
        pg_cluster: EmbeddedPostgres, settings: Settings) -> None:
    """Migration 0052 on a call recorded before it: the second operator's part ends at
    their leave."""
    owner = await create_database_before(pg_cluster, 52)
    database = Database(replace(settings, database_dsn=line_dsn(pg_cluster, owner)))
    connection = await asyncpg.connect(owner)
    try:
        await budi_and_sari(connection)
        await desks_in_rows(connection, ("budi", A), ("sari", B))
        await CallRepository(CALENDAR).apply(connection, [
            *handed_on("1741572000.1", local(8)), *pause(B, local(8, 1, 52), True, "wrapup"),
            *pause(B, local(8, 2, 30) + timedelta(seconds=0.4), False)])
        await sari_leaves_a_three_way_call(connection, "1741572000.1",
                                           local(8, 1, 50) + timedelta(seconds=0.4))
        assert await connection.fetchval(
            "SELECT talk_seconds FROM call_answers WHERE operator = $1", B) == 90
        await upgrade_database(pg_cluster, owner)
        await assert_sari_ended_her_part_at_the_leave(database)
    finally:
        await connection.close()
        await database.close()
        await drop_database(pg_cluster, owner)


async def test_an_upgrade_credits_each_operator_of_earlier_calls_with_their_part(
        pg_cluster: EmbeddedPostgres, settings: Settings) -> None:
    """Migration 0051 on a call two operators answered before it: each operator's part is
    derived from the answer facts kept; the first operator's account is the call's own
    copy (0044), the second's the account whose desk.join at that phone came last before
    their answer."""
    owner = await create_database_before(pg_cluster, 51)
    database = Database(replace(settings, database_dsn=line_dsn(pg_cluster, owner)))
    connection = await asyncpg.connect(owner)
    try:
        await budi_and_sari(connection)
        # Budi at A as the desks page puts him (the line's role has no grants before the
        # upgrade); Sari's join at B only in the audit log.
        await desks_in_rows(connection, ("budi", A))
        await connection.execute(
            "INSERT INTO audit_log (at, actor, action, object_type, object_id) "
            "VALUES ($1, 'sari', 'desk.join', 'desk', $2)", local(7), B)
        await CallRepository(CALENDAR).apply(connection, [
            *handed_on("1741572000.1", local(8)),
            *call("1741575600.2", local(9), wait=3, talk=30)])  # his alone, as before
        await upgrade_database(pg_cluster, owner)
        reports = ReportService(database, CALENDAR, ReportConfig(wrapup_seconds=5),
                                clock=lambda: local(16, 30))
        report = await reports.shift_report(Period(DAY, DAY))
        # B rang with nobody recorded at it then (0044's copy, taken when it rang).
        assert [(op, f.offered, f.answered, f.mean_talk) for op, _, f in report.operators] == [
            (B, 1, 0, None), ("budi", 2, 2, 25.0), ("sari", 1, 1, 90.0)]
        assert (report.total.answered, report.total.mean_talk) == (2, 70.0)
        # Only the call two operators answered was replayed (the other reads its own row).
        assert await connection.fetchval("SELECT count(DISTINCT call_id) FROM call_answers"
                                         ) == 1
    finally:
        await connection.close()
        await database.close()
        await drop_database(pg_cluster, owner)


async def test_each_operators_part_follows_the_answer_facts(database_dsn: str) -> None:
    """call_answers (0051) from the facts as the call store records them: a completion the
    tracker restates replaces the talk; an operator answering the call again from the queues
    adds a talk; a fact recorded again changes nothing; an answer whose completion never
    came is an answer with no talk; a completion alone gives its answer's instant."""
    call_id, at = "1741572000.1", local(8)
    answered, again = at + timedelta(seconds=10), at + timedelta(seconds=90)
    facts: list[CallFact] = [
        CallStarted(call_id, call_id, "PJSIP/carrier-1", "081234567890", "", "112", at),
        QueueJoined(call_id, "medical", 1, at + timedelta(seconds=5)),
        OperatorAnswered(call_id, "medical", A, 5, 1, answered),
        OperatorCompleted(call_id, "medical", A, 5, 20, "transfer",
                          answered + timedelta(seconds=20)),
        OperatorCompleted(call_id, "medical", A, 5, 45, "transfer",
                          answered + timedelta(seconds=50)),
        QueueJoined(call_id, "medical", 1, again - timedelta(seconds=5)),
        OperatorAnswered(call_id, "medical", A, 5, 1, again),
        OperatorCompleted(call_id, "medical", A, 5, 20, "transfer",
                          again + timedelta(seconds=20)),
        QueueJoined(call_id, "medical", 1, again + timedelta(seconds=25)),
        OperatorAnswered(call_id, "fire", B, 30, 1, again + timedelta(seconds=30)),
        CallEnded(call_id, 16, "Normal Clearing", again + timedelta(seconds=60)),
        # A call first seen through its completion (the listener restarted meanwhile).
        OperatorCompleted("1741572600.2", "medical", B, 5, 30, "caller", local(8, 11)),
    ]
    connection = await asyncpg.connect(database_dsn)
    try:
        calls = CallRepository(CALENDAR)
        await calls.apply(connection, facts)
        await calls.apply(connection, facts[3:5])  # recorded again: nothing changes
        rows = await connection.fetch(
            "SELECT call_id, operator, queue, answered_at, completed_at, talk_seconds,"
            " talk_before FROM call_answers ORDER BY call_id, operator")
        assert [tuple(row) for row in rows] == [
            (call_id, A, "medical", answered, again + timedelta(seconds=20), 20, 45),
            (call_id, B, "fire", again + timedelta(seconds=30), None, None, 0),
            ("1741572600.2", B, "medical", local(8, 10, 30), local(8, 11), 30, 0)]
        assert await connection.fetchval(
            "SELECT array_agg(call_id ORDER BY call_id) FROM calls WHERE answers_shared"
        ) == [call_id]
    finally:
        await connection.close()



async def assert_cut_where_media_stopped(connection: asyncpg.Connection,
                                         database: Database) -> None:
    """The calls of :func:`dead_phone_calls` at 8:00, Budi's desk phone A and Sari's
    browser B: each dead phone's talk ends its rtp_timeout before Asterisk's completion, in
    the rows and the reports (computed from the calls, then from the rollup)."""
    rows = {r["call_id"]: (r["completed_at"], r["talk_seconds"]) for r in
            await connection.fetch("SELECT call_id, completed_at, talk_seconds FROM calls")}
    assert rows == {"1741572000.1": (local(8, 0, 50), 40),
                    "1741575600.2": (local(9, 2, 20), 60)}
    parts = {(r["call_id"], r["operator"]): (r["completed_at"], r["talk_seconds"])
             for r in await connection.fetch(
                 "SELECT call_id, operator, completed_at, talk_seconds FROM call_answers")}
    assert parts[("1741575600.2", A)] == (local(9, 0, 30), 20)  # handed on: kept
    assert parts[("1741575600.2", B)] == (local(9, 2, 20), 60)
    for now in (local(14, 59), local(18)):
        reports = ReportService(database, CALENDAR, ReportConfig(wrapup_seconds=5),
                                clock=lambda now=now: now)  # type: ignore[misc]
        report = await reports.shift_report(Period(DAY, DAY, "pagi"))
        # Talks 40 and 20 + 60; Budi's 40 and 20, Sari's 60.
        assert (report.total.answered, report.total.mean_talk) == (2, 60.0)
        assert {op: (f.answered, f.mean_talk) for op, _, f in report.operators} == {
            "budi": (2, 30.0), "sari": (1, 60.0)}


@pytest.mark.parametrize("hangup_first", [False, True])
async def test_the_talk_of_a_phone_that_died_ends_where_its_media_stopped(
        database_dsn: str, settings: Settings, hangup_first: bool) -> None:
    """Migration 0055: Asterisk counts a dead phone's talk up to its hang-up for silence;
    the rows, and so the reports, end it that phone's rtp_timeout earlier, once, whichever
    of the completion and the hang-up is recorded first, and a replay changes nothing."""
    database = Database(replace(settings, database_dsn=database_dsn))
    connection = await asyncpg.connect(database_dsn)
    try:
        await budi_and_sari(connection, database)
        await browser_phone(connection, B)
        talked, ends = dead_phone_calls(local(8), A, B)
        store = CallRepository(CALENDAR)
        for batch in ([ends, talked] if hangup_first else [talked, ends]):
            await store.apply(connection, batch)
        await assert_cut_where_media_stopped(connection, database)
        await store.apply(connection, [*talked, *ends])  # replayed: changes nothing
        await assert_cut_where_media_stopped(connection, database)
    finally:
        await connection.close()
        await database.close()


async def test_an_upgrade_ends_the_talk_of_earlier_dead_phones_where_their_media_stopped(
        pg_cluster: EmbeddedPostgres, settings: Settings) -> None:
    """Migration 0055 on calls recorded before it: cut once, the reports with them."""
    owner = await create_database_before(pg_cluster, 55)
    database = Database(replace(settings, database_dsn=line_dsn(pg_cluster, owner)))
    connection = await asyncpg.connect(owner)
    try:
        await budi_and_sari(connection)
        await desks_in_rows(connection, ("budi", A), ("sari", B))
        await browser_phone(connection, B)
        talked, ends = dead_phone_calls(local(8), A, B)
        await CallRepository(CALENDAR).apply(connection, [*talked, *ends])
        assert await connection.fetchval(
            "SELECT sum(talk_seconds) FROM calls") == 190  # 100 + 90: the dead air counted
        await upgrade_database(pg_cluster, owner)
        await assert_cut_where_media_stopped(connection, database)
    finally:
        await connection.close()
        await database.close()
        await drop_database(pg_cluster, owner)
