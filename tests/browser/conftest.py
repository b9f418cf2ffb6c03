"""The browser tier runs like the end-to-end modules (its own lab, ports, state directory and
database), with headless Debian chromium driven by Playwright on top."""

from tests.e2e.conftest import line_db, state_dir

__all__ = ["line_db", "state_dir"]
