"""What a site engineer does to a site's database, against a real PostgreSQL.

An upgrade: a database of the previous version, with calls in it and a view of the site's own
over ``calls`` (a report tool's), meets a migration that cannot apply while the view is there.
``siaga112 migrate`` and ``serve`` say so in one line naming the migration and what is in the
way, the schema stays where it was, and the same command applies it once the view is gone; a
line that was already running keeps its call facts in the spool meanwhile instead of refusing
them.

A password the server refuses (a secret rotated on one side only, a typo): every command
says so in one line, and a running line spools its call facts rather than refusing them.

The embedded cluster (a checkout's database): its first start failing on a port that was
taken is said in the server's own words, and the next start, on another port, finishes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from telephony.app import running_line, schema_preparation
from telephony.backup.errors import BackupError
from telephony.backup.service import back_up, restore
from telephony.calls.recorder import CallRecorder
from telephony.calls.spool import FactSpool
from telephony.calls.store import CallRepository
from telephony.cli import main
from telephony.db.connection import Database, SchemaNotPrepared
from telephony.db.embedded import EmbeddedDatabaseError, EmbeddedPostgres, free_loopback_port
from telephony.db.migrate import bundled_migrations
from telephony.settings import Settings
from tests.support.calls import CALENDAR, add_calls, call_facts
from tests.support.db import (
    create_database_before,
    create_empty_database,
    drop_database,
    execute,
    fetch,
    line_dsn,
)

# The migration that remakes calls.looks_silent, and a site's view that reads that column.
REMADE = 41
SITE_VIEW = "CREATE VIEW site_report AS SELECT call_id, looks_silent FROM calls"


@pytest.fixture
async def older_site(pg_cluster: EmbeddedPostgres, settings: Settings
                     ) -> AsyncIterator[Settings]:
    """A site's database as it was before the upgrade: migrated up to the migration before
    REMADE, holding a call; the line's role connects, the owner migrates."""
    owner = await create_database_before(pg_cluster, REMADE)
    await add_calls(owner, call_facts("1750000001.1"))
    yield replace(settings, database_dsn=line_dsn(pg_cluster, owner), database_owner_dsn=owner)
    await drop_database(pg_cluster, owner)


async def schema_level(settings: Settings) -> int:
    assert settings.database_owner_dsn is not None
    [row] = await fetch(settings.database_owner_dsn, "SELECT max(version) FROM schema_migrations")
    return int(row[0])


async def with_site_view(site: Settings) -> str:
    """Add the site's own view over calls; the owner's DSN."""
    assert site.database_owner_dsn is not None
    await execute(site.database_owner_dsn, SITE_VIEW)
    return site.database_owner_dsn


async def test_a_migration_that_cannot_apply_is_one_line_and_applies_once_fixed(
    older_site: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    owner = await with_site_view(older_site)
    # It used to be asyncpg's traceback, from 'migrate' and from 'serve' alike.
    async def migrate() -> int:
        assert older_site.database_owner_dsn is not None
        return await asyncio.to_thread(main, [
            "--set", f"database_dsn={older_site.database_dsn}",
            "--set", f"database_owner_dsn={older_site.database_owner_dsn}",
            "--set", f"state_dir={older_site.state_dir}", "migrate"])

    assert await migrate() == 1
    said = capsys.readouterr().err
    assert said.count("\n") == 1 and "Traceback" not in said, said
    assert said.startswith(f"siaga112: gagal: Migrasi {REMADE:04d}_")
    assert "view site_report depends on column looks_silent" in said
    assert await schema_level(older_site) == REMADE - 1

    # The line's start stops the same way, before any part of it runs.
    with pytest.raises(SchemaNotPrepared, match="site_report"):
        async with running_line(older_site):
            pytest.fail("the line started on a schema it could not prepare")

    # The engineer moves the view out of the way: the same command applies the rest, and a
    # second run has nothing left to do. The call is still there.
    await execute(owner, "DROP VIEW site_report")
    assert await migrate() == 0
    pending = len([m for m in bundled_migrations() if m.version >= REMADE])
    assert f"{pending} migrasi baru diterapkan" in capsys.readouterr().out
    assert await migrate() == 0
    assert "0 migrasi baru diterapkan" in capsys.readouterr().out
    assert await schema_level(older_site) == bundled_migrations()[-1].version
    assert len(await fetch(owner, "SELECT call_id FROM calls")) == 1


async def test_a_schema_a_newer_version_migrated_is_said_when_an_upgrade_is_rolled_back(
    settings: Settings, database_dsn: str, database_owner_dsn: str,
    caplog: pytest.LogCaptureFixture
) -> None:
    # The previous image started on a database the new one had migrated, and nothing said
    # that it now ran on tables it might not understand.
    newest = bundled_migrations()[-1].version
    await execute(database_owner_dsn, "INSERT INTO schema_migrations (version, name, checksum) "
                                      "VALUES ($1, 'from_the_future', 'x')", newest + 1)
    assert await asyncio.to_thread(main, [
        "--set", f"database_dsn={database_dsn}",
        "--set", f"database_owner_dsn={database_owner_dsn}",
        "--set", f"state_dir={settings.state_dir}", "migrate"]) == 0
    assert f"schema is at migration {newest + 1:04d}, newer than this software's " \
           f"{newest:04d}" in caplog.text


async def test_a_running_line_keeps_its_call_facts_while_the_schema_cannot_be_prepared(
    older_site: Settings, tmp_path: Path
) -> None:
    # The database came up after the line (or its pool was reopened) on a schema a migration
    # cannot move: each batch of call facts went to rejected.jsonl, never written again.
    owner = await with_site_view(older_site)
    database = Database(older_site, prepare=schema_preparation(older_site))
    spool = FactSpool(tmp_path / "spool")
    recorder = CallRecorder(database, CallRepository(CALENDAR), spool, retry_seconds=0.05)
    try:
        await recorder.record(call_facts("1750000002.2"))
        facts = len(call_facts("x"))
        assert (recorder.rejected, recorder.pending()) == (0, facts)
        await execute(owner, "DROP VIEW site_report")
        assert await recorder.flush() == facts
    finally:
        await database.close()
    assert await schema_level(older_site) == bundled_migrations()[-1].version
    assert len(await fetch(owner, "SELECT call_id FROM calls")) == 2


async def test_an_embedded_cluster_whose_first_start_failed_is_finished_by_the_next() -> None:
    # The port was taken at the first start: pg_ctl said only "could not start server /
    # Examine the log output." on two lines; the application database was never created, so
    # every later command failed on it; and the port written at creation stayed the one the
    # server listened on, whatever embedded_pg_port said afterwards.
    root = Path(tempfile.mkdtemp(prefix="siaga112-test-embedded-"))
    root.chmod(0o755)  # the cluster runs as the postgres user, which must get in
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        with pytest.raises(EmbeddedDatabaseError) as failed:
            await asyncio.to_thread(EmbeddedPostgres(root / "pgdata", port).ensure_initialized)
        said = failed.value.message
        assert "\n" not in said and "Address already in use" in said, said
        assert f"127.0.0.1:{port}" in said and str(root / "pgdata" / "server.log") in said

        cluster = EmbeddedPostgres(root / "pgdata", free_loopback_port())
        await asyncio.to_thread(cluster.ensure_initialized)
        connection = await asyncpg.connect(cluster.dsn())
        try:
            assert await connection.fetchval("SELECT current_database()") == "siaga112"
        finally:
            await connection.close()
    finally:
        taken.close()
        with contextlib.suppress(EmbeddedDatabaseError):
            await asyncio.to_thread(EmbeddedPostgres(root / "pgdata", port).stop)
        shutil.rmtree(root, ignore_errors=True)


async def test_an_older_backup_whose_migration_cannot_apply_still_restores_its_files(
    older_site: Settings, pg_cluster: EmbeddedPostgres, settings: Settings, tmp_path: Path
) -> None:
    # A backup from before the upgrade, of a site with its own view over calls: the restore
    # replaced the database, then stopped at the migration, and its files were never copied
    # back; the message said to fix the database and run 'migrate', which left them missing.
    await with_site_view(older_site)
    attachment = older_site.attachments_dir / "2025" / "scene.png"
    attachment.parent.mkdir(parents=True)
    attachment.write_bytes(b"photo")
    await back_up(older_site, tmp_path / "before-upgrade")
    empty = await create_empty_database(pg_cluster)
    fresh = replace(settings, database_dsn=line_dsn(pg_cluster, empty), database_owner_dsn=empty,
                    state_dir=tmp_path / "fresh")
    try:
        with pytest.raises(BackupError, match=rf"skema versi {REMADE - 1}\) dan 1 berkas "
                                              r"dipulihkan; migrasinya belum selesai: Migrasi "
                                              rf"{REMADE:04d}_.*site_report"):
            await restore(fresh, tmp_path / "before-upgrade")
        assert (fresh.attachments_dir / "2025" / "scene.png").read_bytes() == b"photo"
        await execute(empty, "DROP VIEW site_report")
        assert await asyncio.to_thread(main, [
            "--set", f"database_dsn={fresh.database_dsn}", "--set", f"database_owner_dsn={empty}",
            "--set", f"state_dir={fresh.state_dir}", "migrate"]) == 0
        assert len(await fetch(empty, "SELECT call_id FROM calls")) == 1
    finally:
        await drop_database(pg_cluster, empty)


async def test_an_upgrade_during_a_backup_gives_way_instead_of_holding_every_write(
    older_site: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pg_dump holds a share lock on every table until the dump ends (an hour, on a big site).
    # The upgrade's migration queued for its exclusive lock on calls, and every read and write
    # of calls queued behind it, a running node's and the console's, for the whole dump;
    # the upgraded line itself sat in its start, every call failing open unrecorded.
    monkeypatch.setattr("telephony.db.migrate.MIGRATION_LOCK_TIMEOUT", "200ms")
    assert older_site.database_owner_dsn is not None
    dump = await asyncpg.connect(older_site.database_owner_dsn)
    try:
        async with dump.transaction(isolation="repeatable_read"):
            await dump.execute("LOCK TABLE calls IN ACCESS SHARE MODE")  # as pg_dump does
            database = Database(older_site, prepare=schema_preparation(older_site))
            recorder = CallRecorder(database, CallRepository(CALENDAR),
                                    FactSpool(tmp_path / "spool"), retry_seconds=0.05)
            try:
                async with asyncio.timeout(5):
                    await recorder.record(call_facts("1750000004.4"))
                    # The running node's reads meanwhile: not held.
                    await fetch(older_site.database_owner_dsn, "SELECT count(*) FROM calls")
                assert (recorder.rejected, recorder.pending()) == (0, len(call_facts("x")))
                assert await schema_level(older_site) == REMADE - 1
            finally:
                await database.close()
        # The dump ended: the next use migrates and writes what was kept.
        database = Database(older_site, prepare=schema_preparation(older_site))
        recorder = CallRecorder(database, CallRepository(CALENDAR),
                                FactSpool(tmp_path / "spool"), retry_seconds=0.05)
        try:
            assert await recorder.flush() == len(call_facts("x"))
        finally:
            await database.close()
    finally:
        await dump.close()
    assert await schema_level(older_site) == bundled_migrations()[-1].version


def with_password(dsn: str, password: str) -> str:
    """``dsn`` with another password."""
    parts = urlsplit(dsn)
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.netloc.rpartition('@')[2]}"))


async def test_a_password_the_server_refuses_is_one_line_and_spools_the_call_facts(
    settings: Settings, database_dsn: str, database_owner_dsn: str,
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    right = replace(settings, database_dsn=database_dsn, database_owner_dsn=database_owner_dsn)
    await back_up(right, tmp_path / "taken")
    wrong = replace(right, database_dsn=with_password(database_dsn, "salah"),
                    database_owner_dsn=with_password(database_owner_dsn, "salah"))
    for command in (["account", "list"], ["migrate"], ["backup", str(tmp_path / "backup")],
                    ["restore", str(tmp_path / "taken")]):
        assert await asyncio.to_thread(main, [
            "--set", f"database_dsn={wrong.database_dsn}",
            "--set", f"database_owner_dsn={wrong.database_owner_dsn}",
            "--set", f"state_dir={tmp_path / 'state'}", *command]) == 1
        said = capsys.readouterr().err
        assert said.count("\n") == 1 and "Traceback" not in said, said
        assert "cannot connect to PostgreSQL: password authentication failed" in said, said
    assert list(tmp_path.glob("*backup*")) == []

    # The line's facts are kept to be written once the password is right again, not refused
    # as if they were wrong.
    database = Database(replace(wrong, database_owner_dsn=None))
    recorder = CallRecorder(database, CallRepository(CALENDAR), FactSpool(tmp_path / "spool"),
                            retry_seconds=0.05)
    try:
        await recorder.record(call_facts("1750000003.3"))
        assert (recorder.rejected, recorder.pending()) == (0, len(call_facts("x")))
    finally:
        await database.close()
