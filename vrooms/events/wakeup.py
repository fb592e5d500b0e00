"""A nudge to the event dispatcher: "new events are in the outbox, look now".

The dispatcher polls the outbox (``event_poll_interval_seconds``), which bounds how late
it notices an event; the call host pokes it after writing the events an app waits on (Call
Automation callbacks, IncomingCall), so those leave at once. A Unix datagram, fire and
forget: a lost poke only means the poll finds the event.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path
from typing import Any

SOCKET_NAME = "events-wakeup.sock"


class Wakeup:
    def __init__(self, run_dir: Path) -> None:
        self.path = str(run_dir / SOCKET_NAME)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def poke(self) -> None:
        with contextlib.suppress(OSError):  # no dispatcher yet, or its queue is full: it polls anyway
            self._sock.sendto(b"!", self.path)


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, woken: asyncio.Event) -> None:
        self.woken = woken

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.woken.set()


async def listen(run_dir: Path) -> tuple[asyncio.DatagramTransport, asyncio.Event]:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / SOCKET_NAME
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    woken = asyncio.Event()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: _Receiver(woken), sock=sock)
    return transport, woken
