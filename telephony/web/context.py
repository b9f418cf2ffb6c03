"""What the web layer's handlers work with: the services, and the web's own settings."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from aiohttp import web

from recordings.library import RecordingLibrary
from telephony.accounts.service import AccountService
from telephony.callbacks.service import CallbackConfig
from telephony.calls.archive import CallArchive
from telephony.desks.service import DeskService
from telephony.incidents.attachments import AttachmentStore
from telephony.incidents.directory_service import Directory
from telephony.incidents.dispatch_service import DispatchService
from telephony.incidents.service import IncidentService
from telephony.screening.service import ScreeningService
from telephony.settings import Settings, softphone_origin
from telephony.transfers.service import TransferService

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(texts: Iterable[str]) -> tuple[Network, ...]:
    """Networks from their text (the settings have already checked them)."""
    return tuple(ipaddress.ip_network(text, strict=False) for text in texts)


@dataclass(frozen=True)
class WebConfig:
    """The web layer's tunables, taken from the settings."""

    cookie_secure: bool = False
    session_lifetime: timedelta = timedelta(hours=12)
    attachment_max_bytes: int = 25 * 1024 * 1024
    timezone: str = "Asia/Jakarta"  # the console shows instants in the centre's local time
    # The HTTPS fronts whose X-Forwarded-For is believed (telephony/web/forwarded.py).
    trusted_proxies: tuple[Network, ...] = ()
    # The origin (ws[s]://host[:port]) of Asterisk's WebSocket that softphones connect to.
    softphone_origin: str | None = None
    # How long a call-back with no report may still be ringing (the incident page says
    # "tanpa kabar dari Asterisk" past it, as the call-back list does).
    callback_ring_limit: timedelta = CallbackConfig().ring_limit

    @classmethod
    def from_settings(cls, settings: Settings) -> WebConfig:
        """The configuration described by ``settings``."""
        return cls(
            cookie_secure=settings.http_cookie_secure,
            session_lifetime=timedelta(hours=settings.http_session_hours),
            attachment_max_bytes=settings.attachment_max_bytes,
            timezone=settings.timezone,
            callback_ring_limit=CallbackConfig.from_settings(settings).ring_limit,
            # A cluster's other lines forward requests about their calls here, naming the
            # client (telephony/cluster/forward.py).
            trusted_proxies=parse_networks([
                *settings.http_trusted_proxies,
                *(node.host.strip("[]") for node in settings.cluster_peers
                  if settings.cluster_self is not None)]),
            softphone_origin=(None if settings.live_softphone_ws_url is None
                              else softphone_origin(settings.live_softphone_ws_url)),
        )


@dataclass(frozen=True)
class ApiContext:
    """The services the handlers are a thin layer over."""

    incidents: IncidentService
    dispatches: DispatchService
    directory: Directory
    accounts: AccountService
    calls: CallArchive
    recordings: RecordingLibrary
    attachments: AttachmentStore
    screening: ScreeningService
    desks: DeskService
    config: WebConfig
    # Transfers to agencies; None where the line runs without AMI actions (tests).
    transfers: TransferService | None = None


CONTEXT: Final = web.AppKey("context", ApiContext)
