"""SQL of the operator desks: which interface an operator account works at and its skills
(``account_operators``, ``operators``, ``operator_skills``), the queues that interface is in as
AMI last reported them (``queue_members``), and the calls as the console shows them.

The call views read across families (calls with their screening columns, the call's latest
label, its incident): they are the console's read model, kept here so the screen is one query
per panel. Plain reads and writes only; the rules live in ``telephony.desks.service``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from telephony.ami.tracker import LOGGED_OUT
from telephony.db.rows import from_row
from telephony.desks.phones import PhoneKind, RtpTimeouts


@dataclass(frozen=True)
class Assignment:
    """The interface an account works at, and the skills (skill -> level 1-5) it has."""

    interface: str
    skills: Mapping[str, int]
    # The phone's new digest secret when one was generated now: shown once, never stored.
    phone_secret: str | None = None
    # The phone is new or changed kind: Asterisk must reload PJSIP to ring it as it is now.
    phone_changed: bool = False


@dataclass(frozen=True)
class Phone:
    """The phone of a desk that registers: its kind, and whether the line took the desk out
    of its queues because the phone went away (a browser closed or cut off)."""

    interface: str
    kind: PhoneKind
    lost_at: datetime | None
    lost_queues: list[str]


@dataclass(frozen=True)
class OperatorAccount:
    """An operator account as the admin sees it: its desk's interface and skills, if any."""

    username: str
    display_name: str
    active: bool
    interface: str | None
    skills: Mapping[str, int]
    phone: PhoneKind | None = None  # the kind of its registering phone, if it has one


@dataclass(frozen=True)
class Membership:
    """One queue an interface is a member of, as AMI last reported it."""

    queue: str
    state: str  # the tracker's device state: idle, ringing, talking, paused ...
    paused: bool
    pause_reason: str
    since: datetime


@dataclass(frozen=True)
class CallView:
    """A call as the console shows it: the record, what screening said, the operator's label
    and the incident it belongs to."""

    call_id: str
    line: str | None
    caller_number: str
    caller_key: str | None
    arrived_at: datetime | None
    ivr_choice: str | None
    ivr_outcome: str | None
    ivr_category: str | None
    ivr_skill: str | None
    queue: str | None
    operator: str | None
    answered_at: datetime | None
    wait_seconds: int | None
    talk_seconds: int | None
    ended_at: datetime | None
    disposition: str
    prank_score: float | None
    prank_reasons: str | None
    queue_priority: int | None
    screening: str | None
    label: str | None
    incident_id: int | None
    # When the answering operator left the call's three-way call with an agency ("Keluar",
    # or hanging up in it): their part is over then, though the caller talks on.
    left_at: datetime | None = None


# ``call_outcomes`` (0001) froze the calls columns of its day; the screening columns come
# from calls itself, the disposition from the view (joined on the primary key).
_CALL_VIEW = """
    SELECT c.call_id, c.line, c.caller_number, c.caller_key, c.arrived_at, c.ivr_choice,
           c.ivr_outcome, c.ivr_category, c.ivr_skill, c.queue, c.operator, c.answered_at,
           c.wait_seconds, c.talk_seconds, c.ended_at, o.disposition, c.prank_score,
           c.prank_reasons, c.queue_priority, c.screening,
           (SELECT l.label FROM call_labels l WHERE l.call_id = c.call_id
            ORDER BY l.labelled_at DESC, l.label_id DESC LIMIT 1) AS label,
           (SELECT ic.incident_id FROM incident_calls ic WHERE ic.call_id = c.call_id)
               AS incident_id,
           (SELECT min(s.at) FROM transfer_steps s JOIN call_legs l USING (leg_id)
            WHERE l.call_id = c.call_id AND l.operator = c.operator AND s.step = 'leave')
               AS left_at
    FROM calls c JOIN call_outcomes o USING (call_id)
"""


def _calls_where(condition: str) -> str:
    """The call view with ``condition`` (constant SQL of this module; values are bound)."""
    return f"{_CALL_VIEW} {condition}"


class DeskRepository:
    """Reads and writes the desk tables. Holds no connection: callers pass one in."""

    async def assignment(self, connection: asyncpg.Connection, account_id: int
                         ) -> Assignment | None:
        """The account's interface and skills; ``None`` if it has no desk."""
        interface = await connection.fetchval(
            "SELECT operator FROM account_operators WHERE account_id = $1", account_id)
        if interface is None:
            return None
        rows = await connection.fetch(
            "SELECT skill, level FROM operator_skills WHERE operator = $1 ORDER BY skill",
            interface)
        return Assignment(interface, {row["skill"]: row["level"] for row in rows})

    async def assign(
        self, connection: asyncpg.Connection, account_id: int, interface: str,
        display_name: str, skills: Mapping[str, int],
    ) -> None:
        """Put the account at ``interface`` with exactly ``skills``. Raises
        ``asyncpg.UniqueViolationError`` if another account works at that interface."""
        await connection.execute(
            """
            INSERT INTO operators (operator, display_name) VALUES ($1, $2)
            ON CONFLICT (operator) DO UPDATE SET display_name = EXCLUDED.display_name
            """,
            interface, display_name)
        await connection.execute(
            """
            INSERT INTO account_operators (account_id, operator) VALUES ($1, $2)
            ON CONFLICT (account_id) DO UPDATE SET operator = EXCLUDED.operator
            """,
            account_id, interface)
        await connection.execute("DELETE FROM operator_skills WHERE operator = $1", interface)
        await connection.executemany(
            "INSERT INTO operator_skills (operator, skill, level) VALUES ($1, $2, $3)",
            [(interface, skill, level) for skill, level in sorted(skills.items())])

    async def rename(self, connection: asyncpg.Connection, interface: str,
                     display_name: str) -> None:
        """The desk at ``interface`` now goes by its account's new display name."""
        await connection.execute(
            "UPDATE operators SET display_name = $2 WHERE operator = $1",
            interface, display_name)

    async def has_phone_secret(self, connection: asyncpg.Connection, interface: str) -> bool:
        """Whether the phone at ``interface`` has a secret (and may register)."""
        return bool(await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM phone_secrets WHERE operator = $1)", interface))

    async def set_phone_secret(self, connection: asyncpg.Connection, interface: str,
                               realm: str, md5_cred: str,
                               kind: PhoneKind | None = None) -> None:
        """Store the digest of the phone's new secret, replacing the old one (which then
        stops working at the phone's next REGISTER); with ``kind``, the phone's kind too
        (a new phone without one is a desk phone)."""
        await connection.execute(
            """
            INSERT INTO phone_secrets (operator, realm, md5_cred, kind)
            VALUES ($1, $2, $3, COALESCE($4, 'desk'))
            ON CONFLICT (operator) DO UPDATE
                SET realm = EXCLUDED.realm, md5_cred = EXCLUDED.md5_cred, set_at = now(),
                    kind = COALESCE($4, phone_secrets.kind)
            """,
            interface, realm, md5_cred, None if kind is None else kind.value)

    async def phone(self, connection: asyncpg.Connection, interface: str) -> Phone | None:
        """The registering phone at ``interface``; ``None`` if it has none."""
        row = await connection.fetchrow(
            "SELECT operator AS interface, kind, lost_at, lost_queues FROM phone_secrets "
            "WHERE operator = $1", interface)
        return None if row is None else from_row(Phone, row, lost_queues=list(row["lost_queues"]))

    async def mark_phone_lost(self, connection: asyncpg.Connection, interface: str,
                              queues: list[str]) -> None:
        """Remember that the line took the desk out of ``queues`` because its phone went
        away (shown on the desk until the operator joins again)."""
        await connection.execute(
            "UPDATE phone_secrets SET lost_at = now(), lost_queues = $2 WHERE operator = $1",
            interface, queues)

    async def clear_phone_lost(self, connection: asyncpg.Connection, interface: str) -> None:
        """The operator joined again: the notice is over."""
        await connection.execute(
            "UPDATE phone_secrets SET lost_at = NULL, lost_queues = '{}' "
            "WHERE operator = $1 AND lost_at IS NOT NULL", interface)

    async def set_browser_media_address(self, connection: asyncpg.Connection,
                                        address: str | None) -> None:
        """The one address Asterisk's media for browser phones binds to (``None``: any)."""
        await connection.execute(
            "UPDATE phone_site SET browser_media_address = $1::inet", address)

    async def set_rtp_timeouts(self, connection: asyncpg.Connection,
                               timeouts: RtpTimeouts) -> None:
        """How long a phone's call may receive nothing before Asterisk hangs it up: a
        browser's, held or not, and a desk phone's, talking and held (migration 0049)."""
        await connection.execute(
            "UPDATE phone_site SET browser_rtp_timeout = $1, desk_rtp_timeout = $2, "
            "desk_rtp_timeout_hold = $3", timeouts.browser, timeouts.desk, timeouts.desk_hold)

    async def set_phone_front(self, connection: asyncpg.Connection, front: str | None) -> None:
        """The cluster's SIP front (``host:port``) desk phones register at and are rung
        through (``None``: no front; migration 0022)."""
        await connection.execute("UPDATE phone_site SET front_contact = $1", front)

    async def grant_phone_reader(self, connection: asyncpg.Connection, role: str,
                                 password: str) -> None:
        """Create (or update) the role Asterisk reads the phones with: it logs in with
        ``password`` and may SELECT the ps_* views and kamailio_subscribers, and INSERT into
        front_calls (the SIP front's accounting), and keep the front's registrations in
        front_location, nothing else. Needs CREATEROLE."""
        exists = await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role)
        verb = "ALTER" if exists else "CREATE"
        # Utility statements take no parameters: format() quotes the name and the password.
        statement = await connection.fetchval(
            f"SELECT format('{verb} ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
            "NOINHERIT PASSWORD %L', $1::text, $2::text)", role, password)
        await connection.execute(statement)
        # USAGE too: a schema recreated by a restore grants nothing to PUBLIC.
        for template in ("GRANT USAGE ON SCHEMA public TO %I",
                         # kamailio_subscribers: a cluster's SIP front (0022).
                         "GRANT SELECT ON ps_endpoints, ps_auths, ps_aors, "
                         "kamailio_subscribers TO %I",
                         # The front's record of every call it dispatches (0026): written,
                         # never read back, as this role.
                         "GRANT INSERT ON front_calls TO %I",
                         # The phones' registrations at the front, which a restarted front
                         # loads back (0035): the front's alone.
                         "GRANT SELECT, INSERT, UPDATE, DELETE ON front_location TO %I"):
            grant = await connection.fetchval("SELECT format($1::text, $2::text)",
                                              template, role)
            await connection.execute(grant)

    async def interfaces(self, connection: asyncpg.Connection) -> dict[str, str]:
        """Username -> interface, for every account with a desk."""
        rows = await connection.fetch(
            """
            SELECT a.username, d.operator
            FROM account_operators d JOIN accounts a USING (account_id)
            """)
        return {row["username"]: row["operator"] for row in rows}

    async def operator_accounts(self, connection: asyncpg.Connection) -> list[OperatorAccount]:
        """Every operator account with its desk (if any) and skills, by username."""
        rows = await connection.fetch(
            """
            SELECT a.username, a.display_name, a.active, d.operator AS interface,
                   COALESCE(jsonb_object_agg(s.skill, s.level)
                            FILTER (WHERE s.skill IS NOT NULL), '{}')::text AS skills,
                   p.kind AS phone
            FROM accounts a
            LEFT JOIN account_operators d USING (account_id)
            LEFT JOIN operator_skills s ON s.operator = d.operator
            LEFT JOIN phone_secrets p ON p.operator = d.operator
            WHERE a.role = 'operator'
            GROUP BY a.username, a.display_name, a.active, d.operator, p.kind
            ORDER BY a.username
            """)
        return [from_row(OperatorAccount, row, skills=json.loads(row["skills"])) for row in rows]

    async def memberships(self, connection: asyncpg.Connection, interface: str
                          ) -> list[Membership]:
        """The queues ``interface`` is in, by queue name."""
        rows = await connection.fetch(
            """
            SELECT queue, state, paused, pause_reason, since FROM queue_members
            WHERE operator = $1 AND state <> $2
            ORDER BY queue
            """,
            interface, LOGGED_OUT)
        return [from_row(Membership, row) for row in rows]

    async def ringing_call(self, connection: asyncpg.Connection, interface: str,
                           window: timedelta) -> CallView | None:
        """The newest call still waiting that Asterisk rang ``interface`` for within
        ``window`` (a ring lasts the queue's timeout; after it the phone is quiet again)."""
        row = await connection.fetchrow(
            _calls_where("""
            WHERE c.ended_at IS NULL AND c.answered_at IS NULL
              AND EXISTS (
                  SELECT 1 FROM call_events e
                  WHERE e.call_id = c.call_id AND e.kind = 'operator_rung'
                    AND e.body ->> 'operator' = $1 AND e.at > now() - $2::interval)
            ORDER BY c.arrived_at DESC
            LIMIT 1
            """),
            interface, window)
        return from_row(CallView, row) if row is not None else None

    async def answered_call(self, connection: asyncpg.Connection, interface: str,
                            within: timedelta) -> CallView | None:
        """The last call answered at ``interface`` within ``within``, in progress or not."""
        row = await connection.fetchrow(
            _calls_where("""
            WHERE c.operator = $1 AND c.answered_at > now() - $2::interval
            ORDER BY c.answered_at DESC
            LIMIT 1
            """),
            interface, within)
        return from_row(CallView, row) if row is not None else None

    async def calls(self, connection: asyncpg.Connection, call_ids: list[str]
                    ) -> list[CallView]:
        """These calls, in the order given (ids without a record are left out)."""
        rows = await connection.fetch(
            _calls_where("WHERE c.call_id = ANY($1::text[])"), call_ids)
        found = {row["call_id"]: from_row(CallView, row) for row in rows}
        return [found[call_id] for call_id in call_ids if call_id in found]

    async def caller_calls(self, connection: asyncpg.Connection, caller_key: str,
                           exclude: str, limit: int) -> list[CallView]:
        """The caller's latest calls but ``exclude``, newest first (the screening history
        index: the same caller however the number was written)."""
        rows = await connection.fetch(
            _calls_where("""
            WHERE c.caller_key = $1 AND c.call_id <> $2
            ORDER BY c.arrived_at DESC
            LIMIT $3
            """),
            caller_key, exclude, limit)
        return [from_row(CallView, row) for row in rows]
