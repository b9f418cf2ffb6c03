"""Asterisk's own log files, kept bounded: once a day the line asks Asterisk to rotate them
(AMI ``LoggerRotate``) and deletes the rotated files older than the retention.

Asterisk writes ``queue_log`` and ``messages.log`` (asterisk-conf/logger.conf) for ever: it
rotates only when told to, and never deletes. With ``rotatestrategy = timestamp`` a rotated
file is renamed ``<name>.<epoch seconds>`` and keeps its inode, so the backfill still finds
the previous queue_log by inode (:mod:`telephony.asterisk.queue_log_file`) and reads the
calls logged in it before the rotation. Only the line rotates, and only while it runs: a line
that is down does not rotate, so the file its cursor points into is at most one rotation
old, and the retention (30 days by default, at least 7) is far above any outage.

The rules (when next, which files are stale) are pure; :class:`LogRotation` does the I/O.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from telephony.ami.actions import AmiActionError, AmiActions
from telephony.core.loops import run_passes

log = logging.getLogger("telephony.asterisk")

# <live file name>.<digits>: timestamp rotation (epoch seconds), and the .0, .1 ... that the
# sequential or rotate strategies (Asterisk's default) left before.
_ROTATED = re.compile(r"(?P<base>.+)\.(?P<stamp>\d+)")


def seconds_until(now: datetime, hour: int) -> float:
    """Seconds from ``now`` (aware, in the site's zone) to the next ``hour``:00 there, at
    least a minute away: a sleep that ends a little early must not rotate twice in one second
    (the second rename would take the first's timestamped name and overwrite its file)."""
    at = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    if at <= now + timedelta(minutes=1):
        at = (at.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=now.tzinfo)
    return (at - now).total_seconds()


def stale(files: Iterable[tuple[str, float]], live: set[str], *, keep_days: int,
          now: float) -> list[str]:
    """Of ``files`` (name, modification time), the rotated copies of a ``live`` log last
    written more than ``keep_days`` before ``now``. Nothing else in the directory (the live
    files, anything the site keeps there) is ever named."""
    limit = now - keep_days * 86400
    return sorted(name for name, mtime in files
                  if (m := _ROTATED.fullmatch(name)) is not None and m["base"] in live
                  and mtime < limit)


def prune(log_dir: Path, *, keep_days: int, now: float) -> list[Path]:
    """Delete the rotated logs in ``log_dir`` older than ``keep_days``; the ones deleted."""
    files: list[tuple[str, float]] = []
    live: set[str] = set()
    for path in log_dir.iterdir():
        try:
            stat = path.stat()
        except OSError:
            continue  # deleted meanwhile
        if _ROTATED.fullmatch(path.name) is None:
            live.add(path.name)
        files.append((path.name, stat.st_mtime))
    removed = []
    for name in stale(files, live, keep_days=keep_days, now=now):
        try:
            (log_dir / name).unlink()
        except FileNotFoundError:
            continue
        removed.append(log_dir / name)
    return removed


class LogRotation:
    """Rotate Asterisk's logs every day at ``hour`` (site time) and prune the old ones."""

    def __init__(self, ami: AmiActions, log_dir: Path, *, keep_days: int, hour: int,
                 zone: ZoneInfo) -> None:
        self._ami = ami
        self._log_dir = log_dir
        self._keep_days = keep_days
        self._hour = hour
        self._zone = zone

    async def rotate(self) -> list[Path]:
        """One rotation and prune now; the files deleted. Asterisk unreachable or refusing:
        one warning, and the prune still runs (tomorrow rotates again)."""
        try:
            await self._ami.send_action({"Action": "LoggerRotate"})
        except AmiActionError as exc:
            log.warning("Asterisk's logs were not rotated (LoggerRotate: %s); the next try is "
                        "tomorrow", exc)
        now = datetime.now(self._zone).timestamp()
        try:
            removed = await asyncio.to_thread(prune, self._log_dir, keep_days=self._keep_days,
                                              now=now)
        except OSError as exc:
            log.warning("Asterisk's old logs in %s cannot be pruned: %s", self._log_dir, exc)
            return []
        if removed:
            log.info("Asterisk's logs rotated; %d older than %d days deleted: %s", len(removed),
                     self._keep_days, " ".join(p.name for p in removed))
        return removed

    async def _until_next(self) -> None:
        await asyncio.sleep(seconds_until(datetime.now(self._zone), self._hour))

    async def run(self) -> None:
        """Forever: wait for the hour, rotate and prune."""
        await self._until_next()
        await run_passes("asterisk log rotation", self.rotate, self._until_next, log)
