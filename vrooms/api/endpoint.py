"""The common path of every HMAC-authenticated endpoint.

Order matters: the body is size-capped before it is read, the signature is checked
before anything else is looked at (an unauthenticated caller learns nothing), then
the api-version is negotiated.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from vrooms.api.bodies import check_json_content_type, parse_json_object, read_body
from vrooms.api.versions import negotiate
from vrooms.auth import hmac
from vrooms.auth.keys import KeyRing
from vrooms.config import Settings


class ApiServices(Protocol):
    """What the HTTP layer itself needs of a process's services: limits and the access keys.

    Each domain's routes extend it with what their handlers use (``rooms.routes.RoomsApi``...):
    this layer never learns the domains, and a domain's routes see only what they declare.
    """

    @property
    def settings(self) -> Settings: ...

    @property
    def keyring(self) -> KeyRing: ...


S = TypeVar("S", bound=ApiServices)


@dataclass
class ApiCall(Generic[S]):
    request: Request
    services: S
    body: bytes
    version: str
    correlation_id: str

    def json(self, *, empty_ok: bool = False) -> dict[str, Any]:
        if self.body.strip():
            check_json_content_type(self.request.headers.get("content-type"))
        return parse_json_object(self.body, empty_ok=empty_ok)

    def path_param(self, name: str) -> str:
        return str(self.request.path_params[name])


Handler = Callable[[ApiCall[S]], Awaitable[Response]]


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


async def authenticate(request: Request, services: ApiServices) -> bytes:
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


def endpoint(versions: tuple[str, ...], handler: Handler[S]) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        services: S = request.app.state.services
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
