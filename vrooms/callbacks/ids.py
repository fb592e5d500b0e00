"""Call connection and recording ids that name their room, so that any node can route a request
to the node holding the room's call (``cluster/automation_relay.py``), also after that call
moved to another node (the id stays; the room's lease says where it lives now).

``<room id>.<random>``. What belongs to no room lives on the node that made it: an answered
caller's lobby connection and a ringing caller's ``incomingCallContext`` are
``~<node>.<random>`` (a bare random id where no node name is given, as in unit tests).
"""

from __future__ import annotations

import re

_ROOM_PREFIX = re.compile(r"^(\d{1,32})\.")
_NODE_PREFIX = re.compile(r"^~([A-Za-z0-9_-]{1,64})\.")


def with_room(room_id: str, random_part: str, node: str = "") -> str:
    """An id naming its room; without one, its node (if any)."""
    return f"{room_id}.{random_part}" if room_id else with_node(node, random_part)


def with_node(node: str, random_part: str) -> str:
    return f"~{node}.{random_part}" if node else random_part


def node_in(identifier: object) -> str | None:
    """The node an id names, if it names one."""
    if not isinstance(identifier, str):
        return None
    match = _NODE_PREFIX.match(identifier)
    return match.group(1) if match else None


def room_in(identifier: object) -> str | None:
    """The room an id names, if it names one."""
    if not isinstance(identifier, str):
        return None
    match = _ROOM_PREFIX.match(identifier)
    return match.group(1) if match else None
