"""Queues and operators' memberships, applied to the running Asterisk without dropping a call.

An admin's queue settings are validated, stored, rendered into ``queues_siaga112.conf`` and
taken by Asterisk with a ``QueueReload``; the wait before overflow goes to a live setting
file the dialplan reads every round. Waiting
callers and answered calls are not touched by either, and operators logged in with QueueAdd
stay in their queues (app_queue keeps dynamic members over a reload).

The same happens whenever a new menu is published (its queues are the ones configured) and
whenever Asterisk (re)connects (``FullyBooted``): a restarted lab comes back with the
defaults, and the stored settings are applied again. On a cluster, every node's line applies
them to its own Asterisk when they are stored through any line (telephony/cluster/
admin_sync.py): the store announces them.

A change of an operator's skills or levels, or of which queues a skill goes to, moves the
logged-in operators with QueueAdd/QueueRemove/QueuePenalty (:func:`planned_membership`); on
a cluster the other nodes follow (``changes``, telephony/cluster/member_sync.py).

A registering phone stored (a new desk, a changed interface, a renewed secret) is followed by
a PJSIP reload (:meth:`QueueService.apply_phones`), without which Asterisk never rings a phone
added after its start; a reload Asterisk does not take leaves the phone stored, tells the
admin so, and is done again at the next AMI session (:mod:`telephony.admin.sync`); on a
cluster the other nodes' lines are told to reload too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from ivr.menu import IvrMenu
from telephony.admin.asterisk import AsteriskAdmin
from telephony.admin.errors import ApplyFailed, InvalidConfig
from telephony.admin.queues import (
    Member,
    MemberChange,
    QueueDefaults,
    QueueSettings,
    Seen,
    check_operator_unchanged,
    check_unchanged,
    dropped_members,
    effective_settings,
    max_wait_key,
    member_changes,
    moved_members,
    operator_revision,
    parse_queue_settings,
    planned_membership,
    render_queues_conf,
)
from telephony.admin.store import AdminSettingsRepository, AdminTopic, announce
from telephony.ami.actions import AmiActions
from telephony.db.connection import Database, DatabaseUnavailable
from telephony.desks.operators import MAX_LEVEL, OVERFLOW_QUEUE, OperatorDesk
from telephony.desks.phones import PhoneKind
from telephony.desks.service import (
    DeskChanges,
    assign_desk,
    desk_changes,
    renew_phone_secret,
)
from telephony.desks.store import Assignment, DeskRepository, OperatorAccount
from telephony.kamailio.registrar import FrontRegistrar, end_front_registration

log = logging.getLogger("telephony.admin")


class MenuSource(Protocol):
    """The IVR menu in force (the watched menu file)."""

    def current(self) -> IvrMenu:
        """The menu now."""
        ...


@dataclass(frozen=True)
class QueueOverview:
    """Every configured queue's settings, and its members as Asterisk reports them now
    (``members`` is ``None`` when Asterisk could not be asked)."""

    queues: list[QueueSettings]
    members: list[Member] | None


def revision_of(account: OperatorAccount) -> str:
    """The :func:`operator_revision` of ``account`` as stored now."""
    return operator_revision(account.interface, account.skills,
                             None if account.phone is None else account.phone.value)


class QueueService:
    """The admin's queues and the operators' memberships on the running Asterisk."""

    def __init__(
        self, database: Database, asterisk: AsteriskAdmin, ami: AmiActions, *,
        menus: MenuSource, defaults: QueueDefaults,
        repository: AdminSettingsRepository | None = None, desks: DeskRepository | None = None,
        realm: str = "siaga112", changes: DeskChanges | None = None,
        front: FrontRegistrar | None = None,
    ) -> None:
        self._database = database
        self._asterisk = asterisk
        self._ami = ami
        self._menus = menus
        self._defaults = defaults
        self._repo = repository or AdminSettingsRepository()
        self._desks = desks or DeskRepository()
        self.realm = realm  # the SIP realm registering phones' secrets are hashed with
        self._changes = changes  # a cluster: the other nodes follow membership changes
        self._front = front  # a cluster: phones register at its SIP front, not here
        self._lock = asyncio.Lock()
        self._applied: str | None = None  # the queues include this Asterisk has loaded

    async def _stored(self) -> dict[str, QueueSettings]:
        return await self._database.run(self._repo.queue_settings)

    async def overview(self) -> QueueOverview:
        """The settings of every queue of the live menu, and who is in them."""
        queues = effective_settings(self._menus.current().known_queues, await self._stored(),
                                    self._defaults)
        try:
            members: list[Member] | None = await self._asterisk.members()
        except ApplyFailed as exc:
            log.warning("queue members unknown: %s", exc)
            members = None
        return QueueOverview(queues, members)

    async def update(self, queue: str, values: Mapping[str, object], actor: str,
                     seen: Seen | None = None) -> QueueSettings:
        """Validate and store an admin's settings for ``queue``, then apply every queue.

        A refused value changes nothing; so does a form made from settings stored over since
        (``seen``, :class:`~telephony.admin.errors.StaleSettings`; ``None``: not checked). If
        Asterisk does not take the change, :class:`ApplyFailed` says the settings are stored
        and will be applied again when Asterisk reconnects (or the admin saves again).
        """
        menu = self._menus.current()
        settings = parse_queue_settings(queue, values, {*menu.known_queues, OVERFLOW_QUEUE})

        async def work(connection: asyncpg.Connection) -> QueueSettings:
            async with connection.transaction():
                stored = await self._repo.lock_queue_settings(connection, queue)
                if seen is not None:
                    check_unchanged(queue, stored, seen)
                return await self._repo.save_queue_settings(connection, settings, actor)

        stored = await self._database.run(work)
        log.info("queue %s settings changed by %s", queue, actor)
        try:
            await self.apply(menu)
        except ApplyFailed as exc:
            raise ApplyFailed(f"Pengaturan antrean {queue} tersimpan, tetapi belum diterapkan "
                              f"di Asterisk: {exc.message}") from exc
        return stored

    async def apply(self, menu: IvrMenu | None = None) -> bool:
        """Bring Asterisk to the stored settings of ``menu``'s queues (the live menu's by
        default); returns whether app_queue was reloaded."""
        menu = menu or self._menus.current()
        async with self._lock:
            queues = effective_settings(menu.known_queues, await self._stored(), self._defaults)
            text = render_queues_conf(queues)
            reloaded = False
            if text != self._applied:
                await self._release_dropped({settings.queue for settings in queues})
                self._asterisk.write_queues_conf(text)
                await self._asterisk.reload_queues()
                self._applied = text
                reloaded = True
            for settings in queues:
                self._asterisk.write_number(max_wait_key(settings.queue),
                                            settings.max_wait_seconds)
        if reloaded:
            log.info("queues applied to Asterisk: %s", ", ".join(q.queue for q in queues))
        return reloaded

    async def _release_dropped(self, kept: Collection[str]) -> None:
        """Take the operators out of the queues about to be dropped, so the callers waiting
        there go on to all-operators now (:func:`dropped_members`). Fails open: the new
        queues are applied regardless, and such a caller then waits at most its max wait."""
        try:
            changes = dropped_members(await self._asterisk.members(), kept)
            for change in changes:
                await self._asterisk.change_member(change)
        except ApplyFailed as exc:
            log.warning("operators not taken out of the dropped queues first: %s", exc.message)
            return
        if changes:
            log.info("operators taken out of the queues the menu no longer has: %s",
                     ", ".join(sorted({f"{c.interface} {c.queue}" for c in changes})))

    def asterisk_restarted(self) -> None:
        """A new AMI session began: that Asterisk may have booted with other queues."""
        self._applied = None

    async def follow_menu(self, before: IvrMenu, menu: IvrMenu) -> list[MemberChange]:
        """Configure ``menu``'s queues and move logged-in operators to the queues their
        skills now go to (called before ``menu`` goes live)."""
        await self.apply(menu)
        return await self.reconcile(before, menu)

    async def operators(self) -> list[OperatorAccount]:
        """Every operator account with its desk (interface) and skills."""
        return await self._database.run(self._desks.operator_accounts)

    async def apply_phones(self) -> str | None:
        """Reload PJSIP so Asterisk rings the registering phones stored now. Returns ``None``,
        or, when Asterisk did not take the reload, what to tell the admin: the phones stay
        stored, and the next AMI session reloads again."""
        try:
            await self._asterisk.reload_phones()
        except ApplyFailed as exc:
            log.warning("stored phones not applied to Asterisk (PJSIP not reloaded): %s",
                        exc.message)
            return (f"Telepon tersimpan, tetapi belum diterapkan di Asterisk: {exc.message}. "
                    "Diterapkan lagi saat line tersambung kembali ke Asterisk.")
        log.info("PJSIP reloaded: Asterisk takes the stored phones")
        return None

    async def assign_operator(self, username: str, interface: str, skills: Mapping[str, Any],
                              phone: PhoneKind | None = None, expected_revision: str | None = None
                              ) -> tuple[OperatorAccount, list[MemberChange], str | None,
                                         str | None]:
        """Put an operator account at ``interface`` with exactly ``skills`` (skill -> level
        1-5); if that operator is in queues now, their queues and penalties follow at once
        (QueueAdd/QueueRemove/QueuePenalty). Returns the account, what was changed, the
        phone's new SIP secret if it had none (shown once), and, if a new secret was stored
        and Asterisk did not reload PJSIP, what to tell the admin (:meth:`apply_phones`).

        ``expected_revision`` is the :func:`operator_revision` the admin's form was made
        from (``None``: not checked): changed since, nothing is done
        (:class:`~telephony.admin.errors.StaleSettings`)."""
        for skill, level in skills.items():
            if isinstance(level, bool) or not isinstance(level, int) or not (
                    1 <= level <= MAX_LEVEL):
                raise InvalidConfig(f"Tingkat keahlian {str(skill)[:40]} harus 1-{MAX_LEVEL}.",
                                    "skills")
        current = next((a for a in await self.operators() if a.username == username), None)
        if expected_revision is not None and current is not None:  # none: assign_desk says
            check_operator_unchanged(username, revision_of(current), expected_revision)
        previous = None if current is None else current.interface
        menu = self._menus.current()
        assignment = await assign_desk(self._database, menu, username, interface, skills,
                                       realm=self.realm, phone=phone)
        # A new secret means a phone Asterisk may not know yet (a new desk, or a desk moved
        # to a new phone) or new credentials; a desk kept at a known phone needs no reload.
        # A phone's kind (desk or browser) changes its endpoint, which only a reload reads.
        phone_note = None
        if assignment.phone_secret is not None or assignment.phone_changed:
            phone_note = await self.apply_phones()
            await self._announce_phones()
        try:
            changes: list[MemberChange] = []
            if previous is not None and previous != assignment.interface:
                changes += await self._move_desk(previous, assignment.interface)
            changes += await self.reconcile(menu, menu, {assignment.interface})
        except ApplyFailed as exc:
            raise ApplyFailed("Keahlian tersimpan, tetapi antrean operator belum diubah di "
                              f"Asterisk: {exc.message}") from exc
        account = next(a for a in await self.operators() if a.interface == assignment.interface)
        return account, changes, assignment.phone_secret, phone_note

    async def _move_desk(self, previous: str, interface: str) -> list[MemberChange]:
        """An operator's desk moved to another phone: the queues the old phone is in follow
        them to the new one (:func:`moved_members`)."""
        async with desk_changes(self._changes, [previous, interface]):
            changes = moved_members(await self._asterisk.members(), previous, interface)
            for change in changes:
                await self._asterisk.change_member(change)
        if changes:
            log.info("desk moved from %s to %s with its queues: %s", previous, interface,
                     ", ".join(sorted({c.queue for c in changes})))
        return changes

    async def renew_phone_secret(self, username: str) -> tuple[Assignment, str | None]:
        """A new SIP secret for the phone at ``username``'s desk, returned once; and what to
        tell the admin if the phone's registration was not ended or PJSIP not reloaded.

        The old secret stops working, and the registration it made ends at once: a secret is
        renewed when a phone is lost or stolen, and that phone must not go on ringing with
        callers until its registration runs out. The phone registers again with the new
        secret."""
        assignment = await renew_phone_secret(self._database, username, self.realm)
        notes = []
        try:
            ended = await self._asterisk.end_registration(assignment.interface)
        except ApplyFailed as exc:
            log.warning("the registration of %s not ended after its new secret: %s",
                        assignment.interface, exc.message)
            notes.append(f"Pendaftaran telepon {assignment.interface} yang sekarang belum "
                         f"diakhiri: {exc.message}. Sandi lama tidak dapat mendaftar lagi, "
                         "tetapi telepon itu masih dapat berdering sampai pendaftarannya "
                         "habis.")
        else:
            if ended:
                log.info("the registration of %s ended (%s): it registers again with its new "
                         "secret", assignment.interface, ", ".join(ended))
        if self._front is not None and assignment.phone_secret is not None:
            front_note = await end_front_registration(self._front, assignment.interface,
                                                      self.realm, assignment.phone_secret)
            if front_note is not None:
                notes.append(front_note)
        reloaded = await self.apply_phones()
        if reloaded is not None:
            notes.append(reloaded)
        await self._announce_phones()
        return assignment, " ".join(notes) or None

    async def _announce_phones(self) -> None:
        """Tell every line a phone was stored (on a cluster each node's Asterisk must reload
        PJSIP to ring it: telephony/cluster/admin_sync.py). Not told, they still reload at
        their next AMI session; the phone stays stored."""
        try:
            await self._database.run(
                functools.partial(announce, topic=AdminTopic.PHONES))
        except DatabaseUnavailable as exc:
            log.warning("other nodes not told of the stored phone: %s", exc)

    async def reconcile(self, before: IvrMenu, now: IvrMenu,
                        interfaces: Collection[str] | None = None) -> list[MemberChange]:
        """Move logged-in operators (those of ``interfaces``, else all with a desk) to the
        membership their stored skills plan under ``now``; returns what was done."""
        book = {account.interface: account.skills for account in await self.operators()
                if account.interface is not None}
        chosen = sorted(book if interfaces is None else set(book) & set(interfaces))
        desk = OperatorDesk(self._ami, now)
        done: list[MemberChange] = []
        # On a cluster, the operators' queues here are the cluster's first, and the other
        # nodes follow what is done here.
        async with desk_changes(self._changes, chosen):
            members = await self._asterisk.members()
            logged_in = sorted({m.interface for m in members if m.dynamic})
            for interface in logged_in:
                levels = book.get(interface)
                if levels is None or interface not in chosen:
                    continue  # not a desk the console manages: leave it as it is
                joined = [m.queue for m in members if m.interface == interface and m.dynamic]
                planned = planned_membership(levels, joined, before, now,
                                             functools.partial(desk.plan, interface))
                for change in member_changes(interface, members, planned):
                    await self._asterisk.change_member(change)
                    done.append(change)
        return done
