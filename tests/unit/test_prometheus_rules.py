"""The Prometheus configuration and alert rules shipped in docker/prometheus/, checked and
unit-tested with promtool (Debian's prometheus package; scripts/setup installs it): each alert
fires on the series that should raise it, and only then."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

PROMETHEUS = Path(__file__).resolve().parents[2] / "docker" / "prometheus"


@pytest.fixture
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: scripts/setup installs Debian's prometheus package")
    return found


def run(promtool: str, *arguments: str) -> str:
    done = subprocess.run([promtool, *arguments], cwd=PROMETHEUS, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_the_configuration_and_its_rules_are_valid(promtool: str) -> None:
    output = run(promtool, "check", "config", "prometheus.yml")
    assert "1 rule files found" in output


def test_every_alert_fires_when_it_should_and_only_then(promtool: str) -> None:
    run(promtool, "test", "rules", "alerts_test.yml")


def test_every_alert_has_a_test() -> None:
    alerts = set(re.findall(r"- alert: (\w+)", (PROMETHEUS / "alerts.yml").read_text()))
    tested = set(re.findall(r"alertname: (\w+)", (PROMETHEUS / "alerts_test.yml").read_text()))
    assert alerts == tested
    assert {"Siaga112FailOpenCalls", "Siaga112NoOperatorOnLine", "Siaga112LongWait",
            "Siaga112AmiDisconnected", "Siaga112SpoolNotDraining",
            "Siaga112RecordingsQuarantined", "Siaga112DiskNearlyFull", "Siaga112LineDown",
            "Siaga112NotReady", "Siaga112RecordingsBacklog", "Siaga112NotificationsDelayed",
            "Siaga112CallsCut", "Siaga112MetricsSourceDown", "Siaga112CallFactsRejected",
            "Siaga112BackupMissing", "Siaga112ClusterPeerDown",
            "Siaga112SipFrontDown"} <= alerts
