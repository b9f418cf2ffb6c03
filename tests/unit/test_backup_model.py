"""The backup manifest: written and read back the same, and every path checked before a
restore touches the file system."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from telephony.backup.errors import BackupError
from telephony.backup.model import (
    MANIFEST_NAME,
    FileEntry,
    Manifest,
    check_schema_level,
    checked_path,
    human_size,
)
from telephony.backup.service import read_manifest, tool_reason

DIGEST = "ab" * 32
MANIFEST = Manifest(
    datetime(2025, 6, 1, 1, 2, 3, tzinfo=UTC), 9, FileEntry("database.dump", DIGEST, 10),
    (FileEntry("recordings/2025/06/01/1.1.opus", DIGEST, 3),
     FileEntry("attachments/2025/06/x.png", DIGEST, 0)),
    "0.1.0", "pg_dump (PostgreSQL) 15.8", "7716588858512969982/16385", "/backups/2025-06-01")


def test_a_manifest_reads_back_as_written() -> None:
    again = Manifest.from_json(MANIFEST.to_json())
    assert again.created_at == MANIFEST.created_at
    assert (again.schema_version, again.database, again.software, again.pg_dump) == (
        9, MANIFEST.database, "0.1.0", "pg_dump (PostgreSQL) 15.8")
    assert sorted(again.files, key=lambda e: e.path) == sorted(MANIFEST.files,
                                                              key=lambda e: e.path)
    assert [e.area for e in again.every_file] == ["database.dump", "attachments", "recordings"]
    assert str(again.files[1].within_area) == "2025/06/01/1.1.opus"
    assert (again.site, again.written_to) == ("7716588858512969982/16385", "/backups/2025-06-01")
    # An older version's manifest names neither: read all the same, as nobody's.
    older = json.loads(MANIFEST.to_json())
    del older["site"], older["written_to"]
    nobodys = Manifest.from_json(json.dumps(older))
    assert (nobodys.site, nobodys.written_to) == ("", "")


@pytest.mark.parametrize("path", [
    "/etc/passwd", "recordings/../../etc/passwd", "../x", "recordings", "recordings/",
    "recordings//a", "recordings/./a", "spool/a", "recordings\\a", "", 7, None, "database.dump/x",
])
def test_paths_outside_the_areas_are_refused(path: object) -> None:
    with pytest.raises(BackupError):
        checked_path(path)


@pytest.mark.parametrize(("change", "words"), [
    ({"format": "other"}, "bukan manifes"),
    ({"format_version": 2}, "Versi format"),
    ({"created_at": "2025-06-01T01:02:03"}, "zona waktu"),
    ({"schema_version": "9"}, "migrasi skema"),
    ({"database": {"path": "recordings/a", "sha256": DIGEST, "size": 1}}, "harus database.dump"),
    ({"files": [{"path": "recordings/a", "sha256": "xyz", "size": 1}]}, "SHA-256"),
    ({"files": [{"path": "recordings/a", "sha256": DIGEST, "size": -1}]}, "Ukuran"),
    ({"files": [{"path": "recordings/a", "sha256": DIGEST, "size": True}]}, "Ukuran"),
    ({"files": [{"path": "recordings/a", "sha256": DIGEST, "size": 1}] * 2}, "dua kali"),
])
def test_malformed_manifests_are_refused(change: dict[str, object], words: str) -> None:
    document = {**json.loads(MANIFEST.to_json()), **change}
    with pytest.raises(BackupError, match=words):
        Manifest.from_json(json.dumps(document))
    with pytest.raises(BackupError, match="JSON"):
        Manifest.from_json("{")


def test_a_newer_schema_is_refused_an_older_one_migrates() -> None:
    check_schema_level(8, 9)
    check_schema_level(9, 9)
    with pytest.raises(BackupError, match="skema versi 10"):
        check_schema_level(10, 9)


def test_a_manifest_that_cannot_be_read_is_told_in_one_line(tmp_path: Path) -> None:
    not_a_backup = tmp_path / "passwd"
    not_a_backup.write_text("root:x:0:0\n", encoding="utf-8")
    with pytest.raises(BackupError, match="bagian jalurnya bukan direktori"):
        read_manifest(not_a_backup)
    (tmp_path / MANIFEST_NAME).write_bytes(b"\xff\xfe{")
    with pytest.raises(BackupError, match="bukan teks UTF-8"):
        read_manifest(tmp_path)


@pytest.mark.parametrize(("total", "shown"), [
    (0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 * 1024**3 // 2, "2.5 GiB"),
    (3 * 1024**4, "3.0 TiB")])
def test_sizes_read_as_the_it_staff_expect(total: int, shown: str) -> None:
    # Whole units only, before: 1.5 KiB said "1.0 KiB", a 2.5 GiB backup "2.0 GiB".
    assert human_size(total) == shown


@pytest.mark.parametrize(("stderr", "said"), [
    # The last line was all a site engineer read: the query, never why it failed.
    ("pg_dump: error: query failed: ERROR:  permission denied for table calls\n"
     "pg_dump: detail: Query was: LOCK TABLE public.calls IN ACCESS SHARE MODE\n",
     "pg_dump: error: query failed: ERROR:  permission denied for table calls "
     "(pg_dump: detail: Query was: LOCK TABLE public.calls IN ACCESS SHARE MODE)"),
    ("pg_dump: error: aborting because of server version mismatch\n"
     "pg_dump: detail: server version: 16.4; pg_dump version: 15.8\n",
     "pg_dump: error: aborting because of server version mismatch "
     "(pg_dump: detail: server version: 16.4; pg_dump version: 15.8)"),
    ("NOTICE:  drop cascades to 40 other objects\npsql:<stdin>:12: ERROR:  must be owner of "
     "schema public\nCONTEXT:  SQL statement\n",
     "psql:<stdin>:12: ERROR:  must be owner of schema public"),
    ("something odd\nand its last word\n", "and its last word"),
    ("", "tanpa pesan"),
])
def test_a_tool_s_failure_is_said_by_its_error_line(stderr: str, said: str) -> None:
    assert tool_reason(stderr) == said
