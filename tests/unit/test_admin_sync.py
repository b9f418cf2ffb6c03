"""Keeping Asterisk on the stored configuration (telephony/admin/sync.py): an AMI session that
begins while the database is away retries every few seconds, and says so once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import cast

import pytest

from telephony.admin.configs import ConfigService
from telephony.admin.queue_service import QueueService
from telephony.admin.sync import AsteriskSync
from telephony.db.connection import DatabaseUnavailable
from tests.support.ami import eventually


class Queues:
    """The queue service as the sync sees it: the database away for ``failures`` attempts."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.applied = 0

    def asterisk_restarted(self) -> None:
        """Nothing to forget."""

    async def apply_phones(self) -> None:
        """Nothing to reload."""

    async def apply(self) -> bool:
        if self.failures:
            self.failures -= 1
            raise DatabaseUnavailable("PostgreSQL unavailable: Connect call failed")
        self.applied += 1
        return True


class Configs:
    async def restore(self) -> None:
        """Nothing to restore."""


async def test_a_database_outage_is_logged_once_not_at_every_retry(
    caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "telephony.admin")
    queues = Queues(failures=20)
    sync = AsteriskSync(cast(QueueService, queues), cast(ConfigService, Configs()),
                        retry_seconds=0.001)
    runner = asyncio.create_task(sync.run())
    try:
        sync.booted({"Event": "FullyBooted"})
        await eventually(lambda: queues.applied == 1)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    assert [r.getMessage() for r in caplog.records] == [
        "stored queue settings not applied to Asterisk, retrying every 0 s: PostgreSQL "
        "unavailable: Connect call failed",
        "stored queue settings applied to Asterisk after all"]
