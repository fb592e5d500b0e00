"""The call rules and their races, on real SQLite and the in-memory media plane (``tests/media_fake.py``).

Each race holds one media request at its await (``FakePlane.pause``), lands a change
from outside there (a demotion, a roster removal, a revocation, the call's end), lets
the request finish and checks the end state. The same races with real Janus and
measured media are in ``test_calls_attacks.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.media_fake import FakeLeg, FakePlane
from vrooms.api.times import now_micros
from vrooms.auth.roles import Role
from vrooms.auth.tokens import TokenIssuer, load_or_create_resource_id, load_or_create_signing_key
from vrooms.calls import moderation
from vrooms.calls.call import Participant
from vrooms.calls.models import CallRefused, LeaveReason, MediaSource
from vrooms.calls.service import CallService
from vrooms.identity.schemas import TokenRequest
from vrooms.identity.service import IdentityService
from vrooms.media.types import OfferRefused
from vrooms.rooms.models import NewRoom, RoomChanges
from vrooms.rooms.service import RoomsService
from vrooms.store.database import Database
from vrooms.store.migrate import upgrade_to_head

pytestmark = pytest.mark.asyncio(loop_scope="function")

SESSION = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
AUDIO = SESSION + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendrecv\r\n"
VIDEO = SESSION + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=sendonly\r\n"
RACES = 50


@dataclass(eq=False)
class FakePeer:
    user_id: str
    token: str
    user_agent: str = "unit-test"
    messages: list[dict[str, Any]] = field(default_factory=list)

    def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]


@dataclass
class World:
    database: Database
    rooms: RoomsService
    identity: IdentityService
    calls: CallService
    plane: FakePlane

    async def user(self, scopes: tuple[str, ...] = ("voip",)) -> FakePeer:
        async with self.database.write() as conn:
            user_id = await self.identity.create(conn)
        async with self.database.read() as conn:
            token, _ = await self.identity.issue_token(conn, user_id, TokenRequest(list(scopes), 60))
        return FakePeer(user_id, token)

    async def room(self, roster: dict[FakePeer, Role]) -> str:
        new = NewRoom(None, None, False, {peer.user_id: role for peer, role in roster.items()})
        async with self.database.write() as conn:
            return (await self.rooms.create(conn, new)).id

    async def set_role(self, room_id: str, peer: FakePeer, role: Role | None) -> None:
        async with self.database.write() as conn:
            await self.rooms.change_roster(conn, room_id, {peer.user_id: role})
        await self.calls.changes.room_changed(room_id)

    async def join(self, peer: FakePeer, room_id: str) -> Participant:
        await self.calls.join(peer, room_id, "", AUDIO)
        return self.calls.in_call(peer)

    async def settled(self) -> None:
        """Wait for the background work the service spawned (rechecks, ends)."""
        await self.calls._tasks.settled()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    database = Database(f"sqlite:///{tmp_path / 'rules.db'}")
    await upgrade_to_head(database)
    rooms = RoomsService(max_participants=100)
    issuer = TokenIssuer(load_or_create_signing_key(tmp_path), load_or_create_resource_id(tmp_path))
    identity = IdentityService(resource_id=issuer.resource_id, tokens=issuer, rooms=rooms)
    plane = FakePlane()
    calls = CallService(database, identity)
    calls.media_ready(plane)
    yield World(database, rooms, identity, calls, plane)
    await calls.shutdown()
    await database.dispose()


def audio_leg(participant: Participant) -> FakeLeg:
    assert isinstance(participant.audio, FakeLeg)
    return participant.audio


async def until(condition: Callable[[], bool]) -> None:
    """Let other tasks run until ``condition`` holds (event-loop turns, not time)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def refusal(awaitable: Any) -> str:
    with pytest.raises(CallRefused) as refused:
        await awaitable
    return refused.value.code


async def test_demotion_during_unmute_leaves_the_mic_out_of_the_mix(world: World) -> None:
    for attempt in range(RACES):
        presenter = await world.user()
        room = await world.room({presenter: Role.PRESENTER})
        p = await world.join(presenter, room)
        await world.calls.media.set_muted(p, True)
        # Land the demotion either while the unmute waits for the mixer, or just after.
        pause = world.plane.pause("set_muted") if attempt % 2 == 0 else None
        unmute = asyncio.ensure_future(world.calls.media.set_muted(p, False))
        if pause is not None:
            await pause.reached.wait()
        demote = asyncio.ensure_future(world.set_role(room, presenter, Role.CONSUMER))
        if pause is not None:
            pause.release()
        await asyncio.gather(unmute, demote, return_exceptions=True)
        assert audio_leg(p).muted and p.muted and p.role == Role.CONSUMER, f"attempt {attempt}"
        assert presenter.of_type("participantUpdated")[-1]["participant"]["muted"] is True
        await world.calls.leave(p, LeaveReason.LEFT)


async def test_demotion_during_resume_keeps_the_participant_out_of_the_mix(world: World) -> None:
    attendee = await world.user()
    room = await world.room({attendee: Role.ATTENDEE})
    a = await world.join(attendee, room)
    await world.calls.media.set_muted(a, False)
    await world.calls.media.set_on_hold(a, True)
    assert audio_leg(a).muted
    pause = world.plane.pause("set_muted")
    resume = asyncio.ensure_future(world.calls.media.set_on_hold(a, False))
    await pause.reached.wait()
    demote = asyncio.ensure_future(world.set_role(room, attendee, Role.CONSUMER))
    pause.release()
    await asyncio.gather(resume, demote)
    assert audio_leg(a).muted and a.muted


async def refusal_of_a_publish_during(
    world: World, role: Role, change: Callable[[FakePeer, str], Awaitable[Any]], landed: Callable[[Participant], bool]
) -> tuple[FakePeer, str]:
    """Hold a publish at the media plane, land ``change`` there, then let the publish finish."""
    publisher, other = await world.user(), await world.user()
    room = await world.room({publisher: role, other: Role.ATTENDEE})
    participant = await world.join(publisher, room)
    await world.join(other, room)
    pause = world.plane.pause("publish")
    publish = asyncio.ensure_future(world.calls.media.publish(participant, MediaSource.CAMERA, VIDEO))
    await pause.reached.wait()
    changing = asyncio.ensure_future(change(publisher, room))
    await until(lambda: landed(participant))
    pause.release()
    code = await refusal(publish)
    await changing
    assert not participant.feeds
    assert all(leg.closed for leg in world.plane.legs if leg.kind == "video")
    return publisher, code


async def test_demotion_during_publish_unpublishes_and_refuses(world: World) -> None:
    async def demote(peer: FakePeer, room: str) -> None:
        await world.set_role(room, peer, Role.CONSUMER)

    _, code = await refusal_of_a_publish_during(world, Role.ATTENDEE, demote, lambda p: p.role == Role.CONSUMER)
    assert code == "NotAllowed"


async def test_roster_removal_during_join_takes_the_joiner_out(world: World) -> None:
    presenter, attendee = await world.user(), await world.user()
    room = await world.room({presenter: Role.PRESENTER, attendee: Role.ATTENDEE})
    await world.join(presenter, room)
    pause = world.plane.pause("join_audio")
    join = asyncio.ensure_future(world.join(attendee, room))
    await pause.reached.wait()
    await world.set_role(room, attendee, None)  # the joiner is not in the call yet
    pause.release()
    joined = await join
    await world.settled()
    assert not joined.in_call
    assert attendee.of_type("left")[-1]["reason"] == "RemovedFromRoster"


async def test_revocation_during_publish_ends_the_participation(world: World) -> None:
    async def revoke(peer: FakePeer, room: str) -> None:
        async with world.database.write() as conn:
            await world.identity.revoke_tokens(conn, peer.user_id)
        await world.calls.changes.user_changed(peer.user_id)

    presenter, code = await refusal_of_a_publish_during(world, Role.PRESENTER, revoke, lambda p: not p.in_call)
    assert code == "NotInCall"
    assert presenter.of_type("left")[-1]["reason"] == "TokenRevoked"


async def test_end_for_all_during_invite_rings_nobody(world: World) -> None:
    presenter, invitee = await world.user(), await world.user()
    room = await world.room({presenter: Role.PRESENTER, invitee: Role.ATTENDEE})
    p = await world.join(presenter, room)
    world.calls.connected(invitee)
    invite = asyncio.ensure_future(moderation.invite(world.calls, p, invitee.user_id))
    end = asyncio.ensure_future(moderation.end_for_all(world.calls, p))
    results = await asyncio.gather(invite, end, return_exceptions=True)
    rang = [m for m in invitee.messages if m["type"] in ("invite", "inviteCancelled")]
    # Either refused because the call ended first, or rung and then told the call is gone.
    assert isinstance(results[0], CallRefused) or rang[-1]["type"] == "inviteCancelled"


async def test_a_token_without_a_calling_scope_opens_no_connection(world: World) -> None:
    chat = await world.user(scopes=("chat",))
    assert await refusal(world.calls.authenticate(chat.token)) == "TokenScopeMissing"


async def test_moving_valid_from_into_the_future_ends_the_call(world: World) -> None:
    presenter = await world.user()
    room = await world.room({presenter: Role.PRESENTER})
    await world.join(presenter, room)
    later = now_micros() + 3_600_000_000
    async with world.database.write() as conn:
        await world.rooms.update(conn, room, RoomChanges(later, later + 3_600_000_000, None))
    await world.calls.changes.room_changed(room)
    left = presenter.of_type("left")[-1]
    assert left["callEndReason"] == "RoomNotYetOpen"


async def test_offers_of_the_wrong_shape_are_refused_before_the_media_plane(world: World) -> None:
    attendee = await world.user()
    room = await world.room({attendee: Role.ATTENDEE})
    a = await world.join(attendee, room)
    with_audio = VIDEO + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=sendrecv\r\n"
    two_videos = VIDEO + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendonly\r\n"
    for offer in (with_audio, two_videos):
        with pytest.raises(OfferRefused):
            await world.calls.media.publish(a, MediaSource.CAMERA, offer)
    assert "publish" not in world.plane.calls
