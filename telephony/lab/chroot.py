"""The Asterisk lab: a real Asterisk 22 in a chroot, configured from ``asterisk-conf/``.

What it is
    A Debian root filesystem with the ``asterisk`` package (built once with mmdebstrap into
    ``Settings.lab_rootfs``, about 340 MB, outside the repository) in which Asterisk runs
    with ``chroot``. Nothing is installed on the host. The chroot shares the host's network,
    so Asterisk listens on the host's loopback: SIP on ``sip_host:sip_port``, AMI on
    ``127.0.0.1:ami_port``, RTP in ``rtp_port_start..rtp_port_end``, and it connects to the
    FastAGI IVR at ``Settings.agi_url``.

Instances
    Each instance (``Settings.lab_instance``) keeps all its files in the rootfs under
    ``/srv/siaga112/<instance>/``: ``etc/`` (the rendered configuration), ``run/`` (control
    socket, pid file), ``log/`` (``messages.log``; ``console.log`` holds Asterisk's stdout),
    ``lib/`` (astdb), ``spool/``, ``cache/`` and ``data/`` (a mirror of /usr/share/asterisk
    whose ``sounds/siaga112/`` holds this instance's prompts). A test lab and a demo lab on
    other ports therefore run side by side in one rootfs.

Configuration
    :meth:`Lab.install_config` renders ``asterisk-conf/`` as any site does
    (``telephony/asterisk/config.py``) and adds ``pjsip_operators.conf``:
    ``Settings.lab_operators`` operator endpoints ``op1001``, ``op1002``, ... whose contact is
    a sipp UAS on ``127.0.0.1:lab_operator_sip_port`` (a real site's phones register instead).

Running
    ``Lab(settings).start()`` builds the rootfs if missing, renders the configuration and
    starts ``asterisk -f`` in its own mount namespace (``unshare``), where /proc is mounted
    for it: the mount vanishes with the process, however it ends. It returns once
    ``core waitfullybooted`` answers. Asterisk outlives the Python process that started it
    (the demo lab is started by one CLI call and stopped by another): :meth:`Lab.stop` and
    :meth:`Lab.is_running` find it again through its pid file. Each start begins with an
    empty astdb, so operators logged in during an earlier run are not restored.

    Both ``with Lab(settings) as lab:`` and ``async with Lab(settings) as lab:`` start and
    stop it; the async helpers (:meth:`Lab.acli`, :meth:`Lab.wait_cli`) keep an event loop
    free while polling. Every wait is bounded. The lab needs root (mmdebstrap, chroot,
    mount namespaces) and refuses to start when its SIP or AMI port is taken, since
    Asterisk itself would boot without them.

Prompts
    ``lab.site`` is the instance's :class:`~telephony.asterisk.site.AsteriskSite`: its
    ``install_prompts`` copies the prompts into the instance's ``data/sounds/siaga112/``. With
    no ``asterisk_*`` settings the line's own site is this instance (the ``lab`` one by
    default), so the line, the demo and the tests find the lab without configuration.

Tests and benchmarks
    ``telephony/lab/sipp.py`` drives callers (the carrier trunk) and the operator phones (one sipp
    UAS on ``lab_operator_sip_port``) with sipp; operators join queues with AMI QueueAdd.
    ``scripts/record_fixtures.py`` records the AMI and FastAGI transcripts in
    ``tests/fixtures/`` from this lab.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import TracebackType

from telephony.admin.queues import LIVE_SETTINGS_DIR
from telephony.asterisk.config import CONF_DIR, RTP_ICE_CONF, install_config, write_atomic
from telephony.asterisk.site import AsteriskSite, lab_instance_dir
from telephony.core.errors import SiagaError
from telephony.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SUITE = "forky"  # the first Debian suite with Asterisk 22
ROOTFS_PACKAGES = ("asterisk", "asterisk-core-sounds-en-gsm")
ASTERISK = "/usr/sbin/asterisk"
OPERATOR_FIRST = 1001

_INSTANCE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


class LabError(SiagaError, RuntimeError):
    """The lab could not be built, configured, started or reached."""


def operator_names(count: int) -> list[str]:
    """The lab's operator endpoint names: ``op1001`` ... in order."""
    return [f"op{OPERATOR_FIRST + i}" for i in range(count)]


def debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The host's Debian mirror, the one its apt already reaches, or the default.

    Debian 12's cloud images list it in the deb822 ``sources.list.d/debian.sources``; its
    installer writes the one-line ``sources.list`` (``deb http://mirror/debian bookworm
    main``), with the mirror chosen at install time: a site whose machines reach only a local
    mirror (or an apt cache) must build the lab from it too, not from the default.
    """
    for name, parse in (("sources.list.d/debian.sources", _deb822_mirror),
                        ("sources.list", _one_line_mirror)):
        try:
            text = (apt_dir / name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        mirror = parse(text)
        if mirror is not None:
            return mirror
    return DEFAULT_MIRROR


def _is_mirror(uri: str) -> bool:
    # The security archive carries only updates; an installer's cdrom: entry is no mirror.
    return "security" not in uri and not uri.startswith("cdrom:")


def _deb822_mirror(text: str) -> str | None:
    """The first non-security ``URIs:`` of a deb822 sources file."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() != "uris":
            continue
        for uri in value.split():
            if _is_mirror(uri):
                return uri
    return None


def _one_line_mirror(text: str) -> str | None:
    """The URI of the first non-security ``deb`` line of a one-line ``sources.list``
    (``deb [options] URI suite components``; ``deb-src`` and comments are not mirrors)."""
    for line in text.splitlines():
        words = line.partition("#")[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # options, which may hold spaces
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if words and _is_mirror(words[0]):
            return words[0]
    return None


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise LabError(f"{what} needs root (mmdebstrap, chroot and mount namespaces)")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Lab:
    """One Asterisk lab instance, configured from :class:`Settings`.

    ``conf_dir`` holds the templates (the repository's ``asterisk-conf/`` by default);
    ``boot_timeout`` bounds :meth:`start`, ``stop_timeout`` the graceful part of :meth:`stop`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        conf_dir: Path = CONF_DIR,
        boot_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        build_timeout: float = 1800.0,
    ) -> None:
        if not _INSTANCE_NAME.fullmatch(settings.lab_instance):
            raise LabError(f"lab_instance {settings.lab_instance!r}: use [a-z0-9_-], max 32")
        self.settings = settings
        self.conf_dir = conf_dir
        self.boot_timeout = boot_timeout
        self.stop_timeout = stop_timeout
        self.build_timeout = build_timeout
        self.rootfs = settings.lab_rootfs
        # The same directory as Asterisk sees it (chroot path) and as the host sees it.
        self.instance_dir = lab_instance_dir(settings)
        self.host_dir = self.rootfs / self.instance_dir.lstrip("/")
        self.asterisk_conf = f"{self.instance_dir}/etc/asterisk.conf"
        self._process: subprocess.Popen[bytes] | None = None

    # ----------------------------------------------------------------- paths

    @property
    def site(self) -> AsteriskSite:
        """This instance's directories, as the line sees them (host paths)."""
        return AsteriskSite.in_instance(self.host_dir)

    @property
    def etc_dir(self) -> Path:
        """Host path of the instance's rendered configuration (Asterisk's config dir)."""
        return self.site.etc_dir

    @property
    def sounds_dir(self) -> Path:
        """Host path of this instance's prompt directory (played as ``siaga112/<name>``)."""
        return self.site.sounds_dir

    @property
    def monitor_dir(self) -> Path:
        """Host path where MixMonitor writes call recordings (``${ASTSPOOLDIR}/monitor``)."""
        return self.site.monitor_dir

    @property
    def messages_log(self) -> Path:
        """Host path of Asterisk's notice/warning/error log for this instance."""
        return self.host_dir / "log" / "messages.log"

    @property
    def console_log(self) -> Path:
        """Host path of Asterisk's console output (errors only)."""
        return self.host_dir / "log" / "console.log"

    @property
    def pid_file(self) -> Path:
        """Host path of the pid file Asterisk writes into its run directory."""
        return self.host_dir / "run" / "asterisk.pid"

    # ----------------------------------------------------------------- rootfs

    def ensure_rootfs(self) -> Path:
        """Build the Asterisk root filesystem if it is missing; return its path.

        It is built next to its final place and renamed into it, so an interrupted build
        never leaves a half-built rootfs where the lab would use it. A lock file serialises
        concurrent callers.
        """
        if (self.rootfs / ASTERISK.lstrip("/")).exists():
            return self.rootfs
        _require_root("building the lab rootfs")
        if self.rootfs.exists():
            raise LabError(f"{self.rootfs} exists but has no {ASTERISK}: remove it and retry")
        if shutil.which("mmdebstrap") is None:
            raise LabError("mmdebstrap is not installed (scripts/setup installs it)")
        self.rootfs.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.rootfs.parent / f".{self.rootfs.name}.lock"
        with lock_path.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if (self.rootfs / ASTERISK.lstrip("/")).exists():  # built while we waited
                return self.rootfs
            build = self.rootfs.parent / f".{self.rootfs.name}.build-{os.getpid()}"
            shutil.rmtree(build, ignore_errors=True)
            mirror = debian_mirror()
            log.info("building the Asterisk rootfs in %s from %s", self.rootfs, mirror)
            started = time.monotonic()
            try:
                subprocess.run(
                    [
                        "mmdebstrap",
                        "--variant=apt",
                        f"--include={','.join(ROOTFS_PACKAGES)}",
                        # Snapshot mirrors serve Release files whose Valid-Until is past.
                        '--aptopt=Acquire::Check-Valid-Until "false"',
                        DEBIAN_SUITE,
                        str(build),
                        mirror,
                    ],
                    check=True,
                    timeout=self.build_timeout,
                    stdin=subprocess.DEVNULL,
                )
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                shutil.rmtree(build, ignore_errors=True)
                raise LabError(f"mmdebstrap failed: {exc}") from exc
            build.rename(self.rootfs)
            log.info("rootfs built in %.0f s", time.monotonic() - started)
        return self.rootfs

    def _write_hosts(self) -> None:
        """Let Asterisk resolve this host's name without DNS.

        At startup and on each call setup Asterisk looks up the host name (and, failing
        that, A.ROOT-SERVERS.NET) to find its own address; with no reachable resolver each
        lookup waits for the DNS timeout and stalls call setup under load.
        """
        hostname = socket.gethostname()
        text = f"127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost\n"
        hosts = self.rootfs / "etc" / "hosts"
        with contextlib.suppress(OSError):
            if hosts.read_text(encoding="utf-8") == text:
                return
        write_atomic(hosts, text)

    # ----------------------------------------------------------------- config

    def operators_conf(self) -> str:
        """``pjsip_operators.conf`` for the lab: every operator's phone is one sipp UAS; on a
        cluster node (``cluster_nodes`` set) it is reached through the SIP front, where the
        phones register (telephony/lab/kamailio.py), so any node rings any operator.

        That UAS sends no media unless a test asks it to (``sipp.operator(audio=True)``), so
        these phones keep no RTP timeout: [operator]'s would end every call of theirs after
        ``desk_phone_rtp_timeout_seconds``. A lab's registering phones (the views) keep it."""
        s = self.settings
        contact = s.kamailio_front or f"127.0.0.1:{s.lab_operator_sip_port}"
        parts = ["; Generated by telephony.lab: lab operators, all answered by one sipp UAS,\n"
                 "; which sends no media: no RTP timeout (see pjsip.conf's [operator]).\n"]
        for name in operator_names(self.settings.lab_operators):
            parts.append(
                f"\n[{name}](operator)\naors = {name}\nrtp_timeout = 0\nrtp_timeout_hold = 0\n"
                f"[{name}](operator-aor)\ncontact = sip:{name}@{contact}\n"
            )
        return "".join(parts)

    def install_config(self) -> None:
        """Create the instance's directories and render the configuration into ``etc/``."""
        self.ensure_rootfs()
        for sub in ("etc", "run", "log", "lib", "spool", "cache", "data", "keys"):
            (self.host_dir / sub).mkdir(parents=True, exist_ok=True)
        self._link_data_dir()
        install_config(self.tls_settings(), self.etc_dir, self.instance_dir,
                       conf_dir=self.conf_dir)
        self._loopback_ice_candidates()
        write_atomic(self.etc_dir / "pjsip_operators.conf", self.operators_conf())

    def tls_settings(self) -> Settings:
        """The settings, with Asterisk's WSS certificate (for browser softphones) the lab's
        own self-signed one unless they name one: made once per instance with openssl, for
        the loopback address the lab's browsers connect to."""
        s = self.settings
        if s.asterisk_tls_cert is not None:
            return s
        keys = self.host_dir / "keys"
        cert, key = keys / "asterisk.crt", keys / "asterisk.key"
        if not (cert.exists() and key.exists()):
            if shutil.which("openssl") is None:
                raise LabError("openssl is not installed (scripts/setup installs it)")
            try:
                subprocess.run(
                    ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                     "3650", "-subj", "/CN=siaga112-lab", "-addext",
                     "subjectAltName=IP:127.0.0.1,DNS:localhost",
                     "-keyout", str(key), "-out", str(cert)],
                    check=True, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                raise LabError(f"openssl could not make the lab's certificate: {exc}") from exc
        inside = f"{self.instance_dir}/keys"
        return replace(s, asterisk_tls_cert=Path(f"{inside}/asterisk.crt"),
                       asterisk_tls_key=Path(f"{inside}/asterisk.key"))

    def _loopback_ice_candidates(self) -> None:
        """Keep browser softphones' media on loopback, the only address lab traffic may use.

        Asterisk offers as ICE host candidates the addresses of the host's interfaces, never
        loopback's (pjlib leaves it out), whatever its media is bound to. With a loopback
        ``softphone_media_address`` the lab therefore has each of this host's other IPv4
        addresses advertised as that loopback address instead (rtp.conf's
        ``[ice_host_candidates]``), so a browser never aims a packet at them.
        """
        media = self.settings.softphone_media_address
        if media is None or not ipaddress.ip_address(media).is_loopback:
            return
        try:
            listed = subprocess.run(["ip", "-o", "-4", "address", "show"], check=True,
                                    capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise LabError(f"cannot list this host's addresses (ip address): {exc}") from exc
        addresses = sorted({ipaddress.ip_interface(field).ip for line in listed.splitlines()
                            for field in line.split()[3:4]} - {ipaddress.ip_address(media)})
        mapped = "".join(f"{address} => {media}\n" for address in addresses
                         if not address.is_loopback)
        with (self.etc_dir / RTP_ICE_CONF).open("a", encoding="utf-8") as conf:
            conf.write("\n; The lab: every host address is offered as the loopback media "
                       f"address.\n[ice_host_candidates]\n{mapped}")

    def _link_data_dir(self) -> None:
        """Mirror /usr/share/asterisk into ``data/`` with symlinks, except for the sounds.

        ``data/sounds`` is a real directory (symlinks to the stock languages) so that the
        instance's own ``sounds/siaga112`` can live in it. Link targets are chroot paths.
        """
        share = self.rootfs / "usr" / "share" / "asterisk"
        data = self.host_dir / "data"
        for entry in share.iterdir():
            if entry.name != "sounds":
                self._symlink(data / entry.name, f"/usr/share/asterisk/{entry.name}")
        sounds = data / "sounds"
        sounds.mkdir(exist_ok=True)
        for entry in (share / "sounds").iterdir():
            self._symlink(sounds / entry.name, f"/usr/share/asterisk/sounds/{entry.name}")
        self.sounds_dir.mkdir(exist_ok=True)

    @staticmethod
    def _symlink(link: Path, target: str) -> None:
        if link.is_symlink() and str(link.readlink()) == target:
            return
        link.unlink(missing_ok=True)
        link.symlink_to(target)

    # ----------------------------------------------------------------- process

    def _instance_pid(self) -> int | None:
        """The pid of this instance's Asterisk if it is alive, from its pid file."""
        try:
            pid = int(self.pid_file.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return None
        return pid if self._pid_is_ours(pid) else None

    def _pid_is_ours(self, pid: int) -> bool:
        """Alive, and really this instance's Asterisk (pid files outlive their process)."""
        if self._process is not None and self._process.pid == pid:
            # Our own child: poll() reaps it, kill(pid, 0) would see the zombie as alive.
            return self._process.poll() is None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return ASTERISK.encode() in cmdline and self.asterisk_conf.encode() in cmdline

    def is_running(self) -> bool:
        """True while this instance's Asterisk process is alive."""
        if self._process is not None and self._process.poll() is None:
            return True
        return self._instance_pid() is not None

    def start(self, *, fresh: bool = True) -> None:
        """(Re)start this instance with freshly rendered configuration and an empty astdb.

        ``fresh=False`` keeps astdb (logged-in operators, registrations) and the live
        settings, as a site's Asterisk coming back after a crash does (see :meth:`crash`).
        Returns once Asterisk is fully booted; raises :class:`LabError` (with the end of its
        logs) if it exits or does not boot within ``boot_timeout``.
        """
        _require_root("running the lab")
        if self.is_running():
            log.info("lab %s is already running: restarting it", self.settings.lab_instance)
            self.stop()
        self._check_ports_free()
        if fresh:
            # Everything in etc/ is rendered by us: start from an empty directory, so a file
            # an earlier checkout rendered (another branch's sorcery.conf, say) cannot linger
            # and change what Asterisk loads.
            shutil.rmtree(self.etc_dir, ignore_errors=True)
        self.install_config()
        self._write_hosts()
        if fresh:
            for stale in ("astdb.sqlite3", "astdb.sqlite3-journal"):
                (self.host_dir / "lib" / stale).unlink(missing_ok=True)
            # Like astdb: an admin's numbers from an earlier run are the line's to apply again.
            shutil.rmtree(self.etc_dir / LIVE_SETTINGS_DIR, ignore_errors=True)
        self.pid_file.unlink(missing_ok=True)
        started = time.monotonic()
        with self.console_log.open("ab") as console:
            # A private mount namespace with /proc mounted in the rootfs: the mount dies with
            # the process, so a crash cannot leave it behind. chroot replaces unshare, and
            # asterisk replaces chroot: self._process.pid is Asterisk's pid.
            self._process = subprocess.Popen(
                [
                    "unshare",
                    "--mount",
                    "--propagation=private",
                    f"--mount-proc={self.rootfs / 'proc'}",
                    "chroot",
                    str(self.rootfs),
                    ASTERISK,
                    "-f",
                    "-C",
                    self.asterisk_conf,
                ],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                # The demo lab outlives the CLI call that started it, and a Ctrl-C in a test
                # run must not reach Asterisk before stop() does.
                start_new_session=True,
            )
        self._put_asterisk_first()
        deadline = started + self.boot_timeout
        while True:
            if self._process.poll() is not None:
                raise LabError(
                    f"Asterisk exited with {self._process.returncode} while booting:\n"
                    f"{_tail(self.console_log)}\n{_tail(self.messages_log)}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                raise LabError(
                    f"Asterisk did not boot within {self.boot_timeout:g} s:\n"
                    f"{_tail(self.messages_log)}"
                )
            try:
                # Refused until the control socket exists; then blocks until fully booted.
                self._asterisk_rx("core waitfullybooted", timeout=min(remaining, 10.0))
            except LabError:
                time.sleep(0.05)
                continue
            break
        log.info(
            "lab %s booted in %.2f s (pid %d)",
            self.settings.lab_instance,
            time.monotonic() - started,
            self._process.pid,
        )

    def _put_asterisk_first(self) -> None:
        """Give Asterisk's session its CPU weight (``lab_asterisk_nice``): the autogroup's
        nice value, which the kernel weighs sessions by (sched(7)). A kernel without
        autogroup has no such file, and the lab runs as it did."""
        assert self._process is not None
        nice = self.settings.lab_asterisk_nice
        if nice == 0:
            return
        try:
            Path(f"/proc/{self._process.pid}/autogroup").write_text(f"{nice}\n")
        except OSError as exc:
            log.info("lab %s: Asterisk's session keeps the CPU weight of any other (%s)",
                     self.settings.lab_instance, exc.strerror or exc)

    def _check_ports_free(self) -> None:
        """Asterisk boots even when it cannot bind its SIP or AMI port (it only logs an
        error), so a port held by another lab or process is refused here instead."""
        s = self.settings
        for kind, host, port in (
            (socket.SOCK_DGRAM, s.sip_host, s.sip_port),
            (socket.SOCK_STREAM, "127.0.0.1", s.ami_port),
        ):
            with socket.socket(socket.AF_INET, kind) as probe:
                # As Asterisk does: a TCP port in TIME_WAIT after a restart is free.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((host, port))
                except OSError as exc:
                    raise LabError(f"{host}:{port} is in use; is another lab running?") from exc

    def stop(self) -> None:
        """Stop this instance: ``core stop now``, then SIGTERM, then SIGKILL; all bounded."""
        pid = self._process.pid if self._process is not None else self._instance_pid()
        if pid is None or not self._pid_is_ours(pid):
            self._process = None
            return
        with contextlib.suppress(LabError):
            self._asterisk_rx("core stop now", timeout=self.stop_timeout)
        for sig, grace in ((None, self.stop_timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if sig is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and self._pid_is_ours(pid):
                time.sleep(0.05)
            if not self._pid_is_ours(pid):
                break
            log.warning("lab %s: pid %d still alive", self.settings.lab_instance, pid)
        else:
            raise LabError(f"Asterisk pid {pid} survived SIGKILL")
        self._process = None

    def send_signal(self, number: signal.Signals) -> None:
        """Send ``number`` to this instance's Asterisk: SIGSTOP hangs it as a deadlock or a
        stalled machine does (its sockets stay open, nothing answers), SIGCONT lets it go on."""
        pid = self._process.pid if self._process is not None else self._instance_pid()
        if pid is None or not self._pid_is_ours(pid):
            raise LabError(f"lab {self.settings.lab_instance} is not running")
        os.kill(pid, number)

    def crash(self) -> None:
        """Kill this instance's Asterisk with SIGKILL, as a crash would end it (no Shutdown,
        no hang-up), and return once it is gone; :meth:`start` with ``fresh=False`` brings it
        back as a site's service manager would."""
        pid = self._process.pid if self._process is not None else self._instance_pid()
        if pid is None or not self._pid_is_ours(pid):
            raise LabError(f"lab {self.settings.lab_instance} is not running")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while self._pid_is_ours(pid):
            if time.monotonic() > deadline:
                raise LabError(f"Asterisk pid {pid} survived SIGKILL")
            time.sleep(0.02)

    # ----------------------------------------------------------------- CLI

    def _rx_argv(self, command: str) -> list[str]:
        return ["chroot", str(self.rootfs), ASTERISK, "-C", self.asterisk_conf, "-rx", command]

    def _asterisk_rx(self, command: str, timeout: float) -> str:
        try:
            done = subprocess.run(
                self._rx_argv(command),
                capture_output=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"asterisk -rx {command!r} timed out after {timeout:g} s") from exc
        output = done.stdout.decode("utf-8", errors="replace")
        if done.returncode != 0:
            raise LabError(f"asterisk -rx {command!r} failed ({done.returncode}): {output}")
        return output

    def cli_command(self, command: str, time_limit: float = 10.0) -> str:
        """Run one Asterisk CLI command in this instance (``asterisk -rx``); return its output."""
        return self._asterisk_rx(command, time_limit)

    async def acli(self, command: str, time_limit: float = 10.0) -> str:
        """:meth:`cli_command` without blocking the event loop."""
        proc = await asyncio.create_subprocess_exec(
            *self._rx_argv(command),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            async with asyncio.timeout(time_limit):
                stdout, _ = await proc.communicate()
        except TimeoutError as exc:
            proc.kill()
            await proc.wait()
            raise LabError(f"asterisk -rx {command!r} timed out after {time_limit:g} s") from exc
        output = stdout.decode("utf-8", errors="replace")
        if proc.returncode != 0:
            raise LabError(f"asterisk -rx {command!r} failed ({proc.returncode}): {output}")
        return output

    async def wait_cli(
        self,
        command: str,
        predicate: Callable[[str], bool],
        within: float = 10.0,
        interval: float = 0.1,
    ) -> str:
        """Poll a CLI command until ``predicate(output)`` holds; return that output.

        Raises :class:`TimeoutError` with the last output after ``within`` seconds.
        """
        deadline = asyncio.get_running_loop().time() + within
        output = ""
        while True:
            output = await self.acli(command)
            if predicate(output):
                return output
            if asyncio.get_running_loop().time() >= deadline:
                raise TimeoutError(f"{command!r} never satisfied the condition:\n{output}")
            await asyncio.sleep(interval)

    def forget_calls(self) -> None:
        """Remove the calls an earlier run left in this instance: its queue_log and the
        recordings no line took. Benchmarks start so, because a line backfills whatever calls
        the queue_log holds and pairs whatever recordings wait: an earlier run's thousands of
        calls would be worked through during the measurement. Asterisk must not be running."""
        if self.is_running():
            raise LabError(f"lab {self.settings.lab_instance} is running: stop it first")
        (self.messages_log.parent / "queue_log").unlink(missing_ok=True)
        if self.monitor_dir.is_dir():
            for leftover in self.monitor_dir.iterdir():
                if leftover.is_file():
                    leftover.unlink()

    def reload_queues(self) -> str:
        """Re-render the configuration and reload queues.conf; logged-in operators stay."""
        self.install_config()
        return self.cli_command("queue reload all")

    # ----------------------------------------------------------------- context managers

    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Lab:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)
