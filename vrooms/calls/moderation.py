"""In-call operations on others and on the call: moderation, invitations, the listing, captions.

Each checks the actor's role (``ensure``) before it starts and again after any await
at which the role or the call could have changed.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from vrooms.auth.roles import Capability
from vrooms.calls import protocol
from vrooms.calls.call import Call, Check, Listener, Participant, Peer
from vrooms.calls.captioning import LIVE_TEXT
from vrooms.calls.models import CallRefused, EndReason, LeaveReason, ParticipantState, Refusal
from vrooms.calls.rules import ensure, not_allowed
from vrooms.rooms import repository as rooms_repository

if TYPE_CHECKING:  # the service calls these functions for others (Call Automation)
    from vrooms.calls.service import CallService


def _target(call: Call, participant_id: str) -> Participant:
    target = call.participants.get(participant_id)
    if target is None:
        raise CallRefused(Refusal.PARTICIPANT_NOT_FOUND, f"No participant {participant_id} in this call.")
    return target


async def mute_participant(calls: CallService, actor: Participant, participant_id: str) -> None:
    target = _target(ensure(actor, Capability.MUTE_OTHERS), participant_id)
    await silence(calls, target, by=actor.id)


async def silence(calls: CallService, target: Participant, *, by: str) -> None:
    """Mute someone else (a Presenter, or the server): the mixer first, then everyone is told."""
    target.muted = True
    await calls.media.settle_audio(target)
    if target.in_call:
        target.peer.send(protocol.muted_by_others(by))
        target.call.updated(target)


async def remove_participant(calls: CallService, actor: Participant, participant_id: str) -> None:
    target = _target(ensure(actor, Capability.REMOVE_PARTICIPANT), participant_id)
    await calls.leave(
        target, LeaveReason.REMOVED, by=actor.user_id, check=partial(ensure, actor, Capability.REMOVE_PARTICIPANT)
    )


async def end_for_all(calls: CallService, actor: Participant) -> None:
    call = ensure(actor, Capability.END_CALL_FOR_ALL)
    await calls.end_call(
        call, EndReason.ENDED_FOR_ALL, by=actor.user_id, check=partial(ensure, actor, Capability.END_CALL_FOR_ALL)
    )


async def invite(calls: CallService, actor: Participant, user_id: str) -> int:
    """Ring a roster member who is connected but not in the call; returns how many devices rang."""
    call = ensure(actor, Capability.INVITE)
    inviter = {"participantId": actor.id, "userId": actor.user_id, "displayName": actor.display_name}
    # Checked again after the roster read: the call may have ended, or the actor lost the right.
    return await ring(calls, call, user_id, inviter, actor.peer, check=partial(ensure, actor, Capability.INVITE))


async def ring(
    calls: CallService, call: Call, user_id: str, inviter: dict[str, Any], listener: Listener, *, check: Check
) -> int:
    """Ring the user's idle devices; ``listener`` hears if they decline. Returns how many rang."""
    async with calls.database.read() as conn:
        roles = await rooms_repository.roles_of(conn, call.room_id, [user_id])
    check()
    if user_id not in roles:
        raise CallRefused(Refusal.NOT_ON_ROSTER, f"{user_id} is not on this room's participant list.")
    if any(p.user_id == user_id for p in call.participants.values()):
        raise CallRefused(Refusal.ALREADY_IN_CALL, f"{user_id} is already in the call.")
    idle = [peer for peer in calls.peers.get(user_id, set()) if peer not in calls.participant_of]
    invitation = protocol.invite(call.room_id, call.id, inviter)
    for peer in idle:
        peer.send(invitation)
    rang = len(idle) + await calls.elsewhere.ring(user_id, invitation)
    try:
        check()  # again: the actor may have lost the right while other nodes rang
    except CallRefused:
        cancel_ringing(calls, user_id, call.id)
        raise
    if not rang:
        raise CallRefused(Refusal.INVITEE_NOT_CONNECTED, f"{user_id} is not connected; ask them to open the app.")
    call.invitations[user_id] = listener
    return rang


def stop_ringing(calls: CallService, call: Call, user_id: str) -> bool:
    """Withdraw an invitation (cancelled, timed out): the user's devices stop ringing."""
    if call.invitations.pop(user_id, None) is None:
        return False
    cancel_ringing(calls, user_id, call.id)
    return True


def cancel_ringing(calls: CallService, user_id: str, call_id: str) -> None:
    """The user's devices, here and on other nodes, stop ringing for this call."""
    for peer in calls.peers.get(user_id, set()):
        peer.send(protocol.invite_cancelled(call_id))
    calls.elsewhere.cancel(user_id, call_id)


async def decline(calls: CallService, peer: Peer, call_id: str) -> None:
    """The invitee says no: the inviter hears of it and the user's other devices stop ringing
    (the call may be held by another node: the decline goes there)."""
    if not decline_here(calls, peer.user_id, call_id) and not await calls.elsewhere.decline(peer.user_id, call_id):
        raise CallRefused(Refusal.INVITATION_NOT_FOUND, "No pending invitation to this call.")


def decline_here(calls: CallService, user_id: str, call_id: str) -> bool:
    """A decline of an invitation to a call this node holds; False if it holds none such."""
    call = next((c for c in calls.calls.values() if c.id == call_id), None)
    inviter = call.invitations.pop(user_id, None) if call else None
    if call is None or inviter is None:
        return False
    inviter.send(protocol.invite_declined(call.id, user_id))
    cancel_ringing(calls, user_id, call.id)
    return True


async def listing(calls: CallService, participant: Participant) -> dict[str, Any]:
    """The call, plus the roster members who are not in it (state Idle): whom a Presenter can invite."""
    call = ensure(participant)
    async with calls.database.read() as conn:
        roster = await rooms_repository.list_participants(conn, call.room_id, after_raw_id="", limit=100_000)
    present = {p.user_id for p in call.participants.values()}
    idle = [
        {"userId": member.raw_id, "role": str(member.role), "state": str(ParticipantState.IDLE)}
        for member in roster
        if member.raw_id not in present
    ]
    return {**call.summary(), "idle": idle}


async def captions(calls: CallService, actor: Participant, action: str, language: str | None) -> dict[str, Any]:
    """Start, stop or re-language the call's captions (``calls.captioner`` produces them)."""
    call = ensure(actor, Capability.START_CAPTIONS)
    changes_language = language is not None and language.lower() != call.captions["language"]
    if (action == "setLanguage" or changes_language) and not actor.can(Capability.CHANGE_CAPTION_LANGUAGE):
        raise not_allowed(Capability.CHANGE_CAPTION_LANGUAGE, actor.role)
    if action not in ("start", "stop", "setLanguage"):
        raise CallRefused(Refusal.BAD_MESSAGE, "captions action must be start, stop or setLanguage.")
    supported = calls.captioner.languages()
    if language is not None and language.lower() not in supported:
        message = f"No captions model for {language!r}; supported: {', '.join(supported) or 'none'}."
        raise CallRefused(Refusal.CAPTIONS_LANGUAGE, message, supportedSpokenLanguages=supported)
    if action == "start" and (holder := call.speakers_apart_elsewhere(LIVE_TEXT)) is not None:
        message = f"The call's {holder} has its speakers apart; start captions once it stops."
        raise CallRefused(Refusal.CAPTIONS_UNAVAILABLE, message)
    if action != "setLanguage":
        call.captions["active"] = action == "start"
    if language is not None:
        call.captions["language"] = language.lower()
    call.broadcast(protocol.captions(call.captions, actor.id))
    await calls.records.captions_changed(call)
    await calls.captioner.apply(call)
    return dict(call.captions)
