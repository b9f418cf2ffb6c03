"""The browser tier runs like the end-to-end modules (its own lab, ports, state directory and
database: the fixtures of tests/e2e/conftest.py), with headless Debian chromium driven by
Playwright on top: ``console_page`` is the one way a browser test opens the console."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from telephony.app import Line
from tests.e2e.conftest import (
    joining_operators,
    lab,
    line,
    line_db,
    line_operators,
    phone_options,
    phones,
    settings,
    state_dir,
)
from tests.support.browser import ConsolePage, open_console

__all__ = ["joining_operators", "lab", "line", "line_db", "line_operators", "phone_options",
           "phones", "settings", "state_dir"]


@pytest.fixture
def screenshots() -> Path:
    """Where the test's screenshots are copied afterwards, to look at."""
    return Path("/tmp/console-shots")


@pytest.fixture(scope="module")
def browser_args() -> Sequence[str]:
    """Chromium's extra command-line switches (a softphone's module adds its media ones,
    tests.support.browser.SOFTPHONE_ARGS)."""
    return ()


@pytest.fixture
async def console_page(line: Line, tmp_path: Path, screenshots: Path,
                       browser_args: Sequence[str]) -> AsyncIterator[ConsolePage]:
    """Chromium, launched for the test, on a page of the line's console (not logged in)."""
    assert line.web.url is not None
    shots = tmp_path / "shots"
    try:
        async with open_console(line.web.url, shots, browser_args) as page:
            yield page
    finally:
        screenshots.mkdir(exist_ok=True)
        for shot in sorted(shots.glob("*.png")):
            shutil.copy(shot, screenshots / shot.name)
