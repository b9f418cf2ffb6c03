"""The admin's console pages: the IVR menu and the screening configuration as versions (edit,
preview and listen, publish, roll back), queues and operators' skills applied to the running
Asterisk, and the reference data (agencies, notification recipients, dispatch targets per
report type, shifts). Admins only.

Forms post and redirect back with a one-shot message (``pages.form_action``); a refused form
changed nothing and says why. Uploading a recorded prompt is the one script: a file cannot
travel in a url-encoded form, so ``static/admin.js`` sends it to the JSON API with the CSRF
header. Every accepted change is audited as through the API.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web

from telephony.admin.configs import ConfigService
from telephony.admin.errors import ApplyFailed, InvalidConfig
from telephony.admin.forms import (
    SCREENING_FIELDS,
    menu_from_form,
    route_choices,
    route_value,
    screening_from_form,
)
from telephony.admin.http import audit_change, version_json
from telephony.admin.queue_service import QueueService, revision_of
from telephony.admin.queues import Strategy, parse_seen
from telephony.admin.site import shifts_value
from telephony.admin.site_service import SiteService
from telephony.admin.versions import (
    ConfigKind,
    ConfigVersion,
    check_menu,
    check_screening,
    menu_tree,
    screening_document,
)
from telephony.core.text import ascii_digits, whole_number
from telephony.desks.commands import phone_secret_text
from telephony.desks.operators import MAX_LEVEL, skill_queues
from telephony.desks.phones import PhoneKind, phone_kind
from telephony.incidents.directory_service import Directory
from telephony.incidents.model import ReportType
from telephony.web.console.pages import Done, form_action
from telephony.web.console.render import PAGE, PREFIX, SEE_OTHER, page
from telephony.web.request import Form, actor_of, loads_unique, path_id
from telephony.web.routing import ADMIN, Route

ADMIN_PREFIX: Final = f"{PREFIX}/admin"
IVR_PAGE: Final = f"{ADMIN_PREFIX}/ivr"
SCREENING_PAGE: Final = f"{ADMIN_PREFIX}/screening"
QUEUES_PAGE: Final = f"{ADMIN_PREFIX}/queues"
REFERENCE_PAGE: Final = f"{ADMIN_PREFIX}/reference"
_LIST_PAGES: Final = {ConfigKind.MENU: IVR_PAGE, ConfigKind.SCREENING: SCREENING_PAGE}


def _version_page(version_id: int) -> str:
    return f"{ADMIN_PREFIX}/versions/{version_id}"


def _shown(version: ConfigVersion) -> dict[str, Any]:
    """A version for a page: its API form, with instants the page shows in local time."""
    return {**version_json(version), "created": version.created_at,
            "published": version.last_published_at}


class AdminPages:
    """The admin's pages and forms, over the services they administer."""

    def __init__(self, configs: ConfigService, queues: QueueService, site: SiteService,
                 directory: Directory) -> None:
        self._configs = configs
        self._queues = queues
        self._site = site
        self._directory = directory

    # -- versions ------------------------------------------------------------------------------

    async def _versions_page(self, request: web.Request, kind: ConfigKind
                             ) -> web.StreamResponse:
        versions = await self._configs.versions(kind)
        return page(request, "admin_versions.html", title=kind.label, kind=kind.value,
                    kind_label=kind.label, versions=[_shown(v) for v in versions])

    async def ivr_page(self, request: web.Request) -> web.StreamResponse:
        """The menu's versions: which runs, which were published, which are drafts."""
        return await self._versions_page(request, ConfigKind.MENU)

    async def screening_page(self, request: web.Request) -> web.StreamResponse:
        """The screening configuration's versions."""
        return await self._versions_page(request, ConfigKind.SCREENING)

    async def version_page(self, request: web.Request) -> web.StreamResponse:
        """One version: publish or roll back to it, preview and listen, edit it into a new
        version (form or JSON), upload recorded prompts."""
        version = await self._configs.version(path_id(request, "version_id", "Versi"))
        values: dict[str, Any] = {
            "version": _shown(version), "document": version.document,
            "live_version_id": await self._configs.live_version_id(version.kind),
            "json_text": json.dumps(version.document, ensure_ascii=False, indent=2),
            "list_page": _LIST_PAGES[version.kind],
        }
        if version.kind is ConfigKind.MENU:
            values.update(self._menu_values(version))
        else:
            settings = screening_document(check_screening(version.document))
            values["screening_fields"] = [(name, label, settings[name])
                                          for name, label, _ in SCREENING_FIELDS]
        return page(request, "admin_version.html",
                    title=f"{version.kind.label} versi #{version.version_id}",
                    kind=version.kind.value, **values)

    def _menu_values(self, version: ConfigVersion) -> dict[str, Any]:
        menu = check_menu(version.document)
        ready = self._configs.generated_prompts(version)
        recorded = {r.prompt: r for r in version.recordings}
        vid = version.version_id
        return {
            "tree": menu_tree(menu),
            "routes": route_choices(version.document),
            "submenus": sorted(menu.menus),
            "route_value": route_value,
            "keys": "123456789*0#",
            "prompts": [{
                "name": name, "text": text, "recording": recorded.get(name),
                "audio_url": (f"/api/admin/versions/{vid}/prompts/{name}/audio"
                              if name in ready else None),
                "upload_url": f"/api/admin/versions/{vid}/prompts/{name}/recording",
            } for name, text in sorted(menu.prompts.items())],
            "audio_ready": bool(ready),
        }

    async def save_form(self, request: web.Request, form: Form) -> Done:
        """A new version from the editor's form."""
        base = await self._configs.version(path_id(request, "version_id", "Versi"))
        if base.kind is ConfigKind.MENU:
            document = menu_from_form(base.document, form)
            dropped = [name for name in base.document.get("prompts", {})
                       if form.get(f"drop.{name}")]
        else:
            document = screening_from_form(base.document, form)
            dropped = []
        return await self._save(request, base, document, form.get("note", ""), dropped)

    async def save_json(self, request: web.Request, form: Form) -> Done:
        """A new version from the document edited as JSON."""
        base = await self._configs.version(path_id(request, "version_id", "Versi"))
        try:
            document = loads_unique(form.get("document", ""))
        except ValueError as exc:
            raise InvalidConfig(f"Bukan JSON yang sah: {exc}", "document") from exc
        except RecursionError as exc:
            # Nested deeper than the decoder goes: a hostile form, not a bug of ours.
            raise InvalidConfig("Dokumen JSON bersarang terlalu dalam.", "document") from exc
        return await self._save(request, base, document, form.get("note", ""), [])

    async def _save(self, request: web.Request, base: ConfigVersion, document: Any,
                    note: str, dropped: list[str]) -> Done:
        version = await self._configs.save(base.kind, document, actor=actor_of(request),
                                           note=note, based_on=base.version_id,
                                           drop_recordings=dropped)
        await audit_change(request, "config.save", version.kind.value, version.version_id,
                           {"based_on": base.version_id, "note": version.note})
        return Done(f"Tersimpan sebagai versi #{version.version_id} (draf). Periksa "
                    "pratinjaunya, lalu terbitkan.", _version_page(version.version_id))

    async def preview(self, request: web.Request, _form: Form) -> Done:
        """Make the version's prompt audio so the admin can listen to it."""
        preview = await self._configs.preview(path_id(request, "version_id", "Versi"))
        return Done(f"Rekaman suara pratinjau siap ({len(preview.prompts)} rekaman).")

    async def publish(self, request: web.Request, form: Form) -> Done:
        """Publish the version (or roll back to it)."""
        version_id = path_id(request, "version_id", "Versi")
        # The live version the page showed: refused if another admin published since.
        seen_raw = form.get("expected_live_version_id")
        seen = None if seen_raw is None else whole_number(seen_raw)
        if seen_raw is not None and seen is None:
            raise InvalidConfig("Versi yang berjalan tidak terbaca: muat ulang halaman ini.",
                                "expected_live_version_id")
        version = await self._configs.publish(version_id, actor=actor_of(request),
                                              note=form.get("note", ""), expected_live=seen)
        await audit_change(request, "config.publish", version.kind.value, version_id,
                           {"note": form.get("note", "")})
        return Done(f"Versi #{version_id} diterbitkan: berlaku untuk panggilan berikutnya.")

    # -- queues and operators ------------------------------------------------------------------

    async def queues_page(self, request: web.Request) -> web.StreamResponse:
        """Every queue's settings and members, and every operator's desk and skills."""
        overview = await self._queues.overview()
        members: dict[str, list[Any]] = {}
        for member in overview.members or []:
            members.setdefault(member.queue, []).append(member)
        skills = sorted(skill_queues(self._configs.live_menu()))
        operators = await self._queues.operators()
        return page(request, "admin_queues.html", title="Antrean dan operator",
                    queues=overview.queues, members=members,
                    members_known=overview.members is not None, strategies=Strategy.labels(),
                    operators=operators, skills=skills,
                    revisions={a.username: revision_of(a) for a in operators},
                    levels=range(MAX_LEVEL + 1), phone_kinds=PhoneKind.labels())

    async def update_queue(self, request: web.Request, form: Form) -> Done:
        """Save and apply one queue's settings."""
        queue = request.match_info["queue"]
        values: dict[str, Any] = {"strategy": form.get("strategy", ""),
                                  "announce_position": "announce_position" in form,
                                  "announce_holdtime": "announce_holdtime" in form}
        for name in ("ring_timeout_seconds", "retry_seconds", "wrapup_seconds",
                     "announce_frequency_seconds", "max_wait_seconds"):
            raw = form.get(name, "").strip()
            values[name] = int(raw) if ascii_digits(raw) and len(raw) < 7 else raw
        # The page's copy of the settings: refused if another admin stored over them since.
        seen_raw = form.get("expected_updated_at")
        seen = None if seen_raw is None else parse_seen(seen_raw or None)
        try:
            await self._queues.update(queue, values, actor_of(request), seen)
        except ApplyFailed:  # stored, not applied
            await audit_change(request, "queue.update", "queue", queue,
                               {**values, "applied": False})
            raise
        await audit_change(request, "queue.update", "queue", queue, values)
        return Done(f"Antrean {queue} disimpan dan diterapkan di Asterisk.")

    async def update_operator(self, request: web.Request, form: Form) -> Done:
        """Save an operator's phone and skill levels (0: not a skill of theirs)."""
        username = request.match_info["username"]
        skills: dict[str, int] = {}
        for name, raw in form.items():
            if name.startswith("skill.") and raw not in ("", "0"):
                number = whole_number(raw)
                skills[name[len("skill."):]] = -1 if number is None else number
        interface = form.get("interface", "").strip()
        raw_phone = form.get("phone")
        phone = None if raw_phone is None else phone_kind(raw_phone)
        detail: dict[str, Any] = {"interface": interface, "skills": skills,
                                  "phone": raw_phone}
        try:
            _, changes, secret, phone_note = await self._queues.assign_operator(
                username, interface, skills, phone, form.get("expected_revision"))
        except ApplyFailed:  # stored, not applied
            await audit_change(request, "operator.skills", "account", username,
                               {**detail, "applied": False})
            raise
        await audit_change(request, "operator.skills", "account", username,
                           {**detail, "changes": [f"{c.action} {c.queue}" for c in changes]})
        moved = f" ({len(changes)} perubahan antrean langsung diterapkan)" if changes else ""
        shown = None if secret is None else phone_secret_text(interface, self._queues.realm,
                                                                secret)
        pending = f" {phone_note}" if phone_note else ""
        return Done(f"Keahlian {username} disimpan{moved}.{pending}", shown_once=shown)

    # -- reference data ------------------------------------------------------------------------

    async def reference_page(self, request: web.Request) -> web.StreamResponse:
        """Agencies and their recipients, dispatch targets per report type, shifts."""
        targets = self._site.dispatch_targets()
        return page(request, "admin_reference.html", title="Referensi",
                    agencies=await self._directory.agencies(),
                    recipients=await self._directory.recipients(),
                    report_types=[(kind.value, kind.label, targets.get(kind))
                                  for kind in ReportType],
                    report_labels=ReportType.labels(),
                    shifts=shifts_value(self._site.shifts()), spare_shifts=2)

    async def save_agency(self, request: web.Request, form: Form) -> Done:
        """Add an agency or change one."""
        agency = await self._directory.save_agency(form.get("code", "").strip(),
                                                   form.get("name", ""),
                                                   active="active" in form)
        await audit_change(request, "agency.save", "agency", agency.code,
                           {"name": agency.name, "active": agency.active})
        return Done(f"Instansi {agency.name} disimpan.")

    async def add_recipient(self, request: web.Request, form: Form) -> Done:
        """Add a person notified when an agency is dispatched."""
        recipient = await self._directory.add_recipient(
            form.get("agency", ""), name=form.get("name", ""), contact=form.get("contact", ""),
            role=form.get("role", ""), report_type=form.get("report_type") or None)
        await audit_change(request, "recipient.add", "recipient", recipient.recipient_id,
                           {"agency": recipient.agency_code, "name": recipient.name})
        return Done(f"Penerima {recipient.name} ditambahkan.")

    async def toggle_recipient(self, request: web.Request, form: Form) -> Done:
        """Stop or resume notifying a recipient."""
        recipient_id = path_id(request, "recipient_id", "Penerima")
        recipient = await self._directory.set_recipient_active(
            recipient_id, form.get("active") == "1")
        await audit_change(request, "recipient.update", "recipient", recipient_id,
                           {"active": recipient.active})
        state = "aktif" if recipient.active else "dihentikan"
        return Done(f"Penerima {recipient.name} {state}.")

    async def save_targets(self, request: web.Request, form: Form) -> Done:
        """Replace the dispatch targets (minutes per report type; empty: none)."""
        targets: dict[str, Any] = {}
        for kind in ReportType:
            raw = form.get(f"target.{kind.value}", "").strip().replace(",", ".")
            if raw:
                try:
                    targets[kind.value] = round(float(raw) * 60)
                except ValueError:
                    raise InvalidConfig(f"Target {kind.label} harus angka "
                                        "menit.", "targets") from None
        saved = await self._site.set_dispatch_targets(targets, actor_of(request))
        await audit_change(request, "dispatch_targets.update", "site", "dispatch_targets",
                           {kind.value: seconds for kind, seconds in saved.items()})
        return Done("Target pengiriman disimpan dan langsung berlaku.")

    async def save_shifts(self, request: web.Request, form: Form) -> Done:
        """Replace the shift roster (rows with a name)."""
        rows = [{"name": form.get(f"shift.{i}.name", "").strip(),
                 "start": form.get(f"shift.{i}.start", "").strip()} for i in range(12)]
        roster = await self._site.set_shifts([r for r in rows if r["name"]], actor_of(request))
        await audit_change(request, "shifts.update", "site", "shifts",
                           {"shifts": shifts_value(roster)})
        return Done("Shift disimpan; panggilan berikutnya dicatat menurut shift baru.")

    # -- the table -----------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        """The admin's pages and forms."""
        version = f"{ADMIN_PREFIX}/versions/{{version_id}}"
        tag = "konsol-admin"

        def back_to_version(request: web.Request, _: Mapping[str, str]) -> str:
            return _version_page(path_id(request, "version_id", "Versi"))

        def back(path: str) -> Any:
            return lambda _request, _form: path

        forms = (
            (f"{version}/form", back_to_version, self.save_form, "Simpan suntingan"),
            (f"{version}/json", back_to_version, self.save_json, "Simpan suntingan JSON"),
            (f"{version}/preview", back_to_version, self.preview, "Buat pratinjau"),
            (f"{version}/publish", back_to_version, self.publish, "Terbitkan"),
            (f"{ADMIN_PREFIX}/queues/{{queue}}", back(QUEUES_PAGE), self.update_queue,
             "Simpan antrean"),
            (f"{ADMIN_PREFIX}/operators/{{username}}", back(QUEUES_PAGE),
             self.update_operator, "Simpan keahlian operator"),
            (f"{ADMIN_PREFIX}/agencies", back(REFERENCE_PAGE), self.save_agency,
             "Simpan instansi"),
            (f"{ADMIN_PREFIX}/recipients", back(REFERENCE_PAGE), self.add_recipient,
             "Tambah penerima"),
            (f"{ADMIN_PREFIX}/recipients/{{recipient_id}}", back(REFERENCE_PAGE),
             self.toggle_recipient, "Aktifkan/hentikan penerima"),
            (f"{ADMIN_PREFIX}/dispatch-targets", back(REFERENCE_PAGE), self.save_targets,
             "Simpan target pengiriman"),
            (f"{ADMIN_PREFIX}/shifts", back(REFERENCE_PAGE), self.save_shifts,
             "Simpan shift"),
        )
        return [
            Route("GET", IVR_PAGE, self.ivr_page, ADMIN, "Versi menu IVR", tag, PAGE),
            Route("GET", SCREENING_PAGE, self.screening_page, ADMIN, "Versi penyaringan", tag,
                  PAGE),
            Route("GET", version, self.version_page, ADMIN, "Satu versi", tag, PAGE),
            Route("GET", QUEUES_PAGE, self.queues_page, ADMIN, "Antrean dan operator", tag,
                  PAGE),
            Route("GET", REFERENCE_PAGE, self.reference_page, ADMIN, "Referensi", tag, PAGE),
            *(Route("POST", path, form_action(to, action), ADMIN, summary, tag, SEE_OTHER)
              for path, to, action, summary in forms),
        ]
