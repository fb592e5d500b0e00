"""``vrooms cluster status`` and ``vrooms drain``: a cluster seen and steered from any node's shell."""

from __future__ import annotations

import sys
from typing import Any

import orjson

from vrooms.cli.admin import print_json
from vrooms.cluster.bus import ClusterBus
from vrooms.cluster.placement import RoomPlacement
from vrooms.cluster.registry import NodeRegistry
from vrooms.config import Settings

# A drain moves every call (each a few Janus requests and a record write): minutes at most.
_DRAIN_TIMEOUT_SECONDS = 300


def _bus(settings: Settings) -> ClusterBus | None:
    if not settings.cluster:
        print("vrooms: not a cluster node: give --cluster nats://... (or VROOMS_CLUSTER).", file=sys.stderr)
        return None
    return ClusterBus(settings.cluster, settings.cluster_name, settings.node_name)


async def status(settings: Settings, as_json: bool) -> int:
    bus = _bus(settings)
    if bus is None:
        return 2
    await bus.connect()
    try:
        registry = NodeRegistry(bus)
        nodes = await registry.nodes()
        leases = await RoomPlacement(bus, registry).all()
    finally:
        await bus.close()
    rooms: dict[str, list[str]] = {}
    for lease in leases:
        rooms.setdefault(lease.node, []).append(lease.room_id)
    report: list[dict[str, Any]] = [
        {**orjson.loads(node.to_json()), "rooms": sorted(rooms.pop(node.name, []))} for node in nodes
    ]
    # Rooms still leased to a node whose entry expired: a failover under way.
    report += [{"name": name, "lost": True, "rooms": sorted(held)} for name, held in rooms.items()]
    if as_json:
        print_json({"cluster": settings.cluster_name, "nodes": report})
        return 0
    print(f"cluster {settings.cluster_name}: {len(nodes)} node(s) alive")
    print(f"{'NODE':<16} {'STATE':<9} {'CALLS':>5} {'PEOPLE':>6} {'PHONES':>6} {'CPU':>5}  {'ADVERTISE':<28} ROOMS")
    for node in report:
        state = (
            "lost" if node.get("lost") else "draining" if node["draining"] else "up" if node["media"] else "no media"
        )
        print(
            f"{node['name']:<16} {state:<9} {node.get('calls', 0):>5} {node.get('participants', 0):>6} "
            f"{node.get('phone_legs', 0):>6} {node.get('cpu', 0.0):>5.2f}  {node.get('advertise', '-'):<28} "
            f"{','.join(node['rooms']) or '-'}"
        )
    return 0


async def drain(settings: Settings) -> int:
    """Tell this node (``--node-name``) to move its calls away and stop."""
    bus = _bus(settings)
    if bus is None:
        return 2
    await bus.connect()
    try:
        print(f"Draining node {settings.node_name}: moving its calls to other nodes ...", file=sys.stderr)
        reply = await bus.nc.request(
            bus.subject("node", settings.node_name, "drain"), b"{}", timeout=_DRAIN_TIMEOUT_SECONDS
        )
    except Exception as exc:  # no responders, a timeout: the node is not running (or not in this cluster)
        print(f"vrooms: node {settings.node_name} did not answer ({exc or type(exc).__name__}).", file=sys.stderr)
        return 1
    finally:
        await bus.close()
    answer = orjson.loads(reply.data)
    print(f"Node {answer['node']} moved {answer['moved']} call(s) and is stopping.")
    return 0
