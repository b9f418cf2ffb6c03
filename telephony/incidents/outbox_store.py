"""SQL for the notification outbox: messages written with their dispatch, claimed on a lease
for delivery, and marked sent or failed. Plain reads and writes; every method takes the
connection to run on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import asyncpg

from telephony.db.rows import from_row
from telephony.incidents.outbox import Notification, OutboxBacklog
from telephony.incidents.store import OPEN

# A stand-down's agency was dispatched to the incident again since (the operator cancelled,
# then sent it after all): the newer call-out stands, and a stand-down delivered with it, or
# after it, would turn the crew back. ``{outbox}``: the notification row's alias.
_SUPERSEDED = """EXISTS (
    SELECT 1 FROM dispatches called_off
    JOIN dispatches again ON again.incident_id = called_off.incident_id
                         AND again.agency_code = called_off.agency_code
                         AND again.dispatch_id > called_off.dispatch_id
    WHERE called_off.dispatch_id = {outbox}.dispatch_id
      AND again.state NOT IN ('done', 'cancelled'))"""


class OutboxStore:
    """Reads and writes the notification outbox. Holds no connection: callers pass one in."""

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

    async def delivered_call_outs(self, connection: asyncpg.Connection, dispatch_id: int
                                  ) -> list[tuple[int, dict[str, Any]]]:
        """The recipients a dispatch's notification reached, each with the payload they got
        (one each, the earliest)."""
        rows = await connection.fetch(
            """
            SELECT DISTINCT ON (recipient_id) recipient_id, payload
            FROM notification_outbox
            WHERE dispatch_id = $1 AND state = 'sent' AND recipient_id IS NOT NULL
              AND payload->>'kind' IS DISTINCT FROM 'stand_down'
            ORDER BY recipient_id, notification_id
            """,
            dispatch_id)
        return [(int(row["recipient_id"]), json.loads(row["payload"])) for row in rows]

    async def backlog(self, connection: asyncpg.Connection) -> OutboxBacklog:
        """What waits in the outbox (for the line's metrics)."""
        row = await connection.fetchrow(
            """
            SELECT count(*) FILTER (WHERE state = 'pending') AS pending,
                   extract(epoch FROM now() - min(created_at) FILTER (WHERE state = 'pending')
                          )::float8 AS oldest_pending_seconds,
                   count(*) FILTER (WHERE state = 'failed') AS failed
            FROM notification_outbox WHERE state <> 'sent'
            """)
        assert row is not None  # an aggregate always answers one row
        return from_row(OutboxBacklog, row)

    async def withdraw_closed(self, connection: asyncpg.Connection) -> int:
        """Withdraw the notifications still pending of incidents no longer open, of
        dispatches cancelled, or to recipients stopped; returns how many. An agency told of
        an incident already cancelled (a prank), resolved or closed, or of a dispatch called
        off, would send a team out for nothing: a gateway down for an hour delivers its
        backlog the moment it is back. A recipient is stopped when the person left or the
        number went to someone else: the caller's number and place are not theirs to get."""
        status = await connection.execute(
            """
            WITH called_off AS (
                SELECT o.notification_id,
                       CASE WHEN o.payload->>'kind' = 'stand_down' AND NOT r.active
                            THEN 'withdrawn: the recipient is stopped'
                            WHEN o.payload->>'kind' = 'stand_down'
                            THEN 'withdrawn: the agency is dispatched again'
                            WHEN NOT i.status = ANY($1::text[])
                            THEN 'withdrawn: the incident is ' || i.status
                            WHEN d.state = 'cancelled'
                            THEN 'withdrawn: the dispatch is cancelled'
                            ELSE 'withdrawn: the recipient is stopped' END AS why
                FROM notification_outbox o
                JOIN incidents i USING (incident_id)
                LEFT JOIN dispatches d USING (dispatch_id)
                LEFT JOIN agency_recipients r USING (recipient_id)
                WHERE o.state = 'pending'
                  -- A stand-down is for a called-off dispatch, often of an ended incident:
                  -- only a stopped recipient, or the agency sent again since, withdraws it.
                  AND CASE WHEN o.payload->>'kind' = 'stand_down'
                           THEN NOT r.active OR {superseded}
                           ELSE NOT i.status = ANY($1::text[]) OR d.state = 'cancelled'
                                OR NOT r.active END
            )
            UPDATE notification_outbox o SET state = 'withdrawn', last_error = c.why
            FROM called_off c WHERE o.notification_id = c.notification_id
            """.replace("{superseded}", _SUPERSEDED.format(outbox="o")),
            OPEN,
        )
        return int(status.split()[-1])

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
                  -- Closed or cancelled since the last withdrawal: left for the next one
                  -- (but a stand-down is sent just then).
                  AND ((payload->>'kind' = 'stand_down'
                        AND NOT {superseded})
                       OR (payload->>'kind' IS DISTINCT FROM 'stand_down'
                           AND incident_id IN (SELECT incident_id FROM incidents
                                           WHERE status = ANY($3::text[]))
                           AND NOT EXISTS (SELECT 1 FROM dispatches d
                                           WHERE d.dispatch_id = notification_outbox.dispatch_id
                                             AND d.state = 'cancelled')))
                  AND NOT EXISTS (SELECT 1 FROM agency_recipients r
                                  WHERE r.recipient_id = notification_outbox.recipient_id
                                    AND NOT r.active)
                ORDER BY next_attempt_at, notification_id
                LIMIT $1
                FOR UPDATE SKIP LOCKED
            )
            RETURNING o.notification_id, o.attempts AS attempt, o.payload
            """.replace("{superseded}", _SUPERSEDED.format(outbox="notification_outbox")),
            limit, lease, OPEN,
        )
        claimed = [from_row(Notification, row, payload=json.loads(row["payload"]))
                   for row in rows]
        return sorted(claimed, key=lambda n: n.notification_id)

    async def lock_notification_dispatch(self, connection: asyncpg.Connection,
                                         notification_id: int) -> None:
        """Lock the dispatch of a notification for this transaction: one calling the
        dispatch off then waits, or is waited for, and each sees what the other did."""
        await connection.execute(
            "SELECT 1 FROM dispatches WHERE dispatch_id = (SELECT dispatch_id "
            "FROM notification_outbox WHERE notification_id = $1) FOR UPDATE", notification_id)

    async def late_call_out(self, connection: asyncpg.Connection, notification_id: int
                            ) -> tuple[int, int, int, dict[str, Any], str] | None:
        """A call-out delivered after its dispatch was called off (it was in flight), with
        no stand-down to its recipient yet: its incident, dispatch, recipient, payload and
        the incident's status; else ``None``."""
        row = await connection.fetchrow(
            """
            SELECT o.incident_id, o.dispatch_id, o.recipient_id, o.payload, i.status
            FROM notification_outbox o
            JOIN dispatches d ON d.dispatch_id = o.dispatch_id
            JOIN incidents i ON i.incident_id = o.incident_id
            WHERE o.notification_id = $1 AND d.state = 'cancelled'
              AND o.recipient_id IS NOT NULL
              AND o.payload->>'kind' IS DISTINCT FROM 'stand_down'
              AND NOT EXISTS (SELECT 1 FROM notification_outbox s
                              WHERE s.dispatch_id = o.dispatch_id
                                AND s.recipient_id = o.recipient_id
                                AND s.payload->>'kind' = 'stand_down')
            """,
            notification_id)
        if row is None:
            return None
        return (int(row["incident_id"]), int(row["dispatch_id"]), int(row["recipient_id"]),
                json.loads(row["payload"]), str(row["status"]))

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

    async def dispatch_notifications(
        self, connection: asyncpg.Connection, incident_id: int, *, stand_downs: bool = False
    ) -> dict[int, dict[str, int]]:
        """How many notifications of each of the incident's dispatches are in each state
        (pending, sent, failed, withdrawn); a dispatch that notified nobody is absent.
        ``stand_downs``: count the messages calling the dispatches off instead."""
        rows = await connection.fetch(
            "SELECT dispatch_id, state, count(*) AS n FROM notification_outbox "
            "WHERE incident_id = $1 AND dispatch_id IS NOT NULL "
            "  AND (payload->>'kind' IS NOT DISTINCT FROM 'stand_down') = $2 "
            "GROUP BY dispatch_id, state",
            incident_id, stand_downs)
        counts: dict[int, dict[str, int]] = {}
        for row in rows:
            counts.setdefault(row["dispatch_id"], {})[row["state"]] = row["n"]
        return counts

    async def outbox_counts(self, connection: asyncpg.Connection) -> dict[str, int]:
        """How many notifications are pending, sent, failed and withdrawn."""
        rows = await connection.fetch(
            "SELECT state, count(*) AS n FROM notification_outbox GROUP BY state"
        )
        counts = {"pending": 0, "sent": 0, "failed": 0, "withdrawn": 0}
        counts.update({row["state"]: row["n"] for row in rows})
        return counts
