"""A cluster node's configuration: its peers from the settings, its own entity id, the
pjsip.conf sections that share operators' device state, and the dialplan's second FastAGI
server; a single node renders none of it."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from telephony.asterisk.config import CLUSTER_CONF, install_config
from telephony.cluster.peers import entity_id
from telephony.settings import ClusterNode, Settings, load_settings


def node(tmp_path: Path, **values: str) -> Settings:
    return load_settings(environ={}, overrides={"state_dir": str(tmp_path / "state"),
                                                **values})


def rendered(settings: Settings, tmp_path: Path) -> dict[str, str]:
    install_config(settings, tmp_path / "etc", "/srv/x")
    return {p.name: p.read_text() for p in (tmp_path / "etc").glob("*.conf")}


def test_a_single_node_renders_nothing_of_the_cluster(tmp_path: Path) -> None:
    conf = rendered(node(tmp_path), tmp_path)
    assert "type =" not in conf[CLUSTER_CONF]
    assert "entityid" not in conf["asterisk.conf"]
    # The second AGI() is there but never reached: the flag sends the caller to fail-open.
    assert "GotoIf($[0 = 0 |" in conf["extensions.conf"]


def test_a_node_publishes_its_operators_state_to_each_peer_and_takes_theirs(
        tmp_path: Path) -> None:
    settings = node(tmp_path, asterisk_systemname="a", sip_host="127.0.0.2", sip_port="5070",
                    cluster_nodes="a=127.0.0.2:5070:4573,b=127.0.0.3:5060:4573,"
                                  "c=127.0.0.4:5061:4574")
    conf = rendered(settings, tmp_path)
    cluster = conf[CLUSTER_CONF]
    # Publishes to b and c as resource "a", from its own SIP address.
    assert "[peer-b-devicestate]\ntype = outbound-publish\nserver_uri = sip:a@127.0.0.3:5060\n" \
           "from_uri = sip:a@127.0.0.2:5070\nevent = asterisk-devicestate\n" in cluster
    assert "server_uri = sip:a@127.0.0.4:5061" in cluster
    # Takes b's state only from b's address and port, under b's name.
    assert "[peer-b]\ntype = identify\nendpoint = peer-b\nmatch = 127.0.0.3:5060\n" in cluster
    assert "[b]\ntype = inbound-publication\nendpoint = peer-b\n" \
           "event_asterisk-devicestate = peer-b\n" in cluster
    assert "[peer-b]\ntype = asterisk-publication\ndevice_state = yes\n" in cluster
    assert cluster.count("device_state_filter = ^PJSIP/") == 5
    # A peer places no calls; its AOR is only qualified, every second (without a user
    # part: a plain 200 to OPTIONS).
    assert "[peer-b]\ntype = aor\ncontact = sip:127.0.0.3:5060\nqualify_frequency = 1\n" \
           in cluster
    # The line (this node's own address, any port) may tell it a dead peer's operators are
    # free.
    assert "[siaga112-line]\ntype = identify\nendpoint = siaga112-line\nmatch = 127.0.0.2\n" \
           in cluster
    assert "[siaga112-line]\ntype = asterisk-publication\ndevice_state = yes\n" in cluster
    assert f"entityid = {entity_id('a')}" in conf["asterisk.conf"]
    assert "#include pjsip_cluster.conf" in conf["pjsip.conf"]


CARRIER_BY_ADDRESS = "[carrier]\ntype = identify\nendpoint = carrier\nmatch = 192.0.2.7\n"
CARRIER_BY_MARK = ("[carrier]\ntype = identify\nendpoint = carrier\n"
                   "match_header = X-Siaga112-Carrier: trunk\n")


def test_a_node_behind_the_front_knows_the_carrier_by_the_fronts_mark_alone(
        tmp_path: Path) -> None:
    settings = node(tmp_path, asterisk_systemname="a", sip_host="10.0.0.11",
                    carrier_address="192.0.2.7", kamailio_host="10.0.0.10",
                    cluster_nodes="a=10.0.0.11:5060:4573,b=10.0.0.12:5060:4573",
                    agi_allowed_peers="10.0.0.0/24")
    conf = rendered(settings, tmp_path)
    # Every request the front relays has its address: the carrier's calls by its mark.
    assert CARRIER_BY_MARK in conf["pjsip.conf"] and "match = 192.0.2.7" not in conf["pjsip.conf"]
    cluster = conf[CLUSTER_CONF]
    # The mark before anything else (a request from the front is no peer's, nor the line's).
    assert "[global](+)\nendpoint_identifier_order = header,ip,username,anonymous\n" in cluster
    # The carrier endpoint by the mark alone (not by a From user "carrier"), and only from the
    # front and the carrier itself (its requests within a call): a forged mark from anywhere
    # else leaves the request unidentified.
    assert ("[carrier](+type=endpoint)\nidentify_by = header\n"
            "deny = 0.0.0.0/0.0.0.0,::/0\npermit = 10.0.0.10,192.0.2.7\n") in cluster
    # The front's own requests (its probes, unmarked) are the front's, from its address and
    # port: answered, never challenged (its dispatcher would take a 401 for a dead node).
    assert ("[siaga112-front]\ntype = identify\nendpoint = siaga112-front\n"
            "match = 10.0.0.10:5080\n") in cluster
    assert "[siaga112-front]\ntype = endpoint\ntransport = transport-udp\n" \
           "context = siaga112-peer\n" in cluster
    # Before the peers' sections, which are unchanged.
    assert cluster.index("[carrier](+") < cluster.index("[peer-b]")
    # A front on the carrier's own address: permitted once; a node alone behind a front too.
    alone = node(tmp_path, asterisk_systemname="a", sip_host="10.0.0.11",
                 kamailio_host="192.0.2.7", carrier_address="192.0.2.7",
                 cluster_nodes="a=10.0.0.11:5060:4573", agi_allowed_peers="10.0.0.0/24")
    conf = rendered(alone, tmp_path)
    assert CARRIER_BY_MARK in conf["pjsip.conf"]
    assert "\npermit = 192.0.2.7\n" in conf[CLUSTER_CONF] and "peer-" not in conf[CLUSTER_CONF]


def test_a_single_node_knows_the_carrier_by_its_address_as_before(tmp_path: Path) -> None:
    conf = rendered(node(tmp_path, carrier_address="192.0.2.7"), tmp_path)
    assert CARRIER_BY_ADDRESS in conf["pjsip.conf"] and "X-Siaga112" not in conf["pjsip.conf"]
    assert "(+" not in conf[CLUSTER_CONF] and "carrier" not in conf[CLUSTER_CONF]


def test_the_dialplan_tries_the_first_peers_line_server_with_the_sites_secret(
        tmp_path: Path) -> None:
    settings = node(tmp_path, asterisk_systemname="a", agi_secret="s" * 20,
                    cluster_nodes="b=127.0.0.3:5060:4573,c=127.0.0.4:5061:4574,"
                                  "a=127.0.0.2:5060:4573")
    ivr = rendered(settings, tmp_path)["extensions.conf"]
    assert "GotoIf($[1 = 0 |" in ivr
    assert f"AGI(agi://127.0.0.3:4573/ivr?secret={'s' * 20},${{IVR_LINE}})" in ivr
    assert "127.0.0.4" not in ivr


def test_each_node_has_an_entity_id_of_its_own() -> None:
    ids = {entity_id(name) for name in ("a", "b", "node_1", "node_2")}
    assert len(ids) == 4
    for eid in ids:
        assert re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", eid)
        assert int(eid[:2], 16) & 0x03 == 0x02  # locally administered, unicast
    assert entity_id("a") == entity_id("a")


def test_settings_built_in_code_are_rendered_as_loaded_ones(tmp_path: Path) -> None:
    settings = replace(node(tmp_path), asterisk_systemname="a",
                       cluster_nodes=(ClusterNode("a", "127.0.0.2", 5060, 4573),
                                      ClusterNode("b", "127.0.0.3", 5060, 4573)))
    assert "server_uri = sip:a@127.0.0.3:5060" in rendered(settings, tmp_path)[CLUSTER_CONF]
