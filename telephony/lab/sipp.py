"""sipp for tests and benchmarks: callers on the carrier trunk, the lab's operator phones, and
the callers' phones the line calls back (survey callbacks).

Every sipp runs as its own process on its own loopback SIP and media ports, with ``-nostdin``
(CI has no terminal) and a global ``-timeout`` as a backstop; :class:`Sipp` kills it on exit
and collects what it reported:

* the exit code (0: every call succeeded, 1: some failed, 97/99: stopped or nothing ran),
* the counters of its last ``-trace_stat`` line (``SuccessfulCall(C)``, ``FailedCall(C)``),
* its ``-trace_err`` log of unexpected messages.

Scenarios are the XML templates in ``telephony/lab/sipp_scenarios/``, rendered per process
(``@{name}``, the same templating as ``asterisk-conf/``) with the caller ID and the caller's or
operator's steps.

DTMF is sent as RFC 4733 events by replaying sipp's ``dtmf_2833_<d>.pcap`` files. All of them
carry the same RTP sequence numbers and timestamp, and Asterisk drops an event it has already
seen on the stream (pressing 1, 2, 1 would reach the IVR as "12"), so each press replays a
copy renumbered for its place in the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import math
import os
import re
import shutil
import signal
import socket
import struct
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from telephony.asterisk.config import ConfTemplate

SCENARIO_DIR = Path(__file__).resolve().parent / "sipp_scenarios"
PCAP_DIR = Path("/usr/share/sip-tester")
AUDIO_PCAP = PCAP_DIR / "g711a.pcap"
AUDIO_PCAP_MS = 7000  # g711a.pcap holds 7.05 s of A-law
DTMF_PCAP_MS = 300  # each dtmf_2833 pcap lasts 0.14 s; leave a gap between digits
DTMF_BURST_GAP_MS = 50  # "1+2": the 2 starts this long after the 1 ended (dtmf_burst_pcap)
DTMF_NAMES = {str(d): str(d) for d in range(10)} | {"*": "star", "#": "pound"}
INFO_CSEQ = 2  # the caller's first SIP INFO key; its BYE's CSeq (caller.xml) is above them all
_SIPP_EVENTS_HEADER = "The following events occurred:"
# "%": a URI's escaped characters (sip:0812%0D%0A...), which PJSIP unescapes.
_SAFE_HEADER_TEXT = re.compile(r"[\w .+\-@:;=%]*")
_HEADER_NAME = re.compile(r"[A-Za-z0-9-]{1,64}")


def free_udp_port(host: str = "127.0.0.1", span: int = 1) -> int:
    """An even UDP port on ``host`` with ``span`` free ports from it (sipp media needs +2)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1]) & ~1
        sockets: list[socket.socket] = []
        try:
            for offset in range(span):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(sock)
                sock.bind((host, port + offset))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return port
    raise RuntimeError("no free UDP port range on loopback")


@dataclass(frozen=True)
class SippResult:
    """What one sipp process reported."""

    returncode: int
    successful: int
    failed: int
    errors: str = ""
    stats: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Exited 0 and completed at least one call."""
        return self.returncode == 0 and self.successful > 0 and self.failed == 0


@dataclass(frozen=True)
class Scenario:
    """A rendered scenario and the files it refers to by relative name (sipp runs in the
    directory they are written to)."""

    xml: str
    files: dict[str, bytes] = field(default_factory=dict)


_DTMF_SEQ_BASE = 20000
_DTMF_TS_BASE = 160000


def _renumbered(data: bytes, seq_base: int, ts_base: int) -> bytes:
    """An RTP pcap (sipp's: little-endian, Ethernet) whose packets start at RTP sequence
    number ``seq_base`` and timestamp ``ts_base``, keeping their spacing."""
    out = bytearray(data)
    offset = 24  # pcap global header
    first: tuple[int, int] | None = None
    while offset < len(out):
        (captured,) = struct.unpack_from("<I", out, offset + 8)
        ip = offset + 16 + 14
        udp = ip + (out[ip] & 0x0F) * 4
        seq, timestamp = struct.unpack_from(">HI", out, udp + 8 + 2)
        if first is None:
            first = (seq, timestamp)
        struct.pack_into(">HI", out, udp + 8 + 2, (seq_base + seq - first[0]) & 0xFFFF,
                         (ts_base + timestamp - first[1]) & 0xFFFFFFFF)
        struct.pack_into(">H", out, udp + 6, 0)  # the old checksum is wrong now; 0 = none
        offset += 16 + captured
    return bytes(out)


def dtmf_pcap(digit: str, press: int) -> bytes:
    """sipp's pcap of ``digit``, renumbered as the ``press``-th digit of a call.

    Each of sipp's pcaps starts at its own arbitrary RTP sequence number and timestamp, so two
    digits in a row can go *backwards* (``7`` then ``3``), and Asterisk drops what looks like a
    late, out-of-order packet. Every press therefore gets sequence numbers and a timestamp on
    one rising scale, whatever the digit.
    """
    data = (PCAP_DIR / f"dtmf_2833_{DTMF_NAMES[digit]}.pcap").read_bytes()
    return _renumbered(data, _DTMF_SEQ_BASE + press * 100, _DTMF_TS_BASE + press * 16000)


# The DTMF frequency pairs (ITU-T Q.23): row, column.
_DTMF_ROWS = {"1": 697, "2": 697, "3": 697, "4": 770, "5": 770, "6": 770,
              "7": 852, "8": 852, "9": 852, "*": 941, "0": 941, "#": 941}
_DTMF_COLUMNS = {"1": 1209, "4": 1209, "7": 1209, "*": 1209, "2": 1336, "5": 1336, "8": 1336,
                 "0": 1336, "3": 1477, "6": 1477, "9": 1477, "#": 1477}
INBAND_TONE_MS = 120  # each key's tone; then as much silence, so two presses stay apart
_FRAME_SAMPLES = 160  # 20 ms at 8 kHz


def _alaw(sample: int) -> int:
    """One 16-bit linear sample as G.711 A-law (ITU-T G.711)."""
    sign = 0x80 if sample >= 0 else 0x00
    magnitude = min(abs(sample), 32767) >> 3  # A-law encodes 13 bits
    if magnitude < 32:
        code = magnitude >> 1
    else:
        exponent = magnitude.bit_length() - 5
        code = (exponent << 4) | ((magnitude >> exponent) & 0x0F)
    return (code | sign) ^ 0x55


def inband_dtmf_pcap(digit: str, press: int) -> bytes:
    """``digit`` as an in-band tone pair in A-law RTP (payload type 8), as a caller's keys
    reach the line over a carrier that relays no RFC 4733 events; renumbered as the
    ``press``-th digit of a call (see :func:`dtmf_pcap`). Built on the headers of sipp's
    A-law pcap (its addresses and ports are sipp's to replace)."""
    template = AUDIO_PCAP.read_bytes()
    (captured,) = struct.unpack_from("<I", template, 24 + 8)
    first = template[24 + 16:24 + 16 + captured]
    ip_header = (first[14] & 0x0F) * 4
    headers = bytearray(first[:14 + ip_header + 8 + 12])
    udp = 14 + ip_header
    struct.pack_into(">H", headers, 14 + 2, ip_header + 8 + 12 + _FRAME_SAMPLES)  # IP length
    struct.pack_into(">H", headers, udp + 4, 8 + 12 + _FRAME_SAMPLES)  # UDP length
    struct.pack_into(">H", headers, udp + 6, 0)  # no UDP checksum
    headers[udp + 8 + 1] = 8  # PCMA, no marker
    low, high = _DTMF_ROWS[digit], _DTMF_COLUMNS[digit]
    tone = INBAND_TONE_MS * 8
    samples = [round(8000 * (math.sin(2 * math.pi * low * n / 8000)
                             + math.sin(2 * math.pi * high * n / 8000))) if n < tone else 0
               for n in range(2 * tone)]
    out = bytearray(template[:24])
    for frame in range(len(samples) // _FRAME_SAMPLES):
        packet = bytearray(headers)
        struct.pack_into(">HI", packet, udp + 8 + 2, _DTMF_SEQ_BASE + press * 100 + frame,
                         _DTMF_TS_BASE + press * 16000 + frame * _FRAME_SAMPLES)
        chunk = samples[frame * _FRAME_SAMPLES:(frame + 1) * _FRAME_SAMPLES]
        packet += bytes(_alaw(sample) for sample in chunk)
        micros = frame * 20_000
        out += struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(packet),
                           len(packet))
        out += packet
    return bytes(out)


def dtmf_burst_pcap(digits: str, press: int) -> bytes:
    """One pcap of ``digits`` pressed back to back, each ``DTMF_BURST_GAP_MS`` after the end of
    the one before (the ``press``-th, ``press + 1``-th ... digits of a call): a caller who knows
    the menu. sipp cancels a pcap still playing when the next starts, so a burst faster than
    ``DTMF_PCAP_MS`` must be one file."""
    out = bytearray()
    next_start: float | None = None
    for index, digit in enumerate(digits):
        data = dtmf_pcap(digit, press + index)
        if not out:
            out += data[:24]  # the pcap global header
        offset = 24
        first: float | None = None
        last = 0.0
        while offset < len(data):
            seconds, micros, captured = struct.unpack_from("<III", data, offset)
            at = seconds + micros / 1e6
            first = at if first is None else first
            moved = at if next_start is None else next_start + (at - first)
            record = bytearray(data[offset:offset + 16 + captured])
            whole = int(moved)
            struct.pack_into("<II", record, 0, whole, round((moved - whole) * 1e6) % 1_000_000)
            out += record
            last = moved
            offset += 16 + captured
        next_start = last + DTMF_BURST_GAP_MS / 1000
    return bytes(out)


def talk_pcap(replay: int) -> bytes:
    """The A-law pcap as the ``replay``-th stretch of one continuous talk: Asterisk drops a
    replay that repeats the sequence numbers and timestamps of the last one, so each stretch
    continues where the one before it ended."""
    samples = AUDIO_PCAP_MS * 8  # 8 kHz
    return _renumbered(AUDIO_PCAP.read_bytes(), replay * 1000, replay * samples)


def _xml_wait(step: int, ms: int) -> str:
    """Wait ``ms`` unless Asterisk sends BYE first (then end the call cleanly)."""
    return (
        f'  <recv request="BYE" timeout="{max(ms, 1)}" ontimeout="step{step}" '
        f'next="bye_received"/>\n  <label id="step{step}"/>\n'
    )


def _xml_play(pcap: Path | str) -> str:
    return f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'


def _audio_steps(seconds: float, first_step: int) -> tuple[str, float]:
    """Replay the A-law pcap back to back for ``seconds``; returns (XML, seconds left)."""
    xml = []
    left = seconds
    step = first_step
    while left * 1000 >= AUDIO_PCAP_MS:
        xml.append(_xml_play(AUDIO_PCAP) + _xml_wait(step, AUDIO_PCAP_MS))
        left -= AUDIO_PCAP_MS / 1000
        step += 1
    if left > 0:
        xml.append(_xml_play(AUDIO_PCAP))
    return "".join(xml), left


def _talk_steps(seconds: float, first_step: int) -> tuple[str, dict[str, bytes], float]:
    """Talk for ``seconds`` without a break (:func:`talk_pcap` stretches back to back); returns
    (XML, the pcap files it plays, seconds left)."""
    xml = []
    files = {}
    left = seconds
    replay = 0
    while left * 1000 >= AUDIO_PCAP_MS:
        name = f"talk-{replay}.pcap"
        files[name] = talk_pcap(replay)
        xml.append(_xml_play(name) + _xml_wait(first_step + replay, AUDIO_PCAP_MS))
        left -= AUDIO_PCAP_MS / 1000
        replay += 1
    if left > 0:
        name = f"talk-{replay}.pcap"
        files[name] = talk_pcap(replay)
        xml.append(_xml_play(name))
    return "".join(xml), files, left


def _check_header_text(name: str, value: str) -> str:
    if not _SAFE_HEADER_TEXT.fullmatch(value):
        raise ValueError(f"{name} {value!r}: use letters, digits, space and .+-@:;=% only")
    return value


def _xml_info(digit: str, cseq: int) -> str:
    """One key sent as a SIP INFO (``application/dtmf-relay``), as some carriers relay keys
    instead of RFC 4733 events; Asterisk's 200 awaited."""
    return (
        "  <send>\n    <![CDATA[\n"
        "      INFO [next_url] SIP/2.0\n"
        "      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
        "      [last_From:]\n      [last_To:]\n      Call-ID: [call_id]\n"
        f"      CSeq: {cseq} INFO\n      Max-Forwards: 70\n"
        "      Content-Type: application/dtmf-relay\n      Content-Length: [len]\n\n"
        f"      Signal={digit}\n      Duration=160\n"
        "    ]]>\n  </send>\n"
        '  <recv response="200"/>\n'
    )


def _dtmf_steps(
    dtmf: str, delay: float, gap: float, *, info: bool = False, inband: bool = False
) -> tuple[list[str], dict[str, bytes], int]:
    """Wait ``delay`` s after the answer, then send ``dtmf`` one digit every ``gap`` s (a ``,``
    presses nothing for one gap); as SIP INFO requests if ``info`` (CSeq 2 onwards, below
    the caller's BYE's), as in-band tones if ``inband``, else as RFC 4733 events. Returns the
    XML steps, the pcap files they play, and the number of the next step label."""
    if inband and "+" in dtmf:
        raise ValueError("in-band keys are sent one at a time: no '+'")
    if not re.fullmatch(r"(?:[^,+](?:\+[^,+])*|,)*", dtmf):
        raise ValueError(f"cannot send DTMF {dtmf!r}: a '+' joins two digits")
    for digit in dtmf:
        if digit not in DTMF_NAMES and digit not in ",+":
            raise ValueError(f"cannot send DTMF {digit!r}")
    steps = []
    files = {}
    step = 0
    if dtmf:
        steps.append(_xml_wait(step, int(delay * 1000)))
        step += 1
        gap_ms = int(max(gap * 1000, DTMF_PCAP_MS))
        press = 0
        for group in re.findall(r"[^,+](?:\+[^,+])*|,", dtmf):
            if group != "," and info:
                for digit in group.replace("+", ""):
                    steps.append(_xml_info(digit, INFO_CSEQ + press))
                    press += 1
            elif group != ",":
                digits = group.replace("+", "")
                name = f"dtmf-{press}.pcap"
                if inband:
                    files[name] = inband_dtmf_pcap(digits, press)
                else:
                    files[name] = (dtmf_pcap(digits, press) if len(digits) == 1
                                   else dtmf_burst_pcap(digits, press))
                steps.append(_xml_play(name))
                press += len(digits)
            steps.append(_xml_wait(step, gap_ms * max(len(group) // 2 + 1, 1)))
            step += 1
    return steps, files, step


def render_caller(
    *,
    caller_id: str,
    caller_name: str = "",
    asserted_id: str | None = None,
    dtmf: str = "",
    dtmf_delay: float = 1.0,
    dtmf_gap: float = DTMF_PCAP_MS / 1000,
    audio: bool = False,
    talk_seconds: float = 5.0,
    continuous: bool = False,
    numbered: bool = False,
    headers: Mapping[str, str] | None = None,
    info_dtmf: bool = False,
    inband_dtmf: bool = False,
    bye_cause: int | None = None,
) -> Scenario:
    """The caller scenario: after the answer wait ``dtmf_delay`` s, send ``dtmf`` one digit
    every ``dtmf_gap`` s (a ``,`` presses nothing for one gap, ``1+2`` presses 2 right after
    1, see :func:`dtmf_burst_pcap`), stay ``talk_seconds`` s more
    (with the A-law pcap playing if ``audio``: once, as Asterisk drops its replays; the whole
    time if ``continuous``, as a phone sending audio all along), then BYE.

    ``caller_id`` is the From user part (e.g. ``"081234567890"``, ``"anonymous"``, ``"+62..."``);
    ``asserted_id`` adds a P-Asserted-Identity with that number. ``numbered``: each call's
    caller id is ``caller_id`` followed by sipp's call number, so a run of many calls comes
    from as many callers (one number calling hundreds of times is what screening lowers).
    ``headers`` are added to the INVITE as they are (e.g. the cluster front's carrier mark).
    ``info_dtmf``: the keys go as SIP INFO requests instead of RFC 4733 events;
    ``inband_dtmf``: as tones in the audio, and the call offers no telephone-event.
    ``bye_cause``: the caller's BYE says this Q.850 cause (``Reason: Q.850;cause=N``), as a
    carrier's does when its network lost the caller.
    """
    steps, files, step = _dtmf_steps(dtmf, dtmf_delay, dtmf_gap, info=info_dtmf,
                                     inband=inband_dtmf)
    talk_left = talk_seconds
    if audio and continuous:
        xml, talk, talk_left = _talk_steps(talk_seconds, step)
        steps.append(xml)
        files.update(talk)
    elif audio:
        xml, talk_left = _audio_steps(talk_seconds, step)
        steps.append(xml)
    lines = ""
    if asserted_id is not None:
        pai = _check_header_text("asserted_id", asserted_id)
        lines = f"      P-Asserted-Identity: <sip:{pai}@[local_ip]>\n"
    for name, value in (headers or {}).items():
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"header name {name!r}: use letters, digits and '-' only")
        lines += f"      {name}: {_check_header_text(name, value)}\n"
    xml = ConfTemplate((SCENARIO_DIR / "caller.xml").read_text(encoding="utf-8")).substitute(
        from_user=(_check_header_text("caller_id", caller_id) or "anonymous")
        + ("[call_number]" if numbered else ""),
        from_name=_check_header_text("caller_name", caller_name),
        extra_headers=lines,
        bye_headers="" if bye_cause is None else f"      Reason: Q.850;cause={int(bye_cause)}\n",
        event_payload="" if inband_dtmf else " 101",
        event_lines="" if inband_dtmf else (
            "      a=rtpmap:101 telephone-event/8000\n      a=fmtp:101 0-15\n"),
        steps="".join(steps),
        talk_ms=max(int(talk_left * 1000), 1),
    )
    return Scenario(xml, files)


def _xml_reinvite(cseq: int, direction: str) -> str:
    """The answering phone's own re-INVITE in its call (``sendonly``: it holds the call,
    ``sendrecv``: it takes it back), with a new SDP version each time, and its ACK."""
    return f"""  <send retrans="500">
    <![CDATA[
      INVITE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$local_party];tag=[pid]SIPpTag01[call_number]
      To: [$remote_party]
      Call-ID: [call_id]
      CSeq: {cseq} INVITE
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 53655765 {2353687637 + cseq} IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 0 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a=ptime:20
      a={direction}
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="200"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$local_party];tag=[pid]SIPpTag01[call_number]
      To: [$remote_party]
      Call-ID: [call_id]
      CSeq: {cseq} ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""


def render_operator(
    *,
    ring_seconds: float = 0.0,
    talk_seconds: float | None = None,
    audio: bool = False,
    audio_seconds: float = 60.0,
    held_seconds: float = 0.0,
) -> Scenario:
    """The operator scenario: ring ``ring_seconds`` s (a CANCEL meanwhile is accepted), answer,
    keep RTP flowing if ``audio``, and hang up after ``talk_seconds`` s, or wait for Asterisk's
    BYE if ``talk_seconds`` is None: then its audio lasts ``audio_seconds`` s (in whole
    stretches of the 7 s pcap), and after it the phone sends nothing at all, as one whose power
    or network went mid-call. With ``held_seconds`` (and ``talk_seconds`` None) the phone first
    holds the call that long as a desk phone's hold button does (a ``sendonly`` re-INVITE, and
    no media at all meanwhile), then takes it back (``sendrecv``) and talks.
    """
    if held_seconds and talk_seconds is not None:
        raise ValueError("held_seconds: only for a phone that waits for Asterisk's BYE")
    ringing = ""
    if ring_seconds > 0:
        ringing = (
            f'  <recv request="CANCEL" timeout="{int(ring_seconds * 1000)}" '
            'ontimeout="answer" next="cancelled"/>\n'
        )
    steps = ""
    if talk_seconds is None:
        if audio:
            # Media for as long as an IVR-to-queue test plausibly talks; the BYE ends it.
            steps, _ = _audio_steps(audio_seconds, 0)
        if held_seconds:
            steps = (_xml_reinvite(1, "sendonly") + _xml_wait(1000, int(held_seconds * 1000))
                     + _xml_reinvite(2, "sendrecv") + steps)
        talk_wait = '  <recv request="BYE" next="bye_received"/>\n'
    else:
        left = talk_seconds
        if audio:
            steps, left = _audio_steps(talk_seconds, 0)
        talk_wait = (
            f'  <recv request="BYE" timeout="{max(int(left * 1000), 1)}" ontimeout="hangup" '
            'next="bye_received"/>\n'
        )
    xml = ConfTemplate((SCENARIO_DIR / "operator.xml").read_text(encoding="utf-8")).substitute(
        ringing=ringing, steps=steps, talk_wait=talk_wait, bye_headers=""
    )
    return Scenario(xml)


# The refusals a callee may answer a call with.
REFUSALS = {404: "Not Found", 480: "Temporarily Unavailable", 486: "Busy Here", 603: "Decline"}


def render_callee(
    *,
    refuse: int | None = None,
    answer: bool = True,
    ring_seconds: float = 0.0,
    dtmf: str = "",
    dtmf_delay: float = 1.0,
    audio: bool = False,
    hold_seconds: float = 30.0,
    bye_cause: int | None = None,
) -> Scenario:
    """The callee scenario (a caller's phone the line calls back, or an agency the line
    transfers a caller to): ring, then refuse the call with SIP status ``refuse``; or ring
    until cancelled if not ``answer``; or ring ``ring_seconds`` s (a CANCEL meanwhile is
    accepted), answer, send ``dtmf`` as :func:`render_caller` does, talk (the A-law pcap, if
    ``audio``), and wait until ``hold_seconds`` s after the answer for Asterisk's BYE before
    hanging up itself (its BYE saying the Q.850 ``bye_cause``, if given: the caller's network
    lost the call, as :func:`render_caller`'s).

    It is the operator phone's scenario (a UAS that answers what Asterisk sends) with its own
    ringing and steps.
    """
    if refuse is not None:
        if refuse not in REFUSALS:
            raise ValueError(f"refuse: one of {sorted(REFUSALS)}, got {refuse}")
        ringing = (
            "  <send>\n    <![CDATA[\n"
            f"      SIP/2.0 {refuse} {REFUSALS[refuse]}\n"
            "      [last_Via:]\n      [last_From:]\n"
            "      [last_To:];tag=[pid]SIPpTag01[call_number]\n"
            "      [last_Call-ID:]\n      [last_CSeq:]\n      Content-Length: 0\n\n"
            "    ]]>\n  </send>\n"
            '  <recv request="ACK" crlf="true" next="end"/>\n'
        )
    elif not answer:
        ringing = '  <recv request="CANCEL" next="cancelled"/>\n'
    elif ring_seconds > 0:
        ringing = (
            f'  <recv request="CANCEL" timeout="{int(ring_seconds * 1000)}" '
            'ontimeout="answer" next="cancelled"/>\n'
        )
    else:
        ringing = ""
    steps, files, step = _dtmf_steps(dtmf, dtmf_delay, DTMF_PCAP_MS / 1000)
    left = hold_seconds
    if audio:
        xml, talk, left = _talk_steps(hold_seconds, step + 100)
        steps.append(xml)
        files.update(talk)
    talk_wait = (
        f'  <recv request="BYE" timeout="{max(int(left * 1000), 1)}" '
        'ontimeout="hangup" next="bye_received"/>\n'
    )
    xml = ConfTemplate((SCENARIO_DIR / "operator.xml").read_text(encoding="utf-8")).substitute(
        ringing=ringing, steps="".join(steps), talk_wait=talk_wait,
        bye_headers="" if bye_cause is None else f"      Reason: Q.850;cause={int(bye_cause)}\n",
    )
    return Scenario(xml, files)


def render_register(user: str, *, registered: bool, expires: int = 120) -> Scenario:
    """A phone registering as ``user``: it must end registered (200), or refused (a new
    challenge or 403), as ``registered`` says."""
    _check_header_text("user", user)
    if registered:
        outcome = '  <recv response="200"/>\n'
    else:
        outcome = ('  <recv response="401" optional="true" next="refused"/>\n'
                   '  <recv response="403"/>\n  <label id="refused"/>\n')
    xml = ConfTemplate((SCENARIO_DIR / "register.xml").read_text(encoding="utf-8")).substitute(
        user=user, outcome=outcome, expires=expires)
    return Scenario(xml, {})


class Sipp:
    """One sipp process; use ``async with`` so that it is always killed and its files removed.

    ``argv`` are scenario-independent sipp arguments (target, rate, counts); the harness adds
    ``-sf``, the ports, ``-nostdin``, ``-timeout`` and the trace files.
    """

    def __init__(
        self,
        name: str,
        scenario: Scenario,
        argv: Sequence[str],
        *,
        timeout: float,
        sip_port: int | None = None,
        trace_messages: bool = False,
        host: str = "127.0.0.1",
    ) -> None:
        self.name = name
        self.host = host  # another loopback address tells a phone from the carrier
        self.scenario = scenario
        self.argv = list(argv)
        self.timeout = timeout
        self.sip_port = sip_port if sip_port is not None else free_udp_port(host)
        self.media_port = free_udp_port(host, span=4)
        self.trace_messages = trace_messages
        self.workdir = Path(tempfile.mkdtemp(prefix=f"sipp-{name}-"))
        self.process: asyncio.subprocess.Process | None = None
        self.result: SippResult | None = None

    @property
    def messages(self) -> str:
        """The SIP messages sipp sent and received (only with ``trace_messages``)."""
        path = self.workdir / "messages.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def start(self) -> Sipp:
        """Launch sipp; returns once it runs (it binds its ports at once)."""
        scenario_file = self.workdir / f"{self.name}.xml"
        scenario_file.write_text(self.scenario.xml, encoding="utf-8")
        for name, content in self.scenario.files.items():
            (self.workdir / name).write_bytes(content)
        argv = [
            "sipp",
            *self.argv,
            "-sf", str(scenario_file),
            "-i", self.host,
            "-p", str(self.sip_port),
            "-mi", self.host,
            "-mp", str(self.media_port),
            "-nostdin",
            "-timeout", f"{self.timeout:g}",
            "-trace_stat", "-stf", str(self.workdir / "stats.csv"), "-fd", "1",
            "-trace_err", "-error_file", str(self.workdir / "errors.log"),
        ]  # fmt: skip
        if self.trace_messages:
            argv += ["-trace_msg", "-message_file", str(self.workdir / "messages.log")]
        self.process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=self.workdir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        return self

    def _collect(self, returncode: int, stderr: str) -> SippResult:
        stats: dict[str, str] = {}
        stats_file = self.workdir / "stats.csv"
        if stats_file.exists():
            with stats_file.open(encoding="utf-8") as rows_file:
                rows = list(csv.DictReader(rows_file, delimiter=";"))
            if rows:
                stats = {k: v for k, v in rows[-1].items() if k}
        errors = self.workdir / "errors.log"
        error_text = errors.read_text(errors="replace") if errors.exists() else ""
        # Every wait in our scenarios is a receive timeout by design; sipp logs each one.
        error_text = "\n".join(
            line
            for line in error_text.splitlines()
            if "receive timeout on message" not in line and line != _SIPP_EVENTS_HEADER
        )
        self.result = SippResult(
            returncode=returncode,
            successful=int(stats.get("SuccessfulCall(C)", "0") or 0),
            failed=int(stats.get("FailedCall(C)", "0") or 0),
            errors=(stderr + error_text).strip(),
            stats=stats,
        )
        return self.result

    async def wait(self, within: float | None = None) -> SippResult:
        """Wait for sipp to finish by itself (bounded: ``within`` s, else its own limit + 10 s)."""
        assert self.process is not None, "start() first"
        try:
            async with asyncio.timeout(within if within is not None else self.timeout + 10):
                _, stderr = await self.process.communicate()
        except TimeoutError:
            await self.stop()
            raise
        assert self.process.returncode is not None
        return self._collect(self.process.returncode, stderr.decode(errors="replace"))

    async def stop(self) -> SippResult:
        """End sipp now: SIGUSR1 lets it finish its statistics, SIGKILL after 5 s."""
        assert self.process is not None, "start() first"
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGUSR1)
            try:
                async with asyncio.timeout(5):
                    _, stderr = await self.process.communicate()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                _, stderr = await self.process.communicate()
        else:
            stderr = b""
        assert self.process.returncode is not None
        if self.result is None:
            self._collect(self.process.returncode, stderr.decode(errors="replace"))
        assert self.result is not None
        return self.result

    async def __aenter__(self) -> Sipp:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.process is not None:
                await self.stop()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


def caller(
    sip_host: str,
    sip_port: int,
    number: str = "112",
    *,
    caller_id: str = "081234567890",
    caller_name: str = "",
    asserted_id: str | None = None,
    dtmf: str = "",
    dtmf_delay: float = 1.0,
    dtmf_gap: float = DTMF_PCAP_MS / 1000,
    audio: bool = False,
    talk_seconds: float = 5.0,
    continuous: bool = False,
    numbered: bool = False,
    calls: int = 1,
    rate: float = 1.0,
    concurrent: int | None = None,
    timeout: float | None = None,
    trace_messages: bool = False,
    host: str = "127.0.0.1",
    headers: Mapping[str, str] | None = None,
    info_dtmf: bool = False,
    inband_dtmf: bool = False,
    bye_cause: int | None = None,
) -> Sipp:
    """Callers dialling ``number`` at the lab: ``calls`` calls at ``rate`` per second, at most
    ``concurrent`` (default: all of them) at once, sent from ``host`` (the carrier's address:
    127.0.0.1 for a single lab node, the cluster lab's own carrier address at its front). See
    :func:`render_caller` for what each call does.
    """
    # Without -l, sipp caps concurrent calls at 3 * rate * (-d duration, unused here) and
    # quietly dials far slower than -r.
    limit = calls if concurrent is None else concurrent
    argv = [f"{sip_host}:{sip_port}", "-s", number, "-m", str(calls), "-r", f"{rate:g}"]
    argv += ["-l", str(limit)]
    scenario = render_caller(
        caller_id=caller_id,
        caller_name=caller_name,
        asserted_id=asserted_id,
        dtmf=dtmf,
        dtmf_delay=dtmf_delay,
        dtmf_gap=dtmf_gap,
        audio=audio,
        talk_seconds=talk_seconds,
        continuous=continuous,
        numbered=numbered,
        headers=headers,
        info_dtmf=info_dtmf,
        inband_dtmf=inband_dtmf,
        bye_cause=bye_cause,
    )
    if timeout is None:
        timeout = calls / rate + dtmf_delay + len(dtmf) * dtmf_gap + talk_seconds + 30
    return Sipp("caller", scenario, argv, timeout=timeout, trace_messages=trace_messages,
                host=host)


def operator(
    sip_port: int,
    *,
    host: str = "127.0.0.1",
    ring_seconds: float = 0.0,
    talk_seconds: float | None = None,
    audio: bool = False,
    audio_seconds: float = 60.0,
    held_seconds: float = 0.0,
    max_calls: int | None = None,
    timeout: float = 600.0,
    trace_messages: bool = False,
) -> Sipp:
    """The operator phones: one UAS on ``sip_port`` (``Settings.lab_operator_sip_port``) that
    answers any number of INVITEs at once (each as :func:`render_operator` says). It runs until
    stopped, ``max_calls`` calls ended, or ``timeout`` s passed.
    """
    argv = [] if max_calls is None else ["-m", str(max_calls)]
    scenario = render_operator(ring_seconds=ring_seconds, talk_seconds=talk_seconds, audio=audio,
                               audio_seconds=audio_seconds, held_seconds=held_seconds)
    return Sipp(
        "operator",
        scenario,
        argv,
        timeout=timeout,
        sip_port=sip_port,
        trace_messages=trace_messages,
        host=host,
    )


def phone(
    sip_host: str,
    sip_port: int,
    user: str,
    secret: str,
    *,
    registered: bool = True,
    host: str = "127.0.0.2",
    phone_port: int | None = None,
    expires: int = 120,
    timeout: float = 15.0,
    trace_messages: bool = False,
) -> Sipp:
    """A desk phone registering once at the lab as ``user`` with ``secret`` (sipp's own
    digest authentication, -au/-ap); it succeeds only if the outcome is as ``registered``
    says (see :func:`render_register`). It sends from ``host``: the lab's carrier is
    identified by 127.0.0.1, and Asterisk identifies by address before user name. A phone
    that must then take calls registers from the port its UAS will listen on (``phone_port``:
    Asterisk rewrites the contact to the REGISTER's source) for ``expires`` seconds."""
    argv = [f"{sip_host}:{sip_port}", "-m", "1", "-au", user, "-ap", secret]
    return Sipp("phone", render_register(user, registered=registered, expires=expires), argv,
                timeout=timeout, trace_messages=trace_messages, host=host, sip_port=phone_port)


def callee(
    sip_port: int,
    *,
    refuse: int | None = None,
    answer: bool = True,
    ring_seconds: float = 0.0,
    dtmf: str = "",
    dtmf_delay: float = 1.0,
    audio: bool = False,
    hold_seconds: float = 30.0,
    bye_cause: int | None = None,
    max_calls: int | None = None,
    timeout: float = 300.0,
    trace_messages: bool = False,
) -> Sipp:
    """The phones the line calls through the carrier trunk (callers it calls back, agencies it
    transfers to): one UAS on ``sip_port`` (``Settings.carrier_sip_port``) that treats every
    INVITE as :func:`render_callee` says.
    It runs until stopped, ``max_calls`` calls ended, or ``timeout`` s passed.
    """
    argv = [] if max_calls is None else ["-m", str(max_calls)]
    scenario = render_callee(refuse=refuse, answer=answer, ring_seconds=ring_seconds,
                             dtmf=dtmf, dtmf_delay=dtmf_delay, audio=audio,
                             hold_seconds=hold_seconds, bye_cause=bye_cause)
    return Sipp("callee", scenario, argv, timeout=timeout, sip_port=sip_port,
                trace_messages=trace_messages)
