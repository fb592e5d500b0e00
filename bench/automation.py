"""Call Automation benchmark: request -> callback latency, and many rooms driven at once.

Run: ``scripts/bench automation`` (or ``.venv/bin/python -m bench.automation``). Starts a
real server with a SIP trunk pointing at sipp (answers at once, echoes audio), its call
host, Janus, rtpengine and the event dispatcher; the app is the official async SDK, its
callback endpoint a local HTTP server in a thread.

- Latency, each from the SDK request to the callback's arrival at the app: ``connect`` ->
  ``CallConnected``, ``play`` (a prompt file to everyone) -> ``PlayStarted``, ``add`` (a
  phone that answers at once) -> ``AddParticipantSucceeded``, ``start_recording`` (mixed
  WAV) -> ``RecordingStateChanged`` active. Baseline in the same run: an
  authenticated no-op REST request (``GET /ping``) round trip, so the ratio says what the
  relay to the call host, the outbox and the dispatcher add.
- Load: R rooms at once, each with a phone (sipp, echo) and an app connection that loops
  "play a prompt to the phone, then recognize two digits" (the app sends the digits, the
  echo brings them back as the caller's). Reported: cycles completed per second, cycle
  p50/p95, and CPU per process in % of one core.
- Media streaming: N app connections streaming one room's mix at once (16 kHz PCM over
  WebSockets to a server in this process): AudioData messages per second per stream (full
  rate 50), CPU of Janus, the call host and all of the streams' ffmpeg processes.
- Recording: R rooms recorded at once for S seconds, each with a Presenter sending a tone
  and a 320x240 camera: CPU of Janus and the call host while recording, and the time from
  ``stop_recording`` to ``RecordingFileStatusUpdated`` (the files made: janus-pp-rec, ffmpeg
  composing and encoding H.264 for audioVideo MP4). Baseline in the same run: the same
  rooms recorded as mixed WAV (audio only).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from azure.communication.callautomation import DtmfTone, FileSource, MediaStreamingOptions, PhoneNumberIdentifier
from azure.communication.callautomation.aio import CallAutomationClient, CallConnectionClient

from bench.calls import CpuMeter, children, cpu_seconds
from bench.stats import percentile, save
from tests.calls import CallWorld
from tests.phones import Carrier, Scenario, free_udp_port, trunk_env, write_tone_wav
from tests.servers import Server, signed_headers
from tests.webhooks import CallbackReceiver, Received, Receiver, StreamReceiver
from vrooms.client import PatternSource

NUMBER = "+15551234567"
RECORDING_FILES = "Microsoft.Communication.RecordingFileStatusUpdated"
PROMPT = FileSource("file:prompt.wav")


def _ms(values: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 0.5), 1), "p95": round(percentile(values, 0.95), 1)}


async def _callback(receiver: CallbackReceiver, kind: str, connection_id: str, n: int) -> Received:
    """The connection's ``n``-th callback of ``kind`` (from 0), once it has arrived."""
    full = f"Microsoft.Communication.{kind}"
    deadline = time.monotonic() + 60
    while True:
        mine = [e for e in receiver.of_type(full) if e.type == full and e.data["callConnectionId"] == connection_id]
        if len(mine) > n:
            return mine[n]
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {kind} #{n} for {connection_id}")
        await asyncio.sleep(0.005)  # polling the receiver; the latency is its arrival time, not this


async def ping_baseline(server: Server, rounds: int) -> list[float]:
    url = f"{server.endpoint}/ping?api-version=2025-03-13"
    values = []
    with server.client() as client:
        for _ in range(rounds):
            started = time.perf_counter()
            client.get(url, headers=signed_headers(server.key, "GET", url))
            values.append((time.perf_counter() - started) * 1000)
    return values


async def latencies(
    world: CallWorld, app: CallAutomationClient, receiver: CallbackReceiver, folder: Path, port: int, rounds: int
) -> dict[str, Any]:
    presenter = world.user()
    room_id = world.room({presenter: "Presenter"})
    world.rooms.update_room(room_id=room_id, pstn_dial_out_enabled=True)
    call = await world.join(presenter, room_id)
    connect, play, add, record = [], [], [], []
    for n in range(rounds):
        started = time.time()
        properties = await app.connect_call(callback_url=receiver.url, room_id=room_id)
        connection_id = str(properties.call_connection_id)
        connected = await _callback(receiver, "CallConnected", connection_id, 0)
        connect.append((connected.at - started) * 1000)
        connection = app.get_call_connection(connection_id)
        started = time.time()
        await connection.play_media([PROMPT])
        play.append(((await _callback(receiver, "PlayStarted", connection_id, 0)).at - started) * 1000)
        carrier = Carrier(folder / f"add{n}", port, Scenario(auth=False))
        started = time.time()
        await connection.add_participant(PhoneNumberIdentifier(NUMBER))
        added = await _callback(receiver, "AddParticipantSucceeded", connection_id, 0)
        add.append((added.at - started) * 1000)
        started = time.time()
        recording = await app.start_recording(  # WAV: an MP4's composition after each stop would load the next round
            call_connection_id=connection_id,
            recording_state_callback_url=receiver.url,
            recording_content_type="audio",
            recording_format_type="wav",
        )
        recording_started = await _callback(receiver, "RecordingStateChanged", connection_id, 0)
        record.append((recording_started.at - started) * 1000)
        await app.stop_recording(str(recording.recording_id))
        await connection.remove_participant(PhoneNumberIdentifier(NUMBER))
        await connection.cancel_all_media_operations()
        await connection.hang_up(is_for_everyone=False)
        carrier.finish()
        carrier.stop()
    await call.leave()
    base = await ping_baseline(world.server, rounds)
    result: dict[str, Any] = {
        "rounds": rounds,
        "connect_ms": _ms(connect),
        "play_ms": _ms(play),
        "add_phone_ms": _ms(add),
        "start_recording_ms": _ms(record),
    }
    result["ping_ms"] = _ms(base)
    result["ratios_p50"] = {
        name: round(result[name]["p50"] / max(result["ping_ms"]["p50"], 0.1), 1)
        for name in ("connect_ms", "play_ms", "add_phone_ms", "start_recording_ms")
    }
    return result


async def _ivr_loop(
    connection: CallConnectionClient, receiver: CallbackReceiver, connection_id: str, stop_at: float
) -> list[float]:
    """Prompt the phone, then recognize two digits (sent by the app, echoed by the phone)."""
    target = PhoneNumberIdentifier(NUMBER)
    cycles: list[float] = []
    while time.monotonic() < stop_at:
        started = time.monotonic()
        await connection.play_media([PROMPT], play_to=[target])
        await _callback(receiver, "PlayCompleted", connection_id, len(cycles))
        await connection.start_recognizing_media(
            "dtmf", target, dtmf_max_tones_to_collect=2, initial_silence_timeout=10
        )
        await connection.send_dtmf_tones([DtmfTone.ONE, DtmfTone.TWO], target)
        await _callback(receiver, "RecognizeCompleted", connection_id, len(cycles))
        cycles.append(time.monotonic() - started)
    return cycles


async def load(
    world: CallWorld,
    app: CallAutomationClient,
    receiver: CallbackReceiver,
    server: Server,
    folder: Path,
    port: int,
    rooms: int,
    seconds: float,
) -> dict[str, Any]:
    carrier = Carrier(folder, port, Scenario(auth=False), echo=True, calls=rooms)
    connections = []
    try:
        for _ in range(rooms):
            presenter = world.user()
            room_id = world.room({presenter: "Presenter"})
            world.rooms.update_room(room_id=room_id, pstn_dial_out_enabled=True)
            properties = await app.connect_call(callback_url=receiver.url, room_id=room_id)
            connection_id = str(properties.call_connection_id)
            connection = app.get_call_connection(connection_id)
            await connection.add_participant(PhoneNumberIdentifier(NUMBER))
            await _callback(receiver, "AddParticipantSucceeded", connection_id, 0)
            connections.append((connection, connection_id))
        meter = CpuMeter(server)
        extra = _extra_processes(server)
        meter.start()
        c0, t0 = {k: cpu_seconds(p) for k, p in extra.items()}, time.monotonic()
        stop_at = time.monotonic() + seconds
        cycles = await asyncio.gather(*(_ivr_loop(c, receiver, cid, stop_at) for c, cid in connections))
        wall = time.monotonic() - t0
        cpu = meter.stop()
        cpu.update({k: round(100 * (cpu_seconds(p) - c0[k]) / wall, 1) for k, p in extra.items()})
        done = [c * 1000 for room in cycles for c in room]
        return {
            "rooms": rooms,
            "seconds": round(wall, 1),
            "cycles": len(done),
            "cycles_per_second": round(len(done) / wall, 1),
            "cycle_ms": _ms(done),
            "cpu_percent": cpu,
        }
    finally:
        for connection, _ in connections:
            await connection.hang_up(is_for_everyone=True)
        carrier.stop()


async def streaming(
    world: CallWorld, app: CallAutomationClient, receiver: CallbackReceiver, server: Server, size: int
) -> dict[str, Any]:
    """``size`` app connections streaming one room's mix at once (16 kHz PCM to a local WebSocket)."""
    sink = await StreamReceiver().start()
    presenter = world.user()
    room_id = world.room({presenter: "Presenter"})
    call = await world.join(presenter, room_id, tone=440.0)
    connections = []
    try:
        meter = CpuMeter(server)
        for _ in range(size):
            options = MediaStreamingOptions(
                transport_url=sink.url,
                transport_type="websocket",
                content_type="audio",
                audio_channel_type="mixed",
                start_media_streaming=True,
            )
            properties = await app.connect_call(callback_url=receiver.url, room_id=room_id, media_streaming=options)
            connection_id = str(properties.call_connection_id)
            await _callback(receiver, "MediaStreamingStarted", connection_id, 0)
            connections.append(app.get_call_connection(connection_id))
        await sink.wait_for_audio(size * 100)  # every stream running for a while
        streamers = [p for p in children(meter.call_host) if "ffmpeg" in Path(f"/proc/{p}/cmdline").read_text()]
        meter.start()
        f0, t0 = sum(map(cpu_seconds, streamers)), time.monotonic()
        per_stream = await _frames_per_stream(sink, 5.0)
        wall = time.monotonic() - t0
        cpu = meter.stop()
        cpu["ffmpeg_all"] = round(100 * (sum(map(cpu_seconds, streamers)) - f0) / wall, 1)
        return {
            "streams": size,
            "frames_per_second_min": round(min(per_stream), 1),
            "frames_per_second_median": round(percentile(per_stream, 0.5), 1),
            "cpu_percent": cpu,
        }
    finally:
        for connection in connections:
            await connection.hang_up(is_for_everyone=False)
        await call.leave()
        await sink.stop()


async def recordings(
    world: CallWorld, app: CallAutomationClient, server: Server, rooms: int, seconds: float
) -> dict[str, Any]:
    """``rooms`` calls (a Presenter with a tone and a camera each) recorded at once, as MP4 and as WAV."""
    hook = Receiver().start()
    server.cli("events", "subscribe", "bench-recordings", hook.url, "--type", RECORDING_FILES)
    calls, room_ids = [], []
    try:
        for _ in range(rooms):
            presenter = world.user()
            room_ids.append(world.room({presenter: "Presenter"}))
            calls.append(await world.join(presenter, room_ids[-1], tone=440.0))
            await calls[-1].start_video(PatternSource())
        result: dict[str, Any] = {"rooms": rooms, "seconds": seconds}
        for content, fmt in (("audio", "wav"), ("audioVideo", "mp4")):
            meter = CpuMeter(server)
            meter.start()
            started = [
                await app.start_recording(room_id=room_id, recording_content_type=content, recording_format_type=fmt)
                for room_id in room_ids
            ]
            await asyncio.sleep(seconds)  # the recorded stretch: a window, not a wait for something
            cpu = meter.stop()
            before, stopped_at = len(hook.of_type(RECORDING_FILES)), time.time()
            for recording in started:
                await app.stop_recording(str(recording.recording_id))
            ready = (await hook.wait_for(before + rooms, RECORDING_FILES, timeout=120 + 10 * seconds))[before:]
            result[fmt] = {
                "cpu_percent_recording": cpu,
                "stop_to_files_ms": _ms([(e.at - stopped_at) * 1000 for e in ready]),
            }
        result["ratio_p50_mp4_to_wav"] = round(
            result["mp4"]["stop_to_files_ms"]["p50"] / max(result["wav"]["stop_to_files_ms"]["p50"], 0.1), 1
        )
        return result
    finally:
        for call in calls:
            await call.leave()
        server.cli("events", "unsubscribe", "bench-recordings")
        hook.stop()


async def _frames_per_stream(sink: StreamReceiver, seconds: float) -> list[float]:
    """AudioData messages per second of each WebSocket over ``seconds`` (full rate: 50)."""
    before = sink.per_socket()
    await asyncio.sleep(seconds)  # the measurement window itself
    after = sink.per_socket()
    return [(after[k] - before.get(k, 0)) / seconds for k in after]


def _extra_processes(server: Server) -> dict[str, int]:
    """rtpengine, the event dispatcher and the REST worker, beside CpuMeter's Janus and call host."""
    assert server.process is not None
    found = {"rtpengine": int((server.data_dir / "rtpengine" / "rtpengine.pid").read_text())}
    for pid in children(server.process.pid):
        command = Path(f"/proc/{pid}/cmdline").read_text()
        if "vrooms.events.dispatcher" in command:
            found["dispatcher"] = pid
    found["rest_worker_and_launcher"] = server.process.pid
    return found


async def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="vrooms-bench-automation-"))
    prompts = folder / "prompts"
    prompts.mkdir()
    write_tone_wav(prompts / "prompt.wav", 1.0, 1000.0)
    port = free_udp_port()
    server = Server(
        folder / "server",
        workers=1,
        extra_env={
            **trunk_env(port, f"127.0.0.1:{free_udp_port()}", legs=100, auth=False, no_answer=30),
            "VROOMS_PROMPTS_DIR": str(prompts),
        },
    ).start()
    receiver = CallbackReceiver().start()
    app = CallAutomationClient.from_connection_string(server.connection_string, connection_verify=server.ca_path)
    try:
        world = CallWorld(server)
        results: dict[str, Any] = {"machine": {"cores": os.cpu_count()}}
        print(f"Request -> callback latency, {args.rounds} rounds ...")
        results["latency"] = await latencies(world, app, receiver, folder / "latency", port, args.rounds)
        print(f"  {results['latency']}")
        print(f"{args.rooms} rooms prompting and recognizing DTMF for {args.seconds} s ...")
        results["load"] = await load(world, app, receiver, server, folder / "load", port, args.rooms, args.seconds)
        print(f"  {results['load']}")
        results["streaming"] = []
        for size in args.streams:
            print(f"{size} media streams of one room's mix ...")
            results["streaming"].append(await streaming(world, app, receiver, server, size))
            print(f"  {results['streaming'][-1]}")
        results["recording"] = []
        for rooms in args.recorded_rooms:
            print(f"{rooms} rooms recorded at once for {args.recorded_seconds} s (WAV, then MP4) ...")
            results["recording"].append(await recordings(world, app, server, rooms, args.recorded_seconds))
            print(f"  {results['recording'][-1]}")
        await world.close()
        return results
    finally:
        await app.close()
        receiver.stop()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--streams", type=lambda v: [int(n) for n in v.split(",")], default=[5, 10, 20, 40])
    parser.add_argument("--recorded-rooms", type=lambda v: [int(n) for n in v.split(",")], default=[1, 4])
    parser.add_argument("--recorded-seconds", type=float, default=20.0)
    args = parser.parse_args()
    results = asyncio.run(run(args))
    save("automation", results)


if __name__ == "__main__":
    main()
