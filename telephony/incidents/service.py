"""The incident service: incidents and the calls they hold, run against PostgreSQL.

Every change is one transaction that first locks the incident row (``SELECT ... FOR UPDATE``),
then checks the rules on what is stored *now*, then writes the change and its timeline event.
Two operators acting at once are therefore serialised: the second sees the first's result and
is refused if the change no longer makes sense. Callers holding a version they read earlier
may pass ``expected_version`` to be refused (:class:`StaleIncident`) if anything changed since.
The lock-and-record steps are shared with the other incident services through
:class:`~telephony.incidents.ledger.IncidentLedger`.

Dispatches are :mod:`telephony.incidents.dispatch_service`'s, agencies, recipients and places
:mod:`~telephony.incidents.directory_service`'s, and delivering notifications
:mod:`~telephony.incidents.outbox_service`'s.

Refusals are :class:`~telephony.incidents.errors.IncidentError`; a refused request has changed
nothing. :class:`~telephony.db.connection.DatabaseUnavailable` means "try again later".
"""

from __future__ import annotations

import logging

import asyncpg

from telephony.calls.ids import parse_caller_id
from telephony.db.connection import Database, DatabaseUnavailable
from telephony.incidents.attachment_meta import Attachment, parse_attachment
from telephony.incidents.config import IncidentConfig
from telephony.incidents.directory_store import DirectoryStore
from telephony.incidents.dispatch_service import stand_down_dispatches
from telephony.incidents.dispatch_store import DispatchStore
from telephony.incidents.edits import IncidentPatch, apply_patch, changed_fields, settle_place
from telephony.incidents.errors import (
    CallAlreadyLinked,
    CallNotFound,
    IncidentNotFound,
    InvalidTransition,
    ValidationError,
)
from telephony.incidents.ledger import IncidentLedger
from telephony.incidents.model import (
    LABEL_DISMISSED,
    LABEL_WITHDRAWN,
    NOTE_MAX,
    SEARCH_LIMIT,
    SYSTEM_ACTOR,
    EscalationLevel,
    Incident,
    IncidentEvent,
    Status,
    check_escalation,
    check_id,
    clean_actor,
    clean_text,
    parse_escalation_level,
    parse_rating,
    parse_search,
    parse_status,
    prefill_from_call,
    rating_is_new,
    require_editable,
    require_open,
    status_for_label,
)
from telephony.incidents.store import IncidentRepository

log = logging.getLogger("telephony.incidents")


class IncidentService:
    """Creates incidents from calls and carries out operators' and field teams' changes."""

    def __init__(self, database: Database, config: IncidentConfig) -> None:
        self._database = database
        self._config = config
        self._repo = IncidentRepository()
        self._ledger = IncidentLedger(self._repo)
        self._gazetteer = DirectoryStore()
        self._dispatches = DispatchStore()

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
        await self._ledger.record(connection, incident_id, actor, "created", {
            "call_id": call_id, "status": Status.NEW.value,
            "report_type": new.report_type.value, "priority": int(new.priority),
        })
        return await self._ledger.fetch(connection, incident_id)

    async def settle_labelled_call(self, call_id: str) -> Incident | None:
        """Move the incident the line opened for ``call_id`` as the call's current label says
        (``model.status_for_label``): closed as a prank or cancelled when labelled a nuisance,
        back to "Baru" when that label is taken back. Returns the incident moved, or ``None``
        when nothing moved (no incident, one an operator worked on, the label agreeing).
        Reads the label under the incident's lock, so two quick relabellings settle on the
        later one whichever finishes first."""

        async def work(connection: asyncpg.Connection) -> Incident | None:
            async with connection.transaction():
                owner = await self._repo.incident_of_call(connection, call_id)
                if owner is None:
                    return None
                current = await self._ledger.locked(connection, owner, None)
                label = await self._repo.call_label(connection, call_id)
                target = status_for_label(
                    current, call_id=call_id, calls=await self._repo.call_ids(connection, owner),
                    events=await self._repo.events(connection, owner),
                    dispatched=await self._dispatches.has_dispatches(connection, owner),
                    label=label)
                if target is None:
                    return None
                await self._repo.set_status(connection, owner, target)
                await self._ledger.record(connection, owner, SYSTEM_ACTOR, "status", {
                    "from": current.status.value, "to": target.value, "call_id": call_id,
                    "reason": LABEL_DISMISSED if target is not Status.NEW else LABEL_WITHDRAWN,
                    "label": label or ""})
                return await self._ledger.fetch(connection, owner)

        try:
            incident = await self._database.run(work)
        except DatabaseUnavailable:
            # The label is stored: the incident upkeep settles it once the database is back.
            log.warning("incident of call %s not settled by its label yet: database "
                        "unavailable", call_id)
            return None
        if incident is not None:
            log.info("incident #%d %s after call %s was labelled", incident.incident_id,
                     incident.status.value, call_id)
        return incident

    async def settle_labelled_calls(self) -> list[Incident]:
        """:meth:`settle_labelled_call` for every recent call whose label may move its
        incident: the labels given through the API, and any a database outage kept from
        settling at once. Idempotent: safe to run again, or in two workers at once."""
        moved: list[Incident] = []
        batch = self._config.auto_create_batch

        async def candidates(connection: asyncpg.Connection) -> list[str]:
            return await self._repo.calls_to_settle_by_label(
                connection, max_age=self._config.auto_create_max_age, limit=batch)

        while True:
            call_ids = await self._database.run(candidates)
            settled = [await self.settle_labelled_call(call_id) for call_id in call_ids]
            moved += [incident for incident in settled if incident is not None]
            # A candidate the rules leave where it is stays one: stop rather than read it
            # again for ever.
            if len(call_ids) < batch or None in settled:
                return moved

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
        target = await self._ledger.checked(connection, target_id, expected_version)
        require_open(target.status)
        if await self._repo.call_snapshot(connection, call_id) is None:
            raise CallNotFound(call_id)
        # Read again under the locks: another operator may have merged the same repeat call
        # since (two screens, or one double click). Read before, the second was refused as
        # "already in #<the incident it had just left, cancelled as merged>" though the call
        # was where both wanted it.
        owner = await self._repo.incident_of_call(connection, call_id)
        if owner == target_id:
            return target
        if owner is not None and owner not in found:
            raise CallAlreadyLinked(call_id, owner)
        if owner is None:
            await self._repo.link_call(connection, target_id, call_id, actor)
            await self._ledger.record(connection, target_id, actor, "call_linked",
                                      {"call_id": call_id})
            return await self._ledger.fetch(connection, target_id)
        source = await self._ledger.fetch(connection, owner)
        if not await self._movable(connection, source, call_id):
            raise CallAlreadyLinked(call_id, owner)
        if not await self._repo.move_call(connection, call_id, owner, target_id, actor):
            moved_to = await self._repo.incident_of_call(connection, call_id)
            raise CallAlreadyLinked(call_id, moved_to if moved_to is not None else owner)
        await self._repo.set_status(connection, owner, Status.CANCELLED)
        await self._ledger.record(connection, owner, actor, "status", {
            "from": source.status.value, "to": Status.CANCELLED.value,
            "reason": "merged", "merged_into": target_id, "call_id": call_id,
        })
        # What an operator had taken down on the merged incident goes with its call: it was
        # left on the cancelled incident, out of sight of whoever works this one ("dua orang
        # terjebak di lantai 2" typed while the repeat caller spoke).
        taken_down = {key: value for key, value in (
            ("merged_location", source.location_text), ("merged_village", source.village_code),
            ("merged_description", source.description)) if value}
        await self._ledger.record(connection, target_id, actor, "call_linked",
                                  {"call_id": call_id, "merged_from": owner, **taken_down})
        return await self._ledger.fetch(connection, target_id)

    async def split_call(
        self, incident_id: int, call_id: str, *, actor: str, expected_version: int | None = None
    ) -> Incident:
        """Take a call linked to an open incident by mistake (merged into the wrong one, a
        typed number off by a digit) back out, into a new incident pre-filled from it; the
        new incident is returned. The call that opened the incident stays: it is the
        incident's own. Without this a wrong merge was for good: the call's own incident
        cancelled as merged, and the call held by an incident it had nothing to do with.
        """
        checked = check_id("incident_id", incident_id)
        who = clean_actor(actor)

        async def work(connection: asyncpg.Connection) -> Incident:
            async with connection.transaction():
                current = await self._ledger.locked(connection, checked, expected_version)
                require_open(current.status)
                calls = await self._repo.call_ids(connection, checked)
                if call_id not in calls:
                    raise InvalidTransition(f"Panggilan {call_id} tidak tercatat pada insiden "
                                            f"#{checked}.")
                if calls[0] == call_id:
                    raise InvalidTransition("Panggilan pertama, yang membuka insiden ini, "
                                            "tidak dapat dipisahkan darinya.")
                call = await self._repo.call_snapshot(connection, call_id)
                if call is None:
                    raise CallNotFound(call_id)
                new = prefill_from_call(call)
                split_id = await self._repo.insert_incident(connection, new, who)
                await self._repo.move_call(connection, call_id, checked, split_id, who)
                await self._ledger.record(connection, split_id, who, "created", {
                    "call_id": call_id, "status": Status.NEW.value,
                    "report_type": new.report_type.value, "priority": int(new.priority),
                    "split_from": checked,
                })
                await self._ledger.record(connection, checked, who, "call_split",
                                          {"call_id": call_id, "split_to": split_id})
                return await self._ledger.fetch(connection, split_id)

        incident = await self._database.run(work)
        log.info("call %s split from incident #%d into #%d by %s", call_id, checked,
                 incident.incident_id, who)
        return incident

    async def _movable(self, connection: asyncpg.Connection, source: Incident, call_id: str
                       ) -> bool:
        """Whether ``call_id`` may leave ``source``, the incident it opened: only while that
        incident is open, holds no other call and has no dispatch (nothing was done for it
        that merging would hide)."""
        return (source.is_open
                and await self._repo.call_ids(connection, source.incident_id) == [call_id]
                and not await self._dispatches.has_dispatches(connection, source.incident_id))

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
                source = await self._ledger.fetch(connection, owner)
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
            return await self._ledger.fetch(connection, checked)

        return await self._database.run(work)

    async def open_incidents(self, *, limit: int = 200, offset: int = 0,
                             resolved: bool = False) -> list[Incident]:
        """Open incidents (``resolved``: those resolved, waiting for a supervisor to close
        them), most urgent first, then oldest first, skipping ``offset``."""

        async def work(connection: asyncpg.Connection) -> list[Incident]:
            return await self._repo.open_incidents(connection, limit=limit, offset=offset,
                                                   resolved=resolved)

        return await self._database.run(work)

    async def search(self, text: object, *, limit: int = SEARCH_LIMIT) -> list[Incident]:
        """Incidents of any status, newest first, found by a caller's number (however the
        carrier wrote it, or a part of its digits) or by part of a place's name: the earlier
        report a caller or a village refers to, open or closed."""
        search = parse_search(text, parse_caller_id(text).key if isinstance(text, str)
                              else None)

        async def work(connection: asyncpg.Connection) -> list[Incident]:
            return await self._repo.search(connection, search, limit=limit)

        return await self._database.run(work)

    async def call_ids(self, incident_id: int) -> list[str]:
        """The calls an incident holds, in the order they were linked."""
        checked = check_id("incident_id", incident_id)

        async def work(connection: asyncpg.Connection) -> list[str]:
            await self._ledger.fetch(connection, checked)
            return await self._repo.call_ids(connection, checked)

        return await self._database.run(work)

    async def timeline(self, incident_id: int) -> list[IncidentEvent]:
        """Every recorded change of an incident, oldest first."""
        checked = check_id("incident_id", incident_id)

        async def work(connection: asyncpg.Connection) -> list[IncidentEvent]:
            await self._ledger.fetch(connection, checked)
            return await self._repo.events(connection, checked)

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
                current = await self._ledger.locked(connection, checked, expected_version)
                await self._ledger.set_status(connection, current, target, who, {"note": remark})
                await stand_down_dispatches(connection, self._ledger, checked, target,
                                            actor=who, note=remark)
                return await self._ledger.fetch(connection, checked)

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
                current = await self._ledger.locked(connection, checked, expected_version)
                require_editable(current.status)
                after = apply_patch(current.details, patch)
                if patch.touches_place:
                    village = after.village_code
                    sub_district = after.sub_district_code
                    after = settle_place(
                        after, patch,
                        village_sub_district=(
                            await self._gazetteer.village_sub_district(connection, village)
                            if village is not None else None),
                        sub_district_known=(
                            sub_district is not None
                            and await self._gazetteer.sub_district_exists(connection,
                                                                          sub_district)),
                    )
                changes = changed_fields(current.details, after)
                if not changes:
                    return current
                await self._repo.write_details(connection, checked, after)
                await self._ledger.record(connection, checked, who, "details",
                                          {"changes": changes})
                return await self._ledger.fetch(connection, checked)

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
                current = await self._ledger.locked(connection, checked, expected_version)
                require_open(current.status)
                why = check_escalation(current.escalation_level, target, reason)
                await self._repo.set_escalation(connection, checked, target, why)
                await self._ledger.record(connection, checked, who, "escalated", {
                    "from": current.escalation_level.value, "to": target.value, "reason": why,
                })
                return await self._ledger.fetch(connection, checked)

        return await self._database.run(work)

    async def record_rating(self, incident_id: int, rating: object, *, actor: str) -> Incident:
        """Store the caller's rating (1-5) of a resolved or closed incident."""
        checked = check_id("incident_id", incident_id)
        value = parse_rating(rating)
        who = clean_actor(actor)

        async def work(connection: asyncpg.Connection) -> Incident:
            async with connection.transaction():
                current = await self._ledger.locked(connection, checked, None)
                if not rating_is_new(current.status, current.rating, value):
                    return current
                await self._repo.set_rating(connection, checked, value)
                await self._ledger.record(connection, checked, who, "rating",
                                          {"rating": value})
                return await self._ledger.fetch(connection, checked)

        return await self._database.run(work)

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
                    await self._ledger.record(connection, checked, who, "attachment", {
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
            await self._ledger.fetch(connection, checked)
            return await self._repo.attachments(connection, checked)

        return await self._database.run(work)
