"""The README's first two commands, run by "a user with sudo" rather than root: scripts/demo
and scripts/test need root (the lab's mmdebstrap, chroot and mount namespaces), so as anyone
else they start again, whole, as root through sudo, keeping the SIAGA112_* settings given in
the environment; with no sudo they say so in one line. Each script is copied alone into a
temporary directory and run with a stand-in ``sudo`` that prints what it was asked to run, so
nothing here installs or starts anything.

As root with Debian's `su` PATH (no sbin directory), the scripts and the siaga112 command add
root's sbin directories, where runuser, chroot and dpkg's tools are.
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

from telephony.cli import path_for_root

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
NOBODY = 65534
# Run as a user who is not root: as nobody when the suite runs as root, else as itself.
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
# What Debian's `su` without `-` leaves root: the user's PATH.
SU_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"
AS_USER = ([SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
           if os.geteuid() == 0 else [])
FAKE_SUDO = '#!/bin/sh\necho "sudo was asked to run:"\nprintf "%s\\n" "$@"\n'


@pytest.fixture
def tree() -> Iterator[Path]:
    """A directory any user can read, with scripts/ holding copies of the scripts under test
    and bin/ a stand-in sudo."""
    root = Path(tempfile.mkdtemp(prefix="siaga112-as-root-"))
    (root / "scripts").mkdir()
    for name in ("demo", "test", "as-root"):
        shutil.copy2(SCRIPTS / name, root / "scripts" / name)
    (root / "bin").mkdir()
    sudo = root / "bin" / "sudo"
    sudo.write_text(FAKE_SUDO, encoding="utf-8")
    for path in (root, *root.rglob("*")):
        path.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def run(command: list[str], path: str, extra_env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path, "HOME": "/", "LANG": "C.UTF-8", **(extra_env or {})}
    return subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=30, check=False)


@pytest.mark.parametrize("script", ["demo", "test"])
def test_a_user_with_sudo_runs_the_whole_script_as_root_with_its_settings(
        tree: Path, script: str) -> None:
    done = run([*AS_USER, str(tree / "scripts" / script), "-k", "some test"],
               f"{tree / 'bin'}:/usr/bin:/bin",
               {"SIAGA112_HTTP_PORT": "18112", "SIAGA112_LAB_INSTANCE": "mine",
                "PYTEST_ADDOPTS": "-x --maxfail 1", "UNRELATED": "not passed"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "sudo was asked to run:", "--", "env", "PYTEST_ADDOPTS=-x --maxfail 1",
        "SIAGA112_HTTP_PORT=18112", "SIAGA112_LAB_INSTANCE=mine",
        str(tree / "scripts" / script), "-k", "some test",
    ]
    assert done.stderr == f"{script}: running as root through sudo (the Asterisk lab needs root)\n"


def test_without_sudo_a_user_is_told_in_one_line(tree: Path) -> None:
    # A PATH with only what the script needs before it decides: no sudo anywhere on it.
    tools = tree / "tools"
    tools.mkdir()
    for tool in ("bash", "dirname", "id"):
        found = shutil.which(tool)
        assert found is not None
        (tools / tool).symlink_to(found)
    tools.chmod(0o755)
    done = run([*AS_USER, str(tree / "scripts" / "demo")], str(tools))
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "demo: needs root" in done.stderr and "install sudo" in done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="as root only")
def test_as_root_the_script_goes_on_without_sudo(tree: Path) -> None:
    probe = tree / "scripts" / "probe"
    probe.write_text('#!/usr/bin/env bash\nset -euo pipefail\n. "$(dirname "$0")/as-root"\n'
                     'echo "went on as $(id -u)"\n', encoding="utf-8")
    probe.chmod(0o755)
    done = run([str(probe)], f"{tree / 'bin'}:/usr/bin:/bin")
    assert (done.returncode, done.stdout, done.stderr) == (0, "went on as 0\n", "")


@pytest.mark.skipif(os.geteuid() != 0, reason="as root only")
def test_as_root_with_su_s_path_the_scripts_add_root_s_sbin_directories(tree: Path) -> None:
    probe = tree / "scripts" / "probe"
    probe.write_text('#!/usr/bin/env bash\nset -euo pipefail\n. "$(dirname "$0")/as-root"\n'
                     'echo "$PATH"\n', encoding="utf-8")
    probe.chmod(0o755)
    done = run([str(probe)], SU_PATH)
    assert done.stdout == f"{SU_PATH}:/usr/local/sbin:/usr/sbin:/sbin\n", done.stderr
    # Run again with them there, nothing is added twice.
    again = run([str(probe)], done.stdout.strip())
    assert again.stdout == done.stdout


def test_path_for_root_adds_only_the_missing_sbin_directories() -> None:
    assert path_for_root(SU_PATH) == f"{SU_PATH}:/usr/local/sbin:/usr/sbin:/sbin"
    assert path_for_root("/usr/sbin:/usr/bin") == "/usr/sbin:/usr/bin:/usr/local/sbin:/sbin"
    assert path_for_root("") == "/usr/local/sbin:/usr/sbin:/sbin"


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/sbin/runuser").exists(),
                    reason="as root, where the embedded PostgreSQL runs as postgres (runuser)")
def test_the_siaga112_command_as_root_with_su_s_path_finds_runuser() -> None:
    """`siaga112 db status` as root asks pg_ctl through runuser (/usr/sbin): with su's PATH
    it was a FileNotFoundError traceback; now the cluster (never started here) is stopped."""
    state = Path(tempfile.mkdtemp(prefix="siaga112-su-path-"))
    try:
        state.chmod(0o755)
        (state / "pgdata").mkdir(mode=0o700)
        (state / "pgdata" / "PG_VERSION").write_text("15\n", encoding="ascii")
        done = run([sys.executable, "-c",
                    "import sys; from telephony.cli import main; sys.exit(main(sys.argv[1:]))",
                    "db", "status"], SU_PATH,
                   {"SIAGA112_STATE_DIR": str(state), "PYTHONPATH": os.pathsep.join(sys.path)})
    finally:
        shutil.rmtree(state, ignore_errors=True)
    assert (done.returncode, done.stdout) == (0, "berhenti\n"), done.stderr
