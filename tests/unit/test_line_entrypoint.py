"""docker/line-entrypoint.sh, the line container's commands, run with a stand-in ``siaga112``
on the PATH that records what it was asked and answers as a line whose database is down."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ENTRYPOINT = Path(__file__).resolve().parents[2] / "docker" / "line-entrypoint.sh"


def run_entrypoint(tmp_path: Path, *arguments: str,
                   stderr: list[str] | None = None) -> tuple[int, list[str]]:
    calls = tmp_path / "calls"
    stand_in = tmp_path / "bin" / "siaga112"
    stand_in.parent.mkdir()
    # What the real command does with PostgreSQL unreachable: migrate fails in one line,
    # serve starts and spools the call facts until the database is back.
    stand_in.write_text(f"""#!/bin/sh
echo "$*" >> {calls}
if [ "$1" = migrate ]; then
    echo "siaga112: gagal: cannot connect to PostgreSQL" >&2
    exit 1
fi
exit 0
""")
    stand_in.chmod(0o755)
    environment = {**os.environ, "PATH": f"{stand_in.parent}:{os.environ['PATH']}",
                   "SIAGA112_CONFIG": str(tmp_path / "siaga112.toml")}
    done = subprocess.run(["sh", str(ENTRYPOINT), *arguments], env=environment,
                          capture_output=True, text=True, timeout=30, check=False)
    if stderr is not None:
        stderr.extend(done.stderr.splitlines())
    return done.returncode, calls.read_text().splitlines() if calls.exists() else []


@pytest.mark.parametrize("arguments", [(), ("serve",)])
def test_the_line_starts_with_its_database_down(tmp_path: Path,
                                                arguments: tuple[str, ...]) -> None:
    # serve migrates as the owner on every new pool, and a migration that cannot apply stops
    # it; a 'siaga112 migrate' first made the container exit (and restart, over and over)
    # whenever PostgreSQL was down or failing over at start, so no call fact was spooled.
    assert run_entrypoint(tmp_path, *arguments) == (0, ["serve"])


def test_other_commands_go_to_siaga112_unchanged(tmp_path: Path) -> None:
    assert run_entrypoint(tmp_path, "account", "create", "admin dua", "--role", "admin") == (
        0, ["account create admin dua --role admin"])


@pytest.mark.parametrize("arguments", [(), ("asterisk-config",), ("account", "list")])
def test_a_settings_file_docker_made_a_directory_is_refused_in_one_line(
        tmp_path: Path, arguments: tuple[str, ...]) -> None:
    # SITE_SETTINGS missing on the host: docker mounted a directory in its place, and the
    # line and Asterisk's configuration ran on the built-in settings, "Up" and wrong.
    (tmp_path / "siaga112.toml").mkdir()
    said: list[str] = []
    assert run_entrypoint(tmp_path, *arguments, stderr=said) == (2, [])
    assert len(said) == 1 and "is a directory" in said[0] and "SITE_SETTINGS" in said[0], said
