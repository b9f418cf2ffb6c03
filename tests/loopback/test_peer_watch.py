"""The line's watch over its node's peers (telephony/cluster/watch.py) on a real UDP socket:
a dead peer's ContactStatus makes it PUBLISH the forgetting of every queue member's device to
its own Asterisk (here a UDP socket answering 200), once; a peer back makes it reload
res_pjsip_publish_asterisk; every login looks at the peers' contacts. Each change is told to
the liveness hooks (the wallboard's), a failing hook stopping nothing. Every recheck looks
again and forgets a dead peer's states again: a failed forget, a missed ContactStatus and an
operator who joined after the death are all caught within one."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any, cast

import pytest

from telephony.ami.actions import AmiActionError, AmiActionRefusedError
from telephony.cluster.peers import NO_STATE, entity_id
from telephony.cluster.watch import PeerWatch
from tests.support.polling import eventually

HOST = "127.0.0.1"


class Asterisk(asyncio.DatagramProtocol):
    """Takes PUBLISHes and answers each 200 OK, as res_pjsip_pubsub does."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not isinstance: Python 3.11's selector datagram transport does not derive
        # from asyncio.DatagramTransport, and the failing check left this fake answering
        # nothing.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        head, _, body = data.decode().partition("\r\n\r\n")
        self.bodies.append(json.loads(body))
        call_id = next(line for line in head.split("\r\n") if line.startswith("Call-ID:"))
        assert self.transport is not None
        self.transport.sendto(f"SIP/2.0 200 OK\r\n{call_id}\r\n\r\n".encode(), addr)


class Ami:
    """The AMI port: QueueStatus and PJSIPShowEndpoint lists, and the actions sent. As
    Asterisk 22's: PJSIPShowContacts lists registered contacts only, none here (a cluster's
    phones register at the front), so it refuses; a peer's contact (configured on its AOR)
    is in its endpoint's ContactStatusDetail."""

    def __init__(self) -> None:
        self.actions: list[Mapping[str, str]] = []
        self.contacts = [{"AOR": "peer-node1", "Status": "Unreachable"}]
        self.extra_members: list[dict[str, str]] = []
        self.failing_queue_status = 0  # this many QueueStatus actions time out

    async def send_action(self, action: Mapping[str, str]) -> object:
        self.actions.append(action)
        return {"Response": "Success"}

    async def send_list_action(self, action: Mapping[str, str]) -> list[Any]:
        self.actions.append(action)
        if action["Action"] == "PJSIPShowContacts":
            raise AmiActionRefusedError("PJSIPShowContacts refused: No Contacts found")
        if action["Action"] == "PJSIPShowEndpoint":
            found = [{"Event": "ContactStatusDetail", "URI": "sip:127.0.0.9:5060", **contact}
                     for contact in self.contacts if contact["AOR"] == action["Endpoint"]]
            return [{"Event": "EndpointDetail", "ObjectName": action["Endpoint"]}, *found,
                    {"Event": "EndpointDetailComplete", "EventList": "Complete"}]
        if self.failing_queue_status:
            self.failing_queue_status -= 1
            raise AmiActionError("QueueStatus: no answer")
        return [
            *self.extra_members,
            {"Event": "QueueParams", "Queue": "all-operators"},
            {"Event": "QueueMember", "Queue": "all-operators", "StateInterface": "PJSIP/op1001"},
            {"Event": "QueueMember", "Queue": "fire", "StateInterface": "PJSIP/op1001"},
            {"Event": "QueueMember", "Queue": "fire", "Location": "PJSIP/op1002"},
            # Nothing but an operator device is spliced into a PUBLISH.
            {"Event": "QueueMember", "Queue": "fire", "StateInterface": "PJSIP/x\r\nVia: y"},
            {"Event": "QueueMember", "Queue": "fire", "StateInterface": "Local/1@x"},
        ]


async def test_a_dead_peers_operators_are_forgotten_once_and_a_returning_one_relearnt() -> None:
    loop = asyncio.get_running_loop()
    transport, asterisk = await loop.create_datagram_endpoint(Asterisk, local_addr=(HOST, 0))
    port = transport.get_extra_info("sockname")[1]
    ami = Ami()
    watch = PeerWatch(ami, peers=["node1", "node3"], own_host=HOST, sip_port=port)
    told: list[tuple[str, bool]] = []

    def broken(peer: str, alive: bool) -> None:
        raise RuntimeError("a hook's bug")

    watch.on_liveness(broken)
    watch.on_liveness(lambda peer, alive: told.append((peer, alive)))
    task = asyncio.create_task(watch.run())
    try:
        watch.contact_status({"AOR": "peer-node1", "ContactStatus": "Reachable"})
        watch.contact_status({"AOR": "op1001", "ContactStatus": "Unreachable"})
        watch.contact_status({"AOR": "peer-node1", "ContactStatus": "Unreachable"})
        watch.contact_status({"AOR": "peer-node1", "ContactStatus": "Unreachable"})

        async def published() -> list[dict[str, Any]] | None:
            return asterisk.bodies if len(asterisk.bodies) >= 2 else None

        bodies = await eventually("the forgetting PUBLISHes", published, 5)
        assert sorted(body["device"] for body in bodies) == ["PJSIP/op1001", "PJSIP/op1002"]
        assert {(body["state"], body["eid"]) for body in bodies} == {(NO_STATE,
                                                                      entity_id("node1"))}
        # Back: every peer asked for its whole state again (the module's reload).
        watch.contact_status({"AOR": "peer-node1", "ContactStatus": "Reachable"})

        async def reloaded() -> bool | None:
            return True if {"Action": "ModuleLoad", "LoadType": "reload",
                            "Module": "res_pjsip_publish_asterisk.so"} in ami.actions else None

        await eventually("the reload", reloaded, 5)
        # A login finds node1 dead again (it died while the line was away): forgotten again.
        watch.logged_in({"Event": "FullyBooted"})

        async def again() -> bool | None:
            return True if len(asterisk.bodies) >= 4 else None

        await eventually("the forgetting after a login", again, 5)
        assert len(asterisk.bodies) == 4
        assert told == [("node1", False), ("node1", True), ("node1", False)]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        transport.close()


async def test_a_recheck_forgets_what_the_events_missed_and_is_quiet_when_all_went_well(
        caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    transport, asterisk = await loop.create_datagram_endpoint(Asterisk, local_addr=(HOST, 0))
    port = transport.get_extra_info("sockname")[1]
    ami = Ami()
    ami.contacts = [{"AOR": "peer-node1", "Status": "Reachable"}]
    ami.failing_queue_status = 1
    watch = PeerWatch(ami, peers=["node1", "node3"], own_host=HOST, sip_port=port,
                      recheck_seconds=0.2)
    task = asyncio.create_task(watch.run())

    def forgotten(device: str, peer: str) -> bool:
        return {"device": device, "state": NO_STATE, "eid": entity_id(peer)} in [
            {key: body[key] for key in ("device", "state", "eid")} for body in asterisk.bodies]

    async def has(device: str, peer: str) -> bool | None:
        return True if forgotten(device, peer) else None

    try:
        # node1 dies, and the forget's QueueStatus goes unanswered: the next recheck forgets.
        ami.contacts[0]["Status"] = "Unreachable"
        watch.contact_status({"AOR": "peer-node1", "ContactStatus": "Unreachable"})
        await eventually("node1's states forgotten by a recheck",
                         lambda: has("PJSIP/op1001", "node1"), 5, interval=0.05)
        # An operator joins a queue here after node1 died: their phone is forgotten too.
        ami.extra_members = [{"Event": "QueueMember", "Queue": "fire",
                              "StateInterface": "PJSIP/op1007"}]
        await eventually("the late operator's phone forgotten",
                         lambda: has("PJSIP/op1007", "node1"), 5, interval=0.05)
        # node3 died with no ContactStatus seen: the recheck's look finds it.
        ami.contacts.append({"AOR": "peer-node3", "Status": "Unreachable"})
        await eventually("node3's states forgotten", lambda: has("PJSIP/op1001", "node3"), 5,
                         interval=0.05)
        assert not watch.alive("node3")
        # Rechecks that find everything taken say nothing.
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="telephony.cluster.watch"):
            seen = len(asterisk.bodies)

            async def rechecked_twice() -> bool | None:
                return True if len(asterisk.bodies) >= seen + 2 * 3 * 2 else None

            await eventually("two more rechecks", rechecked_twice, 5, interval=0.05)
        assert caplog.records == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        transport.close()
