"""The notification outbox: delivers the notifications dispatches wrote, and keeps at it.

Each message is claimed on a lease, handed to the :class:`~telephony.incidents.notifiers.Notifier`
and marked sent, or failed and due again after a doubling delay; after the last allowed attempt
it stays in the outbox as failed. Delivery is at least once: a worker that dies between
delivering and recording leaves the message to be claimed again when its lease ends.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Literal

import asyncpg

from telephony.db.connection import Database
from telephony.incidents.config import IncidentConfig
from telephony.incidents.errors import NotificationFailed
from telephony.incidents.model import parse_status
from telephony.incidents.notifiers import Notifier
from telephony.incidents.outbox import (
    DeliveryReport,
    Notification,
    retry_delay,
    stand_down_payload,
)
from telephony.incidents.outbox_store import OutboxStore

log = logging.getLogger("telephony.incidents")

_NOTIFIER_GRACE_SECONDS = 5.0

Outcome = Literal["sent", "retried", "failed"]


class NotificationOutbox:
    """Drains the notification outbox through a notifier."""

    def __init__(self, database: Database, notifier: Notifier, config: IncidentConfig) -> None:
        self._database = database
        self._notifier = notifier
        self._config = config
        self._repo = OutboxStore()

    async def deliver_notifications(self) -> DeliveryReport:
        """Drain the outbox: deliver every due notification once, recording each outcome.

        A failure is retried later with a doubling delay; after the last allowed attempt the
        notification stays in the outbox as failed. Delivery is at least once. What is still
        undelivered of an incident no longer open is withdrawn instead
        (:meth:`~telephony.incidents.outbox_store.OutboxStore.withdraw_closed`).
        """
        config = self._config
        # Long enough that a claimed notification is not claimed again while still in flight.
        lease = timedelta(seconds=config.notify_timeout + _NOTIFIER_GRACE_SECONDS + 30)
        outcomes: list[Outcome] = []
        withdrawn = await self._database.run(self._repo.withdraw_closed)
        if withdrawn:
            log.info("%d notification(s) of incidents no longer open withdrawn", withdrawn)

        async def claim(connection: asyncpg.Connection) -> list[Notification]:
            return await self._repo.claim_notifications(
                connection, limit=config.notify_batch, lease=lease
            )

        while True:
            claimed = await self._database.run(claim)
            # Every delivery runs to its end before an error (the database gone) propagates:
            # none is left running unobserved.
            results = await asyncio.gather(*(self._deliver(n) for n in claimed),
                                           return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
                outcomes.append(result)
            if len(claimed) < config.notify_batch:
                return DeliveryReport(outcomes.count("sent"), outcomes.count("retried"),
                                      outcomes.count("failed"), withdrawn)

    async def _deliver(self, notification: Notification) -> Outcome:
        config = self._config
        try:
            # A notifier enforces its own timeout; this bounds one that does not.
            async with asyncio.timeout(config.notify_timeout + _NOTIFIER_GRACE_SECONDS):
                await self._notifier.send(notification)
        except (NotificationFailed, TimeoutError) as exc:
            error = str(exc) or type(exc).__name__
            give_up = notification.attempt >= config.notify_max_attempts
            retry_in = None if give_up else timedelta(seconds=retry_delay(
                notification.attempt, base=config.notify_retry_seconds,
                cap=config.notify_retry_cap_seconds))
            log.warning("notification %d, attempt %d failed%s: %s",
                        notification.notification_id, notification.attempt,
                        " for the last time" if give_up else "", error)

            async def failed(connection: asyncpg.Connection) -> None:
                await self._repo.mark_failed(connection, notification.notification_id,
                                             error, retry_in)

            await self._database.run(failed)
            return "failed" if give_up else "retried"

        async def sent(connection: asyncpg.Connection) -> None:
            async with connection.transaction():
                await self._repo.lock_notification_dispatch(connection,
                                                            notification.notification_id)
                await self._repo.mark_sent(connection, notification.notification_id)
                # Called off while this was in flight: the agency just got a call-out the
                # stand-down did not cover (it saw nothing delivered yet).
                late = await self._repo.late_call_out(connection, notification.notification_id)
                if late is not None:
                    incident_id, dispatch_id, recipient_id, payload, status = late
                    await self._repo.enqueue_notification(
                        connection, incident_id, dispatch_id, recipient_id,
                        stand_down_payload(payload, parse_status(status)))
                    log.info("notification %d delivered after its dispatch was called off: "
                             "stand-down queued", notification.notification_id)

        await self._database.run(sent)
        return "sent"

    async def outbox_counts(self) -> dict[str, int]:
        """How many notifications are pending, sent, failed and withdrawn."""
        return await self._database.run(self._repo.outbox_counts)
