"""The console in a real browser: headless Debian chromium driven by Playwright (the
``console_page`` fixture of tests/browser/conftest.py opens it)."""

from __future__ import annotations

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
