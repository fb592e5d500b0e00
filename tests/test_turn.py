"""coturn as vrooms configures and runs it (Debian's coturn, aioice's TURN client, for real):
credentials by the shared secret and nothing else, relays only to the deployment's media
servers, over UDP, TCP and TLS with the deployment's certificate."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from aioice import stun
from aioice.turn import TurnClientUdpProtocol, create_turn_endpoint
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

from tests.calls import hears, own_world
from tests.netns import network
from tests.servers import free_port
from vrooms.media.coturn import CoturnConfig, CoturnProcess, keep_coturn, stun_probe
from vrooms.media.interfaces import ice_interfaces
from vrooms.media.turn import TurnServers, credential
from vrooms.tls import ensure_certificates

SECRET = b"a-secret-only-vrooms-and-coturn-know"


class _Quiet(asyncio.DatagramProtocol):
    """What a relayed endpoint's user would be: here it only has to exist."""


@pytest.fixture(scope="module")
async def coturn(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[TurnServers, str, Path]]:
    """A coturn relaying only to this machine's first media address; (its servers, that address,
    the CA that signed its TLS certificate)."""
    folder = tmp_path_factory.mktemp("coturn")
    tls = ensure_certificates(folder / "tls", "127.0.0.1")
    media_ip = ice_interfaces()[0][1]
    port, tls_port = free_port(), free_port()
    config = CoturnConfig(
        folder, port, tls_port, (45000, 45200), SECRET, (media_ip,), (tls.server_cert, tls.server_key)
    )
    process = CoturnProcess("turnserver", config)
    await process.start()
    yield TurnServers("127.0.0.1", port, tls_port, SECRET), media_ip, tls.ca_cert
    await process.stop()


def _credentials(servers: TurnServers, expiry: int) -> tuple[str, str]:
    username = f"{expiry}:participant-1"
    return username, credential(servers.secret, username)


async def _allocate(servers: TurnServers, username: str | None, password: str | None) -> TurnClientUdpProtocol:
    loop = asyncio.get_running_loop()
    server = ("127.0.0.1", servers.port)
    _, client = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(server, username, password, lifetime=60, channel_refresh_time=50),
        remote_addr=server,
    )
    await client.connect()
    return client


async def test_a_participant_with_credentials_relays_to_the_media_servers_only(
    coturn: tuple[TurnServers, str, Path],
) -> None:
    servers, media_ip, _ = coturn
    [ice] = servers.ice_servers("participant-1", now=int(time.time()), until=int(time.time()) + 600)
    assert ice["urls"] == [
        f"turn:127.0.0.1:{servers.port}?transport=udp",
        f"turn:127.0.0.1:{servers.port}?transport=tcp",
        f"turns:127.0.0.1:{servers.tls_port}?transport=tcp",
    ]
    assert int(ice["username"].split(":")[0]) <= int(time.time()) + 600  # never past the room's window
    client = await _allocate(servers, ice["username"], ice["credential"])
    try:
        assert client.relayed_address is not None
        await client.channel_bind(0x4000, (media_ip, 20000))  # a media server: allowed
        for number, elsewhere in ((0x4001, "127.0.0.1"), (0x4002, "10.1.2.3"), (0x4003, "192.0.2.1")):
            with pytest.raises(stun.TransactionFailed, match="403"):
                await client.channel_bind(number, (elsewhere, 22))
    finally:
        await client.delete()


async def test_no_wrong_or_expired_credentials_get_no_relay(coturn: tuple[TurnServers, str, Path]) -> None:
    servers, _, _ = coturn
    now = int(time.time())
    expired = _credentials(servers, now - 1)
    forged = (f"{now + 600}:participant-1", credential(b"another secret", f"{now + 600}:participant-1"))
    for username, password in ((None, None), expired, forged):
        with pytest.raises(stun.TransactionFailed, match="401"):
            await _allocate(servers, username, password)


@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_turn_over_tcp_and_tls(coturn: tuple[TurnServers, str, Path], transport: str) -> None:
    """Where UDP is blocked: the allocation over TCP, or TLS checked against the deployment's CA."""
    servers, _, ca = coturn
    username, password = _credentials(servers, int(time.time()) + 600)
    port = servers.tls_port if transport == "tls" else servers.port
    assert port is not None
    context = ssl.create_default_context(cafile=str(ca)) if transport == "tls" else None
    relayed, _ = await create_turn_endpoint(
        _Quiet, ("127.0.0.1", port), username, password, ssl=context, transport="tcp"
    )
    try:
        assert relayed.get_extra_info("sockname") is not None
    finally:
        relayed.close()


async def test_coturn_answers_the_stun_probe_its_supervisor_sends(coturn: tuple[TurnServers, str, Path]) -> None:
    servers, _, _ = coturn
    await asyncio.wait_for(stun_probe("127.0.0.1", servers.port), 2)


async def test_a_server_with_turn_gives_joiners_credentials_its_coturn_relays_with(tmp_path: Path) -> None:
    """VROOMS_TURN=embedded: the call host runs coturn; checkRoom names it with credentials that
    end no later than the room; a peer connection made with them gathers a relay candidate, and
    participants whose clients use them hear each other."""
    env = {
        "VROOMS_TURN": "embedded",
        "VROOMS_TURN_PORT": str(free_port()),
        "VROOMS_TURN_TLS_PORT": str(free_port()),
        "VROOMS_TURN_RELAY_PORTS": "45300-45400",
    }
    async with own_world(tmp_path / "server", env) as world:
        speaker, listener = world.user(), world.user()
        room_id = world.room({speaker: "Attendee", listener: "Attendee"})
        await world.join(speaker, room_id, tone=440.0)
        call = await world.join(listener, room_id)
        await hears(call, 440.0)
        [ice] = call.ice_servers
        assert [u.split(":")[0] for u in ice.urls] == ["turn", "turn", "turns"]
        valid_until = datetime.fromisoformat(str(world.rooms.get_room(room_id=room_id).valid_until))
        assert int(str(ice.username).split(":")[0]) <= valid_until.timestamp()
        assert " typ relay " in await _offer([ice])


async def test_a_participant_whose_udp_is_blocked_joins_through_turn_over_tcp(tmp_path: Path) -> None:
    """A participant (aiortc) in a network namespace that drops every UDP datagram: its only way
    to the media server is the server's coturn over TCP; it and a participant outside hear each
    other."""
    with network() as net:
        prefix, _ = net.host()
        for chain in ("OUTPUT", "INPUT"):
            subprocess.run([*prefix, "iptables", "-A", chain, "-p", "udp", "-j", "DROP"], check=True)
        env = {
            "VROOMS_TURN": "embedded",
            "VROOMS_TURN_HOST": net.gateway,
            "VROOMS_TURN_PORT": str(free_port()),
            "VROOMS_TURN_TLS_PORT": str(free_port()),
            "VROOMS_TURN_RELAY_PORTS": "45500-45600",
        }
        async with own_world(tmp_path / "server", env, host=net.gateway) as world:
            inside, outside = world.user(), world.user()
            room_id = world.room({inside: "Attendee", outside: "Attendee"})
            here = await world.join(outside, room_id, tone=440.0)
            args = [world.server.endpoint, inside.token, world.server.ca_path, room_id, "880", "440"]
            behind = await asyncio.create_subprocess_exec(
                *prefix, sys.executable, "-m", "tests.ns_participant", *args, stdin=PIPE, stdout=PIPE
            )
            assert behind.stdout is not None and behind.stdin is not None
            try:
                report = json.loads(await asyncio.wait_for(behind.stdout.readline(), 60) or b"{}")
                assert report.get("heard") is True, "the participant behind the firewall heard nothing"
                await hears(here, 880.0, 20)
                behind.stdin.close()
                assert await asyncio.wait_for(behind.wait(), 20) == 0
            finally:
                if behind.returncode is None:
                    behind.kill()
                    await behind.wait()


async def test_behind_a_nat_janus_advertises_the_public_address_and_keeps_the_private_one(tmp_path: Path) -> None:
    """--public-ip (here TEST-NET-3's 203.0.113.7): the join's answer has host candidates with the
    public address, and still the interfaces' own, so a client on the same network connects."""
    env = {"VROOMS_PUBLIC_IP": "203.0.113.7"}
    async with own_world(tmp_path / "server", env) as world:
        speaker, listener = world.user(), world.user()
        room_id = world.room({speaker: "Attendee", listener: "Attendee"})
        await world.join(speaker, room_id, tone=440.0)
        client = await world.client(listener).connect()
        join = {"type": "join", "roomId": room_id, "displayName": "Lee", "sdp": await _offer([])}
        answer = (await client.signaling.request(join))["sdp"]
        candidates = [line for line in answer.splitlines() if line.startswith("a=candidate")]
        assert any(" 203.0.113.7 " in c for c in candidates), candidates
        assert any(f" {address} " in c for c in candidates for _, address in ice_interfaces()), candidates


async def test_a_hung_coturn_is_restarted(tmp_path: Path) -> None:
    """coturn stopped (SIGSTOP: it answers nothing) is found by the STUN heartbeat, ended and
    started again: a new process answers."""
    config = CoturnConfig(tmp_path, free_port(), None, (45700, 45800), SECRET, ("127.0.0.2",))
    process = CoturnProcess("turnserver", config)
    keeper = asyncio.create_task(keep_coturn(process))
    try:
        async with asyncio.timeout(15):
            while process.process is None or process.process.returncode is not None:
                await asyncio.sleep(0.05)
            await stun_probe("127.0.0.1", config.port)
            first = process.process.pid
            os.kill(first, signal.SIGSTOP)
            while process.process.pid == first:
                await asyncio.sleep(0.05)
            while True:
                try:
                    await asyncio.wait_for(stun_probe("127.0.0.1", config.port), 0.5)
                    break
                except TimeoutError:
                    continue
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper


async def _offer(ice_servers: list[RTCIceServer]) -> str:
    """An audio offer made with these ICE servers, its candidates gathered."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers))
    try:
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()
