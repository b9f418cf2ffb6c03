"""A node's peers (telephony/cluster/peers.py): when a peer counts as dead or back, the
PUBLISH that makes this node's Asterisk forget a dead peer's device states, and each peer's
liveness as a metric."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from telephony.cluster.peers import (
    LINE_PUBLISHER,
    NO_STATE,
    PeerLiveness,
    PeerMove,
    call_id_of,
    entity_id,
    forget_request,
    peer_aor,
    peer_of_aor,
)
from telephony.cluster.watch import PeerWatch
from telephony.metrics.live import PeersCollector


def test_a_peers_aor_names_it() -> None:
    assert peer_aor("node2") == "peer-node2"
    assert peer_of_aor("peer-node2") == "node2"
    assert peer_of_aor("op1001") is None
    assert peer_of_aor("peer-") is None


def test_only_a_change_of_a_known_peer_moves_anything() -> None:
    liveness = PeerLiveness(frozenset({"node2"}))
    assert liveness.seen("peer-node2", "Reachable") is None  # first seen alive: no return
    assert liveness.seen("peer-node2", "Unreachable") is PeerMove.FORGET
    assert liveness.seen("peer-node2", "Unreachable") is None  # once per death
    assert liveness.seen("peer-node3", "Unreachable") is None  # not a peer of ours
    assert liveness.seen("op1001", "Unreachable") is None  # a phone
    assert liveness.seen("peer-node2", "Unknown") is None
    assert liveness.seen("peer-node2", "Reachable") is PeerMove.RELEARN
    assert liveness.seen("peer-node2", "Reachable") is None


def test_the_forgetting_publish_names_the_dead_peers_entity_id() -> None:
    request = forget_request(device="PJSIP/op1001", peer="node1", target=("127.0.0.12", 5070),
                             source=("127.0.0.12", 40000))
    head, _, body = request.decode().partition("\r\n\r\n")
    lines = head.split("\r\n")
    assert lines[0] == f"PUBLISH sip:{LINE_PUBLISHER}@127.0.0.12:5070 SIP/2.0"
    assert "Event: asterisk-devicestate" in lines
    assert "Content-Type: application/json" in lines
    assert f"Content-Length: {len(body.encode())}" in lines
    assert any(line.startswith("Via: SIP/2.0/UDP 127.0.0.12:40000;") for line in lines)
    assert json.loads(body) == {"type": "devicestate", "device": "PJSIP/op1001",
                                "state": NO_STATE, "cachable": 1, "eid": entity_id("node1")}
    assert call_id_of(request).endswith("@127.0.0.12")
    assert call_id_of(request) != call_id_of(forget_request(
        device="PJSIP/op1001", peer="node1", target=("127.0.0.12", 5070),
        source=("127.0.0.12", 40000)))


@pytest.mark.parametrize("device", ["Custom:x", "PJSIP/op1001\r\nVia: x", "PJSIP/", "op1001",
                                    "PJSIP/a b"])
def test_only_an_operator_device_is_published(device: str) -> None:
    with pytest.raises(ValueError, match="not an operator device"):
        forget_request(device=device, peer="node1", target=("127.0.0.1", 5060),
                       source=("127.0.0.1", 5061))


def test_each_peers_liveness_is_a_metric() -> None:
    # A peer node down (its calls cut, its operators' calls now through this node) showed in
    # no figure: only a log line of this node's said so.
    watch = PeerWatch(cast(Any, None), peers=["node2", "node3"], own_host="192.0.2.1",
                      sip_port=5060)
    registry = CollectorRegistry()
    registry.register(PeersCollector(watch))

    def up(peer: str) -> float | None:
        return registry.get_sample_value("siaga112_cluster_peer_up", {"peer": peer})

    assert (up("node2"), up("node3")) == (1, 1)
    watch.contact_status({"AOR": "peer-node2", "ContactStatus": "Unreachable"})
    assert (up("node2"), up("node3")) == (0, 1)
    watch.contact_status({"AOR": "peer-node2", "ContactStatus": "Reachable"})
    assert up("node2") == 1
    assert up("node9") is None  # only the configured peers: a bounded label
