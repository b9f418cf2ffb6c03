"""The dispatch service: sends agencies to incidents, records their steps, and holds incidents
to their dispatch targets.

A dispatch is one transaction in the incident service's manner (lock the incident, check,
write, record on its timeline), which also writes the notifications for the agency's
recipients into the outbox: a dispatch is never recorded without its notifications, nor the
reverse. Delivering them is :class:`~telephony.incidents.outbox_service.NotificationOutbox`'s.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from telephony.calls.history import legs_read_at
from telephony.calls.legs import ring_over_before
from telephony.db.connection import Database
from telephony.incidents.config import IncidentConfig
from telephony.incidents.directory import clean_agency_code
from telephony.incidents.directory_store import DirectoryStore
from telephony.incidents.dispatch_store import DispatchStore
from telephony.incidents.dispatches import (
    CANCELLABLE_DISPATCH_STATES,
    NO_AGENCY_LEFT,
    STAND_DOWN_STATUSES,
    UNRECORDED_PHONE,
    Dispatch,
    DispatchState,
    SlaClock,
    check_dispatch_step,
    dispatch_clock,
    parse_dispatch_state,
    settle_unanswered_phone,
    status_after_dispatch_step,
    status_for_dispatch,
)
from telephony.incidents.errors import DispatchNotFound, InvalidTransition, ValidationError
from telephony.incidents.ledger import IncidentLedger
from telephony.incidents.model import (
    ENDED_STATUSES,
    NOTE_MAX,
    SYSTEM_ACTOR,
    Incident,
    ReportType,
    Status,
    check_id,
    clean_actor,
    clean_text,
)
from telephony.incidents.outbox import notification_payload, stand_down_payload
from telephony.incidents.outbox_store import OutboxStore
from telephony.incidents.store import IncidentRepository

log = logging.getLogger("telephony.incidents")


async def stand_down_dispatches(
    connection: asyncpg.Connection, ledger: IncidentLedger, incident_id: int, status: Status,
    *, actor: str, note: str,
) -> None:
    """Call off the dispatches still under way of an incident that just ended ``status``
    (cancelled, a prank), inside the transaction that ended it, the incident locked.

    Each becomes cancelled, on the incident's timeline; each recipient its notification
    reached is sent a stand-down through the outbox. A recipient never reached is not told:
    what is still pending to them is withdrawn by the outbox. Until this a fire crew kept
    driving to a report the supervisor had marked a prank, and its dispatch read
    "Diterima". Once: the incident leaves its open states once, and the dispatches are
    cancelled with it.
    """
    if status not in STAND_DOWN_STATUSES:
        return
    dispatches, outbox = DispatchStore(), OutboxStore()
    for dispatch in await dispatches.called_off_candidates(connection, incident_id):
        await dispatches.set_dispatch_state(connection, dispatch.dispatch_id,
                                            DispatchState.CANCELLED)
        reached = await _tell_stand_down(connection, outbox, incident_id, dispatch.dispatch_id,
                                         status=status, note=note)
        # The agency may know without a message (it said it accepted, or was called): the
        # line cannot tell it, the operator must.
        phone = not reached and (dispatch.by_phone
                                 or dispatch.state is DispatchState.ACKNOWLEDGED)
        await ledger.record(connection, incident_id, actor, "dispatch", {
            "dispatch_id": dispatch.dispatch_id, "agency": dispatch.agency_code,
            "from": dispatch.state.value, "to": DispatchState.CANCELLED.value,
            "stood_down": status.value, "stand_down_notices": reached,
            **({"phone_agency": True} if phone else {}),
        })
        log.info("incident #%d %s: dispatch %d to %s called off, %d stand-down(s) queued",
                 incident_id, status.value, dispatch.dispatch_id, dispatch.agency_code,
                 reached)


async def _tell_stand_down(
    connection: asyncpg.Connection, outbox: OutboxStore, incident_id: int, dispatch_id: int,
    *, status: Status, note: str,
) -> int:
    """Queue a stand-down to every recipient the dispatch's call-out reached; how many."""
    reached = await outbox.delivered_call_outs(connection, dispatch_id)
    for recipient_id, payload in reached:
        await outbox.enqueue_notification(connection, incident_id, dispatch_id, recipient_id,
                                          stand_down_payload(payload, status, note))
    return len(reached)


@dataclass(frozen=True)
class SlaBreach:
    """An open incident past its dispatch target."""

    incident: Incident
    clock: SlaClock


class DispatchService:
    """Dispatches agencies and tracks their steps; measures incidents against their targets."""

    def __init__(self, database: Database, config: IncidentConfig) -> None:
        self._database = database
        self._targets: Mapping[ReportType, timedelta] = dict(config.dispatch_targets)
        self._transfer_ring = config.transfer_ring
        self._queue_logs = config.queue_logs
        self._repo = DispatchStore()
        self._ledger = IncidentLedger(IncidentRepository())
        self._directory = DirectoryStore()
        self._outbox = OutboxStore()

    async def dispatch(
        self, incident_id: int, agency_code: str, *, actor: str, note: str = "",
        expected_version: int | None = None, by_phone: bool = False,
    ) -> Dispatch:
        """Send an agency to a verified (or already dispatched) incident.

        The first dispatch moves a verified incident to dispatched. The agency's recipients for
        the incident's report type are notified through the outbox, written in the same
        transaction: drain it with
        :meth:`~telephony.incidents.outbox_service.NotificationOutbox.deliver_notifications`.

        ``by_phone``: the operator handed the caller to the agency by phone
        (``telephony/transfers/``). An agency already dispatched and not done is then marked
        as reached by phone (and the incident's timeline says so) instead of refused.
        """
        checked = check_id("incident_id", incident_id)
        code = clean_agency_code(agency_code)
        who = clean_actor(actor)
        remark = clean_text("note", note, max_length=NOTE_MAX, multiline=True)

        async def work(connection: asyncpg.Connection) -> Dispatch:
            async with connection.transaction():
                current = await self._ledger.locked(connection, checked, expected_version)
                next_status = status_for_dispatch(current.status)
                agency = await self._directory.agency(connection, code)
                if agency is None or not agency.active:
                    raise ValidationError("agency",
                                          f"Instansi {code} tidak dikenal atau tidak aktif.")
                active = await self._repo.active_dispatch_id(connection, checked, code)
                if active is not None and by_phone:
                    await self._repo.mark_by_phone(connection, active)
                    await self._ledger.record(connection, checked, who, "dispatch", {
                        "dispatch_id": active, "agency": code, "by_phone": True,
                        "note": remark,
                    })
                    return await self._fetch(connection, active)
                if active is not None:
                    raise InvalidTransition(
                        f"{agency.name} sudah diteruskan untuk insiden ini dan belum selesai."
                    )
                dispatch_id = await self._repo.insert_dispatch(connection, checked, code, who,
                                                               remark, by_phone=by_phone)
                await self._ledger.record(connection, checked, who, "dispatch", {
                    "dispatch_id": dispatch_id, "agency": code,
                    "to": DispatchState.NOTIFIED.value, "note": remark,
                    **({"by_phone": True} if by_phone else {}),
                })
                if next_status is not None:
                    await self._ledger.set_status(connection, current, next_status, who,
                                                  {"dispatch_id": dispatch_id})
                else:
                    await self._ledger.repo.stamp_dispatched(connection, checked)
                incident = await self._ledger.fetch(connection, checked)
                recipients = await self._directory.recipients_for(connection, code,
                                                                  incident.report_type)
                for recipient in recipients:
                    await self._outbox.enqueue_notification(
                        connection, checked, dispatch_id, recipient.recipient_id,
                        notification_payload(incident, agency, recipient, dispatch_id),
                    )
                return await self._fetch(connection, dispatch_id)

        dispatch = await self._database.run(work)
        log.info("incident #%d dispatched to %s by %s", checked, code, who)
        return dispatch

    async def advance_dispatch(
        self, dispatch_id: int, state: DispatchState | str, *, actor: str, note: str = "",
        incident_id: int | None = None,
    ) -> Dispatch:
        """Record a dispatch's next step (acknowledged, on scene, done); steps the field team
        did not report may be skipped, none may be repeated or undone. The first team on
        scene puts a dispatched incident on scene.

        Or cancel it, with the reason in ``note`` (the agency declined or did not answer),
        before its team is on scene: the incident's status stays, the agency may be
        dispatched again, its notifications not delivered yet are withdrawn, and each
        recipient one reached is sent a stand-down through the outbox. Once every
        dispatch of the incident is cancelled its dispatch clock runs from the answer again
        (``dispatched_at`` is cleared; the next dispatch stamps it).
        ``incident_id``: the incident the caller saw the dispatch on; refused as not found
        if it belongs to another.
        """
        checked = check_id("dispatch_id", dispatch_id)
        target = parse_dispatch_state(state)
        who = clean_actor(actor)
        seen_on = None if incident_id is None else check_id("incident_id", incident_id)

        async def work(connection: asyncpg.Connection) -> Dispatch:
            async with connection.transaction():
                incident_id = await self._repo.dispatch_incident_id(connection, checked)
                if incident_id is None or seen_on not in (None, incident_id):
                    raise DispatchNotFound(checked)
                # Incident first, then dispatch: the same order as dispatch().
                incident = await self._ledger.locked(connection, incident_id, None)
                current = await self._fetch(connection, checked, lock=True)
                why = check_dispatch_step(current.state, target, note,
                                          incident_ended=incident.status in ENDED_STATUSES)
                await self._step(connection, incident_id, current, target, who=who, why=why)
                return await self._fetch(connection, checked)

        return await self._database.run(work)

    async def _step(self, connection: asyncpg.Connection, incident_id: int, current: Dispatch,
                    target: DispatchState, *, who: str, why: str,
                    detail: Mapping[str, object] | None = None) -> None:
        """Move ``current`` (locked, as its incident is) to ``target`` (a step the caller
        checked), saying ``why``; on the incident's timeline with ``detail`` besides. The
        last dispatch of a dispatched incident called off puts it back to verified."""
        checked = current.dispatch_id
        await self._repo.set_dispatch_state(connection, checked, target)
        # The only agency sent declined: the incident waits for one again, and the
        # supervisor's overdue list must say so rather than count it dispatched.
        restarted = (target is DispatchState.CANCELLED
                     and await self._ledger.repo.restart_dispatch_clock(connection,
                                                                        incident_id))
        told = 0
        if target is DispatchState.CANCELLED:
            # Sent by mistake, or the agency declined: whoever the call-out reached is told
            # not to come (a crew had set out on the message).
            status = (await self._ledger.fetch(connection, incident_id)).status
            told = await _tell_stand_down(connection, self._outbox, incident_id, checked,
                                          status=status, note=why)
        await self._ledger.record(connection, incident_id, who, "dispatch", {
            "dispatch_id": checked, "agency": current.agency_code,
            "from": current.state.value, "to": target.value,
            **({"note": why} if why else {}), **(detail or {}),
            **({"dispatch_clock_restarted": True} if restarted else {}),
            **({"stand_down_notices": told} if told else {}),
        })
        incident = await self._ledger.fetch(connection, incident_id)
        next_status = status_after_dispatch_step(incident.status, target, none_left=restarted)
        if next_status is Status.VERIFIED:
            # A step back no operator takes (model.TRANSITIONS): the line's, as the dispatch
            # clock's restart is, recorded as the cancellation's.
            await self._ledger.repo.set_status(connection, incident_id, next_status)
            await self._ledger.record(connection, incident_id, who, "status", {
                "from": incident.status.value, "to": next_status.value,
                "dispatch_id": checked, "reason": NO_AGENCY_LEFT})
        elif next_status is not None:
            await self._ledger.set_status(connection, incident, next_status, who,
                                          {"dispatch_id": checked})

    async def settle_unanswered_phone(self, now: datetime | None = None) -> int:
        """Settle the by-phone dispatches whose every call to the agency ended unanswered
        (rang out, busy, failed, called off), or was not answered within its ring time and
        never reported ended: each is called off, on an open incident, when the phone was
        the agency's only word of it, else kept; either way no longer "by phone", and the
        incident's timeline says the agency was not reached by phone and how the call ended
        (:func:`~telephony.incidents.dispatches.settle_unanswered_phone`). An incident
        whose every dispatch is called off is verified again, its dispatch target counting
        from the answer. How many were settled.

        Run by the incident upkeep: the transfer's leg ends in Asterisk, which the listener
        records; a line that was down then settles it on its first pass. The dialplan logs
        each leg's progress to the queue_log too (``SIAGALEG``), and the backfill applies what
        the line did not hear (``telephony/calls/history.py``). A leg whose end neither
        reported (a dialplan older than that log line, or the log unreadable) is settled
        once it can no longer ring, and only once the log was read past its ring time
        (``legs_read_at``): an agency that answered while the line was down is then known
        to have answered, not called off. A call answered (a retry the operator made
        meanwhile) leaves the dispatch as it is."""
        now = now if now is not None else datetime.now(UTC)

        async def candidates(connection: asyncpg.Connection) -> tuple[datetime, list[int]]:
            read = await legs_read_at(connection, self._queue_logs)
            cutoff = ring_over_before(now if read is None else min(now, read),
                                      self._transfer_ring)
            return cutoff, await self._repo.unanswered_phone_dispatches(connection, cutoff)

        settled = 0
        cutoff, dispatch_ids = await self._database.run(candidates)
        for dispatch_id in dispatch_ids:
            settle = functools.partial(self._settle_phone, dispatch_id=dispatch_id,
                                       cutoff=cutoff)
            if await self._database.run(settle):
                settled += 1
        return settled

    async def _settle_phone(self, connection: asyncpg.Connection, *, dispatch_id: int,
                            cutoff: datetime) -> bool:
        async with connection.transaction():
            incident_id = await self._repo.dispatch_incident_id(connection, dispatch_id)
            if incident_id is None:
                return False
            # Incident first, then dispatch: the same order as dispatch().
            incident = await self._ledger.locked(connection, incident_id, None)
            current = await self._fetch(connection, dispatch_id, lock=True)
            phone = await self._repo.unanswered_phone(connection, dispatch_id, cutoff)
            if phone is None or current.state not in CANCELLABLE_DISPATCH_STATES:
                return False  # a call was answered, or it moved on, since it was listed
            target, why = settle_unanswered_phone(current.state, phone,
                                                  incident_open=incident.is_open)
            await self._repo.clear_by_phone(connection, dispatch_id)
            how = UNRECORDED_PHONE if phone.outcome is None else phone.outcome.value
            detail = {"phone_unanswered": how}
            if target is not None:
                check_dispatch_step(current.state, target, why)
                await self._step(connection, incident_id, current, target, who=SYSTEM_ACTOR,
                                 why=why, detail=detail)
            else:
                await self._ledger.record(connection, incident_id, SYSTEM_ACTOR, "dispatch", {
                    "dispatch_id": dispatch_id, "agency": current.agency_code, "note": why,
                    **detail})
        log.warning("incident #%d: nobody at %s answered the operator's call (%s): dispatch "
                    "%d %s", incident_id, current.agency_code, how, dispatch_id,
                    "called off" if target is not None else "kept, no longer by phone")
        return True

    async def dispatches(self, incident_id: int) -> list[Dispatch]:
        """Every dispatch of an incident, in order."""
        checked = check_id("incident_id", incident_id)

        async def work(connection: asyncpg.Connection) -> list[Dispatch]:
            await self._ledger.fetch(connection, checked)
            return await self._repo.dispatches(connection, checked)

        return await self._database.run(work)

    async def notifications(self, incident_id: int) -> dict[int, dict[str, int]]:
        """How many notifications of each of the incident's dispatches are pending, sent,
        failed or withdrawn (see :func:`~telephony.incidents.outbox.notices_text`); a
        dispatch that notified nobody is absent."""
        checked = check_id("incident_id", incident_id)

        async def work(connection: asyncpg.Connection) -> dict[int, dict[str, int]]:
            return await self._outbox.dispatch_notifications(connection, checked)

        return await self._database.run(work)

    async def stand_downs(self, incident_id: int) -> dict[int, dict[str, int]]:
        """How many of the messages calling off each of the incident's dispatches are in
        each state, as :meth:`notifications` counts the call-outs."""
        checked = check_id("incident_id", incident_id)

        async def work(connection: asyncpg.Connection) -> dict[int, dict[str, int]]:
            return await self._outbox.dispatch_notifications(connection, checked,
                                                             stand_downs=True)

        return await self._database.run(work)

    async def _fetch(
        self, connection: asyncpg.Connection, dispatch_id: int, *, lock: bool = False
    ) -> Dispatch:
        dispatch = await self._repo.dispatch(connection, dispatch_id, lock=lock)
        if dispatch is None:
            raise DispatchNotFound(dispatch_id)
        return dispatch

    # -- service levels ------------------------------------------------------------------------

    @property
    def dispatch_targets(self) -> Mapping[ReportType, timedelta]:
        """The dispatch target of each report type that has one."""
        return self._targets

    def use_dispatch_targets(self, targets: Mapping[ReportType, timedelta]) -> None:
        """Hold incidents to these targets from now on (an admin changed them)."""
        self._targets = dict(targets)

    def sla_clock(self, incident: Incident, now: datetime) -> SlaClock | None:
        """The incident's dispatch clock, or ``None`` if there is none to meet (see
        :func:`~telephony.incidents.dispatches.dispatch_clock`)."""
        return dispatch_clock(
            answered_at=incident.answered_at, dispatched_at=incident.dispatched_at,
            target=self._targets.get(incident.report_type), now=now, is_open=incident.is_open,
        )

    async def sla_breaches(self, now: datetime | None = None) -> list[SlaBreach]:
        """Open incidents past their dispatch target (dispatched late, or still waiting)."""
        targets = self._targets
        instant = now if now is not None else datetime.now(UTC)
        if not targets:
            return []

        async def work(connection: asyncpg.Connection) -> list[tuple[Incident, timedelta]]:
            return await self._repo.past_dispatch_target(connection, targets, instant)

        breaches = []
        for incident, target in await self._database.run(work):
            clock = dispatch_clock(answered_at=incident.answered_at,
                                   dispatched_at=incident.dispatched_at, target=target,
                                   now=instant, is_open=incident.is_open)
            if clock is not None and clock.breached:
                breaches.append(SlaBreach(incident, clock))
        return breaches
