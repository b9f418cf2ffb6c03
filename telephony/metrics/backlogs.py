"""Sources read from the database and the disk before each scrape: the recordings waiting
for the worker and those quarantined, the notification outbox, and the newest backup."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from recordings.store import Backlog, RecordingRepository
from telephony.backup.store import last_backup_at
from telephony.core.threads import OneAtATime
from telephony.db.connection import Database
from telephony.incidents.outbox import OutboxBacklog
from telephony.incidents.outbox_store import OutboxStore


def _count_files(directory: Path) -> int:
    return sum(1 for path in directory.rglob("*") if path.is_file()) if directory.is_dir() else 0


class RecordingsBacklog:
    """Recordings pending or in processing (database), and files in quarantine (disk: they
    stay there until an engineer deals with them)."""

    def __init__(self, database: Database, quarantine_dir: Path) -> None:
        self._database = database
        # Off the main loop: the quarantine may be on a mount that hangs (see DiskCollector).
        self._count_quarantined = OneAtATime(lambda: _count_files(quarantine_dir),
                                             "quarantine-count")
        self._backlog: Backlog | None = None
        self._quarantined: int | None = None

    async def refresh(self) -> None:
        """Read the backlog; on failure its figures are left out, not shown stale."""
        self._quarantined = None
        self._backlog = None
        self._quarantined = await self._count_quarantined()
        self._backlog = await self._database.run(RecordingRepository().backlog)

    def collect(self) -> Iterable[Metric]:
        """The last refresh's figures."""
        if self._quarantined is not None:
            yield GaugeMetricFamily("siaga112_recordings_quarantined",
                                    "Recording files the worker could not process, kept in "
                                    "quarantine", value=self._quarantined)
        if self._backlog is not None:
            yield GaugeMetricFamily("siaga112_recordings_backlog",
                                    "Recordings waiting for the worker or being processed",
                                    value=self._backlog.waiting)
            yield GaugeMetricFamily("siaga112_recordings_backlog_oldest_seconds",
                                    "How long the oldest waiting recording has waited",
                                    value=self._backlog.oldest_seconds or 0.0)


class RecordingsNotWritten:
    """Recordings Asterisk could not write a byte of (its disk full or read-only during the
    call: recordings.domain.NOT_WRITTEN) that this line's worker found since it started. A
    count, not a backlog: such a call has no recording to wait for, and once there is room
    nothing else would show that calls went unrecorded meanwhile."""

    def __init__(self, count: Callable[[], int]) -> None:
        self._count = count

    def collect(self) -> Iterable[Metric]:
        """The count now."""
        yield CounterMetricFamily("siaga112_recordings_not_written",
                                  "Calls whose recording Asterisk could not write (its "
                                  "recording disk full or read-only), since start",
                                  value=self._count())


class OutboxBacklogs:
    """Notifications to agencies not yet delivered."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._backlog: OutboxBacklog | None = None

    async def refresh(self) -> None:
        """Read the outbox; on failure its figures are left out, not shown stale."""
        self._backlog = None
        self._backlog = await self._database.run(OutboxStore().backlog)

    def collect(self) -> Iterable[Metric]:
        """The last refresh's figures."""
        backlog = self._backlog
        if backlog is None:
            return
        yield GaugeMetricFamily("siaga112_notifications_pending",
                                "Notifications waiting to be delivered (or retried)",
                                value=backlog.pending)
        yield GaugeMetricFamily("siaga112_notifications_oldest_pending_seconds",
                                "Age of the oldest notification not yet delivered (0: none)",
                                value=backlog.oldest_pending_seconds or 0.0)
        yield GaugeMetricFamily("siaga112_notifications_failed",
                                "Notifications given up after the last attempt",
                                value=backlog.failed)


class LastBackup:
    """When the newest backup of the site's database was finished (``siaga112 backup`` notes
    it in the audit log): a site whose backups stopped is told before it needs one."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._known = False
        self._timestamp = 0.0

    async def refresh(self) -> None:
        """Read the audit log; on failure the figure is left out, not shown stale."""
        self._known = False
        finished = await self._database.run(last_backup_at)
        self._timestamp = 0.0 if finished is None else finished.timestamp()
        self._known = True

    def collect(self) -> Iterable[Metric]:
        """The last refresh's figure."""
        if self._known:
            yield GaugeMetricFamily("siaga112_backup_last_success_timestamp_seconds",
                                    "When the newest whole backup was written (Unix time; 0: "
                                    "never)", value=self._timestamp)
