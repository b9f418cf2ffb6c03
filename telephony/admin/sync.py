"""Keeps the running Asterisk on the admin's stored configuration.

Asterisk greets every new AMI session with ``FullyBooted``: at the line's start, after a
reconnect, and after Asterisk itself restarted (the lab's restart writes the default queues
and clears the live settings). Each greeting applies the stored queue settings and the live
screening's normal priority again; a failure (Asterisk or the database gone again) is logged
and retried. Each greeting also reloads PJSIP once, so a phone stored while the line had no
AMI session (or whose reload Asterisk refused) is rung; a reload that fails again is logged
and waits for the next session (the phones stay stored). What an admin stores through
another node's line while this AMI session lasts: telephony/cluster/admin_sync.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from telephony.admin.configs import ConfigService
from telephony.admin.errors import ApplyFailed
from telephony.admin.queue_service import QueueService
from telephony.db.connection import DatabaseUnavailable

log = logging.getLogger("telephony.admin")


class AsteriskSync:
    """Applies the stored configuration whenever an AMI session begins."""

    def __init__(self, queues: QueueService, configs: ConfigService, *,
                 retry_seconds: float = 5.0) -> None:
        self._queues = queues
        self._configs = configs
        self._retry_seconds = retry_seconds
        self._due = asyncio.Event()
        self._phones_due = False

    def booted(self, _event: Mapping[str, str]) -> None:
        """The listener's ``FullyBooted`` subscriber (returns at once)."""
        self._queues.asterisk_restarted()
        self._phones_due = True
        self._due.set()

    async def run(self) -> None:
        """Forever: apply once due, again after a failure. A failure is logged once, not at
        every retry: an AMI session that begins during a database outage retries every few
        seconds for as long as the outage lasts."""
        failing: type[Exception] | None = None  # what the last failed attempt met
        while True:
            await self._due.wait()
            self._due.clear()
            if self._phones_due:
                self._phones_due = False
                await self._queues.apply_phones()  # logs its own failure
            try:
                await self._queues.apply()
                await self._configs.restore()
            except (ApplyFailed, DatabaseUnavailable) as exc:
                message = exc.message if isinstance(exc, ApplyFailed) else str(exc)
                if type(exc) is not failing:
                    log.error("stored queue settings not applied to Asterisk, retrying every "
                              "%.0f s: %s", self._retry_seconds, message)
                failing = type(exc)
                await asyncio.sleep(self._retry_seconds)
                self._due.set()
            else:
                if failing is not None:
                    log.info("stored queue settings applied to Asterisk after all")
                failing = None
