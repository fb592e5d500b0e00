"""JSON responses, and the one place where an ``ApiError`` becomes an HTTP answer."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from vrooms.errors import ApiError

log = logging.getLogger("vrooms.api")


def dumps(content: Any, *, indent: bool = False) -> bytes:
    """JSON bytes; UTC datetimes become RFC 3339 with ``Z`` (a fraction only when non-zero)."""
    return orjson.dumps(content, option=orjson.OPT_UTC_Z | (orjson.OPT_INDENT_2 if indent else 0))


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def error_response(error: ApiError) -> Response:
    headers = {"x-ms-error-code": error.code, **error.headers}
    return JSONResponse(error.to_wire(), status_code=error.status, headers=headers)


async def handle_api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """Last resort: log the failure (never the request's secrets) and answer in ACS shape."""
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(ApiError(500, "InternalError", "The server failed to process the request; it was logged."))
