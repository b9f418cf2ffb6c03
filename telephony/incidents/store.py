"""SQL for the incidents themselves: incidents, the calls they hold, their timeline and their
attachments. The directory, dispatches and the notification outbox have stores of their own
(``directory_store``, ``dispatch_store``, ``outbox_store``).

Plain reads and writes only: the rules live in the pure modules and the transactions and
locking order in the services. Every method takes the connection to run on, so a service
decides what shares one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import asyncpg

from telephony.db.rows import from_row
from telephony.incidents.attachment_meta import Attachment, AttachmentMeta
from telephony.incidents.model import (
    INFORMATION_CATEGORY,
    LABEL_DISMISSED,
    LABEL_WITHDRAWN,
    NUISANCE_STATUSES,
    OPEN_STATUSES,
    SYSTEM_ACTOR,
    CallSnapshot,
    Coordinates,
    EscalationLevel,
    Incident,
    IncidentDetails,
    IncidentEvent,
    IncidentSearch,
    NewIncident,
    ReportType,
    Status,
)

OPEN: list[str] = sorted(OPEN_STATUSES)


def incident_from_row(row: asyncpg.Record) -> Incident:
    """An incident from a row of ``incident_overview`` (its point from two columns)."""
    latitude, longitude = row["latitude"], row["longitude"]
    return from_row(Incident, row,
                    coordinates=None if latitude is None else Coordinates(latitude, longitude))


class IncidentRepository:
    """Reads and writes the incident tables. Holds no connection: callers pass one in."""

    # -- calls ---------------------------------------------------------------------------------

    async def call_snapshot(
        self, connection: asyncpg.Connection, call_id: str
    ) -> CallSnapshot | None:
        """What the call record says about ``call_id``."""
        row = await connection.fetchrow(
            """
            SELECT call_id, line, caller_number, ivr_category, ivr_skill, operator, answered_at
            FROM calls WHERE call_id = $1
            """,
            call_id,
        )
        return from_row(CallSnapshot, row) if row is not None else None

    async def calls_needing_incident(
        self, connection: asyncpg.Connection, *, max_age: timedelta, limit: int
    ) -> list[str]:
        """Answered, not information-only, recent calls that belong to no incident, oldest
        answer first. A call without an IVR category counts as an emergency."""
        rows = await connection.fetch(
            """
            SELECT c.call_id FROM calls c
            WHERE c.answered_at IS NOT NULL
              AND c.answered_at >= now() - $1::interval
              AND c.ivr_category IS DISTINCT FROM $2
              AND NOT EXISTS (SELECT 1 FROM incident_calls ic WHERE ic.call_id = c.call_id)
            ORDER BY c.answered_at
            LIMIT $3
            """,
            max_age, INFORMATION_CATEGORY, limit,
        )
        return [row["call_id"] for row in rows]

    async def incident_of_call(
        self, connection: asyncpg.Connection, call_id: str, *, lock: bool = False
    ) -> int | None:
        """The incident ``call_id`` belongs to, if any (locking the link when asked)."""
        query = "SELECT incident_id FROM incident_calls WHERE call_id = $1"
        value = await connection.fetchval(query + (" FOR UPDATE" if lock else ""), call_id)
        return int(value) if value is not None else None

    async def link_call(
        self, connection: asyncpg.Connection, incident_id: int, call_id: str, actor: str
    ) -> None:
        """Attach a call; raises ``asyncpg.UniqueViolationError`` if it belongs elsewhere."""
        await connection.execute(
            "INSERT INTO incident_calls (call_id, incident_id, linked_by) VALUES ($1, $2, $3)",
            call_id, incident_id, actor,
        )

    async def move_call(
        self, connection: asyncpg.Connection, call_id: str, source_id: int, target_id: int,
        actor: str,
    ) -> bool:
        """Move a call from ``source_id`` to ``target_id``; ``False`` if it was not in
        ``source_id`` any more."""
        status = await connection.execute(
            """
            UPDATE incident_calls SET incident_id = $3, linked_at = now(), linked_by = $4
            WHERE call_id = $1 AND incident_id = $2
            """,
            call_id, source_id, target_id, actor,
        )
        return status == "UPDATE 1"

    async def call_ids(self, connection: asyncpg.Connection, incident_id: int) -> list[str]:
        """The calls of an incident, in the order they were linked."""
        rows = await connection.fetch(
            "SELECT call_id FROM incident_calls WHERE incident_id = $1 "
            "ORDER BY linked_at, call_id",
            incident_id,
        )
        return [row["call_id"] for row in rows]

    async def call_label(self, connection: asyncpg.Connection, call_id: str) -> str | None:
        """The call's current label (its latest, as the screening keeps them), if any."""
        label: str | None = await connection.fetchval(
            "SELECT label FROM call_labels WHERE call_id = $1 "
            "ORDER BY labelled_at DESC, label_id DESC LIMIT 1", call_id)
        return label

    async def calls_to_settle_by_label(
        self, connection: asyncpg.Connection, *, max_age: timedelta, limit: int
    ) -> list[str]:
        """Calls whose label may move the incident the line opened for them, as
        ``model.status_for_label`` has it (this reads the same rules, so what it finds moves):
        an incident of that call alone, never dispatched, with nothing on its timeline but its
        creation and moves by label, "Baru" while its call is labelled a nuisance, or closed
        by label while its call's label no longer puts it there; of the calls answered
        within ``max_age`` (the automatic ones' window: ``calls_needing_incident``, read
        through the same index rather than every incident ever closed), oldest first."""
        rows = await connection.fetch(
            """
            SELECT ic.call_id FROM calls c
            JOIN incident_calls ic USING (call_id)
            JOIN incidents i USING (incident_id)
            LEFT JOIN LATERAL (
                SELECT l.label FROM call_labels l WHERE l.call_id = ic.call_id
                ORDER BY l.labelled_at DESC, l.label_id DESC LIMIT 1) l ON true
            WHERE c.answered_at >= now() - $2::interval AND i.created_by = $1
              AND (i.status = 'new' OR i.status = ANY($3::text[]))
              AND i.status IS DISTINCT FROM COALESCE($4::jsonb ->> l.label, 'new')
              AND NOT EXISTS (SELECT 1 FROM incident_calls o
                              WHERE o.incident_id = i.incident_id AND o.call_id <> ic.call_id)
              AND NOT EXISTS (SELECT 1 FROM dispatches d WHERE d.incident_id = i.incident_id)
              AND NOT EXISTS (SELECT 1 FROM incident_events e
                              WHERE e.incident_id = i.incident_id AND e.kind <> 'created'
                                AND (e.kind <> 'status'
                                     OR (e.detail ->> 'reason') IS DISTINCT FROM $5
                                        AND (e.detail ->> 'reason') IS DISTINCT FROM $6))
            ORDER BY c.answered_at, ic.call_id
            LIMIT $7
            """,
            SYSTEM_ACTOR, max_age,
            sorted({status.value for status in NUISANCE_STATUSES.values()}),
            json.dumps({label: status.value for label, status in NUISANCE_STATUSES.items()}),
            LABEL_DISMISSED, LABEL_WITHDRAWN, limit,
        )
        return [row["call_id"] for row in rows]

    # -- incidents -----------------------------------------------------------------------------

    async def insert_incident(
        self, connection: asyncpg.Connection, new: NewIncident, actor: str
    ) -> int:
        """Create an incident in status ``new``; returns its id."""
        value = await connection.fetchval(
            """
            INSERT INTO incidents (report_type, priority, line, caller_number, ivr_category,
                                   ivr_skill, operator, created_by)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            RETURNING incident_id
            """,
            new.report_type.value, int(new.priority), new.line, new.caller_number,
            new.ivr_category, new.ivr_skill, new.operator, actor,
        )
        return int(value)

    async def lock_incidents(
        self, connection: asyncpg.Connection, incident_ids: Sequence[int]
    ) -> set[int]:
        """Lock incident rows for this transaction, in id order (so two transactions locking
        the same pair cannot deadlock); returns the ids that exist."""
        rows = await connection.fetch(
            """
            SELECT incident_id FROM incidents WHERE incident_id = ANY($1::bigint[])
            ORDER BY incident_id FOR UPDATE
            """,
            sorted(set(incident_ids)),
        )
        return {row["incident_id"] for row in rows}

    async def incident(
        self, connection: asyncpg.Connection, incident_id: int
    ) -> Incident | None:
        """One incident."""
        row = await connection.fetchrow(
            "SELECT * FROM incident_overview WHERE incident_id = $1", incident_id
        )
        return incident_from_row(row) if row is not None else None

    async def open_incidents(
        self, connection: asyncpg.Connection, *, limit: int = 200, offset: int = 0,
        resolved: bool = False,
    ) -> list[Incident]:
        """Open incidents (``resolved``: those resolved, waiting to be closed), most urgent
        first, then oldest first (then by id: a page boundary must fall between the same two
        incidents at every read), skipping ``offset``."""
        rows = await connection.fetch(
            """
            SELECT * FROM incident_overview WHERE status = ANY($1::text[])
            ORDER BY priority, created_at, incident_id LIMIT $2 OFFSET $3
            """,
            [Status.RESOLVED.value] if resolved else OPEN, limit, offset,
        )
        return [incident_from_row(row) for row in rows]

    async def search(
        self, connection: asyncpg.Connection, search: IncidentSearch, *, limit: int
    ) -> list[Incident]:
        """Incidents of every status matching ``search``, newest first: a number matches any
        of an incident's callers (by history key, or its digits within theirs); a place, part
        of the village's, sub-district's or location's name, in any case."""
        place = search.place
        pattern = None if place is None else "%" + (
            place.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")) + "%"
        digits = None if search.digits is None else f"%{search.digits}%"
        rows = await connection.fetch(
            r"""
            SELECT * FROM incident_overview o
            WHERE ($1::text IS NULL
                   OR regexp_replace(o.caller_number, '[^0-9]', '', 'g') LIKE $1
                   OR EXISTS (SELECT 1 FROM incident_calls ic JOIN calls c USING (call_id)
                               WHERE ic.incident_id = o.incident_id
                                 AND (c.caller_key = $2
                                      OR regexp_replace(c.caller_number, '[^0-9]', '', 'g')
                                         LIKE $1)))
              AND ($3::text IS NULL
                   OR o.village_name ILIKE $3 OR o.sub_district_name ILIKE $3
                   OR o.location_text ILIKE $3)
            ORDER BY o.created_at DESC, o.incident_id DESC
            LIMIT $4
            """,
            digits, search.caller_key, pattern, limit,
        )
        return [incident_from_row(row) for row in rows]

    async def open_incidents_like(
        self, connection: asyncpg.Connection, report_type: ReportType, *,
        exclude: int | None, limit: int,
    ) -> list[Incident]:
        """Open incidents but ``exclude``: those of ``report_type`` first, then the others,
        newest first within each."""
        rows = await connection.fetch(
            """
            SELECT * FROM incident_overview
            WHERE status = ANY($1::text[]) AND incident_id IS DISTINCT FROM $3::bigint
            ORDER BY report_type = $2 DESC, created_at DESC, incident_id DESC
            LIMIT $4
            """,
            OPEN, report_type.value, exclude, limit,
        )
        return [incident_from_row(row) for row in rows]

    async def set_status(
        self, connection: asyncpg.Connection, incident_id: int, status: Status
    ) -> None:
        """Move to ``status``; the first move to ``dispatched`` stamps ``dispatched_at``."""
        await connection.execute(
            """
            UPDATE incidents SET
                status = $2,
                status_changed_at = now(),
                dispatched_at = CASE WHEN $2 = 'dispatched'
                                     THEN COALESCE(dispatched_at, now())
                                     ELSE dispatched_at END,
                version = version + 1,
                updated_at = now()
            WHERE incident_id = $1
            """,
            incident_id, status.value,
        )

    async def restart_dispatch_clock(
        self, connection: asyncpg.Connection, incident_id: int
    ) -> bool:
        """Forget when the incident was dispatched if every dispatch of it was cancelled:
        no agency is on its way, so its dispatch target counts from the answer again.
        ``True`` if it was forgotten."""
        status = await connection.execute(
            """
            UPDATE incidents SET dispatched_at = NULL, version = version + 1, updated_at = now()
            WHERE incident_id = $1 AND dispatched_at IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM dispatches
                              WHERE incident_id = $1 AND state <> 'cancelled')
            """,
            incident_id,
        )
        return status == "UPDATE 1"

    async def stamp_dispatched(self, connection: asyncpg.Connection, incident_id: int) -> None:
        """Stamp ``dispatched_at`` now unless it is set (an agency dispatched again after
        every earlier one was cancelled)."""
        await connection.execute(
            """
            UPDATE incidents SET dispatched_at = now(), version = version + 1, updated_at = now()
            WHERE incident_id = $1 AND dispatched_at IS NULL
            """,
            incident_id,
        )

    async def write_details(
        self, connection: asyncpg.Connection, incident_id: int, details: IncidentDetails
    ) -> None:
        """Store every operator-editable field."""
        point = details.coordinates
        await connection.execute(
            """
            UPDATE incidents SET
                report_type = $2, priority = $3, location_text = $4, village_code = $5,
                sub_district_code = $6, latitude = $7, longitude = $8, description = $9,
                version = version + 1, updated_at = now()
            WHERE incident_id = $1
            """,
            incident_id, details.report_type.value, int(details.priority),
            details.location_text, details.village_code, details.sub_district_code,
            point.latitude if point else None, point.longitude if point else None,
            details.description,
        )

    async def set_escalation(
        self, connection: asyncpg.Connection, incident_id: int, level: EscalationLevel,
        reason: str,
    ) -> None:
        """Record the escalation level and why."""
        await connection.execute(
            """
            UPDATE incidents SET escalation_level = $2, escalation_reason = $3,
                                 version = version + 1, updated_at = now()
            WHERE incident_id = $1
            """,
            incident_id, level.value, reason,
        )

    async def set_rating(
        self, connection: asyncpg.Connection, incident_id: int, rating: int
    ) -> None:
        """Store the caller's rating."""
        await connection.execute(
            """
            UPDATE incidents SET rating = $2, rated_at = now(), version = version + 1,
                                 updated_at = now()
            WHERE incident_id = $1
            """,
            incident_id, rating,
        )

    # -- timeline ------------------------------------------------------------------------------

    async def append_event(
        self, connection: asyncpg.Connection, incident_id: int, actor: str, kind: str,
        detail: Mapping[str, Any],
    ) -> None:
        """Append one entry to the incident's timeline."""
        await connection.execute(
            "INSERT INTO incident_events (incident_id, actor, kind, detail) "
            "VALUES ($1, $2, $3, $4::jsonb)",
            incident_id, actor, kind, json.dumps(detail, ensure_ascii=False),
        )

    async def events(
        self, connection: asyncpg.Connection, incident_id: int
    ) -> list[IncidentEvent]:
        """The incident's timeline, oldest first."""
        rows = await connection.fetch(
            "SELECT * FROM incident_events WHERE incident_id = $1 ORDER BY event_id",
            incident_id,
        )
        return [from_row(IncidentEvent, row, detail=json.loads(row["detail"])) for row in rows]

    # -- attachments ---------------------------------------------------------------------------

    async def add_attachment(
        self, connection: asyncpg.Connection, incident_id: int, meta: AttachmentMeta,
        actor: str,
    ) -> Attachment:
        """Record an attachment's metadata; raises ``asyncpg.UniqueViolationError`` if another
        attachment already uses ``stored_path``."""
        row = await connection.fetchrow(
            """
            INSERT INTO incident_attachments (incident_id, filename, content_type, size_bytes,
                                              sha256, stored_path, uploaded_by)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            RETURNING *
            """,
            incident_id, meta.filename, meta.content_type, meta.size_bytes, meta.sha256,
            meta.stored_path, actor,
        )
        assert row is not None  # INSERT ... RETURNING always returns the row
        return from_row(Attachment, row)

    async def attachments(
        self, connection: asyncpg.Connection, incident_id: int
    ) -> list[Attachment]:
        """An incident's attachments, oldest first."""
        rows = await connection.fetch(
            "SELECT * FROM incident_attachments WHERE incident_id = $1 ORDER BY attachment_id",
            incident_id,
        )
        return [from_row(Attachment, row) for row in rows]
