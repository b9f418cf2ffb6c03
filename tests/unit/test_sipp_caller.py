"""The sipp caller scenario renders key presses and pauses in order."""

import struct

import pytest

from telephony.lab import sipp


def test_commas_pause_without_pressing() -> None:
    scenario = sipp.render_caller(caller_id="081234567890", dtmf="2,,55", dtmf_gap=0.5)
    assert sorted(scenario.files) == ["dtmf-0.pcap", "dtmf-1.pcap", "dtmf-2.pcap"]
    plays = scenario.xml.count("play_pcap_audio")
    waits = scenario.xml.count('ontimeout="step')
    assert (plays, waits) == (3, 1 + 5)  # the first delay, then one gap per character
    # Each press replays its own renumbered copy, in order.
    assert scenario.xml.index("dtmf-0.pcap") < scenario.xml.index("dtmf-1.pcap") < (
        scenario.xml.index("dtmf-2.pcap"))


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot send DTMF"):
        sipp.render_caller(caller_id="081234567890", dtmf="2;5")


def _packets(pcap: bytes) -> list[tuple[float, int, int, int]]:
    """(capture time, RTP sequence, RFC 4733 event, end flag) of each packet."""
    out = []
    offset = 24
    while offset < len(pcap):
        seconds, micros, captured = struct.unpack_from("<III", pcap, offset)
        udp = offset + 16 + 14 + (pcap[offset + 16 + 14] & 0x0F) * 4
        (sequence,) = struct.unpack_from(">H", pcap, udp + 8 + 2)
        event, flags = pcap[udp + 8 + 12], pcap[udp + 8 + 13]
        out.append((seconds + micros / 1e6, sequence, event, flags >> 7))
        offset += 16 + captured
    return out


def test_a_plus_presses_the_next_digit_right_after_in_one_pcap() -> None:
    scenario = sipp.render_caller(caller_id="081234567890", dtmf="1+2,3")
    # sipp cancels a pcap still playing when the next starts: the burst is one file.
    assert sorted(scenario.files) == ["dtmf-0.pcap", "dtmf-2.pcap"]
    packets = _packets(scenario.files["dtmf-0.pcap"])
    ones = [p for p in packets if p[2] == 1]
    twos = [p for p in packets if p[2] == 2]
    assert ones and twos and packets == ones + twos
    # The 2 begins 50 ms after the 1's last (end) packet, on one rising RTP scale.
    assert twos[0][0] - ones[-1][0] == pytest.approx(sipp.DTMF_BURST_GAP_MS / 1000, abs=1e-4)
    assert ones[-1][3] == 1 and twos[-1][3] == 1
    assert twos[0][1] > ones[-1][1]


@pytest.mark.parametrize("dtmf", ["+1", "1+", "1++2", "1+,2"])
def test_a_plus_joins_two_digits_only(dtmf: str) -> None:
    with pytest.raises(ValueError, match="cannot send DTMF"):
        sipp.render_caller(caller_id="081234567890", dtmf=dtmf)


def test_numbered_callers_each_get_a_caller_id_of_their_own() -> None:
    # A surge from one number is a prank flood to the screening; numbered calls are many callers.
    plain = sipp.render_caller(caller_id="08991")
    numbered = sipp.render_caller(caller_id="08991", numbered=True)
    assert "sip:08991@" in plain.xml and "sip:08991[call_number]@" not in plain.xml
    assert "sip:08991[call_number]@" in numbered.xml


def test_extra_headers_go_into_the_invite_and_nothing_spliced() -> None:
    # The cluster lab's calls straight at a node carry the front's carrier mark.
    scenario = sipp.render_caller(caller_id="08991", headers={"X-Siaga112-Carrier": "trunk"})
    invite = scenario.xml[:scenario.xml.index("]]>")]
    assert "\n      X-Siaga112-Carrier: trunk\n" in invite
    for name, value in (("X-A\nVia", "x"), ("X-A:", "x"), ("X-A", "x\r\nVia: y"), ("X-A", "<x>")):
        with pytest.raises(ValueError):
            sipp.render_caller(caller_id="08991", headers={name: value})


def test_keys_as_sip_info_are_requests_numbered_below_the_bye() -> None:
    scenario = sipp.render_caller(caller_id="08991", dtmf="1,2", info_dtmf=True)
    assert scenario.files == {}  # no RFC 4733 events
    assert "Signal=1" in scenario.xml and "CSeq: 2 INFO" in scenario.xml
    assert "Signal=2" in scenario.xml and "CSeq: 3 INFO" in scenario.xml
    assert "CSeq: 1000 BYE" in scenario.xml


def test_keys_in_band_are_tones_and_the_call_offers_no_events() -> None:
    scenario = sipp.render_caller(caller_id="08991", dtmf="1,2", inband_dtmf=True)
    assert "rtpmap:101" not in scenario.xml and "RTP/AVP 8 0\n" in scenario.xml
    assert sorted(scenario.files) == ["dtmf-0.pcap", "dtmf-1.pcap"]
    with pytest.raises(ValueError, match="one at a time"):
        sipp.render_caller(caller_id="08991", dtmf="1+2", inband_dtmf=True)


def test_alaw_encodes_as_g711_says() -> None:
    assert [sipp._alaw(v) for v in (0, 1000, 32767, -32768)] == [0xD5, 0xFA, 0xAA, 0x2A]
