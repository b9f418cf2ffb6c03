"""Transfers to agencies, the pure rules: the dialplan's extension and its check, agency
numbers, which steps a leg allows when, whether a leg still holds its call, and how a leg
reads on the incident's timeline."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from telephony.calls.legs import Leg, LegKind, LegOutcome
from telephony.core.errors import SiagaError
from telephony.transfers.model import (
    STEP_KEYS,
    Phase,
    Step,
    TransferLeg,
    TransferMode,
    allowed_steps,
    check_step,
    in_progress,
    leg_extension,
    operator_interface,
    parse_extension,
    parse_mode,
    parse_number_input,
    parse_step,
    phase,
    timeline_row,
)

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
CONF = Path(__file__).resolve().parents[2] / "asterisk-conf"


def leg(kind: LegKind = LegKind.ATTENDED_TRANSFER, *, rang: float | None = None,
        answered: float | None = None, ended: float | None = None,
        outcome: LegOutcome | None = None, status: str = "") -> Leg:
    def at(seconds: float | None) -> datetime | None:
        return None if seconds is None else T0 + timedelta(seconds=seconds)

    return Leg(leg_id=7, kind=kind, call_id="1700000000.1", incident_id=3,
               operator="PJSIP/op1001", actor="op1", number="0275321113",
               target="Damkar - Pos Kota", requested_at=T0, channel_id=None, rang_at=at(rang),
               answered_at=at(answered), ended_at=at(ended), outcome=outcome, status=status)


def transfer(record: Leg, *steps: Step) -> TransferLeg:
    return TransferLeg(record, 1, "damkar", "Pos Kota", "PJSIP/op1001-0000002a", None,
                       tuple((step, "op1", T0) for step in steps))


@pytest.mark.parametrize(("leg_id", "number", "extension"), [
    (7, "0275321113", "7*0275321113"),
    (123456789, "+62275321113", "123456789**62275321113"),
    (1, "112", "1*112"),
])
def test_extension_round_trips(leg_id: int, number: str, extension: str) -> None:
    assert leg_extension(leg_id, number) == extension
    assert parse_extension(extension) == (leg_id, number)


@pytest.mark.parametrize(("leg_id", "number"), [
    (0, "0275321113"), (1_000_000_000, "0275321113"), (7, "12"), (7, "0275-321"),
    (7, "0275321113,r"), (7, "0275\r\nAction: Originate"), (7, "++62275"), (7, "1" * 21),
])
def test_extension_refuses_what_the_dialplan_would(leg_id: int, number: str) -> None:
    with pytest.raises(ValueError):
        leg_extension(leg_id, number)


@pytest.mark.parametrize("extension", [
    "7*02", "0*0275321113", "7**", "7***0275321113", "abc*0275321113", "7*0275321113#",
    "7*0275321113&PJSIP/x", "1234567890*0275321113", "",
])
def test_parse_extension_refuses_anything_else(extension: str) -> None:
    assert parse_extension(extension) is None


def test_the_dialplan_checks_the_same_pattern() -> None:
    """extensions.conf's REGEX in both contexts is the pattern parse_extension uses."""
    dialplan = (CONF / "extensions.conf").read_text(encoding="utf-8")
    contexts = [part for part in re.split(r"(?m)^(?=\[)", dialplan)
                if part.startswith(("[siaga112-transfer]", "[siaga112-consult]"))]
    patterns = re.findall(
        r'REGEX\("(\^\[1-9\][^"]*)" \$\{(EXTEN|XFER_LEG|SIAGA112_CONSULT)\}\)',
        "".join(contexts))
    # Blind: the extension is <leg>*<number>; attended: the leg alone (the extension, kept in
    # XFER_LEG), and the variable the line set holds <leg>*<number>.
    assert patterns == [("^[1-9][0-9]{0,8}[*][*]?[0-9]{3,20}$", "EXTEN"),
                        ("^[1-9][0-9]{0,8}$", "XFER_LEG"),
                        ("^[1-9][0-9]{0,8}[*][*]?[0-9]{3,20}$", "SIAGA112_CONSULT")]
    for context in ("[siaga112-transfer]", "[siaga112-consult]"):
        assert context in dialplan


def test_the_keys_are_those_features_conf_sets() -> None:
    features = (CONF / "features.conf").read_text(encoding="utf-8")
    for option, step in (("atxfercomplete", Step.HAND_OVER), ("atxferthreeway", Step.JOIN),
                         ("atxferabort", Step.CANCEL)):
        assert f"\n{option} = {STEP_KEYS[step]}\n" in features
    assert Step.LEAVE not in STEP_KEYS  # leaving is a Hangup


def test_operator_interface_cuts_the_channel_suffix() -> None:
    assert operator_interface("PJSIP/op1001-0000002a") == "PJSIP/op1001"
    assert operator_interface("PJSIP/op-budi-0000002a") == "PJSIP/op-budi"


def test_modes_and_steps_parse_or_refuse() -> None:
    assert parse_mode("conference") is TransferMode.CONFERENCE
    assert TransferMode.BLIND.kind is LegKind.BLIND_TRANSFER
    assert parse_step("hand_over") is Step.HAND_OVER
    for bad in ("", "BLIND", "blind\r\n", None, 1):
        with pytest.raises(SiagaError):
            parse_mode(bad)
    with pytest.raises(SiagaError):
        parse_step("threeway")


def test_numbers_are_cleaned_and_checked() -> None:
    entry = parse_number_input("damkar", "  Pos  Damkar   Kota ", "(0275) 321-113", True)
    assert (entry.label, entry.number) == ("Pos Damkar Kota", "0275321113")
    assert parse_number_input("damkar", "Pos", "+62 275 321113", False).number == "+62275321113"
    bad: list[tuple[str, str, object]] = [
        ("Damkar", "Pos", "0275321113"), ("damkar", " ", "0275321113"),
        ("damkar", "Pos", "12"), ("damkar", "Pos", "0275;x"),
        ("damkar", "x" * 101, "0275321113"), ("damkar", "Pos\x00", "0275321113"),
        ("damkar", "Pos", None)]
    for agency, label, number in bad:
        with pytest.raises(SiagaError):
            parse_number_input(agency, label, number, True)
    with pytest.raises(SiagaError):
        parse_number_input("damkar", "Pos", "0275321113", "yes")


@pytest.mark.parametrize(("record", "steps", "expected_phase", "allowed"), [
    (leg(), (), Phase.RINGING, (Step.CANCEL,)),
    (leg(rang=0.1), (), Phase.RINGING, (Step.CANCEL,)),
    (leg(rang=0.1, answered=3), (), Phase.CONSULTING,
     (Step.HAND_OVER, Step.JOIN, Step.CANCEL)),
    (leg(rang=0.1, answered=3), (Step.JOIN,), Phase.CONFERENCE, (Step.LEAVE,)),
    (leg(rang=0.1, answered=3), (Step.JOIN, Step.LEAVE), Phase.HANDED_OVER, ()),
    (leg(rang=0.1, answered=3), (Step.HAND_OVER,), Phase.HANDED_OVER, ()),
    (leg(rang=0.1, answered=3), (Step.CANCEL,), Phase.ENDED, ()),
    (leg(rang=0.1, ended=6, outcome=LegOutcome.NO_ANSWER), (), Phase.ENDED, ()),
    (leg(LegKind.CONFERENCE, rang=0.1), (), Phase.RINGING, (Step.CANCEL,)),
    (leg(LegKind.BLIND_TRANSFER, rang=0.1), (), Phase.RINGING, ()),
    (leg(LegKind.BLIND_TRANSFER, rang=0.1, answered=2), (), Phase.HANDED_OVER, ()),
])
def test_which_steps_a_leg_allows(record: Leg, steps: tuple[Step, ...], expected_phase: Phase,
                                  allowed: tuple[Step, ...]) -> None:
    current = transfer(record, *steps)
    assert phase(current) is expected_phase
    assert allowed_steps(current) == allowed
    for step in Step:
        if step in allowed:
            check_step(current, step)
        else:
            with pytest.raises(SiagaError):
                check_step(current, step)


def test_a_leg_holds_its_call_until_handed_over_ended_or_forgotten() -> None:
    ring = timedelta(seconds=30)
    ringing = transfer(leg())
    assert in_progress(ringing, T0 + timedelta(seconds=5), ring)
    # Never reported by the dialplan: it stops counting once it could no longer ring.
    assert not in_progress(ringing, T0 + timedelta(seconds=61), ring)
    assert in_progress(transfer(leg(rang=0.1)), T0 + timedelta(minutes=5), ring)
    assert in_progress(transfer(leg(rang=0.1, answered=3), Step.JOIN), T0 + timedelta(hours=1),
                       ring)
    assert not in_progress(transfer(leg(rang=0.1, answered=3), Step.HAND_OVER), T0, ring)
    blind = transfer(leg(LegKind.BLIND_TRANSFER, rang=0.1, answered=2))
    assert not in_progress(blind, T0, ring)
    ended = transfer(leg(rang=0.1, ended=6, outcome=LegOutcome.BUSY))
    assert not in_progress(ended, T0, ring)


@pytest.mark.parametrize(("record", "steps", "ending"), [
    (leg(LegKind.BLIND_TRANSFER, rang=0.1, answered=2, ended=62, outcome=LegOutcome.ANSWERED),
     (), "Penelepon tersambung langsung ke instansi"),
    (leg(LegKind.BLIND_TRANSFER, rang=0.1, ended=30, outcome=LegOutcome.NO_ANSWER), (),
     "Tidak diangkat; penelepon kembali ke operator"),
    (leg(rang=0.1, ended=2, outcome=LegOutcome.BUSY), (), "Sibuk; operator kembali ke penelepon"),
    (leg(rang=0.1, answered=3, ended=40, outcome=LegOutcome.ANSWERED), (Step.HAND_OVER,),
     "Diserahkan ke instansi setelah operator bicara"),
    (leg(LegKind.CONFERENCE, rang=0.1, answered=3, ended=40, outcome=LegOutcome.ANSWERED),
     (Step.JOIN, Step.LEAVE),
     "Konferensi tiga pihak; operator keluar, penelepon tetap dengan instansi"),
    (leg(rang=0.1, answered=3, ended=9, outcome=LegOutcome.ANSWERED), (Step.CANCEL,),
     "Dibatalkan operator setelah bicara; penelepon kembali ke operator"),
    (leg(rang=0.1, ended=4, outcome=LegOutcome.CANCELLED), (Step.CANCEL,),
     "Dibatalkan operator sebelum diangkat"),
    (leg(ended=0.1, outcome=LegOutcome.FAILED, status="ditolak: Channel not found"), (),
     "Ditolak Asterisk: Channel not found"),
    (leg(rang=0.1), (), "Sedang berlangsung"),
    # The agency hung up during the consult: the operator is back with the caller.
    (leg(rang=0.1, answered=3, ended=9, outcome=LegOutcome.ANSWERED), (),
     "Operator bicara dengan instansi; tidak ada serah terima tercatat"),
    (leg(LegKind.CALLBACK, rang=0.1, answered=3, ended=9, outcome=LegOutcome.ANSWERED), (),
     "Tersambung"),
])
def test_timeline_rows(record: Leg, steps: tuple[Step, ...], ending: str) -> None:
    # Steps taken as the operator takes them: after the answer, if there was one.
    taken = record.answered_at or T0
    row = timeline_row(record, [(step, "op1", taken) for step in steps])
    assert row.ending == ending
    assert (row.actor, row.target, row.number, row.kind) == (
        "op1", "Damkar - Pos Kota", "0275321113", record.kind)
    if record.answered_at is not None and record.ended_at is not None:
        assert row.talk_seconds == (record.ended_at - record.answered_at).total_seconds()
        assert row.ring_seconds == (record.answered_at - T0).total_seconds()
    elif record.ended_at is not None:
        assert row.talk_seconds is None
        assert row.ring_seconds == (record.ended_at - T0).total_seconds()
    else:
        assert row.ring_seconds is None and row.talk_seconds is None


def test_a_hand_over_before_the_answer_is_the_operators_hang_up_while_it_rang() -> None:
    """Only the operator's hang-up hands over before the agency answers ("Serahkan" waits for
    the answer): the timeline says so, not that the operator spoke to the agency first."""
    record = leg(rang=0.1, answered=5, ended=40, outcome=LegOutcome.ANSWERED)
    row = timeline_row(record, [(Step.HAND_OVER, "op1", T0 + timedelta(seconds=2))])
    assert row.ending == ("Diserahkan ke instansi: operator menutup telepon saat instansi "
                          "masih berdering, instansi lalu mengangkat")
    conference = leg(LegKind.CONFERENCE, rang=0.1, answered=5, ended=40,
                     outcome=LegOutcome.ANSWERED)
    assert timeline_row(conference, [(Step.HAND_OVER, "op1", T0 + timedelta(seconds=2))]
                        ).ending == row.ending
