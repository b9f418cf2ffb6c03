"""Fixtures shared by the end-to-end modules: each module runs its own lab on its own ports,
with its own state directory and its own migrated database."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from telephony.db.embedded import EmbeddedPostgres
from tests.support.db import create_database, drop_database


@pytest.fixture(scope="module")
def state_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="siaga112-e2e-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
async def line_db(pg_cluster: EmbeddedPostgres) -> AsyncIterator[str]:
    """One migrated database for the module; tests tell their calls apart by caller number."""
    dsn = await create_database(pg_cluster)
    yield dsn
    await drop_database(pg_cluster, dsn)
