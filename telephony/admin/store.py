"""SQL for what an admin keeps: the configuration versions family (config_versions,
config_publications, prompt_audio, version_prompt_recordings) and the settings outside the
versioned documents (queue_settings, site_settings); migration 0009.

Plain reads and writes only: the rules live in ``telephony.admin.versions`` and the
transactions in ``telephony.admin.configs``. Every method takes the connection to run on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from enum import StrEnum
from typing import Any, Final

import asyncpg

from telephony.admin.queues import EDITABLE, QueueSettings
from telephony.admin.versions import ConfigKind, ConfigVersion, PromptRecording
from telephony.db.rows import from_row

# On a cluster every node's line LISTENs here (telephony/cluster/admin_sync.py) and brings its
# own Asterisk and files to what was stored; the payload says what changed (an AdminTopic).
# A NOTIFY is delivered at commit, and costs nothing with no one listening (a single node).
ADMIN_CHANNEL: Final = "siaga112_admin"


class AdminTopic(StrEnum):
    """What an admin changed, as announced on :data:`ADMIN_CHANNEL`."""

    QUEUES = "queues"  # queue_settings
    MENU = "menu"  # a menu version published (ConfigKind.MENU's value)
    SCREENING = "screening"  # a screening version published (ConfigKind.SCREENING's value)
    PHONES = "phones"  # a registering phone stored (PJSIP must be reloaded to ring it)
    SITE = "site"  # site_settings: dispatch targets, shifts


async def announce(connection: asyncpg.Connection, topic: AdminTopic) -> None:
    """Tell every line that ``topic`` changed (at the commit of the transaction, if any)."""
    await connection.execute("SELECT pg_notify($1, $2)", ADMIN_CHANNEL, topic.value)


# A kind's live version is its latest publication; each version's last one says when.
_VERSIONS = """
    WITH live AS (
        SELECT DISTINCT ON (kind) kind, version_id FROM config_publications
        ORDER BY kind, publication_id DESC
    ), last AS (
        SELECT DISTINCT ON (version_id) version_id, published_at, published_by
        FROM config_publications
        ORDER BY version_id, publication_id DESC
    )
    SELECT v.version_id, v.kind, v.note, v.based_on, v.created_by, v.created_at,
           {document} AS document,
           last.published_at AS last_published_at, last.published_by AS last_published_by,
           live.version_id IS NOT NULL AS live
    FROM config_versions v
    LEFT JOIN last ON last.version_id = v.version_id
    LEFT JOIN live ON live.version_id = v.version_id
"""


def _version(row: asyncpg.Record, recordings: tuple[PromptRecording, ...] = ()) -> ConfigVersion:
    # The listing selects no document (NULL): the version then carries an empty one.
    document = row["document"]
    return from_row(ConfigVersion, row,
                    document=json.loads(document) if document is not None else {},
                    recordings=recordings)


class ConfigVersionRepository:
    """Reads and writes the version tables. Holds no connection: callers pass one in."""

    async def lock(self, connection: asyncpg.Connection, kind: ConfigKind) -> None:
        """Serialise changes to one kind until the transaction ends (two admins publishing
        at once must not interleave the file they write and the row that records it)."""
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))",
                                 f"config_versions:{kind.value}")

    async def has_versions(self, connection: asyncpg.Connection, kind: ConfigKind) -> bool:
        """Whether any version of ``kind`` was saved."""
        return bool(await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM config_versions WHERE kind = $1)", kind.value))

    async def insert_version(
        self, connection: asyncpg.Connection, kind: ConfigKind, document: Mapping[str, Any],
        *, note: str, based_on: int | None, created_by: str,
    ) -> int:
        """Save a new version; returns its id."""
        version_id = await connection.fetchval(
            """
            INSERT INTO config_versions (kind, document, note, based_on, created_by)
            VALUES ($1, $2::jsonb, $3, $4, $5)
            RETURNING version_id
            """,
            kind.value, json.dumps(document, ensure_ascii=False), note, based_on, created_by)
        assert isinstance(version_id, int)  # INSERT ... RETURNING always returns the row
        return version_id

    async def versions(self, connection: asyncpg.Connection, kind: ConfigKind, limit: int
                       ) -> list[ConfigVersion]:
        """The newest versions of ``kind``, newest first, without their documents."""
        rows = await connection.fetch(
            _VERSIONS.format(document="NULL::text")
            + " WHERE v.kind = $1 ORDER BY v.version_id DESC LIMIT $2",
            kind.value, limit)
        return [_version(row) for row in rows]

    async def version(self, connection: asyncpg.Connection, version_id: int
                      ) -> ConfigVersion | None:
        """One version with its document and recordings."""
        row = await connection.fetchrow(
            _VERSIONS.format(document="v.document::text") + " WHERE v.version_id = $1",
            version_id)
        if row is None:
            return None
        return _version(row, tuple(await self.recordings(connection, version_id)))

    async def live_version_id(self, connection: asyncpg.Connection, kind: ConfigKind
                              ) -> int | None:
        """The version of ``kind`` published last."""
        value = await connection.fetchval(
            """
            SELECT version_id FROM config_publications WHERE kind = $1
            ORDER BY publication_id DESC LIMIT 1
            """,
            kind.value)
        return value if isinstance(value, int) else None

    async def live_publication(self, connection: asyncpg.Connection, kind: ConfigKind
                               ) -> tuple[int, str] | None:
        """The version of ``kind`` published last, and who published it."""
        row = await connection.fetchrow(
            """
            SELECT version_id, published_by FROM config_publications WHERE kind = $1
            ORDER BY publication_id DESC LIMIT 1
            """,
            kind.value)
        return None if row is None else (row["version_id"], row["published_by"])

    async def insert_publication(
        self, connection: asyncpg.Connection, kind: ConfigKind, version_id: int,
        published_by: str, note: str,
    ) -> None:
        """Record that ``version_id`` was published (it is now the live one), and announce it
        to every line (call it inside the transaction that makes the version live)."""
        await connection.execute(
            """
            INSERT INTO config_publications (kind, version_id, published_by, note)
            VALUES ($1, $2, $3, $4)
            """,
            kind.value, version_id, published_by, note)
        await announce(connection, AdminTopic(kind.value))

    # -- recordings ----------------------------------------------------------------------------

    async def recordings(self, connection: asyncpg.Connection, version_id: int
                         ) -> list[PromptRecording]:
        """The recorded prompts of a version, by prompt name."""
        rows = await connection.fetch(
            """
            SELECT prompt, sha256, filename, uploaded_by, uploaded_at
            FROM version_prompt_recordings WHERE version_id = $1 ORDER BY prompt
            """,
            version_id)
        return [from_row(PromptRecording, row) for row in rows]

    async def recording_audio(self, connection: asyncpg.Connection, version_id: int
                              ) -> dict[str, bytes]:
        """Prompt name -> the audio uploaded for it, for one version."""
        rows = await connection.fetch(
            """
            SELECT r.prompt, a.audio FROM version_prompt_recordings r
            JOIN prompt_audio a USING (sha256)
            WHERE r.version_id = $1
            """,
            version_id)
        return {row["prompt"]: bytes(row["audio"]) for row in rows}

    async def store_audio(self, connection: asyncpg.Connection, sha256: str, audio: bytes
                          ) -> None:
        """Keep ``audio`` under its digest (once, however often it is uploaded)."""
        await connection.execute(
            "INSERT INTO prompt_audio (sha256, audio) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            sha256, audio)

    async def attach_recording(
        self, connection: asyncpg.Connection, version_id: int, recording: PromptRecording
    ) -> None:
        """Give a (new, not yet shown) version a recorded prompt."""
        await connection.execute(
            """
            INSERT INTO version_prompt_recordings
                (version_id, prompt, sha256, filename, uploaded_by, uploaded_at)
            VALUES ($1, $2, $3, $4, $5, $6)
            """,
            version_id, recording.prompt, recording.sha256, recording.filename,
            recording.uploaded_by, recording.uploaded_at)

class AdminSettingsRepository:
    """Reads and writes the admin's settings tables. Holds no connection."""

    async def queue_settings(self, connection: asyncpg.Connection) -> dict[str, QueueSettings]:
        """Queue -> the settings an admin stored for it."""
        rows = await connection.fetch("SELECT * FROM queue_settings ORDER BY queue")
        return {row["queue"]: from_row(QueueSettings, row) for row in rows}

    async def lock_queue_settings(self, connection: asyncpg.Connection, queue: str
                                  ) -> QueueSettings | None:
        """Serialise changes to ``queue``'s settings until the transaction ends (a row that
        does not exist yet cannot be locked with FOR UPDATE); returns them as stored now."""
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))",
                                 f"queue_settings:{queue}")
        row = await connection.fetchrow("SELECT * FROM queue_settings WHERE queue = $1", queue)
        return None if row is None else from_row(QueueSettings, row)

    async def save_queue_settings(self, connection: asyncpg.Connection,
                                  settings: QueueSettings, actor: str) -> QueueSettings:
        """Store one queue's settings; returns them as stored (with who and when)."""
        values = asdict(settings)
        columns = ", ".join(EDITABLE)
        placeholders = ", ".join(f"${i}" for i in range(3, len(EDITABLE) + 3))
        updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in EDITABLE)
        # The column names come from EDITABLE, a constant; values are parameters.
        async with connection.transaction():
            row = await connection.fetchrow(
                f"""
                INSERT INTO queue_settings (queue, updated_by, {columns})
                VALUES ($1, $2, {placeholders})
                ON CONFLICT (queue) DO UPDATE SET {updates},
                    updated_by = EXCLUDED.updated_by, updated_at = now()
                RETURNING *
                """,  # noqa: S608
                settings.queue, actor, *(values[name] for name in EDITABLE))
            await announce(connection, AdminTopic.QUEUES)
        assert row is not None  # INSERT ... RETURNING always returns the row
        return from_row(QueueSettings, row)

    async def site_setting(self, connection: asyncpg.Connection, name: str) -> Any:
        """The decoded value an admin set for ``name``; ``None`` if they never did."""
        value = await connection.fetchval("SELECT value::text FROM site_settings WHERE name = $1",
                                          name)
        return None if value is None else json.loads(value)

    async def save_site_setting(self, connection: asyncpg.Connection, name: str, value: Any,
                                actor: str) -> None:
        """Store an admin's value for ``name`` (and announce it to every line)."""
        async with connection.transaction():
            await connection.execute(
                """
                INSERT INTO site_settings (name, value, updated_by) VALUES ($1, $2::jsonb, $3)
                ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value,
                    updated_by = EXCLUDED.updated_by, updated_at = now()
                """,
                name, json.dumps(value, ensure_ascii=False), actor)
            await announce(connection, AdminTopic.SITE)
