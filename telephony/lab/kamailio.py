"""The lab's SIP front: Kamailio on loopback, in a temporary directory, in front of lab nodes.

:class:`Front` renders ``kamailio-conf/`` exactly as a site does
(:func:`telephony.kamailio.config.install_kamailio_config`) into its own temporary directory
and runs the Debian package's ``kamailio`` there in the foreground (``-DD -E``, its log in
``kamailio.log`` of that directory), listening on ``kamailio_host:kamailio_port`` (UDP) and,
for browser softphones, ``kamailio_host:kamailio_ws_port`` (WebSocket). It is ready once it
answers a SIP OPTIONS. Its nodes are the lab instances of ``cluster_nodes``
(:class:`telephony.lab.chroot.Lab`, each with its own ``asterisk_systemname`` and ports);
their operator endpoints point at the front, where the test phones register.

Every wait is bounded; :meth:`Front.stop` ends the process group it started, and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

from telephony.kamailio.config import install_kamailio_config
from telephony.lab.chroot import LabError
from telephony.settings import Settings

log = logging.getLogger(__name__)

KAMAILIO = "kamailio"


def sip_options_answered(host: str, port: int, *, within: float = 0.5) -> bool:
    """True when a SIP OPTIONS sent to ``host:port`` gets any SIP reply within ``within`` s."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host if host.startswith("127.") else "127.0.0.1", 0))
        local_port = sock.getsockname()[1]
        tag = uuid.uuid4().hex[:12]
        request = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bK{tag};rport\r\n"
            f"From: <sip:probe@127.0.0.1>;tag={tag}\r\nTo: <sip:{host}:{port}>\r\n"
            f"Call-ID: {tag}@siaga112-lab\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 5\r\n"
            "Content-Length: 0\r\n\r\n")
        sock.settimeout(within)
        try:
            sock.sendto(request.encode(), (host, port))
            reply, _ = sock.recvfrom(4096)
        except OSError:  # a timeout, or a refused port
            return False
        return reply.startswith(b"SIP/2.0 ")


class Front:
    """Kamailio for the lab, configured from ``settings`` (its ``kamailio_*`` and the phones'
    database); ``async with Front(settings) as front:`` starts and stops it."""

    def __init__(self, settings: Settings, *, boot_timeout: float = 15.0) -> None:
        if not settings.kamailio_nodes:
            raise LabError("the front needs cluster_nodes")
        self.settings = settings
        self.boot_timeout = boot_timeout
        self.workdir = Path(tempfile.mkdtemp(prefix="siaga112-kamailio-"))
        self.log_file = self.workdir / "kamailio.log"
        self._process: asyncio.subprocess.Process | None = None

    @property
    def address(self) -> tuple[str, int]:
        """Where the carrier sends its calls and the phones register."""
        return self.settings.kamailio_host, self.settings.kamailio_port

    def log_text(self) -> str:
        """What Kamailio logged so far."""
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    async def start(self) -> Front:
        """Render the configuration, start Kamailio and wait until it answers OPTIONS."""
        if shutil.which(KAMAILIO) is None:
            raise LabError("kamailio is not installed (scripts/setup installs it)")
        cfg = install_kamailio_config(self.settings, self.workdir / "etc")
        with self.log_file.open("ab") as out:
            self._process = await asyncio.create_subprocess_exec(
                KAMAILIO, "-f", str(cfg), "-DD", "-E", "-m", "64", "-M", "8",
                "-P", str(self.workdir / "kamailio.pid"), "-Y", str(self.workdir),
                "-w", str(self.workdir),
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True)
        host, port = self.address
        started = time.monotonic()
        while not await asyncio.to_thread(sip_options_answered, host, port):
            if self._process.returncode is not None:
                raise LabError(f"kamailio exited with {self._process.returncode}:\n"
                               f"{self.log_text()[-3000:]}")
            if time.monotonic() - started > self.boot_timeout:
                await self.stop()
                raise LabError(f"kamailio did not answer within {self.boot_timeout:g} s:\n"
                               f"{self.log_text()[-3000:]}")
            await asyncio.sleep(0.1)
        log.info("kamailio front on %s:%d for %s in %.2f s", host, port,
                 ", ".join(self.settings.kamailio_nodes), time.monotonic() - started)
        return self

    async def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL after 5 s; bounded."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                async with asyncio.timeout(5):
                    await process.wait()
            except TimeoutError:
                log.warning("kamailio pid %d still alive after %s", process.pid, sig.name)
            else:
                return
        raise LabError(f"kamailio pid {process.pid} survived SIGKILL")

    async def __aenter__(self) -> Front:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            await self.stop()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
