"""Live captions benchmark: how many speakers the engine keeps up with, and how late a caption is.

Run: ``scripts/bench captions`` (or ``.venv/bin/python -m bench.captions``). No server: the
pipeline a call's captions run (``SpeakerTranscriber`` → VAD → ``RecognizerPool`` workers), fed
espeak-ng sentences with pauses between them.

- Throughput: ``speakers`` transcribers (1, 2, 4) each pushed ``--seconds`` of speech as fast as
  they take it, with ``--workers`` worker processes; the result is seconds of audio decoded per
  second of wall time. The baseline is real time (1.0 per speaker): a ratio ≥ 1 per speaker
  means every speaker is captioned as fast as they talk.
- Latency: one speaker pushed at real-time pace (20 ms frames every 20 ms); from the last frame
  of each utterance (its end of speech) to its Final caption, p50/p95, minus the VAD's
  ``END_SILENCE_SECONDS`` wait that any endpointing has.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

from bench.captions_call import through_a_call
from bench.stats import percentile, save
from tests.audio_files import spoken_pcm, transcribe
from vrooms.captions.engines import EngineChoice
from vrooms.captions.transcriber import SpeakerTranscriber
from vrooms.captions.utterances import END_SILENCE_SECONDS, FRAME_BYTES, FRAME_SECONDS
from vrooms.captions.workers import RecognizerPool
from vrooms.speech import Caption

# The word error rate's corpus: 32 sentences of a clinic's and a classroom's day.
CORPUS = [
    "good morning and welcome to the clinic",
    "please tell me your name and date of birth",
    "how long have you had this cough",
    "do you have any allergies to medicine",
    "the nurse will take your blood pressure",
    "breathe in slowly and hold your breath",
    "your test results came back this morning",
    "everything looks normal so far",
    "take one tablet twice a day with food",
    "come back in two weeks for a check up",
    "is the pain worse at night or in the day",
    "we will send the prescription to your pharmacy",
    "please switch on your camera for a moment",
    "can everyone hear me clearly",
    "today we start a new chapter on plants",
    "open your books at page forty two",
    "who can tell me what a cell is",
    "the sun gives energy to every living thing",
    "water moves from the roots to the leaves",
    "write down three questions for next time",
    "the homework is due on friday morning",
    "please raise your hand before you speak",
    "let us take a short break of five minutes",
    "the meeting will end at half past four",
    "i will share my screen in a second",
    "thank you all for joining the call today",
    "the weather will be cold and windy tomorrow",
    "our train leaves the station at seven",
    "the children played football in the park",
    "she bought apples and bread at the market",
    "the library opens at nine every day",
    "have a good evening and see you soon",
]
SENTENCES = [
    "good morning everyone and welcome to the class",
    "today we talk about the heart and the lungs",
    "please keep your microphone muted unless you speak",
    "the doctor will see you in a few minutes",
]


def _speech(text: str) -> bytes:
    pcm = spoken_pcm(text, 16000)
    return pcm[: len(pcm) // FRAME_BYTES * FRAME_BYTES] + bytes(32000)  # a second's pause after it


def _audio(seconds: float) -> bytes:
    one_round = b"".join(_speech(text) for text in SENTENCES)
    rounds = max(1, round(seconds * 32000 / len(one_round)))
    return one_round * rounds


async def _throughput(pool: RecognizerPool, pcm: bytes, speakers: int) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(transcribe(pool, pcm) for _ in range(speakers)))  # as fast as each decodes
    return speakers * len(pcm) / 32000 / (time.perf_counter() - started)


async def _latency(pool: RecognizerPool, rounds: int) -> list[float]:
    ends: list[float] = []
    finals: list[float] = []

    def heard(caption: Caption) -> None:
        if caption.final:
            finals.append(time.perf_counter())

    transcriber = SpeakerTranscriber(pool, "speaker", "en-us", heard)
    await transcriber.start()
    loop = asyncio.get_running_loop()
    for text in SENTENCES * rounds:
        utterance = _speech(text)
        speech_frames = (len(utterance) - 32000) // FRAME_BYTES
        tick = loop.time()
        for index in range(len(utterance) // FRAME_BYTES):
            transcriber.push(utterance[index * FRAME_BYTES : (index + 1) * FRAME_BYTES])
            if index == speech_frames - 1:
                ends.append(time.perf_counter())
            tick += FRAME_SECONDS
            await asyncio.sleep(max(0.0, tick - loop.time()))
    await transcriber.close()
    return [final - end - END_SILENCE_SECONDS for end, final in zip(ends, finals, strict=False)]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="speech per speaker for the throughput")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the sentences for the latency")
    parser.add_argument("--no-call", action="store_true", help="skip the part through a real call")
    args = parser.parse_args()
    pcm = _audio(args.seconds)
    pool = RecognizerPool(EngineChoice("pocketsphinx"), args.workers)
    await pool.start()
    try:
        throughput = {str(n): round(await _throughput(pool, pcm, n), 2) for n in (1, 2, 4)}
        delays = await _latency(pool, args.rounds)
        call = {} if args.no_call else await through_a_call(pool, CORPUS)
    finally:
        pool.shutdown()
    results: dict[str, Any] = {
        "engine": pool.engine_name,
        "workers": args.workers,
        "cores": os.cpu_count(),
        "audio_seconds_per_speaker": round(len(pcm) / 32000, 1),
        "decoded_seconds_per_wall_second_by_speakers": throughput,
        "per_speaker_vs_real_time": {n: round(v / int(n), 2) for n, v in throughput.items()},
        "final_after_end_of_speech_seconds": {
            "p50": round(percentile(delays, 0.5), 3),
            "p95": round(percentile(delays, 0.95), 3),
            "n": len(delays),
        },
        "most_speakers_at_real_time": int(max(throughput.values())),
        "through_a_call": call,
    }
    save("captions", results)


if __name__ == "__main__":
    asyncio.run(main())
