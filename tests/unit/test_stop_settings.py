"""The drain time of a stopping line: a default, validated, and handed to the FastAGI server."""

from __future__ import annotations

import pytest

from telephony.agi.server import FastAgiConfig
from telephony.settings import SettingsError, load_settings


def test_the_drain_time_reaches_the_fastagi_server() -> None:
    assert load_settings(environ={}).shutdown_drain_seconds == 10.0
    settings = load_settings(environ={}, overrides={"shutdown_drain_seconds": "2.5"})
    assert FastAgiConfig.from_settings(settings).shutdown_timeout == 2.5
    assert load_settings(environ={}, overrides={"shutdown_drain_seconds": "0"})


@pytest.mark.parametrize("value", ["-1", "301", "soon"])
def test_a_bad_drain_time_is_refused(value: str) -> None:
    with pytest.raises(SettingsError):
        load_settings(environ={}, overrides={"shutdown_drain_seconds": value})
