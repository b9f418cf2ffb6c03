"""A cluster's configuration (issue 15): the nodes' systemname and call ids, the Kamailio
front rendered from the settings, and a node's settings handed to its line server."""

from __future__ import annotations

import inspect
from dataclasses import replace
from pathlib import Path

import pytest

from recordings.domain import Kind, Source, parse_source, source_name
from telephony.ami.listener import AmiListener
from telephony.asterisk.config import install_config
from telephony.asterisk.queue_log import cursor_source, cursor_sources
from telephony.calls.ids import node_of, valid_call_id
from telephony.cluster import forward
from telephony.incidents.config import IncidentConfig
from telephony.kamailio.config import (
    DISPATCHER_LIST,
    KamailioConfigError,
    db_url,
    dispatcher_list,
    install_kamailio_config,
)
from telephony.lab.cluster import cluster_settings
from telephony.lab.line import settings_environment
from telephony.settings import ClusterNode, Settings, SettingsError, load_settings
from telephony.supervision.service import SupervisionConfig
from telephony.web.context import WebConfig, parse_networks

NODES = "node1=127.0.0.11:5060:4573,node2=127.0.0.12:5060:4573"


def nodes(text: str) -> tuple[ClusterNode, ...]:
    return load_settings(environ={}, overrides={
        "cluster_nodes": text, "agi_allowed_peers": "127.0.0.0/8,10.0.0.0/8"}).cluster_nodes


@pytest.fixture
def site(tmp_path: Path) -> Settings:
    return replace(load_settings(environ={}), state_dir=tmp_path / "state")


def test_nodes_are_read_from_text_and_lists(tmp_path: Path) -> None:
    settings = load_settings(environ={
        "SIAGA112_CLUSTER_NODES": "node_1=127.0.0.11:5060:4573, node_2=127.0.0.12:5070:4574",
        "SIAGA112_ASTERISK_SYSTEMNAME": "node_1"})
    assert settings.cluster_nodes == (ClusterNode("node_1", "127.0.0.11", 5060, 4573),
                                      ClusterNode("node_2", "127.0.0.12", 5070, 4574))
    assert settings.kamailio_nodes == ("127.0.0.11:5060", "127.0.0.12:5070")
    assert settings.cluster_peers == settings.cluster_nodes[1:]
    assert str(settings.cluster_nodes[0]) == "node_1=127.0.0.11:5060:4573"
    listed = load_settings(environ={}, overrides={
        "cluster_nodes": "a=127.0.0.3:5060:4573,b=[::1]:5062:4574",
        "agi_allowed_peers": "127.0.0.0/8,::1/128", "asterisk_systemname": "b",
        "sip_port": "5062", "agi_port": "4574"})
    assert listed.kamailio_nodes == ("127.0.0.3:5060", "[::1]:5062")
    # Each node's first peer is the next one: with its line server gone, node a's calls go
    # to b's and b's to a's, not both to one.
    assert [peer.name for peer in listed.cluster_peers] == ["a"]


def test_a_nodes_line_may_be_listed_with_its_http_port() -> None:
    settings = load_settings(environ={
        "SIAGA112_CLUSTER_NODES": "node1=127.0.0.11:5060:4573:8112,node2=127.0.0.12:5060:4573",
        "SIAGA112_ASTERISK_SYSTEMNAME": "node2", "SIAGA112_HTTP_HOST": "127.0.0.12"})
    one, two = settings.cluster_nodes
    assert one == ClusterNode("node1", "127.0.0.11", 5060, 4573, 8112)
    assert (str(one), one.http_url) == ("node1=127.0.0.11:5060:4573:8112",
                                        "http://127.0.0.11:8112")
    assert (two.http_port, two.http_url) == (None, None)
    [six] = load_settings(environ={}, overrides={
        "cluster_nodes": "b=[::1]:5062:4574:8113", "agi_allowed_peers": "::1/128"}).cluster_nodes
    assert six.http_url == "http://[::1]:8113"


def test_a_node_listed_with_http_serves_it_on_its_listed_address_and_port() -> None:
    # The other lines forward what acts on this node's calls to the address listed.
    listed = {"SIAGA112_CLUSTER_NODES": "node1=127.0.0.11:5060:4573:8112",
              "SIAGA112_ASTERISK_SYSTEMNAME": "node1"}
    assert load_settings(environ={**listed, "SIAGA112_HTTP_HOST": "127.0.0.11"})
    assert load_settings(environ={**listed, "SIAGA112_HTTP_HOST": "0.0.0.0"})
    for refused in ({"SIAGA112_HTTP_HOST": "127.0.0.1"},
                    {"SIAGA112_HTTP_HOST": "127.0.0.11", "SIAGA112_HTTP_PORT": "8113"}):
        with pytest.raises(SettingsError, match=r"listed with HTTP at 127\.0\.0\.11:8112"):
            load_settings(environ={**listed, **refused})


@pytest.mark.parametrize(("name", "value"), [
    ("cluster_nodes", "a=asterisk.example:5060:4573"),  # no DNS on the call path
    ("cluster_nodes", "a=127.0.0.3:5060:4573:0"),  # an HTTP port of 0
    ("cluster_nodes", "a=127.0.0.3:5060:4573:8112:1"),
    ("cluster_nodes", "a=::1:5060:4573"),  # IPv6 without brackets: where do the ports start?
    ("cluster_nodes", "a=127.0.0.3:5060"),  # both ports
    ("cluster_nodes", "a=127.0.0.3:0:4573"),
    ("cluster_nodes", "a=127.0.0.3:70000:4573"),
    ("cluster_nodes", "a=127.0.0.3:5060:4573,a=127.0.0.4:5060:4573"),  # one name twice
    ("cluster_nodes", "a=127.0.0.3:5060:4573,b=127.0.0.3:5060:4574"),  # one SIP port twice
    ("cluster_nodes", "B;x=127.0.0.3:5060:4573"),  # a name spliced into pjsip.conf
    ("cluster_nodes", "node-1=127.0.0.3:5060:4573"),  # not a systemname
    ("cluster_nodes", "b=127.0.0.3 x:5060:4573"),
    ("cluster_nodes", "b=10.0.0.3:5060:4573"),  # its Asterisk could not reach our FastAGI
    ("cluster_nodes", "b=127.0.0.1:5062:4573"),  # the carrier's address: it would pass for it
    ("asterisk_systemname", "Node1"),
    ("asterisk_systemname", "node-1"),  # the dash ends the name in a call id
    ("asterisk_systemname", "node1\nsystemname = x"),
    ("kamailio_host", "front.example"),
    ("kamailio_probe_seconds", "0"),
    ("kamailio_node_timeout_ms", "50"),
    ("kamailio_ws_port", "0"),
    ("kamailio_ws_port", "70000"),
    ("kamailio_ws_port", "5080"),  # the front's SIP port: one of each
])
def test_bad_cluster_values_are_refused(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings(environ={f"SIAGA112_{name.upper()}": value})


def test_a_node_must_be_one_of_the_nodes_with_its_own_ports() -> None:
    with pytest.raises(SettingsError, match="node3"):
        load_settings(environ={"SIAGA112_CLUSTER_NODES": NODES,
                               "SIAGA112_ASTERISK_SYSTEMNAME": "node3"})
    with pytest.raises(SettingsError, match="other ports"):
        load_settings(environ={"SIAGA112_CLUSTER_NODES": NODES,
                               "SIAGA112_ASTERISK_SYSTEMNAME": "node1",
                               "SIAGA112_SIP_PORT": "5070"})


def test_a_cluster_needs_the_carriers_address_as_an_address() -> None:
    # The front compares it with a request's source; the nodes' ACL permits it.
    with pytest.raises(SettingsError, match="carrier_address"):
        load_settings(environ={}, overrides={"cluster_nodes": NODES,
                                             "carrier_address": "sbc.carrier.example"})
    assert load_settings(environ={}, overrides={"carrier_address": "sbc.carrier.example"})


def test_a_node_outside_loopback_is_taken_once_agi_allows_it() -> None:
    settings = load_settings(environ={}, overrides={
        "cluster_nodes": "b=10.0.0.3:5060:4573", "agi_allowed_peers": "127.0.0.0/8,10.0.0.0/24"})
    assert settings.cluster_nodes[0].host == "10.0.0.3"


def test_a_nodes_systemname_is_rendered_into_asterisk_conf(site: Settings, tmp_path: Path
                                                           ) -> None:
    install_config(replace(site, asterisk_systemname="node2"), tmp_path / "etc", "/srv/x")
    assert "\nsystemname = node2\n" in (tmp_path / "etc" / "asterisk.conf").read_text()
    install_config(site, tmp_path / "single", "/srv/x")
    assert "systemname =" not in (tmp_path / "single" / "asterisk.conf").read_text()


def test_a_nodes_call_ids_are_call_ids_everywhere() -> None:
    assert valid_call_id("node1-1795430334.12")
    assert valid_call_id("1795430334.12")
    for hostile in ("../1.2", "node1-", "Node1-1.2", "a-b-1.2", "-1.2", "node1-1.2/x"):
        assert not valid_call_id(hostile)
    assert node_of("node1-1795430334.12") == "node1"
    assert node_of("1795430334.12") == ""
    for kind, leg in ((Kind.MIXED, None), (Kind.CALLER, None), (Kind.CALLBACK, 7)):
        name = source_name("node1-1795430334.12", kind, leg)
        assert parse_source(name) == Source("node1-1795430334.12", kind, leg), name


def test_the_front_lists_every_node_and_again_as_its_fail_open_reserve(site: Settings) -> None:
    text = dispatcher_list(replace(site, cluster_nodes=nodes(NODES)))
    assert [line for line in text.splitlines() if not line.startswith("#")] == [
        "1 sip:127.0.0.11:5060 8 0", "1 sip:127.0.0.12:5060 8 0",
        "2 sip:127.0.0.11:5060 0 0", "2 sip:127.0.0.12:5060 0 0"]
    with pytest.raises(KamailioConfigError, match="cluster_nodes"):
        dispatcher_list(site)


def test_the_front_is_rendered_from_the_settings(site: Settings, tmp_path: Path) -> None:
    settings = replace(site, kamailio_host="10.0.0.10", kamailio_port=5070,
                       cluster_nodes=nodes("n1=10.0.0.11:5060:4573"), carrier_address="192.0.2.7",
                       kamailio_probe_seconds=2, kamailio_node_timeout_ms=1500,
                       asterisk_db_host="10.0.0.20")
    cfg = install_kamailio_config(settings, tmp_path / "front")
    text = cfg.read_text()
    assert "@{" not in text
    assert "listen=udp:10.0.0.10:5070\n" in text
    assert '$si == "192.0.2.7"' in text  # only the carrier's INVITEs are dispatched
    assert 'modparam("dispatcher", "ds_ping_interval", 2)' in text
    assert 'modparam("tm", "fr_timer", 1500)' in text
    assert f'"list_file", "{(tmp_path / "front" / DISPATCHER_LIST).resolve()}"' in text
    # The phones' digests, read as the Asterisk nodes' read-only role.
    assert "postgres://siaga112_asterisk:" in text and "@10.0.0.20:" in text
    assert 'www_authorize("siaga112", "kamailio_subscribers")' in text
    # Every call dispatched to a node is recorded (migration 0026), as the same role, by
    # async workers (no SIP worker waits on the database), with the node it went to.
    assert 'modparam("acc", "db_table_acc", "front_calls")' in text
    assert text.count('modparam("acc", "db_url", "postgres://siaga112_asterisk:') == 1
    # libpq options in the URL's database part (db_postgres hands it to libpq as it is):
    # reads and writes on whichever node is the primary, a dead node's connect bounded by
    # db_connect_timeout; one URL, so one connection per Kamailio process.
    url = text.split('modparam("acc", "db_url", ')[1].splitlines()[0]
    assert url.endswith('/dbname=siaga112 connect_timeout=3 target_session_attrs=read-write")')
    assert f'modparam("auth_db", "db_url", {url}' in text
    assert 'modparam("acc", "db_insert_mode", 2)' in text and "async_workers=" in text
    assert "node=$avp(node)" in text and text.count("$avp(node) = $du;") == 2


def test_the_front_reaches_every_database_node_on_one_port(site: Settings) -> None:
    dsn = ("postgresql://siaga112_line@10.0.0.21:5432,10.0.0.22:5432/siaga112"
           "?target_session_attrs=read-write")
    settings = replace(site, database_dsn=dsn, db_connect_timeout=1.5)
    url = db_url(settings)
    assert url.startswith("postgres://siaga112_asterisk:")
    assert url.endswith("@10.0.0.21,10.0.0.22:5432/dbname=siaga112 connect_timeout=2 "
                        "target_session_attrs=read-write")


def test_the_front_marks_the_carriers_calls_and_strips_the_mark_from_all_others(
        site: Settings, tmp_path: Path) -> None:
    settings = replace(site, kamailio_host="10.0.0.10", carrier_address="192.0.2.7",
                       cluster_nodes=nodes("n1=10.0.0.11:5060:4573"))
    text = install_kamailio_config(settings, tmp_path / "front").read_text()
    mark = 'append_hf("X-Siaga112-Carrier: trunk\\r\\n");'
    routing = text[text.index("request_route {"):text.index("route[IN_DIALOG] {")]
    # Whoever sent a mark, it is gone before any request is routed anywhere (relayed in a
    # call, to a phone, to a node) or answered.
    strip = routing.index('remove_hf("X-Siaga112-Carrier");')
    assert strip < routing.index("route(") and strip < routing.index("t_relay")
    assert 'if (is_method("INVITE") && $si == "192.0.2.7") {\n\t\troute(TO_NODE);' in routing
    # ...and put on the carrier's INVITEs alone (only TO_NODE sends to a node), before they
    # are relayed; the failure route's next node gets the same request.
    assert text.count(mark) == 1 and text.count("route(TO_NODE)") == 1
    to_node = text[text.index("route[TO_NODE] {"):text.index("failure_route[NEXT_NODE] {")]
    assert mark in to_node and to_node.index(mark) < to_node.index("t_relay()")


def test_the_front_takes_browser_phones_over_its_websocket(site: Settings, tmp_path: Path
                                                           ) -> None:
    settings = replace(site, kamailio_host="10.0.0.10", kamailio_ws_port=8443,
                       cluster_nodes=nodes("n1=10.0.0.11:5060:4573"))
    text = install_kamailio_config(settings, tmp_path / "front").read_text()
    # TCP for the WebSocket alone: its handshake only on that port, plain SIP over TCP refused.
    assert "listen=tcp:10.0.0.10:8443\n" in text and "disable_tcp=no\n" in text
    assert '$Rp == 8443 && $rm == "GET"' in text and "ws_handle_handshake()" in text
    assert 'loadmodule "websocket.so"' in text and "if (proto == TCP) {" in text
    # A browser is reached over its own connection: its registration keeps the connection's
    # address, a call to it is record-routed here and its Contact aliased to that address.
    assert "fix_nated_register();" in text and "record_route();" in text
    assert "add_contact_alias();" in text and "handle_ruri_alias()" in text
    assert 'modparam("usrloc", "handle_lost_tcp", 1)' in text


def test_browser_phones_of_a_cluster_are_told_the_fronts_websocket(site: Settings) -> None:
    clustered = replace(site, kamailio_host="10.0.0.10", kamailio_ws_port=8443,
                        cluster_nodes=nodes(NODES))
    # The lab: the front's own WebSocket; a single node: Asterisk's own WSS, as before.
    assert clustered.live_softphone_ws_url == "ws://10.0.0.10:8443/ws"
    assert replace(clustered, kamailio_host="fd00::10").live_softphone_ws_url == \
        "ws://[fd00::10]:8443/ws"
    assert site.live_softphone_ws_url == f"wss://127.0.0.1:{site.asterisk_https_port}/ws"
    # A site says where its browsers connect (its HTTPS front's /sip-ws, proxied to the
    # Kamailio front on a cluster); unsaid, it has no softphone, cluster or not.
    assert replace(clustered, site_kind="site").live_softphone_ws_url is None
    assert replace(clustered, site_kind="site", softphone_ws_url="wss://112.example/sip-ws"
                   ).live_softphone_ws_url == "wss://112.example/sip-ws"


def test_a_value_that_would_add_configuration_is_refused(site: Settings, tmp_path: Path
                                                         ) -> None:
    settings = replace(site, cluster_nodes=nodes(NODES), sip_realm="x;y")
    with pytest.raises(KamailioConfigError, match="sip_realm"):
        install_kamailio_config(settings, tmp_path / "front")


def test_a_nodes_settings_reach_its_line_server_whole(tmp_path: Path) -> None:
    base = replace(load_settings(environ={}), state_dir=tmp_path, database_dsn="postgresql://x")
    front, nodes = cluster_settings(base, ("node1", "node2"), rtp_base=40000)
    assert [node.asterisk_systemname for node in nodes] == ["node1", "node2"]
    assert len({node.sip_port for node in nodes} | {front.kamailio_port}) == 3
    assert nodes[0].rtp_port_end < nodes[1].rtp_port_start
    for node in nodes:
        assert node.cluster_nodes == front.cluster_nodes
        assert load_settings(environ=settings_environment(node)) == node
    # Each node, the front and the carrier on an address of its own, as on a site: every call
    # through the front shows the nodes know the carrier by the front's mark, not by address.
    assert len({node.sip_host for node in nodes}
               | {front.carrier_address, front.kamailio_host}) == 4
    # Browsers register at the front's WebSocket; each node's media for them on its own
    # address, on loopback only.
    for node in nodes:
        assert node.live_softphone_ws_url == f"ws://127.0.0.1:{front.kamailio_ws_port}/ws"
        assert node.softphone_media_address == node.sip_host
        assert node.softphone_ice_networks == ("127.0.0.0/8",)


def test_a_node_behind_a_front_rings_its_phones_through_it(site: Settings) -> None:
    assert site.kamailio_front is None  # no front: phones register with the node
    node = replace(site, kamailio_host="10.0.0.10", kamailio_port=5070,
                   cluster_nodes=nodes(NODES))
    assert node.kamailio_front == "10.0.0.10:5070"
    assert replace(node, kamailio_host="fd00::10").kamailio_front == "[fd00::10]:5070"


def test_a_nodes_line_believes_the_other_nodes_forwarded_for() -> None:
    """The other lines forward requests about their calls naming the client
    (telephony/cluster/forward.py); a single node believes only its configured fronts."""
    settings = load_settings(environ={
        "SIAGA112_CLUSTER_NODES": "node1=127.0.0.11:5060:4573:8112,node2=127.0.0.12:5060:4573",
        "SIAGA112_ASTERISK_SYSTEMNAME": "node1", "SIAGA112_HTTP_HOST": "127.0.0.11",
        "SIAGA112_HTTP_TRUSTED_PROXIES": "127.0.0.1"})
    assert WebConfig.from_settings(settings).trusted_proxies == parse_networks(
        ["127.0.0.1", "127.0.0.12"])
    single = load_settings(environ={"SIAGA112_HTTP_TRUSTED_PROXIES": "127.0.0.1"})
    assert WebConfig.from_settings(single).trusted_proxies == parse_networks(["127.0.0.1"])


def test_a_forward_waits_longer_than_the_routes_it_forwards_can_take() -> None:
    """A forward given up while the other line still works reports a failure that may be a
    success: its wait covers a listen-in queued behind another (four AMI actions, each
    waiting for a login and for its answer, then the phone's first answer), and a transfer's
    three actions, within the HTTPS front's 5 minutes."""
    action = inspect.signature(AmiListener.__init__).parameters["action_timeout"].default
    listen_in = 4 * 2 * action + SupervisionConfig().answer_wait_seconds
    assert listen_in < forward.TIMEOUT_SECONDS < 300


def test_each_node_reads_its_queue_log_from_a_cursor_of_its_own() -> None:
    nodes = (ClusterNode("node_1", "127.0.0.11", 5060, 4573),
             ClusterNode("node_2", "127.0.0.12", 5070, 4574))
    one = Settings(asterisk_systemname="node_1", cluster_nodes=nodes)
    assert cursor_source(one) == "queue_log@node_1"
    assert cursor_sources(one) == ("queue_log@node_1", "queue_log@node_2")
    assert IncidentConfig.from_settings(one).queue_logs == cursor_sources(one)
    # A site of one node keeps the row it had, with or without a systemname.
    for single in (Settings(), Settings(asterisk_systemname="node_1")):
        assert (cursor_source(single), cursor_sources(single)) == ("queue_log", ("queue_log",))
