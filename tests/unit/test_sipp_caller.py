"""The sipp caller scenario renders key presses and pauses in order."""

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
