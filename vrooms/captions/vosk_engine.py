"""Vosk (Alpha Cephei, Apache-2.0, Kaldi inside): the engine for deployments that bring models.

``VROOMS_CAPTIONS_MODELS_DIR`` holds one Vosk model per language, in a folder named by its BCP
47 tag (``en-us/``, ``ko/``): the languages offered are the folders there. A model is loaded
once per worker process and shared by its speakers' recognizers (Kaldi's model is read-only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from vrooms.captions.engines import SAMPLE_RATE, Hypothesis, UnsupportedLanguage
from vrooms.speech import Word


class VoskRecognizer:
    def __init__(self, recognizer: Any) -> None:
        self.recognizer = recognizer
        self._last = ""
        self._heard = False

    def accept(self, pcm: bytes) -> Hypothesis | None:
        self._heard = True
        self.recognizer.AcceptWaveform(pcm)  # its own endpointing is not used: ``utterances`` decides
        text = str(orjson.loads(self.recognizer.PartialResult()).get("partial", ""))
        if not text or text == self._last:
            return None
        self._last = text
        return Hypothesis(text, final=False)

    def end(self) -> Hypothesis:
        if not self._heard:
            return Hypothesis("", final=True)
        self._heard, self._last = False, ""
        result = orjson.loads(self.recognizer.FinalResult())
        words = tuple(Word(str(w["word"]), float(w["start"]), float(w["end"])) for w in result.get("result", []))
        scores = [float(w["conf"]) for w in result.get("result", [])]
        confidence = sum(scores) / len(scores) if scores else None
        return Hypothesis(str(result.get("text", "")), final=True, words=words, confidence=confidence)


class VoskEngine:
    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir
        self._models: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return f"Vosk ({', '.join(self.languages()) or 'no models'} from {self.models_dir})"

    def languages(self) -> list[str]:
        if not self.models_dir.is_dir():
            return []
        return sorted(path.name.lower() for path in self.models_dir.iterdir() if (path / "am").is_dir())

    def recognizer(self, language: str) -> VoskRecognizer:
        language = language.lower()
        if language not in self.languages():
            raise UnsupportedLanguage(language, self.languages())
        import vosk

        vosk.SetLogLevel(-1)
        model = self._models.get(language)
        if model is None:
            model = self._models[language] = vosk.Model(str(self.models_dir / language))
        recognizer = vosk.KaldiRecognizer(model, SAMPLE_RATE)
        recognizer.SetWords(True)
        return VoskRecognizer(recognizer)
