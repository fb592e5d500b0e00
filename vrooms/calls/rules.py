"""Who may join a room's call, and when (no HTTP, no SQL).

A join is admitted only if the token allows calling, the room exists, the user is on
its roster and now is inside ``[validFrom, validUntil)``; the token itself (valid,
unexpired, unrevoked, identity not deleted) is checked by ``IdentityService``.
"""

from __future__ import annotations

from vrooms.api.times import format_rfc3339
from vrooms.auth.roles import Role
from vrooms.calls.models import CALL_SCOPES, Refusal
from vrooms.rooms.models import Room


class CallRefused(Exception):
    """A refusal with its code; ``details`` are fields a client needs to say more (the opening time)."""

    def __init__(self, code: Refusal | str, message: str, **details: object) -> None:
        super().__init__(message)
        self.code = str(code)
        self.message = message
        self.details = details


def check_admission(scopes: tuple[str, ...], room: Room | None, role: Role | None, now: int) -> Role:
    if not CALL_SCOPES.intersection(scopes):
        raise CallRefused(Refusal.SCOPE_MISSING, "The token does not allow calling: issue it with the 'voip' scope.")
    if room is None:
        raise CallRefused(Refusal.ROOM_NOT_FOUND, "The room does not exist (it may have been deleted).")
    if role is None:
        raise CallRefused(Refusal.NOT_ON_ROSTER, "You are not on this room's participant list.")
    check_open(room, now)
    return role


def check_open(room: Room, now: int) -> None:
    """A call runs only within the room's validity window."""
    if now < room.valid_from:
        raise CallRefused(
            Refusal.ROOM_NOT_YET_OPEN,
            "The room is not open yet (before its validFrom).",
            validFrom=format_rfc3339(room.valid_from),
        )
    if now >= room.valid_until:
        closed = format_rfc3339(room.valid_until)
        raise CallRefused(Refusal.ROOM_EXPIRED, "The room is closed (past its validUntil).", validUntil=closed)
