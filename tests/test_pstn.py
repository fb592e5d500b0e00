"""Telephone legs against real peers: sipp as the carrier (digest auth), rtpengine, Janus, aiortc."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.calls import CallWorld, Member, hears
from tests.phones import PASSWORD, TONE_HZ, USER, Carrier, Scenario, free_udp_port, write_tone_pcap
from tests.servers import Server
from vrooms.client import Call

NUMBER = "+15551234567"


@pytest.fixture(scope="module")
def trunk_port() -> int:
    return free_udp_port()


@pytest.fixture(scope="module")
def phone_server(tmp_path_factory: pytest.TempPathFactory, trunk_port: int) -> Iterator[Server]:
    server = Server(
        tmp_path_factory.mktemp("pstn"),
        log_level="info",
        extra_env={
            "VROOMS_SIP_TRUNK_URI": f"sip:127.0.0.1:{trunk_port};transport=udp",
            "VROOMS_SIP_TRUNK_USERNAME": USER,
            "VROOMS_SIP_TRUNK_PASSWORD": PASSWORD,
            "VROOMS_SIP_CALLER_ID": "+15550000001",
            "VROOMS_SIP_LISTEN": f"127.0.0.1:{free_udp_port()}",
            "VROOMS_SIP_NO_ANSWER_SECONDS": "3",
        },
    ).start()
    yield server
    server.stop()


@pytest.fixture
async def world(phone_server: Server) -> AsyncIterator[CallWorld]:
    created = CallWorld(phone_server)
    yield created
    await created.close()


@pytest.fixture
def carrier(tmp_path: Path, trunk_port: int) -> Iterator[Any]:
    started: list[Carrier] = []

    def start(scenario: Scenario, **options: Any) -> Carrier:
        started.append(Carrier(tmp_path / f"carrier{len(started)}", trunk_port, scenario, **options))
        return started[-1]

    yield start
    for one in started:
        one.stop()


def _phone(call: Call) -> dict[str, Any] | None:
    return next((p for p in call.participants.values() if p.get("phoneNumber") == NUMBER), None)


def _left_reason(call: Call, participant_id: str) -> str | None:
    return next(
        (
            e["reason"]
            for e in call.events
            if e.get("type") == "participantLeft" and e["participantId"] == participant_id
        ),
        None,
    )


async def _presenter_room(world: CallWorld, *, pstn: bool = True) -> tuple[str, Member, Call]:
    presenter = world.user()
    room_id = world.room({presenter: "Presenter"})
    if pstn:
        world.rooms.update_room(room_id=room_id, pstn_dial_out_enabled=True)
    call = await world.join(presenter, room_id, tone=0.0)
    return room_id, presenter, call


async def test_presenter_dials_a_phone_that_plays_a_tone_everyone_hears(
    world: CallWorld, carrier: Any, tmp_path: Path
) -> None:
    pcap = write_tone_pcap(tmp_path / "tone.pcap", seconds=8)
    phone = carrier(Scenario(play=[str(pcap)]))
    _, _, call = await _presenter_room(world)
    participant_id = await call.dial_out(NUMBER)
    await call.wait_until(lambda: (_phone(call) or {}).get("state") == "Connected", 15)
    await hears(call, TONE_HZ, 10)
    await call.remove_participant(participant_id)
    assert phone.finish() == 0, phone.errors()
    await call.wait_until(lambda: _phone(call) is None)
