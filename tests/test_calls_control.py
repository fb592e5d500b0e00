"""Room calls: admission, moderation, roster and room changes, media-server failure, records."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.communication.identity import CommunicationUserIdentifier

from tests.calls import CallWorld, Member, disconnected, hears
from tests.servers import Server, free_port
from vrooms.auth.tokens import TokenIssuer, load_or_create_resource_id, load_or_create_signing_key
from vrooms.client import CallError, PatternSource, ToneSource
from vrooms.media.config import janus_lib_dir, write_config
from vrooms.media.interfaces import ice_interfaces


async def refused(world: CallWorld, token: str, room_id: str) -> str:
    with pytest.raises(CallError) as error:
        await world.client(token).join(room_id)
    return error.value.code


async def test_joins_are_refused_with_reason_codes(world: CallWorld) -> None:
    member, outsider, late = world.user(), world.user(), world.user()
    room = world.room({member: "Attendee", late: "Attendee"})
    now = datetime.now(UTC)
    future_room = world.room({member: "Presenter"}, valid_from=now + timedelta(hours=1))
    short_room = world.room({member: "Presenter"}, valid_from=now, valid_until=now + timedelta(seconds=2))

    assert await refused(world, outsider.token, room) == "NotOnRoster"
    assert await refused(world, member.token, future_room) == "RoomNotYetOpen"
    assert await refused(world, member.token, "99999999999999999") == "RoomNotFound"
    assert await refused(world, world.user(scopes=("chat",)).token, room) == "TokenScopeMissing"
    await asyncio.sleep(2.2)
    assert await refused(world, member.token, short_room) == "RoomExpired"

    world.identity.revoke_tokens(_user(late))
    assert await refused(world, late.token, room) == "TokenRevoked"
    data_dir = world.server.data_dir
    issuer = TokenIssuer(load_or_create_signing_key(data_dir), load_or_create_resource_id(data_dir))
    expired, _ = issuer.issue(member.raw_id, ["voip"], 0, -1)
    assert await refused(world, expired, room) == "TokenExpired"
    assert await refused(world, "not-a-token", room) == "TokenInvalid"
    # Admitted at last: the refusals changed nothing.
    call = await world.join(member, room)
    assert call.role == "Attendee"


def _user(member: Member) -> CommunicationUserIdentifier:
    return CommunicationUserIdentifier(member.raw_id)


async def test_bad_messages_get_errors_and_the_connection_stays_usable(world: CallWorld) -> None:
    member = world.user()
    room = world.room({member: "Presenter"})
    client = await world.client(member).connect()
    for raw in ("not json", "[1, 2]", '{"type": "fly"}', '{"type": "join", "roomId": 5}', '{"type": "join"}'):
        await client.signaling.send_raw(raw)
    with pytest.raises(CallError) as error:
        await client.signaling.request({"type": "join", "roomId": room, "sdp": "hello"})
    assert error.value.code == "BadMessage"
    # Every message type with every field of the wrong type: refused, never a crash.
    odd_values: list[object] = [None, 7, [], {}, True, "x" * 5000]
    kind: object
    for kind in (
        "join",
        "checkRoom",
        "setMuted",
        "audioOffer",
        "publish",
        "unpublish",
        "videoAnswer",
        "muteParticipant",
        "removeParticipant",
        "invite",
        "declineInvite",
        "captions",
        "leave",
        "endForAll",
        [],
        3,
    ):
        for value in odd_values:
            message = dict.fromkeys(
                (
                    "roomId",
                    "sdp",
                    "muted",
                    "source",
                    "participantId",
                    "userId",
                    "callId",
                    "action",
                    "language",
                    "displayName",
                ),
                value,
            )
            with pytest.raises(CallError) as error:
                await client.signaling.request({**message, "type": kind})
            assert error.value.code in ("BadMessage", "NotInCall", "InvitationNotFound")
    with pytest.raises(CallError) as error:
        await client.signaling.request({"type": "checkRoom", "roomId": "salle-é\u202e"})
    assert error.value.code == "RoomNotFound"
    with pytest.raises(CallError) as error:
        await client.signaling.request({"type": "setMuted", "muted": True})
    assert error.value.code == "NotInCall"
    call = await client.join(room)
    assert call.role == "Presenter"


async def test_remove_then_end_for_all_with_records(world: CallWorld) -> None:
    presenter, attendee, consumer = world.user(), world.user(), world.user()
    room = world.room({presenter: "Presenter", attendee: "Attendee", consumer: "Consumer"})
    p = await world.join(presenter, room, 500)
    a = await world.join(attendee, room)
    c = await world.join(consumer, room)
    await p.remove_participant(a.participant_id)
    await a.wait_until(lambda: a.state == "Disconnected")
    assert a.left_reason == "RemovedByPresenter"
    await c.wait_until(lambda: a.participant_id not in c.participants)
    await p.end_for_all()
    for call in (p, c):
        await disconnected(call)
        assert call.end_reason == "EndedForAll"

    [(call_id, started_by, role, reason, ended_by)] = world.records(
        "SELECT id, started_by, started_by_role, end_reason, ended_by FROM calls WHERE room_id = ?", room
    )
    assert (started_by, role, reason, ended_by) == (presenter.raw_id, "Presenter", "EndedForAll", presenter.raw_id)
    rows = world.records(
        "SELECT raw_id, role_at_join, leave_reason, removed_by, left_at IS NOT NULL FROM call_participants"
        " WHERE call_id = ? ORDER BY joined_at",
        call_id,
    )
    assert rows == [
        (presenter.raw_id, "Presenter", "CallEnded", presenter.raw_id, 1),
        (attendee.raw_id, "Attendee", "RemovedByPresenter", presenter.raw_id, 1),
        (consumer.raw_id, "Consumer", "CallEnded", presenter.raw_id, 1),
    ]


async def test_role_downgrade_roster_removal_and_room_deletion_take_effect_in_the_call(world: CallWorld) -> None:
    speaker, listener, extra = world.user(), world.user(), world.user()
    room = world.room({speaker: "Presenter", listener: "Presenter", extra: "Attendee"})
    s = await world.join(speaker, room, 500)
    listening = await world.join(listener, room)
    e = await world.join(extra, room)
    await s.start_video(PatternSource())
    await hears(listening, 500)
    await listening.wait_until(lambda: listening.video_frames(s.participant_id) > 5, 20)
    assert listening.participants[s.participant_id]["canSpeak"] is True

    await asyncio.to_thread(world.set_role, room, speaker, "Consumer")
    await s.wait_until(lambda: s.role == "Consumer", timeout=1.0)
    assert "sendAudio" not in s.capabilities and "sendVideo" not in s.capabilities
    await listening.wait_until(lambda: not listening.participants[s.participant_id]["camera"], timeout=1.0)
    await listening.wait_until(lambda: listening.participants[s.participant_id]["muted"], timeout=1.0)
    assert listening.participants[s.participant_id]["canSpeak"] is False  # a UI shows no "Muted" then
    frames = listening.video_frames(s.participant_id)
    await asyncio.sleep(1.0)
    assert listening.video_frames(s.participant_id) <= frames + 2  # at most what was in flight
    assert listening.remote_audio is not None and listening.remote_audio.tone_level(500) < 0.006
    with pytest.raises(CallError):
        await s.unmute()

    await asyncio.to_thread(world.rooms.remove_participants, room_id=room, participants=[_user(extra)])
    await e.wait_until(lambda: e.state == "Disconnected", timeout=2.0)
    assert e.left_reason == "RemovedFromRoster"

    await asyncio.to_thread(world.rooms.delete_room, room)
    for call in (s, listening):
        await disconnected(call, 2.0)
        assert call.end_reason == "RoomDeleted"


async def test_the_call_ends_when_the_room_expires(world: CallWorld) -> None:
    member = world.user()
    now = datetime.now(UTC)
    room = world.room({member: "Presenter"}, valid_from=now, valid_until=now + timedelta(seconds=3))
    call = await world.join(member, room)
    await call.wait_until(lambda: call.state == "Disconnected", timeout=10)
    assert call.end_reason == "RoomExpired"


async def test_invite_rings_a_connected_roster_member_who_joins(world: CallWorld) -> None:
    presenter, invitee, stranger = world.user(), world.user(), world.user()
    room = world.room({presenter: "Presenter", invitee: "Attendee"})
    p = await world.join(presenter, room)
    with pytest.raises(CallError) as error:
        await p.invite(invitee.raw_id)
    assert error.value.code == "InviteeNotConnected"
    with pytest.raises(CallError) as error:
        await p.invite(stranger.raw_id)
    assert error.value.code == "NotOnRoster"
    idle = [x for x in await p.list_participants() if x["state"] == "Idle"]
    assert idle == [{"userId": invitee.raw_id, "role": "Attendee", "state": "Idle"}]
    invitee_client = await world.client(invitee).connect()
    assert await p.invite(invitee.raw_id) == 1
    ringing = await asyncio.wait_for(invitee_client.invitations.get(), 5)
    assert ringing.state == "Ringing" and ringing.room_id == room
    assert ringing.caller["participantId"] == p.participant_id
    await ringing.decline()
    await p.wait_until(lambda: any(e["type"] == "inviteDeclined" for e in p.events))
    with pytest.raises(CallError) as error:
        await ringing.decline()
    assert error.value.code == "InvitationNotFound"

    await p.invite(invitee.raw_id)
    ringing = await asyncio.wait_for(invitee_client.invitations.get(), 5)
    joined = await ringing.accept()
    assert joined.role == "Attendee"
    await p.wait_until(lambda: any(x["userId"] == invitee.raw_id for x in p.participants.values()))
    assert {x["state"] for x in await p.list_participants()} <= {"Connecting", "Connected"}


async def test_captions_permissions(world: CallWorld) -> None:
    attendee, consumer = world.user(), world.user()
    room = world.room({attendee: "Attendee", consumer: "Consumer"})
    a = await world.join(attendee, room)
    c = await world.join(consumer, room)
    assert (await c.start_captions())["active"] is True
    with pytest.raises(CallError) as error:
        await c.set_caption_language("en-us")
    assert error.value.code == "NotAllowed"
    with pytest.raises(CallError):
        await c.start_captions("fr-fr")
    with pytest.raises(CallError) as unsupported:  # no model for it: refused with the list, not English
        await a.set_caption_language("de-de")
    assert unsupported.value.code == "CaptionsLanguageNotSupported" and "en-us" in unsupported.value.message
    assert (await a.set_caption_language("en-us"))["language"] == "en-us"
    await c.wait_until(lambda: c.captions.get("by") == a.participant_id)


async def test_pstn_dial_out_is_a_capability_only_where_the_room_enables_it(world: CallWorld) -> None:
    presenter = world.user()
    room = world.room({presenter: "Presenter"})  # pstnDialOutEnabled defaults to false
    call = await world.join(presenter, room)
    assert "pstnDialOut" not in call.capabilities and "sendAudio" in call.capabilities
    world.rooms.update_room(room_id=room, pstn_dial_out_enabled=True)
    await call.wait_until(lambda: "pstnDialOut" in call.capabilities)
    world.rooms.update_room(room_id=room, pstn_dial_out_enabled=False)
    await call.wait_until(lambda: "pstnDialOut" not in call.capabilities)
    assert call.role == "Presenter"


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSTOP])
async def test_janus_killed_or_hung_mid_call_participants_are_told_and_rejoin(
    world: CallWorld, how: signal.Signals
) -> None:
    """SIGKILL: Janus exits. SIGSTOP: it hangs, answering nothing; the heartbeat finds it within 5 s."""
    presenter, attendee = world.user(), world.user()
    room = world.room({presenter: "Presenter", attendee: "Attendee"})
    p = await world.join(presenter, room, 500)
    a = await world.join(attendee, room, 900)
    await hears(a, 500)
    old = world.server.janus_pid()
    os.kill(old, how)
    for call in (p, a):
        await disconnected(call, 5)
        assert call.end_reason == "MediaServerFailure"
    p2 = await p.client.join(room, audio=ToneSource(500))
    a2 = await a.client.join(room, audio=ToneSource(900))
    await hears(a2, 500)
    await hears(p2, 900)
    assert world.server.janus_pid() != old
    assert Path(f"/proc/{old}").exists() is False


async def test_calls_on_both_backends(server: Server) -> None:
    world = CallWorld(server)
    try:
        one, two = world.user(), world.user()
        room = world.room({one: "Presenter", two: "Attendee"})
        a = await world.join(one, room, 500)
        b = await world.join(two, room, 900)
        await hears(a, 900)
        await hears(b, 500)
        await a.leave()
        await b.leave()
        assert a.left_reason == b.left_reason == "Left"
    finally:
        await world.close()


async def test_two_rest_workers_relay_to_one_call_host(tmp_path: Path) -> None:
    """Clients land on either worker; the call is still one call."""
    server = Server(tmp_path, workers=2).start()
    world = CallWorld(server)
    try:
        members = [world.user() for _ in range(4)]
        room = world.room(dict.fromkeys(members, "Attendee"))
        calls = [await world.join(member, room, 400 + 100 * index) for index, member in enumerate(members)]
        ids = {call.id for call in calls}
        assert len(ids) == 1
        await hears(calls[0], 700)
        await calls[0].wait_until(lambda: len(calls[0].participants) == 3)
    finally:
        await world.close()
        server.stop()


async def test_an_external_janus_is_used_instead_of_a_managed_one(tmp_path: Path) -> None:
    folder = tmp_path / "own-janus"
    endpoint = write_config(
        folder=folder,
        lib_dir=janus_lib_dir("janus"),
        ws_port=free_port(),
        interfaces=[name for name, _ in ice_interfaces()],
        rtp_port_range="41000-41999",
        plain_rtp_port_range="45000-45999",
        stun_server=None,
        debug_level=3,
    )
    janus = subprocess.Popen(
        ["janus", f"--configs-folder={folder}", f"--config={folder / 'janus.jcfg'}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert endpoint.api_secret and endpoint.admin_key
    server = Server(
        tmp_path / "vrooms",
        extra_env={
            "VROOMS_JANUS_URL": endpoint.url,
            "VROOMS_JANUS_API_SECRET": endpoint.api_secret,
            "VROOMS_JANUS_ADMIN_KEY": endpoint.admin_key,
        },
    ).start()
    world = CallWorld(server)
    try:
        one, two = world.user(), world.user()
        room = world.room({one: "Presenter", two: "Attendee"})
        a = await world.join(one, room, 500)  # waits until the call host has reached that Janus
        b = await world.join(two, room, 900)
        await hears(a, 900)
        await hears(b, 500)
        assert not (server.data_dir / "janus").exists()  # vrooms started no Janus of its own
    finally:
        await world.close()
        server.stop()
        janus.terminate()
        janus.wait(10)


async def test_a_killed_call_host_comes_back_and_closes_the_calls_it_left_open(world: CallWorld) -> None:
    presenter, attendee = world.user(), world.user()
    room = world.room({presenter: "Presenter", attendee: "Attendee"})
    p = await world.join(presenter, room, 500)
    a = await world.join(attendee, room)
    world.server.kill_call_host()
    for call in (p, a):
        await disconnected(call, 5)
        assert call.left_reason == "ConnectionLost"
    for _ in range(150):  # the launcher restarts the host, which closes what it finds open
        rows = world.records("SELECT end_reason FROM calls WHERE id = ?", p.id)
        if rows[0][0] is not None:
            break
        await asyncio.sleep(0.1)
    assert rows == [("ServerFailure",)]
    left = world.records("SELECT leave_reason FROM call_participants WHERE call_id = ?", p.id)
    assert left == [("ConnectionLost",), ("ConnectionLost",)]
    again = await world.join(presenter, room)  # a new call in the same room
    assert again.id != p.id


async def test_without_a_call_host_joins_fail_with_calls_unavailable(tmp_path: Path) -> None:
    server = Server(tmp_path, extra_env={"VROOMS_CALLS_ENABLED": "false"}).start()
    world = CallWorld(server)
    try:
        member = world.user()
        room = world.room({member: "Presenter"})
        with pytest.raises(CallError) as error:
            await world.client(member).join(room, wait_for_media=0.5)  # retried, then given up
        assert error.value.code == "CallsUnavailable"
    finally:
        await world.close()
        server.stop()
