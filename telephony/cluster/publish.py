"""The line's PUBLISHes of operators' device states to its own node's Asterisk (the
``siaga112-line`` publication, pjsip_cluster.conf): a dead peer's states forgotten
(telephony/cluster/watch.py), an operator's wrap-up after a call on another node held
(telephony/cluster/wrapup_sync.py). Blocking UDP: run it on a worker thread."""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

from telephony.cluster.peers import call_id_of, state_request


@dataclass(frozen=True)
class DeviceState:
    """One device's state under one entity id, as the line tells its Asterisk."""

    device: str
    state: str
    eid: str


def publish_states(own_host: str, sip_port: int, states: Sequence[DeviceState], *,
                   reply_timeout: float = 1.0) -> list[bool]:
    """PUBLISH each of ``states`` to the Asterisk at ``own_host:sip_port``, from that address
    (the only one the publication accepts), all at once; for each, whether Asterisk took it
    (a final 2xx within ``reply_timeout`` s of the sending)."""
    host = own_host.strip("[]")
    target = (host, sip_port)
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                       socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        source = sock.getsockname()[:2]
        waiting: dict[str, int] = {}
        for index, item in enumerate(states):
            request = state_request(device=item.device, state=item.state, eid=item.eid,
                                    target=target, source=source)
            waiting[call_id_of(request)] = index
            sock.sendto(request, target)
        taken = [False] * len(states)
        deadline = time.monotonic() + reply_timeout
        while waiting and (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                reply, _ = sock.recvfrom(65535)
            except TimeoutError:
                break
            index_of = waiting.get(call_id_of(reply))
            if index_of is not None and not reply.startswith(b"SIP/2.0 1"):
                del waiting[call_id_of(reply)]
                taken[index_of] = reply.startswith(b"SIP/2.0 2")
        return taken
