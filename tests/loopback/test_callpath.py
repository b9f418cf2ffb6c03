"""The FastAGI IVR runs in a process of its own (telephony/callpath.py): the listening socket
is that process's, not the line's; a caller's AGI exchange goes on while the line's main loop
is held; that process alone runs at the real-time priority the settings ask for; one that is
killed or hangs is replaced and serves the next call; and a line that is killed takes it
along, leaving the port free."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from telephony import callpath
from telephony.app import running_line
from telephony.settings import Settings
from tests.support.agi import WAIT, environment
from tests.support.callpath import alive, holds_listener, killed_and_replaced
from tests.support.net import free_port
from tests.support.polling import eventually

HOLD = 1.5  # how long the main loop is held, as a long report or a stalled handler would
REPOSITORY = Path(__file__).resolve().parents[2]


def first_command(port: int) -> tuple[float, bytes]:
    """An IVR session as Asterisk opens it, from a plain thread: the seconds from sending the
    environment to the IVR's first command, and that command."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as connection:
        connection.sendall(environment("ivr", f"{int(time.time())}.1", arguments=("112",)))
        sent = time.monotonic()
        line = connection.makefile("rb").readline()
        return time.monotonic() - sent, line


async def served_by_the_ivr(port: int) -> None:
    _, command = await asyncio.to_thread(first_command, port)
    assert command.startswith(b"GOSUB siaga112-menu "), command


async def test_the_fastagi_socket_is_the_call_path_process_s(line_settings: Settings) -> None:
    async with running_line(line_settings) as line:
        pid = line.callpath.pid
        assert pid is not None and pid != os.getpid()
        assert holds_listener(pid, line.callpath.port)
        assert not holds_listener(os.getpid(), line.callpath.port)
        await served_by_the_ivr(line.callpath.port)
        assert line.callpath.serving
        registry = line.metrics.registry

        async def exported() -> bool | None:
            # The session the fake Asterisk closed, and the IVR loop's stalls, as the line's.
            sessions = registry.get_sample_value("siaga112_agi_session_seconds_count",
                                                 {"route": "ivr", "outcome": "hangup"})
            stalls = registry.get_sample_value("siaga112_event_loop_stall_seconds_count",
                                               {"loop": "callpath"})
            return True if sessions == 1 and stalls else None

        await eventually("the call path's figures in the line's metrics", exported, within=10)
    assert not alive(pid)


async def test_the_ivr_answers_while_the_main_loop_is_held(line_settings: Settings) -> None:
    async with running_line(line_settings) as line:
        asterisk = asyncio.get_running_loop().run_in_executor(
            None, first_command, line.callpath.port)
        # Blocks the main loop on purpose: the stall under test, not a wait for something.
        time.sleep(HOLD)  # noqa: ASYNC251
        waited, command = await asterisk
    assert command.startswith(b"GOSUB siaga112-menu "), command
    assert waited < HOLD / 3, f"the IVR waited {waited:.2f} s for the main loop"


async def test_the_call_path_process_runs_at_the_priority_asked(line_settings: Settings
                                                                 ) -> None:
    if os.geteuid() != 0:
        pytest.skip("raising a process's priority needs root (or CAP_SYS_NICE)")
    async with running_line(line_settings) as line:
        pid = line.callpath.pid
        assert pid is not None
        assert os.sched_getscheduler(pid) == os.SCHED_RR
        assert os.sched_getparam(pid).sched_priority == line_settings.callpath_rt_priority
        assert os.sched_getscheduler(threading.get_native_id()) == os.SCHED_OTHER


async def test_a_killed_call_path_process_is_replaced_and_serves_the_next_call(
    line_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_line(line_settings) as line:
        killed, pid = await killed_and_replaced(line.callpath)
        assert holds_listener(pid, line.callpath.port)
        await served_by_the_ivr(line.callpath.port)
    restarts = [r.getMessage() for r in caplog.records if r.name == "telephony.callpath"
                and r.levelno == logging.ERROR]
    assert restarts == [f"the call path process {killed} was killed by SIGKILL; starting "
                        "another (calls fail open until it listens)"]


async def test_a_hung_call_path_process_is_killed_and_replaced(
    line_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(callpath, "HANG_SECONDS", 1.0)
    async with running_line(line_settings) as line:
        hung = line.callpath.pid
        assert hung is not None
        os.kill(hung, signal.SIGSTOP)
        try:
            async def replaced() -> int | None:
                pid = line.callpath.pid
                return pid if line.callpath.serving and pid != hung else None

            await eventually("the hung call path process replaced", replaced, within=20)
            assert not alive(hung)
            await served_by_the_ivr(line.callpath.port)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(hung, signal.SIGKILL)


async def test_a_killed_line_leaves_no_call_path_process(settings: Settings) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    line = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.callpath", str(port), str(settings.state_dir),
        stdout=asyncio.subprocess.PIPE, env=env, cwd=REPOSITORY)
    try:
        assert line.stdout is not None
        async with asyncio.timeout(30):
            child = int(await line.stdout.readline())
        assert holds_listener(child, port)
    finally:
        line.kill()
        await line.wait()

    async def gone() -> bool | None:
        return True if not alive(child) else None

    await eventually("the call path process gone with its line", gone, within=10)
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))  # the port is free for the next line
