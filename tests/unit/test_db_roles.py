"""Which role connects for what (telephony/db/connection.py, roles.py): the line as its own
role, migrations as the owner; a database of one role where no owner is configured."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

import pytest

from telephony.db.connection import line_role, resolve_dsn, resolve_owner_dsn
from telephony.db.embedded import SUPERUSER
from telephony.db.roles import LINE_PRIVILEGES, LineRole
from telephony.settings import LIBPQ_ENV, Settings, load_settings


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in (*LIBPQ_ENV, "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)
    # Under tmp_path even as root (which would move it where the postgres user can reach it).
    monkeypatch.setattr(Settings, "embedded_pg_dir",
                        property(lambda self: self.state_dir / "pgdata"))
    return replace(load_settings(environ={}), state_dir=tmp_path / "state")


def test_the_embedded_cluster_has_an_owner_and_a_line_role(settings: Settings) -> None:
    pgdata = settings.embedded_pg_dir
    pgdata.parent.mkdir(parents=True)
    (pgdata.parent / f"{pgdata.name}.password").write_text("owner-pw\n")
    assert settings.uses_embedded_database and settings.separate_database_owner
    line = resolve_dsn(settings)
    role = line_role(settings)
    assert role is not None and role.name == "siaga112_line" and role.password
    assert line == (f"postgresql://siaga112_line:{role.password}@127.0.0.1:"
                    f"{settings.embedded_pg_port}/siaga112")
    assert resolve_owner_dsn(settings) == (
        f"postgresql://{SUPERUSER}:owner-pw@127.0.0.1:{settings.embedded_pg_port}/siaga112")
    kept = pgdata.parent / f"{pgdata.name}.line-password"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert line_role(settings) == role  # generated once, then reused


def test_a_dsn_without_an_owner_is_a_database_of_one_role(settings: Settings) -> None:
    single = replace(settings, database_dsn="postgresql://siaga112:pw@db/siaga112")
    assert not single.separate_database_owner
    assert line_role(single) is None
    assert resolve_owner_dsn(single) == resolve_dsn(single) == single.database_dsn


def test_with_an_owner_dsn_the_line_role_takes_the_password_of_the_line_dsn(
        settings: Settings) -> None:
    split = replace(settings, database_dsn="postgresql://siaga112_line:l%40pw@db/siaga112",
                    database_owner_dsn="postgresql://siaga112:o-pw@db/siaga112")
    assert line_role(split) == LineRole("siaga112_line", "l@pw")
    assert resolve_owner_dsn(split) == "postgresql://siaga112:o-pw@db/siaga112"
    by_hand = replace(split, database_dsn="host=db user=siaga112_line dbname=siaga112")
    assert line_role(by_hand) == LineRole("siaga112_line", None)  # its password left alone


def test_the_audit_log_is_only_appended_to_and_no_table_may_be_truncated() -> None:
    assert LINE_PRIVILEGES["audit_log"] == ("SELECT", "INSERT")
    granted = {p for privileges in LINE_PRIVILEGES.values() for p in privileges}
    assert granted <= {"SELECT", "INSERT", "UPDATE", "DELETE"}
    for table in ("incident_events", "call_labels", "config_versions", "config_publications"):
        assert not {"UPDATE", "DELETE"} & set(LINE_PRIVILEGES[table]), table
