"""Changes from outside a live call: its room (window, roster, roles, phone setting), its
participants' tokens and identities. Each is applied at once, from a fresh read, one at a time
per room; ``reconcile`` is the safety net for a change notice that was missed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol

from vrooms.auth.roles import Capability, Role
from vrooms.auth.tokens import InvalidToken
from vrooms.calls import protocol
from vrooms.calls.call import SOURCE_CAPABILITY, Call, Participant
from vrooms.calls.models import EndReason, LeaveReason, Refusal
from vrooms.calls.own_media import OwnMedia
from vrooms.identity.service import IdentityService
from vrooms.media.types import MediaError
from vrooms.rooms import repository as rooms_repository
from vrooms.store.database import Database

# Token refusals that end a participation already under way (an expired token does not: ACS
# checks the token when joining, not during the call).
_ENDS_PARTICIPATION = {
    Refusal.TOKEN_REVOKED: LeaveReason.TOKEN_REVOKED,
    Refusal.IDENTITY_DELETED: LeaveReason.IDENTITY_DELETED,
}


class LiveCalls(Protocol):
    """What the changes need of the call service."""

    database: Database
    identity: IdentityService
    clock: Callable[[], int]
    calls: dict[str, Call]
    media: OwnMedia

    async def leave(self, participant: Participant, reason: LeaveReason) -> None: ...

    async def end_call(self, call: Call, reason: EndReason) -> None: ...

    def schedule_expiry(self, call: Call) -> None: ...


class RoomChanges:
    def __init__(self, calls: LiveCalls) -> None:
        self._calls = calls
        # Room changes are applied one at a time per room, each from a fresh read.
        self._room_locks: dict[str, asyncio.Lock] = {}
        # Counts change notices, so a join can tell that one landed while it was admitted.
        self.notices = 0

    async def room_changed(self, room_id: str) -> None:
        """Re-read a live call's room and roster; apply role changes, removals and the window at once."""
        self.notices += 1
        async with self._room_locks.setdefault(room_id, asyncio.Lock()):
            call = self._calls.calls.get(room_id)
            if call is not None:
                await self._apply_room(call)
        if room_id not in self._calls.calls:
            self._room_locks.pop(room_id, None)

    async def _apply_room(self, call: Call) -> None:
        users = sorted({p.user_id for p in call.participants.values() if p.phone_number is None})
        async with self._calls.database.read() as conn:
            room = await rooms_repository.get_room(conn, call.room_id)
            roles = await rooms_repository.roles_of(conn, call.room_id, users) if room else {}
        if room is None:
            await self._calls.end_call(call, EndReason.ROOM_DELETED)
            return
        if self._calls.clock() < room.valid_from:
            await self._calls.end_call(call, EndReason.ROOM_NOT_YET_OPEN)
            return
        if room.valid_until != call.valid_until:
            call.valid_until = room.valid_until
            self._calls.schedule_expiry(call)
        room_gates_changed = room.pstn_dial_out_enabled != call.pstn_dial_out_enabled
        call.pstn_dial_out_enabled = room.pstn_dial_out_enabled
        for participant in [p for p in call.participants.values() if p.phone_number is None]:
            role = roles.get(participant.user_id)
            if role is None:
                await self._calls.leave(participant, LeaveReason.REMOVED_FROM_ROSTER)
            else:
                await self._change_role(participant, role, announce=room_gates_changed)

    async def _change_role(self, participant: Participant, role: Role, *, announce: bool = False) -> None:
        """The participant reconciles itself with its (new) role and its room's settings:
        permissions first, then media."""
        role_changed = role != participant.role
        if role_changed:
            participant.role = role
            if not participant.can(Capability.SEND_AUDIO):
                participant.muted = True
        if role_changed or announce:
            participant.peer.send(protocol.permissions(str(role), participant.capabilities()))
        if role_changed:
            participant.call.updated(participant)
        with contextlib.suppress(MediaError):
            await self._calls.media.settle_audio(participant)  # also heals a mixer request that failed earlier
        for source in SOURCE_CAPABILITY:
            if not participant.may_publish(source) and source in participant.feeds:
                await self._calls.media.unpublish(participant, source)

    async def user_changed(self, user_id: str) -> None:
        """The user's tokens were revoked or the identity deleted: re-check their participations."""
        self.notices += 1
        mine = [
            p for call in list(self._calls.calls.values()) for p in call.participants.values() if p.user_id == user_id
        ]
        await self._check_tokens(mine)
        for room_id in sorted({p.call.room_id for p in mine}):
            await self.room_changed(room_id)

    async def _check_tokens(self, participants: list[Participant]) -> None:
        for participant in [p for p in participants if p.phone_number is None]:
            try:
                async with self._calls.database.read() as conn:
                    await self._calls.identity.verify_token(conn, participant.peer.token)
            except InvalidToken as exc:
                reason = _ENDS_PARTICIPATION.get(Refusal(exc.reason)) if exc.reason in set(Refusal) else None
                if reason is not None:
                    await self._calls.leave(participant, reason)

    async def recheck(self, participant: Participant) -> None:
        await self._check_tokens([participant])
        await self.room_changed(participant.call.room_id)

    async def reconcile(self) -> None:
        """The safety net for a missed change notice: every live call and every token in it."""
        for call in list(self._calls.calls.values()):
            await self._check_tokens(list(call.participants.values()))
            await self.room_changed(call.room_id)
