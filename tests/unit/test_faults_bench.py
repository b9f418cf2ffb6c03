"""The pure parts of bench/faults.py (issue 13's reliability benchmark): which scenarios
``--only`` picks, the settings it hands ``serve``, the operator phones' log it times
callers by, and the table it prints."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import pytest

from telephony.lab.line import settings_environment
from telephony.settings import load_settings

# bench/ is not a package: its scripts import each other as top-level modules, as they do
# when run as `python bench/faults.py`.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from faults import FAULT_PORTS, Row, chosen, invites_seen, table
from rig import bench_settings


def test_only_picks_scenarios_and_both_halves_of_five() -> None:
    assert chosen([]) == ["0", "1", "2", "3", "4", "5a", "5b", "6", "7", "8"]
    assert chosen(["5"]) == ["5a", "5b"]
    assert chosen(["8", "5b", "8"]) == ["8", "5b"]
    with pytest.raises(ValueError, match="no scenario '9'"):
        chosen(["9"])


def test_serve_reads_back_the_benchs_settings(tmp_path: Path) -> None:
    settings = bench_settings(tmp_path / "state", "postgresql://u@127.0.0.1:5999/db", 5999, 12,
                              FAULT_PORTS)
    assert load_settings(environ=settings_environment(settings)) == settings


_LOG = """\
----------------------------------------------- 2026-12-05 06:12:27.964972
UDP message received [853] bytes :

INVITE sip:op1006@127.0.0.1:62070 SIP/2.0
From: <sip:089996480@127.0.0.1>;tag=3db36cb9

----------------------------------------------- 2026-12-05 06:12:27.965108
UDP message sent (370 bytes):

SIP/2.0 180 Ringing
From: <sip:089996481@127.0.0.1>;tag=3db36cb9

----------------------------------------------- 2026-12-05 06:12:29.000001
UDP message received [853] bytes :

INVITE sip:op1007@127.0.0.1:62070 SIP/2.0
From: "Budi" <sip:089996482@127.0.0.1>;tag=1

----------------------------------------------- 2026-12-05 06:12:31.000001
UDP message received [853] bytes :

INVITE sip:op1001@127.0.0.1:62070 SIP/2.0
From: <sip:089996480@127.0.0.1>;tag=2
"""


def test_the_first_invite_received_from_each_caller_is_when_an_operator_rang() -> None:
    assert invites_seen(_LOG) == {
        "089996480": datetime(2026, 12, 5, 6, 12, 27, 964972),
        "089996482": datetime(2026, 12, 5, 6, 12, 29, 1),
    }
    assert invites_seen("") == {}


def test_the_table_shows_a_recovery_never_reached_against_its_limit() -> None:
    rows = [Row("1", "serve down", "restart → complete", placed=10, reached=10, lost=10,
                limit=30.0, check="backfilled: n/a (not built)", notes=["10 calls have no row"]),
            Row("0", "control", "-", placed=10, reached=10, complete=10, recovery=0.04)]
    text = table(rows)
    assert "| 1 | serve down | 10 | 10 | 0 | 0 | 10 | 0 | > 30 s |" in text
    assert "| 0 | control | 10 | 10 | 10 | 0 | 0 | 0 | 0.0 s |" in text
    assert text.endswith("* 1: 10 calls have no row")
    assert [r.ok for r in rows] == [False, True]
