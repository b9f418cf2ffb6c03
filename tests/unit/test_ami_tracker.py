"""The call tracker: AMI events (recorded or synthetic transcripts) in, call facts out."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from telephony.ami import tracker as tracker_module
from telephony.ami.tracker import LINES, AmiEvent, AmiEventError, CallTracker
from telephony.calls.facts import (
    AsteriskBooted,
    AsteriskReturned,
    AsteriskShutdown,
    CallCut,
    CallEnded,
    CallFact,
    CallStarted,
    CallTransferred,
    CallVanished,
    IvrVariablesSet,
    LegCut,
    LegProgressed,
    OperatorAnswered,
    OperatorCompleted,
    OperatorRung,
    OperatorStateChanged,
    QueueAbandoned,
    QueueJoined,
    QueueLeft,
)
from telephony.core.text import invisible
from tests.support.ami import FIXTURES, NOW, events, existing, resync_replies

ANSWERED = existing("ami_call_answered.txt", "ami_synthetic_call_answered.txt")
ABANDONED = existing("ami_call_abandoned.txt", "ami_synthetic_call_abandoned.txt")
RESYNC = existing("ami_resync.txt", "ami_synthetic_resync.txt")
ALL_CALLS = ANSWERED + ABANDONED


def modified(message: AmiEvent, **changes: str | list[str]) -> AmiEvent:
    """A changed copy (panoramisk's Message cannot be copied: its __getattr__ recurses)."""
    return {**dict(message.items()), **changes}


def tracker() -> CallTracker:
    return CallTracker(clock=lambda: NOW)


def run(t: CallTracker, evs: Sequence[AmiEvent]) -> list[CallFact]:
    return [fact for event in evs for fact in t.handle(event)]


def at(timestamp: str) -> datetime:
    seconds, micro = timestamp.split(".")
    return datetime.fromtimestamp(int(seconds), UTC) + timedelta(microseconds=int(micro))


def snapshot(uid: str, linked: str | None = None, **overrides: str) -> dict[str, str]:
    fields = {
        "Channel": f"PJSIP/carrier-{uid[-4:]}",
        "ChannelState": "6",
        "ChannelStateDesc": "Up",
        "CallerIDNum": "081234567890",
        "CallerIDName": "<unknown>",
        "Context": "from-carrier",
        "Exten": "112",
        "Priority": "1",
        "Uniqueid": uid,
        "Linkedid": linked or uid,
    }
    fields.update(overrides)
    return fields


def ev(name: str, timestamp: str = "1732345678.000100", **fields: str) -> dict[str, str]:
    return {"Event": name, "Privilege": "call,all", "Timestamp": timestamp, **fields}


def arrive(t: CallTracker, uid: str, sip_call_id: str = "a84b4c76e66710@pc33", *,
           timestamp: str = "1732345678.000100", **overrides: str) -> list[CallFact]:
    """A caller's channel, and the dialplan's first step (IVR_SIP_CALL_ID): its start."""
    channel = snapshot(uid, **overrides)
    return [*t.handle(ev("Newchannel", timestamp, **channel)),
            *t.handle(ev("VarSet", timestamp, **channel, Variable="IVR_SIP_CALL_ID",
                         Value=sip_call_id))]


def member(name: str, status: str, paused: str = "0", reason: str = "") -> dict[str, str]:
    return ev(
        name,
        Queue="medical",
        MemberName="op1001",
        Interface="PJSIP/op1001",
        Status=status,
        Paused=paused,
        PausedReason=reason,
        InCall="0",
    )


def ivr_pairs(facts: list[CallFact]) -> list[tuple[str, str]]:
    """Every IVR (name, value) the facts carry, in order."""
    return [pair for f in facts if isinstance(f, IvrVariablesSet) for pair in f.variables]


# -- whole calls ---------------------------------------------------------------------------


def test_synthetic_answered_call() -> None:
    facts = run(tracker(), events(FIXTURES / "ami_synthetic_call_answered.txt"))
    uid = "1732345678.0"
    assert facts[0] == CallStarted(
        call_id=uid,
        linked_id=uid,
        channel="PJSIP/carrier-00000000",
        caller_number="081234567890",
        caller_name="",
        line="112",
        at=at("1732345678.100000"),
    )
    # One fact, at the join, with the last value of each (IVR_QUEUE was preset first).
    assert [f for f in facts if isinstance(f, IvrVariablesSet)] == [IvrVariablesSet(uid, (
        ("call_id", uid),
        ("line", "112"),
        ("queue", "medical"),
        ("choice", "2"),
        ("outcome", "chosen"),
        ("category", "emergency"),
        ("skill", "medical"),
    ), next(f.at for f in facts if isinstance(f, QueueJoined)))]
    call = [f for f in facts
            if not isinstance(f, IvrVariablesSet | OperatorStateChanged | LegProgressed
                              | AsteriskBooted | AsteriskShutdown | AsteriskReturned | CallCut
                              | LegCut)]
    assert [type(f) for f in call] == [
        CallStarted,
        QueueJoined,
        OperatorRung,
        QueueLeft,
        OperatorAnswered,
        OperatorCompleted,
        CallEnded,
    ]
    assert {f.call_id for f in call} == {uid}
    joined, rung, _left, answered, completed, ended = call[1:]
    assert isinstance(joined, QueueJoined)
    assert (joined.queue, joined.position) == ("medical", 1)
    assert isinstance(rung, OperatorRung)
    assert rung.operator == "PJSIP/op1001"
    assert isinstance(answered, OperatorAnswered)
    assert (answered.wait_seconds, answered.ring_seconds) == (4, 4)
    assert isinstance(completed, OperatorCompleted)
    assert (completed.talk_seconds, completed.ended_by) == (42, "caller")
    assert ended == CallEnded(uid, 16, "Normal Clearing", at=ended.at)
    states = [f.state for f in facts if isinstance(f, OperatorStateChanged)]
    assert states == ["ringing", "talking", "idle"]


def test_synthetic_abandoned_call_keeps_original_and_final_positions() -> None:
    t = tracker()
    facts = run(t, events(FIXTURES / "ami_synthetic_call_abandoned.txt"))
    (abandoned,) = [f for f in facts if isinstance(f, QueueAbandoned)]
    assert abandoned == QueueAbandoned(
        call_id="1732346000.7",
        queue="medical",
        original_position=3,
        final_position=1,
        wait_seconds=25,
        at=abandoned.at,
    )
    started = facts[0]
    assert isinstance(started, CallStarted)
    assert (started.line, started.caller_number) == ("119", "+6281298765432")
    assert ("choice", "") in ivr_pairs(facts)
    assert isinstance(facts[-1], CallEnded)
    assert t.live_calls == frozenset()


@pytest.mark.parametrize("path", ALL_CALLS, ids=lambda p: p.name)
def test_transcript_follows_one_call_from_start_to_end(path: Path) -> None:
    t = tracker()
    evs = events(path)
    facts = run(t, evs)
    started = [f for f in facts if isinstance(f, CallStarted)]
    assert len(started) == 1, "operator legs must not start calls"
    call_id = started[0].call_id
    assert started[0].linked_id == call_id
    assert started[0].line in LINES
    kinds = {f.kind for f in facts if getattr(f, "call_id", None) == call_id}
    expected = {"call_started", "ivr_variables", "queue_joined"}
    expected |= (
        {"operator_rung", "operator_answered", "operator_completed"}
        if path in ANSWERED
        else {"queue_abandoned"}
    )
    assert expected <= kinds
    names = {name for name, _ in ivr_pairs(facts)}
    assert {"line", "queue"} <= names
    for abandoned in (f for f in facts if isinstance(f, QueueAbandoned)):
        assert abandoned.original_position >= abandoned.final_position >= 1
    # The call ends exactly when its own channel hangs up, whatever the operator leg does.
    hung_up = [e for e in evs if e["Event"] == "Hangup" and e["Uniqueid"] == call_id]
    ended = [f for f in facts if isinstance(f, CallEnded)]
    assert len(ended) == len(hung_up) <= 1
    assert t.live_calls == (frozenset() if hung_up else {call_id})


def test_hang_up_in_the_ivr_never_reaches_a_queue() -> None:
    uid = "1732349999.9"
    t = tracker()
    facts = run(
        t,
        [
            ev("Newchannel", **snapshot(uid, ChannelState="4")),
            ev("VarSet", **snapshot(uid), Variable="IVR_LINE", Value="112"),
            ev("VarSet", **snapshot(uid, Context="siaga112-ivr"), Variable="IVR_CHOICE", Value=""),
            ev("Hangup", "1732345690.5", **snapshot(uid), Cause="16", **{"Cause-txt": "Normal"}),
        ],
    )
    # The call ended in the IVR: what was set goes out, as one fact, just before the end.
    assert [type(f) for f in facts] == [CallStarted, IvrVariablesSet, CallEnded]
    assert facts[1] == IvrVariablesSet(uid, (("line", "112"), ("choice", "")),
                                       at("1732345690.500000"))
    assert facts[-1] == CallEnded(uid, 16, "Normal", at("1732345690.500000"))
    assert t.live_calls == frozenset()


# -- which channel is a call ----------------------------------------------------------------


def test_operator_legs_are_not_calls() -> None:
    caller, leg = "1732345678.0", "1732345691.1"
    operator = snapshot(leg, caller, Channel="PJSIP/op1001-00000001", Context="operators")
    t = tracker()
    assert len(arrive(t, caller)) == 1
    assert t.handle(ev("Newchannel", **operator)) == []
    assert t.handle(ev("VarSet", **operator, Variable="IVR_SKILL", Value="x")) == []
    assert t.handle(ev("Hangup", **operator, Cause="16")) == []
    assert t.live_calls == {caller}


def test_transfer_legs_are_not_calls_and_report_only_their_progress() -> None:
    """An attended transfer to an agency as the lab shows it: Atxfer's Local pair (whose
    second half runs siaga112-consult and reports the leg), the agency's carrier-out channel,
    the operator leaving (AgentComplete, transfer), the Local pair optimised away, then the
    agency and the caller hanging up. Only the caller's channel is a call, the operator's
    queue state is the queue's, and the leg's progress comes from its UserEvents."""
    caller = "1732345678.0"
    local1 = snapshot("1732345700.3", caller, Channel="Local/7*0275321113@siaga112-consult"
                      "-00000000;1", Context="siaga112-consult", Exten="7*0275321113")
    local2 = snapshot("1732345700.4", caller, Channel="Local/7*0275321113@siaga112-consult"
                      "-00000000;2", Context="siaga112-consult", Exten="7*0275321113")
    agency = snapshot("1732345701.5", caller, Channel="PJSIP/carrier-out-00000002",
                      Context="siaga112-outbound", Exten="s")
    operator = snapshot("1732345691.1", caller, Channel="PJSIP/op1001-00000001",
                        Context="operators")
    t = tracker()
    assert len(arrive(t, caller)) == 1
    facts = run(t, [
        ev("Newchannel", **local1), ev("Newchannel", **local2),
        ev("UserEvent", "1732345700.500000", **local2, UserEvent="SiagaLeg", Leg="7",
           State="dialling"),
        ev("Newchannel", **agency),
        ev("UserEvent", "1732345702.000000", **agency, UserEvent="SiagaLeg", Leg="7",
           State="answered"),
        ev("VarSet", **local2, Variable="DIALSTATUS", Value="ANSWER"),
        ev("Hangup", **operator, Cause="16"),
        ev("Hangup", **local1, Cause="16"), ev("Hangup", **local2, Cause="16"),
        ev("UserEvent", "1732345720.000000", **agency, UserEvent="SiagaLeg", Leg="7",
           State="ended", Status="ANSWER"),
        ev("Hangup", **agency, Cause="16"),
    ])
    assert facts == [
        LegProgressed(7, "dialling", "", "1732345700.4", at("1732345700.500000")),
        LegProgressed(7, "answered", "", "1732345701.5", at("1732345702.000000")),
        LegProgressed(7, "ended", "ANSWER", "1732345701.5", at("1732345720.000000")),
    ]
    assert t.live_calls == {caller}
    (ended,) = t.handle(ev("Hangup", **snapshot(caller), Cause="16"))
    assert isinstance(ended, CallEnded) and t.live_calls == frozenset()


def test_a_channel_starting_its_own_chain_outside_the_carrier_context_is_not_a_call() -> None:
    own = snapshot("1732345700.2", Channel="PJSIP/op1001-00000002", Context="operators")
    assert tracker().handle(ev("Newchannel", **own)) == []


# A supervisor listening in (telephony.supervision): the events of the ChanSpy leg as the lab's
# Asterisk 22 sent them (timestamps moved into the synthetic call), and its CoreShowChannel.
_SPY = {"Channel": "PJSIP/op1002-00000002", "Language": "en", "AccountCode": "",
        "Context": "operators", "Exten": "s", "Priority": "1", "Uniqueid": "1732345687.2",
        "Linkedid": "1732345687.2"}
SPY_LEG = [
    ev("Newchannel", "1732345687.423131", **_SPY, ChannelState="0", ChannelStateDesc="Down",
       CallerIDNum="<unknown>", CallerIDName="<unknown>", ConnectedLineNum="<unknown>",
       ConnectedLineName="<unknown>"),
    ev("OriginateResponse", "1732345687.425668", ActionID="action/971ded8c/1/30",
       Response="Success", Channel=_SPY["Channel"], Application="ChanSpy",
       Data="PJSIP/op1001-00000001,qEu", Reason="4", Uniqueid=_SPY["Uniqueid"],
       CallerIDNum="op1001", CallerIDName="Dengarkan op1001"),
    ev("Hangup", "1732345689.187431", **_SPY, ChannelState="6", ChannelStateDesc="Up",
       CallerIDNum="op1001", CallerIDName="Dengarkan op1001", ConnectedLineNum="op1001",
       ConnectedLineName="Dengarkan op1001", Cause="0", **{"Cause-txt": "Unknown"}),
]


def test_a_supervisors_chanspy_leg_is_no_call_and_leaves_the_call_as_it_was() -> None:
    call = events(FIXTURES / "ami_synthetic_call_answered.txt")
    connect = next(i for i, e in enumerate(call) if e["Event"] == "AgentConnect")
    listened = [*call[:connect + 1], *SPY_LEG[:2], *call[connect + 1:-1], SPY_LEG[2], call[-1]]
    assert run(tracker(), listened) == run(tracker(), call)
    # Seen on a resync while it spies: an originated channel of a phone, not a call.
    channel = ev("CoreShowChannel", **{**_SPY, "ChannelState": "6", "ChannelStateDesc": "Up",
                                       "CallerIDNum": "op1001", "Application": "ChanSpy",
                                       "ApplicationData": "PJSIP/op1001-00000001,qEu",
                                       "Duration": "00:00:02", "BridgeId": ""})
    complete = ev("CoreShowChannelsComplete", EventList="Complete", ListItems="1")
    outcome = tracker().resync([], [channel, complete], [])
    assert outcome.facts == [] and outcome.rejected == []


@pytest.mark.parametrize(
    ("exten", "line"),
    [("112", "112"), ("119", "119"), ("0112", "112"), ("+62112", "112"), ("s", "112"),
     ("sos", "112"), ("0119", "119"), ("+119", "119"), ("62119", "119"), ("+62119", "119"),
     ("0062119", "119"), ("119;phone-context=+62", "119"), ("1190", "112"), ("00119", "112")],
)
def test_every_carrier_number_is_a_call_on_the_line_the_dialplan_gives_it(
    exten: str, line: str
) -> None:
    (started,) = arrive(tracker(), "1.1", Exten=exten)
    assert isinstance(started, CallStarted)
    assert started.line == line


def test_non_ivr_variables_are_ignored_and_inheritable_ones_are_not() -> None:
    uid = "1732345678.0"
    t = tracker()
    arrive(t, uid)
    assert t.handle(ev("VarSet", **snapshot(uid), Variable="AGISTATUS", Value="SUCCESS")) == []
    assert t.handle(ev("VarSet", **snapshot(uid), Variable="__IVR_SKILL", Value="fire")) == []
    assert t.handle(ev("VarSet", **snapshot(uid), Variable="IVR_QUEUE", Value="fire")) == []
    (fact, _) = t.handle(ev("Hangup", **snapshot(uid), Cause="16"))
    assert fact == IvrVariablesSet(uid, (("skill", "fire"), ("queue", "fire")),
                                   at("1732345678.000100"))


def test_caller_id_is_sanitised_not_rejected() -> None:
    hostile = "\u202e0812\x1b[31m" + "9" * 500
    (started,) = arrive(tracker(), "1.1", CallerIDNum=hostile, CallerIDName="Budi\r\nX: y")
    assert isinstance(started, CallStarted)
    assert started.caller_number == "0812[31m" + "9" * 72
    assert started.caller_name == "BudiX: y"


def test_a_caller_whose_newchannel_was_unreadable_starts_at_the_cleaned_caller_id() -> None:
    """A CR LF in the caller number cut the channel's Newchannel in two (refused by the
    decoder); siaga112-caller-id drops it, and the NewCallerid it causes starts the call."""
    uid = "1732345678.9"
    t = tracker()
    cleaned = snapshot(uid, CallerIDNum="0812345678901", Context="siaga112-caller-id",
                       Exten="s")
    assert t.handle(ev("NewCallerid", **cleaned, **{"CID-CallingPres": "0"})) == []
    (started,) = t.handle(ev("VarSet", **snapshot(uid), Variable="IVR_SIP_CALL_ID",
                             Value="a84b4c76e66710@pc33"))
    assert isinstance(started, CallStarted)
    assert (started.call_id, started.caller_number, started.channel) == (
        uid, "0812345678901", f"PJSIP/carrier-{uid[-4:]}")
    # Once known, a later NewCallerid there does not start it again; an operator's leg (not
    # its own Linkedid) and other contexts' channels are no calls.
    assert t.handle(ev("NewCallerid", **cleaned)) == []
    assert t.handle(ev("NewCallerid", **snapshot("1732345679.1", "1732345678.9",
                                                 Context="siaga112-caller-id"))) == []
    assert t.handle(ev("NewCallerid", **snapshot("1732345679.2", Context="operators"))) == []
    assert t.handle(ev("VarSet", **snapshot("1732345679.2"), Variable="IVR_LINE",
                       Value="112")) == []


def test_a_caller_id_the_dialplan_corrects_on_arrival_is_the_one_the_call_starts_with() -> None:
    """A SIM-less phone's From user IMEI:<digits> reaches Asterisk as caller id "IMEI";
    siaga112-simless-id sets IMEI<digits> before the call is given out (NewCallerid)."""
    uid = "1732345678.7"
    t = tracker()
    assert t.handle(ev("Newchannel", **snapshot(uid, CallerIDNum="IMEI"))) == []
    corrected = snapshot(uid, CallerIDNum="IMEI356938035643809", Context="siaga112-simless-id")
    assert t.handle(ev("NewCallerid", **corrected, **{"CID-CallingPres": "0"})) == []
    (started,) = t.handle(ev("VarSet", **snapshot(uid), Variable="IVR_SIP_CALL_ID",
                             Value="a84b4c76e66710@pc33"))
    assert isinstance(started, CallStarted)
    assert (started.caller_number, started.caller_name) == ("IMEI356938035643809", "")
    # A change once the call is out is not the id it arrived with; other channels' are not
    # calls.
    assert t.handle(ev("NewCallerid", **snapshot(uid, CallerIDNum="999"))) == []
    assert t.handle(ev("NewCallerid", **snapshot("1732345679.8", CallerIDNum="1"))) == []


def test_missing_timestamp_falls_back_to_the_clock() -> None:
    event = ev("Newchannel", **snapshot("1.1"))
    del event["Timestamp"]
    t = tracker()
    assert t.handle(event) == []
    (started,) = t.handle(ev("VarSet", **snapshot("1.1"), Variable="IVR_LINE", Value="112"))
    assert isinstance(started, CallStarted) and started.at == NOW


# -- determinism ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_CALLS, ids=lambda p: p.name)
def test_same_events_same_facts(path: Path) -> None:
    evs = events(path)
    assert run(tracker(), evs) == run(tracker(), evs)


@pytest.mark.parametrize("path", ALL_CALLS, ids=lambda p: p.name)
def test_duplicated_events_give_identical_facts(path: Path) -> None:
    t = tracker()
    for event in events(path):
        assert t.handle(event) == t.handle(event)


@pytest.mark.parametrize("path", ALL_CALLS, ids=lambda p: p.name)
def test_replayed_transcript_gives_identical_facts(path: Path) -> None:
    t = tracker()
    evs = events(path)
    first = run(t, evs)
    live = t.live_calls
    assert run(t, evs) == first
    assert t.live_calls == live


# -- malformed events ----------------------------------------------------------------------

JOIN = ev("QueueCallerJoin", **snapshot("1.1"), Queue="medical", Position="1", Count="1")


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"Uniqueid": None}, "Uniqueid missing"),
        ({"Position": "abc"}, "Position is not a number"),
        ({"Position": "\u0663"}, "Position is not a number"),  # an Arabic-Indic three
        ({"Position": "-1"}, "Position is not a number"),
        ({"Position": "9" * 40}, "Position is not a number"),
        ({"Timestamp": "yesterday"}, "Timestamp is malformed"),
        ({"Timestamp": "9" * 30}, "Timestamp is malformed"),
        ({"Queue": "med\x1b[2Jical"}, "Queue has control characters"),
        ({"Queue": "q" * 10_000}, "Queue longer than 256"),
        ({"Uniqueid": ["1.1", "2.2"]}, "Uniqueid repeated"),
    ],
)
def test_malformed_event_is_rejected_in_one_line(
    changes: dict[str, str | list[str] | None], problem: str
) -> None:
    event: dict[str, str | list[str]] = dict(JOIN)
    for key, value in changes.items():
        if value is None:
            del event[key]
        else:
            event[key] = value
    t = tracker()
    with pytest.raises(AmiEventError, match=problem) as caught:
        t.handle(event)
    message = str(caught.value)
    assert "\n" not in message
    assert "\x1b" not in message
    assert len(message) < 300


@pytest.mark.parametrize(
    "event",
    [
        member("QueueMemberStatus", "42"),
        member("QueueMemberStatus", "1", paused="yes"),
        ev("Hangup", **snapshot("1.1"), Cause="sixteen"),
        ev("AgentConnect", **snapshot("1.1"), Queue="q", Interface="PJSIP/op1", HoldTime="1"),
        ev("VarSet", **snapshot("1.1"), Variable="IVR_SKILL-NAME", Value="x"),
    ],
    ids=["device state", "paused flag", "cause", "ring time", "variable name"],
)
def test_more_malformed_events(event: dict[str, str]) -> None:
    t = tracker()
    t.handle(ev("Newchannel", **snapshot("1.1")))
    with pytest.raises(AmiEventError):
        t.handle(event)
    assert t.live_calls == {"1.1"}


def test_unknown_and_unrelated_events_give_nothing() -> None:
    t = tracker()
    assert t.handle(ev("Newexten", **snapshot("1.1"))) == []
    assert t.handle({"Response": "Success"}) == []
    assert t.handle(ev("Hangup", **snapshot("never.seen"), Cause="16")) == []


# -- operators -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "paused", "state"),
    [
        ("0", "0", "unknown"),
        ("1", "0", "idle"),
        ("1", "1", "paused"),
        ("2", "0", "talking"),
        ("2", "1", "talking"),
        ("3", "0", "busy"),
        ("4", "0", "invalid"),
        ("5", "1", "unavailable"),
        ("6", "0", "ringing"),
        ("7", "0", "ringing_in_use"),
        ("8", "0", "on_hold"),
    ],
)
def test_operator_state_from_device_state(status: str, paused: str, state: str) -> None:
    (fact,) = tracker().handle(member("QueueMemberStatus", status, paused, "istirahat"))
    assert fact == OperatorStateChanged(
        "PJSIP/op1001", "medical", state, paused == "1", "istirahat", at("1732345678.000100")
    )


def test_pause_added_and_removed_members() -> None:
    t = tracker()
    (paused,) = t.handle(member("QueueMemberPause", "1", "1", "sholat"))
    assert isinstance(paused, OperatorStateChanged)
    assert (paused.state, paused.paused, paused.pause_reason) == ("paused", True, "sholat")
    (added,) = t.handle(member("QueueMemberAdded", "1"))
    assert isinstance(added, OperatorStateChanged)
    assert added.state == "idle"
    (removed,) = t.handle(member("QueueMemberRemoved", "1", "1", "sholat"))
    assert removed == OperatorStateChanged(
        "PJSIP/op1001", "medical", "logged_out", False, "", at("1732345678.000100")
    )


# -- resync --------------------------------------------------------------------------------


def synthetic_resync() -> tuple[list[AmiEvent], list[AmiEvent], list[AmiEvent]]:
    return resync_replies(FIXTURES / "ami_synthetic_resync.txt")


def test_resync_from_nothing_restores_calls_queues_and_operators() -> None:
    t = tracker()
    outcome = t.resync(*synthetic_resync())
    assert outcome.rejected == []
    started = {f.call_id: f for f in outcome.facts if isinstance(f, CallStarted)}
    assert set(started) == {"1732346900.2", "1732347000.3", "1732347100.5"}
    assert started["1732347000.3"].at == NOW - timedelta(seconds=40)
    assert started["1732347000.3"].caller_number == "082222222222"
    assert started["1732347100.5"].line == "119"  # from IVR_LINE: the channel left from-carrier
    assert started["1732347100.5"].caller_number == ""
    ivr = {(f.call_id, name, value) for f in outcome.facts if isinstance(f, IvrVariablesSet)
           for name, value in f.variables}
    # One fact per call, whatever the number of variables.
    per_call = [f.call_id for f in outcome.facts if isinstance(f, IvrVariablesSet)]
    assert len(per_call) == len(set(per_call))
    assert ("1732347000.3", "skill", "medical") in ivr
    assert ("1732347100.5", "queue", "medical") in ivr
    assert not [v for v in ivr if v[0] == "1732347100.5" and v[1] == "choice"]  # unset: skipped
    joined = [f for f in outcome.facts if isinstance(f, QueueJoined)]
    assert joined == [QueueJoined("1732347000.3", "medical", 1, NOW - timedelta(seconds=38))]
    operators = {
        (f.operator, f.queue): (f.state, f.paused, f.pause_reason)
        for f in outcome.facts
        if isinstance(f, OperatorStateChanged)
    }
    assert operators[("PJSIP/op1001", "medical")] == ("talking", False, "")
    assert operators[("PJSIP/op1002", "all-operators")] == ("paused", True, "istirahat")
    assert operators[("PJSIP/op1003", "medical")] == ("unavailable", False, "")
    assert not [f for f in outcome.facts if isinstance(f, CallVanished)]
    assert t.live_calls == set(started)


def test_resync_vanishes_known_calls_that_are_gone_and_adopts_open_ones() -> None:
    t = tracker()
    t.handle(ev("Newchannel", **snapshot("1732345000.1")))
    outcome = t.resync(*synthetic_resync(), open_call_ids={"1732346900.2", "1732344000.8"})
    vanished = [f for f in outcome.facts if isinstance(f, CallVanished)]
    assert vanished == [CallVanished("1732344000.8", NOW), CallVanished("1732345000.1", NOW)]
    started = {f.call_id for f in outcome.facts if isinstance(f, CallStarted)}
    # The open one is adopted silently; the vanished one's start, held, goes out first.
    assert started == {"1732347000.3", "1732347100.5", "1732345000.1"}
    assert "1732346900.2" in t.live_calls
    assert "1732345000.1" not in t.live_calls
    # A late Hangup for a vanished call still tells how it ended.
    late = ev("Hangup", **snapshot("1732345000.1"), Cause="16", **{"Cause-txt": "Normal"})
    assert [type(f) for f in t.handle(late)] == [CallEnded]


def test_resync_does_not_vanish_a_call_whose_end_it_saw() -> None:
    t = tracker()
    t.handle(ev("Newchannel", **snapshot("1732345000.1")))
    t.handle(ev("Hangup", **snapshot("1732345000.1"), Cause="16"))
    outcome = t.resync(*synthetic_resync(), open_call_ids={"1732345000.1"})
    assert not [f for f in outcome.facts if isinstance(f, CallVanished)]


def test_resync_then_live_events_continue_the_calls() -> None:
    t = tracker()
    t.resync(*synthetic_resync())
    hangup = ev("Hangup", **snapshot("1732347000.3"), Cause="16", **{"Cause-txt": "Normal"})
    assert [type(f) for f in t.handle(hangup)] == [CallEnded]
    varset = ev("VarSet", **snapshot("1732347100.5"), Variable="IVR_CHOICE", Value="3")
    assert t.handle(varset) == []  # held until the call joins a queue or ends
    varset = ev("VarSet", **snapshot("1732347100.5"), Variable="IVR_QUEUE", Value="medical")
    assert t.handle(varset) == []
    hangup = ev("Hangup", **snapshot("1732347100.5"), Cause="16")
    assert [type(f) for f in t.handle(hangup)] == [IvrVariablesSet, CallEnded]


def test_second_resync_does_not_restart_or_rejoin_known_calls() -> None:
    t = tracker()
    first = t.resync(*synthetic_resync())
    second = t.resync(*synthetic_resync())
    assert not [f for f in second.facts if isinstance(f, CallStarted | QueueJoined | CallVanished)]
    assert [f for f in second.facts if isinstance(f, IvrVariablesSet)] == [
        f for f in first.facts if isinstance(f, IvrVariablesSet)
    ]


def test_resync_is_deterministic() -> None:
    assert tracker().resync(*synthetic_resync()) == tracker().resync(*synthetic_resync())


def test_a_call_that_left_the_queue_while_away_rejoins_on_a_later_resync() -> None:
    queues, channels, status = synthetic_resync()
    t = tracker()
    t.resync(queues, channels, status)
    without_entry = [q for q in queues if q["Event"] != "QueueEntry"]
    complete = modified(without_entry[-1], ListItems=str(len(without_entry) - 1))
    t.resync([*without_entry[:-1], complete], channels, status)
    again = t.resync(queues, channels, status)
    assert [f.call_id for f in again.facts if isinstance(f, QueueJoined)] == ["1732347000.3"]


@pytest.mark.parametrize("damage", ["no complete event", "wrong count", "bad entry"])
def test_no_call_vanishes_on_an_incomplete_channel_list(damage: str) -> None:
    queues, channels, status = synthetic_resync()
    if damage == "no complete event":
        channels = channels[:-1]
    elif damage == "wrong count":
        channels = [*channels[:-1], modified(channels[-1], ListItems="99")]
    else:
        channels = [modified(channels[0], Uniqueid="bad\x00id"), *channels[1:]]
    t = tracker()
    t.handle(ev("Newchannel", **snapshot("1732345000.1")))
    outcome = t.resync(queues, channels, status, open_call_ids={"1732344000.8"})
    assert not [f for f in outcome.facts if isinstance(f, CallVanished)]
    assert any("no call declared vanished" in str(r) for r in outcome.rejected)
    assert "1732345000.1" in t.live_calls


def test_status_reports_unset_variables_as_null() -> None:
    queues, channels, status = synthetic_resync()
    variables = ["IVR_LINE=119", "IVR_SKILL=(null)", "IVR_OUTCOME="]
    patched = [
        modified(m, Variable=variables) if m.get("Uniqueid") == "1732347100.5" else m
        for m in status
    ]
    outcome = tracker().resync(queues, channels, patched)
    pairs = {(f.call_id, name) for f in outcome.facts if isinstance(f, IvrVariablesSet)
             for name, _ in f.variables}
    assert [name for _, name in pairs].count("line") == 3
    assert ("1732347100.5", "skill") not in pairs


@pytest.mark.parametrize("path", RESYNC, ids=lambda p: p.name)
def test_recorded_resync_restores_a_consistent_picture(path: Path) -> None:
    replies = resync_replies(path)
    outcome = tracker().resync(*replies, open_call_ids={"1700000000.99"})
    assert outcome.rejected == []
    assert outcome == tracker().resync(*replies, open_call_ids={"1700000000.99"})
    started = {f.call_id: f for f in outcome.facts if isinstance(f, CallStarted)}
    assert all(f.linked_id == f.call_id and f.line in LINES for f in started.values())
    for fact in outcome.facts:
        if isinstance(fact, QueueJoined | IvrVariablesSet):
            assert fact.call_id in started
    assert CallVanished("1700000000.99", NOW) in outcome.facts


def test_talk_after_a_blind_transfer_nobody_answered_counts_as_talk() -> None:
    """A blind transfer as the lab shows it: Queue() completes the operator's talk at the
    transfer (2 s); the agency does not answer, [siaga112-transfer] rings the operator back
    and they talk 40 s more, until the caller hangs up and the operator's channel with it.
    The call's talk time was the 2 s before the transfer; it is the whole talk, 42 s (the
    6 s the agency rang, with nobody talking, are not in it)."""
    caller = "1732345678.0"
    back = snapshot("1732345688.7", caller, Channel="PJSIP/op1001-00000007",
                    Context="siaga112-transfer", Exten="back")
    t = tracker()
    arrive(t, caller)
    run(t, [ev("AgentConnect", "1732345680.000000", Queue="medical",
               Interface="PJSIP/op1001", MemberName="op1001", HoldTime="2", RingTime="1",
               **snapshot(caller), DestUniqueid="1732345679.1", DestLinkedid=caller)])
    transfer = t.handle(ev("AgentComplete", "1732345682.000000", Queue="medical",
                           Interface="PJSIP/op1001", MemberName="op1001", HoldTime="2",
                           TalkTime="2", Reason="transfer", **snapshot(caller)))
    assert [(f.talk_seconds, f.ended_by) for f in transfer
            if isinstance(f, OperatorCompleted)] == [(2, "transfer")]
    talk = [
        ev("UserEvent", "1732345688.600000", **back, UserEvent="SiagaBack", Call=caller,
           State="answered"),
        ev("Hangup", "1732345728.500000", **snapshot(caller), Cause="16"),
        ev("UserEvent", "1732345728.600000", **back, UserEvent="SiagaBack", Call=caller,
           State="ended"),
    ]
    facts = run(t, talk)
    completed = [f for f in facts if isinstance(f, OperatorCompleted)]
    assert completed == [OperatorCompleted(caller, "medical", "PJSIP/op1001", 2, 42,
                                           "transfer", at("1732345728.600000"))]
    assert run(t, talk[-1:]) == completed  # a replayed end: the same fact


def test_talk_of_a_transfer_that_reached_the_agency_ends_at_the_transfer() -> None:
    """Nobody rang the operator back: no SiagaBack, the talk stays Queue()'s. A SiagaBack
    for a call the tracker saw no transfer of (the listener restarted in between) changes
    nothing either; nor does a completion that did not end in a transfer."""
    t = tracker()
    complete = ev("AgentComplete", "1732345682.000000", Queue="medical",
                  Interface="PJSIP/op1001", MemberName="op1001", HoldTime="2", TalkTime="9",
                  Reason="caller", **snapshot("1.1"))
    assert [f.talk_seconds for f in t.handle(complete) if isinstance(f, OperatorCompleted)
            ] == [9]
    back = snapshot("1.7", "1.1", Channel="PJSIP/op1001-00000007")
    for state in ("answered", "ended"):
        assert t.handle(ev("UserEvent", **back, UserEvent="SiagaBack", Call="1.1",
                           State=state)) == []
    with pytest.raises(AmiEventError):
        t.handle(ev("UserEvent", **back, UserEvent="SiagaBack", Call="1.1", State="gone"))


def test_an_attended_transfer_that_joined_the_caller_says_so() -> None:
    """AttendedTransfer, merged into the agency's bridge (the operator's "Serahkan" or their
    hang-up in the consult): the caller's call was handed over, to the target's channel.
    A failed or three-way transfer, or one of a channel that is not a call, is not."""
    caller = "1732345678.0"
    t = tracker()
    arrive(t, caller)
    operator = {f"OrigTransferer{k}": v for k, v in snapshot(
        "1732345679.1", caller, Channel="PJSIP/op1001-00000001").items()}
    transferee = {f"Transferee{k}": v for k, v in snapshot(caller).items()}
    target = {f"TransferTarget{k}": v for k, v in snapshot(
        "1732345690.5", caller, Channel="PJSIP/carrier-out-00000005").items()}
    done = ev("AttendedTransfer", "1732345699.000000", Result="Success", DestType="Bridge",
              DestBridgeUniqueid="b2", IsExternal="No", **operator, **transferee, **target)
    assert t.handle(done) == [CallTransferred(caller, "PJSIP/carrier-out-00000005",
                                              at("1732345699.000000"))]
    assert t.handle(modified(done, Result="Fail")) == []
    assert t.handle(modified(done, DestType="Threeway")) == []
    other = {f"Transferee{k}": v for k, v in snapshot("1.9").items()}
    assert t.handle(modified(done, **other)) == []


def test_agent_complete_without_caller_snapshot_uses_the_operator_legs_linkedid() -> None:
    """Both legs hung up at once: Asterisk sends AgentComplete with only the Dest* fields."""
    complete = ev(
        "AgentComplete", Queue="medical", Interface="PJSIP/op1001", MemberName="op1001",
        HoldTime="4", TalkTime="31", Reason="agent",
        DestChannel="PJSIP/op1001-00000002", DestUniqueid="1.2", DestLinkedid="1.1",
    )
    (fact,) = tracker().handle(complete)
    assert isinstance(fact, OperatorCompleted)
    assert (fact.call_id, fact.talk_seconds, fact.ended_by) == ("1.1", 31, "agent")


def test_agent_complete_without_either_snapshot_is_the_operators_open_call() -> None:
    """Under load app_queue builds AgentComplete after both legs are gone: no Uniqueid, no
    Dest* fields. The operator was on one call in that queue: the one AgentConnect opened."""
    t = tracker()
    connect = ev(
        "AgentConnect", Queue="fire", Interface="PJSIP/op1001", MemberName="op1001",
        HoldTime="0", RingTime="0", Uniqueid="1.1", Linkedid="1.1",
        DestUniqueid="1.2", DestLinkedid="1.1",
    )
    bare = ev(
        "AgentComplete", Queue="fire", Interface="PJSIP/op1001", MemberName="op1001",
        HoldTime="0", TalkTime="8", Reason="caller",
    )
    t.handle(connect)
    (fact,) = t.handle(bare)
    assert isinstance(fact, OperatorCompleted)
    assert (fact.call_id, fact.talk_seconds, fact.ended_by) == ("1.1", 8, "caller")
    with pytest.raises(AmiEventError):  # that call is closed: a second one has no owner
        t.handle(bare)


# -- the fast paths agree with the exact definitions ---------------------------------------


def _clean_exactly(value: str, limit: int) -> str:
    return "".join(ch for ch in value if not invisible(ch))[:limit]


def test_clean_agrees_on_mixed_strings() -> None:
    rng = random.Random(112)
    alphabet = "aZ09 <>\t\n\r\x00\x7f\u00a0\u200b\u200e\u202e\u2028\u2029\ue000\ufeff☎é"
    for _ in range(5000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        limit = rng.randint(0, 10)
        assert tracker_module._clean(value, limit) == _clean_exactly(value, limit)


def _exact_values(event: AmiEvent) -> dict[str, list[str]]:
    """How an event reads, header by header: every spelling of a key merged, in order."""
    values: dict[str, list[str]] = {}
    for key, value in event.items():
        values.setdefault(key.lower(), []).extend([value] if isinstance(value, str) else value)
    return values


def _hostile_events(rng: random.Random) -> list[AmiEvent]:
    """Recorded events, some with a header respelled, repeated, emptied or renamed."""
    recorded = [e for path in ALL_CALLS + RESYNC for e in events(path)]
    names = ["Newchannel", "VarSet", "Hangup", "Newexten", "AgentConnect", "UserEvent", ""]
    out: list[AmiEvent] = []
    for _ in range(600):
        event: dict[str, str | list[str]] = dict(rng.choice(recorded).items())
        for _ in range(rng.randint(0, 3)):
            key = rng.choice([*event, "Event", "Uniqueid", "Variable", "Status", "Leg"])
            roll = rng.random()
            if roll < 0.3:
                event[key.upper()] = str(event.get(key, "x"))  # a second spelling
            elif roll < 0.5:
                event[key] = [str(event.get(key, "1")), "2"]
            elif roll < 0.6:
                event[key] = [str(event.get(key, "1"))]  # a list of one is one value
            elif roll < 0.7:
                event[key] = []
            elif roll < 0.85:
                event["Event"] = rng.choice(names)
            else:
                event.pop(key, None)
        out.append(event)
    return out


def test_fields_read_every_event_as_the_exact_reading_does() -> None:
    for event in _hostile_events(random.Random(119)):
        exact = _exact_values(event)
        fields = tracker_module._Fields(event, lambda: NOW)
        names = exact.get("event", [])
        assert fields.event == (names[0] if len(names) == 1 else "")
        for key in [*exact, "absent"]:
            values = exact.get(key, [])
            assert fields.all(key.upper()) == values
            if len(values) > 1:
                with pytest.raises(AmiEventError, match="repeated"):
                    fields.text(key)
            else:
                assert fields.text(key) == (values[0] if values else "")


def _outcome(handle: Callable[[], list[CallFact]]) -> object:
    try:
        return handle()
    except AmiEventError as exc:
        return str(exc)


def test_handle_gives_what_dispatching_every_event_gives() -> None:
    """Skipping unfollowed events by their name alone changes no outcome."""
    quick, thorough = tracker(), tracker()
    for event in _hostile_events(random.Random(1)):
        fields = tracker_module._Fields(event, lambda: NOW)
        handler = thorough._handlers.get(fields.event.lower())
        expected = _outcome(lambda: [] if handler is None else handler(fields))  # noqa: B023
        assert _outcome(lambda: quick.handle(event)) == expected  # noqa: B023
        assert quick.live_calls == thorough.live_calls


# -- a call's IVR variables, one fact ----------------------------------------------------


def varset(uid: str, name: str, value: str, timestamp: str = "1732345678.000100"
           ) -> dict[str, str]:
    return ev("VarSet", timestamp, **snapshot(uid), Variable=name, Value=value)


def test_ivr_variables_become_one_fact_when_the_call_joins_a_queue() -> None:
    """The dialplan presets IVR_QUEUE, the IVR sets its variables (IVR_QUEUE last), a fail-open
    sets IVR_OUTCOME and IVR_QUEUE again, the screening IVR_SCREENING: one fact at the join,
    with the last value of each."""
    uid = "1732345678.0"
    t = tracker()
    arrive(t, uid)
    published = [("IVR_LINE", "112"), ("IVR_QUEUE", "emergency-general"),  # the presets
                 ("IVR_CHOICE", "1"), ("IVR_OUTCOME", "chosen"), ("IVR_CATEGORY", "emergency"),
                 ("IVR_SKILL", "fire"), ("IVR_FIRST_KEY_MS", "900"), ("IVR_INVALID_KEYS", "0"),
                 ("IVR_SCORE", "0.100"), ("IVR_REASONS", "a; b"), ("IVR_PRIORITY", "5"),
                 ("IVR_CHOICE", "2"), ("IVR_QUEUE", "fire"),
                 ("IVR_OUTCOME", "failopen"), ("IVR_QUEUE", "emergency-general"),
                 ("IVR_SCREENING", "pressed")]
    assert run(t, [varset(uid, name, value) for name, value in published]) == []
    join = ev("QueueCallerJoin", "1732345690.000000", **snapshot(uid),
              Queue="emergency-general", Position="1", Count="1")
    fact, joined = t.handle(join)
    assert fact == IvrVariablesSet(uid, (
        ("line", "112"), ("queue", "emergency-general"), ("choice", "2"),
        ("outcome", "failopen"), ("category", "emergency"), ("skill", "fire"),
        ("first_key_ms", "900"), ("invalid_keys", "0"), ("score", "0.100"),
        ("reasons", "a; b"), ("priority", "5"), ("screening", "pressed")),
        at("1732345690.000000"))
    assert isinstance(joined, QueueJoined)
    # The same join again (a replayed event): the same fact, which the store dedupes.
    assert t.handle(join) == [fact, joined]
    # Overflow to another queue later: nothing more to give.
    overflow = ev("QueueCallerJoin", "1732345720.000000", **snapshot(uid),
                  Queue="all-operators", Position="1", Count="1")
    assert [type(f) for f in t.handle(overflow)] == [QueueJoined]


def test_a_call_that_ends_in_the_ivr_gives_what_it_set_before_the_end() -> None:
    uid = "1732345680.0"
    t = tracker()
    t.handle(ev("Newchannel", **snapshot(uid)))
    t.handle(varset(uid, "IVR_LINE", "119"))
    assert t.handle(varset(uid, "IVR_QUEUE", "medical")) == []
    hangup = ev("Hangup", "1732345691.000000", **snapshot(uid), Cause="16")
    ivr, ended = t.handle(hangup)
    assert ivr == IvrVariablesSet(uid, (("line", "119"), ("queue", "medical")),
                                  at("1732345691.000000"))
    assert isinstance(ended, CallEnded)


def test_a_resync_gives_one_fact_per_call_with_what_was_held() -> None:
    queues, channels, status = synthetic_resync()
    t = tracker()
    t.resync(queues, channels, status)
    uid = "1732347100.5"
    t.handle(varset(uid, "IVR_SCREENING", "timeout"))  # held: the call has not joined yet
    outcome = t.resync(queues, channels, status)
    (fact,) = [f for f in outcome.facts if isinstance(f, IvrVariablesSet) and f.call_id == uid]
    assert ("screening", "timeout") in fact.variables
    assert ("queue", "medical") in fact.variables
    # Released: the next hang-up has nothing more to give.
    hangup = ev("Hangup", **snapshot(uid), Cause="16")
    assert [type(f) for f in t.handle(hangup)] == [CallEnded]


def test_a_call_held_variables_vanish_with_it() -> None:
    uid = "1732345000.1"
    t = tracker()
    t.handle(ev("Newchannel", **snapshot(uid)))
    t.handle(varset(uid, "IVR_CHOICE", "3"))
    outcome = t.resync(*synthetic_resync())
    ivr = [f for f in outcome.facts if getattr(f, "call_id", None) == uid]
    assert ivr == [IvrVariablesSet(uid, (("choice", "3"),), NOW), CallVanished(uid, NOW)]


# -- the carrier's SIP Call-ID (IVR_SIP_CALL_ID, the dialplan's first step) -------------------


def test_a_call_starts_at_its_first_dialplan_step_with_the_carriers_call_id() -> None:
    uid = "1732345678.0"
    t = tracker()
    assert t.handle(ev("Newchannel", **snapshot(uid))) == []  # held one dialplan step
    assert t.live_calls == {uid}
    (started,) = t.handle(varset(uid, "IVR_SIP_CALL_ID", "a84b4c76e66710@pc33.atlanta.com"))
    assert isinstance(started, CallStarted)
    assert (started.call_id, started.sip_call_id) == (uid, "a84b4c76e66710@pc33.atlanta.com")
    assert started.at == at("1732345678.000100")  # still the Newchannel's instant
    # The Call-ID is the start's, not an IVR value; the same event again gives the same start.
    assert t.handle(varset(uid, "IVR_SIP_CALL_ID", "a84b4c76e66710@pc33.atlanta.com")) == [
        started]
    assert t.handle(varset(uid, "IVR_SIP_CALL_ID", "other@x")) == []
    assert t.handle(varset(uid, "IVR_LINE", "112")) == []
    (ivr, _) = t.handle(ev("Hangup", "1732345690.5", **snapshot(uid), Cause="16"))
    assert ivr == IvrVariablesSet(uid, (("line", "112"),), at("1732345690.500000"))


@pytest.mark.parametrize("first", ["IVR_CALL_ID", "hangup", "join"])
def test_a_call_whose_dialplan_sets_no_call_id_still_starts_first(first: str) -> None:
    uid = "1732345678.0"
    t = tracker()
    t.handle(ev("Newchannel", **snapshot(uid)))
    event = {"IVR_CALL_ID": varset(uid, "IVR_CALL_ID", uid),
             "hangup": ev("Hangup", **snapshot(uid), Cause="16"),
             "join": ev("QueueCallerJoin", **snapshot(uid), Queue="medical", Position="1",
                        Count="1")}[first]
    facts = t.handle(event)
    assert isinstance(facts[0], CallStarted) and facts[0].sip_call_id == ""
    assert [f for f in facts[1:] if isinstance(f, CallStarted)] == []


@pytest.mark.parametrize("value", ["a b@c", "a@b@c", "x" * 300, "a\u202eb"])
def test_a_malformed_call_id_is_rejected_and_the_start_comes_with_the_next_step(
        value: str) -> None:
    uid = "1732345678.0"
    t = tracker()
    t.handle(ev("Newchannel", **snapshot(uid)))
    with pytest.raises(AmiEventError, match="IVR_SIP_CALL_ID is no SIP Call-ID"):
        t.handle(varset(uid, "IVR_SIP_CALL_ID", value))
    (started,) = t.handle(varset(uid, "IVR_CALL_ID", uid))
    assert isinstance(started, CallStarted) and started.sip_call_id == ""


def test_an_empty_call_id_a_channel_without_sip_gives_the_start_without_one() -> None:
    uid = "1732345678.0"
    t = tracker()
    t.handle(ev("Newchannel", **snapshot(uid)))
    (started,) = t.handle(varset(uid, "IVR_SIP_CALL_ID", ""))
    assert isinstance(started, CallStarted) and started.sip_call_id == ""


def _with_call_id(status: list[AmiEvent], uid: str, call_id: str) -> list[AmiEvent]:
    """The Status reply with IVR_SIP_CALL_ID reported for ``uid``."""
    changed: list[AmiEvent] = []
    for event in status:
        if event.get("Uniqueid") != uid:
            changed.append(event)
            continue
        variables = event.get("Variable", [])
        listed = [variables] if isinstance(variables, str) else list(variables)
        changed.append(modified(event, Variable=[f"IVR_SIP_CALL_ID={call_id}", *listed]))
    return changed


def test_a_resync_gives_the_call_id_to_the_starts_it_gives() -> None:
    queues, channels, status = synthetic_resync()
    status = _with_call_id(status, "1732347000.3", "found@again")
    outcome = tracker().resync(queues, channels, status)
    started = {f.call_id: f.sip_call_id for f in outcome.facts if isinstance(f, CallStarted)}
    assert started["1732347000.3"] == "found@again"
    assert started["1732346900.2"] == ""
    assert not [pair for pair in ivr_pairs(outcome.facts) if pair[0] == "sip_call_id"]
    # A call whose start was still held (the line reconnected within its first step).
    t = tracker()
    t.handle(ev("Newchannel", **snapshot("1732347000.3")))
    outcome = t.resync(queues, channels, status)
    (held,) = [f for f in outcome.facts
               if isinstance(f, CallStarted) and f.call_id == "1732347000.3"]
    assert held.sip_call_id == "found@again"
    assert held.channel == snapshot("1732347000.3")["Channel"]  # the Newchannel's start
