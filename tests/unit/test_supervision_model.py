"""Listening in, the pure part: the modes' ChanSpy options and labels, the strict checks of
everything spliced into the Originate, and which running listen-ins a lost right ends."""

from __future__ import annotations

import pytest

from telephony.accounts.model import Role
from telephony.supervision.model import (
    PhoneHolder,
    SpyLeg,
    SpyMode,
    SupervisionInputError,
    action_id,
    failure_reason,
    is_ours,
    operator_interface,
    originate_action,
    parse_mode,
    revoked_reason,
    spied_channel,
    spy_leg,
)

CHANNEL = "PJSIP/op2001-0000002a"
TOKEN = "0123456789abcdef0123456789abcdef"


def test_each_mode_has_its_label_and_chanspy_options() -> None:
    assert SpyMode.labels() == {"listen": "Dengarkan", "whisper": "Bisikkan", "barge": "Sela"}
    # Quiet, exit with the spied-on channel, that one channel only; then whisper or barge.
    assert {mode.value: mode.options for mode in SpyMode} == {
        "listen": "qEu", "whisper": "qEuw", "barge": "qEuB"}
    assert [mode.audit_action for mode in SpyMode] == [
        "supervision.listen", "supervision.whisper", "supervision.barge"]
    assert parse_mode("barge") is SpyMode.BARGE
    for text in ("Listen", "spy", "", "listen\n"):
        with pytest.raises(SupervisionInputError):
            parse_mode(text)


def test_the_originate_rings_the_supervisor_into_chanspy_on_that_one_channel() -> None:
    action = originate_action(phone="PJSIP/sup01", channel=CHANNEL, operator="PJSIP/op2001",
                              mode=SpyMode.WHISPER, ring_seconds=25, token=TOKEN)
    assert action == {
        "Action": "Originate", "ActionID": f"siaga112-spy-{TOKEN}", "Channel": "PJSIP/sup01",
        "Application": "ChanSpy", "Data": "PJSIP/op2001-0000002a,qEuw", "Timeout": "25000",
        "CallerID": '"Bisikkan op2001" <op2001>', "Async": "true"}


def test_its_outcome_is_told_by_its_action_id_and_reason() -> None:
    assert is_ours(action_id(TOKEN))
    for other in ("siaga112-callback-12", "siaga112-survey-3-1", f"siaga112-spy-{TOKEN}x",
                  "siaga112-spy-", "", TOKEN):
        assert not is_ours(other), other
    for token in ("", TOKEN.upper(), TOKEN + "\r\nAction: Command", TOKEN[:-1]):
        with pytest.raises(SupervisionInputError):
            action_id(token)
    assert [failure_reason(code) for code in (5, 3, 8, 0, 1, None, 77)] == [
        "Telepon supervisor sibuk (Reason 5)", "Telepon supervisor tidak diangkat (Reason 3)",
        "Telepon supervisor ditolak atau tidak terjangkau (Reason 8)",
        "Telepon supervisor gagal (Reason 0)",
        "Telepon supervisor ditutup sebelum diangkat (Reason 1)",
        "Telepon supervisor tanpa alasan", "Telepon supervisor alasan 77 (Reason 77)"]


@pytest.mark.parametrize("interface", [
    "PJSIP/op2001\r\nAction: Command", "PJSIP/op2001\n", "SIP/op2001", "PJSIP/", "op2001",
    "PJSIP/op2001,qBw", "PJSIP/op 2001", "PJSIP/op2001/extra", "Local/1@ctx", "PJSIP/" + "x" * 65,
])
def test_an_interface_is_a_phone_and_nothing_more(interface: str) -> None:
    with pytest.raises(SupervisionInputError):
        operator_interface(interface)


@pytest.mark.parametrize(("channel", "interface"), [
    ("PJSIP/op2001-0000002a", "PJSIP/op2002"),  # another phone's channel
    ("PJSIP/op20011-0000002a", "PJSIP/op2001"),  # a phone whose name starts the same
    ("PJSIP/op2001-", "PJSIP/op2001"),  # a prefix: ChanSpy would take any of its channels
    ("PJSIP/op2001", "PJSIP/op2001"),
    ("PJSIP/op2001-0000002A", "PJSIP/op2001"),
    ("PJSIP/op2001-0000002a,qB", "PJSIP/op2001"),  # options smuggled in
    ("PJSIP/op2001-0000002a\r\nAction: Command", "PJSIP/op2001"),
    ("PJSIP/op2001-0000002a\n", "PJSIP/op2001"),
    ("Local/op2001-0000002a;1", "PJSIP/op2001"),
    ("PJSIP/op2001-0000002a", "PJSIP/op2001\n"),
])
def test_only_a_channel_of_the_operators_phone_reaches_chanspy(channel: str,
                                                                interface: str) -> None:
    with pytest.raises(SupervisionInputError):
        spied_channel(channel, interface)
    with pytest.raises(SupervisionInputError):
        originate_action(phone="PJSIP/sup01", channel=channel, operator=interface,
                         mode=SpyMode.LISTEN, ring_seconds=30, token=TOKEN)


def test_a_channel_of_the_operators_phone_is_taken_as_it_is() -> None:
    assert spied_channel(CHANNEL, "PJSIP/op2001") == CHANNEL
    assert spied_channel("PJSIP/op-desk.2_b-ffffffff", "PJSIP/op-desk.2_b") == (
        "PJSIP/op-desk.2_b-ffffffff")
    with pytest.raises(SupervisionInputError):
        originate_action(phone="PJSIP/sup01\r\nAction: Command", channel=CHANNEL,
                         operator="PJSIP/op2001", mode=SpyMode.LISTEN, ring_seconds=30,
                         token=TOKEN)


def test_a_chanspy_leg_is_read_from_its_channel_whoever_started_it() -> None:
    assert spy_leg("PJSIP/sup01-0000002c", "ChanSpy", f"{CHANNEL},qEuw") == SpyLeg(
        "PJSIP/sup01-0000002c", CHANNEL, "whisper")
    leg = spy_leg("PJSIP/sup01-0000002c", "ChanSpy", "PJSIP/op2001,q")  # not the line's
    assert leg is not None and (leg.phone, leg.mode) == ("PJSIP/sup01", "")
    # The audit entry is about the operator's desk when the spied channel is one, else
    # about the supervisor's phone.
    ours = spy_leg("PJSIP/sup01-0000002c", "ChanSpy", f"{CHANNEL},qEu")
    assert ours is not None and ours.operator == "PJSIP/op2001"
    assert leg.operator == "PJSIP/sup01"
    assert spy_leg("PJSIP/op2001-0000002a", "AppQueue", "") is None
    assert spy_leg("nodash", "ChanSpy", f"{CHANNEL},qEu") is None


def test_only_an_active_supervisor_at_the_phone_keeps_listening() -> None:
    assert revoked_reason(PhoneHolder("kepala", Role.SUPERVISOR, True)) is None
    assert revoked_reason(PhoneHolder("kepala", Role.SUPERVISOR, False)) == (
        "Akun kepala dinonaktifkan")
    assert revoked_reason(PhoneHolder("kepala", Role.OPERATOR, True)) == (
        "Peran akun kepala kini Operator, bukan Supervisor")
    assert revoked_reason(PhoneHolder("kepala", Role.ADMIN, True)) == (
        "Peran akun kepala kini Administrator, bukan Supervisor")
    assert revoked_reason(None) == "Telepon ini tidak lagi dipegang akun supervisor"
