"""The signaling protocol, version 1 (docs/calling-protocol.md): message fields and checks.

Every client message is a JSON object with a ``type`` and an optional ``id``; the
reply to it is ``result`` or ``error`` carrying the same ``id``. Everything the
server sends unprompted is an event with its own ``type``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from vrooms.calls.models import CallRefused, MediaSource, Refusal

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 256 * 1024  # an SDP with many streams stays far below this
# A WebSocket frame beyond this closes the connection (1009) on the public port and the call
# host alike; up to it, a message over MAX_MESSAGE_BYTES is answered with an error.
MAX_FRAME_BYTES = 1024 * 1024
_MAX_TEXT = 256


def bad(message: str) -> CallRefused:
    return CallRefused(Refusal.BAD_MESSAGE, message)


class RequestBudget:
    """A token bucket per connection: a client may burst, not flood the media server.

    Clients send a handful of requests per user action; the defaults (Settings'
    ``signaling_request_burst`` and ``signaling_requests_per_second``) leave every honest
    client far below the limit.
    """

    def __init__(self, *, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate, self._burst, self._clock = per_second, float(burst), clock
        self._tokens, self._at = float(burst), clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


def text(message: dict[str, Any], name: str, *, optional: bool = False, limit: int = _MAX_TEXT) -> str | None:
    value = message.get(name)
    if value in (None, "") and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise bad(f"'{name}' must be a non-empty string of at most {limit} characters.")
    return value


def required(message: dict[str, Any], name: str, *, limit: int = _MAX_TEXT) -> str:
    value = text(message, name, limit=limit)
    assert value is not None
    return value


def sdp(message: dict[str, Any]) -> str:
    value = required(message, "sdp", limit=MAX_MESSAGE_BYTES)
    if not value.startswith("v=0"):
        raise bad("'sdp' must be an SDP session description (starting with v=0).")
    return value


def flag(message: dict[str, Any], name: str) -> bool:
    value = message.get(name)
    if not isinstance(value, bool):
        raise bad(f"'{name}' must be true or false.")
    return value


def source(message: dict[str, Any]) -> MediaSource:
    value = message.get("source", MediaSource.CAMERA)
    try:
        return MediaSource(value)
    except ValueError:
        raise bad(f"'source' must be one of {[str(s) for s in MediaSource]}.") from None


MAX_VISIBLE_VIDEO = 100


def visible_video(message: dict[str, Any]) -> frozenset[tuple[str, MediaSource]] | None:
    """``streams``: the videos a receiver shows, ``[{participantId, source}]`` (at most
    ``MAX_VISIBLE_VIDEO``), or null: every video (the default)."""
    streams = message.get("streams")
    if streams is None:
        return None
    if not isinstance(streams, list) or len(streams) > MAX_VISIBLE_VIDEO:
        raise bad(f"'streams' must be null or a list of at most {MAX_VISIBLE_VIDEO} {{participantId, source}}.")
    shown = set()
    for stream in streams:
        if not isinstance(stream, dict):
            raise bad("each of 'streams' must be {participantId, source}.")
        shown.add((required(stream, "participantId", limit=64), source(stream)))
    return frozenset(shown)


# -- server events: one constructor per type, so every shape is written once ------------
# (The fields are documented in docs/calling-protocol.md, "Events".)

Message = dict[str, Any]


def hello(user_id: str, nodes: list[str]) -> Message:
    """The first message; ``nodes``: in a cluster, the endpoints a client may connect through if this one goes."""
    return {"type": "hello", "protocol": PROTOCOL_VERSION, "userId": user_id, "nodes": nodes}


def media_available(available: bool) -> Message:
    return {"type": "mediaAvailable", "available": available}


def participant_joined(participant: Message) -> Message:
    return {"type": "participantJoined", "participant": participant}


def participant_updated(participant: Message) -> Message:
    return {"type": "participantUpdated", "participant": participant}


def participant_left(participant_id: str, reason: str, by: str | None = None) -> Message:
    """``by``: the user id of whoever removed them, if someone did."""
    return {"type": "participantLeft", "participantId": participant_id, "reason": reason, "by": by}


def left(call_id: str, reason: str, by: str | None, call_end_reason: str | None) -> Message:
    message: Message = {"type": "left", "callId": call_id, "reason": reason, "by": by}
    if call_end_reason is not None:
        message["callEndReason"] = call_end_reason
    return message


def nodes(endpoints: list[str]) -> Message:
    """A cluster's nodes changed: the endpoints a client may come back through (as in the hello)."""
    return {"type": "nodes", "nodes": endpoints}


def call_moved(call_id: str, nodes: list[str]) -> Message:
    """The call goes on on another node; ``nodes``: the endpoints to come back through (this one is leaving)."""
    return {"type": "callMoved", "callId": call_id, "nodes": nodes}


def call_ended(call_id: str, reason: str, by: str | None) -> Message:
    """To a call's watchers: the call is over (its participants get ``left`` instead)."""
    return {"type": "callEnded", "callId": call_id, "reason": reason, "by": by}


def speaking(participant_id: str, talking: bool) -> Message:
    return {"type": "speaking", "participantId": participant_id, "speaking": talking}


def dtmf_received(participant_id: str, tone: str) -> Message:
    """A digit a phone participant keyed (RFC 4733, reported by rtpengine)."""
    return {"type": "dtmfReceived", "participantId": participant_id, "tone": tone}


def active_speaker(participant_id: str) -> Message:
    return {"type": "activeSpeaker", "participantId": participant_id}


def permissions(role: str, capabilities: list[str]) -> Message:
    return {"type": "permissions", "role": role, "capabilities": capabilities}


def muted_by_others(by: str) -> Message:
    return {"type": "mutedByOthers", "by": by}


def video_offer(sdp: str, streams: list[Message]) -> Message:
    return {"type": "videoOffer", "sdp": sdp, "streams": streams}


def invite(room_id: str, call_id: str, inviter: Message) -> Message:
    return {"type": "invite", "roomId": room_id, "callId": call_id, "from": inviter}


def invite_declined(call_id: str, user_id: str) -> Message:
    return {"type": "inviteDeclined", "callId": call_id, "userId": user_id}


def invite_cancelled(call_id: str) -> Message:
    return {"type": "inviteCancelled", "callId": call_id}


def captions(state: Message, by: str) -> Message:
    return {"type": "captions", **state, "by": by}


def captions_received(
    participant_id: str, user_id: str, display_name: str, text: str, language: str, *, final: bool, timestamp: str
) -> Message:
    """A caption (ACS's ``CaptionsReceived``): ``Partial`` while the sentence grows, then ``Final``."""
    return {
        "type": "captionsReceived",
        "speaker": {"participantId": participant_id, "identifier": user_id, "displayName": display_name},
        "spokenText": text,
        "spokenLanguage": language,
        "resultType": "Final" if final else "Partial",
        "timestamp": timestamp,
    }


def error(request_id: Any, code: str, message: str, **details: Any) -> Message:
    return {"type": "error", "id": request_id, "code": str(code), "message": message, **details}


def result(request_id: Any, fields: Message | None) -> Message:
    return {"type": "result", "id": request_id, **(fields or {})}
