"""The worklist's rules: which ended calls are on it and why, one entry per caller, what takes
a caller off it, withheld numbers, closing reasons, and the call-back's Originate."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from telephony.ami.channels import LiveChannel
from telephony.asterisk.causes import NETWORK_CAUSES
from telephony.asterisk.config import CONF_DIR as CONF
from telephony.callbacks.errors import InvalidClosure
from telephony.callbacks.model import (
    CALLER_RANG,
    CALLER_RANG_TEXT,
    Attempt,
    CallbackReason,
    Closure,
    ClosureReason,
    CutShort,
    EndedCall,
    Entry,
    Pending,
    backlog,
    callback_channel,
    check_closure,
    find_entry,
    how_it_went,
    leg_of_action,
    originate_action,
    pending,
    reason_for,
    worklist,
)
from telephony.calls.legs import LegOutcome, dial_number
from telephony.calls.outages import OPEN_CALL_HORIZON
from telephony.settings import SettingsError, load_settings

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
RING = timedelta(seconds=95)
CALLER = "081234567890"
KEY = "6281234567890"


def call(call_id: str = "1.1", *, minutes_ago: float = 30, caller: str = CALLER,
         key: str | None = KEY, answered: bool = False, queue: str | None = None,
         abandoned: bool = False, category: str | None = "emergency", cause: int = 16,
         ended: bool = True, incident_id: int | None = None,
         cut: str | None = None) -> EndedCall:
    """A call that arrived ``minutes_ago`` and lasted a minute."""
    arrived = NOW - timedelta(minutes=minutes_ago)
    return EndedCall(
        call_id=call_id, caller_number=caller, caller_key=key, line="112", arrived_at=arrived,
        answered_at=arrived + timedelta(seconds=20) if answered else None,
        ended_at=arrived + timedelta(minutes=1) if ended else None, queue=queue,
        abandoned_at=arrived + timedelta(minutes=1) if abandoned else None,
        ivr_category=category, hangup_cause=cause, incident_id=incident_id, cut_reason=cut)


def abandoned(call_id: str = "1.1", **options: Any) -> EndedCall:
    return call(call_id, queue="medical", abandoned=True, **options)


def attempt(call_id: str, *, minutes_ago: float, answered: bool = False, ended: bool = True,
            key: str | None = KEY, leg_id: int = 1) -> Attempt:
    asked = NOW - timedelta(minutes=minutes_ago)
    return Attempt(
        leg_id=leg_id, call_id=call_id, caller_key=key, operator="PJSIP/op1001",
        actor="op1001", requested_at=asked, rang_at=asked + timedelta(seconds=5),
        answered_at=asked + timedelta(seconds=25) if answered else None,
        ended_at=asked + timedelta(minutes=1) if ended else None,
        outcome=(LegOutcome.ANSWERED if answered else LegOutcome.NO_ANSWER) if ended else None,
        status="ANSWER" if answered else "NOANSWER")


def closure(of: EndedCall, reason: ClosureReason = ClosureReason.HANDLED) -> Closure:
    return Closure(call_id=of.call_id, caller_key=of.caller_key, arrived_at=of.arrived_at,
                   reason=reason, note="", closed_by="spv1", closed_at=NOW)


def entries(calls: list[EndedCall], **others: Any) -> list[Entry]:
    return worklist(calls, now=NOW, ring_limit=RING, **others)


# -- why a call is on the list --------------------------------------------------------------------


@pytest.mark.parametrize(("ended", "reason"), [
    (abandoned(), CallbackReason.ABANDONED),
    # Queued, and ended without the listener seeing the abandon (it was away): still abandoned.
    (call(queue="fire"), CallbackReason.ABANDONED),
    (call(queue=None, category="emergency"), CallbackReason.IVR_EMERGENCY),
    (call(queue=None, cause=38), CallbackReason.NETWORK),
    (abandoned(cause=41), CallbackReason.NETWORK),
    (call(queue=None, category=None, cause=102), CallbackReason.NETWORK),
    (call(queue="fire", answered=True, cause=27), CallbackReason.DROPPED),
    # Asterisk's restart or crash cut it: talking (cause 16 as any hang-up), queued (the
    # restart's hang-up shows as an abandon), or in the IVR before any choice.
    (call(queue="fire", answered=True, cut="asterisk_restart"), CallbackReason.CUT),
    (abandoned(cut="asterisk_restart", cause=0), CallbackReason.CUT),
    (call(queue="fire", cut="asterisk_crash"), CallbackReason.CUT),
    (call(queue=None, category=None, cut="asterisk_crash"), CallbackReason.CUT),
])
def test_each_reason(ended: EndedCall, reason: CallbackReason) -> None:
    assert reason_for(ended) is reason
    (entry,) = entries([ended])
    assert (entry.reason, entry.call, entry.possible) == (reason, ended, True)


@pytest.mark.parametrize("ended", [
    call(queue="fire", answered=True),  # answered, ended normally
    call(queue="fire", answered=True, cause=31),  # "normal, unspecified" is no network loss
    call(queue=None, category="information"),  # an information call hung up in the IVR
    call(queue=None, category="complaint"),
    call(queue=None, category=None),  # hung up before choosing anything
    abandoned(ended=False),  # still going on (the caller came back into the queue)
    call(queue=None, category="emergency", ended=False),
], ids=["answered", "answered-31", "information-ivr", "complaint-ivr", "no-choice",
        "in-progress", "in-ivr"])
def test_what_is_not_on_the_list(ended: EndedCall) -> None:
    assert reason_for(ended) is None
    assert entries([ended]) == []


def test_network_causes_are_network_failures_not_hang_ups() -> None:
    assert {27, 34, 38, 41, 42, 44, 102} <= NETWORK_CAUSES
    assert not {16, 17, 18, 19, 21, 31, 1, 3, 28} & NETWORK_CAUSES


# -- one entry per caller, and what takes it off ------------------------------------------------


def test_a_caller_who_gave_up_twice_is_one_entry_at_their_latest_call() -> None:
    first, second = abandoned("1.1", minutes_ago=50), abandoned("1.2", minutes_ago=20)
    other = abandoned("1.3", minutes_ago=40, caller="0813000000", key="62813000000")
    listed = entries([first, second, other])
    assert [(e.call.call_id, [c.call_id for c in e.calls]) for e in listed] == [
        ("1.2", ["1.2", "1.1"]), ("1.3", ["1.3"])]
    # Longest waiting first: since the first of the caller's calls ended.
    assert listed[0].waiting_since == first.ended_at
    assert find_entry(listed, "1.1") is listed[0] and find_entry(listed, "9.9") is None


def test_an_answered_call_back_takes_the_caller_off() -> None:
    dropped = abandoned("1.1", minutes_ago=30)
    assert entries([dropped], attempts=[attempt("1.1", minutes_ago=10, answered=True)]) == []
    # Answered while still talking: off at once.
    assert entries([dropped], attempts=[
        attempt("1.1", minutes_ago=1, answered=True, ended=False)]) == []


def cut_short_attempts() -> dict[CutShort, Attempt]:
    """A call-back answered 10 minutes ago, cut short each way."""
    answered = attempt("1.1", minutes_ago=10, answered=True)
    assert answered.answered_at is not None and answered.ended_at is not None
    return {
        CutShort.NETWORK: replace(answered, hangup_cause=41),
        CutShort.OUTAGE: replace(answered, cut_reason="asterisk_restart"),
        CutShort.SHORT: replace(answered, ended_at=answered.answered_at + timedelta(seconds=4)),
        CutShort.UNREACHED: replace(answered, unreached_at=NOW, unreached_by="op1001"),
    }


@pytest.mark.parametrize("cut", list(CutShort))
def test_a_call_back_cut_short_leaves_the_caller_on_saying_so(cut: CutShort) -> None:
    """The caller's or the operator's phone lost its network, Asterisk went away, the line
    dropped at "halo", or the operator said a voicemail answered: the caller was not reached
    and stays on the list, as a dropped incoming call does, the reason in words."""
    dropped = abandoned("1.1", minutes_ago=30)
    cut_back = cut_short_attempts()[cut]
    assert cut_back.cut is cut
    (entry,) = entries([dropped], attempts=[cut_back])
    assert (entry.reason, entry.attempts) == (CallbackReason.CALLBACK_CUT, (cut_back,))
    assert entry.reason.label == "Panggilan balik terputus atau tidak sampai ke penelepon"
    assert how_it_went(cut_back, now=NOW, ring_limit=RING) == cut.label
    # A later call-back that reached them takes them off.
    reached = replace(attempt("1.1", minutes_ago=5, answered=True, leg_id=2))
    assert entries([dropped], attempts=[cut_back, reached]) == []
    # A later call of theirs that dropped again is listed for its own reason.
    again = abandoned("1.2", minutes_ago=2)
    (entry,) = entries([dropped, again], attempts=[cut_back])
    assert entry.reason is CallbackReason.ABANDONED


def test_a_call_back_that_talked_is_not_cut_short() -> None:
    """A normal end after a real conversation, an outage long after it ended, a network
    cause on a call-back that was never answered: none of them puts the caller back."""
    talked = attempt("1.1", minutes_ago=10, answered=True)
    assert talked.ended_at is not None and talked.answered_at is not None
    assert talked.cut is None
    # "Sudah aman, terima kasih": a short exchange, but one.
    assert replace(talked, ended_at=talked.answered_at + timedelta(seconds=6)).cut is None
    assert replace(talked, ended_at=None).cut is None  # still talking
    assert replace(attempt("1.1", minutes_ago=10), hangup_cause=41).cut is None
    assert replace(attempt("1.1", minutes_ago=10), cut_reason="asterisk_crash").cut is None


def test_an_unanswered_call_back_leaves_the_caller_on_with_the_attempt_shown() -> None:
    dropped = abandoned("1.1", minutes_ago=30)
    missed = attempt("1.1", minutes_ago=10)
    (entry,) = entries([dropped], attempts=[missed])
    assert (entry.attempts, entry.in_flight) == ((missed,), None)


def test_a_call_back_ringing_now_is_in_flight_until_its_ring_limit() -> None:
    dropped = abandoned("1.1", minutes_ago=30)
    ringing = attempt("1.1", minutes_ago=1, ended=False)
    (entry,) = entries([dropped], attempts=[ringing])
    assert entry.in_flight == ringing
    # Its end went unreported (the line was away): after the limit it no longer counts.
    (entry,) = entries([dropped], attempts=[attempt("1.1", minutes_ago=5, ended=False)])
    assert entry.in_flight is None


def test_how_a_call_back_not_yet_ended_reads() -> None:
    """One rule for the list and the incident page: going on within the ring limit, no word
    from Asterisk past it, talking once answered, nothing to say once ended."""
    def reads(**options: Any) -> Pending | None:
        return pending(attempt("1.1", **options), now=NOW, ring_limit=RING)

    assert reads(minutes_ago=1, ended=False) is Pending.RINGING
    assert reads(minutes_ago=5, ended=False) is Pending.UNREPORTED
    assert reads(minutes_ago=5, ended=False, answered=True) is Pending.TALKING
    assert reads(minutes_ago=5) is None


def test_an_answered_call_back_whose_end_went_unreported_is_not_talking_for_good() -> None:
    """An answered call-back Asterisk never reported ended (it restarted mid-call) read
    "tersambung" for good: over once its operator moved on to another call, or once no call
    could still be going on."""
    def reads(minutes_ago: float, *, outlived: bool = False) -> Pending | None:
        return pending(attempt("1.1", minutes_ago=minutes_ago, answered=True, ended=False),
                       now=NOW, ring_limit=RING, outlived=outlived)

    assert reads(30) is Pending.TALKING
    assert reads(30, outlived=True) is Pending.TALK_UNREPORTED
    hours = OPEN_CALL_HORIZON / timedelta(minutes=1)
    assert reads(hours - 1) is Pending.TALKING
    assert reads(hours + 1) is Pending.TALK_UNREPORTED
    assert how_it_went(attempt("1.1", minutes_ago=hours + 1, answered=True, ended=False),
                       now=NOW, ring_limit=RING) == (
        "tersambung; akhirnya tidak dilaporkan Asterisk")


def test_how_a_call_back_went_in_words() -> None:
    def went(call_back: Attempt) -> str:
        return how_it_went(call_back, now=NOW, ring_limit=RING)

    assert went(attempt("1.1", minutes_ago=5)) == "Tidak diangkat"
    assert went(attempt("1.1", minutes_ago=5, ended=False)) == "tanpa kabar dari Asterisk"
    refused = replace(attempt("1.1", minutes_ago=5), rang_at=None,
                      outcome=LegOutcome.FAILED)
    assert went(refused) == "Gagal di telepon operator, penelepon tidak ditelepon"
    assert went(replace(refused, outcome=None)) == (
        "Gagal di telepon operator, penelepon tidak ditelepon")
    assert went(replace(attempt("1.1", minutes_ago=5), outcome=None)) == "Selesai"


def test_a_call_back_called_off_because_its_caller_rang_again_says_so() -> None:
    called_off = replace(attempt("1.1", minutes_ago=5), outcome=LegOutcome.CANCELLED,
                         status=CALLER_RANG)
    assert how_it_went(called_off, now=NOW, ring_limit=RING) == CALLER_RANG_TEXT
    # Not before the operator's phone took it either ("Dibatalkan di telepon operator").
    assert how_it_went(replace(called_off, rang_at=None), now=NOW, ring_limit=RING) == (
        CALLER_RANG_TEXT)


def live(channel: str, *, uniqueid: str, linkedid: str = "", state: str = "Ringing",
         application: str = "AppDial2", data: str = "", number: str = CALLER) -> LiveChannel:
    return LiveChannel(channel=channel, uniqueid=uniqueid, linkedid=linkedid or uniqueid,
                       state=state, bridge_id="", application=application,
                       caller_number=number, connected_number="", application_data=data)


def test_the_channel_of_a_call_back_the_caller_has_not_answered() -> None:
    def found(*channels: LiveChannel, channel_id: str | None = None) -> str | None:
        channel = callback_channel(channels, leg_id=7, operator="PJSIP/op1001",
                                   number=CALLER, channel_id=channel_id)
        return None if channel is None else channel.channel

    # The operator's phone still rings (the Originate's own channel, presenting the caller).
    ringing = live("PJSIP/op1001-00000001", uniqueid="1.5")
    assert found(ringing) == "PJSIP/op1001-00000001"
    # A queue offering the caller's new call to the same operator is never it.
    offered = live("PJSIP/op1001-00000002", uniqueid="1.6", linkedid="1.4",
                   application="AppQueue")
    assert found(offered) is None
    # Dialling the caller: the channel that reported the leg, or whose Dial() names it.
    dialling = live("PJSIP/op1001-00000003", uniqueid="1.7", state="Up", application="Dial",
                    data=f"PJSIP/{CALLER}@carrier-out,15,U(siaga112-callback-answered^7^1.1)",
                    number="02150000112")
    assert found(dialling) == found(dialling, channel_id="1.7") == "PJSIP/op1001-00000003"
    assert found(replace(dialling, application_data=""), channel_id="1.7") == (
        "PJSIP/op1001-00000003")
    # Another leg's, another operator's, or an answered call of the operator: not it.
    other_leg = replace(dialling, application_data=dialling.application_data.replace(
        "^7^", "^17^"))
    assert found(other_leg, offered) is None
    assert found(replace(ringing, channel="PJSIP/op1002-00000004")) is None
    assert found(replace(ringing, state="Up")) is None


@pytest.mark.parametrize(("caller", "shown", "why"), [
    (CALLER, CALLER, ""),
    ("anonymous", "(nomor disembunyikan)", ""),
    ("", "(nomor disembunyikan)", ""),
    ("IMEI 352099001761481", "IMEI 352099001761481", "ponsel tanpa kartu SIM (nomor IMEI)"),
    ("12ab", "12ab", "nomor penelepon tidak valid"),
])
def test_a_caller_is_named_in_words(caller: str, shown: str, why: str) -> None:
    (entry,) = entries([abandoned("1.1", caller=caller, key=None)])
    assert (entry.caller_shown, entry.why_not_possible) == (shown, why)


def test_a_later_answered_call_from_the_same_caller_takes_them_off() -> None:
    gave_up = abandoned("1.1", minutes_ago=30)
    rang_again = call("1.2", minutes_ago=10, queue="medical", answered=True)
    assert entries([gave_up], answered=[rang_again]) == []
    # ...but not a call answered before they gave up, nor one of another caller.
    earlier = call("1.0", minutes_ago=60, queue="medical", answered=True)
    other = call("1.3", minutes_ago=10, queue="medical", answered=True, key="62813000000")
    assert len(entries([gave_up], answered=[earlier, other])) == 1


def test_a_redial_that_waited_while_the_first_call_was_answered_is_not_listed() -> None:
    """The caller rang again (a second phone, or a redial) while their first call still
    waited; the first was answered and they gave up the second: they reached an operator,
    and were listed for a call-back all the same (the answer cleared only the calls that
    arrived before the answered one)."""
    first = call("1.1", minutes_ago=30, queue="medical", answered=True)  # answered 20 s in
    redial = replace(abandoned("1.2", minutes_ago=30), arrived_at=first.arrived_at
                     + timedelta(seconds=10))
    assert entries([redial], answered=[first]) == []
    # A call made once the first was being answered is a call of its own.
    during_talk = replace(redial, call_id="1.3",
                          arrived_at=first.arrived_at + timedelta(seconds=40))
    assert [c.call_id for c in entries([during_talk], answered=[first])[0].calls] == ["1.3"]
    # An answered call that was dropped itself clears nothing.
    dropped = replace(first, hangup_cause=38)
    assert len(entries([redial, dropped], answered=[dropped])) == 1


def test_a_call_answered_then_dropped_does_not_clear_itself_or_the_earlier_one() -> None:
    gave_up = abandoned("1.1", minutes_ago=30)
    dropped = call("1.2", minutes_ago=10, queue="medical", answered=True, cause=38)
    (entry,) = entries([gave_up, dropped], answered=[dropped])
    assert [c.call_id for c in entry.calls] == ["1.2", "1.1"]
    assert entry.reason is CallbackReason.DROPPED


def test_a_call_answered_then_cut_does_not_clear_the_earlier_one() -> None:
    gave_up = abandoned("1.1", minutes_ago=30)
    cut = call("1.2", minutes_ago=10, queue="medical", answered=True, cut="asterisk_crash")
    (entry,) = entries([gave_up, cut], answered=[cut])
    assert [c.call_id for c in entry.calls] == ["1.2", "1.1"]
    assert entry.reason is CallbackReason.CUT


def test_a_closing_covers_the_closed_call_and_earlier_not_a_later_one() -> None:
    first, second = abandoned("1.1", minutes_ago=50), abandoned("1.2", minutes_ago=20)
    assert entries([first, second], closures=[closure(second)]) == []
    later = abandoned("1.3", minutes_ago=5)
    (entry,) = entries([first, second, later], closures=[closure(second)])
    assert [c.call_id for c in entry.calls] == ["1.3"]


def test_withheld_numbers_are_listed_as_not_possible_each_on_its_own() -> None:
    hidden = [abandoned(f"2.{n}", minutes_ago=40 - n, caller="anonymous", key=None)
              for n in range(2)]
    simless = abandoned("2.9", minutes_ago=45, caller="urn:gsma:imei:35-209900-176148-1",
                        key="imei:35209900176148")
    callable_ = abandoned("1.1", minutes_ago=10)
    listed = entries([*hidden, simless, callable_])
    assert [(e.call.call_id, e.possible, e.number) for e in listed] == [
        ("1.1", True, CALLER), ("2.9", False, None), ("2.0", False, None),
        ("2.1", False, None)]
    # Only a supervisor's closing takes one off.
    assert len(entries(hidden, closures=[closure(hidden[0])])) == 1
    assert backlog(listed) == backlog(listed[:1] + listed[1:])
    summary = backlog(listed)
    assert (summary.waiting, summary.not_possible, summary.oldest_at) == (
        1, 3, callable_.ended_at)
    assert backlog([]).oldest_at is None


@pytest.mark.parametrize(("raw", "number"), [
    ("081234567890", "081234567890"), ("+6281234567890", "+6281234567890"),
    ("0812-3456-7890", "081234567890"), (" 0812 3456 7890 ", "081234567890"),
    # A mobile number presented without its trunk 0 is called back with it.
    ("81234567890", "081234567890"), ("812-3456-7890", "081234567890"),
    ("anonymous", None), ("", None), ("<unknown>", None), ("112", None),
    ("0812345\n6789", None), ("٠٨١٢٣٤٥٦٧٨٩٠", None), ("sip:0812@x", None),
    ("352099001761481", None),  # an IMEI: a SIM-less phone
    ("IMEI352099001761481", None),  # the same, as some networks deliver it
])
def test_the_number_dialled_is_the_presented_one_or_none(raw: str, number: str | None
                                                          ) -> None:
    assert dial_number(raw) == number


# -- closing -------------------------------------------------------------------------------------


def test_a_closing_needs_a_known_reason_and_keeps_its_note_on_one_line() -> None:
    assert check_closure("handled", "") == (ClosureReason.HANDLED, "")
    assert check_closure("other", "  sudah\r\ndatang ke\tpos  ") == (
        ClosureReason.OTHER, "sudah datang ke pos")
    assert check_closure("prank", "a\u202eb\x00c\u2028d") == (ClosureReason.PRANK, "abc d")
    for reason in ("", "HANDLED", "closed", "--reason", "handled\n"):
        with pytest.raises(InvalidClosure) as refused:
            check_closure(reason, "")
        assert refused.value.field == "reason"
    with pytest.raises(InvalidClosure):
        check_closure("other", " \n ")  # "other" says what
    with pytest.raises(InvalidClosure):
        check_closure("handled", "x" * 301)


# -- the Originate -------------------------------------------------------------------------------


def test_the_originate_rings_the_operator_into_the_callback_context() -> None:
    action = originate_action(leg_id=17, call_id="1795430334.0", number="081234567890",
                              interface="PJSIP/op1001", ring_seconds=30)
    assert action == {
        "Action": "Originate", "ActionID": "siaga112-callback-17", "Channel": "PJSIP/op1001",
        "Context": "siaga112-callback", "Exten": "17-1795430334.0-081234567890",
        "Priority": "1", "Timeout": "30000",
        "CallerID": '"Panggilan balik" <081234567890>', "Async": "true"}
    assert leg_of_action(action["ActionID"]) == 17


@pytest.mark.parametrize("change", [
    {"leg_id": 0}, {"call_id": "1.2-3"}, {"call_id": "../1.2"}, {"number": "anonymous"},
    {"number": "0812,1"}, {"number": "-x"}, {"interface": "PJSIP/op1001&PJSIP/op1002"},
    {"interface": "Local/1@x"}, {"number": "0812\r\nAction: Command"},
])
def test_nothing_unchecked_reaches_the_originate(change: dict[str, object]) -> None:
    arguments: dict[str, Any] = {"leg_id": 17, "call_id": "1.2", "number": CALLER,
                                 "interface": "PJSIP/op1001", "ring_seconds": 30}
    with pytest.raises(ValueError):
        originate_action(**{**arguments, **change})


@pytest.mark.parametrize("action", ["", "siaga112-callback-", "siaga112-callback-0",
                                    "siaga112-callback-1x", "siaga112-survey-1-1", "12"])
def test_other_action_ids_name_no_leg(action: str) -> None:
    assert leg_of_action(action) is None


def test_callback_settings() -> None:
    settings = load_settings(environ={})
    assert (settings.callback_window_hours, settings.callback_ring_seconds) == (24.0, 30)
    for bad in ({"callback_window_hours": "0"}, {"callback_ring_seconds": "2"}):
        with pytest.raises(SettingsError):
            load_settings(environ={}, overrides=bad)


def test_an_entry_names_its_incident() -> None:
    first = replace(abandoned("1.1", minutes_ago=40), incident_id=7)
    (entry,) = entries([first, abandoned("1.2", minutes_ago=10)])
    assert entry.incident_id == 7


def test_the_dialplan_accepts_the_extensions_the_line_builds_and_nothing_else() -> None:
    """[siaga112-callback]'s REGEX (POSIX ERE, as Asterisk runs it; these patterns mean the
    same in Python) takes every extension originate_action builds, and refuses the rest."""
    dialplan = (CONF / "extensions.conf").read_text(encoding="utf-8")
    (context,) = [part for part in re.split(r"(?m)^(?=\[)", dialplan)
                  if part.startswith("[siaga112-callback]")]
    (pattern,) = re.findall(r'REGEX\("([^"]*)" \$\{EXTEN\}\)', context)
    for leg_id, call_id, number in ((1, "1.2", "112"), (10**17, "1795430334.123456", CALLER),
                                    (42, "1795430334.0", "+6281234567890"),
                                    (7, "node_2-1795430334.9", CALLER)):  # a cluster node's
        exten = originate_action(leg_id=leg_id, call_id=call_id, number=number,
                                 interface="PJSIP/op1001", ring_seconds=30)["Exten"]
        assert re.fullmatch(pattern, exten), exten
    for hostile in ("0-1.2-0812345", "1-1.2-0812&PJSIP/x", "1-1.2-0812,1", "1-../x-0812345",
                    "1-1.2-0812345-9", "1-1.2-+", "1-1.2-08123\n", "x1-1.2-0812345",
                    "1-Node1-1.2-0812345", "1-a-b-1.2-0812345", "1-node1--1.2-0812345"):
        assert not re.fullmatch(pattern, hostile), hostile
