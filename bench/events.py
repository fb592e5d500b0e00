"""Events benchmark: deliveries per second to a local receiver, and latency from state change to delivery.

Run: ``scripts/bench events`` (or ``.venv/bin/python -m bench.events``). Starts a real server
(2 workers, plain HTTP) and a receiver in its own process (uvicorn, one route per
subscription, Event Grid schema, answers the validation handshake). The load is roster
PATCHes (one ``Vrooms.Rooms.RosterChanged`` event each) from 20 concurrent clients over
100 rooms. Latency = arrival at the receiver minus the event's ``eventTime`` (stamped in
the transaction of the state change). Baseline in the same run: the same PATCH load with
no subscription, so the API's own rate with and without deliveries can be compared; a
last run subscribes an endpoint that takes 10 s per answer, to show it does not slow the API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.stats import percentile, save
from tests.servers import Server, free_port, signed, signed_headers

ROOMS_V = "api-version=2025-03-13"
EVENTS_V = "api-version=2026-11-25"


def receiver_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    arrivals: dict[str, list[float]] = {}

    async def hook(request: Request) -> Response:
        events = orjson.loads(await request.body())
        if request.headers.get("aeg-event-type") == "SubscriptionValidation":
            return JSONResponse({"validationResponse": events[0]["data"]["validationCode"]})
        now = time.time()
        latencies = arrivals.setdefault(request.path_params["n"], [])
        for event in events:
            latencies.append(now - datetime.fromisoformat(event["eventTime"]).timestamp())
        return Response()

    async def slow(request: Request) -> Response:
        """A slow endpoint: validates at once, then takes 10 s to answer each delivery."""
        events = orjson.loads(await request.body())
        if request.headers.get("aeg-event-type") == "SubscriptionValidation":
            return JSONResponse({"validationResponse": events[0]["data"]["validationCode"]})
        await asyncio.sleep(10)
        return Response()

    async def stats(_request: Request) -> Response:
        return JSONResponse({n: values for n, values in arrivals.items()})

    async def reset(_request: Request) -> Response:
        arrivals.clear()
        return Response()

    return Starlette(
        routes=[
            Route("/hook/{n}", hook, methods=["POST"]),
            Route("/slow", slow, methods=["POST"]),
            Route("/stats", stats, methods=["GET"]),
            Route("/reset", reset, methods=["POST"]),
        ]
    )


async def patch_load(server: Server, rooms: list[str], events: int, clients: int, offset: int) -> float:
    """Send ``events`` roster PATCHes; returns requests per second."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(events):
        queue.put_nowait(n)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            n = queue.get_nowait()
            room = rooms[n % len(rooms)]
            url = f"{server.endpoint}/rooms/{room}/participants?{ROOMS_V}"
            body = orjson.dumps({"participants": {f"8:acs:bench_{offset + n}": {"role": "Attendee"}}})
            response = await client.patch(url, content=body, headers=signed_headers(server.key, "PATCH", url, body))
            assert response.status_code == 200, response.text

    started = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(clients)))
    return events / (time.monotonic() - started)


async def measure(
    server: Server, receiver: str, rooms: list[str], subscriptions: int, events: int, offset: int
) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        await client.post(f"{receiver}/reset")
    for n in range(subscriptions):
        response = signed(
            server,
            "PUT",
            f"/eventSubscriptions/bench-{subscriptions}-{n}?{EVENTS_V}",
            {"endpointUrl": f"{receiver}/hook/{n}"},
        )
        assert response.status_code == 201, response.text
    started = time.monotonic()
    api_rate = await patch_load(server, rooms, events, 20, offset)
    expected = events * subscriptions
    deadline = time.monotonic() + 300
    while True:
        async with httpx.AsyncClient() as client:
            arrivals = (await client.get(f"{receiver}/stats")).json()
        delivered = sum(len(v) for v in arrivals.values())
        if delivered >= expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    elapsed = time.monotonic() - started
    latencies = [value for values in arrivals.values() for value in values]
    for n in range(subscriptions):
        signed(server, "DELETE", f"/eventSubscriptions/bench-{subscriptions}-{n}?{EVENTS_V}")
    return {
        "subscriptions": subscriptions,
        "events": events,
        "deliveries": delivered,
        "expected": expected,
        "deliveries_per_second": round(delivered / elapsed),
        "latency_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "latency_p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "api_patch_per_second_meanwhile": round(api_rate),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    receiver_process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "bench.events:receiver_app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
    )
    receiver = f"http://127.0.0.1:{port}"
    server = Server(Path(tempfile.mkdtemp(prefix="vrooms-bench-events-")), tls=False, workers=2).start()
    try:
        for _ in range(100):
            try:
                httpx.get(f"{receiver}/stats")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        rooms = [signed(server, "POST", f"/rooms?{ROOMS_V}", {}).json()["id"] for _ in range(100)]
        baseline = await patch_load(server, rooms, args.events, 20, 10_000_000)
        print(f"  baseline (no subscription): {baseline:.0f} PATCH/s")
        results: dict[str, Any] = {"baseline_api_patch_per_second": round(baseline), "runs": []}
        for index, (subscriptions, events) in enumerate(((1, args.events), (20, args.events // 5))):
            result = await measure(server, receiver, rooms, subscriptions, events, index * 1_000_000)
            result["api_ratio_vs_baseline"] = round(result["api_patch_per_second_meanwhile"] / baseline, 2)
            print(f"  {json.dumps(result)}")
            results["runs"].append(result)
        # A slow endpoint (10 s per answer) must not slow the API down.
        assert (
            signed(
                server, "PUT", f"/eventSubscriptions/slow?{EVENTS_V}", {"endpointUrl": f"{receiver}/slow"}
            ).status_code
            == 201
        )
        slow_rate = await patch_load(server, rooms, args.events, 20, 5_000_000)
        results["slow_endpoint"] = {
            "api_patch_per_second": round(slow_rate),
            "api_ratio_vs_baseline": round(slow_rate / baseline, 2),
        }
        print(f"  slow endpoint subscribed: {json.dumps(results['slow_endpoint'])}")
        return results
    finally:
        server.stop()
        receiver_process.terminate()
        receiver_process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000, help="events with 1 subscription (a fifth with 20)")
    args = parser.parse_args()
    print("Events: deliveries/s and state-change-to-delivery latency ...")
    results = asyncio.run(run(args))
    save("events", results, show=False)


if __name__ == "__main__":
    main()
