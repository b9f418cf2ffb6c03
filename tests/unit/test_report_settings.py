"""The report gate's settings: defaults, validated, and handed to the gate."""

from __future__ import annotations

import pytest

from telephony.reports.gate import GateConfig
from telephony.settings import SettingsError, load_settings


def test_the_gate_takes_its_settings() -> None:
    assert GateConfig.from_settings(load_settings(environ={})) == GateConfig(0.25, 20.0, 0.25)
    settings = load_settings(environ={}, overrides={"report_yield_lag_ms": "1000",
                                                    "report_max_wait_seconds": "0",
                                                    "report_busy_share": "1"})
    assert GateConfig.from_settings(settings) == GateConfig(1.0, 0.0, 1.0)


@pytest.mark.parametrize(("name", "value"), [
    ("report_max_wait_seconds", "-1"), ("report_max_wait_seconds", "301"),
    ("report_max_wait_seconds", "nan"), ("report_max_wait_seconds", "a while"),
    ("report_yield_lag_ms", "0"), ("report_yield_lag_ms", "-5"), ("report_yield_lag_ms", "1.5"),
    ("report_busy_share", "0"), ("report_busy_share", "1.5"), ("report_busy_share", "nan"),
])
def test_bad_gate_settings_are_refused(name: str, value: str) -> None:
    with pytest.raises(SettingsError):
        load_settings(environ={}, overrides={name: value})
