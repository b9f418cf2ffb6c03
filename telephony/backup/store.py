"""Where a site keeps the fact that a backup was taken: the audit log (an entry by ``cli``,
``backup.write``), which the line's role may read. The line reads the newest one for its
metrics (``siaga112_backup_last_success_timestamp_seconds``), so a site whose backups stopped
is told by its alerts, not on the day it needs one."""

from __future__ import annotations

from datetime import datetime
from typing import Final

import asyncpg

from telephony.accounts.service import CLI_ACTOR
from telephony.accounts.store import AccountRepository
from telephony.backup.model import Manifest

OBJECT_TYPE: Final = "backup"
WRITTEN: Final = "backup.write"


async def record_backup(connection: asyncpg.Connection, target: str, manifest: Manifest) -> None:
    """Note in the audit log that a whole backup of this database now exists at ``target``."""
    await AccountRepository().append_audit(
        connection, actor=CLI_ACTOR, action=WRITTEN, object_type=OBJECT_TYPE,
        object_id=target, remote_address="",
        detail={"created_at": manifest.created_at.isoformat(),
                "schema_version": manifest.schema_version, "files": len(manifest.files),
                "bytes": sum(entry.size for entry in manifest.every_file)})


async def site_identity(connection: asyncpg.Connection) -> str:
    """Which database this is, as a backup's manifest names it: its cluster's system
    identifier (a streaming replica and the node promoted in a failover share it) and its
    own OID there. A restore into it keeps both (it replaces the schema, not the database),
    so the backups a site wrote after the one it restored are still known as its own once its
    audit log is the restored one's; a database restored elsewhere (another host, another
    site's staging copy) has its own, and never takes this one's backups for its own. Readable
    by any role."""
    identity = await connection.fetchrow(
        "SELECT (SELECT system_identifier FROM pg_control_system()) AS cluster, oid"
        " FROM pg_database WHERE datname = current_database()")
    assert identity is not None  # the database connected to
    return f"{identity['cluster']}/{identity['oid']}"


async def last_backup_at(connection: asyncpg.Connection) -> datetime | None:
    """When the newest backup of this database was finished; ``None`` if none ever was."""
    # object_type leads an index of the audit log: this reads the backups' entries only.
    found: datetime | None = await connection.fetchval(
        "SELECT max(at) FROM audit_log WHERE object_type = $1 AND action = $2",
        OBJECT_TYPE, WRITTEN)
    return found


async def recorded_backups(connection: asyncpg.Connection, directory: str
                           ) -> frozenset[tuple[str, datetime]]:
    """The backups this database noted writing right inside ``directory`` (absolute, as
    ``back_up`` notes it): each one's name there and the time its manifest holds. Pruning
    removes only these: a backup copied in from another site (an old host's, waiting to be
    restored on a new one) is not this site's to remove."""
    prefix = directory.rstrip("/") + "/"
    rows = await connection.fetch(
        "SELECT object_id, detail->>'created_at' AS created_at FROM audit_log"
        " WHERE object_type = $1 AND action = $2 AND starts_with(object_id, $3)",
        OBJECT_TYPE, WRITTEN, prefix)
    found = set()
    for row in rows:
        name = str(row["object_id"])[len(prefix):]
        try:
            created_at = datetime.fromisoformat(str(row["created_at"]))
        except ValueError:
            continue  # not written by record_backup: not one to prune
        if name and "/" not in name and created_at.tzinfo is not None:
            found.add((name, created_at))
    return frozenset(found)
