"""Helpers for room-call tests: users, rooms and calling clients against a real server."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import websockets
from azure.communication.identity import CommunicationIdentityClient, CommunicationTokenScope
from azure.communication.rooms import CommunicationUserIdentifier, RoomParticipant, RoomsClient

from tests.servers import Server
from vrooms.client import Call, CallClient, ToneSource

HEARD = 0.02  # tone amplitude at a receiver that clearly hears it (a 0.3 tone arrives near 0.08)
SILENT = 0.006  # and one that does not (codec noise stays near 0.0005)


@dataclass(frozen=True)
class Member:
    raw_id: str
    token: str


@dataclass
class CallWorld:
    server: Server
    clients: list[CallClient] = field(default_factory=list)

    def __post_init__(self) -> None:
        conn = self.server.connection_string
        self.rooms = RoomsClient.from_connection_string(conn, connection_verify=self.server.ca_path)
        self.identity = CommunicationIdentityClient.from_connection_string(conn, connection_verify=self.server.ca_path)

    def user(self, scopes: tuple[str, ...] = ("voip",)) -> Member:
        user, token = self.identity.create_user_and_token(scopes=[CommunicationTokenScope(s) for s in scopes])
        return Member(user.properties["id"], token.token)

    def room(
        self, roster: dict[Member, str], *, valid_from: datetime | None = None, valid_until: datetime | None = None
    ) -> str:
        participants = [
            RoomParticipant(communication_identifier=CommunicationUserIdentifier(m.raw_id), role=role)
            for m, role in roster.items()
        ]
        return str(self.rooms.create_room(valid_from=valid_from, valid_until=valid_until, participants=participants).id)

    def set_role(self, room_id: str, member: Member, role: str) -> None:
        self.rooms.add_or_update_participants(
            room_id=room_id,
            participants=[
                RoomParticipant(communication_identifier=CommunicationUserIdentifier(member.raw_id), role=role)
            ],
        )

    def client(self, member: Member | str) -> CallClient:
        token = member.token if isinstance(member, Member) else member
        client = CallClient(self.server.endpoint, token, ca_file=self.server.ca_path)
        self.clients.append(client)
        return client

    async def join(self, member: Member, room_id: str, tone: float = 0.0, **kwargs: Any) -> Call:
        return await self.client(member).join(room_id, audio=ToneSource(tone), **kwargs)

    async def close(self) -> None:
        await asyncio.gather(*(client.close() for client in self.clients), return_exceptions=True)

    def records(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the server's SQLite database directly (the call records)."""
        with sqlite3.connect(self.server.data_dir / "vrooms.db") as db:
            return db.execute(sql, params).fetchall()


@contextlib.asynccontextmanager
async def own_world(folder: Path, env: dict[str, str], **server: Any) -> AsyncIterator[CallWorld]:
    """A server of the test's own (settings of its own in ``env``), and a world of users in it."""
    started = await asyncio.to_thread(Server(folder, extra_env=env, **server).start)
    world = CallWorld(started)
    try:
        yield world
    finally:
        await world.close()
        await asyncio.to_thread(started.stop)


async def hears(call: Call, frequency: float, timeout: float = 10.0) -> None:
    await call.wait_until(lambda: call.tone_level(frequency) > HEARD, timeout)


async def stops_hearing(call: Call, frequency: float, timeout: float = 5.0) -> None:
    await call.wait_until(lambda: call.remote_audio is not None and call.tone_level(frequency) < SILENT, timeout)


async def hears_nothing_of(call: Call, frequency: float, seconds: float) -> None:
    """For ``seconds`` (a window of observation, not a wait for something), ``frequency`` stays silent."""
    loudest = 0.0
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        loudest = max(loudest, call.tone_level(frequency))
        await asyncio.sleep(0.05)
    assert loudest < SILENT, f"heard {frequency} Hz at {loudest:.4f}"


async def disconnected(call: Call, timeout: float = 10.0) -> None:
    """Wait until the server has ended this participation (any reason)."""
    await call.wait_until(lambda: call.state == "Disconnected", timeout)


async def sees_video(call: Call, participant_id: str, timeout: float = 20.0) -> None:
    """Wait until ``call`` has received more than 15 frames of that participant's camera."""
    await call.wait_until(lambda: call.video_frames(participant_id) > 15, timeout)


def raw_signaling(server: Server, token: str, *, in_query: bool = False, **options: Any) -> Any:
    """A bare WebSocket to the public signaling endpoint, for messages no SDK would send.

    The token goes in an ``Authorization`` header, or with ``in_query`` in the query string
    as browsers send it. Use as ``async with raw_signaling(...) as ws``.
    """
    url = f"{server.endpoint.replace('https', 'wss', 1)}/calling/v1"
    tls = ssl.create_default_context(cafile=server.ca_path)
    if in_query:
        return websockets.connect(f"{url}?access_token={token}", ssl=tls, **options)
    return websockets.connect(url, ssl=tls, additional_headers={"Authorization": f"Bearer {token}"}, **options)


async def receives_audio(call: Call, seconds: float, timeout: float = 20.0) -> None:
    """Until ``seconds`` more of the call's audio has arrived (media time, 20 ms frames)."""
    sink = call.remote_audio
    assert sink is not None, "the call has no audio yet"
    until = sink.frames + int(seconds * 50)
    await call.wait_until(lambda: sink.frames >= until, timeout)
