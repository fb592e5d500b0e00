"""A live call and its participants: the state the call rules read and write (no I/O).

A participant's *wanted* media state is a function of its role and its own choices
(``mix_muted``, ``may_publish``); the service brings the media plane to it after
every change and again after every await, so no decision taken before an await can
outlive a role change that landed during it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vrooms.auth.roles import ROLE_CAPABILITIES, Capability, Role, role_can
from vrooms.calls import protocol
from vrooms.calls.models import MediaSource, ParticipantState
from vrooms.media.types import AudioLeg, CallMedia, VideoFeed, VideoSubscription

Check = Callable[[], object]
SOURCE_CAPABILITY = {MediaSource.CAMERA: Capability.SEND_VIDEO, MediaSource.SCREEN: Capability.SHARE_SCREEN}


def allowed_in(role: Role, capability: Capability, *, pstn_dial_out_enabled: bool) -> bool:
    """The role table says who may; a room setting can still say no one here (dial-out)."""
    if capability == Capability.PSTN_DIAL_OUT and not pstn_dial_out_enabled:
        return False
    return role_can(role, capability)


def capabilities_in(role: Role, *, pstn_dial_out_enabled: bool) -> list[str]:
    return sorted(
        c for c in ROLE_CAPABILITIES[role] if allowed_in(role, c, pstn_dial_out_enabled=pstn_dial_out_enabled)
    )


class Telephony(Protocol):
    """Phone legs (implemented by ``pstn.service``): for a participant's requests and for the server's."""

    async def dial_out(self, actor: Participant, number: str) -> Participant: ...

    async def send_dtmf(self, actor: Participant, participant_id: str, tones: str) -> None: ...

    async def dial(self, call: Call, number: str, *, by: str | None, check: Check | None = None) -> Participant: ...

    async def send_tones(self, target: Participant, tones: str) -> None: ...

    async def play_to(self, target: Participant, file: Path) -> None:
        """A WAV file that only this phone participant hears."""
        ...

    async def stop_playing(self, target: Participant) -> None: ...

    async def answer_incoming(self, context: str) -> Call:
        """Answer a ringing caller (``incomingCallContext``) into a lobby call of its own."""
        ...

    def reject_incoming(self, context: str, code: int) -> None: ...

    def redirect_incoming(self, context: str, number: str) -> None: ...

    async def move(self, phone: Participant, to: Call) -> Participant:
        """Take a phone participant out of its call (a lobby) into another; its dialog goes on."""
        ...


class Listener(Protocol):
    """Anything that is told what happens in a call: a participant's connection, or a watcher."""

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message (``calls.protocol``); never blocks."""


class Recorder(Protocol):
    """Records a call (``recording.session``): told of every leg that joins the mix, every camera or
    screen that goes live, and of the end."""

    def leg_added(self, participant: Participant) -> None: ...

    def feed_added(self, participant: Participant, source: MediaSource) -> None: ...

    def call_ended(self) -> None: ...


class Peer(Listener, Protocol):
    """A signaling connection: one signed-in user, possibly in one call."""

    user_id: str
    user_agent: str
    token: str


@dataclass(eq=False)
class Participant:
    id: str
    user_id: str
    display_name: str
    role: Role
    peer: Peer
    call: Call = field(repr=False)
    joined_at: int
    # The participant's own (or a Presenter's) mute; the role can silence it further.
    muted: bool
    # A telephone leg (E.164): not on the roster, no token, no video; its role stays Attendee.
    phone_number: str | None = None
    state: ParticipantState = ParticipantState.CONNECTING
    speaking: bool = False
    audio: AudioLeg | None = None
    # What the mixer was last told (None: unknown, e.g. after a failed request).
    mix_muted_applied: bool | None = None
    feeds: dict[MediaSource, VideoFeed] = field(default_factory=dict)
    # Feeds whose WebRTC session is up: Janus refuses subscriptions to the others.
    ready: set[MediaSource] = field(default_factory=set)
    subscription: VideoSubscription | None = None
    # The videos this participant's screen shows ((participant id, source)); None: all of them.
    visible_video: frozenset[tuple[str, MediaSource]] | None = None
    pending_answer: asyncio.Future[str] | None = None
    sync_task: asyncio.Task[None] | None = None
    sync_again: bool = False
    # One mixer change at a time, and one publish or unpublish at a time, per participant.
    audio_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    video_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def can(self, capability: Capability) -> bool:
        return allowed_in(self.role, capability, pstn_dial_out_enabled=self.call.pstn_dial_out_enabled)

    def capabilities(self) -> list[str]:
        return capabilities_in(self.role, pstn_dial_out_enabled=self.call.pstn_dial_out_enabled)

    @property
    def in_call(self) -> bool:
        return self.call.participants.get(self.id) is self

    @property
    def mix_muted(self) -> bool:
        """Whether the mixer must keep this participant out: the one rule for every audio path."""
        return self.muted or self.state == ParticipantState.ON_HOLD or not self.can(Capability.SEND_AUDIO)

    def may_publish(self, source: MediaSource) -> bool:
        return self.in_call and self.can(SOURCE_CAPABILITY[source])

    def to_wire(self) -> dict[str, Any]:
        return {
            "participantId": self.id,
            "userId": self.user_id,
            "displayName": self.display_name,
            "role": str(self.role),
            "state": str(self.state),
            "muted": self.muted,
            "canSpeak": self.can(Capability.SEND_AUDIO),  # a Viewer is muted for good: nothing to show
            "speaking": self.speaking,
            "camera": MediaSource.CAMERA in self.feeds,
            "screenShare": MediaSource.SCREEN in self.feeds,
            **({"phoneNumber": self.phone_number} if self.phone_number else {}),
        }


@dataclass(eq=False)
class Call:
    id: str
    room_id: str
    valid_until: int
    pstn_dial_out_enabled: bool
    media: CallMedia
    started_at: int
    started_by: str
    started_by_role: str
    participants: dict[str, Participant] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ended: bool = False
    active_speaker: str | None = None
    captions: dict[str, Any] = field(default_factory=lambda: {"active": False, "language": "en-us"})
    # Invited user id -> whom to tell if they decline, until they join or decline.
    invitations: dict[str, Listener] = field(default_factory=dict)
    # Follow the call without being in it (Call Automation connections); they keep it alive.
    watchers: list[Listener] = field(default_factory=list)
    # A caller answered by Call Automation, outside any room until moved into a room's call:
    # no records, and it ends when the caller leaves.
    lobby: bool = False
    recorder: Recorder | None = None
    # Who has the dominant speakers' audio apart (``media.speakers``: one user at a time, since a
    # participant is isolated on one slot): "captions", "media streaming", or None.
    speakers_apart_by: str | None = None
    # Audio outside the mix (a prompt to chosen participants): feed id -> who receives it.
    audio_feeds: dict[int, frozenset[str]] = field(default_factory=dict)
    expiry: asyncio.TimerHandle | None = None

    def feed_owners(self) -> dict[int, tuple[Participant, MediaSource]]:
        return {
            feed.feed_id: (p, source)
            for p in self.participants.values()
            for source, feed in p.feeds.items()
            if source in p.ready
        }

    def broadcast(self, message: dict[str, Any], *, skip: Participant | None = None) -> None:
        for participant in self.participants.values():
            if participant is not skip:
                participant.peer.send(message)
        for watcher in self.watchers:
            watcher.send(message)

    def take_speakers_apart(self, by: str) -> str | None:
        """Take the dominant speakers' audio apart for ``by``: None if it may, else who has it (one
        holder at a time: a second stream of the same kind is refused too)."""
        if self.speakers_apart_by is not None:
            return self.speakers_apart_by
        self.speakers_apart_by = by
        return None

    def speakers_apart_elsewhere(self, by: str) -> str | None:
        """Who other than ``by`` has the speakers apart now (None: nobody, or ``by`` itself)."""
        return self.speakers_apart_by if self.speakers_apart_by not in (None, by) else None

    def give_back_speakers_apart(self, by: str) -> None:
        if self.speakers_apart_by == by:
            self.speakers_apart_by = None

    @property
    def empty(self) -> bool:
        """Nobody in it and (but for a lobby) nobody watching: the call ends."""
        return not self.participants and (self.lobby or not self.watchers)

    def updated(self, participant: Participant) -> None:
        self.broadcast(protocol.participant_updated(participant.to_wire()))

    def summary(self) -> dict[str, Any]:
        return {
            "callId": self.id,
            "roomId": self.room_id,
            "participants": [p.to_wire() for p in self.participants.values()],
            "activeSpeaker": self.active_speaker,
            "captions": self.captions,
        }
