"""SQL for the incident family of tables: incidents, incident_calls, incident_events, the
gazetteer, agencies and their recipients, dispatches, the notification outbox, attachments.

Plain reads and writes only: the rules live in ``telephony.incidents.model`` and the
transactions and locking order in ``telephony.incidents.service``. Every method takes the
connection to run on, so the service decides what shares one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from telephony.incidents.model import (
    INFORMATION_CATEGORY,
    OPEN_STATUSES,
    Agency,
    Attachment,
    AttachmentMeta,
    CallSnapshot,
    Coordinates,
    Dispatch,
    DispatchState,
    EscalationLevel,
    Incident,
    IncidentDetails,
    IncidentEvent,
    NewIncident,
    Notification,
    Place,
    Priority,
    Recipient,
    RecipientInput,
    ReportType,
    Status,
)

_OPEN = sorted(OPEN_STATUSES)


def _incident(row: asyncpg.Record) -> Incident:
    latitude, longitude = row["latitude"], row["longitude"]
    return Incident(
        incident_id=row["incident_id"],
        version=row["version"],
        status=Status(row["status"]),
        report_type=ReportType(row["report_type"]),
        priority=Priority(row["priority"]),
        line=row["line"],
        caller_number=row["caller_number"],
        ivr_category=row["ivr_category"],
        ivr_skill=row["ivr_skill"],
        operator=row["operator"],
        location_text=row["location_text"],
        village_code=row["village_code"],
        village_name=row["village_name"],
        sub_district_code=row["sub_district_code"],
        sub_district_name=row["sub_district_name"],
        coordinates=None if latitude is None else Coordinates(latitude, longitude),
        description=row["description"],
        escalation_level=EscalationLevel(row["escalation_level"]),
        escalation_reason=row["escalation_reason"],
        rating=row["rating"],
        rated_at=row["rated_at"],
        answered_at=row["answered_at"],
        dispatched_at=row["dispatched_at"],
        status_changed_at=row["status_changed_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        created_by=row["created_by"],
    )


def _dispatch(row: asyncpg.Record) -> Dispatch:
    return Dispatch(
        dispatch_id=row["dispatch_id"],
        incident_id=row["incident_id"],
        agency_code=row["agency_code"],
        agency_name=row["agency_name"],
        state=DispatchState(row["state"]),
        notified_at=row["notified_at"],
        acknowledged_at=row["acknowledged_at"],
        on_scene_at=row["on_scene_at"],
        done_at=row["done_at"],
        dispatched_by=row["dispatched_by"],
        note=row["note"],
    )


def _recipient(row: asyncpg.Record) -> Recipient:
    kind = row["report_type"]
    return Recipient(
        recipient_id=row["recipient_id"],
        agency_code=row["agency_code"],
        report_type=None if kind is None else ReportType(kind),
        name=row["name"],
        role=row["role"],
        contact=row["contact"],
        active=row["active"],
    )


_DISPATCH_SELECT = """
    SELECT d.*, a.name AS agency_name
    FROM dispatches d JOIN agencies a ON a.code = d.agency_code
"""


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
        return CallSnapshot(**dict(row)) if row is not None else None

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
        return _incident(row) if row is not None else None

    async def open_incidents(
        self, connection: asyncpg.Connection, *, limit: int = 200
    ) -> list[Incident]:
        """Open incidents, most urgent first, then oldest first."""
        rows = await connection.fetch(
            """
            SELECT * FROM incident_overview WHERE status = ANY($1::text[])
            ORDER BY priority, created_at LIMIT $2
            """,
            _OPEN, limit,
        )
        return [_incident(row) for row in rows]

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
            _OPEN, report_type.value, exclude, limit,
        )
        return [_incident(row) for row in rows]

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
        return [
            IncidentEvent(row["event_id"], row["incident_id"], row["at"], row["actor"],
                          row["kind"], json.loads(row["detail"]))
            for row in rows
        ]

    # -- gazetteer -----------------------------------------------------------------------------

    async def village_sub_district(
        self, connection: asyncpg.Connection, village_code: str
    ) -> str | None:
        """The sub-district a village lies in; ``None`` if the village is unknown."""
        value = await connection.fetchval(
            "SELECT sub_district_code FROM villages WHERE code = $1", village_code
        )
        return str(value) if value is not None else None

    async def sub_district_exists(
        self, connection: asyncpg.Connection, sub_district_code: str
    ) -> bool:
        """Whether the gazetteer knows this sub-district."""
        return bool(await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM sub_districts WHERE code = $1)", sub_district_code
        ))

    async def places(
        self, connection: asyncpg.Connection, *, sub_district_code: str | None = None
    ) -> list[Place]:
        """Villages with their sub-district, by sub-district then village name."""
        rows = await connection.fetch(
            """
            SELECT v.code, v.name, s.code AS s_code, s.name AS s_name
            FROM villages v JOIN sub_districts s ON s.code = v.sub_district_code
            WHERE $1::text IS NULL OR s.code = $1
            ORDER BY s.name, v.name
            """,
            sub_district_code,
        )
        return [Place(row["code"], row["name"], row["s_code"], row["s_name"]) for row in rows]

    # -- agencies and recipients ---------------------------------------------------------------

    async def agencies(self, connection: asyncpg.Connection) -> list[Agency]:
        """Every agency, active or not, by name."""
        rows = await connection.fetch("SELECT code, name, active FROM agencies ORDER BY name")
        return [Agency(row["code"], row["name"], row["active"]) for row in rows]

    async def agency(self, connection: asyncpg.Connection, code: str) -> Agency | None:
        """One agency."""
        row = await connection.fetchrow(
            "SELECT code, name, active FROM agencies WHERE code = $1", code
        )
        return Agency(row["code"], row["name"], row["active"]) if row is not None else None

    async def save_agency(self, connection: asyncpg.Connection, agency: Agency) -> None:
        """Add an agency or change its name and whether it can be dispatched."""
        await connection.execute(
            """
            INSERT INTO agencies (code, name, active) VALUES ($1, $2, $3)
            ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, active = EXCLUDED.active
            """,
            agency.code, agency.name, agency.active,
        )

    async def add_recipient(
        self, connection: asyncpg.Connection, recipient: RecipientInput
    ) -> Recipient:
        """Add a person to notify."""
        row = await connection.fetchrow(
            """
            INSERT INTO agency_recipients (agency_code, report_type, name, role, contact)
            VALUES ($1, $2, $3, $4, $5)
            RETURNING *
            """,
            recipient.agency_code,
            recipient.report_type.value if recipient.report_type else None,
            recipient.name, recipient.role, recipient.contact,
        )
        assert row is not None  # INSERT ... RETURNING always returns the row
        return _recipient(row)

    async def recipients(self, connection: asyncpg.Connection) -> list[Recipient]:
        """Every recipient, by agency then in the order they were added."""
        rows = await connection.fetch(
            "SELECT * FROM agency_recipients ORDER BY agency_code, recipient_id")
        return [_recipient(row) for row in rows]

    async def set_recipient_active(
        self, connection: asyncpg.Connection, recipient_id: int, active: bool
    ) -> Recipient | None:
        """Turn a recipient's notifications on or off; ``None`` if there is no such one."""
        row = await connection.fetchrow(
            "UPDATE agency_recipients SET active = $2 WHERE recipient_id = $1 RETURNING *",
            recipient_id, active)
        return _recipient(row) if row is not None else None

    async def recipients_for(
        self, connection: asyncpg.Connection, agency_code: str, report_type: ReportType
    ) -> list[Recipient]:
        """Active recipients of an agency for a report type (or for every type)."""
        rows = await connection.fetch(
            """
            SELECT * FROM agency_recipients
            WHERE agency_code = $1 AND active AND (report_type IS NULL OR report_type = $2)
            ORDER BY recipient_id
            """,
            agency_code, report_type.value,
        )
        return [_recipient(row) for row in rows]

    # -- dispatches ----------------------------------------------------------------------------

    async def active_dispatch_exists(
        self, connection: asyncpg.Connection, incident_id: int, agency_code: str
    ) -> bool:
        """Whether the agency is already dispatched to the incident and not done."""
        return bool(await connection.fetchval(
            """
            SELECT EXISTS (SELECT 1 FROM dispatches
                           WHERE incident_id = $1 AND agency_code = $2 AND state <> 'done')
            """,
            incident_id, agency_code,
        ))

    async def has_dispatches(self, connection: asyncpg.Connection, incident_id: int) -> bool:
        """Whether any agency was ever dispatched to the incident."""
        return bool(await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM dispatches WHERE incident_id = $1)", incident_id
        ))

    async def insert_dispatch(
        self, connection: asyncpg.Connection, incident_id: int, agency_code: str, actor: str,
        note: str,
    ) -> int:
        """Record that the agency was notified; returns the dispatch id."""
        value = await connection.fetchval(
            """
            INSERT INTO dispatches (incident_id, agency_code, dispatched_by, note)
            VALUES ($1, $2, $3, $4) RETURNING dispatch_id
            """,
            incident_id, agency_code, actor, note,
        )
        return int(value)

    async def dispatch_incident_id(
        self, connection: asyncpg.Connection, dispatch_id: int
    ) -> int | None:
        """The incident a dispatch belongs to."""
        value = await connection.fetchval(
            "SELECT incident_id FROM dispatches WHERE dispatch_id = $1", dispatch_id
        )
        return int(value) if value is not None else None

    async def dispatch(
        self, connection: asyncpg.Connection, dispatch_id: int, *, lock: bool = False
    ) -> Dispatch | None:
        """One dispatch (its row locked for this transaction when asked)."""
        suffix = " WHERE d.dispatch_id = $1" + (" FOR UPDATE OF d" if lock else "")
        row = await connection.fetchrow(_DISPATCH_SELECT + suffix, dispatch_id)
        return _dispatch(row) if row is not None else None

    async def set_dispatch_state(
        self, connection: asyncpg.Connection, dispatch_id: int, state: DispatchState
    ) -> None:
        """Move a dispatch to ``state``, stamping that step's instant."""
        await connection.execute(
            """
            UPDATE dispatches SET
                state = $2,
                acknowledged_at = CASE WHEN $2 = 'acknowledged' THEN now()
                                       ELSE acknowledged_at END,
                on_scene_at = CASE WHEN $2 = 'on_scene' THEN now() ELSE on_scene_at END,
                done_at = CASE WHEN $2 = 'done' THEN now() ELSE done_at END
            WHERE dispatch_id = $1
            """,
            dispatch_id, state.value,
        )

    async def dispatches(
        self, connection: asyncpg.Connection, incident_id: int
    ) -> list[Dispatch]:
        """Every dispatch of an incident, in order."""
        rows = await connection.fetch(
            _DISPATCH_SELECT + " WHERE d.incident_id = $1 ORDER BY d.dispatch_id", incident_id
        )
        return [_dispatch(row) for row in rows]

    # -- notification outbox -------------------------------------------------------------------

    async def enqueue_notification(
        self, connection: asyncpg.Connection, incident_id: int, dispatch_id: int,
        recipient_id: int, payload: Mapping[str, Any],
    ) -> None:
        """Put a notification in the outbox, due now."""
        await connection.execute(
            """
            INSERT INTO notification_outbox (incident_id, dispatch_id, recipient_id, payload)
            VALUES ($1, $2, $3, $4::jsonb)
            """,
            incident_id, dispatch_id, recipient_id, json.dumps(payload, ensure_ascii=False),
        )

    async def claim_notifications(
        self, connection: asyncpg.Connection, *, limit: int, lease: timedelta
    ) -> list[Notification]:
        """Take due notifications for delivery, counting the attempt.

        The claim is a lease: the rows are not due again until ``lease`` has passed, so a
        worker that dies mid-delivery loses nothing, and two workers never take the same row.
        """
        rows = await connection.fetch(
            """
            UPDATE notification_outbox o SET
                attempts = o.attempts + 1,
                next_attempt_at = now() + $2::interval
            WHERE o.notification_id IN (
                SELECT notification_id FROM notification_outbox
                WHERE state = 'pending' AND next_attempt_at <= now()
                ORDER BY next_attempt_at, notification_id
                LIMIT $1
                FOR UPDATE SKIP LOCKED
            )
            RETURNING o.notification_id, o.attempts, o.payload
            """,
            limit, lease,
        )
        claimed = [
            Notification(row["notification_id"], row["attempts"], json.loads(row["payload"]))
            for row in rows
        ]
        return sorted(claimed, key=lambda n: n.notification_id)

    async def mark_sent(self, connection: asyncpg.Connection, notification_id: int) -> None:
        """The recipient's endpoint accepted the notification."""
        await connection.execute(
            """
            UPDATE notification_outbox SET state = 'sent', sent_at = now(), last_error = ''
            WHERE notification_id = $1
            """,
            notification_id,
        )

    async def mark_failed(
        self, connection: asyncpg.Connection, notification_id: int, error: str,
        retry_in: timedelta | None,
    ) -> None:
        """Record a failed attempt: due again after ``retry_in``, or given up (``None``)."""
        await connection.execute(
            """
            UPDATE notification_outbox SET
                last_error = $2,
                state = CASE WHEN $3::interval IS NULL THEN 'failed' ELSE 'pending' END,
                next_attempt_at = CASE WHEN $3::interval IS NULL THEN next_attempt_at
                                       ELSE now() + $3::interval END
            WHERE notification_id = $1
            """,
            notification_id, error[:1000], retry_in,
        )

    async def outbox_counts(self, connection: asyncpg.Connection) -> dict[str, int]:
        """How many notifications are pending, sent and failed."""
        rows = await connection.fetch(
            "SELECT state, count(*) AS n FROM notification_outbox GROUP BY state"
        )
        counts = {"pending": 0, "sent": 0, "failed": 0}
        counts.update({row["state"]: row["n"] for row in rows})
        return counts

    # -- service levels ------------------------------------------------------------------------

    async def past_dispatch_target(
        self, connection: asyncpg.Connection, targets: Mapping[ReportType, timedelta],
        now: datetime,
    ) -> list[tuple[Incident, timedelta]]:
        """Open incidents whose dispatch target passed before they were dispatched (or
        before ``now``, if not dispatched yet), with their target; oldest answer first."""
        rows = await connection.fetch(
            """
            SELECT i.*, t.target
            FROM incident_overview i
            JOIN unnest($1::text[], $2::interval[]) AS t (report_type, target) USING (report_type)
            WHERE i.status = ANY($3::text[])
              AND i.answered_at IS NOT NULL
              AND i.answered_at + t.target < COALESCE(i.dispatched_at, $4)
            ORDER BY i.answered_at
            """,
            [kind.value for kind in targets], list(targets.values()), _OPEN, now,
        )
        return [(_incident(row), row["target"]) for row in rows]

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
        return Attachment(**dict(row))

    async def attachments(
        self, connection: asyncpg.Connection, incident_id: int
    ) -> list[Attachment]:
        """An incident's attachments, oldest first."""
        rows = await connection.fetch(
            "SELECT * FROM incident_attachments WHERE incident_id = $1 ORDER BY attachment_id",
            incident_id,
        )
        return [Attachment(**dict(row)) for row in rows]
