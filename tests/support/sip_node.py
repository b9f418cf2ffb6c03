"""A stand-in for an Asterisk node ringing operator phones through the cluster's front: a plain
UDP SIP client on the node's own address and port (those of ``cluster_nodes``, so the front
takes its requests for a node's), which sends an INVITE to an operator and then, step by step,
what a node does with it: retransmit it, CANCEL it, ACK its final reply, end the call with a
BYE. Each step is a call a test makes, so it can look at every reply in between, which a sipp
scenario that runs on its own cannot offer. Every wait is bounded by the socket's timeout.
"""

from __future__ import annotations

import socket
import time
import uuid
from dataclasses import dataclass, field


@dataclass
class Reply:
    """One SIP reply: its status and its whole text."""

    status: int
    text: str

    def header(self, name: str) -> str:
        """The first ``name`` header's value ("" if none)."""
        for line in self.text.split("\r\n")[1:]:
            key, sep, value = line.partition(":")
            if not line:
                break
            if sep and key.strip().lower() == name.lower():
                return value.strip()
        return ""

    @property
    def to_tag(self) -> str:
        """The To tag the phone (or the front) gave the call."""
        return self.header("To").partition(";tag=")[2].split(";")[0]


@dataclass
class Invite:
    """An INVITE a node sent: what its later requests (retransmission, CANCEL, ACK) repeat."""

    user: str
    call_id: str
    branch: str
    from_tag: str
    text: str
    replies: list[Reply] = field(default_factory=list)


class SipNode:
    """A node's SIP socket on ``host:port``, sending to the front at ``front``."""

    def __init__(self, host: str, port: int, front: tuple[str, int], *,
                 timeout: float = 5.0) -> None:
        self.host, self.port, self.front = host, port, front
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self._pending: list[Reply] = []

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def __enter__(self) -> SipNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, text: str) -> None:
        self.sock.sendto(text.encode(), self.front)

    def _request(self, method: str, uri: str, *, branch: str, from_tag: str, to: str,
                 call_id: str, cseq: str) -> str:
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch={branch};rport",
            f"From: <sip:node@{self.host}>;tag={from_tag}", f"To: {to}",
            f"Call-ID: {call_id}", f"CSeq: {cseq}", f"Contact: <sip:node@{self.host}:{self.port}>",
            "Max-Forwards: 70", "User-Agent: siaga112-test-node", "Content-Length: 0",
        ]
        return "\r\n".join([*lines, "", ""])

    def invite(self, user: str) -> Invite:
        """Send a new INVITE to operator ``user`` at the front."""
        call_id = f"{uuid.uuid4().hex}@{self.host}"
        branch, tag = f"z9hG4bK{uuid.uuid4().hex[:16]}", uuid.uuid4().hex[:8]
        text = self._request("INVITE", self._uri(user), branch=branch, from_tag=tag,
                             to=f"<{self._uri(user)}>", call_id=call_id, cseq="1 INVITE")
        self._send(text)
        return Invite(user, call_id, branch, tag, text)

    def _uri(self, user: str) -> str:
        return f"sip:{user}@{self.front[0]}:{self.front[1]}"

    def retransmit(self, invite: Invite) -> None:
        """Send the very same INVITE again (same transaction), as a node whose reply is late."""
        self._send(invite.text)

    def cancel(self, invite: Invite) -> Reply:
        """CANCEL a ringing INVITE; the CANCEL's own reply."""
        self._send(self._request("CANCEL", self._uri(invite.user), branch=invite.branch,
                                 from_tag=invite.from_tag, to=f"<{self._uri(invite.user)}>",
                                 call_id=invite.call_id, cseq="1 CANCEL"))
        return self.reply(invite.call_id, "CANCEL", final=True)

    def ack(self, invite: Invite, final: Reply) -> None:
        """ACK the INVITE's final reply: hop by hop for a refusal, to the phone for a 200."""
        to = f"<{self._uri(invite.user)}>;tag={final.to_tag}"
        if final.status >= 300:
            uri, branch = self._uri(invite.user), invite.branch
        else:
            uri, branch = self._contact(final), f"z9hG4bK{uuid.uuid4().hex[:16]}"
        self._send(self._request("ACK", uri, branch=branch, from_tag=invite.from_tag, to=to,
                                 call_id=invite.call_id, cseq="1 ACK"))

    def bye(self, invite: Invite, answer: Reply) -> Reply:
        """End an answered call; the BYE's final reply."""
        self._send(self._request(
            "BYE", self._contact(answer), branch=f"z9hG4bK{uuid.uuid4().hex[:16]}",
            from_tag=invite.from_tag, to=f"<{self._uri(invite.user)}>;tag={answer.to_tag}",
            call_id=invite.call_id, cseq="2 BYE"))
        return self.reply(invite.call_id, "BYE", final=True)

    def options(self, user: str, *, within: float | None = None) -> Reply:
        """A qualify of ``user``'s phone through the front; its final reply (AssertionError
        if none comes within ``within`` s, default the socket's timeout)."""
        call_id = f"{uuid.uuid4().hex}@{self.host}"
        self._send(self._request("OPTIONS", self._uri(user),
                                 branch=f"z9hG4bK{uuid.uuid4().hex[:16]}",
                                 from_tag=uuid.uuid4().hex[:8], to=f"<{self._uri(user)}>",
                                 call_id=call_id, cseq="1 OPTIONS"))
        return self.reply(call_id, "OPTIONS", final=True, within=within)

    @staticmethod
    def _contact(reply: Reply) -> str:
        return reply.header("Contact").strip("<>").split(">")[0]

    def reply(self, call_id: str, method: str = "INVITE", *, final: bool = False,
              within: float | None = None) -> Reply:
        """The next reply to ``method`` of call ``call_id`` other than 100 Trying (a final
        one only, if ``final``); AssertionError if none comes within ``within`` s."""
        deadline = time.monotonic() + (within if within is not None else self.timeout)
        while True:
            for index, reply in enumerate(self._pending):
                cseq = reply.header("CSeq").split()
                if reply.header("Call-ID") == call_id and cseq[-1:] == [method] and \
                        reply.status > 100 and (reply.status >= 200 or not final):
                    del self._pending[index]
                    return reply
            left = deadline - time.monotonic()
            assert left > 0, f"no reply to {method} {call_id} within the wait"
            self.sock.settimeout(left)
            try:
                data, source = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            text = data.decode(errors="replace")
            if text.startswith("SIP/2.0 "):
                self._pending.append(Reply(int(text.split()[1]), text))
            elif text.startswith(("OPTIONS ", "BYE ")):
                # The front's probe of this node, or a phone ending a call: answered, as a node
                # does.
                self.sock.sendto(_ok(text).encode(), source)


def _ok(request: str) -> str:
    """200 OK to ``request`` (its Via, From, To, Call-ID and CSeq)."""
    head = request.split("\r\n\r\n", 1)[0].split("\r\n")[1:]
    kept = [line for line in head if line.split(":", 1)[0].strip().lower()
            in {"via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"}]
    return "\r\n".join(["SIP/2.0 200 OK", *kept, "Content-Length: 0", "", ""])
