"""Coming back to a call whose node went away, or that moved to another node (a drain).

The client joins the same room again, through the node it used or any node the server named
in its hello, with jittered back-off so that a thousand clients of a lost node do not all
come back in the same millisecond; the server places the room on a surviving node, which
adopts the call (same call id). The microphone's mute state comes back as it was.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from vrooms.client.signaling import CallError

if TYPE_CHECKING:
    from vrooms.client.call import Call
    from vrooms.client.client import CallClient

log = logging.getLogger("vrooms.client")

# How long a client keeps trying before it gives the call up (Disconnected).
COME_BACK_SECONDS = 60.0
# Refusals that a moment later may be a success: the room is between nodes, media is starting.
_TRANSIENT = {
    "NotConnected",
    "CallsUnavailable",
    "MediaUnavailable",
    "RoomOnAnotherNode",
    "AlreadyInCall",
    "RateLimited",
}


def delays() -> Iterator[float]:
    """0.1-0.2 s, then doubling to 0.75-1.5 s, each drawn at random in its upper half."""
    attempt = 0
    while True:
        yield min(1.5, 0.2 * 2**attempt) * random.uniform(0.5, 1.0)
        attempt += 1


async def come_back(client: CallClient, call: Call) -> None:
    deadline = time.monotonic() + COME_BACK_SECONDS
    started = time.monotonic()
    await call.reset_media()
    if call.moved_to is not None:  # a drain: switch now to a node that stays
        await client.move_to(call.moved_to)
        call.moved_to = None
    for delay in delays():
        if time.monotonic() + delay > deadline:
            break
        await asyncio.sleep(delay)
        try:
            if client.signaling.closed.is_set():
                await client.reconnect()
            await call.rejoin()
        except CallError as error:
            if error.code not in _TRANSIENT:
                log.warning("could not come back to call %s: %s", call.id, error)
                break
            continue
        except (OSError, TimeoutError):
            continue
        log.info("back in call %s after %.2f s", call.id, time.monotonic() - started)
        return
    call.give_up()
