"""``siaga112 account ...`` against a real PostgreSQL: the first admin is made this way."""

import asyncio
import io

import asyncpg
import pytest

from telephony.accounts import commands
from telephony.accounts.model import InvalidAccountInput
from telephony.cli import main


class Stdin(io.StringIO):
    """A piped standard input (not a terminal)."""

    def isatty(self) -> bool:
        return False


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def rows(dsn: str, query: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetch(query)
    finally:
        await connection.close()


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
    [account] = await rows(database_dsn, "SELECT * FROM accounts")
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
    audit = await rows(database_dsn, "SELECT actor, action FROM audit_log ORDER BY audit_id")
    assert [(r["actor"], r["action"]) for r in audit] == [
        ("cli", "account.create"), ("cli", "account.password"), ("cli", "account.disable")]


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
