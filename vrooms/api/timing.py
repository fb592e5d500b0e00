"""Request latency by route for ``/metrics`` (``vrooms.metrics.catalog.HTTP_SECONDS``).

Labelled by the route's path template (``/rooms/{room_id}``), never the path itself, so a
client cannot grow the number of series.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vrooms.metrics.catalog import HTTP_SECONDS


class RequestTiming:
    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.templates = {id(route.endpoint): route.path for route in routes if isinstance(route, Route)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = self.templates.get(id(scope.get("endpoint")), "other")
            HTTP_SECONDS.labels(route, _method(scope), str(status)).observe(time.perf_counter() - started)


def _method(scope: Scope) -> str:
    method = str(scope.get("method", ""))
    return method if method in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS") else "other"
