"""The benches' shared rig: a private PostgreSQL cluster, the line's settings on a bench's own
ports, a lab with the line's prompts, and what counts as a complete call record.

bench/surge.py (and bench/capacity.py through it) and bench/faults.py set up their lab, line
and database with these functions and judge the calls the database holds with
:func:`is_incomplete`, so a surge and a fault injection call the same thing complete.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import asyncpg

from ivr.menu import load_menu
from ivr.prompts import build_line_prompts
from telephony.lab.chroot import Lab
from telephony.settings import Settings, load_settings

# The calls table columns a fully handled call (IVR, queue, operator, hang-up) must have.
REQUIRED_COLUMNS = (
    "line", "ivr_outcome", "queue", "queue_position", "operator", "wait_seconds",
    "talk_seconds", "ended_at", "hangup_cause", "shift_name",
)


def lacking(row: asyncpg.Record) -> list[str]:
    """The required columns a call row lacks."""
    return [c for c in REQUIRED_COLUMNS if row[c] is None]


def is_incomplete(row: asyncpg.Record) -> bool:
    """A row lacking anything a fully handled call must have."""
    return bool(lacking(row))


@dataclass(frozen=True)
class BenchPorts:
    """A bench's lab instance and the ports it owns, apart from every e2e module's."""

    instance: str
    sip: int
    ami: int
    agi: int
    operators: int  # the operator phones' sipp UAS
    rtp_start: int
    rtp_end: int
    http: int = 0  # 0: the API on any free port


# Below the kernel's ephemeral range (32768-60999): sipp picks its ports there with
# free_udp_port(), and an Asterisk holding thousands of RTP ports in it could take one between
# another test's probe and its bind. 10,000 ports cover 4 per bridged call.
SURGE_PORTS = BenchPorts("surge", 35060, 35038, 34573, 35070, 21000, 30998)


def bench_settings(state_dir: Path, dsn: str, pg_port: int, operators: int,
                   ports: BenchPorts = SURGE_PORTS) -> Settings:
    """The line's settings on the bench's own ports and lab instance."""
    return replace(
        load_settings(environ={}),
        lab_instance=ports.instance,
        state_dir=state_dir,
        sip_port=ports.sip,
        ami_port=ports.ami,
        agi_port=ports.agi,
        lab_operator_sip_port=ports.operators,
        rtp_port_start=ports.rtp_start,
        rtp_port_end=ports.rtp_end,
        http_port=ports.http,
        lab_operators=operators,
        database_dsn=dsn,
        embedded_pg_port=pg_port,
        ami_reconnect_seconds=0.5,
        db_retry_seconds=0.5,
    )


async def build_prompts(settings: Settings) -> None:
    """The line's prompt audio, generated into the settings' prompts directory."""
    await asyncio.to_thread(
        build_line_prompts, load_menu(settings.menu_file), settings.prompts_dir,
        settings.prompt_overrides_dir, settings.prompt_voice,
    )


async def start_lab(lab: Lab) -> None:
    """(Re)start the lab with no calls of earlier runs and give it the prompts (built with
    :func:`build_prompts`)."""
    if lab.is_running():
        await asyncio.to_thread(lab.stop)
    await asyncio.to_thread(lab.forget_calls)
    await asyncio.to_thread(lab.start)
    await asyncio.to_thread(lab.site.install_prompts, lab.settings.prompts_dir)


@contextlib.asynccontextmanager
async def running_lab(settings: Settings) -> AsyncIterator[Lab]:
    """The lab of ``settings``, started with the line's prompts; stopped however it ends."""
    await build_prompts(settings)
    lab = Lab(settings)
    try:
        await start_lab(lab)  # inside the try: a failure half-way still stops it
        yield lab
    finally:
        await asyncio.to_thread(lab.stop)
