"""A line server (``python -m telephony serve``) as a process of its own, as a site runs it:
the one way the lab (its cluster nodes), the tests and the benchmarks start a line they then
kill (``kill -9``: a crash, nothing runs on the way out), stall (SIGSTOP) or stop (SIGTERM:
the line drains)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from types import TracebackType
from urllib.error import HTTPError
from urllib.request import urlopen

from telephony.lab.chroot import LabError
from telephony.metrics.probe import readyz_url
from telephony.settings import ENV_PREFIX, Settings

log = logging.getLogger(__name__)


def settings_environment(settings: Settings) -> dict[str, str]:
    """``SIAGA112_*`` variables that make ``load_settings`` give back ``settings`` (the
    fields that differ from the defaults), for a line server in its own process."""
    defaults = Settings()
    env: dict[str, str] = {}
    for field in dataclasses.fields(Settings):
        value = getattr(settings, field.name)
        if value == getattr(defaults, field.name):
            continue
        if isinstance(value, tuple):
            # Each item's text form is what the settings loader reads back (ClusterNode's
            # name=address:sip_port:agi_port included).
            text = ",".join(str(item) for item in value)
        else:
            text = "" if value is None else str(value)
        env[f"SIAGA112_{field.name.upper()}"] = text
    return env


REPOSITORY = Path(__file__).resolve().parents[2]
LINE_PARTS = frozenset({"ami", "fastagi", "database"})  # what /readyz reports


class LineServer:
    """``python -m telephony serve`` for one node, in its own process group, as a site runs
    it: the one way the lab, the tests and the benchmarks run a line server they kill, stall
    (SIGSTOP) or stop. Its settings go in as ``SIAGA112_*`` variables
    (:func:`settings_environment`), its output (stdout and stderr) to ``log_file``; it is ready
    once its ``/readyz`` (on ``http_port``, which must not be 0) reports the parts a caller
    waits for up (by default the database, AMI and FastAGI)."""

    def __init__(self, settings: Settings, *, ready_timeout: float = 60.0,
                 log_file: Path | None = None) -> None:
        if settings.http_port == 0:
            raise LabError("a line server needs an http_port of its own: /readyz says when it "
                           "is ready")
        self.settings = settings
        self.ready_timeout = ready_timeout
        self.log_file = log_file or settings.state_dir / "line.log"
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        process = self._process
        return None if process is None or process.returncode is not None else process.pid

    @property
    def returncode(self) -> int | None:
        """Its exit status once it ended."""
        return None if self._process is None else self._process.returncode

    def parts_up(self) -> set[str]:
        """What ``/readyz`` says is up now (nothing if it does not answer)."""
        url = readyz_url({"SIAGA112_HTTP_HOST": self.settings.http_host,
                          "SIAGA112_HTTP_PORT": str(self.settings.http_port)})
        try:
            with urlopen(url, timeout=2) as reply:  # noqa: S310 (http:// from readyz_url)
                body = reply.read()
        except HTTPError as exc:  # 503: some part down; the body says which
            body = exc.read()
        except OSError:
            return set()
        try:
            parts = json.loads(body).get("parts", {})
        except ValueError:
            return set()
        return {name for name, state in parts.items() if state == "ok"}

    async def start(self, *, parts: frozenset[str] = LINE_PARTS) -> LineServer:
        """Start the server (unless it runs) and wait until ``parts`` are up (bounded)."""
        if self.pid is None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            # Only the settings given: none of the caller's SIAGA112_* (nor, with a DSN
            # given, its PG* variables) leak in.
            env = {key: value for key, value in os.environ.items()
                   if not key.startswith(ENV_PREFIX)
                   and not (self.settings.database_dsn and key.startswith("PG"))}
            env.update(settings_environment(self.settings))
            # This checkout's code, whichever checkout the interpreter has installed.
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(REPOSITORY), env.get("PYTHONPATH")]))
            with self.log_file.open("ab") as out:
                self._process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "telephony", "serve", env=env, cwd=REPOSITORY,
                    stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                    start_new_session=True)
        await self.wait_ready(parts)
        return self

    async def wait_ready(self, parts: frozenset[str] = LINE_PARTS) -> float:
        """Until ``parts`` are up; the seconds waited. Raises :class:`LabError` if the server
        exits or is not ready within ``ready_timeout``."""
        started = time.monotonic()
        while not parts <= await asyncio.to_thread(self.parts_up):
            if self.pid is None:
                raise LabError(f"line server of {self.settings.asterisk_systemname} exited "
                               f"with {self.returncode}: {self.tail()}")
            if time.monotonic() - started > self.ready_timeout:
                raise LabError(f"line server of {self.settings.asterisk_systemname} not ready "
                               f"within {self.ready_timeout:g} s: {self.tail()}")
            await asyncio.sleep(0.2)
        return time.monotonic() - started

    def signal(self, signum: int, *, group: bool = True) -> None:
        """Send ``signum`` (SIGSTOP, SIGCONT, SIGTERM...) to its whole process group (the
        line and the children it started), or to the line's process alone."""
        pid = self.pid
        if pid is None:
            raise LabError("the line server is not running")
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(pid, signum)
            else:
                os.kill(pid, signum)

    def kill(self) -> None:
        """SIGKILL, as a machine dying would end it (no drain, no spool flush)."""
        self.signal(signal.SIGKILL)

    async def wait(self) -> int:
        """Until it exits (bound it with ``asyncio.timeout``); its exit status."""
        process = self._process
        if process is None:
            raise LabError("the line server was never started")
        return await process.wait()

    async def stop(self) -> None:
        """SIGTERM (the line drains), SIGKILL after 20 s; bounded."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGCONT)  # a stalled line cannot stop
        for sig, grace in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                async with asyncio.timeout(grace):
                    await process.wait()
            except TimeoutError:
                log.warning("line server pid %d still alive after %s", process.pid, sig.name)
            else:
                return
        raise LabError(f"line server pid {process.pid} survived SIGKILL")

    def output(self) -> str:
        """Everything it wrote (stdout and stderr) so far."""
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 30) -> str:
        """The last ``lines`` of its output, for an error message."""
        return "\n".join(self.output().splitlines()[-lines:]) or f"(nothing in {self.log_file})"

    async def __aenter__(self) -> LineServer:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()
