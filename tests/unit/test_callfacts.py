from datetime import UTC, datetime

import pytest

from telephony.calls.facts import (
    FACT_TYPES,
    AsteriskBooted,
    AsteriskReturned,
    AsteriskShutdown,
    CallBackfilled,
    CallCut,
    CallEnded,
    CallFact,
    CallLost,
    CallStarted,
    CallTransferred,
    FactDecodeError,
    IvrVariableSet,
    IvrVariablesSet,
    LegCut,
    OperatorStateChanged,
    QueueAbandoned,
    fact_from_json,
    fact_to_json,
)
from telephony.calls.store import dedupe_key

AT = datetime(2026, 11, 23, 3, 0, 1, 250000, tzinfo=UTC)


@pytest.mark.parametrize(
    "fact",
    [
        CallStarted("1.1", "1.1", "PJSIP/carrier-1", "+62 812", "Budi \"B\" ☎", "112", AT),
        QueueAbandoned("1.1", "medical", 3, 1, 42, AT),
        CallEnded("1.1", 16, "Normal Clearing", AT),
        OperatorStateChanged("PJSIP/op1001", "fire", "paused", True, "istirahat", AT),
        IvrVariablesSet("1.1", (("line", "112"), ("reasons", "a; b ☎"), ("queue", "fire")), AT),
        IvrVariablesSet("1.1", (), AT),
        CallCut("1.1", "asterisk_crash", AT),
        LegCut(7, "asterisk_restart", AT),
        CallTransferred("1.1", "PJSIP/carrier-out-0000000a", AT),
        AsteriskShutdown(True, AT),
        AsteriskBooted(12, AT),
        AsteriskReturned("crash", AT, AT, AT, 2, AT),
        CallBackfilled("1796449111.57", AT),
        CallStarted("node1-1.1", "node1-1.1", "PJSIP/carrier-1", "0812", "", "112", AT,
                    sip_call_id="a84b4c76e66710@pc33.atlanta.com"),
        CallLost("node1-1796449111.10000000042", "a84b@pc33", "node1", "0812", "112",
                 "200 OK", AT),
    ],
)
def test_round_trip(fact: CallFact) -> None:
    assert fact_from_json(fact_to_json(fact)) == fact


def test_every_kind_is_registered_once() -> None:
    assert len(FACT_TYPES) == 21


def test_a_call_start_without_its_sip_call_id_serialises_as_before_it_had_one() -> None:
    """The field came later with a default: left out while it holds it, so the start keeps
    its dedupe key, and a start spooled before reads back as the same fact."""
    before = ('{"kind":"call_started","call_id":"1.1","linked_id":"1.1","channel":"PJSIP/c-1",'
              '"caller_number":"0812","caller_name":"","line":"112",'
              '"at":"2026-11-23T03:00:01.250000+00:00"}')
    fact = CallStarted("1.1", "1.1", "PJSIP/c-1", "0812", "", "112", AT)
    assert fact_to_json(fact) == before
    assert fact_from_json(before) == fact
    assert '"sip_call_id":"x@y"' in fact_to_json(
        CallStarted("1.1", "1.1", "PJSIP/c-1", "0812", "", "112", AT, "x@y"))


@pytest.mark.parametrize(("fact", "text", "key"), [
    (CallStarted("1.1", "1.1", "PJSIP/carrier-1", "+62 812", "Budi \"B\" ☎", "112", AT),
     '{"kind":"call_started","call_id":"1.1","linked_id":"1.1","channel":"PJSIP/carrier-1",'
     '"caller_number":"+62 812","caller_name":"Budi \\"B\\" ☎","line":"112",'
     '"at":"2026-11-23T03:00:01.250000+00:00"}',
     "343be4f973be8d62afed09f0376dd349f4b824ea0ab6f0a09c97fb384a3c449d"),
    (IvrVariablesSet("1.1", (("line", "112"), ("reasons", "a; b ☎"), ("queue", "fire")), AT),
     '{"kind":"ivr_variables","call_id":"1.1","variables":[["line","112"],'
     '["reasons","a; b ☎"],["queue","fire"]],"at":"2026-11-23T03:00:01.250000+00:00"}',
     "79c6306bf644382cc2c25cecb5972eb71cf2730b8f09888665ab800a7a7fa50e"),
])
def test_a_fact_serialises_and_hashes_as_the_stored_ones_did(
    fact: CallFact, text: str, key: str
) -> None:
    """Text and dedupe key as json.dumps built them before the encoder was built once and
    the recorder serialised each fact once: a fact already in call_events or in the spool
    keeps its key, so a repeat is still a duplicate."""
    assert fact_to_json(fact) == text
    assert dedupe_key(fact) == key


def test_a_fact_spooled_by_an_earlier_version_still_reads() -> None:
    """Before one fact per call's IVR values, each IVR_* variable was a fact of its own."""
    line = ('{"kind":"ivr_variable","call_id":"1.1","name":"skill","value":"fire",'
            '"at":"2026-11-23T03:00:01.250000+00:00"}')
    assert fact_from_json(line) == IvrVariableSet("1.1", "skill", "fire", AT)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "not json",
        '{"kind": "nope"}',
        '{"kind": "call_ended", "call_id": "1", "cause": "16", "cause_text": "", "at": "x"}',
        '{"kind": "call_ended", "call_id": "1", "cause": true, "cause_text": "",'
        ' "at": "2026-11-23T03:00:00+00:00"}',
        '{"kind": "call_ended", "call_id": "1"}',
        "[1, 2]",
        '{"kind": "ivr_variables", "call_id": "1", "variables": [["a"]],'
        ' "at": "2026-11-23T03:00:00+00:00"}',
        '{"kind": "ivr_variables", "call_id": "1", "variables": [["a", 1]],'
        ' "at": "2026-11-23T03:00:00+00:00"}',
        '{"kind": "ivr_variables", "call_id": "1", "variables": "a=b",'
        ' "at": "2026-11-23T03:00:00+00:00"}',
    ],
)
def test_bad_lines_are_refused(line: str) -> None:
    with pytest.raises(FactDecodeError):
        fact_from_json(line)
