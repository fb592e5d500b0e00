"""Wire format of call recording (``StartCallRecordingRequest``, ``RecordingStateResponse``, events).

Paths and bodies of CallAutomation/stable (``/calling/recordings``) and the Event Grid data
``AcsRecordingFileStatusUpdatedEventData``. What vrooms records, as ACS does: ``audioVideo``
(mixed, MP4: the cameras in a grid, a screen share large, the call's mix as sound) or
``audio``, mixed (the mix, as every participant hears it) or unmixed (one file per
participant), as WAV or MP3. Defaults are ACS's: audioVideo, mixed, MP4, unless the request
names an audio-only channel or format (unmixed, wav, mp3: then audio, and WAV). A combination
ACS does not offer, and external storage, are refused by name (400), never downgraded.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from vrooms.callbacks.fields import call_locator, callback_uri, object_field, refuse_unsupported, text
from vrooms.errors import bad_argument


class Channel(StrEnum):
    MIXED = "mixed"
    UNMIXED = "unmixed"


class Content(StrEnum):
    AUDIO = "audio"
    AUDIO_VIDEO = "audioVideo"


class Format(StrEnum):
    WAV = "wav"
    MP3 = "mp3"
    MP4 = "mp4"


@dataclass(frozen=True)
class StartRequest:
    room_id: str | None
    server_call_id: str | None
    connection_id: str | None
    callback_uri: str | None
    content: Content
    channel: Channel
    format: Format
    pause_on_start: bool


def _choice(body: dict[str, Any], name: str, allowed: tuple[str, ...]) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    wanted = value.lower() if isinstance(value, str) else None
    match = next((a for a in allowed if a.lower() == wanted), None)
    if match is None:
        raise bad_argument(f"{name} must be one of {', '.join(allowed)}.", name)
    return match


def _kind(body: dict[str, Any]) -> tuple[Content, Channel, Format]:
    """Content, channel and format with ACS's defaults; audioVideo is mixed MP4, audio never MP4."""
    content = _choice(body, "recordingContentType", tuple(Content))
    channel = Channel(_choice(body, "recordingChannelType", tuple(Channel)) or Channel.MIXED)
    fmt = _choice(body, "recordingFormatType", tuple(Format))
    if content is None:
        audio_only = channel == Channel.UNMIXED or fmt in (Format.WAV, Format.MP3)
        content = Content.AUDIO if audio_only else Content.AUDIO_VIDEO
    if content == Content.AUDIO_VIDEO:
        if channel != Channel.MIXED:
            raise bad_argument("audioVideo is mixed; record audio for a file each.", "recordingChannelType")
        if fmt not in (None, Format.MP4):
            raise bad_argument("An audioVideo recording is an mp4 file.", "recordingFormatType")
        return Content.AUDIO_VIDEO, channel, Format.MP4
    if fmt == Format.MP4:
        raise bad_argument("mp4 is for audioVideo recordings; audio is wav or mp3.", "recordingFormatType")
    return Content.AUDIO, channel, Format(fmt or Format.WAV)


def parse_start(body: dict[str, Any]) -> StartRequest:
    refuse_unsupported(body, "externalStorage")
    content, channel, fmt = _kind(body)
    connection_id = text(body, "callConnectionId", 128)
    locator = object_field(body, "callLocator", required=connection_id is None)
    if locator is not None and connection_id is not None:
        raise bad_argument("Send either callLocator or callConnectionId, not both.", "callLocator")
    room_id, server_call_id = call_locator(locator) if locator is not None else (None, None)
    uri = callback_uri(body, "recordingStateCallbackUri") if body.get("recordingStateCallbackUri") else None
    pause = body.get("pauseOnStart", False)
    if not isinstance(pause, bool):
        raise bad_argument("pauseOnStart must be true or false.", "pauseOnStart")
    return StartRequest(room_id, server_call_id, connection_id, uri, content, channel, fmt, pause)


def state_response(recording_id: str, active: bool) -> dict[str, Any]:
    """``RecordingStateResponse``: a paused or stopped recording is ``inactive``, as in ACS."""
    return {
        "recordingId": recording_id,
        "recordingState": "active" if active else "inactive",
        "recordingKind": "azureCommunicationServices",
    }
