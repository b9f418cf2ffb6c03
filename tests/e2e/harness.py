"""What the end-to-end modules share: a lab speaking the line's prompts, a running line with
operators logged in, bounded polling, and caller numbers no other test uses.

Each module still owns its ports and settings (so modules can run side by side); this only
removes the boilerplate around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Final, TypeVar

from ivr.menu import load_menu
from ivr.prompts import build_line_prompts
from telephony.app import Line, running_line
from telephony.asterisk.queue_log import QueueLogLineError, parse_line
from telephony.calls.history import queue_log_path
from telephony.calls.store import CallRecord
from telephony.db.connection import DatabaseUnavailable
from telephony.desks.operators import OperatorDesk
from telephony.lab.chroot import Lab
from telephony.settings import Settings
from tests.support.polling import eventually

T = TypeVar("T")

ALL_SKILLS: Final = {"general": 5, "medical": 5, "fire": 5, "security": 5, "disaster": 5}


@contextlib.asynccontextmanager
async def prompted_lab(settings: Settings) -> AsyncIterator[Lab]:
    """The settings' lab, booted, with every prompt of its menu and the survey installed."""
    menu = load_menu(settings.menu_file)
    build_line_prompts(menu, settings.prompts_dir, settings.prompt_overrides_dir, "id")
    lab = Lab(settings)
    # Files an earlier run left behind belong to calls of a database that is gone.
    shutil.rmtree(lab.monitor_dir, ignore_errors=True)
    async with lab:
        lab.site.install_prompts(settings.prompts_dir)
        yield lab
    # Recordings of the last calls may not be processed yet; don't let them pile up.
    shutil.rmtree(lab.monitor_dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def started_line(
    lab: Lab, settings: Settings, staff: Mapping[str, Mapping[str, int]] | None = None
) -> AsyncIterator[Line]:
    """The running line, logged in to AMI, with ``staff`` (interface -> skills) in their
    queues; afterwards they are logged out and every channel left is hung up."""
    try:
        async with running_line(settings) as line:
            async with asyncio.timeout(10):
                await line.listener.wait_ready()
            desk = OperatorDesk(line.listener, load_menu(settings.menu_file))
            joined = [(op, await desk.log_in(op, skills)) for op, skills in (staff or {}).items()]
            try:
                yield line
            finally:
                for op, queues in joined:
                    await desk.log_out(op, queues)
    finally:
        # A failed test may leave a caller queued; the next test starts with none.
        await lab.acli("channel request hangup all")
        await lab.wait_cli("core show channels count",
                           lambda out: out.startswith("0 active channels"))


async def ended_call(line: Line, caller_id: str, *, since: datetime | None = None,
                     within: float = 30.0) -> CallRecord:
    """The caller's one call (that arrived after ``since``, if given) once it has ended.

    The database may be coming back from an outage: unavailable counts as "not yet".
    """

    async def probe() -> CallRecord | None:
        try:
            records = await line.database.run(
                lambda c: line.repository.call_records(c, limit=500))
        except DatabaseUnavailable:
            return None
        found = [r for r in records if r.caller_number == caller_id and (
            since is None or (r.arrived_at is not None and r.arrived_at >= since))]
        if not found or any(r.ended_at is None for r in found):
            return None
        assert len(found) == 1, found
        return found[0]

    return await eventually(f"the ended call of {caller_id}", probe, within)


def unique_caller(prefix: str) -> str:
    """A mobile number no other test uses; ``prefix`` (e.g. "0812") tells modules apart."""
    return prefix + str(uuid.uuid4().int)[:8]


async def logged_data(settings: Settings, call_id: str, event: str,
                      within: float = 10.0) -> tuple[str, ...]:
    """The data of the call's first ``event`` line in the lab's queue_log (e.g. ``SIAGAEND``,
    whose data is the hang-up cause), once it is there."""

    async def probe() -> tuple[str, ...] | None:
        try:
            lines = queue_log_path(settings).read_bytes().splitlines()
        except FileNotFoundError:
            return None
        for raw in lines:
            try:
                entry = parse_line(raw)
            except QueueLogLineError:
                continue  # another test's hostile line
            if entry is not None and entry.call_id == call_id and entry.event == event:
                return entry.data
        return None

    return await eventually(f"{event} of {call_id} in the queue_log", probe, within)
