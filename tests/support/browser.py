"""The console in a real browser: headless Debian chromium driven by Playwright
(:func:`open_console`; the ``console_page`` fixture of tests/browser/conftest.py opens it
on the e2e tier's line, tests/cluster on a node's line server)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from playwright.async_api import (
    ConsoleMessage,
    Page,
    ViewportSize,
    WebSocketRoute,
    async_playwright,
)

CHROMIUM: Final = "/usr/bin/chromium"
VIEWPORT: Final[ViewportSize] = {"width": 1366, "height": 768}


def softphone_args(tone_wav: Path | None = None) -> tuple[str, ...]:
    """Chromium's switches for a softphone on the lab: microphone and camera granted without a
    prompt, the "microphone" playing ``tone_wav`` (what the operator says; ``None``: Chromium's
    own fake beep), ICE on loopback (the only address lab traffic may use), the lab's
    self-signed WSS certificate accepted, and the caller's audio played without a click
    first."""
    tone = () if tone_wav is None else (f"--use-file-for-fake-audio-capture={tone_wav}",)
    return ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", *tone,
            "--allow-loopback-in-peer-connection", "--ignore-certificate-errors",
            "--autoplay-policy=no-user-gesture-required")


# How long after the answer click the softphone first received the caller's audio: RTP
# packets, and a level above silence (the page polls its RTCPeerConnection's getStats).
FIRST_AUDIO_JS: Final = """async () => {
  const started = Number(document.querySelector("#softphone").dataset.answeredAt);
  const found = {};
  const deadline = performance.now() + 10000;
  while (performance.now() < deadline && !(found.packets && found.level)) {
    const connection = window.siaga112Softphone.connection();
    if (connection) {
      const stats = await connection.getStats();
      for (const report of stats.values()) {
        if (report.type !== "inbound-rtp" || report.kind !== "audio") continue;
        const now = performance.now() - started;
        if (!found.packets && report.packetsReceived > 0) found.packets = now;
        if (!found.level && report.audioLevel > 0.01) found.level = now;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return found;
}"""


async def first_audio(page: Page) -> dict[str, Any]:
    """:data:`FIRST_AUDIO_JS` on ``page`` (right after the answer click): ms to the first
    RTP packet (``packets``) and to an audible level (``level``), each missing if not within
    10 s."""
    found: dict[str, Any] = await page.evaluate(FIRST_AUDIO_JS)
    return found


@dataclass
class ConsolePage:
    """A Chromium page on the line's console, the problems it meets (script errors, CSP
    violations, dialogs), and the directory its screenshots go to."""

    page: Page
    problems: list[str]
    shots: Path

    async def log_in(self, username: str, password: str, *, shot: str = "",
                     landing: str = "") -> None:
        """Log in through the form (taking the screenshot ``shot`` of the filled form, if
        given) and wait until the console shows ``landing`` (a path), if given."""
        await self.page.goto("/console/login")
        await self.page.fill('input[name="username"]', username)
        await self.page.fill('input[name="password"]', password)
        if shot:
            await self.page.screenshot(path=str(self.shots / f"{shot}.png"))
        await self.page.click('button:has-text("Masuk")')
        if landing:
            await self.page.wait_for_url(f"**{landing}")


@contextlib.asynccontextmanager
async def open_console(base_url: str, shots: Path, args: Sequence[str] = ()
                       ) -> AsyncIterator[ConsolePage]:
    """Chromium, launched with ``args``, on a page of the console at ``base_url`` (not logged
    in), collecting its problems; screenshots go to ``shots`` (made here). Closed after."""
    shots.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=list(args))
        try:
            page = await browser.new_page(viewport=VIEWPORT, locale="id-ID", base_url=base_url)
            page.on("console", on_console)
            page.on("pageerror", lambda error: problems.append(f"page: {error}"))
            page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
            yield ConsolePage(page, problems, shots)
        finally:
            await browser.close()


class SilentNetwork:
    """Relays a page's WebSockets (those :meth:`attach` names) to the server and can make
    the ones open now go silent: no message either way and no close, as a network that went
    away without a word (a pulled cable, a stalled proxy) leaves a socket open for minutes;
    or drop them (:meth:`drop`). Sockets the page opens afterwards are relayed again."""

    def __init__(self) -> None:
        self.opened = 0
        self._silent_up_to = 0
        self._open: list[tuple[WebSocketRoute, WebSocketRoute]] = []

    async def attach(self, page: Page, url: str) -> None:
        """Relay the page's WebSockets to ``url`` (a glob) from now on."""
        await page.route_web_socket(url, self._relay)

    def silence(self) -> None:
        """The sockets open now carry nothing more."""
        self._silent_up_to = self.opened

    async def drop(self) -> None:
        """The sockets open now are cut, both ends closed."""
        open_now, self._open = self._open, []
        for page_side, server in open_now:
            await server.close()
            await page_side.close()

    def _relay(self, route: WebSocketRoute) -> None:
        self.opened += 1
        number = self.opened
        server = route.connect_to_server()
        self._open.append((route, server))

        def to_page(message: str | bytes) -> None:
            if number > self._silent_up_to:
                route.send(message)

        def to_server(message: str | bytes) -> None:
            if number > self._silent_up_to:
                server.send(message)

        server.on_message(to_page)
        route.on_message(to_server)


# Where the live call's media goes: the remote end of the ICE candidate pair its transport
# selected ("address:port"), "" when none is selected.
MEDIA_PEER_JS: Final = """async () => {
  const connection = window.siaga112Softphone.connection();
  if (!connection) return "";
  const stats = await connection.getStats();
  for (const report of stats.values()) {
    if (report.type !== "transport" || !report.selectedCandidatePairId) continue;
    const pair = stats.get(report.selectedCandidatePairId);
    const remote = pair && stats.get(pair.remoteCandidateId);
    if (remote) return remote.address + ":" + remote.port;
  }
  return "";
}"""


async def media_peer(page: Page) -> str:
    """:data:`MEDIA_PEER_JS` on ``page``: ``address:port`` the softphone's media goes to."""
    peer: str = await page.evaluate(MEDIA_PEER_JS)
    return peer


def kill_chromium(marker: str) -> int:
    """Kill (SIGKILL) the Chromium this test process launched whose command line holds
    ``marker``, as a crash would end it: no page unloads, the kernel closes its sockets.
    Returns its pid."""
    mine = {os.getpid()}
    found: dict[int, int] = {}  # pid -> parent
    chromium: set[int] = set()
    # Descendants of this process (Playwright's driver, then its browsers), by /proc.
    for _ in range(4):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in mine:
                continue
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except (OSError, ValueError, IndexError):
                continue
            if parent in mine:
                mine.add(int(entry.name))
                if b"chrom" in argv[0]:
                    chromium.add(int(entry.name))
                browser = b"chrom" in argv[0] and not any(
                    arg.startswith(b"--type=") for arg in argv)  # not a renderer or helper
                if browser and any(marker.encode() in arg for arg in argv):
                    found[int(entry.name)] = parent
    # The browser itself (started by Playwright's driver), not the children it forked.
    top = [pid for pid, parent in found.items() if parent not in chromium]
    assert len(top) == 1, f"not one Chromium with {marker!r}: {found}"
    os.kill(top[0], signal.SIGKILL)
    return top[0]
