"""REST benchmark: Rooms and Identity operations under 50 concurrent clients, on SQLite and PostgreSQL.

Run: ``scripts/bench`` (or ``.venv/bin/python -m bench.rest``). Starts real servers (two
workers, plain HTTP so that TLS cost does not hide the service's own), seeds them, and
drives each operation with ``wrk`` (C, so the load generator takes little of the two
cores). Requests are signed with HMAC beforehand (a signature stays valid for 15 minutes);
each "add 10 participants" request adds 10 new members to a room. Every operation is also
reported as a ratio to ``GET /ping``, an HMAC-authenticated no-op of the same server
measured in the same run. Results go to stdout and ``bench/results/rest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.stats import save
from tests.servers import Server, create_postgres_database, drop_postgres_database, signed, signed_headers

V = "api-version=2025-03-13"
LUA_TEMPLATE = """
local reqs = {%s}
local n = #reqs
local threads = 0
local i = 0
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
function request()
  local idx = (i * %d + tid) %% n + 1
  i = i + 1
  return reqs[idx]
end
function done(summary, latency, requests)
  io.write(string.format('{"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, "errors": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout))
end
"""


def lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'


def wrk_request(server: Server, method: str, path: str, body: dict[str, Any] | None = None) -> str:
    content = b"" if body is None else json.dumps(body).encode()
    headers = signed_headers(server.key, method, f"{server.endpoint}{path}", content)
    # The table is built before wrk.init() sets its default Host header, so name it here.
    headers["Host"] = server.endpoint.split("://", 1)[1]
    header_table = "{" + ",".join(f"[{lua_string(k)}]={lua_string(v)}" for k, v in headers.items()) + "}"
    body_arg = lua_string(content.decode()) if content else "nil"
    return f"wrk.format({lua_string(method)},{lua_string(path)},{header_table},{body_arg})"


def run_wrk(server: Server, requests: list[str], *, seconds: int, connections: int, threads: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA_TEMPLATE % (",".join(requests), threads))
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "-s",
            script.name,
            server.endpoint,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def seed(server: Server, rooms: int) -> list[str]:
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda _: signed(server, "POST", f"/rooms?{V}", {}), range(rooms)))
    return [r.json()["id"] for r in responses]


def bench_backend(backend: str, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"vrooms-bench-{backend}-"))
    database_url = asyncio.run(create_postgres_database()) if backend == "postgresql" else None
    server = Server(data_dir, database_url=database_url, tls=False, workers=args.workers).start()
    try:
        print(f"[{backend}] seeding 3,000 rooms and a user ...", file=sys.stderr, flush=True)
        room_ids = seed(server, 3000)
        user = signed(server, "POST", "/identities?api-version=2023-10-01").json()["identity"]["id"]
        per_request = 10
        batches = [
            wrk_request(
                server,
                "PATCH",
                f"/rooms/{room_ids[k % len(room_ids)]}/participants?{V}",
                {"participants": {f"8:acs:bench_{k}_{j}": {"role": "Attendee"} for j in range(per_request)}},
            )
            for k in range(args.participant_requests)
        ]
        operations = {
            "baseline GET /ping": [wrk_request(server, "GET", f"/ping?{V}")],
            "create room": [wrk_request(server, "POST", f"/rooms?{V}", {})],
            "get room": [wrk_request(server, "GET", f"/rooms/{room_id}?{V}") for room_id in room_ids[:1000]],
            "add 10 participants": batches,
            "list 1,000 rooms": [wrk_request(server, "GET", f"/rooms?{V}&maxpagesize=1000")],
            "issue token": [
                wrk_request(
                    server,
                    "POST",
                    f"/identities/{user.replace(':', '%3A')}/:issueAccessToken?api-version=2023-10-01",
                    {"scopes": ["voip"]},
                )
            ],
        }
        results = {}
        for name, requests in operations.items():
            print(f"[{backend}] {name} ...", file=sys.stderr, flush=True)
            results[name] = run_wrk(server, requests, seconds=args.seconds, connections=args.connections, threads=2)
            if name == "add 10 participants" and results[name]["requests"] > len(batches):
                results[name]["note"] = "ran out of distinct batches; later requests were no-op updates"
        return results
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
        if database_url:
            asyncio.run(drop_postgres_database(database_url))


def report(all_results: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = [
        "| backend | operation | req/s | p50 ms | p99 ms | errors | req/s vs ping |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for backend, results in all_results.items():
        base = results["baseline GET /ping"]["rps"]
        for name, r in results.items():
            lines.append(
                f"| {backend} | {name} | {r['rps']:,.0f} | {r['p50_us'] / 1000:.1f} | {r['p99_us'] / 1000:.1f} "
                f"| {r['errors']} | {r['rps'] / base:.2f} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--participant-requests", type=int, default=25_000)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install wrk (scripts/bench does this).", file=sys.stderr)
        return 1
    started = time.time()
    all_results = {backend: bench_backend(backend, args) for backend in args.backends.split(",")}
    table = report(all_results)
    print(table)
    save("rest", {"started": started, "args": vars(args), "results": all_results}, show=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
