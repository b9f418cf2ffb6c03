"""A site's configuration: the carrier's optional authentication and registration, where
Asterisk reads the registering phones, generated secrets, and the documented settings file."""

from __future__ import annotations

import hashlib
import os
import stat
import tomllib
from dataclasses import fields, replace
from pathlib import Path

import pytest

from telephony.asterisk.config import (
    CARRIER_CONF,
    CONF_DIR,
    OPERATORS_CONF,
    carrier_conf,
    install_config,
    phone_database,
)
from telephony.asterisk.errors import AsteriskSiteError
from telephony.desks.phones import digest, new_phone_secret
from telephony.lab.chroot import Lab
from telephony.secrets import (
    LAB_ASTERISK_DB_PASSWORD,
    SecretsError,
    agi_secret,
    ami_secret,
    database_dsn,
    database_owner_dsn,
    ensure_site_secrets,
    read_or_create,
)
from telephony.settings import LAB_AMI_SECRET, Settings, SettingsError, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "docker" / "siaga112.toml.example"


def site(tmp_path: Path, **values: str) -> Settings:
    return load_settings(environ={}, overrides={"site_kind": "site",
                                                "state_dir": str(tmp_path), **values})


# -- the carrier -------------------------------------------------------------------------------


def test_the_lab_carrier_is_identified_by_address_and_authenticates_nothing(
        tmp_path: Path) -> None:
    settings = replace(load_settings(environ={}), state_dir=tmp_path / "state")
    etc = tmp_path / "etc"
    install_config(settings, etc, "/srv/lab")
    pjsip = (etc / "pjsip.conf").read_text()
    assert "[carrier]\ntype = identify\nendpoint = carrier\nmatch = 127.0.0.1" in pjsip
    assert "#include pjsip_carrier.conf" in pjsip
    carrier = (etc / CARRIER_CONF).read_text()
    assert "type =" not in carrier and "identified by address" in carrier
    assert (etc / OPERATORS_CONF).is_file()


def test_a_carrier_that_challenges_our_calls_gets_credentials(tmp_path: Path) -> None:
    settings = site(tmp_path, carrier_address="203.0.113.10", carrier_username="kab-x",
                    carrier_password="rahasia-operator")
    text = carrier_conf(settings)
    assert ("[carrier-auth]\ntype = auth\nauth_type = digest\nusername = kab-x\n"
            "password = rahasia-operator\nrealm = *\n") in text
    assert "[carrier-callback](+)\noutbound_auth = carrier-auth" in text
    assert "[carrier-out](+)\noutbound_auth = carrier-auth" in text
    assert "type = registration" not in text


def test_a_carrier_that_wants_a_registration_gets_one(tmp_path: Path) -> None:
    secret = tmp_path / "carrier_password"
    secret.write_text("dari-berkas\n")
    secret.chmod(0o600)
    settings = site(tmp_path, carrier_address="203.0.113.10", carrier_sip_port="5080",
                    carrier_username="kab-x", carrier_password_file=str(secret),
                    carrier_realm="gw.example", carrier_register="true")
    text = carrier_conf(settings)
    assert "password = dari-berkas\nrealm = gw.example" in text
    for line in ("[carrier-registration]", "type = registration",
                 "server_uri = sip:203.0.113.10:5080", "client_uri = sip:kab-x@203.0.113.10",
                 "outbound_auth = carrier-auth", "expiration = 600", "line = yes",
                 "endpoint = carrier"):
        assert line in text.splitlines()


def test_carrier_settings_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    for values, message in (
            ({"carrier_username": "kab-x"}, "go together"),
            ({"carrier_register": "true"}, "carrier_register needs"),
            ({"carrier_username": "kab x", "carrier_password": "p"}, "carrier_username"),
            ({"carrier_username": "a", "carrier_password": "p",
              "carrier_password_file": "/x"}, "not both")):
        with pytest.raises(SettingsError, match=message):
            site(tmp_path, **values)
    settings = site(tmp_path, carrier_username="kab-x", carrier_password="bad;value")
    with pytest.raises(AsteriskSiteError, match="carrier password"):
        carrier_conf(settings)


# -- registering phones ------------------------------------------------------------------------


def test_asterisk_reads_the_phones_from_the_line_database_as_its_own_role(
        tmp_path: Path) -> None:
    settings = replace(load_settings(environ={}), state_dir=tmp_path,
                       database_dsn="postgresql://siaga112:pw@db.lan:6543/line")
    assert phone_database(settings) == {
        "asterisk_db_host": "db.lan", "asterisk_db_port": 6543, "asterisk_db_name": "line",
        "asterisk_db_user": "siaga112_asterisk",
        "asterisk_db_password": LAB_ASTERISK_DB_PASSWORD}
    other = replace(settings, asterisk_db_host="127.0.0.1",
                    database_dsn="host=db.lan port=5433 dbname=siaga user=x")
    assert phone_database(other)["asterisk_db_host"] == "127.0.0.1"
    assert phone_database(other)["asterisk_db_port"] == 5433
    on_site = site(tmp_path, database_dsn="postgresql://siaga112@db.lan/line")
    password = phone_database(on_site)["asterisk_db_password"]
    assert password == (tmp_path / "secrets" / "asterisk_db_password").read_text().strip()
    etc = tmp_path / "etc"
    install_config(on_site, etc, "/srv/site")
    assert f"password = {password}\n" in (etc / "res_pgsql.conf").read_text()
    assert "endpoint = realtime,ps_endpoints" in (etc / "sorcery.conf").read_text()


def test_a_desk_phone_that_dies_mid_call_is_hung_up_later_while_held(tmp_path: Path) -> None:
    """A desk phone that dies mid-call sends no BYE: Asterisk ends its call after the site's
    desk_phone_rtp_timeout_seconds of no media, or desk_phone_rtp_timeout_hold_seconds while
    held (a SIP phone may send nothing then). Hand-listed phones get it from [operator] (the
    registering ones from the views, migration 0049); the lab's sipp phones, which send no
    media, keep none."""
    settings = replace(load_settings(environ={
        "SIAGA112_DESK_PHONE_RTP_TIMEOUT_SECONDS": "40",
        "SIAGA112_DESK_PHONE_RTP_TIMEOUT_HOLD_SECONDS": "900"}), state_dir=tmp_path / "state")
    install_config(settings, tmp_path / "etc", "/srv/x")
    pjsip = (tmp_path / "etc" / "pjsip.conf").read_text()
    operator = pjsip[pjsip.index("[operator](!)"):pjsip.index("[operator-aor](!)")]
    assert "rtp_timeout = 40\n" in operator and "rtp_timeout_hold = 900\n" in operator
    defaults = load_settings(environ={})
    assert (defaults.desk_phone_rtp_timeout_seconds,
            defaults.desk_phone_rtp_timeout_hold_seconds) == (60, 600)
    lab_phones = Lab(defaults).operators_conf()
    assert lab_phones.count("rtp_timeout = 0\n") == defaults.lab_operators
    assert lab_phones.count("rtp_timeout_hold = 0\n") == defaults.lab_operators


@pytest.mark.parametrize("values", [
    {"DESK_PHONE_RTP_TIMEOUT_SECONDS": "0"},  # a dead phone's caller would wait for good
    {"DESK_PHONE_RTP_TIMEOUT_SECONDS": "4"},
    {"DESK_PHONE_RTP_TIMEOUT_SECONDS": "601"},
    {"DESK_PHONE_RTP_TIMEOUT_SECONDS": "30s"},
    {"DESK_PHONE_RTP_TIMEOUT_HOLD_SECONDS": "3601"},
    # Held no sooner than talking: a held phone sends less, never more.
    {"DESK_PHONE_RTP_TIMEOUT_SECONDS": "60", "DESK_PHONE_RTP_TIMEOUT_HOLD_SECONDS": "59"},
])
def test_desk_phone_rtp_timeouts_that_do_not_fit_are_refused(values: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="desk_phone_rtp_timeout"):
        load_settings(environ={f"SIAGA112_{name}": value for name, value in values.items()})


def test_a_phone_secret_is_kept_only_as_its_digest() -> None:
    phone = new_phone_secret("PJSIP/op2001", "siaga112")
    assert phone.username == "op2001" and len(phone.secret) == 20
    assert phone.md5_cred == hashlib.md5(
        f"op2001:siaga112:{phone.secret}".encode()).hexdigest()
    assert digest("op2001", "siaga112", phone.secret) == phone.md5_cred
    assert new_phone_secret("PJSIP/op2001", "siaga112").secret != phone.secret


# -- secrets -----------------------------------------------------------------------------------


def test_secrets_are_generated_once_private_and_reused(tmp_path: Path) -> None:
    settings = site(tmp_path)
    files = ensure_site_secrets(settings)
    assert sorted(files) == ["agi_secret", "ami_secret", "asterisk_db_password",
                             "database_line_password",
                            "database_password"]
    directory = tmp_path / "secrets"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    first = {}
    for name, path in files.items():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        first[name] = path.read_text().strip()
        assert len(first[name]) >= 32
    assert len(set(first.values())) == len(files)
    assert ami_secret(settings) == first["ami_secret"]
    assert agi_secret(settings) == first["agi_secret"]
    assert ensure_site_secrets(settings) == files
    assert {n: p.read_text().strip() for n, p in files.items()} == first
    assert not [p for p in directory.iterdir() if p.name.startswith(".")]


def test_a_secret_others_can_read_is_refused(tmp_path: Path) -> None:
    read_or_create(tmp_path, "ami_secret")
    (tmp_path / "ami_secret").chmod(0o644)
    with pytest.raises(SecretsError, match="readable by others"):
        read_or_create(tmp_path, "ami_secret")


def test_the_lab_keeps_its_ami_secret_and_a_site_refuses_it(tmp_path: Path) -> None:
    lab = replace(load_settings(environ={}), state_dir=tmp_path)
    assert ami_secret(lab) == LAB_AMI_SECRET
    assert not (tmp_path / "secrets").exists()
    with pytest.raises(SettingsError, match="lab's AMI secret is public and refused"):
        site(tmp_path, ami_secret=LAB_AMI_SECRET)
    with pytest.raises(SettingsError, match="site_kind must be lab or site"):
        load_settings(environ={"SIAGA112_SITE_KIND": "production"})
    assert ami_secret(site(tmp_path, ami_secret="sendiri-123")) == "sendiri-123"


def test_a_site_dsn_without_password_gets_the_generated_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    settings = site(tmp_path, database_dsn="postgresql://siaga112@db:5432/siaga112")
    password = read_or_create(tmp_path / "secrets", "database_password")
    assert database_dsn(settings) == f"postgresql://siaga112:{password}@db:5432/siaga112"
    written = replace(settings, database_dsn="postgresql://u:given@db/x")
    assert database_dsn(written) == "postgresql://u:given@db/x"
    lab = replace(settings, site_kind="lab")
    assert database_dsn(lab) == "postgresql://siaga112@db:5432/siaga112"
    monkeypatch.setenv("PGPASSWORD", "from-env")
    assert database_dsn(settings) == "postgresql://siaga112@db:5432/siaga112"
    assert os.environ["PGPASSWORD"] == "from-env"


def test_with_an_owner_of_its_own_the_line_and_the_owner_get_two_passwords(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    settings = site(tmp_path, database_dsn="postgresql://siaga112_line@db:5432/siaga112",
                    database_owner_dsn="postgresql://siaga112@db:5432/siaga112")
    owner = read_or_create(tmp_path / "secrets", "database_password")
    line = read_or_create(tmp_path / "secrets", "database_line_password")
    assert owner != line
    assert database_dsn(settings) == f"postgresql://siaga112_line:{line}@db:5432/siaga112"
    assert database_owner_dsn(settings) == f"postgresql://siaga112:{owner}@db:5432/siaga112"
    assert settings.separate_database_owner
    assert database_owner_dsn(replace(settings, database_owner_dsn=None)) is None


@pytest.mark.parametrize(("values", "refusal"), [
    ({"database_owner_dsn": "postgresql://siaga112@db/siaga112"}, "needs database_dsn"),
    ({"database_owner_dsn": "postgresql://siaga112@db/siaga112",
      "database_dsn": "postgresql://siaga112@db/siaga112"}, "not as database_line_user"),
    ({"database_line_user": "Line; DROP"}, "database_line_user"),
    ({"database_line_user": "siaga112_asterisk"}, "two roles"),
    ({"database_line_user": "line\n"}, "database_line_user"),
])
def test_database_roles_that_cannot_work_are_refused(
        tmp_path: Path, values: dict[str, str], refusal: str) -> None:
    with pytest.raises(SettingsError, match=refusal):
        site(tmp_path, **values)


# -- the documented settings file --------------------------------------------------------------


def test_the_example_settings_file_loads_and_names_only_known_settings() -> None:
    settings = load_settings(EXAMPLE, environ={})
    assert settings.is_site
    known = {f.name for f in fields(Settings)}
    written = set(tomllib.loads(EXAMPLE.read_text()))
    assert written <= known
    # The commented-out ones are real names too.
    commented = {line.lstrip("# ").split(" =")[0] for line in EXAMPLE.read_text().splitlines()
                 if line.startswith("# ") and " = " in line and line[2:3].islower()}
    assert commented and commented <= known, commented - known


def test_every_template_renders(tmp_path: Path) -> None:
    settings = replace(load_settings(environ={}), state_dir=tmp_path / "state")
    install_config(settings, tmp_path / "etc", "/srv/x")
    rendered = {p.name for p in (tmp_path / "etc").glob("*.conf")}
    assert {p.name for p in CONF_DIR.glob("*.conf")} <= rendered
