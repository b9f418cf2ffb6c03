"""Ending a phone's registration at the cluster's SIP front (Kamailio), the way a phone ends
its own: a REGISTER with ``Contact: *`` and ``Expires: 0`` (RFC 3261 10.2.2), answered to the
front's digest challenge with the phone's new secret.

Why: on a cluster, operator phones register at the front, not at a node, so a renewed secret
(a phone lost or stolen) that ends the phone's registration at the node's Asterisk
(:func:`telephony.desks.phones.end_registration`) finds only the front's permanent contact
there, and the front went on relaying callers to the old phone until its registration ran
out (up to ``max_expires``, 10 min). The front takes a REGISTER from anywhere that answers
the phone's digest, and its registrar removes every binding of the address on a ``*``; no
management channel into the front is opened for it. The front reads the secret from the
database at each REGISTER, so the new one counts at once, and the old one no longer does.

The request and the digest are built here without I/O; :func:`unregister_all` sends them
over UDP and blocks: run it on a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import socket
import time
import uuid
from dataclasses import dataclass

from telephony.core.errors import SiagaError
from telephony.desks.phones import digest, phone_username
from telephony.settings import Settings

log = logging.getLogger("telephony.kamailio.registrar")

_CHALLENGE_FIELD = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]*))')


class FrontRegistrationError(SiagaError):
    """The front did not end the phone's registration (no answer, or a refusal)."""


@dataclass(frozen=True)
class FrontRegistrar:
    """Where a node's line asks the front to end a phone's registration, and from where."""

    host: str
    port: int
    source_host: str  # this node's own address: the front sees the request come from a node
    timeout: float = 2.0

    @classmethod
    def from_settings(cls, settings: Settings) -> FrontRegistrar | None:
        """The cluster's front; ``None`` where phones register with Asterisk itself."""
        if settings.kamailio_front is None:
            return None
        return cls(settings.kamailio_host, settings.kamailio_port, settings.sip_host)

    async def end_registration(self, username: str, ha1: str) -> None:
        """:meth:`unregister_all` on a worker thread."""
        await asyncio.to_thread(self.unregister_all, username, ha1)

    def unregister_all(self, username: str, ha1: str) -> None:
        """End every registration of ``username`` at the front (blocking); ``ha1`` is the
        phone's current digest (MD5 of ``username:realm:secret``). Raises
        :class:`FrontRegistrationError` unless the front answers 200."""
        target = (self.host, self.port)
        family = socket.AF_INET6 if ":" in self.source_host else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.bind((self.source_host, 0))
                source = sock.getsockname()[:2]
                call_id = f"{uuid.uuid4().hex}@{source[0]}"
                reply = self._exchange(sock, target, unregister_request(
                    username, target, source, call_id=call_id, cseq=1))
                if reply.startswith("SIP/2.0 401"):
                    challenge = header(reply, "WWW-Authenticate")
                    reply = self._exchange(sock, target, unregister_request(
                        username, target, source, call_id=call_id, cseq=2,
                        authorization=authorization(challenge, username, ha1,
                                                    registrar_uri(target))))
        except OSError as exc:
            raise FrontRegistrationError(f"the front at {self.host}:{self.port} could not be "
                                         f"reached: {exc}") from exc
        if not reply.startswith("SIP/2.0 200"):
            status = reply.split("\r\n", 1)[0] if reply else f"no answer in {self.timeout} s"
            raise FrontRegistrationError(f"the front at {self.host}:{self.port} answered: "
                                         f"{status}")

    def _exchange(self, sock: socket.socket, target: tuple[str, int], request: bytes) -> str:
        """Send ``request``; the front's first final reply to it ("" if none in time)."""
        call_id = header(request.decode(), "Call-ID")
        sock.sendto(request, target)
        deadline = time.monotonic() + self.timeout
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, _ = sock.recvfrom(65535)
            except TimeoutError:
                break
            text = data.decode(errors="replace")
            if (text.startswith("SIP/2.0 ") and not text.startswith("SIP/2.0 1")
                    and header(text, "Call-ID") == call_id):
                return text
        return ""


async def end_front_registration(front: FrontRegistrar, interface: str, realm: str,
                                 secret: str) -> str | None:
    """On a cluster, end the phone's registration at the SIP front too, where its phones
    register (:class:`FrontRegistrar`), answering the front's challenge with the
    ``secret`` just stored; what to tell the admin if it could not be ended, else ``None``."""
    username = phone_username(interface)
    try:
        await front.end_registration(username, digest(username, realm, secret))
    except FrontRegistrationError as exc:
        log.warning("the registration of %s at the front not ended after its new secret: %s",
                    interface, exc.message)
        return (f"Pendaftaran telepon {interface} di front SIP belum diakhiri ({exc.message}). "
                "Sandi lama tidak dapat mendaftar lagi, tetapi telepon itu masih dapat "
                "berdering sampai pendaftarannya habis (paling lama 10 menit).")
    log.info("the registration of %s at the front ended: it registers again with its new "
             "secret", interface)
    return None


def registrar_uri(target: tuple[str, int]) -> str:
    """The Request-URI of a REGISTER to the front at ``target``."""
    host, port = target
    return f"sip:{_bracketed(host)}:{port}"


def _bracketed(host: str) -> str:
    """An IP address as a SIP URI or Via writes it (an IPv6 one in brackets)."""
    return f"[{host}]" if ":" in host else host


def unregister_request(username: str, target: tuple[str, int], source: tuple[str, int], *,
                       call_id: str, cseq: int, authorization: str = "") -> bytes:
    """A REGISTER removing every binding of ``username`` at the front at ``target``."""
    host = _bracketed(target[0])
    src_host, src_port = _bracketed(source[0]), source[1]
    tag = uuid.uuid4().hex
    lines = [
        f"REGISTER {registrar_uri(target)} SIP/2.0",
        f"Via: SIP/2.0/UDP {src_host}:{src_port};branch=z9hG4bK{tag[:20]};rport",
        "Max-Forwards: 70",
        f"From: <sip:{username}@{host}>;tag={tag[20:]}",
        f"To: <sip:{username}@{host}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        "Contact: *",
        "Expires: 0",
        "User-Agent: siaga112-line",
    ]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    return "\r\n".join([*lines, "Content-Length: 0", "", ""]).encode()


def authorization(challenge: str, username: str, ha1: str, uri: str, *,
                  method: str = "REGISTER", cnonce: str | None = None) -> str:
    """The Authorization header answering a ``WWW-Authenticate`` digest ``challenge`` (RFC
    2617, MD5; with ``qop=auth`` when the challenge offers it) for ``username`` whose HA1 is
    ``ha1``."""
    params = {name: quoted or bare for name, quoted, bare in
              _CHALLENGE_FIELD.findall(challenge.strip().removeprefix("Digest"))}
    realm, nonce = params.get("realm", ""), params.get("nonce", "")
    ha2 = _md5(f"{method}:{uri}")
    fields = [f'username="{username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"',
              "algorithm=MD5"]
    if "auth" in [qop.strip() for qop in params.get("qop", "").split(",")]:
        cnonce, count = cnonce or uuid.uuid4().hex[:16], "00000001"
        response = _md5(f"{ha1}:{nonce}:{count}:{cnonce}:auth:{ha2}")
        fields += [f'cnonce="{cnonce}"', f"nc={count}", "qop=auth"]
    else:
        response = _md5(f"{ha1}:{nonce}:{ha2}")
    if "opaque" in params:
        fields.append(f'opaque="{params["opaque"]}"')
    return "Digest " + ", ".join([*fields, f'response="{response}"'])


def header(message: str, name: str) -> str:
    """The first value of header ``name`` in a SIP ``message`` ("" if none)."""
    for line in message.split("\r\n"):
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == name.lower():
            return value.strip()
        if not line:
            break
    return ""


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
