"""Wire format of the Call Automation API (CallAutomation/stable/2025-05-15 and what the 1.6 SDK sends).

Parsing turns a request body into typed values or raises a 400 naming the field; rendering
writes ``CallConnectionProperties``, ``CallParticipant`` and the callback event data.
Fields the SDK may send for features vrooms does not offer (yet) are refused by name
rather than ignored, so an app never believes it got what it did not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from vrooms.callbacks.fields import MAX_URI_CHARS, call_locator, callback_uri, object_field, refuse_unsupported, text
from vrooms.errors import bad_argument
from vrooms.events.payloads import identifier
from vrooms.pstn import numbers

VERSIONS = ("2026-03-12", "2025-06-15", "2025-05-15", "2024-09-15", "2024-04-15", "2023-10-15", "2023-03-06")
MAX_CONTEXT_CHARS = 5000  # ACS's limit on operationContext
_MAX_RAW_ID_CHARS = 256
_MAX_INVITATION_SECONDS = 180  # AddParticipantRequest.invitationTimeoutInSeconds maximum
# The ACS names of DTMF tones (definition ``Tone``) and the RFC 4733 characters they stand for.
TONES = {
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "a": "A",
    "b": "B",
    "c": "C",
    "d": "D",
    "pound": "#",
    "asterisk": "*",
}
TONE_NAMES = {char: name for name, char in TONES.items()}
_MAX_TONES = 18  # ACS sends at most 18 tones per request


def operation_context(body: dict[str, Any]) -> str | None:
    return text(body, "operationContext", MAX_CONTEXT_CHARS)


def raw_id(body: dict[str, Any], name: str) -> str:
    """A ``CommunicationIdentifierModel`` as a raw id: an ACS user (``8:acs:...``) or a phone (``4:+1...``)."""
    model = object_field(body, name)
    assert model is not None
    raw = model.get("rawId")
    if raw is not None and (not isinstance(raw, str) or not raw or len(raw) > _MAX_RAW_ID_CHARS):
        raise bad_argument(f"{name}.rawId must be a non-empty string.", f"{name}.rawId")
    typed = _typed_raw_id(model, name)
    if raw is None and typed is None:
        raise bad_argument(f"{name} needs a rawId, a communicationUser or a phoneNumber.", name)
    if raw is not None and typed is not None and raw != typed:
        raise bad_argument(f"{name}.rawId does not match the identifier it names.", f"{name}.rawId")
    found = str(typed or raw)
    if numbers.number_of(found) is None and not found.startswith("8:"):
        raise bad_argument(f"{name} must be an ACS user or a phone number in a room call.", name)
    return found


def _typed_raw_id(model: dict[str, Any], name: str) -> str | None:
    user, phone = model.get("communicationUser"), model.get("phoneNumber")
    if isinstance(user, dict) and isinstance(user.get("id"), str) and user["id"]:
        return str(user["id"])[:_MAX_RAW_ID_CHARS]
    if isinstance(phone, dict):
        try:
            return numbers.raw_id(numbers.e164(phone.get("value"), f"{name}.phoneNumber.value"))
        except numbers.InvalidNumber as exc:
            raise bad_argument(str(exc), f"{name}.phoneNumber.value") from None
    if user is not None or phone is not None:
        raise bad_argument(f"{name} has a malformed communicationUser or phoneNumber.", name)
    return None


@dataclass(frozen=True)
class StreamingOptions:
    """``WebSocketMediaStreamingOptions``: where the call's audio goes, and in which format."""

    transport_url: str
    sample_rate: int
    bidirectional: bool
    start_at_once: bool
    mixed: bool = True


_AUDIO_FORMATS = {"pcm16kmono": 16000, "pcm24kmono": 24000}


def parse_streaming(body: dict[str, Any]) -> StreamingOptions | None:
    options = object_field(body, "mediaStreamingOptions", required=False)
    if options is None:
        return None
    name = "mediaStreamingOptions"
    refuse_unsupported(options, "enableDtmfTones")
    if str(options.get("transportType", "websocket")).lower() != "websocket":
        raise bad_argument(f"{name}.transportType must be websocket.", f"{name}.transportType")
    if str(options.get("contentType", "audio")).lower() != "audio":
        raise bad_argument(f"{name}.contentType must be audio.", f"{name}.contentType")
    channel = str(options.get("audioChannelType", "mixed")).lower()
    if channel not in ("mixed", "unmixed"):
        raise bad_argument(f"{name}.audioChannelType must be mixed or unmixed.", f"{name}.audioChannelType")
    url = _transport_url(options, name)
    rate = _AUDIO_FORMATS.get(str(options.get("audioFormat", "pcm16KMono")).lower())
    if rate is None:
        raise bad_argument(f"{name}.audioFormat must be pcm16KMono or pcm24KMono.", f"{name}.audioFormat")
    flags = {key: options.get(key, False) for key in ("enableBidirectional", "startMediaStreaming")}
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise bad_argument(f"{name}.{key} must be true or false.", f"{name}.{key}")
    return StreamingOptions(
        url, rate, flags["enableBidirectional"], flags["startMediaStreaming"], mixed=channel == "mixed"
    )


def _transport_url(options: dict[str, Any], name: str) -> str:
    url = text(options, "transportUrl", MAX_URI_CHARS, required=True) or ""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise bad_argument(f"{name}.transportUrl must be a ws:// or wss:// URL.", f"{name}.transportUrl")
    return url


@dataclass(frozen=True)
class TranscriptionOptions:
    """``WebSocketTranscriptionOptions``: where the call's live text goes, and in which language."""

    transport_url: str
    locale: str
    start_at_once: bool
    intermediate: bool


def locale(body: dict[str, Any], field: str, *, required: bool) -> str | None:
    """A BCP 47 tag as the engines name their models (lower case: ``en-US`` is ``en-us``)."""
    value = text(body, "locale", 35, required=required)
    if value is not None and not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*", value):
        raise bad_argument(f"{field} must be a BCP 47 language tag such as en-US.", field)
    return value.lower() if value is not None else None


def parse_transcription(body: dict[str, Any]) -> TranscriptionOptions | None:
    options = object_field(body, "transcriptionOptions", required=False)
    if options is None:
        return None
    name = "transcriptionOptions"
    refuse_unsupported(options, "speechModelEndpointId", "speechRecognitionModelEndpointId")
    if str(options.get("transportType", "websocket")).lower() != "websocket":
        raise bad_argument(f"{name}.transportType must be websocket.", f"{name}.transportType")
    flags = {key: options.get(key, False) for key in ("startTranscription", "enableIntermediateResults")}
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise bad_argument(f"{name}.{key} must be true or false.", f"{name}.{key}")
    language = locale(options, f"{name}.locale", required=True)
    assert language is not None
    url = _transport_url(options, name)
    return TranscriptionOptions(url, language, flags["startTranscription"], flags["enableIntermediateResults"])


@dataclass(frozen=True)
class ConnectRequest:
    room_id: str | None
    server_call_id: str | None
    callback_uri: str
    operation_context: str | None
    streaming: StreamingOptions | None = None
    transcription: TranscriptionOptions | None = None


def parse_connect(body: dict[str, Any]) -> ConnectRequest:
    locator = object_field(body, "callLocator")
    assert locator is not None
    room_id, server_call_id = call_locator(locator)
    return ConnectRequest(
        room_id,
        server_call_id,
        callback_uri(body),
        operation_context(body),
        parse_streaming(body),
        parse_transcription(body),
    )


@dataclass(frozen=True)
class AddRequest:
    raw_id: str
    invitation_seconds: float | None
    operation_context: str | None


def parse_add(body: dict[str, Any]) -> AddRequest:
    refuse_unsupported(body, "operationCallbackUri")
    target = raw_id(body, "participantToAdd")
    seconds = body.get("invitationTimeoutInSeconds")
    if seconds is not None and (
        not isinstance(seconds, int) or isinstance(seconds, bool) or not 0 <= seconds <= _MAX_INVITATION_SECONDS
    ):
        raise bad_argument(
            f"invitationTimeoutInSeconds must be an integer from 0 to {_MAX_INVITATION_SECONDS}.",
            "invitationTimeoutInSeconds",
        )
    caller = object_field(body, "sourceCallerIdNumber", required=False)
    if caller is not None:  # a PhoneNumberIdentifierModel; checked, but the trunk's caller id is what rings
        try:
            numbers.e164(caller.get("value"), "sourceCallerIdNumber.value")
        except numbers.InvalidNumber as exc:
            raise bad_argument(str(exc), "sourceCallerIdNumber.value") from None
    text(body, "sourceDisplayName", 256)
    return AddRequest(target, float(seconds) if seconds else None, operation_context(body))


@dataclass(frozen=True)
class TargetRequest:
    """A request about one participant: remove, hold, continuous DTMF, and the like."""

    raw_id: str
    operation_context: str | None


def parse_target(body: dict[str, Any], name: str) -> TargetRequest:
    refuse_unsupported(body, "operationCallbackUri")
    return TargetRequest(raw_id(body, name), operation_context(body))


def parse_mute(body: dict[str, Any]) -> TargetRequest:
    targets = body.get("targetParticipants")
    if not isinstance(targets, list) or len(targets) != 1:
        raise bad_argument("targetParticipants must list exactly one participant.", "targetParticipants")
    return TargetRequest(raw_id({"targetParticipants": targets[0]}, "targetParticipants"), operation_context(body))


@dataclass(frozen=True)
class DtmfRequest:
    raw_id: str
    tones: str
    operation_context: str | None


def parse_send_dtmf(body: dict[str, Any]) -> DtmfRequest:
    target = parse_target(body, "targetParticipant")
    tones = body.get("tones")
    if (
        not isinstance(tones, list)
        or not 1 <= len(tones) <= _MAX_TONES
        or not all(isinstance(t, str) and t.lower() in TONES for t in tones)
    ):
        raise bad_argument(f"tones must list 1 to {_MAX_TONES} of {sorted(TONES)}.", "tones")
    return DtmfRequest(target.raw_id, "".join(TONES[t.lower()] for t in tones), target.operation_context)


@dataclass(frozen=True)
class CancelAddRequest:
    invitation_id: str
    operation_context: str | None


def parse_cancel_add(body: dict[str, Any]) -> CancelAddRequest:
    refuse_unsupported(body, "operationCallbackUri")
    invitation = text(body, "invitationId", 64, required=True)
    return CancelAddRequest(str(invitation), operation_context(body))


# -- rendering ---------------------------------------------------------------------------


def participant_to_wire(raw: str, *, muted: bool, on_hold: bool) -> dict[str, Any]:
    return {"identifier": identifier(raw), "isMuted": muted, "isOnHold": on_hold}


def result_information(code: int, sub_code: int, message: str) -> dict[str, Any]:
    return {"code": code, "subCode": sub_code, "message": message}


# -- incoming calls: answer, reject, redirect, move ------------------------------------------

_MAX_CONTEXT_TOKEN = 4096
REJECT_CODES = {"none": 603, "busy": 486, "forbidden": 403}


def incoming_context(body: dict[str, Any]) -> str:
    return str(text(body, "incomingCallContext", _MAX_CONTEXT_TOKEN, required=True))


@dataclass(frozen=True)
class AnswerRequest:
    context: str
    callback_uri: str
    operation_context: str | None
    streaming: StreamingOptions | None = None
    transcription: TranscriptionOptions | None = None


def parse_answer(body: dict[str, Any]) -> AnswerRequest:
    refuse_unsupported(body, "answeredBy")
    return AnswerRequest(
        incoming_context(body),
        callback_uri(body),
        operation_context(body),
        parse_streaming(body),
        parse_transcription(body),
    )


def parse_reject(body: dict[str, Any]) -> tuple[str, int]:
    reason = body.get("callRejectReason", "none")
    if reason not in REJECT_CODES:
        raise bad_argument(f"callRejectReason must be one of {sorted(REJECT_CODES)}.", "callRejectReason")
    return incoming_context(body), REJECT_CODES[reason]


def parse_redirect(body: dict[str, Any]) -> tuple[str, str]:
    target = numbers.number_of(raw_id(body, "target"))
    if target is None:
        raise bad_argument("target must be a phone number: a trunk caller is redirected at the trunk.", "target")
    return incoming_context(body), target


@dataclass(frozen=True)
class MoveRequest:
    raw_ids: list[str]
    from_call: str
    operation_context: str | None


def parse_move(body: dict[str, Any]) -> MoveRequest:
    refuse_unsupported(body, "operationCallbackUri")
    targets = body.get("targetParticipants")
    if not isinstance(targets, list) or not 1 <= len(targets) <= 10:
        raise bad_argument("targetParticipants must list 1 to 10 participants.", "targetParticipants")
    return MoveRequest(
        [raw_id({"targetParticipants": t}, "targetParticipants") for t in targets],
        str(text(body, "fromCall", 128, required=True)),
        operation_context(body),
    )
