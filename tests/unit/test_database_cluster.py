"""A replicated database's settings: the multi-host DSN (telephony/core/dsn.py), the checks
that refuse one that could land the line's writes on a replica, and the Patroni config a
node is rendered from the settings (telephony/db/patroni.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from telephony.asterisk.config import phone_database
from telephony.core.dsn import DsnError, dsn_hosts, multi_host_refusal, session_attrs
from telephony.db.patroni import PatroniConfigError, PatroniNode, cluster_dsn, patroni_config
from telephony.settings import Settings, SettingsError, load_settings

PAIR = ("postgresql://siaga112_line:pw@db1:5433,db2,[::1]:5434/siaga112"
        "?target_session_attrs=read-write")


def test_hosts_of_a_multi_host_uri_in_order() -> None:
    assert dsn_hosts(PAIR) == (("db1", 5433), ("db2", 5432), ("::1", 5434))
    assert session_attrs(PAIR) == "read-write"


def test_hosts_of_a_keyword_dsn() -> None:
    assert dsn_hosts("host=a,b port=6000 dbname=x") == (("a", 6000), ("b", 6000))
    assert dsn_hosts("host=a,b port=1,2 target_session_attrs=primary") == (("a", 1), ("b", 2))
    assert session_attrs("host=a,b port=1,2 target_session_attrs=primary") == "primary"
    assert dsn_hosts("dbname=x") == ()
    with pytest.raises(DsnError):
        dsn_hosts("host=a,b,c port=1,2")
    with pytest.raises(DsnError):
        dsn_hosts("postgresql://u@a:99999/x")


@pytest.mark.parametrize("dsn", ["postgresql://u@[::1/x", "host='db1 dbname=x"])
def test_a_dsn_that_cannot_be_read_is_a_clear_refusal(dsn: str) -> None:
    # It was urlsplit's or shlex's ValueError, through load_settings: every command's
    # traceback, for a bracket or a quote left open.
    with pytest.raises(DsnError, match="cannot be read"):
        dsn_hosts(dsn)
    with pytest.raises(SettingsError, match="database_dsn: cannot be read"):
        load_settings(environ={"SIAGA112_DATABASE_DSN": dsn})


def test_several_hosts_need_a_writable_target() -> None:
    assert multi_host_refusal("database_dsn", PAIR) is None
    assert multi_host_refusal("database_dsn", "postgresql://u@one/x") is None
    refusal = multi_host_refusal("database_dsn", "postgresql://u@a,b/x")
    assert refusal is not None and "target_session_attrs=read-write" in refusal
    assert multi_host_refusal("database_dsn", "postgresql://u@a,b/x?"
                              "target_session_attrs=prefer-standby") is not None


def test_settings_refuse_a_multi_host_dsn_without_target() -> None:
    with pytest.raises(SettingsError, match="database_owner_dsn lists 2 hosts"):
        load_settings(environ={"SIAGA112_DATABASE_DSN": PAIR,
                               "SIAGA112_DATABASE_OWNER_DSN": "postgresql://owner@a,b/x"})
    settings = load_settings(environ={
        "SIAGA112_DATABASE_DSN": PAIR,
        "SIAGA112_DATABASE_OWNER_DSN": PAIR.replace("siaga112_line:pw", "owner")})
    assert settings.database_dsn == PAIR


@pytest.mark.parametrize(("name", "value"), [
    ("SIAGA112_PATRONI_ETCD_HOSTS", "etcd1"),
    ("SIAGA112_PATRONI_ETCD_HOSTS", "a:2379,b:2379\nc:1"),
    ("SIAGA112_PATRONI_ETCD_HOSTS", "a:70000"),
    ("SIAGA112_PATRONI_NETWORKS", "10.0.0.0/8,nonsense"),
    ("SIAGA112_PATRONI_SCOPE", "Bad Scope"),
    ("SIAGA112_PATRONI_TTL", "9"),  # below loop_wait + 2 x retry_timeout (10)
])
def test_settings_refuse_bad_patroni_values(name: str, value: str) -> None:
    with pytest.raises(SettingsError):
        load_settings(environ={name: value})


def test_settings_read_patroni_lists() -> None:
    settings = load_settings(environ={"SIAGA112_PATRONI_ETCD_HOSTS": "e1:2379, e2:2379",
                                      "SIAGA112_PATRONI_NETWORKS": "10.1.0.0/24"})
    assert settings.patroni_etcd_hosts == ("e1:2379", "e2:2379")
    assert settings.patroni_networks == ("10.1.0.0/24",)


def node(tmp_path: Path) -> PatroniNode:
    return PatroniNode("pg1", "10.1.0.11", 5432, 8008, tmp_path / "pg1" / "data")


def test_patroni_config_of_a_node(tmp_path: Path) -> None:
    settings = replace(Settings(), secrets_dir=tmp_path / "secrets",
                       patroni_etcd_hosts=("10.1.0.1:2379",), patroni_networks=("10.1.0.0/24",))
    config = patroni_config(settings, node(tmp_path), bin_dir=Path("/usr/lib/postgresql/15/bin"))
    assert json.loads(json.dumps(config)) == config  # YAML's JSON subset: Patroni reads it
    assert config["name"] == "pg1" and config["scope"] == "siaga112"
    assert config["etcd3"] == {"hosts": ["10.1.0.1:2379"]}
    assert config["postgresql"]["listen"] == config["postgresql"]["connect_address"] \
        == "10.1.0.11:5432"
    assert config["restapi"]["listen"] == "10.1.0.11:8008"
    dcs = config["bootstrap"]["dcs"]
    # Only a replica holding every commit may be promoted: the spool forgets what committed.
    assert dcs["synchronous_mode"] is True and dcs["synchronous_mode_strict"] is False
    assert dcs["primary_start_timeout"] == 0
    assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"]) == (10, 2, 4)
    hba = config["postgresql"]["pg_hba"]
    assert "host replication replicator 10.1.0.0/24 scram-sha-256" in hba
    assert all(line.endswith("scram-sha-256") for line in hba)
    assert not any("0.0.0.0" in line or "trust" in line for line in hba)
    passwords = {role["password"] for role in config["postgresql"]["authentication"].values()}
    assert len(passwords) == 3  # superuser, replication and rewind: three secrets
    again = patroni_config(settings, node(tmp_path), bin_dir=Path("/x"))
    assert again["postgresql"]["authentication"] == config["postgresql"]["authentication"]
    assert (tmp_path / "secrets" / "patroni_superuser_password").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("name", ["pg 1", "pg1;drop", "", "x" * 64])
def test_patroni_node_names_are_plain(tmp_path: Path, name: str) -> None:
    with pytest.raises(PatroniConfigError):
        PatroniNode(name, "10.1.0.11", 5432, 8008, tmp_path)


def test_cluster_dsn_lists_every_node_and_asks_for_the_writable_one(tmp_path: Path) -> None:
    nodes = (node(tmp_path), PatroniNode("pg2", "10.1.0.12", 5432, 8008, tmp_path / "d"))
    dsn = cluster_dsn(nodes, "siaga112_line", "p@ss/word")
    assert dsn_hosts(dsn) == (("10.1.0.11", 5432), ("10.1.0.12", 5432))
    assert session_attrs(dsn) == "read-write"
    assert "p%40ss%2Fword" in dsn


def test_asterisk_reads_phones_from_every_node_on_one_port(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = replace(Settings(), secrets_dir=tmp_path,
                       database_dsn="postgresql://l@db1:5432,db2:5432/siaga112"
                                    "?target_session_attrs=read-write")
    found = phone_database(settings)
    assert (found["asterisk_db_host"], found["asterisk_db_port"]) == ("db1,db2", 5432)
    assert found["asterisk_db_name"] == "siaga112"
    other = replace(settings, database_dsn="postgresql://l@db1:5433,db2:5434/siaga112"
                                           "?target_session_attrs=read-write")
    assert not caplog.records
    found = phone_database(other)
    assert (found["asterisk_db_host"], found["asterisk_db_port"]) == ("db1", 5433)
    # Only the first node is named: said once, as the site can mend it (one port for all).
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "reach only db1:5433" in caplog.records[0].getMessage()
