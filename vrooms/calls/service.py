"""Room calls: who is in which call, and what each may do. No HTTP, no SQL, no Janus.

Every request is checked against the role table (``vrooms.auth.roles``) and checked
again after each await at which a role, a removal or the call's end could have
landed (``rules.ensure`` / the ``check`` of ``leave`` and ``end_call``). Media state is
never written from a decision taken before an await: the service changes the
participant's state, then brings the media plane to it (``own_media``), which
re-reads the state until the plane matches. Media lives behind ``media.types``;
records and their events are written by ``records.CallRecords``; operations on others
(moderation, invitations, captions) are in ``moderation``; changes from outside (room,
roster, tokens) in ``changes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

from vrooms.api.times import format_rfc3339, now_micros
from vrooms.auth.roles import Capability, Role, role_can
from vrooms.auth.tokens import InvalidToken, TokenClaims
from vrooms.calls import moderation, protocol
from vrooms.calls.call import Call, Check, Listener, Participant, Peer, Telephony, capabilities_in
from vrooms.calls.captioning import Captioner, NoCaptioner
from vrooms.calls.changes import RoomChanges
from vrooms.calls.invites import NoOtherNodes, RemoteDevices
from vrooms.calls.models import CALL_SCOPES, CallRefused, EndReason, LeaveReason, ParticipantState, Refusal
from vrooms.calls.own_media import OwnMedia
from vrooms.calls.phones import PhoneLegs
from vrooms.calls.placement import CallPlacement, SingleNode
from vrooms.calls.records import CallRecords
from vrooms.calls.rules import check_admission
from vrooms.calls.video import FEED_RELEASE_SECONDS, VideoSync
from vrooms.identity.service import IdentityService
from vrooms.media.turn import TurnServers
from vrooms.media.types import AudioFeed, Connected, HungUp, MediaError, MediaEvent, MediaPlane, Talking
from vrooms.rooms import repository as rooms_repository
from vrooms.rooms.models import Room
from vrooms.store.database import Database
from vrooms.supervision import TaskSet, to_the_end

log = logging.getLogger("vrooms.calls")

# Mirrors the ACS rooms limit on concurrent video streams; the media plane needs a bound per room.
_MAX_PUBLISHERS = 100


class CallService:
    def __init__(
        self,
        database: Database,
        identity: IdentityService,
        clock: Callable[[], int] = now_micros,
        *,
        node: str = "",
        placement: CallPlacement | None = None,
    ) -> None:
        self.database = database
        self.identity = identity
        self.clock = clock
        # This node's name in a cluster ("" on a single node): ids of what belongs to no room name it.
        self.node = node
        self.records = CallRecords(database, clock, node)
        # Whether this node may hold a room's call (always, but in a cluster: see cluster.agent),
        # and the devices of invitees connected to other nodes (cluster.invites).
        self.placement: CallPlacement = placement or SingleNode()
        self.elsewhere: RemoteDevices = NoOtherNodes()
        self.plane: MediaPlane | None = None
        # Phone legs, when a SIP trunk is configured (the call host sets it).
        self.telephony: Telephony | None = None
        # Live captions (the call host sets the engine's; ``captions.service``).
        self.captioner: Captioner = NoCaptioner()
        # TURN servers participants are given before they join (None: no TURN).
        self.turn: TurnServers | None = None
        # Called after writing events an app waits on: the dispatcher sends them at once.
        self.events_written: Callable[[], None] = lambda: None
        self.video = VideoSync(lambda: self.plane)
        self.calls: dict[str, Call] = {}
        # Answered callers not (yet) in a room, by call id (Call Automation's answer).
        self.lobbies: dict[str, Call] = {}
        self.peers: dict[str, set[Peer]] = {}
        self.participant_of: dict[Peer, Participant] = {}
        # Held while a call is created, so two first joiners cannot start two calls.
        # Room id -> the lock its call start holds; gone once nobody holds or waits on it.
        self._creating: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self.media = OwnMedia(self.video, self.media_plane)
        self.changes = RoomChanges(self)
        self.phones = PhoneLegs(self)
        self._tasks = TaskSet(log)
        # Calls taken over from a lost node, since start (for /metrics), and who else takes them over
        # (Call Automation reopens the call's connections).
        self.adoptions = 0
        self.on_adopted: list[Callable[[Call], Awaitable[None]]] = []

    # -- connections ----------------------------------------------------------------

    async def authenticate(self, token: str) -> TokenClaims:
        """The claims of a token that may open a signaling connection (valid, with a calling scope)."""
        try:
            async with self.database.read() as conn:
                claims = await self.identity.verify_token(conn, token)
        except InvalidToken as exc:
            raise CallRefused(exc.reason, str(exc)) from None
        if not CALL_SCOPES.intersection(claims.scopes):
            raise CallRefused(
                Refusal.SCOPE_MISSING, "The token does not allow calling: issue it with the 'voip' scope."
            )
        return claims

    def connected(self, peer: Peer) -> None:
        self.peers.setdefault(peer.user_id, set()).add(peer)
        peer.send(protocol.media_available(self.plane is not None))

    async def disconnected(self, peer: Peer) -> None:
        peers = self.peers.get(peer.user_id)
        if peers is not None:
            peers.discard(peer)
            if not peers:
                del self.peers[peer.user_id]
        participant = self.participant_of.get(peer)
        if participant is not None:
            await self.leave(participant, LeaveReason.CONNECTION_LOST)

    def in_call(self, peer: Peer) -> Participant:
        participant = self.participant_of.get(peer)
        if participant is None:
            raise CallRefused(Refusal.NOT_IN_CALL, "Join a call first.")
        return participant

    # -- joining and leaving ----------------------------------------------------------

    async def _admit(self, peer: Peer, room_id: str) -> tuple[TokenClaims, Room, Role]:
        # The token is checked again: it may have expired or been revoked since the connection opened.
        claims = await self.authenticate(peer.token)
        async with self.database.read() as conn:
            room = await rooms_repository.get_room(conn, room_id)
            roles = await rooms_repository.roles_of(conn, room_id, [claims.identity_id]) if room else {}
        role = check_admission(claims.scopes, room, roles.get(claims.identity_id), self.clock())
        assert room is not None
        return claims, room, role

    async def check_room(self, peer: Peer, room_id: str) -> dict[str, Any]:
        """What a join would give, without joining: a pre-join screen asks only for the devices the
        role may use, and shows a refusal (with the opening time) before anyone is asked for a camera."""
        claims, room, role = await self._admit(peer, room_id)
        call = self.calls.get(room_id)
        return {
            "roomId": room_id,
            "role": str(role),
            "capabilities": capabilities_in(role, pstn_dial_out_enabled=room.pstn_dial_out_enabled),
            "validFrom": format_rfc3339(room.valid_from),
            "validUntil": format_rfc3339(room.valid_until),
            "participants": len(call.participants) if call is not None and not call.ended else 0,
            "iceServers": self._ice_servers(claims.identity_id, room.valid_until),
        }

    def _ice_servers(self, user_id: str, valid_until: int) -> list[dict[str, Any]]:
        """TURN credentials for this user, valid no longer than the room (``valid_until``: µs)."""
        if self.turn is None:
            return []
        return self.turn.ice_servers(user_id, now=self.clock() // 1_000_000, until=valid_until // 1_000_000)

    async def join(
        self, peer: Peer, room_id: str, display_name: str, sdp: str, *, muted: bool = False
    ) -> dict[str, Any]:
        """``muted``: join with the microphone muted (a client coming back after its node was lost)."""
        if peer in self.participant_of:
            raise CallRefused(Refusal.ALREADY_IN_CALL, "This connection is already in a call; leave it first.")
        notices = self.changes.notices
        claims, room, role = await self._admit(peer, room_id)
        plane = self.media_plane()
        call = await self._call_of(room, claims.identity_id, role, plane)
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
                muted=muted or not role_can(role, Capability.SEND_AUDIO),
            )
            try:
                participant.audio, answer = await plane.join_audio(
                    call.media,
                    display=participant.display_name,
                    may_send=not participant.mix_muted,
                    offer_sdp=sdp,
                    on_event=partial(self.on_audio_event, participant),
                )
            except MediaError:
                if not call.participants:  # the call this join started must not linger empty
                    self._tasks.spawn(self.end_call(call, EndReason.ALL_LEFT))
                raise
            participant.mix_muted_applied = participant.mix_muted
            call.participants[participant.id] = participant
            self.captioner.joined(call, participant)
            self.participant_of[peer] = participant
            call.invitations.pop(participant.user_id, None)
            await self.records.joined(call, participant)
            if call.recorder is not None:
                call.recorder.leg_added(participant)
        call.broadcast(protocol.participant_joined(participant.to_wire()), skip=participant)
        self.video.sync(participant)
        if self.changes.notices != notices:  # a roster, room or token change landed while this join was admitted
            self._tasks.spawn(self.changes.recheck(participant))
        return {
            **call.summary(),
            "captions": {**call.captions, **self.captions_offer()},
            "participantId": participant.id,
            "role": str(participant.role),
            "capabilities": participant.capabilities(),
            "sdp": answer,
        }

    def set_state(self, participant: Participant, state: ParticipantState) -> None:
        if participant.in_call and participant.state != state:
            participant.state = state
            participant.call.updated(participant)

    async def ring(self, call: Call, user_id: str, inviter: dict[str, Any], listener: Listener, *, check: Check) -> int:
        return await moderation.ring(self, call, user_id, inviter, listener, check=check)

    def stop_ringing(self, call: Call, user_id: str) -> bool:
        return moderation.stop_ringing(self, call, user_id)

    async def silence(self, target: Participant, *, by: str) -> None:
        await moderation.silence(self, target, by=by)

    async def isolate(self, call: Call, participant_id: str, slot: int | None) -> None:
        """Put the participant's audio alone on an isolation slot (None: back to only the mix)."""
        participant = call.participants.get(participant_id)
        if participant is not None and participant.audio is not None:
            with contextlib.suppress(MediaError):
                await participant.audio.isolate(slot)

    def captions_offer(self) -> dict[str, Any]:
        """What a client may ask of captions here: the languages with a model, and the engine."""
        return {"supportedSpokenLanguages": self.captioner.languages(), "engine": self.captioner.engine}

    def live_call(self, room_id: str) -> Call | None:
        return self.calls.get(room_id)

    def find_call(self, call_id: str) -> Call | None:
        return self.lobbies.get(call_id) or next((c for c in self.calls.values() if c.id == call_id), None)

    def media_plane(self) -> MediaPlane:
        """The connected media plane, or a refusal a client can retry."""
        if self.plane is None:
            raise CallRefused(Refusal.MEDIA_UNAVAILABLE, "The media server is starting; try again in a moment.")
        return self.plane

    @contextlib.asynccontextmanager
    async def audio_feed(self, call: Call, audience: list[Participant]) -> AsyncIterator[tuple[str, int]]:
        """Audio only ``audience`` hears while the block runs (an audio feed, never the mix): yields
        where to send its RTP once their subscriptions take it."""
        plane = self.media_plane()
        feed, address = await plane.open_audio_feed(call.media, display="Call Automation")
        call.audio_feeds[feed.feed_id] = frozenset(p.id for p in audience)
        try:
            await self.video.settle(audience)
            yield address
        finally:
            call.audio_feeds.pop(feed.feed_id, None)
            # To the end, whatever is cancelled meanwhile: the play's callback follows the release.
            await to_the_end(self._close_feed(feed, audience))

    async def _close_feed(self, feed: AudioFeed, audience: list[Participant]) -> None:
        # Unsubscribed before the feed goes (see JanusAudioFeed), whatever other rounds come first.
        await self.video.settle(audience, without=feed.feed_id, timeout=FEED_RELEASE_SECONDS)
        with contextlib.suppress(MediaError):
            await feed.close()

    async def call_of(self, room: Room, user_id: str, role: Role) -> Call:
        """The room's live call, started by ``user_id`` if there is none (a dial-in caller, say)."""
        return await self._call_of(room, user_id, role, self.media_plane())

    async def _call_of(self, room: Room, user_id: str, role: Role, plane: MediaPlane) -> Call:
        """The room's live call; the first admitted joiner starts it."""
        room_id = room.id
        # One lock per room: a slow media server delays the starts in that room, not in every room.
        lock = self._creating.get(room_id) or self._creating.setdefault(room_id, asyncio.Lock())
        async with lock:
            call = self.calls.get(room_id)
            if call is not None and not call.ended:
                return call
            await self.placement.claim(room_id)
            adopted = await self.records.adopt(room_id)
            try:
                media = await plane.create_call(f"room {room_id}", _MAX_PUBLISHERS)
            except BaseException:
                await self.placement.release(room_id)
                raise
            call = Call(
                id=adopted["id"] if adopted else str(uuid.uuid4()),
                room_id=room_id,
                valid_until=room.valid_until,
                pstn_dial_out_enabled=room.pstn_dial_out_enabled,
                media=media,
                started_at=adopted["started_at"] if adopted else self.clock(),
                started_by=adopted["started_by"] if adopted else user_id,
                started_by_role=adopted["started_by_role"] if adopted else str(role),
            )
            resumed = adopted["captions"] if adopted else await self.records.captions_to_resume(room_id)
            if resumed:  # on before its call host was lost: on again, in the same language
                call.captions = {"active": True, "language": str(resumed)}
            if adopted:
                self.adoptions += 1
                log.warning("call %s in room %s adopted from node %s", call.id, room_id, adopted["node"])
                self.calls[room_id] = call
                self.schedule_expiry(call)
                for hook in self.on_adopted:
                    await hook(call)
                self._tasks.spawn(self.captioner.apply(call))  # not in the way of this join
                return call
            await self.records.call_started(call)
            self.calls[room_id] = call
            self.schedule_expiry(call)
            if resumed:
                await self.records.captions_changed(call)
                self._tasks.spawn(self.captioner.apply(call))
            log.info("call %s started in room %s by %s", call.id, room_id, user_id)
            return call

    def schedule_expiry(self, call: Call) -> None:
        if call.expiry is not None:
            call.expiry.cancel()
        delay = max(0.0, (call.valid_until - self.clock()) / 1e6)
        call.expiry = asyncio.get_running_loop().call_later(
            delay, lambda: self._tasks.spawn(self.end_call(call, EndReason.ROOM_EXPIRED))
        )

    async def leave(
        self, participant: Participant, reason: LeaveReason, *, by: str | None = None, check: Check | None = None
    ) -> None:
        """Take the participant out; ``check`` (run once the call is locked) may still refuse."""
        call = participant.call
        async with call.lock:
            if check is not None:
                check()
            if not participant.in_call:
                return
            await self._drop(call, participant, reason, by=by)
            last = call.empty
        if last:
            await self.end_call(call, EndReason.ALL_LEFT)

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
        self.captioner.left(call, participant)
        self.participant_of.pop(participant.peer, None)
        participant.state = ParticipantState.DISCONNECTED
        had_video = self.video.stop(participant)
        legs = [participant.audio, participant.subscription, *participant.feeds.values()]
        participant.feeds.clear()
        participant.ready.clear()
        for leg in legs:
            if leg is not None:
                with contextlib.suppress(MediaError):
                    await leg.close()
        await self.records.left(call, participant, reason, by)
        log.info("participant %s left call %s: %s", participant.id, call.id, reason)
        participant.peer.send(protocol.left(call.id, str(reason), by, str(end_reason) if end_reason else None))
        if call.active_speaker == participant.id:
            call.active_speaker = None
        call.broadcast(protocol.participant_left(participant.id, str(reason), by))
        if had_video:
            self.video.sync_all(call)

    async def end_call(
        self, call: Call, reason: EndReason, *, by: str | None = None, check: Check | None = None
    ) -> None:
        async with call.lock:
            if check is not None:
                check()
            if call.ended:
                return
            call.ended = True
            if call.expiry is not None:
                call.expiry.cancel()
            for participant in list(call.participants.values()):
                await self._drop(call, participant, LeaveReason.CALL_ENDED, by=by, end_reason=reason)
            for user_id in call.invitations:  # stop ringing for a call that is gone
                for peer in self.peers.get(user_id, set()):
                    peer.send(protocol.invite_cancelled(call.id))
                self.elsewhere.cancel(user_id, call.id)
            call.invitations.clear()
            for watcher in call.watchers:
                watcher.send(protocol.call_ended(call.id, str(reason), by))
            call.watchers.clear()
            if call.recorder is not None:
                call.recorder.call_ended()
            await self._release(call)
            await self.records.call_ended(call, reason, by)
        log.info("call %s in room %s ended: %s", call.id, call.room_id, reason)

    async def hand_over(self, call: Call, nodes: list[str]) -> None:
        """The call goes on on another node (this one drains, or another took the room's lease).

        Everyone here is told the call moved (their clients join again at once and land on the
        node that takes the room), its media here is released, and its record stays open for
        that node to adopt: no CallEnded, the participations end with ``CallMoved``. ``nodes``:
        the endpoints clients come back through (this node may be about to stop).
        """
        async with call.lock:
            if call.ended:
                return
            call.ended = True
            if call.expiry is not None:
                call.expiry.cancel()
            call.broadcast(protocol.call_moved(call.id, nodes))
            for participant in list(call.participants.values()):
                await self._drop(call, participant, LeaveReason.CALL_MOVED, end_reason=EndReason.MOVED)
            for watcher in call.watchers:
                watcher.send(protocol.call_ended(call.id, str(EndReason.MOVED), None))
            call.watchers.clear()
            await self._release(call)
        log.warning("call %s in room %s handed over to another node", call.id, call.room_id)

    async def _release(self, call: Call) -> None:
        """What a call held here goes (the call's lock is held): its place, the room's lease, its
        captions, its media."""
        await self.captioner.apply(call)
        if self.calls.get(call.room_id) is call:
            del self.calls[call.room_id]
            await self.placement.release(call.room_id)
        self.lobbies.pop(call.id, None)
        if self.plane is not None:
            with contextlib.suppress(MediaError):
                await self.plane.destroy_call(call.media)

    # -- media events ---------------------------------------------------------------

    def on_audio_event(self, participant: Participant, event: MediaEvent) -> None:
        if not participant.in_call:
            return
        if isinstance(event, Connected) and participant.state == ParticipantState.CONNECTING:
            participant.state = ParticipantState.CONNECTED
            participant.call.updated(participant)
        elif isinstance(event, HungUp):
            # ICE or DTLS failed, or the client closed its peer connection without leaving.
            self._tasks.spawn(self.leave(participant, LeaveReason.CONNECTION_LOST))
        elif isinstance(event, Talking):
            self._on_talking(participant, event.talking)

    def _on_talking(self, speaker: Participant, talking: bool) -> None:
        call = speaker.call
        if speaker.speaking == talking:
            return
        speaker.speaking = talking
        if talking:
            self.captioner.talking(call, speaker)
        call.broadcast(protocol.speaking(speaker.id, talking))
        if talking and call.active_speaker != speaker.id:
            call.active_speaker = speaker.id
            call.broadcast(protocol.active_speaker(speaker.id))

    async def media_lost(self) -> None:
        """The media server is gone: every call ends with a reason clients can show, and joins wait for it."""
        self.plane = None
        for call in [*self.calls.values(), *self.lobbies.values()]:
            await self.end_call(call, EndReason.MEDIA_FAILURE)
        self._tell_everyone(protocol.media_available(False))

    def media_ready(self, plane: MediaPlane) -> None:
        self.plane = plane
        self._tell_everyone(protocol.media_available(True))

    def nodes_changed(self, endpoints: list[str]) -> None:
        """In a cluster, every connected client learns the nodes it may come back through."""
        self._tell_everyone(protocol.nodes(endpoints))

    def _tell_everyone(self, message: dict[str, Any]) -> None:
        for peers in self.peers.values():
            for peer in peers:
                peer.send(message)

    async def close_abandoned_calls(self, nodes: list[str | None] | None = None) -> int:
        return await self.records.close_abandoned(nodes)

    async def close_orphaned_calls(self, alive: set[str], placed_rooms: set[str]) -> int:
        return await self.records.close_orphans(alive, placed_rooms)

    async def shutdown(self) -> None:
        for call in [*self.calls.values(), *self.lobbies.values()]:
            await self.end_call(call, EndReason.SERVER_SHUTDOWN)
