"""The incident feature's tunables, taken from the settings (shared by its services)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from telephony.asterisk.queue_log import cursor_sources
from telephony.incidents.model import ReportType
from telephony.settings import DEFAULT_DISPATCH_TARGETS, DispatchTarget, Settings, SettingsError


def dispatch_targets(targets: Sequence[DispatchTarget]) -> dict[ReportType, timedelta]:
    """Dispatch targets as the settings give them, keyed by report type.

    The settings hold the report type as plain text (they know no feature's words); it is
    checked here, so a type this line does not know is refused as a setting.
    """
    known = {kind.value for kind in ReportType}
    for target in targets:
        if target.report_type not in known:
            raise SettingsError(
                f"incident_dispatch_targets: unknown report type {target.report_type!r}")
    return {ReportType(t.report_type): timedelta(seconds=t.seconds) for t in targets}


@dataclass(frozen=True)
class IncidentConfig:
    """The tunables the incident services need, taken from the settings."""

    dispatch_targets: Mapping[ReportType, timedelta] = field(
        default_factory=lambda: dispatch_targets(DEFAULT_DISPATCH_TARGETS))
    auto_create_max_age: timedelta = timedelta(hours=24)
    attachment_max_bytes: int = 25 * 1024 * 1024
    notify_timeout: float = 5.0
    notify_retry_seconds: float = 15.0
    notify_retry_cap_seconds: float = 900.0
    notify_max_attempts: int = 20
    auto_create_batch: int = 100
    # Delivered concurrently, so one claim stays well inside the pool and the lease.
    notify_batch: int = 10
    # How long an agency's phone rings for a transfer (Dial()'s timeout): a by-phone
    # dispatch whose call was not answered by then is settled even if its end went unrecorded.
    transfer_ring: timedelta = timedelta(seconds=30)
    # The queue_log cursors whose leg reports that rule waits for: every node's on a cluster
    # (telephony/asterisk/queue_log.py cursor_sources).
    queue_logs: tuple[str, ...] = ("queue_log",)

    @classmethod
    def from_settings(cls, settings: Settings) -> IncidentConfig:
        """The configuration described by ``settings``."""
        return cls(
            dispatch_targets=dispatch_targets(settings.incident_dispatch_targets),
            auto_create_max_age=timedelta(hours=settings.incident_auto_create_hours),
            attachment_max_bytes=settings.attachment_max_bytes,
            notify_timeout=settings.notify_timeout,
            notify_retry_seconds=settings.notify_retry_seconds,
            notify_max_attempts=settings.notify_max_attempts,
            transfer_ring=timedelta(seconds=settings.transfer_ring_seconds),
            queue_logs=cursor_sources(settings),
        )
