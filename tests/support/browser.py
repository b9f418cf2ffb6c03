"""The console in a real browser: headless Debian chromium driven by Playwright (the
``console_page`` fixture of tests/browser/conftest.py opens it)."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from playwright.async_api import Page, ViewportSize

CHROMIUM: Final = "/usr/bin/chromium"
VIEWPORT: Final[ViewportSize] = {"width": 1366, "height": 768}


def softphone_args(tone_wav: Path) -> tuple[str, ...]:
    """Chromium's switches for a softphone on the lab: microphone and camera granted without a
    prompt, the "microphone" playing ``tone_wav`` (what the operator says), ICE on loopback
    (the only address lab traffic may use), the lab's self-signed WSS certificate accepted,
    and the caller's audio played without a click first."""
    return ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={tone_wav}",
            "--allow-loopback-in-peer-connection", "--ignore-certificate-errors",
            "--autoplay-policy=no-user-gesture-required")


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
