"""Call connection and recording ids that name their room, so that any node can route a request
to the node holding the room's call (``cluster/automation_relay.py``), also after that call
moved to another node (the id stays; the room's lease says where it lives now).

``<room id>.<random>``; an answered caller outside any room gets a bare random id.
"""

from __future__ import annotations

import re

_ROOM_PREFIX = re.compile(r"^(\d{1,32})\.")


def with_room(room_id: str, random_part: str) -> str:
    return f"{room_id}.{random_part}" if room_id else random_part


def room_in(identifier: object) -> str | None:
    """The room an id names, if it names one."""
    if not isinstance(identifier, str):
        return None
    match = _ROOM_PREFIX.match(identifier)
    return match.group(1) if match else None
