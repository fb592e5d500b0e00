"""A client that cheats, against real Janus: every finding of the attack review as a regression test.

Media findings are measured at a real receiver (tone energy of the mix, video frames).
The demotion race runs ``VROOMS_STRESS_RUNS`` times (5 by default; the stress mode
``VROOMS_STRESS_RUNS=50`` is what the review asked for).
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import websockets
from aiortc import RTCPeerConnection
from azure.communication.identity import CommunicationUserIdentifier

from tests.calls import SILENT, CallWorld, hears, raw_signaling, stops_hearing
from vrooms.client import Call, CallError, PatternSource, ToneSource

STRESS_RUNS = int(os.environ.get("VROOMS_STRESS_RUNS", "5"))
CHEAT_TONE = 950.0


async def offer_of(*kinds: str) -> str:
    """An aiortc offer with one sending section per kind (``"audio"``, ``"video"``)."""
    pc = RTCPeerConnection()
    try:
        for kind in kinds:
            pc.addTransceiver(ToneSource(CHEAT_TONE) if kind == "audio" else PatternSource(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp
    finally:
        await pc.close()


async def refused_code(call: Call, message: dict[str, object]) -> str:
    with pytest.raises(CallError) as error:
        await call.request(message)
    return error.value.code


async def test_a_muted_attendee_cannot_be_heard_through_a_camera_publish(world: CallWorld) -> None:
    presenter, attendee = world.user(), world.user()
    room = world.room({presenter: "Presenter", attendee: "Attendee"})
    p = await world.join(presenter, room)
    a = await world.join(attendee, room, CHEAT_TONE)
    await hears(p, CHEAT_TONE)
    await p.mute_participant(a.participant_id)
    await stops_hearing(p, CHEAT_TONE)
    # The camera publish that carried audio past the mixer's mute, and one feed as two streams.
    for kinds in (("video", "audio"), ("audio", "video"), ("video", "video"), ("audio",)):
        code = await refused_code(a, {"type": "publish", "source": "camera", "sdp": await offer_of(*kinds)})
        assert code == "BadMessage", kinds
    await a.start_video(PatternSource())  # a proper camera still works
    await p.wait_until(lambda: p.video_frames(a.participant_id) > 10, 20)
    await asyncio.sleep(1.0)  # measure: the attendee's tone must stay absent from everything received
    assert p.remote_audio is not None and p.remote_audio.tone_level(CHEAT_TONE) < SILENT
    assert set(p.remote_video) == {(a.participant_id, "camera")}
    assert p.participants[a.participant_id]["muted"] is True


@pytest.mark.parametrize(
    "rewrite",
    [
        lambda offer: offer.replace("a=sendrecv\r\n", ""),
        lambda offer: offer.replace("a=sendrecv", "a=SENDRECV"),
        lambda offer: offer.replace("a=sendrecv", "a=sendrecv "),
        lambda offer: offer.replace("a=sendrecv\r\n", "").replace("t=0 0\r\n", "t=0 0\r\na=sendrecv\r\n"),
    ],
    ids=["no-direction", "upper-case", "trailing-space", "session-level"],
)
async def test_a_consumer_offer_reaches_janus_receive_only_however_it_is_spelled(world: CallWorld, rewrite) -> None:  # type: ignore[no-untyped-def]
    presenter, consumer = world.user(), world.user()
    room = world.room({presenter: "Presenter", consumer: "Consumer"})
    p = await world.join(presenter, room)
    c = await world.join(consumer, room, CHEAT_TONE)
    offer = rewrite(c._audio_pc.localDescription.sdp)
    answer = (await c.request({"type": "audioOffer", "sdp": offer}))["sdp"]
    audio = answer[answer.index("m=audio") :]
    assert "a=recvonly" not in audio and "a=sendrecv" not in audio  # Janus takes nothing from it
    await asyncio.sleep(1.0)
    assert p.remote_audio is not None and p.remote_audio.tone_level(CHEAT_TONE) < SILENT


async def test_revoked_tokens_and_a_later_valid_from_end_participations_under_way(world: CallWorld) -> None:
    presenter, attendee = world.user(), world.user()
    room = world.room({presenter: "Presenter", attendee: "Attendee"})
    p = await world.join(presenter, room)
    a = await world.join(attendee, room)
    await asyncio.to_thread(world.identity.revoke_tokens, CommunicationUserIdentifier(attendee.raw_id))
    await a.wait_until(lambda: a.state == "Disconnected", timeout=1.0)
    assert a.left_reason == "TokenRevoked"
    await p.wait_until(lambda: a.participant_id not in p.participants, timeout=1.0)

    later = datetime.now(UTC) + timedelta(hours=1)
    await asyncio.to_thread(
        world.rooms.update_room, room_id=room, valid_from=later, valid_until=later + timedelta(hours=1)
    )
    await p.wait_until(lambda: p.state == "Disconnected", timeout=1.0)
    assert p.end_reason == "RoomNotYetOpen"


async def test_a_token_without_a_calling_scope_opens_no_signaling_connection(world: CallWorld) -> None:
    chat = world.user(scopes=("chat",))
    with pytest.raises(CallError) as error:
        await world.client(chat).connect()
    assert error.value.code == "TokenScopeMissing"


async def _toggle(call: Call, times: int) -> None:
    """Mute, unmute and hold back to back without waiting for replies: requests always in flight."""
    for n in range(times):
        message = {"type": "hold"} if n % 7 == 6 else {"type": "setMuted", "muted": n % 2 == 0}
        await call.client.signaling.send_raw(orjson.dumps(message).decode())
    await call.client.signaling.send_raw('{"type": "resume"}')
    await call.request({"type": "listParticipants"})  # answered after everything sent before it


async def test_a_presenter_demoted_while_toggling_mute_and_hold_is_not_heard(world: CallWorld) -> None:
    presenter, listener = world.user(), world.user()
    room = world.room({presenter: "Presenter", listener: "Consumer"})
    p = await world.join(presenter, room, CHEAT_TONE)
    c = await world.join(listener, room)
    for run in range(STRESS_RUNS):
        await p.unmute()
        await hears(c, CHEAT_TONE)
        toggling = asyncio.ensure_future(_toggle(p, 60))
        await asyncio.to_thread(world.set_role, room, presenter, "Consumer")
        await toggling
        await p.wait_until(lambda: p.role == "Consumer", timeout=2.0)
        listed = {x["participantId"]: x for x in await c.list_participants()}
        assert listed[p.participant_id]["muted"] is True, f"run {run}"
        await stops_hearing(c, CHEAT_TONE)
        await asyncio.to_thread(world.set_role, room, presenter, "Presenter")
        await p.wait_until(lambda: p.role == "Presenter", timeout=2.0)


async def test_oversized_signaling_frames_are_bounded_on_the_public_port(world: CallWorld) -> None:
    """uvicorn's default takes 16 MiB WebSocket frames: a frame over 1 MiB closes the
    connection (1009); a message over 256 KiB is refused and the connection stays."""
    member = world.user()
    async with raw_signaling(world.server, member.token, max_size=None) as ws:
        assert orjson.loads(await ws.recv())["type"] == "hello"
        await ws.send(orjson.dumps({"type": "join", "id": 1, "roomId": "1", "sdp": "v=0" + "x" * 300_000}).decode())
        replies = [orjson.loads(await ws.recv()) for _ in range(2)]
        assert any(r.get("type") == "error" and r.get("code") == "BadMessage" for r in replies), replies
        await ws.send("x" * (2 * 1024 * 1024))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_a_flood_of_requests_is_rate_limited_per_connection(world: CallWorld) -> None:
    """Beyond the burst (200) a request is refused with RateLimited and its own id; the
    connection stays and nothing of it reaches the media server."""
    member = world.user()
    async with raw_signaling(world.server, member.token) as ws:
        for n in range(300):
            await ws.send(orjson.dumps({"type": "listParticipants", "id": n}).decode())
        replies: dict[int, str] = {}
        while len(replies) < 300:
            message = orjson.loads(await ws.recv())
            if message.get("type") == "error" and isinstance(message.get("id"), int):
                replies[message["id"]] = message["code"]
    codes = [replies[n] for n in range(300)]
    assert set(codes[:150]) == {"NotInCall"}  # within the burst: handled (and refused: not in a call)
    assert codes.count("RateLimited") >= 50 and codes[-1] == "RateLimited"
