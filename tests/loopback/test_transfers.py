"""The transfer service against a real PostgreSQL and the fake Asterisk (its AMI server, through
the real listener): the actions a transfer and its steps send, the legs and audit entries they
leave, dispatch by phone, the conference joined when the agency answers, and refusals (not
talking, a foreign call or leg, an inactive number, hostile input, Asterisk refusing) that send
nothing and change nothing."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ivr.menu import load_menu
from telephony.accounts.model import Account
from telephony.accounts.service import AccountConfig, AccountService
from telephony.ami.listener import AmiListener
from telephony.ami.testing import FakeAsterisk, ListSink, fake_asterisk
from telephony.calls.facts import (
    CallTransferred,
    LegProgressed,
    OperatorCompleted,
    OperatorLeft,
    OperatorStateChanged,
)
from telephony.calls.history import CallHistory
from telephony.calls.legs import LEG_REPORT_GRACE, LegOutcome
from telephony.calls.shifts import ShiftCalendar
from telephony.calls.store import CallRepository
from telephony.core.errors import SiagaError
from telephony.db.connection import Database
from telephony.desks.service import DeskService, assign_desk
from telephony.incidents.config import IncidentConfig
from telephony.incidents.console import event_lines
from telephony.incidents.dispatches import DispatchState, PhoneContact
from telephony.incidents.http import dispatch_json
from telephony.incidents.model import Status
from telephony.incidents.outbox import notices_text
from telephony.incidents.store import IncidentRepository
from telephony.settings import DEFAULT_SHIFTS, Settings
from telephony.transfers.model import MAX_LEG_ID, Phase, Step, phase, timeline_row
from telephony.transfers.service import TransferService
from tests.support.ami import listener
from tests.support.calls import OPERATOR, add_calls, answered, call_facts
from tests.support.incidents import make_service
from tests.support.polling import eventually
from tests.support.web import CHEAP_HASHER, PASSWORD

OPERATOR_CHANNEL = f"{OPERATOR}-0000002a"
ACCEPTS = {"blindtransfer": "Transfer succeeded", "atxfer": "Atxfer successfully queued",
           "setvar": "Variable Set",
           "playdtmf": "DTMF successfully queued", "hangup": "Channel Hungup",
           "redirect": "Redirect successful"}


@dataclass
class Audit:
    entries: list[dict[str, Any]] = field(default_factory=list)

    async def audit(self, *, actor: str, action: str, object_type: str, object_id: str,
                    remote_address: str, detail: Mapping[str, Any] | None = None) -> None:
        self.entries.append({"actor": actor, "action": action, "object_id": object_id,
                             "detail": dict(detail or {})})


class NoMenus:
    def current(self) -> Any:
        raise AssertionError("transfers read no menu")


@dataclass
class World:
    server: FakeAsterisk
    ami: AmiListener
    service: TransferService
    audit: Audit
    database: Database
    dsn: str
    operator: Account
    other: Account
    number_id: int
    incidents: Any

    def sent(self, *names: str) -> list[dict[str, str]]:
        wanted = {name.lower() for name in names}
        return [a for a in self.server.actions if a.get("action", "").lower() in wanted]

    async def call(self, *, live: bool = True, interface: str = OPERATOR) -> str:
        """A call answered at OPERATOR a minute ago, with its incident; its operator channel
        alive in Asterisk (``live``) at ``interface``."""
        call_id = f"{datetime.now(UTC).timestamp():.0f}.{uuid.uuid4().int % 10**6}"
        await answered(self.dsn, call_id, caller="081234567890")
        await self.incidents.incidents.create_for_call(call_id)
        if live:
            self.server.channels = [channel(interface, call_id), caller_channel(call_id)]
        return call_id

    async def joined_conference(self) -> tuple[str, int]:
        """A call (:meth:`call`) whose operator brought the agency in: the conference leg
        answered and joined (the service's work done). The call's id and the leg's."""
        call_id = await self.call()
        started = await self.service.start(self.operator, self.number_id, "conference",
                                           remote_address="x")
        leg_id = started.leg.leg.leg_id
        await progress(self, leg_id, "answered")
        await self.service.close()  # joined
        return call_id, leg_id

    async def legs(self, call_id: str) -> list[Any]:
        return await self.database.run(lambda c: self.service._store.legs_of_call(c, call_id))


def channel(interface: str, call_id: str) -> tuple[tuple[str, str], ...]:
    return (("Event", "CoreShowChannel"), ("Channel", f"{interface}-0000002a"),
            ("Uniqueid", "1700000000.9"), ("Linkedid", call_id), ("ChannelState", "6"),
            ("ChannelStateDesc", "Up"), ("BridgeId", "b1e3"), ("Application", "AppQueue"),
            ("CallerIDNum", "112"), ("ConnectedLineNum", "081234567890"))


def caller_channel(call_id: str) -> tuple[tuple[str, str], ...]:
    """The caller's channel of the call: its Uniqueid is the call id."""
    return (("Event", "CoreShowChannel"), ("Channel", "PJSIP/carrier-00000029"),
            ("Uniqueid", call_id), ("Linkedid", call_id), ("ChannelState", "6"),
            ("ChannelStateDesc", "Up"), ("BridgeId", "b1e3"), ("Application", "Queue"),
            ("CallerIDNum", "081234567890"), ("ConnectedLineNum", "112"))


@pytest.fixture
async def world(database: Database, database_dsn: str, settings: Settings
                ) -> AsyncIterator[World]:
    accounts = AccountService(database, CHEAP_HASHER, AccountConfig())

    async def account(name: str, interface: str) -> Account:
        created = await accounts.create(name, "operator", PASSWORD, actor="test")
        await assign_desk(database, load_menu(settings.menu_file), name, interface,
                          {"general": 5})
        return created

    async with fake_asterisk() as server:
        server.accepts.update(ACCEPTS)
        ami = listener(server.port, ListSink())
        await ami.start()
        try:
            await ami.wait_ready()
            audit = Audit()
            incidents = make_service(database)
            desks = DeskService(database, ami, NoMenus(), audit)
            service = TransferService(database, ami, desks, incidents=incidents.incidents,
                                      dispatches=incidents.dispatches, audit=audit,
                                      ring_seconds=20)
            operator = await account("op1", OPERATOR)
            other = await account("op2", "PJSIP/op1002")
            number = await service.save_number("damkar", "Pos Damkar Kota", "0275 321-113")
            await service.save_number("polisi", "Polsek Lama", "0275321110", False)
            yield World(server, ami, service, audit, database, database_dsn, operator, other,
                        number.number_id, incidents)
        finally:
            await ami.stop()


async def test_blind_transfer_sends_blind_transfer_with_the_leg_and_audits(world: World) -> None:
    call_id = await world.call()
    started = await world.service.start(world.operator, world.number_id, "blind",
                                        remote_address="10.0.0.5")
    leg = started.leg.leg
    assert (leg.kind.value, leg.call_id, leg.operator, leg.actor, leg.number) == (
        "blind_transfer", call_id, OPERATOR, "op1", "0275321113")
    assert leg.target == "Pemadam Kebakaran (Damkar) - Pos Damkar Kota"
    assert leg.incident_id is not None
    (action,) = world.sent("BlindTransfer")
    assert (action["channel"], action["context"], action["exten"]) == (
        OPERATOR_CHANNEL, "siaga112-transfer", f"{leg.leg_id}*0275321113")
    (entry,) = world.audit.entries
    assert (entry["actor"], entry["action"], entry["object_id"]) == ("op1", "transfer.start",
                                                                      call_id)
    assert entry["detail"]["leg_id"] == leg.leg_id
    assert started.dispatch is None and started.dispatch_error is None
    # The same call cannot be transferred again while this leg rings.
    with pytest.raises(SiagaError, match="masih berjalan"):
        await world.service.start(world.operator, world.number_id, "attended",
                                  remote_address="10.0.0.5")
    assert len(world.sent("BlindTransfer", "Atxfer")) == 1


async def test_attended_steps_send_the_feature_keys_and_hangup(world: World) -> None:
    call_id = await world.call()
    started = await world.service.start(world.operator, world.number_id, "attended",
                                        remote_address="10.0.0.5")
    leg_id = started.leg.leg.leg_id
    (allowed,) = world.sent("Setvar")
    (action,) = world.sent("Atxfer")
    assert (action["channel"], action["context"], action["exten"]) == (
        OPERATOR_CHANNEL, "siaga112-consult", f"{leg_id}#")
    # The one leg (and its number) [siaga112-consult] may dial from this channel, set just
    # before.
    assert (allowed["channel"], allowed["variable"], allowed["value"]) == (
        OPERATOR_CHANNEL, "_SIAGA112_CONSULT", f"{leg_id}*0275321113")
    # Handing over waits for the agency's answer.
    with pytest.raises(SiagaError, match="Serahkan"):
        await world.service.step(world.operator, leg_id, "hand_over", remote_address="x")
    await progress(world, leg_id, "dialling")
    await progress(world, leg_id, "answered")
    joined = await world.service.step(world.operator, leg_id, "join", remote_address="x")
    assert [s for s, _, _ in joined.steps] == [Step.JOIN]
    assert [(a["digit"], a["receive"]) for a in world.sent("PlayDTMF")] == [
        ("*", "yes"), ("3", "yes")]
    left = await world.service.step(world.operator, leg_id, "leave", remote_address="x")
    assert [s for s, _, _ in left.steps] == [Step.JOIN, Step.LEAVE]
    (hangup,) = world.sent("Hangup")
    assert hangup["channel"] == OPERATOR_CHANNEL
    assert [e["action"] for e in world.audit.entries] == [
        "transfer.start", "transfer.join", "transfer.leave"]
    # After leaving, the leg no longer holds the call: nothing more to do on it.
    with pytest.raises(SiagaError):
        await world.service.step(world.operator, leg_id, "cancel", remote_address="x")
    assert await world.legs(call_id)


async def test_a_caller_who_hung_up_during_the_consult_is_not_handed_over(
    world: World
) -> None:
    """The caller hangs up while the operator speaks to the agency: Asterisk leaves the
    operator with the agency. Handing over or joining is refused (the timeline would say the
    caller was handed over) and no key is sent; cancelling still is not. Leaving a
    conference the caller has left likewise (the timeline said the caller stayed with the
    agency)."""
    call_id = await world.call()
    started = await world.service.start(world.operator, world.number_id, "attended",
                                        remote_address="x")
    leg_id = started.leg.leg.leg_id
    await progress(world, leg_id, "answered")
    world.server.channels = [channel(OPERATOR, call_id)]  # the caller's channel is gone
    for step in ("hand_over", "join"):
        with pytest.raises(SiagaError, match="Penelepon sudah menutup telepon") as refused:
            await world.service.step(world.operator, leg_id, step, remote_address="x")
        assert refused.value.status == 409
    assert world.sent("PlayDTMF") == []
    cancelled = await world.service.step(world.operator, leg_id, "cancel", remote_address="x")
    assert [s for s, _, _ in cancelled.steps] == [Step.CANCEL]
    assert [e["action"] for e in world.audit.entries] == ["transfer.start", "transfer.cancel"]

    call_id = await world.call()
    started = await world.service.start(world.operator, world.number_id, "conference",
                                        remote_address="x")
    leg_id = started.leg.leg.leg_id
    await progress(world, leg_id, "answered")
    await eventually("the join keys", lambda: _keys(world, 4), 5)
    await world.service.close()  # the join recorded
    world.server.channels = [channel(OPERATOR, call_id)]
    with pytest.raises(SiagaError, match="Penelepon sudah menutup telepon") as refused:
        await world.service.step(world.operator, leg_id, "leave", remote_address="x")
    assert refused.value.status == 409 and world.sent("Hangup") == []
    assert [s for s, _, _ in (await world.service._leg(leg_id)).steps] == [Step.JOIN]


async def test_a_leg_dialled_again_after_it_ended_sends_the_caller_to_the_queues(
    world: World
) -> None:
    """Asterisk dials an attended leg again only in its recall loop (the operator hung up
    while the agency rang, and did not take the recall): the caller, alone on hold, is
    redirected into the queues ahead of everyone; once, and not while the operator is back
    on a call (a bridged channel of theirs) or for the leg's first dial."""
    call_id = await world.call()
    started = await world.service.start(world.operator, world.number_id, "attended",
                                        remote_address="x")
    leg_id = started.leg.leg.leg_id
    await progress(world, leg_id, "dialling")
    await world.service.close()
    assert world.sent("Redirect") == []  # the first dial
    await progress(world, leg_id, "ended", "NOANSWER")
    unbridged = tuple((k, "" if k == "BridgeId" else v) for k, v in channel(OPERATOR, call_id))
    # The operator back with the caller (the recall taken): nothing to do.
    world.server.channels = [channel(OPERATOR, call_id), caller_channel(call_id)]
    await progress(world, leg_id, "dialling")
    await world.service.close()
    assert world.sent("Redirect") == []
    world.server.channels = [unbridged, caller_channel(call_id)]  # the caller alone
    await progress(world, leg_id, "dialling")
    await world.service.close()
    (redirect,) = world.sent("Redirect")
    assert (redirect["channel"], redirect["context"], redirect["exten"], redirect["priority"]) == (
        "PJSIP/carrier-00000029", "siaga112-transfer", "queue", "1")
    await progress(world, leg_id, "dialling")
    await world.service.close()
    assert len(world.sent("Redirect")) == 1


async def test_an_operator_who_hangs_up_after_the_agency_answered_hands_the_caller_over(
    world: World
) -> None:
    """The operator hangs up in the consult once the agency answered: Asterisk joins the
    caller and the agency (AttendedTransfer). The leg stayed "consulting" and its timeline
    said "Tersambung"; it is handed over by the operator, as "Serahkan" records it. A
    "Serahkan" whose AttendedTransfer comes while or after its keys are sent is recorded
    once."""
    call_id = await world.call()
    started = await world.service.start(world.operator, world.number_id, "attended",
                                        remote_address="x")
    leg_id = started.leg.leg.leg_id
    await progress(world, leg_id, "dialling")
    await progress(world, leg_id, "answered")
    await world.service.close()
    assert (await world.service._leg(leg_id)).steps == ()
    transferred = CallTransferred(call_id, "PJSIP/carrier-out-0000000b", datetime.now(UTC))
    world.service.recorded([transferred])
    await world.service.close()
    leg = await world.service._leg(leg_id)
    assert [(step, actor) for step, actor, _ in leg.steps] == [(Step.HAND_OVER, "op1")]
    assert phase(leg) is Phase.HANDED_OVER
    assert world.audit.entries[-1] == {
        "actor": "op1", "action": "transfer.hand_over", "object_id": call_id,
        "detail": {"leg_id": leg_id, "mode": "attended", "operator_hung_up": True}}
    await progress(world, leg_id, "ended", "ANSWER")
    ended = await world.service._leg(leg_id)
    assert timeline_row(ended.leg, ended.steps).ending == (
        "Diserahkan ke instansi setelah operator bicara")
    world.service.recorded([transferred])  # the same event again: nothing more
    await world.service.close()
    assert len((await world.service._leg(leg_id)).steps) == 1

    call_id = await world.call()
    started = await world.service.start(world.operator, world.number_id, "attended",
                                        remote_address="x")
    leg_id = started.leg.leg.leg_id
    await progress(world, leg_id, "answered")
    transferred = CallTransferred(call_id, "PJSIP/carrier-out-0000000c", datetime.now(UTC))
    world.service._stepping.add(leg_id)  # "Serahkan"'s keys being sent
    world.service.recorded([transferred])
    world.service._stepping.discard(leg_id)
    await world.service.step(world.operator, leg_id, "hand_over", remote_address="x")
    world.service.recorded([transferred])  # Asterisk's report after the step was recorded
    await world.service.close()
    assert [s for s, _, _ in (await world.service._leg(leg_id)).steps] == [Step.HAND_OVER]


@pytest.mark.parametrize("mode", ["attended", "conference"])
async def test_an_operator_who_hangs_up_while_the_agency_rings_hands_over_at_its_answer(
    world: World, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The operator hangs up while the agency still rings: Asterisk reports the caller
    handed over at once (a "blond" transfer, to the ringing agency) and joins them when the
    agency answers. That report came while the leg rang, so nothing was recorded, and the
    answered leg ended "Tersambung" with no hand-over on the timeline or in the audit. It is
    recorded at the answer, dated at the hang-up; a conference is not joined (the
    operator's channel is gone). Had the agency not answered, nothing is recorded: the leg
    is Asterisk's recall's."""
    call_id = await world.call()
    started = await world.service.start(world.operator, world.number_id, mode,
                                        remote_address="x")
    leg_id = started.leg.leg.leg_id
    await progress(world, leg_id, "dialling")
    hung_up = datetime.now(UTC)
    transferred = CallTransferred(call_id, "Local/1#@siaga112-consult-00000001;1", hung_up)
    await add_calls(world.dsn, [transferred])
    world.service.recorded([transferred])
    await world.service.close()
    assert (await world.service._leg(leg_id)).steps == ()  # ringing: maybe the recall's
    await progress(world, leg_id, "answered")
    await world.service.close()
    leg = await world.service._leg(leg_id)
    assert [(step, actor, at) for step, actor, at in leg.steps] == [
        (Step.HAND_OVER, "op1", hung_up)]
    assert phase(leg) is Phase.HANDED_OVER
    assert world.audit.entries[-1] == {
        "actor": "op1", "action": "transfer.hand_over", "object_id": call_id,
        "detail": {"leg_id": leg_id, "mode": mode, "operator_hung_up": True,
                   "while_ringing": True}}
    assert world.sent("PlayDTMF") == []
    await progress(world, leg_id, "ended", "ANSWER")
    ended = await world.service._leg(leg_id)
    assert timeline_row(ended.leg, ended.steps).ending == (
        "Diserahkan ke instansi: operator menutup telepon saat instansi masih berdering, "
        "instansi lalu mengangkat")

    call_id = await world.call()
    started = await world.service.start(world.operator, world.number_id, mode,
                                        remote_address="x")
    leg_id = started.leg.leg.leg_id
    await progress(world, leg_id, "dialling")
    world.service.recorded([CallTransferred(call_id, "Local/2#@siaga112-consult-00000002;1",
                                            datetime.now(UTC))])
    await progress(world, leg_id, "ended", "NOANSWER")
    await world.service.close()
    ended = await world.service._leg(leg_id)
    assert ended.steps == ()
    assert timeline_row(ended.leg, ended.steps).ending == (
        "Tidak diangkat; operator kembali ke penelepon")
    # A call-back's answer (no transfer leg) is not looked at: no error in the log.
    caplog.clear()
    world.service.recorded([LegProgressed(MAX_LEG_ID, "answered", "", "1700000000.78",
                                          datetime.now(UTC))])
    await world.service.close()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def _keys(world: World, count: int) -> bool | None:
    return len(world.sent("PlayDTMF")) == count or None


async def progress(world: World, leg_id: int, state: str, status: str = "") -> None:
    fact = LegProgressed(leg_id, state, status, "1700000000.77", datetime.now(UTC))
    await add_calls(world.dsn, [fact])
    world.service.recorded([fact])


async def test_conference_is_joined_when_the_agency_answers(world: World) -> None:
    await world.call()
    started = await world.service.start(world.operator, world.number_id, "conference",
                                        remote_address="x")
    leg_id = started.leg.leg.leg_id
    assert started.leg.leg.kind.value == "conference"
    await progress(world, leg_id, "dialling")
    assert world.sent("PlayDTMF") == []
    await progress(world, leg_id, "answered")

    async def joined() -> bool | None:
        return len(world.sent("PlayDTMF")) == 2 or None

    await eventually("the join keys", joined, 5)
    await world.service.close()
    leg = await world.service._leg(leg_id)
    assert [s for s, actor, _ in leg.steps] == [Step.JOIN]
    assert [a["digit"] for a in world.sent("PlayDTMF")] == ["*", "3"]


def phone_state(state: str, at: datetime) -> list[OperatorStateChanged]:
    """The operator's device state, as the tracker reports it: once for each queue."""
    return [OperatorStateChanged(OPERATOR, queue, state, False, "", at)
            for queue in ("all-operators", "fire")]


async def test_an_operator_who_hangs_up_in_the_three_way_call_left_it(world: World) -> None:
    """The operator hangs up their phone in the conference (or their browser's page is
    reloaded) rather than pressing "Keluar": the caller talks on with the agency, and the
    leg stayed "Konferensi tiga pihak", with no word that the operator had left. Each leave
    recorded is told to the live views (the wallboard), once, dated as recorded."""
    told: list[OperatorLeft] = []
    world.service.on_left(told.append)
    call_id, leg_id = await world.joined_conference()
    # A state change with the phone still on the call is not a hang-up.
    world.service.recorded(phone_state("on_hold", datetime.now(UTC)))
    world.service.recorded(phone_state("talking", datetime.now(UTC)))
    await world.service.close()
    assert phase(await world.service._leg(leg_id)) is Phase.CONFERENCE
    left = datetime.now(UTC)
    world.server.channels = [caller_channel(call_id)]  # the operator's channel is gone
    world.service.recorded(phone_state("idle", left))
    await world.service.close()
    leg = await world.service._leg(leg_id)
    assert [(s, actor, at) for s, actor, at in leg.steps][1:] == [(Step.LEAVE, "op1", left)]
    assert phase(leg) is Phase.HANDED_OVER
    assert world.sent("Hangup") == []
    assert [(e["action"], e["detail"].get("operator_hung_up")) for e in world.audit.entries
            ] == [("transfer.start", None), ("transfer.leave", True)]
    assert told == [OperatorLeft(call_id, OPERATOR, left)]

    # The caller hung up first: the operator talked on with the agency, then hung up. Not
    # left with the agency: "Keluar" is refused for it too.
    call_id, leg_id = await world.joined_conference()
    world.server.channels = []
    world.service.recorded(phone_state("idle", datetime.now(UTC)))
    await world.service.close()
    assert [s for s, _, _ in (await world.service._leg(leg_id)).steps] == [Step.JOIN]
    assert len(told) == 1

    # "Keluar" pressed: recorded once, by the step, not again at the phone's idle state.
    call_id, leg_id = await world.joined_conference()
    await world.service.step(world.operator, leg_id, "leave", remote_address="x")
    world.server.channels = [caller_channel(call_id)]
    world.service.recorded(phone_state("idle", datetime.now(UTC)))
    await world.service.close()
    leg = await world.service._leg(leg_id)
    assert [s for s, _, _ in leg.steps] == [Step.JOIN, Step.LEAVE]
    assert told[1:] == [OperatorLeft(call_id, OPERATOR, leg.steps[-1][2])]


def restarted(world: World) -> TransferService:
    """The line started again: a transfer service over the same database and Asterisk, with
    nothing in memory."""
    return TransferService(world.database, world.ami,
                           DeskService(world.database, world.ami, NoMenus(), world.audit),
                           incidents=world.incidents.incidents,
                           dispatches=world.incidents.dispatches, audit=world.audit,
                           ring_seconds=20)


async def test_three_way_calls_are_learnt_again_when_the_line_starts_again(world: World
                                                                          ) -> None:
    """The line restarted during three-way calls. One operator is still on theirs: their
    later hang-up is their leave, as before the restart (it went unrecorded: the leg stayed
    a three-way call and their talk ran to the caller's end). Another hung up while the line
    was down: recorded at the resync, dated then, and told to the live views."""
    call_id, leg_id = await world.joined_conference()
    line = restarted(world)
    told: list[OperatorLeft] = []
    line.on_left(told.append)
    line.resynced(None)
    await line.close()
    assert phase(await line._leg(leg_id)) is Phase.CONFERENCE  # still on it
    left = datetime.now(UTC)
    world.server.channels = [caller_channel(call_id)]  # now they hang up
    line.recorded(phone_state("idle", left))
    await line.close()
    leg = await line._leg(leg_id)
    assert [(s, at) for s, _, at in leg.steps][1:] == [(Step.LEAVE, left)]
    assert told == [OperatorLeft(call_id, OPERATOR, left)]

    call_id, leg_id = await world.joined_conference()
    world.server.channels = [caller_channel(call_id)]  # hung up while the line was down
    line = restarted(world)
    line.on_left(told.append)
    before = datetime.now(UTC)
    line.resynced(None)
    await line.close()
    leg = await line._leg(leg_id)
    assert [s for s, _, _ in leg.steps] == [Step.JOIN, Step.LEAVE]
    assert before <= leg.steps[-1][2] <= datetime.now(UTC)
    assert told[1:] == [OperatorLeft(call_id, OPERATOR, leg.steps[-1][2])]
    line.resynced(None)  # the next resync finds nothing more to do
    await line.close()
    assert len((await line._leg(leg_id)).steps) == 2


async def test_an_operator_who_left_the_three_way_call_talked_until_they_left(
        world: World) -> None:
    """Asterisk's queue reports the talk as ending with the call: an operator who left the
    conference ("Keluar", or hanging up) 3 s in and a call that ended 9 s later was credited
    with 12 s of talk, their wrap-up starting at the call's end, ended by the caller (a
    short talk the caller ended is a prank's sign). Their talk ends where they left, whichever
    the line records first, the leave or the queue's completion."""

    async def talk(call_id: str) -> tuple[int | None, datetime | None, str | None, datetime]:
        row = await world.database.run(lambda c: c.fetchrow(
            "SELECT talk_seconds, completed_at, ended_by, answered_at FROM calls"
            " WHERE call_id = $1", call_id))
        assert row is not None
        return row["talk_seconds"], row["completed_at"], row["ended_by"], row["answered_at"]

    def completed(call_id: str, answered_at: datetime, at: datetime) -> OperatorCompleted:
        return OperatorCompleted(call_id, "fire", OPERATOR, 40,
                                 round((at - answered_at).total_seconds()), "caller", at)

    # "Keluar", then the call ends 9 s later.
    call_id, leg_id = await world.joined_conference()
    await world.service.step(world.operator, leg_id, "leave", remote_address="x")
    left = (await world.service._leg(leg_id)).steps[-1][2]
    seconds, done, by, answered_at = await talk(call_id)
    until_left = round((left - answered_at).total_seconds())
    assert (seconds, done, by) == (until_left, left, "agent")  # no longer talking
    await add_calls(world.dsn, [completed(call_id, answered_at, left + timedelta(seconds=9))])
    assert await talk(call_id) == (until_left, left, "agent", answered_at)

    # Hanging up in the three-way call, the queue's completion recorded before the leave.
    call_id, leg_id = await world.joined_conference()
    left = datetime.now(UTC)
    answered_at = (await talk(call_id))[3]
    await add_calls(world.dsn, [completed(call_id, answered_at, left + timedelta(seconds=9))])
    assert (await talk(call_id))[1] == left + timedelta(seconds=9)
    world.server.channels = [caller_channel(call_id)]  # the operator's channel is gone
    world.service.recorded(phone_state("idle", left))
    await world.service.close()
    assert await talk(call_id) == (round((left - answered_at).total_seconds()), left, "agent",
                                   answered_at)

    # A conference the operator stayed in to the end keeps Asterisk's talk.
    call_id, leg_id = await world.joined_conference()
    answered_at = (await talk(call_id))[3]
    end = datetime.now(UTC)
    await add_calls(world.dsn, [completed(call_id, answered_at, end)])
    assert await talk(call_id) == (round((end - answered_at).total_seconds()), end, "caller",
                                   answered_at)


async def test_dispatch_by_phone_is_recorded_with_the_transfer(world: World) -> None:
    call_id = await world.call()
    incident = await world.database.run(
        lambda c: IncidentRepository().incident_of_call(c, call_id))
    assert incident is not None
    # A new (unverified) incident takes no dispatch: refused before anything is sent.
    with pytest.raises(SiagaError, match="diverifikasi"):
        await world.service.start(world.operator, world.number_id, "blind",
                                  dispatch_by_phone=True, remote_address="x")
    assert world.sent("BlindTransfer") == [] and await world.legs(call_id) == []
    await world.incidents.incidents.change_status(incident, Status.VERIFIED, actor="op1")
    started = await world.service.start(world.operator, world.number_id, "blind",
                                        dispatch_by_phone=True, remote_address="x")
    assert started.dispatch is not None and started.dispatch_error is None
    assert (started.dispatch.agency_code, started.dispatch.by_phone) == ("damkar", True)
    assert started.leg.dispatch_id == started.dispatch.dispatch_id
    assert (await world.incidents.incidents.get(incident)).status is Status.DISPATCHED


async def verified_call(world: World) -> tuple[str, int]:
    """A call (:meth:`World.call`) whose incident is verified: it may be dispatched."""
    call_id = await world.call()
    incident = await world.database.run(
        lambda c: IncidentRepository().incident_of_call(c, call_id))
    assert incident is not None
    await world.incidents.incidents.change_status(incident, Status.VERIFIED, actor="op1")
    return call_id, incident


async def test_a_dispatch_by_phone_nobody_answered_is_called_off_and_made_again(
    world: World,
) -> None:
    # The operator hands the caller to the fire brigade, "by phone"; its line is busy. The
    # incident kept "Diberitahu" for the brigade and counted as dispatched on time, though
    # nobody there knew: the supervisor's overdue list never showed it.
    _, incident = await verified_call(world)
    started = await world.service.start(world.operator, world.number_id, "blind",
                                        dispatch_by_phone=True, remote_address="x")
    assert started.dispatch is not None
    first = started.leg.leg.leg_id
    await progress(world, first, "dialling")
    dispatches = world.incidents.dispatches
    assert await dispatches.settle_unanswered_phone() == 0  # still ringing
    await progress(world, first, "ended", "BUSY")
    assert await dispatches.settle_unanswered_phone() == 1
    assert await dispatches.settle_unanswered_phone() == 0  # once
    (called_off,) = await dispatches.dispatches(incident)
    assert (called_off.state, called_off.by_phone) == (DispatchState.CANCELLED, False)
    waiting = await world.incidents.incidents.get(incident)
    # No agency on its way: verified, its dispatch target counting from the answer again.
    assert (waiting.status, waiting.dispatched_at) == (Status.VERIFIED, None)
    later = datetime.now(UTC) + timedelta(hours=1)
    assert incident in {b.incident.incident_id for b in await dispatches.sla_breaches(later)}
    *_, event, back = await world.incidents.incidents.timeline(incident)
    assert (back.actor, back.kind, back.detail["reason"]) == ("system", "status",
                                                             "no_agency_left")
    assert event_lines(back.kind, back.detail, {})[0] == "Diteruskan ke instansi → Terverifikasi"
    assert "alasan: semua pengiriman instansi dibatalkan, menunggu instansi" in event_lines(
        back.kind, back.detail, {})
    assert (event.actor, event.kind, event.detail["from"], event.detail["to"]) == (
        "system", "dispatch", "notified", "cancelled")
    assert event.detail["phone_unanswered"] == "busy"
    assert event.detail["dispatch_clock_restarted"] is True
    assert event.detail["note"].startswith("Instansi tidak dapat dihubungi lewat telepon (sibuk)")
    # In words on the incident page, by "sistem".
    lines = event_lines(event.kind, event.detail, {})
    assert lines[0] == "Diberitahu → Dibatalkan" and "telepon ke instansi: Sibuk" in lines

    # Back with the caller, the operator tries again, attended: the brigade answers.
    started = await world.service.start(world.operator, world.number_id, "attended",
                                        dispatch_by_phone=True, remote_address="x")
    assert started.dispatch is not None and started.dispatch_error is None
    second = started.leg.leg.leg_id
    await progress(world, second, "dialling")
    await progress(world, second, "answered")
    await progress(world, second, "ended", "ANSWER")
    assert await dispatches.settle_unanswered_phone() == 0
    assert [(d.state, d.by_phone) for d in await dispatches.dispatches(incident)] == [
        (DispatchState.CANCELLED, False), (DispatchState.NOTIFIED, True)]
    again = await world.incidents.incidents.get(incident)
    assert again.status is Status.DISPATCHED and again.dispatched_at is not None


@pytest.mark.parametrize("case", ["messaged", "dispatched before", "acknowledged"])
async def test_a_dispatch_the_agency_may_know_of_stays_when_its_phone_is_not_answered(
    world: World, case: str,
) -> None:
    # The agency was also sent a message, was dispatched from the incident page before the
    # operator phoned it, or was recorded accepting: calling the dispatch off would recall a
    # crew that may be on its way. It stays, no longer "by phone", and the timeline says the
    # call did not get through.
    _, incident = await verified_call(world)
    dispatches = world.incidents.dispatches
    if case == "messaged":
        await world.incidents.directory.add_recipient("damkar", name="Piket Damkar",
                                                      contact="0271113")
    elif case == "dispatched before":
        await dispatches.dispatch(incident, "damkar", actor="op1")
    started = await world.service.start(world.operator, world.number_id, "blind",
                                        dispatch_by_phone=True, remote_address="x")
    assert started.dispatch is not None
    if case == "acknowledged":
        await dispatches.advance_dispatch(started.dispatch.dispatch_id, "acknowledged",
                                          actor="op1")
    state = (await dispatches.dispatches(incident))[0].state
    dispatched_at = (await world.incidents.incidents.get(incident)).dispatched_at
    await progress(world, started.leg.leg.leg_id, "ended", "NOANSWER")
    assert await dispatches.settle_unanswered_phone() == 1
    (kept,) = await dispatches.dispatches(incident)
    assert kept.state is state and kept.by_phone is False
    assert (await world.incidents.incidents.get(incident)).dispatched_at == dispatched_at
    event = [e for e in await world.incidents.incidents.timeline(incident)
             if e.kind == "dispatch"][-1]
    assert (event.actor, event.detail.get("to"), event.detail["phone_unanswered"]) == (
        "system", None, "no_answer")
    assert event.detail["note"] == "Telepon ke instansi tidak tersambung (tidak diangkat)."
    assert await dispatches.settle_unanswered_phone() == 0


async def test_a_dispatch_by_phone_says_ringing_until_the_agency_answers(world: World) -> None:
    # The operator hands the caller to the fire brigade "by phone"; its phone rings. The
    # incident page read "lewat telepon", as if the brigade knew, before anyone answered.
    _, incident = await verified_call(world)
    started = await world.service.start(world.operator, world.number_id, "blind",
                                        dispatch_by_phone=True, remote_address="x")
    assert started.dispatch is not None and started.dispatch.phone is PhoneContact.RINGING
    leg_id = started.leg.leg.leg_id
    await progress(world, leg_id, "dialling")
    (ringing,) = await world.incidents.dispatches.dispatches(incident)
    assert ringing.phone is PhoneContact.RINGING
    assert dispatch_json(ringing)["phone"] == "ringing"
    assert notices_text(None, phone=ringing.phone).startswith("sedang ditelepon")
    await progress(world, leg_id, "answered")
    (reached,) = await world.incidents.dispatches.dispatches(incident)
    assert (reached.phone, dispatch_json(reached)["phone_label"]) == (PhoneContact.REACHED,
                                                                     "lewat telepon")


@pytest.mark.parametrize("reported", ["dialling", "nothing", "answered"])
async def test_a_dispatch_by_phone_whose_call_end_went_unrecorded_is_settled(
    world: World, reported: str,
) -> None:
    # The line was down as the brigade's phone rang out (or the dialplan's report was lost):
    # no end recorded. The by-phone dispatch stayed unsettled, "Diberitahu" and ringing, for
    # good, the brigade perhaps never told. Once the phone can no longer ring it is settled
    # as not answered; one whose answer was recorded stays as it is.
    _, incident = await verified_call(world)
    started = await world.service.start(world.operator, world.number_id, "blind",
                                        dispatch_by_phone=True, remote_address="x")
    assert started.dispatch is not None
    leg_id = started.leg.leg.leg_id
    if reported != "nothing":
        await progress(world, leg_id, "dialling")
    if reported == "answered":
        await progress(world, leg_id, "answered")
    dispatches = world.incidents.dispatches
    ring = IncidentConfig().transfer_ring  # Dial() gives up then
    now = datetime.now(UTC)
    assert await dispatches.settle_unanswered_phone(now + ring) == 0  # may still ring
    later = now + ring + LEG_REPORT_GRACE + timedelta(seconds=1)
    if reported == "answered":
        assert await dispatches.settle_unanswered_phone(later) == 0
        (kept,) = await dispatches.dispatches(incident)
        assert (kept.state, kept.phone) == (DispatchState.NOTIFIED, PhoneContact.REACHED)
        return
    assert await dispatches.settle_unanswered_phone(later) == 1
    assert await dispatches.settle_unanswered_phone(later) == 0  # once
    (called_off,) = await dispatches.dispatches(incident)
    assert (called_off.state, called_off.phone) == (DispatchState.CANCELLED, None)
    assert (await world.incidents.incidents.get(incident)).status is Status.VERIFIED
    event = [e for e in await world.incidents.incidents.timeline(incident)
             if e.kind == "dispatch"][-1]
    assert (event.actor, event.detail["to"], event.detail["phone_unanswered"]) == (
        "system", "cancelled", "unrecorded")
    assert "telepon ke instansi: hasil tidak tercatat" in event_lines(event.kind,
                                                                      event.detail, {})


@pytest.mark.parametrize("logged", ["answered", "nothing"])
async def test_a_dispatch_by_phone_answered_while_the_line_was_down_is_kept_from_the_log(
    world: World, tmp_path: Path, logged: str,
) -> None:
    # The brigade's phone rang, the line went down, the brigade answered and talked with the
    # caller, the line came back: nothing of the answer reached the line, and the last-resort
    # rule called the dispatch off as "not answered, hasil tidak tercatat" though the
    # brigade was on its way. The dialplan logs each leg's progress to the queue_log too: the
    # rule waits until the log was read past the leg's ring time, and the backfill records
    # the answer. A leg the log says nothing of is still settled by the rule.
    _, incident = await verified_call(world)
    started = await world.service.start(world.operator, world.number_id, "blind",
                                        dispatch_by_phone=True, remote_address="x")
    assert started.dispatch is not None
    leg_id = started.leg.leg.leg_id
    await progress(world, leg_id, "dialling")  # heard live; then the line went down
    queue_log = tmp_path / "queue_log"
    queue_log.write_text("")
    (tmp_path / "monitor").mkdir()
    history = CallHistory(world.database, CallRepository(ShiftCalendar(DEFAULT_SHIFTS,
                                                                       "Asia/Jakarta")),
                          queue_log, tmp_path / "monitor")
    whole = [{"Event": "CoreShowChannelsComplete", "ListItems": "0"}]
    assert await history.catch_up(whole) is not None  # the log read before the outage

    async def shift(connection: Any) -> Any:
        # An hour went by: the leg rang an hour ago, the log was last read before it rang.
        await connection.execute(
            "UPDATE call_legs SET requested_at = requested_at - interval '1 hour',"
            " rang_at = rang_at - interval '1 hour' WHERE leg_id = $1", leg_id)
        await connection.execute(
            "UPDATE asterisk_log_cursors SET legs_read_at = legs_read_at - interval '2 hours'")
        return await connection.fetchval("SELECT rang_at FROM call_legs WHERE leg_id = $1",
                                         leg_id)
    rang: datetime = await world.database.run(shift)
    dispatches = world.incidents.dispatches
    assert await dispatches.settle_unanswered_phone() == 0  # waits for the log
    epoch = int(rang.timestamp())
    agency = f"{epoch + 1}.88"
    if logged == "answered":
        queue_log.write_text(
            f"{epoch + 6}|{agency}|NONE|NONE|SIAGALEG|{leg_id}|answered||\n"
            f"{epoch + 95}|{agency}|NONE|NONE|SIAGALEG|{leg_id}|ended|ANSWER|16\n")
    assert await history.catch_up(whole) is not None  # the line is back
    if logged == "nothing":
        assert await dispatches.settle_unanswered_phone() == 1  # the last resort
        return
    assert await dispatches.settle_unanswered_phone() == 0
    (kept,) = await dispatches.dispatches(incident)
    assert (kept.state, kept.phone) == (DispatchState.NOTIFIED, PhoneContact.REACHED)
    leg = await world.database.run(
        lambda c: c.fetchrow("SELECT * FROM call_legs WHERE leg_id = $1", leg_id))
    assert leg is not None
    assert (leg["answered_at"], leg["ended_at"], leg["outcome"], leg["hangup_cause"]) == (
        datetime.fromtimestamp(epoch + 6, UTC), datetime.fromtimestamp(epoch + 95, UTC),
        "answered", 16)
    assert leg["rang_at"] == rang  # heard live: not written again

    # Reading the same log again changes nothing.
    await world.database.run(lambda c: c.execute(
        'UPDATE asterisk_log_cursors SET "offset" = 0'))
    assert await history.catch_up(whole) is not None
    again = await world.database.run(
        lambda c: c.fetchrow("SELECT * FROM call_legs WHERE leg_id = $1", leg_id))
    assert again is not None and dict(again) == dict(leg)


async def test_a_closed_incidents_dispatch_by_phone_stops_ringing_and_is_kept(
    world: World,
) -> None:
    # The brigade's phone rang while the line was down; the police handled the case, and the
    # incident was resolved and closed. Its dispatch to the brigade read "sedang ditelepon"
    # for good: settling skipped incidents no longer open. It is kept (nothing is called
    # off on a closed incident), no longer by phone, and the timeline says why.
    _, incident = await verified_call(world)
    started = await world.service.start(world.operator, world.number_id, "blind",
                                        dispatch_by_phone=True, remote_address="x")
    assert started.dispatch is not None
    await progress(world, started.leg.leg.leg_id, "dialling")
    dispatches = world.incidents.dispatches
    police = await dispatches.dispatch(incident, "polisi", actor="op1")
    await dispatches.advance_dispatch(police.dispatch_id, "on_scene", actor="op1")
    for status in (Status.RESOLVED, Status.CLOSED):
        await world.incidents.incidents.change_status(incident, status, actor="op1")
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert await dispatches.settle_unanswered_phone(later) == 1
    kept = [d for d in await dispatches.dispatches(incident) if d.agency_code == "damkar"]
    assert [(d.state, d.phone) for d in kept] == [(DispatchState.NOTIFIED, None)]
    assert (await world.incidents.incidents.get(incident)).status is Status.CLOSED
    event = [e for e in await world.incidents.incidents.timeline(incident)
             if e.kind == "dispatch"][-1]
    assert (event.actor, event.detail["phone_unanswered"], event.detail["note"]) == (
        "system", "unrecorded",
        "Hasil telepon ke instansi tidak tercatat: pastikan instansi sudah menerima.")


@pytest.mark.parametrize("case", ["not talking", "ended call", "no live channel",
                                  "foreign channel", "inactive number", "unknown number",
                                  "hostile number id", "hostile mode", "other operator"])
async def test_refusals_send_nothing_and_change_nothing(world: World, case: str) -> None:
    account, number, mode = world.operator, world.number_id, "blind"
    if case == "not talking":
        world.server.channels = []
        call_id = None
    elif case == "ended call":
        call_id = f"ended.{uuid.uuid4().int % 10**6}"
        await add_calls(world.dsn, call_facts(call_id, talk=5.0))
    else:
        call_id = await world.call(live=case != "no live channel",
                                   interface="PJSIP/op1002" if case == "foreign channel"
                                   else OPERATOR)
    numbers = await world.service.numbers()
    inactive = next(n.number_id for n in numbers if not n.active)
    if case == "inactive number":
        number = inactive
    elif case == "unknown number":
        number = 999_999
    elif case == "hostile number id":
        number = "1; Action: Originate"  # type: ignore[assignment]
    elif case == "hostile mode":
        mode = "blind\r\nAction: Originate"
    elif case == "other operator":
        account = world.other
    before = list(world.server.actions)
    with pytest.raises(SiagaError) as refused:
        await world.service.start(account, number, mode, remote_address="x")
    assert 400 <= refused.value.status < 500
    sent = [a for a in world.server.actions[len(before):]
            if a.get("action", "").lower() not in ("coreshowchannels", "ping")]
    assert sent == [] and world.audit.entries == []
    if call_id is not None:
        assert await world.legs(call_id) == []


async def test_asterisk_refusing_marks_the_leg_refused(world: World) -> None:
    call_id = await world.call()
    del world.server.accepts["blindtransfer"]
    with pytest.raises(SiagaError) as refused:
        await world.service.start(world.operator, world.number_id, "blind", remote_address="x")
    assert refused.value.status == 503
    (leg,) = await world.legs(call_id)
    assert leg.leg.outcome is LegOutcome.FAILED and leg.leg.status.startswith("ditolak:")
    assert world.audit.entries == []
    # A refused leg holds nothing: the operator may try again.
    world.server.accepts["blindtransfer"] = "Transfer succeeded"
    await world.service.start(world.operator, world.number_id, "blind", remote_address="x")


async def test_steps_on_a_foreign_leg_are_refused(world: World) -> None:
    await world.call()
    started = await world.service.start(world.operator, world.number_id, "attended",
                                        remote_address="x")
    leg_id = started.leg.leg.leg_id
    await progress(world, leg_id, "answered")
    for leg, step in ((leg_id, "hand_over"), (999_999, "cancel"), ("1 OR 1=1", "cancel")):
        with pytest.raises(SiagaError) as refused:
            await world.service.step(world.other, leg, step, remote_address="x")
        assert refused.value.status == 404
    with pytest.raises(SiagaError) as refused:
        await world.service.step(world.operator, leg_id, "*2\r\nAction: Hangup",
                                 remote_address="x")
    assert refused.value.status == 422
    assert world.sent("PlayDTMF", "Hangup") == []


async def test_numbers_are_validated_and_listed(world: World) -> None:
    for agency, label, number in (("damkar", "", "0275321113"), ("damkar", "Pos", "0275-abc"),
                                  ("damkar", "Pos", "-o /etc"), ("nope", "Pos", "0275321113"),
                                  ("damkar", "Pos\x07X", "1234567")):
        with pytest.raises(SiagaError):
            await world.service.save_number(agency, label, number)
    usable = await world.service.numbers(usable_only=True)
    assert [(n.agency_code, n.number, n.label) for n in usable] == [
        ("damkar", "0275321113", "Pos Damkar Kota")]
    # The agency's same number: relabelled, not doubled.
    again = await world.service.save_number("damkar", "Pos Damkar Purworejo Kota", "0275321113")
    assert again.number_id == world.number_id
    assert len(await world.service.numbers()) == 2


async def test_incident_timeline_lists_every_leg(world: World) -> None:
    call_id = await world.call()
    started = await world.service.start(world.operator, world.number_id, "blind",
                                        remote_address="x")
    leg_id = started.leg.leg.leg_id
    await progress(world, leg_id, "dialling")
    await progress(world, leg_id, "ended", "NOANSWER")
    incident = await world.database.run(
        lambda c: IncidentRepository().incident_of_call(c, call_id))
    assert incident is not None
    (row,) = await world.service.timeline(incident)
    assert (row.leg_id, row.actor, row.number, row.outcome) == (
        leg_id, "op1", "0275321113", LegOutcome.NO_ANSWER)
    assert row.ending == "Tidak diangkat; penelepon kembali ke operator"
