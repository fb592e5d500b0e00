"""SQL for identities."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update

from vrooms.store.database import Connection, rows_affected
from vrooms.store.tables import identities


async def insert_identity(conn: Connection, identity_id: str, created_at: int) -> None:
    await conn.execute(insert(identities).values(id=identity_id, created_at=created_at, token_generation=0))


async def token_generation(conn: Connection, identity_id: str) -> int | None:
    """The identity's current token generation, or None when it does not exist."""
    row = await conn.execute(select(identities.c.token_generation).where(identities.c.id == identity_id))
    return row.scalar_one_or_none()


async def bump_generation(conn: Connection, identity_id: str) -> bool:
    result = await conn.execute(
        update(identities)
        .where(identities.c.id == identity_id)
        .values(token_generation=identities.c.token_generation + 1)
    )
    return rows_affected(result) > 0


async def delete_identity(conn: Connection, identity_id: str) -> bool:
    result = await conn.execute(delete(identities).where(identities.c.id == identity_id))
    return rows_affected(result) > 0
