"""An embedded PostgreSQL cluster, so the line runs with no database server set up first.

The cluster lives in a data directory of its own (``Settings.embedded_pg_dir``), listens only on
127.0.0.1 at ``Settings.embedded_pg_port``, and requires a password that is generated once and
kept, readable by its owner only, beside the data directory. It uses Debian's PostgreSQL
binaries installed by our setup script.

PostgreSQL refuses to run as root; when we are root (CI, a fresh server), the cluster is owned
by and run as the ``postgres`` system user that Debian's package creates.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from telephony.core.errors import SiagaError

log = logging.getLogger("telephony.db")

DATABASE_NAME = "siaga112"
SUPERUSER = "siaga112"


class EmbeddedDatabaseError(SiagaError, RuntimeError):
    """The embedded cluster could not be created, started or stopped."""


def find_postgres_bindir() -> Path:
    """Directory holding initdb/pg_ctl: ``pg_config --bindir``, else Debian's layout."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = Path(subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip())
        if (bindir / "initdb").exists():
            return bindir
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    if not candidates:
        raise EmbeddedDatabaseError(
            "PostgreSQL server binaries not found; install Debian's 'postgresql' package "
            "(scripts/setup does this)"
        )
    return candidates[0].parent


class EmbeddedPostgres:
    """Creates (once), starts and stops a private PostgreSQL cluster."""

    def __init__(self, data_dir: Path, port: int, bindir: Path | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self._bindir = bindir
        self._password_file = self.data_dir.parent / f"{self.data_dir.name}.password"
        self._line_password_file = self.data_dir.parent / f"{self.data_dir.name}.line-password"
        # Written once the application database exists: the last step of the creation, so a
        # creation cut short (the port taken at the first start) is finished by the next one.
        self._created_file = self.data_dir.parent / f"{self.data_dir.name}.created"

    @property
    def bindir(self) -> Path:
        """Where the server binaries are (looked up lazily)."""
        if self._bindir is None:
            self._bindir = find_postgres_bindir()
        return self._bindir

    def dsn(self) -> str:
        """Connection string for the cluster's application database."""
        password = self._password_file.read_text(encoding="ascii").strip()
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{self.port}/{DATABASE_NAME}"

    def line_password(self) -> str:
        """The password of the line's role (telephony/db/roles.py), generated on first use
        and kept beside the superuser's; the owner gives it to the role when it grants."""
        path = self._line_password_file
        if not path.exists():
            # Asked before the cluster's first start (a line whose database is not up yet):
            # its parent, /var/lib/siaga112 as root, may not exist on a fresh machine.
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(secrets.token_urlsafe(24) + "\n")
            try:
                with contextlib.suppress(FileExistsError):  # another process won: theirs
                    os.link(tmp, path)
            finally:
                tmp.unlink()
        return path.read_text(encoding="ascii").strip()

    def line_dsn(self, role: str) -> str:
        """Connection string of the application database as the line's role ``role``."""
        return (f"postgresql://{role}:{self.line_password()}@127.0.0.1:{self.port}/"
                f"{DATABASE_NAME}")

    def _run_as_owner(self, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        try:
            return subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=True,
                cwd="/",  # the postgres user may not be allowed into the caller's directory
            )
        except subprocess.CalledProcessError as exc:
            raise EmbeddedDatabaseError(
                f"{args[0]} failed ({exc.returncode}): {(exc.stderr or exc.stdout).strip()}"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedDatabaseError(f"{args[0]} did not finish in {timeout:.0f} s") from exc

    def _give_to_owner(self, path: Path) -> None:
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def _check_reachable_by_owner(self) -> None:
        """As root, every parent directory must let the postgres user through."""
        if os.geteuid() != 0:
            return
        for parent in self.data_dir.parents:
            if not parent.stat().st_mode & 0o001:
                raise EmbeddedDatabaseError(
                    f"the postgres user cannot enter {parent}; choose a state directory "
                    "whose parents are world-traversable (chmod o+x)"
                )

    def initialized(self) -> bool:
        """True when the data directory holds a cluster."""
        return (self.data_dir / "PG_VERSION").exists()

    def ensure_initialized(self) -> None:
        """Create the cluster and its application database if they do not exist yet."""
        if self.initialized():
            if not self._created_file.exists() and self._password_file.exists():
                # initdb ran but the first start failed (its port was taken), so the
                # application database was never made: every later command failed on it.
                # A cluster of before this mark gets it here too (createdb finds it there).
                self.start()
                self._create_database(
                    self._password_file.read_text(encoding="ascii").strip())
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._check_reachable_by_owner()
        self._give_to_owner(self.data_dir)
        password = secrets.token_urlsafe(24)
        # initdb reads the password from a file the cluster owner can read; not inside the
        # data directory, which initdb insists be empty.
        pwfile = self.data_dir.parent / f".{self.data_dir.name}.initdb-password"
        pwfile.write_text(password + "\n", encoding="ascii")
        pwfile.chmod(0o600)
        self._give_to_owner(pwfile)
        try:
            self._run_as_owner(
                [
                    "initdb", "-D", str(self.data_dir), "-U", SUPERUSER,
                    f"--pwfile={pwfile}", "--auth=scram-sha-256",
                    "--encoding=UTF8", "--locale=C.UTF-8",
                ],
                timeout=120,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self._password_file.write_text(password + "\n", encoding="ascii")
        self._password_file.chmod(0o600)
        # Loopback only, small footprint; fsync stays on: call records are evidence. 100
        # connections: a line holds up to about 20 (its pools, the IVR process's, one LISTEN
        # each for the cluster's followers), so a two-node lab on one server needs over 40.
        with (self.data_dir / "postgresql.auto.conf").open("a", encoding="utf-8") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                "unix_socket_directories = ''\nmax_connections = 100\n"
                "shared_buffers = '128MB'\n"
            )
        self.start()
        self._create_database(password)
        log.info("embedded PostgreSQL cluster created in %s", self.data_dir)

    def _create_database(self, password: str) -> None:
        command = [
            str(self.bindir / "createdb"),
            "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, DATABASE_NAME,
        ]
        # The password goes through the environment, never the process list.
        env = {**os.environ, "PGPASSWORD": password}
        try:
            subprocess.run(command, capture_output=True, text=True, timeout=60, check=True, env=env)
        except subprocess.CalledProcessError as exc:
            if "already exists" not in exc.stderr:
                raise EmbeddedDatabaseError(f"createdb failed: {exc.stderr.strip()}") from exc
        self._created_file.touch()

    def is_running(self) -> bool:
        """True when the cluster's postmaster is up."""
        if not self.initialized():
            return False
        try:
            self._run_as_owner(["pg_ctl", "status", "-D", str(self.data_dir)], timeout=10)
        except EmbeddedDatabaseError:
            return False
        return True

    def start(self) -> None:
        """Start the cluster (no-op when it is running) and wait until it accepts connections."""
        if self.is_running():
            return
        log_file = self.data_dir / "server.log"
        try:
            # The port on the command line: the settings' port, even after it was changed
            # (the one written at creation in postgresql.auto.conf had the cluster listen
            # where the line no longer looked).
            self._run_as_owner(
                ["pg_ctl", "start", "-D", str(self.data_dir), "-l", str(log_file),
                 "-o", f"-p {self.port}", "-w", "-t", "60"],
                timeout=90,
            )
        except EmbeddedDatabaseError as exc:
            # pg_ctl says only "could not start server / Examine the log output."
            raise EmbeddedDatabaseError(
                f"PostgreSQL tertanam tidak dapat dijalankan di 127.0.0.1:{self.port}: "
                f"{_server_failure(log_file) or exc} (log: {log_file})") from exc

    def stop(self) -> None:
        """Stop the cluster quickly (fast shutdown: open sessions are rolled back)."""
        if self.is_running():
            self._run_as_owner(
                ["pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60"],
                timeout=90,
            )


def _server_failure(log_file: Path) -> str:
    """The server's own words for its last failed start, from its log: what it said from
    "starting PostgreSQL" to its FATAL line ("could not bind IPv4 address ...: Address
    already in use; ... could not create any TCP/IP sockets"), or '' if it said nothing."""
    try:
        lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    said: list[str] = []
    for line in lines:
        if "starting PostgreSQL" in line:
            said = []
            continue
        for level in ("LOG:", "WARNING:", "ERROR:", "FATAL:"):
            if f"] {level}" in line:
                said.append(line.split(f"] {level}", 1)[1].strip())
                break
        if "] FATAL:" in line:
            return "; ".join(said[-3:])
    return ""


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def temporary_cluster(prefix: str, *, conf: str = "") -> Iterator[tuple[Path, EmbeddedPostgres]]:
    """A running cluster in a new temporary directory, both gone afterwards (tests and
    benchmarks): the directory, for what else the caller keeps there, and the cluster.
    ``conf`` is appended to ``postgresql.auto.conf`` before the cluster starts."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)  # the cluster runs as the postgres user, which must get in
    cluster = EmbeddedPostgres(root / "pgdata", free_loopback_port())
    try:
        cluster.ensure_initialized()
        if conf:
            cluster.stop()
            with (cluster.data_dir / "postgresql.auto.conf").open("a", encoding="utf-8") as out:
                out.write(conf)
        cluster.start()
        yield root, cluster
    finally:
        with contextlib.suppress(Exception):  # a failed stop must not hide the real error
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
