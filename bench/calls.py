"""Room-call benchmark: join latency, the largest audio-only room, the largest all-video room.

Run: ``scripts/bench calls`` (or ``.venv/bin/python -m bench.calls``). Starts a real server
(one REST worker, its call host and its Janus) and joins aiortc clients, all in this one
process, which is therefore the load generator, the "telephone" of every participant.

- Join latency: from opening the signaling WebSocket to the first remote audio frame,
  10 joiners at a time into one room. Baseline, measured in the same run: the same aiortc
  client joining the same Janus's AudioBridge directly (no vrooms in between).
- Largest audio room: add participants in steps; each sends a tone and receives the mix.
  A step passes when every receiver gets at least 95% of 50 frames/s over 5 s.
- Largest all-video room: each participant sends 320x240 at 15 fps and receives everyone
  else's video. A step passes when every stream at every receiver runs at 95% of 15 fps.
CPU is reported separately for Janus, the call host and this load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from tests.calls import CallWorld, Member
from tests.servers import Server
from vrooms.client import Call, PatternSource, ToneSource
from vrooms.media.config import JanusEndpoint
from vrooms.media.janus import JanusConnection

RESULTS = Path(__file__).parent / "results"
_TICKS = os.sysconf("SC_CLK_TCK")
AUDIO_FPS, VIDEO_FPS, FULL_RATE = 50.0, 15.0, 0.95


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


class CpuMeter:
    """CPU use of Janus, the call host and this process over a window, in % of one core."""

    def __init__(self, server: Server) -> None:
        assert server.process is not None
        hosts = [
            p for p in children(server.process.pid) if "vrooms.calls.host" in Path(f"/proc/{p}/cmdline").read_text()
        ]
        self.call_host = hosts[0]
        self.janus = children(self.call_host)[0]
        self.pids = {"janus": self.janus, "call_host": self.call_host, "load_generator": os.getpid()}

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._c0 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self._t0
        return {name: round(100 * (cpu_seconds(pid) - self._c0[name]) / wall, 1) for name, pid in self.pids.items()}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def rates(counters: Callable[[], list[int]], seconds: float) -> list[float]:
    before = counters()
    await asyncio.sleep(seconds)
    after = counters()
    return [(b - a) / seconds for a, b in zip(before, after, strict=True)]


# -- join latency ----------------------------------------------------------------------


async def vrooms_join(world: CallWorld, member: Member, room: str) -> float:
    client = world.client(member)
    started = time.monotonic()
    call = await client.join(room, audio=ToneSource(440))
    await call.wait_until(lambda: call.remote_audio is not None and call.remote_audio.first_frame_at is not None, 20)
    assert call.remote_audio is not None and call.remote_audio.first_frame_at is not None
    return call.remote_audio.first_frame_at - started


async def direct_join(endpoint: JanusEndpoint, room: int) -> tuple[float, RTCPeerConnection]:
    """The baseline: the same aiortc offer straight to Janus's AudioBridge."""
    started = time.monotonic()
    connection = JanusConnection(endpoint)
    await connection.open()
    handle = await connection.attach("janus.plugin.audiobridge", lambda _e: None)
    pc = RTCPeerConnection()
    first = asyncio.get_running_loop().create_future()
    readers: list[asyncio.Task[None]] = []

    @pc.on("track")
    def _track(track: MediaStreamTrack) -> None:
        async def read() -> None:
            await track.recv()
            if not first.done():
                first.set_result(time.monotonic())

        readers.append(asyncio.ensure_future(read()))

    pc.addTransceiver(ToneSource(440), direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    reply = await handle.request({"request": "join", "room": room}, {"type": "offer", "sdp": pc.localDescription.sdp})
    assert reply.jsep is not None
    await pc.setRemoteDescription(RTCSessionDescription(sdp=reply.jsep["sdp"], type="answer"))
    return await asyncio.wait_for(first, 20) - started, pc


def janus_endpoint(server: Server) -> JanusEndpoint:
    """Read the managed Janus's API address and secrets from the configuration vrooms generated."""
    folder = server.data_dir / "janus"
    main = (folder / "janus.jcfg").read_text()
    port = re.search(r"ws_port = (\d+)", (folder / "janus.transport.websockets.jcfg").read_text())
    secret = re.search(r'api_secret = "([^"]+)"', main)
    admin = re.search(r'admin_key = "([^"]+)"', (folder / "janus.plugin.audiobridge.jcfg").read_text())
    assert port and secret and admin
    return JanusEndpoint(f"ws://127.0.0.1:{port.group(1)}", secret.group(1), admin.group(1))


async def join_latency(world: CallWorld, rounds: int, joiners: int) -> dict[str, Any]:
    vrooms_times: list[float] = []
    direct_times: list[float] = []
    endpoint = janus_endpoint(world.server)
    control = JanusConnection(endpoint)
    await control.open()
    bridge = await control.attach("janus.plugin.audiobridge", lambda _e: None)
    for round_no in range(rounds):
        members = [world.user() for _ in range(joiners)]
        room = world.room(dict.fromkeys(members, "Attendee"))
        vrooms_times += await asyncio.gather(*(vrooms_join(world, m, room) for m in members))
        await world.close()
        world.clients.clear()
        janus_room = 900_000 + round_no
        await bridge.request({"request": "create", "room": janus_room, "admin_key": endpoint.admin_key})
        results = await asyncio.gather(*(direct_join(endpoint, janus_room) for _ in range(joiners)))
        direct_times += [t for t, _ in results]
        for _, pc in results:
            await pc.close()
        print(f"  join round {round_no + 1}/{rounds}: vrooms p50 {statistics.median(vrooms_times) * 1000:.0f} ms")
    await control.close()
    p50, p95 = statistics.median(vrooms_times), percentile(vrooms_times, 0.95)
    b50, b95 = statistics.median(direct_times), percentile(direct_times, 0.95)
    return {
        "samples": len(vrooms_times),
        "vrooms_p50_ms": round(p50 * 1000, 1),
        "vrooms_p95_ms": round(p95 * 1000, 1),
        "direct_janus_p50_ms": round(b50 * 1000, 1),
        "direct_janus_p95_ms": round(b95 * 1000, 1),
        "ratio_p50": round(p50 / b50, 2),
    }


# -- capacity --------------------------------------------------------------------------


async def audio_step(world: CallWorld, size: int, meter: CpuMeter) -> dict[str, Any]:
    members = [world.user() for _ in range(size)]
    room = world.room(dict.fromkeys(members, "Attendee"))
    calls: list[Call] = []
    for index, member in enumerate(members):
        call = await world.client(member).join(room, audio=ToneSource(300 + 10 * index))
        calls.append(call)
    for call in calls:
        await call.wait_until(lambda call=call: call.remote_audio is not None, 20)
    await asyncio.sleep(3)  # settle: jitter buffers fill, ICE consent checks start
    meter.start()
    measured = await rates(lambda: [c.remote_audio.frames for c in calls if c.remote_audio], 5.0)
    cpu = meter.stop()
    await world.close()
    world.clients.clear()
    worst = min(measured)
    return {
        "participants": size,
        "worst_receiver_fps": round(worst, 1),
        "ok": worst >= FULL_RATE * AUDIO_FPS,
        "cpu_percent": cpu,
    }


async def video_step(world: CallWorld, size: int, meter: CpuMeter) -> dict[str, Any]:
    members = [world.user() for _ in range(size)]
    room = world.room(dict.fromkeys(members, "Attendee"))
    calls = [await world.client(member).join(room, audio=ToneSource(0)) for member in members]
    for call in calls:
        await call.start_video(PatternSource(320, 240, 15))
    expected = size * (size - 1)

    def streams() -> list[int]:
        return [sink.frames for call in calls for sink in call.remote_video.values()]

    deadline = time.monotonic() + 30
    while (
        time.monotonic() < deadline
        and sum(1 for call in calls for s in call.remote_video.values() if s.frames) < expected
    ):
        await asyncio.sleep(0.2)
    await asyncio.sleep(3)
    meter.start()
    measured = await rates(streams, 5.0)
    cpu = meter.stop()
    await world.close()
    world.clients.clear()
    complete = len(measured) == expected
    worst = min(measured) if measured else 0.0
    return {
        "participants": size,
        "streams": len(measured),
        "expected_streams": expected,
        "worst_stream_fps": round(worst, 1),
        "ok": complete and worst >= FULL_RATE * VIDEO_FPS,
        "cpu_percent": cpu,
    }


async def capacity(
    world: CallWorld, meter: CpuMeter, step: Callable[..., Any], sizes: list[int], label: str
) -> dict[str, Any]:
    results = []
    for size in sizes:
        result = await step(world, size, meter)
        results.append(result)
        print(f"  {label} {size}: {json.dumps(result)}")
        if not result["ok"]:
            break
    passed = [r["participants"] for r in results if r["ok"]]
    return {"largest_full_rate": max(passed) if passed else 0, "steps": results}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    server = Server(Path(tempfile.mkdtemp(prefix="vrooms-bench-calls-")), workers=1).start()
    try:
        world = CallWorld(server)
        meter = CpuMeter(server)
        results: dict[str, Any] = {"machine": {"cores": os.cpu_count()}}
        print("Join latency (WebSocket open -> first remote audio frame), 10 concurrent joiners ...")
        results["join"] = await join_latency(world, args.rounds, 10)
        print(f"  {results['join']}")
        print("Largest audio-only room ...")
        results["audio"] = await capacity(world, meter, audio_step, args.audio_sizes, "audio")
        print("Largest all-video room (320x240, 15 fps, everyone sees everyone) ...")
        results["video"] = await capacity(world, meter, video_step, args.video_sizes, "video")
        return results
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="join-latency rounds of 10 joiners")
    parser.add_argument("--audio-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10, 25, 50, 60, 75])
    parser.add_argument("--video-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[4, 6, 8, 10])
    args = parser.parse_args()
    results = asyncio.run(run(args))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "calls.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
