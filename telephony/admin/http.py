"""The admin's API: IVR and screening versions (save, preview and listen, publish, roll back),
queues, operators' skills, agencies and their notification recipients, dispatch targets per
report type, and shifts. Admins only; none of it carries caller data.

Every change is written to the audit log after the service accepted it. A change Asterisk
did not take is answered 502 with what was kept (queue settings stay stored and are applied
again when Asterisk reconnects; a publish that failed changed nothing the line runs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web

from telephony.admin.configs import MAX_RECORDING_BYTES, ConfigService, Preview
from telephony.admin.errors import ApplyFailed
from telephony.admin.queue_service import QueueService, revision_of
from telephony.admin.queues import Member, MemberChange, QueueSettings, Strategy, parse_seen
from telephony.admin.site import shifts_value
from telephony.admin.site_service import SiteService
from telephony.admin.versions import (
    PROMPT_NAME,
    QUEUE_NAME,
    ConfigKind,
    ConfigVersion,
    TreeNode,
)
from telephony.desks.operators import skill_queues
from telephony.desks.phones import phone_kind, phone_username
from telephony.desks.store import OperatorAccount
from telephony.incidents.directory import Recipient
from telephony.incidents.directory_service import Directory
from telephony.incidents.http import agency_json
from telephony.incidents.model import ReportType
from telephony.web.errors import ApiError
from telephony.web.request import (
    actor_of,
    context_of,
    instant_json,
    json_body,
    json_response,
    path_id,
    read_upload,
    remote_of,
)
from telephony.web.routing import ADMIN, Body, Param, Reply, Route

_STATE_LABELS: Final = {"live": "Berjalan", "published": "Pernah terbit", "draft": "Draf"}
_AUDIO_WAV: Final = Reply(200, None, {"audio/wav": {}}, "Rekaman suara (WAV 8 kHz)")


def version_json(version: ConfigVersion) -> dict[str, Any]:
    """A version without its document."""
    state = ("live" if version.live else
             "published" if version.last_published_at is not None else "draft")
    return {
        "version_id": version.version_id, "kind": version.kind.value,
        "kind_label": version.kind.label, "note": version.note,
        "based_on": version.based_on, "created_by": version.created_by,
        "created_at": version.created_at.isoformat(),
        "last_published_at": instant_json(version.last_published_at),
        "last_published_by": version.last_published_by,
        "state": state, "state_label": _STATE_LABELS[state],
    }


def version_detail_json(version: ConfigVersion) -> dict[str, Any]:
    """A version with its document and recorded prompts."""
    return {
        "version": version_json(version),
        "document": dict(version.document),
        "recordings": [{"prompt": r.prompt, "sha256": r.sha256, "filename": r.filename,
                        "uploaded_by": r.uploaded_by, "uploaded_at": r.uploaded_at.isoformat()}
                       for r in version.recordings],
    }


def _tree_json(node: TreeNode) -> dict[str, Any]:
    return {"label": node.label, "prompt": node.prompt, "text": node.text,
            "children": [_tree_json(child) for child in node.children]}


def preview_json(preview: Preview) -> dict[str, Any]:
    """A version's preview: its menu tree and prompts (with where to listen), or settings."""
    vid = preview.version.version_id
    return {
        "version": version_json(preview.version),
        "tree": [_tree_json(node) for node in preview.tree],
        "prompts": [{"name": p.name, "text": p.text, "recorded": p.recorded,
                     "seconds": round(p.seconds, 2),
                     "audio_url": f"/api/admin/versions/{vid}/prompts/{p.name}/audio"}
                    for p in preview.prompts],
        "settings": dict(preview.settings),
    }


def _member_json(member: Member) -> dict[str, Any]:
    return {"interface": member.interface, "name": member.name, "penalty": member.penalty,
            "paused": member.paused, "pause_reason": member.pause_reason,
            "dynamic": member.dynamic, "in_call": member.in_call}


def queue_json(settings: QueueSettings, members: list[Member] | None) -> dict[str, Any]:
    """A queue's settings, and its members as Asterisk reports them (None: unknown)."""
    return {
        "queue": settings.queue, "strategy": settings.strategy,
        "strategy_label": Strategy.labels().get(settings.strategy, settings.strategy),
        "ring_timeout_seconds": settings.ring_timeout_seconds,
        "retry_seconds": settings.retry_seconds, "wrapup_seconds": settings.wrapup_seconds,
        "announce_position": settings.announce_position,
        "announce_holdtime": settings.announce_holdtime,
        "announce_frequency_seconds": settings.announce_frequency_seconds,
        "max_wait_seconds": settings.max_wait_seconds,
        "updated_by": settings.updated_by, "updated_at": instant_json(settings.updated_at),
        "members": None if members is None else [
            _member_json(m) for m in members if m.queue == settings.queue],
    }


def operator_json(account: OperatorAccount) -> dict[str, Any]:
    """An operator account with its desk and skills."""
    return {"username": account.username, "display_name": account.display_name,
            "active": account.active, "interface": account.interface,
            "skills": dict(account.skills),
            "phone": None if account.phone is None else account.phone.value,
            "revision": revision_of(account)}


def _change_json(change: MemberChange) -> dict[str, Any]:
    return {"action": change.action, "queue": change.queue, "penalty": change.penalty}


def recipient_json(recipient: Recipient) -> dict[str, Any]:
    """A notification recipient."""
    kind = recipient.report_type
    return {"recipient_id": recipient.recipient_id, "agency_code": recipient.agency_code,
            "report_type": kind.value if kind else None,
            "report_type_label": kind.label if kind else "Semua jenis laporan",
            "name": recipient.name, "role": recipient.role, "contact": recipient.contact,
            "active": recipient.active}


def _named(request: web.Request, name: str, pattern: Any, what: str) -> str:
    raw = request.match_info[name]
    if not pattern.fullmatch(raw):
        raise ApiError(404, "not_found", f"{what} {raw[:40]!r} tidak ditemukan.")
    return str(raw)


def _version_id(request: web.Request) -> int:
    return path_id(request, "version_id", "Versi")


async def audit_change(request: web.Request, action: str, object_type: str,
                       object_id: object, detail: Mapping[str, Any] | None = None) -> None:
    """Write an admin's accepted change to the audit log."""
    await context_of(request).accounts.audit(
        actor=actor_of(request), action=action, object_type=object_type,
        object_id=str(object_id), remote_address=remote_of(request), detail=detail)


class AdminApi:
    """The admin routes, over the services they administer."""

    def __init__(self, configs: ConfigService, queues: QueueService, site: SiteService,
                 directory: Directory) -> None:
        self._configs = configs
        self._queues = queues
        self._site = site
        self._directory = directory

    # -- versions ------------------------------------------------------------------------------

    async def list_versions(self, request: web.Request, kind: ConfigKind) -> web.StreamResponse:
        """The newest versions of a kind."""
        versions = await self._configs.versions(kind)
        live = next((v.version_id for v in versions if v.live), None)
        return json_response({"versions": [version_json(v) for v in versions],
                      "live_version_id": live})

    async def save_version(self, request: web.Request, kind: ConfigKind) -> web.StreamResponse:
        """Save a document as a new, unpublished version."""
        data = await json_body(request)
        version = await self._configs.save(
            kind, data["document"], actor=actor_of(request), note=data.get("note", ""),
            based_on=data.get("based_on"), drop_recordings=data.get("drop_recordings", ()))
        await audit_change(request, "config.save", kind.value, version.version_id,
                           {"based_on": version.based_on, "note": version.note})
        return json_response(version_detail_json(version), status=201)

    async def get_version(self, request: web.Request) -> web.StreamResponse:
        """One version with its document and recorded prompts."""
        return json_response(version_detail_json(await self._configs.version(_version_id(request))))

    async def preview_version(self, request: web.Request) -> web.StreamResponse:
        """Make the version's prompt audio and show its tree (or every screening setting)."""
        return json_response(preview_json(await self._configs.preview(_version_id(request))))

    async def prompt_audio(self, request: web.Request) -> web.StreamResponse:
        """Listen to one prompt of a previewed version."""
        path = await self._configs.preview_audio(
            _version_id(request), _named(request, "prompt", PROMPT_NAME, "Rekaman suara"))
        return web.FileResponse(path, headers={"Content-Type": "audio/wav"})

    async def upload_recording(self, request: web.Request) -> web.StreamResponse:
        """A new version in which one prompt plays an uploaded recording."""
        version_id = _version_id(request)
        prompt = _named(request, "prompt", PROMPT_NAME, "Rekaman suara")
        filename, chunks = await read_upload(request, MAX_RECORDING_BYTES)
        audio = bytearray()
        async for chunk in chunks:
            audio += chunk
            if len(audio) > MAX_RECORDING_BYTES:
                raise ApiError(413, "too_large", "Berkas rekaman terlalu besar (maksimal "
                                                 f"{MAX_RECORDING_BYTES // 1_048_576} MB).")
        version = await self._configs.add_recording(
            version_id, prompt, bytes(audio), filename=filename, actor=actor_of(request))
        await audit_change(request, "config.recording", version.kind.value, version.version_id,
                           {"based_on": version_id, "prompt": prompt, "filename": filename})
        return json_response(version_detail_json(version), status=201)

    async def publish_version(self, request: web.Request) -> web.StreamResponse:
        """Publish (or roll back to) a version: live from the next call."""
        data = await json_body(request)
        version = await self._configs.publish(_version_id(request), actor=actor_of(request),
                                              note=data.get("note", ""),
                                              expected_live=data.get("expected_live_version_id"))
        await audit_change(request, "config.publish", version.kind.value, version.version_id,
                           {"note": data.get("note", "")})
        return json_response(version_json(version))

    # -- queues and operators ------------------------------------------------------------------

    async def list_queues(self, request: web.Request) -> web.StreamResponse:
        """Every queue's settings and members."""
        overview = await self._queues.overview()
        return json_response({
            "queues": [queue_json(q, overview.members) for q in overview.queues],
            "strategies": [{"code": code, "label": label}
                           for code, label in Strategy.labels().items()],
        })

    async def update_queue(self, request: web.Request) -> web.StreamResponse:
        """Change a queue's settings and apply them to the running Asterisk."""
        queue = _named(request, "queue", QUEUE_NAME, "Antrean")
        data = await json_body(request)
        seen = (parse_seen(data.pop("expected_updated_at"))
                if "expected_updated_at" in data else None)
        try:
            stored = await self._queues.update(queue, data, actor_of(request), seen)
        except ApplyFailed:
            await audit_change(request, "queue.update", "queue", queue,
                               {**data, "applied": False})
            raise
        await audit_change(request, "queue.update", "queue", queue, data)
        return json_response(queue_json(stored, None))

    async def list_operators(self, request: web.Request) -> web.StreamResponse:
        """Operator accounts, their desks and skills, and the skills the menu uses."""
        accounts = await self._queues.operators()
        skills = sorted(skill_queues(self._configs.live_menu()))
        return json_response({"operators": [operator_json(a) for a in accounts], "skills": skills})

    async def update_operator(self, request: web.Request) -> web.StreamResponse:
        """Set an operator's desk and skills; a logged-in operator is moved at once."""
        username = request.match_info["username"]
        data = await json_body(request)
        phone = None if data.get("phone") is None else phone_kind(data["phone"])
        detail = {"interface": data["interface"], "skills": data["skills"],
                  "phone": None if phone is None else phone.value}
        try:
            account, changes, secret, phone_note = await self._queues.assign_operator(
                username, data["interface"], data["skills"], phone,
                data.get("expected_revision"))
        except ApplyFailed:
            await audit_change(request, "operator.skills", "account", username,
                               {**detail, "applied": False})
            raise
        await audit_change(request, "operator.skills", "account", username,
                           {**detail, "changes": [_change_json(c) for c in changes],
                            "phone_secret_generated": secret is not None,
                            "phone_applied": phone_note is None})
        # A phone Asterisk did not take yet is stored, and the secret must still be shown
        # (this once): the reply says so in phone_pending rather than failing.
        return json_response({"operator": operator_json(account),
                              "changes": [_change_json(c) for c in changes],
                              "phone_secret": self._phone_secret(account.interface, secret),
                              "phone_pending": phone_note})

    def _phone_secret(self, interface: str | None, secret: str | None
                      ) -> dict[str, str] | None:
        """A phone's new SIP secret as the admin reads it, this once (never stored)."""
        if interface is None or secret is None:
            return None
        return {"interface": interface, "username": phone_username(interface),
                "realm": self._queues.realm, "secret": secret}

    async def renew_phone_secret(self, request: web.Request) -> web.StreamResponse:
        """A new SIP secret for the operator's phone; the old one stops working."""
        username = request.match_info["username"]
        assignment, phone_note = await self._queues.renew_phone_secret(username)
        await audit_change(request, "operator.phone_secret", "account", username,
                           {"interface": assignment.interface,
                            "phone_applied": phone_note is None})
        shown = self._phone_secret(assignment.interface, assignment.phone_secret) or {}
        return json_response({**shown, "phone_pending": phone_note})

    # -- agencies, recipients, dispatch targets, shifts ----------------------------------------

    async def save_agency(self, request: web.Request) -> web.StreamResponse:
        """Add an agency, rename it or (de)activate it."""
        data = await json_body(request)
        agency = await self._directory.save_agency(data["code"], data["name"],
                                                   active=data.get("active", True))
        await audit_change(request, "agency.save", "agency", agency.code, agency_json(agency))
        return json_response(agency_json(agency))

    async def list_recipients(self, request: web.Request) -> web.StreamResponse:
        """Every notification recipient."""
        recipients = await self._directory.recipients()
        return json_response({"recipients": [recipient_json(r) for r in recipients]})

    async def add_recipient(self, request: web.Request) -> web.StreamResponse:
        """Add a person notified when an agency is dispatched."""
        data = await json_body(request)
        recipient = await self._directory.add_recipient(
            data["agency"], name=data["name"], contact=data["contact"],
            role=data.get("role", ""), report_type=data.get("report_type"))
        await audit_change(request, "recipient.add", "recipient", recipient.recipient_id,
                           recipient_json(recipient))
        return json_response(recipient_json(recipient), status=201)

    async def update_recipient(self, request: web.Request) -> web.StreamResponse:
        """Stop or resume notifying a recipient."""
        recipient_id = path_id(request, "recipient_id", "Penerima")
        data = await json_body(request)
        recipient = await self._directory.set_recipient_active(recipient_id, data["active"])
        await audit_change(request, "recipient.update", "recipient", recipient.recipient_id,
                           {"active": recipient.active})
        return json_response(recipient_json(recipient))

    def _targets_json(self) -> dict[str, Any]:
        targets = self._site.dispatch_targets()
        return {"targets": [{"report_type": kind.value, "label": kind.label,
                             "seconds": targets.get(kind)} for kind in ReportType]}

    async def get_dispatch_targets(self, request: web.Request) -> web.StreamResponse:
        """Every report type (category) and its dispatch target."""
        return json_response(self._targets_json())

    async def set_dispatch_targets(self, request: web.Request) -> web.StreamResponse:
        """Replace the dispatch targets; incidents are held to them at once."""
        data = await json_body(request)
        targets = await self._site.set_dispatch_targets(data["targets"], actor_of(request))
        await audit_change(request, "dispatch_targets.update", "site", "dispatch_targets",
                           {kind.value: seconds for kind, seconds in targets.items()})
        return json_response(self._targets_json())

    async def get_shifts(self, request: web.Request) -> web.StreamResponse:
        """The shift roster in force."""
        return json_response({"shifts": shifts_value(self._site.shifts())})

    async def set_shifts(self, request: web.Request) -> web.StreamResponse:
        """Replace the shift roster; calls arriving from now on are attributed by it."""
        data = await json_body(request)
        roster = await self._site.set_shifts(data["shifts"], actor_of(request))
        await audit_change(request, "shifts.update", "site", "shifts",
                           {"shifts": shifts_value(roster)})
        return json_response({"shifts": shifts_value(roster)})

    # -- the table -----------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        """Every admin route."""
        version = "/api/admin/versions/{version_id}"
        prompt = f"{version}/prompts/{{prompt}}"
        routes = []
        for kind, tag, what in ((ConfigKind.MENU, "admin-ivr", "menu IVR"),
                                (ConfigKind.SCREENING, "admin-penyaringan", "penyaringan")):

            async def list_kind(request: web.Request, kind: ConfigKind = kind
                                ) -> web.StreamResponse:
                return await self.list_versions(request, kind)

            async def save_kind(request: web.Request, kind: ConfigKind = kind
                                ) -> web.StreamResponse:
                return await self.save_version(request, kind)

            list_kind.__name__ = f"list_{kind.value}_versions"
            save_kind.__name__ = f"save_{kind.value}_version"
            routes += [
                Route("GET", f"/api/admin/{kind.value}/versions", list_kind, ADMIN,
                      f"Versi {what}", tag, Reply(200, "ConfigVersionList")),
                Route("POST", f"/api/admin/{kind.value}/versions", save_kind, ADMIN,
                      f"Simpan versi baru {what} (belum terbit)", tag,
                      Reply(201, "ConfigVersionDetail"), Body("NewConfigVersion"),
                      errors=(404,)),
            ]
        return [
            *routes,
            Route("GET", version, self.get_version, ADMIN, "Satu versi dengan dokumennya",
                  "admin-ivr", Reply(200, "ConfigVersionDetail")),
            Route("POST", f"{version}/preview", self.preview_version, ADMIN,
                  "Pratinjau: pohon menu dan rekaman suaranya", "admin-ivr",
                  Reply(200, "ConfigPreview"), errors=(502,)),
            Route("GET", f"{prompt}/audio", self.prompt_audio, ADMIN,
                  "Dengarkan satu rekaman suara pratinjau", "admin-ivr", _AUDIO_WAV),
            Route("POST", f"{prompt}/recording", self.upload_recording, ADMIN,
                  "Unggah rekaman suara untuk satu prompt (menjadi versi baru)", "admin-ivr",
                  Reply(201, "ConfigVersionDetail"), Body(None, {
                      "multipart/form-data": {"type": "object", "properties": {
                          "file": {"type": "string",
                                   "contentMediaType": "application/octet-stream"}},
                          "required": ["file"]},
                      "application/octet-stream": {
                          "type": "string", "contentMediaType": "application/octet-stream"}}),
                  query=(Param("filename", {"type": "string", "maxLength": 200},
                               "Nama berkas, untuk unggahan mentah"),),
                  errors=(413,)),
            Route("POST", f"{version}/publish", self.publish_version, ADMIN,
                  "Terbitkan versi (juga untuk kembali ke versi lama)", "admin-ivr",
                  Reply(200, "ConfigVersion"), Body("PublishVersion"), errors=(409, 502)),
            Route("GET", "/api/admin/queues", self.list_queues, ADMIN,
                  "Pengaturan dan anggota setiap antrean", "admin-antrean",
                  Reply(200, "QueueOverview")),
            Route("PUT", "/api/admin/queues/{queue}", self.update_queue, ADMIN,
                  "Ubah pengaturan antrean (langsung diterapkan di Asterisk)", "admin-antrean",
                  Reply(200, "QueueSettings"), Body("QueueSettingsInput"),
                  errors=(409, 502)),
            Route("GET", "/api/admin/operators", self.list_operators, ADMIN,
                  "Akun operator, telepon dan keahliannya", "admin-antrean",
                  Reply(200, "OperatorList")),
            Route("PUT", "/api/admin/operators/{username}", self.update_operator, ADMIN,
                  "Atur telepon dan keahlian operator (langsung berlaku bila ia di antrean)",
                  "admin-antrean", Reply(200, "OperatorUpdate"), Body("OperatorAssignment"),
                  errors=(400, 409, 502)),
            Route("POST", "/api/admin/operators/{username}/phone-secret",
                  self.renew_phone_secret, ADMIN,
                  "Sandi SIP baru untuk telepon operator (ditampilkan sekali; yang lama tidak "
                  "berlaku lagi)", "admin-antrean", Reply(200, "RenewedPhoneSecret"),
                  errors=(404, 409)),
            Route("POST", "/api/admin/agencies", self.save_agency, ADMIN,
                  "Tambah atau ubah instansi", "admin-referensi", Reply(200, "Agency"),
                  Body("AgencyInput")),
            Route("GET", "/api/admin/recipients", self.list_recipients, ADMIN,
                  "Penerima pemberitahuan instansi", "admin-referensi",
                  Reply(200, "RecipientList")),
            Route("POST", "/api/admin/recipients", self.add_recipient, ADMIN,
                  "Tambah penerima pemberitahuan", "admin-referensi", Reply(201, "Recipient"),
                  Body("NewRecipient")),
            Route("PATCH", "/api/admin/recipients/{recipient_id}", self.update_recipient,
                  ADMIN, "Aktifkan atau hentikan penerima", "admin-referensi",
                  Reply(200, "Recipient"), Body("RecipientPatch")),
            Route("GET", "/api/admin/dispatch-targets", self.get_dispatch_targets, ADMIN,
                  "Jenis laporan dan target pengirimannya", "admin-referensi",
                  Reply(200, "DispatchTargets")),
            Route("PUT", "/api/admin/dispatch-targets", self.set_dispatch_targets, ADMIN,
                  "Ganti target pengiriman", "admin-referensi", Reply(200, "DispatchTargets"),
                  Body("DispatchTargetsInput")),
            Route("GET", "/api/admin/shifts", self.get_shifts, ADMIN, "Shift kerja",
                  "admin-referensi", Reply(200, "Shifts")),
            Route("PUT", "/api/admin/shifts", self.set_shifts, ADMIN, "Ganti shift kerja",
                  "admin-referensi", Reply(200, "Shifts"), Body("ShiftsInput")),
        ]
