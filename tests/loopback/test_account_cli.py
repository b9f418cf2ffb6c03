"""``siaga112 account ...`` against a real PostgreSQL: the first admin is made this way."""

import asyncio
import io
import json
import socket
import time
from dataclasses import replace

import pytest

from ivr.menu import load_menu
from telephony.accounts import commands
from telephony.accounts.model import InvalidAccountInput, LoginRefused
from telephony.accounts.service import AccountConfig, AccountService
from telephony.ami.testing import SECRET, USERNAME, FakeAsterisk, fake_asterisk
from telephony.cli import main
from telephony.db.connection import Database
from telephony.desks.commands import desk
from telephony.desks.phones import PhoneKind, digest
from telephony.desks.service import assign_desk
from telephony.settings import ClusterNode, Settings
from tests.support.db import execute, fetch
from tests.support.net import free_port
from tests.support.web import CHEAP_HASHER, PASSWORD


class Stdin(io.StringIO):
    """A piped standard input (not a terminal)."""

    def isatty(self) -> bool:
        return False


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_create_list_password_disable(
    database_dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def cli(*argv: str, stdin: str = "") -> int:
        monkeypatch.setattr("sys.stdin", Stdin(stdin))
        # main() runs its own event loop: run it in a thread, where none is running.
        return await asyncio.to_thread(
            main, ["--set", f"database_dsn={database_dsn}", "account", *argv])

    assert await cli("create", "kepala", "--role", "admin", "--name", "Kepala Pusat",
                     stdin="kata-sandi-admin-1\n") == 0
    assert "Akun kepala (Administrator) dibuat." in capsys.readouterr().out
    [account] = await fetch(database_dsn, "SELECT * FROM accounts")
    assert account["password_hash"].startswith("$argon2id$")
    assert "kata-sandi-admin-1" not in account["password_hash"]
    assert (account["role"], account["display_name"]) == ("admin", "Kepala Pusat")

    assert await cli("create", "kepala", "--role", "admin", stdin="kata-sandi-admin-1\n") == 1
    assert capsys.readouterr().err.strip() == "siaga112: gagal: Akun kepala sudah ada."
    assert await cli("create", "op1", "--role", "operator", stdin="pendek\n") == 1
    assert "Kata sandi harus 10-256 karakter" in capsys.readouterr().err

    assert await cli("list") == 0
    assert "kepala               Administrator  aktif" in capsys.readouterr().out
    assert await cli("password", "kepala", stdin="kata-sandi-baru-22\n") == 0
    assert await cli("disable", "kepala") == 0
    assert await cli("disable", "nobody") == 1
    assert "Akun nobody tidak ditemukan." in capsys.readouterr().err
    audit = await fetch(database_dsn, "SELECT actor, action FROM audit_log ORDER BY audit_id")
    assert [(r["actor"], r["action"]) for r in audit] == [
        ("cli", "account.create"), ("cli", "account.password"), ("cli", "account.disable")]


async def test_a_disabled_account_is_enabled_again_with_its_password(
    database: Database, database_dsn: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Disabling was for good: the name stays taken (create refuses it), so an operator back
    from leave, or the only admin disabled by mistake, could never log in under it again."""
    async def cli(*argv: str, stdin: str = "") -> int:
        monkeypatch.setattr("sys.stdin", Stdin(stdin))
        return await asyncio.to_thread(
            main, ["--set", f"database_dsn={database_dsn}", "account", *argv])

    service = AccountService(database, CHEAP_HASHER, AccountConfig())
    await service.create("kepala", "admin", PASSWORD, actor="test")
    capsys.readouterr()
    assert await cli("disable", "kepala") == 0
    # The last admin: allowed, and said so.
    assert capsys.readouterr().out.splitlines()[1:] == [
        "Peringatan: tidak ada lagi admin yang aktif. Aktifkan kembali dengan siaga112 "
        "account enable kepala, atau buat yang baru dengan siaga112 account create NAMA "
        "--role admin."]
    with pytest.raises(LoginRefused):
        await service.login("kepala", PASSWORD, remote_address="10.0.0.1")
    capsys.readouterr()
    assert await cli("enable", "KEPALA") == 0
    assert "Akun kepala diaktifkan kembali" in capsys.readouterr().out
    new = await service.login("kepala", PASSWORD, remote_address="10.0.0.1")
    assert new.session.account.active
    assert await cli("enable", "nobody") == 1
    assert capsys.readouterr().err.strip() == "siaga112: gagal: Akun nobody tidak ditemukan."
    # Another admin stays active: nothing to warn of.
    await service.create("wakil", "admin", PASSWORD, actor="test")
    assert await cli("disable", "wakil") == 0
    assert capsys.readouterr().out.splitlines() == [
        "Akun wakil dinonaktifkan; semua sesinya diakhiri."]
    audit = await fetch(database_dsn, "SELECT actor, action FROM audit_log ORDER BY audit_id")
    assert [(r["actor"], r["action"]) for r in audit] == [
        ("test", "account.create"), ("cli", "account.disable"), ("cli", "account.enable"),
        ("kepala", "login"), ("test", "account.create"), ("cli", "account.disable")]


async def test_a_new_password_or_disabling_signs_the_browser_softphone_out(
    database: Database, database_dsn: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The softphone's secret was the one its desk page got when it opened: a page left open
    after the sessions ended (or credentials copied out of it) kept registering, and stayed
    in the queues taking calls, as a disabled operator or as whoever had stolen the old
    password. Now both do what a logout does: a secret nobody knows, and out of the queues."""
    async with fake_asterisk() as asterisk:
        asterisk.accepts["queueremove"] = "Removed interface from queue"

        async def cli(*argv: str, stdin: str = "") -> int:
            monkeypatch.setattr("sys.stdin", Stdin(stdin))
            return await asyncio.to_thread(
                main, ["--set", f"database_dsn={database_dsn}",
                       "--set", f"ami_port={asterisk.port}", "--set", f"ami_username={USERNAME}",
                       "--set", f"ami_secret={SECRET}", "account", *argv])

        async def secrets() -> dict[str, str]:
            found = await fetch(database_dsn, "SELECT operator, md5_cred FROM phone_secrets")
            return {r["operator"]: r["md5_cred"] for r in found}

        def removed() -> list[tuple[str, str]]:
            return [(a["queue"], a["interface"]) for a in asterisk.actions
                    if a.get("action") == "QueueRemove"]

        service = AccountService(database, CHEAP_HASHER, AccountConfig())
        for name, interface, kind in (("op1", "PJSIP/op2001", PhoneKind.BROWSER),
                                      ("op2", "PJSIP/op1002", PhoneKind.DESK)):
            await service.create(name, "operator", PASSWORD, actor="test")
            await assign_desk(database, load_menu(None), name, interface, {"fire": 5},
                              realm="siaga112", phone=kind)
        # The desk page joined its queues (as the line records them from Asterisk's events).
        await execute(database_dsn, "INSERT INTO queue_members (operator, queue, state, "
                      "paused, since) VALUES ('PJSIP/op2001', 'fire', 'idle', false, now()), "
                      "('PJSIP/op2001', 'overflow', 'idle', false, now())")
        first = await secrets()
        assert await cli("password", "op1", stdin="kata-sandi-baru-22\n") == 0
        assert capsys.readouterr().out.splitlines() == [
            "Kata sandi akun op1 diganti; semua sesinya diakhiri.",
            "Softphone PJSIP/op2001 tidak dapat mendaftar lagi.",
            "PJSIP/op2001 keluar dari antrean fire, overflow."]
        assert removed() == [("fire", "PJSIP/op2001"), ("overflow", "PJSIP/op2001")]
        second = await secrets()
        assert second["PJSIP/op2001"] != first["PJSIP/op2001"]
        # Asterisk refuses (or is away): the secret is replaced all the same, and one line
        # says the desk leaves the queues once its registration runs out.
        del asterisk.accepts["queueremove"]
        assert await cli("disable", "op1") == 0
        assert capsys.readouterr().out.splitlines()[1:] == [
            "Softphone PJSIP/op2001 tidak dapat mendaftar lagi.",
            "PJSIP/op2001 belum keluar dari antrean (QueueRemove refused: Interface not "
            "found); keluar begitu pendaftarannya habis."]
        third = await secrets()
        assert third["PJSIP/op2001"] not in (first["PJSIP/op2001"], second["PJSIP/op2001"])
        # A desk phone rings whoever sits at the desk: its secret, typed into it, stays, and
        # so does the desk in its queues.
        asked = removed()
        assert await cli("disable", "op2") == 0
        assert capsys.readouterr().out.splitlines() == [
            "Akun op2 dinonaktifkan; semua sesinya diakhiri."]
        assert third["PJSIP/op1002"] == (await secrets())["PJSIP/op1002"] == first[
            "PJSIP/op1002"]
        assert removed() == asked
    audit = await fetch(database_dsn, "SELECT actor, action, object_id, detail FROM audit_log "
                                     "WHERE action LIKE 'desk.%' OR actor = 'cli' "
                                     "ORDER BY audit_id")
    assert [(r["actor"], r["action"], r["object_id"]) for r in audit] == [
        ("cli", "account.password", "op1"), ("cli", "desk.leave", "PJSIP/op2001"),
        ("cli", "account.disable", "op1"), ("cli", "account.disable", "op2")]
    assert json.loads(audit[1]["detail"]) == {"queues": ["fire", "overflow"], "why": "password"}


def test_a_password_typed_at_the_terminal_is_asked_twice(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    typed = iter(["rahasia-sekali-1", "rahasia-sekali-2"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(typed))
    with pytest.raises(InvalidAccountInput, match="tidak sama"):
        commands.read_password(Terminal())
    monkeypatch.setattr("getpass.getpass", lambda prompt: "rahasia-sekali-1")
    assert commands.read_password(Terminal()) == "rahasia-sekali-1"
    assert commands.read_password(Stdin("dari-pipa-123\r\nlainnya")) == "dari-pipa-123"


async def test_ctrl_d_at_the_password_prompt_is_one_line_not_a_traceback(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def end_of_input(prompt: str) -> str:
        raise EOFError

    monkeypatch.setattr("getpass.getpass", end_of_input)
    monkeypatch.setattr("sys.stdin", Terminal())
    for action in (["create", "kepala", "--role", "admin"], ["password", "kepala"]):
        assert await asyncio.to_thread(
            main, ["--set", f"database_dsn={database_dsn}", "account", *action]) == 1
        assert capsys.readouterr().err == "siaga112: gagal: Kata sandi tidak dimasukkan.\n"
    assert await fetch(database_dsn, "SELECT * FROM accounts") == []


async def test_desk_puts_an_operator_at_a_phone_with_skills(
    database_dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fake_asterisk() as asterisk:
        asterisk.accepts["reload"] = "Module Reloaded"
        await desk_scenario(database_dsn, asterisk, capsys, monkeypatch)


async def desk_scenario(database_dsn: str, asterisk: FakeAsterisk,
                        capsys: pytest.CaptureFixture[str],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    async def cli(*argv: str, stdin: str = "") -> int:
        monkeypatch.setattr("sys.stdin", Stdin(stdin))
        return await asyncio.to_thread(
            main, ["--set", f"database_dsn={database_dsn}", "--set", f"ami_port={asterisk.port}",
                   "--set", f"ami_username={USERNAME}", "--set", f"ami_secret={SECRET}",
                   "account", *argv])

    def reloads() -> list[dict[str, str]]:
        return [a for a in asterisk.actions if a.get("action") == "Reload"]

    for name, role in (("op1", "operator"), ("op2", "operator"), ("spv", "supervisor")):
        assert await cli("create", name, "--role", role, stdin="kata-sandi-panjang\n") == 0
    capsys.readouterr()
    assert await cli("desk", "op1", "PJSIP/op1001", "--skill", "fire=5",
                     "--skill", "general=2") == 0
    shown = capsys.readouterr().out.strip().splitlines()
    assert shown[0] == "Akun op1 bekerja di PJSIP/op1001; keahlian: fire 5, general 2."
    # The phone's SIP secret, this once; kept only as its digest.
    assert shown[1].startswith("Telepon PJSIP/op1001 mendaftar (REGISTER) dengan nama "
                               "pengguna op1001, realm siaga112, sandi: ")
    secret = shown[1].rsplit(" ", 1)[1]
    assert len(shown) == 3  # and nothing says the phone is pending: PJSIP was reloaded
    stored = await fetch(database_dsn, "SELECT realm, md5_cred FROM phone_secrets")
    assert [tuple(r) for r in stored] == [("siaga112", digest("op1001", "siaga112", secret))]
    # The new phone made Asterisk reload PJSIP (without it the queues would never ring it).
    assert [(a["action"], a["module"]) for a in reloads()] == [("Reload", "res_pjsip.so")]
    assert await cli("desk", "op1", "PJSIP/op1001", "--skill", "medical=4") == 0  # replaces
    assert "sandi" not in capsys.readouterr().out  # the phone keeps its secret
    assert len(reloads()) == 1  # a phone Asterisk knows: no reload
    # Asterisk refuses the reload (a manager.conf without the system class): the new secret
    # is stored and shown, and one line says Asterisk has not taken it yet.
    del asterisk.accepts["reload"]
    assert await cli("desk", "op1", "PJSIP/op1001", "--skill", "medical=4",
                     "--new-secret") == 0
    out = capsys.readouterr().out
    assert secret not in out and "sandi: " in out
    assert out.strip().splitlines()[-1] == (
        "Telepon tersimpan, tetapi belum diterapkan di Asterisk (Reload refused: Interface "
        "not found); diterapkan saat line tersambung kembali ke Asterisk.")
    assert len(reloads()) == 2
    renewed = await fetch(database_dsn, "SELECT md5_cred FROM phone_secrets")
    assert [r["md5_cred"] for r in renewed] != [r["md5_cred"] for r in stored]
    skills = await fetch(database_dsn, "SELECT operator, skill, level FROM operator_skills")
    assert [tuple(r) for r in skills] == [("PJSIP/op1001", "medical", 4)]
    refusals = {
        ("op2", "PJSIP/op1001", "fire=5"): "PJSIP/op1001 sudah dipakai akun lain.",
        ("spv", "PJSIP/op1009", "fire=5"): "Akun spv adalah supervisor: teleponnya tidak "
                                           "masuk antrean, tanpa keahlian.",
        ("op2", "SIP/op1002", "fire=5"): "Antarmuka harus berbentuk PJSIP/nama",
        ("op2", "PJSIP/op1002", "plumbing=5"): "Keahlian 'plumbing' tidak dikenal",
        ("op2", "PJSIP/op1002", "fire=9"): "Keahlian harus berbentuk NAMA=1..5",
        ("nobody", "PJSIP/op1002", "fire=5"): "Akun nobody tidak ditemukan.",
    }
    for (name, interface, skill), message in refusals.items():
        assert await cli("desk", name, interface, "--skill", skill) == 1
        assert message in capsys.readouterr().err
    desks = await fetch(database_dsn, "SELECT operator FROM account_operators")
    assert [r["operator"] for r in desks] == ["PJSIP/op1001"]

    # The desk's phone becomes the browser: no secret to type (its page makes its own), the
    # old one stops working, and Asterisk reloads PJSIP to ring a WebRTC endpoint.
    asterisk.accepts["reload"] = "Module Reloaded"
    assert await cli("desk", "op1", "PJSIP/op1001", "--skill", "medical=4",
                     "--phone", "browser") == 0
    out = capsys.readouterr().out
    assert "softphone di browser" in out and "sandi: " not in out
    browser = await fetch(database_dsn, "SELECT kind, md5_cred FROM phone_secrets")
    assert [r["kind"] for r in browser] == ["browser"]
    assert browser[0]["md5_cred"] not in [r["md5_cred"] for r in renewed]
    assert len(reloads()) == 3
    with pytest.raises(SystemExit) as refused:  # argparse refuses an unknown kind
        await cli("desk", "op1", "PJSIP/op1001", "--skill", "medical=4", "--phone", "webrtc;x")
    assert refused.value.code == 2 and "invalid choice" in capsys.readouterr().err
    assert [r["kind"] for r in await fetch(database_dsn, "SELECT kind FROM phone_secrets")] == [
        "browser"]
    # A supervisor's phone (to listen in on operators' calls): no skills, a secret all the same.
    # Not the browser: a supervisor has no desk page for it to register from.
    assert await cli("desk", "spv", "PJSIP/sup01", "--phone", "browser") == 1
    assert ("Akun spv adalah supervisor: tanpa halaman meja untuk softphone di browser, "
            "teleponnya harus telepon meja (--phone desk).") in capsys.readouterr().err
    assert await fetch(database_dsn, "SELECT operator FROM account_operators "
                                    "WHERE operator = 'PJSIP/sup01'") == []
    assert await cli("desk", "spv", "PJSIP/sup01") == 0
    shown = capsys.readouterr().out.strip().splitlines()
    assert shown[0] == "Akun spv bekerja di PJSIP/sup01; keahlian: -."
    assert shown[1].startswith("Telepon PJSIP/sup01 mendaftar (REGISTER) dengan nama pengguna "
                               "sup01, ")
    skills = await fetch(database_dsn, "SELECT skill FROM operator_skills "
                                      "WHERE operator = 'PJSIP/sup01'")
    assert skills == []


async def test_rename_and_role_change_an_account_from_the_command_line(
    database: Database, database_dsn: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without them an operator's name, typed wrong at create, stayed wrong for good, and an
    operator made a supervisor needed a second account (with a second phone)."""
    async def cli(*argv: str) -> int:
        monkeypatch.setattr("sys.stdin", Stdin(""))
        return await asyncio.to_thread(
            main, ["--set", f"database_dsn={database_dsn}", "account", *argv])

    service = AccountService(database, CHEAP_HASHER, AccountConfig())
    await service.create("op1", "operator", PASSWORD, actor="test")
    await assign_desk(database, load_menu(None), "op1", "PJSIP/op1001", {"fire": 5})
    session = await service.login("op1", PASSWORD, remote_address="10.0.0.1")
    assert await cli("rename", "op1", "Budi Santoso") == 0
    assert capsys.readouterr().out == "Nama tampilan akun op1: Budi Santoso.\n"
    assert await service.session(session.token) is not None  # a name ends no session
    assert await cli("role", "op1", "supervisor") == 0
    assert capsys.readouterr().out.splitlines() == [
        "Akun op1: peran Operator -> Supervisor; semua sesinya diakhiri (masuk lagi dengan "
        "peran baru).",
        "Keahlian fire dilepas: telepon supervisor hanya untuk mendengarkan, tidak masuk "
        "antrean."]
    assert await service.session(session.token) is None
    assert await cli("role", "op1", "supervisor") == 0
    assert "sudah berperan Supervisor" in capsys.readouterr().out
    # Refused in one line: an account at a phone is no admin's.
    assert await cli("role", "op1", "admin") == 1
    assert capsys.readouterr().err.strip() == (
        "siaga112: gagal: Akun op1 bekerja di telepon PJSIP/op1001; admin tidak memakai "
        "telepon dan tidak melihat data penelepon. Buat akun admin tersendiri.")
    audit = await fetch(database_dsn, "SELECT actor, action FROM audit_log "
                                      "WHERE actor = 'cli' ORDER BY audit_id")
    assert [r["action"] for r in audit] == ["account.rename", "account.role"]


async def test_a_new_secret_on_a_cluster_asks_the_front_and_no_ami(
        settings: Settings, database_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    # The Docker cluster's admin container: no Asterisk (nothing at its AMI port), the phones
    # registered at the front. The command waited 10 s for that AMI before the front's note.
    database = Database(replace(settings, database_dsn=database_dsn))
    try:
        await AccountService(database, CHEAP_HASHER, AccountConfig()).create(
            "sari", "operator", PASSWORD, actor="test", display_name="Sari")
    finally:
        await database.close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as front:  # a front that is silent
        front.bind(("127.0.0.1", 0))
        admin = replace(settings, database_dsn=database_dsn, asterisk_systemname=None,
                        ami_port=free_port(), kamailio_host="127.0.0.1",
                        kamailio_port=front.getsockname()[1], cluster_nodes=(
                            ClusterNode("node1", "127.0.0.1", 5060, 4573),
                            ClusterNode("node2", "127.0.0.2", 5060, 4573)))
        assert await desk(admin, "sari", "PJSIP/op1001", ["fire=5"]) == 0
        capsys.readouterr()
        started = time.monotonic()
        assert await desk(admin, "sari", "PJSIP/op1001", ["fire=5"], new_secret=True) == 0
        took = time.monotonic() - started
        asked, _ = front.recvfrom(65535)
    out = capsys.readouterr().out
    assert asked.startswith(b"REGISTER ") and b"Expires: 0" in asked
    assert "Pendaftaran telepon PJSIP/op1001 di front SIP belum diakhiri" in out
    assert "yang sekarang belum diakhiri" not in out  # no AMI asked
    assert took < 5  # the front's 2 s, not the AMI's 10 s before it
