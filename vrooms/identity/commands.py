"""Identity changes as the REST API and the CLI both make them: in one transaction, and, where a
live participation may have to end (tokens revoked, identity deleted), the call host told.
"""

from __future__ import annotations

from typing import Protocol

from vrooms.identity.schemas import TokenRequest
from vrooms.identity.service import IdentityService
from vrooms.store.database import Database


class LiveCallsNotice(Protocol):
    """Where live calls learn of a change (the call host's notice socket, or the cluster's bus)."""

    async def user_changed(self, user_id: str) -> None: ...


class UserCommands:
    def __init__(self, database: Database, identity: IdentityService, calls: LiveCallsNotice) -> None:
        self.database = database
        self.identity = identity
        self.calls = calls

    async def create(self, request: TokenRequest | None) -> tuple[str, tuple[str, float] | None]:
        """A new user, with a token for ``request``'s scopes if there is one."""
        async with self.database.write() as conn:
            user_id = await self.identity.create(conn)
            token = await self.identity.issue_token(conn, user_id, request) if request else None
        return user_id, token

    async def revoke_tokens(self, user_id: str) -> None:
        async with self.database.write() as conn:
            await self.identity.revoke_tokens(conn, user_id)
        await self.calls.user_changed(user_id)  # participations under way end (TokenRevoked)

    async def delete(self, user_id: str) -> None:
        async with self.database.write() as conn:
            await self.identity.delete(conn, user_id)
        await self.calls.user_changed(user_id)
