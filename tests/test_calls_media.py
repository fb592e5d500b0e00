"""Room calls with real media: Janus forwards, aiortc peers send tones and pictures and measure them."""

from __future__ import annotations

import asyncio

import pytest

from tests.calls import SILENT, CallWorld, hears, sees_video, stops_hearing
from vrooms.client import Call, CallError, PatternSource

# Every sender has its own tone, so a receiver of the mix can tell whom it hears.
P1_TONE, P2_TONE, ATTENDEE_TONE, CONSUMER_TONE = 500.0, 700.0, 900.0, 1100.0

CHEATING_VIDEO_OFFER = """v=0\r
o=- 1 1 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
m=video 9 UDP/TLS/RTP/SAVPF 96\r
c=IN IP4 0.0.0.0\r
a=mid:0\r
a=sendonly\r
a=rtpmap:96 VP8/90000\r
"""


async def test_four_roles_media_flows_and_the_consumer_cannot_publish(world: CallWorld) -> None:
    p1, p2, attendee, consumer = world.user(), world.user(), world.user(), world.user()
    room = world.room({p1: "Presenter", p2: "Presenter", attendee: "Attendee", consumer: "Consumer"})
    calls = {
        "p1": await world.join(p1, room, P1_TONE),
        "p2": await world.join(p2, room, P2_TONE),
        "attendee": await world.join(attendee, room, ATTENDEE_TONE),
        "consumer": await world.join(consumer, room, CONSUMER_TONE),
    }
    senders = {"p1": P1_TONE, "p2": P2_TONE, "attendee": ATTENDEE_TONE}
    assert calls["consumer"].role == "Consumer"
    assert "sendAudio" not in calls["consumer"].capabilities and "receiveMedia" in calls["consumer"].capabilities
    assert calls["consumer"].muted

    for name in senders:
        await calls[name].start_video(PatternSource())
    # The consumer's client tries every way in: the SDK call, a hand-crafted publish, unmuting.
    with pytest.raises(CallError) as refused:
        await calls["consumer"].start_video(PatternSource())
    assert refused.value.code == "NotAllowed"
    with pytest.raises(CallError) as refused:
        await calls["consumer"].request({"type": "publish", "source": "camera", "sdp": CHEATING_VIDEO_OFFER})
    assert refused.value.code == "NotAllowed"
    with pytest.raises(CallError) as refused:
        await calls["consumer"].unmute()
    assert refused.value.code == "NotAllowed"
    # A renegotiated sendrecv audio offer is answered without accepting anything from the consumer.
    offer = calls["consumer"]._audio_pc.localDescription.sdp
    answer = (await calls["consumer"].request({"type": "audioOffer", "sdp": offer}))["sdp"]
    assert "a=recvonly" not in answer and "a=sendrecv" not in answer

    for receiver, call in calls.items():
        for sender, tone in senders.items():
            if sender != receiver:
                await hears(call, tone)
    ids = {name: call.participant_id for name, call in calls.items()}
    for receiver, call in calls.items():
        for sender in senders:
            if sender != receiver:
                await sees_video(call, ids[sender])
    await asyncio.sleep(1.0)  # let the consumer's tone reach the mix, were it ever to get there
    for call in calls.values():
        assert call.remote_audio is not None
        assert call.remote_audio.tone_level(CONSUMER_TONE) < SILENT
        assert call.video_frames(ids["consumer"]) == 0
        assert not any(owner == ids["consumer"] for owner, _ in call.remote_video)
    listed = {p["participantId"]: p for p in await calls["p1"].list_participants()}
    assert listed[ids["consumer"]]["muted"] and not listed[ids["consumer"]]["camera"]
    assert all(listed[ids[name]]["camera"] for name in senders)
    assert all(p["state"] == "Connected" for p in listed.values())


async def test_presenter_mutes_the_attendee_who_cannot_moderate(world: CallWorld) -> None:
    presenter, attendee, listener = world.user(), world.user(), world.user()
    room = world.room({presenter: "Presenter", attendee: "Attendee", listener: "Consumer"})
    p = await world.join(presenter, room, P1_TONE)
    a = await world.join(attendee, room, ATTENDEE_TONE)
    c = await world.join(listener, room)
    await hears(c, ATTENDEE_TONE)
    await hears(p, ATTENDEE_TONE)

    for attempt in (
        a.mute_participant(p.participant_id),
        a.remove_participant(p.participant_id),
        a.end_for_all(),
        a.invite(listener.raw_id),
        a.start_screen_share(PatternSource()),
    ):
        with pytest.raises(CallError) as refused:
            await attempt
        assert refused.value.code == "NotAllowed"

    await p.mute_participant(a.participant_id)
    await a.wait_until(lambda: a.muted)
    await stops_hearing(c, ATTENDEE_TONE)
    await stops_hearing(p, ATTENDEE_TONE)
    await p.wait_until(lambda: p.participants[a.participant_id]["muted"])
    # A remote mute is not a ban: the attendee may speak again (as in ACS).
    await a.unmute()
    await hears(c, ATTENDEE_TONE)
    assert p.state == a.state == c.state == "Connected"

    # Hold takes the attendee out of the mix and shows it; resume brings both back.
    await a.hold()
    assert a.state == "OnHold"
    assert a.remote_audio is not None and a.remote_audio.level() == 0.0  # the held client plays nothing
    await p.wait_until(lambda: p.participants[a.participant_id]["state"] == "OnHold")
    await stops_hearing(c, ATTENDEE_TONE)
    await a.unmute()  # still on hold: stays out of the mix
    await asyncio.sleep(0.6)
    assert c.remote_audio is not None and c.remote_audio.tone_level(ATTENDEE_TONE) < SILENT
    await a.resume()
    await p.wait_until(lambda: p.participants[a.participant_id]["state"] == "Connected")
    await hears(c, ATTENDEE_TONE)


async def test_active_speaker_follows_who_talks(world: CallWorld) -> None:
    talker, quiet = world.user(), world.user()
    room = world.room({talker: "Presenter", quiet: "Attendee"})
    t = await world.join(talker, room, P1_TONE)
    q = await world.join(quiet, room)
    await q.wait_until(lambda: q.active_speaker == t.participant_id, 15)
    await t.wait_until(lambda: t.active_speaker == t.participant_id, 15)


async def test_presenter_shares_a_screen_as_its_own_stream(world: CallWorld) -> None:
    presenter, viewer = world.user(), world.user()
    room = world.room({presenter: "Presenter", viewer: "Consumer"})
    p = await world.join(presenter, room)
    v = await world.join(viewer, room)
    await p.start_video(PatternSource(), "camera")
    await p.start_screen_share(PatternSource(640, 360, 5))
    await v.wait_until(lambda: v.video_frames(p.participant_id, "screen") > 5, 20)
    await v.wait_until(lambda: v.video_frames(p.participant_id, "camera") > 5, 20)
    assert v.remote_video[(p.participant_id, "screen")].width == 640
    await p.stop_screen_share()
    await v.wait_until(lambda: not v.participants[p.participant_id]["screenShare"])


async def _flowing(call: Call, participant_ids: list[str]) -> None:
    before = {p: call.video_frames(p) for p in participant_ids}
    await call.wait_until(lambda: all(call.video_frames(p) > before[p] + 5 for p in participant_ids), 20)


async def _still(call: Call, participant_ids: list[str], seconds: float) -> None:
    """For ``seconds`` (a window of observation), no frame of these cameras arrives."""
    before = {p: call.video_frames(p) for p in participant_ids}
    await asyncio.sleep(seconds)
    assert {p: call.video_frames(p) for p in participant_ids} == before


async def test_a_receiver_is_sent_only_the_videos_it_shows(world: CallWorld) -> None:
    """Four cameras; a receiver that shows two (a page of its grid) is sent those two and none of
    the others, then the other page's, then (null) all again, without a renegotiation."""
    members = [world.user() for _ in range(5)]
    room = world.room({m: "Attendee" for m in members})
    viewer = await world.join(members[0], room)
    cameras = [await world.join(m, room) for m in members[1:]]
    for camera in cameras:
        await camera.start_video(PatternSource(160, 120, 10))
    ids = [c.participant_id for c in cameras]
    await _flowing(viewer, ids)
    offers = sum(1 for event in viewer.events if event.get("type") == "videoOffer")
    for page, rest in ((ids[:2], ids[2:]), (ids[2:], ids[:2]), (ids, [])):
        await viewer.show_video(None if not rest else [(p, "camera") for p in page])
        await _flowing(viewer, page)
        if rest:
            await _still(viewer, rest, 1.5)
    assert sum(1 for event in viewer.events if event.get("type") == "videoOffer") == offers


async def test_a_camera_turned_off_and_on_again_is_received_again(world: CallWorld) -> None:
    """Each round replaces the feed: the viewer's subscription must follow every time (a Janus
    offer left unanswered once would hold back every later renegotiation)."""
    presenter, viewer = world.user(), world.user()
    room = world.room({presenter: "Presenter", viewer: "Attendee"})
    p = await world.join(presenter, room)
    v = await world.join(viewer, room)
    for _ in range(3):
        await p.start_video(PatternSource(), "camera")
        before = v.video_frames(p.participant_id)
        await v.wait_until(lambda: v.video_frames(p.participant_id) > before + 5, 20)  # noqa: B023
        await p.stop_video("camera")
        await v.wait_until(lambda: not v.participants[p.participant_id]["camera"])


async def test_a_replaced_camera_reaches_the_viewer_on_the_same_feed(world: CallWorld) -> None:
    """replace_video swaps the track on the publishing connection: the viewer's subscription is not
    renegotiated (no videoOffer), and the new camera's size arrives on the same track."""
    presenter, viewer = world.user(), world.user()
    room = world.room({presenter: "Presenter", viewer: "Attendee"})
    p = await world.join(presenter, room)
    v = await world.join(viewer, room)
    await p.start_video(PatternSource(320, 240), "camera")
    await v.wait_until(lambda: v.video_frames(p.participant_id) > 5, 20)
    sink = v.remote_video[(p.participant_id, "camera")]
    offers = sum(1 for event in v.events if event.get("type") == "videoOffer")
    await p.replace_video(PatternSource(640, 360))
    await v.wait_until(lambda: sink.width == 640, 20)
    assert v.remote_video[(p.participant_id, "camera")] is sink
    assert sum(1 for event in v.events if event.get("type") == "videoOffer") == offers
