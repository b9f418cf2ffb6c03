"""Fixtures shared by the end-to-end modules (and the browser modules, whose conftest takes
them from here): each module runs its own lab on its own ports, with its own state directory
and its own migrated database.

A module gives its settings as ``base_settings`` (its ports and options; module scope) and
says who staffs the line in ``line_operators``; ``settings``, ``lab``, ``phones`` and
``line`` are then the same everywhere. A module overrides a fixture only for what is truly its
own: a line that lives for the whole module, phones that ring for a while, ...

The suite runs two modules at a time (scripts/test: pytest-xdist, whole modules per worker), so
a module's fixed ports (SIP, AMI, FastAGI, the operators' UAS, the carrier) and its RTP range
are its own: none may fall inside another module's, the cluster modules' included.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ivr.menu import load_menu
from telephony.ami.actions import AmiActionError
from telephony.app import Line
from telephony.db.embedded import EmbeddedPostgres
from telephony.lab import sipp
from telephony.lab.chroot import Lab
from telephony.settings import Settings
from tests.e2e.harness import prompted_lab, started_line
from tests.support.db import create_database, drop_database, owner_dsn


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


@pytest.fixture(scope="module")
def settings(base_settings: Settings, state_dir: Path, line_db: str,
             pg_cluster: EmbeddedPostgres) -> Settings:
    """The module's settings with its state directory and its database, which the line
    connects to as its own role and migrates as the owner."""
    return replace(base_settings, state_dir=state_dir, database_dsn=line_db,
                   database_owner_dsn=owner_dsn(pg_cluster, line_db))


@pytest.fixture(scope="module")
async def lab(settings: Settings) -> AsyncIterator[Lab]:
    async with prompted_lab(settings) as lab:
        yield lab


@pytest.fixture(scope="module")
def phone_options() -> Mapping[str, Any]:
    """How the operator phones behave (``sipp.operator`` options): answer at once, by default."""
    return {}


@pytest.fixture(scope="module")
async def phones(
    lab: Lab, settings: Settings, phone_options: Mapping[str, Any]
) -> AsyncIterator[sipp.Sipp]:
    """Every operator endpoint rings this one sipp UAS."""
    async with sipp.operator(settings.lab_operator_sip_port, **phone_options) as uas:
        yield uas


@pytest.fixture(scope="module")
def line_operators() -> Mapping[str, Mapping[str, int]]:
    """Who is in the queues while a test runs (interface -> skills): nobody, by default."""
    return {}


@pytest.fixture(scope="module")
def joining_operators() -> Sequence[str]:
    """Interfaces a test puts into queues itself (through the console or the desk): afterwards
    they are removed from every queue again (Asterisk keeps members in astdb)."""
    return ()


@pytest.fixture
async def line(
    lab: Lab,
    phones: sipp.Sipp,
    settings: Settings,
    line_operators: Mapping[str, Mapping[str, int]],
    joining_operators: Sequence[str],
) -> AsyncIterator[Line]:
    async with started_line(lab, settings, line_operators) as line:
        try:
            yield line
        finally:
            for interface in joining_operators:
                for queue in load_menu(settings.menu_file).known_queues:
                    with contextlib.suppress(AmiActionError):  # not a member: nothing to undo
                        await line.listener.send_action(
                            {"Action": "QueueRemove", "Queue": queue, "Interface": interface})
