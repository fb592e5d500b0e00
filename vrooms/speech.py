"""What speech recognition produces, as every domain that uses it sees it.

A leaf module (no vrooms imports): the engines (``captions``) make these in worker processes,
and the call's captions, Call Automation transcription and the recording's transcript
(``calls.captioning``) read them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Word:
    text: str
    # Seconds from the utterance's start.
    start: float
    end: float


@dataclass(frozen=True)
class Caption:
    """A hypothesis of one speaker's utterance: partial while it grows, then final."""

    speaker: str  # the participant id
    text: str
    final: bool
    language: str
    # Seconds since the speaker's transcriber started: where the utterance began, how long it is so far.
    offset: float
    duration: float
    words: tuple[Word, ...] = ()
    confidence: float | None = None
    # Where the utterance began, in seconds since the epoch (a transcript's cue times).
    began_at: float = 0.0
