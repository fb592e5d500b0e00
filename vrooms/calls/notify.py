"""Change notices from REST workers and the CLI to the call host.

A Unix datagram per notice, fire-and-forget: the API never waits for (or fails
because of) the call host. A missed notice is caught by the call host's periodic
reconciliation (``VROOMS_CALL_RECONCILE_INTERVAL_SECONDS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("vrooms.calls")

SOCKET_NAME = "calls-notify.sock"


class CallNotifier:
    def __init__(self, run_dir: Path) -> None:
        self.path = str(run_dir / SOCKET_NAME)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def _send(self, notice: dict[str, str]) -> None:
        # OSError: no call host running (or its queue is full), so nothing live to update.
        with contextlib.suppress(OSError):
            self._sock.sendto(orjson.dumps(notice), self.path)

    async def room_changed(self, room_id: str) -> None:
        """The room's window, roster or existence changed; the call host re-reads it."""
        self._send({"event": "roomChanged", "roomId": room_id})

    async def user_changed(self, user_id: str) -> None:
        """The user's tokens were revoked or the identity deleted; the call host re-checks them."""
        self._send({"event": "userChanged", "userId": user_id})


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, handle: Callable[[dict[str, Any]], None]) -> None:
        self.handle = handle

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            notice = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.warning("ignored a malformed change notice")
            return
        if isinstance(notice, dict):
            self.handle(notice)


async def listen(run_dir: Path, handle: Callable[[dict[str, Any]], None]) -> asyncio.DatagramTransport:
    path = run_dir / SOCKET_NAME
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: _Receiver(handle), sock=sock)
    return transport
