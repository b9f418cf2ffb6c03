"""Report maths: percentiles, service-level edges, wrap-up, per-operator counting, shift and
day boundaries, and the CSV spreadsheets open."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from telephony.calls.shifts import ShiftCalendar, ShiftSlot
from telephony.desks.phones import RtpTimeouts
from telephony.reports.csvexport import BOM, FIGURE_HEADERS, report_csv, text_cell
from telephony.reports.model import (
    Answer,
    CallRow,
    CategoryCount,
    InvalidPeriod,
    Period,
    PhoneTimeouts,
    StateChange,
    check_period,
    daily_summary,
    day_bounds,
    day_figures,
    figures,
    media_stopped,
    operator_figures,
    p90,
    period_end,
    period_figures,
    service_level,
    shift_report,
    shift_slots,
    wrapup_seconds,
)
from telephony.screening.features import Label
from telephony.settings import DEFAULT_SHIFTS

JAKARTA = ZoneInfo("Asia/Jakarta")
CALENDAR = ShiftCalendar(DEFAULT_SHIFTS, "Asia/Jakarta")
T0 = datetime(2025, 3, 10, 9, 0, tzinfo=JAKARTA)
OP1 = "PJSIP/op1001"
NOW = T0 + timedelta(hours=1)
DAY = date(2025, 3, 10)
DAY_ENDS = datetime(2025, 3, 11, 7, 0, tzinfo=JAKARTA)


def row(call_id: str, *, wait: float | None = None, disposition: str = "answered",
        queue: str | None = "medical", operator: str | None = "PJSIP/op1001",
        talk: int | None = 60, label: Label | None = None, joined: datetime = T0,
        rung: frozenset[str] = frozenset(), hold: int | None = None,
        ended: bool = True) -> CallRow:
    answered_at = joined + timedelta(seconds=wait) if wait is not None else None
    answered = disposition == "answered"
    return CallRow(
        call_id=call_id, line="112", shift_day=DAY, shift_name="pagi", category="emergency",
        queue=queue, joined_at=joined if queue else None,
        answered_at=answered_at if answered else None,
        operator=operator if answered else None, desk=operator if answered else None,
        hold_seconds=hold,
        talk_seconds=talk if answered else None,
        completed_at=answered_at + timedelta(seconds=talk or 0)
        if answered and answered_at else None,
        ended_at=joined + timedelta(minutes=5) if ended else None,
        disposition=disposition, label=label, rung=rung)


# -- p90 and means -------------------------------------------------------------------------


def test_p90_is_a_value_that_was_observed_by_nearest_rank() -> None:
    assert p90([]) is None
    assert p90([7.0]) == 7.0
    assert p90([float(v) for v in range(1, 11)]) == 9.0  # ceil(9.0) = 9th of 10
    assert p90([float(v) for v in range(1, 12)]) == 10.0  # ceil(9.9) = 10th of 11
    assert p90([float(v) for v in range(100, 0, -1)]) == 90.0  # order does not matter
    assert p90([3.0, 3.0, 3.0, 50.0]) == 50.0  # ceil(3.6) = 4th of 4


def test_waits_run_from_the_first_join_to_the_answer_and_fall_back_to_hold_time() -> None:
    assert row("a", wait=12.5).wait_seconds == 12.5
    no_join = replace(row("b", wait=3), joined_at=None, hold_seconds=4)
    assert no_join.wait_seconds == 4.0
    assert replace(no_join, hold_seconds=None).wait_seconds is None
    assert row("c", disposition="abandoned").wait_seconds is None


# -- service level -------------------------------------------------------------------------


def test_service_level_counts_an_answer_at_exactly_the_threshold() -> None:
    rows = [row("a", wait=10.0), row("b", wait=10.001), row("c", wait=20.0), row("d", wait=0)]
    assert service_level(rows, 10, NOW).percent == 50.0
    assert service_level(rows, 20, NOW).percent == 100.0


def test_service_level_counts_abandons_and_long_waiters_against_it() -> None:
    joined_recently = NOW - timedelta(seconds=5)
    joined_long_ago = NOW - timedelta(seconds=15)
    rows = [
        row("answered", wait=3),
        row("abandoned", disposition="abandoned"),
        row("vanished", disposition="vanished"),
        # Still waiting: not yet known at 10 s, already a miss at 10 s after 15 s.
        row("fresh", disposition="in_progress", joined=joined_recently, ended=False),
        row("long", disposition="in_progress", joined=joined_long_ago, ended=False),
        row("ivr", queue=None, disposition="ended_in_ivr"),  # never offered
    ]
    ten = service_level(rows, 10, NOW)
    assert (ten.numerator, ten.denominator) == (1, 4)
    twenty = service_level(rows, 20, NOW)
    assert (twenty.numerator, twenty.denominator) == (1, 3)


def test_service_level_of_nothing_is_unknown_not_zero() -> None:
    assert service_level([], 10, NOW).percent is None
    unknown = replace(row("a", wait=3), joined_at=None, hold_seconds=None)
    assert service_level([unknown], 10, NOW).denominator == 0


# -- figures -------------------------------------------------------------------------------


def test_figures_of_a_group() -> None:
    rows = [
        row("a", wait=4, talk=100, label=Label.GENUINE),
        row("b", wait=8, talk=50, label=Label.PRANK),
        row("c", wait=30, talk=30, label=Label.SILENT),
        row("d", disposition="abandoned", label=Label.ACCIDENTAL),
        row("e", queue=None, disposition="ended_in_ivr", label=Label.PRANK),
        row("f", queue=None, disposition="ended_in_ivr"),
    ]
    f = figures(rows, NOW, {("a", OP1): 5.0, ("b", OP1): 15.0})
    assert (f.calls, f.offered, f.answered, f.abandoned) == (6, 4, 3, 1)
    assert f.mean_wait == pytest.approx(14.0)
    assert f.p90_wait == 30.0
    assert f.mean_talk == pytest.approx(60.0)
    assert f.mean_wrapup == pytest.approx(10.0)  # only the calls with a measured wrap-up
    assert f.service_levels[10].percent == 50.0  # a, b of a, b, c, d
    assert f.service_levels[20].percent == 50.0
    assert (f.labelled, f.nuisance) == (5, 3)
    assert f.prank_share.percent == 60.0
    assert figures(rows, NOW).mean_wrapup is None
    empty = figures([], NOW)
    assert (empty.mean_wait, empty.p90_wait, empty.prank_share.percent) == (None, None, None)


def test_operators_are_offered_every_call_that_rang_them() -> None:
    a, b = "PJSIP/op1001", "PJSIP/op1002"
    rows = [
        row("1", wait=5, operator=a, rung=frozenset({a, b})),  # rang both, a answered
        row("2", wait=12, operator=b, rung=frozenset({b})),
        row("3", disposition="abandoned", rung=frozenset({a})),  # rang a, caller gave up
        row("4", wait=2, operator=a, rung=frozenset()),  # answer seen, ring was not
    ]
    per = operator_figures(rows, NOW, {("1", a): 7.0, ("4", a): 9.0, ("2", b): 5.0})
    assert (per[a].offered, per[a].answered, per[a].abandoned) == (3, 2, 1)
    assert (per[b].offered, per[b].answered, per[b].abandoned) == (2, 1, 0)
    assert per[a].mean_wait == pytest.approx(3.5)
    assert per[a].mean_wrapup == pytest.approx(8.0)
    assert per[b].mean_wait == pytest.approx(12.0)


def test_a_call_two_operators_answered_is_each_ones_with_their_own_talk() -> None:
    """Operator a answered, blind-transferred; nobody took the transfer, the caller queued
    again and b answered: each answered it, with their own talk and wrap-up; the shift
    counts the call once, its talk both talks."""
    a, b = "#1", "#2"
    shared = replace(row("1", wait=5, operator=a, rung=frozenset({a, b})), answers=(
        Answer(a, "PJSIP/op1001", 20, T0 + timedelta(seconds=25)),
        Answer(b, "PJSIP/op1002", 90, T0 + timedelta(seconds=150))))
    alone = row("2", wait=3, operator=a, talk=40)
    wraps = {("1", "PJSIP/op1001"): 4.0, ("1", "PJSIP/op1002"): 8.0, ("2", a): 6.0}
    per = operator_figures([shared, alone], NOW, wraps)
    assert (per[a].offered, per[a].answered) == (2, 2)
    assert (per[b].offered, per[b].answered) == (1, 1)
    assert per[a].mean_talk == pytest.approx(30.0)  # 20 and 40
    assert per[b].mean_talk == pytest.approx(90.0)
    assert per[b].mean_wrapup == pytest.approx(8.0)
    assert per[a].mean_wrapup == pytest.approx(5.0)  # 4 and 6
    total = figures([shared, alone], NOW, wraps)
    assert (total.calls, total.answered) == (2, 2)
    assert total.mean_talk == pytest.approx(75.0)  # (20 + 90 + 40) / 2 calls
    assert total.mean_wrapup == pytest.approx(6.0)  # per part: 4, 8 and 6


# -- wrap-up -------------------------------------------------------------------------------

OP = "PJSIP/op1001"


def change(seconds: float, paused: bool, reason: str = "") -> StateChange:
    return StateChange(OP, T0 + timedelta(seconds=seconds), paused, reason)


def test_wrapup_is_the_automatic_time_without_a_wrapup_pause() -> None:
    assert wrapup_seconds(T0, [], 5) == 5
    assert wrapup_seconds(T0, [change(1, False), change(20, True, "break"),
                               change(80, False)], 5) == 5


def test_a_wrapup_pause_soon_after_the_call_lasts_until_it_ends() -> None:
    changes = [change(0.5, False), change(3, True, "wrapup"), change(95, False)]
    assert wrapup_seconds(T0, changes, 5) == 95
    # Shorter than the automatic wrap-up: Asterisk still held the calls back that long.
    assert wrapup_seconds(T0, [change(1, True, "wrapup"), change(2, False)], 5) == 5


def test_a_wrapup_pause_past_the_grace_or_still_running_adds_nothing() -> None:
    assert wrapup_seconds(T0, [change(61, True, "wrapup"), change(200, False)], 5) == 5
    assert wrapup_seconds(T0, [change(2, True, "wrapup")], 5) == 5
    # Switching straight to a break ends the wrap-up.
    assert wrapup_seconds(T0, [change(2, True, "wrapup"), change(40, True, "break"),
                               change(300, False)], 5) == 40


# -- periods and shift boundaries ----------------------------------------------------------


def test_a_period_lists_every_shift_in_time_order() -> None:
    slots = shift_slots(CALENDAR, Period(DAY, DAY + timedelta(days=1)))
    assert slots == [ShiftSlot(DAY, "pagi"), ShiftSlot(DAY, "siang"), ShiftSlot(DAY, "malam"),
                     ShiftSlot(DAY + timedelta(days=1), "pagi"),
                     ShiftSlot(DAY + timedelta(days=1), "siang"),
                     ShiftSlot(DAY + timedelta(days=1), "malam")]
    assert shift_slots(CALENDAR, Period(DAY, DAY, "malam")) == [ShiftSlot(DAY, "malam")]


def test_the_operational_day_runs_from_the_first_shift_to_the_next_days() -> None:
    start, end = day_bounds(CALENDAR, DAY)
    assert start == datetime(2025, 3, 10, 7, 0, tzinfo=JAKARTA)
    assert end == datetime(2025, 3, 11, 7, 0, tzinfo=JAKARTA)
    # The night shift's last second belongs to the day it started on; 07:00 starts the next.
    assert CALENDAR.slot_for(end - timedelta(seconds=1)) == ShiftSlot(DAY, "malam")
    assert CALENDAR.slot_for(end) == ShiftSlot(DAY + timedelta(days=1), "pagi")
    assert CALENDAR.slot_for(start.astimezone(UTC)) == ShiftSlot(DAY, "pagi")


def test_a_period_ends_when_its_last_shift_does() -> None:
    """A report generated before that is of shifts still running (or not begun): at 00:30
    WITA "today" (the operational day that began at 07:00) still has its night to come."""
    wita = ShiftCalendar(DEFAULT_SHIFTS, "Asia/Makassar")
    makassar = ZoneInfo("Asia/Makassar")
    assert period_end(wita, Period(DAY, DAY)) == datetime(2025, 3, 11, 7, tzinfo=makassar)
    assert period_end(wita, Period(DAY - timedelta(days=2), DAY, "siang")) == datetime(
        2025, 3, 10, 23, tzinfo=makassar)
    report = shift_report(Period(DAY, DAY), shift_slots(wita, Period(DAY, DAY)),
                          period_figures([], NOW, {}), names={},
                          now=datetime(2025, 3, 11, 0, 30, tzinfo=makassar),
                          ends_at=period_end(wita, Period(DAY, DAY)))
    assert not report.complete
    assert replace(report, generated_at=period_end(wita, Period(DAY, DAY))).complete


def test_periods_that_cannot_be_reported_are_refused() -> None:
    names = CALENDAR.names
    assert check_period(Period(DAY, DAY), names) == Period(DAY, DAY)
    with pytest.raises(InvalidPeriod) as backwards:
        check_period(Period(DAY, DAY - timedelta(days=1)), names)
    assert backwards.value.field == "to"
    with pytest.raises(InvalidPeriod):
        check_period(Period(DAY, DAY + timedelta(days=31)), names)
    check_period(Period(DAY, DAY + timedelta(days=30)), names)
    with pytest.raises(InvalidPeriod) as shift:
        check_period(Period(DAY, DAY, "subuh"), names)
    assert shift.value.field == "shift"


def test_a_report_has_every_shift_of_its_period_and_groups_by_first_queue() -> None:
    rows = [row("a", wait=4), row("b", wait=9, queue="fire"),
            replace(row("c", wait=2), shift_name="siang")]
    report = shift_report(Period(DAY, DAY), shift_slots(CALENDAR, Period(DAY, DAY)),
                          period_figures(rows, NOW, {}), names={"PJSIP/op1001": "Sari"}, now=NOW,
                          ends_at=DAY_ENDS)
    assert [(slot.name, f.calls) for slot, f in report.shifts] == [
        ("pagi", 2), ("siang", 1), ("malam", 0)]
    assert [(queue, f.offered) for queue, f in report.queues] == [("fire", 1), ("medical", 2)]
    assert report.operators[0][:2] == ("PJSIP/op1001", "Sari")
    assert report.total.answered == 3


def test_the_daily_summary_counts_categories_lines_labels_and_ratings() -> None:
    rows = [row("a", wait=4, label=Label.GENUINE), row("b", wait=3, label=Label.PRANK),
            replace(row("c", queue=None, disposition="ended_in_ivr"), category=None,
                    line="119")]
    summary = daily_summary(DAY, day_figures(rows, NOW),
                            report_types=[CategoryCount("fire", 2, 1)],
                            villages=[], ratings={5: 2, 3: 1}, now=NOW, ends_at=DAY_ENDS)
    assert [(c.code, c.calls) for c in summary.categories] == [("emergency", 2), (None, 1)]
    assert summary.lines == {"112": 2, "119": 1}
    assert summary.labels["genuine"] == 1 and summary.labels["prank"] == 1
    assert summary.labels[""] == 1
    assert summary.ratings.counts == {1: 0, 2: 0, 3: 1, 4: 0, 5: 2}
    assert summary.ratings.mean == pytest.approx(13 / 3)


# -- CSV -----------------------------------------------------------------------------------


def parse(text: str) -> list[list[str]]:
    assert text.startswith(BOM)
    assert "\r\n" in text
    return list(csv.reader(io.StringIO(text[len(BOM):]), delimiter=";"))


def test_csv_escapes_separators_quotes_line_breaks_and_formulas() -> None:
    hostile = 'Op; "Budi"\nbaris=2'
    rows = [row("a", wait=4.5, operator="=HYPERLINK(\"x\")"), row("b", wait=6)]
    report = shift_report(Period(DAY, DAY), shift_slots(CALENDAR, Period(DAY, DAY)),
                          period_figures(rows, NOW, {}),
                          names={"=HYPERLINK(\"x\")": hostile}, now=NOW, ends_at=DAY_ENDS)
    text = report_csv(report, "operators")
    table = parse(text)
    assert table[0] == ["Operator", "Nama", *FIGURE_HEADERS]
    by_op = {line[0]: line for line in table[1:]}
    formula = by_op["'=HYPERLINK(\"x\")"]
    assert formula[1] == hostile  # quoted, doubled quotes, kept whole
    assert formula[4] == "1"  # answered
    assert formula[6] == "4,5"  # mean wait, decimal comma
    assert table[-1][0] == "Jumlah"
    assert table[-1][4] == "2"
    assert all(len(line) == len(table[0]) for line in table)


def test_text_cells_that_look_like_formulas_are_defused() -> None:
    for value in ("=1+1", "+62812", "-5", "@SUM(A1)", "\tx"):
        assert text_cell(value) == "'" + value
    assert text_cell("PJSIP/op1001") == "PJSIP/op1001"


def test_every_table_has_a_header_rows_and_a_total() -> None:
    report = shift_report(Period(DAY, DAY), shift_slots(CALENDAR, Period(DAY, DAY)),
                          period_figures([row("a", wait=4)], NOW, {("a", OP1): 12.0}), names={},
                          now=NOW, ends_at=DAY_ENDS)
    shifts = parse(report_csv(report, "shifts"))
    assert shifts[0][:2] == ["Tanggal", "Sif"]
    assert [line[1] for line in shifts[1:]] == ["pagi", "siang", "malam", ""]
    assert shifts[1][FIGURE_HEADERS.index("Rata-rata penyelesaian (detik)") + 2] == "12,0"
    queues = parse(report_csv(report, "queues"))
    assert queues[0][0] == "Antrean" and queues[1][0] == "medical"
    with pytest.raises(ValueError, match="no such report table"):
        report_csv(report, "calls")


def test_a_dead_phones_talk_ends_its_rtp_timeout_before_the_hang_up_not_before_it_began(
        ) -> None:
    """Migration 0055's rule: the completion less the phone's rtp_timeout; a talk shorter
    than the timeout ends where it began (the answer, or the completion less its talk when
    the row keeps an earlier answer), with no talk."""
    answered = datetime(2025, 3, 10, 1, tzinfo=UTC)
    done = answered + timedelta(seconds=100)
    assert media_stopped(100, answered, done, 60) == (answered + timedelta(seconds=40), 40)
    assert media_stopped(100, None, done, 30) == (answered + timedelta(seconds=70), 70)
    assert media_stopped(100, answered, done, 600) == (answered, 0)
    # A call row's first answer, an hour before the last completion's 20 s talk.
    assert media_stopped(20, answered - timedelta(hours=1), done, 60) == (
        done - timedelta(seconds=20), 0)
    # Asterisk's whole seconds against a microsecond answer: the talk up to the cut rounds
    # as PostgreSQL rounds it.
    assert media_stopped(31, answered, done + timedelta(seconds=0.5), 30)[1] == 1
    timeouts = PhoneTimeouts(frozenset({"PJSIP/op1002"}), RtpTimeouts(20, 90, 600))
    assert (timeouts.of("PJSIP/op1002"), timeouts.of("PJSIP/op1001")) == (20, 90)
    assert PhoneTimeouts(frozenset({"PJSIP/op1002"})).of("PJSIP/op1002") is None
