"""SQL for rooms and rosters. Every function runs on a connection the caller opened."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update

from vrooms.auth.roles import Role
from vrooms.rooms.models import Participant, RoleCounts, Room
from vrooms.store.database import Connection, rows_affected
from vrooms.store.tables import participants, rooms

_IN_CHUNK = 1000

_ROOM_COLUMNS = (
    rooms.c.id,
    rooms.c.seq,
    rooms.c.created_at,
    rooms.c.valid_from,
    rooms.c.valid_until,
    rooms.c.pstn_dial_out_enabled,
    rooms.c.presenters,
    rooms.c.attendees,
    rooms.c.consumers,
    rooms.c.collaborators,
)


def _room(row: Sequence[Any]) -> Room:
    # Positional unpacking: named access on a Row costs more than building the Room.
    room_id, seq, created_at, valid_from, valid_until, pstn, presenters, attendees, consumers, collaborators = row
    counts = RoleCounts(presenters, attendees, consumers, collaborators)
    return Room(room_id, seq, created_at, valid_from, valid_until, bool(pstn), counts)


def _counts_values(counts: RoleCounts) -> dict[str, int]:
    return {
        "presenters": counts.presenters,
        "attendees": counts.attendees,
        "consumers": counts.consumers,
        "collaborators": counts.collaborators,
    }


async def room_id_exists(conn: Connection, room_id: str) -> bool:
    found = await conn.execute(select(rooms.c.seq).where(rooms.c.id == room_id))
    return found.first() is not None


async def insert_room(
    conn: Connection,
    *,
    room_id: str,
    created_at: int,
    valid_from: int,
    valid_until: int,
    pstn_dial_out_enabled: bool,
    roster: dict[str, Role],
) -> Room:
    counts = RoleCounts.of(list(roster.values()))
    result = await conn.execute(
        insert(rooms)
        .values(
            id=room_id,
            created_at=created_at,
            valid_from=valid_from,
            valid_until=valid_until,
            pstn_dial_out_enabled=pstn_dial_out_enabled,
            **_counts_values(counts),
        )
        .returning(rooms.c.seq)
    )
    seq = result.scalar_one()
    if roster:
        await conn.execute(
            insert(participants),
            [{"room_id": room_id, "raw_id": raw_id, "role": role.value} for raw_id, role in roster.items()],
        )
    return Room(room_id, seq, created_at, valid_from, valid_until, pstn_dial_out_enabled, counts)


async def get_room(conn: Connection, room_id: str, *, for_update: bool = False) -> Room | None:
    query = select(*_ROOM_COLUMNS).where(rooms.c.id == room_id)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return _room(row) if row else None


async def update_room(
    conn: Connection, room_id: str, *, valid_from: int, valid_until: int, pstn_dial_out_enabled: bool
) -> None:
    await conn.execute(
        update(rooms)
        .where(rooms.c.id == room_id)
        .values(valid_from=valid_from, valid_until=valid_until, pstn_dial_out_enabled=pstn_dial_out_enabled)
    )


async def delete_room(conn: Connection, room_id: str) -> bool:
    await conn.execute(delete(participants).where(participants.c.room_id == room_id))
    result = await conn.execute(delete(rooms).where(rooms.c.id == room_id))
    return rows_affected(result) > 0


async def list_rooms(conn: Connection, *, after_seq: int, limit: int) -> list[Room]:
    query = select(*_ROOM_COLUMNS).where(rooms.c.seq > after_seq).order_by(rooms.c.seq).limit(limit)
    return [_room(row) for row in await conn.execute(query)]


async def list_participants(conn: Connection, room_id: str, *, after_raw_id: str, limit: int) -> list[Participant]:
    query = (
        select(participants.c.raw_id, participants.c.role)
        .where(participants.c.room_id == room_id, participants.c.raw_id > after_raw_id)
        .order_by(participants.c.raw_id)
        .limit(limit)
    )
    return [Participant(row.raw_id, Role(row.role)) for row in await conn.execute(query)]


def _chunks(raw_ids: list[str]) -> list[list[str]]:
    """Lists of ids small enough for one ``IN (...)``: SQLite and asyncpg allow 32,766 and
    32,767 parameters, and a 1 MB PATCH can name more ids than that."""
    return [raw_ids[i : i + _IN_CHUNK] for i in range(0, len(raw_ids), _IN_CHUNK)]


async def roles_of(conn: Connection, room_id: str, raw_ids: list[str]) -> dict[str, Role]:
    roles: dict[str, Role] = {}
    for chunk in _chunks(raw_ids):
        query = select(participants.c.raw_id, participants.c.role).where(
            participants.c.room_id == room_id, participants.c.raw_id.in_(chunk)
        )
        roles.update({row.raw_id: Role(row.role) for row in await conn.execute(query)})
    return roles


async def upsert_participants(conn: Connection, room_id: str, new: dict[str, Role], changed: dict[str, Role]) -> None:
    if new:
        await conn.execute(
            insert(participants),
            [{"room_id": room_id, "raw_id": raw_id, "role": role.value} for raw_id, role in new.items()],
        )
    for raw_id, role in changed.items():
        await conn.execute(
            update(participants)
            .where(participants.c.room_id == room_id, participants.c.raw_id == raw_id)
            .values(role=role.value)
        )


async def remove_participants(conn: Connection, room_id: str, raw_ids: list[str]) -> None:
    for chunk in _chunks(raw_ids):
        await conn.execute(
            delete(participants).where(participants.c.room_id == room_id, participants.c.raw_id.in_(chunk))
        )


async def store_counts(conn: Connection, room_id: str, counts: RoleCounts) -> None:
    await conn.execute(update(rooms).where(rooms.c.id == room_id).values(**_counts_values(counts)))


async def memberships(conn: Connection, raw_id: str) -> dict[str, Role]:
    """Every room whose roster holds ``raw_id``, with the role it has there."""
    query = select(participants.c.room_id, participants.c.role).where(participants.c.raw_id == raw_id)
    return {row.room_id: Role(row.role) for row in await conn.execute(query)}
