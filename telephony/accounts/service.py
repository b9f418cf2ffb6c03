"""The account service: accounts, logins with throttling, sessions, and the audit log.

A login is one transaction under an advisory lock on the name typed: the failures so far are
counted, a locked name or address is refused before its password is even looked at, and a
failure is recorded before the lock is released. Parallel guesses therefore queue up and each
one sees the failures before it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg

from telephony.accounts.model import (
    ENDED_BY_RESET,
    Account,
    AccountExists,
    AccountNotFound,
    DeskHeld,
    LoginRefused,
    LoginThrottled,
    NewSession,
    Role,
    Session,
    ThrottlePolicy,
    check_not_throttled,
    check_password,
    check_role_change,
    clean_display_name,
    clean_username,
    ended_by_disable,
    ended_by_role,
    login_password,
    masked_audit,
    masks_object,
    parse_role,
    sees_caller_data,
    throttle_key,
    token_digest,
)
from telephony.accounts.passwords import PasswordHasher
from telephony.accounts.store import AccountRepository, AuditEntry, AuditPage
from telephony.db.connection import Database
from telephony.desks.phones import PhoneKind
from telephony.desks.store import DeskRepository
from telephony.settings import Settings

log = logging.getLogger("telephony.accounts")

CLI_ACTOR = "cli"
# Logins checked at once. Each holds a pooled connection while its password is hashed (a
# third of a second of CPU, by design), and those from one address wait for each other
# holding theirs: unbounded, a burst of logins (a guesser's, or a shift's) took the whole
# pool the console, the API and the incident workers share, and every logged-in operator's
# screen stalled. Two keep both cores hashing; further logins wait here, holding nothing.
LOGINS_AT_ONCE = 2
# A session's last use is written at most this often.
_TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class AccountConfig:
    """The tunables the service needs, taken from the settings."""

    session_lifetime: timedelta = timedelta(hours=12)
    throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)

    @classmethod
    def from_settings(cls, settings: Settings) -> AccountConfig:
        """The configuration described by ``settings``."""
        return cls(
            session_lifetime=timedelta(hours=settings.http_session_hours),
            throttle=ThrottlePolicy(
                max_failures=settings.login_max_failures,
                max_failures_per_address=settings.login_max_failures_per_address,
                window=timedelta(minutes=settings.login_failure_window_minutes),
                first_delay=timedelta(seconds=settings.login_delay_seconds),
            ),
        )


class AccountService:
    """Creates and changes accounts, logs people in and out, and keeps the audit log."""

    def __init__(
        self,
        database: Database,
        hasher: PasswordHasher,
        config: AccountConfig,
        repository: AccountRepository | None = None,
    ) -> None:
        self._database = database
        self._hasher = hasher
        self._config = config
        self._repo = repository or AccountRepository()
        self._desks = DeskRepository()
        self._logins = asyncio.Semaphore(LOGINS_AT_ONCE)

    # -- accounts ------------------------------------------------------------------------------

    async def create(
        self, username: str, role: Role | str, password: str, *, display_name: str = "",
        actor: str, remote_address: str = "",
    ) -> Account:
        """A new active account; :class:`AccountExists` if the name is taken."""
        name = clean_username(username)
        kind = parse_role(role)
        shown = clean_display_name(display_name)
        password_hash = await self._hasher.hash(check_password(password))

        async def work(connection: asyncpg.Connection) -> Account:
            try:
                async with connection.transaction():
                    account = await self._repo.insert_account(connection, name, shown, kind,
                                                              password_hash)
                    await self._repo.append_audit(
                        connection, actor=actor, action="account.create", object_type="account",
                        object_id=name, remote_address=remote_address,
                        detail={"role": kind.value})
                    return account
            except asyncpg.UniqueViolationError:
                raise AccountExists(name) from None

        account = await self._database.run(work)
        log.info("account %s (%s) created by %s", name, kind.value, actor)
        return account

    async def accounts(self) -> list[Account]:
        """Every account, by username."""
        return await self._database.run(self._repo.accounts)

    async def disable(self, username: str, *, actor: str, remote_address: str = "") -> Account:
        """Disable an account and end its sessions at once (and a supervisor's listening in
        still running: :mod:`telephony.supervision.rights`)."""
        return await self._set_active(username, False, actor=actor,
                                      remote_address=remote_address)

    async def enable(self, username: str, *, actor: str, remote_address: str = "") -> Account:
        """Let a disabled account log in again (with the password it had): a disabled name
        stays taken, so without this its owner could never come back under it, nor the last
        admin, once disabled."""
        return await self._set_active(username, True, actor=actor,
                                      remote_address=remote_address)

    async def _set_active(self, username: str, active: bool, *, actor: str,
                          remote_address: str) -> Account:
        name = clean_username(username)
        action = "account.enable" if active else "account.disable"

        async def work(connection: asyncpg.Connection) -> Account:
            async with connection.transaction():
                account = await self._repo.set_active(connection, name, active)
                if account is None:
                    raise AccountNotFound(name)
                # A disabled account's sessions end; an enabled one has none to keep.
                ended = 0 if active else await self._repo.delete_sessions_of(
                    connection, account.account_id, reason=ended_by_disable(account.role))
                if not active:
                    # Its listening in still running ends too (telephony/supervision/rights.py).
                    await self._repo.announce_rights(connection, name)
                await self._repo.append_audit(
                    connection, actor=actor, action=action, object_type="account",
                    object_id=name, remote_address=remote_address,
                    detail={} if active else {"sessions_ended": ended})
                return account

        account = await self._database.run(work)
        log.info("account %s %s by %s", name, "enabled" if active else "disabled", actor)
        return account

    async def set_password(
        self, username: str, password: str, *, actor: str, remote_address: str = ""
    ) -> Account:
        """Give an account a new password; its sessions end (whoever knew the old one is out)."""
        name = clean_username(username)
        password_hash = await self._hasher.hash(check_password(password))

        async def work(connection: asyncpg.Connection) -> Account:
            async with connection.transaction():
                found = await self._repo.account_with_hash(connection, name)
                if found is None:
                    raise AccountNotFound(name)
                account, _ = found
                await self._repo.set_password_hash(connection, account.account_id,
                                                   password_hash, changed=True)
                ended = await self._repo.delete_sessions_of(connection, account.account_id,
                                                            reason=ENDED_BY_RESET)
                await self._repo.append_audit(
                    connection, actor=actor, action="account.password", object_type="account",
                    object_id=name, remote_address=remote_address,
                    detail={"sessions_ended": ended})
                return account

        account = await self._database.run(work)
        log.info("password of account %s changed by %s", name, actor)
        return account

    async def rename(self, username: str, display_name: str, *, actor: str,
                     remote_address: str = "") -> Account:
        """Give an account a new display name (see :meth:`change`)."""
        return (await self.change(username, display_name=display_name, actor=actor,
                                  remote_address=remote_address)).account

    async def set_role(self, username: str, role: Role | str, *, actor: str,
                       remote_address: str = "") -> AccountChange:
        """Give an account another role (see :meth:`change`)."""
        return await self.change(username, role=role, actor=actor,
                                 remote_address=remote_address)

    async def change(self, username: str, *, display_name: str | None = None,
                     role: Role | str | None = None, actor: str, remote_address: str = ""
                     ) -> AccountChange:
        """Give an account a new display name, another role, or both, in one transaction
        (a refused role leaves the name as it was too); ``None``: kept. Each part that
        changes is one audit entry (``account.rename``, ``account.role``); what is already
        so changes nothing.

        A new name goes to the account's desk too (the queues' and the reports' name for
        it). Its sessions stay: whose they are and what they may do are unchanged.

        A new role (promoting an operator to supervisor, or demoting one) ends every
        session of the account: a page or a wallboard opened under the old role must not go
        on with its rights; the owner logs in again, under the new one. A supervisor's
        listening in still running ends as well (every line is told at commit:
        :mod:`telephony.supervision.rights`). An operator made a
        supervisor keeps the phone, to listen in on, and loses the skills (a supervisor's
        phone never joins a queue). Refused (:func:`check_role_change`): one still in
        queues or at a browser softphone becoming a supervisor, any account at a phone
        becoming an admin, and demoting the last active admin."""
        name = clean_username(username)
        shown = None if display_name is None else clean_display_name(display_name)
        new = None if role is None else parse_role(role)

        async def work(connection: asyncpg.Connection) -> AccountChange:
            async with connection.transaction():
                before = await self._repo.lock_account(connection, name)
                if before is None:
                    raise AccountNotFound(name)
                account, ended = before, 0
                dropped: Mapping[str, int] = {}
                if new is not None and new is not before.role:
                    account, ended, dropped = await self._new_role(
                        connection, before, new, actor=actor, remote_address=remote_address)
                if shown is not None and shown != before.display_name:
                    account = await self._new_name(connection, before, shown, actor=actor,
                                                   remote_address=remote_address)
                return AccountChange(account, before, ended, dropped)

        change = await self._database.run(work)
        before, after = change.before, change.account
        if after.role is not before.role:
            log.info("account %s: role %s -> %s by %s (%d sessions ended)", name,
                     before.role.value, after.role.value, actor, change.sessions_ended)
        if after.display_name != before.display_name:
            log.info("account %s renamed from %r to %r by %s", name, before.display_name,
                     after.display_name, actor)
        return change

    async def _new_role(self, connection: asyncpg.Connection, account: Account, new: Role, *,
                        actor: str, remote_address: str
                        ) -> tuple[Account, int, Mapping[str, int]]:
        held = await self._desk_held(connection, account)
        others = (await self._repo.other_active_admins(connection, account.account_id)
                  if account.role is Role.ADMIN and account.active else 1)
        check_role_change(account.username, account.role, new, held, other_admins=others)
        changed = await self._repo.set_role(connection, account.account_id, new)
        dropped: Mapping[str, int] = {}
        if held is not None and new is Role.SUPERVISOR and held.skills:
            dropped = held.skills
            await self._desks.assign(connection, account.account_id, held.interface,
                                     account.display_name, {})
        ended = await self._repo.delete_sessions_of(
            connection, account.account_id, reason=ended_by_role(account.role, new))
        # A supervisor made anything else stops listening in at once, not at their next
        # click (telephony/supervision/rights.py).
        await self._repo.announce_rights(connection, account.username)
        await self._repo.append_audit(
            connection, actor=actor, action="account.role", object_type="account",
            object_id=account.username, remote_address=remote_address,
            detail={"from": account.role.value, "to": new.value, "sessions_ended": ended,
                    "skills_dropped": dict(dropped)})
        return changed, ended, dropped

    async def _new_name(self, connection: asyncpg.Connection, account: Account, shown: str,
                        *, actor: str, remote_address: str) -> Account:
        renamed = await self._repo.set_display_name(connection, account.account_id, shown)
        desk = await self._desks.assignment(connection, account.account_id)
        if desk is not None:
            await self._desks.rename(connection, desk.interface, shown)
        await self._repo.append_audit(
            connection, actor=actor, action="account.rename", object_type="account",
            object_id=account.username, remote_address=remote_address,
            detail={"from": account.display_name, "to": shown})
        return renamed

    async def _desk_held(self, connection: asyncpg.Connection, account: Account
                         ) -> DeskHeld | None:
        desk = await self._desks.assignment(connection, account.account_id)
        if desk is None:
            return None
        phone = await self._desks.phone(connection, desk.interface)
        queues = await self._desks.memberships(connection, desk.interface)
        return DeskHeld(desk.interface, desk.skills,
                        phone is not None and phone.kind is PhoneKind.BROWSER,
                        tuple(m.queue for m in queues))

    # -- logins and sessions -------------------------------------------------------------------

    async def login(self, username: object, password: object, *, remote_address: str
                    ) -> NewSession:
        """Check a login and open a session.

        Raises :class:`LoginThrottled` while the name from this address, or the address, must
        wait (the password is not checked then; see :class:`ThrottlePolicy`),
        :class:`LoginRefused` for a wrong name or password or a disabled account. Each refusal
        is one log line.
        """
        key = throttle_key(username)
        policy = self._config.throttle

        typed = login_password(password)

        async def work(connection: asyncpg.Connection) -> NewSession | _Failed:
            async with connection.transaction():
                await self._repo.lock_login(connection, remote_address)
                by_name, by_address, now = await self._repo.failures(
                    connection, key, remote_address, policy.window)
                check_not_throttled(policy, by_name_here=by_name, by_address=by_address,
                                    now=now)
                found = await self._repo.account_with_hash(connection, key)
                stored_hash = found[1] if found is not None else None
                # Always hashed, even without an account or a usable password: the time a
                # refusal takes does not tell which names exist.
                matches = await self._hasher.verify(stored_hash, typed or "")
                if found is None or typed is None or not matches or not found[0].active:
                    # Committed with the transaction: the failure counts even though the
                    # login is refused.
                    await self._repo.record_failure(connection, key, remote_address,
                                                    policy.window)
                    return _Failed(by_name.count + 1)
                account = found[0]
                if stored_hash is not None and self._hasher.needs_rehash(stored_hash):
                    await self._repo.set_password_hash(
                        connection, account.account_id, await self._hasher.hash(typed),
                        changed=False)
                await self._repo.clear_failures(connection, key, remote_address)
                await self._repo.delete_expired_sessions(connection)
                token = secrets.token_urlsafe(32)
                session = await self._repo.insert_session(
                    connection, token_digest(token), account,
                    csrf_token=secrets.token_urlsafe(32),
                    lifetime=self._config.session_lifetime, remote_address=remote_address)
                await self._repo.append_audit(
                    connection, actor=account.username, action="login", object_type="account",
                    object_id=account.username, remote_address=remote_address, detail={})
                return NewSession(token, session)

        try:
            async with self._logins:
                outcome = await self._database.run(work)
        except LoginThrottled as exc:
            log.warning("login refused for %r from %s: throttled for %d s more", key,
                        remote_address, exc.retry_after_seconds)
            raise
        if isinstance(outcome, _Failed):
            log.warning("login refused for %r from %s: wrong username or password, or account "
                        "disabled (%d recent failures)", key, remote_address, outcome.failures)
            raise LoginRefused
        log.info("%s logged in from %s", outcome.session.account.username, remote_address)
        return outcome

    async def session(self, token: str) -> Session | None:
        """The live session a token opens; ``None`` if it is unknown, expired or its account
        is disabled."""
        digest = token_digest(token)

        async def work(connection: asyncpg.Connection) -> Session | None:
            found = await self._repo.live_session(connection, digest)
            if found is not None:
                await self._repo.touch_session(connection, digest, older_than=_TOUCH_EVERY)
            return found

        return await self._database.run(work)

    async def ended_reason(self, token: str) -> str | None:
        """Why an admin's change ended the session ``token`` opened (another role, the
        account disabled, a new password), for its owner; ``None`` for any other token."""
        digest = token_digest(token)
        return await self._database.run(lambda c: self._repo.ended_reason(c, digest))

    async def logout(self, session: Session, *, remote_address: str) -> None:
        """End a session."""

        async def work(connection: asyncpg.Connection) -> None:
            async with connection.transaction():
                await self._repo.delete_session(connection, session.token_sha256)
                await self._repo.append_audit(
                    connection, actor=session.account.username, action="logout",
                    object_type="account", object_id=session.account.username,
                    remote_address=remote_address, detail={})

        await self._database.run(work)
        log.info("%s logged out", session.account.username)

    # -- audit log -----------------------------------------------------------------------------

    async def audit(
        self, *, actor: str, action: str, object_type: str, object_id: str,
        remote_address: str, detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one entry to the audit log (raises if it cannot be written: callers that
        must not act unaudited, like playback, act only after this returned)."""

        async def work(connection: asyncpg.Connection) -> None:
            await self._repo.append_audit(
                connection, actor=actor, action=action, object_type=object_type,
                object_id=object_id, remote_address=remote_address, detail=detail or {})

        await self._database.run(work)

    async def audit_entries(
        self, reader: Role, *, object_type: str | None = None, object_id: str | None = None,
        actor: str | None = None, limit: int = 100,
    ) -> list[AuditEntry]:
        """The newest audit entries first (see :meth:`audit_page`)."""
        return (await self.audit_page(reader, object_type=object_type, object_id=object_id,
                                      actor=actor, limit=limit)).entries

    async def audit_page(
        self, reader: Role, *, object_type: str | None = None, object_id: str | None = None,
        actor: str | None = None, limit: int = 100, before: int | None = None,
    ) -> AuditPage:
        """A page of the audit log, newest first, optionally about one object or by one
        actor, older than the entry ``before``, as ``reader`` may see it: callers' data
        masked for a role that may not see it (an admin), and entries whose object is caller
        data never found by that object (the search itself would tell whether a number was
        looked up). The next page starts past the last entry read, whether or not it was
        shown (one row past the page tells whether there is one)."""

        async def work(connection: asyncpg.Connection) -> list[AuditEntry]:
            return await self._repo.audit_entries(connection, object_type=object_type,
                                                  object_id=object_id, actor=actor,
                                                  limit=limit + 1, before=before)

        entries = await self._database.run(work)
        next_before = entries[limit - 1].audit_id if len(entries) > limit else None
        entries = entries[:limit]
        if sees_caller_data(reader):
            return AuditPage(entries, next_before)
        if object_id is not None:
            entries = [entry for entry in entries if not masks_object(entry.action)]
        return AuditPage([self._masked(entry) for entry in entries], next_before)

    @staticmethod
    def _masked(entry: AuditEntry) -> AuditEntry:
        object_id, detail = masked_audit(entry.action, entry.object_id, entry.detail)
        return dataclasses.replace(entry, object_id=object_id, detail=detail)


@dataclass(frozen=True)
class AccountChange:
    """An account after :meth:`AccountService.change`, as it was before, how many of its
    sessions ended, and the skills its desk lost (an operator made a supervisor)."""

    account: Account
    before: Account
    sessions_ended: int
    skills_dropped: Mapping[str, int]

    @property
    def role_changed(self) -> bool:
        """Whether the role is another than before."""
        return self.account.role is not self.before.role


@dataclass(frozen=True)
class _Failed:
    """A refused login, returned (not raised) so the transaction commits its failure row."""

    failures: int
