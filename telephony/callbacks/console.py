"""The call-back worklist page, an operator's call-back and a supervisor's closing as forms.

The page is plain HTML with a form per action (it works without script); its script
(``static/callbacks.js``) polls ``GET /api/callbacks`` and says when the list changed, so a
list left open does not send an operator to a caller someone else already reached.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from telephony.callbacks.http import SUPERVISION
from telephony.callbacks.model import Attempt, ClosureReason, backlog, how_it_went
from telephony.callbacks.service import CallbackService
from telephony.calls.ids import valid_call_id
from telephony.web.console.pages import Done, form_action
from telephony.web.console.render import PAGE, PREFIX, SEE_OTHER, page
from telephony.web.errors import ApiError
from telephony.web.request import Form, path_id, remote_of
from telephony.web.routing import CASEWORK, DESK, SESSION, Route

CALLBACKS: Final = f"{PREFIX}/callbacks"


def _call_id(request: web.Request) -> str:
    call_id = request.match_info["call_id"]
    if not valid_call_id(call_id):
        raise ApiError(404, "not_found", f"Panggilan {call_id[:40]!r} tidak ditemukan.")
    return call_id


def _to_list(_: web.Request, __: Form) -> str:
    return CALLBACKS


class CallbackPages:
    """The worklist page and its forms, over the call-back service."""

    def __init__(self, callbacks: CallbackService) -> None:
        self._callbacks = callbacks

    async def callbacks_page(self, request: web.Request) -> web.StreamResponse:
        """Callers to call back."""
        entries = await self._callbacks.worklist()
        now = self._callbacks.now()
        limit = self._callbacks.config.ring_limit

        def went(attempt: Attempt) -> str:
            return how_it_went(attempt, now=now, ring_limit=limit)

        return page(request, "callbacks.html", title="Panggilan balik", entries=entries,
                    reached=await self._callbacks.reached(),
                    summary=backlog(entries), closure_reasons=ClosureReason.labels(),
                    window_hours=self._callbacks.config.window.total_seconds() / 3600,
                    role=request[SESSION].account.role.value, now=now, went=went)

    async def call_back(self, request: web.Request, form: Form) -> Done:
        """Call the caller back from the operator's phone."""
        leg = await self._callbacks.call_back(request[SESSION].account, _call_id(request),
                                              remote_address=remote_of(request))
        return Done(f"Telepon Anda berdering: angkat untuk menghubungi {leg.number}.")

    async def mark_unreached(self, request: web.Request, form: Form) -> Done:
        """Say that a call-back did not reach the caller: back on the list."""
        leg = await self._callbacks.mark_unreached(
            request[SESSION].account, path_id(request, "leg_id", "Panggilan balik"),
            remote_address=remote_of(request))
        return Done(f"Ditandai tidak tersambung: {leg.number} kembali ke daftar panggilan "
                    "balik.")

    async def close(self, request: web.Request, form: Form) -> Done:
        """Take the caller off the list with a reason."""
        _, reason, _ = await self._callbacks.close(
            request[SESSION].account, _call_id(request), form.get("reason", ""),
            form.get("note", ""), remote_address=remote_of(request))
        return Done(f"Entri ditutup: {reason.label}.")

    def routes(self) -> list[Route]:
        """The page and its forms, with who may use them."""
        tag = "konsol"
        entry = f"{CALLBACKS}/{{call_id}}"
        return [
            Route("GET", CALLBACKS, self.callbacks_page, CASEWORK, "Panggilan balik", tag,
                  PAGE),
            Route("POST", f"{entry}/call", form_action(_to_list, self.call_back), DESK,
                  "Hubungi kembali", tag, SEE_OTHER),
            Route("POST", f"{CALLBACKS}/attempts/{{leg_id}}/unreached",
                  form_action(_to_list, self.mark_unreached), CASEWORK,
                  "Tandai panggilan balik tidak tersambung", tag, SEE_OTHER),
            Route("POST", f"{entry}/close", form_action(_to_list, self.close), SUPERVISION,
                  "Tutup entri panggilan balik", tag, SEE_OTHER),
        ]
