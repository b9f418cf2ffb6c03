"""FastAGI throughput and latency: our server, panoramisk's, and a pyst2 process per call.

A simulated Asterisk runs N calls, ``--concurrency`` at a time, over loopback. Each call
sends the environment block, then answers the IVR's commands: GET DATA (a digit), then five
SET VARIABLE, then waits for the IVR to close. The servers run in a child process so that
they do not share an event loop with the simulator; where the OS allows, the server is pinned
to one core and the simulator to another. The simulator speaks through asyncio callbacks,
not streams, so that it costs less per call than the servers it measures: the rate is then
what the server can do on its core, not what the simulator can keep up with. Our server and
panoramisk's run one after the other, ``--rounds`` times, so that a neighbour's load on a
shared machine falls on both alike; the ratio is taken round by round.

Reported: calls per second (min / median / max over the rounds); the IVR side's CPU time per
call (the server process during the run, start-up excluded, or every pyst2 process); ``setup``,
from the environment sent to the first command received; ``cmd``, from a reply sent to the
next command received, i.e. the IVR side's turnaround per command (parse the reply, run the
flow, encode, write, plus loopback and queueing behind other calls).

Run: ``python bench/fastagi_bench.py [--sessions 2000] [--concurrency 100] [--rounds 8]``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import selectors
import socket
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
# The IVR side (server child, pyst2 processes) gets the last core, the simulator the first.
CORES = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
SERVER_CORE, SIMULATOR_CORE = CORES[-1], CORES[0]


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


async def stdin_closed() -> None:
    """Wait for the parent to close our stdin, on the event loop: a thread blocked reading it
    would make the process a threaded one, whose unmapping of memory costs more (the kernel
    then flushes other cores' address caches) and would tilt the comparison."""
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    await reader.read()


async def serve(kind: str) -> None:
    """Child process: serve FastAGI on a free port, print it, stop when stdin closes."""
    logging.basicConfig(level=logging.WARNING)
    if kind == "ours":
        config = FastAgiConfig(port=0, max_sessions=100_000)
        server = FastAgiServer(config, {"ivr": ours_ivr})
        await server.start()
        print(f"PORT {server.port}", flush=True)
        await stdin_closed()
        await server.stop()
        return
    from panoramisk import fast_agi  # noqa: PLC0415 - only the panoramisk child needs it

    application = fast_agi.Application()
    application.add_route("ivr", panoramisk_ivr)
    listener = await asyncio.start_server(application.handler, "127.0.0.1", 0)
    print(f"PORT {listener.sockets[0].getsockname()[1]}", flush=True)
    await stdin_closed()
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
    """One call's exchange over a process's pipes, timing each turnaround."""
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


class _Call:
    """One simulated call's socket and where its exchange stands."""

    def __init__(self, sock: socket.socket, uniqueid: str) -> None:
        self.sock = sock
        self.uniqueid = uniqueid
        self.received = b""
        self.answered = 0  # commands answered so far
        self.sent = 0.0  # when we last wrote: the environment, then each reply
        self.started = time.monotonic()
        self.connected = False


def simulate(port: int, sessions: int, concurrency: int) -> Stats:
    """Play Asterisk for ``sessions`` calls, ``concurrency`` at a time, over plain non-blocking
    sockets and one selector: a few system calls and little Python per command, so that
    the simulator is not what limits the rate."""
    stats = Stats()
    selector = selectors.DefaultSelector()
    started = 0
    calls: set[_Call] = set()

    def end(call: _Call, problem: str | None = None) -> None:
        selector.unregister(call.sock)
        call.sock.close()
        calls.discard(call)
        if problem is None:
            stats.completed += 1
        else:
            stats.errors.append(f"call {call.uniqueid}: {problem}")

    def receive(call: _Call) -> None:
        data = call.sock.recv(65536)
        if not data:  # the IVR closed the connection: the call is over
            if call.answered < len(EXPECTED_VERBS) or call.received:
                end(call, f"closed after {call.answered} commands, then {call.received!r}")
            else:
                end(call)
            return
        call.received += data
        while (newline := call.received.find(b"\n")) >= 0:
            line, call.received = call.received[: newline + 1], call.received[newline + 1 :]
            now = time.perf_counter()
            if call.answered == len(EXPECTED_VERBS):
                end(call, f"expected the IVR to close, got {line!r}")
                return
            (stats.command if call.answered else stats.setup).append(now - call.sent)
            verb = EXPECTED_VERBS[call.answered]
            if not line.startswith(verb.encode()):
                end(call, f"expected {verb}, got {line!r}")
                return
            call.answered += 1
            call.sock.send(b"200 result=1\n")
            call.sent = time.perf_counter()

    def connected(call: _Call) -> None:
        error = call.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            end(call, f"connect: {os.strerror(error)}")
            return
        call.connected = True
        selector.modify(call.sock, selectors.EVENT_READ, call)
        call.sock.send(environment(call.uniqueid))
        call.sent = time.perf_counter()

    began = time.perf_counter()
    while started < sessions or calls:
        while started < sessions and len(calls) < concurrency:
            # Connecting without blocking: a connect the kernel retries (a SYN dropped on a
            # busy machine waits a second) must hold up its own call, not the others.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            call = _Call(sock, f"1795427152.{started}")
            started += 1
            calls.add(call)
            selector.register(sock, selectors.EVENT_WRITE, call)
        for key, _ in selector.select(timeout=1.0):
            try:
                (receive if key.data.connected else connected)(key.data)
            except OSError as exc:
                end(key.data, f"{type(exc).__name__}: {exc}")
        stuck = [c for c in calls if time.monotonic() - c.started > SESSION_BOUND]
        for call in stuck:
            end(call, f"no end within {SESSION_BOUND:g} s")
    stats.wall = time.perf_counter() - began
    selector.close()
    return stats


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
    pin(process.pid, SERVER_CORE)
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


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pin(pid: int, core: int) -> None:
    """Run ``pid`` (0: this process) on ``core`` only, when there are cores to choose from."""
    if hasattr(os, "sched_setaffinity") and len(CORES) > 1:
        os.sched_setaffinity(pid, {core})


async def run_server_child(kind: str, sessions: int, concurrency: int) -> Stats:
    """Start a server child process on the last core, drive it, stop it."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BENCH_SCRIPT),
        "--serve",
        kind,
        "--core",
        str(SERVER_CORE),
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

        cpu_before = process_cpu(child.pid)
        stats = await asyncio.to_thread(simulate, port, sessions, concurrency)
        stats.cpu = process_cpu(child.pid) - cpu_before
    finally:
        child.stdin.close()
        try:
            async with asyncio.timeout(SESSION_BOUND):
                await child.wait()
        except TimeoutError:
            child.kill()
            await child.wait()
    return stats


def _ms(samples: list[float], quantile: int) -> str:
    if len(samples) < 2:
        return "-"
    return f"{statistics.quantiles(samples, n=100)[quantile - 1] * 1000:.2f}"


def _rates(runs: list[Stats]) -> list[float]:
    return [stats.completed / stats.wall for stats in runs]


async def main() -> None:
    """Parse arguments, run the implementations, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2000, help="calls per round and server")
    parser.add_argument("--concurrency", type=int, default=100, help="calls in flight at once")
    parser.add_argument("--rounds", type=int, default=8, help="rounds of both FastAGI servers")
    parser.add_argument(
        "--classic-sessions",
        type=int,
        default=200,
        help="calls for the pyst2 process-per-call run (each starts a Python interpreter)",
    )
    parser.add_argument("--serve", choices=("ours", "panoramisk"), help=argparse.SUPPRESS)
    parser.add_argument("--core", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        if args.core is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {args.core})  # the whole child, before it starts anything
        await serve(args.serve)
        return

    pin(0, SIMULATOR_CORE)
    servers = {"siaga112 FastAgiServer": "ours", "panoramisk 1.4 Application": "panoramisk"}
    runs: dict[str, list[Stats]] = {name: [] for name in servers}
    for round_number in range(args.rounds):
        # Alternate who goes first, so neither always runs on a machine the other warmed.
        order = list(servers) if round_number % 2 == 0 else list(reversed(servers))
        for name in order:
            runs[name].append(
                await run_server_child(servers[name], args.sessions, args.concurrency)
            )
    classic = min(args.classic_sessions, args.sessions)
    if classic:
        runs["pyst2 0.5.1 process per call"] = [await run_processes(classic, args.concurrency)]
    print(
        f"FastAGI over loopback: {len(EXPECTED_VERBS)} commands per call, "
        f"concurrency {args.concurrency}, {args.sessions} calls x {args.rounds} rounds, "
        f"server on core {SERVER_CORE}, simulator on core {SIMULATOR_CORE}"
    )
    header = f"{'implementation':<30}{'calls/s min':>12}{'median':>8}{'max':>8}{'cpu/call':>10}"
    header += f"{'setup p50':>11}{'cmd p50':>9}{'cmd p99':>9}{'errors':>8}"
    print(header)
    print("-" * len(header))
    for name, stats_list in runs.items():
        rates = _rates(stats_list)
        completed = sum(stats.completed for stats in stats_list)
        cpu = sum(stats.cpu for stats in stats_list)
        setup = [sample for stats in stats_list for sample in stats.setup]
        command = [sample for stats in stats_list for sample in stats.command]
        errors = [error for stats in stats_list for error in stats.errors]
        print(
            f"{name:<30}{min(rates):>12.0f}{statistics.median(rates):>8.0f}{max(rates):>8.0f}"
            f"{(cpu / completed * 1000 if completed else 0.0):>10.3f}{_ms(setup, 50):>11}"
            f"{_ms(command, 50):>9}{_ms(command, 99):>9}{len(errors):>8}"
        )
        if errors:
            print(f"  first error: {errors[0]}")
    ours, theirs = (_rates(runs[name]) for name in servers)
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    print(
        f"siaga112 / panoramisk calls/s, round by round: min {min(ratios):.2f}x, "
        f"median {statistics.median(ratios):.2f}x, max {max(ratios):.2f}x"
    )
    # Calls per second of server CPU: what one core would serve, whatever the neighbours took.
    per_cpu = [
        sum(stats.completed for stats in runs[name]) / sum(stats.cpu for stats in runs[name])
        for name in servers
    ]
    print(
        f"calls per server CPU second: siaga112 {per_cpu[0]:,.0f}, panoramisk "
        f"{per_cpu[1]:,.0f} ({per_cpu[0] / per_cpu[1]:.2f}x)"
    )
    if "pyst2 0.5.1 process per call" in runs:
        pyst2 = _rates(runs["pyst2 0.5.1 process per call"])[0]
        print(f"siaga112 / pyst2 calls/s: {statistics.median(ours) / pyst2:.0f}x")
    print(
        "times in ms; cpu/call: the IVR side's processes while serving; setup: environment "
        "sent -> first command; cmd: reply sent -> next command"
    )


if __name__ == "__main__":
    asyncio.run(main())
