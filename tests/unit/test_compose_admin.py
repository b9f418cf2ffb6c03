"""Both compose files' ``admin`` service, through docker-compose's own reading of them
(``docker-compose config``, no Docker engine needed): the one-off container that runs
``siaga112 backup`` and ``restore`` has the host's SITE_BACKUPS as /backups and the same
settings, secrets, database and backup areas as the line it backs up. The cluster's file had
no admin service: a backup there went into a throw-away container, or needed a hand-written
``docker run`` with the right volumes and DSN. (tests/deploy/test_site.py runs the single
node's backup and restore for real.)"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

DOCKER = Path(__file__).resolve().parents[2] / "docker"
# Where every backup area lives in the line's containers (telephony/backup/service.py's
# SiteAreas: recordings under the state directory on a volume of their own, the rest in the
# state volume) and what the command reads besides.
SHARED = ("/etc/siaga112/siaga112.toml", "/var/lib/siaga112/state",
          "/var/lib/siaga112/state/recordings", "/var/lib/siaga112/secrets")
_SHORT_MOUNT = re.compile(r"- (?P<source>[^:\s]+):(?P<target>/[^:\s]*)(?::r[wo])?")


def compose_config(compose_file: str, tmp_path: Path) -> str:
    """``docker-compose config`` of ``compose_file`` with the admin profile, as a site with
    its settings file and backup directory would run it."""
    found = shutil.which("docker-compose")
    if found is None:
        pytest.skip("docker-compose is missing: scripts/setup --docker installs it")
    settings = tmp_path / "siaga112.toml"
    settings.write_text("", encoding="utf-8")
    environ = {key: value for key, value in os.environ.items()
               if not key.startswith(("SITE_", "CLUSTER_", "COMPOSE_"))}
    environ |= {"SITE_SETTINGS": str(settings), "SITE_BACKUPS": str(tmp_path / "cadangan")}
    done = subprocess.run([found, "-f", compose_file, "--profile", "admin", "config"],
                          cwd=DOCKER, env=environ, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def service(config: str, name: str) -> list[str]:
    """The lines of one service in docker-compose's normalised output."""
    lines = config.splitlines()
    start = lines.index(f"  {name}:")
    end = next((i for i in range(start + 1, len(lines))
                if not lines[i].startswith("   ")), len(lines))
    return lines[start + 1:end]


def mounts(block: list[str]) -> dict[str, str]:
    """Each mount's target and its source (a volume's name or a host path)."""
    found: dict[str, str] = {}
    source = None
    for line in block:
        text = line.strip()
        if text.startswith("- "):
            source = None  # the next mount
        short = _SHORT_MOUNT.fullmatch(text)
        if short is not None:
            found[short["target"]] = short["source"]
            continue
        key, _, value = text.removeprefix("- ").partition(": ")
        if key == "source":
            source = value
        elif key == "target" and source is not None:  # docker-compose sorts the keys
            found[value] = source
    return found


def environment(block: list[str]) -> dict[str, str]:
    return dict(line.strip().split(": ", 1) for line in block
                if line.startswith("      SIAGA112_"))


@pytest.mark.parametrize(("compose_file", "lines"), [
    ("docker-compose.yml", ("line",)),
    ("docker-compose.cluster.yml", ("line1", "line2")),
])
def test_the_admin_service_backs_up_what_the_lines_keep_into_the_hosts_directory(
    compose_file: str, lines: tuple[str, ...], tmp_path: Path
) -> None:
    config = compose_config(compose_file, tmp_path)
    admin = service(config, "admin")
    assert "    profiles:" in admin and "    - admin" in admin  # never started by `up`
    assert "    image: siaga112/line:latest" in admin
    admin_mounts = mounts(admin)
    assert admin_mounts["/backups"] == str(tmp_path / "cadangan")
    for line in lines:
        block = service(config, line)
        line_mounts = mounts(block)
        for target in SHARED:
            assert admin_mounts[target] == line_mounts[target], (line, target)
        # The owner's DSN (backups and restores run as the owner), the same database.
        for name in ("SIAGA112_DATABASE_DSN", "SIAGA112_DATABASE_OWNER_DSN",
                     "SIAGA112_SECRETS_DIR", "SIAGA112_SITE_KIND"):
            assert environment(admin)[name] == environment(block)[name], (line, name)
