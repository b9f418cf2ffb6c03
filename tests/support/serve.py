"""``siaga112 serve`` as a process of its own, as a site runs it, for tests that kill it
(a crash: SIGKILL to its whole process group, nothing runs on the way out)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from telephony.settings import ENV_PREFIX, Settings
from tests.support.polling import eventually

REPOSITORY = Path(__file__).resolve().parents[2]


def settings_argv(settings: Settings) -> list[str]:
    """``--set name=value`` for every setting that is not its default, in the text form the
    settings loader reads back (lists comma-joined, None empty)."""
    defaults = Settings()
    argv = []
    for field in dataclasses.fields(Settings):
        value = getattr(settings, field.name)
        if value == getattr(defaults, field.name):
            continue
        if value is None:
            text = ""
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, tuple):
            text = ",".join(str(item) for item in value)
        else:
            text = str(value)
        argv += ["--set", f"{field.name}={text}"]
    return argv


async def _accepting(host: str, port: int) -> bool | None:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return None
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


@contextlib.asynccontextmanager
async def serve_process(settings: Settings, log: Path, *, within: float = 60.0
                        ) -> AsyncIterator[asyncio.subprocess.Process]:
    """The line for ``settings`` in its own process (output appended to ``log``), once its
    FastAGI server takes connections; killed afterwards if the test has not."""
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith((ENV_PREFIX, "PG"))}
    environ["PYTHONPATH"] = str(REPOSITORY)
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "telephony", *settings_argv(settings), "serve",
            stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
            env=environ, cwd=REPOSITORY, start_new_session=True)
    try:
        async def up() -> bool | None:
            assert process.returncode is None, log.read_text(errors="replace")[-3000:]
            return await _accepting(settings.agi_host, settings.agi_port)

        await eventually("the line's FastAGI server", up, within)
        yield process
    finally:
        await kill_process(process)


async def kill_process(process: asyncio.subprocess.Process) -> None:
    """SIGKILL to the process's group (the line and any worker it started) and reap it."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
