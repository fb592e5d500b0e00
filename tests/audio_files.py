"""Audio in tests: speech said by espeak-ng (and what the engine makes of it fed directly), recorded
files decoded with PyAV and probed for tones per window and for pictures."""

from __future__ import annotations

import asyncio
import io
import subprocess
import wave
from pathlib import Path

import av
import numpy as np

from vrooms.captions.transcriber import SpeakerTranscriber
from vrooms.captions.utterances import FRAME_BYTES
from vrooms.captions.workers import RecognizerPool
from vrooms.client.media import tone_amplitude
from vrooms.speech import Caption


def spoken_pcm(text: str, rate: int, voice: str = "en-us") -> bytes:
    """espeak-ng saying ``text``, as 16-bit mono PCM at ``rate`` (ffmpeg resamples its 22.05 kHz)."""
    spoken = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], capture_output=True, check=True).stdout
    return subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", "pipe:0", "-ar", str(rate), "-ac", "1", "-f", "s16le", "pipe:1"],
        input=spoken,
        capture_output=True,
        check=True,
    ).stdout


def speech_wav(path: Path, text: str, rate: int = 48000, pause_seconds: float = 1.0) -> Path:
    """A WAV of espeak-ng saying ``text``, then ``pause_seconds`` of silence (a sentence, a pause)."""
    return write_wav(path, spoken_pcm(text, rate) + bytes(2 * int(pause_seconds * rate)), rate)


def write_wav(path: Path, pcm: bytes, rate: int) -> Path:
    """16-bit mono PCM at ``rate`` as a WAV file."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return path


def wav_pcm(path: Path, rate: int) -> bytes:
    """A WAV file's audio as 16-bit mono PCM at ``rate`` (what an engine fed directly hears)."""
    return subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", str(path), "-ar", str(rate), "-ac", "1", "-f", "s16le", "pipe:1"],
        capture_output=True,
        check=True,
    ).stdout


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words: the Levenshtein distance over words."""
    ref, hyp = reference.lower().split(), hypothesis.lower().split()
    row = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, heard in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (word != heard))
    return row[-1] / max(1, len(ref))


def turns_wav(path: Path, turns: list[tuple[str, bool]], rate: int = 48000, lead_seconds: float = 1.5) -> Path:
    """One speaker's side of a conversation: each turn is a sentence said (True) or the silence of
    someone else saying it (False), a 1.5 s pause after each; ``lead_seconds`` of silence first."""
    pcm = bytes(2 * int(lead_seconds * rate))
    for text, own in turns:
        spoken = spoken_pcm(text, rate)
        pcm += (spoken if own else bytes(len(spoken))) + bytes(2 * int(1.5 * rate))
    return write_wav(path, pcm, rate)


async def transcribe(pool: RecognizerPool, pcm: bytes, language: str = "en-us") -> list[Caption]:
    """What the engine makes of ``pcm`` (16 kHz) fed to it directly, as fast as it decodes."""
    captions: list[Caption] = []
    transcriber = SpeakerTranscriber(pool, "speaker-1", language, captions.append)
    await transcriber.start()
    for start in range(0, len(pcm) // FRAME_BYTES * FRAME_BYTES, FRAME_BYTES):
        transcriber.push(pcm[start : start + FRAME_BYTES])
        while transcriber.backlog_seconds > 2.0:  # never dropping a frame
            await asyncio.sleep(0.005)
    await transcriber.close()
    assert transcriber.dropped_frames == 0
    return captions


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """Mono float samples of an audio file (WAV, MP3, ...) and their rate."""
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        rate = int(stream.rate)
        chunks = [_mono(frame.to_ndarray(), len(frame.layout.channels)) for frame in container.decode(stream)]
    return (np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)), rate


def _mono(array: np.ndarray, channels: int) -> np.ndarray:
    scale = 32768.0 if array.dtype == np.int16 else 1.0
    return (
        array.astype(np.float32).reshape(-1, channels).mean(axis=1) / scale
        if channels > 1
        else array.astype(np.float32).reshape(-1) / scale
    )


def tone_per_second(data: bytes, frequency: float) -> list[float]:
    """The amplitude of ``frequency`` in each whole second of the file."""
    samples, rate = decode(data)
    return [tone_amplitude(samples[i : i + rate], rate, frequency) for i in range(0, len(samples) - rate + 1, rate)]


def video_info(data: bytes) -> tuple[str, int, int, float]:
    """Codec, width, height and duration (seconds) of a file's video stream."""
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        duration = float(container.duration or 0) / av.time_base
        return str(stream.codec_context.name), int(stream.width), int(stream.height), duration


def gray_frame_at(data: bytes, seconds: float) -> np.ndarray:
    """The luma of the first picture at or after ``seconds`` (height x width, 0-255)."""
    with av.open(io.BytesIO(data), mode="r") as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= seconds:
                return np.asarray(frame.to_ndarray(format="gray"))
    raise AssertionError(f"no picture at {seconds} s")
