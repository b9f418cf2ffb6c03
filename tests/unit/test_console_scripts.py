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


# A page leaving for the login form by itself (or by the console's home) rather than through
# session.js: location.assign(...), location.replace(...) or location.href = ... naming it.
_LEAVES_FOR_LOGIN = re.compile(
    r"location\.(?:assign|replace)\(\s*(?:LOGIN_PATH|LOG_IN_AGAIN|[\"']/console/(?:login)?[\"'])"
    r"|location\.href\s*=\s*(?:LOGIN_PATH|LOG_IN_AGAIN|[\"']/console/(?:login)?[\"'])")
SESSION_SCRIPT = "session.js"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_every_page_leaves_an_ended_session_one_way(script: Path) -> None:
    """The operator screen and the call-backs page went straight to the login form on a 401,
    which then said only "Silakan masuk": an operator disabled, or given a new password,
    never learnt why. Every page hands an ended session (a 401, the wallboard's 4401) to
    session.js, whose way out lets the line say why."""
    text = script.read_text(encoding="utf-8")
    if script.name == SESSION_SCRIPT:
        return
    assert not _LEAVES_FOR_LOGIN.search(text), f"{script.name} leaves on its own"
    if re.search(r"\b4?401\b", text):
        assert "window.siaga112Session.ended()" in text, f"{script.name} ignores a 401"


def test_every_page_loads_the_session_script_before_its_own() -> None:
    base = (STATIC.parent / "templates" / "base.html").read_text(encoding="utf-8")
    assert SESSION_SCRIPT in base
    assert base.index(SESSION_SCRIPT) < base.index("{% block scripts %}")
