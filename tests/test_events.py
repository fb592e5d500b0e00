"""Events: subscriptions with Azure's handshakes, delivery to receivers written for Azure, retries,
dead letters, restarts, a burst, and the events of a real room call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.eventgrid import SystemEventNames

from tests.calls import CallWorld
from tests.servers import Server, signed
from tests.webhooks import Receiver

V = "api-version=2026-11-25"
ROOMS_V = "api-version=2025-03-13"
# Event Grid's schedule, compressed: the policy is the same, the test need not wait minutes.
FAST_RETRIES = {"VROOMS_EVENT_RETRY_DELAYS_SECONDS": "[0.2, 0.4, 0.8]", "VROOMS_EVENT_MAX_ATTEMPTS": "5"}


@pytest.fixture(scope="module")
def events_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("events"), extra_env=FAST_RETRIES).start()
    yield server
    server.stop()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    started: list[Receiver] = []
    yield started
    for receiver in started:
        receiver.stop()


def subscribe(server: Server, name: str, receiver: Receiver, **fields: Any) -> httpx.Response:
    body = {"endpointUrl": receiver.url, **fields}
    return signed(server, "PUT", f"/eventSubscriptions/{name}?{V}", body)


def unsubscribe(server: Server, name: str) -> None:
    assert signed(server, "DELETE", f"/eventSubscriptions/{name}?{V}").status_code == 204


def create_room(server: Server, participants: dict[str, str] | None = None) -> str:
    body = {"participants": {raw: {"role": role} for raw, role in (participants or {}).items()}}
    response = signed(server, "POST", f"/rooms?{ROOMS_V}", body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def room_lifecycle(server: Server) -> str:
    """Four events for one room: created, updated, roster changed, deleted."""
    room = create_room(server)
    assert signed(server, "PATCH", f"/rooms/{room}?{ROOMS_V}", {"pstnDialOutEnabled": True}).status_code == 200
    roster = {"participants": {"8:acs:test_member": {"role": "Attendee"}}}
    assert signed(server, "PATCH", f"/rooms/{room}/participants?{ROOMS_V}", roster).status_code == 200
    assert signed(server, "DELETE", f"/rooms/{room}?{ROOMS_V}").status_code == 204
    return room


LIFECYCLE = [
    "Vrooms.Rooms.RoomCreated",
    "Vrooms.Rooms.RoomUpdated",
    "Vrooms.Rooms.RosterChanged",
    "Vrooms.Rooms.RoomDeleted",
]


def test_subscriptions_need_the_handshake_and_good_input(events_server: Server, receivers: list[Receiver]) -> None:
    good = Receiver().start()
    refusing = Receiver(validate=False).start()
    receivers += [good, refusing]
    for schema in ("EventGridSchema", "CloudEventSchemaV1_0"):
        response = subscribe(events_server, "no-handshake", refusing, eventDeliverySchema=schema)
        assert response.status_code == 400
        assert "validation handshake" in response.json()["error"]["message"]
    for body, target in [
        ({"endpointUrl": "ftp://example.org/x"}, "endpointUrl"),
        ({"endpointUrl": good.url, "eventDeliverySchema": "Xml"}, "eventDeliverySchema"),
        ({"endpointUrl": good.url, "includedEventTypes": []}, "includedEventTypes"),
        ({"endpointUrl": good.url, "maxEventsPerBatch": 0}, "maxEventsPerBatch"),
        ({"endpointUrl": good.url, "subjectBeginWith": "room/"}, "subjectBeginWith"),
    ]:
        response = signed(events_server, "PUT", f"/eventSubscriptions/ok-name?{V}", body)
        assert response.status_code == 400 and response.json()["error"]["target"] == target, response.text
    assert subscribe(events_server, "x", good).json()["error"]["target"] == "name"
    closed = Receiver()  # never started: nothing listens there
    assert subscribe(events_server, "nobody-home", closed).status_code == 400

    created = subscribe(events_server, "good-one", good, secret="s3cret")
    assert created.status_code == 201 and created.json()["hasSecret"] is True
    assert "s3cret" not in created.text
    assert subscribe(events_server, "good-one", good).status_code == 400  # name taken
    listed = signed(events_server, "GET", f"/eventSubscriptions?{V}").json()["value"]
    assert [s["name"] for s in listed] == ["good-one"]
    unsubscribe(events_server, "good-one")
    assert signed(events_server, "GET", f"/eventSubscriptions/good-one?{V}").status_code == 404


@pytest.mark.parametrize("schema", ["EventGridSchema", "CloudEventSchemaV1_0"])
async def test_room_events_reach_an_azure_style_handler_in_order(
    events_server: Server, receivers: list[Receiver], schema: str
) -> None:
    receiver = Receiver(secret="hook-secret").start()
    receivers.append(receiver)
    name = f"rooms-{schema.lower()[:5]}"
    assert subscribe(events_server, name, receiver, eventDeliverySchema=schema, secret="hook-secret").status_code == 201
    room = room_lifecycle(events_server)
    events = [e for e in await receiver.wait_for(4) if e.subject == f"room/{room}"]
    assert [e.type for e in events] == LIFECYCLE
    assert events[0].data["roomId"] == room and events[1].data["pstnDialOutEnabled"] is True
    assert events[2].data["upserted"] == [{"rawId": "8:acs:test_member", "role": "Attendee"}]
    assert receiver.bad_signatures == 0
    unsubscribe(events_server, name)


async def test_a_failing_receiver_still_gets_every_event_in_order(
    events_server: Server, receivers: list[Receiver]
) -> None:
    receiver = Receiver(fail_first=3).start()
    receivers.append(receiver)
    assert subscribe(events_server, "flaky", receiver, subjectBeginsWith="room/").status_code == 201
    rooms = [room_lifecycle(events_server) for _ in range(3)]
    await receiver.wait_for(12, timeout=30)
    for room in rooms:
        assert [e.type for e in receiver.events if e.subject == f"room/{room}"] == LIFECYCLE
    assert receiver.deliveries > 12  # the failures happened, and were retried
    assert max(e.delivery_count for e in receiver.events) >= 1
    unsubscribe(events_server, "flaky")


async def test_dead_letters_can_be_listed_and_replayed_from_the_cli(
    events_server: Server, receivers: list[Receiver]
) -> None:
    receiver = Receiver(status=400).start()  # 400: Event Grid dead-letters at once
    receivers.append(receiver)
    assert (
        subscribe(events_server, "rejecting", receiver, includedEventTypes=["Vrooms.Rooms.RoomCreated"]).status_code
        == 201
    )
    rooms = [create_room(events_server) for _ in range(3)]
    for _ in range(100):
        dead = signed(events_server, "GET", f"/eventSubscriptions/rejecting/deadLetters?{V}").json()["value"]
        if len(dead) == 3:
            break
        await asyncio.sleep(0.1)
    assert sorted(d["subject"] for d in dead) == sorted(f"room/{r}" for r in rooms)
    assert all(d["lastError"] == "HTTP 400" and d["attempts"] == 1 for d in dead)
    listed = events_server.cli("events", "deadletters", "--subscription", "rejecting")
    assert len(json.loads(listed.stdout)) == 3

    receiver.status = 200
    replayed = events_server.cli("events", "replay", "--subscription", "rejecting")
    assert "3" in replayed.stdout
    delivered = await receiver.wait_for(3)
    assert sorted(e.subject for e in delivered) == sorted(f"room/{r}" for r in rooms)
    unsubscribe(events_server, "rejecting")


async def test_pending_events_survive_kill_9_and_arrive_after_restart(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    server = Server(tmp_path, extra_env=FAST_RETRIES | {"VROOMS_EVENT_MAX_ATTEMPTS": "1000"}).start()
    receiver = Receiver().start()
    receivers.append(receiver)
    try:
        assert subscribe(server, "durable", receiver).status_code == 201
        receiver.status = 503  # the endpoint is down while the state changes
        rooms = [create_room(server) for _ in range(5)]
        server.kill()  # between the state change and any successful delivery
        receiver.status = 200
        server.start()
        delivered = await receiver.wait_for(5, timeout=30)
        assert sorted(e.subject for e in delivered) == sorted(f"room/{r}" for r in rooms)
    finally:
        server.stop()


async def test_a_burst_of_10000_events_is_delivered_while_the_api_answers(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    server = Server(tmp_path, workers=2).start()
    receiver = Receiver().start()
    receivers.append(receiver)
    try:
        assert (
            subscribe(server, "burst", receiver, includedEventTypes=["Vrooms.Rooms.RosterChanged"]).status_code == 201
        )
        rooms = [create_room(server) for _ in range(100)]
        api_answers: list[int] = []

        async def patch_all() -> None:
            # 100 rooms x 100 roster changes = 10,000 events, from 20 concurrent clients.
            queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
            for n in range(100):
                for room in rooms:
                    queue.put_nowait((room, n))

            async def worker() -> None:
                while not queue.empty():
                    room, n = queue.get_nowait()
                    body = {"participants": {f"8:acs:member_{n}": {"role": "Attendee"}}}
                    response = await asyncio.to_thread(
                        signed, server, "PATCH", f"/rooms/{room}/participants?{ROOMS_V}", body
                    )
                    assert response.status_code == 200

            await asyncio.gather(*(worker() for _ in range(20)))

        async def probe() -> None:
            while len(receiver.of_type("Vrooms.Rooms.RosterChanged")) < 10_000:
                response = await asyncio.to_thread(signed, server, "GET", f"/rooms/{rooms[0]}?{ROOMS_V}")
                api_answers.append(response.status_code)
                await asyncio.sleep(0.2)

        prober = asyncio.create_task(probe())
        await patch_all()
        events = await receiver.wait_for(10_000, "Vrooms.Rooms.RosterChanged", timeout=180)
        await prober
        assert len({e.id for e in events}) == 10_000
        assert api_answers and set(api_answers) == {200}
        for room in rooms[:5]:  # order per room holds: member_0 .. member_99
            members = [e.data["upserted"][0]["rawId"] for e in events if e.subject == f"room/{room}"]
            assert members == [f"8:acs:member_{n}" for n in range(100)]
    finally:
        server.stop()


async def test_a_real_call_produces_the_acs_call_events(events_server: Server, receivers: list[Receiver]) -> None:
    receiver = Receiver().start()
    receivers.append(receiver)
    assert (
        subscribe(
            events_server,
            "calls",
            receiver,
            includedEventTypes=[
                "Microsoft.Communication.CallStarted",
                "Microsoft.Communication.CallEnded",
                "Microsoft.Communication.CallParticipantAdded",
                "Microsoft.Communication.CallParticipantRemoved",
            ],
        ).status_code
        == 201
    )
    world = CallWorld(events_server)
    try:
        presenter, attendee, consumer = world.user(), world.user(), world.user()
        roles = {presenter.raw_id: "Presenter", attendee.raw_id: "Attendee", consumer.raw_id: "Consumer"}
        room = world.room({presenter: "Presenter", attendee: "Attendee", consumer: "Consumer"})
        calls = [await world.join(m, room) for m in (presenter, attendee, consumer)]
        await calls[1].leave()
        await calls[0].end_for_all()
        events = await receiver.wait_for(8, "Microsoft.Communication.Call")
    finally:
        await world.close()
    # The names azure-eventgrid knows these system events by.
    assert {e.type for e in events} == {
        SystemEventNames.AcsCallStartedEventName,
        SystemEventNames.AcsCallEndedEventName,
        SystemEventNames.AcsCallParticipantAddedEventName,
        SystemEventNames.AcsCallParticipantRemovedEventName,
    }
    types = [e.type.removeprefix("Microsoft.Communication.") for e in events]
    assert types[0] == "CallStarted" and types[-1] == "CallEnded"
    assert sorted(types[1:4]) == ["CallParticipantAdded"] * 3
    assert sorted(types[4:7]) == ["CallParticipantRemoved"] * 3
    call_id = calls[0].id
    for event in events:
        assert event.data["room"] == {"id": room} and event.data["isRoomsCall"] is True
        assert event.data["serverCallId"] == call_id and event.data["correlationId"] == call_id
        assert event.data["startedBy"]["communicationIdentifier"]["rawId"] == presenter.raw_id
        assert event.data["startedBy"]["role"] == "Presenter"
        if "user" in event.data:
            raw = event.data["user"]["communicationIdentifier"]["rawId"]
            assert event.data["user"]["role"] == roles[raw]
            assert event.data["participantId"] in {c.participant_id for c in calls}
            assert event.data["userAgent"] == "vrooms-python/1"
    removed = {
        e.data["user"]["communicationIdentifier"]["rawId"]: e.data["reason"]["phrase"]
        for e in events
        if e.type.endswith("Removed")
    }
    assert removed == {attendee.raw_id: "Left", presenter.raw_id: "CallEnded", consumer.raw_id: "CallEnded"}
    ended = events[-1].data
    assert ended["reason"]["phrase"] == "EndedForAll" and ended["callDurationInSeconds"] > 0
    assert ended["endedBy"]["communicationIdentifier"]["rawId"] == presenter.raw_id
    unsubscribe(events_server, "calls")


async def test_events_on_both_backends(server: Server, receivers: list[Receiver]) -> None:
    """The outbox, fan-out and batched outcome writes on SQLite and PostgreSQL alike."""
    receiver = Receiver().start()
    receivers.append(receiver)
    name = f"backend-{receiver.port}"
    assert subscribe(server, name, receiver, maxEventsPerBatch=10).status_code == 201
    rooms = [room_lifecycle(server) for _ in range(3)]
    events = await receiver.wait_for(12)
    for room in rooms:
        assert [e.type for e in events if e.subject == f"room/{room}"] == LIFECYCLE
    unsubscribe(server, name)
