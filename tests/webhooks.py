"""A webhook receiver written the way Azure's docs teach, to receive vrooms's events.

Event Grid schema: answers the SubscriptionValidationEvent and parses notifications with
``azure.eventgrid.EventGridEvent``. CloudEvents: answers the OPTIONS abuse-protection
handshake and parses with the ``cloudevents`` package. It runs in a thread (uvicorn) so
that tests can kill and restart the server under it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

import orjson
import uvicorn
import websockets
from azure.communication.callautomation.aio import CallAutomationClient
from azure.eventgrid import EventGridEvent, SystemEventNames
from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from cloudevents.core.formats.json import JSONFormat
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.servers import free_port


@dataclass
class Received:
    id: str
    type: str
    subject: str
    data: dict[str, Any]
    at: float
    schema: str
    delivery_count: int


@dataclass
class Receiver:
    port: int = field(default_factory=free_port)
    secret: str | None = None
    fail_first: int = 0  # answer 500 to this many deliveries first
    status: int = 200  # what to answer after that (e.g. 400 to force dead-lettering)
    validate: bool = True  # answer the handshakes
    events: list[Received] = field(default_factory=list)
    deliveries: int = 0
    bad_signatures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def of_type(self, prefix: str) -> list[Received]:
        with self._lock:
            return [e for e in self.events if e.type.startswith(prefix)]

    def _check_signature(self, request: Request, body: bytes) -> None:
        if self.secret is None:
            return
        parts = dict(p.split("=", 1) for p in request.headers.get("vrooms-signature", "").split(",") if "=" in p)
        expected = hmac.new(self.secret.encode(), f"{parts.get('t')}.".encode() + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts.get("v1", "")):
            self.bad_signatures += 1

    async def options(self, request: Request) -> Response:
        origin = request.headers.get("webhook-request-origin", "")
        if not self.validate or origin != "eventgrid.azure.net":
            return Response(status_code=403)
        return Response(headers={"WebHook-Allowed-Origin": origin})

    async def post(self, request: Request) -> Response:
        body = await request.body()
        if request.headers.get("aeg-event-type") == "SubscriptionValidation":
            [event] = [EventGridEvent.from_dict(e) for e in orjson.loads(body)]
            if not self.validate or event.event_type != SystemEventNames.EventGridSubscriptionValidationEventName:
                return Response(status_code=400)
            return JSONResponse({"validationResponse": event.data["validationCode"]})
        with self._lock:
            self.deliveries += 1
            if self.deliveries <= self.fail_first:
                return Response(status_code=500)
            if self.status != 200:
                return Response(status_code=self.status)
            self._check_signature(request, body)
            count = int(request.headers.get("aeg-delivery-count", "0"))
            content_type = request.headers.get("content-type", "")
            if content_type.startswith("application/json"):
                for e in (EventGridEvent.from_dict(item) for item in orjson.loads(body)):
                    self.events.append(Received(e.id, e.event_type, e.subject, dict(e.data), time.time(), "eg", count))
            else:
                if content_type.startswith("application/cloudevents-batch+json"):
                    parsed = [JSONFormat().read(None, orjson.dumps(item)) for item in orjson.loads(body)]
                else:
                    parsed = [from_http_event(HTTPMessage(headers=dict(request.headers), body=body))]
                for c in parsed:
                    data = c.get_data()
                    assert isinstance(data, dict)
                    self.events.append(
                        Received(c.get_id(), c.get_type(), c.get_subject() or "", data, time.time(), "ce", count)
                    )
        return Response(status_code=200)

    def start(self) -> Self:
        app = Starlette(
            routes=[Route("/hook", self.post, methods=["POST"]), Route("/hook", self.options, methods=["OPTIONS"])]
        )
        self._server = uvicorn.Server(uvicorn.Config(app, port=self.port, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        while not self._server.started:
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    async def wait_for(self, count: int, prefix: str = "", timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.of_type(prefix)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.of_type(prefix))} of {count} events arrived")
            await asyncio.sleep(0.05)
        return self.of_type(prefix)


@dataclass
class CallbackReceiver(Receiver):
    """An app's callback endpoint, as ACS apps write it: a JSON array of CloudEvents per POST,
    each request's ``Authorization: Bearer`` JWT checked against the server's published JWKS."""

    verify: Callable[[str], None] | None = None
    bad_tokens: int = 0

    async def post(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            self.deliveries += 1
            if self.deliveries <= self.fail_first:
                return Response(status_code=500)
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            try:
                if self.verify is not None:
                    self.verify(token)
            except Exception:
                self.bad_tokens += 1
            for item in orjson.loads(body):
                event = JSONFormat().read(None, orjson.dumps(item))
                data = event.get_data()
                assert isinstance(data, dict)
                self.events.append(
                    Received(event.get_id(), event.get_type(), event.get_subject() or "", data, time.time(), "acs", 0)
                )
        return Response(status_code=200)

    def types(self) -> list[str]:
        with self._lock:
            return [e.type.removeprefix("Microsoft.Communication.") for e in self.events]

    def _failures(self) -> str:
        """What the ``...Failed`` callbacks said (their ``resultInformation``), for a test's message."""
        with self._lock:
            failed = [e for e in self.events if e.type.endswith("Failed")]
        return "".join(f"; {e.type.rsplit('.', 1)[-1]}: {e.data.get('resultInformation')}" for e in failed)

    async def wait_for_type(
        self, kind: str, timeout: float = 30.0, where: Callable[[Received], bool] = lambda _: True
    ) -> Received:
        """The first callback of ``kind`` (e.g. ``"CallConnected"``) for which ``where`` holds."""
        full = f"Microsoft.Communication.{kind}"
        deadline = time.monotonic() + timeout
        while True:
            found = next((e for e in self.of_type(full) if e.type == full and where(e)), None)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {kind} callback; got {self.types()}{self._failures()}")
            await asyncio.sleep(0.05)


class StreamReceiver:
    """An app's media streaming WebSocket server (ACS's message format): keeps what arrives and
    sends back what the test gives it."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.counts: dict[int, int] = {}  # AudioData messages per connection
        self.outbox: asyncio.Queue[str] = asyncio.Queue()
        self.closed = asyncio.Event()
        self._server: Any = None

    async def start(self) -> StreamReceiver:
        self._server = await websockets.serve(self._serve, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/stream"

    async def _serve(self, socket: Any) -> None:
        sender = asyncio.get_running_loop().create_task(self._send(socket))
        try:
            async for message in socket:
                parsed = orjson.loads(message)
                self.counts[id(socket)] = self.counts.get(id(socket), 0) + (parsed.get("kind") == "AudioData")
                self.messages.append(parsed)
        except websockets.ConnectionClosed:
            pass
        finally:
            sender.cancel()
            self.closed.set()

    async def _send(self, socket: Any) -> None:
        while True:
            await socket.send(await self.outbox.get())

    def per_socket(self) -> dict[int, int]:
        return dict(self.counts)

    def audio(self) -> list[dict[str, Any]]:
        return [m["audioData"] for m in self.messages if m.get("kind") == "AudioData"]

    async def wait_for_audio(self, frames: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Until ``frames`` more AudioData messages have arrived; those frames."""
        start = len(self.audio())
        deadline = time.monotonic() + timeout
        while len(self.audio()) < start + frames:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.audio()) - start} of {frames} audio frames arrived")
            await asyncio.sleep(0.02)
        return self.audio()[start : start + frames]

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()


async def download(app: CallAutomationClient, url: str, **range_: int) -> bytes:
    """A recording's document, as an app downloads it with the Call Automation SDK."""
    response: Any = await app.download_recording(url, **range_)
    return bytes(await response.read())
