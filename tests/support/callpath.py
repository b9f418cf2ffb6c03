"""The call path's process (telephony/callpath.py) seen from outside: who holds the FastAGI
socket, its process killed and replaced, and a stand-in line that runs nothing but a call
path, to be killed.

``python -m tests.support.callpath PORT STATE_DIR`` starts a call path on PORT, prints its
process id and waits until killed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

from telephony.callpath import CallPath
from telephony.settings import Settings, load_settings
from telephony.surveys.store import Survey
from tests.support.polling import eventually

LISTEN = "0A"  # the TCP state in /proc/net/tcp


async def killed_and_replaced(path: CallPath, what: str = "a new call path process"
                              ) -> tuple[int, int]:
    """SIGKILL the call path's process; the process that replaces it, once it serves: (the
    killed pid, the new one)."""
    killed = path.pid
    assert killed is not None
    os.kill(killed, signal.SIGKILL)

    async def replaced() -> int | None:
        pid = path.pid
        return pid if path.serving and pid != killed else None

    return killed, await eventually(what, replaced, within=20)


def listening_inodes(port: int) -> set[str]:
    """The inodes of the TCP sockets listening on ``port``."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == LISTEN:
                inodes.add(fields[9])
    return inodes


def holds_listener(pid: int, port: int) -> bool:
    """Whether process ``pid`` has a socket listening on ``port`` among its files."""
    wanted = {f"socket:[{inode}]" for inode in listening_inodes(port)}
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) in wanted:
                return True
        except OSError:
            continue
    return False


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie has)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return False
    return status[status.rindex(")") + 2] != "Z"


class _NoSurveys:
    async def begin(self, survey_id: int, attempt: int) -> bool:
        return False

    async def finish(self, survey_id: int, attempt: int, rating: int | None) -> Survey | None:
        return None


class _Unobserved:
    def session_ended(self, route: str, outcome: str, seconds: float) -> None:
        pass

    def command_answered(self, verb: str, seconds: float) -> None:
        pass


def lone_settings(port: int, state_dir: Path) -> Settings:
    """A call path's settings on ``port``, its files under ``state_dir``."""
    return replace(load_settings(environ={}), agi_port=port, state_dir=state_dir,
                   callpath_rt_priority=0)


async def _main(port: int, state_dir: Path) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = CallPath(lone_settings(port, state_dir), surveys=_NoSurveys(),
                    observer=_Unobserved())
    await path.start()
    print(path.pid, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1]), Path(sys.argv[2])))
