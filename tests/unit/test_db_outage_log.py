"""asyncpg's pool, which retries its connection floor during an outage, logs each retry on one
line (telephony/db/connection.py), and keeps the traceback of anything that is not an outage."""

from __future__ import annotations

import logging

import pytest

import telephony.db.connection  # noqa: F401  (installs the filter on asyncpg's pool logger)

POOL = logging.getLogger("asyncpg.pool")


def _log_failure(error: BaseException) -> None:
    try:
        raise error
    except BaseException:
        POOL.warning("Failed to restore the pool connection floor; retrying", exc_info=True)


def test_an_outage_is_one_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="asyncpg.pool"):
        _log_failure(ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"))
    [record] = caplog.records
    assert record.exc_info is None
    assert caplog.text.count("\n") == 1
    assert record.getMessage() == (
        "Failed to restore the pool connection floor; retrying: ConnectionRefusedError: "
        "[Errno 111] Connect call failed ('127.0.0.1', 5432)")


def test_anything_else_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="asyncpg.pool"):
        _log_failure(ValueError("a bug"))
    [record] = caplog.records
    assert record.exc_info is not None and "Traceback" in caplog.text
