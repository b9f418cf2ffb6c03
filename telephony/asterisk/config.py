"""Rendering ``asterisk-conf/`` into a site's Asterisk configuration directory.

``asterisk-conf/*.conf`` is the configuration a real site deploys. The files are templates
only for addresses, ports, secrets and a few timings, written ``@{name}`` (``${...}``
belongs to Asterisk's dialplan). :func:`install_config` renders them and writes the queues
include with the default settings of the menu's queues (the line applies an admin's
settings over it once it connects).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import string
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ivr.menu import MenuError
from ivr.source import line_menu_source
from recordings.domain import mixmonitor_options
from telephony.admin.queues import (
    LIVE_SETTINGS_DIR,
    QUEUES_CONF,
    QueueDefaults,
    effective_settings,
    render_queues_conf,
)
from telephony.agi.access import with_secret
from telephony.asterisk.errors import AsteriskSiteError
from telephony.asterisk.site import AsteriskSite
from telephony.cluster.peers import LINE_PUBLISHER, entity_id, peer_aor
from telephony.core.dsn import dsn_hosts
from telephony.db.embedded import DATABASE_NAME
from telephony.kamailio import CARRIER_MARK_HEADER, CARRIER_MARK_VALUE
from telephony.screening.score import ScoreConfig, ScoreConfigError
from telephony.screening.service import line_screening_source
from telephony.secrets import (
    SecretsError,
    agi_secret,
    ami_secret,
    asterisk_db_password,
    carrier_password,
)
from telephony.settings import Settings

# Written beside the templates by install_config: the carrier's optional authentication and
# registration (a template cannot leave a section out), and a site's hand-listed phones.
CARRIER_CONF = "pjsip_carrier.conf"
OPERATORS_CONF = "pjsip_operators.conf"
# Likewise: the TLS half of Asterisk's HTTP server (only with a certificate) and the
# addresses ICE may offer (one line per network).
HTTP_TLS_CONF = "http_tls.conf"
RTP_ICE_CONF = "rtp_ice.conf"
# Likewise: the other nodes of a cluster, whose Asterisks share operators' device state.
CLUSTER_CONF = "pjsip_cluster.conf"
# The cluster's SIP front at a node: its requests that are no carrier's (pjsip_cluster.conf).
FRONT_ENDPOINT = "siaga112-front"

CONF_DIR = Path(__file__).resolve().parent.parent.parent / "asterisk-conf"
# pjsip.conf includes the operator phones from this file, which the site owns (the lab writes
# its sipp phones there); a site's first start gets an empty one so Asterisk loads.
OPERATORS_CONF = "pjsip_operators.conf"

log = logging.getLogger(__name__)

# Characters that would end a config value early or start a new line or comment.
_UNSAFE_VALUE = re.compile(r"[\x00-\x1f\x7f;]")


class ConfTemplate(string.Template):
    """``@{name}`` placeholders; every other character, ``$`` and ``@`` included, is literal.

    Asterisk configuration is full of ``${VAR}`` and ``user@host``, so only the braced
    ``@{...}`` form is a placeholder; a malformed ``@{`` is an error rather than text.
    """

    delimiter = "@"
    pattern = r"""
        @(?:
          (?P<escaped>(?!)) |
          (?P<named>(?!)) |
          \{(?P<braced>[a-z_][a-z0-9_]*)\} |
          (?P<invalid>\{)
        )
    """  # type: ignore[assignment]  # string.Template declares pattern as a compiled Pattern


def render_template(text: str, values: Mapping[str, object]) -> str:
    """Fill ``@{name}`` placeholders; a missing or unsafe value raises
    :class:`AsteriskSiteError`.

    A value may not contain control characters or ``;`` (Asterisk's comment character): a
    secret with a newline must not be able to add configuration.
    """
    safe: dict[str, str] = {}
    for name, value in values.items():
        rendered = str(value)
        if _UNSAFE_VALUE.search(rendered):
            raise AsteriskSiteError(
                f"template value {name}={rendered!r} contains ';' or a control char")
        safe[name] = rendered
    try:
        return ConfTemplate(text).substitute(safe)
    except KeyError as exc:
        raise AsteriskSiteError(f"template needs a value for @{{{exc.args[0]}}}") from exc
    except ValueError as exc:
        raise AsteriskSiteError(f"malformed template: {exc}") from exc


def template_values(settings: Settings, instance_dir: str) -> dict[str, object]:
    """The values the ``asterisk-conf/`` templates are rendered with; ``instance_dir`` is
    the directory ``asterisk.conf`` puts every writable directory under, as Asterisk sees
    it."""
    s = settings
    return {
        "instance_dir": instance_dir,
        # A cluster node's name starts its call ids (asterisk.conf); nothing on one node.
        "systemname_option": ("" if s.asterisk_systemname is None
                              else f"systemname = {s.asterisk_systemname}"),
        "sip_host": s.sip_host,
        "sip_port": s.sip_port,
        "carrier_address": s.carrier_address,
        "carrier_sip_port": s.carrier_sip_port,
        "carrier_match": carrier_match(s),
        "rtp_port_start": s.rtp_port_start,
        "rtp_port_end": s.rtp_port_end,
        "asterisk_http_port": s.asterisk_http_port,
        "ami_port": s.ami_port,
        "ami_username": s.ami_username,
        "ami_secret": ami_secret(s),
        "sip_realm": s.sip_realm,
        # A desk phone's call with no media this long is hung up (pjsip.conf's [operator]).
        "desk_rtp_timeout": s.desk_phone_rtp_timeout_seconds,
        "desk_rtp_timeout_hold": s.desk_phone_rtp_timeout_hold_seconds,
        **phone_database(settings),
        # With the secret the FastAGI server checks (on a site; none in the lab).
        "agi_url": with_secret(s.agi_url, agi_secret(s)),
        "survey_agi_url": with_secret(s.survey_agi_url, agi_secret(s)),
        "ivr_guard_seconds": f"{s.agi_session_timeout:g}",
        "agi_first_command_seconds": s.agi_first_command_seconds,
        # A cluster's first peer's line server, tried when ours cannot start the IVR.
        **cluster_values(settings),
        "queue_max_wait": s.queue_max_wait,
        # The numbers an admin changes while calls go on (telephony/admin/queues.py).
        "live_settings_dir": f"{instance_dir}/etc/{LIVE_SETTINGS_DIR}",
        "queue_wrapup_seconds": s.queue_wrapup_seconds,
        # The dialplan's priority for a call screening did not score (fail-open).
        "normal_priority": _screening_config(settings).normal_priority,
        # MixMonitor's options: each leg's own file, with separate legs on.
        "recording_options": mixmonitor_options(s.recordings_separate_legs),
        # How long an agency's number rings on a transfer (extensions.conf, features.conf).
        "transfer_ring_seconds": s.transfer_ring_seconds,
        "atxfer_timeout_seconds": s.transfer_ring_seconds + 5,
        # Operators' call-backs of dropped callers: the number presented, how long it rings.
        "callback_caller_id": s.survey_caller_id,
        "callback_ring_seconds": s.callback_ring_seconds,
    }


def cluster_values(settings: Settings) -> dict[str, object]:
    """The templates' cluster values: the node's entity id (an empty line for a single
    node), and the FastAGI URL of its first peer's line server (with the site's AGI secret,
    which every node shares) and whether there is one."""
    s = settings
    me = s.cluster_self
    peer = s.cluster_peers[0] if s.cluster_peers and me is not None else None
    return {
        "entityid_option": "" if me is None or peer is None else f"entityid = {entity_id(me.name)}",
        "agi_peers": 1 if peer is not None else 0,
        "agi_peer_url": "" if peer is None else with_secret(
            f"agi://{peer.host}:{peer.agi_port}/ivr", agi_secret(s)),
    }


def carrier_match(settings: Settings) -> str:
    """How ``pjsip.conf``'s ``[carrier]`` identify knows the carrier's requests: by their
    source address on a single node; behind a cluster's front (``cluster_nodes`` set), whose
    address every relayed request has, by the mark the front adds to the INVITEs it relays
    from the carrier's address (and strips from every other request)."""
    if settings.kamailio_front is None:
        return f"match = {settings.carrier_address}"
    return f"match_header = {CARRIER_MARK_HEADER}: {CARRIER_MARK_VALUE}"


def _front_sections(settings: Settings, front: str) -> list[str]:
    """A node behind the front (at ``front``, its address and port): the carrier's mark is
    looked for before anything else (a request from the front's address must not be taken for
    a peer's or the line's, should the front share a node's machine); the carrier endpoint is
    identified by the mark alone (not by a From user named "carrier") and its requests are
    taken from the front (its new calls, and whatever the carrier sends through it) and the
    carrier's own address (its requests within a call come straight to this node: no
    Record-Route) alone. A forged mark from anywhere else leaves the request unidentified:
    challenged, never a call. The front's own requests without the mark (its OPTIONS probes,
    every second) are the front's, from its address and port: answered without a challenge,
    which its dispatcher would count as a dead node; it places no calls (no such context)."""
    s = settings
    permit = ",".join(dict.fromkeys((s.kamailio_host, s.carrier_address)))
    return [
        "[global](+)", "endpoint_identifier_order = header,ip,username,anonymous", "",
        "[carrier](+type=endpoint)", "identify_by = header",
        "deny = 0.0.0.0/0.0.0.0,::/0", f"permit = {permit}", "",
        f"[{FRONT_ENDPOINT}]", "type = endpoint", "transport = transport-udp",
        "context = siaga112-peer", "disallow = all", "allow = alaw", "",
        f"[{FRONT_ENDPOINT}]", "type = identify", f"endpoint = {FRONT_ENDPOINT}",
        f"match = {front}", "",
    ]


def cluster_conf(settings: Settings) -> str:
    """``pjsip_cluster.conf``: operators' device state shared with every peer node, with
    Asterisk's own distributed device state over SIP (res_pjsip_publish_asterisk). Each
    change of a ``PJSIP/...`` device's state here is PUBLISHed to every peer (resource: this
    node's name), and each peer's is accepted from its address alone, so app_queue on every
    node sees an operator on a call anywhere as in use (``ringinuse = no``). A node that
    starts asks its peers for their whole state (``devicestate_publish``). Each peer is
    qualified every second (its AOR): the line hears when it dies and, through the
    ``siaga112-line`` publication (from this node's own address only), tells this Asterisk
    that the dead node's operators are free (res_pjsip_publish_asterisk keeps a dead node's
    last states forever: it ignores a publication's expiry). Before all that, on any node
    behind the front, how the carrier's requests are told from the rest
    (:func:`_front_sections`). Nothing for a single node."""
    s = settings
    head = "; Generated by siaga112 from asterisk_systemname and cluster_nodes; do not edit.\n"
    me = s.cluster_self
    front = s.kamailio_front
    if front is None:
        return head + "; A single node: no front, no peers to share device state with.\n"
    lines = [head, *_front_sections(s, front)]
    if not s.cluster_peers or me is None:
        return "\n".join([*lines, "; No peers to share device state with.", ""])
    name = me.name
    own = f"sip:{name}@{me.sip_address}"
    for peer in s.cluster_peers:
        address = peer.sip_address
        endpoint = peer_aor(peer.name)
        lines += [
            # Requests from the peer's SIP address and port are the peer's; it places no
            # calls (no such context). Its AOR is only qualified (no user part: a plain
            # 200 to OPTIONS), never dialled.
            f"[{endpoint}]", "type = endpoint", "transport = transport-udp",
            "context = siaga112-peer", "disallow = all", "allow = alaw", f"aors = {endpoint}",
            "",
            f"[{endpoint}]", "type = aor", f"contact = sip:{address}",
            "qualify_frequency = 1", "qualify_timeout = 1.0", "",
            f"[{endpoint}]", "type = identify", f"endpoint = {endpoint}",
            f"match = {address}", "",
            # Our operators' device state, to the peer.
            f"[{endpoint}-devicestate]", "type = outbound-publish",
            f"server_uri = sip:{name}@{address}", f"from_uri = {own}",
            "event = asterisk-devicestate", "transport = transport-udp",
            "@device_state_filter = ^PJSIP/", "",
            # The peer's, accepted from it alone, under its name.
            f"[{peer.name}]", "type = inbound-publication", f"endpoint = {endpoint}",
            f"event_asterisk-devicestate = {endpoint}", "",
            f"[{endpoint}]", "type = asterisk-publication", "device_state = yes",
            "device_state_filter = ^PJSIP/",
            f"devicestate_publish = {endpoint}-devicestate", "",
        ]
    host = me.host.strip("[]")
    lines += [
        # The line on this node (its own address, any port): a dead peer's operators free.
        f"[{LINE_PUBLISHER}]", "type = endpoint", "transport = transport-udp",
        "context = siaga112-peer", "disallow = all", "allow = alaw", "",
        f"[{LINE_PUBLISHER}]", "type = identify", f"endpoint = {LINE_PUBLISHER}",
        f"match = {host}", "",
        f"[{LINE_PUBLISHER}]", "type = inbound-publication", f"endpoint = {LINE_PUBLISHER}",
        f"event_asterisk-devicestate = {LINE_PUBLISHER}", "",
        f"[{LINE_PUBLISHER}]", "type = asterisk-publication", "device_state = yes",
        "device_state_filter = ^PJSIP/", "",
    ]
    return "\n".join(lines)


def phone_database(settings: Settings) -> dict[str, object]:
    """Where Asterisk reads the registering phones (``res_pgsql.conf``): the line's own
    database, as the read-only ``asterisk_db_user``, at ``asterisk_db_host`` if set."""
    host, port, name = "127.0.0.1", settings.embedded_pg_port, DATABASE_NAME
    if settings.database_dsn is not None:
        dsn = settings.database_dsn
        # Asterisk (res_config_pgsql) and the cluster's front (Kamailio's db_postgres) give
        # libpq a host list and one port: with several nodes on one port, libpq tries them
        # all in turn, so the phones' reads follow a failover; on several ports only the
        # first node can be named, and while it is down no phone registers anew.
        nodes = dsn_hosts(dsn) or (("localhost", 5432),)
        port = nodes[0][1]
        if {p for _h, p in nodes} == {port}:
            host = ",".join(h for h, _p in nodes)
        else:
            host = nodes[0][0]
            log.warning("the database nodes listen on different ports: the phones' reads "
                        "(Asterisk, the front) reach only %s:%d; give every node the same "
                        "port", host, port)
        if "://" in dsn:
            parts = urlsplit(dsn)
            name = unquote(parts.path.lstrip("/")) or parts.username or name
        else:  # libpq's key=value form
            pairs = dict(item.split("=", 1) for item in shlex.split(dsn) if "=" in item)
            name = pairs.get("dbname", pairs.get("user", name))
    elif not settings.uses_embedded_database:
        host = os.environ.get("PGHOST") or os.environ.get("PGHOSTADDR") or "localhost"
        port = int(os.environ.get("PGPORT") or 5432)
        name = os.environ.get("PGDATABASE") or os.environ.get("PGUSER") or name
    try:
        password = asterisk_db_password(settings)
    except SecretsError as exc:
        raise AsteriskSiteError(str(exc)) from exc
    return {"asterisk_db_host": settings.asterisk_db_host or host, "asterisk_db_port": port,
            "asterisk_db_name": name, "asterisk_db_user": settings.asterisk_db_user,
            "asterisk_db_password": password}


def carrier_conf(settings: Settings) -> str:
    """``pjsip_carrier.conf``: digest credentials for a carrier that challenges our calls,
    and a registration for one that wants it; a comment only for the lab's carrier, which
    identifies us by address as we identify it."""
    s = settings
    head = "; Generated by siaga112 from the carrier_* settings; do not edit.\n"
    if s.carrier_username is None:
        return head + "; The carrier wants no authentication: it is identified by address.\n"
    try:
        password = carrier_password(s)
    except SecretsError as exc:
        raise AsteriskSiteError(str(exc)) from exc
    if not password or _UNSAFE_VALUE.search(password):
        raise AsteriskSiteError("the carrier password is empty or contains ';' or a control "
                                "character")
    realm = s.carrier_realm or "*"  # "*": whatever realm the carrier challenges with
    lines = [
        head,
        "[carrier-auth]", "type = auth", "auth_type = digest",
        f"username = {s.carrier_username}", f"password = {password}", f"realm = {realm}", "",
        # Our outbound calls (survey callbacks, transfers, call-backs) answer the carrier's
        # challenges.
        "[carrier-callback](+)", "outbound_auth = carrier-auth", "",
        "[carrier-out](+)", "outbound_auth = carrier-auth", "",
    ]
    if s.carrier_register:
        server = f"sip:{s.carrier_address}:{s.carrier_sip_port}"
        lines += [
            "[carrier-registration]", "type = registration", "transport = transport-udp",
            f"server_uri = {server}", f"client_uri = sip:{s.carrier_username}@"
            f"{s.carrier_address}", f"contact_user = {s.carrier_username}",
            "outbound_auth = carrier-auth", f"expiration = {s.carrier_register_expiry}",
            # A carrier down for hours must still get us back: retry for ever, slower
            # after a refusal (a wrong password must not hammer its registrar).
            "retry_interval = 60", "forbidden_retry_interval = 600", "max_retries = 1000000",
            "auth_rejection_permanent = no",
            # Calls the carrier sends to the registered contact are the carrier's even when
            # they come from another of its addresses.
            "line = yes", "endpoint = carrier", "",
        ]
    return "\n".join(lines)


def http_tls_conf(settings: Settings) -> str:
    """``http_tls.conf``: WSS for browser softphones straight to Asterisk, when the site gave
    it a certificate (a site behind its HTTPS front needs none: the front proxies to the
    plain WebSocket on loopback)."""
    s = settings
    head = "; Generated by siaga112 from the asterisk_tls_* settings; do not edit.\n"
    if s.asterisk_tls_cert is None or s.asterisk_tls_key is None:
        return head + "; No certificate: no TLS (softphones come through the HTTPS front).\n"
    paths = (str(s.asterisk_tls_cert), str(s.asterisk_tls_key))
    if any(_UNSAFE_VALUE.search(path) for path in paths):
        raise AsteriskSiteError("asterisk_tls_*: a path with ';' or a control character")
    return "\n".join([
        head, "tlsenable = yes",
        f"tlsbindaddr = {_host_port(s.asterisk_https_host, s.asterisk_https_port)}",
        f"tlscertfile = {paths[0]}", f"tlsprivatekey = {paths[1]}", ""])


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def rtp_ice_conf(settings: Settings) -> str:
    """``rtp_ice.conf``: the only addresses Asterisk offers as ICE candidates, when the site
    restricts them (softphone_ice_networks); every discovered one otherwise."""
    head = "; Generated by siaga112 from softphone_ice_networks; do not edit.\n"
    networks = settings.softphone_ice_networks
    if not networks:
        return head + "; Every discovered host address is an ICE candidate.\n"
    lines = [head, "ice_deny = 0.0.0.0/0", "ice_deny = ::/0",
             *(f"ice_permit = {network}" for network in networks), ""]
    return "\n".join(lines)


def _screening_config(settings: Settings) -> ScoreConfig:
    try:
        return line_screening_source(settings).current()
    except ScoreConfigError as exc:
        raise AsteriskSiteError(f"screening configuration: {exc}") from exc


def queues_conf(settings: Settings) -> str:
    """``queues_siaga112.conf`` with the default settings of every queue of the menu the
    line runs (the line applies an admin's settings over it once it connects)."""
    try:
        queues = line_menu_source(settings).current().known_queues
    except MenuError as exc:
        raise AsteriskSiteError(f"menu: {exc}") from exc
    return render_queues_conf(
        effective_settings(queues, {}, QueueDefaults.from_settings(settings)))


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` in one rename, so a reloading Asterisk never reads half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def install_config(settings: Settings, etc_dir: Path, instance_dir: str, *,
                   conf_dir: Path = CONF_DIR) -> None:
    """Render every ``conf_dir/*.conf`` template into ``etc_dir`` (a host path) and write the
    queues include; ``instance_dir`` is as Asterisk sees it (see :func:`template_values`)."""
    values = template_values(settings, instance_dir)
    templates = sorted(conf_dir.glob("*.conf"))
    if not templates:
        raise AsteriskSiteError(f"no *.conf templates in {conf_dir}")
    etc_dir.mkdir(parents=True, exist_ok=True)
    for template in templates:
        write_atomic(etc_dir / template.name,
                     render_template(template.read_text(encoding="utf-8"), values))
    write_atomic(etc_dir / QUEUES_CONF, queues_conf(settings))
    write_atomic(etc_dir / CARRIER_CONF, carrier_conf(settings))
    write_atomic(etc_dir / HTTP_TLS_CONF, http_tls_conf(settings))
    write_atomic(etc_dir / RTP_ICE_CONF, rtp_ice_conf(settings))
    write_atomic(etc_dir / CLUSTER_CONF, cluster_conf(settings))
    operators = etc_dir / OPERATORS_CONF
    if not operators.exists():
        # A site's phones register and come from PostgreSQL (sorcery.conf); this include is
        # for phones a site lists by hand, and the lab's sipp phones (telephony/lab/chroot.py).
        write_atomic(operators, "; Operator phones listed by hand (see pjsip.conf).\n")


def check_site_dirs(settings: Settings) -> None:
    """Refuse a site without its own Asterisk directories: rendering a site into the lab's
    would be a mistake. Checked before any work, so the admin hears it at once."""
    if settings.asterisk_etc_dir is None or settings.asterisk_sounds_dir is None:
        raise AsteriskSiteError("asterisk_etc_dir dan asterisk_sounds_dir harus diatur untuk "
                                "sebuah situs.")


def install_site_config(settings: Settings, instance_dir: str, prompts_dir: Path) -> AsteriskSite:
    """Prepare a site's Asterisk before it starts (the docker/ asterisk-config service):
    render the configuration into ``asterisk_etc_dir`` and install the prompts from
    ``prompts_dir``. Asterisk then runs without the line (:func:`check_site_dirs` first).
    """
    check_site_dirs(settings)
    site = AsteriskSite.from_settings(settings)
    install_config(settings, site.etc_dir, instance_dir)
    site.install_prompts(prompts_dir)
    return site
