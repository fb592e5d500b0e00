"""Wire format of call recording (``StartCallRecordingRequest``, ``RecordingStateResponse``, events).

Paths and bodies of CallAutomation/stable (``/calling/recordings``) and the Event Grid data
``AcsRecordingFileStatusUpdatedEventData``. What vrooms records: audio, mixed (the call's
mix, as every participant hears it) or unmixed (one file per participant), as WAV or MP3.
``audioVideo``/``mp4`` and external storage are refused by name (400), never silently
downgraded; a request that names no content, channel or format gets audio, mixed, WAV.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from vrooms.automation.schemas import call_locator, callback_uri, object_field, refuse_unsupported, text
from vrooms.errors import bad_argument


class Channel(StrEnum):
    MIXED = "mixed"
    UNMIXED = "unmixed"


class Format(StrEnum):
    WAV = "wav"
    MP3 = "mp3"


@dataclass(frozen=True)
class StartRequest:
    room_id: str | None
    server_call_id: str | None
    connection_id: str | None
    callback_uri: str | None
    channel: Channel
    format: Format
    pause_on_start: bool


def _choice(body: dict[str, Any], name: str, allowed: tuple[str, ...], default: str, why: str) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or value.lower() not in allowed:
        raise bad_argument(f"{name} must be one of {', '.join(allowed)}{why}.", name)
    return value.lower()


def parse_start(body: dict[str, Any]) -> StartRequest:
    refuse_unsupported(body, "externalStorage")
    if body.get("recordingContentType", "audio") != "audio":
        raise bad_argument(
            "recordingContentType audioVideo is not offered by this server yet; record audio.", "recordingContentType"
        )
    channel = _choice(body, "recordingChannelType", ("mixed", "unmixed"), "mixed", "")
    fmt = _choice(body, "recordingFormatType", ("wav", "mp3"), "wav", " (mp4 needs audioVideo, not offered yet)")
    connection_id = text(body, "callConnectionId", 128)
    locator = object_field(body, "callLocator", required=connection_id is None)
    if locator is not None and connection_id is not None:
        raise bad_argument("Send either callLocator or callConnectionId, not both.", "callLocator")
    room_id, server_call_id = call_locator(locator) if locator is not None else (None, None)
    uri = callback_uri(body, "recordingStateCallbackUri") if body.get("recordingStateCallbackUri") else None
    pause = body.get("pauseOnStart", False)
    if not isinstance(pause, bool):
        raise bad_argument("pauseOnStart must be true or false.", "pauseOnStart")
    return StartRequest(room_id, server_call_id, connection_id, uri, Channel(channel), Format(fmt), pause)


def state_response(recording_id: str, active: bool) -> dict[str, Any]:
    """``RecordingStateResponse``: a paused or stopped recording is ``inactive``, as in ACS."""
    return {
        "recordingId": recording_id,
        "recordingState": "active" if active else "inactive",
        "recordingKind": "azureCommunicationServices",
    }
