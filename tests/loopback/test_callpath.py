"""The FastAGI IVR runs on its own thread and loop (telephony/callpath.py): a caller's AGI
exchange goes on while the main loop, where the AMI listener, the recorder, HTTP and the
reports run, is held; and that thread alone runs at the real-time priority the settings ask
for."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time

import pytest

from telephony.app import running_line
from telephony.settings import Settings
from tests.support.agi import WAIT, environment

HOLD = 1.5  # how long the main loop is held, as a long report or a stalled handler would


def first_command(port: int) -> tuple[float, bytes]:
    """An IVR session as Asterisk opens it, from a plain thread: the seconds from sending the
    environment to the IVR's first command, and that command."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as connection:
        connection.sendall(environment("ivr", f"{int(time.time())}.1", arguments=("112",)))
        sent = time.monotonic()
        line = connection.makefile("rb").readline()
        return time.monotonic() - sent, line


async def test_the_ivr_answers_while_the_main_loop_is_held(line_settings: Settings) -> None:
    async with running_line(line_settings) as line:
        asterisk = asyncio.get_running_loop().run_in_executor(
            None, first_command, line.callpath.port)
        # Blocks the main loop on purpose: the stall under test, not a wait for something.
        time.sleep(HOLD)  # noqa: ASYNC251
        waited, command = await asterisk
    assert command.startswith(b"GOSUB siaga112-menu "), command
    assert waited < HOLD / 3, f"the IVR waited {waited:.2f} s for the main loop"


async def test_the_call_path_thread_runs_at_the_priority_asked(line_settings: Settings
                                                                ) -> None:
    if os.geteuid() != 0:
        pytest.skip("raising a thread's priority needs root (or CAP_SYS_NICE)")
    async with running_line(line_settings):
        (thread,) = [t for t in threading.enumerate() if t.name == "call-path"]
        assert thread.native_id is not None
        assert os.sched_getscheduler(thread.native_id) == os.SCHED_RR
        assert os.sched_getparam(thread.native_id).sched_priority == \
            line_settings.callpath_rt_priority
        assert os.sched_getscheduler(threading.get_native_id()) == os.SCHED_OTHER
