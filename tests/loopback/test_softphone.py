"""The browser softphone's server side over a real PostgreSQL: the PJSIP views Asterisk reads
a browser phone from, the credentials a desk page gets (operators with a browser desk only,
CSRF-checked, a new secret each time and only its digest kept), logging out ending them, the
line taking a lost browser desk out of its queues, and the watcher that decides when."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from ivr.menu import load_menu
from telephony.ami.actions import AmiActionError
from telephony.ami.tracker import QueueSnapshot
from telephony.calls.facts import OperatorStateChanged
from telephony.desks.operators import PHONE_LOST_REASON
from telephony.desks.phones import PhoneKind, RtpTimeouts, digest
from telephony.desks.service import assign_desk, renew_phone_secret, set_browser_media_address
from telephony.desks.watch import PhoneWatcher
from telephony.web.context import CONTEXT
from telephony.web.routing import CSRF_COOKIE, CSRF_HEADER
from tests.support.console import Console, ConsoleFactory
from tests.support.db import fetch
from tests.support.polling import eventually
from tests.support.web import Browser, conforms

BROWSER_DESK = "PJSIP/op2001"
DESK_PHONE = "PJSIP/op2002"
CREDENTIALS = "/api/desk/softphone"


async def softphone(console_factory: ConsoleFactory) -> Console:
    return await console_factory(softphone=True)


async def credentials(browser: Browser, *, csrf: bool = True) -> tuple[int, dict[str, object]]:
    headers = {CSRF_HEADER: browser.cookie(CSRF_COOKIE) or ""} if csrf else {}
    response = await browser.http.post(CREDENTIALS, headers=headers, allow_redirects=False)
    body = await response.json() if response.content_type == "application/json" else {}
    if response.status == 200:
        assert response.headers["Cache-Control"] == "no-store"
    return response.status, body


async def stored_digest(console: Console, interface: str) -> str:
    rows = await fetch(console.dsn, "SELECT md5_cred FROM phone_secrets WHERE operator = $1",
                       interface)
    return str(rows[0]["md5_cred"])


# -- what Asterisk reads ----------------------------------------------------------------------


async def test_a_browser_phone_is_a_webrtc_endpoint_and_a_desk_phone_stays_as_it_was(
        console_factory: ConsoleFactory, database_owner_dsn: str) -> None:
    # The ps_* views are Asterisk's (its own role reads them); the line's role is not granted.
    asterisk_view = database_owner_dsn
    console = await softphone(console_factory)
    realm = console.settings.sip_realm
    ctx = console.client.app[CONTEXT]
    for username in ("wati", "budi"):
        await ctx.accounts.create(username, "operator", "kata-sandi-rahasia-112", actor="t")
    browser = await assign_desk(console.database, load_menu(), "wati", BROWSER_DESK,
                                {"medical": 5}, realm=realm, phone=PhoneKind.BROWSER)
    desk = await assign_desk(console.database, load_menu(), "budi", DESK_PHONE,
                             {"medical": 5}, realm=realm)
    # A browser's secret is never shown to anyone; a desk phone's is, once.
    assert browser.phone_secret is None and desk.phone_secret is not None
    timeouts = RtpTimeouts(browser=20, desk=25, desk_hold=300)
    await set_browser_media_address(console.database, "127.0.0.1", rtp_timeouts=timeouts)
    endpoints = {row["id"]: dict(row) for row in await fetch(
        asterisk_view, "SELECT * FROM ps_endpoints")}
    assert endpoints["op2001"]["webrtc"] == "yes"
    # A browser whose media stopped (died mid-call, no BYE) is hung up, held or not (0049).
    assert (endpoints["op2001"]["rtp_timeout"], endpoints["op2001"]["rtp_timeout_hold"]) == (
        "20", "20")
    assert endpoints["op2001"]["dtls_auto_generate_cert"] == "yes"
    assert endpoints["op2001"]["transport"] is None  # the WebSocket it registered on
    assert endpoints["op2001"]["media_address"] == "127.0.0.1"
    assert endpoints["op2001"]["bind_rtp_to_media_address"] == "yes"
    assert endpoints["op2001"]["allow"] == "alaw,ulaw"
    assert endpoints["op2002"] == {
        **endpoints["op2002"], "transport": "transport-udp", "webrtc": None,
        "dtls_auto_generate_cert": None, "media_address": None,
        "bind_rtp_to_media_address": None}
    # A desk phone whose media stopped (unplugged mid-call, no BYE) is hung up too, later
    # while held: a SIP phone may send nothing then (0049).
    assert (endpoints["op2002"]["rtp_timeout"], endpoints["op2002"]["rtp_timeout_hold"]) == (
        "25", "300")
    aors = {row["id"]: row["qualify_frequency"] for row in await fetch(
        asterisk_view, "SELECT * FROM ps_aors")}
    assert aors == {"op2001": "5", "op2002": "30"}
    # On a cluster node every phone is rung through the front it registered at (0022, 0023),
    # the browser too (over its WebSocket there): the node reaches the front over UDP, and the
    # browser's media binds to that transport's address, the node's own (one media address in
    # the shared views would be one node's), still WebRTC. No phone's Contact is rewritten to
    # the address its replies come from: that is the front's.
    await set_browser_media_address(console.database, "127.0.0.1", "10.0.0.10:5060",
                                    rtp_timeouts=timeouts)
    contacts = {row["id"]: row["contact"] for row in await fetch(
        asterisk_view, "SELECT * FROM ps_aors")}
    assert contacts == {"op2001": "sip:op2001@10.0.0.10:5060",
                        "op2002": "sip:op2002@10.0.0.10:5060"}
    clustered = {row["id"]: dict(row) for row in await fetch(
        asterisk_view, "SELECT * FROM ps_endpoints")}
    assert clustered["op2001"] == {
        **endpoints["op2001"], "transport": "transport-udp", "media_address": None,
        "bind_rtp_to_media_address": None, "rewrite_contact": None}
    assert clustered["op2002"] == {**endpoints["op2002"], "rewrite_contact": None}
    assert endpoints["op2002"]["rewrite_contact"] == "yes"  # without a front: NAT
    await set_browser_media_address(console.database, None,
                                    rtp_timeouts=RtpTimeouts(browser=45, desk=40, desk_hold=90))
    assert {row["contact"] for row in await fetch(asterisk_view, "SELECT * FROM ps_aors")} == {
        None}
    rows = await fetch(asterisk_view, "SELECT id, media_address, bind_rtp_to_media_address, "
                                    "rtp_timeout, rtp_timeout_hold FROM ps_endpoints")
    assert {row["id"]: dict(row) for row in rows} == {
        "op2001": {"id": "op2001", "media_address": None, "bind_rtp_to_media_address": None,
                   "rtp_timeout": "45", "rtp_timeout_hold": "45"},
        "op2002": {"id": "op2002", "media_address": None, "bind_rtp_to_media_address": None,
                   "rtp_timeout": "40", "rtp_timeout_hold": "90"}}

    # The desk phone becomes a browser: its typed secret stops working. And back: a new
    # secret to type, shown once.
    before = await stored_digest(console, DESK_PHONE)
    await assign_desk(console.database, load_menu(), "budi", DESK_PHONE, {"medical": 5},
                      realm=realm, phone=PhoneKind.BROWSER)
    assert await stored_digest(console, DESK_PHONE) != before
    back = await assign_desk(console.database, load_menu(), "budi", DESK_PHONE,
                             {"medical": 5}, realm=realm, phone=PhoneKind.DESK)
    assert back.phone_secret is not None
    assert await stored_digest(console, DESK_PHONE) == digest("op2002", realm,
                                                              back.phone_secret)
    # Nobody types a browser's secret: the admin cannot have one made.
    with pytest.raises(Exception, match="softphone"):
        await renew_phone_secret(console.database, "wati", realm)


# -- the credentials of a desk page -----------------------------------------------------------


async def test_a_browser_desk_page_gets_a_new_secret_each_time_and_only_its_digest_is_kept(
        console_factory: ConsoleFactory) -> None:
    console = await softphone(console_factory)
    operator = await console.user("wati", "operator", desk=True, phone=PhoneKind.BROWSER,
                                  interface=BROWSER_DESK)
    realm = console.settings.sip_realm
    status, first = await credentials(operator)
    assert status == 200, first
    conforms(first, "Softphone")
    assert first["username"] == "op2001" and first["realm"] == realm
    assert first["ws_url"] == console.settings.live_softphone_ws_url
    assert first["interface"] == BROWSER_DESK
    secret = str(first["secret"])
    assert len(secret) >= 32
    assert await stored_digest(console, BROWSER_DESK) == digest("op2001", realm, secret)
    rows = await fetch(console.dsn, "SELECT * FROM phone_secrets")
    assert secret not in repr([dict(r) for r in rows])
    # Another page (a reload, a second tab): a new secret; the first no longer registers.
    status, second = await credentials(operator)
    assert status == 200 and second["secret"] != secret
    assert await stored_digest(console, BROWSER_DESK) == digest("op2001", realm,
                                                                str(second["secret"]))
    audit = await fetch(console.dsn, "SELECT actor, action, object_id FROM audit_log "
                                     "WHERE action = 'desk.softphone'")
    assert [tuple(r) for r in audit] == [("wati", "desk.softphone", BROWSER_DESK)] * 2

    # The desk page carries the softphone, and its CSP the softphone's origin only.
    status, html, response = await operator.get("/console/operator")
    assert status == 200 and 'data-softphone="/api/desk/softphone"' in html
    assert "softphone.js" in html and "jssip.min.js" in html
    csp = response.headers["Content-Security-Policy"]
    assert re.search(r"connect-src 'self' wss://127\.0\.0\.1:\d+;", csp), csp
    assert "script-src 'self';" in csp


async def test_only_an_operator_at_a_browser_desk_gets_credentials(
        console_factory: ConsoleFactory) -> None:
    console = await softphone(console_factory)
    browser = await console.user("wati", "operator", desk=True, phone=PhoneKind.BROWSER,
                                 interface=BROWSER_DESK)
    before = await stored_digest(console, BROWSER_DESK)
    # Without the session's CSRF token: refused, nothing changed.
    assert (await credentials(browser, csrf=False))[0] == 403
    forged = await browser.http.post(CREDENTIALS, headers={CSRF_HEADER: "x" * 43})
    assert forged.status == 403
    # A body, however hostile, is no input here.
    junk = await browser.http.post(
        CREDENTIALS, data="<script>{'interface': 'PJSIP/op1'}\n\r", headers={
            CSRF_HEADER: browser.cookie(CSRF_COOKIE) or "", "Content-Type": "text/plain"})
    # It takes no input: the answer is the operator's own desk's, whatever was sent.
    assert junk.status == 200 and (await junk.json())["interface"] == BROWSER_DESK
    assert await stored_digest(console, BROWSER_DESK) != before
    assert len(await fetch(console.dsn, "SELECT * FROM phone_secrets")) == 1
    assert (await browser.http.get(CREDENTIALS)).status == 405
    for role in ("supervisor", "admin"):
        other = await console.user(f"x{role}", role)
        assert (await credentials(other))[0] == 403
    desk_phone = await console.user("budi", "operator", desk=True, phone=PhoneKind.DESK,
                                    interface=DESK_PHONE)
    status, body = await credentials(desk_phone)
    assert status == 409 and "telepon meja" in str(body)
    status, html, _ = await desk_phone.get("/console/operator")
    assert status == 200 and "data-softphone" not in html and "jssip" not in html
    no_desk = await console.user("tono", "operator")
    assert (await credentials(no_desk))[0] == 409
    anonymous = await console.make_browser()
    assert (await credentials(anonymous))[0] == 401


async def test_a_site_without_a_softphone_says_so(console_factory: ConsoleFactory) -> None:
    console = await console_factory()  # softphone_ws_url unset (as on a site without one)
    operator = await console.user("wati", "operator", desk=True, phone=PhoneKind.BROWSER,
                                  interface=BROWSER_DESK)
    status, body = await credentials(operator)
    assert status == 409 and "softphone_ws_url" in str(body)
    status, html, response = await operator.get("/console/operator")
    assert status == 200 and "data-softphone" not in html and "softphone_ws_url" in html
    assert "wss:" not in response.headers["Content-Security-Policy"]


# -- logging out --------------------------------------------------------------------------------


async def test_logging_out_ends_a_browser_desk_and_leaves_a_desk_phone_alone(
        console_factory: ConsoleFactory) -> None:
    console = await softphone(console_factory)
    operator = await console.user("wati", "operator", desk=True, phone=PhoneKind.BROWSER,
                                  interface=BROWSER_DESK)
    status, issued = await credentials(operator)
    assert status == 200
    await operator.flash(await operator.post("/console/desk/join", {"skill": "medical"}))
    joined = {m["queue"] for m in await fetch(
        console.dsn, "SELECT queue FROM queue_members WHERE operator = $1 "
                     "AND state <> 'logged_out'", BROWSER_DESK)}
    assert joined
    response = await operator.post("/console/logout", {})
    assert response.status == 303
    # The page's secret no longer registers, and nobody is left in the queues to ring.
    assert await stored_digest(console, BROWSER_DESK) != digest(
        "op2001", console.settings.sip_realm, str(issued["secret"]))
    removed = {a["Queue"] for a in console.asterisk.actions if a["Action"] == "QueueRemove"}
    assert removed == joined
    audit = await fetch(console.dsn, "SELECT actor, action, detail FROM audit_log "
                                     "WHERE action IN ('desk.leave', 'logout') ORDER BY audit_id")
    assert [(r["actor"], r["action"]) for r in audit] == [("wati", "desk.leave"),
                                                          ("wati", "logout")]

    console.asterisk.actions.clear()
    desk_phone = await console.user("budi", "operator", desk=True, phone=PhoneKind.DESK,
                                    interface=DESK_PHONE)
    await desk_phone.flash(await desk_phone.post("/console/desk/join", {"skill": "fire"}))
    kept = await stored_digest(console, DESK_PHONE)
    console.asterisk.actions.clear()
    assert (await desk_phone.post("/console/logout", {})).status == 303
    assert console.asterisk.actions == [] and await stored_digest(console, DESK_PHONE) == kept


# -- a browser desk whose phone is gone ---------------------------------------------------------


async def test_the_line_takes_a_lost_browser_desk_out_and_the_screen_says_why(
        console_factory: ConsoleFactory) -> None:
    console = await softphone(console_factory)
    desks = console.client.app[CONTEXT].desks
    operator = await console.user("wati", "operator", desk=True, phone=PhoneKind.BROWSER,
                                  interface=BROWSER_DESK)
    desk_phone = await console.user("budi", "operator", desk=True, phone=PhoneKind.DESK,
                                    interface=DESK_PHONE)
    for browser, skill in ((operator, "medical"), (desk_phone, "fire")):
        await browser.flash(await browser.post("/console/desk/join", {"skill": skill}))
    console.asterisk.actions.clear()

    # A desk phone that goes away (a reboot) keeps its operator in the queues.
    assert await desks.phone_lost(DESK_PHONE) is None
    assert console.asterisk.actions == []
    left = await desks.phone_lost(BROWSER_DESK)
    assert left is not None and "medical" in left
    actions = console.asterisk.actions
    assert actions[0] == {"Action": "QueuePause", "Interface": BROWSER_DESK, "Paused": "true",
                          "Reason": PHONE_LOST_REASON}
    assert {a["Queue"] for a in actions[1:] if a["Action"] == "QueueRemove"} == set(left)
    audit = await fetch(console.dsn, "SELECT actor, remote_address, detail FROM audit_log "
                                     "WHERE action = 'desk.phone_lost'")
    assert [(r["actor"], r["remote_address"]) for r in audit] == [("siaga112", "")]
    # Out of every queue: nothing more to do if it is reported again.
    console.asterisk.actions.clear()
    assert await desks.phone_lost(BROWSER_DESK) is None and console.asterisk.actions == []

    status, desk = await api_desk(operator)
    assert status == 200
    conforms(desk, "Desk")
    phone = desk["phone"]
    assert phone["kind"] == "browser" and phone["lost_at"] is not None
    assert set(phone["lost_queues"]) == set(left) and "browser" in phone["lost_reason"]
    # Joining again ends the notice.
    await operator.flash(await operator.post("/console/desk/join", {"skill": "medical"}))
    status, desk = await api_desk(operator)
    assert desk["phone"]["lost_at"] is None and desk["phone"]["lost_reason"] is None
    status, desk = await api_desk(desk_phone)
    assert desk["phone"] == {"kind": "desk", "kind_label": "Telepon meja", "lost_at": None,
                             "lost_queues": [], "lost_reason": None}


async def api_desk(browser: Browser) -> tuple[int, dict[str, Any]]:
    response = await browser.http.get("/api/desk")
    return response.status, await response.json()


# -- the watcher ---------------------------------------------------------------------------------


class Handler:
    """Records the interfaces handed out, failing the first ``fail`` times."""

    def __init__(self, fail: int = 0) -> None:
        self.lost: list[str] = []
        self.fail = fail

    async def phone_lost(self, interface: str) -> list[str] | None:
        if self.fail:
            self.fail -= 1
            raise AmiActionError("QueuePause: not logged in to Asterisk")
        self.lost.append(interface)
        return ["medical"]


async def handed_out(handler: Handler, count: int) -> bool | None:
    return True if len(handler.lost) >= count else None


def states(interface: str, value: str) -> Sequence[OperatorStateChanged]:
    return [OperatorStateChanged(interface, "medical", value, False, "", datetime.now(UTC))]


async def test_the_watcher_hands_out_a_phone_unreachable_past_its_grace() -> None:
    handler = Handler()
    watcher = PhoneWatcher(handler, grace=0.3)
    task = asyncio.create_task(watcher.run())
    try:
        watcher.recorded(states(BROWSER_DESK, "unavailable"))
        watcher.recorded(states(DESK_PHONE, "unavailable"))
        watcher.recorded(states(DESK_PHONE, "idle"))  # back within its grace
        await eventually("the lost browser handed out", lambda: handed_out(handler, 1), 3)
        # After a resync, a member found unreachable gets its grace from then.
        snapshot = QueueSnapshot(waiting=(), members=tuple(states("PJSIP/op2003",
                                                                  "unavailable")))
        watcher.resynced(snapshot)
        watcher.resynced(None)  # a reply that could not be trusted whole changes nothing
        await eventually("the resynced one handed out", lambda: handed_out(handler, 2), 3)
        # Never the phone that came back (it would have been due long before).
        assert handler.lost == [BROWSER_DESK, "PJSIP/op2003"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_watcher_tries_again_while_asterisk_is_away() -> None:
    handler = Handler(fail=1)
    watcher = PhoneWatcher(handler, grace=0.1, retry_seconds=0.2)
    task = asyncio.create_task(watcher.run())
    try:
        watcher.recorded(states(BROWSER_DESK, "unavailable"))
        await eventually("handed out on the second try", lambda: handed_out(handler, 1), 3)
        assert handler.lost == [BROWSER_DESK] and handler.fail == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
