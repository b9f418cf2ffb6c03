"""One frozen, typed settings object for every process of the line.

Values are layered, later layers winning: built-in defaults <- a TOML file <- environment
variables (``SIAGA112_<FIELD>``) <- command-line overrides (``--set field=value``).
The database follows libpq: a DSN if one is given, else the ``PG*`` environment variables if
any is set, else an embedded PostgreSQL cluster that the line starts in its own data directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import logging
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from telephony.core.addresses import ANY_ADDRESS
from telephony.core.dsn import multi_host_refusal
from telephony.core.errors import SiagaError

ENV_PREFIX = "SIAGA112_"
# The development lab's AMI secret (asterisk-conf/manager.conf is rendered with it when
# ami_secret is unset in the lab). A site never uses it: see Settings.site_kind.
LAB_AMI_SECRET = "siaga112-lab-secret"  # noqa: S105 - public on purpose, refused on a site
SITE_KINDS = ("lab", "site")
_SIP_TOKEN = re.compile(r"[A-Za-z0-9._~+-]{1,64}")
_ROLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_AGI_SECRET = re.compile(r"[A-Za-z0-9_-]{16,128}")
CONFIG_ENV = "SIAGA112_CONFIG"

_CALLER_ID = re.compile(r"\+?[0-9]{1,20}")
_SYSTEMNAME = re.compile(r"[a-z0-9][a-z0-9_]{0,31}")
# POSIX signs: Etc/GMT+8 is eight hours *behind* UTC, the opposite of what it reads as.
_SIGNED_GMT = re.compile(r"Etc/GMT(?P<sign>[+-])0*(?P<hours>[1-9][0-9]?)")

# libpq's own variables; any of them means "an operator pointed us at a real server".
LIBPQ_ENV = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")


class SettingsError(SiagaError, ValueError):
    """A setting could not be read or has an invalid value."""


log = logging.getLogger("telephony.settings")

def _default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "siaga112"


@dataclass(frozen=True)
class ShiftDefinition:
    """A named shift starting at a local wall-clock time; it ends where the next one starts."""

    name: str
    start: time


# A shift's name as the admin's roster form takes it (telephony/admin/site.py) and as calls
# are recorded under it: lower-case, for reports' and CSV files' names.
SHIFT_NAME = re.compile(r"[a-z][a-z0-9_-]{0,19}")

DEFAULT_SHIFTS = (
    ShiftDefinition("pagi", time(7, 0)),
    ShiftDefinition("siang", time(15, 0)),
    ShiftDefinition("malam", time(23, 0)),
)


@dataclass(frozen=True)
class DispatchTarget:
    """An incident of ``report_type`` must be dispatched within ``seconds`` of the answer."""

    report_type: str
    seconds: int


# The field context: fire and ambulance requests must be handled within 5 minutes.
DEFAULT_DISPATCH_TARGETS = (DispatchTarget("fire", 300), DispatchTarget("medical", 300))


@dataclass(frozen=True)
class ClusterNode:
    """One Asterisk node of a cluster (``cluster_nodes``): its name (its own
    ``asterisk_systemname``), its IP address, the port its Asterisk takes SIP on (the front
    sends calls there, the other nodes their device state), the port its line server takes
    FastAGI on (the other nodes' second FastAGI server) and, optionally, the port its line
    server takes HTTP on at that address (the other lines forward it what acts on its calls:
    telephony/cluster/forward.py)."""

    name: str
    host: str
    sip_port: int
    agi_port: int
    http_port: int | None = None

    def __str__(self) -> str:
        http = "" if self.http_port is None else f":{self.http_port}"
        return f"{self.name}={self.host}:{self.sip_port}:{self.agi_port}{http}"

    @property
    def http_url(self) -> str | None:
        """``http://address:port`` of its line server's HTTP API, if listed."""
        return None if self.http_port is None else f"http://{self.host}:{self.http_port}"

    @property
    def sip_address(self) -> str:
        """``address:port`` of its Asterisk's SIP (an IPv6 address in brackets)."""
        return f"{self.host}:{self.sip_port}"


@dataclass(frozen=True)
class Settings:
    """Every tunable of the line. Immutable: build a new one with :func:`load_settings`."""

    # Where the line keeps its runtime state: embedded database, spool, prompts, logs.
    state_dir: Path = Path("var")
    # "lab": a checkout, the development lab and the tests (the lab's well-known AMI secret
    # is fine). "site": a real installation; secrets left unset are generated into
    # secrets_dir on first start, and the lab's AMI secret is refused.
    site_kind: str = "lab"
    # Generated secrets, one 0600 file each (telephony/secrets.py); None: <state_dir>/secrets.
    secrets_dir: Path | None = None
    # The Asterisk root filesystem is large and slow to build, so it lives outside the repo.
    lab_rootfs: Path = field(default_factory=lambda: _default_cache_dir() / "asterisk-rootfs")
    lab_instance: str = "lab"
    # Where this site's Asterisk keeps its configuration and the line's prompts, as this host
    # sees them (telephony/asterisk/site.py; its monitor directory is recordings_incoming_dir).
    # None: the lab instance's, so a checkout needs no setting; a real site sets both.
    asterisk_etc_dir: Path | None = None
    asterisk_sounds_dir: Path | None = None
    # Asterisk's queue_log (logger.conf), read to backfill the calls made while the line was
    # down (telephony/calls/history.py). None: the lab instance's log/queue_log.
    asterisk_queue_log: Path | None = None
    # Asterisk rotates its logs (queue_log, messages.log) only when told to and never deletes
    # them: serve sends LoggerRotate every day at this hour (site time; -1: never, the site
    # rotates them itself) and deletes rotated files older than the days below, which must
    # stay far above any time the line could be down (the backfill reads the previous
    # queue_log after an outage; telephony/asterisk/log_rotation.py).
    asterisk_log_rotate_hour: int = 3
    asterisk_log_keep_days: int = 30

    # `siaga112 backup DIR` removes, once the new backup is whole, the backups beside it in
    # DIR's parent older than this many days (and half-written ones a crash left): a nightly
    # job used to fill its disk. 0: none removed, the site prunes them itself. A month, not a
    # week: a site that pruned by its own schedule (as the README said before) upgrades
    # without losing a longer history it may keep for its records.
    backup_keep_days: int = 30

    # FastAGI: Asterisk connects to us. Loopback only unless an operator says otherwise.
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    agi_command_timeout: float = 30.0  # one command's reply; GET DATA includes its prompt
    agi_session_timeout: float = 90.0  # whole IVR session; past it the dialplan fails open
    agi_max_frame_bytes: int = 16384
    # The dialplan waits this long for the server's first command (the GOSUB that tells it
    # the server is alive) before it fails open; after it only the session guard
    # (agi_session_timeout) applies. A stalled server costs a caller this, not the guard.
    agi_first_command_seconds: int = 4
    # Connections served at once, the hostile ones still sending nothing included; above it a
    # connection is closed at once and the dialplan fails open (the caller skips the menu,
    # not the operator). 500: a 2-core line's measured ceiling (bench/surge.py, 75 calls/s
    # with a 1-2 s IVR) holds ~150 sessions, and 500 is also 20 calls/s of callers who
    # listen to the whole menu (~25 s), more than the box carries; and 500 sockets stay
    # well inside the 1024 file descriptors a service gets by default, with room left for
    # the database pool, AMI, HTTP and recordings, which a flood must not starve.
    agi_max_sessions: int = 500
    # Peers the FastAGI server talks to (addresses or networks); the configured Asterisk
    # (ami_host, when it is an address) is always added. Anyone else is refused on connect.
    agi_allowed_peers: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    # Asterisk proves itself with this secret in the AGI URL (agi://host:port/ivr?secret=...).
    # None: none in the lab, a generated <secrets_dir>/agi_secret on a site (read it with
    # telephony.secrets.agi_secret).
    agi_secret: str | None = None
    # On SIGTERM the line stops taking FastAGI sessions and lets those in progress finish
    # for this long; the dialplan sends any still running then to the emergency queue.
    shutdown_drain_seconds: float = 10.0
    # The FastAGI IVR's process asks the kernel for this real-time round-robin priority (1-99),
    # so that callers' AGI replies get a core at once when a surge saturates the machine with
    # Asterisk. Needs root or CAP_SYS_NICE; without it the process runs at normal priority and
    # says so once. 0: normal priority.
    callpath_rt_priority: int = 10
    # Asterisk first on the CPU, in the lab: the nice value (-20..0) of Asterisk's session, set
    # when the lab starts it. Where the kernel shares the CPU between sessions first
    # (autogroup), every session weighs the same whatever its processes' nice values, so in a
    # surge the line's recorder and reports, PostgreSQL, a transcoder and the load generator
    # each took as much as all of Asterisk's threads. The site's compose file does the same
    # with the asterisk container's cpu_shares. Needs root (the lab has it). 0: as any session.
    lab_asterisk_nice: int = -10

    # AMI: we connect to Asterisk with a least-privilege user.
    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    ami_username: str = "siaga112"
    # None: the lab's LAB_AMI_SECRET in the lab, a generated <secrets_dir>/ami_secret on a
    # site (read it with telephony.secrets.ami_secret, never from here).
    ami_secret: str | None = None
    ami_reconnect_seconds: float = 1.0

    # SIP and RTP of the lab Asterisk (templated into asterisk-conf/).
    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    rtp_port_start: int = 10000
    rtp_port_end: int = 20000
    queue_max_wait: int = 60  # seconds in a skill queue before overflowing to all operators
    queue_wrapup_seconds: int = 5  # an operator's pause after each call before the next rings
    carrier_address: str = "127.0.0.1"  # source address of the carrier's SIP trunk
    carrier_sip_port: int = 5060  # where the carrier takes our outbound calls (survey callbacks)
    # A carrier that wants digest authentication on our calls, or a registration from us,
    # gets a username and a password (or a file holding it); the lab's carrier wants neither.
    carrier_username: str | None = None
    carrier_password: str | None = None
    carrier_password_file: Path | None = None
    carrier_register: bool = False  # keep a registration with the carrier (needs the above)
    carrier_realm: str | None = None  # None: answer whichever realm the carrier challenges with
    carrier_register_expiry: int = 600  # seconds we ask the carrier's registrar for
    # Registering operator phones: the digest realm their secrets are hashed with (changing it
    # invalidates every phone's secret), and how Asterisk reads them from PostgreSQL
    # (realtime; telephony/desks/phones.py): as asterisk_db_user, with a generated password,
    # at asterisk_db_host (None: the host of the line's own database).
    sip_realm: str = "siaga112"
    asterisk_db_host: str | None = None
    asterisk_db_user: str = "siaga112_asterisk"

    # The operators' browser softphones (a desk whose phone is the browser): WebRTC over a
    # WebSocket to Asterisk's own HTTP server (asterisk-conf/http.conf), never through the
    # line, so a softphone keeps ringing while the line's server is down. Asterisk serves
    # plain WebSocket on 127.0.0.1:asterisk_http_port for a front proxy (docker/nginx), and
    # WSS on asterisk_https_host:asterisk_https_port when it has a certificate (a PEM file
    # and its key, as Asterisk sees them; the lab makes a self-signed one).
    asterisk_http_port: int = 8088
    asterisk_https_host: str = "127.0.0.1"
    asterisk_https_port: int = 8089
    asterisk_tls_cert: Path | None = None
    asterisk_tls_key: Path | None = None
    # The URL browsers open (ws:// or wss://; the console's CSP allows its origin alone).
    # None: in the lab, Asterisk's own WSS on loopback; on a site, no softphone.
    softphone_ws_url: str | None = None
    # The one address Asterisk's media for browser softphones binds to and offers (its ICE
    # candidate); None: every interface (loopback is never offered then).
    softphone_media_address: str | None = None
    # The addresses media may use (ICE candidates), both ways: Asterisk offers only these,
    # and the softphone drops any other candidate of the browser. Empty: every address.
    softphone_ice_networks: tuple[str, ...] = ()
    # A browser phone unreachable this long (its WebSocket closed, or qualify failing) is
    # paused and taken out of its queues by the line; a reloaded page re-registers sooner.
    softphone_lost_grace_seconds: float = 5.0
    # A browser phone's call whose media has stopped this long (the browser died or lost its
    # network mid-call, no BYE) is hung up by Asterisk, held or not (migration 0049).
    softphone_rtp_timeout_seconds: int = 30
    # Likewise a desk (SIP) phone's call, which lost its power or network mid-call: after
    # desk_phone_rtp_timeout_seconds of no media, or desk_phone_rtp_timeout_hold_seconds
    # while the call is held (a SIP phone without ICE may send nothing at all then).
    # Migration 0049; pjsip.conf's [operator] for hand-listed phones. 60 s, not the
    # browser's 30: a browser's ICE consent checks prove it alive every few seconds, while a
    # desk phone with silence suppression and no RTCP sends nothing as its operator listens,
    # and cutting a live emergency call is worse than a dead one lasting 30 s longer.
    desk_phone_rtp_timeout_seconds: int = 60
    desk_phone_rtp_timeout_hold_seconds: int = 600

    # Lab operators: op1001.. whose phones are one sipp UAS on this port.
    lab_operators: int = 50
    lab_operator_sip_port: int = 5070

    # A cluster of Asterisk nodes (issue 15). Each node's name, rendered into asterisk.conf's
    # systemname: its Uniqueids (call ids) read <systemname>-<epoch>.<seq>, so they never
    # collide with another node's in the shared database, and this node's line resyncs and
    # declares vanished only the calls of its own node. None: one node, plain ids.
    asterisk_systemname: str | None = None
    # Every node of the cluster, this one included, each "name=address:sip_port:agi_port"
    # (its systemname, its Asterisk's SIP, its line server's FastAGI): the same list on every
    # node and the front. The front spreads calls over their SIP ports (kamailio_nodes); each
    # node shares its operators' device state with the others by SIP PUBLISH
    # (pjsip_cluster.conf), so an operator on a call on one node is busy on all, and its
    # dialplan tries the next node's FastAGI server when its own cannot start the IVR.
    # Empty: a single node, and nothing of the cluster is rendered.
    cluster_nodes: tuple[ClusterNode, ...] = ()
    # Kamailio in front of the nodes (telephony/kamailio/, kamailio-conf/): where it takes the
    # carrier's calls and the operator phones' registrations, how often it probes each node
    # with SIP OPTIONS, and how long a node may stay silent on a call before Kamailio tries
    # the next one.
    kamailio_host: str = "127.0.0.1"
    kamailio_port: int = 5080
    # Where the front takes browser softphones' SIP over a plain WebSocket (ws://, on
    # kamailio_host): on a cluster they register there, not with a node, so either node rings
    # them. The lab's browsers open it directly; a site's HTTPS front proxies its /sip-ws to
    # it (softphone_ws_url = "wss://<site>/sip-ws", as for a single node's Asterisk).
    kamailio_ws_port: int = 5066
    kamailio_probe_seconds: int = 1
    kamailio_node_timeout_ms: int = 1000
    # The front records every call it dispatches (front_calls); every node's line turns those
    # no node recorded into records of their own, lost with their node
    # (telephony/cluster/reconcile.py): this long after the front recorded the call, looked
    # at every front_reconcile_seconds.
    front_reconcile_grace_seconds: float = 60.0
    front_reconcile_seconds: float = 10.0
    # Reconciled front rows older than this are deleted by the same passes, in batches: once
    # reconciled nothing reads them again, and a month (the longest period a shift report
    # covers, 31 days) keeps the front's own account to check any reportable period's calls
    # against, and an incident's review; the call records themselves stay.
    front_calls_retention_days: int = 31

    # Database: DSN, else PG* variables, else embedded cluster on a private socket.
    database_dsn: str | None = None
    # Two roles (telephony/db/roles.py): the owner of the schema runs migrations, grants and
    # restores as database_owner_dsn; the line connects as database_dsn, whose role must be
    # database_line_user, owns nothing and holds only the grants its SQL needs (on audit_log
    # INSERT and SELECT). Unset: the line's own DSN is the owner too (a database of one role,
    # as before), except in the embedded cluster, which always has both.
    database_owner_dsn: str | None = None
    database_line_user: str = "siaga112_line"
    embedded_pg_port: int = 55432
    db_connect_timeout: float = 3.0
    db_retry_seconds: float = 2.0
    # A second directory for the call-fact spool when its own (<state_dir>/spool) cannot be
    # written (full disk, read-only mount): best on another file system. None: facts the
    # spool cannot take are held in memory (bounded) until it or PostgreSQL takes them.
    spool_fallback_dir: Path | None = None
    # How often calls the database still has open are checked against Asterisk's channels
    # (and at once when the database comes back), so that a call whose hang-up was missed
    # while the database was away is closed as vanished. Also how long an Asterisk refusing
    # every AMI reconnection may stay away before its calls are recorded cut (outages.py).
    vanish_check_seconds: float = 60.0
    # A primary with a streaming replica, failed over by Patroni (telephony/db/patroni.py
    # renders each node's config: ``python -m telephony patroni-config``). The line reaches
    # it with a multi-host database_dsn/database_owner_dsn ending in
    # ``?target_session_attrs=read-write``, so every new connection finds the primary.
    # The cluster's name in etcd, etcd's client endpoints (host:port), the networks the
    # nodes and the line connect from (pg_hba), and Patroni's timing: the leader key lives
    # patroni_ttl seconds, so a lost node is replaced within about that (loop_wait +
    # 2 x retry_timeout must not exceed it).
    patroni_scope: str = "siaga112"
    patroni_etcd_hosts: tuple[str, ...] = ("127.0.0.1:2379",)
    patroni_networks: tuple[str, ...] = ("127.0.0.0/8",)
    patroni_ttl: int = 10
    patroni_loop_wait: int = 2
    patroni_retry_timeout: int = 4

    timezone: str = "Asia/Jakarta"
    shifts: tuple[ShiftDefinition, ...] = DEFAULT_SHIFTS

    # Incidents. Answered calls older than this get no incident automatically (so a first
    # start on an old call history does not open thousands); an operator can still create one.
    incident_auto_create_hours: float = 24.0
    incident_upkeep_seconds: float = 2.0  # how often new incidents and notifications are made
    incident_dispatch_targets: tuple[DispatchTarget, ...] = DEFAULT_DISPATCH_TARGETS
    attachment_max_bytes: int = 25 * 1024 * 1024

    # Dispatch notifications: POSTed as JSON to this URL if set, else only logged.
    notify_webhook_url: str | None = None
    notify_timeout: float = 5.0  # one delivery attempt, connect to response
    notify_retry_seconds: float = 15.0  # first retry delay; doubles per attempt up to 15 min
    notify_max_attempts: int = 20  # then the notification is kept as failed

    # Caller rating: once an incident is resolved the line calls its first caller back through
    # the carrier into a short survey (rating 1-5 by DTMF).
    survey_delay_seconds: float = 600.0  # after the incident is resolved
    survey_max_attempts: int = 3  # unanswered, busy or failed calls; then "exhausted"
    survey_retry_seconds: float = 1800.0  # between attempts
    survey_ring_seconds: float = 30.0  # an unanswered callback rings this long

    # Transfers and conferences to agencies (telephony/transfers/): an agency's number rings
    # this long before the caller goes back to the operator who transferred.
    transfer_ring_seconds: int = 30
    # The number the caller sees on the line's calls to them: surveys and operators' call-backs.
    survey_caller_id: str = "112"
    survey_hours: str = "08:00-20:00"  # local hours a callback may ring; "" for any hour
    survey_lookback_hours: float = 72.0  # incidents resolved longer ago get no callback

    # Call-backs of dropped and abandoned callers (telephony/callbacks/): the worklist holds
    # the calls that ended this recently; each call-back rings the operator's phone, then the
    # caller's, this long at most (seconds).
    callback_window_hours: float = 24.0
    callback_ring_seconds: int = 30

    # None: <state_dir>/ivr/menu.json, written by an admin's first publish (until then the
    # packaged default menu); see live_menu_file.
    menu_file: Path | None = None
    prompt_voice: str = "id"

    # Prank screening: weights, thresholds and queue priorities as an admin's JSON file
    # (None: <state_dir>/ivr/screening.json once an admin publishes one, the built-in
    # defaults until then); re-read when it changes.
    screening_file: Path | None = None
    screening_timeout_ms: int = 300  # the IVR waits this long for a late score, then routes
    screening_upkeep_seconds: float = 2.0  # how often ended calls are rescored

    # Reports give way to the call records (telephony/reports/gate.py): a report waits while
    # the oldest call fact not yet written has waited longer than report_yield_lag_ms, at most
    # report_max_wait_seconds in all (0: never waits); one report runs at a time; and while
    # calls are being recorded (call facts within the last second), reports take at most
    # report_busy_share of the time (a report after one that took t s rests
    # t * (1 / share - 1) s; 1: no rest).
    report_yield_lag_ms: int = 250
    report_max_wait_seconds: float = 20.0
    report_busy_share: float = 0.25

    log_level: str = "INFO"

    # GET /metrics answers only clients at these addresses or networks (the Prometheus that
    # scrapes the line); loopback by default. /healthz and /readyz are open to anyone.
    metrics_allowed_addresses: tuple[str, ...] = ("127.0.0.0/8", "::1/128")

    # HTTP JSON API (and the console built on it). Loopback only by default: a site serves it
    # to its LAN through a TLS reverse proxy, and then sets http_cookie_secure.
    http_host: str = "127.0.0.1"
    http_port: int = 8112  # 0: any free port (tests)
    http_cookie_secure: bool = False  # cookies only over HTTPS; a site behind its front: true
    # The HTTPS front(s) (addresses or networks) whose X-Forwarded-For names the client; empty:
    # trust none, the client is whoever connected. Read by telephony/web/forwarded.py.
    http_trusted_proxies: tuple[str, ...] = ()
    http_session_hours: float = 12.0  # a shift (8 h) plus handover and overtime
    # Login throttling: after this many failures within the window (per username from one
    # address, and per address under any names) every further attempt from that address waits
    # login_delay_seconds, doubling per failure, at most the window. A name is never locked
    # for everyone: guesses from elsewhere do not keep its owner out. Addresses are the
    # clients' as http_trusted_proxies lets the front name them.
    login_max_failures: int = 5
    login_max_failures_per_address: int = 20
    login_failure_window_minutes: float = 60.0
    login_delay_seconds: float = 30.0

    # Call recordings: Asterisk's MixMonitor writes <call_id>.wav into its monitor directory,
    # recordings_incoming_dir (None: the lab instance's spool/monitor, as the asterisk_*
    # directories); the worker stores them compressed.
    recordings_format: str = "opus"  # opus (Ogg Opus) or mp3
    recordings_incoming_dir: Path | None = None
    recordings_poll_seconds: float = 2.0
    recordings_settle_seconds: float = 3.0  # unchanged this long after the call: complete
    recordings_missing_after_seconds: float = 120.0  # ended this long ago, no file: missing
    # Calls that ended longer ago are paired only with a file: none is reported missing.
    recordings_lookback_hours: int = 48
    # A job's claim: short, renewed by its worker every heartbeat while it works, so a crashed
    # worker's job is taken over within the lease (recordings/worker.py says why 30 and 10).
    recordings_lease_seconds: float = 30.0
    recordings_heartbeat_seconds: float = 10.0
    recordings_process_timeout: float = 300.0  # one file, plus its length (a long call)
    recordings_max_attempts: int = 3
    # Also record each leg alone (MixMonitor r()/t()): <call_id>-caller.wav, what the line
    # received, and <call_id>-line.wav, what it sent; processed and kept like the mixed file.
    recordings_separate_legs: bool = False
    # Retention in days by the call's IVR category; the default covers calls without one.
    recordings_retention_emergency_days: int = 3650
    recordings_retention_complaint_days: int = 730
    recordings_retention_information_days: int = 365
    recordings_retention_default_days: int = 3650
    # How often serve applies the retention above itself (hours); 0: never, only the
    # `recordings retention` command.
    recordings_retention_interval_hours: float = 24.0

    @property
    def live_secrets_dir(self) -> Path:
        """Where generated secrets live: ``secrets_dir``, else ``<state_dir>/secrets``."""
        return self.secrets_dir or self.state_dir / "secrets"

    @property
    def is_site(self) -> bool:
        """A real installation rather than the development lab."""
        return self.site_kind == "site"

    @property
    def is_lab(self) -> bool:
        """The development lab: site_kind "lab", driving the lab instance's own Asterisk, the
        one ``siaga112 lab start``, ``siaga112 demo`` (scripts/demo) and the e2e harness run
        in its chroot with manager.conf rendered from these settings (AMI bound to loopback).
        A line whose Asterisk configuration lives elsewhere (asterisk_etc_dir) or whose AMI
        is not on loopback talks to some other Asterisk: that is not the lab, whatever
        site_kind says (it defaults to "lab", so a forgotten setting must not be enough)."""
        return (self.site_kind == "lab" and self.asterisk_etc_dir is None
                and _is_loopback(self.ami_host))

    def lab_ami_secret_refusal(self) -> str | None:
        """Why the lab's public AMI secret may not be used here, or ``None`` (the lab, or a
        secret of its own)."""
        lab_secret = (self.ami_secret == LAB_AMI_SECRET
                      or (self.ami_secret is None and not self.is_site))
        if not lab_secret or self.is_lab:
            return None
        where = (f"Asterisk configured at {self.asterisk_etc_dir}"
                 if self.asterisk_etc_dir is not None else f"AMI at {self.ami_host}")
        return ("ami_secret: the lab's AMI secret is public and refused outside the lab "
                f"({where}, site_kind = {self.site_kind!r}); set site_kind = \"site\" to have "
                f"one generated in {self.live_secrets_dir / 'ami_secret'}, or set your own")

    @property
    def spool_dir(self) -> Path:
        """Facts that could not be written to the database wait here."""
        return self.state_dir / "spool"

    @property
    def prompts_dir(self) -> Path:
        """Generated IVR prompt audio (8 kHz mono WAV)."""
        return self.state_dir / "prompts"

    @property
    def prompt_overrides_dir(self) -> Path:
        """An admin drops a recorded ``<name>.wav`` here to replace a generated prompt."""
        return self.state_dir / "prompts-recorded"

    @property
    def live_menu_file(self) -> Path:
        """The menu file the line watches and an admin's publish replaces: ``menu_file``,
        else ``<state_dir>/ivr/menu.json``."""
        return self.menu_file or self.state_dir / "ivr" / "menu.json"

    @property
    def live_screening_file(self) -> Path:
        """The screening configuration file the line watches and an admin's publish
        replaces: ``screening_file``, else ``<state_dir>/ivr/screening.json``."""
        return self.screening_file or self.state_dir / "ivr" / "screening.json"

    @property
    def recordings_dir(self) -> Path:
        """Processed recordings, as ``YYYY/MM/DD/<call_id>.<format>``."""
        return self.state_dir / "recordings"

    @property
    def attachments_dir(self) -> Path:
        """Field documentation uploaded to incidents, as ``YYYY/MM/DD/<name>``."""
        return self.state_dir / "attachments"

    @property
    def recordings_quarantine_dir(self) -> Path:
        """Recordings that could not be processed, kept as Asterisk wrote them."""
        return self.state_dir / "recordings-quarantine"

    @property
    def embedded_pg_dir(self) -> Path:
        """Data directory of the embedded PostgreSQL cluster.

        PostgreSQL will not run as root, so as root the cluster runs as the ``postgres`` user,
        which must be able to enter every parent directory. A checkout under a private home
        directory does not allow that; the cluster then lives under /var/lib/siaga112, in a
        directory named after the state directory so two checkouts never share one.
        """
        local = self.state_dir.resolve() / "pgdata"
        if os.geteuid() != 0 or all(p.stat().st_mode & 0o001 for p in local.parents
                                    if p.exists()):
            return local
        digest = hashlib.sha256(str(local).encode()).hexdigest()[:12]
        return Path("/var/lib/siaga112") / f"pgdata-{digest}"

    @property
    def uses_embedded_database(self) -> bool:
        """True when neither a DSN nor libpq's environment names a server."""
        return self.database_dsn is None and not any(v in os.environ for v in LIBPQ_ENV)

    @property
    def separate_database_owner(self) -> bool:
        """True when the line connects as its own role, not as the schema's owner."""
        return self.database_owner_dsn is not None or self.uses_embedded_database

    @property
    def live_softphone_ws_url(self) -> str | None:
        """The WebSocket URL browser softphones connect to: ``softphone_ws_url``, else in
        the lab the front's WebSocket on a cluster (``cluster_nodes`` set), Asterisk's own
        WSS on loopback on a single node; ``None``: this site has no softphone."""
        if self.softphone_ws_url is not None:
            return self.softphone_ws_url
        if self.is_site:
            return None
        if self.kamailio_front is not None:
            # A lab cluster: the front's own WebSocket (the console is plain HTTP there).
            host = f"[{self.kamailio_host}]" if ":" in self.kamailio_host else self.kamailio_host
            return f"ws://{host}:{self.kamailio_ws_port}/ws"
        return f"wss://127.0.0.1:{self.asterisk_https_port}/ws"

    @property
    def kamailio_nodes(self) -> tuple[str, ...]:
        """Every node's SIP ``address:port``, where the front sends calls."""
        return tuple(node.sip_address for node in self.cluster_nodes)

    @property
    def cluster_self(self) -> ClusterNode | None:
        """This node's own entry of ``cluster_nodes`` (``asterisk_systemname``'s), if any:
        the address the other nodes and the front reach it at."""
        return next((node for node in self.cluster_nodes
                     if node.name == self.asterisk_systemname), None)

    @property
    def cluster_peers(self) -> tuple[ClusterNode, ...]:
        """The other nodes of the cluster (every node but ``asterisk_systemname``), in
        ``cluster_nodes``' order starting after this node's: each node's first peer (its
        second FastAGI server) is then a different one."""
        nodes = self.cluster_nodes
        names = [node.name for node in nodes]
        if self.asterisk_systemname not in names:
            return nodes
        index = names.index(self.asterisk_systemname)
        return nodes[index + 1:] + nodes[:index]

    @property
    def kamailio_front(self) -> str | None:
        """``host:port`` of the cluster's SIP front when this node is behind one
        (``cluster_nodes`` set): its desk phones register there and are rung through it."""
        if not self.kamailio_nodes:
            return None
        host = f"[{self.kamailio_host}]" if ":" in self.kamailio_host else self.kamailio_host
        return f"{host}:{self.kamailio_port}"

    @property
    def agi_url(self) -> str:
        """The FastAGI URL the dialplan calls for the IVR."""
        return f"agi://{self.agi_host}:{self.agi_port}/ivr"

    @property
    def survey_agi_url(self) -> str:
        """The FastAGI URL the dialplan calls for the caller-rating survey."""
        return f"agi://{self.agi_host}:{self.agi_port}/survey"


def _parse_shifts(raw: Any) -> tuple[ShiftDefinition, ...]:
    """Shifts come as ``{"pagi": "07:00", ...}`` or ``"pagi=07:00,siang=15:00,..."``."""
    if isinstance(raw, str):
        pairs = [item.split("=", 1) for item in raw.split(",") if item.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise SettingsError(f"shifts: expected name=HH:MM,..., got {raw!r}")
        names = [name.strip() for name, _ in pairs]
        if len(set(names)) != len(names):
            # A dict keeps the last one: "pagi=07:00,pagi=15:00" silently lost a shift.
            raise SettingsError(f"shifts: two shifts named the same, got {raw!r}")
        raw = {name.strip(): start.strip() for name, start in pairs}
    if not isinstance(raw, Mapping) or not raw:
        raise SettingsError("shifts: expected a non-empty table of name = HH:MM")
    shifts = []
    for name, start in raw.items():
        if not str(name).strip():
            raise SettingsError(f"shifts: a shift without a name, starting at {start!r}")
        try:
            parsed = start if isinstance(start, time) else time.fromisoformat(str(start))
        except ValueError as exc:
            raise SettingsError(f"shifts: {name}: invalid time {start!r}") from exc
        if parsed.tzinfo is not None:
            # A start is a wall-clock time in the ``timezone`` setting. With an offset
            # ("07:00+08:00" for WITA) it could not be compared with the local clock: every
            # call's shift attribution failed with a TypeError once the line ran.
            raise SettingsError(f"shifts: {name}: {start!r} has a UTC offset; write the local "
                                f"time (HH:MM) and set timezone (Asia/Makassar for WITA)")
        shifts.append(ShiftDefinition(str(name), parsed))
    starts = [s.start for s in shifts]
    if len(set(starts)) != len(starts):
        raise SettingsError("shifts: two shifts start at the same time")
    return tuple(sorted(_lower_case_shifts(shifts), key=lambda s: s.start))


def _lower_case_shifts(shifts: list[ShiftDefinition]) -> list[ShiftDefinition]:
    """The shifts under lower-case names. A settings file's ``Pagi`` was taken as written, and
    the admin's roster form, which takes lower-case names only (:data:`SHIFT_NAME`), then
    refused the very roster it showed; refusing it here would stop a site that has run for
    years. Its calls recorded under the old name stay in the reports (a renamed shift's
    slots). Two names that differ only in case are kept as written: either would be lost.
    Said in one log line; a name the form refuses for other reasons is named too."""
    lowered = [ShiftDefinition(s.name.strip().lower(), s.start) for s in shifts]
    if len({s.name for s in lowered}) != len(lowered):
        lowered = shifts
    renamed = [f"{old.name} -> {new.name}" for old, new in zip(shifts, lowered, strict=True)
               if old.name != new.name]
    refused = [s.name for s in lowered if not SHIFT_NAME.fullmatch(s.name)]
    if renamed or refused:
        log.warning("shifts: %s%s%s", f"taken as {', '.join(renamed)}" if renamed else "",
                    "; " if renamed and refused else "",
                    f"the admin's roster form refuses {', '.join(map(repr, refused))} (lower-"
                    "case letters, digits, '_' or '-', at most 20): rename in the settings "
                    "file" if refused else "")
    return lowered


def _parse_dispatch_targets(raw: Any) -> tuple[DispatchTarget, ...]:
    """Targets come as ``{fire = 300, ...}`` or ``"fire=300,medical=300"`` (seconds); an empty
    string means no targets."""
    if isinstance(raw, str):
        pairs = [item.split("=", 1) for item in raw.split(",") if item.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise SettingsError(
                f"incident_dispatch_targets: expected type=seconds,..., got {raw!r}")
        raw = {kind.strip(): seconds.strip() for kind, seconds in pairs}
    if not isinstance(raw, Mapping):
        raise SettingsError("incident_dispatch_targets: expected a table of type = seconds")
    targets = []
    for kind, seconds in raw.items():
        try:
            value: int | None = int(seconds)
        except (TypeError, ValueError):
            value = None
        if value is None or isinstance(seconds, bool | float):
            raise SettingsError(f"incident_dispatch_targets: {kind}: invalid seconds {seconds!r}")
        targets.append(DispatchTarget(str(kind), value))
    return tuple(targets)


# Settings that hold a list of IP addresses or networks.
_NETWORK_LISTS = ("http_trusted_proxies", "metrics_allowed_addresses",
                  "softphone_ice_networks", "agi_allowed_peers", "patroni_networks")
_ENDPOINT = re.compile(r"[A-Za-z0-9.-]{1,253}:[0-9]{1,5}")


def _parse_endpoints(name: str, raw: Any) -> tuple[str, ...]:
    """``host:port`` items as a TOML list or ``"a:2379,b:2379"`` (they go into a YAML file
    and a URL: nothing else is allowed in them)."""
    if isinstance(raw, str):
        raw = [item.strip() for item in raw.split(",") if item.strip()]
    if not isinstance(raw, list | tuple) or not raw:
        raise SettingsError(f"{name}: expected a non-empty list of host:port")
    for item in raw:
        if not isinstance(item, str) or not _ENDPOINT.fullmatch(item) \
                or not 0 < int(item.rpartition(":")[2]) < 65536:
            raise SettingsError(f"{name}: not host:port: {item!r}")
    return tuple(raw)


def _parse_networks(name: str, raw: Any) -> tuple[str, ...]:
    """Addresses or networks as a TOML list or ``"10.0.0.0/8,192.0.2.1"``; an address is a
    network of one. Kept as their normalised text (``ipaddress.ip_network`` reads it back)."""
    if isinstance(raw, str):
        raw = [item for item in raw.split(",") if item.strip()]
    if not isinstance(raw, list | tuple):
        raise SettingsError(f"{name}: expected a list of addresses or networks")
    networks = []
    for item in raw:
        try:
            networks.append(str(ipaddress.ip_network(str(item).strip(), strict=False)))
        except ValueError as exc:
            raise SettingsError(f"{name}: not an IP address or network: {item!r}") from exc
    return tuple(networks)


_NODE = re.compile(r"(?P<name>[^=]+)=(?P<host>\[[^\]]*\]|[^:\[\]]+):(?P<sip>[0-9]{1,5})"
                   r":(?P<agi>[0-9]{1,5})(?::(?P<http>[0-9]{1,5}))?")
_NODE_FORM = "name=address:sip_port:agi_port[:http_port]"


def _parse_nodes(raw: Any) -> tuple[ClusterNode, ...]:
    """Nodes as a TOML list or ``"node1=10.0.0.2:5060:4573:8112,node2=..."``; each address an
    IP address (Kamailio must not wait on DNS to route an emergency call), IPv6 in brackets;
    the line server's HTTP port last, optionally."""
    if isinstance(raw, str):
        raw = [item for item in raw.split(",") if item.strip()]
    if not isinstance(raw, list | tuple):
        raise SettingsError(f"cluster_nodes: expected a list of {_NODE_FORM}")
    nodes = []
    for item in raw:
        match = _NODE.fullmatch(str(item).strip())  # a ClusterNode's text form too
        try:
            if match is None:
                raise ValueError(item)
            address = ipaddress.ip_address(match["host"].strip("[]"))
        except ValueError as exc:
            raise SettingsError(f"cluster_nodes: expected {_NODE_FORM} with an IP address, "
                                f"got {item!r}") from exc
        host = f"[{address}]" if address.version == 6 else str(address)
        http = None if match["http"] is None else int(match["http"])
        nodes.append(ClusterNode(match["name"], host, int(match["sip"]), int(match["agi"]),
                                 http))
    return tuple(nodes)


def _coerce(name: str, annotation: Any, raw: Any) -> Any:
    """Turn a TOML value or an environment string into the field's declared type."""
    if name == "cluster_nodes":
        return _parse_nodes(raw)
    if name == "shifts":
        return _parse_shifts(raw)
    if name in _NETWORK_LISTS:
        return _parse_networks(name, raw)
    if name == "patroni_etcd_hosts":
        return _parse_endpoints(name, raw)
    if name == "incident_dispatch_targets":
        return _parse_dispatch_targets(raw)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if raw is None or (isinstance(raw, str) and raw == ""):
            return None
        return _coerce(name, options[0], raw)
    try:
        if annotation is bool:
            if isinstance(raw, bool):
                return raw
            lowered = str(raw).strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if annotation is int:
            # A TOML float would be cut silently (port 1.5 -> 1); a bool is an int to Python.
            if isinstance(raw, bool | float):
                raise ValueError(raw)
            return int(raw)
        if annotation is float:
            value = float(raw)
            # NaN passes every '< 0' check after it, and no interval or timeout is infinite.
            if not math.isfinite(value):
                raise ValueError(raw)
            return value
        if annotation is Path:
            if not isinstance(raw, str):  # a number is no directory, not even '5'
                raise ValueError(raw)
            return Path(raw).expanduser()
        if annotation is str:
            if not isinstance(raw, str):
                raise ValueError(raw)
            return raw
    except ValueError as exc:
        raise SettingsError(f"{name}: invalid value {raw!r}") from exc
    raise SettingsError(f"{name}: unsupported setting type {annotation!r}")


def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(Settings)
    return {f.name: hints[f.name] for f in dataclasses.fields(Settings)}


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings from defaults, a TOML file, the environment and CLI overrides.

    The file is ``config_file``, else ``$SIAGA112_CONFIG`` if set. Unknown keys anywhere are an
    error: a mistyped setting silently ignored on an emergency line is worse than a refusal.
    """
    env = os.environ if environ is None else environ
    types_by_name = _field_types()
    values: dict[str, Any] = {}

    path = config_file or (Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else None)
    if path is not None:
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read settings file {path}: {exc}") from exc
        except UnicodeDecodeError as exc:  # TOML is UTF-8; an editor may save UTF-16 or cp1252
            raise SettingsError(f"cannot read settings file {path}: not UTF-8 (byte "
                                f"{exc.start}); save it as UTF-8") from exc
        for key, raw in document.items():
            if key not in types_by_name:
                raise SettingsError(f"{path}: unknown setting {key!r}")
            values[key] = _coerce(key, types_by_name[key], raw)

    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX) or key == CONFIG_ENV:
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name not in types_by_name:
            raise SettingsError(f"environment: unknown setting {key}")
        values[name] = _coerce(name, types_by_name[name], raw)

    for name, raw in (overrides or {}).items():
        if name not in types_by_name:
            raise SettingsError(f"--set: unknown setting {name!r}")
        values[name] = _coerce(name, types_by_name[name], raw)

    settings = Settings(**values)
    _validate(settings)
    return settings


# Settings that must lie within [low, high] (a NaN lies in none).
_RANGES: Final[dict[str, tuple[float, float]]] = {
    "vanish_check_seconds": (5, 3600),
    "front_reconcile_grace_seconds": (1, 86400),
    "front_reconcile_seconds": (1, 3600),
    "front_calls_retention_days": (1, 3650),
    "recordings_retention_interval_hours": (0, 720),
    "asterisk_log_rotate_hour": (-1, 23),
    "asterisk_log_keep_days": (7, 3650),
    "backup_keep_days": (0, 3650),
    "callpath_rt_priority": (0, 99),
    "lab_asterisk_nice": (-20, 0),
    # Past a few minutes a container runtime kills the process anyway (docker: 10 s by
    # default, raise its stop_grace_period with the drain), and a supervisor's browser or a
    # proxy gives up on a report's reply.
    "shutdown_drain_seconds": (0, 300),
    "report_max_wait_seconds": (0, 300),
    "report_busy_share": (0.01, 1),
}


def _validate(settings: Settings) -> None:
    ports = {
        "agi_port": settings.agi_port,
        "ami_port": settings.ami_port,
        "sip_port": settings.sip_port,
        "lab_operator_sip_port": settings.lab_operator_sip_port,
        "embedded_pg_port": settings.embedded_pg_port,
        "carrier_sip_port": settings.carrier_sip_port,
        "asterisk_http_port": settings.asterisk_http_port,
        "asterisk_https_port": settings.asterisk_https_port,
    }
    for name, port in ports.items():
        if not 0 < port < 65536:
            raise SettingsError(f"{name}: {port} is not a TCP/UDP port")
    if not settings.rtp_port_start < settings.rtp_port_end:
        raise SettingsError("rtp_port_start must be below rtp_port_end")
    for name in ("agi_command_timeout", "agi_session_timeout", "db_connect_timeout",
                 "screening_timeout_ms", "screening_upkeep_seconds", "report_yield_lag_ms"):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{name} must be positive")
    if (settings.spool_fallback_dir is not None
            and settings.spool_fallback_dir.resolve() == settings.spool_dir.resolve()):
        raise SettingsError("spool_fallback_dir must be another directory than the spool's")
    for name, (low, high) in _RANGES.items():
        if not low <= getattr(settings, name) <= high:
            raise SettingsError(f"{name} must be between {low} and {high}")
    if settings.queue_max_wait <= 0 or settings.queue_wrapup_seconds < 0:
        raise SettingsError("queue_max_wait must be positive, queue_wrapup_seconds not negative")
    _validate_cluster(settings)
    if not 0 < settings.lab_operators <= 8999:
        raise SettingsError("lab_operators must be between 1 and 8999 (op1001..op9999)")
    if settings.agi_max_frame_bytes < 1024:
        raise SettingsError("agi_max_frame_bytes must be at least 1024")
    if not 1 <= settings.agi_first_command_seconds < settings.agi_session_timeout:
        raise SettingsError("agi_first_command_seconds must be at least 1 and below "
                            "agi_session_timeout")
    if settings.agi_max_sessions < 1:
        raise SettingsError("agi_max_sessions must be at least 1")
    if settings.agi_secret is not None and not _AGI_SECRET.fullmatch(settings.agi_secret):
        # It is spliced into the dialplan's AGI URL: nothing that means anything there.
        raise SettingsError("agi_secret: 16-128 letters, digits, _ or -")
    if settings.recordings_format not in ("opus", "mp3"):
        raise SettingsError("recordings_format must be opus or mp3")
    for name in ("recordings_retention_emergency_days", "recordings_retention_complaint_days",
                 "recordings_retention_information_days", "recordings_retention_default_days",
                 "recordings_lookback_hours", "recordings_max_attempts"):
        if getattr(settings, name) < 1:
            raise SettingsError(f"{name} must be at least 1")
    for name in ("recordings_poll_seconds", "recordings_process_timeout",
                 "recordings_heartbeat_seconds"):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{name} must be positive")
    if settings.recordings_settle_seconds < 0 or settings.recordings_missing_after_seconds < 0:
        raise SettingsError("recordings_settle_seconds and _missing_after_seconds: not negative")
    if settings.recordings_heartbeat_seconds * 3 > settings.recordings_lease_seconds:
        # Otherwise one late renewal lets the lease run out while the job still runs, and a
        # second worker starts the same file.
        raise SettingsError("recordings_heartbeat_seconds must be at most a third of the lease")
    _validate_process(settings)
    _validate_database_cluster(settings)
    _validate_incidents(settings)
    _validate_surveys(settings)
    _validate_http(settings)
    _validate_site(settings)
    _validate_softphone(settings)


def _validate_process(settings: Settings) -> None:
    # Both are first used deep inside a command (logging's set-up, the shift calendar of
    # serve): checked here, a wrong value is one line before anything runs, not a traceback
    # after the database has started.
    if settings.log_level.upper() not in logging.getLevelNamesMapping():
        raise SettingsError(f"log_level: one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got "
                            f"{settings.log_level!r}")
    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        # ValueError: a key that is not a relative path of the zone database ("../x", "").
        raise SettingsError(f"timezone: an IANA time zone such as Asia/Jakarta, got "
                            f"{settings.timezone!r}") from exc
    signed = _SIGNED_GMT.fullmatch(settings.timezone)
    if signed is not None:
        # A WITA site writing Etc/GMT+8 for UTC+8 would run 16 hours off: every call in the
        # wrong shift and day, every console time wrong, and nothing looking broken.
        offset = f"UTC{'-' if signed['sign'] == '+' else '+'}{int(signed['hours']):02d}:00"
        raise SettingsError(f"timezone: {settings.timezone} is {offset} (POSIX inverts the "
                            f"sign); use the centre's zone: Asia/Jakarta (WIB), "
                            f"Asia/Makassar (WITA) or Asia/Jayapura (WIT)")


def _validate_cluster(settings: Settings) -> None:
    name = settings.asterisk_systemname
    if name is not None and not _SYSTEMNAME.fullmatch(name):
        # It starts every call id, which URLs and recording file names carry.
        raise SettingsError("asterisk_systemname: 1-32 of a-z, 0-9 and _, starting with a "
                            "letter or digit")
    try:
        ipaddress.ip_address(settings.kamailio_host)
    except ValueError as exc:
        raise SettingsError(f"kamailio_host: an IP address, got {settings.kamailio_host!r}"
                            ) from exc
    if not 0 < settings.kamailio_port < 65536:
        raise SettingsError(f"kamailio_port: {settings.kamailio_port} is not a UDP port")
    if not 0 < settings.kamailio_ws_port < 65536 or \
            settings.kamailio_ws_port == settings.kamailio_port:
        raise SettingsError(f"kamailio_ws_port: {settings.kamailio_ws_port} is not a TCP port "
                            "of its own (kamailio_port is the front's SIP over UDP)")
    if not 1 <= settings.kamailio_probe_seconds <= 60:
        raise SettingsError("kamailio_probe_seconds must be between 1 and 60")
    if not 200 <= settings.kamailio_node_timeout_ms <= 30000:
        raise SettingsError("kamailio_node_timeout_ms must be between 200 and 30000")
    _validate_cluster_nodes(settings)


def _validate_cluster_nodes(settings: Settings) -> None:
    """The nodes' names and addresses go into pjsip.conf, the dialplan's AGI URL and the
    front's dispatcher list: nothing but plain names, addresses and ports."""
    nodes = _parse_nodes(list(settings.cluster_nodes))
    names = [node.name for node in nodes]
    if len(set(names)) != len(names) or \
            len({node.sip_address for node in nodes}) != len(nodes):
        raise SettingsError("cluster_nodes: a node (its name or its SIP address) is listed twice")
    if nodes and settings.asterisk_systemname is not None and \
            settings.asterisk_systemname not in names:
        raise SettingsError(f"cluster_nodes: this node ({settings.asterisk_systemname}) is not "
                            "listed: the other nodes would not know it")
    me = settings.cluster_self
    if me is not None and (me.sip_port, me.agi_port) != (settings.sip_port, settings.agi_port):
        raise SettingsError(f"cluster_nodes: this node ({me.name}) is listed with other ports "
                            "than its sip_port and agi_port")
    if me is not None and me.http_port is not None and (
            me.http_port != settings.http_port
            or (settings.http_host != me.host.strip("[]")
                and settings.http_host not in ANY_ADDRESS)):
        # The other lines forward to the listed address what acts on this node's calls.
        raise SettingsError(f"cluster_nodes: this node ({me.name}) is listed with HTTP at "
                            f"{me.host}:{me.http_port}, but its line serves HTTP at "
                            f"{settings.http_host}:{settings.http_port} (http_host, "
                            "http_port)")
    if nodes:
        try:
            ipaddress.ip_address(settings.carrier_address)
        except ValueError as exc:
            # Behind the front the nodes take the carrier's requests from its address and the
            # front's alone (an ACL), and the front marks the INVITEs from it: an address.
            raise SettingsError(f"carrier_address: an IP address on a cluster, got "
                                f"{settings.carrier_address!r}") from exc
    allowed = [ipaddress.ip_network(n) for n in settings.agi_allowed_peers]
    for node in nodes:
        if not _SYSTEMNAME.fullmatch(node.name):
            raise SettingsError(f"cluster_nodes: {node.name!r}: a name as asterisk_systemname "
                                "(1-32 of a-z, 0-9 and _)")
        if not (0 < node.sip_port < 65536 and 0 < node.agi_port < 65536
                and (node.http_port is None or 0 < node.http_port < 65536)):
            raise SettingsError(f"cluster_nodes: {node.name}: ports must be 1..65535")
        if node.host.strip("[]") == settings.carrier_address:
            # Every node takes the carrier endpoint's requests from the carrier's address (its
            # requests within a call come straight to the node): a node there would pass for
            # the carrier at its peers.
            raise SettingsError(f"cluster_nodes: {node.name}: a node cannot have the "
                                "carrier's address (carrier_address)")
        # Each node's Asterisk falls back on the next node's FastAGI server.
        if not any(ipaddress.ip_address(node.host.strip("[]")) in network
                   for network in allowed):
            raise SettingsError(f"cluster_nodes: {node.name} ({node.host}) is not in "
                                "agi_allowed_peers: its Asterisk could not use the other "
                                "nodes' FastAGI servers")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: resolved elsewhere, so not known to be this machine


def _validate_site(settings: Settings) -> None:
    if settings.site_kind not in SITE_KINDS:
        raise SettingsError(f"site_kind must be lab or site, got {settings.site_kind!r}")
    if (refusal := settings.lab_ami_secret_refusal()) is not None:
        raise SettingsError(refusal)
    if settings.ami_secret is not None and len(settings.ami_secret) < 8:
        raise SettingsError("ami_secret must be at least 8 characters")
    if settings.carrier_password is not None and settings.carrier_password_file is not None:
        raise SettingsError("set carrier_password or carrier_password_file, not both")
    has_password = (settings.carrier_password is not None
                    or settings.carrier_password_file is not None)
    if has_password != (settings.carrier_username is not None):
        raise SettingsError("carrier_username and carrier_password(_file) go together")
    if settings.carrier_register and settings.carrier_username is None:
        raise SettingsError("carrier_register needs carrier_username and carrier_password")
    if not 60 <= settings.carrier_register_expiry <= 86400:
        raise SettingsError("carrier_register_expiry must be 60..86400 seconds")
    if not _ROLE.fullmatch(settings.asterisk_db_user):
        raise SettingsError("asterisk_db_user: a PostgreSQL role name of a-z, 0-9 and _")
    if (refusal := _database_roles_refusal(settings)) is not None:
        raise SettingsError(refusal)
    for name in ("carrier_username", "carrier_realm", "sip_realm"):
        value = getattr(settings, name)
        if value is not None and not _SIP_TOKEN.fullmatch(value):
            raise SettingsError(f"{name}: letters, digits and . _ ~ + - only, got {value!r}")


def _validate_incidents(settings: Settings) -> None:
    # Report types are the incidents' word: IncidentConfig.from_settings refuses unknown ones.
    for target in settings.incident_dispatch_targets:
        if target.seconds <= 0:
            raise SettingsError(
                f"incident_dispatch_targets: {target.report_type} must be positive")
    for name in ("incident_auto_create_hours", "notify_timeout", "notify_retry_seconds"):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{name} must be positive")
    if settings.notify_max_attempts < 1 or settings.attachment_max_bytes < 1:
        raise SettingsError("notify_max_attempts and attachment_max_bytes must be positive")
    url = settings.notify_webhook_url
    if url is not None and urlsplit(url).scheme not in ("http", "https"):
        raise SettingsError(f"notify_webhook_url: not an http(s) URL: {url!r}")


def _validate_http(settings: Settings) -> None:
    if not 0 <= settings.http_port < 65536:
        raise SettingsError(f"http_port: {settings.http_port} is not a TCP port")
    for name in ("http_session_hours", "login_failure_window_minutes", "login_delay_seconds"):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{name} must be positive")
    for name in ("login_max_failures", "login_max_failures_per_address"):
        if getattr(settings, name) < 1:
            raise SettingsError(f"{name} must be at least 1")
    for name in _NETWORK_LISTS:
        # The defaults and a Settings(...) built in code pass here too, not only parsed text.
        _parse_networks(name, list(getattr(settings, name)))


def _validate_surveys(settings: Settings) -> None:
    for name in ("survey_retry_seconds", "survey_ring_seconds", "survey_lookback_hours"):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{name} must be positive")
    if not 5 <= settings.transfer_ring_seconds <= 120:
        raise SettingsError("transfer_ring_seconds must be between 5 and 120")
    if settings.survey_delay_seconds < 0 or settings.survey_max_attempts < 1:
        raise SettingsError("survey_delay_seconds: not negative; survey_max_attempts: at least 1")
    if not _CALLER_ID.fullmatch(settings.survey_caller_id):
        raise SettingsError(
            f"survey_caller_id: a number (digits, optional leading +), got "
            f"{settings.survey_caller_id!r}")
    if settings.callback_window_hours <= 0 or not 5 <= settings.callback_ring_seconds <= 120:
        raise SettingsError("callback_window_hours must be positive, callback_ring_seconds "
                            "5..120")
    # survey_hours is the surveys' word: SurveyConfig.from_settings parses and checks it.


# What a softphone's WebSocket URL may look like: ws(s)://host[:port]/path, no user part,
# query or fragment (it is also written into the console's Content-Security-Policy).
_WS_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")
_WS_PATH = re.compile(r"(/[A-Za-z0-9._~-]*)*")
_PRINTABLE = re.compile(r"[!-~]+")


def softphone_origin(url: str) -> str:
    """``scheme://host[:port]`` of a softphone WebSocket URL; raises :class:`SettingsError`
    for anything but a plain ws:// or wss:// URL."""
    try:
        # urlsplit drops tabs and newlines inside a URL: refuse them (and spaces) first.
        if not _PRINTABLE.fullmatch(url):
            raise ValueError(url)
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise SettingsError(f"softphone_ws_url: not a URL: {url!r}") from exc
    host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    if (parts.scheme not in ("ws", "wss") or not _WS_HOST.fullmatch(host)
            or not _WS_PATH.fullmatch(parts.path) or parts.query or parts.fragment
            or "@" in parts.netloc):
        raise SettingsError(
            f"softphone_ws_url: a ws:// or wss:// URL (host, port, path only), got {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def _validate_softphone(settings: Settings) -> None:
    if settings.softphone_ws_url is not None:
        softphone_origin(settings.softphone_ws_url)
    if (settings.asterisk_tls_cert is None) != (settings.asterisk_tls_key is None):
        raise SettingsError("asterisk_tls_cert and asterisk_tls_key go together")
    for name in ("asterisk_https_host", "softphone_media_address"):
        value = getattr(settings, name)
        try:
            if value is not None:
                ipaddress.ip_address(value)
        except ValueError as exc:
            raise SettingsError(f"{name}: an IP address, got {value!r}") from exc
    if not 0 < settings.softphone_lost_grace_seconds <= 600:
        raise SettingsError("softphone_lost_grace_seconds must be between 0 and 600")
    # Under 5 s a live browser's STUN consent checks (every 4-6 s, all it may send while it
    # holds without audio) could fall short of it; over 600 s a caller waits ten minutes on
    # a dead line.
    if not 5 <= settings.softphone_rtp_timeout_seconds <= 600:
        raise SettingsError("softphone_rtp_timeout_seconds must be between 5 and 600")
    # A talking desk phone sends 50 packets a second, and many send RTCP every few s even when
    # silence suppression stops their audio; over 600 s a caller waits ten minutes on a dead
    # line. Held, a phone may send nothing at all: never less than the talking value, and at
    # most an hour (a dead phone's caller hears the hold music that long).
    if not 5 <= settings.desk_phone_rtp_timeout_seconds <= 600:
        raise SettingsError("desk_phone_rtp_timeout_seconds must be between 5 and 600")
    if not (settings.desk_phone_rtp_timeout_seconds
            <= settings.desk_phone_rtp_timeout_hold_seconds <= 3600):
        raise SettingsError("desk_phone_rtp_timeout_hold_seconds must be between "
                            "desk_phone_rtp_timeout_seconds and 3600")


def _validate_database_cluster(settings: Settings) -> None:
    for name in ("database_dsn", "database_owner_dsn"):
        if (refusal := multi_host_refusal(name, getattr(settings, name))) is not None:
            raise SettingsError(refusal)
    if not _ROLE.fullmatch(settings.patroni_scope):
        raise SettingsError("patroni_scope: a-z, 0-9 and _, starting with a letter")
    _parse_endpoints("patroni_etcd_hosts", list(settings.patroni_etcd_hosts))
    if min(settings.patroni_loop_wait, settings.patroni_retry_timeout) < 1 or \
            settings.patroni_loop_wait + 2 * settings.patroni_retry_timeout > settings.patroni_ttl:
        # Patroni's own rule: a leader must renew its key before it expires, retries included.
        raise SettingsError("patroni: loop_wait + 2 x retry_timeout must not exceed ttl "
                            "(each at least 1 s)")


def _database_roles_refusal(settings: Settings) -> str | None:
    """Why the two database roles as configured cannot work, or ``None``."""
    if not _ROLE.fullmatch(settings.database_line_user):
        return "database_line_user: a PostgreSQL role name of a-z, 0-9 and _"
    if settings.database_line_user == settings.asterisk_db_user:
        return "database_line_user and asterisk_db_user must be two roles"
    if settings.database_owner_dsn is None:
        return None
    if settings.database_dsn is None:
        return "database_owner_dsn needs database_dsn: the line connects as its own role"
    parts = urlsplit(settings.database_dsn)
    if parts.scheme in ("postgres", "postgresql") and parts.username is not None \
            and unquote(parts.username) != settings.database_line_user:
        return (f"database_dsn connects as {unquote(parts.username)!r}, not as "
                f"database_line_user {settings.database_line_user!r}: the line's role is the "
                "one the owner grants")
    return None
