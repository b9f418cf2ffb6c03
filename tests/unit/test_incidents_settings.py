"""Incident settings: dispatch targets, notification delivery, and the service's view of them."""

from datetime import timedelta
from pathlib import Path

import pytest

from telephony.incidents.config import IncidentConfig
from telephony.incidents.model import ReportType
from telephony.incidents.notifiers import LogNotifier, WebhookNotifier, notifier_from_settings
from telephony.settings import DispatchTarget, SettingsError, load_settings


def test_defaults() -> None:
    settings = load_settings(environ={})
    assert settings.incident_dispatch_targets == (
        DispatchTarget("fire", 300), DispatchTarget("medical", 300))
    assert settings.notify_webhook_url is None
    config = IncidentConfig.from_settings(settings)
    assert config.dispatch_targets == {ReportType.FIRE: timedelta(minutes=5),
                                       ReportType.MEDICAL: timedelta(minutes=5)}
    assert config.auto_create_max_age == timedelta(hours=24)
    assert IncidentConfig() == config
    assert isinstance(notifier_from_settings(settings), LogNotifier)


def test_targets_from_toml_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "siaga.toml"
    config.write_text("incident_dispatch_targets = {fire = 240, accident = 300}\n"
                      'notify_webhook_url = "https://gateway.example/notify"\n')
    settings = load_settings(config_file=config, environ={})
    assert settings.incident_dispatch_targets == (
        DispatchTarget("fire", 240), DispatchTarget("accident", 300))
    assert isinstance(notifier_from_settings(settings), WebhookNotifier)
    settings = load_settings(environ={"SIAGA112_INCIDENT_DISPATCH_TARGETS": "medical=120"})
    assert settings.incident_dispatch_targets == (DispatchTarget("medical", 120),)
    assert load_settings(environ={"SIAGA112_INCIDENT_DISPATCH_TARGETS": ""}
                         ).incident_dispatch_targets == ()


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SIAGA112_INCIDENT_DISPATCH_TARGETS": "kebakaran=300"}, "unknown report type"),
        ({"SIAGA112_INCIDENT_DISPATCH_TARGETS": "fire=lima"}, "invalid seconds"),
        ({"SIAGA112_INCIDENT_DISPATCH_TARGETS": "fire"}, "expected type=seconds"),
        ({"SIAGA112_INCIDENT_DISPATCH_TARGETS": "fire=0"}, "must be positive"),
        ({"SIAGA112_NOTIFY_WEBHOOK_URL": "ftp://x/y"}, "not an http"),
        ({"SIAGA112_NOTIFY_TIMEOUT": "0"}, "notify_timeout must be positive"),
        ({"SIAGA112_NOTIFY_MAX_ATTEMPTS": "0"}, "notify_max_attempts"),
        ({"SIAGA112_INCIDENT_AUTO_CREATE_HOURS": "-1"}, "incident_auto_create_hours"),
    ],
)
def test_invalid_incident_settings_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        IncidentConfig.from_settings(load_settings(environ=environ))


def test_fractional_or_boolean_seconds_are_refused(tmp_path: Path) -> None:
    for value in ("300.5", "true"):
        config = tmp_path / "siaga.toml"
        config.write_text(f"incident_dispatch_targets = {{fire = {value}}}\n")
        with pytest.raises(SettingsError, match="invalid seconds"):
            load_settings(config_file=config, environ={})
