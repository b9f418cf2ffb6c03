"""Asterisk's queue_log, read back (telephony/asterisk/queue_log.py, queue_log_file.py), and the
pure rules that rebuild the calls the line missed from it (telephony/calls/backfill.py)."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from telephony.ami.tracker import CallTracker
from telephony.asterisk.causes import cause_text
from telephony.asterisk.queue_log import (
    BACK_STATES,
    LEG_STATES,
    MAX_LOGGED,
    Chunk,
    Cursor,
    QueueLogEntry,
    QueueLogLineError,
    parse_chunk,
    parse_line,
)
from telephony.asterisk.queue_log_file import read_since
from telephony.calls.backfill import (
    LegRecorded,
    Recorded,
    arrival_of,
    back_facts,
    caller_channels,
    fact_slot,
    leg_facts,
    member_interfaces,
    plan_backfill,
    settled_calls,
    settled_cursor,
    unsettled_backs,
)
from telephony.calls.facts import (
    CallBackfilled,
    CallEnded,
    CallStarted,
    CallVanished,
    IvrVariablesSet,
    LegProgressed,
    OperatorAnswered,
    OperatorCompleted,
    OperatorRung,
    QueueAbandoned,
    QueueJoined,
    QueueLeft,
)
from telephony.calls.legs import LegState

UID = "1796449111.57"
NOW = datetime.fromtimestamp(1796449200, UTC)


def at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


# A caller answered, as Asterisk 22 wrote it in the lab (with our SIAGALINE at arrival).
ANSWERED = [
    f"1796449111|{UID}|NONE|NONE|SIAGALINE|119",
    f"1796449112|{UID}|information|NONE|ENTERQUEUE||+6281234567890|1",
    f"1796449113|{UID}|information|PJSIP/op1007|RINGNOANSWER|1000",
    f"1796449115|{UID}|information|PJSIP/op1008|CONNECT|3|1796449112.58|2",
    f"1796449119|{UID}|information|PJSIP/op1008|COMPLETECALLER|3|4|1",
]
# The same call with the dialplan's IVR outcome (as it queues) and hang-up cause (its
# hang-up handler, after app_queue's last line).
LOGGED_WHOLE = [ANSWERED[0], f"1796449112|{UID}|NONE|NONE|SIAGAIVR|chosen", *ANSWERED[1:],
                f"1796449119|{UID}|NONE|NONE|SIAGAEND|16"]
ABANDONED = [
    "1796449121|1796449120.60|medical|NONE|ENTERQUEUE||0812|2",
    "1796449130|1796449120.60|medical|NONE|ABANDON|1|2|9",
]


def entries(lines: list[str]) -> list[tuple[int, QueueLogEntry]]:
    data = ("\n".join(lines) + "\n").encode()
    chunk = Chunk([], Cursor(7, 0))
    parse_chunk(data, 0, 7, chunk)
    assert chunk.skipped == 0
    return chunk.entries


# ---------------------------------------------------------------- parsing


def test_a_caller_line_is_parsed_and_member_lines_are_not_kept() -> None:
    entry = parse_line(f"1796449112|{UID}|information|NONE|ENTERQUEUE||anonymous|1".encode(), 40)
    assert entry == QueueLogEntry(1796449112, UID, "information", "", "ENTERQUEUE",
                                  ("", "anonymous", "1"), 40)
    assert parse_line(b"1796449110|MANAGER|fire|PJSIP/op1007|ADDMEMBER|") is None
    assert parse_line(b"1796449110|NONE|NONE|NONE|QUEUESTART|") is None


def test_a_caller_number_that_is_not_utf8_is_read_escaped_as_the_ami_and_ivr_read_it() -> None:
    """A carrier's number with bytes that are not UTF-8 (0813%C3%28... unescaped by PJSIP):
    the line was refused, and a call backfilled from the log lost its queue visit."""
    entry = parse_line(f"1796449112|{UID}|information|NONE|ENTERQUEUE||".encode()
                       + b"0813\xc3\x281234|1", 40)
    assert entry is not None and entry.data == ("", "0813\\xc3(1234", "1")


def test_a_uniqueid_with_a_system_name_is_a_call_id() -> None:
    entry = parse_line(b"1796449112|pbx1-1796449111.57|fire|NONE|ENTERQUEUE||1|1")
    assert entry is not None and entry.call_id == "pbx1-1796449111.57"


@pytest.mark.parametrize(("raw", "why"), [
    (b"garbage", "fields"),
    (b"17964491xx|1796449111.57|fire|NONE|ENTERQUEUE||1|1", "epoch"),
    (b"1796449112|1796449111.57;rm|fire|NONE|ENTERQUEUE||1|1", "call id"),
    (b"1796449112|1796449111.57|fi re|NONE|ENTERQUEUE||1|1", "queue"),
    (b"1796449112|1796449111.57|fire||ENTERQUEUE||1|1", "agent"),
    ("1796449112|1796449111.57|fire|Siti\u202eA|CONNECT|1|1.1|1".encode(), "agent"),
    (b"1796449112|1796449111.57|fire|NONE|enterqueue||1|1", "event"),
    (b"1796449112|1796449111.57|fire|NONE|ENTERQUEUE||\x1b[31m|1", "unsafe"),
    ("1796449112|1796449111.57|fire|NONE|ENTERQUEUE||\u202e1|1".encode(), "unsafe"),
    (b"1796449112|1796449111.57|fire|NONE|ENTERQUEUE||" + b"9" * 5000 + b"|1", "longer"),
])
def test_hostile_lines_are_refused_with_one_clear_reason(raw: bytes, why: str) -> None:
    with pytest.raises(QueueLogLineError, match=why) as caught:
        parse_line(raw, 12)
    assert "\n" not in str(caught.value)


def test_bad_lines_are_skipped_one_log_line_each_and_the_rest_is_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = b"\n".join([b"garbage", ANSWERED[1].encode(), b"\xff|x", b"", b"1|2"]) + b"\npart"
    chunk = Chunk([], Cursor(1, 0))
    with caplog.at_level(logging.WARNING):
        parse_chunk(data, 100, 1, chunk)
    assert [entry.event for _, entry in chunk.entries] == ["ENTERQUEUE"]
    assert chunk.entries[0][1].offset == 108
    assert chunk.skipped == 3
    assert len([r for r in caplog.records if "skipped" in r.getMessage()]) == 3


def test_a_flood_of_bad_lines_is_counted_not_logged_line_by_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    chunk = Chunk([], Cursor(1, 0))
    with caplog.at_level(logging.WARNING):
        parse_chunk(b"garbage\n" * 10_000, 0, 1, chunk)
    assert chunk.skipped == 10_000
    assert len(caplog.records) == MAX_LOGGED + 1


def test_a_caller_id_with_the_separator_in_it_is_kept_whole() -> None:
    line = f"1796449112|{UID}|fire|NONE|ENTERQUEUE||08|12|3"
    plan = plan_backfill(entries([line]), end=Cursor(7, 1), live=set(), recorded={}, now=NOW)
    started = plan.written[0]
    assert isinstance(started, CallStarted) and started.caller_number == "08|12"
    assert QueueJoined(UID, "fire", 3, at(1796449112)) in plan.written


def test_a_malformed_number_in_an_event_skips_that_event_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lines = [*ANSWERED[:3], f"1796449115|{UID}|information|PJSIP/op1008|CONNECT|x|y|2",
             ANSWERED[4]]
    with caplog.at_level(logging.WARNING):
        plan = plan_backfill(entries(lines), end=Cursor(7, 1), live=set(), recorded={}, now=NOW)
    assert plan.refused == 1
    assert not any(isinstance(fact, OperatorAnswered) for fact in plan.written)
    assert any(isinstance(fact, OperatorCompleted) for fact in plan.written)


# ---------------------------------------------------------------- the file and its cursor


def test_reading_resumes_at_the_cursor_and_never_splits_a_line(tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    assert read_since(log, None) == Chunk([], Cursor(0, 0))  # not written yet
    log.write_text("")
    log.write_text(ANSWERED[0] + "\n")
    first = read_since(log, None)
    assert first is not None and first.entries == []  # no cursor yet: start at the end
    with log.open("a") as handle:
        handle.write("\n".join(ANSWERED[1:3]) + "\n" + ANSWERED[3][:20])
    second = read_since(log, first.end)
    assert second is not None
    assert [e.event for _, e in second.entries] == ["ENTERQUEUE", "RINGNOANSWER"]
    with log.open("a") as handle:
        handle.write(ANSWERED[3][20:] + "\n")
    third = read_since(log, second.end)
    assert third is not None and [e.event for _, e in third.entries] == ["CONNECT"]
    assert read_since(log, third.end) == Chunk([], third.end)


def test_a_read_stops_at_its_budget_and_says_so(tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    log.write_text("")
    start = read_since(log, None)
    assert start is not None
    log.write_text("\n".join(ANSWERED) + "\n")
    first = read_since(log, start.end, budget=len(ANSWERED[0]) + len(ANSWERED[1]) + 5)
    assert first is not None and first.more
    assert [e.event for _, e in first.entries] == ["SIAGALINE", "ENTERQUEUE"]
    rest = read_since(log, first.end)
    assert rest is not None and not rest.more
    assert [e.event for _, e in rest.entries] == ["RINGNOANSWER", "CONNECT", "COMPLETECALLER"]


def test_a_rotated_log_is_read_to_its_end_then_the_new_one(tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    log.write_text("\n".join(ANSWERED[:2]) + "\n")
    cursor = Cursor(os.stat(log).st_ino, len(ANSWERED[0]) + 1)
    with log.open("a") as handle:
        handle.write(ANSWERED[2] + "\n")
    log.rename(tmp_path / "queue_log.0")  # logger rotate
    log.write_text(ANSWERED[3] + "\n")
    chunk = read_since(log, cursor)
    assert chunk is not None and not chunk.lost
    assert [e.event for _, e in chunk.entries] == ["ENTERQUEUE", "RINGNOANSWER", "CONNECT"]
    assert chunk.end == Cursor(os.stat(log).st_ino, len(ANSWERED[3]) + 1)


def test_a_rotated_log_that_is_gone_is_reported_and_the_new_one_read(tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    log.write_text(ANSWERED[3] + "\n")
    chunk = read_since(log, Cursor(os.stat(log).st_ino + 1, 500))
    assert chunk is not None and chunk.lost
    assert [e.event for _, e in chunk.entries] == ["CONNECT"]


def test_a_log_truncated_in_place_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    log.write_text(ANSWERED[3] + "\n")
    chunk = read_since(log, Cursor(os.stat(log).st_ino, 10_000))
    assert chunk is not None and [e.event for _, e in chunk.entries] == ["CONNECT"]


# ---------------------------------------------------------------- the rules


def test_arrival_is_the_uniqueid_epoch() -> None:
    assert arrival_of(UID) == at(1796449111)
    assert arrival_of("pbx-1-1796449111.57") == at(1796449111)
    assert arrival_of("1.1") is None
    assert arrival_of("x") is None


def test_a_call_answered_while_the_line_was_down_is_rebuilt_whole() -> None:
    plan = plan_backfill(entries(ANSWERED), end=Cursor(7, 999), live=set(), recorded={},
                         now=NOW)
    assert plan.written == [
        CallStarted(UID, UID, "", "+6281234567890", "", "119", at(1796449111)),
        QueueJoined(UID, "information", 1, at(1796449112)),
        OperatorRung(UID, "information", "PJSIP/op1007", at(1796449112)),
        OperatorRung(UID, "information", "PJSIP/op1008", at(1796449113)),
        QueueLeft(UID, "information", 1, at(1796449115)),
        OperatorAnswered(UID, "information", "PJSIP/op1008", 3, 2, at(1796449115)),
        OperatorCompleted(UID, "information", "PJSIP/op1008", 3, 4, "caller", at(1796449119)),
        CallVanished(UID, at(1796449119)),
        CallBackfilled(UID, at(1796449111)),
    ]
    assert plan.backfilled == [UID]
    assert plan.cursor == Cursor(7, 999)
    assert plan.live == []


def test_an_operator_logged_under_a_display_name_is_named_by_interface() -> None:
    """The desk joins queues with MemberName = the account's display name, which is what
    app_queue logs as the agent (seen in the lab: ``fire|Siti Aminah|CONNECT``)."""
    lines = [line.replace("PJSIP/op1008", "Siti Aminah") for line in ANSWERED]
    members = member_interfaces([("PJSIP/op1008", "Siti Aminah"), ("PJSIP/op1007", "Budi"),
                                 ("PJSIP/op1009", "Budi"), ("PJSIP/op1010", "PJSIP/op1007")])
    assert members == {"Siti Aminah": "PJSIP/op1008"}  # a shared name says nothing
    plan = plan_backfill(entries(lines), end=Cursor(7, 1), live=set(), recorded={}, now=NOW,
                         members=members)
    answered = [f for f in plan.written if isinstance(f, OperatorAnswered)]
    assert [f.operator for f in answered] == ["PJSIP/op1008"]
    unknown = plan_backfill(entries(lines), end=Cursor(7, 1), live=set(), recorded={}, now=NOW)
    assert [f.operator for f in unknown.written if isinstance(f, OperatorAnswered)] == [
        "Siti Aminah"]


def test_an_abandon_keeps_its_positions_and_wait() -> None:
    plan = plan_backfill(entries(ABANDONED), end=Cursor(7, 5), live=set(), recorded={}, now=NOW)
    assert QueueAbandoned("1796449120.60", "medical", 2, 1, 9, at(1796449130)) in plan.written
    started = plan.written[0]
    assert isinstance(started, CallStarted) and started.line == ""  # no SIAGALINE logged


@pytest.mark.parametrize(("logged", "kept"), [
    ("119|a84b4c76e66710@pc33", "a84b4c76e66710@pc33"),  # the carrier's Call-ID, with the line
    ("119", ""),  # an older dialplan
    ("119|", ""),  # a channel without SIP
    ("119|a b@c", ""), ("119|a|b", ""),  # not a Call-ID, or one that added a field
])
def test_the_carriers_call_id_logged_with_the_line_goes_to_the_start(logged: str,
                                                                     kept: str) -> None:
    lines = [f"1796449111|{UID}|NONE|NONE|SIAGALINE|{logged}", *ANSWERED[1:]]
    plan = plan_backfill(entries(lines), end=Cursor(7, 1), live=set(), recorded={}, now=NOW)
    started = plan.written[0]
    assert isinstance(started, CallStarted)
    assert (started.line, started.sip_call_id) == ("119", kept)


def test_reading_the_same_lines_again_gives_the_same_facts() -> None:
    one = plan_backfill(entries(ANSWERED), end=Cursor(7, 1), live=set(), recorded={}, now=NOW)
    two = plan_backfill(entries(ANSWERED), end=Cursor(7, 1), live=set(),
                        recorded={}, now=NOW + timedelta(hours=1))
    assert one.written == two.written


def test_a_call_the_line_saw_end_is_left_alone() -> None:
    seen = {UID: Recorded(ended=True)}
    plan = plan_backfill(entries(ANSWERED), end=Cursor(7, 1), live=set(), recorded=seen, now=NOW)
    assert plan.written == [] and plan.backfilled == []


def test_a_call_seen_open_gets_only_what_it_missed() -> None:
    seen = {UID: Recorded(ended=False, facts=frozenset({
        ("call_started", "", ""), ("queue_joined", "information", ""),
        ("operator_rung", "information", "PJSIP/op1007")}))}
    plan = plan_backfill(entries(ANSWERED), end=Cursor(7, 1), live=set(), recorded=seen, now=NOW)
    assert [fact_slot(fact) for fact in plan.written] == [
        ("operator_rung", "information", "PJSIP/op1008"),
        ("queue_left", "information", ""),
        ("operator_answered", "information", "PJSIP/op1008"),
        ("operator_completed", "information", "PJSIP/op1008"),
        ("call_vanished", "", ""),
        ("call_backfilled", "", ""),
    ]


def test_a_call_seen_open_whose_log_never_ends_is_left_to_the_resync_to_end() -> None:
    # Asterisk crashed under it: no final event. The resync vanishes it, dated by when it was
    # last seen alive and marked cut; a vanish at its last logged line would be a second end.
    talking = ANSWERED[:4]
    seen = {UID: Recorded(ended=False, facts=frozenset({
        ("call_started", "", ""), ("queue_joined", "information", ""),
        ("operator_rung", "information", "PJSIP/op1007"),
        ("operator_rung", "information", "PJSIP/op1008"),
        ("queue_left", "information", ""),
        ("operator_answered", "information", "PJSIP/op1008")}))}
    plan = plan_backfill(entries(talking), end=Cursor(7, 1), live=set(), recorded=seen, now=NOW)
    assert plan.written == [] and plan.backfilled == []
    missed_answer = {UID: Recorded(ended=False, facts=frozenset({
        ("call_started", "", ""), ("queue_joined", "information", "")}))}
    plan = plan_backfill(entries(talking), end=Cursor(7, 1), live=set(),
                         recorded=missed_answer, now=NOW)
    assert "call_vanished" not in {fact_slot(fact)[0] for fact in plan.written}
    assert ("operator_answered", "information", "PJSIP/op1008") in {
        fact_slot(fact) for fact in plan.written} and plan.backfilled == [UID]


def test_a_live_call_gets_its_queue_from_the_log_and_holds_the_cursor() -> None:
    lines = [*ABANDONED[:1], *ANSWERED[:4]]  # connected, still talking
    plan = plan_backfill(entries(lines), end=Cursor(7, 4000), live={UID}, recorded={}, now=NOW)
    assert [fact.kind for fact in plan.live] == [
        "queue_joined", "operator_rung", "operator_rung", "queue_left", "operator_answered",
        "call_backfilled"]
    assert not any(isinstance(fact, CallStarted | CallVanished) for fact in plan.live)
    # The live call's first line is read again next time: its story is not over.
    first = entries(lines)[1][1].offset
    assert plan.cursor == Cursor(7, first)
    # The resync's join (estimated from Wait) is replaced by the log's.
    estimate = QueueJoined(UID, "information", 1, NOW - timedelta(seconds=88))
    other = QueueJoined("1796449190.1", "fire", 1, NOW)
    assert plan.amend([estimate, other]) == [other, *plan.live]


def test_no_fact_of_a_call_seen_live_is_stamped_before_its_start() -> None:
    """The line saw the call start at 1796449111.7 (Newchannel's sub-second), then restarted:
    the log's whole seconds (SIAGAIVR at ...111) and the resync's (the Uniqueid's second)
    would put facts before it; they are moved to the start, the same at every reading."""
    start = at(1796449111) + timedelta(milliseconds=700)
    whole = [ANSWERED[0], f"1796449111|{UID}|NONE|NONE|SIAGAIVR|failopen", *ANSWERED[1:],
             f"1796449119|{UID}|NONE|NONE|SIAGAEND|16"]
    seen = {UID: Recorded(ended=False, facts=frozenset({("call_started", "", "")}),
                          started_at=start)}
    plan = plan_backfill(entries(whole), end=Cursor(7, 1), live=set(), recorded=seen, now=NOW)
    assert plan.written[0] == IvrVariablesSet(UID, (("outcome", "failopen"),), start)
    assert all(fact.at >= start for fact in plan.written)
    assert plan.written[-1] == CallBackfilled(UID, start)
    assert plan.written[1:-1] == plan_backfill(
        entries(whole), end=Cursor(7, 1), live=set(), recorded={UID: Recorded(
            ended=False, facts=seen[UID].facts)}, now=NOW).written[1:-1]
    # Live: the resync's facts (at the Uniqueid's second) follow the stored start too.
    talking = ANSWERED[:4]
    plan = plan_backfill(entries(talking), end=Cursor(7, 1), live={UID}, recorded=seen, now=NOW)
    resynced = IvrVariablesSet(UID, (("line", "119"),), at(1796449111))
    other = IvrVariablesSet("1796449190.1", (("line", "112"),), at(1796449190))
    assert plan.amend([resynced, other])[:2] == [
        IvrVariablesSet(UID, (("line", "119"),), start), other]


def test_a_read_cut_short_leaves_unfinished_calls_for_the_next_read() -> None:
    """The read budget ran out: a call with no final event may have one beyond the cut."""
    cut = ANSWERED[:3]  # entered, rung, connected: its COMPLETECALLER is beyond the read
    found = entries([*ABANDONED, *cut])
    plan = plan_backfill(found, end=Cursor(7, 900), live=set(), recorded={}, now=NOW,
                         more=True)
    assert plan.backfilled == ["1796449120.60"]
    assert plan.cursor == Cursor(7, found[len(ABANDONED)][1].offset)
    whole = plan_backfill(found, end=Cursor(7, 900), live=set(), recorded={}, now=NOW)
    assert sorted(whole.backfilled) == [UID, "1796449120.60"]


def test_a_live_call_too_old_no_longer_holds_the_cursor() -> None:
    plan = plan_backfill(entries(ANSWERED[:4]), end=Cursor(7, 4000), live={UID}, recorded={},
                         now=NOW + timedelta(days=1))
    assert plan.cursor == Cursor(7, 4000)


def test_the_cursor_moves_past_ended_calls_only() -> None:
    found = entries([*ANSWERED, *ABANDONED])
    assert settled_cursor(found, end=Cursor(7, 900), ended={UID, "1796449120.60"},
                          now=NOW) == Cursor(7, 900)
    # The abandoned call's end is not in the database yet: its first line holds the cursor.
    assert settled_cursor(found, end=Cursor(7, 900), ended={UID}, now=NOW) == Cursor(
        7, found[len(ANSWERED)][1].offset)
    assert settled_cursor(found, end=Cursor(7, 900), ended=set(), now=NOW) == Cursor(7, 0)
    # ... for at most MAX_PIN.
    assert settled_cursor(found, end=Cursor(7, 900), ended=set(),
                          now=NOW + timedelta(days=1)) == Cursor(7, 900)


def test_the_channel_list_says_which_callers_live_and_whether_it_is_whole() -> None:
    reply = [
        {"Response": "Success", "EventList": "start"},
        {"Event": "CoreShowChannel", "Uniqueid": UID, "Linkedid": UID},
        {"Event": "CoreShowChannel", "Uniqueid": "1796449112.58", "Linkedid": UID},
        {"Event": "CoreShowChannelsComplete", "ListItems": "2"},
    ]
    assert caller_channels(reply) == ({UID}, True)
    assert caller_channels(reply[:3]) == ({UID}, False)


# ---------------------------------------------------------------- resync (item 2)


Reply = list[dict[str, str | list[str]]]


def _resync_reply(uid: str, duration: str) -> tuple[Reply, Reply, Reply]:
    channels: Reply = [
        {"Response": "Success", "EventList": "start"},
        {"Event": "CoreShowChannel", "Uniqueid": uid, "Linkedid": uid,
         "Channel": "PJSIP/carrier-00000001", "Context": "siaga112-queue", "Exten": "s",
         "CallerIDNum": "0812", "CallerIDName": "", "Duration": duration},
        {"Event": "CoreShowChannelsComplete", "ListItems": "1"},
    ]
    status: Reply = [
        {"Response": "Success", "EventList": "start"},
        {"Event": "Status", "Uniqueid": uid,
         "Variable": ["IVR_LINE=112", "IVR_QUEUE=fire", "IVR_OUTCOME=chosen"]},
        {"Event": "StatusComplete", "ListItems": "1"},
    ]
    queues: Reply = [{"Response": "Success", "EventList": "start"},
              {"Event": "QueueStatusComplete", "ListItems": "0"}]
    return queues, channels, status


def test_a_resync_dates_arrival_from_the_uniqueid_and_repeats_itself_exactly() -> None:
    """Not now - Duration in whole seconds (which could fall after the answer), and the IVR
    values at an instant every resync gives alike: the store sees the same facts, a no-op."""
    queues, channels, status = _resync_reply(UID, "00:01:29")
    first = CallTracker(clock=lambda: NOW).resync(queues, channels, status)
    later = NOW + timedelta(seconds=37, microseconds=400_000)
    queues, channels, status = _resync_reply(UID, "00:02:06")
    second = CallTracker(clock=lambda: later).resync(queues, channels, status)
    started = [f for f in first.facts if isinstance(f, CallStarted)]
    assert [f.at for f in started] == [at(1796449111)]
    variables = [f for f in first.facts if isinstance(f, IvrVariablesSet)]
    assert [f.at for f in variables] == [at(1796449111)]
    assert first.facts == second.facts


# ---------------------------------------------------------------- IVR outcome and hang-up cause


def test_the_ivr_outcome_and_the_hang_up_cause_complete_a_backfilled_call() -> None:
    plan = plan_backfill(entries(LOGGED_WHOLE), end=Cursor(7, 999), live=set(), recorded={},
                         now=NOW)
    assert plan.written[:3] == [
        CallStarted(UID, UID, "", "+6281234567890", "", "119", at(1796449111)),
        IvrVariablesSet(UID, (("outcome", "chosen"),), at(1796449112)),
        QueueJoined(UID, "information", 1, at(1796449112)),
    ]
    # The end the tracker would have given from Hangup, instead of a vanish.
    assert plan.written[-2:] == [CallEnded(UID, 16, "Normal Clearing", at(1796449119)),
                                 CallBackfilled(UID, at(1796449111))]
    assert not any(isinstance(fact, CallVanished) for fact in plan.written)


def test_the_facts_are_those_the_tracker_gives_for_the_same_call() -> None:
    """The tracker's Hangup gives Asterisk's Cause-txt; the log's cause gets the same text."""
    tracker = CallTracker()
    tracker.handle({"Event": "Newchannel", "Uniqueid": UID, "Linkedid": UID,
                    "Context": "from-carrier", "Exten": "119", "Channel": "PJSIP/c-1"})
    ended = tracker.handle({"Event": "Hangup", "Uniqueid": UID, "Cause": "16",
                            "Cause-txt": "Normal Clearing", "Timestamp": "1796449119"})
    plan = plan_backfill(entries(LOGGED_WHOLE), end=Cursor(7, 999), live=set(), recorded={},
                         now=NOW)
    assert ended[-1] in plan.written
    assert cause_text(17) == "User busy" and cause_text(0) == "Unknown"


def test_without_the_dialplan_lines_the_call_still_ends_as_vanished() -> None:
    """An older dialplan, or Asterisk killed with the call: no SIAGAIVR, no SIAGAEND."""
    plan = plan_backfill(entries(ANSWERED), end=Cursor(7, 999), live=set(), recorded={},
                         now=NOW)
    assert plan.written[-2] == CallVanished(UID, at(1796449119))
    assert not any(isinstance(fact, IvrVariablesSet | CallEnded) for fact in plan.written)


def test_a_caller_sent_back_to_the_queues_gives_its_outcome_once() -> None:
    again = f"1796449117|{UID}|NONE|NONE|SIAGAIVR|chosen"
    plan = plan_backfill(entries([*LOGGED_WHOLE[:-1], again, LOGGED_WHOLE[-1]]),
                         end=Cursor(7, 999), live=set(), recorded={}, now=NOW)
    assert [f for f in plan.written if isinstance(f, IvrVariablesSet)] == [
        IvrVariablesSet(UID, (("outcome", "chosen"),), at(1796449112))]


@pytest.mark.parametrize("outcome", ["chosen", "no_input", "invalid", "direct", "failopen"])
def test_every_outcome_the_line_knows_is_kept(outcome: str) -> None:
    line = f"1796449112|{UID}|NONE|NONE|SIAGAIVR|{outcome}"
    plan = plan_backfill(entries([line]), end=Cursor(7, 1), live=set(), recorded={}, now=NOW)
    assert IvrVariablesSet(UID, (("outcome", outcome),), at(1796449112)) in plan.written


def test_what_the_caller_chose_is_kept_as_the_dialplan_logs_it() -> None:
    # The choice, category, skill and queue the IVR set; empty where it set nothing.
    chosen = f"1796449112|{UID}|NONE|NONE|SIAGAIVR|chosen|1|emergency|fire|emergency-fire"
    silent = f"1796449112|{UID}|NONE|NONE|SIAGAIVR|no_input||emergency|general|emergency-general"
    for line, expected in (
        (chosen, (("outcome", "chosen"), ("choice", "1"), ("category", "emergency"),
                  ("skill", "fire"), ("queue", "emergency-fire"))),
        (silent, (("outcome", "no_input"), ("category", "emergency"), ("skill", "general"),
                  ("queue", "emergency-general"))),
    ):
        plan = plan_backfill(entries([line]), end=Cursor(7, 1), live=set(), recorded={},
                             now=NOW)
        assert IvrVariablesSet(UID, expected, at(1796449112)) in plan.written


def test_how_the_caller_used_the_keys_and_the_screening_are_kept() -> None:
    # The keypad and the screening's figures after the choice; an empty field is unset.
    logged = (f"1796449112|{UID}|NONE|NONE|SIAGAIVR|chosen|1|emergency|fire|emergency-fire"
              "|2140|1|0.73|5|pressed")
    unscored = f"1796449112|{UID}|NONE|NONE|SIAGAIVR|failopen|||||||||"
    for line, expected in (
        (logged, (("outcome", "chosen"), ("choice", "1"), ("category", "emergency"),
                  ("skill", "fire"), ("queue", "emergency-fire"), ("first_key_ms", "2140"),
                  ("invalid_keys", "1"), ("score", "0.73"), ("priority", "5"),
                  ("screening", "pressed"))),
        (unscored, (("outcome", "failopen"),)),
    ):
        plan = plan_backfill(entries([line]), end=Cursor(7, 1), live=set(), recorded={},
                             now=NOW)
        assert IvrVariablesSet(UID, expected, at(1796449112)) in plan.written


@pytest.mark.parametrize("odd", [
    "SIAGAIVR|", "SIAGAIVR|${SHELL(id)}", "SIAGAIVR|chosen|extra", "SIAGAIVR|CHOSEN",
    "SIAGAIVR|chosen|1|emergency|fire|emergency-fire|2140|1|1.5|5|pressed",
    "SIAGAIVR|chosen|1|emergency|fire|emergency-fire|2140|1|nan|5|pressed",
    "SIAGAIVR|chosen|1|emergency|fire|emergency-fire|-3|1|0.7|5|pressed",
    "SIAGAIVR|chosen|1|emergency|fire|emergency-fire|2140|1|0.7|99999999999|pressed",
    "SIAGAIVR|chosen|1|emergency|fire|emergency-fire|2140|1|0.7|5|PRESSED",
    "SIAGAIVR|chosen|1|emergency|fire|emergency-fire|2140|1|0.7|5|pressed|extra",
    "SIAGAIVR|chosen|12|emergency|fire|emergency-fire",
    "SIAGAIVR|chosen|1|Emergency|fire|emergency-fire",
    "SIAGAIVR|chosen|1|emergency|${SHELL(id)}|emergency-fire",
    "SIAGAIVR|chosen|1|emergency|fire|emergency-fire|extra",
    "SIAGAEND|", "SIAGAEND|x16", "SIAGAEND|16|16", "SIAGAEND|128", "SIAGAEND|-1",
    "SIAGAEND|9999999999",
])
def test_odd_dialplan_lines_are_skipped_with_one_clear_line_and_the_call_still_ends(
    odd: str, caplog: pytest.LogCaptureFixture,
) -> None:
    lines = [line for line in LOGGED_WHOLE if "SIAGAIVR" not in line and "SIAGAEND" not in line]
    with caplog.at_level(logging.WARNING):
        plan = plan_backfill(entries([*lines, f"1796449119|{UID}|NONE|NONE|{odd}"]),
                             end=Cursor(7, 999), live=set(), recorded={}, now=NOW)
    assert plan.refused == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "skipped" in warnings[0] and "\n" not in warnings[0]
    assert not any(isinstance(fact, IvrVariablesSet | CallEnded) for fact in plan.written)
    assert isinstance(plan.written[-2], CallVanished)
    assert plan.backfilled == [UID]


def test_a_hostile_line_of_ours_is_refused_by_the_parser() -> None:
    with pytest.raises(QueueLogLineError, match="unsafe"):
        parse_line(f"1796449119|{UID}|NONE|NONE|SIAGAIVR|chosen\x1b[2J".encode())
    entry = parse_line(f"1796449119|{UID}|NONE|NONE|SIAGAEND|16".encode())
    assert entry is not None and (entry.event, entry.data) == ("SIAGAEND", ("16",))


def test_a_call_hung_up_beyond_a_cut_read_waits_and_one_hung_up_is_over() -> None:
    cut = LOGGED_WHOLE[:4]  # connected: no final event in this read
    plan = plan_backfill(entries(cut), end=Cursor(7, 900), live=set(), recorded={}, now=NOW,
                         more=True)
    assert plan.backfilled == []
    abandoned = [ABANDONED[0], "1796449130|1796449120.60|NONE|NONE|SIAGAEND|16"]
    plan = plan_backfill(entries(abandoned), end=Cursor(7, 900), live=set(), recorded={},
                         now=NOW, more=True)
    assert plan.backfilled == ["1796449120.60"]
    assert CallEnded("1796449120.60", 16, "Normal Clearing", at(1796449130)) in plan.written


def test_a_live_call_takes_its_ivr_outcome_from_the_resync_not_the_log() -> None:
    plan = plan_backfill(entries(LOGGED_WHOLE[:5]), end=Cursor(7, 4000), live={UID},
                         recorded={}, now=NOW)
    assert not any(isinstance(fact, IvrVariablesSet) for fact in plan.live)
    assert any(isinstance(fact, OperatorAnswered) for fact in plan.live)


def test_a_call_seen_open_until_the_crash_gets_its_logged_end() -> None:
    seen = {UID: Recorded(ended=False, facts=frozenset({
        ("call_started", "", ""), ("ivr_variables", "", ""),
        ("queue_joined", "information", "")}))}
    plan = plan_backfill(entries(LOGGED_WHOLE), end=Cursor(7, 1), live=set(), recorded=seen,
                         now=NOW)
    kinds = [fact.kind for fact in plan.written]
    assert "ivr_variables" not in kinds and "call_started" not in kinds
    assert kinds[-2:] == ["call_ended", "call_backfilled"]


def test_a_call_closed_as_vanished_gets_the_end_its_log_gives() -> None:
    """Its AMI session cut while the database was away, the line lost sight of the call, and
    the resync closed it as vanished (the queue_log could not be read for it then): its own
    hang-up, logged by the dialplan, replaces the vanish, with what the line missed."""
    seen = {UID: Recorded(ended=True, vanished=True, facts=frozenset({
        ("call_started", "", ""), ("ivr_variables", "", ""),
        ("queue_joined", "information", ""), ("call_vanished", "", "")}))}
    plan = plan_backfill(entries(LOGGED_WHOLE), end=Cursor(7, 1), live=set(), recorded=seen,
                         now=NOW)
    assert [fact.kind for fact in plan.written] == [
        "operator_rung", "operator_rung", "queue_left", "operator_answered",
        "operator_completed", "call_ended", "call_backfilled"]
    assert plan.written[-2] == CallEnded(UID, 16, cause_text(16), at(1796449119))
    assert plan.backfilled == [UID]
    # Vanished with no hang-up logged (Asterisk died with it): nothing to add.
    plan = plan_backfill(entries(ANSWERED), end=Cursor(7, 1), live=set(), recorded=seen,
                         now=NOW)
    assert plan.written == [] and plan.backfilled == []


def test_the_cursor_waits_for_the_logged_end_of_a_call_closed_as_vanished() -> None:
    found = entries([*LOGGED_WHOLE, *ABANDONED])
    recorded = {UID: Recorded(ended=True, vanished=True),
                "1796449120.60": Recorded(ended=True)}
    assert settled_cursor(found, end=Cursor(7, 900), ended=settled_calls(found, recorded),
                          now=NOW) == Cursor(7, 0)
    gone = {**recorded, UID: Recorded(ended=True, vanished=True)}
    assert settled_cursor(entries([*ANSWERED, *ABANDONED]), end=Cursor(7, 900),
                          ended=settled_calls(entries([*ANSWERED, *ABANDONED]), gone),
                          now=NOW) == Cursor(7, 900)


# ---------------------------------------------------------------- legs the line placed

# A transfer's leg 42 as the dialplan logs it ([siaga112-leg]): dialling on the caller's
# channel, answered and ended on the agency's (recorded in the lab's queue_log).
AGENCY = "1796449130.61"
ASKED = at(1796449124)  # when the operator asked for leg 42


def leg(*states: str) -> dict[int, LegRecorded]:
    """Leg 42 as the database holds it, with these states recorded."""
    return {42: LegRecorded(frozenset(states), ASKED)}


LEG = [
    f"1796449125|{UID}|NONE|NONE|SIAGALEG|42|dialling||",
    f"1796449131|{AGENCY}|NONE|NONE|SIAGALEG|42|answered||",
    f"1796449190|{AGENCY}|NONE|NONE|SIAGALEG|42|ended|ANSWER|16",
]


def test_a_leg_line_is_parsed() -> None:
    entry = parse_line(LEG[2].encode(), 9)
    assert entry == QueueLogEntry(1796449190, AGENCY, "NONE", "", "SIAGALEG",
                                  ("42", "ended", "ANSWER", "16"), 9)


def test_the_leg_states_are_the_lines() -> None:
    assert tuple(state.value for state in LegState) == LEG_STATES


@pytest.mark.parametrize(("raw", "why"), [
    (f"1796449131|{AGENCY}|NONE|NONE|SIAGALEG|42|answered|", "3 data fields, not 4"),
    (f"1796449131|{AGENCY}|NONE|NONE|SIAGALEG|42|answered|||", "5 data fields, not 4"),
    (f"1796449131|{AGENCY}|NONE|NONE|SIAGALEG|0|answered||", "leg id malformed"),
    (f"1796449131|{AGENCY}|NONE|NONE|SIAGALEG|4a2|answered||", "leg id malformed"),
    (f"1796449131|{AGENCY}|NONE|NONE|SIAGALEG|1234567890|answered||", "leg id malformed"),
    (f"1796449131|{AGENCY}|NONE|NONE|SIAGALEG||answered||", "leg id malformed"),
    (f"1796449131|{AGENCY}|NONE|NONE|SIAGALEG|\u0664\u0662|answered||", "leg id malformed"),
    (f"1796449131|{AGENCY}|NONE|NONE|SIAGALEG|42|ringing||", "not a leg state"),
    (f"1796449131|{AGENCY}|NONE|NONE|SIAGALEG|42|answered|ANSWER|", "status malformed"),
    (f"1796449131|{AGENCY}|NONE|NONE|SIAGALEG|42|ended|answer;x|16", "status malformed"),
    (f"1796449131|{AGENCY}|NONE|NONE|SIAGALEG|42|dialling||16", "cause malformed"),
    (f"1796449131|{AGENCY}|NONE|NONE|SIAGALEG|42|ended|BUSY|1616", "cause malformed"),
])
def test_a_bad_leg_line_is_refused_with_one_clear_reason(raw: str, why: str) -> None:
    with pytest.raises(QueueLogLineError, match=why) as caught:
        parse_line(raw.encode(), 12)
    assert "SIAGALEG" in str(caught.value) and "\n" not in str(caught.value)


def test_leg_progress_the_line_missed_is_the_trackers_and_makes_no_call() -> None:
    """Leg lines carry a channel's Uniqueid, not a caller's: they are no call to rebuild."""
    plan = plan_backfill(entries(LEG), end=Cursor(7, 500), live=set(), now=NOW,
                         recorded={}, legs=leg())
    assert plan.written == [
        LegProgressed(42, "dialling", "", UID, at(1796449125)),
        LegProgressed(42, "answered", "", AGENCY, at(1796449131)),
        LegProgressed(42, "ended", "ANSWER", AGENCY, at(1796449190), 16),
    ]
    assert plan.backfilled == [] and plan.cursor == Cursor(7, 500)


def test_leg_progress_the_line_heard_is_not_written_again() -> None:
    plan = plan_backfill(entries(LEG), end=Cursor(7, 500), live=set(), now=NOW,
                         recorded={}, legs=leg("dialling", "answered"))
    assert plan.written == [LegProgressed(42, "ended", "ANSWER", AGENCY, at(1796449190), 16)]


def test_a_leg_the_line_never_opened_is_refused_and_a_second_end_is_not_taken(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lines = [*LEG, f"1796449191|{UID}|NONE|NONE|SIAGALEG|42|ended|FAILED|",
             f"1796449192|{UID}|NONE|NONE|SIAGALEG|43|ended|BUSY|17"]
    with caplog.at_level(logging.WARNING):
        facts, refused = leg_facts(entries(lines), leg("dialling"))
    assert [(fact.state, fact.status) for fact in facts] == [("answered", ""),
                                                            ("ended", "ANSWER")]
    assert refused == 1
    assert "leg 43 is no leg the line opened" in caplog.text


def test_a_report_logged_before_its_leg_was_asked_for_is_about_another_leg() -> None:
    """Leg ids are the database's: a log kept across a database restored or rebuilt holds
    reports of an older leg 42, which must not settle this one."""
    older = [line.replace("17964491", "17964490") for line in LEG]  # 100 s earlier
    facts, refused = leg_facts(entries(older), leg())
    assert (facts, refused) == ([], 3)
    assert settled_cursor(entries(older), end=Cursor(7, 999), ended=set(), now=NOW,
                          legs=leg()) == Cursor(7, 999)


def test_leg_reports_newer_than_the_settling_time_wait() -> None:
    facts, _ = leg_facts(entries(LEG), leg(), before=at(1796449131))
    assert [fact.state for fact in facts] == ["dialling"]


def test_the_cursor_waits_for_leg_reports_the_database_lacks() -> None:
    found = entries([*ABANDONED, *LEG])
    waiting = settled_cursor(found, end=Cursor(7, 999), ended={"1796449120.60"}, now=NOW,
                             legs=leg("dialling"))
    assert waiting == Cursor(7, found[3][1].offset)
    assert settled_cursor(found, end=Cursor(7, 999), ended={"1796449120.60"}, now=NOW,
                          legs=leg("dialling", "answered", "ended")) \
        == Cursor(7, 999)
    # A leg the line never opened holds nothing back.
    assert settled_cursor(found, end=Cursor(7, 999), ended={"1796449120.60"}, now=NOW,
                          legs={}) == Cursor(7, 999)


# ---------------------------------------------------------------- talks after a failed transfer

# A blind transfer nobody answered, as the lab logs it: Queue() completes the operator's talk
# at the transfer (2 s), the agency does not answer, [siaga112-transfer] rings the operator
# back and [siaga112-back-answered] logs their talk (40 s) under the operator channel's
# Uniqueid, until the caller hangs up.
BACK_CALL = "1732345678.0"
BACK_CHANNEL = "1732345688.7"
TRANSFER = f"1732345682|{BACK_CALL}|medical|PJSIP/op1001|BLINDTRANSFER|7*0215550100" \
    "|siaga112-transfer|2|2|1"
BACK = [
    f"1732345688|{BACK_CHANNEL}|NONE|NONE|SIAGABACK|{BACK_CALL}|answered",
    f"1732345728|{BACK_CHANNEL}|NONE|NONE|SIAGABACK|{BACK_CALL}|ended",
]
# The transfer's completion as the tracker gave it from AgentComplete (heard live).
COMPLETED = OperatorCompleted(BACK_CALL, "medical", "PJSIP/op1001", 2, 2, "transfer",
                              datetime.fromtimestamp(1732345682.2, UTC))


def test_a_talk_back_line_is_parsed() -> None:
    assert parse_line(BACK[1].encode(), 9) == QueueLogEntry(
        1732345728, BACK_CHANNEL, "NONE", "", "SIAGABACK", (BACK_CALL, "ended"), 9)
    assert BACK_STATES == ("answered", "ended")


@pytest.mark.parametrize(("raw", "why"), [
    (f"1732345728|{BACK_CHANNEL}|NONE|NONE|SIAGABACK|{BACK_CALL}", "1 data fields, not 2"),
    (f"1732345728|{BACK_CHANNEL}|NONE|NONE|SIAGABACK|{BACK_CALL}|ended|16",
     "3 data fields, not 2"),
    (f"1732345728|{BACK_CHANNEL}|NONE|NONE|SIAGABACK||ended", "call id malformed"),
    (f"1732345728|{BACK_CHANNEL}|NONE|NONE|SIAGABACK|1732345678.0;x|ended",
     "call id malformed"),
    (f"1732345728|{BACK_CHANNEL}|NONE|NONE|SIAGABACK|\u0661732345678.0|ended",
     "call id malformed"),
    (f"1732345728|{BACK_CHANNEL}|NONE|NONE|SIAGABACK|{BACK_CALL}|gone", "not answered or ended"),
    (f"1732345728|{BACK_CHANNEL}|NONE|NONE|SIAGABACK|{BACK_CALL}|", "not answered or ended"),
])
def test_a_bad_talk_back_line_is_refused_with_one_clear_reason(raw: str, why: str) -> None:
    with pytest.raises(QueueLogLineError, match=why) as caught:
        parse_line(raw.encode(), 12)
    assert "SIAGABACK" in str(caught.value) and "\n" not in str(caught.value)


def test_a_talk_back_the_line_did_not_hear_is_the_trackers_completion() -> None:
    """The tracker gives the transfer's completion again, its talk 2 + 40 s, at the talk's
    end (tests/unit/test_ami_tracker.py); from the log the same, to the log's second."""
    assert back_facts(entries(BACK), {BACK_CALL: [COMPLETED]}) == [
        OperatorCompleted(BACK_CALL, "medical", "PJSIP/op1001", 2, 42, "transfer",
                          at(1732345728))]


def test_a_talk_back_heard_live_or_applied_before_is_not_written_again() -> None:
    heard = OperatorCompleted(BACK_CALL, "medical", "PJSIP/op1001", 2, 42, "transfer",
                              datetime.fromtimestamp(1732345728.6, UTC))
    assert back_facts(entries(BACK), {BACK_CALL: [COMPLETED, heard]}) == []
    (applied,) = back_facts(entries(BACK), {BACK_CALL: [COMPLETED]})
    assert back_facts(entries(BACK), {BACK_CALL: [COMPLETED, applied]}) == []


def test_talks_back_add_up_and_an_unfinished_one_or_none_known_adds_nothing() -> None:
    second = "1732345740.9"
    lines = [*BACK, f"1732345740|{second}|NONE|NONE|SIAGABACK|{BACK_CALL}|answered",
             f"1732345750|{second}|NONE|NONE|SIAGABACK|{BACK_CALL}|ended"]
    (fact,) = back_facts(entries(lines), {BACK_CALL: [COMPLETED]})
    assert (fact.talk_seconds, fact.at) == (52, at(1732345750))
    # Still talking: nothing yet, and the cursor may not pass it.
    assert back_facts(entries(BACK[:1]), {BACK_CALL: [COMPLETED]}) == []
    assert unsettled_backs(entries(BACK[:1]), {BACK_CALL: [COMPLETED]}) == {BACK_CALL}
    # No transfer known (a completion that was not one, or none): the queue's talk stands.
    assert back_facts(entries(BACK), {}) == []
    assert back_facts(entries(BACK), {BACK_CALL: [replace(COMPLETED, ended_by="caller")]}) == []
    # An end with no answer logged says nothing.
    assert back_facts(entries(BACK[1:]), {BACK_CALL: [COMPLETED]}) == []


def test_a_call_missed_whole_gets_its_talk_back_after_its_transfer_and_no_phantom_call() -> None:
    lines = [f"1732345678|{BACK_CALL}|NONE|NONE|SIAGALINE|112",
             f"1732345679|{BACK_CALL}|medical|NONE|ENTERQUEUE||0812|1",
             f"1732345680|{BACK_CALL}|medical|PJSIP/op1001|CONNECT|2|1732345679.1|1",
             TRANSFER, *BACK, f"1732345728|{BACK_CALL}|NONE|NONE|SIAGAEND|16"]
    plan = plan_backfill(entries(lines), end=Cursor(7, 900), live=set(), recorded={}, now=NOW)
    assert plan.backfilled == [BACK_CALL]
    completed = [fact for fact in plan.written if isinstance(fact, OperatorCompleted)]
    assert [(fact.talk_seconds, fact.at) for fact in completed] == [
        (2, at(1732345682)), (42, at(1732345728))]
    assert plan.written.index(completed[1]) == len(plan.written) - 1  # the last completion
    assert {getattr(fact, "call_id", "") for fact in plan.written} == {BACK_CALL}
    # The line saw the call and its transfer live, and restarted during the talk back.
    seen = {BACK_CALL: Recorded(True, frozenset(), at(1732345678))}
    plan = plan_backfill(entries([TRANSFER, *BACK]), end=Cursor(7, 900), live=set(),
                         recorded=seen, now=NOW, completions={BACK_CALL: [COMPLETED]})
    assert plan.written == [replace(COMPLETED, talk_seconds=42, at=at(1732345728))]
    # A live call's talk back follows the resync's facts.
    plan = plan_backfill(entries([TRANSFER, *BACK]), end=Cursor(7, 900), live={BACK_CALL},
                         recorded=seen, now=NOW, completions={BACK_CALL: [COMPLETED]})
    assert plan.written == [] and plan.live[-1].kind == "operator_completed"


def test_the_cursor_waits_for_talks_back_the_database_lacks() -> None:
    found = entries([*ABANDONED, *BACK])
    ended = {"1796449120.60"}
    assert settled_cursor(found, end=Cursor(7, 999), ended=ended, now=at(1732345800),
                          backs={BACK_CALL}) == Cursor(7, found[2][1].offset)
    assert settled_cursor(found, end=Cursor(7, 999), ended=ended, now=at(1732345800)) \
        == Cursor(7, 999)
