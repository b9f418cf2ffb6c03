"""The recordings' HTTP routes: a recording's metadata, and its audio.

Every playback is written to the audit log *before* a byte is sent; if the log cannot be
written, nothing is sent.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from recordings.domain import State, unavailable_because
from recordings.store import Recording
from telephony.web.request import (
    actor_of,
    context_of,
    file_response,
    head_mark,
    instant_json,
    json_response,
    path_id,
    remote_of,
)
from telephony.web.routing import PLAYBACK, Reply, Route

_AUDIO: Final = Reply(200, None, {"audio/ogg": {}, "audio/mpeg": {}},
                      "Audio rekaman (206 untuk permintaan Range)")


def recording_json(recording: Recording) -> dict[str, Any]:
    """A recording's metadata; ``audio_url`` only once it is stored."""
    playable = recording.state is State.DONE
    return {
        "recording_id": recording.recording_id,
        "call_id": recording.call_id,
        "kind": recording.kind.value,
        "leg_id": recording.leg_id,
        "state": recording.state.value,
        "started_at": instant_json(recording.started_at),
        "duration_seconds": recording.duration_seconds,
        "silence_share": recording.silence_share,
        "loudness_dbfs": recording.loudness_dbfs,
        "format": recording.format,
        "size_bytes": recording.size_bytes,
        "sha256": recording.sha256,
        "legal_hold": recording.legal_hold,
        "processed_at": instant_json(recording.processed_at),
        "expired_at": instant_json(recording.expired_at),
        "audio_url": f"/api/recordings/{recording.recording_id}/audio" if playable else None,
        "unavailable_because": unavailable_because(recording.state, recording.reason),
    }


async def get_recording(request: web.Request) -> web.StreamResponse:
    """A recording's metadata."""
    recording_id = path_id(request, "recording_id", "Rekaman")
    recording = await context_of(request).recordings.get(recording_id)
    return json_response(recording_json(recording))


async def play_recording(request: web.Request) -> web.StreamResponse:
    """Stream a recording's audio (HTTP Range supported); audited before it is sent."""
    ctx = context_of(request)
    recording = await ctx.recordings.get(path_id(request, "recording_id", "Rekaman"))
    audio = ctx.recordings.audio(recording)
    response = file_response(request, audio.path, {"Content-Type": audio.content_type})
    await ctx.accounts.audit(
        actor=actor_of(request), action="recording.play", object_type="recording",
        object_id=str(recording.recording_id), remote_address=remote_of(request),
        detail={"call_id": recording.call_id, "range": request.headers.get("Range"),
                **head_mark(request)})
    return response


def routes() -> list[Route]:
    """The recordings' routes, with who may call them."""
    return [
        Route("GET", "/api/recordings/{recording_id}", get_recording, PLAYBACK,
              "Data rekaman", "rekaman", Reply(200, "Recording")),
        Route("GET", "/api/recordings/{recording_id}/audio", play_recording, PLAYBACK,
              "Putar rekaman (dicatat di log audit)", "rekaman", _AUDIO, errors=(416,)),
    ]
