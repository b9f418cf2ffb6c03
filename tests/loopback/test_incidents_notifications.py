"""Dispatch notifications through the database outbox, to a real webhook on 127.0.0.1 that
fails, refuses, stalls and then works."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from telephony.db.connection import Database
from telephony.incidents.dispatches import Dispatch
from telephony.incidents.errors import InvalidTransition
from telephony.incidents.notifiers import LogNotifier, WebhookNotifier
from telephony.incidents.outbox import DeliveryReport, Notification
from telephony.incidents.services import IncidentServices
from tests.support.calls import answered
from tests.support.db import fetch
from tests.support.incidents import make_service
from tests.support.net import free_port
from tests.support.polling import eventually


@dataclass
class Webhook:
    """A local endpoint answering with the queued statuses, then 200; or, ``moved``, with a
    redirect to a page that answers 200 to anything."""

    statuses: list[int]
    received: list[dict[str, Any]] = field(default_factory=list)
    stall: asyncio.Event | None = None
    moved: bool = False
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append({"body": await request.json(),
                              "key": request.headers.get("Idempotency-Key")})
        if self.moved:
            raise web.HTTPFound("/page")
        if self.stall is not None:
            await self.stall.wait()
        return web.json_response({}, status=self.statuses.pop(0) if self.statuses else 200)

    async def page(self, _: web.Request) -> web.Response:
        return web.Response(text="<html>Masuk</html>", content_type="text/html")


@contextlib.asynccontextmanager
async def webhook(statuses: list[int], *, stall: bool = False, moved: bool = False
                  ) -> AsyncIterator[Webhook]:
    hook = Webhook(list(statuses), stall=asyncio.Event() if stall else None, moved=moved)
    app = web.Application()
    app.router.add_post("/notify", hook.handle)
    app.router.add_route("*", "/page", hook.page)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    hook.url = f"http://127.0.0.1:{port}/notify"
    try:
        yield hook
    finally:
        if hook.stall is not None:
            hook.stall.set()
        await runner.cleanup()


async def dispatched_fire(database_dsn: str, service: IncidentServices, call_id: str) -> int:
    """A verified fire dispatched to the fire brigade; returns the incident id."""
    await answered(database_dsn, call_id)
    incident = await service.incidents.create_for_call(call_id)
    await service.incidents.change_status(incident.incident_id, "verified", actor="op1001")
    await service.dispatches.dispatch(incident.incident_id, "damkar", actor="op1001")
    return incident.incident_id


async def brigade_told(database_dsn: str, service: IncidentServices, call_id: str
                       ) -> tuple[int, Dispatch]:
    """A fire dispatched to the fire brigade, whose duty officer has the call-out: the
    incident's id and the dispatch."""
    await service.directory.add_recipient("damkar", name="Piket", contact="0812")
    incident_id = await dispatched_fire(database_dsn, service, call_id)
    assert await service.outbox.deliver_notifications() == DeliveryReport(sent=1)
    damkar, = await service.dispatches.dispatches(incident_id)
    return incident_id, damkar


async def outbox(database_dsn: str) -> list[dict[str, Any]]:
    rows = await fetch(database_dsn, "SELECT * FROM notification_outbox "
                                     "ORDER BY notification_id")
    return [dict(row) for row in rows]


async def test_webhook_fails_then_succeeds_from_the_outbox(
    database_dsn: str, database: Database
) -> None:
    async with webhook([500]) as hook:
        notifier = WebhookNotifier(hook.url, timeout=2.0)
        service = make_service(database, notifier, notify_retry_seconds=0.5)
        try:
            await service.directory.add_recipient("damkar", name="Kabid Damkar", role="Kabid",
                                                  contact="081200000001", report_type="fire")
            incident_id = await dispatched_fire(database_dsn, service, "hook.1")
            assert await service.outbox.deliver_notifications() == DeliveryReport(retried=1)
            (row,) = await outbox(database_dsn)
            assert (row["state"], row["attempts"], row["last_error"]) == (
                "pending", 1, f"HTTP 500 from {hook.url}")
            # Not due yet: nothing is sent twice in a row.
            assert await service.outbox.deliver_notifications() == DeliveryReport()
            await asyncio.sleep(0.7)
            assert await service.outbox.deliver_notifications() == DeliveryReport(sent=1)
            assert await service.outbox.deliver_notifications() == DeliveryReport()
        finally:
            await notifier.close()
    (row,) = await outbox(database_dsn)
    assert (row["state"], row["attempts"], row["last_error"]) == ("sent", 2, "")
    assert row["sent_at"] is not None
    first, second = hook.received
    assert first["key"] == second["key"] == f"siaga112-notification-{row['notification_id']}"
    assert (first["body"]["attempt"], second["body"]["attempt"]) == (1, 2)
    body = second["body"]
    assert (body["incident_id"], body["agency"]["code"], body["recipient"]["name"]) == (
        incident_id, "damkar", "Kabid Damkar")
    assert body["message"].startswith(f"[112] Insiden #{incident_id} - Kebakaran")
    assert await service.outbox.outbox_counts() == {"pending": 0, "sent": 1, "failed": 0,
                                                    "withdrawn": 0}


async def test_unreachable_and_stalled_endpoints_are_retried_then_given_up(
    database_dsn: str, database: Database
) -> None:
    refused = WebhookNotifier(f"http://127.0.0.1:{free_port()}/notify", timeout=2.0)
    service = make_service(database, refused, notify_retry_seconds=0.05,
                           notify_max_attempts=2)
    try:
        await service.directory.add_recipient("damkar", name="Operator Damkar",
                                              contact="081200000002")
        await dispatched_fire(database_dsn, service, "refused.1")
        assert await service.outbox.deliver_notifications() == DeliveryReport(retried=1)
        await asyncio.sleep(0.2)
        assert await service.outbox.deliver_notifications() == DeliveryReport(failed=1)
        await asyncio.sleep(0.2)
        assert await service.outbox.deliver_notifications() == DeliveryReport()
    finally:
        await refused.close()
    (row,) = await outbox(database_dsn)
    assert (row["state"], row["attempts"]) == ("failed", 2)
    assert "ClientConnectorError" in row["last_error"]

    async with webhook([], stall=True) as hook:
        stalled = WebhookNotifier(hook.url, timeout=0.3)
        service = make_service(database, stalled, notify_retry_seconds=60)
        try:
            await dispatched_fire(database_dsn, service, "stalled.1")
            assert await service.outbox.deliver_notifications() == DeliveryReport(retried=1)
        finally:
            await stalled.close()
    last = (await outbox(database_dsn))[-1]
    assert last["state"] == "pending" and "TimeoutError" in last["last_error"]
    assert await service.outbox.outbox_counts() == {"pending": 1, "sent": 0, "failed": 1,
                                                    "withdrawn": 0}


@dataclass
class Collecting:
    """A notifier that keeps what it is given."""

    sent: list[Notification] = field(default_factory=list)

    async def send(self, notification: Notification) -> None:
        self.sent.append(notification)

    async def close(self) -> None:
        pass


async def test_recipients_by_agency_and_report_type(
    database_dsn: str, database: Database
) -> None:
    notifier = Collecting()
    service = make_service(database, notifier)
    await service.directory.add_recipient("damkar", name="Kepala Dinas", role="Kepala Dinas",
                                          contact="0811")
    await service.directory.add_recipient("damkar", name="Kabid Kebakaran", role="Kabid",
                                          contact="0812", report_type="fire")
    await service.directory.add_recipient("damkar", name="Kabid Penyelamatan", role="Kabid",
                                          contact="0813", report_type="wasp_nest")
    await service.directory.add_recipient("pdam", name="Direktur PDAM", contact="0814")
    incident_id = await dispatched_fire(database_dsn, service, "who.1")
    assert await service.outbox.deliver_notifications() == DeliveryReport(sent=2)
    assert sorted(n.payload["recipient"]["name"] for n in notifier.sent) == [
        "Kabid Kebakaran", "Kepala Dinas"]
    assert {n.payload["incident_id"] for n in notifier.sent} == {incident_id}
    # An agency without recipients can still be dispatched; nobody is notified.
    await service.dispatches.dispatch(incident_id, "polisi", actor="op1001")
    assert await service.outbox.deliver_notifications() == DeliveryReport()


async def test_log_notifier_logs_the_message(
    database_dsn: str, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    service = make_service(database, LogNotifier())
    await service.directory.add_recipient("damkar", name="Kepala Dinas", contact="0811")
    await dispatched_fire(database_dsn, service, "log.1")
    assert await service.outbox.deliver_notifications() == DeliveryReport(sent=1)
    assert "to Kepala Dinas (0811): [112] Insiden #1 - Kebakaran" in caplog.text


async def test_a_notification_not_yet_delivered_is_withdrawn_once_the_incident_is_cancelled(
    database_dsn: str, database: Database
) -> None:
    # The fire brigade's gateway is down when the operator dispatches; minutes later the
    # report turns out to be a prank. When the gateway is back, the brigade must not be sent
    # out to it: what was not delivered yet is withdrawn (kept, and counted apart from the
    # failures the engineers are alerted to). A dispatch to an incident still open is sent.
    async with webhook([503]) as hook:
        notifier = WebhookNotifier(hook.url, timeout=2.0)
        service = make_service(database, notifier, notify_retry_seconds=0.05)
        try:
            await service.directory.add_recipient("damkar", name="Kabid Damkar",
                                                  contact="081200000001")
            prank = await dispatched_fire(database_dsn, service, "prank.1")
            assert await service.outbox.deliver_notifications() == DeliveryReport(retried=1)
            await service.incidents.change_status(prank, "prank", actor="spv01")
            real = await dispatched_fire(database_dsn, service, "real.1")
            await asyncio.sleep(0.1)
            assert await service.outbox.deliver_notifications() == DeliveryReport(
                sent=1, withdrawn=1)
            await asyncio.sleep(0.1)
            assert await service.outbox.deliver_notifications() == DeliveryReport()
        finally:
            await notifier.close()
    assert [r["body"]["incident_id"] for r in hook.received] == [prank, real]
    withdrawn, sent = await outbox(database_dsn)
    assert (withdrawn["incident_id"], withdrawn["state"], withdrawn["attempts"]) == (
        prank, "withdrawn", 1)
    assert withdrawn["last_error"] == "withdrawn: the incident is prank"
    assert (sent["incident_id"], sent["state"]) == (real, "sent")
    assert await service.outbox.outbox_counts() == {
        "pending": 0, "sent": 1, "failed": 0, "withdrawn": 1}


async def test_a_redirect_from_the_gateway_is_no_delivery(
    database_dsn: str, database: Database
) -> None:
    # A gateway moved (http to https, a new path) answers every POST with a redirect; a
    # client that follows it turns the POST into a GET of a page that answers 200, and the
    # notification the agency never got was marked sent. A redirect is a failed attempt,
    # retried, with the status in the error for the engineer who fixes the URL.
    async with webhook([], moved=True) as hook:
        notifier = WebhookNotifier(hook.url, timeout=2.0)
        service = make_service(database, notifier, notify_retry_seconds=60)
        try:
            await service.directory.add_recipient("damkar", name="Kabid Damkar",
                                                  contact="081200000001")
            await dispatched_fire(database_dsn, service, "moved.1")
            assert await service.outbox.deliver_notifications() == DeliveryReport(retried=1)
        finally:
            await notifier.close()
    (row,) = await outbox(database_dsn)
    assert (row["state"], row["last_error"]) == ("pending", f"HTTP 302 from {hook.url}")


async def test_a_recipient_stopped_before_delivery_is_not_sent_the_notification(
    database_dsn: str, database: Database
) -> None:
    # The fire brigade's duty officer left; his number now belongs to someone else. The admin
    # stops him while a notification to him waits for the gateway: it is withdrawn, not sent
    # to a stranger with the caller's number and place. His colleague still gets hers.
    async with webhook([503, 503]) as hook:
        notifier = WebhookNotifier(hook.url, timeout=2.0)
        service = make_service(database, notifier, notify_retry_seconds=0.05)
        try:
            left = await service.directory.add_recipient("damkar", name="Piket lama",
                                                         contact="081200000001")
            await service.directory.add_recipient("damkar", name="Piket baru",
                                                  contact="081200000002")
            await dispatched_fire(database_dsn, service, "stopped.1")
            assert await service.outbox.deliver_notifications() == DeliveryReport(retried=2)
            await service.directory.set_recipient_active(left.recipient_id, False)
            await asyncio.sleep(0.1)
            assert await service.outbox.deliver_notifications() == DeliveryReport(
                sent=1, withdrawn=1)
        finally:
            await notifier.close()
    assert sorted(r["body"]["recipient"]["name"] for r in hook.received) == [
        "Piket baru", "Piket baru", "Piket lama"]
    stopped, sent = await outbox(database_dsn)
    assert (stopped["state"], stopped["last_error"]) == (
        "withdrawn", "withdrawn: the recipient is stopped")
    assert sent["state"] == "sent"


async def test_agencies_on_their_way_are_told_to_stand_down_when_the_report_is_a_prank(
    database_dsn: str, database: Database
) -> None:
    # A fire is dispatched to the fire brigade (told, and it accepted), the ambulance (told,
    # came and finished), the police (no recipient: accepted on the phone) and the water
    # utility (its gateway down: never told). Then the caller admits it was a prank. The
    # brigade's crew kept driving and its dispatch read "Diterima": now the brigade is told
    # to stand down, once, the police's dispatch says to phone them, the water utility's
    # pending call-out is withdrawn, not followed by a stand-down, and the ambulance that
    # finished is left alone.
    async with webhook([200, 200, 503]) as hook:
        notifier = WebhookNotifier(hook.url, timeout=2.0)
        service = make_service(database, notifier, notify_retry_seconds=0.05)
        try:
            for agency in ("damkar", "ambulans", "pdam"):
                await service.directory.add_recipient(agency, name=f"Piket {agency}",
                                                      contact="081200000001")
            prank = await dispatched_fire(database_dsn, service, "standdown.1")
            assert await service.outbox.deliver_notifications() == DeliveryReport(sent=1)
            damkar, = await service.dispatches.dispatches(prank)
            await service.dispatches.advance_dispatch(damkar.dispatch_id, "acknowledged",
                                                      actor="op1001")
            ambulans = await service.dispatches.dispatch(prank, "ambulans", actor="op1001")
            assert await service.outbox.deliver_notifications() == DeliveryReport(sent=1)
            for step in ("on_scene", "done"):
                await service.dispatches.advance_dispatch(ambulans.dispatch_id, step,
                                                          actor="op1001")
            polisi = await service.dispatches.dispatch(prank, "polisi", actor="op1001")
            await service.dispatches.advance_dispatch(polisi.dispatch_id, "acknowledged",
                                                      actor="op1001")
            await service.dispatches.dispatch(prank, "pdam", actor="op1001")
            assert await service.outbox.deliver_notifications() == DeliveryReport(retried=1)

            await service.incidents.change_status(prank, "prank", actor="spv01",
                                                  note="penelepon mengaku iseng")
            states = {d.agency_code: d.state.value
                      for d in await service.dispatches.dispatches(prank)}
            assert states == {"damkar": "cancelled", "ambulans": "done",
                              "polisi": "cancelled", "pdam": "cancelled"}
            assert await service.outbox.deliver_notifications() == DeliveryReport(
                sent=1, withdrawn=1)
            # A retried request changes nothing and sends nothing again.
            with pytest.raises(InvalidTransition):
                await service.incidents.change_status(prank, "prank", actor="spv01")
            assert await service.outbox.deliver_notifications() == DeliveryReport()
            stand_downs = await service.dispatches.stand_downs(prank)
        finally:
            await notifier.close()
    told = [r["body"] for r in hook.received if r["body"]["kind"] == "stand_down"]
    assert len(told) == 1
    (body,) = told
    assert (body["agency"]["code"], body["recipient"]["name"], body["dispatch_id"]) == (
        "damkar", "Piket damkar", damkar.dispatch_id)
    assert body["message"].startswith(f"[112] PEMBATALAN Insiden #{prank} - Kebakaran")
    assert "laporan iseng" in body["message"]
    assert "tidak perlu datang" in body["message"]
    assert body["message"].endswith("Keterangan: penelepon mengaku iseng.")
    assert stand_downs == {damkar.dispatch_id: {"sent": 1}}
    called_off = {e.detail["agency"]: e.detail for e in await service.incidents.timeline(prank)
                  if e.kind == "dispatch" and "stood_down" in e.detail}
    assert set(called_off) == {"damkar", "polisi", "pdam"}
    assert called_off["damkar"]["from"] == "acknowledged"
    assert called_off["damkar"]["stand_down_notices"] == 1
    assert called_off["polisi"]["phone_agency"] is True
    assert (called_off["pdam"]["stand_down_notices"], "phone_agency" in called_off["pdam"]) == (
        0, False)


async def test_two_supervisors_calling_off_at_once_stand_the_agency_down_once(
    database_dsn: str, database: Database
) -> None:
    service = make_service(database)
    await service.directory.add_recipient("damkar", name="Piket", contact="081200000001")
    incident_id = await dispatched_fire(database_dsn, service, "standdown.2")
    assert await service.outbox.deliver_notifications() == DeliveryReport(sent=1)
    results = await asyncio.gather(
        service.incidents.change_status(incident_id, "prank", actor="spv01"),
        service.incidents.change_status(incident_id, "cancelled", actor="spv02"),
        return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["Incident", "InvalidTransition"]
    assert await service.outbox.deliver_notifications() == DeliveryReport(sent=1)
    kinds = [row["payload"] for row in await outbox(database_dsn)]
    assert [json.loads(p)["kind"] for p in kinds] == ["dispatch", "stand_down"]


async def test_a_call_out_in_flight_when_the_incident_is_called_off_is_followed_by_a_stand_down(
    database_dsn: str, database: Database
) -> None:
    # The gateway is slow: the brigade's call-out is on its way when the supervisor marks the
    # report a prank. Nothing was delivered yet, so nobody was told to stand down; then the
    # gateway delivers the call-out, and the crew set out. It is followed by a stand-down.
    async with webhook([], stall=True) as hook:
        assert hook.stall is not None
        notifier = WebhookNotifier(hook.url, timeout=5.0)
        service = make_service(database, notifier, notify_timeout=5.0)
        try:
            await service.directory.add_recipient("damkar", name="Piket", contact="0812")
            incident_id = await dispatched_fire(database_dsn, service, "standdown.3")
            drain = asyncio.create_task(service.outbox.deliver_notifications())

            async def in_flight() -> bool | None:
                return True if hook.received else None

            await eventually("the call-out reaching the gateway", in_flight, within=5.0,
                             interval=0.02)
            await service.incidents.change_status(incident_id, "prank", actor="spv01")
            hook.stall.set()
            assert await drain == DeliveryReport(sent=1)
            assert await service.outbox.deliver_notifications() == DeliveryReport(sent=1)
            assert await service.outbox.deliver_notifications() == DeliveryReport()
        finally:
            await notifier.close()
    kinds = [r["body"]["kind"] for r in hook.received]
    assert kinds == ["dispatch", "stand_down"]
    assert "laporan iseng" in hook.received[1]["body"]["message"]


async def test_a_dispatch_cancelled_by_the_operator_tells_the_agency_not_to_come(
    database_dsn: str, database: Database
) -> None:
    # The operator sent the fire brigade by mistake (it was the police's case); the brigade's
    # duty officer already has the message. Cancelling the dispatch tells him not to come.
    service = make_service(database)
    incident_id, damkar = await brigade_told(database_dsn, service, "standdown.4")
    await service.dispatches.advance_dispatch(damkar.dispatch_id, "cancelled", actor="op1001",
                                              note="salah instansi")
    assert await service.outbox.deliver_notifications() == DeliveryReport(sent=1)
    _, stand_down = await outbox(database_dsn)
    payload = json.loads(stand_down["payload"])
    assert payload["kind"] == "stand_down"
    assert "pengiriman ke instansi ini dibatalkan" in payload["message"]
    assert payload["message"].endswith("Keterangan: salah instansi.")
    (event,) = [e.detail for e in await service.incidents.timeline(incident_id)
                if e.kind == "dispatch" and e.detail.get("to") == "cancelled"]
    assert event["stand_down_notices"] == 1


async def test_an_agency_dispatched_again_is_not_turned_back_by_the_earlier_stand_down(
    database_dsn: str, database: Database
) -> None:
    # The operator cancels the brigade's dispatch (it did not answer), then the brigade calls
    # back and is dispatched again before the outbox runs: the old stand-down and the new
    # call-out went out together, and the crew, in whichever order they arrived, might turn
    # back. The newer call-out stands; the stand-down is withdrawn.
    service = make_service(database)
    incident_id, damkar = await brigade_told(database_dsn, service, "standdown.5")
    await service.dispatches.advance_dispatch(damkar.dispatch_id, "cancelled", actor="op1001",
                                              note="tidak menjawab")
    await service.dispatches.dispatch(incident_id, "damkar", actor="op1001")
    assert await service.outbox.deliver_notifications() == DeliveryReport(sent=1, withdrawn=1)
    rows = await outbox(database_dsn)
    assert [(json.loads(r["payload"])["kind"], r["state"], r["last_error"]) for r in rows] == [
        ("dispatch", "sent", ""),
        ("stand_down", "withdrawn", "withdrawn: the agency is dispatched again"),
        ("dispatch", "sent", "")]


async def test_a_dispatch_on_a_closed_incident_is_not_called_off_and_sends_no_stand_down(
    database_dsn: str, database: Database
) -> None:
    # The police handled the fire's aftermath; the brigade's dispatch, its call-out
    # delivered, was never updated, and the incident was resolved and closed. Tidying up,
    # the operator cancelled the brigade's dispatch: the brigade's duty officer was sent
    # "PEMBATALAN Insiden #..." for an incident the centre had closed, its crew long back.
    # A closed incident's dispatch may be recorded done, never called off: refused in
    # words, nothing written, nothing sent.
    service = make_service(database)
    incident_id, damkar = await brigade_told(database_dsn, service, "standdown.6")
    polisi = await service.dispatches.dispatch(incident_id, "polisi", actor="op1001")
    await service.dispatches.advance_dispatch(polisi.dispatch_id, "on_scene", actor="op1001")
    for status in ("resolved", "closed"):
        await service.incidents.change_status(incident_id, status, actor="op1001")
    before = await service.incidents.timeline(incident_id)
    with pytest.raises(InvalidTransition, match="Insiden sudah ditutup: pengiriman tidak "
                                                "dapat dibatalkan"):
        await service.dispatches.advance_dispatch(damkar.dispatch_id, "cancelled",
                                                  actor="op1001", note="rapikan")
    assert await service.outbox.deliver_notifications() == DeliveryReport()
    assert [json.loads(r["payload"])["kind"] for r in await outbox(database_dsn)] == [
        "dispatch"]
    assert await service.incidents.timeline(incident_id) == before
    # What the brigade did is recorded done instead.
    done = await service.dispatches.advance_dispatch(damkar.dispatch_id, "done",
                                                     actor="op1001")
    assert done.state.value == "done"
