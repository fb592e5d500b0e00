"""HTTP routes of the Identity API, plus one vrooms extension for token holders."""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vrooms.api.endpoint import ApiCall, ApiServices, endpoint
from vrooms.api.responses import JSONResponse
from vrooms.api.times import format_rfc3339
from vrooms.auth.tokens import InvalidToken
from vrooms.errors import ApiError
from vrooms.identity import schemas
from vrooms.identity.commands import UserCommands
from vrooms.identity.service import IdentityService
from vrooms.store.database import Database


class IdentityApi(ApiServices, Protocol):
    """What the Identity routes use."""

    @property
    def database(self) -> Database: ...

    @property
    def identity(self) -> IdentityService: ...

    @property
    def user_commands(self) -> UserCommands: ...


Call = ApiCall[IdentityApi]


async def create_identity(call: Call) -> Response:
    request = schemas.parse_create(call.json(empty_ok=True))
    identity_id, token = await call.services.user_commands.create(request)
    body: dict[str, object] = {"identity": {"id": identity_id}}
    if token is not None:
        body["accessToken"] = schemas.token_to_wire(*token)
    return JSONResponse(body, status_code=201)


def _identity_id(call: Call) -> str:
    return schemas.check_identity_id(call.path_param("id"))


async def issue_token(call: Call) -> Response:
    identity_id = _identity_id(call)
    request = schemas.parse_issue(call.json())
    async with call.services.database.read() as conn:
        token, expires_at = await call.services.identity.issue_token(conn, identity_id, request)
    return JSONResponse(schemas.token_to_wire(token, expires_at))


async def revoke_tokens(call: Call) -> Response:
    identity_id = _identity_id(call)
    await call.services.user_commands.revoke_tokens(identity_id)
    return Response(status_code=204)


async def delete_identity(call: Call) -> Response:
    identity_id = _identity_id(call)
    await call.services.user_commands.delete(identity_id)
    return Response(status_code=204)


async def teams_not_federated(call: Call) -> Response:
    """Teams user operations: this deployment has no Microsoft Entra ID federation.

    ACS answers them only for a resource linked to a Teams tenant; vrooms says so in the
    ACS error shape (after authentication and body checks), rather than "no such path".
    """
    if call.request.method in ("POST", "PUT"):
        call.json()
    raise ApiError(
        403,
        "TeamsFederationNotConfigured",
        "This vrooms deployment is not federated with Microsoft Entra ID / Teams, so Teams user tokens "
        "cannot be exchanged; create identities with POST /identities and issue their tokens instead.",
    )


async def token_info(request: Request) -> Response:
    """vrooms extension: ``GET /access/tokenInfo`` with ``Authorization: Bearer <user token>``.

    Tells a client whether its token is accepted and what it grants, the same check
    room calls make; a refusal carries a reason code (TokenExpired, TokenRevoked...).
    """
    services: IdentityApi = request.app.state.services
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "TokenMissing", "Send the user's access token as 'Authorization: Bearer <token>'.")
    try:
        async with services.database.read() as conn:
            claims = await services.identity.verify_token(conn, token.strip())
    except InvalidToken as invalid:
        raise ApiError(401, invalid.reason, str(invalid)) from None
    return JSONResponse(
        {
            "identity": {"id": claims.identity_id},
            "scopes": list(claims.scopes),
            "expiresOn": format_rfc3339(int(claims.expires_at * 1_000_000)),
        }
    )


routes = [
    Route("/identities", endpoint(schemas.VERSIONS, create_identity), methods=["POST"]),
    Route("/identities/{id}", endpoint(schemas.VERSIONS, delete_identity), methods=["DELETE"]),
    Route("/identities/{id}/:issueAccessToken", endpoint(schemas.VERSIONS, issue_token), methods=["POST"]),
    Route("/identities/{id}/:revokeAccessTokens", endpoint(schemas.VERSIONS, revoke_tokens), methods=["POST"]),
    Route("/access/tokenInfo", token_info, methods=["GET"]),
    Route("/teamsUser/:exchangeAccessToken", endpoint(schemas.VERSIONS, teams_not_federated), methods=["POST"]),
    Route(
        "/access/teamsExtension/:exchangeAccessToken",
        endpoint(schemas.VERSIONS, teams_not_federated),
        methods=["POST"],
    ),
    Route(
        "/access/teamsExtension/tenants/{tenantId}/assignments/{objectId}",
        endpoint(schemas.VERSIONS, teams_not_federated),
        methods=["GET", "PUT", "DELETE"],
    ),
]
