"""The HTTP and login settings, and what the web layer and account service make of them."""

from datetime import timedelta

import pytest

from telephony.accounts.service import AccountConfig
from telephony.settings import SettingsError, load_settings
from telephony.web.context import WebConfig


def test_defaults_serve_on_loopback() -> None:
    settings = load_settings(environ={})
    assert (settings.http_host, settings.http_port, settings.http_cookie_secure) == (
        "127.0.0.1", 8112, False)
    assert settings.attachments_dir == settings.state_dir / "attachments"


def test_from_the_environment() -> None:
    settings = load_settings(environ={
        "SIAGA112_HTTP_PORT": "0", "SIAGA112_HTTP_COOKIE_SECURE": "true",
        "SIAGA112_HTTP_SESSION_HOURS": "9", "SIAGA112_LOGIN_MAX_FAILURES": "3",
        "SIAGA112_LOGIN_DELAY_SECONDS": "10", "SIAGA112_LOGIN_FAILURE_WINDOW_MINUTES": "30",
    })
    web = WebConfig.from_settings(settings)
    assert (settings.http_port, web.cookie_secure, web.session_lifetime) == (
        0, True, timedelta(hours=9))
    throttle = AccountConfig.from_settings(settings).throttle
    assert (throttle.max_failures, throttle.first_delay, throttle.window) == (
        3, timedelta(seconds=10), timedelta(minutes=30))


@pytest.mark.parametrize(("name", "value"), [
    ("http_port", "70000"), ("http_port", "-1"), ("http_session_hours", "0"),
    ("login_max_failures", "0"), ("login_max_failures_per_address", "0"),
    ("login_delay_seconds", "0"), ("login_failure_window_minutes", "-5"),
    ("http_cookie_secure", "maybe"),
])
def test_invalid_values_are_refused(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings(environ={}, overrides={name: value})
