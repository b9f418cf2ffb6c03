"""``siaga112 demo`` stopped by SIGTERM or Ctrl-C (SIGINT) stops its lab Asterisk and its sipp
processes: none of the processes the demo started is alive afterwards, and the lab instance's
pid file names no running Asterisk. Its own ports and lab instance, so it runs beside the
other end-to-end modules.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from telephony.lab.chroot import Lab
from telephony.settings import load_settings
from tests.support.net import free_port, own_lab_values

pytestmark = pytest.mark.e2e

SIAGA112 = str(Path(sys.executable).parent / "siaga112")
OVERRIDES = {**own_lab_values("demo-stop"), "http_port": "0"}
UP_WITHIN = 240.0  # the lab boots, the demo calls end (about 40 s here); generous for CI
STOP_WITHIN = 60.0  # sipp's SIGUSR1 grace (5 s) and the lab's bounded stop


@pytest.fixture
def demo_settings() -> Iterator[dict[str, str]]:
    state_dir = Path(tempfile.mkdtemp(prefix="siaga112-demo-stop-"))
    state_dir.chmod(0o755)  # the postgres system user must reach the data directory below
    yield {**OVERRIDES, "state_dir": str(state_dir), "embedded_pg_port": str(free_port())}
    args = [arg for name, value in OVERRIDES.items() for arg in ("--set", f"{name}={value}")]
    subprocess.run([SIAGA112, *args, "--set", f"state_dir={state_dir}", "db", "stop"],
                   check=False, capture_output=True, timeout=60)
    shutil.rmtree(state_dir, ignore_errors=True)


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def descendants(root: int) -> dict[int, str]:
    """Every live process below ``root``, with its command line."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name in stat is in parentheses and may hold spaces.
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = command_line(pid)
                frontier.append(pid)
    return found


def telephony_processes(root: int) -> dict[int, str]:
    """The demo's Asterisk and sipp processes."""
    return {pid: cmd for pid, cmd in descendants(root).items()
            if cmd.startswith(("sipp ", "/usr/sbin/asterisk ", "asterisk "))}


def read_until(stream: IO[str], marker: str, within: float) -> str:
    """The demo's output up to the line holding ``marker`` (bounded: the demo's own steps
    are bounded, and the stream ends if it dies)."""
    seen = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    pytest.fail(f"no {marker!r} in the demo's output:\n{''.join(seen)[-3000:]}")


def wait_for(pid: int, count: int, within: float) -> dict[int, str]:
    """Bounded polling until ``pid`` runs at least ``count`` Asterisk and sipp processes."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = telephony_processes(pid)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    pytest.fail(f"the demo did not start {count} Asterisk/sipp processes")


def assert_all_gone(processes: dict[int, str], settings: dict[str, str]) -> None:
    alive = {pid: cmd for pid, cmd in processes.items() if command_line(pid) == cmd}
    assert alive == {}
    lab = Lab(load_settings(environ={}, overrides=settings))
    assert not lab.is_running()


@pytest.mark.parametrize(("signum", "when"), [
    (signal.SIGTERM, "Layanan tetap berjalan"),  # kept running after its calls
    (signal.SIGINT, "Menempatkan"),  # in the middle of its calls: Ctrl-C
])
def test_a_signal_stops_the_demos_lab_and_sipp(
    demo_settings: dict[str, str], signum: signal.Signals, when: str
) -> None:
    args = [arg for name, value in demo_settings.items() for arg in ("--set", f"{name}={value}")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    with subprocess.Popen([SIAGA112, *args, "demo", "--keep-running"], env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as demo:
        try:
            assert demo.stdout is not None
            read_until(demo.stdout, when, UP_WITHIN)
            # Asterisk and the operator phones, plus at least one caller during the calls.
            processes = wait_for(demo.pid, 2 if signum is signal.SIGTERM else 3, 30.0)
            assert any(cmd.startswith("sipp ") for cmd in processes.values()), processes
            demo.send_signal(signum)
            rest, _ = demo.communicate(timeout=STOP_WITHIN)
        finally:
            if demo.poll() is None:
                demo.kill()
    assert "Asterisk lab dihentikan." in rest
    assert "Traceback" not in rest, rest[-3000:]
    expected = 0 if signum is signal.SIGTERM else 128 + signum
    assert demo.returncode == expected, rest[-3000:]
    assert_all_gone(processes, demo_settings)
