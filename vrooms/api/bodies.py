"""Reading request bodies: size cap, JSON syntax, and typed field access with targets."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from vrooms.errors import ApiError, bad_argument, bad_request, payload_too_large


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The raw body, refusing anything over ``limit`` bytes before reading it all, and a
    body that takes longer than ``timeout`` (a client sending a byte at a time)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise bad_request("Content-Length must be a non-negative integer.", "Content-Length")
        if int(declared) > limit:
            raise payload_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise payload_too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(408, "RequestTimeout", f"The request body did not arrive within {timeout:g} s.") from None
    except ClientDisconnect:
        # Nobody reads the answer; an ApiError keeps it out of the error log (no traceback
        # per dropped connection, which anyone could turn into a flood).
        raise bad_request("The client disconnected before sending the whole body.") from None
    return b"".join(chunks)


def check_json_content_type(header: str | None) -> None:
    """A body is JSON only when it says so: ``application/json`` or a ``+json`` type (the
    SDKs send ``application/merge-patch+json`` for PATCH), in UTF-8."""
    media_type, _, parameters = (header or "").partition(";")
    media_type = media_type.strip().lower()
    charset = parameters.strip().lower().removeprefix("charset=").strip('"') if parameters.strip() else "utf-8"
    if (media_type == "application/json" or media_type.endswith("+json")) and charset in ("utf-8", "utf8"):
        return
    shown = f"'{header[:80]}'" if header else "missing"
    raise ApiError(
        415,
        "UnsupportedMediaType",
        f"The body must be JSON (Content-Type: application/json, UTF-8); the Content-Type is {shown}.",
        "Content-Type",
    )


def parse_json_object(body: bytes, *, empty_ok: bool) -> dict[str, Any]:
    """Parse a JSON object body; an empty body is ``{}`` where the API allows it."""
    if not body.strip():
        if empty_ok:
            return {}
        raise bad_request("The request body is required and must be a JSON object.")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}.", code="InvalidJson") from exc
    if not isinstance(value, dict):
        raise bad_request(f"The request body must be a JSON object, not {json_type(value)}.", code="InvalidJson")
    return value


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def reject_unknown_fields(body: dict[str, Any], allowed: set[str]) -> None:
    """Typos such as ``validUnitl`` would otherwise be ignored silently."""
    for name in body:
        if name not in allowed:
            raise bad_argument(f"Unknown field '{name}'. Allowed fields: {', '.join(sorted(allowed))}.", name)


def optional_bool(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise bad_argument(f"'{name}' must be a boolean, not {json_type(value)}.", name)


def optional_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_argument(f"'{name}' must be an integer, not {json_type(value)}.", name)
    return value


def optional_str_list(body: dict[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise bad_argument(f"'{name}' must be an array of strings.", name)
    return value
