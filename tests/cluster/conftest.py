"""The cluster tier (marker ``cluster``, each module's ``pytestmark``): the line over several
nodes on loopback, each test starting its own nodes on free ports in a temp dir
(telephony/lab/). Run it alone with ``pytest -m cluster tests/cluster``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest

from telephony.ami.testing import SECRET, USERNAME
from telephony.db.embedded import EmbeddedPostgres
from telephony.lab.patroni import PatroniLab, patroni_cluster
from telephony.settings import Settings
from tests.support.db import create_database, drop_database
from tests.support.net import free_port


@pytest.fixture(scope="module")
async def cluster_dsn(pg_cluster: EmbeddedPostgres) -> AsyncIterator[str]:
    """The one database a module's cluster nodes all write into (migrated by the first
    node's line server)."""
    dsn = await create_database(pg_cluster)
    yield dsn
    await drop_database(pg_cluster, dsn)


@pytest.fixture
def patroni(settings: Settings) -> Iterator[PatroniLab]:
    """etcd and a Patroni pair (primary and synchronous replica), new for each test: the
    tests kill its nodes."""
    with patroni_cluster(settings) as lab:
        yield lab


@pytest.fixture
def cluster_line_settings(settings: Settings) -> Settings:
    """A whole line on free ports, logged in to a fake Asterisk (as tests/loopback's
    line_settings); its database is the caller's (PatroniLab.line_settings)."""
    return replace(settings, http_port=0, agi_port=free_port(), ami_port=free_port(),
                   recordings_incoming_dir=settings.state_dir / "monitor",
                   asterisk_etc_dir=settings.state_dir / "asterisk-etc",
                   asterisk_sounds_dir=settings.state_dir / "sounds",
                   ami_username=USERNAME, ami_secret=SECRET)
