"""Identity rules: creating users, issuing and revoking their tokens, deleting them.

Deleting a user also takes it off every room roster, in the same transaction, so no
roster ever names a user that no longer exists.
"""

from __future__ import annotations

import uuid

from vrooms.api.times import now_micros
from vrooms.auth.tokens import InvalidToken, TokenClaims, TokenIssuer
from vrooms.errors import ApiError, not_found
from vrooms.identity import repository
from vrooms.identity.schemas import TokenRequest
from vrooms.rooms.service import RoomsService
from vrooms.store.database import Connection


def _missing(identity_id: str) -> ApiError:
    return not_found(f"Identity {identity_id} was not found; it may have been deleted.", "id")


class IdentityService:
    def __init__(self, *, resource_id: str, tokens: TokenIssuer, rooms: RoomsService) -> None:
        self.resource_id = resource_id
        self._tokens = tokens
        self._rooms = rooms

    def _new_id(self) -> str:
        return f"8:acs:{self.resource_id}_{uuid.uuid4()}"

    async def create(self, conn: Connection) -> str:
        identity_id = self._new_id()
        await repository.insert_identity(conn, identity_id, now_micros())
        return identity_id

    async def _generation(self, conn: Connection, identity_id: str) -> int:
        generation = await repository.token_generation(conn, identity_id)
        if generation is None:
            raise _missing(identity_id)
        return generation

    async def issue_token(self, conn: Connection, identity_id: str, request: TokenRequest) -> tuple[str, float]:
        generation = await self._generation(conn, identity_id)
        return self._tokens.issue(identity_id, request.scopes, generation, request.minutes)

    async def unknown(self, conn: Connection, identity_ids: list[str]) -> list[str]:
        """Those of ``identity_ids`` that name no identity (for the CLI, which checks rosters)."""
        return [i for i in identity_ids if await repository.token_generation(conn, i) is None]

    async def revoke_tokens(self, conn: Connection, identity_id: str) -> None:
        if not await repository.bump_generation(conn, identity_id):
            raise _missing(identity_id)

    async def delete(self, conn: Connection, identity_id: str) -> None:
        if not await repository.delete_identity(conn, identity_id):
            raise _missing(identity_id)
        await self._rooms.remove_from_every_roster(conn, identity_id)

    async def verify_token(self, conn: Connection, token: str) -> TokenClaims:
        """The claims of a valid, unexpired, unrevoked token of an existing identity."""
        claims = self._tokens.decode(token)
        generation = await repository.token_generation(conn, claims.identity_id)
        if generation is None:
            raise InvalidToken("IdentityDeleted", "The token's identity has been deleted.")
        if claims.generation != generation:
            raise InvalidToken("TokenRevoked", "The token has been revoked.")
        return claims
