"""A participant run in a network namespace by tests/test_turn.py: joins the room sending a tone,
says on stdout once it hears the other participant's tone, and stays until its stdin closes.

Run: ``python -m tests.ns_participant ENDPOINT TOKEN CA_FILE ROOM_ID SEND_HZ HEAR_HZ``.
"""

from __future__ import annotations

import asyncio
import json
import sys

from tests.calls import hears
from vrooms.client import CallClient, ToneSource


async def main(endpoint: str, token: str, ca_file: str, room_id: str, send_hz: float, hear_hz: float) -> None:
    client = CallClient(endpoint, token, ca_file=ca_file)
    try:
        call = await client.join(room_id, audio=ToneSource(send_hz), display_name="Behind a firewall")
        await hears(call, hear_hz, 30)
        print(json.dumps({"heard": True, "iceServers": [list(s.urls) for s in call.ice_servers]}), flush=True)
        await asyncio.to_thread(sys.stdin.read)
    finally:
        await client.close()


if __name__ == "__main__":
    endpoint, token, ca_file, room_id, send_hz, hear_hz = sys.argv[1:7]
    asyncio.run(main(endpoint, token, ca_file, room_id, float(send_hz), float(hear_hz)))
