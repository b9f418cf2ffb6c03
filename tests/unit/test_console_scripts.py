"""The console's own scripts, read as text: rules every page keeps."""

import re
from pathlib import Path

import pytest

import telephony.web.console

STATIC = Path(telephony.web.console.__file__).parent / "static"
# The page's own scripts; the bundled JsSIP is not ours.
SCRIPTS = sorted(path for path in STATIC.glob("*.js") if path.name != "jssip.min.js")
# Date methods that format in the browser's time zone unless told otherwise.
_BROWSER_ZONE = re.compile(r"\.toLocale(?:Time|Date)?String\(")


def test_there_are_scripts_to_read() -> None:
    assert len(SCRIPTS) >= 5


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_times_are_shown_in_the_centres_zone_not_the_browsers(script: Path) -> None:
    """A supervisor's laptop in another zone (or UTC) must read the centre's times, as the
    reports and the wallboard give them: each page formats with the zone its template
    gives (meta name="timezone"), never with the browser's."""
    text = script.read_text(encoding="utf-8")
    assert not _BROWSER_ZONE.search(text), f"{script.name} formats in the browser's zone"
