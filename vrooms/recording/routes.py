"""The documents of finished recordings, served by the REST workers straight from disk.

These are the ``contentLocation`` / ``metadataLocation`` / ``deleteLocation`` URLs of
``RecordingFileStatusUpdated``: what the SDK's ``download_recording`` (a GET, optionally
with ``Range``) and ``delete_recording`` (a DELETE) call, HMAC-signed with the resource's
access key like every other request; the SDK sends no api-version here, so none is asked.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from vrooms.api.endpoint import ApiServices, authenticate
from vrooms.api.responses import JSONResponse
from vrooms.api.times import format_rfc3339
from vrooms.errors import ApiError, not_found
from vrooms.recording.encode import CANVAS, FPS
from vrooms.recording.schemas import Content
from vrooms.recording.store import Document, Phase, RecordingState, RecordingStore

_VIDEO = {"longerSideLength": CANVAS[0], "shorterSideLength": CANVAS[1], "framerate": FPS}
_MEDIA_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "mp4": "video/mp4", "vtt": "text/vtt; charset=utf-8"}


def _store(services: ApiServices) -> RecordingStore:
    return RecordingStore(services.settings.effective_recordings_dir)


async def _finished(request: Request) -> tuple[RecordingStore, RecordingState]:
    services: ApiServices = request.app.state.services
    await authenticate(request, services)
    store = _store(services)
    state = store.load(str(request.path_params["recordingId"]))
    if state is None:
        raise not_found("No recording with this id (it may have been deleted).", "recordingId")
    if state.phase not in (Phase.DONE, Phase.FAILED):
        raise ApiError(409, "Conflict", "The recording is not finished; wait for RecordingFileStatusUpdated.")
    return store, state


async def _document(request: Request) -> tuple[RecordingState, Document, Any]:
    store, state = await _finished(request)
    found = store.document(state, str(request.path_params["documentId"]))
    if found is None:
        raise not_found("The recording has no document with this id.", "documentId")
    return state, *found


async def content(request: Request) -> Response:
    state, document, path = await _document(request)
    kind = "vtt" if document.file.endswith(".vtt") else state.format  # the transcript, or the media
    return FileResponse(path, media_type=_MEDIA_TYPES.get(kind, "application/octet-stream"))


async def metadata(request: Request) -> Response:
    """What ACS's recording metadata says: the chunk, its timing, format and participants."""
    state, document, _ = await _document(request)
    participants = [document.participant] if document.participant else sorted(set(state.legs.values()))
    return JSONResponse(
        {
            "resourceId": state.room_id,
            "callId": state.call_id,
            "chunkDocumentId": document.document_id,
            "chunkIndex": next(n for n, d in enumerate(state.documents) if d is document),
            "chunkStartTime": format_rfc3339(state.started_at),
            "chunkDuration": document.duration_ms,
            "pauseResumeIntervals": _pauses(state),
            "recordingInfo": {
                "contentType": state.content,
                "channelType": state.channel,
                "format": state.format,
                "audioConfiguration": {"sampleRate": 48000, "channels": 1},
                **({"videoConfiguration": _VIDEO} if state.content == Content.AUDIO_VIDEO else {}),
            },
            "participants": [{"participantId": raw_id} for raw_id in participants],
        }
    )


def _pauses(state: RecordingState) -> list[dict[str, Any]]:
    pauses = []
    for before, after in zip(state.segments, state.segments[1:], strict=False):
        paused_at = before.ended_at or before.started_at
        pauses.append({"startTime": format_rfc3339(paused_at), "duration": (after.started_at - paused_at) // 1000})
    return pauses


async def delete(request: Request) -> Response:
    store, state = await _finished(request)
    store.delete(state.id)
    return Response(status_code=200)


_DOCUMENT = "/recordings/{recordingId}/documents/{documentId}"
routes = [
    Route(f"{_DOCUMENT}/content", content, methods=["GET"]),
    Route(f"{_DOCUMENT}/metadata", metadata, methods=["GET"]),
    Route("/recordings/{recordingId}", delete, methods=["DELETE"]),
]
