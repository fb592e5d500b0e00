"""Telephone-leg benchmark: dial-out setup latency, and how many phone legs one room carries.

Run: ``scripts/bench pstn`` (or ``.venv/bin/python -m bench.pstn``). Starts a real server
with a SIP trunk pointing at sipp (digest auth on, answers at once), its call host, Janus
and rtpengine.

- Setup latency: from the ``dialOut`` request to the phone's ``Connected`` state, and to
  the first audio of the phone's tone heard by the Presenter (the other direction is
  proven by rtpengine's counters in the capacity step). Baseline in the same run: a bare
  sipp-to-sipp call against the same carrier scenario (no auth on either), INVITE to 200.
- Capacity: N phone legs in one room (sipp answers and echoes each leg's audio back, so
  every leg also talks into the mix). A step passes when every leg receives the mix at
  >= 95% of 50 packets/s over 5 s, read from rtpengine's per-stream counters.
CPU is reported separately for the call host, rtpengine and Janus, in % of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.calls import CpuMeter, cpu_seconds
from bench.stats import percentile, save
from tests.calls import HEARD, CallWorld
from tests.phones import TONE_HZ, Carrier, Scenario, free_udp_port, trunk_env, write_tone_pcap
from tests.servers import Server
from vrooms.client import Call
from vrooms.pstn.ng import NgClient

NUMBER = "+15551234567"
FULL_RATE = 0.95 * 50


def _phone_state(call: Call, participant_id: str) -> str | None:
    return call.participants.get(participant_id, {}).get("state")


async def one_setup(world: CallWorld, call: Call, folder: Path, port: int, pcap: Path) -> tuple[float, float]:
    carrier = Carrier(folder, port, Scenario(auth=False, play=[str(pcap)], play_pause_ms=0))
    try:
        started = time.monotonic()
        participant_id = await call.dial_out(NUMBER)
        await call.wait_until(lambda: _phone_state(call, participant_id) == "Connected", 15)
        connected = time.monotonic() - started
        await call.wait_until(
            lambda: call.remote_audio is not None and call.remote_audio.tone_level(TONE_HZ) > HEARD, 10
        )
        heard = time.monotonic() - started
        await call.remove_participant(participant_id)
        carrier.finish()
        await call.wait_until(lambda: call.remote_audio is None or call.remote_audio.tone_level(TONE_HZ) < HEARD, 10)
        return connected, heard
    finally:
        carrier.stop()


def sipp_baseline(folder: Path, rounds: int) -> list[float]:
    """INVITE -> 200 of bare sipp-to-sipp calls with the same auth challenge (ms, from sipp's rtt trace)."""
    port = free_udp_port()
    server = Carrier(folder / "uas", port, Scenario(auth=False), calls=rounds)
    try:
        subprocess.run(
            [
                "sipp",
                f"127.0.0.1:{port}",
                "-sn",
                "uac",
                "-i",
                "127.0.0.1",
                "-p",
                str(free_udp_port()),
                "-m",
                str(rounds),
                "-r",
                "5",
                "-trace_rtt",
                "-rtt_freq",
                "1",
                "-default_behaviors",
                "all,-abortunexp",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=folder,
            timeout=120,
            check=False,
        )
    finally:
        server.stop()
    values = []
    for path in folder.glob("*_rtt.csv"):
        with path.open() as handle:
            for row in csv.DictReader(handle, delimiter=";"):
                value = next((v for k, v in row.items() if k and k.startswith("response_time")), None)
                if value:
                    values.append(float(value))
    return values


async def setup_latency(world: CallWorld, folder: Path, port: int, rounds: int) -> dict[str, Any]:
    presenter = world.user()
    room_id = world.room({presenter: "Presenter"})
    world.rooms.update_room(room_id=room_id, pstn_dial_out_enabled=True)
    call = await world.join(presenter, room_id)
    folder.mkdir(parents=True, exist_ok=True)
    pcap = write_tone_pcap(folder / "tone.pcap", seconds=4)
    connected, heard = [], []
    for n in range(rounds):
        c, h = await one_setup(world, call, folder / f"setup{n}", port, pcap)
        connected.append(c * 1000)
        heard.append(h * 1000)
    await call.leave()
    base = sipp_baseline(folder / "baseline", rounds)
    result: dict[str, Any] = {
        "rounds": rounds,
        "connected_ms": {"p50": round(percentile(connected, 0.5), 1), "p95": round(percentile(connected, 0.95), 1)},
        "first_audio_ms": {"p50": round(percentile(heard, 0.5), 1), "p95": round(percentile(heard, 0.95), 1)},
    }
    if base:
        result["sipp_to_sipp_ms"] = {"p50": round(percentile(base, 0.5), 1), "p95": round(percentile(base, 0.95), 1)}
        result["ratio_connected_p50"] = round(
            result["connected_ms"]["p50"] / max(result["sipp_to_sipp_ms"]["p50"], 0.1), 1
        )
    return result


def _rtpengine(server: Server) -> tuple[int, int]:
    """The managed rtpengine's pid and ng port (from its command line)."""
    pid = int((server.data_dir / "rtpengine" / "rtpengine.pid").read_text())
    args = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    port = next(int(a.rsplit(":", 1)[1]) for a in args if a.startswith("--listen-ng="))
    return pid, port


async def mix_counters(ng: NgClient) -> dict[str, int]:
    """Packets rtpengine got from the AudioBridge (the mix) per phone leg."""
    listed = await ng.request("list", limit=1000)
    counts = {}
    for call_id in listed.get("calls", []):
        reply = await ng.request("query", **{"call-id": call_id})
        room = reply.get("tags", {}).get("room", {})
        streams = room.get("medias", [{}])[0].get("streams", [])
        counts[call_id] = sum(s.get("stats", {}).get("packets", 0) for s in streams if "RTP" in s.get("flags", []))
    return counts


async def capacity_step(world: CallWorld, server: Server, folder: Path, port: int, size: int) -> dict[str, Any]:
    presenter = world.user()
    room_id = world.room({presenter: "Presenter"})
    world.rooms.update_room(room_id=room_id, pstn_dial_out_enabled=True)
    call = await world.join(presenter, room_id)
    carrier = Carrier(folder, port, Scenario(auth=False), echo=True, calls=size)
    pid, ng_port = _rtpengine(server)
    ng = NgClient("127.0.0.1", ng_port)
    await ng.open()
    try:
        ids = [await call.dial_out(NUMBER) for _ in range(size)]
        await call.wait_until(lambda: all(_phone_state(call, i) == "Connected" for i in ids), 60)
        meter = CpuMeter(server)
        meter.start()
        rtpengine_cpu0, t0 = cpu_seconds(pid), time.monotonic()
        before = await mix_counters(ng)
        await asyncio.sleep(5)
        after = await mix_counters(ng)
        wall = time.monotonic() - t0
        cpu = meter.stop()
        cpu["rtpengine"] = round(100 * (cpu_seconds(pid) - rtpengine_cpu0) / wall, 1)
        cpu.pop("load_generator", None)
        rates = sorted((after[k] - before.get(k, 0)) / wall for k in after)
        return {
            "legs": size,
            "min_pps": round(rates[0], 1) if rates else 0,
            "median_pps": round(percentile(rates, 0.5), 1) if rates else 0,
            "passed": len(rates) == size and rates[0] >= FULL_RATE,
            "cpu_percent": cpu,
            "cpu_percent_per_leg": {k: round(v / size, 2) for k, v in cpu.items()},
        }
    finally:
        ng.close()
        await call.end_for_all()
        carrier.stop()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="vrooms-bench-pstn-"))
    port = free_udp_port()
    server = Server(
        folder / "server",
        workers=1,
        extra_env={
            **trunk_env(port, f"127.0.0.1:{free_udp_port()}", legs=1000, auth=False, no_answer=30),
            "VROOMS_SIGNALING_REQUEST_BURST": "2000",
        },
    ).start()
    try:
        world = CallWorld(server)
        results: dict[str, Any] = {"machine": {"cores": os.cpu_count()}}
        print(f"Dial-out setup latency, {args.rounds} calls ...")
        results["setup"] = await setup_latency(world, folder / "setup", port, args.rounds)
        print(f"  {results['setup']}")
        results["capacity"] = []
        for size in args.sizes:
            print(f"{size} phone legs in one room ...")
            step = await capacity_step(world, server, folder / f"cap{size}", port, size)
            print(f"  {step}")
            results["capacity"].append(step)
            if not step["passed"]:
                break
        await world.close()
        return results
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--sizes", type=lambda t: [int(x) for x in t.split(",")], default=[25, 50, 100, 150])
    args = parser.parse_args()
    results = asyncio.run(run(args))
    save("pstn", results)


if __name__ == "__main__":
    main()
