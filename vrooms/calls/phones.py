"""Telephone legs as participants: a phone in the call before its SIP dialog starts, its mix leg
attached once the relay is up, and a call of its own for a caller answered outside any room.
The SIP side is ``pstn``; here only what the call rules need (``CallService.phones``).
"""

from __future__ import annotations

import contextlib
import uuid
from typing import TYPE_CHECKING, Any

from vrooms.auth.roles import Role
from vrooms.calls import protocol
from vrooms.calls.call import Call, Check, Participant
from vrooms.calls.models import CallRefused, Refusal
from vrooms.media.types import AudioLeg, MediaError

if TYPE_CHECKING:
    from vrooms.calls.service import CallService

# How long an answered caller may stay outside a room (a lobby call) before it ends.
_LOBBY_MICROS = 24 * 3600 * 1_000_000


class _PhonePeer:
    """A phone leg's stand-in for a signaling connection: it has no token and reads no messages."""

    token = ""

    def __init__(self, user_id: str, dialed_by: str | None) -> None:
        self.user_id = user_id
        self.user_agent = f"SIP trunk (dialed by {dialed_by})" if dialed_by else "SIP trunk"

    def send(self, message: dict[str, Any]) -> None:
        """Nothing reads it: the phone hears the call, it does not see it."""


class PhoneLegs:
    def __init__(self, calls: CallService) -> None:
        self.calls = calls

    async def admit(
        self, call: Call, number: str, *, by: str | None, limit: int, check: Check | None = None
    ) -> Participant:
        """A phone leg in the call at once (Connecting), before its SIP dialog starts: everyone sees it ring.

        ``check`` (the dialer's permission) and the ``limit`` of phone legs are decided under the
        call's lock, so neither a demotion nor a burst of concurrent dial-outs slips past them.
        """
        async with call.lock:
            if check is not None:
                check()
            if call.ended:
                raise CallRefused(Refusal.NOT_IN_CALL, "The call has ended.")
            phones = sum(1 for p in call.participants.values() if p.phone_number is not None)
            if phones >= limit:
                raise CallRefused(
                    Refusal.PHONE_LEG_LIMIT, f"This call already has {phones} phone participants, the most it may."
                )
            participant = Participant(
                id=str(uuid.uuid4()),
                user_id=f"4:{number}",
                display_name=number,
                role=Role.ATTENDEE,
                peer=_PhonePeer(f"4:{number}", by),
                call=call,
                joined_at=self.calls.clock(),
                muted=False,
                phone_number=number,
            )
            call.participants[participant.id] = participant
            await self.calls.records.joined(call, participant)
        call.broadcast(protocol.participant_joined(participant.to_wire()))
        return participant

    async def attach_audio(self, participant: Participant, leg: AudioLeg) -> None:
        """The phone leg's mix leg is up: keep it if the participant is still in, and settle its mute."""
        if not participant.in_call:
            with contextlib.suppress(MediaError):
                await leg.close()
            return
        participant.audio = leg
        if participant.call.recorder is not None:
            participant.call.recorder.leg_added(participant)
        self.calls.captioner.joined(participant.call, participant)  # its audio can be isolated now
        await self.calls.media.settle_audio(participant)

    async def lobby_call(self, caller: str) -> Call:
        """A call of its own for one answered caller, in no room (see ``Call.lobby``)."""
        media = await self.calls.media_plane().create_call(f"lobby for {caller}", 1)
        now = self.calls.clock()
        call = Call(
            id=str(uuid.uuid4()),
            room_id="",
            valid_until=now + _LOBBY_MICROS,
            pstn_dial_out_enabled=False,
            media=media,
            started_at=now,
            started_by=caller,
            started_by_role=str(Role.ATTENDEE),
            lobby=True,
        )
        self.calls.lobbies[call.id] = call
        self.calls.schedule_expiry(call)
        return call
