"""Delivering dispatch notifications: a pluggable :class:`Notifier` and the two we ship.

A notifier delivers one notification or raises :class:`NotificationFailed`; it never decides
about retries. The service takes notifications from the database outbox, so a failure here
only means "try again later" and nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import aiohttp

from telephony.incidents.errors import NotificationFailed
from telephony.incidents.outbox import Notification
from telephony.settings import Settings

log = logging.getLogger("telephony.incidents.notify")


class Notifier(Protocol):
    """Delivers notifications somewhere."""

    async def send(self, notification: Notification) -> None:
        """Deliver one notification; raise :class:`NotificationFailed` if it did not arrive."""

    async def close(self) -> None:
        """Release what the notifier holds."""


class LogNotifier:
    """Writes notifications to the log: for sites without a messaging gateway, and the lab."""

    async def send(self, notification: Notification) -> None:
        """Log the message with its recipient."""
        recipient = notification.payload.get("recipient", {})
        log.info("notification %d to %s (%s): %s", notification.notification_id,
                 recipient.get("name"), recipient.get("contact"),
                 notification.payload.get("message"))

    async def close(self) -> None:
        """Nothing to release."""


class WebhookNotifier:
    """POSTs each notification as JSON to one URL, e.g. a WhatsApp or SMS gateway.

    The body is the payload plus ``notification_id`` and ``attempt``; the id is also sent as
    ``Idempotency-Key`` because a notification may arrive twice (a worker that died after
    delivering but before recording it). Any 2xx status is success; anything else, a redirect
    too, is a failed attempt.
    """

    def __init__(self, url: str, *, timeout: float) -> None:
        self._url = url
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use: a ClientSession belongs to the running event loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        return self._session

    async def send(self, notification: Notification) -> None:
        """POST the notification; a non-2xx answer, a network error or a timeout fails it."""
        body = {**notification.payload, "notification_id": notification.notification_id,
                "attempt": notification.attempt}
        headers = {"Idempotency-Key": f"siaga112-notification-{notification.notification_id}"}
        try:
            async with asyncio.timeout(self._timeout):
                # Not followed: a client following a redirect re-sends a POST as a GET (302,
                # 303), and the page it lands on answering 200 counted a notification
                # nobody received as delivered. A moved gateway is for the site to fix.
                async with self._client().post(self._url, json=body, headers=headers,
                                               allow_redirects=False) as reply:
                    if not 200 <= reply.status < 300:
                        raise NotificationFailed(f"HTTP {reply.status} from {self._url}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise NotificationFailed(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        """Close the HTTP client session."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def notifier_from_settings(settings: Settings) -> Notifier:
    """The webhook notifier if a URL is configured, else the log notifier."""
    if settings.notify_webhook_url is not None:
        return WebhookNotifier(settings.notify_webhook_url, timeout=settings.notify_timeout)
    return LogNotifier()
