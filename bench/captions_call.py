"""Live captions through a real call (part of ``scripts/bench captions``): a corpus of sentences
said by espeak-ng, sent by an aiortc participant through Janus, captioned by the server, read
by another participant.

- Word error rate through the call, against the same engine fed the same audio directly (the
  baseline, measured in the same run): what the pipeline (Opus, the AudioBridge's isolation,
  the decoder, the VAD's cuts) costs in accuracy.
- End of speech to Final at the receiver: the speaker's track notes when it hands on the last
  frame of each sentence; the receiver notes when the sentence's Final arrives (polled every
  10 ms). The VAD's endpointing wait (0.7 s) is part of it.
- Partial cadence: the time between consecutive Partials of one sentence at the receiver.
- CPU per captioned speaker: the call host and its children but Janus (engine workers, audio
  decoders), while the sentences are said; baseline the same call with captions off.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaPlayer
from av.frame import Frame
from av.packet import Packet

from bench.calls import children, cpu_seconds
from bench.stats import percentile
from tests.audio_files import spoken_pcm, transcribe, wav_pcm, word_error_rate, write_wav
from tests.calls import CallWorld, Member
from tests.servers import Server
from vrooms.captions.workers import RecognizerPool
from vrooms.client import Call

_RATE = 48000
_PAUSE_SECONDS = 1.5
_LEAD_SECONDS = 1.5


class _TimedTrack(MediaStreamTrack):
    """The player's audio, noting the wall time at which each sentence's last frame is sent."""

    kind = "audio"

    def __init__(self, source: MediaStreamTrack, ends: list[float]) -> None:
        super().__init__()
        self._source = source
        self._ends = list(ends)  # seconds into the file
        self.sent_ends: list[float] = []
        self.done = asyncio.Event()

    async def recv(self) -> Frame | Packet[Any]:
        try:
            frame = await self._source.recv()
        except Exception:
            self.done.set()
            raise
        at = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else 0.0
        while self._ends and at >= self._ends[0]:
            self._ends.pop(0)
            self.sent_ends.append(time.perf_counter())
        return frame


def _corpus_wav(path: Path, sentences: list[str]) -> tuple[Path, list[float]]:
    """The sentences with pauses, as a WAV; where each sentence ends (seconds into the file)."""
    pcm, ends = bytes(2 * int(_LEAD_SECONDS * _RATE)), []
    for text in sentences:
        pcm += spoken_pcm(text, _RATE)
        ends.append(len(pcm) / 2 / _RATE)
        pcm += bytes(2 * int(_PAUSE_SECONDS * _RATE))
    return write_wav(path, pcm, _RATE), ends


def _captions_cpu(server: Server) -> float:
    """CPU seconds of the call host and its children but Janus."""
    host = server.call_host_pid()
    janus = server.janus_pid()
    return sum(cpu_seconds(p) for p in [host, *children(host)] if p != janus)


async def _say(
    world: CallWorld, room_id: str, speaker: Member, said: tuple[Path, list[float]], watching: Call
) -> dict[str, Any]:
    """The speaker says the file's sentences, then leaves; what the watcher received, with arrival times."""
    wav, ends = said
    track = _TimedTrack(MediaPlayer(str(wav)).audio, ends)  # type: ignore[arg-type]
    arrivals: list[tuple[float, dict[str, Any]]] = []
    seen = len(watching.captions_received)
    cpu_before, started = _captions_cpu(world.server), time.perf_counter()
    call = await world.client(speaker).join(room_id, audio=track, display_name="Ann")
    while not track.done.is_set() or time.perf_counter() - started < ends[-1] + 4:
        for message in watching.captions_received[seen:]:
            arrivals.append((time.perf_counter(), message))
        seen = len(watching.captions_received)
        await asyncio.sleep(0.01)
    cpu = (_captions_cpu(world.server) - cpu_before) / (time.perf_counter() - started)
    await call.leave()
    return {"arrivals": arrivals, "sent_ends": track.sent_ends, "cpu": cpu}


def _final_delays(sent_ends: list[float], arrivals: list[tuple[float, dict[str, Any]]]) -> list[float]:
    """Each Final against the last sentence end sent before it arrived."""
    delays = []
    for at, message in arrivals:
        if message["resultType"] == "Final":
            before = [end for end in sent_ends if end < at]
            if before:
                delays.append(at - before[-1])
    return delays


def _partial_gaps(arrivals: list[tuple[float, dict[str, Any]]]) -> list[float]:
    gaps, last = [], None
    for at, message in arrivals:
        if message["resultType"] == "Partial":
            if last is not None:
                gaps.append(at - last)
            last = at
        else:
            last = None
    return gaps


async def through_a_call(pool: RecognizerPool, sentences: list[str]) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="vrooms-bench-captions-"))
    corpus, short = _corpus_wav(folder / "corpus.wav", sentences), _corpus_wav(folder / "five.wav", sentences[:5])
    direct = " ".join(c.text for c in await transcribe(pool, wav_pcm(corpus[0], 16000)) if c.final)
    server = await asyncio.to_thread(Server(folder / "server", workers=1).start)
    world = CallWorld(server)
    try:
        viewer, speaker = world.user(), world.user()
        room_id = world.room({viewer: "Consumer", speaker: "Attendee"})
        watching = await world.join(viewer, room_id)
        baseline = await _say(world, room_id, speaker, short, watching)  # captions off
        await watching.start_captions()
        said = await _say(world, room_id, speaker, corpus, watching)
    finally:
        await world.close()
        await asyncio.to_thread(server.stop)
    finals = [m["spokenText"] for _, m in said["arrivals"] if m["resultType"] == "Final"]
    reference = " ".join(sentences)
    delays, gaps = _final_delays(said["sent_ends"], said["arrivals"]), _partial_gaps(said["arrivals"])
    return {
        "sentences": len(sentences),
        "word_error_rate": {
            "through_the_call": round(word_error_rate(reference, " ".join(finals)), 3),
            "engine_fed_directly": round(word_error_rate(reference, direct), 3),
        },
        "end_of_speech_to_final_at_receiver_seconds": {
            "p50": round(percentile(delays, 0.5), 3),
            "p95": round(percentile(delays, 0.95), 3),
            "n": len(delays),
        },
        "partial_interval_seconds": {"p50": round(percentile(gaps, 0.5), 3), "p95": round(percentile(gaps, 0.95), 3)},
        "cpu_percent_of_a_core": {
            "one_captioned_speaker": round(100 * said["cpu"], 1),
            "same_call_captions_off": round(100 * baseline["cpu"], 1),
        },
    }
