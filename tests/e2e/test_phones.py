"""A registering operator phone against the real Asterisk lab: the secret generated when an
admin assigns the desk registers (digest, 200) and a wrong one is refused; a new secret
takes over at once, and the old one stops working. Asterisk reads the phone from the line's
database through PJSIP realtime (asterisk-conf/sorcery.conf) as the read-only role. A device
on the phones' network cannot pass for the carrier by its From user."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ivr.menu import load_menu
from telephony.db.connection import Database
from telephony.desks import commands as desk_commands
from telephony.desks.service import assign_desk, grant_phone_reader, renew_phone_secret
from telephony.lab import sipp
from telephony.lab.chroot import Lab
from telephony.secrets import asterisk_db_password
from telephony.settings import Settings
from tests.support.db import fetch
from tests.support.net import own_lab
from tests.support.web import PASSWORD, make_context

pytestmark = pytest.mark.e2e

BASE = Settings(
    **own_lab("phones-test"),
    http_port=0,
    lab_operators=2,
)
PHONE = "PJSIP/op2001"
PHONE_HOST = "127.0.0.2"  # where sipp.phone registers from: not the carrier's address


@pytest.fixture(scope="module")
def base_settings() -> Settings:
    return BASE


@pytest.fixture(scope="module")
async def database(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings)
    # As the line does at start: the role Asterisk reads the phones with.
    assert await grant_phone_reader(database, settings.asterisk_db_user,
                                    asterisk_db_password(settings))
    yield database
    await database.close()


@pytest.fixture(scope="module")
async def lab(settings: Settings, database: Database) -> AsyncIterator[Lab]:
    async with Lab(settings) as lab:
        yield lab


async def register(settings: Settings, secret: str, *, registered: bool,
                   user: str = "op2001") -> sipp.SippResult:
    async with sipp.phone(settings.sip_host, settings.sip_port, user, secret,
                          registered=registered, trace_messages=True) as uac:
        result = await uac.wait()
        assert result.ok, f"{result}\n{uac.messages}"
        return result


async def test_a_phone_registers_with_the_secret_of_its_desk(
        lab: Lab, settings: Settings, database: Database) -> None:
    await make_context(settings, database).accounts.create(
        "wati", "operator", PASSWORD, actor="test", display_name="Wati")
    desk = await assign_desk(database, load_menu(settings.menu_file), "wati", PHONE,
                             {"medical": 5}, realm=settings.sip_realm)
    secret = desk.phone_secret
    assert secret is not None
    # Only the digest is kept.
    rows = await fetch(settings.database_dsn or "", "SELECT * FROM phone_secrets")
    assert [r["operator"] for r in rows] == [PHONE]
    assert secret not in repr([dict(r) for r in rows])

    await register(settings, secret, registered=True)
    contacts = await lab.wait_cli("pjsip show contacts", lambda out: "op2001/sip:" in out)
    assert "op2001/sip:op2001@127.0.0.2" in contacts
    # One character off (never the same one: a secret ending in "x" failed this once).
    await register(settings, secret[:-1] + ("y" if secret.endswith("x") else "x"),
                   registered=False)

    # Assigning the desk again keeps the secret; a new one replaces it at once.
    again = await assign_desk(database, load_menu(settings.menu_file), "wati", PHONE,
                              {"medical": 4}, realm=settings.sip_realm)
    assert again.phone_secret is None
    renewed = await renew_phone_secret(database, "wati", settings.sip_realm)
    assert renewed.phone_secret is not None
    await register(settings, secret, registered=False)
    await register(settings, renewed.phone_secret, registered=True)


async def test_a_renewed_secret_ends_the_phones_registration_at_once(
        lab: Lab, settings: Settings, database: Database,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A secret is renewed when a phone is lost or stolen; the old secret could not register
    again, but the registration it had made went on (Asterisk kept the contact until it
    expired: an hour, a phone asking so), and the queues rang that phone with callers. Now
    the registration ends at once; the phone registers again with the new secret."""
    await make_context(settings, database).accounts.create(
        "tono", "operator", PASSWORD, actor="test")
    desk = await assign_desk(database, load_menu(settings.menu_file), "tono", "PJSIP/op2002",
                             {"medical": 5}, realm=settings.sip_realm)
    assert desk.phone_secret is not None
    await register(settings, desk.phone_secret, registered=True, user="op2002")
    await lab.wait_cli("pjsip show contacts", lambda out: "op2002/sip:" in out)
    capsys.readouterr()
    assert await desk_commands.desk(settings, "tono", "PJSIP/op2002", ["medical=5"],
                                    new_secret=True) == 0
    out = capsys.readouterr().out
    assert "belum" not in out, out  # ended, and reloaded
    renewed = out.split("sandi: ", 1)[1].split()[0]
    # Gone at once: not a minute later, when a re-REGISTER would have been refused.
    contacts = await lab.acli("pjsip show contacts")
    assert "op2002/sip:" not in contacts, contacts
    await lab.wait_cli("pjsip show endpoint op2002", lambda out: "Unavailable" in out)
    await register(settings, desk.phone_secret, registered=False, user="op2002")
    await register(settings, renewed, registered=True, user="op2002")
    await lab.wait_cli("pjsip show contacts", lambda out: "op2002/sip:" in out)


async def test_a_device_calling_in_the_carriers_name_is_challenged_not_a_call(
        lab: Lab, settings: Settings) -> None:
    """Anyone on the phones' network (a desk phone, a scanner) sending an INVITE with the
    From user ``carrier`` was taken for the carrier by that name (Asterisk identifies an
    endpoint by its From user unless told otherwise), unauthenticated: an emergency call into
    the queues with whatever caller number its P-Asserted-Identity claimed. The carrier is
    known by its address alone: from anywhere else the INVITE is challenged (401), as any
    unknown device's is."""
    assert settings.carrier_address != PHONE_HOST
    async with sipp.caller(settings.sip_host, settings.sip_port, caller_id="carrier",
                           asserted_id="081299990000", host=PHONE_HOST, talk_seconds=1,
                           timeout=15, trace_messages=True) as run:
        result = await run.wait()
        messages = run.messages
    assert result.failed == 1 and result.successful == 0, f"{result}\n{messages}"
    assert "SIP/2.0 401" in messages and "SIP/2.0 200" not in messages, messages
