"""The call-back service: the worklist, an operator's call-back of a caller, a supervisor's
closing of an entry, an operator's word that a call-back did not reach the caller (a
voicemail, an announcement), and what Asterisk reports of the call-backs it was asked to place.

A call-back, in order: the operator must be at a desk and not on a call (Asterisk's live
channels say so, at that moment; on a cluster, the records and this node's Asterisk's
device state, for a call through another node); the caller's entry is locked and read again,
and must be on the list, callable, and not being called back already; a ``callback`` leg is
opened for the entry's latest call (and its incident) and the request is audited; then the
AMI ``Originate`` rings the operator's phone and, once they answer, the dialplan
(``[siaga112-callback]``) records, presents the line's number and dials the caller through
the carrier, reporting the leg's progress (``UserEvent SiagaLeg`` -> ``call_legs``). An
Originate Asterisk refuses ends the leg as refused and answers 503; an ``OriginateResponse``
saying the operator never answered ends it the same way. One sent and not answered in time
may be under way: its leg stays open (the caller counts as being called back until Asterisk
reports it or the ring limit passes) and the answer is a 503 that says so.

Nothing is sent for a refused request: a withheld number, a call not (or no longer) on the
list, a call-back already ringing, an operator on a call.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import asyncpg

from telephony.accounts.model import Account
from telephony.ami.actions import AmiActionError, AmiActionRefusedError, AmiListActions
from telephony.ami.channels import device_state, live_channels
from telephony.ami.originate import ORIGINATE_RESPONSE, parse_code, printable, reason_label
from telephony.ami.responses import EventSource, OriginateResponses
from telephony.callbacks.errors import (
    CallbackBusy,
    CallbackUnavailable,
    CallbackUnconfirmed,
    NotOnList,
    NotPossible,
    NotReached,
    UnknownCall,
    UnknownCallBack,
)
from telephony.callbacks.model import (
    TARGET,
    Attempt,
    Backlog,
    Closure,
    ClosureReason,
    EndedCall,
    Entry,
    backlog,
    callback_channel,
    check_closure,
    entry_key,
    find_entry,
    leg_of_action,
    originate_action,
    reached,
    worklist,
)
from telephony.callbacks.store import CallbackRepository
from telephony.calls.facts import CallFact, CallStarted
from telephony.calls.ids import valid_call_id
from telephony.calls.legs import Leg, LegKind
from telephony.calls.outages import OPEN_CALL_HORIZON
from telephony.calls.store import LegRepository, operator_open_call
from telephony.cluster.peers import DEVICE, IN_USE_STATES
from telephony.db.connection import Database, DatabaseUnavailable
from telephony.desks.service import AuditLog
from telephony.desks.store import Assignment
from telephony.settings import Settings

log = logging.getLogger("telephony.callbacks")



def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class CallbackConfig:
    """The worklist's window and how long a call-back rings (the operator's phone, then the
    caller's)."""

    window: timedelta = timedelta(hours=24)
    ring_seconds: int = 30
    # Every open list page polls the worklist and the wallboard reads its backlog at every
    # refresh (at most once a second in a surge): they share one reading this young. A
    # call-back or a closing reads afresh under the caller's lock, and drops the reading.
    cache_seconds: float = 2.0

    @property
    def ring_limit(self) -> timedelta:
        """How long after it was asked for a call-back that neither ended nor was answered
        can still be ringing: both rings and a margin for Asterisk to give up (SIP timer B is
        32 s). Past it, its end went unreported (the line was away) and the caller can be
        called again."""
        return timedelta(seconds=2 * self.ring_seconds + 35)

    @classmethod
    def from_settings(cls, settings: Settings) -> CallbackConfig:
        """The configuration described by ``settings``."""
        return cls(window=timedelta(hours=settings.callback_window_hours),
                   ring_seconds=settings.callback_ring_seconds)


class CallbackAmi(AmiListActions, EventSource, Protocol):
    """What the service needs of AMI (``AmiListener``): actions, the live channels, and the
    events that tell how an Originate went."""


class Desks(Protocol):
    """Where operators work (``DeskService``)."""

    async def desk_of(self, account: Account) -> Assignment:
        """The account's desk; raises if it has none."""
        ...


@dataclass(frozen=True)
class _Window:
    """What the worklist is made of: the window's reads."""

    calls: list[EndedCall]
    answered: list[EndedCall]
    attempts: list[Attempt]
    closures: list[Closure]


@dataclass(frozen=True)
class _Reading:
    """The worklist as read at ``at``, and the call-backs that reached their caller."""

    at: datetime
    entries: list[Entry]
    reached: list[Attempt]


@dataclass(frozen=True)
class _Request:
    """A call-back recorded and about to be placed."""

    leg_id: int
    entry: Entry
    number: str


async def caller_entries(
    connection: asyncpg.Connection, config: CallbackConfig, *, key: str | None, call_id: str,
    now: datetime, repository: CallbackRepository | None = None,
) -> list[Entry]:
    """The worklist of one caller at ``now``: all the calls of caller ``key``, or the call
    ``call_id`` alone for a caller without a key."""
    repo = repository or CallbackRepository()
    since = now - config.window
    only = None if key is not None else call_id
    return worklist(
        await repo.ended_calls(connection, since=since, key=key, call_id=only),
        answered=(await repo.answered_calls(connection, [key], since=since)
                  if key is not None else ()),
        attempts=await repo.attempts(connection, since=since, key=key, call_id=only),
        closures=await repo.closures(connection, since=since, key=key, call_id=only),
        now=now, ring_limit=config.ring_limit)


async def waiting_for_call_back(connection: asyncpg.Connection, config: CallbackConfig,
                                key: str, *, now: datetime) -> bool:
    """Whether caller ``key`` is on the call-back list at ``now``: a caller the line owes a
    call-back (a rating survey must not ring them first, telephony/surveys/)."""
    return bool(await caller_entries(connection, config, key=key, call_id="", now=now))


class CallbackService:
    """The worklist of callers to call back, and the call-backs."""

    def __init__(
        self, database: Database, ami: CallbackAmi, desks: Desks, audit: AuditLog,
        config: CallbackConfig, *, repository: CallbackRepository | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._database = database
        self._ami = ami
        self._desks = desks
        self._audit = audit
        self._config = config
        self._repo = repository or CallbackRepository()
        self._legs = LegRepository()
        self._clock = clock
        self._reading: _Reading | None = None
        self._responses = OriginateResponses(
            ami, lambda action: leg_of_action(action) is not None)
        self._calling_off: set[asyncio.Task[None]] = set()

    @property
    def config(self) -> CallbackConfig:
        """The window and ring time in force."""
        return self._config

    def now(self) -> datetime:
        """The service's clock."""
        return self._clock()

    # -- reading -------------------------------------------------------------------------------

    async def worklist(self) -> list[Entry]:
        """Every caller on the list now (as of at most ``cache_seconds`` ago): callable ones
        first, longest waiting first."""
        return (await self._read()).entries

    async def reached(self) -> list[Attempt]:
        """The latest call-backs that reached their caller, newest first (as of the same
        reading as the worklist)."""
        return (await self._read()).reached

    async def _read(self) -> _Reading:
        now = self._clock()
        if self._reading is not None and (
                timedelta(0) <= now - self._reading.at
                < timedelta(seconds=self._config.cache_seconds)):
            return self._reading
        since = now - self._config.window

        async def work(connection: asyncpg.Connection) -> _Window:
            calls = await self._repo.ended_calls(connection, since=since)
            keys = {call.caller_key for call in calls if call.caller_key is not None}
            return _Window(calls, await self._repo.answered_calls(connection, keys, since=since),
                           await self._repo.attempts(connection, since=since),
                           await self._repo.closures(connection, since=since))

        window = await self._database.run(work)
        # Put together on a worker thread, not on the loop: a day's window of a busy line is
        # thousands of calls (2,500 at 9,000 calls a day, about 20 ms of Python), read again
        # every two seconds in a surge for the wallboard, and the loop serves the wallboard,
        # the console and the AMI listener's facts meanwhile. A pure function of the reading.
        entries = await asyncio.to_thread(
            worklist, window.calls, answered=window.answered, attempts=window.attempts,
            closures=window.closures, now=now, ring_limit=self._config.ring_limit)
        self._reading = _Reading(now, entries, reached(window.attempts))
        return self._reading

    async def backlog(self) -> Backlog:
        """How many callers wait for a call-back, and since when the longest has (for the
        wallboard)."""
        return backlog(await self.worklist())

    async def attempts_of(self, call_ids: Sequence[str]) -> list[Leg]:
        """The call-backs placed for these calls (an incident's), oldest first."""

        async def work(connection: asyncpg.Connection) -> list[Leg]:
            legs = await self._legs.legs(connection, call_ids)
            return [leg for leg in legs if leg.kind is LegKind.CALLBACK]

        return await self._database.run(work)

    async def _entry_of(self, connection: asyncpg.Connection, call_id: str) -> Entry:
        """The entry holding ``call_id``, locked until the transaction ends; refused if the
        call does not exist or is not on the list."""
        if not valid_call_id(call_id):
            raise UnknownCall
        found, key = await self._repo.caller_key(connection, call_id)
        if not found:
            raise UnknownCall
        await self._repo.lock_caller(connection, entry_key(key, call_id))
        entries = await caller_entries(connection, self._config, key=key, call_id=call_id,
                                       now=self._clock(), repository=self._repo)
        entry = find_entry(entries, call_id)
        if entry is None:
            raise NotOnList
        return entry

    # -- an operator's call-back ---------------------------------------------------------------

    async def call_back(self, account: Account, call_id: str, *, remote_address: str) -> Leg:
        """Call the caller of ``call_id``'s entry back from the operator's phone; returns the
        call-back's leg as recorded once Asterisk took it."""
        desk = await self._desks.desk_of(account)
        try:
            channels = await live_channels(self._ami)
        except AmiActionError as exc:
            log.error("call-back by %s: live channels not read: %s", account.username, exc)
            raise CallbackUnavailable from exc
        if any(channel.interface == desk.interface for channel in channels) or \
                await self._talking_elsewhere(desk.interface):
            raise CallbackBusy("Telepon Anda sedang dipakai; selesaikan panggilan itu dahulu.")

        async def work(connection: asyncpg.Connection) -> _Request:
            async with connection.transaction():
                entry = await self._entry_of(connection, call_id)
                if entry.number is None:
                    raise NotPossible
                if entry.in_flight is not None:
                    raise CallbackBusy(f"Penelepon ini sedang dihubungi kembali oleh "
                                       f"{entry.in_flight.actor}.")
                # Their new call reaches an operator through the queue; a call-back now
                # would ring a phone that is on an emergency call (call waiting, or busy).
                # A call open past the horizon lost its end and holds nothing up.
                key = entry.call.caller_key
                if key is not None and await self._repo.on_the_line(
                        connection, key, since=self._clock() - OPEN_CALL_HORIZON):
                    raise CallbackBusy("Penelepon ini sedang menelepon 112 saat ini; "
                                       "panggilannya akan dijawab lewat antrean.")
                leg_id = await self._legs.open(
                    connection, kind=LegKind.CALLBACK, call_id=entry.call.call_id,
                    incident_id=entry.incident_id, operator=desk.interface,
                    actor=account.username, number=entry.number, target=TARGET)
                return _Request(leg_id, entry, entry.number)

        request = await self._database.run(work)
        self._reading = None
        entry = request.entry
        await self._audit.audit(
            actor=account.username, action="callback.call", object_type="call",
            object_id=entry.call.call_id, remote_address=remote_address,
            detail={"leg_id": request.leg_id, "number": request.number,
                    "reason": entry.reason.value, "incident_id": entry.incident_id,
                    "operator": desk.interface})
        action = originate_action(
            leg_id=request.leg_id, call_id=entry.call.call_id, number=request.number,
            interface=desk.interface, ring_seconds=self._config.ring_seconds)
        try:
            reply = await self._ami.send_action(action)
        except AmiActionRefusedError as exc:
            log.error("call-back %d of call %s by %s: Originate not taken: %s",
                      request.leg_id, entry.call.call_id, account.username, exc)
            why = f"AMI: {exc}"
            await self._database.run(lambda c: self._legs.refused(c, request.leg_id, why))
            self._reading = None
            raise CallbackUnavailable from exc
        except AmiActionError as exc:
            # Sent, and no answer (Asterisk slow in a surge, or the session lost after it):
            # Asterisk may have queued it, and the phones may ring yet. The leg stays open, so
            # the caller counts as being called back until its OriginateResponse or the ring
            # limit; ended as refused, the retry it invited dialled the caller a second time.
            log.warning("call-back %d of call %s by %s: Originate unconfirmed (%s); counted as "
                        "ringing until Asterisk reports it or its ring time is over",
                        request.leg_id, entry.call.call_id, account.username, exc)
            raise CallbackUnconfirmed from exc
        log.info("call-back %d of call %s (%s) by %s at %s: ringing the operator",
                 request.leg_id, entry.call.call_id, entry.reason.value, account.username,
                 desk.interface)
        # A dial that fails at once can report before the action's own response arrives; the
        # event then answers the action.
        if printable(reply.get("Event")) == ORIGINATE_RESPONSE:
            await self.originate_response(reply)
        leg = await self._database.run(lambda c: self._legs.leg(c, request.leg_id))
        assert leg is not None  # opened above; legs are never deleted
        return leg

    # -- a supervisor's closing ----------------------------------------------------------------

    async def close(self, account: Account, call_id: str, reason: str, note: str, *,
                    remote_address: str) -> tuple[Entry, ClosureReason, str]:
        """Take ``call_id``'s entry off the list with a reason; returns the entry as it was,
        and the reason and note as stored."""
        why, text = check_closure(reason, note)

        async def work(connection: asyncpg.Connection) -> Entry:
            async with connection.transaction():
                entry = await self._entry_of(connection, call_id)
                await self._repo.close(connection, call_id=entry.call.call_id, reason=why,
                                       note=text, closed_by=account.username)
                return entry

        entry = await self._database.run(work)
        self._reading = None
        await self._audit.audit(
            actor=account.username, action="callback.close", object_type="call",
            object_id=entry.call.call_id, remote_address=remote_address,
            detail={"reason": why.value, "note": text,
                    "calls": [call.call_id for call in entry.calls]})
        log.info("call-back entry of call %s closed by %s: %s", entry.call.call_id,
                 account.username, why.value)
        return entry, why, text

    # -- an operator's word that a call-back did not reach the caller -------------------------

    async def mark_unreached(self, account: Account, leg_id: int, *,
                             remote_address: str) -> Leg:
        """Say that call-back ``leg_id``, answered, did not reach its caller (a voicemail, a
        carrier's announcement, a stranger): the caller is back on the list. Returns the leg
        as recorded. Said twice, the first word stands."""

        async def work(connection: asyncpg.Connection) -> tuple[Leg, bool]:
            async with connection.transaction():
                leg = await self._legs.leg(connection, leg_id)
                if leg is None or leg.kind is not LegKind.CALLBACK:
                    raise UnknownCallBack
                _, key = await self._repo.caller_key(connection, leg.call_id)
                # Beside a call-back or a closing of the same caller, in turn.
                await self._repo.lock_caller(connection, entry_key(key, leg.call_id))
                if leg.answered_at is None:
                    raise NotReached("Panggilan balik ini tidak diangkat: penelepon masih "
                                     "ada di daftar panggilan balik.")
                if leg.requested_at < self._clock() - self._config.window:
                    raise NotReached("Panggilan balik ini sudah lewat jendela waktu daftar "
                                     "panggilan balik.")
                marked = await self._repo.mark_unreached(connection, leg_id,
                                                         by=account.username)
                found = await self._legs.leg(connection, leg_id)
                assert found is not None  # read above; legs are never deleted
                return found, marked

        leg, marked = await self._database.run(work)
        self._reading = None
        if marked:
            await self._audit.audit(
                actor=account.username, action="callback.unreached", object_type="call",
                object_id=leg.call_id, remote_address=remote_address,
                detail={"leg_id": leg.leg_id, "number": leg.number, "placed_by": leg.actor})
            log.info("call-back %d of call %s: %s says it did not reach the caller",
                     leg.leg_id, leg.call_id, account.username)
        return leg

    # -- what Asterisk reports -----------------------------------------------------------------

    async def run(self) -> None:
        """Forever: apply the call-backs' OriginateResponses as they come (a leg whose
        response could not be recorded stays open; the worklist stops counting it as ringing
        in time)."""
        try:
            await self._responses.run(self.originate_response)
        finally:
            for task in list(self._calling_off):
                task.cancel()

    async def _talking_elsewhere(self, interface: str) -> bool:
        """Whether the operator is on a call through another cluster node: this node's
        Asterisk has no channel of it, and without this check the call-back rang the phone
        in the middle of an emergency call (the front lets a second call ring a phone 1-2 s
        after its answer). Both must say so: the records (an answered call or a call-back not
        ended: not a wrap-up, which other nodes also see as "in use") and this node's
        Asterisk, which has every node's device state (not a call left open by a node that
        died, whose states it forgot). A state it cannot read holds nothing up: the caller is
        called back."""
        since = self._clock() - OPEN_CALL_HORIZON
        if not await self._database.run(
                lambda c: operator_open_call(c, interface, since=since,
                                             answered_only=False)):
            return False
        if not DEVICE.fullmatch(interface):
            return False
        try:
            state = await device_state(self._ami, interface)
        except AmiActionError as exc:
            log.warning("call-back: device state of %s not read (%s); not held up",
                        interface, exc)
            return False
        return state in IN_USE_STATES

    def calls_started(self, facts: Sequence[CallFact]) -> None:
        """The listener's hook once a batch of facts is recorded: a caller who rings the line
        while a call-back to them rings (the operator's phone, or theirs) reaches an operator
        through the queue, and the call-back is called off. Placed all the same, it rang a
        phone on an emergency call (call waiting: two operators on one caller) or found it
        busy, read as a caller who could not be reached. Returns at once."""
        started = [fact.call_id for fact in facts if isinstance(fact, CallStarted)]
        if started:
            task = asyncio.get_running_loop().create_task(self._call_off(started))
            self._calling_off.add(task)
            task.add_done_callback(self._called_off)

    def _called_off(self, task: asyncio.Task[None]) -> None:
        self._calling_off.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # A bug, not Asterisk or the database away: said once, in one line; the call-back
            # goes on as Asterisk reports it.
            log.error("call-backs of callers who rang again not checked: %r", exc)

    async def _call_off(self, call_ids: Sequence[str]) -> None:
        since = self._clock() - self._config.ring_limit
        try:
            legs = await self._database.run(
                lambda c: self._repo.overtaken(c, call_ids, since=since))
            if not legs:
                return
            channels = await live_channels(self._ami)
            for leg in legs:
                channel = callback_channel(channels, leg_id=leg.leg_id, operator=leg.operator,
                                           number=leg.number, channel_id=leg.channel_id)
                if channel is None:
                    # Not (or no longer) on this Asterisk: it ends as Asterisk reports it.
                    log.info("call-back %d of call %s: its caller rang again; no channel of it "
                             "here to call off", leg.leg_id, leg.call_id)
                    continue
                # Recorded first: the end Asterisk reports for the hang-up keeps why.
                if not await self._database.run(
                        functools.partial(self._repo.call_off, leg_id=leg.leg_id)):
                    continue
                self._reading = None
                await self._ami.send_action({"Action": "Hangup", "Channel": channel.channel})
                log.info("call-back %d of call %s by %s called off: its caller rang the line "
                         "again", leg.leg_id, leg.call_id, leg.actor)
        except DatabaseUnavailable:
            # The calls went to the spool: the outage is reported where it is noticed, and no
            # call-back could be asked for meanwhile.
            log.debug("call-backs of callers who rang again not checked: database away")
        except AmiActionError as exc:
            log.warning("call-backs of callers who rang again (calls %s) not checked: %s",
                        ", ".join(call_ids[:5]), exc)

    async def originate_response(self, event: Mapping[str, Any]) -> bool:
        """Apply a call-back's OriginateResponse; ``False`` if it is none of ours. A success
        needs nothing (the dialplan reports the leg from there); a failure means the operator's
        phone never answered (busy, not answered, unreachable): the leg ends as refused."""
        leg_id = leg_of_action(printable(event.get("ActionID")))
        if leg_id is None:
            return False
        if printable(event.get("Response")) == "Success":
            return True
        code = parse_code(printable(event.get("Reason")))
        status = f"Telepon operator {reason_label(code)} (Reason {code})"
        await self._database.run(lambda c: self._legs.refused(c, leg_id, status))
        self._reading = None
        log.warning("call-back %d: the operator's phone did not take it: %s", leg_id, status)
        return True
