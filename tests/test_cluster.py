"""Several nodes (issue: a cluster on PostgreSQL and NATS): three real nodes, each a whole
``vrooms serve`` with its own Janus, sharing one PostgreSQL database and the machine's NATS.

Clients (the official Azure SDKs, the Python calling SDK) go to different nodes: one service.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from azure.communication.callautomation import DtmfTone, PhoneNumberIdentifier, recording_url_validator
from azure.communication.callautomation.aio import CallAutomationClient
from azure.communication.identity import CommunicationIdentityClient, CommunicationUserIdentifier
from playwright.async_api import expect

from tests.audio_files import tone_per_second
from tests.browsers import Launch, join, open_call
from tests.calls import HEARD, CallWorld, disconnected, hears, raw_signaling, receives_audio, sees_video
from tests.cluster import Cluster, NatsServer, cluster_of
from tests.netns import network, socket_url
from tests.phones import TONE_HZ, caller_xml, free_udp_port, trunk_env, write_tone_pcap
from tests.servers import Server, create_postgres_database, drop_postgres_database, free_port, signed
from tests.webhooks import CallbackReceiver, Received, Receiver
from vrooms.client import Call, PatternSource

DIAL_IN, PIN = "+15550007777", "1357"


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    url = asyncio.run(create_postgres_database())
    yield url
    asyncio.run(drop_postgres_database(url))


@pytest.fixture(scope="module")
def dial_in_room(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A room made before the nodes start: their dial-in rule names it."""
    offline = Server(tmp_path_factory.mktemp("setup"), database_url=database_url)
    offline.cli("migrate")
    return str(json.loads(offline.cli("rooms", "create").stdout)["id"])


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, dial_in_room: str, trunk_port: int
) -> Iterator[Cluster]:
    """Three nodes, each with a SIP listener on the one carrier and rtpengine ports of its own."""
    rule = json.dumps({DIAL_IN: {"roomId": dial_in_room, "pin": PIN}})

    def phones(first_port: int) -> dict[str, str]:
        sip = trunk_env(trunk_port, f"127.0.0.1:{free_udp_port()}", no_answer=20)
        return {**sip, "VROOMS_SIP_DIALIN": rule, "VROOMS_RTPENGINE_PORT_RANGE": f"{first_port}-{first_port + 999}"}

    with cluster_of(tmp_path_factory.mktemp("cluster"), database_url) as started:
        started.node("a", env={"VROOMS_METRICS_LISTEN": f"127.0.0.1:{free_port()}", **phones(41000)}).start()
        started.node("b", env=phones(42000)).start()
        started.node("c", env=phones(43000)).start()
        started.wait_for_nodes(3)
        yield started


@pytest.fixture
async def worlds(cluster: Cluster) -> AsyncIterator[list[CallWorld]]:
    """One CallWorld per node: its SDK clients and calling clients go to that node."""
    made = [CallWorld(node) for node in cluster.nodes]
    yield made
    await asyncio.gather(*(world.close() for world in made))


RECORDING_FILES = "Microsoft.Communication.RecordingFileStatusUpdated"
INCOMING_CALL = "Microsoft.Communication.IncomingCall"
ROOM_CREATED = "Vrooms.Rooms.RoomCreated"
V = "api-version=2024-04-15"


def _sees(call: Call, others: int) -> bool:
    return len(call.participants) == others


def test_the_nodes_share_keys_tokens_and_the_ca(cluster: Cluster) -> None:
    """A key of node a opens node c (same CA file too); a token issued by b is accepted by a's call host."""
    a, b, c = cluster.nodes
    assert a.keys == b.keys == c.keys
    assert Path(a.ca_path).read_bytes() == Path(c.ca_path).read_bytes()
    identity = CommunicationIdentityClient.from_connection_string(
        f"endpoint={c.endpoint}/;accesskey={a.key}", connection_verify=a.ca_path
    )
    user = identity.create_user()
    assert identity.get_token(user, scopes=["voip"]).token


async def test_participants_joining_through_three_nodes_are_in_one_call(
    cluster: Cluster, worlds: list[CallWorld]
) -> None:
    """Joins through a, b and c meet in one call on one node; each hears the others' tones."""
    on_a, on_b, on_c = worlds
    alice, bob, carol = on_a.user(), on_b.user(), on_c.user()
    room_id = on_b.room({alice: "Presenter", bob: "Attendee", carol: "Attendee"})
    calls = [
        await on_a.join(alice, room_id, tone=440),
        await on_b.join(bob, room_id, tone=660),
        await on_c.join(carol, room_id),
    ]
    assert len({call.id for call in calls}) == 1
    for call in calls:
        await call.wait_until(partial(_sees, call, 2))
    await hears(calls[1], 440)
    await hears(calls[2], 440)
    await hears(calls[2], 660)
    await hears(calls[0], 660)
    assert cluster.holder(room_id) in ("a", "b", "c")


async def test_twenty_joiners_through_three_nodes_at_once_make_one_call(
    cluster: Cluster, worlds: list[CallWorld]
) -> None:
    """The race for an idle room's placement: 20 joins at once through a, b and c, one call."""
    members = [worlds[0].user() for _ in range(20)]
    room_id = worlds[0].room(dict.fromkeys(members, "Attendee"))
    clients = [worlds[i % 3].client(member) for i, member in enumerate(members)]
    calls = await asyncio.gather(*(client.join(room_id) for client in clients))
    assert len({call.id for call in calls}) == 1
    holders = [node for node in cluster.status()["nodes"] if room_id in node["rooms"]]
    assert len(holders) == 1
    cluster.wait_for(lambda: cluster.participants_on(holders[0]["name"]) == 20, "20 in the holder's call", 60)
    for call in calls:
        await call.wait_until(partial(_sees, call, 19), timeout=30)


async def test_a_caller_at_a_node_that_does_not_hold_the_room_is_carried_to_the_one_that_does(
    cluster: Cluster, worlds: list[CallWorld], carrier: Any, tmp_path: Path, dial_in_room: str
) -> None:
    """A dial-in reaches a node whose room another node holds: bridged there, PIN, heard, removed."""
    on_a = worlds[0]
    presenter = on_a.user()
    on_a.set_role(dial_in_room, presenter, "Presenter")
    call = await on_a.join(presenter, dial_in_room)
    holder = cluster.holder(dial_in_room)
    reached = next(node for node in cluster.nodes if node.extra_env["VROOMS_NODE_NAME"] != holder)
    tone = str(write_tone_pcap(tmp_path / "tone.pcap", seconds=8))
    caller = carrier(caller_xml(DIAL_IN, PIN + "#", then_play=tone), call=reached.extra_env["VROOMS_SIP_LISTEN"])
    await call.wait_until(lambda: any(p.get("phoneNumber") for p in call.participants.values()), 30)
    await hears(call, TONE_HZ)
    phone_id = next(pid for pid, p in call.participants.items() if p.get("phoneNumber"))
    assert call.participants[phone_id]["phoneNumber"] == "+15557654321"
    await call.remove_participant(phone_id)
    assert caller.finish() == 0, caller.errors()  # the BYE came back through the bridge
    assert "bridged to node " + str(holder) in reached.log_path.read_text()


async def test_an_app_answers_through_any_node_a_caller_ringing_on_another(cluster: Cluster, carrier: Any) -> None:
    """A caller rings at b (no dial-in rule: IncomingCall for apps); the app answers through a and
    works the answered caller's connection through c: the context and the connection id name b,
    and every request reaches b, where the caller's dialog is."""
    a, b, c = cluster.nodes
    hook, receiver = Receiver().start(), CallbackReceiver().start()
    a.cli("events", "subscribe", "incoming", hook.url, "--type", INCOMING_CALL)
    try:
        caller = carrier(caller_xml("+15550004444", "2468#", pause_ms=2500), call=b.extra_env["VROOMS_SIP_LISTEN"])
        [ringing] = await hook.wait_for(1, INCOMING_CALL)
        context = ringing.data["incomingCallContext"]
        assert context.startswith("~b.")
        async with _app(a) as app, _app(c) as other_app:
            answered = await app.answer_call(context, receiver.url, operation_context="answered")
            assert str(answered.call_connection_id).startswith("~b.")
            await receiver.wait_for_type("CallConnected")
            lobby = other_app.get_call_connection(str(answered.call_connection_id))
            phone = PhoneNumberIdentifier("+15557654321")
            await lobby.start_recognizing_media(
                "dtmf", phone, dtmf_max_tones_to_collect=8, dtmf_stop_tones=[DtmfTone.POUND], initial_silence_timeout=20
            )
            pin = await receiver.wait_for_type("RecognizeCompleted")
            assert pin.data["dtmfResult"]["tones"] == ["two", "four", "six", "eight"]
            await lobby.hang_up(is_for_everyone=True)
        assert caller.finish() == 0, caller.errors()
    finally:
        a.cli("events", "unsubscribe", "incoming")
        hook.stop()
        receiver.stop()


async def test_a_role_change_and_a_revocation_through_another_node_reach_the_call_within_a_second(
    cluster: Cluster, worlds: list[CallWorld]
) -> None:
    """Roster and token changes made through a node that does not hold the call take effect in it."""
    on_a = worlds[0]
    speaker, revoked = on_a.user(), on_a.user()
    room_id = on_a.room({speaker: "Presenter", revoked: "Attendee"})
    call = await on_a.join(speaker, room_id)
    other = await on_a.join(revoked, room_id)
    holder = cluster.holder(room_id)
    through = next(world for world in worlds if world.server.extra_env["VROOMS_NODE_NAME"] != holder)
    started = time.monotonic()
    through.set_role(room_id, speaker, "Attendee")
    await call.wait_until(lambda: call.role == "Attendee", timeout=1.0)
    role_seconds = time.monotonic() - started
    started = time.monotonic()
    through.identity.revoke_tokens(CommunicationUserIdentifier(revoked.raw_id))
    await disconnected(other, timeout=1.0)
    print(f"through a node that is not {holder}: a role change in {role_seconds:.3f} s, ", end="")
    print(f"a revocation in {time.monotonic() - started:.3f} s")


async def test_an_invitation_rings_a_user_connected_to_another_node(cluster: Cluster, worlds: list[CallWorld]) -> None:
    """The invitee's app is connected to a node that does not hold the call: it rings there, a
    decline made there reaches the inviter, and an accepted invitation joins the same call."""
    presenter, invitee = worlds[0].user(), worlds[0].user()
    room_id = worlds[0].room({presenter: "Presenter", invitee: "Attendee"})
    call = await worlds[0].join(presenter, room_id)
    holder = cluster.holder(room_id)
    elsewhere = next(world for world in worlds if world.server.extra_env["VROOMS_NODE_NAME"] != holder)
    client = await elsewhere.client(invitee).connect()
    await cluster_sees_every_node(call)
    assert await call.invite(invitee.raw_id) == 1
    ringing = await asyncio.wait_for(client.invitations.get(), 5)
    await ringing.decline()
    await call.wait_until(lambda: any(e["type"] == "inviteDeclined" for e in call.events))
    assert await call.invite(invitee.raw_id) == 1
    joined = await (await asyncio.wait_for(client.invitations.get(), 5)).accept()
    assert joined.id == call.id
    await call.wait_until(partial(_sees, call, 1))


async def cluster_sees_every_node(call: Call) -> None:
    """Until the call's node knows of three nodes (its agent's view, as the hello shows it)."""
    await call.wait_until(lambda: len(call.client.endpoints) >= 3, timeout=10)


async def test_a_client_flooding_joins_through_a_node_is_refused_beyond_its_budget(
    cluster: Cluster, worlds: list[CallWorld]
) -> None:
    """Each routed join costs a placement lookup: a connection gets a burst of them, then RateLimited."""
    member = worlds[0].user()
    room_id = worlds[0].room({member: "Attendee"})
    async with raw_signaling(cluster.nodes[1], member.token) as ws:
        assert json.loads(await ws.recv())["type"] == "hello"
        for i in range(30):
            await ws.send(json.dumps({"type": "join", "id": i, "roomId": room_id, "sdp": "v=0"}))
        codes: list[str] = []
        while len(codes) < 30:
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if message.get("type") == "error":
                codes.append(message["code"])
    assert codes.count("RateLimited") >= 15, codes


async def test_metrics_of_a_node_sum_its_processes(cluster: Cluster, worlds: list[CallWorld]) -> None:
    """/metrics (Prometheus text) of node a: REST latency from its workers, calls and media from
    its call host, the outbox from its dispatcher; on the address the setting names, without a key."""
    a = cluster.nodes[0]
    member = worlds[0].user()
    await worlds[0].join(member, worlds[0].room({member: "Attendee"}))
    with a.client() as client:
        assert client.get("/rooms/nope", headers={"x": "y"}).status_code == 401
    text = httpx.get(f"http://{a.extra_env['VROOMS_METRICS_LISTEN']}/metrics").text
    assert 'vrooms_http_request_seconds_count{method="GET",route="/rooms/{roomId}",status="401"}' in text
    assert "vrooms_media_up 1.0" in text
    assert 'vrooms_signaling_joins_total{to="this node"}' in text or 'to="another node"' in text
    assert "vrooms_outbox_lag_seconds" in text
    assert "vrooms_calls " in text


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster for one test (it kills or drains nodes)."""
    database_url = asyncio.run(create_postgres_database())
    with cluster_of(tmp_path, database_url) as started:
        yield started
    asyncio.run(drop_postgres_database(database_url))


def _back(call: Call, call_id: str, before: str) -> bool:
    """In the call again as a new participation (the one before went with the node)."""
    return call.state == "Connected" and call.id == call_id and call.participant_id != before


async def test_kill_9_of_the_node_holding_the_call_keeps_the_call(own_cluster: Cluster) -> None:
    """Every process of the room's node killed: each participant is back in the same call, on a survivor."""
    own_cluster.start("a", "b", "c")
    worlds = [CallWorld(node) for node in own_cluster.nodes]
    try:
        members = [worlds[0].user() for _ in range(3)]
        room_id = worlds[0].room({members[0]: "Presenter", members[1]: "Attendee", members[2]: "Attendee"})
        calls = [
            await world.join(member, room_id, tone=440 + 220 * i)
            for i, (world, member) in enumerate(zip(worlds, members, strict=True))
        ]
        call_id = calls[0].id
        await hears(calls[1], 440)
        holder = own_cluster.holder(room_id)
        victim = next(node for node in own_cluster.nodes if node.extra_env["VROOMS_NODE_NAME"] == holder)
        await calls[2].mute()
        await calls[0].start_video(PatternSource())
        await sees_video(calls[1], calls[0].participant_id)
        before = [call.participant_id for call in calls]
        killed = time.monotonic()
        victim.kill_everything()
        for call, participant_id in zip(calls, before, strict=True):
            await call.wait_until(partial(_back, call, call_id, participant_id), timeout=20)
        back = time.monotonic() - killed
        for call in calls:
            await call.wait_until(partial(_sees, call, 2), timeout=10)
        await hears(calls[1], 440)
        await hears(calls[0], 660)
        assert calls[2].muted
        await sees_video(calls[1], calls[0].participant_id)  # the camera is published again
        now = own_cluster.holder(room_id)
        print(f"node {holder} killed: everyone back in call {call_id} after {back:.2f} s, on node {now}")
        assert now not in (None, holder)
    finally:
        await asyncio.gather(*(world.close() for world in worlds))


async def test_a_drain_moves_three_calls_and_stops_the_node(own_cluster: Cluster) -> None:
    """``vrooms drain`` on the node holding three calls: each call goes on elsewhere, the node stops."""
    (drained,) = own_cluster.start("a")  # the three calls start on a: nowhere else to go

    world = CallWorld(drained)
    try:
        rooms, calls = [], []
        for _ in range(3):
            members = [world.user(), world.user()]
            room_id = world.room(dict.fromkeys(members, "Attendee"))
            rooms.append(room_id)
            # Joined through node a's own call host (relayed connections would follow the room anyway).
            calls += [await world.join(members[0], room_id, tone=500), await world.join(members[1], room_id)]
        assert all(own_cluster.holder(room_id) == "a" for room_id in rooms)
        own_cluster.start("b")
        before = {call: (call.id, call.participant_id) for call in calls}
        result = drained.cli("drain")
        assert "moved 3 call(s)" in result.stdout
        for call, (call_id, participant_id) in before.items():
            await call.wait_until(partial(_back, call, call_id, participant_id), timeout=15)
        assert all(own_cluster.holder(room_id) == "b" for room_id in rooms)
        # Stopped as by SIGTERM (uvicorn re-raises the signal once its graceful shutdown is done).
        assert drained.process is not None and drained.process.wait(timeout=30) in (0, -signal.SIGTERM)
        await hears(calls[1], 500)
    finally:
        await world.close()


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats", free_port())
    server.start()
    yield server
    server.stop()


async def test_calls_go_on_while_nats_restarts_and_placement_resumes(tmp_path: Path, own_nats: NatsServer) -> None:
    """Media never depends on the bus: a call through two nodes goes on while NATS is down; once it
    is back, the nodes are in the registry again, the call's lease is renewed and new rooms are placed."""
    database_url = await create_postgres_database()
    try:
        with cluster_of(tmp_path / "nodes", database_url, nats_url=own_nats.url) as cluster:
            cluster.start("a", "b")
            worlds = [CallWorld(node) for node in cluster.nodes]
            try:
                alice, bob = worlds[0].user(), worlds[0].user()
                room_id = worlds[0].room({alice: "Attendee", bob: "Attendee"})
                calls = [await worlds[0].join(alice, room_id, tone=500), await worlds[1].join(bob, room_id, tone=700)]
                holder = cluster.holder(room_id)
                own_nats.stop()
                await receives_audio(calls[1], 3.0)  # media time, with the bus down
                await hears(calls[1], 500)
                await hears(calls[0], 700)
                own_nats.start()
                cluster.wait_for_nodes(2)
                cluster.wait_for(lambda: cluster.holder(room_id) == holder, "the call's lease renewed")
                carol, dave = worlds[1].user(), worlds[1].user()
                other_room = worlds[1].room({carol: "Attendee", dave: "Attendee"})
                more = [await worlds[1].join(carol, other_room, tone=900), await worlds[0].join(dave, other_room)]
                assert more[0].id == more[1].id
                await hears(more[1], 900)
                assert all(call.state == "Connected" for call in calls)
            finally:
                await asyncio.gather(*(world.close() for world in worlds))
    finally:
        await drop_postgres_database(database_url)


async def test_three_nodes_in_network_namespaces_one_call_and_a_failover(tmp_path: Path) -> None:
    """Each node in a network namespace of its own, on an address of its own (nothing shared but
    PostgreSQL's socket and NATS on the bridge): joins through all three meet, hear each other,
    and come back on a survivor when the holder's every process is killed."""
    database_url = await create_postgres_database()
    try:
        with network() as net:
            nats = NatsServer(tmp_path / "nats", free_port(), host=net.gateway)
            nats.start()
            try:
                with cluster_of(tmp_path / "nodes", socket_url(database_url), nats_url=nats.url) as cluster:
                    for name in ("a", "b", "c"):
                        prefix, address = net.host()
                        cluster.node(name, host=address, prefix=prefix).start()
                    cluster.wait_for_nodes(3)
                    assert {node["advertise"] for node in cluster.status()["nodes"]} == {
                        node.endpoint for node in cluster.nodes
                    }
                    await _one_call_then_failover(cluster)
            finally:
                nats.stop()
    finally:
        await drop_postgres_database(database_url)


async def _one_call_then_failover(cluster: Cluster) -> None:
    worlds = [CallWorld(node) for node in cluster.nodes]
    try:
        members = [worlds[0].user() for _ in range(3)]
        room_id = worlds[1].room(dict.fromkeys(members, "Attendee"))
        calls = [
            await world.join(member, room_id, tone=440 + 220 * i)
            for i, (world, member) in enumerate(zip(worlds, members, strict=True))
        ]
        assert len({call.id for call in calls}) == 1
        await hears(calls[2], 440)
        await hears(calls[0], 880)
        holder = cluster.holder(room_id)
        victim = next(node for node in cluster.nodes if node.extra_env["VROOMS_NODE_NAME"] == holder)
        before = [call.participant_id for call in calls]
        victim.kill_everything()
        for call, participant_id in zip(calls, before, strict=True):
            await call.wait_until(partial(_back, call, calls[0].id, participant_id), timeout=20)
        survivors = [call for call, world in zip(calls, worlds, strict=True) if world.server is not victim]
        await hears(survivors[0], 440 + 220 * calls.index(survivors[1]))
    finally:
        await asyncio.gather(*(world.close() for world in worlds))


def _updated_after(receiver: CallbackReceiver, seen: int, event: Received) -> bool:
    """A ParticipantsUpdated that came after the kill and lists both participants (back)."""
    return receiver.events.index(event) >= seen and len(event.data["participants"]) == 2


def _app(node: Server) -> CallAutomationClient:
    return CallAutomationClient.from_connection_string(node.connection_string, connection_verify=node.ca_path)


async def test_the_call_page_comes_back_through_another_node_when_its_own_is_killed(
    own_cluster: Cluster, launch: Launch
) -> None:
    """The browser call UI, loaded from node a and joined there, learns of node b once b joins the
    cluster; when a is killed it says "Reconnecting…", comes back through b, and is heard again."""
    (a,) = own_cluster.start("a")
    on_a = CallWorld(a)
    member, other = on_a.user(), on_a.user()
    room_id = on_a.room({member: "Presenter", other: "Attendee"})
    page = await open_call(await launch(tone=500), on_a, member, room_id, "Page")
    await join(page)
    (b,) = own_cluster.start("b")
    on_b = CallWorld(b)
    try:
        peer = await on_b.join(other, room_id, tone=700)
        await expect(page.locator("figure.tile")).to_have_count(2, timeout=20_000)
        await hears(peer, 500)
        await page.wait_for_function(f"window.vroomsUi.client.endpoints.includes('{b.endpoint}')", timeout=10_000)
        before = peer.participant_id
        a.kill_everything()
        await expect(page.get_by_role("status").first).to_have_text("Reconnecting…", timeout=20_000)
        await expect(page.get_by_role("status").first).to_have_text("Connected", timeout=30_000)
        await peer.wait_until(partial(_back, peer, peer.id, before), timeout=30)
        await expect(page.locator("figure.tile")).to_have_count(2, timeout=20_000)
        await hears(peer, 500)
    finally:
        await asyncio.gather(on_a.close(), on_b.close())


async def test_kill_9_of_the_holder_with_a_recording_and_an_automation_connection_running(
    own_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recordings in a folder every node mounts, and a Call Automation app that connected through a
    node that does not hold the room and works through a third. The holder is killed: everyone
    is back in the same call; the connection keeps its callConnectionId, answers through a survivor
    and its callbacks go on (never CallDisconnected); the recording goes on in a second segment,
    its one document has both parts (the tone before and after the kill) and every surviving
    node serves it."""
    shared = tmp_path / "recordings"
    for name in ("a", "b", "c"):
        own_cluster.node(name, env={"VROOMS_RECORDINGS_DIR": str(shared)}).start()
    own_cluster.wait_for_nodes(3)
    monkeypatch.setattr(recording_url_validator, "ALLOWED_HOST_SUFFIXES", ("127.0.0.1",))
    worlds = [CallWorld(node) for node in own_cluster.nodes]
    receiver, files = CallbackReceiver().start(), Receiver().start()
    own_cluster.nodes[0].cli("events", "subscribe", "recordings", files.url, "--type", RECORDING_FILES)
    try:
        alice, bob = worlds[0].user(), worlds[0].user()
        room_id = worlds[0].room({alice: "Attendee", bob: "Attendee"})
        calls = [await worlds[0].join(alice, room_id, tone=440), await worlds[1].join(bob, room_id)]
        await hears(calls[1], 440)
        holder = own_cluster.holder(room_id)
        others = [node for node in own_cluster.nodes if node.extra_env["VROOMS_NODE_NAME"] != holder]
        victim = next(node for node in own_cluster.nodes if node not in others)
        async with _app(others[0]) as app, _app(others[1]) as other_app:
            properties = await app.connect_call(callback_url=receiver.url, room_id=room_id)
            connection_id = properties.call_connection_id
            assert connection_id is not None and connection_id.startswith(f"{room_id}.")
            await receiver.wait_for_type("CallConnected", where=lambda e: e.data["callConnectionId"] == connection_id)
            listed = other_app.get_call_connection(connection_id).list_participants()
            assert len([p async for p in listed]) == 2
            started = await app.start_recording(room_id=room_id, recording_state_callback_url=receiver.url)
            recording_id = str(started.recording_id)
            await receives_audio(calls[1], 3)
            before = [call.participant_id for call in calls]
            seen = len(receiver.events)
            victim.kill_everything()
            for call, participant_id in zip(calls, before, strict=True):
                await call.wait_until(partial(_back, call, calls[0].id, participant_id), timeout=20)
            await hears(calls[1], 440)
            connection = other_app.get_call_connection(connection_id)
            assert (await connection.get_call_properties()).call_connection_id == connection_id
            await receiver.wait_for_type("ParticipantsUpdated", where=partial(_updated_after, receiver, seen))
            await receives_audio(calls[1], 3)
            await app.stop_recording(recording_id)
            [finished] = await files.wait_for(1, RECORDING_FILES, timeout=60)
            [chunk] = finished.data["recordingStorageInfo"]["recordingChunks"]
            state = json.loads((shared / recording_id / "state.json").read_text())
            assert len(state["segments"]) == 2, state["segments"]
            assert "CallDisconnected" not in receiver.types()
            for node in others:  # every surviving node serves it, from the shared folder
                url = re.sub(r"^https://[^/]+", node.endpoint, chunk["contentLocation"])
                async with _app(node) as node_app:  # the SDK signs for the host it was made for
                    download: Any = await node_app.download_recording(url)
                    levels = tone_per_second(bytes(await download.read()), 440)
                assert len([level for level in levels if level > HEARD]) >= 5, levels
    finally:
        receiver.stop()
        files.stop()
        await asyncio.gather(*(world.close() for world in worlds))


async def test_the_dispatchers_of_three_nodes_share_the_outbox_and_a_lost_ones_share_is_taken(
    own_cluster: Cluster,
) -> None:
    """Six webhook subscriptions, three nodes: each node's dispatcher delivers some of them (its
    database session holds their locks); every event reaches every subscriber once, also those
    written after a node was killed (its subscriptions were taken over). (Order is per call or room:
    each of these events is of another room.)"""
    a, b, c = own_cluster.start("a", "b", "c")
    hooks = [Receiver().start() for _ in range(6)]
    try:
        for i, hook in enumerate(hooks):
            a.cli("events", "subscribe", f"hook{i}", hook.url, "--type", ROOM_CREATED)
        await _subscription_holders(a, 3)
        rooms = [signed(node, "POST", f"/rooms?{V}", {}).json()["id"] for node in (a, b, c) * 4]
        for hook in hooks:
            await hook.wait_for(len(rooms), ROOM_CREATED)
        c.kill_everything()
        rooms += [signed(node, "POST", f"/rooms?{V}", {}).json()["id"] for node in (a, b) * 4]
        for hook in hooks:
            received = await hook.wait_for(len(rooms), ROOM_CREATED, timeout=60)
            assert sorted(event.data["roomId"] for event in received) == sorted(rooms)  # each once
        await _subscription_holders(a, 2)
    finally:
        for hook in hooks:
            hook.stop()


async def _subscription_holders(node: Server, count: int) -> None:
    """Until ``count`` database sessions (one per node's dispatcher) hold subscription locks."""
    connection = await asyncpg.connect(node.database_url)
    try:
        deadline = time.monotonic() + 30
        while True:
            rows = await connection.fetch(
                "SELECT DISTINCT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = 7"
                " AND mode = 'ExclusiveLock'"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            if len(rows) == count:
                return
            assert time.monotonic() < deadline, f"{len(rows)} dispatchers hold subscriptions, not {count}"
            await asyncio.sleep(0.1)
    finally:
        await connection.close()
