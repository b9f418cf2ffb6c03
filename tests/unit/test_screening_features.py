"""Screening features: caller id, local hour, IVR behaviour, call shape, history aggregates."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from telephony.ami.tracker import caller_id_text
from telephony.calls.ids import CallerIdKind, luhn_valid, parse_caller_id
from telephony.screening.features import (
    FIRST_TIME,
    CallerHistory,
    CallFeatures,
    CallShape,
    IvrBehaviour,
    Label,
    LabelEvent,
    PastCall,
    PreQueueFeatures,
    local_hour,
    resolve_labels,
    summarise_history,
)

JKT = ZoneInfo("Asia/Jakarta")
NOW = datetime(2025, 3, 10, 15, 0, tzinfo=JKT)


def ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


# -- caller id ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("081234567890", "6281234567890"),
        ("+6281234567890", "6281234567890"),
        ("6281234567890", "6281234567890"),
        ("0062 812-3456-7890", "6281234567890"),
        ("(024) 7654321", "62247654321"),  # a Semarang landline
        ("+6591234567", "6591234567"),  # a roaming Singapore number
        # The trunk 0 kept after the country code, as some trunks present it and people
        # write it: the national number, not another caller.
        ("+62 (0) 812-3456-7890", "6281234567890"),
        ("6208123456 7890", "6281234567890"),
        ("0062 0812 3456 7890", "6281234567890"),
        ("+62 (0)24 7654321", "62247654321"),
        # Mobile numbers some carriers present without the trunk 0 (the national significant
        # number): 9 to 12 digits starting 8 and a non-zero digit.
        ("81234567890", "6281234567890"),
        ("812-3456-7890", "6281234567890"),
        (" 812 3456 7890 ", "6281234567890"),
        ("812345678", "62812345678"),  # 9 digits, the shortest (0812-345-678)
        ("812345678901", "62812345678901"),  # 12 digits, the longest
        ("895123456789", "62895123456789"),  # Tri
        ("8812345678", "628812345678"),  # Smartfren
        # With + it is international: Japan's 81 + 10 digits, not Indonesia's 0812.
        ("+812345678901", "812345678901"),
    ],
)
def test_numbers_are_normalised_to_one_history_key(raw: str, key: str) -> None:
    caller = parse_caller_id(raw)
    assert caller.kind is CallerIdKind.NUMBER
    assert caller.key == key
    assert caller.raw == raw


@pytest.mark.parametrize(("raw", "key"), [
    ("0812\u200b3456\u200b7890", "6281234567890"),  # zero-width spaces
    ("\u2066+62 812 3456 7890\u2069", "6281234567890"),  # a direction isolate around it
    ("\ufeff0812\u00ad34567890", "6281234567890"),  # a byte-order mark, a soft hyphen
    ("IMEI\u200e352099001761481", "imei:35209900176148"),
    ("anonymous\u200b", None),
    ("0812\u200b34", None),
])
def test_the_ivr_keys_a_caller_id_as_the_call_store_does(raw: str, key: str | None) -> None:
    """The IVR parses the caller id from the AGI environment as it came; the call store keeps
    it without control and format characters (``caller_id_text``), and its calls and labels
    are the history under that key: both must find the same one."""
    assert parse_caller_id(raw).key == parse_caller_id(caller_id_text(raw)).key == key


@pytest.mark.parametrize("raw", ["", "  ", "anonymous", "Anonymous", "<unknown>", "Restricted",
                                 "private", "unavailable", "withheld", "unknown"])
def test_withheld_numbers_have_no_history_key(raw: str) -> None:
    caller = parse_caller_id(raw)
    assert (caller.kind, caller.key) == (CallerIdKind.WITHHELD, None)


@pytest.mark.parametrize(
    "raw",
    [
        "0",
        "12345",
        "08123",  # too short for a number
        "62abc",
        "+",
        "9999999999999999999",  # too long for anything
        "0812345678901234",  # 16 digits: neither a number nor an IMEI
        "352099001761482",  # 15 digits failing the Luhn check
        "+0812345678",  # international form cannot start with 0
        "urn:gsma:imei:12-34",
        "urn:gsma:imei:35209900-176148-1;svn=2",  # RFC 7254: the svn is two digits
        "urn:gsma:imei:35209900-176148-1;foo=23",
        "urn:gsma:imei:35209900-176148-1;svn=23;svn=24",
        "IMEI12345",  # too short for an IMEI
        "IMEI35209900176148x",
        "IMEI\u0663\u0665\u0662\u0660\u0669\u0669\u0660\u0660\u0661\u0667\u0666\u0661\u0664\u0668",
        "0\uff18\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19",  # full-width digits
        "0012",
        "+6200812345678",  # 0 twice after the country code
        "6200812345678",
        "+620812345",  # the trunk 0 and too few digits for a national number
        # Not mobile numbers without their trunk 0: too short or long, toll-free/premium 80x,
        # landlines without the 0 (cannot be told from local numbers), short codes.
        "81234567",  # 8 digits
        "8123456789012",  # 13 digits
        "8001234567",  # 0800 toll-free
        "8091234567",  # 0809 premium
        "247654321",  # a Semarang landline without its 0
        "217654321",
        "112",
        "119",
        "14045",
        "8",
        "81",
        "8123",
    ],
)
def test_malformed_numbers_have_no_history_key(raw: str) -> None:
    caller = parse_caller_id(raw)
    assert (caller.kind, caller.key) == (CallerIdKind.MALFORMED, None)


def test_luhn() -> None:
    assert luhn_valid("352099001761481")
    assert not luhn_valid("352099001761482")
    assert luhn_valid("79927398713")


@pytest.mark.parametrize(
    "raw",
    [
        "352099001761481",
        "urn:gsma:imei:35209900-176148-1",
        "URN:GSMA:IMEI:35209900-176148-1",
        "urn:gsma:imei:3520990017614823",  # IMEISV of the same handset
        "IMEI352099001761481",  # what some networks deliver for a call without SIM
        "imei:352099001761481",
        "IMEI 35209900-176148-1",
        "IMEI3520990017614823",
        "IMEI35209900176148",  # 14 identity digits, no check digit: keyed as delivered
        "urn:gsma:imei:35209900-176148-1;svn=23",  # RFC 7254's IMEISV: the URN + its svn
        "URN:GSMA:IMEI:35209900-176148-1;SVN=23",
    ],
)
def test_simless_phones_are_keyed_by_their_imei(raw: str) -> None:
    caller = parse_caller_id(raw)
    assert caller.kind is CallerIdKind.SIMLESS
    assert caller.key == "imei:35209900176148"


@pytest.mark.parametrize("raw", [
    "IMEI000000000000000",
    "urn:gsma:imei:00000000-000000-0",
    "IMEI00000000123456",  # a type allocation code of zeros
    "IMEI11111111111111",
    "999999999999994",  # one digit repeated, Luhn-valid
])
def test_a_placeholder_imei_is_simless_but_identifies_nobody(raw: str) -> None:
    """What phones without a real IMEI report: many unrelated handsets share it, so it keys
    no history (one child's silent calls would lower every other such caller)."""
    caller = parse_caller_id(raw)
    assert (caller.kind, caller.key) == (CallerIdKind.SIMLESS, None)
    assert PreQueueFeatures("112", caller, 14).history.first_time


# -- hour ----------------------------------------------------------------------------------------


def test_local_hour_is_jakarta_time() -> None:
    # 16:30 UTC is 23:30 WIB.
    assert local_hour(datetime(2025, 3, 10, 16, 30, tzinfo=UTC)) == 23
    assert local_hour(datetime(2025, 3, 10, 17, 30, tzinfo=UTC)) == 0
    assert local_hour(datetime(2025, 3, 10, 1, 0, tzinfo=UTC), "Asia/Jayapura") == 10


def test_local_hour_refuses_naive_instants() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        local_hour(datetime(2025, 3, 10, 12, 0))


# -- IVR behaviour and call shape ---------------------------------------------------------------


def test_ivr_behaviour_records_keys() -> None:
    pressed = IvrBehaviour(menu_offered=True, invalid_keys=2, first_key_seconds=1.5)
    assert pressed.pressed_a_key
    assert not IvrBehaviour(menu_offered=True, no_input=True).pressed_a_key
    assert not IvrBehaviour(menu_offered=False).pressed_a_key


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"menu_offered": True, "invalid_keys": -1, "first_key_seconds": 1.0}, "negative"),
        ({"menu_offered": True, "first_key_seconds": -1.0}, "negative"),
        ({"menu_offered": False, "no_input": True}, "no menu"),
        ({"menu_offered": False, "first_key_seconds": 1.0}, "no menu"),
        ({"menu_offered": True, "no_input": True, "first_key_seconds": 2.0}, "no key at all"),
        ({"menu_offered": True, "no_input": True, "hung_up_in_ivr": True}, "no key at all"),
        ({"menu_offered": True, "invalid_keys": 1}, "invalid key is a key"),
    ],
)
def test_ivr_behaviour_refuses_contradictions(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IvrBehaviour(**kwargs)  # type: ignore[arg-type]


def test_call_shape_answered_and_quick_hangup() -> None:
    unanswered = CallShape(duration_seconds=30.0)
    assert not unanswered.answered
    assert not unanswered.hung_up_on_answer
    quick = CallShape(duration_seconds=20.0, talk_seconds=3.0, caller_ended=True)
    assert quick.answered
    assert quick.hung_up_on_answer
    # The operator ending a short call is not the caller fleeing.
    assert not CallShape(20.0, talk_seconds=3.0, caller_ended=False).hung_up_on_answer
    assert not CallShape(90.0, talk_seconds=60.0, caller_ended=True).hung_up_on_answer


@pytest.mark.parametrize(
    "kwargs",
    [
        {"duration_seconds": -1.0},
        {"duration_seconds": 10.0, "talk_seconds": 11.0},
        {"duration_seconds": 10.0, "talk_seconds": -1.0},
        {"duration_seconds": 10.0, "silence_share": 1.5},
    ],
)
def test_call_shape_refuses_impossible_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"duration|share"):
        CallShape(**kwargs)  # type: ignore[arg-type]


KEY = IvrBehaviour(menu_offered=True, first_key_seconds=2.0)
NO_KEY = IvrBehaviour(menu_offered=True, no_input=True)


@pytest.mark.parametrize(
    ("ivr", "shape", "silent"),
    [
        (NO_KEY, CallShape(20.0), True),  # pressed nothing, never reached anyone
        (IvrBehaviour(menu_offered=True, hung_up_in_ivr=True), CallShape(3.0), True),
        (NO_KEY, CallShape(30.0, talk_seconds=2.0, caller_ended=True), True),
        (NO_KEY, CallShape(60.0, talk_seconds=40.0, caller_ended=False, silence_share=0.97),
         True),
        # The elderly caller: no key, but a conversation.
        (NO_KEY, CallShape(300.0, talk_seconds=280.0, caller_ended=False, silence_share=0.6),
         False),
        (NO_KEY, CallShape(60.0, talk_seconds=40.0, caller_ended=False), False),
        (KEY, CallShape(20.0), False),  # pressed a key: somebody was there
        # Waited in a queue nobody answered: nobody was there to hear them (112 or 119).
        (NO_KEY, CallShape(40.0, queued=True), False),
        (IvrBehaviour(menu_offered=False), CallShape(40.0, queued=True), False),
        (IvrBehaviour(menu_offered=False), CallShape(5.0), True),  # 119, left in the greeting
        (IvrBehaviour(menu_offered=False), CallShape(90.0, talk_seconds=80.0,
                                                     silence_share=0.3), False),
    ],
)
def test_looks_silent(ivr: IvrBehaviour, shape: CallShape, silent: bool) -> None:
    assert CallFeatures(ivr, shape).looks_silent is silent


# -- labels and history ----------------------------------------------------------------------------


def test_latest_label_wins_and_future_labels_are_not_known_yet() -> None:
    events = [
        LabelEvent("a", Label.PRANK, ago(hours=5)),
        LabelEvent("a", Label.GENUINE, ago(hours=1)),  # the correction
        LabelEvent("b", Label.SILENT, ago(hours=2)),
        LabelEvent("b", Label.PRANK, NOW + timedelta(minutes=1)),  # entered after now
    ]
    current = resolve_labels(events, NOW)
    assert current["a"].label is Label.GENUINE
    assert current["b"].label is Label.SILENT
    # Given out of order, the later event still wins.
    assert resolve_labels(reversed(events), NOW)["a"].label is Label.GENUINE


def test_same_instant_correction_wins_by_order() -> None:
    at = ago(hours=1)
    events = [LabelEvent("a", Label.PRANK, at), LabelEvent("a", Label.TEST, at)]
    assert resolve_labels(events, NOW)["a"].label is Label.TEST


def test_first_time_caller_has_an_empty_history() -> None:
    history = summarise_history([], [], NOW)
    assert history == FIRST_TIME
    assert history.first_time
    assert history.nuisance_share == 0.0
    assert history.seconds_since_last_genuine is None


def test_history_windows() -> None:
    calls = [
        PastCall("h1", ago(minutes=5), looks_silent=True),
        PastCall("h2", ago(minutes=30), looks_silent=True),
        PastCall("h3", ago(minutes=59), looks_silent=False),
        PastCall("d1", ago(hours=5), looks_silent=True),
        PastCall("w1", ago(days=3), looks_silent=False),
        PastCall("l1", ago(days=30), looks_silent=True),
        PastCall("old", ago(days=120), looks_silent=True),  # beyond the lookback
        PastCall("later", NOW + timedelta(minutes=1), looks_silent=True),  # not yet
        PastCall("now", NOW, looks_silent=True),  # the call being scored
    ]
    labels = [
        LabelEvent("h3", Label.PRANK, ago(minutes=55)),
        LabelEvent("w1", Label.GENUINE, ago(days=3)),
        LabelEvent("d1", Label.ACCIDENTAL, ago(hours=4)),  # labelled: no longer "silent"
    ]
    history = summarise_history(calls, labels, NOW)
    assert (history.calls_last_hour, history.silent_last_hour, history.prank_last_hour) == (
        3, 2, 1)
    assert (history.calls_last_day, history.silent_last_day, history.prank_last_day) == (4, 2, 1)
    assert (history.calls_last_week, history.silent_last_week, history.prank_last_week) == (
        5, 2, 1)
    assert (history.calls, history.silent_calls, history.prank_calls) == (6, 3, 1)
    assert history.genuine_calls == 1
    assert history.seconds_since_last_genuine == pytest.approx(3 * 86400)
    # A pocket dial is a nuisance class of its own: counted apart, and among the nuisance calls.
    assert (history.accidental_last_hour, history.accidental_last_day,
            history.accidental_last_week, history.accidental_calls) == (0, 1, 1, 1)
    assert history.nuisance_calls == 5
    assert history.nuisance_share == pytest.approx(5 / 6)
    assert (history.nuisance_last_hour, history.nuisance_last_day) == (3, 4)
    assert history.seconds_since_last_nuisance == pytest.approx(300)
    shorter = summarise_history(calls, labels, NOW, lookback=timedelta(days=7))
    assert shorter.calls == 5


def test_a_prank_label_corrected_to_genuine_counts_as_genuine() -> None:
    calls = [PastCall("a", ago(days=2), looks_silent=False)]
    before = summarise_history(calls, [LabelEvent("a", Label.PRANK, ago(days=2))], NOW)
    assert (before.prank_calls, before.genuine_calls) == (1, 0)
    corrected = [LabelEvent("a", Label.PRANK, ago(days=2)),
                 LabelEvent("a", Label.GENUINE, ago(days=1))]
    after = summarise_history(calls, corrected, NOW)
    assert (after.prank_calls, after.genuine_calls) == (0, 1)
    assert after.seconds_since_last_genuine == pytest.approx(2 * 86400)


def test_a_silent_looking_call_labelled_genuine_is_genuine() -> None:
    calls = [PastCall("a", ago(minutes=10), looks_silent=True)]
    history = summarise_history(calls, [LabelEvent("a", Label.GENUINE, ago(minutes=8))], NOW)
    assert (history.silent_last_hour, history.genuine_calls) == (0, 1)


def test_the_most_recent_genuine_call_sets_the_recency() -> None:
    calls = [PastCall("a", ago(days=6), False), PastCall("b", ago(hours=2), False)]
    labels = [LabelEvent("a", Label.GENUINE, ago(days=6)),
              LabelEvent("b", Label.GENUINE, ago(hours=1))]
    history = summarise_history(calls, labels, NOW)
    assert history.seconds_since_last_genuine == pytest.approx(2 * 3600)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"calls_last_hour": 2, "calls_last_day": 1, "calls_last_week": 2, "calls": 2},
        {"calls_last_hour": 1, "silent_last_hour": 2, "calls_last_day": 2,
         "silent_last_day": 2, "calls_last_week": 2, "silent_last_week": 2, "calls": 2,
         "silent_calls": 2},
        {"calls": 1, "genuine_calls": 1},  # genuine without a recency
        {"calls": 1, "seconds_since_last_genuine": 5.0},  # a recency without a genuine call
        {"calls": 1, "prank_calls": 1, "genuine_calls": 1, "seconds_since_last_genuine": 1.0},
        {"calls": -1},
    ],
)
def test_history_refuses_inconsistent_counts(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"window|counted|genuine"):
        CallerHistory(**kwargs)  # type: ignore[arg-type]


def test_pre_queue_features_validation() -> None:
    number = parse_caller_id("081234567890")
    PreQueueFeatures("112", number, 23, CallerHistory(calls=1))
    with pytest.raises(ValueError, match="hour"):
        PreQueueFeatures("112", number, 24)
    with pytest.raises(ValueError, match="without an identity"):
        PreQueueFeatures("112", parse_caller_id("anonymous"), 12, CallerHistory(calls=1))


def test_an_unlabelled_call_the_line_suspected_counts_as_a_nuisance_call() -> None:
    calls = [
        PastCall("talked", NOW - timedelta(minutes=20), looks_silent=False, suspected=True),
        PastCall("silent", NOW - timedelta(minutes=30), looks_silent=True, suspected=True),
        PastCall("labelled", NOW - timedelta(hours=3), looks_silent=False, suspected=True),
        PastCall("fine", NOW - timedelta(hours=4), looks_silent=False),
    ]
    labels = [LabelEvent("labelled", Label.GENUINE, NOW - timedelta(hours=2))]
    history = summarise_history(calls, labels, NOW)
    # Silent counts as silent, a label wins over the line's suspicion.
    assert (history.suspected_last_hour, history.silent_last_hour) == (1, 1)
    assert (history.suspected_calls, history.nuisance_calls, history.genuine_calls) == (1, 2, 1)
    assert history.seconds_since_last_nuisance == pytest.approx(20 * 60)
