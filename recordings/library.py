"""Finding stored recordings and their audio files, for whoever may play them.

Who may play a recording, and writing down that they did, is the caller's business (the web
layer checks the role and appends to the audit log before it streams anything); this module
only guarantees that the file served is the stored recording itself and never anything outside
the recordings directory, whatever the ``storage_path`` column says.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from recordings.domain import State
from recordings.store import Recording, RecordingRepository
from telephony.core.errors import NotFound
from telephony.core.storage import StoredFileError, stored_file
from telephony.db.connection import Database

log = logging.getLogger("recordings.library")

CONTENT_TYPES = {"opus": "audio/ogg; codecs=opus", "mp3": "audio/mpeg"}

_STATE_TEXT = {
    State.PENDING: "masih menunggu diproses",
    State.PROCESSING: "sedang diproses",
    State.FAILED: "gagal diproses (disimpan di karantina)",
    State.MISSING: "tidak ada berkasnya",
    State.EXPIRED: "sudah dihapus karena masa simpannya habis",
}


class RecordingNotFound(NotFound, LookupError):
    """No recording has this id."""

    def __init__(self, recording_id: int) -> None:
        super().__init__(f"Rekaman #{recording_id} tidak ditemukan.")


class RecordingUnavailable(NotFound):
    """The recording exists but has no audio that can be served."""

    code = "recording_unavailable"


@dataclass(frozen=True)
class AudioFile:
    """A stored recording's file, safe to stream."""

    path: Path
    content_type: str


class RecordingLibrary:
    """Reads recordings and resolves their stored files under ``storage_dir``."""

    def __init__(self, database: Database, storage_dir: Path,
                 repository: RecordingRepository | None = None) -> None:
        self._database = database
        self._storage_dir = storage_dir
        self._repo = repository or RecordingRepository()

    async def get(self, recording_id: int) -> Recording:
        """One recording; :class:`RecordingNotFound` if there is none."""

        async def work(connection: asyncpg.Connection) -> Recording | None:
            return await self._repo.recording_by_id(connection, recording_id)

        found = await self._database.run(work)
        if found is None:
            raise RecordingNotFound(recording_id)
        return found

    async def of_calls(self, call_ids: list[str]) -> list[Recording]:
        """Every recording of these calls."""

        async def work(connection: asyncpg.Connection) -> list[Recording]:
            return await self._repo.recordings_of_calls(connection, call_ids)

        return await self._database.run(work)

    def audio(self, recording: Recording) -> AudioFile:
        """The recording's stored file; :class:`RecordingUnavailable` if it has none, if its
        stored path is unsafe (logged: that row was not written by our worker), or if the file
        is not as long as the one stored (logged: emptied or cut short since, it would play as
        a shorter call, or as nothing, with no word of why)."""
        number = recording.recording_id
        if recording.state is not State.DONE or recording.storage_path is None:
            text = _STATE_TEXT.get(recording.state, "belum tersimpan")
            raise RecordingUnavailable(f"Rekaman #{number} {text}.")
        try:
            path = stored_file(self._storage_dir, recording.storage_path)
            size = path.stat().st_size
        except (StoredFileError, OSError) as exc:
            log.error("recording %d not served: %s", number, exc)
            raise RecordingUnavailable(f"Berkas rekaman #{number} tidak tersedia.") from exc
        if recording.size_bytes is not None and size != recording.size_bytes:
            log.error("recording %d not served: %s holds %d bytes, %d were stored", number,
                      path, size, recording.size_bytes)
            raise RecordingUnavailable(
                f"Berkas rekaman #{number} rusak (ukurannya {size} byte, seharusnya "
                f"{recording.size_bytes} byte); minta admin memulihkannya dari cadangan.")
        return AudioFile(path, CONTENT_TYPES.get(recording.format or "",
                                                 "application/octet-stream"))
