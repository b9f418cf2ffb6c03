"""Account rules: names, roles, passwords, and the login throttle's arithmetic."""

from datetime import UTC, datetime, timedelta

import pytest

from telephony.accounts.model import (
    CALLER_DATA_ROLES,
    MASKED,
    Failures,
    InvalidAccountInput,
    LoginThrottled,
    Role,
    ThrottlePolicy,
    check_not_throttled,
    check_password,
    clean_display_name,
    clean_username,
    locked_until,
    login_password,
    masked_audit,
    masks_object,
    parse_role,
    sees_caller_data,
    throttle_key,
    token_digest,
)
from telephony.web.server import api_routes
from tests.support.web import BIDI_CONTROLS, spoofed

T0 = datetime(2025, 1, 31, 8, 0, tzinfo=UTC)
POLICY = ThrottlePolicy(max_failures=5, max_failures_per_address=20,
                        window=timedelta(hours=1), first_delay=timedelta(seconds=30))
NONE = Failures(0, None)


@pytest.mark.parametrize(("raw", "clean"), [("Sari", "sari"), (" op.1001 ", "op.1001"),
                                            ("admin_2", "admin_2"), ("a-b", "a-b")])
def test_usernames_are_normalised(raw: str, clean: str) -> None:
    assert clean_username(raw) == clean


@pytest.mark.parametrize("raw", ["", "a", "-sari", "sari budi", "sari/../x", "x" * 33, "śari",
                                 None, 5])
def test_bad_usernames_are_refused(raw: object) -> None:
    with pytest.raises(InvalidAccountInput) as refused:
        clean_username(raw)
    assert refused.value.field == "username"


def test_throttle_key_counts_any_typed_name() -> None:
    assert throttle_key(" Sari ") == "sari"
    assert throttle_key(None) == ""
    assert len(throttle_key("x" * 1000)) == 64


def test_roles() -> None:
    assert parse_role("Supervisor") is Role.SUPERVISOR
    with pytest.raises(InvalidAccountInput):
        parse_role("root")


@pytest.mark.parametrize("password", ["pendek", " " * 12, "x" * 257, "baris\nbaru12345", 12])
def test_weak_or_odd_passwords_are_refused(password: object) -> None:
    with pytest.raises(InvalidAccountInput):
        check_password(password)


def test_passwords_and_display_names() -> None:
    assert check_password("kuda-lumping-112") == "kuda-lumping-112"
    assert clean_display_name("  Sari Dewi ") == "Sari Dewi"
    with pytest.raises(InvalidAccountInput):
        clean_display_name("x\x00")
    assert login_password("") is None and login_password(None) is None
    assert login_password("x" * 257) is None and login_password("rahasia") == "rahasia"


@pytest.mark.parametrize("control", BIDI_CONTROLS)
def test_a_display_name_with_a_bidi_control_is_refused(control: str) -> None:
    with pytest.raises(InvalidAccountInput, match="pengatur arah teks") as refused:
        clean_display_name(spoofed("Sari Dewi", control))
    assert refused.value.field == "display_name"


@pytest.mark.parametrize("name", ["Sari\u2028Dewi", "Sari\x85", "Sari\nDewi"])
def test_a_display_name_on_two_lines_is_refused(name: str) -> None:
    with pytest.raises(InvalidAccountInput):
        clean_display_name(name)


def test_token_digest_is_sha256_hex() -> None:
    assert token_digest("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


def test_no_lock_below_the_limit() -> None:
    assert locked_until(POLICY, by_name_here=Failures(4, T0), by_address=NONE) is None


def test_the_delay_doubles_with_each_failure_past_the_limit_up_to_the_window() -> None:
    delays = [locked_until(POLICY, by_name_here=Failures(n, T0), by_address=NONE)
              for n in (5, 6, 7, 10, 40)]
    assert [d - T0 for d in delays if d is not None] == [
        timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120),
        timedelta(seconds=960), timedelta(hours=1)]


def test_the_later_of_the_username_and_address_locks_wins() -> None:
    until = locked_until(POLICY, by_name_here=Failures(5, T0),
                         by_address=Failures(21, T0 + timedelta(seconds=10)))
    assert until == T0 + timedelta(seconds=70)


def test_a_locked_attempt_is_refused_with_the_time_left() -> None:
    with pytest.raises(LoginThrottled) as refused:
        check_not_throttled(POLICY, by_name_here=Failures(5, T0), by_address=NONE,
                            now=T0 + timedelta(seconds=10))
    assert refused.value.retry_after_seconds == 20
    assert "20 detik" in refused.value.message
    check_not_throttled(POLICY, by_name_here=Failures(5, T0), by_address=NONE,
                        now=T0 + timedelta(seconds=30))


def test_callers_data_in_audit_entries_is_masked_where_it_is() -> None:
    detail = {"query": {"caller_number": "0811", "line": "112"}, "found": 2}
    assert masked_audit("call.search", "0811", detail) == (
        MASKED, {"query": {"caller_number": MASKED, "line": "112"}, "found": 2})
    assert detail["query"] == {"caller_number": "0811", "line": "112"}  # not changed in place
    assert masked_audit("call.search", "", {"query": {}}) == ("", {"query": {}})
    assert masked_audit("callback.call", "1700000000.1", {"number": "0811", "leg_id": 3}) == (
        "1700000000.1", {"number": MASKED, "leg_id": 3})
    assert masked_audit("recording.play", "7", {"call_id": "1.2"}) == ("7", {"call_id": "1.2"})
    assert masks_object("call.search") and not masks_object("callback.call")


def test_those_who_see_caller_data_are_those_the_call_routes_serve() -> None:
    assert not sees_caller_data(Role.ADMIN)
    assert sees_caller_data(Role.OPERATOR) and sees_caller_data(Role.SUPERVISOR)
    routes = [r for r in api_routes() if r.path.startswith(("/api/calls", "/api/recordings"))]
    assert routes and all(r.access.roles == CALLER_DATA_ROLES for r in routes)
