"""SQL of a cluster's operators' memberships (``cluster_desk_members``, migration 0027): read
what every line follows, write what one line changed and NOTIFY the others
(telephony/cluster/member_sync.py). Plain reads and writes; the rules are in
:mod:`telephony.cluster.members`."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence

import asyncpg

from telephony.cluster.members import CHANNEL, WantedMember


class DeskMemberRepository:
    """Reads and writes ``cluster_desk_members``. Holds no connection: callers pass one in."""

    async def wanted(self, connection: asyncpg.Connection,
                     interfaces: Collection[str] | None = None) -> dict[str, object]:
        """Interface -> its stored memberships as decoded JSON (unchecked: see
        :func:`~telephony.cluster.members.parse_wanted`), of ``interfaces`` or of all."""
        if interfaces is None:
            rows = await connection.fetch(
                "SELECT operator, members::text AS members FROM cluster_desk_members")
        else:
            rows = await connection.fetch(
                "SELECT operator, members::text AS members FROM cluster_desk_members "
                "WHERE operator = ANY($1::text[])", list(interfaces))
        found: dict[str, object] = {}
        for row in rows:
            try:
                found[row["operator"]] = json.loads(row["members"])
            except ValueError:
                found[row["operator"]] = None
        return found

    async def publish(self, connection: asyncpg.Connection, interface: str,
                      members: Sequence[WantedMember], node: str) -> bool:
        """Store ``interface``'s memberships as ``node``'s Asterisk holds them now and tell
        every line (NOTIFY, delivered at commit); returns whether anything was written. An
        interface in no queue that has no row yet gets none: it stays unmanaged."""
        value = json.dumps([member.as_json() for member in members])
        async with connection.transaction():
            if members:
                await connection.execute(
                    """
                    INSERT INTO cluster_desk_members (operator, members, node)
                    VALUES ($1, $2::jsonb, $3)
                    ON CONFLICT (operator) DO UPDATE SET members = EXCLUDED.members,
                        node = EXCLUDED.node, changed_at = now()
                    """, interface, value, node)
            else:
                status = await connection.execute(
                    "UPDATE cluster_desk_members SET members = $2::jsonb, node = $3, "
                    "changed_at = now() WHERE operator = $1", interface, value, node)
                if status.endswith(" 0"):
                    return False
            await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, interface)
        return True
