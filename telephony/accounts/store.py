"""SQL for the accounts family of tables: accounts, sessions, login_failures, audit_log.

Plain reads and writes only: the rules live in ``telephony.accounts.model`` and the
transactions in ``telephony.accounts.service``. Every method takes the connection to run on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from telephony.accounts.model import Account, Failures, Role, Session
from telephony.db.rows import from_row

# NOTIFY channel of an account that lost rights (another role, disabled); the payload is its
# username. Every line LISTENs here and ends that account's listening in still running on its
# own Asterisk (telephony/supervision/rights.py). Delivered at commit: a change rolled back
# announces nothing.
RIGHTS_CHANNEL = "siaga112_account_rights"


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log."""

    audit_id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    remote_address: str
    detail: Mapping[str, Any]


@dataclass(frozen=True)
class AuditPage:
    """A page of the audit log, newest first, and where the next (older) one starts: the
    ``before`` to ask for, or ``None`` after the oldest entry."""

    entries: list[AuditEntry]
    next_before: int | None


class AccountRepository:
    """Reads and writes the account tables. Holds no connection: callers pass one in."""

    # -- accounts ------------------------------------------------------------------------------

    async def insert_account(
        self, connection: asyncpg.Connection, username: str, display_name: str, role: Role,
        password_hash: str,
    ) -> Account:
        """Create an account; raises ``asyncpg.UniqueViolationError`` if the name is taken."""
        row = await connection.fetchrow(
            """
            INSERT INTO accounts (username, display_name, role, password_hash)
            VALUES ($1, $2, $3, $4)
            RETURNING *
            """,
            username, display_name, role.value, password_hash,
        )
        assert row is not None  # INSERT ... RETURNING always returns the row
        return from_row(Account, row)

    async def account_with_hash(
        self, connection: asyncpg.Connection, username: str
    ) -> tuple[Account, str] | None:
        """An account and its password hash."""
        row = await connection.fetchrow("SELECT * FROM accounts WHERE username = $1", username)
        return (from_row(Account, row), row["password_hash"]) if row is not None else None

    async def lock_account(self, connection: asyncpg.Connection, username: str
                           ) -> Account | None:
        """The account, its row locked until the transaction ends (a change of its name,
        role or desk waits for another one in flight); ``None`` if there is none."""
        row = await connection.fetchrow(
            "SELECT * FROM accounts WHERE username = $1 FOR UPDATE", username)
        return from_row(Account, row) if row is not None else None

    async def other_active_admins(self, connection: asyncpg.Connection, account_id: int
                                  ) -> int:
        """How many active admins there are besides ``account_id``, their rows locked until
        the transaction ends (two admins demoting each other at once cannot both see the
        other still an admin)."""
        rows = await connection.fetch(
            """
            SELECT account_id FROM accounts
            WHERE role = 'admin' AND active AND account_id <> $1
            ORDER BY account_id FOR UPDATE
            """,
            account_id)
        return len(rows)

    async def set_display_name(self, connection: asyncpg.Connection, account_id: int,
                               display_name: str) -> Account:
        """Store the account's new display name."""
        row = await connection.fetchrow(
            "UPDATE accounts SET display_name = $2 WHERE account_id = $1 RETURNING *",
            account_id, display_name)
        assert row is not None  # the caller holds the row's lock
        return from_row(Account, row)

    async def set_role(self, connection: asyncpg.Connection, account_id: int, role: Role
                       ) -> Account:
        """Store the account's new role."""
        row = await connection.fetchrow(
            "UPDATE accounts SET role = $2 WHERE account_id = $1 RETURNING *",
            account_id, role.value)
        assert row is not None  # the caller holds the row's lock
        return from_row(Account, row)

    async def announce_rights(self, connection: asyncpg.Connection, username: str) -> None:
        """Tell every line (at commit) that ``username``'s rights changed."""
        await connection.execute("SELECT pg_notify($1, $2)", RIGHTS_CHANNEL, username)

    async def accounts(self, connection: asyncpg.Connection) -> list[Account]:
        """Every account, by username."""
        rows = await connection.fetch("SELECT * FROM accounts ORDER BY username")
        return [from_row(Account, row) for row in rows]

    async def set_active(
        self, connection: asyncpg.Connection, username: str, active: bool
    ) -> Account | None:
        """Enable or disable an account; ``None`` if there is no such account."""
        row = await connection.fetchrow(
            "UPDATE accounts SET active = $2 WHERE username = $1 RETURNING *", username, active
        )
        return from_row(Account, row) if row is not None else None

    async def set_password_hash(
        self, connection: asyncpg.Connection, account_id: int, password_hash: str, *,
        changed: bool,
    ) -> None:
        """Store a new hash: a new password (``changed``) or a stronger hash of the same one."""
        await connection.execute(
            """
            UPDATE accounts SET password_hash = $2,
                password_changed_at = CASE WHEN $3 THEN now() ELSE password_changed_at END
            WHERE account_id = $1
            """,
            account_id, password_hash, changed,
        )

    # -- sessions ------------------------------------------------------------------------------

    async def insert_session(
        self, connection: asyncpg.Connection, token_sha256: str, account: Account, *,
        csrf_token: str, lifetime: timedelta, remote_address: str,
    ) -> Session:
        """Open a session for ``lifetime`` from now."""
        row = await connection.fetchrow(
            """
            INSERT INTO sessions (token_sha256, account_id, csrf_token, remote_address,
                                  expires_at)
            VALUES ($1, $2, $3, $4, now() + $5::interval)
            RETURNING expires_at, last_seen_at
            """,
            token_sha256, account.account_id, csrf_token, remote_address, lifetime,
        )
        assert row is not None
        return Session(token_sha256, account, csrf_token, row["expires_at"],
                       row["last_seen_at"])

    async def live_session(
        self, connection: asyncpg.Connection, token_sha256: str
    ) -> Session | None:
        """The session with this digest if it has not expired and its account is active."""
        row = await connection.fetchrow(
            """
            SELECT a.*, s.token_sha256, s.csrf_token, s.expires_at, s.last_seen_at
            FROM sessions s JOIN accounts a USING (account_id)
            WHERE s.token_sha256 = $1 AND s.expires_at > now() AND a.active
            """,
            token_sha256,
        )
        if row is None:
            return None
        return from_row(Session, row, account=from_row(Account, row))

    async def touch_session(
        self, connection: asyncpg.Connection, token_sha256: str, *, older_than: timedelta
    ) -> None:
        """Note that the session was used, unless that was noted less than ``older_than`` ago
        (one write per minute, not one per request)."""
        await connection.execute(
            """
            UPDATE sessions SET last_seen_at = now()
            WHERE token_sha256 = $1 AND last_seen_at < now() - $2::interval
            """,
            token_sha256, older_than,
        )

    async def delete_session(self, connection: asyncpg.Connection, token_sha256: str) -> None:
        """End one session."""
        await connection.execute("DELETE FROM sessions WHERE token_sha256 = $1", token_sha256)

    async def delete_sessions_of(self, connection: asyncpg.Connection, account_id: int, *,
                                 reason: str) -> int:
        """End every session of an account, keeping why for its owner's next request (as
        long as each session would have lived); returns how many there were."""
        status = await connection.execute(
            """
            WITH gone AS (DELETE FROM sessions WHERE account_id = $1
                          RETURNING token_sha256, expires_at)
            INSERT INTO ended_sessions (token_sha256, reason, expires_at)
            SELECT token_sha256, $2, expires_at FROM gone
            """,
            account_id, reason)
        return int(status.split()[-1])

    async def ended_reason(self, connection: asyncpg.Connection, token_sha256: str
                           ) -> str | None:
        """Why an admin's change ended the session with this digest; ``None`` if none did
        (logged out, expired, unknown)."""
        reason: str | None = await connection.fetchval(
            "SELECT reason FROM ended_sessions WHERE token_sha256 = $1 AND expires_at > now()",
            token_sha256)
        return reason

    async def delete_expired_sessions(self, connection: asyncpg.Connection) -> None:
        """Forget sessions past their expiry, and why ended ones ended."""
        await connection.execute("DELETE FROM sessions WHERE expires_at <= now()")
        await connection.execute("DELETE FROM ended_sessions WHERE expires_at <= now()")

    # -- login throttling ----------------------------------------------------------------------

    async def lock_login(self, connection: asyncpg.Connection, remote_address: str) -> None:
        """Serialise logins from one address until the transaction ends, so parallel guesses
        from it, under one name or many, each see the failures before them (both counts the
        throttle reads are of this address)."""
        await connection.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('login-from:' || $1, 0))",
            remote_address)

    async def failures(
        self, connection: asyncpg.Connection, key: str, remote_address: str, window: timedelta
    ) -> tuple[Failures, Failures, datetime]:
        """Failures within ``window`` under the name from the address since the name's
        password last changed (guesses at the old one, or its owner's tries when they forgot
        it, do not keep them out of a new one), and from the address under any name; and the
        time now."""
        row = await connection.fetchrow(
            """
            WITH changed AS (
                SELECT coalesce(max(password_changed_at), '-infinity') AS at
                FROM accounts WHERE username = $1
            )
            SELECT count(*) FILTER (WHERE f.username = $1 AND f.at > c.at) AS by_name,
                   max(f.at) FILTER (WHERE f.username = $1 AND f.at > c.at) AS by_name_last,
                   count(*) AS by_address,
                   max(f.at) AS by_address_last,
                   now() AS now
            FROM login_failures f CROSS JOIN changed c
            WHERE f.remote_address = $2 AND f.at > now() - $3::interval
            """,
            key, remote_address, window,
        )
        assert row is not None  # an aggregate always returns one row
        return (Failures(row["by_name"], row["by_name_last"]),
                Failures(row["by_address"], row["by_address_last"]), row["now"])

    async def record_failure(
        self, connection: asyncpg.Connection, key: str, remote_address: str, window: timedelta
    ) -> None:
        """Count one failed login; failures past the window are forgotten on the way."""
        await connection.execute(
            "DELETE FROM login_failures WHERE at < now() - $1::interval", window)
        await connection.execute(
            "INSERT INTO login_failures (username, remote_address) VALUES ($1, $2)",
            key, remote_address,
        )

    async def clear_failures(self, connection: asyncpg.Connection, key: str,
                             remote_address: str) -> None:
        """Forget a name's failures from the address its owner just logged in from (the
        address keeps its count under other names, and other addresses theirs)."""
        await connection.execute(
            "DELETE FROM login_failures WHERE username = $1 AND remote_address = $2",
            key, remote_address)

    # -- audit log -----------------------------------------------------------------------------

    async def append_audit(
        self, connection: asyncpg.Connection, *, actor: str, action: str, object_type: str,
        object_id: str, remote_address: str, detail: Mapping[str, Any],
    ) -> None:
        """Append one entry to the audit log."""
        await connection.execute(
            """
            INSERT INTO audit_log (actor, action, object_type, object_id, remote_address,
                                   detail)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb)
            """,
            actor, action, object_type, object_id, remote_address,
            json.dumps(detail, ensure_ascii=False, default=str),
        )

    async def audit_entries(
        self, connection: asyncpg.Connection, *, object_type: str | None = None,
        object_id: str | None = None, actor: str | None = None, limit: int = 100,
        before: int | None = None,
    ) -> list[AuditEntry]:
        """The newest entries first, optionally about one object or by one actor, and only
        those older than the entry ``before`` (the log only grows, so a page read by this
        cursor never shifts as new entries arrive)."""
        rows = await connection.fetch(
            """
            SELECT * FROM audit_log
            WHERE ($1::text IS NULL OR object_type = $1)
              AND ($2::text IS NULL OR object_id = $2)
              AND ($3::text IS NULL OR actor = $3)
              AND ($5::bigint IS NULL OR audit_id < $5)
            ORDER BY audit_id DESC
            LIMIT $4
            """,
            object_type, object_id, actor, limit, before,
        )
        return [from_row(AuditEntry, row, detail=json.loads(row["detail"])) for row in rows]
