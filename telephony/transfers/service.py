"""The transfer service: an operator hands the caller in front of them to an agency's number,
blind, attended or as a three-way conference, and takes the steps of an attended transfer;
admins keep the agencies' numbers; an incident's timeline shows every leg of its calls.

A transfer is checked first (the operator is talking on the call, their channel is alive in
Asterisk now, the number is an active agency number, no other transfer of the call is in
progress), then recorded (a ``call_legs`` row and what it is for, in one transaction that
serialises the call's transfers), then sent (AMI BlindTransfer or Atxfer on the operator's
channel, with the leg's extension), then audited. A refusal sends nothing and changes nothing;
an action Asterisk refuses marks the leg refused and is answered 503. With "by phone", the
incident's dispatch to the agency is then recorded (or marked) through the incidents' own
dispatch service; a dispatch it refuses leaves the transfer as it is and is said in the reply.
One whose every call to the agency ends unanswered is settled by the incident upkeep
(:meth:`~telephony.incidents.dispatch_service.DispatchService.settle_unanswered_phone`).

A conference is an attended transfer the line joins into a three-way call once the agency
answers: the service follows the legs' progress (it observes the listener's facts) and sends
the join keys itself.

It also takes the caller back from Asterisk's own recall loop. An operator who hangs up while
the agency still rings leaves the caller to Asterisk (features.conf, atxferdropcall = no): if
the agency does not answer, Asterisk rings the operator's phone back, and if that is not
answered either it dials the agency again, and so on (atxfercallbackretries), and then hangs
the caller up, about 100 s later in the lab, never having reached a human. The second dial
of a leg that already ended is that loop (the consult dials a leg once, the line never
again): the caller, alone on hold, is sent into the queues ahead of everyone, as a blind
transfer nobody answered is (``[siaga112-transfer]`` ``queue``).

An operator who hangs up once the agency answered hands the caller over as "Serahkan" does:
Asterisk completes the transfer either way (bridge_basic: the transferer's hang-up and the
complete key are the same stimulus) and says so with an ``AttendedTransfer``. A leg still
consulting when Asterisk reports its caller handed over, with no step of the operator's
being sent, is recorded as handed over by them. So is one whose operator hung up while the
agency still rang, once the agency answers: Asterisk reported the caller handed over at the
hang-up (bridge_basic's "blond" transfer joins the caller to the ringing agency), and the
answer is when the caller reaches the agency; the step is dated at the hang-up, before the
answer, which the timeline tells apart. Until the answer such a leg is left to Asterisk's
recall (above).

An operator who hangs up in a three-way call (or whose browser phone's page reloads) leaves
it as "Keluar" does: Asterisk says nothing of it (a three-way call ends the attended
transfer; the queue's AgentComplete comes at the call's end), but the operator's phone goes
idle, and then their channel is gone with the caller's still up. app_queue counts that idle
phone as the end of the operator's call (update_status: their last call is then, and the
answering queue's wrap-up keeps them from ringing as after any call), so the line needs no
pause of its own to give them their wrap-up. Which operator is in which three-way call
is kept in memory, and learnt again from the records at every resync with Asterisk (the line
started again, or its AMI session came back): a hang-up the line missed meanwhile is recorded
then, dated when the line learnt of it, and one still on the call is followed again. (Before,
after a restart such a hang-up went unrecorded: the leg stayed a three-way call on the
incident's timeline, and the operator's talk ran to the caller's end.)

A leave, pressed or hung up, is told to the live views once recorded (:meth:`on_left`, an
``OperatorLeft`` fact): the wallboard has the operator's talk end, and their wrap-up start,
there, as the records do.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import asyncpg

from telephony.accounts.model import Account
from telephony.ami.actions import AmiActionError, AmiListActions, AsteriskUnavailable
from telephony.ami.channels import UP, live_channels, operator_channel
from telephony.calls.facts import (
    CallFact,
    CallTransferred,
    LegProgressed,
    OperatorLeft,
    OperatorStateChanged,
)
from telephony.calls.legs import LegState
from telephony.calls.store import LegRepository
from telephony.core.errors import NotFound, SiagaError
from telephony.db.connection import Database
from telephony.desks.service import AuditLog, DeskService
from telephony.incidents.dispatch_service import DispatchService
from telephony.incidents.dispatches import Dispatch, status_for_dispatch
from telephony.incidents.service import IncidentService
from telephony.transfers.model import (
    CONSULT_CONTEXT,
    CONSULT_VARIABLE,
    RESCUE_EXTENSION,
    STEP_KEYS,
    TRANSFER_CONTEXT,
    AgencyNumber,
    InvalidTransfer,
    Phase,
    Step,
    TimelineRow,
    TransferConflict,
    TransferLeg,
    TransferMode,
    check_step,
    in_progress,
    leg_extension,
    parse_mode,
    parse_number_input,
    parse_step,
    phase,
    timeline_row,
)
from telephony.transfers.store import TransferStore

log = logging.getLogger("telephony.transfers")

# An operator's channel as Asterisk names it; checked before it goes into an action.
_CHANNEL: Final = re.compile(r"PJSIP/[A-Za-z0-9_.-]{1,64}-[0-9a-f]{8}")
KEY_GAP_SECONDS: Final = 0.1  # between the two digits of a key (featuredigittimeout is 1 s)
# The steps whose record says what became of the caller: taken only while the caller is on.
_WITH_CALLER: Final = frozenset({Step.HAND_OVER, Step.JOIN, Step.LEAVE})
MAX_HANDED: Final = 1024  # calls remembered as handed over by Asterisk (see recorded)
# How far back a resync looks for three-way calls going on (none lasts half a day).
RELEARN_HORIZON: Final = timedelta(hours=12)
# An operator's device states while their phone is still on a call: any other (idle,
# unavailable, logged out ...) may be their hang-up (see _operator_left).
_PHONE_IN_USE: Final = frozenset({"talking", "busy", "ringing", "ringing_in_use", "on_hold"})


class TransferUnavailable(AsteriskUnavailable):
    """Asterisk did not carry out the action (no AMI session, refused, no answer)."""

    def __init__(self) -> None:
        super().__init__("Asterisk tidak menjalankan perintah alih panggilan (tidak terhubung "
                         "atau menolak). Panggilan tetap dengan Anda.")


class LegNotFound(NotFound):
    """No transfer leg of this operator's with that id."""

    code = "transfer_not_found"

    def __init__(self) -> None:
        super().__init__("Alih panggilan ini tidak ditemukan di meja Anda.")


@dataclass(frozen=True)
class DeskTransfers:
    """What the operator's call panel shows of transfers."""

    call_id: str | None  # the call in front of the operator
    talking: bool  # they are talking on it: a transfer may start
    incident_id: int | None
    legs: list[TransferLeg]  # the call's transfer legs, oldest first
    numbers: list[AgencyNumber]  # the numbers they may transfer to


@dataclass(frozen=True)
class Started:
    """A transfer Asterisk accepted, and the dispatch recorded with it."""

    leg: TransferLeg
    dispatch: Dispatch | None
    dispatch_error: str | None  # why the dispatch was not recorded, when asked for


class TransferService:
    """Transfers and conferences to agencies, over AMI; the agencies' numbers."""

    def __init__(self, database: Database, ami: AmiListActions, desks: DeskService, *,
                 incidents: IncidentService, dispatches: DispatchService, audit: AuditLog,
                 ring_seconds: float, store: TransferStore | None = None) -> None:
        self._database = database
        self._ami = ami
        self._desks = desks
        self._incidents = incidents
        self._dispatches = dispatches
        self._audit = audit
        self._ring_timeout = timedelta(seconds=ring_seconds)
        self._store = store or TransferStore()
        self._legs = LegRepository()
        self._joins: dict[int, str] = {}  # conference leg -> operator channel, until answered
        self._tasks: set[asyncio.Task[None]] = set()
        self._rescued: set[int] = set()  # legs whose caller was sent back to the queues
        # Legs whose step's keys are being sent: Asterisk's AttendedTransfer for "Serahkan"
        # can come before the step is recorded, and is the operator's step, not a hang-up.
        self._stepping: set[int] = set()
        # Calls whose caller Asterisk handed over (AttendedTransfer), with when: a leg whose
        # operator hung up while the agency rang is handed over once the agency answers.
        self._handed: OrderedDict[str, datetime] = OrderedDict()
        # Operators (interface) in a three-way call the line joined or they joined, and its
        # leg: their hang-up leaves the caller with the agency, as "Keluar" does.
        self._conferences: dict[str, int] = {}
        self._left: list[Callable[[OperatorLeft], None]] = []

    def on_left(self, hook: Callable[[OperatorLeft], None]) -> None:
        """Call ``hook`` with each leave of a three-way call once it is recorded (the
        wallboard follows it as a call fact: Asterisk tells nothing of it)."""
        self._left.append(hook)

    def _tell_left(self, leg: TransferLeg, at: datetime) -> None:
        fact = OperatorLeft(leg.leg.call_id, leg.leg.operator, at)
        for hook in self._left:
            try:
                hook(fact)
            except Exception:  # one view's bug must not undo a recorded step
                log.exception("leave of leg %d: hook %r failed", leg.leg.leg_id, hook)

    # -- agency numbers ----------------------------------------------------------------------

    async def numbers(self, *, usable_only: bool = False) -> list[AgencyNumber]:
        """Every agency number (only those operators may use, if asked)."""
        numbers = await self._database.run(self._store.numbers)
        return [n for n in numbers if n.usable] if usable_only else numbers

    async def save_number(self, agency_code: object, label: object, number: object,
                          active: object = True, *, number_id: int | None = None
                          ) -> AgencyNumber:
        """Add an agency's number, or change one (``number_id``)."""
        entry = parse_number_input(agency_code, label, number, active)

        async def work(connection: asyncpg.Connection) -> AgencyNumber:
            async with connection.transaction():
                exists = await connection.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM agencies WHERE code = $1)", entry.agency_code)
                if not exists:
                    raise InvalidTransfer(f"Instansi {entry.agency_code} tidak dikenal.",
                                          "agency")
                if number_id is None:
                    saved = await self._store.add_number(connection, entry)
                else:
                    try:
                        updated = await self._store.update_number(connection, number_id, entry)
                    except asyncpg.UniqueViolationError:
                        raise TransferConflict("Nomor ini sudah tercatat untuk instansi ini.",
                                               "number") from None
                    if not updated:
                        raise NotFound("Nomor instansi tidak ditemukan (atau milik instansi "
                                       "lain).")
                    saved = number_id
                found = await self._store.number(connection, saved)
                assert found is not None  # written in this transaction
                return found

        return await self._database.run(work)

    # -- the operator's side -------------------------------------------------------------------

    async def desk(self, account: Account) -> DeskTransfers:
        """The transfers of the call in front of the operator, and the numbers to pick."""
        state = await self._desks.state(account)
        numbers = await self.numbers(usable_only=True)
        current = state.current
        if current is None:
            return DeskTransfers(None, False, None, [], numbers)
        call = current.call

        async def work(connection: asyncpg.Connection) -> list[TransferLeg]:
            return await self._store.legs_of_call(connection, call.call_id)

        legs = await self._database.run(work)
        # A call-back on the desk (DeskCall.callback) is the operator's own leg, not the
        # caller's call: nothing to hand over from here.
        return DeskTransfers(call.call_id, current.state == "talking" and current.callback is None,
                             call.incident_id, legs, numbers)

    async def start(self, account: Account, number_id: object, mode: object, *,
                    dispatch_by_phone: bool = False, remote_address: str) -> Started:
        """Hand the caller in front of the operator to an agency's number in ``mode``."""
        chosen = parse_mode(mode)
        if not isinstance(number_id, int) or isinstance(number_id, bool) or number_id < 1:
            raise InvalidTransfer("Pilih nomor instansi.", "number_id")
        state = await self._desks.state(account)
        current = state.current
        if current is None or current.state != "talking":
            raise TransferConflict("Anda tidak sedang bicara dengan penelepon.")
        if current.callback is not None:
            raise TransferConflict("Panggilan balik tidak dapat dialihkan ke instansi; "
                                   "teruskan insidennya ke instansi dari halaman insiden.")
        call = current.call
        if dispatch_by_phone:
            await self._check_dispatchable(call.incident_id)
        channel = await self._operator_channel(account, state.interface, call.call_id)
        now = datetime.now(UTC)

        async def work(connection: asyncpg.Connection) -> tuple[int, AgencyNumber]:
            async with connection.transaction():
                await self._store.lock_call(connection, call.call_id)
                number = await self._store.number(connection, number_id)
                if number is None or not number.usable:
                    raise InvalidTransfer("Nomor instansi tidak dikenal atau tidak aktif.",
                                          "number_id")
                legs = await self._store.legs_of_call(connection, call.call_id)
                if any(in_progress(leg, now, self._ring_timeout) for leg in legs):
                    raise TransferConflict("Alih panggilan lain untuk panggilan ini masih "
                                           "berjalan.")
                leg_id = await self._legs.open(
                    connection, kind=chosen.kind, call_id=call.call_id,
                    incident_id=call.incident_id, operator=state.interface,
                    actor=account.username, number=number.number, target=number.target)
                await self._store.add_leg(connection, leg_id, number.number_id, channel)
                return leg_id, number

        leg_id, number = await self._database.run(work)
        extension = leg_extension(leg_id, number.number)
        if chosen is TransferMode.BLIND:
            action = {"Action": "BlindTransfer", "Channel": channel,
                      "Context": TRANSFER_CONTEXT, "Exten": extension}
        else:
            # Asterisk plays the extension into the operator's channel as DTMF (about 70 ms
            # a digit), so it names only the leg; the number travels in CONSULT_VARIABLE.
            # '#' ends the digits Asterisk collects (bridge_basic's grab_transfer).
            action = {"Action": "Atxfer", "Channel": channel, "Context": CONSULT_CONTEXT,
                      "Exten": f"{leg_id}#"}
        if chosen is TransferMode.CONFERENCE:
            self._joins[leg_id] = channel  # before sending: the answer may come at once
        try:
            if chosen is not TransferMode.BLIND:
                # The one leg [siaga112-consult] will dial for this operator's channel, and
                # its number: the atxfer code typed by hand on the phone reaches that context
                # too, and must not dial anything else (inherited by the Atxfer's Local
                # channel).
                await self._ami.send_action({
                    "Action": "Setvar", "Channel": channel, "Variable": f"_{CONSULT_VARIABLE}",
                    "Value": extension})
            await self._ami.send_action(action)
        except AmiActionError as exc:
            self._joins.pop(leg_id, None)
            log.error("%s of %s (leg %d) for %s failed: %s", action["Action"], channel, leg_id,
                      account.username, exc)
            reason = f"ditolak: {exc}"[:200]
            await self._database.run(lambda c: self._legs.refused(c, leg_id, reason))
            raise TransferUnavailable() from exc
        log.info("%s (%s) %s call %s to %s %s (leg %d)", account.username, state.interface,
                 chosen.value, call.call_id, number.agency_code, number.number, leg_id)
        await self._audit.audit(
            actor=account.username, action="transfer.start", object_type="call",
            object_id=call.call_id, remote_address=remote_address,
            detail={"leg_id": leg_id, "mode": chosen.value, "number_id": number.number_id,
                    "agency": number.agency_code, "number": number.number,
                    "dispatch_by_phone": dispatch_by_phone})
        dispatch, dispatch_error = None, None
        if dispatch_by_phone and call.incident_id is not None:
            dispatch, dispatch_error = await self._dispatch(account, call.incident_id, leg_id,
                                                            number)
        return Started(await self._leg(leg_id), dispatch, dispatch_error)

    async def step(self, account: Account, leg_id: object, step: object, *,
                   remote_address: str) -> TransferLeg:
        """Hand over, join, cancel or leave the operator's attended transfer or conference."""
        chosen = parse_step(step)
        if not isinstance(leg_id, int) or isinstance(leg_id, bool) or leg_id < 1:
            raise LegNotFound()
        state = await self._desks.state(account)
        leg = await self._leg(leg_id, missing=LegNotFound())
        if leg.leg.operator != state.interface or leg.leg.actor != account.username:
            raise LegNotFound()
        check_step(leg, chosen)
        channels = await self._live_channels(account)
        if not any(c.channel == leg.operator_channel and c.state == UP for c in channels):
            raise TransferConflict("Telepon Anda tidak lagi tersambung pada panggilan ini.")
        if chosen in _WITH_CALLER and not any(c.uniqueid == leg.leg.call_id for c in channels):
            # The caller (whose channel's Uniqueid is the call id) hung up while the operator
            # spoke to the agency or in the conference: Asterisk leaves operator and agency
            # talking. The step would put on the incident's timeline a caller handed over,
            # joined, or left with the agency who was no longer there.
            raise TransferConflict("Penelepon sudah menutup telepon; Anda masih tersambung "
                                   "dengan instansi. Tutup telepon untuk mengakhirinya.")
        self._stepping.add(leg_id)
        try:
            try:
                await self._send_step(leg.operator_channel, chosen)
            except AmiActionError as exc:
                log.error("%s on leg %d for %s failed: %s", chosen.value, leg_id,
                          account.username, exc)
                raise TransferUnavailable() from exc
            if chosen is Step.CANCEL:
                self._joins.pop(leg_id, None)
            taken = await self._database.run(
                lambda c: self._store.add_step(c, leg_id, chosen, account.username))
            if chosen is Step.JOIN:
                self._conferences[leg.leg.operator] = leg_id
            elif chosen is Step.LEAVE:
                self._conferences.pop(leg.leg.operator, None)
                self._tell_left(leg, taken)
        finally:
            self._stepping.discard(leg_id)
        log.info("%s (%s) %s on leg %d", account.username, state.interface, chosen.value,
                 leg_id)
        await self._audit.audit(
            actor=account.username, action=f"transfer.{chosen.value}", object_type="call",
            object_id=leg.leg.call_id, remote_address=remote_address,
            detail={"leg_id": leg_id, "mode": leg.mode.value})
        return await self._leg(leg_id)

    # -- the call a request acts on (run on the node carrying it: telephony/web/nodes.py) -----

    async def desk_call(self, account: Account) -> str | None:
        """The call the operator is talking on, if any: a transfer acts on their channel on
        it. ``None`` for a call ringing or ended (:meth:`start` refuses it: refused where it
        lands, not sent on)."""
        current = (await self._desks.state(account)).current
        return None if current is None or current.state != "talking" else current.call.call_id

    async def leg_call(self, account: Account, leg_id: int) -> str | None:
        """The call of transfer leg ``leg_id``; ``None`` if there is no such leg, or it is
        another operator's (:meth:`step` refuses it: refused where it lands, not sent on)."""
        leg = await self._database.run(lambda c: self._store.leg(c, leg_id))
        return None if leg is None or leg.leg.actor != account.username else leg.leg.call_id

    # -- the incident's timeline -----------------------------------------------------------------

    async def timeline(self, incident_id: int) -> list[TimelineRow]:
        """Every leg of the incident's calls, derived from ``call_legs`` at read time."""
        await self._incidents.get(incident_id)  # IncidentNotFound for an unknown one

        async def work(connection: asyncpg.Connection) -> list[TimelineRow]:
            rows = await self._store.incident_legs(connection, incident_id)
            return [timeline_row(leg, steps) for leg, steps in rows]

        return await self._database.run(work)

    # -- conferences join when the agency answers (the listener's facts) -----------------------

    def recorded(self, facts: Sequence[CallFact]) -> None:
        """The listener recorded ``facts``: a leg answered after its operator hung up is
        handed over, a conference leg that was answered is joined, an operator who hung up in
        a three-way call left it; a leg dialled again after it ended has its caller taken
        back (see the module)."""
        for fact in facts:
            if isinstance(fact, OperatorStateChanged):
                if fact.state not in _PHONE_IN_USE and fact.operator in self._conferences:
                    # One per operator: the fact comes once for each of their queues.
                    leg_id = self._conferences.pop(fact.operator)
                    self._spawn(self._operator_left(leg_id, fact.at,
                                                    frozenset(self._stepping)),
                                f"transfer-left-{leg_id}")
                continue
            if isinstance(fact, CallTransferred):
                self._handed[fact.call_id] = fact.at
                self._handed.move_to_end(fact.call_id)
                while len(self._handed) > MAX_HANDED:
                    self._handed.popitem(last=False)
                # Decided now, before anything is awaited: a step being sent is in
                # _stepping until it is recorded (see _handed_over).
                self._spawn(self._handed_over(fact, frozenset(self._stepping)),
                            f"transfer-handed-over-{fact.call_id}")
                continue
            if not isinstance(fact, LegProgressed):
                continue
            if fact.state == LegState.ANSWERED.value:
                self._spawn(self._answered(fact.leg_id, fact.at,
                                           self._joins.pop(fact.leg_id, None)),
                            f"transfer-answered-{fact.leg_id}")
            elif fact.state == LegState.ENDED.value:
                self._joins.pop(fact.leg_id, None)
                self._conferences = {operator: leg for operator, leg
                                     in self._conferences.items() if leg != fact.leg_id}
            elif fact.state == LegState.DIALLING.value and fact.leg_id not in self._rescued:
                self._spawn(self._rescue(fact.leg_id), f"transfer-rescue-{fact.leg_id}")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def resynced(self, queues: object) -> None:
        """The listener (re)connected to Asterisk: learn the three-way calls going on again
        (see the module). A conference the line missed the answer of is joined by hand."""
        self._spawn(self._relearn_conferences(), "transfer-relearn-conferences")

    async def _relearn_conferences(self) -> None:
        try:
            since = datetime.now(UTC) - RELEARN_HORIZON
            legs = await self._database.run(lambda c: self._store.answered_legs(c, since))
        except (SiagaError, asyncpg.PostgresError, OSError) as exc:
            log.error("three-way calls going on not learnt again (a hang-up in one may go "
                      "unrecorded): %s", exc)
            return
        now = datetime.now(UTC)
        for leg in legs:
            if phase(leg) is Phase.CONFERENCE:
                await self._operator_left(leg.leg.leg_id, now, frozenset(self._stepping))

    async def close(self) -> None:
        """Wait for joins being sent (bounded by AMI's own timeouts)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _rescue(self, leg_id: int) -> None:
        """``leg_id`` is being dialled: if it had ended already, Asterisk's recall loop dials
        it again for an operator who hung up and did not take the recall; send the caller
        into the queues."""
        try:
            found = await self._database.run(lambda c: self._store.leg(c, leg_id))
            if (found is None or found.mode is TransferMode.BLIND
                    or found.leg.ended_at is None or found.leg.answered_at is not None):
                return  # the leg's first dial (or no transfer leg at all)
            channels = await live_channels(self._ami)
            caller = next((c for c in channels if c.uniqueid == found.leg.call_id), None)
            if caller is None or any(c.interface == found.leg.operator and c.bridge_id
                                     for c in channels):
                return  # the caller is gone, or the operator is back on a call
            self._rescued.add(leg_id)
            await self._ami.send_action({
                "Action": "Redirect", "Channel": caller.channel,
                "Context": TRANSFER_CONTEXT, "Exten": RESCUE_EXTENSION, "Priority": "1"})
            log.warning("leg %d of call %s: the operator %s left during the consult and did "
                        "not take Asterisk's recall; the caller goes back to the queues",
                        leg_id, found.leg.call_id, found.leg.operator)
        except (AmiActionError, SiagaError, asyncpg.PostgresError, OSError) as exc:
            log.error("leg %d dialled again: could not take the caller back to the queues "
                      "(%s)", leg_id, exc)

    async def _handed_over(self, fact: CallTransferred, stepping: frozenset[int]) -> None:
        """Asterisk handed the caller of ``fact``'s call over by an attended transfer. A leg
        of the call still consulting (answered, no step) whose step was not being sent when
        the fact came was handed over by the operator hanging up: recorded as "Serahkan"
        is. A step being sent then is recorded by :meth:`step` once Asterisk took it; one
        sent and recorded before shows on the leg. A leg still ringing is left to Asterisk's
        recall (see the module)."""
        try:
            legs = await self._database.run(
                lambda c: self._store.legs_of_call(c, fact.call_id))
            for leg in legs:
                if leg.leg.leg_id in stepping or phase(leg) is not Phase.CONSULTING:
                    continue
                if await self._hung_up_hand_over(leg.leg.leg_id, None):
                    log.info("leg %d of call %s: the operator %s hung up in the consult; "
                             "Asterisk handed the caller over to %s", leg.leg.leg_id,
                             fact.call_id, leg.leg.operator, fact.target)
        except (SiagaError, asyncpg.PostgresError, OSError) as exc:
            log.error("call %s handed over by the operator's hang-up: could not record it "
                      "(%s)", fact.call_id, exc)

    async def _answered(self, leg_id: int, answered: datetime, join: str | None) -> None:
        """The agency answered ``leg_id``. If Asterisk handed its caller over since the leg
        was requested and nobody took a step on it, the operator hung up while it rang: the
        caller is with the agency now, handed over by that hang-up. (Or just after the answer,
        and :meth:`_handed_over` read the leg before its answer was stored: the same step.)
        Otherwise a conference (``join``: the operator's channel) is joined."""
        try:
            # Not a transfer leg (a call-back), or no hand-over since the line started:
            # nothing to look at.
            leg = (await self._database.run(lambda c: self._store.leg(c, leg_id))
                   if self._handed else None)
            handed = self._handed.get(leg.leg.call_id) if leg is not None else None
            if (leg is not None and handed is not None
                    and leg.mode is not TransferMode.BLIND and not leg.steps
                    and leg_id not in self._stepping and handed >= leg.leg.requested_at):
                if await self._hung_up_hand_over(leg_id, handed, ringing=handed < answered):
                    log.info("leg %d of call %s: the operator %s hung up while the agency rang;"
                             " it answered and has the caller", leg_id, leg.leg.call_id,
                             leg.leg.operator)
                return
        except (SiagaError, asyncpg.PostgresError, OSError) as exc:
            log.error("leg %d answered: could not tell whether the operator had hung up (%s)",
                      leg_id, exc)
        if join is not None:
            await self._join(leg_id, join)

    async def _hung_up_hand_over(self, leg_id: int, at: datetime | None, *,
                                 ringing: bool = False) -> bool:
        """Record the operator's hang-up as "Serahkan" on ``leg_id`` (at ``at``, else now;
        ``ringing``: while the agency still rang), unless a step was recorded on it
        meanwhile (the two ways here, or the operator's own); audit it. Whether it was
        recorded."""

        async def work(connection: asyncpg.Connection) -> TransferLeg | None:
            async with connection.transaction():
                leg = await self._store.leg(connection, leg_id, lock=True)
                if leg is None or leg.steps:
                    return None
                await self._store.add_step(connection, leg_id, Step.HAND_OVER, leg.leg.actor,
                                           at)
                return leg

        leg = await self._database.run(work)
        if leg is None:
            return False
        detail: dict[str, object] = {"leg_id": leg_id, "mode": leg.mode.value,
                                     "operator_hung_up": True}
        if ringing:
            detail["while_ringing"] = True
        await self._audit.audit(
            actor=leg.leg.actor, action=f"transfer.{Step.HAND_OVER.value}", object_type="call",
            object_id=leg.leg.call_id, remote_address="", detail=detail)
        return True

    async def _operator_left(self, leg_id: int, at: datetime, stepping: frozenset[int]
                             ) -> None:
        """The phone of the operator in the three-way call of ``leg_id`` is no longer in use:
        if their channel is gone while the caller's is not, they hung up (or their browser's
        page was reloaded) and left the caller with the agency, as "Keluar" does; recorded
        and audited as it, dated ``at``. Until this the leg stayed "Konferensi tiga pihak"
        with no word that the operator had left. "Keluar" being sent (``stepping``) is
        recorded by :meth:`step`; a caller gone first left the operator with the agency,
        which "Keluar" would not record either."""
        if leg_id in stepping:
            return
        try:
            leg = await self._leg(leg_id)
            channels = await live_channels(self._ami)
            if any(c.channel == leg.operator_channel for c in channels):
                self._conferences.setdefault(leg.leg.operator, leg_id)  # still on it
                return
            if not any(c.uniqueid == leg.leg.call_id for c in channels):
                return

            async def work(connection: asyncpg.Connection) -> datetime | None:
                async with connection.transaction():
                    locked = await self._store.leg(connection, leg_id, lock=True)
                    if locked is None or phase(locked) is not Phase.CONFERENCE:
                        return None
                    return await self._store.add_step(connection, leg_id, Step.LEAVE,
                                                      locked.leg.actor, at)

            taken = await self._database.run(work)
            if taken is None:
                return
            self._tell_left(leg, taken)
            log.info("leg %d of call %s: the operator %s hung up in the three-way call; the "
                     "caller stays with the agency", leg_id, leg.leg.call_id, leg.leg.operator)
            await self._audit.audit(
                actor=leg.leg.actor, action=f"transfer.{Step.LEAVE.value}", object_type="call",
                object_id=leg.leg.call_id, remote_address="",
                detail={"leg_id": leg_id, "mode": leg.mode.value, "operator_hung_up": True})
        except (SiagaError, asyncpg.PostgresError, OSError) as exc:
            log.error("leg %d: could not record the operator leaving the three-way call (%s)",
                      leg_id, exc)

    async def _join(self, leg_id: int, channel: str) -> None:
        try:
            leg = await self._leg(leg_id)
            if leg.took(Step.CANCEL) or leg.leg.ended_at is not None:
                return
            await self._send_step(channel, Step.JOIN)
            await self._database.run(
                lambda c: self._store.add_step(c, leg_id, Step.JOIN, leg.leg.actor))
            self._conferences[leg.leg.operator] = leg_id
            log.info("conference leg %d answered: joined the caller, %s and the agency",
                     leg_id, channel)
        except (SiagaError, asyncpg.PostgresError, OSError) as exc:
            log.error("conference leg %d: could not join the caller in (%s); the operator "
                      "can press Gabungkan", leg_id, exc)

    # -- helpers -------------------------------------------------------------------------------

    async def _send_step(self, channel: str, step: Step) -> None:
        if step is Step.LEAVE:
            await self._ami.send_action({"Action": "Hangup", "Channel": channel})
            return
        for index, digit in enumerate(STEP_KEYS[step]):
            if index:
                await asyncio.sleep(KEY_GAP_SECONDS)
            await self._ami.send_action({"Action": "PlayDTMF", "Channel": channel,
                                         "Digit": digit, "Receive": "yes"})

    async def _leg(self, leg_id: int, *, missing: SiagaError | None = None) -> TransferLeg:
        async def work(connection: asyncpg.Connection) -> TransferLeg | None:
            return await self._store.leg(connection, leg_id)

        leg = await self._database.run(work)
        if leg is None:
            raise missing or LegNotFound()
        return leg

    async def _live_channels(self, account: Account) -> list[Any]:
        try:
            return list(await live_channels(self._ami))
        except AmiActionError as exc:
            log.error("CoreShowChannels for %s's transfer failed: %s", account.username, exc)
            raise TransferUnavailable() from exc

    async def _operator_channel(self, account: Account, interface: str, call_id: str) -> str:
        found = operator_channel(await self._live_channels(account), interface, call_id)
        if found is None or not found.bridge_id:
            raise TransferConflict("Telepon Anda tidak sedang tersambung dengan penelepon ini.")
        if not _CHANNEL.fullmatch(found.channel):
            log.error("operator channel %r of %s does not look like one; no transfer",
                      found.channel[:80], account.username)
            raise TransferConflict("Kanal telepon Anda tidak dikenali; alih panggilan tidak "
                                   "dikirim.")
        return found.channel

    async def _check_dispatchable(self, incident_id: int | None) -> None:
        """Refuse "by phone" up front when the incident could not take a dispatch."""
        if incident_id is None:
            raise InvalidTransfer("Panggilan ini belum punya insiden: pengerahan lewat telepon "
                                  "tidak dapat dicatat.", "dispatch_by_phone")
        incident = await self._incidents.get(incident_id)
        status_for_dispatch(incident.status)  # raises InvalidTransition, with why

    async def _dispatch(self, account: Account, incident_id: int, leg_id: int,
                        number: AgencyNumber) -> tuple[Dispatch | None, str | None]:
        try:
            dispatch = await self._dispatches.dispatch(
                incident_id, number.agency_code, actor=account.username, by_phone=True,
                note=f"Alih panggilan ke {number.label} ({number.number})")
        except SiagaError as exc:
            if not exc.is_refusal:
                raise
            log.warning("transfer leg %d: dispatch by phone to %s not recorded: %s", leg_id,
                        number.agency_code, exc.message)
            return None, exc.message
        await self._database.run(
            lambda c: self._store.set_dispatch(c, leg_id, dispatch.dispatch_id))
        # Read again, now that the leg names it: whether the agency's phone still rings.
        again = [d for d in await self._dispatches.dispatches(incident_id)
                 if d.dispatch_id == dispatch.dispatch_id]
        return (again[0] if again else dispatch), None
