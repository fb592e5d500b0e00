"""The streaming interface every speech engine implements, and how a deployment picks one.

An engine knows which languages it has a model for; a ``Recognizer`` decodes the speech of
one speaker, utterance after utterance: PCM in (16-bit mono at ``SAMPLE_RATE``), a partial
hypothesis whenever it has a new one, and the final one when the utterance ends. Recognizers
are stateful and slow: they live in the worker processes (``captions.workers``), never in the
call host's event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from vrooms.speech import Word

SAMPLE_RATE = 16_000
BYTES_PER_SECOND = SAMPLE_RATE * 2


@dataclass(frozen=True)
class Hypothesis:
    text: str
    final: bool
    words: tuple[Word, ...] = ()
    # 0..1 where the engine says; None where it does not.
    confidence: float | None = None


class UnsupportedLanguage(Exception):
    """No model for the language: the message names the languages there are."""

    def __init__(self, language: str, supported: list[str]) -> None:
        super().__init__(f"No captions model for {language!r}; supported: {', '.join(supported) or 'none'}.")
        self.language = language
        self.supported = supported

    def __reduce__(self) -> tuple[type[UnsupportedLanguage], tuple[str, list[str]]]:
        return UnsupportedLanguage, (self.language, self.supported)  # raised in a worker, re-raised here


class Recognizer(Protocol):
    def accept(self, pcm: bytes) -> Hypothesis | None:
        """Decode more of the utterance (the first audio after ``end`` starts the next one); the
        partial hypothesis so far, if it changed."""

    def end(self) -> Hypothesis:
        """The utterance is over: its final hypothesis (text may be empty; empty without audio)."""


class Engine(Protocol):
    @property
    def name(self) -> str:
        """The engine and model the call UI shows (which engine captions the call)."""

    def languages(self) -> list[str]:
        """BCP 47 tags of the installed models, lower case (``en-us``)."""

    def recognizer(self, language: str) -> Recognizer:
        """Raises ``UnsupportedLanguage``."""


@dataclass(frozen=True)
class EngineChoice:
    """What a worker process needs to load the engine (it is built there, not sent there)."""

    kind: str  # "pocketsphinx" | "vosk"
    models_dir: Path | None = None


def load(choice: EngineChoice) -> Engine:
    if choice.kind == "vosk":
        from vrooms.captions.vosk_engine import VoskEngine

        if choice.models_dir is None:
            raise ValueError("the Vosk engine needs VOSK models: set VROOMS_CAPTIONS_MODELS_DIR")
        return VoskEngine(choice.models_dir)
    from vrooms.captions.sphinx_engine import SphinxEngine

    return SphinxEngine()
