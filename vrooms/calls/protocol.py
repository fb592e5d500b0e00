"""The signaling protocol, version 1 (docs/calling-protocol.md): message fields and checks.

Every client message is a JSON object with a ``type`` and an optional ``id``; the
reply to it is ``result`` or ``error`` carrying the same ``id``. Everything the
server sends unprompted is an event with its own ``type``.
"""

from __future__ import annotations

from typing import Any

from vrooms.calls.models import MediaSource, Refusal
from vrooms.calls.rules import CallRefused

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 256 * 1024  # an SDP with many streams stays far below this
_MAX_TEXT = 256


def bad(message: str) -> CallRefused:
    return CallRefused(Refusal.BAD_MESSAGE, message)


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
