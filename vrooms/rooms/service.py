"""The Rooms rules: validity windows, roster limits, roster merges. No HTTP, no SQL.

Windows follow ACS: ``validFrom`` defaults to now and ``validUntil`` to ``validFrom``
+ 180 days; a room lives at most 180 days, cannot open more than 180 days ahead, and
cannot end in the past.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import replace

from vrooms.api.times import now_micros
from vrooms.auth.roles import Role
from vrooms.errors import ApiError, bad_argument, not_found
from vrooms.events import payloads
from vrooms.events import repository as outbox
from vrooms.events.models import EventType
from vrooms.rooms import repository
from vrooms.rooms.models import NewRoom, Participant, RoleCounts, Room, RoomChanges, RosterChange
from vrooms.store.database import Connection

DAY = 86_400 * 1_000_000
MAX_LIFESPAN = 180 * DAY
MAX_LEAD_TIME = 180 * DAY


def new_room_id() -> str:
    """A numeric id like ACS's (17 digits)."""
    return str(10**16 + secrets.randbelow(9 * 10**16))


def check_window(valid_from: int, valid_until: int, now: int, *, from_set: bool, until_set: bool) -> None:
    """Raise 400 for the first broken window rule; ``*_set`` say which ends the client sent."""
    relation_target = "validUntil" if until_set or not from_set else "validFrom"
    if from_set and valid_from > now + MAX_LEAD_TIME:
        raise bad_argument("validFrom cannot be more than 180 days in the future.", "validFrom")
    if until_set and valid_until <= now:
        raise bad_argument("validUntil cannot be in the past.", "validUntil")
    if valid_until <= valid_from:
        raise bad_argument("validUntil must be later than validFrom.", relation_target)
    if valid_until - valid_from > MAX_LIFESPAN:
        raise bad_argument(
            "The room's lifespan (validFrom to validUntil) cannot be longer than 180 days.",
            relation_target,
        )


def _missing(room_id: str) -> ApiError:
    return not_found(f"Room {room_id} was not found; it may have been deleted.", "roomId")


def _adjust(counts: RoleCounts, role: Role, delta: int) -> RoleCounts:
    field = {
        Role.PRESENTER: "presenters",
        Role.ATTENDEE: "attendees",
        Role.CONSUMER: "consumers",
        Role.COLLABORATOR: "collaborators",
    }[role]
    return replace(counts, **{field: getattr(counts, field) + delta})


class RoomsService:
    def __init__(self, *, max_participants: int, clock: Callable[[], int] = now_micros) -> None:
        self.max_participants = max_participants
        self._clock = clock

    def _check_roster_size(self, size: int) -> None:
        if size > self.max_participants:
            raise bad_argument(
                f"A room can have at most {self.max_participants} participants; this change would make {size}.",
                "participants",
            )

    async def create(self, conn: Connection, new: NewRoom) -> Room:
        now = self._clock()
        valid_from = now if new.valid_from is None else new.valid_from
        valid_until = valid_from + MAX_LIFESPAN if new.valid_until is None else new.valid_until
        check_window(
            valid_from,
            valid_until,
            now,
            from_set=new.valid_from is not None,
            until_set=new.valid_until is not None,
        )
        self._check_roster_size(len(new.participants))
        room_id = new_room_id()
        while await repository.room_id_exists(conn, room_id):
            room_id = new_room_id()
        room = await repository.insert_room(
            conn,
            room_id=room_id,
            created_at=now,
            valid_from=valid_from,
            valid_until=valid_until,
            pstn_dial_out_enabled=new.pstn_dial_out_enabled,
            roster=new.participants,
        )
        await outbox.append(conn, payloads.room_event(EventType.ROOM_CREATED, room))
        return room

    async def get(self, conn: Connection, room_id: str, *, for_update: bool = False) -> Room:
        room = await repository.get_room(conn, room_id, for_update=for_update)
        if room is None:
            raise _missing(room_id)
        return room

    async def update(self, conn: Connection, room_id: str, changes: RoomChanges) -> Room:
        room = await self.get(conn, room_id, for_update=True)
        updated = replace(
            room,
            valid_from=room.valid_from if changes.valid_from is None else changes.valid_from,
            valid_until=room.valid_until if changes.valid_until is None else changes.valid_until,
            pstn_dial_out_enabled=(
                room.pstn_dial_out_enabled if changes.pstn_dial_out_enabled is None else changes.pstn_dial_out_enabled
            ),
        )
        if changes.valid_from is not None or changes.valid_until is not None:
            check_window(
                updated.valid_from,
                updated.valid_until,
                self._clock(),
                from_set=changes.valid_from is not None,
                until_set=changes.valid_until is not None,
            )
        await repository.update_room(
            conn,
            room_id,
            valid_from=updated.valid_from,
            valid_until=updated.valid_until,
            pstn_dial_out_enabled=updated.pstn_dial_out_enabled,
        )
        await outbox.append(conn, payloads.room_event(EventType.ROOM_UPDATED, updated))
        return updated

    async def delete(self, conn: Connection, room_id: str) -> None:
        if not await repository.delete_room(conn, room_id):
            raise _missing(room_id)
        await outbox.append(conn, payloads.room_deleted(room_id))

    async def list_rooms(self, conn: Connection, *, after_seq: int, limit: int) -> tuple[list[Room], bool]:
        """A page of rooms in creation order, and whether more follow."""
        page = await repository.list_rooms(conn, after_seq=after_seq, limit=limit + 1)
        return page[:limit], len(page) > limit

    async def list_participants(
        self, conn: Connection, room_id: str, *, after_raw_id: str, limit: int
    ) -> tuple[Room, list[Participant], bool]:
        """The room, a page of its roster in raw-id order, and whether more follow."""
        room = await self.get(conn, room_id)
        page = await repository.list_participants(conn, room_id, after_raw_id=after_raw_id, limit=limit + 1)
        return room, page[:limit], len(page) > limit

    async def change_roster(self, conn: Connection, room_id: str, changes: dict[str, Role | None]) -> RosterChange:
        """Merge-patch the roster: a role upserts, ``None`` removes (absent ids are ignored)."""
        # Every upserted id ends up on the roster: more than a full roster can never fit.
        # Removals are bounded by the body size alone (absent ids are ignored).
        self._check_roster_size(sum(role is not None for role in changes.values()))
        room = await self.get(conn, room_id, for_update=True)
        current = await repository.roles_of(conn, room_id, list(changes)) if changes else {}
        new: dict[str, Role] = {}
        changed: dict[str, Role] = {}
        removed: list[str] = []
        counts = room.counts
        for raw_id, role in changes.items():
            old = current.get(raw_id)
            if role is None:
                if old is not None:
                    removed.append(raw_id)
                    counts = _adjust(counts, old, -1)
            elif old is None:
                new[raw_id] = role
                counts = _adjust(counts, role, +1)
            elif old != role:
                changed[raw_id] = role
                counts = _adjust(_adjust(counts, old, -1), role, +1)
        if new:
            self._check_roster_size(counts.total)
        await repository.upsert_participants(conn, room_id, new, changed)
        await repository.remove_participants(conn, room_id, removed)
        if counts != room.counts:
            await repository.store_counts(conn, room_id, counts)
        result = replace(room, counts=counts)
        if new or changed or removed:
            upserted = {raw_id: str(role) for raw_id, role in (new | changed).items()}
            await outbox.append(conn, payloads.roster_changed(result, upserted=upserted, removed=removed))
        return RosterChange(len(new), len(changed), len(removed), result)

    async def remove_from_every_roster(self, conn: Connection, raw_id: str) -> int:
        """Used when an identity is deleted; returns how many rosters it was on."""
        memberships = await repository.memberships(conn, raw_id)
        for room_id in memberships:
            await self.change_roster(conn, room_id, {raw_id: None})
        return len(memberships)
