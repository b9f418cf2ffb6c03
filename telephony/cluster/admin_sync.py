"""A cluster node's line keeps its own Asterisk and files on what an admin stored through any
node's line (issue 15): the queue settings, the published IVR menu and screening versions, the
registering phones, the dispatch targets and shifts.

An admin's change is made through one line, which applies it to its own node as on a single
node, and stores it; the store announces it on ``siaga112_admin`` (the payload names what
changed: :class:`~telephony.admin.store.AdminTopic`). Every line LISTENs there
(:class:`~telephony.cluster.listening.ChannelListener`) and brings its own node to what is
stored, idempotently:

- the published menu and screening versions (:meth:`ConfigService.follow`): the version's
  prompt audio made and installed here, its queues configured, the live file the IVR watches
  replaced; the next call here runs it, calls in progress keep theirs;
- the queue settings (:meth:`QueueService.apply`: queues include and ``QueueReload`` only if
  the rendered include changed, the live wait before overflow);
- on their notification only: a PJSIP reload for a stored phone (a reload is not free), the
  dispatch targets and shifts (held in memory by this line).

The versions and queue settings are looked at every round: at the start, after each AMI login
(``FullyBooted``), on their notification, after the LISTEN connection was made again (the
phones and site settings then too: notifications sent meanwhile are lost) and every
``interval`` seconds. A menu that went live here makes the member sync reconcile every
operator (the publishing line moved them into queues this node may only now have).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

from ivr.menu import IvrMenu
from telephony.admin.store import ADMIN_CHANNEL, AdminTopic
from telephony.admin.versions import ConfigKind
from telephony.cluster.listening import ChannelListener
from telephony.core.errors import SiagaError
from telephony.db.connection import Database, DatabaseUnavailable

log = logging.getLogger("telephony.cluster.admin_sync")

# The LISTEN connection's name in pg_stat_activity.
LISTENER_NAME = "siaga112 admin changes"
# Looked at every round (cheap, idempotent); the others only when announced.
EVERY_ROUND = frozenset({AdminTopic.QUEUES, AdminTopic.MENU, AdminTopic.SCREENING})


class PublishedVersions(Protocol):
    """The menu and screening versions (``ConfigService``)."""

    async def follow(self) -> list[ConfigKind]:
        """Run the versions published last; the kinds changed here."""
        ...


class QueueSettingsApplied(Protocol):
    """The queue settings and phones on this node's Asterisk (``QueueService``)."""

    async def apply(self, menu: IvrMenu | None = None) -> bool:
        """Bring Asterisk to the stored queue settings; whether app_queue was reloaded."""
        ...

    async def apply_phones(self) -> str | None:
        """Reload PJSIP; what went wrong (logged), else ``None``."""
        ...


class SiteSettings(Protocol):
    """The dispatch targets and shifts this line holds (``SiteService``)."""

    async def follow(self) -> None:
        """Apply the stored ones."""
        ...


class MemberResync(Protocol):
    """The member sync (``MemberSync``)."""

    def resync(self) -> None:
        """Reconcile every operator's memberships soon."""
        ...


class AdminSync:
    """Follows the admin's changes stored through any line (see the module's docstring)."""

    def __init__(self, database: Database, *, versions: PublishedVersions,
                 queues: QueueSettingsApplied, site: SiteSettings,
                 members: MemberResync | None = None, interval: float = 30.0,
                 retry_seconds: float = 5.0) -> None:
        self._versions = versions
        self._queues = queues
        self._site = site
        self._members = members
        self._retry = retry_seconds
        self._channel = ChannelListener(database, ADMIN_CHANNEL, LISTENER_NAME, self,
                                        interval=interval, retry_seconds=retry_seconds)
        self._due: set[AdminTopic] = set()  # announced and not yet applied here
        self._greeted = False  # no AMI session yet: nothing to apply to
        self.rounds = 0  # rounds done (tests wait on it)

    def booted(self, _event: Mapping[str, str]) -> None:
        """``FullyBooted`` (a new AMI session): look at everything again."""
        self._greeted = True
        self._channel.wake()

    def notified(self, payload: str) -> None:
        """Another line (or this one) stored ``payload`` (:class:`ChannelListener`)."""
        try:
            self._due.add(AdminTopic(payload))
        except ValueError:
            log.warning("notification of an unknown admin change %r ignored", payload[:80])

    def listening(self) -> None:
        """The LISTEN connection was (re)made: whatever was announced meanwhile is lost."""
        self._due.update(AdminTopic)

    async def run(self) -> None:
        """Follow, until cancelled."""
        await self._channel.run()

    async def round(self) -> bool:
        """Bring this node to what is stored (:class:`ChannelListener`)."""
        if not self._greeted:
            return True  # the first FullyBooted wakes the loop again
        due, self._due = self._due, set()
        try:
            followed = await self._versions.follow()
            if ConfigKind.MENU in followed and self._members is not None:
                self._members.resync()
            await self._queues.apply()  # logs a reload
            if AdminTopic.PHONES in due:
                await self._queues.apply_phones()  # logs its own failure
            if AdminTopic.SITE in due:
                await self._site.follow()
        except (SiagaError, DatabaseUnavailable) as exc:
            message = exc.message if isinstance(exc, SiagaError) else str(exc)
            log.error("the admin's changes stored through another line not applied here, "
                      "retrying in %.0f s: %s", self._retry, message)
            self._due |= due - EVERY_ROUND
            return False
        finally:
            self.rounds += 1
        return True
