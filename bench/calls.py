"""Room-call benchmark: join latency, the largest audio-only room, the largest all-video room.

Run: ``scripts/bench calls`` (or ``.venv/bin/python -m bench.calls``). Starts a real server
(one REST worker, its call host and its Janus) and joins aiortc clients. The clients are
the load generator and share the machine's two cores with the server: an aiortc
participant costs far more CPU than Janus spends on it, so the aiortc rooms run their
clients in ``--procs`` processes, and the big audio rooms add plain-RTP legs (G.711, as
telephone calls will join) to the same mix, beside ``--webrtc`` aiortc participants.

- Join latency: from opening the signaling WebSocket to the first remote audio frame,
  10 joiners at a time into one room. Baseline, measured in the same run: the same aiortc
  client joining the same Janus's AudioBridge directly (no vrooms in between).
- Largest audio room: add participants in steps; each sends a tone and receives the mix.
  A step passes when every receiver (aiortc or RTP leg) gets at least 95% of 50 frames/s
  (packets/s for RTP legs) over 5 s.
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
import struct
import subprocess
import sys
import tempfile
import time
from asyncio.subprocess import PIPE
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from bench.stats import percentile, save
from tests.calls import CallWorld, Member
from tests.servers import Server
from vrooms.client import Call, CallClient, PatternSource, ToneSource
from vrooms.media.config import JanusEndpoint
from vrooms.media.janus import JanusConnection

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

    def start(self, load_pids: list[int] | None = None) -> None:
        """``load_pids``: the load-generator processes (default: this one)."""
        self._groups = {
            "janus": [self.janus],
            "call_host": [self.call_host],
            "load_generator": load_pids or [os.getpid()],
        }
        self._t0 = time.monotonic()
        self._c0 = {name: sum(map(cpu_seconds, pids)) for name, pids in self._groups.items()}

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self._t0
        return {
            name: round(100 * (sum(map(cpu_seconds, pids)) - self._c0[name]) / wall, 1)
            for name, pids in self._groups.items()
        }


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


# -- plain-RTP legs: mixer load without an aiortc stack per participant ---------------


def ulaw(samples: np.ndarray) -> bytes:
    """G.711 mu-law (ITU-T G.711) of 16-bit linear samples."""
    pcm = np.clip(samples.astype(np.int32), -32635, 32635)
    sign = np.where(pcm < 0, 0x80, 0)
    magnitude = np.abs(pcm) + 0x84
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return bytes((~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8))


class RtpLegs(asyncio.DatagramProtocol):
    """N telephone-like legs: each sends a G.711 tone every 20 ms and counts the mix it gets back."""

    def __init__(self) -> None:
        self.received: dict[tuple[str, int], int] = {}

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received[addr] = self.received.get(addr, 0) + 1


def _same(protocol: RtpLegs) -> RtpLegs:
    return protocol


def _has_remote_audio(call: Call) -> bool:
    return call.remote_audio is not None


async def join_rtp_legs(endpoint: JanusEndpoint, room_id: str, count: int) -> tuple[JanusConnection, list[Any]]:
    """Join ``count`` plain-RTP legs into the AudioBridge room of the vrooms call of ``room_id``."""
    connection = JanusConnection(endpoint)
    await connection.open()
    control = await connection.attach("janus.plugin.audiobridge", lambda _e: None)
    listing = await control.request({"request": "list"})
    [janus_room] = [r["room"] for r in listing.data["list"] if r.get("description") == f"room {room_id}"]
    loop = asyncio.get_running_loop()
    payload = ulaw(8000 * np.sin(2 * np.pi * 1000 * np.arange(160) / 8000))
    legs: list[Any] = []  # (transport, protocol, target) per leg, then the sender task
    for index in range(count):
        protocol = RtpLegs()
        transport, _ = await loop.create_datagram_endpoint(partial(_same, protocol), local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        handle = await connection.attach("janus.plugin.audiobridge", lambda _e: None)
        reply = await handle.request(
            {
                "request": "join",
                "room": janus_room,
                "display": f"rtp-{index}",
                "codec": "pcmu",
                "rtp": {"ip": "127.0.0.1", "port": port, "payload_type": 0},
            }
        )
        target = (reply.data["rtp"]["ip"], int(reply.data["rtp"]["port"]))
        legs.append((transport, protocol, target))

    async def send() -> None:
        seq = 0
        start = time.monotonic()
        while True:
            header = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, 0)
            for index, (transport, _, target) in enumerate(legs):
                transport.sendto(header[:8] + struct.pack("!I", 1000 + index) + payload, target)
            seq += 1
            await asyncio.sleep(max(0.0, start + seq * 0.02 - time.monotonic()))

    legs.append(asyncio.ensure_future(send()))
    return connection, legs


# -- capacity --------------------------------------------------------------------------


async def audio_step(world: CallWorld, size: int, meter: CpuMeter, webrtc: int) -> dict[str, Any]:
    """``webrtc`` aiortc participants through vrooms, the rest plain-RTP legs in the same mix."""
    webrtc = min(webrtc, size)
    members = [world.user() for _ in range(webrtc)]
    room = world.room(dict.fromkeys(members, "Attendee"))
    calls: list[Call] = []
    for index, member in enumerate(members):
        calls.append(await world.client(member).join(room, audio=ToneSource(300 + 10 * index)))
    for call in calls:
        await call.wait_until(partial(_has_remote_audio, call), 20)
    connection, legs = await join_rtp_legs(janus_endpoint(world.server), room, size - webrtc)
    rtp = [protocol for _, protocol, _ in legs[:-1]]

    def counts() -> list[int]:
        frames = [c.remote_audio.frames if c.remote_audio else 0 for c in calls]
        return frames + [sum(protocol.received.values()) for protocol in rtp]

    await asyncio.sleep(3)  # settle: jitter buffers fill, ICE consent checks start
    meter.start()
    measured = await rates(counts, 5.0)
    cpu = meter.stop()
    legs[-1].cancel()
    for transport, _, _ in legs[:-1]:
        transport.close()
    await connection.close()
    await world.close()
    world.clients.clear()
    worst_webrtc = min(measured[:webrtc])
    worst_rtp = min(measured[webrtc:], default=AUDIO_FPS)
    return {
        "participants": size,
        "webrtc": webrtc,
        "plain_rtp": size - webrtc,
        "worst_webrtc_receiver_fps": round(worst_webrtc, 1),
        "worst_rtp_receiver_pps": round(worst_rtp, 1),
        "ok": min(worst_webrtc, worst_rtp) >= FULL_RATE * AUDIO_FPS,
        "cpu_percent": cpu,
    }


async def _worker(spec: dict[str, Any]) -> None:
    """Runs in a load-generator process: join its share of participants, then measure on cue."""
    calls = [
        await CallClient(spec["endpoint"], token, ca_file=spec["ca"]).join(spec["room"], audio=ToneSource(300 + i))
        for i, token in enumerate(spec["tokens"])
    ]
    video = spec["mode"] == "video"
    if video:
        for call in calls:
            await call.start_video(PatternSource(320, 240, 15))

    def counts() -> list[int]:
        if video:
            return [sink.frames for call in calls for sink in call.remote_video.values()]
        return [call.remote_audio.frames if call.remote_audio else 0 for call in calls]

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sum(1 for n in counts() if n) < spec["expected"]:
        await asyncio.sleep(0.2)
    await asyncio.sleep(3)  # settle: jitter buffers fill, bitrates ramp up
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    measured = await rates(counts, 5.0)
    if os.environ.get("BENCH_DEBUG"):
        for call in calls:
            print(call.participant_id[:8], {k[0][:8]: v.frames for k, v in call.remote_video.items()}, file=sys.stderr)
    print(json.dumps(measured), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for call in calls:
        await call.client.close()


async def spread_step(world: CallWorld, size: int, meter: CpuMeter, mode: str, procs: int) -> dict[str, Any]:
    """``size`` aiortc participants spread over ``procs`` load-generator processes."""
    members = [world.user() for _ in range(size)]
    room = world.room(dict.fromkeys(members, "Attendee"))
    shares = [members[i::procs] for i in range(procs) if members[i::procs]]
    workers = []
    for share in shares:
        spec = {
            "mode": mode,
            "endpoint": world.server.endpoint,
            "ca": world.server.ca_path,
            "room": room,
            "tokens": [m.token for m in share],
            "expected": len(share) * (size - 1) if mode == "video" else len(share),
        }
        workers.append(
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.calls", "--worker", json.dumps(spec), stdin=PIPE, stdout=PIPE
            )
        )
    for worker in workers:
        assert worker.stdout is not None
        line = await asyncio.wait_for(worker.stdout.readline(), 120)
        assert line.strip() == b"ready", line
    meter.start([w.pid for w in workers])
    measured: list[float] = []
    for worker in workers:
        assert worker.stdin is not None and worker.stdout is not None
        worker.stdin.write(b"go\n")
        await worker.stdin.drain()
    for worker in workers:
        assert worker.stdout is not None
        measured += json.loads(await worker.stdout.readline())
    cpu = meter.stop()
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write(b"done\n")
        await worker.stdin.drain()
        await worker.wait()
    expected = size * (size - 1) if mode == "video" else size
    full = FULL_RATE * (VIDEO_FPS if mode == "video" else AUDIO_FPS)
    worst = min(measured) if measured else 0.0
    return {
        "participants": size,
        "load_processes": len(workers),
        "streams": len(measured),
        "expected_streams": expected,
        "worst_fps": round(worst, 1),
        "ok": len(measured) == expected and worst >= full,
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
    extra_env = {"VROOMS_VIDEO_BITRATE": str(args.video_bitrate)}
    server = Server(Path(tempfile.mkdtemp(prefix="vrooms-bench-calls-")), workers=1, extra_env=extra_env).start()
    try:
        world = CallWorld(server)
        meter = CpuMeter(server)
        results: dict[str, Any] = {"machine": {"cores": os.cpu_count()}, "video_bitrate": args.video_bitrate}
        print("Join latency (WebSocket open -> first remote audio frame), 10 concurrent joiners ...")
        results["join"] = await join_latency(world, args.rounds, 10)
        print(f"  {results['join']}")
        print("Largest audio-only room ...")
        results["audio_webrtc_only"] = await capacity(
            world, meter, lambda w, n, m: spread_step(w, n, m, "audio", args.procs), args.webrtc_sizes, "audio, aiortc"
        )
        results["audio"] = await capacity(
            world, meter, lambda w, n, m: audio_step(w, n, m, args.webrtc), args.audio_sizes, "audio, mixed"
        )
        print("Largest all-video room (320x240, 15 fps, everyone sees everyone) ...")
        results["video"] = await capacity(
            world, meter, lambda w, n, m: spread_step(w, n, m, "video", args.procs), args.video_sizes, "video"
        )
        return results
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="join-latency rounds of 10 joiners")
    sizes = lambda text: [int(x) for x in text.split(",")]  # noqa: E731
    parser.add_argument("--webrtc-sizes", type=sizes, default=[10, 20, 30, 40], help="all-aiortc audio rooms")
    parser.add_argument("--webrtc", type=int, default=10, help="aiortc participants in the mixed audio rooms")
    parser.add_argument("--audio-sizes", type=sizes, default=[25, 50, 75, 100, 150, 200], help="mixed audio rooms")
    parser.add_argument("--video-sizes", type=sizes, default=[4, 6, 8, 10])
    parser.add_argument("--video-bitrate", type=int, default=512_000, help="VROOMS_VIDEO_BITRATE of the server")
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes for the aiortc rooms")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(_worker(json.loads(args.worker)))
        return
    results = asyncio.run(run(args))
    save("calls", results)


if __name__ == "__main__":
    main()
