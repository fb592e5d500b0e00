"""Rules of the cluster package that need no NATS: the placement policy, the ids that name their
room, the NATS URL as logs show it. (The leases themselves are tested against a real NATS in
test_cluster.py.)"""

from __future__ import annotations

from vrooms.callbacks import ids
from vrooms.cluster.bus import shown
from vrooms.cluster.placement import least_loaded
from vrooms.cluster.registry import NodeEntry


def _node(name: str, **load: object) -> NodeEntry:
    return NodeEntry(name=name, advertise=f"https://{name}:8443", media=True, **load)  # type: ignore[arg-type]


def test_the_least_loaded_healthy_node_that_is_not_draining_takes_a_new_room() -> None:
    busy, idle, draining = _node("a", participants=40), _node("b", participants=3), _node("c", draining=True)
    assert least_loaded([busy, idle, draining]) == idle
    no_media = NodeEntry(name="d", advertise="https://d:8443", media=False)
    assert least_loaded([draining, no_media]) is None
    assert least_loaded([]) is None


def test_load_weighs_streams_then_cpu_and_ties_go_by_name() -> None:
    assert least_loaded([_node("b", cpu=0.5), _node("a", participants=4)]) == _node("a", participants=4)
    assert least_loaded([_node("b"), _node("a")]) == _node("a")


def test_a_node_entry_survives_its_wire_form_and_ignores_unknown_fields() -> None:
    entry = _node("a", calls=2, participants=7, phone_legs=1, cpu=0.25, telephony=True)
    assert NodeEntry.from_json(entry.to_json()) == entry
    assert NodeEntry.from_json(b'{"name": "x", "advertise": "https://x", "future": 1}').name == "x"


def test_connection_and_recording_ids_name_their_room() -> None:
    assert ids.room_in(ids.with_room("99463285741201563", "abc")) == "99463285741201563"
    assert ids.with_room("", "abc") == "abc"
    for other in ("abc", "x.abc", "../../etc", None, 42, "1" * 33 + ".abc"):
        assert ids.room_in(other) is None


def test_a_nats_url_is_shown_without_its_credentials() -> None:
    assert shown("nats://user:secret@nats.internal:4222") == "nats://nats.internal:4222"
    assert shown("tls://nats.internal:4222") == "tls://nats.internal:4222"


def test_ids_name_their_room_else_their_node() -> None:
    """A connection of a room names the room; a lobby connection or a ringing caller's context, the node."""
    assert ids.with_room("123", "x", "b") == "123.x" and ids.room_in("123.x") == "123"
    assert ids.with_room("", "x", "b") == "~b.x" and ids.node_in("~b.x") == "b" and ids.room_in("~b.x") is None
    assert ids.with_room("", "x") == "x" and ids.node_in("x") is None
    assert ids.node_in("~bad node.x") is None and ids.node_in("~b.c.d") == "b" and ids.node_in(None) is None
