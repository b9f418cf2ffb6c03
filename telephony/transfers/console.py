"""The admin's page of agency numbers (beside the agencies, on the reference pages): the
numbers operators transfer callers to, a station per area, each with its label. Forms post
and redirect back with a message; every accepted change is audited as through the API.
The operator's controls live on the desk page (``static/transfers.js`` over the API), and an
incident's legs on its page (``static/incident_legs.js``).
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from telephony.admin.http import audit_change
from telephony.incidents.directory_service import Directory
from telephony.transfers.http import number_json
from telephony.transfers.service import TransferService
from telephony.web.console.pages import Done, form_action
from telephony.web.console.render import PAGE, PREFIX, SEE_OTHER, page
from telephony.web.request import Form, path_id
from telephony.web.routing import ADMIN, Route

NUMBERS_PAGE: Final = f"{PREFIX}/admin/agency-numbers"


class TransferPages:
    """The agency numbers page and its forms."""

    def __init__(self, service: TransferService, directory: Directory) -> None:
        self._service = service
        self._directory = directory

    async def numbers_page(self, request: web.Request) -> web.StreamResponse:
        """Every agency number, and a form to add one."""
        return page(request, "admin_agency_numbers.html", title="Nomor telepon instansi",
                    numbers=await self._service.numbers(),
                    agencies=await self._directory.agencies())

    async def add_number(self, request: web.Request, form: Form) -> Done:
        """Add an agency's number (the agency's same number: relabel, (de)activate)."""
        number = await self._service.save_number(
            form.get("agency", ""), form.get("label", ""), form.get("number", ""),
            "active" in form)
        await audit_change(request, "agency_number.save", "agency_number", number.number_id,
                           number_json(number))
        return Done(f"Nomor {number.label} ({number.number}) disimpan.")

    async def toggle_number(self, request: web.Request, form: Form) -> Done:
        """Stop or resume offering a number to operators."""
        number_id = path_id(request, "number_id", "Nomor instansi")
        current = next((n for n in await self._service.numbers()
                        if n.number_id == number_id), None)
        if current is None:
            return Done("Nomor instansi tidak ditemukan.")
        number = await self._service.save_number(
            current.agency_code, current.label, current.number, form.get("active") == "1",
            number_id=number_id)
        await audit_change(request, "agency_number.save", "agency_number", number_id,
                           number_json(number))
        return Done(f"Nomor {number.label} {'aktif' if number.active else 'dihentikan'}.")

    def routes(self) -> list[Route]:
        """The page and its forms."""
        tag = "konsol-admin"

        def back(_request: web.Request, _form: Form) -> str:
            return NUMBERS_PAGE

        return [
            Route("GET", NUMBERS_PAGE, self.numbers_page, ADMIN, "Nomor telepon instansi", tag,
                  PAGE),
            Route("POST", NUMBERS_PAGE, form_action(back, self.add_number), ADMIN,
                  "Tambah nomor telepon instansi", tag, SEE_OTHER),
            Route("POST", f"{NUMBERS_PAGE}/{{number_id}}", form_action(back, self.toggle_number),
                  ADMIN, "Aktifkan/hentikan nomor instansi", tag, SEE_OTHER),
        ]
