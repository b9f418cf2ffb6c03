"""The incident rules: every transition allowed and refused, SLA clocks, validation."""

import itertools
import math
from datetime import UTC, datetime, timedelta

import pytest

from telephony.calls.legs import LegOutcome
from telephony.incidents.attachment_meta import parse_attachment
from telephony.incidents.directory import Agency, Recipient, clean_agency_code, parse_recipient
from telephony.incidents.dispatches import (
    Dispatch,
    DispatchState,
    PhoneContact,
    UnansweredPhone,
    check_dispatch_step,
    dispatch_clock,
    next_dispatch_steps,
    settle_unanswered_phone,
    status_after_dispatch_step,
    status_for_dispatch,
)
from telephony.incidents.edits import (
    UNSET,
    IncidentPatch,
    apply_patch,
    changed_fields,
    parse_coordinates,
    parse_patch,
    settle_place,
)
from telephony.incidents.errors import InvalidTransition, ValidationError
from telephony.incidents.model import (
    LABEL_DISMISSED,
    LABEL_WITHDRAWN,
    OPEN_STATUSES,
    SYSTEM_ACTOR,
    CallSnapshot,
    Coordinates,
    EscalationLevel,
    Incident,
    IncidentDetails,
    IncidentEvent,
    Priority,
    ReportType,
    Status,
    check_escalation,
    check_id,
    check_transition,
    clean_actor,
    is_information_only,
    parse_priority,
    parse_rating,
    parse_report_type,
    parse_status,
    prefill_from_call,
    rating_is_new,
    require_editable,
    require_open,
    status_for_label,
)
from telephony.incidents.outbox import (
    notices_text,
    notification_message,
    notification_payload,
    retry_delay,
    stand_down_payload,
    stand_down_text,
)

S = Status
# The timeline as the issue states it, written out independently of the module's table.
ALLOWED = {
    (S.NEW, S.VERIFIED), (S.VERIFIED, S.DISPATCHED), (S.DISPATCHED, S.ON_SCENE),
    (S.ON_SCENE, S.RESOLVED), (S.RESOLVED, S.CLOSED),
    *((state, end) for state in (S.NEW, S.VERIFIED, S.DISPATCHED, S.ON_SCENE)
      for end in (S.CANCELLED, S.PRANK)),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(Status, Status)))
def test_every_status_transition(current: Status, target: Status) -> None:
    if (current, target) in ALLOWED:
        check_transition(current, target)
    else:
        with pytest.raises(InvalidTransition, match="tidak dapat diubah dari"):
            check_transition(current, target)


def test_open_and_editable_states() -> None:
    assert {S.NEW, S.VERIFIED, S.DISPATCHED, S.ON_SCENE} == OPEN_STATUSES
    for status in Status:
        if status in OPEN_STATUSES:
            require_open(status)
        else:
            with pytest.raises(InvalidTransition):
                require_open(status)
        if status in (S.CLOSED, S.CANCELLED, S.PRANK):
            with pytest.raises(InvalidTransition):
                require_editable(status)
        else:
            require_editable(status)


@pytest.mark.parametrize("status", list(Status))
def test_dispatch_needs_a_verified_open_incident(status: Status) -> None:
    expected = {S.VERIFIED: S.DISPATCHED, S.DISPATCHED: None, S.ON_SCENE: None}
    if status in expected:
        assert status_for_dispatch(status) == expected[status]
    else:
        with pytest.raises(InvalidTransition):
            status_for_dispatch(status)


def test_dispatch_from_new_says_verify_first() -> None:
    with pytest.raises(InvalidTransition, match="diverifikasi"):
        status_for_dispatch(S.NEW)


D = DispatchState
ORDER = [D.NOTIFIED, D.ACKNOWLEDGED, D.ON_SCENE, D.DONE]


@pytest.mark.parametrize(("current", "target"),
                         list(itertools.product(DispatchState, DispatchState)))
def test_every_dispatch_step(current: DispatchState, target: DispatchState) -> None:
    forward = current in ORDER and target in ORDER and ORDER.index(target) > ORDER.index(
        current)
    cancel = target is D.CANCELLED and current in (D.NOTIFIED, D.ACKNOWLEDGED)
    if forward or cancel:
        assert check_dispatch_step(current, target, " Tidak menjawab \r\n ") == (
            "Tidak menjawab")
    else:
        with pytest.raises(InvalidTransition):
            check_dispatch_step(current, target, "Tidak menjawab")


@pytest.mark.parametrize("reason", ["", "   ", "\n"])
def test_a_dispatch_is_cancelled_only_with_a_reason(reason: str) -> None:
    # The agency declined or did not answer: the timeline says which, for the review.
    with pytest.raises(ValidationError, match="Alasan pembatalan pengiriman wajib diisi"):
        check_dispatch_step(D.NOTIFIED, D.CANCELLED, reason)
    assert check_dispatch_step(D.NOTIFIED, D.ACKNOWLEDGED, reason) == ""


@pytest.mark.parametrize("outcome", [LegOutcome.NO_ANSWER, LegOutcome.BUSY, LegOutcome.FAILED,
                                     LegOutcome.CANCELLED])
def test_a_dispatch_only_the_unanswered_phone_made_is_called_off(outcome: LegOutcome) -> None:
    # The operator's call was the agency's only word of the dispatch, and nobody answered:
    # the agency knows nothing, the dispatch is called off, saying so and how the call ended.
    target, why = settle_unanswered_phone(D.NOTIFIED, UnansweredPhone(True, False, outcome))
    assert target is D.CANCELLED
    assert why.startswith(f"Instansi tidak dapat dihubungi lewat telepon ({outcome.label.lower()})")
    assert check_dispatch_step(D.NOTIFIED, D.CANCELLED, why) == why


@pytest.mark.parametrize(("state", "made", "messaged"), [
    (D.NOTIFIED, True, True),  # its recipients were messaged: a crew may have set out
    (D.NOTIFIED, False, False),  # recorded before the call: the operator's own dispatch
    (D.ACKNOWLEDGED, True, False),  # someone recorded the agency accepting
])
def test_a_dispatch_the_agency_may_know_of_stays(state: D, made: bool, messaged: bool) -> None:
    target, why = settle_unanswered_phone(
        state, UnansweredPhone(made, messaged, LegOutcome.BUSY))
    assert (target, why) == (None, "Telepon ke instansi tidak tersambung (sibuk).")


@pytest.mark.parametrize(("state", "made", "messaged", "is_open", "cancelled"), [
    (D.NOTIFIED, True, False, True, True),  # the phone was its only word: unknown = unsent
    (D.NOTIFIED, True, True, True, False),  # a message went too
    (D.ACKNOWLEDGED, True, False, True, False),  # someone recorded the agency accepting
    (D.NOTIFIED, True, False, False, False),  # the incident is resolved or closed
])
def test_a_phone_whose_end_went_unrecorded_is_settled_as_not_answered(
        state: D, made: bool, messaged: bool, is_open: bool, cancelled: bool) -> None:
    # The line was down as the agency's phone rang out: no end, no answer recorded. The
    # dispatch read "by phone" for good, and the agency may never have heard of it.
    target, why = settle_unanswered_phone(state, UnansweredPhone(made, messaged, None),
                                          incident_open=is_open)
    if cancelled:
        assert target is D.CANCELLED
        assert why.startswith("Hasil telepon ke instansi tidak tercatat dan tidak ada jawaban")
    else:
        assert (target, why) == (None, "Hasil telepon ke instansi tidak tercatat: pastikan "
                                       "instansi sudah menerima.")


def test_a_dispatch_of_a_closed_incident_is_finished_not_cancelled() -> None:
    # Cancelling sent the agency a stand-down for an incident the centre had closed.
    for state in (D.NOTIFIED, D.ACKNOWLEDGED):
        assert D.CANCELLED not in next_dispatch_steps(state, incident_ended=True)
        assert D.DONE in next_dispatch_steps(state, incident_ended=True)
        with pytest.raises(InvalidTransition, match="Insiden sudah ditutup"):
            check_dispatch_step(state, D.CANCELLED, "rapikan", incident_ended=True)


def test_a_team_on_scene_is_finished_not_cancelled() -> None:
    with pytest.raises(InvalidTransition, match="tandai 'Selesai'"):
        check_dispatch_step(D.ON_SCENE, D.CANCELLED, "Salah kirim")
    assert next_dispatch_steps(D.ON_SCENE) == [D.DONE]
    assert next_dispatch_steps(D.NOTIFIED) == [D.ACKNOWLEDGED, D.ON_SCENE, D.DONE,
                                               D.CANCELLED]
    assert next_dispatch_steps(D.DONE) == next_dispatch_steps(D.CANCELLED) == []


@pytest.mark.parametrize(("status", "state"), list(itertools.product(Status, DispatchState)))
def test_first_team_on_scene_moves_the_incident(status: Status, state: DispatchState) -> None:
    moves = status is S.DISPATCHED and state in (DispatchState.ON_SCENE, DispatchState.DONE)
    assert status_after_dispatch_step(status, state, none_left=False) == (
        S.ON_SCENE if moves else None)


@pytest.mark.parametrize(("status", "state"), list(itertools.product(Status, DispatchState)))
def test_the_last_dispatch_called_off_puts_the_incident_back_to_verified(
        status: Status, state: DispatchState) -> None:
    # Every agency sent declined or was never reached: "Diteruskan ke instansi" with no
    # agency on its way was a lie on the list and the wallboard.
    expected = status_after_dispatch_step(status, state, none_left=False)
    if status is S.DISPATCHED and state is DispatchState.CANCELLED:
        expected = S.VERIFIED
    assert status_after_dispatch_step(status, state, none_left=True) == expected


LEVELS = list(EscalationLevel)


@pytest.mark.parametrize(("current", "target"),
                         list(itertools.product(EscalationLevel, EscalationLevel)))
def test_escalation_only_goes_up(current: EscalationLevel, target: EscalationLevel) -> None:
    if LEVELS.index(target) > LEVELS.index(current):
        assert check_escalation(current, target, "  butuh alat berat  ") == "butuh alat berat"
    else:
        with pytest.raises(InvalidTransition):
            check_escalation(current, target, "alasan")


@pytest.mark.parametrize("reason", ["", "   ", None, "x" * 1001])
def test_escalation_needs_a_reason(reason: object) -> None:
    with pytest.raises(ValidationError) as caught:
        check_escalation(EscalationLevel.VILLAGE, EscalationLevel.REGENCY, reason)
    assert caught.value.field == "reason"


def test_every_code_has_an_indonesian_label() -> None:
    assert {c for c, text in ReportType.labels().items() if text} == set(ReportType)
    assert {c for c, text in Status.labels().items() if text} == set(Status)
    assert {c for c, text in Priority.labels().items() if text} == set(Priority)
    assert {c for c, text in EscalationLevel.labels().items() if text} == set(EscalationLevel)
    assert {c for c, text in DispatchState.labels().items() if text} == set(DispatchState)
    assert ReportType.TIDAL_FLOOD.label == "Banjir rob"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(1, Priority.CRITICAL), ("2", Priority.HIGH), (" sedang ", Priority.MEDIUM),
     ("LOW", Priority.LOW), ("kritis", Priority.CRITICAL), (Priority.HIGH, Priority.HIGH)],
)
def test_priority_by_number_or_name(raw: object, expected: Priority) -> None:
    assert parse_priority(raw) is expected


@pytest.mark.parametrize("raw", [0, 5, "5", True, 1.0, "urgent", None, "", "\u0662", "\u00b2",
                                 "9" * 5000, "0" * 5000 + "1"])
def test_invalid_priority(raw: object) -> None:
    with pytest.raises(ValidationError, match="Prioritas harus 1-4"):
        parse_priority(raw)


def test_codes_parse_and_unknown_ones_are_named() -> None:
    assert parse_report_type(" Tidal_Flood ") is ReportType.TIDAL_FLOOD
    assert parse_status("on_scene") is Status.ON_SCENE
    with pytest.raises(ValidationError, match="Jenis laporan tidak dikenal: 'kebakaran'"):
        parse_report_type("kebakaran")
    with pytest.raises(ValidationError) as caught:
        parse_status(3)
    assert caught.value.field == "status"


@pytest.mark.parametrize(
    ("latitude", "longitude", "expected"),
    [(-7.0167, 113.85, Coordinates(-7.0167, 113.85)), ("-7,01", "113,8", Coordinates(-7.01, 113.8)),
     (-11, 95, Coordinates(-11.0, 95.0)), (6, 141, Coordinates(6.0, 141.0)), (None, None, None)],
)
def test_coordinates_inside_indonesia(
    latitude: object, longitude: object, expected: Coordinates | None
) -> None:
    assert parse_coordinates(latitude, longitude) == expected


@pytest.mark.parametrize(
    ("latitude", "longitude", "field"),
    [(-11.01, 113, "latitude"), (6.5, 113, "latitude"), (-7, 94.9, "longitude"),
     (-7, 141.1, "longitude"), (math.nan, 113, "latitude"), (-7, math.inf, "longitude"),
     (True, 113, "latitude"), ("utara", 113, "latitude"), (-7, None, "longitude"),
     (None, 113, "latitude"), (48.85, 2.35, "latitude"), ("-\u0667", 113, "latitude"),
     (-7, "\u0661\u0661\u0663", "longitude")],
)
def test_coordinates_refused(latitude: object, longitude: object, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_coordinates(latitude, longitude)
    assert caught.value.field == field


DETAILS = IncidentDetails(ReportType.FIRE, Priority.HIGH, "Jl. Trunojoyo", None, None, None, "")


def test_patch_parses_every_field() -> None:
    patch = parse_patch({
        "report_type": "flood", "priority": "1", "location_text": "  depan pasar ",
        "village_code": "35.29.01.1016", "sub_district_code": "", "latitude": -7.0,
        "longitude": "113.86", "description": "Air setinggi lutut.\nDua rumah.",
    })
    assert patch == IncidentPatch(
        report_type=ReportType.FLOOD, priority=Priority.CRITICAL, location_text="depan pasar",
        village_code="35.29.01.1016", sub_district_code=None,
        coordinates=Coordinates(-7.0, 113.86), description="Air setinggi lutut.\nDua rumah.",
    )


@pytest.mark.parametrize(
    ("raw", "field"),
    [({"status": "closed"}, "status"), ({}, ""), ({"latitude": -7}, "longitude"),
     ({"longitude": 113}, "latitude"), ({"village_code": "35.29.01"}, "village_code"),
     ({"sub_district_code": "3529"}, "sub_district_code"),
     ({"village_code": "\u0663\u0665.29.01.1016"}, "village_code"),
     ({"location_text": "x" * 501}, "location_text"), ({"location_text": "a\nb"}, "location_text"),
     ({"description": "bad\x00byte"}, "description"), ({"description": 5}, "description"),
     ({"report_type": "ufo"}, "report_type"), ({"priority": 9}, "priority")],
)
def test_invalid_patch(raw: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_patch(raw)
    assert caught.value.field == field


def test_apply_patch_and_changes() -> None:
    patch = parse_patch({"priority": 1, "latitude": -7.0, "longitude": 113.9,
                         "location_text": "Jl. Trunojoyo"})
    after = apply_patch(DETAILS, patch)
    assert after.priority is Priority.CRITICAL
    assert after.report_type is ReportType.FIRE  # untouched
    assert changed_fields(DETAILS, after) == {
        "priority": {"from": 2, "to": 1},
        "coordinates": {"from": None, "to": {"latitude": -7.0, "longitude": 113.9}},
    }
    cleared = apply_patch(after, parse_patch({"latitude": None, "longitude": None}))
    assert cleared.coordinates is None
    assert changed_fields(after, after) == {}


def _placed(village: str | None, sub_district: str | None) -> IncidentDetails:
    return apply_patch(DETAILS, IncidentPatch(village_code=village,
                                              sub_district_code=sub_district))


def test_village_brings_its_sub_district() -> None:
    patch = IncidentPatch(village_code="35.29.01.1016")
    settled = settle_place(apply_patch(DETAILS, patch), patch,
                           village_sub_district="35.29.01", sub_district_known=False)
    assert (settled.village_code, settled.sub_district_code) == ("35.29.01.1016", "35.29.01")


def test_village_and_other_sub_district_disagree() -> None:
    patch = IncidentPatch(village_code="35.29.01.1016", sub_district_code="35.29.02")
    with pytest.raises(ValidationError, match=r"tidak terletak di kecamatan 35\.29\.02"):
        settle_place(apply_patch(DETAILS, patch), patch,
                     village_sub_district="35.29.01", sub_district_known=True)


def test_new_sub_district_drops_a_village_elsewhere() -> None:
    current = _placed("35.29.01.1016", "35.29.01")
    patch = IncidentPatch(sub_district_code="35.29.02")
    settled = settle_place(apply_patch(current, patch), patch,
                           village_sub_district="35.29.01", sub_district_known=True)
    assert (settled.village_code, settled.sub_district_code) == (None, "35.29.02")


def test_a_village_cleared_takes_its_sub_district_unless_one_is_named() -> None:
    current = _placed("35.29.01.1016", "35.29.01")
    assert _placed(None, None) == apply_patch(current, IncidentPatch(village_code=None))
    kept = apply_patch(current, IncidentPatch(village_code=None, sub_district_code="35.29.01"))
    assert (kept.village_code, kept.sub_district_code) == (None, "35.29.01")
    # No village to clear (a sub-district alone, as the API may set it): it stays.
    alone = _placed(None, "35.29.02")
    assert apply_patch(alone, IncidentPatch(village_code=None)) == alone


def test_unknown_places_are_refused() -> None:
    patch = IncidentPatch(village_code="35.29.99.2001")
    with pytest.raises(ValidationError, match="tidak ada di gazetir") as caught:
        settle_place(apply_patch(DETAILS, patch), patch,
                     village_sub_district=None, sub_district_known=False)
    assert caught.value.field == "village_code"
    patch = IncidentPatch(sub_district_code="35.29.99")
    with pytest.raises(ValidationError) as caught:
        settle_place(apply_patch(DETAILS, patch), patch,
                     village_sub_district=None, sub_district_known=False)
    assert caught.value.field == "sub_district_code"


def _call(category: str | None, skill: str | None, line: str = "112") -> CallSnapshot:
    return CallSnapshot("c.1", line, "081234567890", category, skill, "PJSIP/op1001", None)


@pytest.mark.parametrize(
    ("category", "skill", "line", "report_type", "priority"),
    [("emergency", "fire", "112", ReportType.FIRE, Priority.HIGH),
     ("emergency", "medical", "119", ReportType.MEDICAL, Priority.HIGH),
     ("emergency", "security", "112", ReportType.CRIME, Priority.HIGH),
     ("emergency", "disaster", "112", ReportType.DISASTER, Priority.HIGH),
     ("emergency", "madurese", "112", ReportType.OTHER, Priority.HIGH),
     (None, None, "112", ReportType.OTHER, Priority.HIGH),  # the IVR failed open
     ("complaint", "general", "112", ReportType.OTHER, Priority.MEDIUM),
     ("information", "general", "112", ReportType.INFORMATION, Priority.LOW)],
)
def test_prefill_from_the_ivr(
    category: str | None, skill: str | None, line: str, report_type: ReportType,
    priority: Priority,
) -> None:
    new = prefill_from_call(_call(category, skill, line))
    assert (new.report_type, new.priority, new.line) == (report_type, priority, line)
    assert (new.caller_number, new.operator, new.ivr_skill) == (
        "081234567890", "PJSIP/op1001", skill)


def test_only_the_information_category_is_information_only() -> None:
    assert is_information_only(_call("information", "general"))
    assert not is_information_only(_call("complaint", "general"))
    assert not is_information_only(_call(None, None))


ANSWER = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
FIVE = timedelta(minutes=5)


@pytest.mark.parametrize(
    ("dispatched_after", "now_after", "breached", "overdue"),
    [(timedelta(minutes=3), timedelta(hours=1), False, timedelta(0)),
     (FIVE, timedelta(hours=1), False, timedelta(0)),  # exactly on time meets the target
     (timedelta(minutes=7), timedelta(minutes=8), True, timedelta(minutes=2)),
     (None, timedelta(minutes=4), False, timedelta(0)),
     (None, FIVE, False, timedelta(0)),
     (None, timedelta(minutes=6, seconds=30), True, timedelta(seconds=90))],
)
def test_dispatch_clock(
    dispatched_after: timedelta | None, now_after: timedelta, breached: bool,
    overdue: timedelta,
) -> None:
    dispatched = ANSWER + dispatched_after if dispatched_after is not None else None
    clock = dispatch_clock(answered_at=ANSWER, dispatched_at=dispatched, target=FIVE,
                           now=ANSWER + now_after, is_open=True)
    assert clock is not None
    assert (clock.due_at, clock.breached, clock.overdue) == (ANSWER + FIVE, breached, overdue)
    # Once the incident is resolved or closed, a dispatch keeps its verdict.
    if dispatched is not None:
        assert dispatch_clock(answered_at=ANSWER, dispatched_at=dispatched, target=FIVE,
                              now=ANSWER + now_after, is_open=False) == clock


def test_no_clock_without_target_or_answer() -> None:
    assert dispatch_clock(answered_at=ANSWER, dispatched_at=None, target=None,
                          now=ANSWER, is_open=True) is None
    assert dispatch_clock(answered_at=None, dispatched_at=None, target=FIVE, now=ANSWER,
                          is_open=True) is None


def test_no_clock_for_an_incident_ended_without_a_dispatch() -> None:
    """A prank, a cancelled or a merged incident was never to be dispatched: its page said
    "terlambat", later by the hour, for as long as anyone looked."""
    assert dispatch_clock(answered_at=ANSWER, dispatched_at=None, target=FIVE,
                          now=ANSWER + timedelta(hours=3), is_open=False) is None


def test_retry_delay_doubles_up_to_the_cap() -> None:
    assert [retry_delay(n, base=15, cap=900) for n in (1, 2, 3, 6, 7, 200)] == [
        15, 30, 60, 480, 900, 900]


@pytest.mark.parametrize(("raw", "value"), [(1, 1), (5, 5), ("4", 4), (" 3 ", 3)])
def test_valid_ratings(raw: object, value: int) -> None:
    assert parse_rating(raw) == value


@pytest.mark.parametrize("raw", [0, 6, -1, True, 4.0, "4.5", "", None, "#", "\u0664", "\u00b3",
                                 "9" * 5000])
def test_invalid_ratings(raw: object) -> None:
    with pytest.raises(ValidationError, match="1 sampai 5"):
        parse_rating(raw)


def test_rating_only_after_resolution_and_only_once() -> None:
    for status in Status:
        if status in (S.RESOLVED, S.CLOSED):
            assert rating_is_new(status, None, 4)
        else:
            with pytest.raises(InvalidTransition, match="setelah insiden selesai"):
                rating_is_new(status, None, 4)
    assert not rating_is_new(S.CLOSED, 4, 4)  # a retried survey: nothing to store
    with pytest.raises(InvalidTransition, match="sudah dinilai 4"):
        rating_is_new(S.CLOSED, 4, 2)


SHA = "ab" * 32


def test_valid_attachment_is_normalised() -> None:
    meta = parse_attachment("foto lokasi 1.JPG", "Image/JPEG", 1234, SHA.upper(),
                            "2026/11/23/17-foto.jpg", max_bytes=10_000)
    assert (meta.filename, meta.content_type, meta.sha256, meta.stored_path) == (
        "foto lokasi 1.JPG", "image/jpeg", SHA, "2026/11/23/17-foto.jpg")


@pytest.mark.parametrize(
    "name",
    ["../etc/passwd", "..", ".", ".htaccess", "a/b.jpg", "a\\b.jpg", "C:evil.jpg", "x\x00.jpg",
     "", " padded.jpg", "x" * 201, "tab\tname"],
)
def test_attachment_names_that_could_escape_are_refused(name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_attachment(name, "image/jpeg", 10, SHA, "a/b.jpg", max_bytes=100)
    assert caught.value.field == "filename"


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "a/../../b", "a//b", "a/./b", "a/", "..\\b", "a/.ssh/b", ""],
)
def test_stored_paths_that_could_escape_are_refused(path: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_attachment("b.jpg", "image/jpeg", 10, SHA, path, max_bytes=100)
    assert caught.value.field == "stored_path"


@pytest.mark.parametrize(
    ("content_type", "size", "sha", "field"),
    [("jpeg", 10, SHA, "content_type"), ("image/jpeg; q=1", 10, SHA, "content_type"),
     ("image/jpeg", 0, SHA, "size_bytes"), ("image/jpeg", True, SHA, "size_bytes"),
     ("image/jpeg", 101, SHA, "size_bytes"), ("image/jpeg", 10, "ab" * 31, "sha256"),
     ("image/jpeg", 10, "zz" * 32, "sha256")],
)
def test_attachment_metadata_checked(content_type: str, size: object, sha: str,
                                     field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_attachment("b.jpg", content_type, size, sha, "a/b.jpg", max_bytes=100)
    assert caught.value.field == field


def test_an_empty_file_and_a_long_name_are_refused_saying_so() -> None:
    with pytest.raises(ValidationError, match=r"^Berkas kosong \(0 bita\)"):
        parse_attachment("b.jpg", "image/jpeg", 0, SHA, "a/b.jpg", max_bytes=100)
    with pytest.raises(ValidationError, match=r"^Nama berkas terlalu panjang \(maksimal 200"):
        parse_attachment("x" * 197 + ".jpg", "image/jpeg", 10, SHA, "a/b.jpg", max_bytes=100)
    # At the limits: accepted.
    meta = parse_attachment("x" * 196 + ".jpg", "image/jpeg", 100, SHA, "a/b.jpg",
                            max_bytes=100)
    assert (len(meta.filename), meta.size_bytes) == (200, 100)


def test_oversized_attachment_names_the_limit() -> None:
    with pytest.raises(ValidationError, match="maksimal 25 MB"):
        parse_attachment("v.mp4", "video/mp4", 26 * 1024 * 1024, SHA, "v.mp4",
                         max_bytes=25 * 1024 * 1024)


def test_identifiers_and_actors() -> None:
    assert check_id("incident_id", 7) == 7
    for bad in (0, -1, True, "7", 2**63):
        with pytest.raises(ValidationError):
            check_id("incident_id", bad)
    assert clean_actor(" op1001 ") == "op1001"
    for bad_actor in ("", "  ", None, "a\nb"):
        with pytest.raises(ValidationError):
            clean_actor(bad_actor)
    assert clean_agency_code("satpol_pp") == "satpol_pp"
    for bad_code in ("Damkar", "d", "pol-isi", "", None):
        with pytest.raises(ValidationError):
            clean_agency_code(bad_code)


def test_recipient_validation() -> None:
    recipient = parse_recipient("damkar", "", " Kepala Dinas ", "Kepala Dinas", "0812")
    assert (recipient.report_type, recipient.name) == (None, "Kepala Dinas")
    assert parse_recipient("pdam", "fire", "Kabid", "", "0813").report_type is ReportType.FIRE
    with pytest.raises(ValidationError):
        parse_recipient("damkar", None, "Kabid", "", " ")
    with pytest.raises(ValidationError):
        parse_recipient("damkar", "ufo", "Kabid", "", "0812")


def _incident(**changes: object) -> Incident:
    now = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    values: dict[str, object] = {
        "incident_id": 12, "version": 3, "status": S.DISPATCHED,
        "report_type": ReportType.FIRE, "priority": Priority.CRITICAL, "line": "112",
        "caller_number": "081234567890", "ivr_category": "emergency", "ivr_skill": "fire",
        "operator": "PJSIP/op1001", "location_text": "Jl. Trunojoyo 5",
        "village_code": "35.29.01.1016", "village_name": "Pajagalan",
        "sub_district_code": "35.29.01", "sub_district_name": "Kota Sumenep",
        "coordinates": Coordinates(-7.0, 113.86), "description": "Gudang terbakar",
        "escalation_level": EscalationLevel.VILLAGE, "escalation_reason": "", "rating": None,
        "rated_at": None, "answered_at": now, "dispatched_at": now, "status_changed_at": now,
        "created_at": now, "updated_at": now, "created_by": "system",
    }
    values.update(changes)
    return Incident(**values)  # type: ignore[arg-type]


def test_notification_text_and_payload() -> None:
    agency = Agency("damkar", "Pemadam Kebakaran (Damkar)", True)
    recipient = Recipient(3, "damkar", None, "Kabid Damkar", "Kabid", "0812", True)
    assert notification_message(_incident(), agency) == (
        "[112] Insiden #12 - Kebakaran (prioritas Kritis) diteruskan ke Pemadam Kebakaran "
        "(Damkar). Lokasi: Jl. Trunojoyo 5, Pajagalan, Kec. Kota Sumenep. "
        "Pelapor: 081234567890."
    )
    payload = notification_payload(_incident(), agency, recipient, 7)
    assert payload["dispatch_id"] == 7
    assert payload["recipient"] == {"name": "Kabid Damkar", "role": "Kabid", "contact": "0812"}
    assert payload["coordinates"] == {"latitude": -7.0, "longitude": 113.86}
    bare = _incident(location_text="", village_name=None, sub_district_name=None,
                     caller_number="", line=None, coordinates=None)
    assert notification_message(bare, agency).endswith("Lokasi: belum diisi.")
    assert notification_payload(bare, agency, recipient, 7)["coordinates"] is None


def test_stand_down_text_and_payload() -> None:
    agency = Agency("damkar", "Pemadam Kebakaran (Damkar)", True)
    recipient = Recipient(3, "damkar", None, "Kabid Damkar", "Kabid", "0812", True)
    call_out = notification_payload(_incident(), agency, recipient, 7)
    prank = stand_down_payload(call_out, Status.PRANK, "penelepon mengaku iseng")
    assert prank["message"] == (
        "[112] PEMBATALAN Insiden #12 - Kebakaran di Jl. Trunojoyo 5, Pajagalan, Kec. Kota "
        "Sumenep: laporan iseng (tidak benar). Pemadam Kebakaran (Damkar) tidak perlu datang; "
        "tim yang sudah berangkat harap kembali. Keterangan: penelepon mengaku iseng.")
    # Where the call-out went, and nothing of the caller's: the agency no longer needs it.
    assert (prank["kind"], prank["dispatch_id"], prank["recipient"], prank["status"]) == (
        "stand_down", 7, call_out["recipient"], "prank")
    assert "caller_number" not in prank
    cancelled = stand_down_payload(call_out, Status.CANCELLED)
    assert "insiden dibatalkan." in cancelled["message"]
    assert cancelled["message"].endswith("harap kembali.")
    alone = stand_down_payload(call_out, Status.DISPATCHED, "salah instansi")
    assert ": pengiriman ke instansi ini dibatalkan." in alone["message"]
    assert stand_down_text(None) == stand_down_text({}) == ""
    assert stand_down_text({"sent": 1}) == "; pembatalan: 1 terkirim"


def test_unset_is_not_none() -> None:
    patch = IncidentPatch(village_code=None)
    assert patch.touches_place
    assert patch.sub_district_code is UNSET
    assert not IncidentPatch(description="x").touches_place


def test_a_dispatchs_notifications_in_words() -> None:
    assert notices_text({"sent": 2, "failed": 1, "pending": 0}) == "2 terkirim, 1 gagal dikirim"
    assert notices_text({"withdrawn": 1, "pending": 3}) == "3 menunggu dikirim, 1 ditarik"
    nobodies: list[dict[str, int] | None] = [None, {}]
    for nobody in nobodies:
        assert notices_text(nobody) == ("tidak ada penerima pemberitahuan: hubungi instansi "
                                        "lewat telepon")
        assert notices_text(nobody, phone=PhoneContact.REACHED) == "lewat telepon"
        assert notices_text(nobody, phone=PhoneContact.RINGING) == (
            "sedang ditelepon, instansi belum menjawab")
    # A phone still ringing is said first, whatever the messages.
    assert notices_text({"sent": 1}, phone=PhoneContact.RINGING) == (
        "sedang ditelepon, instansi belum menjawab; 1 terkirim")
    assert notices_text({"sent": 1}, phone=PhoneContact.REACHED) == "1 terkirim"


@pytest.mark.parametrize(("by_phone", "ringing", "expected"), [
    (False, False, None), (True, True, PhoneContact.RINGING),
    (True, False, PhoneContact.REACHED)])
def test_a_dispatch_by_phone_says_whether_the_agency_answered(
        by_phone: bool, ringing: bool, expected: PhoneContact | None) -> None:
    # A dispatch whose call to the agency still rang read "lewat telepon", as if the agency
    # had been reached.
    dispatch = Dispatch(1, 1, "damkar", "Damkar", DispatchState.NOTIFIED, ANSWER, None, None,
                        None, None, "op1", "", by_phone=by_phone, phone_ringing=ringing)
    assert dispatch.phone is expected


def _event(kind: str, **detail: object) -> IncidentEvent:
    return IncidentEvent(event_id=1, incident_id=1, at=ANSWER, actor=SYSTEM_ACTOR, kind=kind,
                         detail=detail)


CREATED = _event("created", call_id="1.1")
BY_LABEL = _event("status", reason=LABEL_DISMISSED)


@pytest.mark.parametrize(("status", "events", "label", "moved"), [
    (Status.NEW, [CREATED], "prank", Status.PRANK),
    (Status.NEW, [CREATED], "silent", Status.CANCELLED),
    (Status.NEW, [CREATED], "accidental", Status.CANCELLED),
    (Status.NEW, [CREATED], "genuine", None),
    (Status.NEW, [CREATED], "test", None),
    (Status.NEW, [CREATED], None, None),
    (Status.PRANK, [CREATED, BY_LABEL], "genuine", Status.NEW),  # a wrong label taken back
    (Status.PRANK, [CREATED, BY_LABEL], "silent", Status.CANCELLED),
    (Status.PRANK, [CREATED, BY_LABEL], "prank", None),
    (Status.NEW, [CREATED, BY_LABEL, _event("status", reason=LABEL_WITHDRAWN)], "prank",
     Status.PRANK),
    # An operator's own work keeps the incident where they put it.
    (Status.NEW, [CREATED, _event("details", changes={})], "prank", None),
    (Status.NEW, [CREATED, _event("call_linked", call_id="1.2")], "prank", None),
    (Status.PRANK, [CREATED, _event("status", note="")], "genuine", None),
    (Status.CANCELLED, [CREATED, _event("status", reason="merged")], "genuine", None),
    (Status.VERIFIED, [CREATED, _event("status", note="")], "prank", None),
])
def test_an_untouched_automatic_incident_follows_its_calls_label(
        status: Status, events: list[IncidentEvent], label: str | None,
        moved: Status | None) -> None:
    assert status_for_label(_incident(status=status), call_id="1.1", calls=["1.1"], events=events,
                            dispatched=False, label=label) is moved


def test_an_incident_worked_on_does_not_follow_its_calls_label() -> None:
    new = _incident(status=Status.NEW)
    assert status_for_label(new, call_id="1.1", calls=["1.1"], events=[CREATED],
                            dispatched=True, label="prank") is None
    assert status_for_label(new, call_id="1.1", calls=["1.1", "1.2"], events=[CREATED],
                            dispatched=False, label="prank") is None
    assert status_for_label(new, call_id="1.2", calls=["1.1"], events=[CREATED],
                            dispatched=False, label="prank") is None
    assert status_for_label(_incident(status=Status.NEW, created_by="op1"), call_id="1.1",
                            calls=["1.1"], events=[CREATED], dispatched=False,
                            label="prank") is None
