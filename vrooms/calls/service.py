"""Room calls: who is in which call, what each may do, and what the media plane must do.

Everything a client can ask for goes through here and is checked against the role
table (``vrooms.auth.roles``) first; the media plane is then configured so that the
check also holds in Janus (receive-only offers and muted mix legs for roles without
the mic, no VideoRoom feed for roles without camera or screen). No HTTP, no SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from vrooms.api.times import now_micros
from vrooms.auth.roles import ROLE_CAPABILITIES, Capability, Role, role_can
from vrooms.auth.tokens import InvalidToken, TokenClaims
from vrooms.calls import repository
from vrooms.calls.models import EndReason, LeaveReason, MediaSource, ParticipantState, Refusal
from vrooms.calls.rules import CallRefused, check_admission
from vrooms.events import payloads
from vrooms.events import repository as outbox
from vrooms.events.models import Event
from vrooms.identity.service import IdentityService
from vrooms.media.janus import JanusError
from vrooms.media.plane import AudioLeg, CallMedia, MediaPlane, VideoFeed, VideoSubscription
from vrooms.rooms import repository as rooms_repository
from vrooms.store.database import Database

log = logging.getLogger("vrooms.calls")

_ANSWER_TIMEOUT_SECONDS = 10.0
_SOURCE_CAPABILITY = {MediaSource.CAMERA: Capability.SEND_VIDEO, MediaSource.SCREEN: Capability.SHARE_SCREEN}
# Mirrors the ACS rooms limit on concurrent video streams; Janus needs a bound per room.
_MAX_PUBLISHERS = 100


class Peer(Protocol):
    """A signaling connection: one signed-in user, possibly in one call."""

    user_id: str
    user_agent: str
    token: str

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message for the client; never blocks."""


def capabilities_of(role: Role) -> list[str]:
    return sorted(ROLE_CAPABILITIES[role])


@dataclass(eq=False)
class Participant:
    id: str
    user_id: str
    display_name: str
    role: Role
    peer: Peer
    call: Call = field(repr=False)
    joined_at: int
    muted: bool
    state: ParticipantState = ParticipantState.CONNECTING
    speaking: bool = False
    audio: AudioLeg | None = None
    feeds: dict[MediaSource, VideoFeed] = field(default_factory=dict)
    subscription: VideoSubscription | None = None
    pending_answer: asyncio.Future[str] | None = None
    sync_task: asyncio.Task[None] | None = None
    sync_again: bool = False

    def can(self, capability: Capability) -> bool:
        return role_can(self.role, capability)

    def to_wire(self) -> dict[str, Any]:
        return {
            "participantId": self.id,
            "userId": self.user_id,
            "displayName": self.display_name,
            "role": str(self.role),
            "state": str(self.state),
            "muted": self.muted,
            "speaking": self.speaking,
            "camera": MediaSource.CAMERA in self.feeds,
            "screenShare": MediaSource.SCREEN in self.feeds,
        }


@dataclass(eq=False)
class Call:
    id: str
    room_id: str
    valid_until: int
    media: CallMedia
    started_at: int
    started_by: str
    started_by_role: str
    participants: dict[str, Participant] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ended: bool = False
    active_speaker: str | None = None
    captions: dict[str, Any] = field(default_factory=lambda: {"active": False, "language": "en-us"})
    # Invited user id -> who invited them, until they join or decline.
    invitations: dict[str, Participant] = field(default_factory=dict)
    expiry: asyncio.TimerHandle | None = None

    def feed_owners(self) -> dict[int, tuple[Participant, MediaSource]]:
        return {
            feed.feed_id: (p, source)
            for p in self.participants.values()
            for source, feed in p.feeds.items()
            if feed.ready
        }

    def summary(self) -> dict[str, Any]:
        return {
            "callId": self.id,
            "roomId": self.room_id,
            "participants": [p.to_wire() for p in self.participants.values()],
            "activeSpeaker": self.active_speaker,
            "captions": self.captions,
        }


def _not_allowed(capability: Capability, role: Role) -> CallRefused:
    return CallRefused("NotAllowed", f"A {role} may not {capability} in this call.")


class CallService:
    def __init__(self, database: Database, identity: IdentityService, clock: Callable[[], int] = now_micros) -> None:
        self.database = database
        self.identity = identity
        self.clock = clock
        self.plane: MediaPlane | None = None
        self.calls: dict[str, Call] = {}
        self.peers: dict[str, set[Peer]] = {}
        self.participant_of: dict[Peer, Participant] = {}
        # Held while a call is created, so two first joiners cannot start two calls.
        self._creating = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- background work ------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call task failed", exc_info=task.exception())

    def _broadcast(self, call: Call, message: dict[str, Any], *, skip: Participant | None = None) -> None:
        for participant in call.participants.values():
            if participant is not skip:
                participant.peer.send(message)

    # -- connections ----------------------------------------------------------------

    async def authenticate(self, token: str) -> TokenClaims:
        try:
            async with self.database.read() as conn:
                return await self.identity.verify_token(conn, token)
        except InvalidToken as exc:
            raise CallRefused(exc.reason, str(exc)) from None

    def connected(self, peer: Peer) -> None:
        self.peers.setdefault(peer.user_id, set()).add(peer)
        peer.send({"type": "mediaAvailable", "available": self.plane is not None})

    async def disconnected(self, peer: Peer) -> None:
        peers = self.peers.get(peer.user_id)
        if peers is not None:
            peers.discard(peer)
            if not peers:
                del self.peers[peer.user_id]
        participant = self.participant_of.get(peer)
        if participant is not None:
            await self.leave(participant, LeaveReason.CONNECTION_LOST)

    # -- joining and leaving ----------------------------------------------------------

    async def join(self, peer: Peer, room_id: str, display_name: str, sdp: str) -> dict[str, Any]:
        if peer in self.participant_of:
            raise CallRefused(Refusal.ALREADY_IN_CALL, "This connection is already in a call; leave it first.")
        # The token is checked again: it may have expired or been revoked since the connection opened.
        claims = await self.authenticate(peer.token)
        async with self.database.read() as conn:
            room = await rooms_repository.get_room(conn, room_id)
            roles = await rooms_repository.roles_of(conn, room_id, [claims.identity_id]) if room else {}
        role = check_admission(claims.scopes, room, roles.get(claims.identity_id), self.clock())
        assert room is not None
        plane = self._plane()
        call = await self._call_of(room_id, room.valid_until, claims.identity_id, role, plane)
        async with call.lock:
            if call.ended:
                raise CallRefused(Refusal.MEDIA_UNAVAILABLE, "The call is ending; join again in a moment.")
            participant = Participant(
                id=str(uuid.uuid4()),
                user_id=claims.identity_id,
                display_name=display_name or claims.identity_id,
                role=role,
                peer=peer,
                call=call,
                joined_at=self.clock(),
                muted=not role_can(role, Capability.SEND_AUDIO),
            )
            try:
                participant.audio, answer = await plane.join_audio(
                    call.media,
                    display=participant.display_name,
                    may_send=participant.can(Capability.SEND_AUDIO),
                    offer_sdp=sdp,
                    on_event=partial(self._on_audio_event, call, participant),
                )
            except JanusError:
                if not call.participants:  # the call this join started must not linger empty
                    self._spawn(self.end_call(call, EndReason.ALL_LEFT))
                raise
            call.participants[participant.id] = participant
            self.participant_of[peer] = participant
            call.invitations.pop(participant.user_id, None)
            async with self.database.write() as conn:
                await repository.insert_participation(
                    conn,
                    id=participant.id,
                    call_id=call.id,
                    raw_id=participant.user_id,
                    display_name=participant.display_name,
                    role_at_join=str(role),
                    user_agent=peer.user_agent[:256],
                    joined_at=participant.joined_at,
                )
                await outbox.append(conn, self._participant_event(call, participant, added=True))
        self._broadcast(call, {"type": "participantJoined", "participant": participant.to_wire()}, skip=participant)
        self._sync_video(participant)
        return {
            **call.summary(),
            "participantId": participant.id,
            "role": str(role),
            "capabilities": capabilities_of(role),
            "sdp": answer,
        }

    @staticmethod
    def _participant_event(call: Call, participant: Participant, *, added: bool, reason: str | None = None) -> Event:
        return payloads.participant_event(
            added,
            room_id=call.room_id,
            call_id=call.id,
            started_by=call.started_by,
            started_by_role=call.started_by_role,
            user=participant.user_id,
            role=str(participant.role),
            display_name=participant.display_name,
            participant_id=participant.id,
            user_agent=participant.peer.user_agent,
            reason=reason,
        )

    def _plane(self) -> MediaPlane:
        if self.plane is None:
            raise CallRefused(Refusal.MEDIA_UNAVAILABLE, "The media server is starting; try again in a moment.")
        return self.plane

    async def _call_of(self, room_id: str, valid_until: int, user_id: str, role: Role, plane: MediaPlane) -> Call:
        """The room's live call; the first admitted joiner starts it."""
        async with self._creating:
            call = self.calls.get(room_id)
            if call is not None and not call.ended:
                return call
            media = await plane.create_call(f"room {room_id}", _MAX_PUBLISHERS)
            call = Call(
                id=str(uuid.uuid4()),
                room_id=room_id,
                valid_until=valid_until,
                media=media,
                started_at=self.clock(),
                started_by=user_id,
                started_by_role=str(role),
            )
            async with self.database.write() as conn:
                await repository.insert_call(
                    conn, call_id=call.id, room_id=room_id, started_at=call.started_at, by=user_id, role=str(role)
                )
                await outbox.append(conn, payloads.call_started(room_id, call.id, user_id, str(role)))
            self.calls[room_id] = call
            self._schedule_expiry(call)
            log.info("call %s started in room %s by %s", call.id, room_id, user_id)
            return call

    def _schedule_expiry(self, call: Call) -> None:
        if call.expiry is not None:
            call.expiry.cancel()
        delay = max(0.0, (call.valid_until - self.clock()) / 1e6)
        call.expiry = asyncio.get_running_loop().call_later(
            delay, lambda: self._spawn(self.end_call(call, EndReason.ROOM_EXPIRED))
        )

    async def leave(self, participant: Participant, reason: LeaveReason, *, by: str | None = None) -> None:
        call = self.call_of(participant)
        if call is None:
            return
        async with call.lock:
            if participant.id not in call.participants:
                return
            await self._drop(call, participant, reason, by=by)
            last = not call.participants
        if last:
            await self.end_call(call, EndReason.ALL_LEFT)

    @staticmethod
    def call_of(participant: Participant) -> Call | None:
        """The call the participant is still in, if any."""
        return participant.call if participant.id in participant.call.participants else None

    def _current_call(self, participant: Participant) -> Call:
        call = self.call_of(participant)
        if call is None:
            raise CallRefused("NotInCall", "You are not in a call.")
        return call

    async def _drop(
        self,
        call: Call,
        participant: Participant,
        reason: LeaveReason,
        *,
        by: str | None = None,
        end_reason: EndReason | None = None,
    ) -> None:
        """Take one participant out of the call: media legs, records, everyone told."""
        del call.participants[participant.id]
        self.participant_of.pop(participant.peer, None)
        participant.state = ParticipantState.DISCONNECTED
        if participant.sync_task is not None:
            participant.sync_task.cancel()
        if participant.pending_answer is not None and not participant.pending_answer.done():
            participant.pending_answer.cancel()
        had_video = bool(participant.feeds)
        legs: list[AudioLeg | VideoFeed | VideoSubscription | None] = [
            participant.audio,
            participant.subscription,
            *participant.feeds.values(),
        ]
        participant.feeds.clear()
        for leg in legs:
            if leg is not None:
                with contextlib.suppress(JanusError):
                    await leg.close()
        async with self.database.write() as conn:
            await repository.end_participation(
                conn, participant.id, left_at=self.clock(), reason=str(reason), removed_by=by
            )
            await outbox.append(conn, self._participant_event(call, participant, added=False, reason=str(reason)))
        message: dict[str, Any] = {"type": "left", "callId": call.id, "reason": str(reason), "by": by}
        if end_reason is not None:
            message["callEndReason"] = str(end_reason)
        participant.peer.send(message)
        if call.active_speaker == participant.id:
            call.active_speaker = None
        self._broadcast(call, {"type": "participantLeft", "participantId": participant.id, "reason": str(reason)})
        if had_video:
            self._sync_video_all(call)

    async def end_call(self, call: Call, reason: EndReason, *, by: str | None = None) -> None:
        async with call.lock:
            if call.ended:
                return
            call.ended = True
            if call.expiry is not None:
                call.expiry.cancel()
            for participant in list(call.participants.values()):
                await self._drop(call, participant, LeaveReason.CALL_ENDED, by=by, end_reason=reason)
            if self.calls.get(call.room_id) is call:
                del self.calls[call.room_id]
            if self.plane is not None:
                with contextlib.suppress(JanusError):
                    await self.plane.destroy_call(call.media)
            ended_at = self.clock()
            async with self.database.write() as conn:
                await repository.end_call(conn, call.id, ended_at=ended_at, reason=str(reason), ended_by=by)
                await outbox.append(
                    conn,
                    payloads.call_ended(
                        call.room_id,
                        call.id,
                        started_by=call.started_by,
                        started_by_role=call.started_by_role,
                        reason=str(reason),
                        ended_by=by,
                        duration_seconds=(ended_at - call.started_at) / 1e6,
                    ),
                )
        log.info("call %s in room %s ended: %s", call.id, call.room_id, reason)

    # -- media events ---------------------------------------------------------------

    def _on_audio_event(self, call: Call, participant: Participant, event: dict[str, Any]) -> None:
        kind = event.get("janus")
        if kind == "webrtcup" and participant.id in call.participants:
            participant.state = ParticipantState.CONNECTED
            self._broadcast(call, {"type": "participantUpdated", "participant": participant.to_wire()})
        elif kind == "hangup" and participant.id in call.participants:
            # ICE or DTLS failed, or the client closed its peer connection without leaving.
            self._spawn(self.leave(participant, LeaveReason.CONNECTION_LOST))
        elif kind == "event":
            data = event.get("plugindata", {}).get("data", {})
            # Every leg in the room hears of every talker; the talker's own leg hears too,
            # so each change is handled once, there, without looking the talker up.
            own = participant.audio is not None and data.get("id") == participant.audio.janus_id
            if own and data.get("audiobridge") in ("talking", "stopped-talking"):
                self._on_talking(call, participant, data["audiobridge"] == "talking")

    def _on_talking(self, call: Call, speaker: Participant, talking: bool) -> None:
        if speaker.id not in call.participants or speaker.speaking == talking:
            return
        speaker.speaking = talking
        self._broadcast(call, {"type": "speaking", "participantId": speaker.id, "speaking": talking})
        if talking and call.active_speaker != speaker.id:
            call.active_speaker = speaker.id
            self._broadcast(call, {"type": "activeSpeaker", "participantId": speaker.id})

    # -- own media ------------------------------------------------------------------

    def _require(self, participant: Participant, capability: Capability) -> Call:
        if not participant.can(capability):
            raise _not_allowed(capability, participant.role)
        return self._current_call(participant)

    def in_call(self, peer: Peer) -> Participant:
        participant = self.participant_of.get(peer)
        if participant is None:
            raise CallRefused("NotInCall", "Join a call first.")
        return participant

    async def set_muted(self, participant: Participant, muted: bool) -> None:
        call = self._require(participant, Capability.SEND_AUDIO) if not muted else self._current_call(participant)
        assert participant.audio is not None  # set at join, before the participant is in the call
        if participant.state != ParticipantState.ON_HOLD:  # on hold the leg stays out of the mix
            await participant.audio.set_muted(muted)
        participant.muted = muted
        self._broadcast(call, {"type": "participantUpdated", "participant": participant.to_wire()})

    async def set_on_hold(self, participant: Participant, on_hold: bool) -> None:
        """Hold takes the participant out of the mix and shows them OnHold; resume puts them back.

        Janus 1.1's AudioBridge cannot pause the mix it sends, so the client stops playing it.
        """
        call = self._current_call(participant)
        assert participant.audio is not None
        if on_hold == (participant.state == ParticipantState.ON_HOLD):
            return
        await participant.audio.set_muted(True if on_hold else participant.muted)
        participant.state = ParticipantState.ON_HOLD if on_hold else ParticipantState.CONNECTED
        self._broadcast(call, {"type": "participantUpdated", "participant": participant.to_wire()})

    async def renegotiate_audio(self, participant: Participant, sdp: str) -> str:
        self._current_call(participant)
        assert participant.audio is not None
        return await participant.audio.renegotiate(sdp, may_send=participant.can(Capability.SEND_AUDIO))

    async def publish(self, participant: Participant, source: MediaSource, sdp: str) -> str:
        call = self._require(participant, _SOURCE_CAPABILITY[source])
        await self.unpublish(participant, source)
        feed, answer = await self._plane().publish(
            call.media,
            display=participant.display_name,
            offer_sdp=sdp,
            on_event=partial(self._on_feed_event, call, participant, source),
        )
        if participant.id not in call.participants or not participant.can(_SOURCE_CAPABILITY[source]):
            # Left, or lost the right, while Janus was answering.
            await feed.close()
            raise _not_allowed(_SOURCE_CAPABILITY[source], participant.role)
        participant.feeds[source] = feed
        self._broadcast(call, {"type": "participantUpdated", "participant": participant.to_wire()})
        return answer

    def _on_feed_event(self, call: Call, participant: Participant, source: MediaSource, event: dict[str, Any]) -> None:
        feed = participant.feeds.get(source)
        if event.get("janus") == "webrtcup" and feed is not None and not feed.ready:
            feed.ready = True
            self._sync_video_all(call)

    async def unpublish(self, participant: Participant, source: MediaSource) -> None:
        feed = participant.feeds.pop(source, None)
        if feed is None:
            return
        with contextlib.suppress(JanusError):
            await feed.close()
        call = self.call_of(participant)
        if call is not None:
            self._broadcast(call, {"type": "participantUpdated", "participant": participant.to_wire()})
            self._sync_video_all(call)

    def video_answer(self, participant: Participant, sdp: str) -> None:
        if participant.pending_answer is None or participant.pending_answer.done():
            raise CallRefused("BadMessage", "No video offer is waiting for an answer.")
        participant.pending_answer.set_result(sdp)

    # -- receiving video: one subscriber handle per participant, kept in step --------

    def _sync_video_all(self, call: Call) -> None:
        for participant in call.participants.values():
            self._sync_video(participant)

    def _sync_video(self, participant: Participant) -> None:
        """Bring the participant's subscription to every feed but their own, one renegotiation at a time."""
        if participant.sync_task is not None and not participant.sync_task.done():
            participant.sync_again = True
            return
        participant.sync_task = asyncio.get_running_loop().create_task(self._sync_loop(participant))

    async def _sync_loop(self, participant: Participant) -> None:
        participant.sync_again = True
        while participant.sync_again:
            participant.sync_again = False
            call = self.call_of(participant)
            if call is None or self.plane is None:
                return
            try:
                await self._sync_once(call, participant, self.plane)
            except (JanusError, TimeoutError) as exc:
                log.warning("video renegotiation for %s failed: %s", participant.id, exc)

    async def _sync_once(self, call: Call, participant: Participant, plane: MediaPlane) -> None:
        owners = call.feed_owners()
        wanted = {feed for feed, (owner, _) in owners.items() if owner is not participant}
        if participant.subscription is None:
            if not wanted:
                return
            participant.subscription, offer = await plane.subscribe(call.media, wanted)
        else:
            maybe_offer = await plane.update_subscription(participant.subscription, wanted)
            if maybe_offer is None:
                return
            offer = maybe_offer
        streams = []
        for stream in participant.subscription.streams:
            owner = owners.get(int(stream.get("feed_id", 0)))
            if owner is not None and stream.get("active", True):
                streams.append({"mid": str(stream.get("mid")), "participantId": owner[0].id, "source": str(owner[1])})
        participant.pending_answer = asyncio.get_running_loop().create_future()
        participant.peer.send({"type": "videoOffer", "sdp": offer, "streams": streams})
        answer = await asyncio.wait_for(participant.pending_answer, _ANSWER_TIMEOUT_SECONDS)
        await participant.subscription.start(answer)

    # -- moderation -----------------------------------------------------------------

    def _target(self, call: Call, participant_id: str) -> Participant:
        target = call.participants.get(participant_id)
        if target is None:
            raise CallRefused("ParticipantNotFound", f"No participant {participant_id} in this call.")
        return target

    async def mute_participant(self, actor: Participant, participant_id: str) -> None:
        call = self._require(actor, Capability.MUTE_OTHERS)
        target = self._target(call, participant_id)
        if target.audio is not None:
            await target.audio.set_muted(True)
        target.muted = True
        target.peer.send({"type": "mutedByOthers", "by": actor.id})
        self._broadcast(call, {"type": "participantUpdated", "participant": target.to_wire()})

    async def remove_participant(self, actor: Participant, participant_id: str) -> None:
        call = self._require(actor, Capability.REMOVE_PARTICIPANT)
        await self.leave(self._target(call, participant_id), LeaveReason.REMOVED, by=actor.user_id)

    async def end_for_all(self, actor: Participant) -> None:
        call = self._require(actor, Capability.END_CALL_FOR_ALL)
        await self.end_call(call, EndReason.ENDED_FOR_ALL, by=actor.user_id)

    async def invite(self, actor: Participant, user_id: str) -> int:
        """Ring a roster member who is connected but not in the call; returns how many devices rang."""
        call = self._require(actor, Capability.INVITE)
        async with self.database.read() as conn:
            roles = await rooms_repository.roles_of(conn, call.room_id, [user_id])
        if user_id not in roles:
            raise CallRefused(Refusal.NOT_ON_ROSTER, f"{user_id} is not on this room's participant list.")
        if any(p.user_id == user_id for p in call.participants.values()):
            raise CallRefused(Refusal.ALREADY_IN_CALL, f"{user_id} is already in the call.")
        idle = [peer for peer in self.peers.get(user_id, set()) if peer not in self.participant_of]
        if not idle:
            raise CallRefused("InviteeNotConnected", f"{user_id} is not connected; ask them to open the app.")
        invitation = {
            "type": "invite",
            "roomId": call.room_id,
            "callId": call.id,
            "from": {"participantId": actor.id, "userId": actor.user_id, "displayName": actor.display_name},
        }
        for peer in idle:
            peer.send(invitation)
        call.invitations[user_id] = actor
        return len(idle)

    def decline(self, peer: Peer, call_id: str) -> None:
        """The invitee says no: the inviter hears of it and the user's other devices stop ringing."""
        call = next((c for c in self.calls.values() if c.id == call_id), None)
        inviter = call.invitations.pop(peer.user_id, None) if call else None
        if call is None or inviter is None:
            raise CallRefused("InvitationNotFound", "No pending invitation to this call.")
        inviter.peer.send({"type": "inviteDeclined", "callId": call.id, "userId": peer.user_id})
        for other in self.peers.get(peer.user_id, set()):
            other.send({"type": "inviteCancelled", "callId": call.id})

    async def listing(self, participant: Participant) -> dict[str, Any]:
        """The call, plus the roster members who are not in it (state Idle): whom a Presenter can invite."""
        call = self._current_call(participant)
        async with self.database.read() as conn:
            roster = await rooms_repository.list_participants(conn, call.room_id, after_raw_id="", limit=100_000)
        present = {p.user_id for p in call.participants.values()}
        idle = [
            {"userId": member.raw_id, "role": str(member.role), "state": str(ParticipantState.IDLE)}
            for member in roster
            if member.raw_id not in present
        ]
        return {**call.summary(), "idle": idle}

    async def captions(self, actor: Participant, action: str, language: str | None) -> dict[str, Any]:
        """Caption state only: who may start, stop and re-language them (no transcription engine yet)."""
        call = self._require(actor, Capability.START_CAPTIONS)
        changes_language = language is not None and language.lower() != call.captions["language"]
        if (action == "setLanguage" or changes_language) and not actor.can(Capability.CHANGE_CAPTION_LANGUAGE):
            raise _not_allowed(Capability.CHANGE_CAPTION_LANGUAGE, actor.role)
        if action not in ("start", "stop", "setLanguage"):
            raise CallRefused("BadMessage", "captions action must be start, stop or setLanguage.")
        if action != "setLanguage":
            call.captions["active"] = action == "start"
        if language is not None:
            call.captions["language"] = language.lower()
        self._broadcast(call, {"type": "captions", **call.captions, "by": actor.id})
        return dict(call.captions)

    # -- changes from outside: roster, room, identity, media server -------------------

    async def room_changed(self, room_id: str) -> None:
        """Re-read a live call's room and roster; apply role changes and removals at once."""
        call = self.calls.get(room_id)
        if call is None:
            return
        users = sorted({p.user_id for p in call.participants.values()})
        async with self.database.read() as conn:
            room = await rooms_repository.get_room(conn, room_id)
            roles = await rooms_repository.roles_of(conn, room_id, users) if room else {}
        if room is None:
            await self.end_call(call, EndReason.ROOM_DELETED)
            return
        if room.valid_until != call.valid_until:
            call.valid_until = room.valid_until
            self._schedule_expiry(call)
        for participant in list(call.participants.values()):
            role = roles.get(participant.user_id)
            if role is None:
                await self.leave(participant, LeaveReason.REMOVED_FROM_ROSTER)
            elif role != participant.role:
                await self._change_role(call, participant, role)

    async def _change_role(self, call: Call, participant: Participant, role: Role) -> None:
        participant.role = role
        if not participant.can(Capability.SEND_AUDIO) and not participant.muted and participant.audio is not None:
            if participant.state != ParticipantState.ON_HOLD:
                with contextlib.suppress(JanusError):
                    await participant.audio.set_muted(True)
            participant.muted = True
        for source, capability in _SOURCE_CAPABILITY.items():
            if not participant.can(capability):
                await self.unpublish(participant, source)
        participant.peer.send({"type": "permissions", "role": str(role), "capabilities": capabilities_of(role)})
        self._broadcast(call, {"type": "participantUpdated", "participant": participant.to_wire()})

    async def user_deleted(self, user_id: str) -> None:
        for room_id in [
            c.room_id for c in self.calls.values() if any(p.user_id == user_id for p in c.participants.values())
        ]:
            await self.room_changed(room_id)

    async def reconcile(self) -> None:
        for room_id in list(self.calls):
            await self.room_changed(room_id)

    async def media_lost(self) -> None:
        """Janus is gone: every call ends with a reason clients can show, and joins wait for it."""
        self.plane = None
        for call in list(self.calls.values()):
            await self.end_call(call, EndReason.MEDIA_FAILURE)
        self._tell_everyone({"type": "mediaAvailable", "available": False})

    def media_ready(self, plane: MediaPlane) -> None:
        self.plane = plane
        self._tell_everyone({"type": "mediaAvailable", "available": True})

    def _tell_everyone(self, message: dict[str, Any]) -> None:
        for peers in self.peers.values():
            for peer in peers:
                peer.send(message)

    async def close_abandoned_calls(self) -> int:
        """At start-up: end the calls a killed call host left open, with records and events.

        Their participants lost their signaling connection when it died; this makes the
        records and the event stream (CallParticipantRemoved, CallEnded) whole again.
        """
        now = self.clock()
        async with self.database.write() as conn:
            abandoned = await repository.open_calls(conn)
            for call in abandoned:
                for p in call["participants"]:
                    reason = str(LeaveReason.CONNECTION_LOST)
                    await repository.end_participation(conn, p["id"], left_at=now, reason=reason, removed_by=None)
                    await outbox.append(
                        conn,
                        payloads.participant_event(
                            False,
                            room_id=call["room_id"],
                            call_id=call["id"],
                            started_by=call["started_by"],
                            started_by_role=call["started_by_role"],
                            user=p["raw_id"],
                            role=p["role_at_join"],
                            display_name=p["display_name"],
                            participant_id=p["id"],
                            user_agent=p["user_agent"],
                            reason=reason,
                        ),
                    )
                reason = str(EndReason.SERVER_FAILURE)
                await repository.end_call(conn, call["id"], ended_at=now, reason=reason, ended_by=None)
                await outbox.append(
                    conn,
                    payloads.call_ended(
                        call["room_id"],
                        call["id"],
                        started_by=call["started_by"],
                        started_by_role=call["started_by_role"],
                        reason=reason,
                        ended_by=None,
                        duration_seconds=(now - call["started_at"]) / 1e6,
                    ),
                )
        return len(abandoned)

    async def shutdown(self) -> None:
        for call in list(self.calls.values()):
            await self.end_call(call, EndReason.SERVER_SHUTDOWN)
