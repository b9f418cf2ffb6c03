"""FastAGI throughput and latency: our server, panoramisk's, and a pyst2 process per call.

A simulated Asterisk runs N calls, ``--concurrency`` at a time, over loopback. Each call
sends the environment block, then answers the IVR's commands: GET DATA (a digit), then five
SET VARIABLE, then waits for the IVR to close. The servers run in a child process so that
they do not share an event loop (or a core) with the simulator.

Reported: calls per second; the IVR side's CPU time per call (the server process, or every
pyst2 process); ``setup``, from the environment sent to the first command received; ``cmd``,
from a reply sent to the next command received, i.e. the IVR side's turnaround per command
(parse the reply, run the flow, encode, write, plus loopback and queueing behind other calls).

Run: ``python bench/fastagi_bench.py [--sessions 2000] [--concurrency 100]``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telephony.agi.channel import AgiChannel
from telephony.agi.server import AgiSession, FastAgiConfig, FastAgiServer

BENCH_SCRIPT = Path(__file__).resolve()
PYST2_SCRIPT = BENCH_SCRIPT.parent / "pyst2_ivr_agi.py"
# What the IVR publishes after the digit (IVR_CHOICE), as the real flow does.
VARIABLES = (
    ("IVR_OUTCOME", "chosen"),
    ("IVR_ROUTE", "ambulans"),
    ("IVR_LINE", "112"),
    ("IVR_QUEUE", "q-medis"),
)
EXPECTED_VERBS = ("GET DATA", *["SET VARIABLE"] * (1 + len(VARIABLES)))
SESSION_BOUND = 30.0  # seconds; a stuck session is an error, not a hang of the bench


def environment(uniqueid: str) -> bytes:
    """The environment block Asterisk 22 sends for AGI(agi://127.0.0.1:port/ivr)."""
    lines = [
        "agi_network: yes",
        "agi_network_script: ivr",
        "agi_request: agi://127.0.0.1:4573/ivr",
        "agi_channel: PJSIP/carrier-00000006",
        "agi_language: id",
        "agi_type: PJSIP",
        f"agi_uniqueid: {uniqueid}",
        "agi_version: 22.1.0",
        "agi_callerid: 081234567890",
        "agi_calleridname: unknown",
        "agi_callingpres: 0",
        "agi_callingani2: 0",
        "agi_callington: 0",
        "agi_callingtns: 0",
        "agi_dnid: 112",
        "agi_rdnis: unknown",
        "agi_context: siaga112-ivr",
        "agi_extension: s",
        "agi_priority: 3",
        "agi_enhanced: 0.0",
        "agi_accountcode: ",
        "agi_threadid: 140679758526144",
        "",
    ]
    return "".join(line + "\n" for line in lines).encode()


# --- the IVR under test, once per implementation --------------------------------------


async def ours_ivr(session: AgiSession) -> None:
    """The bench IVR on FastAgiServer, through the same AgiChannel the real flow uses."""
    channel = AgiChannel(session)
    digit = await channel.ask_digit(["siaga112/menu"], 5000)
    await channel.set_variable("IVR_CHOICE", digit or "")
    for name, value in VARIABLES:
        await channel.set_variable(name, value)


async def panoramisk_ivr(request: Any) -> None:
    """The bench IVR on panoramisk (an async function: add_route would wrap a plain one
    with asyncio.coroutine, which Python 3.11 no longer has)."""
    reply = await request.send_command("GET DATA siaga112/menu 5000 1")
    digit = reply["result"][0]
    await request.send_command(f'SET VARIABLE IVR_CHOICE "{digit}"')
    for name, value in VARIABLES:
        await request.send_command(f'SET VARIABLE {name} "{value}"')


async def serve(kind: str) -> None:
    """Child process: serve FastAGI on a free port, print it, stop when stdin closes."""
    logging.basicConfig(level=logging.WARNING)
    if kind == "ours":
        config = FastAgiConfig(port=0, max_sessions=100_000)
        server = FastAgiServer(config, {"ivr": ours_ivr})
        await server.start()
        print(f"PORT {server.port}", flush=True)
        await asyncio.to_thread(sys.stdin.buffer.read)
        await server.stop()
        return
    from panoramisk import fast_agi  # noqa: PLC0415 - only the panoramisk child needs it

    application = fast_agi.Application()
    application.add_route("ivr", panoramisk_ivr)
    listener = await asyncio.start_server(application.handler, "127.0.0.1", 0)
    print(f"PORT {listener.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.to_thread(sys.stdin.buffer.read)
    listener.close()


# --- the simulated Asterisk --------------------------------------------------------------


@dataclass
class Stats:
    """Timings of one implementation's run."""

    setup: list[float] = field(default_factory=list)
    command: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    completed: int = 0
    wall: float = 0.0
    cpu: float = 0.0  # user + system seconds of the IVR side's processes


def children_cpu() -> float:
    """CPU seconds of every child process reaped so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def speak_asterisk(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, uniqueid: str, stats: Stats
) -> None:
    """One call's exchange, timing each turnaround."""
    writer.write(environment(uniqueid))
    await writer.drain()
    sent = time.perf_counter()
    for index, verb in enumerate(EXPECTED_VERBS):
        line = await reader.readuntil(b"\n")
        received = time.perf_counter()
        (stats.command if index else stats.setup).append(received - sent)
        if not line.startswith(verb.encode()):
            raise RuntimeError(f"expected {verb}, got {line!r}")
        writer.write(b"200 result=1\n")
        await writer.drain()
        sent = time.perf_counter()
    if rest := await reader.read():
        raise RuntimeError(f"expected the IVR to close, got {rest!r}")
    stats.completed += 1


async def tcp_call(port: int, uniqueid: str, stats: Stats) -> None:
    """A FastAGI call: Asterisk connects to the server."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await speak_asterisk(reader, writer, uniqueid, stats)
    finally:
        writer.close()
        await writer.wait_closed()


async def process_call(uniqueid: str, stats: Stats) -> None:
    """A classic AGI call: Asterisk starts the script and talks over its stdin/stdout."""
    assignments = [f"{name}={value}" for name, value in VARIABLES]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PYST2_SCRIPT),
        *assignments,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    finished = False
    try:
        await speak_asterisk(process.stdout, process.stdin, uniqueid, stats)
        finished = True
    finally:
        process.stdin.close()
        if not finished and process.returncode is None:
            # The exchange failed: Asterisk would SIGHUP the script; do not wait for it.
            process.kill()
        await process.wait()


async def drive(
    sessions: int, concurrency: int, call: Callable[[str, Stats], Awaitable[None]]
) -> Stats:
    """Run ``sessions`` calls, ``concurrency`` at a time."""
    stats = Stats()
    slots = asyncio.Semaphore(concurrency)

    async def one(number: int) -> None:
        async with slots:
            try:
                async with asyncio.timeout(SESSION_BOUND):
                    await call(f"1795427152.{number}", stats)
            except (OSError, RuntimeError, TimeoutError, asyncio.IncompleteReadError) as exc:
                stats.errors.append(f"{type(exc).__name__}: {exc}")

    started = time.perf_counter()
    await asyncio.gather(*(one(number) for number in range(sessions)))
    stats.wall = time.perf_counter() - started
    return stats


async def run_processes(sessions: int, concurrency: int) -> Stats:
    """Drive the pyst2 script, one process per call, as Asterisk's AGI() would."""
    cpu_before = children_cpu()
    stats = await drive(sessions, concurrency, process_call)
    stats.cpu = children_cpu() - cpu_before
    return stats


async def run_server_child(kind: str, sessions: int, concurrency: int) -> Stats:
    """Start a server child process, drive it, stop it."""
    cpu_before = children_cpu()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BENCH_SCRIPT),
        "--serve",
        kind,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        async with asyncio.timeout(SESSION_BOUND):
            banner = await child.stdout.readline()
        if not banner.startswith(b"PORT "):
            raise RuntimeError(f"{kind} server did not start: {banner!r}")
        port = int(banner.split()[1])

        async def call(uniqueid: str, stats: Stats) -> None:
            await tcp_call(port, uniqueid, stats)

        stats = await drive(sessions, concurrency, call)
    finally:
        child.stdin.close()
        try:
            async with asyncio.timeout(SESSION_BOUND):
                await child.wait()
        except TimeoutError:
            child.kill()
            await child.wait()
    stats.cpu = children_cpu() - cpu_before
    return stats


def _ms(samples: list[float], quantile: int) -> str:
    if len(samples) < 2:
        return "-"
    return f"{statistics.quantiles(samples, n=100)[quantile - 1] * 1000:.2f}"


async def main() -> None:
    """Parse arguments, run the three implementations, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2000, help="calls per FastAGI server")
    parser.add_argument("--concurrency", type=int, default=100, help="calls in flight at once")
    parser.add_argument(
        "--classic-sessions",
        type=int,
        default=200,
        help="calls for the pyst2 process-per-call run (each starts a Python interpreter)",
    )
    parser.add_argument("--serve", choices=("ours", "panoramisk"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        await serve(args.serve)
        return

    classic = min(args.classic_sessions, args.sessions)
    runs = [
        ("siaga112 FastAgiServer", await run_server_child("ours", args.sessions, args.concurrency)),
        (
            "panoramisk 1.4 Application",
            await run_server_child("panoramisk", args.sessions, args.concurrency),
        ),
        ("pyst2 0.5.1 process per call", await run_processes(classic, args.concurrency)),
    ]
    print(
        f"FastAGI over loopback: {len(EXPECTED_VERBS)} commands per call, "
        f"concurrency {args.concurrency}"
    )
    header = f"{'implementation':<30}{'calls':>7}{'calls/s':>9}{'cpu/call':>10}"
    header += f"{'setup p50':>11}{'cmd p50':>9}{'cmd p99':>9}{'errors':>8}"
    print(header)
    print("-" * len(header))
    for name, stats in runs:
        cpu_per_call = stats.cpu / stats.completed * 1000 if stats.completed else 0.0
        print(
            f"{name:<30}{stats.completed:>7}{stats.completed / stats.wall:>9.0f}"
            f"{cpu_per_call:>10.2f}{_ms(stats.setup, 50):>11}"
            f"{_ms(stats.command, 50):>9}{_ms(stats.command, 99):>9}{len(stats.errors):>8}"
        )
    print(
        "times in ms; cpu/call: the IVR side's processes; setup: environment sent -> first "
        "command; cmd: reply sent -> next command"
    )
    for name, stats in runs:
        if stats.errors:
            print(f"{name}: first error: {stats.errors[0]}")


if __name__ == "__main__":
    asyncio.run(main())
