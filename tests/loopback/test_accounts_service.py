"""The account service on a real PostgreSQL: sessions, throttling under parallel guesses,
hash upgrades, and the audit log that cannot be rewritten."""

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from telephony.accounts.model import LoginRefused, LoginThrottled, Role, ThrottlePolicy
from telephony.accounts.passwords import PasswordHasher
from telephony.accounts.service import AccountConfig, AccountService
from telephony.db.connection import Database
from tests.support.ami import eventually
from tests.support.db import execute, fetch

PASSWORD = "kata-sandi-rahasia-112"
CHEAP = PasswordHasher(time_cost=1, memory_cost_kib=64, parallelism=1)


def service(database: Database, hasher: PasswordHasher = CHEAP,
            throttle: ThrottlePolicy | None = None) -> AccountService:
    return AccountService(database, hasher, AccountConfig(throttle=throttle or ThrottlePolicy()))


async def test_parallel_guesses_each_see_the_failures_before_them(database: Database) -> None:
    accounts = service(database, throttle=ThrottlePolicy(
        max_failures=3, max_failures_per_address=100, first_delay=timedelta(minutes=5)))
    await accounts.create("op1", "operator", PASSWORD, actor="test")
    results = await asyncio.gather(
        *(accounts.login("op1", f"tebakan-{n}", remote_address="10.0.0.9") for n in range(8)),
        return_exceptions=True)
    assert sum(isinstance(r, LoginRefused) for r in results) == 3
    assert sum(isinstance(r, LoginThrottled) for r in results) == 5


async def test_parallel_guesses_under_many_names_from_one_address_are_limited(
        database: Database) -> None:
    # Seen: 29 of 40 parallel tries got through a limit of 20, when only the name was locked.
    accounts = service(database, throttle=ThrottlePolicy(
        max_failures=5, max_failures_per_address=20, first_delay=timedelta(minutes=5)))
    results = await asyncio.gather(
        *(accounts.login(f"nama{n}", "tebakan-salah", remote_address="10.0.0.9")
          for n in range(40)), return_exceptions=True)
    assert sum(isinstance(r, LoginRefused) for r in results) == 20
    assert sum(isinstance(r, LoginThrottled) for r in results) == 20


class HeldHasher(PasswordHasher):
    """Checks passwords only once the test lets them go: logins caught mid-check."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost_kib=64, parallelism=1)
        self.checking = 0
        self.release = asyncio.Event()

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        self.checking += 1
        await self.release.wait()
        return await super().verify(stored_hash, password)


async def test_a_flood_of_logins_leaves_the_database_to_everyone_else(
        database: Database) -> None:
    """Each login holds a pooled connection while its password is hashed (a third of a second
    each here), and those from one address wait for each other holding theirs: a burst of
    logins, a guesser's or a shift's, took every connection of the pool the console, the API
    and the incident workers share, and every logged-in operator's screen stalled, then was
    refused (503), until the burst was through."""
    hasher = HeldHasher()
    accounts = service(database, hasher, ThrottlePolicy(max_failures=100,
                                                        max_failures_per_address=100))
    await accounts.create("op1", "operator", PASSWORD, actor="test")
    hasher.release.set()
    working = await accounts.login("op1", PASSWORD, remote_address="10.0.0.1")
    hasher.release.clear()
    guesses = [asyncio.ensure_future(accounts.login(
        f"nama{n}", "tebakan-salah", remote_address=f"203.0.113.{n % 3}")) for n in range(30)]
    try:
        await eventually(lambda: hasher.checking > 1)
        # The operator who is logged in goes on working meanwhile.
        assert await asyncio.wait_for(accounts.session(working.token), timeout=2) is not None
    finally:
        hasher.release.set()
        results = await asyncio.gather(*guesses, return_exceptions=True)
    assert all(isinstance(r, LoginRefused) for r in results), results


async def test_guesses_from_elsewhere_never_keep_the_owner_out(database: Database) -> None:
    accounts = service(database, throttle=ThrottlePolicy(
        max_failures=3, max_failures_per_address=100, first_delay=timedelta(minutes=5)))
    await accounts.create("admin1", "admin", PASSWORD, actor="test")
    for _ in range(10):
        with pytest.raises((LoginRefused, LoginThrottled)):
            await accounts.login("admin1", "tebakan-salah", remote_address="203.0.113.7")
    # The guesser waits ...
    with pytest.raises(LoginThrottled):
        await accounts.login("admin1", PASSWORD, remote_address="203.0.113.7")
    # ... the admin, at their own desk, does not, and their login leaves the guesser waiting.
    await accounts.login("admin1", PASSWORD, remote_address="10.0.0.20")
    with pytest.raises(LoginThrottled):
        await accounts.login("admin1", PASSWORD, remote_address="203.0.113.7")
    # The admin's own typos slow only the admin's own address, and a login forgets them.
    for _ in range(2):
        with pytest.raises(LoginRefused):
            await accounts.login("admin1", "salah-ketik", remote_address="10.0.0.20")
    await accounts.login("admin1", PASSWORD, remote_address="10.0.0.20")
    for _ in range(2):
        with pytest.raises(LoginRefused):
            await accounts.login("admin1", "salah-ketik", remote_address="10.0.0.20")


async def test_a_new_password_lets_a_locked_out_owner_in_at_once(database: Database) -> None:
    """An operator who forgot the password and locked their name out asks the admin for a
    new one: it works at once, not once the lockout (up to the window, an hour) has run out.
    Failures before it were not at it: the name's count starts again."""
    accounts = service(database, throttle=ThrottlePolicy(
        max_failures=3, max_failures_per_address=100, first_delay=timedelta(minutes=5)))
    await accounts.create("op1", "operator", PASSWORD, actor="test")
    for _ in range(3):
        with pytest.raises(LoginRefused):
            await accounts.login("op1", "lupa-sandinya", remote_address="10.0.0.9")
    with pytest.raises(LoginThrottled):
        await accounts.login("op1", PASSWORD, remote_address="10.0.0.9")
    await accounts.set_password("op1", "kata-sandi-baru-sekali", actor="admin")
    for _ in range(2):
        with pytest.raises(LoginRefused):
            await accounts.login("op1", "lupa-lagi", remote_address="10.0.0.9")
    new = await accounts.login("op1", "kata-sandi-baru-sekali", remote_address="10.0.0.9")
    assert await accounts.session(new.token) is not None


async def test_a_weaker_hash_is_upgraded_at_login_without_changing_the_password_date(
    database: Database, database_dsn: str
) -> None:
    await service(database).create("op1", "operator", PASSWORD, actor="test")
    stronger = PasswordHasher(time_cost=2, memory_cost_kib=128, parallelism=1)
    accounts = service(database, stronger)
    before = await accounts.accounts()
    new = await accounts.login("op1", PASSWORD, remote_address="10.0.0.9")
    connection = await asyncpg.connect(database_dsn)
    try:
        stored = await connection.fetchval("SELECT password_hash FROM accounts")
    finally:
        await connection.close()
    assert not stronger.needs_rehash(stored) and CHEAP.needs_rehash(stored)
    assert (await accounts.accounts())[0].password_changed_at == before[0].password_changed_at
    assert await accounts.session(new.token) is not None


async def test_sessions_end_when_they_expire_or_the_password_changes(
    database: Database, database_dsn: str, database_owner_dsn: str
) -> None:
    accounts = service(database)
    await accounts.create("op1", "operator", PASSWORD, actor="test")
    first = await accounts.login("op1", PASSWORD, remote_address="10.0.0.9")
    second = await accounts.login("op1", PASSWORD, remote_address="10.0.0.9")
    await execute(database_dsn, "UPDATE sessions SET expires_at = now() - interval '1 second' "
                                f"WHERE token_sha256 = '{first.session.token_sha256}'")
    assert await accounts.session(first.token) is None
    assert await accounts.session(second.token) is not None
    await accounts.set_password("op1", "kata-sandi-baru-sekali", actor="test")
    assert await accounts.session(second.token) is None
    with pytest.raises(LoginRefused):
        await accounts.login("op1", PASSWORD, remote_address="10.0.0.9")
    # Its owner is told why (an expired session needs no words), until the session would
    # have expired: then it is forgotten with the expired sessions.
    assert await accounts.ended_reason(second.token) == (
        "Sesi Anda diakhiri: kata sandi akun Anda diganti. Masuk dengan kata sandi baru.")
    assert await accounts.ended_reason(first.token) is None
    await execute(database_owner_dsn, "UPDATE ended_sessions SET expires_at = now()")
    assert await accounts.ended_reason(second.token) is None
    await accounts.login("op1", "kata-sandi-baru-sekali", remote_address="10.0.0.9")
    assert await fetch(database_dsn, "SELECT * FROM ended_sessions") == []


async def test_a_disabled_supervisor_is_told_why_their_session_ended(
        database: Database) -> None:
    accounts = service(database)
    await accounts.create("spv1", "supervisor", PASSWORD, actor="test")
    await accounts.create("op1", "operator", PASSWORD, actor="test")
    supervisor = await accounts.login("spv1", PASSWORD, remote_address="10.0.0.9")
    operator = await accounts.login("op1", PASSWORD, remote_address="10.0.0.9")
    await accounts.disable("spv1", actor="admin1")
    await accounts.disable("op1", actor="admin1")
    assert await accounts.ended_reason(supervisor.token) == (
        "Sesi Anda diakhiri: akun Anda dinonaktifkan oleh admin. Mendengarkan panggilan yang "
        "sedang berjalan juga dihentikan.")
    assert await accounts.ended_reason(operator.token) == (
        "Sesi Anda diakhiri: akun Anda dinonaktifkan oleh admin.")


async def test_the_audit_log_is_append_only(database: Database, database_dsn: str,
                                           database_owner_dsn: str) -> None:
    accounts = service(database)
    await accounts.audit(actor="sup1", action="recording.play", object_type="recording",
                         object_id="7", remote_address="10.0.0.9", detail={"range": None})
    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log",
                      "TRUNCATE audit_log"):
        # The line's role is not granted it; its owner is refused by the triggers.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await execute(database_dsn, statement)
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await execute(database_owner_dsn, statement)
    [entry] = await accounts.audit_entries(Role.SUPERVISOR, object_type="recording", object_id="7")
    assert (entry.actor, entry.action, dict(entry.detail)) == (
        "sup1", "recording.play", {"range": None})
