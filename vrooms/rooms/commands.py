"""Room changes as the REST API and the CLI both make them: written in one transaction, then the
call host told, so that a live call applies them at once (a removal ends a participation, a
demotion mutes, a shortened window ends the call). One place, so no caller forgets the notice.
"""

from __future__ import annotations

from typing import Protocol

from vrooms.auth.roles import Role
from vrooms.rooms.models import NewRoom, Room, RoomChanges, RosterChange
from vrooms.rooms.service import RoomsService
from vrooms.store.database import Database


class LiveCallsNotice(Protocol):
    """Where live calls learn of a change (the call host's notice socket, or the cluster's bus)."""

    async def room_changed(self, room_id: str) -> None: ...


class RoomCommands:
    def __init__(self, database: Database, rooms: RoomsService, calls: LiveCallsNotice) -> None:
        self.database = database
        self.rooms = rooms
        self.calls = calls

    async def create(self, new: NewRoom) -> Room:
        async with self.database.write() as conn:
            return await self.rooms.create(conn, new)

    async def update(self, room_id: str, changes: RoomChanges) -> Room:
        async with self.database.write() as conn:
            room = await self.rooms.update(conn, room_id, changes)
        await self.calls.room_changed(room_id)
        return room

    async def delete(self, room_id: str) -> None:
        async with self.database.write() as conn:
            await self.rooms.delete(conn, room_id)
        await self.calls.room_changed(room_id)

    async def change_roster(self, room_id: str, changes: dict[str, Role | None]) -> RosterChange:
        async with self.database.write() as conn:
            change = await self.rooms.change_roster(conn, room_id, changes)
        await self.calls.room_changed(room_id)
        return change
