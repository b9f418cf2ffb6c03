"""The README's first command, as a new user runs it: ``scripts/demo`` installs what is missing
(its ``scripts/setup``; the suite's own run of it has installed everything, so here it checks
and moves on), then ``siaga112 demo`` starts the lab, an embedded PostgreSQL it creates itself,
the line and the sipp calls, and reports every call recorded. Only the ports, the lab instance
and the state directory differ from the defaults (as ``SIAGA112_*`` environment variables, the
way a user changes a setting without a file), so the demo can run beside the other end-to-end
modules.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.net import free_port, own_lab_values

pytestmark = pytest.mark.e2e

# The README's command, from this checkout; and the console script pip installed next to this
# interpreter, to stop the demo's database afterwards.
DEMO = str(Path(__file__).resolve().parents[2] / "scripts" / "demo")
SIAGA112 = str(Path(sys.executable).parent / "siaga112")

OVERRIDES = {**own_lab_values("demo-test"), "http_port": "0"}


@pytest.fixture
def demo_env() -> Iterator[dict[str, str]]:
    state_dir = Path(tempfile.mkdtemp(prefix="siaga112-demo-"))
    settings = {**OVERRIDES, "state_dir": str(state_dir), "embedded_pg_port": str(free_port())}
    # No libpq variables: a new user's machine has none, and the demo must bring its own.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "SIAGA112_"))}
    env.update({f"SIAGA112_{name.upper()}": value for name, value in settings.items()})
    yield env
    # The demo leaves its embedded PostgreSQL running, as a user would want; stop it here.
    subprocess.run([SIAGA112, "db", "stop"], env=env,
                   check=False, capture_output=True, timeout=60)
    shutil.rmtree(state_dir, ignore_errors=True)


def test_the_demo_places_its_calls_and_records_every_one(demo_env: dict[str, str]) -> None:
    done = subprocess.run([DEMO], env=demo_env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Demo selesai: semua panggilan tercatat." in done.stdout
    # The five demo callers, each answered by an operator.
    for caller in ("081200000001", "081200000002", "081200000003", "081200000004",
                   "081200000005"):
        # Its row in the printed call records (the call plan lists it too, with "->").
        (row,) = [line for line in done.stdout.splitlines()
                  if line.strip().startswith(caller) and "->" not in line]
        assert "answered" in row.split(), row
