"""Call records in SQL: calls and participations."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, or_, select, update

from vrooms.store.database import Connection, rows_affected
from vrooms.store.tables import call_participants, calls


async def insert_call(
    conn: Connection, *, call_id: str, room_id: str, started_at: int, by: str, role: str, node: str
) -> None:
    await conn.execute(
        insert(calls).values(
            id=call_id, room_id=room_id, started_at=started_at, started_by=by, started_by_role=role, node=node
        )
    )


async def take_over_call(conn: Connection, call_id: str, *, from_node: str | None, to_node: str) -> bool:
    """Move an open call to ``to_node``, if it is still open and still ``from_node``'s (one winner)."""
    result = await conn.execute(
        update(calls).where(calls.c.id == call_id, calls.c.ended_at.is_(None), _node_is(from_node)).values(node=to_node)
    )
    return rows_affected(result) > 0


def _node_is(node: str | None) -> Any:
    return calls.c.node.is_(None) if node is None else calls.c.node == node


async def set_captions(conn: Connection, call_id: str, language: str | None) -> None:
    await conn.execute(update(calls).where(calls.c.id == call_id).values(captions=language))


async def captions_after_failure(conn: Connection, room_id: str, *, reason: str, since: int) -> str | None:
    """The captions language of the room's latest call, if it ended with ``reason`` after ``since``."""
    row = (
        await conn.execute(
            select(calls.c.captions, calls.c.end_reason, calls.c.ended_at)
            .where(calls.c.room_id == room_id, calls.c.ended_at.is_not(None))
            .order_by(calls.c.ended_at.desc())
            .limit(1)
        )
    ).first()
    if row is None or row.end_reason != reason or row.ended_at < since:
        return None
    return str(row.captions) if row.captions else None


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


async def open_calls(
    conn: Connection, *, room_id: str | None = None, nodes: list[str | None] | None = None
) -> list[dict[str, Any]]:
    """Calls never ended (of that room, of those nodes), each with its participations never ended."""
    query = select(calls).where(calls.c.ended_at.is_(None))
    if room_id is not None:
        query = query.where(calls.c.room_id == room_id)
    if nodes is not None:
        query = query.where(or_(*(_node_is(node) for node in nodes)))
    rows = (await conn.execute(query)).all()
    result = [dict(row._mapping) for row in rows]
    for call in result:
        participations = await conn.execute(
            select(call_participants).where(
                call_participants.c.call_id == call["id"], call_participants.c.left_at.is_(None)
            )
        )
        call["participants"] = [dict(row._mapping) for row in participations.all()]
    return result


async def room_of_open_call(conn: Connection, call_id: str) -> str | None:
    row = (await conn.execute(select(calls.c.room_id).where(calls.c.id == call_id, calls.c.ended_at.is_(None)))).first()
    return str(row.room_id) if row else None


async def open_call_ids(conn: Connection) -> set[str]:
    return {str(row.id) for row in (await conn.execute(select(calls.c.id).where(calls.c.ended_at.is_(None)))).all()}
