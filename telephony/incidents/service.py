"""The incident service: runs the rules of ``model`` against PostgreSQL.

Every change is one transaction that first locks the incident row (``SELECT ... FOR UPDATE``),
then checks the rules on what is stored *now*, then writes the change and its timeline event.
Two operators acting at once are therefore serialised: the second sees the first's result and
is refused if the change no longer makes sense. Callers holding a version they read earlier
may pass ``expected_version`` to be refused (:class:`StaleIncident`) if anything changed since.

Refusals are :class:`~telephony.incidents.model.IncidentError`; a refused request has changed
nothing. :class:`~telephony.db.connection.DatabaseUnavailable` means "try again later".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

import asyncpg

from telephony.core.loops import run_passes
from telephony.db.connection import Database
from telephony.incidents.model import (
    SYSTEM_ACTOR,
    Agency,
    Attachment,
    CallAlreadyLinked,
    CallNotFound,
    Dispatch,
    DispatchNotFound,
    DispatchState,
    EscalationLevel,
    Incident,
    IncidentEvent,
    IncidentNotFound,
    IncidentPatch,
    InvalidTransition,
    Notification,
    Place,
    Recipient,
    RecipientNotFound,
    ReportType,
    SlaClock,
    StaleIncident,
    Status,
    ValidationError,
    apply_patch,
    changed_fields,
    check_dispatch_step,
    check_escalation,
    check_id,
    check_transition,
    clean_actor,
    clean_agency_code,
    clean_text,
    dispatch_clock,
    notification_payload,
    parse_attachment,
    parse_dispatch_state,
    parse_escalation_level,
    parse_rating,
    parse_recipient,
    parse_status,
    prefill_from_call,
    rating_is_new,
    require_editable,
    require_open,
    retry_delay,
    settle_place,
    status_after_dispatch_step,
    status_for_dispatch,
)
from telephony.incidents.notifiers import NotificationFailed, Notifier
from telephony.incidents.store import IncidentRepository
from telephony.settings import DEFAULT_DISPATCH_TARGETS, DispatchTarget, Settings, SettingsError

log = logging.getLogger("telephony.incidents")

NOTE_MAX = 1000
_NOTIFIER_GRACE_SECONDS = 5.0


def dispatch_targets(targets: Sequence[DispatchTarget]) -> dict[ReportType, timedelta]:
    """Dispatch targets as the settings give them, keyed by report type.

    The settings hold the report type as plain text (they know no feature's words); it is
    checked here, so a type this line does not know is refused as a setting.
    """
    known = {kind.value for kind in ReportType}
    for target in targets:
        if target.report_type not in known:
            raise SettingsError(
                f"incident_dispatch_targets: unknown report type {target.report_type!r}")
    return {ReportType(t.report_type): timedelta(seconds=t.seconds) for t in targets}


@dataclass(frozen=True)
class IncidentConfig:
    """The tunables the service needs, taken from the settings."""

    dispatch_targets: Mapping[ReportType, timedelta] = field(
        default_factory=lambda: dispatch_targets(DEFAULT_DISPATCH_TARGETS))
    auto_create_max_age: timedelta = timedelta(hours=24)
    attachment_max_bytes: int = 25 * 1024 * 1024
    notify_timeout: float = 5.0
    notify_retry_seconds: float = 15.0
    notify_retry_cap_seconds: float = 900.0
    notify_max_attempts: int = 20
    auto_create_batch: int = 100
    # Delivered concurrently, so one claim stays well inside the pool and the lease.
    notify_batch: int = 10

    @classmethod
    def from_settings(cls, settings: Settings) -> IncidentConfig:
        """The configuration described by ``settings``."""
        return cls(
            dispatch_targets=dispatch_targets(settings.incident_dispatch_targets),
            auto_create_max_age=timedelta(hours=settings.incident_auto_create_hours),
            attachment_max_bytes=settings.attachment_max_bytes,
            notify_timeout=settings.notify_timeout,
            notify_retry_seconds=settings.notify_retry_seconds,
            notify_max_attempts=settings.notify_max_attempts,
        )


@dataclass(frozen=True)
class DeliveryReport:
    """What one drain of the notification outbox did."""

    sent: int = 0
    retried: int = 0  # failed, due again later
    failed: int = 0  # failed for the last allowed time; kept in the outbox as failed


@dataclass(frozen=True)
class SlaBreach:
    """An open incident past its dispatch target."""

    incident: Incident
    clock: SlaClock


Outcome = Literal["sent", "retried", "failed"]


class IncidentService:
    """Creates incidents from calls and carries out operators' and field teams' changes."""

    def __init__(
        self,
        database: Database,
        notifier: Notifier,
        config: IncidentConfig,
        repository: IncidentRepository | None = None,
    ) -> None:
        self._database = database
        self._notifier = notifier
        self._config = config
        self._repo = repository or IncidentRepository()

    async def run_upkeep(self, interval: float) -> None:
        """Forever: open incidents for newly answered calls, deliver due notifications.

        A database outage is logged once and retried at the same pace; the calls wait in the
        database (or the call spool) and nothing is lost.
        """
        await run_passes("incident upkeep", self._upkeep_pass,
                         lambda: asyncio.sleep(interval), log)

    async def _upkeep_pass(self) -> None:
        await self.create_for_answered_calls()
        await self.deliver_notifications()

    # -- creation and calls --------------------------------------------------------------------

    async def create_for_answered_calls(self) -> list[Incident]:
        """One incident for each recent answered call that is not information-only and has
        none yet. Idempotent: safe to run again, or in two workers at once."""
        created: list[Incident] = []
        batch = self._config.auto_create_batch

        async def candidates(connection: asyncpg.Connection) -> list[str]:
            return await self._repo.calls_needing_incident(
                connection, max_age=self._config.auto_create_max_age, limit=batch
            )

        while True:
            call_ids = await self._database.run(candidates)
            for call_id in call_ids:
                try:
                    created.append(await self.create_for_call(call_id))
                except CallAlreadyLinked:
                    continue  # another worker, or an operator linking it, was quicker
            if len(call_ids) < batch:
                return created

    async def create_for_call(self, call_id: str, *, actor: str = SYSTEM_ACTOR) -> Incident:
        """A new incident pre-filled from ``call_id`` (any call: an operator may open one for
        an information call that turned out to be an emergency).

        Raises :class:`CallAlreadyLinked` if the call belongs to an incident already.
        """
        who = clean_actor(actor)

        async def work(connection: asyncpg.Connection) -> Incident:
            try:
                async with connection.transaction():
                    return await self._create(connection, call_id, who)
            except asyncpg.UniqueViolationError:
                # Another creator linked the call between our check and our insert.
                owner = await self._repo.incident_of_call(connection, call_id)
                if owner is None:
                    raise
                raise CallAlreadyLinked(call_id, owner) from None

        incident = await self._database.run(work)
        log.info("incident #%d created for call %s by %s", incident.incident_id, call_id, who)
        return incident

    async def _create(self, connection: asyncpg.Connection, call_id: str, actor: str) -> Incident:
        call = await self._repo.call_snapshot(connection, call_id)
        if call is None:
            raise CallNotFound(call_id)
        owner = await self._repo.incident_of_call(connection, call_id)
        if owner is not None:
            raise CallAlreadyLinked(call_id, owner)
        new = prefill_from_call(call)
        incident_id = await self._repo.insert_incident(connection, new, actor)
        await self._repo.link_call(connection, incident_id, call_id, actor)
        await self._repo.append_event(connection, incident_id, actor, "created", {
            "call_id": call_id, "status": Status.NEW.value,
            "report_type": new.report_type.value, "priority": int(new.priority),
        })
        return await self._fetch(connection, incident_id)

    async def link_call(
        self, incident_id: int, call_id: str, *, actor: str, expected_version: int | None = None
    ) -> Incident:
        """Add a call (a repeat caller about the same event) to an open incident.

        A call that already opened an incident of its own is moved only if that incident is
        still open, holds no other call and has no dispatch; it is then cancelled as merged.
        Otherwise :class:`CallAlreadyLinked`.
        """
        target_id = check_id("incident_id", incident_id)
        who = clean_actor(actor)

        async def work(connection: asyncpg.Connection) -> Incident:
            try:
                async with connection.transaction():
                    return await self._link(connection, target_id, call_id, who,
                                            expected_version)
            except asyncpg.UniqueViolationError:
                owner = await self._repo.incident_of_call(connection, call_id)
                if owner is None:
                    raise
                raise CallAlreadyLinked(call_id, owner) from None

        return await self._database.run(work)

    async def _link(
        self, connection: asyncpg.Connection, target_id: int, call_id: str, actor: str,
        expected_version: int | None,
    ) -> Incident:
        owner = await self._repo.incident_of_call(connection, call_id)
        found = await self._repo.lock_incidents(
            connection, [target_id] if owner is None else [target_id, owner]
        )
        if target_id not in found:
            raise IncidentNotFound(target_id)
        target = await self._checked(connection, target_id, expected_version)
        require_open(target.status)
        if await self._repo.call_snapshot(connection, call_id) is None:
            raise CallNotFound(call_id)
        if owner == target_id:
            return target
        if owner is None:
            await self._repo.link_call(connection, target_id, call_id, actor)
            await self._repo.append_event(connection, target_id, actor, "call_linked",
                                          {"call_id": call_id})
            return await self._fetch(connection, target_id)
        source = await self._fetch(connection, owner)
        if not await self._movable(connection, source, call_id):
            raise CallAlreadyLinked(call_id, owner)
        if not await self._repo.move_call(connection, call_id, owner, target_id, actor):
            moved_to = await self._repo.incident_of_call(connection, call_id)
            raise CallAlreadyLinked(call_id, moved_to if moved_to is not None else owner)
        await self._repo.set_status(connection, owner, Status.CANCELLED)
        await self._repo.append_event(connection, owner, actor, "status", {
            "from": source.status.value, "to": Status.CANCELLED.value,
            "reason": "merged", "merged_into": target_id, "call_id": call_id,
        })
        await self._repo.append_event(connection, target_id, actor, "call_linked",
                                      {"call_id": call_id, "merged_from": owner})
        return await self._fetch(connection, target_id)

    async def _movable(self, connection: asyncpg.Connection, source: Incident, call_id: str
                       ) -> bool:
        """Whether ``call_id`` may leave ``source``, the incident it opened: only while that
        incident is open, holds no other call and has no dispatch (nothing was done for it
        that merging would hide)."""
        return (source.is_open
                and await self._repo.call_ids(connection, source.incident_id) == [call_id]
                and not await self._repo.has_dispatches(connection, source.incident_id))

    async def merge_candidates(self, call_id: str, *, limit: int = 5) -> list[Incident]:
        """Open incidents ``call_id`` could be linked to (a repeat caller about the same
        event): those of the call's kind first, then the others, newest first. None if the
        call's own incident can no longer give it up (see :meth:`link_call`).

        The kind is the report type of the call's incident if it has one (the operator may
        have corrected it), else the one the IVR's answer suggests.
        """

        async def work(connection: asyncpg.Connection) -> list[Incident]:
            owner = await self._repo.incident_of_call(connection, call_id)
            if owner is None:
                call = await self._repo.call_snapshot(connection, call_id)
                if call is None:
                    raise CallNotFound(call_id)
                kind = prefill_from_call(call).report_type
            else:
                source = await self._fetch(connection, owner)
                if not await self._movable(connection, source, call_id):
                    return []
                kind = source.report_type
            return await self._repo.open_incidents_like(connection, kind, exclude=owner,
                                                        limit=limit)

        return await self._database.run(work)

    # -- reading -------------------------------------------------------------------------------

    async def get(self, incident_id: int) -> Incident:
        """One incident; :class:`IncidentNotFound` if there is none."""
        checked = check_id("incident_id", incident_id)

        async def work(connection: asyncpg.Connection) -> Incident:
            return await self._fetch(connection, checked)

        return await self._database.run(work)

    async def open_incidents(self, *, limit: int = 200) -> list[Incident]:
        """Open incidents, most urgent first, then oldest first."""

        async def work(connection: asyncpg.Connection) -> list[Incident]:
            return await self._repo.open_incidents(connection, limit=limit)

        return await self._database.run(work)

    async def call_ids(self, incident_id: int) -> list[str]:
        """The calls an incident holds, in the order they were linked."""
        checked = check_id("incident_id", incident_id)

        async def work(connection: asyncpg.Connection) -> list[str]:
            await self._fetch(connection, checked)
            return await self._repo.call_ids(connection, checked)

        return await self._database.run(work)

    async def timeline(self, incident_id: int) -> list[IncidentEvent]:
        """Every recorded change of an incident, oldest first."""
        checked = check_id("incident_id", incident_id)

        async def work(connection: asyncpg.Connection) -> list[IncidentEvent]:
            await self._fetch(connection, checked)
            return await self._repo.events(connection, checked)

        return await self._database.run(work)

    async def places(self, *, sub_district_code: str | None = None) -> list[Place]:
        """The gazetteer's villages (of one sub-district, if given)."""

        async def work(connection: asyncpg.Connection) -> list[Place]:
            return await self._repo.places(connection, sub_district_code=sub_district_code)

        return await self._database.run(work)

    # -- operator changes ----------------------------------------------------------------------

    async def change_status(
        self, incident_id: int, status: Status | str, *, actor: str, note: str = "",
        expected_version: int | None = None,
    ) -> Incident:
        """Move the incident along its timeline; :class:`InvalidTransition` if not allowed."""
        checked = check_id("incident_id", incident_id)
        target = parse_status(status)
        who = clean_actor(actor)
        remark = clean_text("note", note, max_length=NOTE_MAX, multiline=True)

        async def work(connection: asyncpg.Connection) -> Incident:
            async with connection.transaction():
                current = await self._locked(connection, checked, expected_version)
                check_transition(current.status, target)
                await self._repo.set_status(connection, checked, target)
                await self._repo.append_event(connection, checked, who, "status", {
                    "from": current.status.value, "to": target.value, "note": remark,
                })
                return await self._fetch(connection, checked)

        return await self._database.run(work)

    async def update_details(
        self, incident_id: int, patch: IncidentPatch, *, actor: str,
        expected_version: int | None = None,
    ) -> Incident:
        """Apply an operator's edit (see :func:`~telephony.incidents.model.parse_patch`).

        The village and sub-district are checked against the gazetteer. An edit that changes
        nothing records nothing.
        """
        checked = check_id("incident_id", incident_id)
        who = clean_actor(actor)

        async def work(connection: asyncpg.Connection) -> Incident:
            async with connection.transaction():
                current = await self._locked(connection, checked, expected_version)
                require_editable(current.status)
                after = apply_patch(current.details, patch)
                if patch.touches_place:
                    village = after.village_code
                    sub_district = after.sub_district_code
                    after = settle_place(
                        after, patch,
                        village_sub_district=(
                            await self._repo.village_sub_district(connection, village)
                            if village is not None else None),
                        sub_district_known=(
                            sub_district is not None
                            and await self._repo.sub_district_exists(connection, sub_district)),
                    )
                changes = changed_fields(current.details, after)
                if not changes:
                    return current
                await self._repo.write_details(connection, checked, after)
                await self._repo.append_event(connection, checked, who, "details",
                                              {"changes": changes})
                return await self._fetch(connection, checked)

        return await self._database.run(work)

    async def escalate(
        self, incident_id: int, level: EscalationLevel | str, reason: str, *, actor: str,
        expected_version: int | None = None,
    ) -> Incident:
        """Raise the escalation level (village → sub-district → regency → province)."""
        checked = check_id("incident_id", incident_id)
        target = parse_escalation_level(level)
        who = clean_actor(actor)

        async def work(connection: asyncpg.Connection) -> Incident:
            async with connection.transaction():
                current = await self._locked(connection, checked, expected_version)
                require_open(current.status)
                why = check_escalation(current.escalation_level, target, reason)
                await self._repo.set_escalation(connection, checked, target, why)
                await self._repo.append_event(connection, checked, who, "escalated", {
                    "from": current.escalation_level.value, "to": target.value, "reason": why,
                })
                return await self._fetch(connection, checked)

        return await self._database.run(work)

    async def record_rating(self, incident_id: int, rating: object, *, actor: str) -> Incident:
        """Store the caller's rating (1-5) of a resolved or closed incident."""
        checked = check_id("incident_id", incident_id)
        value = parse_rating(rating)
        who = clean_actor(actor)

        async def work(connection: asyncpg.Connection) -> Incident:
            async with connection.transaction():
                current = await self._locked(connection, checked, None)
                if not rating_is_new(current.status, current.rating, value):
                    return current
                await self._repo.set_rating(connection, checked, value)
                await self._repo.append_event(connection, checked, who, "rating",
                                              {"rating": value})
                return await self._fetch(connection, checked)

        return await self._database.run(work)

    # -- agencies and dispatch -----------------------------------------------------------------

    async def agencies(self) -> list[Agency]:
        """Every agency, active or not."""
        return await self._database.run(self._repo.agencies)

    async def save_agency(self, code: str, name: str, *, active: bool = True) -> Agency:
        """Add an agency, or rename it or (de)activate it."""
        agency = Agency(clean_agency_code(code), clean_text("name", name, max_length=100),
                        active)
        if not agency.name:
            raise ValidationError("name", "Nama instansi wajib diisi.")

        async def work(connection: asyncpg.Connection) -> Agency:
            await self._repo.save_agency(connection, agency)
            return agency

        return await self._database.run(work)

    async def add_recipient(
        self, agency_code: str, *, name: str, contact: str, role: str = "",
        report_type: ReportType | str | None = None,
    ) -> Recipient:
        """Add a person notified when the agency is dispatched (to ``report_type`` reports
        only, or to all when ``None``)."""
        recipient = parse_recipient(agency_code, report_type, name, role, contact)

        async def work(connection: asyncpg.Connection) -> Recipient:
            if await self._repo.agency(connection, recipient.agency_code) is None:
                raise ValidationError("agency",
                                      f"Instansi {recipient.agency_code} tidak dikenal.")
            return await self._repo.add_recipient(connection, recipient)

        return await self._database.run(work)

    async def recipients(self) -> list[Recipient]:
        """Every recipient of every agency, active or not."""
        return await self._database.run(self._repo.recipients)

    async def set_recipient_active(self, recipient_id: int, active: bool) -> Recipient:
        """Stop (or resume) notifying a recipient; their past notifications stay."""
        checked = check_id("recipient_id", recipient_id)

        async def work(connection: asyncpg.Connection) -> Recipient | None:
            return await self._repo.set_recipient_active(connection, checked, active)

        recipient = await self._database.run(work)
        if recipient is None:
            raise RecipientNotFound(checked)
        return recipient

    async def dispatch(
        self, incident_id: int, agency_code: str, *, actor: str, note: str = "",
        expected_version: int | None = None,
    ) -> Dispatch:
        """Send an agency to a verified (or already dispatched) incident.

        The first dispatch moves a verified incident to dispatched. The agency's recipients for
        the incident's report type are notified through the outbox, written in the same
        transaction: drain it with :meth:`deliver_notifications`.
        """
        checked = check_id("incident_id", incident_id)
        code = clean_agency_code(agency_code)
        who = clean_actor(actor)
        remark = clean_text("note", note, max_length=NOTE_MAX, multiline=True)

        async def work(connection: asyncpg.Connection) -> Dispatch:
            async with connection.transaction():
                current = await self._locked(connection, checked, expected_version)
                next_status = status_for_dispatch(current.status)
                agency = await self._repo.agency(connection, code)
                if agency is None or not agency.active:
                    raise ValidationError("agency",
                                          f"Instansi {code} tidak dikenal atau tidak aktif.")
                if await self._repo.active_dispatch_exists(connection, checked, code):
                    raise InvalidTransition(
                        f"{agency.name} sudah diteruskan untuk insiden ini dan belum selesai."
                    )
                dispatch_id = await self._repo.insert_dispatch(connection, checked, code, who,
                                                               remark)
                await self._repo.append_event(connection, checked, who, "dispatch", {
                    "dispatch_id": dispatch_id, "agency": code,
                    "to": DispatchState.NOTIFIED.value, "note": remark,
                })
                if next_status is not None:
                    await self._set_status(connection, current, next_status, who,
                                           {"dispatch_id": dispatch_id})
                incident = await self._fetch(connection, checked)
                recipients = await self._repo.recipients_for(connection, code,
                                                             incident.report_type)
                for recipient in recipients:
                    await self._repo.enqueue_notification(
                        connection, checked, dispatch_id, recipient.recipient_id,
                        notification_payload(incident, agency, recipient, dispatch_id),
                    )
                return await self._fetch_dispatch(connection, dispatch_id)

        dispatch = await self._database.run(work)
        log.info("incident #%d dispatched to %s by %s", checked, code, who)
        return dispatch

    async def advance_dispatch(
        self, dispatch_id: int, state: DispatchState | str, *, actor: str
    ) -> Dispatch:
        """Record a dispatch's next step (acknowledged, on scene, done); steps the field team
        did not report may be skipped, none may be repeated or undone. The first team on
        scene puts a dispatched incident on scene."""
        checked = check_id("dispatch_id", dispatch_id)
        target = parse_dispatch_state(state)
        who = clean_actor(actor)

        async def work(connection: asyncpg.Connection) -> Dispatch:
            async with connection.transaction():
                incident_id = await self._repo.dispatch_incident_id(connection, checked)
                if incident_id is None:
                    raise DispatchNotFound(checked)
                # Incident first, then dispatch: the same order as dispatch().
                await self._repo.lock_incidents(connection, [incident_id])
                current = await self._fetch_dispatch(connection, checked, lock=True)
                check_dispatch_step(current.state, target)
                await self._repo.set_dispatch_state(connection, checked, target)
                await self._repo.append_event(connection, incident_id, who, "dispatch", {
                    "dispatch_id": checked, "agency": current.agency_code,
                    "from": current.state.value, "to": target.value,
                })
                incident = await self._fetch(connection, incident_id)
                next_status = status_after_dispatch_step(incident.status, target)
                if next_status is not None:
                    await self._set_status(connection, incident, next_status, who,
                                           {"dispatch_id": checked})
                return await self._fetch_dispatch(connection, checked)

        return await self._database.run(work)

    async def dispatches(self, incident_id: int) -> list[Dispatch]:
        """Every dispatch of an incident, in order."""
        checked = check_id("incident_id", incident_id)

        async def work(connection: asyncpg.Connection) -> list[Dispatch]:
            await self._fetch(connection, checked)
            return await self._repo.dispatches(connection, checked)

        return await self._database.run(work)

    # -- notifications -------------------------------------------------------------------------

    async def deliver_notifications(self) -> DeliveryReport:
        """Drain the outbox: deliver every due notification once, recording each outcome.

        A failure is retried later with a doubling delay; after the last allowed attempt the
        notification stays in the outbox as failed. Delivery is at least once.
        """
        config = self._config
        # Long enough that a claimed notification is not claimed again while still in flight.
        lease = timedelta(seconds=config.notify_timeout + _NOTIFIER_GRACE_SECONDS + 30)
        outcomes: list[Outcome] = []

        async def claim(connection: asyncpg.Connection) -> list[Notification]:
            return await self._repo.claim_notifications(
                connection, limit=config.notify_batch, lease=lease
            )

        while True:
            claimed = await self._database.run(claim)
            # Every delivery runs to its end before an error (the database gone) propagates:
            # none is left running unobserved.
            results = await asyncio.gather(*(self._deliver(n) for n in claimed),
                                           return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
                outcomes.append(result)
            if len(claimed) < config.notify_batch:
                return DeliveryReport(outcomes.count("sent"), outcomes.count("retried"),
                                      outcomes.count("failed"))

    async def _deliver(self, notification: Notification) -> Outcome:
        config = self._config
        try:
            # A notifier enforces its own timeout; this bounds one that does not.
            async with asyncio.timeout(config.notify_timeout + _NOTIFIER_GRACE_SECONDS):
                await self._notifier.send(notification)
        except (NotificationFailed, TimeoutError) as exc:
            error = str(exc) or type(exc).__name__
            give_up = notification.attempt >= config.notify_max_attempts
            retry_in = None if give_up else timedelta(seconds=retry_delay(
                notification.attempt, base=config.notify_retry_seconds,
                cap=config.notify_retry_cap_seconds))
            log.warning("notification %d, attempt %d failed%s: %s",
                        notification.notification_id, notification.attempt,
                        " for the last time" if give_up else "", error)

            async def failed(connection: asyncpg.Connection) -> None:
                await self._repo.mark_failed(connection, notification.notification_id,
                                             error, retry_in)

            await self._database.run(failed)
            return "failed" if give_up else "retried"

        async def sent(connection: asyncpg.Connection) -> None:
            await self._repo.mark_sent(connection, notification.notification_id)

        await self._database.run(sent)
        return "sent"

    async def outbox_counts(self) -> dict[str, int]:
        """How many notifications are pending, sent and failed."""
        return await self._database.run(self._repo.outbox_counts)

    # -- service levels ------------------------------------------------------------------------

    @property
    def dispatch_targets(self) -> Mapping[ReportType, timedelta]:
        """The dispatch target of each report type that has one."""
        return self._config.dispatch_targets

    def use_dispatch_targets(self, targets: Mapping[ReportType, timedelta]) -> None:
        """Hold incidents to these targets from now on (an admin changed them)."""
        self._config = replace(self._config, dispatch_targets=dict(targets))

    def sla_clock(self, incident: Incident, now: datetime) -> SlaClock | None:
        """The incident's dispatch clock, or ``None`` if its report type has no target."""
        return dispatch_clock(
            answered_at=incident.answered_at, dispatched_at=incident.dispatched_at,
            target=self._config.dispatch_targets.get(incident.report_type), now=now,
        )

    async def sla_breaches(self, now: datetime | None = None) -> list[SlaBreach]:
        """Open incidents past their dispatch target (dispatched late, or still waiting)."""
        targets = self._config.dispatch_targets
        instant = now if now is not None else datetime.now(UTC)
        if not targets:
            return []

        async def work(connection: asyncpg.Connection) -> list[tuple[Incident, timedelta]]:
            return await self._repo.past_dispatch_target(connection, targets, instant)

        breaches = []
        for incident, target in await self._database.run(work):
            clock = dispatch_clock(answered_at=incident.answered_at,
                                   dispatched_at=incident.dispatched_at, target=target,
                                   now=instant)
            if clock is not None and clock.breached:
                breaches.append(SlaBreach(incident, clock))
        return breaches

    # -- field documentation -------------------------------------------------------------------

    async def add_attachment(
        self, incident_id: int, *, filename: str, content_type: str, size_bytes: int,
        sha256: str, stored_path: str, actor: str,
    ) -> Attachment:
        """Record the metadata of a file a field team attached (the file is stored already)."""
        checked = check_id("incident_id", incident_id)
        meta = parse_attachment(filename, content_type, size_bytes, sha256, stored_path,
                                max_bytes=self._config.attachment_max_bytes)
        who = clean_actor(actor)

        async def work(connection: asyncpg.Connection) -> Attachment:
            try:
                async with connection.transaction():
                    if not await self._repo.lock_incidents(connection, [checked]):
                        raise IncidentNotFound(checked)
                    attachment = await self._repo.add_attachment(connection, checked, meta, who)
                    await self._repo.append_event(connection, checked, who, "attachment", {
                        "attachment_id": attachment.attachment_id, "filename": meta.filename,
                        "size_bytes": meta.size_bytes, "sha256": meta.sha256,
                    })
                    return attachment
            except asyncpg.UniqueViolationError:
                raise ValidationError(
                    "stored_path", "Lokasi simpan berkas sudah dipakai lampiran lain."
                ) from None

        return await self._database.run(work)

    async def attachments(self, incident_id: int) -> list[Attachment]:
        """An incident's attachments, oldest first."""
        checked = check_id("incident_id", incident_id)

        async def work(connection: asyncpg.Connection) -> list[Attachment]:
            await self._fetch(connection, checked)
            return await self._repo.attachments(connection, checked)

        return await self._database.run(work)

    # -- helpers -------------------------------------------------------------------------------

    async def _fetch(self, connection: asyncpg.Connection, incident_id: int) -> Incident:
        incident = await self._repo.incident(connection, incident_id)
        if incident is None:
            raise IncidentNotFound(incident_id)
        return incident

    async def _fetch_dispatch(
        self, connection: asyncpg.Connection, dispatch_id: int, *, lock: bool = False
    ) -> Dispatch:
        dispatch = await self._repo.dispatch(connection, dispatch_id, lock=lock)
        if dispatch is None:
            raise DispatchNotFound(dispatch_id)
        return dispatch

    async def _locked(
        self, connection: asyncpg.Connection, incident_id: int, expected_version: int | None
    ) -> Incident:
        """Lock the incident for this transaction and read it as it is now."""
        if not await self._repo.lock_incidents(connection, [incident_id]):
            raise IncidentNotFound(incident_id)
        return await self._checked(connection, incident_id, expected_version)

    async def _checked(
        self, connection: asyncpg.Connection, incident_id: int, expected_version: int | None
    ) -> Incident:
        incident = await self._fetch(connection, incident_id)
        if expected_version is not None and incident.version != expected_version:
            raise StaleIncident(incident_id, expected_version, incident.version)
        return incident

    async def _set_status(
        self, connection: asyncpg.Connection, current: Incident, target: Status, actor: str,
        detail: Mapping[str, object],
    ) -> None:
        """A status change that follows from another change (a dispatch, a team on scene)."""
        check_transition(current.status, target)
        await self._repo.set_status(connection, current.incident_id, target)
        await self._repo.append_event(connection, current.incident_id, actor, "status", {
            "from": current.status.value, "to": target.value, **detail,
        })
