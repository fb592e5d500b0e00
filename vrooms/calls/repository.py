"""Call records in SQL: calls and participations."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update

from vrooms.store.database import Connection
from vrooms.store.tables import call_participants, calls


async def insert_call(conn: Connection, *, call_id: str, room_id: str, started_at: int, by: str, role: str) -> None:
    await conn.execute(
        insert(calls).values(id=call_id, room_id=room_id, started_at=started_at, started_by=by, started_by_role=role)
    )


async def end_call(conn: Connection, call_id: str, *, ended_at: int, reason: str, ended_by: str | None) -> None:
    await conn.execute(
        update(calls).where(calls.c.id == call_id).values(ended_at=ended_at, end_reason=reason, ended_by=ended_by)
    )


async def insert_participation(conn: Connection, **values: Any) -> None:
    await conn.execute(insert(call_participants).values(**values))


async def end_participation(
    conn: Connection, participation_id: str, *, left_at: int, reason: str, removed_by: str | None
) -> None:
    await conn.execute(
        update(call_participants)
        .where(call_participants.c.id == participation_id)
        .values(left_at=left_at, leave_reason=reason, removed_by=removed_by)
    )


async def open_calls(conn: Connection) -> list[dict[str, Any]]:
    """Calls never ended, each with its participations never ended (what a crash leaves behind)."""
    rows = (await conn.execute(select(calls).where(calls.c.ended_at.is_(None)))).all()
    result = [dict(row._mapping) for row in rows]
    for call in result:
        participations = await conn.execute(
            select(call_participants).where(
                call_participants.c.call_id == call["id"], call_participants.c.left_at.is_(None)
            )
        )
        call["participants"] = [dict(row._mapping) for row in participations.all()]
    return result
