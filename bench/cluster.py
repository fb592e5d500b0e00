"""Cluster benchmark: three real nodes (each a whole ``vrooms serve`` with its Janus) on this
machine, one PostgreSQL database, the machine's NATS.

- Join latency through a node that does not hold the room vs through the one that does, in
  the same run (target: at most 1.1x): from opening the signaling WebSocket to the first
  audio frame of the mix, joins alternating between the two ways in.
- Failover: ``kill -9`` of every process of the room's node with three participants in the
  call (one per node), timed to the last participant's first audio frame back in the same
  call; the node is started again before the next kill. p50/p95 over ``--kills`` (target p95 <= 5 s).
- REST throughput (wrk, PostgreSQL): 3 nodes (one wrk per node, at once) vs 1 node, same total
  connections, with the CPU each part took (PostgreSQL, the nodes' processes, wrk).

Run: ``scripts/bench cluster`` (or ``.venv/bin/python -m bench.cluster``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.calls import cpu_seconds
from bench.rest import V, run_wrk, seed, wrk_request
from bench.stats import percentile, save
from tests.calls import CallWorld
from tests.cluster import Cluster
from tests.servers import Server, create_postgres_database, drop_postgres_database, process_tree
from vrooms.client import Call


def _name(node: Server) -> str:
    return node.extra_env["VROOMS_NODE_NAME"]


async def _first_audio(call: Call, timeout: float = 30.0) -> None:
    await call.wait_until(lambda: call.remote_audio is not None and call.remote_audio.frames > 0, timeout)


async def join_latency(cluster: Cluster, rounds: int) -> dict[str, Any]:
    worlds = {_name(node): CallWorld(node) for node in cluster.nodes}
    anchor = next(iter(worlds.values()))
    members = [anchor.user() for _ in range(2 * rounds + 1)]
    room_id = anchor.room(dict.fromkeys(members, "Attendee"))
    try:
        await anchor.join(members[0], room_id, tone=440)  # the room's call, placed and held
        holder = cluster.holder(room_id)
        assert holder is not None
        other = next(name for name in worlds if name != holder)
        times: dict[str, list[float]] = {"through the holder": [], "through another node": []}
        for i in range(rounds):
            for label, via in (("through the holder", holder), ("through another node", other)):
                member = members[1 + 2 * i + (label != "through the holder")]
                started = time.perf_counter()
                call = await worlds[via].join(member, room_id)
                await _first_audio(call)
                times[label].append(time.perf_counter() - started)
                await call.leave()
        medians = {label: statistics.median(values) for label, values in times.items()}
        return {
            "joins_each_way": rounds,
            "median_seconds": medians,
            "p95_seconds": {label: percentile(values, 0.95) for label, values in times.items()},
            "ratio_other_to_holder": medians["through another node"] / medians["through the holder"],
        }
    finally:
        await asyncio.gather(*(world.close() for world in worlds.values()))


async def _one_failover(cluster: Cluster) -> float:
    worlds = [CallWorld(node) for node in cluster.nodes]
    try:
        members = [worlds[0].user() for _ in worlds]
        room_id = worlds[0].room(dict.fromkeys(members, "Attendee"))
        pairs = enumerate(zip(worlds, members, strict=True))
        calls = [await world.join(member, room_id, tone=400 + 100 * i) for i, (world, member) in pairs]
        for call in calls:
            await _first_audio(call)
        victim = next(node for node in cluster.nodes if _name(node) == cluster.holder(room_id))
        before = [call.participant_id for call in calls]
        killed = time.monotonic()
        victim.kill_everything()

        async def back(call: Call, participant_id: str) -> float:
            await call.wait_until(lambda: call.participant_id != participant_id and call.state == "Connected", 60)
            await _first_audio(call)
            return time.monotonic() - killed

        seconds = max(await asyncio.gather(*(back(c, p) for c, p in zip(calls, before, strict=True))))
        victim.start()
        cluster.wait_for_nodes(len(cluster.nodes))
        return seconds
    finally:
        await asyncio.gather(*(world.close() for world in worlds))


async def failovers(cluster: Cluster, kills: int) -> dict[str, Any]:
    times = []
    for kill in range(kills):
        times.append(await _one_failover(cluster))
        print(f"  kill {kill + 1}/{kills}: last participant's media back after {times[-1]:.2f} s", file=sys.stderr)
    return {
        "kills": kills,
        "p50_seconds": percentile(times, 0.5),
        "p95_seconds": percentile(times, 0.95),
        "max_seconds": max(times),
        "all_seconds": [round(t, 3) for t in times],
    }


def _postgres_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def _cpu(groups: dict[str, list[int]]) -> dict[str, float]:
    totals = {}
    for name, pids in groups.items():
        total = 0.0
        for pid in pids:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # a process that ended
                total += cpu_seconds(pid)
        totals[name] = total
    return totals


def _get_room(nodes: list[Server], args: argparse.Namespace) -> dict[str, Any]:
    """wrk on each node at once (GET /rooms/{id}), total connections split; rps summed, CPU by part."""
    room_ids = seed(nodes[0], 500)
    node_pids = [pid for node in nodes if node.process for pid in process_tree(node.process.pid)]
    groups = {"postgresql": _postgres_pids(), "nodes": node_pids}
    before, started = _cpu(groups), time.monotonic()
    per_node = max(1, args.connections // len(nodes))
    with ThreadPoolExecutor(len(nodes)) as pool:
        runs = list(
            pool.map(
                lambda node: run_wrk(
                    node,
                    [wrk_request(node, "GET", f"/rooms/{room_id}?{V}") for room_id in room_ids],
                    seconds=args.seconds,
                    connections=per_node,
                    threads=1,
                ),
                nodes,
            )
        )
    wall = time.monotonic() - started
    after = _cpu(groups)
    return {
        "nodes": len(nodes),
        "rps": sum(run["rps"] for run in runs),
        "p50_ms": statistics.median(run["p50_us"] / 1000 for run in runs) if "p50_us" in runs[0] else None,
        "cpu_cores_used": {name: round((after[name] - before[name]) / wall, 2) for name in groups},
    }


async def rest_throughput(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    results = {}
    for count in (1, 3):
        database_url = await create_postgres_database()
        cluster = Cluster(root / f"rest{count}", database_url, tls=False)
        try:
            cluster.start(*(f"n{i}" for i in range(count)))
            print(f"[rest] {count} node(s): GET room, {args.seconds} s ...", file=sys.stderr, flush=True)
            results[f"{count} node(s)"] = _get_room(cluster.nodes, args)
        finally:
            cluster.stop()
            await drop_postgres_database(database_url)
    results["ratio_3_to_1"] = results["3 node(s)"]["rps"] / results["1 node(s)"]["rps"]
    return results


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="vrooms-bench-cluster-"))
    database_url = await create_postgres_database()
    cluster = Cluster(root / "calls", database_url)
    results: dict[str, Any] = {}
    try:
        cluster.start("a", "b", "c")
        print("[join] through the holder vs through another node ...", file=sys.stderr, flush=True)
        results["join_latency"] = await join_latency(cluster, args.joins)
        print(f"[failover] {args.kills} kills ...", file=sys.stderr, flush=True)
        results["failover"] = await failovers(cluster, args.kills)
    finally:
        cluster.stop()
        await drop_postgres_database(database_url)
    results["rest_get_room"] = await rest_throughput(args, root)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--joins", type=int, default=10, help="joins each way (default 10)")
    parser.add_argument("--kills", type=int, default=10, help="failovers timed (default 10)")
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per run (default 10)")
    parser.add_argument("--connections", type=int, default=48, help="wrk connections in all (default 48)")
    args = parser.parse_args()
    save("cluster", asyncio.run(main_async(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
