"""The operator's desk: an operator account, the phone (Asterisk interface) it works at, the
queues of its skills, and the call in front of it.

Joining queues, leaving them and pausing go to the running Asterisk at once through AMI
(:class:`~telephony.desks.operators.OperatorDesk`); what the screen shows of them is what AMI then
reported (``queue_members``, kept by the call tracker), so the screen never claims a state
Asterisk does not have. The call in front of the operator is the one ringing there now, else
the last one answered there (it stays on screen after the caller hangs up, for the incident
and the label, until the next call rings).

Every action Asterisk carried out (join, leave, pause with its reason, resume) is written to
the audit log with the operator, their address and the queues; a refused or failed one is
not (it changed nothing, and its one log line says why).

Refusals are :class:`DeskError` with a message in Bahasa Indonesia; a refusal sent nothing to
Asterisk and changed nothing.

On a cluster every change of an operator's queues runs inside :class:`DeskChanges` (the
member sync, telephony/cluster/member_sync.py): this node's Asterisk is brought to the
cluster's memberships first, and the other nodes follow what this one then holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import asyncpg

from ivr.menu import IvrMenu
from telephony.accounts.model import Account, AccountNotFound, Role, clean_username
from telephony.accounts.store import AccountRepository
from telephony.ami.actions import AmiActionError, AmiActions, AsteriskUnavailable
from telephony.calls.legs import Leg
from telephony.calls.store import LegRepository
from telephony.core.errors import Conflict, Invalid, SiagaError
from telephony.core.text import whole_number
from telephony.db.connection import Database, DatabaseUnavailable
from telephony.db.migrate import hold_schema_lock
from telephony.desks.operators import (
    MAX_LEVEL,
    PHONE_LOST_REASON,
    OperatorDesk,
    OperatorError,
    PauseReason,
    check_interface,
    skill_queues,
)
from telephony.desks.phones import (
    BROWSER_SECRET_LENGTH,
    DESK_SECRET_LENGTH,
    PhoneKind,
    RtpTimeouts,
    new_phone_secret,
    phone_username,
)
from telephony.desks.store import Assignment, CallView, DeskRepository, Membership, Phone
from telephony.settings import Settings

log = logging.getLogger("telephony.desks.service")
_RECORDED_POLL_SECONDS = 0.05

# Who the audit log names for what the line did by itself.
LINE_ACTOR = "siaga112"
PHONE_LOST_TEXT = ("Softphone di browser tidak terhubung (browser ditutup atau jaringannya "
                   "putus); operator dikeluarkan dari antrean agar penelepon tidak "
                   "dideringkan ke telepon yang tidak ada.")


class DeskError(SiagaError):
    """A desk request that is refused; nothing was sent to Asterisk."""

    status = 400
    code = "desk_error"


class InvalidDeskInput(Invalid, DeskError):
    """A skill, level, interface or pause reason that is not valid."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field)


class NoDesk(Conflict, DeskError):
    """The account works at no interface (or is not an operator's)."""

    code = "no_desk"

    def __init__(self, username: str) -> None:
        super().__init__(f"Akun {username} belum terhubung ke telepon operator. Minta admin "
                         "menjalankan: siaga112 account desk NAMA PJSIP/...")


class DeskConflict(Conflict, DeskError):
    """The request does not fit the desk's state (pausing outside every queue ...)."""

    code = "desk_conflict"


class DeskUnavailable(AsteriskUnavailable, DeskError):
    """Asterisk did not carry out the action (no AMI session, refused, no answer)."""


class MenuSource(Protocol):
    """The IVR menu in force (a watched file): skills map to its queues."""

    def current(self) -> IvrMenu:
        """The menu now."""
        ...


class DeskChanges(Protocol):
    """On a cluster, what wraps every change of operators' queue memberships on this node's
    Asterisk so that the other nodes follow it (telephony/cluster/member_sync.py)."""

    def changing(self, interfaces: Collection[str]
                 ) -> contextlib.AbstractAsyncContextManager[None]:
        """Settle ``interfaces`` with the cluster before, announce their state after."""
        ...


def desk_changes(changes: DeskChanges | None, interfaces: Collection[str]
                 ) -> contextlib.AbstractAsyncContextManager[None]:
    """``changes.changing(interfaces)``; nothing on a single node (``changes`` is None)."""
    return contextlib.nullcontext() if changes is None else changes.changing(interfaces)


class AuditLog(Protocol):
    """The append-only audit log (``AccountService.audit``)."""

    async def audit(
        self, *, actor: str, action: str, object_type: str, object_id: str,
        remote_address: str, detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one entry; raises if it cannot be written."""
        ...


@dataclass(frozen=True)
class DeskConfig:
    """How long a ring and a finished call stay on the screen, how much history shows, and
    where browser softphones register."""

    # queues.conf rings a phone for 15 s (timeout); a ring older than this is over.
    ring_window: timedelta = timedelta(seconds=20)
    call_memory: timedelta = timedelta(hours=1)
    history_limit: int = 8
    realm: str = "siaga112"  # the SIP realm phones' digests are hashed with
    softphone_ws_url: str | None = None  # None: this site has no softphone
    softphone_ice_networks: tuple[str, ...] = ()
    # How long a join or a leave waits for the listener to store Asterisk's answer (it takes
    # milliseconds; a surge, a second or so).
    recorded_within_seconds: float = 3.0

    @classmethod
    def from_settings(cls, settings: Settings) -> DeskConfig:
        """The desks' configuration described by ``settings``."""
        return cls(realm=settings.sip_realm, softphone_ws_url=settings.live_softphone_ws_url,
                   softphone_ice_networks=settings.softphone_ice_networks)


@dataclass(frozen=True)
class SoftphoneCredentials:
    """What the desk page's softphone registers with: handed to that page once, only the
    digest of the secret is kept."""

    interface: str
    username: str
    realm: str
    secret: str
    ws_url: str
    ice_networks: tuple[str, ...]


@dataclass(frozen=True)
class DeskCall:
    """The call in front of the operator and where it stands: ringing, talking or ended."""

    call: CallView
    state: str
    # The call-back the operator is on (or last was) for ``call``: the desk shows the call it
    # calls back, so the conversation gets its incident from there as any call does.
    callback: Leg | None = None


@dataclass(frozen=True)
class DeskState:
    """Everything the operator screen shows."""

    interface: str
    skills: Mapping[str, int]
    memberships: list[Membership]
    current: DeskCall | None
    history: list[CallView]
    phone: Phone | None = None  # a phone that registers (None: one listed by hand)


def callback_is_newer(answered: CallView | None, callback: Leg) -> bool:
    """Whether the operator took ``callback`` on their phone after the last call answered at
    their desk, and it is still going on or reached the caller: it is what they are on, or
    the conversation they just had. Without this the desk showed the previous caller's call,
    and a fire reported on a call-back got no incident from the desk. One that ended without
    reaching anybody (busy, no answer) leaves the desk free, as before it was placed."""
    if callback.rang_at is None or (callback.ended_at is not None
                                    and callback.answered_at is None):
        return False
    return (answered is None or answered.answered_at is None
            or callback.rang_at > answered.answered_at)


def callback_state(leg: Leg) -> str:
    """talking (dialling the caller or speaking with them) or ended: a call-back leg on the
    operator's phone."""
    return "ended" if leg.ended_at is not None else "talking"


def call_state(call: CallView, interface: str) -> str:
    """ringing, talking or ended, for the operator at ``interface``. A call whose three-way
    call they left is ended for them, though the caller talks on with the agency: their
    phone is free, their wrap-up runs (the desk showed "Tersambung" until the caller's end,
    and offered a transfer of a call they were no longer on)."""
    if call.ended_at is not None or (call.left_at is not None and call.operator == interface):
        return "ended"
    if call.answered_at is not None and call.operator == interface:
        return "talking"
    return "ringing"


def parse_skill_levels(raw: Sequence[str]) -> dict[str, int]:
    """``["fire=5", "medical=3"]`` -> skill -> level (1-5), each skill once."""
    skills: dict[str, int] = {}
    for item in raw:
        skill, _, level = item.partition("=")
        skill = skill.strip().lower()
        number = whole_number(level.strip())
        if not skill or number is None or not 1 <= number <= MAX_LEVEL:
            raise InvalidDeskInput("skill", f"Keahlian harus berbentuk NAMA=1..{MAX_LEVEL}, "
                                            f"bukan {item[:40]!r}.")
        if skill in skills:
            raise InvalidDeskInput("skill", f"Keahlian {skill[:40]} disebut dua kali.")
        skills[skill] = number
    return skills


async def assign_desk(database: Database, menu: IvrMenu, username: str, interface: str,
                      skills: Mapping[str, int], *, realm: str | None = None,
                      new_secret: bool = False, phone: PhoneKind | None = None) -> Assignment:
    """Put an operator account at ``interface`` with exactly ``skills`` (skill -> level),
    each a skill of ``menu``; or a supervisor account at the phone they listen in on, with
    no skills. (The admin's side: ``siaga112 account desk``.)

    With the site's SIP ``realm``, the phone at ``interface`` gets a digest secret to
    register with if it has none yet, or a new one if ``new_secret``: it is returned in
    :attr:`Assignment.phone_secret`, once, and only its digest is stored.

    ``phone`` sets the phone's kind (``None``: as it was, a desk phone if new). A browser
    phone's secret is never returned: its desk page gets a fresh one each time it opens
    (:meth:`DeskService.softphone`); the one made here only creates the endpoint. A phone
    whose kind changes gets a new secret, so what the old kind knew stops working."""
    name = clean_username(username)
    try:
        check_interface(interface)
    except OperatorError as exc:
        raise InvalidDeskInput("interface", "Antarmuka harus berbentuk PJSIP/nama, "
                                             f"bukan {interface[:40]!r}.") from exc
    if phone is not None and realm is None:
        raise InvalidDeskInput("phone", "Jenis telepon hanya dapat diatur bersama realm SIP.")
    known = skill_queues(menu)
    for skill in skills:
        if skill not in known:
            raise InvalidDeskInput("skill", f"Keahlian {skill[:40]!r} tidak dikenal; "
                                            f"yang ada: {', '.join(sorted(known))}.")

    repo = DeskRepository()

    async def work(connection: asyncpg.Connection) -> tuple[str | None, bool]:
        async with connection.transaction():
            # Locked: a role change in flight (AccountService.set_role) is done first, so a
            # supervisor made now never gets an operator's skills.
            account = await AccountRepository().lock_account(connection, name)
            if account is None:
                raise AccountNotFound(name)
            # A supervisor's phone is what they listen in on (telephony.supervision); they
            # never join queues, so it carries no skills.
            if account.role is Role.SUPERVISOR and skills:
                raise InvalidDeskInput("skill", f"Akun {name} adalah supervisor: teleponnya "
                                                "tidak masuk antrean, tanpa keahlian.")
            if account.role not in (Role.OPERATOR, Role.SUPERVISOR):
                raise InvalidDeskInput("username", f"Akun {name} bukan akun operator "
                                                   "atau supervisor.")
            before = await repo.assignment(connection, account.account_id)
            try:
                await repo.assign(connection, account.account_id, interface,
                                  account.display_name, skills)
            except asyncpg.UniqueViolationError:
                raise DeskConflict(f"{interface} sudah dipakai akun lain.") from None
            if before is not None and before.interface != interface:
                # A listen-in running on the phone left behind is heard by whoever sits
                # there now: it ends at commit, as after a role change, not at the next
                # periodic check (telephony/supervision/rights.py).
                await AccountRepository().announce_rights(connection, name)
            if realm is None:
                return None, False
            current = await repo.phone(connection, interface)
            kind = phone or (current.kind if current is not None else PhoneKind.DESK)
            if account.role is Role.SUPERVISOR and kind is PhoneKind.BROWSER:
                # A browser phone registers only while its operator's desk page is open, and
                # a supervisor has none: their phone would never ring to listen in.
                raise InvalidDeskInput("phone", f"Akun {name} adalah supervisor: tanpa "
                                                "halaman meja untuk softphone di browser, "
                                                "teleponnya harus telepon meja (--phone desk).")
            changed = current is None or current.kind is not kind
            if not (new_secret or changed):
                return None, False
            browser = kind is PhoneKind.BROWSER
            made = new_phone_secret(interface, realm,
                                    length=BROWSER_SECRET_LENGTH if browser else DESK_SECRET_LENGTH)
            await repo.set_phone_secret(connection, interface, realm, made.md5_cred, kind)
            return (None if browser else made.secret), changed

    secret, changed = await database.run(work)
    log.info("account %s works at %s with skills %s%s", name, interface, dict(skills),
             "; a new phone secret was generated" if secret or changed else "")
    return Assignment(interface, dict(skills), secret, changed)


async def renew_phone_secret(database: Database, username: str, realm: str) -> Assignment:
    """A new digest secret for the phone of ``username``'s desk; the old one stops working
    at the phone's next REGISTER. Returned once in :attr:`Assignment.phone_secret`."""
    name = clean_username(username)
    repo = DeskRepository()

    async def work(connection: asyncpg.Connection) -> Assignment:
        async with connection.transaction():
            found = await AccountRepository().account_with_hash(connection, name)
            if found is None:
                raise AccountNotFound(name)
            desk = await repo.assignment(connection, found[0].account_id)
            if desk is None:
                raise NoDesk(name)
            current = await repo.phone(connection, desk.interface)
            if current is not None and current.kind is PhoneKind.BROWSER:
                raise DeskConflict(f"Telepon {desk.interface} adalah softphone di browser: "
                                   "sandinya dibuat sendiri setiap kali operator membuka "
                                   "layarnya, tidak untuk diketik.")
            phone = new_phone_secret(desk.interface, realm)
            await repo.set_phone_secret(connection, desk.interface, realm, phone.md5_cred)
            return Assignment(desk.interface, desk.skills, phone.secret)

    assignment = await database.run(work)
    log.info("account %s: a new secret for the phone at %s", name, assignment.interface)
    return assignment


async def _revoke_browser_phone(repo: DeskRepository, connection: asyncpg.Connection,
                                account_id: int, realm: str) -> str | None:
    """Replace the secret of the account's browser desk phone by one nobody knows; its
    interface, or ``None`` if its desk (if any) has no browser phone."""
    desk = await repo.assignment(connection, account_id)
    phone = None if desk is None else await repo.phone(connection, desk.interface)
    if desk is None or phone is None or phone.kind is not PhoneKind.BROWSER:
        return None
    made = new_phone_secret(desk.interface, realm, length=BROWSER_SECRET_LENGTH)
    await repo.set_phone_secret(connection, desk.interface, realm, made.md5_cred)
    return desk.interface


async def revoke_browser_phone(database: Database, username: str, realm: str
                               ) -> tuple[str, list[str]] | None:
    """What a logout does to a browser desk's phone (:meth:`DeskService.sign_out`), for an
    account disabled or given a new password from the CLI: its secret is replaced by one
    nobody knows, so a softphone holding the old one (a desk page left open, credentials
    copied out of it) cannot register again. Returns the interface and the queues it is in
    (for the caller to take it out of), or ``None`` if the account has no browser desk (a
    desk phone rings whoever sits at the desk)."""
    name = clean_username(username)
    repo = DeskRepository()

    async def work(connection: asyncpg.Connection) -> tuple[str, list[str]] | None:
        async with connection.transaction():
            found = await AccountRepository().account_with_hash(connection, name)
            if found is None:
                return None
            interface = await _revoke_browser_phone(repo, connection, found[0].account_id,
                                                    realm)
            if interface is None:
                return None
            return interface, [m.queue for m in await repo.memberships(connection, interface)]

    revoked = await database.run(work)
    if revoked is not None:
        log.info("account %s: the softphone of %s may no longer register", name, revoked[0])
    return revoked


async def grant_phone_reader(database: Database, role: str, password: str) -> bool:
    """Let Asterisk read the registering phones as ``role`` with ``password``; returns
    whether it could. Done as the schema's owner (the line's role may create no role): an
    owner without CREATEROLE cannot; one warning, and the line goes on (phones listed by hand
    and calls are unaffected)."""

    async def work(connection: asyncpg.Connection) -> None:
        async with connection.transaction():
            # A cluster's lines start together: unlocked, their GRANTs on the same objects
            # raced ("tuple concurrently updated") and the loser's line failed to start.
            await hold_schema_lock(connection)
            await DeskRepository().grant_phone_reader(connection, role, password)

    try:
        await database.run_as_owner(work)
    except asyncpg.UniqueViolationError:  # a line of an older version created it meanwhile
        return await grant_phone_reader(database, role, password)
    except asyncpg.InsufficientPrivilegeError as exc:
        log.warning("cannot create or update the role %s Asterisk reads operator phones with "
                    "(%s): registering phones will be refused until an administrator of "
                    "PostgreSQL grants CREATEROLE or creates it", role, exc)
        return False
    except asyncpg.PostgresError as exc:
        # Anything else PostgreSQL refuses here must not keep the line from taking calls:
        # only registering phones need this role.
        log.error("could not set up the role %s Asterisk reads operator phones with (%s: %s); "
                  "the line goes on, and registering phones may be refused until it is set up",
                  role, type(exc).__name__, exc)
        return False
    return True


async def set_browser_media_address(database: Database, address: str | None,
                                    front: str | None = None, *,
                                    rtp_timeouts: RtpTimeouts) -> None:
    """Tell Asterisk (through the phones' views) where browser phones' media lives: the
    site's ``softphone_media_address``, on a cluster node the SIP front desk phones are rung
    through (``host:port``), and how long a phone's call may receive no media before it is
    hung up (``softphone_rtp_timeout_seconds``, ``desk_phone_rtp_timeout_seconds`` and
    ``desk_phone_rtp_timeout_hold_seconds``), all set at every start of the line."""

    async def work(connection: asyncpg.Connection) -> None:
        await DeskRepository().set_browser_media_address(connection, address)
        await DeskRepository().set_phone_front(connection, front)
        await DeskRepository().set_rtp_timeouts(connection, rtp_timeouts)

    await database.run(work)


class DeskService:
    """The operator desks: AMI actions for the operator's queues (audited), and the
    screen's reads."""

    def __init__(self, database: Database, ami: AmiActions, menus: MenuSource,
                 audit: AuditLog, *, config: DeskConfig | None = None,
                 repository: DeskRepository | None = None,
                 changes: DeskChanges | None = None) -> None:
        self._database = database
        self._changes = changes
        self._ami = ami
        self._menus = menus
        self._audit = audit
        self._config = config or DeskConfig()
        self._repo = repository or DeskRepository()

    async def interfaces(self) -> dict[str, str]:
        """Username -> interface of every account with a desk."""
        return await self._database.run(self._repo.interfaces)

    # -- the operator's side -------------------------------------------------------------------

    async def _assignment(self, account: Account) -> Assignment:
        async def work(connection: asyncpg.Connection) -> Assignment | None:
            return await self._repo.assignment(connection, account.account_id)

        found = await self._database.run(work) if account.role is Role.OPERATOR else None
        if found is None:
            raise NoDesk(account.username)
        return found

    async def desk_of(self, account: Account) -> Assignment:
        """The desk the operator works at; :class:`NoDesk` if none (or not an operator)."""
        return await self._assignment(account)

    async def _recorded(self, interface: str, *, joined: Collection[str] = (),
                        left: Collection[str] = ()) -> None:
        """Wait, a moment at most, until the store shows ``interface`` in the queues it
        ``joined`` and out of those it ``left``. The desk reads its queues from the store,
        which the AMI listener writes from Asterisk's events a moment after Asterisk carried
        a change out: without this wait, a pause straight after a join was refused ("Masuk ke
        antrean terlebih dahulu") and a join straight after a leave re-added nothing. A store
        slower than the bound (down, say) costs the request that bound, never its change."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.recorded_within_seconds
        while True:
            try:
                stored = {m.queue for m in await self._memberships(interface)}
            except DatabaseUnavailable:
                return
            if stored.issuperset(joined) and stored.isdisjoint(left):
                return
            if loop.time() >= deadline:
                log.warning("%s: the store did not show its queue change within %g s",
                            interface, self._config.recorded_within_seconds)
                return
            await asyncio.sleep(_RECORDED_POLL_SECONDS)

    async def _memberships(self, interface: str) -> list[Membership]:
        async def work(connection: asyncpg.Connection) -> list[Membership]:
            return await self._repo.memberships(connection, interface)

        return await self._database.run(work)

    async def state(self, account: Account) -> DeskState:
        """The operator's desk: skills, queues, the call in front of them and its caller's
        recent calls."""
        desk = await self._assignment(account)
        config = self._config

        async def work(connection: asyncpg.Connection
                       ) -> tuple[list[Membership], DeskCall | None, list[CallView],
                                  Phone | None]:
            memberships = await self._repo.memberships(connection, desk.interface)
            phone = await self._repo.phone(connection, desk.interface)
            call = await self._repo.ringing_call(connection, desk.interface, config.ring_window)
            callback: Leg | None = None
            if call is None:
                call = await self._repo.answered_call(connection, desk.interface,
                                                      config.call_memory)
                callback = await LegRepository().operator_callback(
                    connection, desk.interface, config.call_memory)
                called_back = (await self._repo.calls(connection, [callback.call_id])
                               if callback is not None and callback_is_newer(call, callback)
                               else [])
                call, callback = (called_back[0], callback) if called_back else (call, None)
            history: list[CallView] = []
            if call is not None and call.caller_key is not None:
                history = await self._repo.caller_calls(connection, call.caller_key,
                                                        call.call_id, config.history_limit)
            current = None if call is None else DeskCall(
                call, call_state(call, desk.interface) if callback is None
                else callback_state(callback), callback)
            return memberships, current, history, phone

        memberships, current, history, phone = await self._database.run(work)
        return DeskState(desk.interface, desk.skills, memberships, current, history, phone)

    async def join(self, account: Account, skills: Sequence[str], *, remote_address: str
                   ) -> list[str]:
        """Join the queues of ``skills`` (some of the account's own); returns the queues
        joined now (those it was already in are left as they are)."""
        desk = await self._assignment(account)
        if not skills:
            raise InvalidDeskInput("skills", "Pilih minimal satu keahlian.")
        chosen: dict[str, int] = {}
        for skill in skills:
            if skill not in desk.skills:
                raise InvalidDeskInput("skills", f"Keahlian {skill[:40]!r} bukan keahlian "
                                                 "akun ini.")
            chosen[skill] = desk.skills[skill]
        try:
            async with desk_changes(self._changes, [desk.interface]):
                already = {m.queue for m in await self._memberships(desk.interface)}
                joined = await OperatorDesk(self._ami, self._menus.current()).log_in(
                    desk.interface, chosen, account.display_name or account.username, already)
        except OperatorError as exc:
            log.warning("%s cannot join %s: %s", account.username, sorted(chosen), exc)
            raise InvalidDeskInput("skills", "Keahlian ini tidak dipakai menu IVR saat ini; "
                                             "hubungi admin.") from exc
        except AmiActionError as exc:
            raise self._unavailable(account, "QueueAdd", exc) from exc
        log.info("%s (%s) joined %s", account.username, desk.interface, joined)
        await self._recorded(desk.interface, joined=joined)

        async def back(connection: asyncpg.Connection) -> None:
            await self._repo.clear_phone_lost(connection, desk.interface)

        await self._database.run(back)
        if joined:
            await self._audited(account, "desk.join", desk.interface, remote_address,
                                {"queues": joined, "skills": sorted(chosen)})
        return joined

    async def leave(self, account: Account, *, remote_address: str) -> list[str]:
        """Leave every queue the desk's interface is in; returns them."""
        desk = await self._assignment(account)
        queues = [m.queue for m in await self._memberships(desk.interface)]
        if not queues:
            raise DeskConflict("Anda tidak sedang berada di antrean mana pun.")
        try:
            async with desk_changes(self._changes, [desk.interface]):
                await OperatorDesk(self._ami, self._menus.current()).log_out(desk.interface,
                                                                             queues)
        except AmiActionError as exc:
            raise self._unavailable(account, "QueueRemove", exc) from exc
        log.info("%s (%s) left %s", account.username, desk.interface, queues)
        await self._recorded(desk.interface, left=queues)
        await self._audited(account, "desk.leave", desk.interface, remote_address,
                            {"queues": queues})
        return queues

    async def pause(self, account: Account, reason: str, *, remote_address: str
                    ) -> PauseReason:
        """Pause in every queue, with a reason (break, wrapup, meeting)."""
        try:
            why = PauseReason(reason)
        except ValueError:
            raise InvalidDeskInput("reason", "Alasan jeda harus istirahat, wrap-up, atau "
                                             "rapat.") from None
        desk, queues = await self._in_queues(account)
        try:
            async with desk_changes(self._changes, [desk.interface]):
                await OperatorDesk(self._ami, self._menus.current()).pause(desk.interface, why)
        except AmiActionError as exc:
            raise self._unavailable(account, "QueuePause", exc) from exc
        log.info("%s (%s) paused: %s", account.username, desk.interface, why.value)
        await self._audited(account, "desk.pause", desk.interface, remote_address,
                            {"queues": queues, "reason": why.value})
        return why

    async def resume(self, account: Account, *, remote_address: str) -> None:
        """End the pause in every queue."""
        desk, queues = await self._in_queues(account)
        try:
            async with desk_changes(self._changes, [desk.interface]):
                await OperatorDesk(self._ami, self._menus.current()).resume(desk.interface)
        except AmiActionError as exc:
            raise self._unavailable(account, "QueuePause", exc) from exc
        log.info("%s (%s) resumed", account.username, desk.interface)
        await self._audited(account, "desk.resume", desk.interface, remote_address,
                            {"queues": queues})

    # -- the browser softphone ------------------------------------------------------------------

    async def softphone(self, account: Account, *, remote_address: str
                        ) -> SoftphoneCredentials:
        """Credentials for the softphone of the operator's desk page: a new secret, whose
        digest replaces the stored one (a page opened earlier stops registering), returned
        this once. Only for a desk whose phone is the browser, on a site with a softphone."""
        desk = await self._assignment(account)
        config = self._config
        if config.softphone_ws_url is None:
            raise DeskConflict("Softphone belum disiapkan di situs ini (softphone_ws_url); "
                               "hubungi admin.")

        async def work(connection: asyncpg.Connection) -> str:
            async with connection.transaction():
                phone = await self._repo.phone(connection, desk.interface)
                if phone is None or phone.kind is not PhoneKind.BROWSER:
                    raise DeskConflict("Meja ini memakai telepon meja, bukan softphone di "
                                       "browser.")
                made = new_phone_secret(desk.interface, config.realm,
                                        length=BROWSER_SECRET_LENGTH)
                await self._repo.set_phone_secret(connection, desk.interface, config.realm,
                                                  made.md5_cred)
                return made.secret

        secret = await self._database.run(work)
        log.info("%s (%s): new softphone credentials for the desk page", account.username,
                 desk.interface)
        await self._audited(account, "desk.softphone", desk.interface, remote_address, {})
        return SoftphoneCredentials(desk.interface, phone_username(desk.interface),
                                    config.realm, secret, config.softphone_ws_url,
                                    config.softphone_ice_networks)

    async def sign_out(self, account: Account, *, remote_address: str) -> None:
        """The operator logs out of the console: a browser desk leaves its queues (nobody
        answers it any more) and its secret is replaced by one nobody knows, so the page's
        softphone cannot register again. A desk phone is left as it is: it rings on the
        desk whoever is logged in to the console. Never refuses: a logout must go through."""
        if account.role is not Role.OPERATOR:
            return
        config = self._config

        async def work(connection: asyncpg.Connection) -> tuple[str, list[str]] | None:
            async with connection.transaction():
                interface = await _revoke_browser_phone(self._repo, connection,
                                                        account.account_id, config.realm)
                if interface is None:
                    return None
                queues = [m.queue for m in await self._repo.memberships(connection,
                                                                        interface)]
                return interface, queues

        found = await self._database.run(work)
        if found is None:
            return
        interface, queues = found
        log.info("%s logged out: the softphone of %s may no longer register", account.username,
                 interface)
        if not queues:
            return
        try:
            async with desk_changes(self._changes, [interface]):
                await OperatorDesk(self._ami, self._menus.current()).log_out(interface, queues)
        except AmiActionError as exc:
            # The phone is gone with the page: the line's watcher takes it out when Asterisk
            # reports it unreachable.
            log.error("QueueRemove at logout of %s failed: %s", account.username, exc)
            return
        await self._audited(account, "desk.leave", interface, remote_address,
                            {"queues": queues, "why": "logout"})

    async def phone_lost(self, interface: str) -> list[str] | None:
        """The phone at ``interface`` has been unreachable for a while (the line's watcher,
        :mod:`telephony.desks.watch`). A browser desk is paused and taken out of every queue
        it is in, so no caller rings a page that is gone; the desk screen says why. A desk
        phone is left alone (a desk phone that reboots must not log its operator out: the
        queues do not ring it while it is unreachable). Returns the queues left, or ``None``
        if nothing was done. Raises :class:`AmiActionError` if Asterisk did not do it."""
        check_interface(interface)

        async def work(connection: asyncpg.Connection) -> list[str] | None:
            phone = await self._repo.phone(connection, interface)
            if phone is None or phone.kind is not PhoneKind.BROWSER:
                return None
            return [m.queue for m in await self._repo.memberships(connection, interface)]

        queues = await self._database.run(work)
        if not queues:
            return None
        desk = OperatorDesk(self._ami, self._menus.current())
        async with desk_changes(self._changes, [interface]):
            # The pause first: one action that silences every queue at once; the removals
            # follow.
            await self._ami.send_action({"Action": "QueuePause", "Interface": interface,
                                         "Paused": "true", "Reason": PHONE_LOST_REASON})
            await desk.log_out(interface, queues)

        async def mark(connection: asyncpg.Connection) -> None:
            await self._repo.mark_phone_lost(connection, interface, queues)

        await self._database.run(mark)
        log.warning("the softphone of %s is unreachable: paused and taken out of %s",
                    interface, queues)
        await self._audit.audit(actor=LINE_ACTOR, action="desk.phone_lost", object_type="desk",
                                object_id=interface, remote_address="",
                                detail={"queues": queues, "reason": PHONE_LOST_TEXT})
        return queues

    # -- calls as the console shows them -------------------------------------------------------

    async def calls(self, call_ids: list[str]) -> list[CallView]:
        """These calls (an incident's), in the order given."""

        async def work(connection: asyncpg.Connection) -> list[CallView]:
            return await self._repo.calls(connection, call_ids)

        return await self._database.run(work)

    # -- helpers -------------------------------------------------------------------------------

    async def _in_queues(self, account: Account) -> tuple[Assignment, list[str]]:
        """The account's desk and the queues it is in (at least one)."""
        desk = await self._assignment(account)
        queues = [m.queue for m in await self._memberships(desk.interface)]
        if not queues:
            raise DeskConflict("Masuk ke antrean terlebih dahulu.")
        return desk, queues

    async def _audited(self, account: Account, action: str, interface: str,
                       remote_address: str, detail: Mapping[str, Any]) -> None:
        # Written once Asterisk has carried the action out: the log says what happened.
        await self._audit.audit(actor=account.username, action=action, object_type="desk",
                                object_id=interface, remote_address=remote_address,
                                detail=detail)

    @staticmethod
    def _unavailable(account: Account, action: str, exc: AmiActionError) -> DeskUnavailable:
        log.error("%s for %s failed: %s", action, account.username, exc)
        return DeskUnavailable()
