"""Media in and out for the calling SDK: synthetic sources and measuring sinks.

Sources are aiortc tracks: a sine tone (so a receiver can tell who it hears in a
mixed stream), silence, and a moving test picture. Files play through aiortc's
``MediaPlayer``; frames from code through any ``MediaStreamTrack`` subclass.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from collections import deque

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

AUDIO_RATE = 48_000
_AUDIO_PTIME = 0.020
_SAMPLES = int(AUDIO_RATE * _AUDIO_PTIME)


class ToneSource(MediaStreamTrack):
    """A sine tone at ``frequency`` Hz (0: silence), 20 ms frames, paced in real time."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0, amplitude: float = 0.3) -> None:
        super().__init__()
        self.frequency = frequency
        self.amplitude = amplitude
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._pts / AUDIO_RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        t = (np.arange(_SAMPLES) + self._pts) / AUDIO_RATE
        wave = self.amplitude * np.sin(2 * math.pi * self.frequency * t) if self.frequency else np.zeros(_SAMPLES)
        frame = AudioFrame.from_ndarray((wave * 32767).astype(np.int16).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._pts += _SAMPLES
        return frame


class PatternSource(MediaStreamTrack):
    """A moving test picture, ``width`` x ``height`` at ``fps``.

    One second of frames is drawn once, in the encoder's own format (I420), and then
    replayed: a source should cost its sender next to nothing beside the encoder.
    """

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240, fps: int = 15) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self._count = 0
        self._start: float | None = None
        ys, xs = np.mgrid[0:height, 0:width]
        base = ((xs * 255 // max(width - 1, 1)) ^ (ys * 255 // max(height - 1, 1))).astype(np.uint8)
        chroma = np.full((height // 2, width), 128, dtype=np.uint8)
        chroma[:, : width // 2] = 90
        self._planes = [np.concatenate([np.roll(base, step * width // fps, axis=1), chroma]) for step in range(fps)]

    async def recv(self) -> VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._count / self.fps - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        frame = VideoFrame.from_ndarray(self._planes[self._count % self.fps], format="yuv420p")
        frame.pts = self._count * (90_000 // self.fps)
        frame.time_base = fractions.Fraction(1, 90_000)
        self._count += 1
        return frame


def tone_amplitude(samples: np.ndarray, rate: int, frequency: float) -> float:
    """Amplitude of ``frequency`` in ``samples`` (floats in [-1, 1]; a sine of amplitude A gives about A)."""
    if not len(samples):
        return 0.0
    t = np.arange(len(samples)) / rate
    probe = np.exp(-2j * math.pi * frequency * t)
    return float(2 * abs(np.dot(samples, probe)) / len(samples))


_STALE_SECONDS = 0.5


class AudioSink:
    """Consumes a received audio track: counts frames and keeps the last half second for analysis."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        self.frames = 0
        self.first_frame_at: float | None = None
        self.last_frame_at = 0.0
        self._recent: deque[np.ndarray] = deque(maxlen=25)
        # Off while the call is on hold: the mix still arrives (AudioBridge 1.1 cannot pause it) but is not played.
        self._playing = True
        self.task = asyncio.create_task(self._run())

    @property
    def playing(self) -> bool:
        return self._playing

    @playing.setter
    def playing(self, playing: bool) -> None:
        self._playing = playing
        if not playing:
            self._recent.clear()

    async def _run(self) -> None:
        try:
            while True:
                frame = await self.track.recv()
                assert isinstance(frame, AudioFrame)
                self.last_frame_at = time.monotonic()
                if self.first_frame_at is None:
                    self.first_frame_at = self.last_frame_at
                self.frames += 1
                if not self._playing:
                    continue
                samples = frame.to_ndarray().astype(np.float32).reshape(-1, len(frame.layout.channels))
                self._recent.append(samples.mean(axis=1) / 32768.0)
        except MediaStreamError:
            pass

    def tone_level(self, frequency: float) -> float:
        """Amplitude of ``frequency`` in the last half second (a sine of amplitude A gives about A);
        nothing if the track has gone quiet (a stream that stopped sends no more frames)."""
        if not self._recent or time.monotonic() - self.last_frame_at > _STALE_SECONDS:
            return 0.0
        return tone_amplitude(np.concatenate(list(self._recent)), AUDIO_RATE, frequency)

    def level(self) -> float:
        """RMS of the last half second."""
        if not self._recent:
            return 0.0
        samples = np.concatenate(list(self._recent))
        return float(np.sqrt(np.mean(samples**2)))


class VideoSink:
    """Consumes a received video track and counts its frames."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        self.frames = 0
        self.width = self.height = 0
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            while True:
                frame = await self.track.recv()
                assert isinstance(frame, VideoFrame)
                self.frames += 1
                self.width, self.height = frame.width, frame.height
        except MediaStreamError:
            pass
