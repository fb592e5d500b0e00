"""Voice activity detection: a speaker's audio cut into utterances, so silence costs no engine time.

WebRTC's VAD (``webrtcvad``, the Chromium/libwebrtc detector as a small C extension) classifies
each 20 ms frame. An utterance starts after ``START_FRAMES`` voiced frames within the last
``_WINDOW`` (the frames just before it are kept, so its first word is not clipped) and ends after
``END_SILENCE_SECONDS`` without speech (LiveKit's and Jitsi's endpointing sit between 0.5 s and
1 s), or after ``MAX_UTTERANCE_SECONDS`` (a caption line must end some time, even in a monologue).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from vrooms.captions.engines import SAMPLE_RATE

FRAME_BYTES = SAMPLE_RATE * 2 // 50  # 20 ms of 16-bit mono
FRAME_SECONDS = 0.02
START_FRAMES = 4
_WINDOW = 10
END_SILENCE_SECONDS = 0.7
MAX_UTTERANCE_SECONDS = 15.0
# 0 (lenient) .. 3 (strict about what counts as speech): 2 keeps a noisy phone line's hiss out.
_AGGRESSIVENESS = 2


@dataclass(frozen=True)
class Speech:
    """Audio of an utterance (the first one after silence starts it)."""

    pcm: bytes
    started: bool


@dataclass(frozen=True)
class Ended:
    """The utterance is over (silence, or it ran too long)."""


class Utterances:
    """One speaker's frames in, ``Speech`` and ``Ended`` out (nothing while silent)."""

    def __init__(self) -> None:
        import webrtcvad

        self._vad = webrtcvad.Vad(_AGGRESSIVENESS)
        self._recent: deque[tuple[bytes, bool]] = deque(maxlen=_WINDOW)
        self._speaking = False
        self._silent_frames = 0
        self._frames = 0

    @property
    def speaking(self) -> bool:
        return self._speaking

    def push(self, frame: bytes) -> list[Speech | Ended]:
        """One 20 ms frame (``FRAME_BYTES``; other sizes are refused, as the VAD would)."""
        if len(frame) != FRAME_BYTES:
            raise ValueError(f"a frame is {FRAME_BYTES} bytes (20 ms of 16 kHz 16-bit mono), not {len(frame)}")
        voiced = self._vad.is_speech(frame, SAMPLE_RATE)
        if not self._speaking:
            self._recent.append((frame, voiced))
            if sum(v for _, v in self._recent) < START_FRAMES:
                return []
            self._speaking, self._silent_frames = True, 0
            self._frames = len(self._recent)
            kept = b"".join(f for f, _ in self._recent)
            self._recent.clear()
            return [Speech(kept, started=True)]
        self._frames += 1
        self._silent_frames = 0 if voiced else self._silent_frames + 1
        events: list[Speech | Ended] = [Speech(frame, started=False)]
        silent_for = self._silent_frames * FRAME_SECONDS
        if silent_for >= END_SILENCE_SECONDS or self._frames * FRAME_SECONDS >= MAX_UTTERANCE_SECONDS:
            events.append(self.end())
        return events

    def end(self) -> Ended:
        """End the utterance now (the speaker left, or captions stopped)."""
        self._speaking, self._silent_frames, self._frames = False, 0, 0
        return Ended()
