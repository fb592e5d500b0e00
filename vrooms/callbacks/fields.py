"""Fields of app requests that Call Automation and recording both read (ACS's names, ACS's errors)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from vrooms.errors import bad_argument

MAX_URI_CHARS = 2048
_ROOM_ID = re.compile(r"^[0-9]{1,32}\Z")


def object_field(body: dict[str, Any], name: str, *, required: bool = True) -> dict[str, Any] | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, dict):
        raise bad_argument(f"{name} must be an object.", name)
    return value


def text(body: dict[str, Any], name: str, limit: int, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value) or len(value) > limit:
        raise bad_argument(f"{name} must be a string of at most {limit} characters.", name)
    return value


def refuse_unsupported(body: dict[str, Any], *names: str) -> None:
    for name in names:
        if body.get(name) is not None:
            raise bad_argument(f"{name} is not supported by this server (yet); send the request without it.", name)


def callback_uri(body: dict[str, Any], name: str = "callbackUri") -> str:
    value = text(body, name, MAX_URI_CHARS, required=True)
    parts = urlsplit(value or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad_argument(f"{name} must be an absolute http:// or https:// URL.", name)
    return str(value)


def call_locator(locator: dict[str, Any]) -> tuple[str | None, str | None]:
    """(room id, server call id) of a ``CallLocator``: exactly one of them is set."""
    kind = locator.get("kind", "roomCallLocator" if "roomId" in locator else "serverCallLocator")
    if kind == "roomCallLocator":
        room_id = text(locator, "roomId", 32, required=True)
        if not _ROOM_ID.match(room_id or ""):
            raise bad_argument("callLocator.roomId must be a room id (digits).", "callLocator.roomId")
        return room_id, None
    if kind == "serverCallLocator":
        return None, text(locator, "serverCallId", 128, required=True)
    raise bad_argument(
        "callLocator.kind must be roomCallLocator or serverCallLocator (room calls only).", "callLocator.kind"
    )
