"""Who may join a room's call, and when (no HTTP, no SQL).

A join is admitted only if the token allows calling, the room exists, the user is on
its roster and now is inside ``[validFrom, validUntil)``; the token itself (valid,
unexpired, unrevoked, identity not deleted) is checked by ``IdentityService``.
"""

from __future__ import annotations

from vrooms.api.times import format_rfc3339
from vrooms.auth.roles import Capability, Role, role_can
from vrooms.calls.call import Call, Participant
from vrooms.calls.models import CALL_SCOPES, CallRefused, Refusal
from vrooms.rooms.models import Room


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


def not_allowed(capability: Capability, role: Role) -> CallRefused:
    article = "An" if str(role)[0] in "AEIOU" else "A"
    return CallRefused(Refusal.NOT_ALLOWED, f"{article} {role} may not {capability} in this call.")


def ensure(participant: Participant, capability: Capability | None = None) -> Call:
    """The participant's call, if they are still in it and (still) have ``capability``."""
    if not participant.in_call:
        raise CallRefused(Refusal.NOT_IN_CALL, "You are not in a call.")
    if capability is not None and not participant.can(capability):
        if role_can(participant.role, capability):  # the role may; the room says no one here
            raise CallRefused(
                Refusal.PSTN_DIAL_OUT_DISABLED,
                "This room does not allow phone calls (its pstnDialOutEnabled is false).",
            )
        raise not_allowed(capability, participant.role)
    return participant.call
