"""An admin changes an account's display name or role (the accounts page, the API), on a real
PostgreSQL: the audit log says so, a new role ends the account's sessions, and a change the
account's state does not allow is refused having changed nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from telephony.calls.facts import OperatorStateChanged
from telephony.web.console.render import LOGIN_PATH
from telephony.web.context import CONTEXT
from telephony.web.routing import CSRF_COOKIE, CSRF_HEADER
from tests.support.calls import OPERATOR
from tests.support.console import Console, record
from tests.support.db import fetch
from tests.support.web import Browser, conforms


async def patch(browser: Browser, username: str, body: dict[str, Any]
                ) -> tuple[int, dict[str, Any]]:
    response = await browser.http.patch(
        f"/api/admin/accounts/{username}", json=body,
        headers={CSRF_HEADER: browser.cookie(CSRF_COOKIE) or ""})
    return response.status, await response.json()


async def audit(console: Console, action: str) -> list[dict[str, Any]]:
    rows = await fetch(console.dsn, "SELECT actor, object_id, detail FROM audit_log "
                                    "WHERE action = $1 ORDER BY audit_id", action)
    return [{**row, "detail": json.loads(row["detail"])} for row in rows]


async def test_an_operator_promoted_on_the_accounts_page_keeps_the_phone_without_skills(
        console: Console) -> None:
    operator = await console.user("op1", "operator", desk=True)
    admin = await console.user("admin1", "admin")
    assert (await operator.get("/console/operator"))[0] == 200
    html = (await admin.get("/console/accounts"))[1]
    assert 'action="/console/accounts/op1"' in html

    kind, text = await admin.flash(await admin.post(
        "/console/accounts/op1", {"display_name": "Budi Santoso", "role": "supervisor"}))
    assert kind == "ok", text
    assert text == ("Akun op1: peran Operator -&gt; Supervisor; semua sesinya diakhiri. "
                    "Keahlian fire, medical dilepas.")
    # The operator's open screen is over: its session ended with the old role.
    status, _, response = await operator.get("/console/operator")
    assert status == 303 and response.headers["Location"].startswith(LOGIN_PATH)
    [account] = await fetch(console.dsn, "SELECT role, display_name FROM accounts "
                                         "WHERE username = 'op1'")
    assert (account["role"], account["display_name"]) == ("supervisor", "Budi Santoso")
    # The phone stays, to listen in on; its skills are gone, its name follows.
    assert await fetch(console.dsn, "SELECT * FROM operator_skills") == []
    [desk] = await fetch(console.dsn, "SELECT o.operator, o.display_name FROM operators o "
                                      "JOIN account_operators USING (operator)")
    assert (desk["operator"], desk["display_name"]) == (OPERATOR, "Budi Santoso")
    [role] = await audit(console, "account.role")
    assert (role["actor"], role["object_id"]) == ("admin1", "op1")
    assert role["detail"] == {"from": "operator", "to": "supervisor", "sessions_ended": 1,
                              "skills_dropped": {"fire": 5, "medical": 3}}
    [renamed] = await audit(console, "account.rename")
    assert renamed["detail"] == {"from": "", "to": "Budi Santoso"}
    # Logged in again, the owner has the supervisor's pages.
    assert (await operator.log_in("op1")).status == 303
    assert (await operator.get("/console/audit"))[0] == 200


async def test_a_demoted_supervisor_keeps_no_supervisor_rights_in_an_open_session(
        console: Console) -> None:
    supervisor = await console.user("spv1", "supervisor")
    admin = await console.user("admin1", "admin")
    login = await supervisor.http.post("/api/session", json={
        "username": "spv1", "password": "kata-sandi-rahasia-112"})
    bearer = {"Authorization": f"Bearer {(await login.json())['token']}"}
    assert (await supervisor.get("/console/audit"))[0] == 200

    status, body = await patch(admin, "spv1", {"role": "operator"})
    assert status == 200, body
    conforms(body, "AccountChange")
    assert body["account"]["role"] == "operator" and body["sessions_ended"] == 2

    # Neither the console's cookie nor the API's token goes on with the old rights, and both
    # say why: the login form tells the supervisor, who saw their listening cut.
    why = ("Sesi Anda diakhiri: peran akun Anda diganti menjadi Operator. Masuk lagi dengan "
           "peran baru. Mendengarkan panggilan yang sedang berjalan juga dihentikan.")
    status, _, response = await supervisor.get("/console/audit")
    assert status == 303 and response.headers["Location"].startswith(LOGIN_PATH)
    assert await supervisor.flash(response) == ("error", why)
    refused = await supervisor.http.get("/api/audit", headers=bearer)
    assert refused.status == 401
    assert (await refused.json())["error"]["message"] == why
    assert (await supervisor.log_in("spv1")).status == 303
    assert (await supervisor.get("/console/audit"))[0] == 403


async def test_changes_the_accounts_state_does_not_allow_are_refused_and_change_nothing(
        console: Console) -> None:
    operator = await console.user("op1", "operator", desk=True)
    admin = await console.user("admin1", "admin")
    # In queues: promoted, the phone would go on ringing with callers.
    await record(console, [OperatorStateChanged(OPERATOR, "fire", "idle", False, "",
                                                datetime.now(UTC))])
    status, body = await patch(admin, "op1", {"role": "supervisor", "display_name": "Budi"})
    assert status == 409 and body["error"]["code"] == "role_change_refused"
    assert "masih di antrean fire" in body["error"]["message"]
    # At a phone, an admin would be one who takes calls and sees no caller data.
    status, body = await patch(admin, "op1", {"role": "admin"})
    assert status == 409 and "admin tidak memakai telepon" in body["error"]["message"]
    # The last active admin cannot demote themselves out of the console.
    status, body = await patch(admin, "admin1", {"role": "supervisor"})
    assert status == 409 and "admin aktif terakhir" in body["error"]["message"]
    assert (await patch(admin, "nobody", {"role": "operator"}))[0] == 404
    assert (await patch(admin, "op1", {}))[0] == 422
    assert (await patch(admin, "op1", {"role": "kepala"}))[0] == 422
    assert (await patch(admin, "op1", {"display_name": "a\u202eb"}))[0] == 422
    accounts = await fetch(console.dsn, "SELECT username, role, display_name FROM accounts "
                                        "ORDER BY username")
    assert [tuple(a) for a in accounts] == [("admin1", "admin", ""), ("op1", "operator", "")]
    assert await audit(console, "account.role") == []
    assert await audit(console, "account.rename") == []
    # The same role again changes nothing: no entry, and the sessions stay.
    status, body = await patch(admin, "op1", {"role": "operator"})
    assert (status, body["sessions_ended"]) == (200, 0)
    assert (await operator.get("/console/operator"))[0] == 200
    # A new name alone keeps the sessions too.
    status, body = await patch(admin, "op1", {"display_name": "Budi Santoso"})
    assert (status, body["account"]["display_name"]) == (200, "Budi Santoso")
    assert (await operator.get("/console/operator"))[0] == 200
    assert await audit(console, "account.role") == []
    listed = await (await admin.http.get("/api/admin/accounts")).json()
    conforms(listed, "AccountList")
    assert [a["username"] for a in listed["accounts"]] == ["admin1", "op1"]
    # An operator may not.
    status, body = await patch(operator, "op1", {"role": "supervisor"})
    assert status == 403



async def test_a_page_opened_before_another_admins_change_does_not_undo_it(
        console: Console) -> None:
    """The accounts page posts the name and the role together: one opened before another
    admin promoted the account, used to correct its name, put the old role back unseen."""
    first = await console.user("admin1", "admin")
    second = await console.user("admin2", "admin")
    await console.user("op2", "operator")
    html = (await first.get("/console/accounts"))[1]
    form = html.split('action="/console/accounts/op2"', 1)[1].split("</form>", 1)[0]
    assert 'name="seen.role" value="operator"' in form
    assert (await patch(second, "op2", {"role": "supervisor"}))[0] == 200

    kind, text = await first.flash(await first.post("/console/accounts/op2", {
        "display_name": "Sari Dewi", "role": "operator",
        "seen.display_name": "", "seen.role": "operator"}))
    assert (kind, text) == ("ok", "Nama tampilan akun op2 disimpan.")
    [account] = await fetch(console.dsn, "SELECT role, display_name FROM accounts "
                                         "WHERE username = 'op2'")
    assert (account["role"], account["display_name"]) == ("supervisor", "Sari Dewi")


async def test_an_operator_disabled_with_the_screen_open_is_told_why_by_the_page(
        console: Console) -> None:
    """The operator screen (or the call-backs page) hears the end of its session as a 401
    from its poll, and every console page then leaves by the console's home (session.js):
    the line redirects from there to the login form saying why, even after a form the page
    sent in the background already landed on that form and used up its one-shot message."""
    operator = await console.user("op1", "operator", desk=True)
    status, html, _ = await operator.get("/console/operator")
    assert status == 200
    # The shared way out comes before the page's own scripts (deferred: run in order).
    assert html.index("session.js") < html.index("operator.js")
    await console.client.app[CONTEXT].accounts.disable("op1", actor="admin1")

    why = "Sesi Anda diakhiri: akun Anda dinonaktifkan oleh admin."
    refused = await operator.http.get("/api/desk")
    assert refused.status == 401 and (await refused.json())["error"]["message"] == why
    # The softphone's background post lands on the login form, showing the message there.
    assert await operator.flash(await operator.post("/console/desk/pause", {})) == (
        "error", why)
    status, _, response = await operator.get("/console/")
    assert status == 303 and response.headers["Location"] == LOGIN_PATH
    assert await operator.flash(response) == ("error", why)
