"""The calling SDK's signed-in user: ``call = await CallClient(endpoint, token).join(room_id)``.

A ``CallClient`` is one signaling connection: it receives invitations, joins calls (``call.Call``)
and, in a cluster, knows the nodes it may connect through again (``reconnect``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Protocol

from aiortc import MediaStreamTrack

from vrooms.client.call import Call
from vrooms.client.signaling import CallError, Signaling

_MEDIA_WAIT_SECONDS = 30.0


class IncomingCall:
    """An invitation to a room call: it rings until accepted, declined or cancelled."""

    def __init__(self, client: CallClient, invitation: dict[str, Any]) -> None:
        self.client = client
        self.room_id: str = invitation["roomId"]
        self.call_id: str = invitation["callId"]
        self.caller: dict[str, Any] = invitation["from"]
        self.state = "Ringing"

    async def accept(self, **join_options: Any) -> Call:
        call = await self.client.join(self.room_id, **join_options)
        self.state = "Accepted"
        return call

    async def decline(self) -> None:
        await self.client.signaling.request({"type": "declineInvite", "callId": self.call_id})
        self.state = "Declined"


class HasToken(Protocol):
    """What the Identity SDK returns (``azure.core.credentials.AccessToken``)."""

    token: str


def _token_text(token: str | HasToken) -> str:
    """The access token's text, from a string or the Identity SDK's ``AccessToken``."""
    text = token if isinstance(token, str) else getattr(token, "token", None)
    if not isinstance(text, str):
        raise TypeError(
            "CallClient needs the user's access token: the JWT string or the AccessToken the Identity SDK "
            f"returns (create_user_and_token / get_token), not {type(token).__name__}."
        )
    return text


class CallClient:
    """A signed-in user: receives invitations and joins room calls."""

    def __init__(
        self,
        endpoint: str,
        token: str | HasToken,
        *,
        ca_file: str | None = None,
        user_agent: str = "vrooms-python/1",
    ) -> None:
        self.endpoint = endpoint
        self.token = _token_text(token)
        self.ca_file = ca_file
        self.user_agent = user_agent
        self.signaling = Signaling(self._on_event)
        self.invitations: asyncio.Queue[IncomingCall] = asyncio.Queue()
        self.media_available = asyncio.Event()
        self.call: Call | None = None
        self._connected = False
        # Where to connect again if this endpoint goes (a cluster names its nodes in the hello).
        self.endpoints = [endpoint]
        self.current_endpoint = endpoint

    @property
    def user_id(self) -> str:
        return str(self.signaling.hello.get("userId", ""))

    async def connect(self) -> CallClient:
        if not self._connected:
            await self.signaling.open(self.endpoint, self.token, ca_file=self.ca_file, user_agent=self.user_agent)
            self._connected = True
            self._learn_endpoints()
        return self

    async def reconnect(self) -> None:
        """A new signaling connection, through the first of the known endpoints that answers."""
        failure: Exception = CallError("NotConnected", "No endpoint answered.")
        for endpoint in self.endpoints:
            signaling = Signaling(self._on_event)
            try:
                await signaling.open(endpoint, self.token, ca_file=self.ca_file, user_agent=self.user_agent)
            except (OSError, TimeoutError, CallError) as exc:
                failure = exc
                continue
            self.signaling = signaling
            self.current_endpoint = endpoint
            self._learn_endpoints()
            return
        raise failure

    async def move_to(self, nodes: list[str]) -> None:
        """The call moved: come back through these nodes first; leave this one if it is not among them."""
        self.endpoints = [*nodes, *(e for e in self.endpoints if e not in nodes)]
        if self.current_endpoint not in nodes:
            await self.signaling.close()

    @property
    def clustered(self) -> bool:
        """Whether the server is a cluster (its hello names nodes): a call outlives a node there."""
        return len(self.endpoints) > 1 or bool(self.signaling.hello.get("nodes"))

    def _learn_endpoints(self, nodes: Any = None) -> None:
        """The nodes of a cluster: from the hello, or a later ``nodes`` message (a node joined or left)."""
        named = [
            str(n)
            for n in (nodes if nodes is not None else self.signaling.hello.get("nodes")) or []
            if isinstance(n, str)
        ]
        self.endpoints = [*self.endpoints, *(node for node in named if node not in self.endpoints)]

    async def close(self) -> None:
        if self.call is not None:
            self.call._leaving = True  # closing is leaving: the call does not come back
            await self.call.close_media()
        await self.signaling.close()

    def _on_event(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "nodes":
            self._learn_endpoints(message.get("nodes"))
        if kind == "invite":
            self.invitations.put_nowait(IncomingCall(self, message))
        elif kind == "mediaAvailable":
            if message.get("available"):
                self.media_available.set()
            else:
                self.media_available.clear()
        if self.call is not None:
            self.call.handle(message)

    async def join(
        self,
        room_id: str,
        *,
        audio: MediaStreamTrack | None = None,
        display_name: str = "",
        wait_for_media: float = _MEDIA_WAIT_SECONDS,
    ) -> Call:
        """Join the room's call, sending ``audio`` (default: silence) if the role allows it.

        If the call host or the media server is restarting, or (a cluster) the room cannot be
        placed at this moment, tries again for up to ``wait_for_media`` seconds.
        """
        deadline = time.monotonic() + wait_for_media
        while True:
            try:
                await self.connect()
            except CallError as error:
                if error.code != "CallsUnavailable" or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
                continue
            call = Call(self, room_id)
            self.call = call
            try:
                await call.start(audio, display_name)
                return call
            except CallError as error:
                await call.close_media()
                self.call = None
                if error.code not in ("MediaUnavailable", "RoomOnAnotherNode") or time.monotonic() > deadline:
                    raise
                if error.code == "MediaUnavailable":
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.media_available.wait(), max(0.1, deadline - time.monotonic()))
                await asyncio.sleep(0.1)  # a cluster placing the room (its bus back, a node gone): again
