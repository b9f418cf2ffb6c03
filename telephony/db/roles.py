"""The two database roles: the owner, which owns the schema and runs migrations, and the
line's role, which owns nothing and holds only the privileges its SQL needs.

Why: the line used to connect as the role that owns every table (a superuser, in the
embedded cluster), so anything that ran SQL as the line could TRUNCATE, DROP or ALTER any
table, the audit log included. Now the line's role may SELECT and INSERT on ``audit_log`` and
nothing more; the triggers of migrations 0005 and 0020 refuse UPDATE, DELETE and TRUNCATE
even to a role that was granted them by mistake; only the owner (or a superuser) can drop a
table or disable a trigger.

The grants are a step run by the owner after every migration run (:func:`grant_line_role`),
not ``ALTER DEFAULT PRIVILEGES``, because:

- the line's role is the site's setting (``database_line_user``), which a migration file
  cannot name (as with Asterisk's role in 0010);
- each table gets what the line's SQL does to it (:data:`LINE_PRIVILEGES`, derived from the
  stores), not one blanket set; default privileges could only give every new table the same;
- default privileges belong to the role that creates the table, so a migration run by
  another role (a superuser, a restore) would silently grant nothing;
- the step revokes and grants in one transaction every time, so a table's privileges are
  what this file says after any upgrade or restore, never a leftover.

A table a later migration adds without an entry here is granted :data:`UNLISTED` (plain
DML: the line keeps working, fail-open) with a warning, and a loopback test fails until the
table is listed with what its store needs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

import asyncpg

from telephony.db.migrate import MigrationError, hold_schema_lock, migrate

log = logging.getLogger("telephony.db")

S, INS, U, D = "SELECT", "INSERT", "UPDATE", "DELETE"

# What the line's SQL does to each table (grep the stores: telephony/**/store.py,
# recordings/store.py). UPDATE also where the line upserts (ON CONFLICT DO UPDATE) or locks
# rows (SELECT ... FOR UPDATE); DELETE where it deletes. Triggers run as the line, so their
# writes count: call_events, call_labels and transfer_steps (0047) update calls; calls and
# operator_state_changes delete report_rollup_slots; calls and recordings insert into
# call_screening_due. ON DELETE CASCADE runs as the owner and needs nothing here.
LINE_PRIVILEGES: Final[dict[str, tuple[str, ...]]] = {
    "account_operators": (S, INS, U),
    "accounts": (S, INS, U),
    "agencies": (S, INS, U),
    "agency_numbers": (S, INS, U),
    "agency_recipients": (S, INS, U),
    "asterisk_log_cursors": (S, INS, U),  # the backfill's place in the queue_log (upsert)
    "asterisk_outages": (S, INS, U),  # upserted as the outage's times arrive
    "audit_log": (S, INS),  # append-only: never UPDATE, DELETE or TRUNCATE
    "call_answers": (S, INS, U),  # kept by a trigger on call_events (0051)
    "call_events": (S, INS),
    "call_labels": (S, INS),
    "call_legs": (S, INS, U),
    "call_outcomes": (S,),  # view
    # DELETE: a lost call's record gives way with its post-call score (0026).
    "call_screening": (S, INS, U, D),
    # INSERT: the triggers on calls and recordings queue calls due a post-call score; the
    # screening's upkeep reads and deletes them (0032).
    "call_screening_due": (S, INS, D),
    "callback_closures": (S, INS),
    # DELETE: a record a line made of a lost call gives way to the node's own (0026).
    "calls": (S, INS, U, D),
    # A cluster's operators' memberships, which every line follows (0027).
    "cluster_desk_members": (S, INS, U),
    "config_publications": (S, INS),
    "config_versions": (S, INS),
    "dispatches": (S, INS, U),
    # Why an admin's change ended a session, told to its owner; deleted once expired (0048).
    "ended_sessions": (S, INS, D),
    # The SIP front writes it (as the Asterisk role); lines read it, mark what they
    # reconciled and delete what is past its retention (telephony/cluster/front_store.py,
    # 0026, 0029).
    "front_calls": (S, U, D),
    # The SIP front's registrations (0035): the front's alone, as the Asterisk role.
    "front_location": (),
    "incident_attachments": (S, INS),
    "incident_calls": (S, INS, U),
    "incident_events": (S, INS),
    "incident_overview": (S,),  # view
    "incidents": (S, INS, U),
    "login_failures": (S, INS, D),
    "notification_outbox": (S, INS, U),
    "operator_intervals": (S,),  # view
    "operator_skills": (S, INS, D),
    "operator_state_changes": (S, INS, U),
    "operators": (S, INS, U),
    "phone_secrets": (S, INS, U),
    "phone_site": (S, U),
    "prompt_audio": (S, INS),
    # Asterisk's views of the phones: its own role reads them (0010), the line never does.
    "kamailio_subscribers": (),  # the SIP front reads it as the Asterisk role (0022)
    "ps_aors": (),
    "ps_auths": (),
    "ps_endpoints": (),
    "queue_members": (S, INS, U),
    "queue_settings": (S, INS, U),
    "queue_visits": (S, INS, U),
    "recordings": (S, INS, U),
    "regencies": (S,),
    "report_rollup_slots": (S, INS, U, D),  # U: the refresher validates its claim (0030)
    "report_rollups": (S, INS),
    "schema_migrations": (S,),  # which schema the line runs on; the owner writes it
    "sessions": (S, INS, U, D),
    "shifts": (S, INS, D),
    "site_settings": (S, INS, U),
    "sub_districts": (S,),
    "survey_attempts": (S, INS, U),
    "surveys": (S, INS, U),
    "transfer_legs": (S, INS, U),
    "transfer_steps": (S, INS),
    "version_prompt_recordings": (S, INS),
    "villages": (S,),
    # Records of calls the SIP front gave another node, moved out of calls (0034).
    "withdrawn_offers": (S, INS),
}
UNLISTED: Final = (S, INS, U, D)


@dataclass(frozen=True)
class LineRole:
    """The role the line connects as, and its password when we know it (generated by us or
    written into the line's DSN); ``None``: the role exists with a password set by hand."""

    name: str
    password: str | None


async def schema_relations(connection: asyncpg.Connection) -> list[str]:
    """Every table and view of the public schema, by name."""
    rows = await connection.fetch(
        """
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
        ORDER BY c.relname
        """)
    return [row["relname"] for row in rows]


async def _ensure_role(connection: asyncpg.Connection, role: LineRole) -> None:
    exists = await connection.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role.name)
    if exists and role.password is None:
        return
    verb = "ALTER" if exists else "CREATE"
    # Owns nothing, creates nothing, inherits nothing: what it may do is what is granted here.
    # NOSUPERUSER, NOREPLICATION and NOBYPASSRLS are a new role's defaults, and naming them at
    # all needs a superuser, which a site's owner is not (only CREATEROLE); a line's role that
    # has them is refused in grant_line_role instead.
    options = "LOGIN NOCREATEDB NOCREATEROLE NOINHERIT"
    if role.password is None:
        statement = await connection.fetchval(
            f"SELECT format('{verb} ROLE %I WITH {options}', $1::text)", role.name)
    else:
        # Utility statements take no parameters: format() quotes the name and the password.
        statement = await connection.fetchval(
            f"SELECT format('{verb} ROLE %I WITH {options} PASSWORD %L', $1::text, $2::text)",
            role.name, role.password)
    await connection.execute(statement)


async def grant_line_role(connection: asyncpg.Connection, role: LineRole) -> None:
    """Create (or update) the line's role and give it exactly :data:`LINE_PRIVILEGES`, in one
    transaction. Run by the owner after migrations; idempotent."""
    current = await connection.fetchval("SELECT current_user")
    if current == role.name:
        raise MigrationError(f"the line's role {role.name} cannot be the owner that grants it")
    async with connection.transaction():
        # Two lines starting together grant the same objects; PostgreSQL refuses concurrent
        # updates of one object's privileges ("tuple concurrently updated").
        await hold_schema_lock(connection)
        try:
            async with connection.transaction():  # a savepoint: the grants go on after it
                await _ensure_role(connection, role)
        except asyncpg.UniqueViolationError:  # another process created it at that moment
            log.info("the line's role %s was created meanwhile by another process", role.name)
        powers = await connection.fetchrow(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles "
            "WHERE rolname = $1", role.name)
        if powers is not None and any(powers.values()):
            raise MigrationError(
                f"the line's role {role.name} may do more than its grants (superuser, "
                "BYPASSRLS, CREATEROLE or CREATEDB): ALTER ROLE it NOSUPERUSER NOBYPASSRLS "
                "NOCREATEROLE NOCREATEDB as a superuser")
        quoted = await connection.fetchval("SELECT quote_ident($1::text)", role.name)
        await connection.execute(f"REVOKE CREATE ON SCHEMA public FROM {quoted}")
        await connection.execute(f"GRANT USAGE ON SCHEMA public TO {quoted}")
        # Before PostgreSQL 15 every role could create tables in public; never the line.
        if await connection.fetchval("SELECT has_schema_privilege($1, 'public', 'CREATE')",
                                     role.name):
            await connection.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        await connection.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {quoted}")
        await connection.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {quoted}")
        # bigserial columns (call_events, recordings) take their next value from a sequence.
        await connection.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {quoted}")
        for relation in await schema_relations(connection):
            privileges = LINE_PRIVILEGES.get(relation)
            if privileges is None:
                log.warning("table %s has no entry in telephony/db/roles.py LINE_PRIVILEGES; "
                            "the line's role gets %s on it", relation, ", ".join(UNLISTED))
                privileges = UNLISTED
            if privileges:
                name = await connection.fetchval("SELECT quote_ident($1::text)", relation)
                await connection.execute(
                    f"GRANT {', '.join(privileges)} ON {name} TO {quoted}")


async def prepare_schema(connection: asyncpg.Connection, line: LineRole | None) -> int:
    """As the owner: apply pending migrations, then grant the line's role (``None``: the line
    is the owner itself, a database of one role). Returns how many migrations were applied."""
    applied = len(await migrate(connection))
    if line is not None:
        await grant_line_role(connection, line)
    return applied
