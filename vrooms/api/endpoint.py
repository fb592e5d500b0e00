"""The common path of every HMAC-authenticated endpoint.

Order matters: the body is size-capped before it is read, the signature is checked
before anything else is looked at (an unauthenticated caller learns nothing), then
the api-version is negotiated.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from vrooms.api.bodies import check_json_content_type, parse_json_object, read_body
from vrooms.api.versions import negotiate
from vrooms.auth import hmac
from vrooms.context import Services


@dataclass
class ApiCall:
    request: Request
    services: Services
    body: bytes
    version: str
    correlation_id: str

    def json(self, *, empty_ok: bool = False) -> dict[str, Any]:
        if self.body.strip():
            check_json_content_type(self.request.headers.get("content-type"))
        return parse_json_object(self.body, empty_ok=empty_ok)

    def path_param(self, name: str) -> str:
        return str(self.request.path_params[name])


Handler = Callable[[ApiCall], Awaitable[Response]]


def correlation_id(request: Request) -> str:
    """The request's id: the client's ``x-ms-client-request-id`` (bounded), else one made for it.

    Made once per request, so that the operation log and the ``x-ms-request-id`` response
    header name the same request.
    """
    known: str | None = getattr(request.state, "correlation_id", None)
    if known is None:
        known = (request.headers.get("x-ms-client-request-id") or str(uuid.uuid4()))[:64]
        request.state.correlation_id = known
    return known


def raw_target(request: Request) -> str:
    """The request target exactly as sent (percent-encoding kept)."""
    raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
    query = request.scope.get("query_string", b"")
    target = raw_path.decode("latin-1")
    return f"{target}?{query.decode('latin-1')}" if query else target


async def authenticate(request: Request, services: Services) -> bytes:
    settings = services.settings
    body = await read_body(request, settings.max_request_bytes, settings.http_body_timeout_seconds)
    hmac.verify(
        method=request.method,
        raw_target=raw_target(request),
        headers={k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]},
        body=body,
        keys=services.keyring.keys(),
        max_skew_seconds=services.settings.hmac_clock_skew_seconds,
    )
    return body


def endpoint(versions: tuple[str, ...], handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        services: Services = request.app.state.services
        body = await authenticate(request, services)
        call = ApiCall(
            request=request,
            services=services,
            body=body,
            version=negotiate(request, versions),
            correlation_id=correlation_id(request),
        )
        response = await handler(call)
        response.headers["x-ms-request-id"] = call.correlation_id
        return response

    return run
