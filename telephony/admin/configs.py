"""The admin's versions of the IVR menu and of the screening configuration: save, preview,
publish, roll back.

- **Save**: a document is validated exactly as the line will load it; a saved version never
  changes (an edit, or a recording uploaded for one prompt, is a new version).
- **Preview**: a menu version as a readable tree, and its prompt audio generated into the
  admin's working directory (espeak-ng, or the version's recorded file converted by
  :func:`ivr.prompts.build_prompts`) so the admin can listen before anyone calls.
- **Publish**: the prompt audio is generated and installed in Asterisk under names of that
  version (``telephony.admin.versions``), the queues the menu routes to are configured and the
  logged-in operators moved to them, and then the live file the line watches is replaced in
  one rename. The next call runs the new version; calls in progress keep the menu and the
  prompt files they started with. The line's own loader must accept the file, else the old
  file is put back and nothing is recorded. A screening version's ``normal_priority`` also
  goes to the live setting the dialplan reads every call's starting priority from.
- **Roll back**: publish an earlier version.
- **On a cluster**, the publication (a row of ``config_publications``) is announced to every
  node's line, and each runs the version as the publishing one does
  (:meth:`ConfigService.follow`, driven by telephony/cluster/admin_sync.py): its own prompt
  audio, queues and live file.

The first time a kind is used, what the line runs (the live file, else the packaged default)
becomes version 1, published by ``system``: the history starts from what callers hear.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import asyncpg

from ivr.flow import menu_too_long
from ivr.menu import IvrMenu
from ivr.prompts import PromptError, PromptReport, build_prompts
from telephony.admin.asterisk import AsteriskAdmin
from telephony.admin.errors import (
    ApplyFailed,
    AsteriskDown,
    ConfigNotFound,
    InvalidConfig,
    StaleSettings,
)
from telephony.admin.files import ConfigFiles, replace_text
from telephony.admin.queues import NORMAL_PRIORITY_KEY, MemberChange
from telephony.admin.store import ConfigVersionRepository
from telephony.admin.versions import (
    NOTE_MAX,
    ConfigKind,
    ConfigVersion,
    PromptRecording,
    TreeNode,
    check_document,
    check_menu,
    check_prompt,
    check_screening,
    live_menu_document,
    menu_tree,
    screening_document,
    versioned_prompt,
)
from telephony.core.text import os_reason
from telephony.db.connection import Database, DatabaseUnavailable
from telephony.incidents.model import clean_text
from telephony.screening.score import ScoreConfig

log = logging.getLogger("telephony.admin")

SYSTEM_ACTOR = "system"
MAX_RECORDING_BYTES = 5 * 1024 * 1024  # a minute of 44.1 kHz stereo MP3, with room to spare


T_co = TypeVar("T_co", covariant=True)


class Live(Protocol[T_co]):
    """A document the line runs (a watched file): what it loaded last."""

    def current(self) -> T_co:
        """The value now (re-read if the file changed)."""
        ...


class MenuFollower(Protocol):
    """Configures a new menu's queues before it goes live (the queue service)."""

    async def follow_menu(self, before: IvrMenu, menu: IvrMenu) -> list[MemberChange]:
        """Configure ``menu``'s queues and move logged-in operators to them."""
        ...

    async def apply(self, menu: IvrMenu | None = None) -> bool:
        """Configure ``menu``'s queues only (operators stay where they are)."""
        ...


@dataclass(frozen=True)
class PromptPreview:
    """One prompt of a previewed menu version."""

    name: str
    text: str
    recorded: bool  # the version's uploaded recording, else the synthesised voice
    seconds: float


@dataclass(frozen=True)
class Preview:
    """A version as an admin checks it before publishing."""

    version: ConfigVersion
    tree: tuple[TreeNode, ...]  # the menu's tree (empty for screening)
    prompts: tuple[PromptPreview, ...]
    settings: Mapping[str, Any]  # every screening setting, defaults included ({} for a menu)


def _note(value: object) -> str:
    return clean_text("note", value, max_length=NOTE_MAX)


def _live_text(version: ConfigVersion) -> str:
    """The live file publishing ``version`` writes: a menu's with its prompts renamed for the
    version (:func:`live_menu_document`), a screening version's document as it is."""
    live: Mapping[str, Any] = (
        live_menu_document(version.document, version.version_id)
        if version.kind is ConfigKind.MENU else version.document)
    return json.dumps(live, ensure_ascii=False, indent=2) + "\n"


class ConfigService:
    """Versions, preview, publication and rollback of the menu and screening documents."""

    def __init__(
        self, database: Database, files: ConfigFiles, asterisk: AsteriskAdmin, *,
        queues: MenuFollower, menus: Live[IvrMenu], screening: Live[ScoreConfig],
        repository: ConfigVersionRepository | None = None,
    ) -> None:
        self._database = database
        self._files = files
        self._asterisk = asterisk
        self._queues = queues
        self._menus = menus
        self._screening = screening
        self._repo = repository or ConfigVersionRepository()
        self._publishing = asyncio.Lock()

    # -- reading -------------------------------------------------------------------------------

    def live_menu(self) -> IvrMenu:
        """The menu the line runs now."""
        return self._menus.current()

    async def _ensure_history(self, kind: ConfigKind) -> None:
        """Record what the line runs as the first, published version of ``kind``."""

        async def work(connection: asyncpg.Connection) -> None:
            async with connection.transaction():
                await self._repo.lock(connection, kind)
                if await self._repo.has_versions(connection, kind):
                    return
                document = self._files.live_document(kind)
                check_document(kind, document)
                version_id = await self._repo.insert_version(
                    connection, kind, document,
                    note="Versi awal: yang berjalan saat konsol dibuka", based_on=None,
                    created_by=SYSTEM_ACTOR)
                if kind is ConfigKind.MENU:
                    await self._adopt_recorded_prompts(connection, version_id, document)
                await self._repo.insert_publication(connection, kind, version_id,
                                                    SYSTEM_ACTOR, "")
                log.info("%s history starts with version %d (what the line runs)", kind.value,
                         version_id)

        await self._database.run(work)

    async def _adopt_recorded_prompts(self, connection: asyncpg.Connection, version_id: int,
                                      document: Mapping[str, Any]) -> None:
        recorded = self._files.recorded_prompts_dir
        for name in sorted(check_menu(document).prompts):
            path = recorded / f"{name}.wav"
            if path.is_file():
                audio = path.read_bytes()
                await self._store_recording(connection, version_id, PromptRecording(
                    name, hashlib.sha256(audio).hexdigest(), path.name, SYSTEM_ACTOR,
                    datetime.now(UTC)), audio)

    async def _store_recording(self, connection: asyncpg.Connection, version_id: int,
                               recording: PromptRecording, audio: bytes | None) -> None:
        if audio is not None:
            await self._repo.store_audio(connection, recording.sha256, audio)
        await self._repo.attach_recording(connection, version_id, recording)

    async def versions(self, kind: ConfigKind, *, limit: int = 100) -> list[ConfigVersion]:
        """The newest versions of ``kind``, newest first (documents left out)."""
        await self._ensure_history(kind)

        async def work(connection: asyncpg.Connection) -> list[ConfigVersion]:
            return await self._repo.versions(connection, kind, limit)

        return await self._database.run(work)

    async def version(self, version_id: int) -> ConfigVersion:
        """One version with its document and recordings."""

        async def work(connection: asyncpg.Connection) -> ConfigVersion | None:
            return await self._repo.version(connection, version_id)

        found = await self._database.run(work)
        if found is None:
            raise ConfigNotFound(f"Versi #{version_id} tidak ditemukan.")
        return found

    # -- saving --------------------------------------------------------------------------------

    async def save(
        self, kind: ConfigKind, document: Any, *, actor: str, note: object = "",
        based_on: int | None = None, drop_recordings: Collection[str] = (),
    ) -> ConfigVersion:
        """Save ``document`` as a new (unpublished) version of ``kind``.

        ``based_on`` is the version the admin edited; a menu version keeps its recordings
        for the prompts it still has, except those named in ``drop_recordings`` (the admin
        went back to the synthesised voice).
        """
        check_document(kind, document)
        cleaned = _note(note)
        keep: list[PromptRecording] = []
        if based_on is not None:
            base = await self.version(based_on)
            if base.kind is not kind:
                raise InvalidConfig(f"Versi #{based_on} bukan versi {kind.value}.", "based_on")
            prompts = check_menu(document).prompts if kind is ConfigKind.MENU else {}
            keep = [r for r in base.recordings
                    if r.prompt in prompts and r.prompt not in drop_recordings]
        await self._ensure_history(kind)

        async def work(connection: asyncpg.Connection) -> int:
            async with connection.transaction():
                version_id = await self._repo.insert_version(
                    connection, kind, document, note=cleaned, based_on=based_on,
                    created_by=actor)
                for recording in keep:
                    await self._store_recording(connection, version_id, recording, None)
                return version_id

        version_id = await self._database.run(work)
        log.info("%s version %d saved by %s (from %s)", kind.value, version_id, actor,
                 based_on or "scratch")
        return await self.version(version_id)

    async def add_recording(self, version_id: int, prompt: str, audio: bytes, *,
                            filename: str, actor: str) -> ConfigVersion:
        """A new version of a menu version in which ``prompt`` plays ``audio`` (a recording
        in any format ffmpeg reads) instead of the synthesised voice."""
        base = await self.version(version_id)
        if base.kind is not ConfigKind.MENU:
            raise InvalidConfig("Rekaman suara hanya untuk versi menu IVR.", "prompt")
        check_prompt(base.document, prompt)
        if not audio:
            raise InvalidConfig("Berkas rekaman kosong.", "file")
        if len(audio) > MAX_RECORDING_BYTES:
            raise InvalidConfig(f"Berkas rekaman terlalu besar (maksimal "
                                f"{MAX_RECORDING_BYTES // 1_048_576} MB).", "file")
        await asyncio.to_thread(self._check_audio, prompt, audio, self._files.voice)
        name = clean_text("filename", filename, max_length=200)
        recording = PromptRecording(prompt, hashlib.sha256(audio).hexdigest(), name, actor,
                                    datetime.now(UTC))

        async def work(connection: asyncpg.Connection) -> int:
            async with connection.transaction():
                new_id = await self._repo.insert_version(
                    connection, ConfigKind.MENU, base.document, note=f"Rekaman suara {prompt}",
                    based_on=version_id, created_by=actor)
                for kept in base.recordings:
                    if kept.prompt != prompt:
                        await self._store_recording(connection, new_id, kept, None)
                await self._store_recording(connection, new_id, recording, audio)
                return new_id

        new_id = await self._database.run(work)
        log.info("menu version %d: recording for %s uploaded by %s", new_id, prompt, actor)
        return await self.version(new_id)

    @staticmethod
    def _check_audio(prompt: str, audio: bytes, voice: str) -> None:
        """Refuse audio that cannot become an Asterisk prompt (by converting it once)."""
        with tempfile.TemporaryDirectory() as tmp:
            recorded = Path(tmp) / "recorded"
            recorded.mkdir()
            (recorded / f"{prompt}.wav").write_bytes(audio)
            try:
                build_prompts({prompt: "-"}, Path(tmp) / "out", recorded, voice)
            except PromptError as exc:
                raise InvalidConfig("Berkas bukan audio yang dapat dibaca (coba WAV, MP3 "
                                    "atau OGG).", "file") from exc

    # -- preview -------------------------------------------------------------------------------

    async def _build_audio(self, version: ConfigVersion) -> list[PromptReport]:
        """Generate the version's prompt audio (named for the version) in its directory."""
        menu = check_menu(version.document)
        vid = version.version_id

        def work(audio: Mapping[str, bytes]) -> list[PromptReport]:
            recorded = self._files.recorded_dir(vid)
            shutil.rmtree(recorded, ignore_errors=True)
            recorded.mkdir(parents=True)
            for name, data in audio.items():
                (recorded / f"{versioned_prompt(name, vid)}.wav").write_bytes(data)
            texts = {versioned_prompt(n, vid): t for n, t in menu.prompts.items()}
            silences = {versioned_prompt(n, vid): ms
                        for n, ms in menu.trailing_silence_ms.items()}
            try:
                return build_prompts(texts, self._files.audio_dir(vid), recorded,
                                     self._files.voice, silences)
            except PromptError as exc:
                raise ApplyFailed(f"Rekaman suara tidak dapat dibuat: {exc}") from exc

        async def fetch(connection: asyncpg.Connection) -> dict[str, bytes]:
            return await self._repo.recording_audio(connection, vid)

        return await asyncio.to_thread(work, await self._database.run(fetch))

    async def preview(self, version_id: int) -> Preview:
        """The version as the admin checks it: a menu's tree and its prompt audio, ready to
        be played (:meth:`preview_audio`); every setting of a screening version."""
        version = await self.version(version_id)
        if version.kind is ConfigKind.SCREENING:
            return Preview(version, (), (),
                           screening_document(check_screening(version.document)))
        menu = check_menu(version.document)
        reports = {r.name: r for r in await self._build_audio(version)}
        recorded = {r.prompt for r in version.recordings}
        prompts = tuple(
            PromptPreview(name, text, name in recorded,
                          reports[versioned_prompt(name, version_id)].seconds)
            for name, text in sorted(menu.prompts.items()))
        return Preview(version, menu_tree(menu), prompts, {})

    async def preview_audio(self, version_id: int, prompt: str) -> Path:
        """The WAV file of one prompt of a previewed menu version."""
        version = await self.version(version_id)
        if version.kind is not ConfigKind.MENU:
            raise ConfigNotFound("Versi penyaringan tidak punya rekaman suara.")
        check_prompt(version.document, prompt)
        path = self._files.audio_dir(version_id) / f"{versioned_prompt(prompt, version_id)}.wav"
        if not path.is_file():
            raise ConfigNotFound("Rekaman suara versi ini belum dibuat: buka pratinjau dulu.")
        return path

    def generated_prompts(self, version: ConfigVersion) -> set[str]:
        """The prompts of a menu version whose audio was made (by a preview or publish)."""
        directory = self._files.audio_dir(version.version_id)
        if version.kind is not ConfigKind.MENU or not directory.is_dir():
            return set()
        return {name for name in check_menu(version.document).prompts
                if (directory / f"{versioned_prompt(name, version.version_id)}.wav").is_file()}

    # -- publishing ----------------------------------------------------------------------------

    async def live_version_id(self, kind: ConfigKind) -> int | None:
        """The version of ``kind`` the line runs (published last)."""

        async def work(connection: asyncpg.Connection) -> int | None:
            return await self._repo.live_version_id(connection, kind)

        return await self._database.run(work)

    async def publish(self, version_id: int, *, actor: str, note: object = "",
                      expected_live: int | None = None) -> ConfigVersion:
        """Make ``version_id`` the version the line runs from its next call (a rollback when
        it is an earlier one). See the module's description for the steps.

        ``expected_live`` is the live version the admin saw (``None``: not checked): if
        another admin published since, :class:`StaleSettings` and nothing is done, so a
        draft made before their version cannot silently undo it.
        """
        cleaned = _note(note)
        async with self._publishing:
            version = await self.version(version_id)
            kind = version.kind
            if expected_live is not None:
                await self._check_live(version, expected_live)
            if kind is ConfigKind.MENU and not self._asterisk.connected:
                # Refused at once: each AMI action would otherwise wait for a session first,
                # and the admin waited 20 s or more to hear the same.
                raise AsteriskDown(f"Versi #{version_id} belum diterbitkan: Asterisk tidak "
                                   "tersambung dengan line. Penelepon tetap mendapat versi "
                                   "yang berjalan; terbitkan lagi setelah Asterisk tersambung "
                                   "kembali.")
            running = self._menus.current()
            if kind is ConfigKind.MENU:
                await self._check_length(version)
            try:
                try:
                    await self._prepare(version, move_members=True)
                except ApplyFailed as exc:
                    # What the admin must know first: whether callers now get this version.
                    raise ApplyFailed(f"Versi #{version_id} belum diterbitkan: {exc.message}. "
                                      "Penelepon tetap mendapat versi yang berjalan; "
                                      "terbitkan lagi setelah masalahnya beres.") from exc
                await self._write_live(version, actor, cleaned)
            except Exception:
                if kind is ConfigKind.MENU:
                    await self._restore_queues(running)
                raise
        log.info("%s version %d published by %s", kind.value, version_id, actor)
        return await self.version(version_id)

    async def _check_length(self, version: ConfigVersion) -> None:
        """Refuse a menu version that can keep a caller past the IVR session's guard: the
        dialplan fails open there, so its callers reach the queue, but cut off mid-prompt and
        without the choice they were making. Timed with the version's own prompt audio (the
        recordings it has, else the generated speech), by the flow's rules
        (:func:`ivr.flow.longest_stay`). Checked before anything of the version is applied."""
        menu = check_menu(version.document)
        made = {r.name: r.seconds for r in await self._build_audio(version)}
        vid = version.version_id
        reason = menu_too_long(
            menu, {name: made[versioned_prompt(name, vid)] for name in menu.prompts},
            self._files.menu_seconds)
        if reason is not None:
            raise InvalidConfig(f"Versi #{vid} tidak diterbitkan: {reason}", "document")

    async def _restore_queues(self, running: IvrMenu) -> None:
        """A publish that failed after its menu's queues were applied (a later AMI action,
        the database, the line refusing the file): bring Asterisk's queues back to the menu
        still running, else its callers would find the queues it routes to gone (failing
        open to the line's emergency queue). A no-op when Asterisk never took the new ones;
        if it cannot be done now, the next AMI session applies the running menu's queues."""
        try:
            await self._queues.apply(running)
        except (ApplyFailed, DatabaseUnavailable) as exc:
            log.warning("queues not brought back to the running menu after a failed publish "
                        "(applied again at the next AMI session): %s", exc)

    async def _check_live(self, version: ConfigVersion, expected_live: int) -> None:
        """Refuse to publish ``version`` if the live version is no longer ``expected_live``."""

        async def work(connection: asyncpg.Connection) -> tuple[int, str] | None:
            return await self._repo.live_publication(connection, version.kind)

        live = await self._database.run(work)
        if live is None or live[0] == expected_live:
            return
        raise StaleSettings(
            f"{version.kind.label} yang berjalan sudah berganti menjadi versi #{live[0]} "
            f"(diterbitkan {live[1]}) sejak halaman ini dibuka; versi #{version.version_id} "
            "belum diterbitkan. Periksa dulu, lalu terbitkan lagi bila memang dimaksud.",
            "expected_live_version_id")

    async def follow(self) -> list[ConfigKind]:
        """A cluster node: run the versions last published through any node's line (the
        database's latest publications), as :meth:`publish` made the publishing node run
        them: the prompt audio made and installed here, the queues configured here, the
        screening's normal priority set here, then the live file replaced. The operators'
        memberships are not moved: the publishing line did that, and every node follows the
        stored memberships (telephony/cluster/member_sync.py). A history that starts with
        what a line ran (published by ``system``) is not followed: each node goes on with
        what it runs. Returns the kinds changed here (none when this node runs them
        already: the live file holds exactly what publishing the version writes)."""
        followed = []
        async with self._publishing:
            for kind in ConfigKind:

                async def work(connection: asyncpg.Connection,
                               kind: ConfigKind = kind) -> tuple[int, str] | None:
                    return await self._repo.live_publication(connection, kind)

                live = await self._database.run(work)
                if live is None or live[1] == SYSTEM_ACTOR:
                    continue
                version = await self.version(live[0])
                path = self._files.live_file(kind)
                try:
                    running = path.read_text(encoding="utf-8")
                except FileNotFoundError:
                    running = None
                except OSError as exc:
                    raise ApplyFailed(f"Berkas {path} tidak dapat dibaca: "
                                      f"{os_reason(exc)}") from exc
                if running == _live_text(version) and self._taken(version) and (
                        self._installed(version)):
                    continue
                await self._prepare(version, move_members=False)
                try:
                    self._replace_live(version)
                except OSError as exc:
                    raise ApplyFailed(f"Berkas {path} tidak dapat ditulis: "
                                      f"{os_reason(exc)}") from exc
                log.info("%s version %d (published by %s, stored for the cluster) runs here "
                         "from the next call", kind.value, version.version_id, live[1])
                followed.append(kind)
        return followed

    def _installed(self, version: ConfigVersion) -> bool:
        """Whether this node's Asterisk has a menu version's prompt audio (a state directory
        shared by the nodes holds the live file another node wrote, not this one's prompts)."""
        if version.kind is not ConfigKind.MENU:
            return True
        vid = version.version_id
        return self._asterisk.has_prompts(versioned_prompt(name, vid)
                                          for name in check_menu(version.document).prompts)

    async def _prepare(self, version: ConfigVersion, *, move_members: bool) -> None:
        """What must be in place before ``version`` goes live on this node: a menu's prompt
        audio installed and its queues configured (the logged-in operators moved to them if
        ``move_members``); a screening version's normal priority set."""
        version_id = version.version_id
        if version.kind is ConfigKind.MENU:
            menu = check_menu(version.document)
            await self._build_audio(version)
            installed = await self._asterisk.install_prompts(self._files.audio_dir(version_id))
            log.info("menu version %d: %d prompts installed", version_id, len(installed))
            if move_members:
                moved = await self._queues.follow_menu(self._menus.current(), menu)
                if moved:
                    log.info("menu version %d: %d queue memberships changed", version_id,
                             len(moved))
            else:
                await self._queues.apply(menu)
        else:
            config = check_screening(version.document)
            self._asterisk.write_number(NORMAL_PRIORITY_KEY, config.normal_priority)

    async def _write_live(self, version: ConfigVersion, actor: str, note: str) -> None:
        """Record the publication and replace the live file, both or neither."""
        kind = version.kind

        async def work(connection: asyncpg.Connection) -> None:
            async with connection.transaction():
                await self._repo.lock(connection, kind)
                await self._repo.insert_publication(connection, kind, version.version_id,
                                                    actor, note)
                # Refused: the exception rolls the transaction back (the publication is
                # forgotten).
                self._replace_live(version)

        try:
            await self._database.run(work)
        except OSError as exc:
            raise ApplyFailed(f"Berkas {self._files.live_file(kind)} tidak dapat ditulis: "
                              f"{os_reason(exc)}") from exc

    def _replace_live(self, version: ConfigVersion) -> None:
        """Replace the live file the line watches with ``version``'s; if the line refuses it
        (it logged why), the old file is put back and :class:`ApplyFailed` raised."""
        kind, version_id = version.kind, version.version_id
        path = self._files.live_file(kind)
        previous = path.read_text(encoding="utf-8") if path.exists() else None
        replace_text(path, _live_text(version))
        if not self._taken(version):
            if previous is None:
                path.unlink()
            else:
                replace_text(path, previous)
            self._menus.current()
            self._screening.current()
            raise ApplyFailed(f"Layanan menolak berkas {path.name} versi #{version_id}; "
                              "versi sebelumnya tetap berjalan.")

    def _taken(self, version: ConfigVersion) -> bool:
        """Whether the line's watched file now holds this version."""
        if version.kind is ConfigKind.MENU:
            return self._menus.current().version == version.version_id
        return self._screening.current() == check_screening(version.document)

    async def restore(self) -> None:
        """Bring a (re)started Asterisk back to what was published: the live screening's
        normal priority (a restarted lab starts without it, and the dialplan then falls back
        to its template), and the live menu version's prompt audio, if this line made it."""
        self._asterisk.write_number(NORMAL_PRIORITY_KEY,
                                    self._screening.current().normal_priority)
        audio = self._files.audio_dir(self._menus.current().version)
        if audio.is_dir():
            await self._asterisk.install_prompts(audio)
