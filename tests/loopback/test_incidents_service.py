"""The incident service against a real PostgreSQL: automatic creation, linking, the status
and dispatch timelines, edits, concurrency, service levels, ratings and attachments."""

import asyncio
import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from telephony.db.connection import Database
from telephony.incidents.dispatches import DispatchState
from telephony.incidents.edits import parse_patch
from telephony.incidents.errors import (
    CallAlreadyLinked,
    CallNotFound,
    DispatchNotFound,
    IncidentNotFound,
    InvalidTransition,
    StaleIncident,
    ValidationError,
)
from telephony.incidents.model import EscalationLevel, Priority, ReportType, Status
from telephony.incidents.outbox import DeliveryReport
from telephony.incidents.services import IncidentServices
from telephony.settings import Settings
from tests.support.calls import add_calls, ago, answered, call_facts
from tests.support.db import fetch, incident_state
from tests.support.incidents import make_service
from tests.support.polling import eventually


@pytest.fixture
def service(database: Database) -> IncidentServices:
    return make_service(database)


async def test_auto_creation_is_idempotent(database_dsn: str, database: Database) -> None:
    await add_calls(
        database_dsn,
        call_facts("fire.1", answered_at=ago(minutes=3), talk=None),
        call_facts("med.1", answered_at=ago(minutes=2), talk=None, line="119", skill="medical"),
        call_facts("failopen.1", answered_at=ago(minutes=1), talk=None, category="", skill=""),
        call_facts("info.1", answered_at=ago(minutes=1), talk=None, category="information",
                   skill="general"),
        call_facts("abandoned.1", answered_at=None),
        call_facts("old.1", answered_at=ago(days=3), talk=None),
    )
    # A small batch makes the creator loop over several batches.
    service = make_service(database, auto_create_batch=2)
    first, second = await asyncio.gather(service.incidents.create_for_answered_calls(),
                                         service.incidents.create_for_answered_calls())
    again = await service.incidents.create_for_answered_calls()
    assert again == []
    created = first + second
    assert len(created) == 3
    links = await fetch(database_dsn, "SELECT call_id, incident_id FROM incident_calls "
                                      "ORDER BY call_id")
    assert [row["call_id"] for row in links] == ["failopen.1", "fire.1", "med.1"]
    assert len({row["incident_id"] for row in links}) == 3
    by_call = {row["call_id"]: await service.incidents.get(row["incident_id"]) for row in links}
    fire = by_call["fire.1"]
    assert (fire.status, fire.report_type, fire.priority, fire.line) == (
        Status.NEW, ReportType.FIRE, Priority.HIGH, "112")
    assert (fire.caller_number, fire.operator, fire.created_by) == (
        "081234567890", "PJSIP/op1001", "system")
    assert fire.answered_at is not None
    assert (by_call["med.1"].report_type, by_call["med.1"].line) == (ReportType.MEDICAL, "119")
    assert by_call["failopen.1"].report_type is ReportType.OTHER
    events = await service.incidents.timeline(fire.incident_id)
    assert [(e.kind, e.actor, e.detail["call_id"]) for e in events] == [
        ("created", "system", "fire.1")]


async def test_explicit_creation(database_dsn: str, service: IncidentServices) -> None:
    await add_calls(database_dsn, call_facts("info.2", answered_at=ago(minutes=1), talk=None,
                                             category="information", skill="general"))
    incident = await service.incidents.create_for_call("info.2", actor="op1001")
    assert (incident.report_type, incident.priority, incident.created_by) == (
        ReportType.INFORMATION, Priority.LOW, "op1001")
    with pytest.raises(CallAlreadyLinked) as caught:
        await service.incidents.create_for_call("info.2")
    assert caught.value.incident_id == incident.incident_id
    with pytest.raises(CallNotFound):
        await service.incidents.create_for_call("no.such.call")
    assert await service.incidents.create_for_answered_calls() == []


async def test_two_calls_about_one_event(database_dsn: str, service: IncidentServices) -> None:
    await answered(database_dsn, "first.1")
    first = await service.incidents.create_for_call("first.1")
    # A second caller about the same fire: answered, and given an incident of its own.
    await answered(database_dsn, "second.1", caller="087700000002")
    (second,) = await service.incidents.create_for_answered_calls()
    merged = await service.incidents.link_call(first.incident_id, "second.1", actor="op1001")
    assert await service.incidents.call_ids(first.incident_id) == ["first.1", "second.1"]
    assert merged.version == first.version  # linking does not touch the incident's fields
    duplicate = await service.incidents.get(second.incident_id)
    assert duplicate.status is Status.CANCELLED
    assert [e.detail for e in await service.incidents.timeline(second.incident_id)][-1] == {
        "from": "new", "to": "cancelled", "reason": "merged",
        "merged_into": first.incident_id, "call_id": "second.1"}
    assert [(e.kind, e.detail)
            for e in await service.incidents.timeline(first.incident_id)][-1] == (
        "call_linked", {"call_id": "second.1", "merged_from": second.incident_id})
    # Linking again is harmless; a third call not yet in any incident is simply added.
    await service.incidents.link_call(first.incident_id, "second.1", actor="op1001")
    await add_calls(database_dsn, call_facts("third.1", answered_at=None))
    await service.incidents.link_call(first.incident_id, "third.1", actor="op1002")
    assert await service.incidents.call_ids(first.incident_id) == ["first.1", "second.1", "third.1"]
    # Now an incident of three calls: its calls are not taken away by another incident.
    await answered(database_dsn, "other.1")
    other = await service.incidents.create_for_call("other.1")
    before = await incident_state(database_dsn)
    with pytest.raises(CallAlreadyLinked):
        await service.incidents.link_call(other.incident_id, "first.1", actor="op1001")
    assert await incident_state(database_dsn) == before


async def test_two_operators_merging_one_repeat_call_into_one_incident_both_succeed(
        database_dsn: str, settings: Settings, service: IncidentServices) -> None:
    """Two operators (or one double click) merge the same repeat caller's call into the
    same fire at once. The second was refused with "already in #<the repeat caller's own
    incident>": the one the first had just cancelled as merged, while the call was where
    both wanted it. A merge into another incident meanwhile names where the call is now."""
    await answered(database_dsn, "fire.1")
    await answered(database_dsn, "other.1")
    await answered(database_dsn, "repeat.1", caller="087700000002")
    await answered(database_dsn, "repeat.2", caller="087700000003")
    fire = (await service.incidents.create_for_call("fire.1")).incident_id
    other = (await service.incidents.create_for_call("other.1")).incident_id
    repeat = (await service.incidents.create_for_call("repeat.1")).incident_id
    late = (await service.incidents.create_for_call("repeat.2")).incident_id
    # The second operator's request, on a pool of its own (as on another line node).
    second_pool = Database(replace(settings, database_dsn=database_dsn))
    services = [service, make_service(second_pool)]
    # Each pool's connection opened before the lock is taken: one opened while it is held
    # did not get as far as the link's first query.
    for each in services:
        await each.incidents.get(fire)

    async def both_wait_for(incident_id: int, *links: tuple[int, str]) -> list[object]:
        """The links, each started while ``incident_id`` is held locked (both lock it), and
        so each having read where the call is before the first of them moves it."""
        holder = await asyncpg.connect(database_dsn)
        try:
            async with holder.transaction():
                await holder.execute("SELECT 1 FROM incidents WHERE incident_id = $1 "
                                     "FOR UPDATE", incident_id)
                pairs = enumerate(zip(services, links, strict=True))
                tasks = [asyncio.create_task(by.incidents.link_call(target, call,
                                                                    actor=f"op100{n}"))
                         for n, (by, (target, call)) in pairs]

                async def waiting() -> bool | None:
                    count = await holder.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database()")
                    return True if count == len(links) else None

                await eventually("the links waiting for the incident", waiting, within=10)
        finally:
            await holder.close()
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    try:
        first, second = await both_wait_for(fire, (fire, "repeat.1"), (fire, "repeat.1"))
        assert [getattr(r, "incident_id", r) for r in (first, second)] == [fire, fire]
        assert await service.incidents.call_ids(fire) == ["fire.1", "repeat.1"]
        assert [e.kind for e in await service.incidents.timeline(fire)] == [
            "created", "call_linked"]
        assert [e.detail.get("to") for e in await service.incidents.timeline(repeat)] == [
            None, "cancelled"]

        # Whichever gets the lock first takes the call; the other is told where it went.
        results = await both_wait_for(late, (fire, "repeat.2"), (other, "repeat.2"))
        (won,) = [r for r in results if not isinstance(r, BaseException)]
        (refused,) = [r for r in results if isinstance(r, CallAlreadyLinked)]
        assert refused.incident_id == getattr(won, "incident_id", None), refused
        assert "repeat.2" in await service.incidents.call_ids(refused.incident_id)
        assert (await service.incidents.get(late)).status is Status.CANCELLED
    finally:
        await second_pool.close()


async def test_link_refusals_change_nothing(database_dsn: str,
                                            service: IncidentServices) -> None:
    await answered(database_dsn, "a.1")
    await answered(database_dsn, "b.1")
    incident = await service.incidents.create_for_call("a.1")
    await service.incidents.change_status(incident.incident_id, "cancelled", actor="op1001")
    open_one = await service.incidents.create_for_call("b.1")
    await answered(database_dsn, "c.1")
    before = await incident_state(database_dsn)
    with pytest.raises(InvalidTransition):
        await service.incidents.link_call(incident.incident_id, "c.1", actor="op1001")
    with pytest.raises(IncidentNotFound):
        await service.incidents.link_call(999_999, "c.1", actor="op1001")
    with pytest.raises(CallNotFound):
        await service.incidents.link_call(open_one.incident_id, "zzz", actor="op1001")
    with pytest.raises(StaleIncident):
        await service.incidents.link_call(open_one.incident_id, "c.1", actor="op1001",
                                          expected_version=open_one.version + 1)
    # A cancelled incident's call is not moved into another one.
    with pytest.raises(CallAlreadyLinked):
        await service.incidents.link_call(open_one.incident_id, "a.1", actor="op1001")
    assert await incident_state(database_dsn) == before


async def test_full_timeline_with_dispatch(database_dsn: str, service: IncidentServices) -> None:
    await answered(database_dsn, "t.1")
    incident = await service.incidents.create_for_call("t.1")
    iid = incident.incident_id
    with pytest.raises(InvalidTransition, match="diverifikasi"):
        await service.dispatches.dispatch(iid, "damkar", actor="op1001")
    await service.incidents.change_status(iid, Status.VERIFIED, actor="op1001", note="Dicek ke RT")
    damkar = await service.dispatches.dispatch(iid, "damkar", actor="op1001", note="2 unit")
    assert (damkar.state, damkar.agency_name, damkar.note) == (
        DispatchState.NOTIFIED, "Pemadam Kebakaran (Damkar)", "2 unit")
    dispatched = await service.incidents.get(iid)
    assert dispatched.status is Status.DISPATCHED and dispatched.dispatched_at is not None
    with pytest.raises(InvalidTransition, match="sudah diteruskan"):
        await service.dispatches.dispatch(iid, "damkar", actor="op1001")
    with pytest.raises(ValidationError, match="tidak dikenal"):
        await service.dispatches.dispatch(iid, "pemadam", actor="op1001")
    # The fire brigade needs water: the water utility joins the dispatched incident.
    pdam = await service.dispatches.dispatch(iid, "pdam", actor="op1001")

    acknowledged = await service.dispatches.advance_dispatch(damkar.dispatch_id, "acknowledged",
                                                             actor="damkar-pos1")
    assert acknowledged.acknowledged_at is not None and acknowledged.on_scene_at is None
    with pytest.raises(InvalidTransition):
        await service.dispatches.advance_dispatch(damkar.dispatch_id, "notified",
                                                  actor="damkar-pos1")
    on_scene = await service.dispatches.advance_dispatch(
        damkar.dispatch_id, DispatchState.ON_SCENE, actor="damkar-pos1")
    assert (await service.incidents.get(iid)).status is Status.ON_SCENE
    done = await service.dispatches.advance_dispatch(damkar.dispatch_id, "done",
                                                     actor="damkar-pos1")
    # PDAM reports only that it is done; the skipped steps stay empty.
    pdam_done = await service.dispatches.advance_dispatch(pdam.dispatch_id, "done", actor="pdam")
    assert pdam_done.acknowledged_at is None and pdam_done.done_at is not None
    assert on_scene.on_scene_at is not None
    assert done.acknowledged_at is not None and done.on_scene_at is not None
    assert done.done_at is not None
    assert done.notified_at <= done.acknowledged_at <= done.on_scene_at <= done.done_at
    with pytest.raises(InvalidTransition):
        await service.dispatches.advance_dispatch(damkar.dispatch_id, "done", actor="damkar-pos1")
    with pytest.raises(DispatchNotFound):
        await service.dispatches.advance_dispatch(999_999, "done", actor="x")
    # Done: the same agency may be dispatched again if the fire flares up.
    await service.dispatches.dispatch(iid, "damkar", actor="op1001")

    await service.incidents.change_status(iid, "resolved", actor="op1001")
    closed = await service.incidents.change_status(iid, "closed", actor="spv01")
    assert [d.agency_code for d in await service.dispatches.dispatches(iid)] == ["damkar", "pdam",
                                                                      "damkar"]
    events = await service.incidents.timeline(iid)
    statuses = [(e.detail["from"], e.detail["to"], e.actor)
                for e in events if e.kind == "status"]
    assert statuses == [
        ("new", "verified", "op1001"), ("verified", "dispatched", "op1001"),
        ("dispatched", "on_scene", "damkar-pos1"), ("on_scene", "resolved", "op1001"),
        ("resolved", "closed", "spv01"),
    ]
    steps = [(e.detail["agency"], e.detail["to"]) for e in events if e.kind == "dispatch"]
    assert steps == [("damkar", "notified"), ("pdam", "notified"), ("damkar", "acknowledged"),
                     ("damkar", "on_scene"), ("damkar", "done"), ("pdam", "done"),
                     ("damkar", "notified")]
    assert all(a.at <= b.at for a, b in itertools.pairwise(events))
    assert closed.version == 1 + 5  # one per status change


async def test_an_agency_that_declines_is_cancelled_with_its_reason_and_dispatched_again(
    database_dsn: str, service: IncidentServices
) -> None:
    # A fire: the fire brigade and the police are dispatched; the police post answers that
    # it has no patrol free. The operator cancels that dispatch saying so: the incident stays
    # dispatched (nobody is on scene yet), the police post's message not yet delivered is not
    # sent, and the police are dispatched again once a patrol is free. Marking the dispatch
    # "done" instead had put the incident "on scene" with nobody there.
    await service.directory.add_recipient("polisi", name="Piket Polres", contact="0271110")
    await answered(database_dsn, "decline.1")
    iid = (await service.incidents.create_for_call("decline.1")).incident_id
    await service.incidents.change_status(iid, "verified", actor="op1001")
    await service.dispatches.dispatch(iid, "damkar", actor="op1001")
    police = await service.dispatches.dispatch(iid, "polisi", actor="op1001")
    before = await incident_state(database_dsn)
    with pytest.raises(ValidationError, match="Alasan pembatalan pengiriman wajib diisi"):
        await service.dispatches.advance_dispatch(police.dispatch_id, "cancelled",
                                                  actor="op1001", note="  ")
    with pytest.raises(DispatchNotFound):  # seen on another incident's page
        await service.dispatches.advance_dispatch(police.dispatch_id, "cancelled",
                                                  actor="op1001", note="Menolak",
                                                  incident_id=iid + 1)
    assert await incident_state(database_dsn) == before

    cancelled = await service.dispatches.advance_dispatch(
        police.dispatch_id, "cancelled", actor="op1002",
        note="Polsek menolak: tidak ada patroli", incident_id=iid)
    assert (cancelled.state, cancelled.done_at) == (DispatchState.CANCELLED, None)
    assert cancelled.cancelled_at is not None
    incident = await service.incidents.get(iid)
    assert incident.status is Status.DISPATCHED
    with pytest.raises(InvalidTransition, match="Dibatalkan"):
        await service.dispatches.advance_dispatch(police.dispatch_id, "acknowledged",
                                                  actor="op1002")
    assert await service.outbox.deliver_notifications() == DeliveryReport(withdrawn=1)

    again = await service.dispatches.dispatch(iid, "polisi", actor="op1002", note="Patroli 2")
    assert again.state is DispatchState.NOTIFIED
    assert await service.outbox.deliver_notifications() == DeliveryReport(sent=1)
    assert [(d.agency_code, d.state) for d in await service.dispatches.dispatches(iid)] == [
        ("damkar", DispatchState.NOTIFIED), ("polisi", DispatchState.CANCELLED),
        ("polisi", DispatchState.NOTIFIED)]
    steps = [(e.actor, e.detail["agency"], e.detail.get("from"), e.detail["to"],
              e.detail["note"]) for e in await service.incidents.timeline(iid)
             if e.kind == "dispatch"]
    assert steps == [
        ("op1001", "damkar", None, "notified", ""), ("op1001", "polisi", None, "notified", ""),
        ("op1002", "polisi", "notified", "cancelled", "Polsek menolak: tidak ada patroli"),
        ("op1002", "polisi", None, "notified", "Patroli 2")]
    (outbox,) = await fetch(database_dsn, "SELECT state, last_error FROM notification_outbox "
                                          "WHERE dispatch_id = $1", police.dispatch_id)
    assert tuple(outbox) == ("withdrawn", "withdrawn: the dispatch is cancelled")


async def test_invalid_transition_changes_nothing(database_dsn: str,
                                                  service: IncidentServices) -> None:
    await answered(database_dsn, "x.1")
    incident = await service.incidents.create_for_call("x.1")
    before = await incident_state(database_dsn)
    for target in ("resolved", "closed", "on_scene", "new", "dispatched"):
        with pytest.raises(InvalidTransition):
            await service.incidents.change_status(incident.incident_id, target, actor="op1001")
    with pytest.raises(ValidationError):
        await service.incidents.change_status(incident.incident_id, "selesai", actor="op1001")
    with pytest.raises(ValidationError):
        await service.incidents.change_status(incident.incident_id, "verified", actor="")
    with pytest.raises(StaleIncident):
        await service.incidents.change_status(incident.incident_id, "verified", actor="op1001",
                                              expected_version=incident.version + 1)
    with pytest.raises(IncidentNotFound):
        await service.incidents.change_status(424242, "verified", actor="op1001")
    with pytest.raises(ValidationError):
        await service.incidents.get(0)
    assert await incident_state(database_dsn) == before
    prank = await service.incidents.change_status(incident.incident_id, "prank", actor="op1001")
    assert prank.status is Status.PRANK
    with pytest.raises(InvalidTransition):
        await service.incidents.change_status(incident.incident_id, "verified", actor="op1001")


async def test_concurrent_status_changes_one_wins(database_dsn: str,
                                                  service: IncidentServices) -> None:
    await answered(database_dsn, "c.1")
    incident = await service.incidents.create_for_call("c.1")
    results = await asyncio.gather(
        service.incidents.change_status(incident.incident_id, "verified", actor="op1001"),
        service.incidents.change_status(incident.incident_id, "verified", actor="op1002"),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["Incident", "InvalidTransition"]
    # With a version read before: two different decisions at once, the second is stale.
    current = await service.incidents.get(incident.incident_id)
    results = await asyncio.gather(
        service.incidents.change_status(incident.incident_id, "prank", actor="op1001",
                                        expected_version=current.version),
        service.incidents.change_status(incident.incident_id, "dispatched", actor="op1002",
                                        expected_version=current.version),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["Incident", "StaleIncident"]
    events = await service.incidents.timeline(incident.incident_id)
    assert [e.kind for e in events] == ["created", "status", "status"]
    final = await service.incidents.get(incident.incident_id)
    assert final.version == current.version + 1


async def test_edit_details_with_the_gazetteer(database_dsn: str,
                                               service: IncidentServices) -> None:
    await answered(database_dsn, "e.1")
    incident = await service.incidents.create_for_call("e.1")
    iid = incident.incident_id
    edited = await service.incidents.update_details(iid, parse_patch({
        "report_type": "tidal_flood", "priority": "kritis", "location_text": "Dermaga",
        "village_code": "35.29.02.2001", "latitude": -7.06, "longitude": "113.94",
        "description": "Air laut masuk ke rumah warga.",
    }), actor="op1001", expected_version=incident.version)
    assert (edited.report_type, edited.priority, edited.village_name,
            edited.sub_district_code, edited.sub_district_name) == (
        ReportType.TIDAL_FLOOD, Priority.CRITICAL, "Pinggirpapas", "35.29.02", "Kalianget")
    assert edited.coordinates is not None and edited.coordinates.latitude == -7.06
    assert edited.version == incident.version + 1
    before = await incident_state(database_dsn)
    refusals: list[tuple[dict[str, object], str]] = [
        ({"village_code": "35.29.01.1016", "sub_district_code": "35.29.02"},
         "sub_district_code"),
        ({"village_code": "35.29.02.9999"}, "village_code"),
        ({"sub_district_code": "35.29.99"}, "sub_district_code"),
        ({"latitude": 48.8, "longitude": 2.3}, "latitude"),
    ]
    for raw, field in refusals:
        with pytest.raises(ValidationError) as caught:
            await service.incidents.update_details(iid, parse_patch(raw), actor="op1001")
        assert caught.value.field == field
    with pytest.raises(StaleIncident):
        await service.incidents.update_details(iid, parse_patch({"priority": 4}), actor="op1001",
                                               expected_version=incident.version)
    # The same values again: nothing to record.
    unchanged = await service.incidents.update_details(iid, parse_patch({"priority": 1}),
                                                       actor="op1001")
    assert unchanged.version == edited.version
    assert await incident_state(database_dsn) == before
    moved = await service.incidents.update_details(
        iid, parse_patch({"sub_district_code": "35.29.01"}), actor="op1001")
    assert (moved.village_code, moved.sub_district_name) == (None, "Kota Sumenep")
    cleared = await service.incidents.update_details(
        iid, parse_patch({"latitude": None, "longitude": None}), actor="op1001")
    assert cleared.coordinates is None
    changes = [e.detail["changes"]
               for e in await service.incidents.timeline(iid) if e.kind == "details"]
    assert changes[0]["village_code"] == {"from": None, "to": "35.29.02.2001"}
    assert changes[1] == {"village_code": {"from": "35.29.02.2001", "to": None},
                          "sub_district_code": {"from": "35.29.02", "to": "35.29.01"}}
    places = await service.directory.places(sub_district_code="35.29.01")
    assert "Pajagalan" in [p.village_name for p in places]


async def test_every_report_type_is_storable(database_dsn: str,
                                             service: IncidentServices) -> None:
    await answered(database_dsn, "r.1")
    incident = await service.incidents.create_for_call("r.1")
    for kind in ReportType:
        updated = await service.incidents.update_details(incident.incident_id,
                                                         parse_patch({"report_type": kind.value}),
                                               actor="op1001")
        assert updated.report_type is kind


async def test_escalation(database_dsn: str, service: IncidentServices) -> None:
    await answered(database_dsn, "esc.1", skill="disaster")
    incident = await service.incidents.create_for_call("esc.1")
    assert incident.escalation_level is EscalationLevel.VILLAGE
    raised = await service.incidents.escalate(incident.incident_id, "sub_district",
                                              "Longsor menutup dua desa", actor="op1001")
    raised = await service.incidents.escalate(incident.incident_id, EscalationLevel.PROVINCE,
                                              "Butuh alat berat provinsi", actor="spv01")
    assert (raised.escalation_level, raised.escalation_reason) == (
        EscalationLevel.PROVINCE, "Butuh alat berat provinsi")
    before = await incident_state(database_dsn)
    with pytest.raises(InvalidTransition):
        await service.incidents.escalate(incident.incident_id, "regency", "turun", actor="op1001")
    with pytest.raises(ValidationError):
        await service.incidents.escalate(incident.incident_id, "nasional", "x", actor="op1001")
    assert await incident_state(database_dsn) == before
    escalations = [(e.detail["from"], e.detail["to"])
                   for e in await service.incidents.timeline(incident.incident_id)
                   if e.kind == "escalated"]
    assert escalations == [("village", "sub_district"), ("sub_district", "province")]


async def test_sla_breaches(database_dsn: str, database: Database,
                            service: IncidentServices) -> None:
    await add_calls(
        database_dsn,
        call_facts("late.fire", answered_at=ago(minutes=10), talk=None),
        call_facts("fresh.fire", answered_at=ago(minutes=1), talk=None),
        call_facts("late.med", answered_at=ago(minutes=8), talk=None, skill="medical"),
        call_facts("slow.complaint", answered_at=ago(hours=2), talk=None, category="complaint",
                   skill="general"),
        call_facts("late.closed", answered_at=ago(minutes=30), talk=None),
    )
    assert len(await service.incidents.create_for_answered_calls()) == 5
    ids = {row["call_id"]: row["incident_id"]
           for row in await fetch(database_dsn, "SELECT * FROM incident_calls")}
    # Dispatched now, eight minutes after the answer: late, and still counted.
    await service.incidents.change_status(ids["late.med"], "verified", actor="op1001")
    await service.dispatches.dispatch(ids["late.med"], "ambulans", actor="op1001")
    await service.incidents.change_status(ids["late.closed"], "cancelled", actor="op1001")
    open_ids = [i.incident_id for i in await service.incidents.open_incidents()]
    assert sorted(open_ids) == sorted(ids[c] for c in ("late.fire", "fresh.fire", "late.med",
                                                      "slow.complaint"))
    assert open_ids[-1] == ids["slow.complaint"]  # a complaint is less urgent
    now = datetime.now(UTC)
    breaches = await service.dispatches.sla_breaches(now)
    by_id = {b.incident.incident_id: b.clock for b in breaches}
    assert set(by_id) == {ids["late.fire"], ids["late.med"]}
    fire = by_id[ids["late.fire"]]
    assert fire.dispatched_at is None
    assert timedelta(minutes=4) < fire.overdue < timedelta(minutes=6)
    assert by_id[ids["late.med"]].dispatched_at is not None
    fresh = await service.incidents.get(ids["fresh.fire"])
    clock = service.dispatches.sla_clock(fresh, now)
    assert clock is not None and not clock.breached
    slow = await service.incidents.get(ids["slow.complaint"])
    assert service.dispatches.sla_clock(slow, now) is None
    # Later, the fresh fire is past its target too.
    later = await service.dispatches.sla_breaches(now + timedelta(minutes=10))
    assert ids["fresh.fire"] in {b.incident.incident_id for b in later}
    assert await make_service(database, dispatch_targets={}).dispatches.sla_breaches() == []


async def test_when_the_only_agency_declines_the_dispatch_target_counts_again(
    database_dsn: str, service: IncidentServices
) -> None:
    # A fire answered two minutes ago is dispatched at once to the fire brigade, which
    # declines. Counted as dispatched on time, it never showed among the overdue, though no
    # agency was on its way: the clock runs from the answer again until one is dispatched.
    await add_calls(database_dsn, call_facts("declined.fire", answered_at=ago(minutes=2),
                                             talk=None))
    iid = (await service.incidents.create_for_call("declined.fire")).incident_id
    await service.incidents.change_status(iid, "verified", actor="op1001")
    damkar = await service.dispatches.dispatch(iid, "damkar", actor="op1001")
    pdam = await service.dispatches.dispatch(iid, "pdam", actor="op1001")
    # Another agency still on its way: the incident stays dispatched when it was.
    await service.dispatches.advance_dispatch(pdam.dispatch_id, "cancelled", actor="op1001",
                                              note="Salah pilih instansi")
    kept = await service.incidents.get(iid)
    assert kept.dispatched_at is not None
    await service.dispatches.advance_dispatch(damkar.dispatch_id, "cancelled", actor="op1001",
                                              note="Semua unit sedang keluar")
    # Nobody on its way: no longer "Diteruskan ke instansi" but verified, waiting for one.
    waiting = await service.incidents.get(iid)
    assert (waiting.status, waiting.dispatched_at) == (Status.VERIFIED, None)
    assert waiting.version == kept.version + 2  # the clock, the status
    back = (await service.incidents.timeline(iid))[-1]
    assert (back.actor, back.kind, back.detail) == ("op1001", "status", {
        "from": "dispatched", "to": "verified", "dispatch_id": damkar.dispatch_id,
        "reason": "no_agency_left"})
    later = datetime.now(UTC) + timedelta(minutes=10)
    assert iid in {b.incident.incident_id for b in await service.dispatches.sla_breaches(later)}
    events = [e for e in await service.incidents.timeline(iid) if e.kind == "dispatch"]
    assert [e.detail.get("dispatch_clock_restarted") for e in events] == [
        None, None, None, True]

    again = await service.dispatches.dispatch(iid, "damkar", actor="op1002")
    dispatched = await service.incidents.get(iid)
    assert dispatched.status is Status.DISPATCHED and dispatched.dispatched_at is not None
    assert dispatched.dispatched_at >= again.notified_at
    assert dispatched.version == waiting.version + 1
    clock = service.dispatches.sla_clock(dispatched, later)
    assert clock is not None and not clock.breached


async def test_rating(database_dsn: str, service: IncidentServices) -> None:
    await answered(database_dsn, "rate.1")
    incident = await service.incidents.create_for_call("rate.1")
    iid = incident.incident_id
    with pytest.raises(InvalidTransition, match="setelah insiden selesai"):
        await service.incidents.record_rating(iid, 4, actor="survey")
    for status in ("verified", "dispatched", "on_scene", "resolved"):
        await service.incidents.change_status(iid, status, actor="op1001")
    with pytest.raises(ValidationError):
        await service.incidents.record_rating(iid, 6, actor="survey")
    rated = await service.incidents.record_rating(iid, "4", actor="survey")
    assert rated.rating == 4 and rated.rated_at is not None
    assert (await service.incidents.record_rating(iid, 4, actor="survey")).version == rated.version
    with pytest.raises(InvalidTransition, match="sudah dinilai"):
        await service.incidents.record_rating(iid, 1, actor="survey")
    ratings = [e.detail for e in await service.incidents.timeline(iid) if e.kind == "rating"]
    assert ratings == [{"rating": 4}]


async def test_attachments(database_dsn: str, service: IncidentServices) -> None:
    await answered(database_dsn, "doc.1")
    incident = await service.incidents.create_for_call("doc.1")
    sha = "0123456789abcdef" * 4
    attachment = await service.incidents.add_attachment(
        incident.incident_id, filename="damkar-tiba.jpg", content_type="image/jpeg",
        size_bytes=204_800, sha256=sha, stored_path="2026/11/23/1-damkar-tiba.jpg",
        actor="damkar-pos1")
    assert (attachment.filename, attachment.uploaded_by) == ("damkar-tiba.jpg", "damkar-pos1")
    before = await incident_state(database_dsn)
    with pytest.raises(ValidationError) as caught:
        await service.incidents.add_attachment(
            incident.incident_id, filename="../../etc/passwd", content_type="text/plain",
            size_bytes=10, sha256=sha, stored_path="x", actor="damkar-pos1")
    assert caught.value.field == "filename"
    with pytest.raises(ValidationError, match="sudah dipakai"):
        await service.incidents.add_attachment(
            incident.incident_id, filename="lagi.jpg", content_type="image/jpeg",
            size_bytes=10, sha256=sha, stored_path="2026/11/23/1-damkar-tiba.jpg",
            actor="damkar-pos1")
    with pytest.raises(ValidationError, match="terlalu besar"):
        await service.incidents.add_attachment(
            incident.incident_id, filename="video.mp4", content_type="video/mp4",
            size_bytes=10**9, sha256=sha, stored_path="v.mp4", actor="damkar-pos1")
    with pytest.raises(IncidentNotFound):
        await service.incidents.add_attachment(
            777_777, filename="a.jpg", content_type="image/jpeg", size_bytes=10, sha256=sha,
            stored_path="a.jpg", actor="damkar-pos1")
    assert await incident_state(database_dsn) == before
    assert await service.incidents.attachments(incident.incident_id) == [attachment]


async def test_timeline_is_append_only(database_dsn: str, database_owner_dsn: str,
                                       service: IncidentServices) -> None:
    await answered(database_dsn, "ao.1")
    await service.incidents.create_for_call("ao.1")
    line = await asyncpg.connect(database_dsn)
    try:  # the line's role is not granted it; the owner is refused by the trigger
        for statement in ("UPDATE incident_events SET actor = 'x'", "DELETE FROM incident_events",
                          "TRUNCATE incident_events"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await line.execute(statement)
    finally:
        await line.close()
    connection = await asyncpg.connect(database_owner_dsn)
    try:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await connection.execute("UPDATE incident_events SET actor = 'someone else'")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await connection.execute("DELETE FROM incident_events")
    finally:
        await connection.close()


async def test_agencies_are_configurable(service: IncidentServices) -> None:
    codes = [a.code for a in await service.directory.agencies()]
    assert sorted(codes) == ["ambulans", "bpbd", "damkar", "dinsos", "pdam", "polisi",
                             "satpol_pp"]
    await service.directory.save_agency("basarnas", "Basarnas")
    await service.directory.save_agency("dinsos", "Dinas Sosial", active=False)
    agencies = {a.code: a for a in await service.directory.agencies()}
    assert agencies["basarnas"].active and not agencies["dinsos"].active
    with pytest.raises(ValidationError):
        await service.directory.save_agency("Bad Code", "x")
    with pytest.raises(ValidationError, match="tidak dikenal"):
        await service.directory.add_recipient("tni", name="Danramil", contact="0812")
