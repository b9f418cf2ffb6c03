"""A cluster's configuration (issue 15): the nodes' systemname and call ids, the Kamailio
front rendered from the settings, and a node's settings handed to its line server."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from recordings.domain import Kind, Source, parse_source, source_name
from telephony.asterisk.config import install_config
from telephony.calls.ids import valid_call_id
from telephony.kamailio.config import (
    DISPATCHER_LIST,
    KamailioConfigError,
    dispatcher_list,
    install_kamailio_config,
)
from telephony.lab.cluster import cluster_settings, node_of, settings_environment
from telephony.settings import Settings, SettingsError, load_settings


@pytest.fixture
def site(tmp_path: Path) -> Settings:
    return replace(load_settings(environ={}), state_dir=tmp_path / "state")


def test_nodes_are_address_port_pairs_from_a_list_or_a_string() -> None:
    settings = load_settings(environ={
        "SIAGA112_KAMAILIO_NODES": "10.0.0.11:5060, 10.0.0.12:5070",
        "SIAGA112_ASTERISK_SYSTEMNAME": "node_1"})
    assert settings.kamailio_nodes == ("10.0.0.11:5060", "10.0.0.12:5070")
    assert settings.asterisk_systemname == "node_1"


@pytest.mark.parametrize(("name", "value"), [
    ("kamailio_nodes", "asterisk.example:5060"),  # no DNS on the call path
    ("kamailio_nodes", "10.0.0.1"),
    ("kamailio_nodes", "10.0.0.1:0"),
    ("kamailio_nodes", "10.0.0.1:5060,10.0.0.1:5060"),
    ("asterisk_systemname", "Node1"),
    ("asterisk_systemname", "node-1"),  # the dash ends the name in a call id
    ("asterisk_systemname", "node1\nsystemname = x"),
    ("kamailio_host", "front.example"),
    ("kamailio_probe_seconds", "0"),
    ("kamailio_node_timeout_ms", "50"),
])
def test_bad_cluster_values_are_refused(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings(environ={f"SIAGA112_{name.upper()}": value})


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
    text = dispatcher_list(replace(site, kamailio_nodes=("10.0.0.11:5060", "10.0.0.12:5060")))
    assert [line for line in text.splitlines() if not line.startswith("#")] == [
        "1 sip:10.0.0.11:5060 8 0", "1 sip:10.0.0.12:5060 8 0",
        "2 sip:10.0.0.11:5060 0 0", "2 sip:10.0.0.12:5060 0 0"]
    with pytest.raises(KamailioConfigError, match="kamailio_nodes"):
        dispatcher_list(site)


def test_the_front_is_rendered_from_the_settings(site: Settings, tmp_path: Path) -> None:
    settings = replace(site, kamailio_host="10.0.0.10", kamailio_port=5070,
                       kamailio_nodes=("10.0.0.11:5060",), carrier_address="192.0.2.7",
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


def test_a_value_that_would_add_configuration_is_refused(site: Settings, tmp_path: Path
                                                         ) -> None:
    settings = replace(site, kamailio_nodes=("10.0.0.11:5060",), sip_realm="x;y")
    with pytest.raises(KamailioConfigError, match="sip_realm"):
        install_kamailio_config(settings, tmp_path / "front")


def test_a_nodes_settings_reach_its_line_server_whole(tmp_path: Path) -> None:
    base = replace(load_settings(environ={}), state_dir=tmp_path, database_dsn="postgresql://x")
    front, nodes = cluster_settings(base, ("node1", "node2"), rtp_base=40000)
    assert [node.asterisk_systemname for node in nodes] == ["node1", "node2"]
    assert len({node.sip_port for node in nodes} | {front.kamailio_port}) == 3
    assert nodes[0].rtp_port_end < nodes[1].rtp_port_start
    for node in nodes:
        assert node.kamailio_nodes == front.kamailio_nodes
        assert load_settings(environ=settings_environment(node)) == node


def test_a_node_behind_a_front_rings_its_phones_through_it(site: Settings) -> None:
    assert site.kamailio_front is None  # no front: phones register with the node
    node = replace(site, kamailio_host="10.0.0.10", kamailio_port=5070,
                   kamailio_nodes=("10.0.0.11:5060",))
    assert node.kamailio_front == "10.0.0.10:5070"
    assert replace(node, kamailio_host="fd00::10").kamailio_front == "[fd00::10]:5070"
