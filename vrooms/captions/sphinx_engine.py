"""PocketSphinx 5 (CMU, BSD), the embedded engine: its wheel carries an en-us acoustic model,
language model and dictionary, so captions work on a fresh machine with no download.

Its accuracy is far from the state of the art (about 0.7 word error rate on espeak-ng speech,
measured here): it proves the pipeline; a deployment that wants good captions installs a Vosk
model (README, "Live captions"). Word times come from its segmentation (``seg()``, frames of
``frate`` per second); fillers (``<s>``, ``<sil>``, ``[NOISE]``) are dropped and alternate
pronunciations (``word(2)``) named by their word.
"""

from __future__ import annotations

import re
from typing import Any

from vrooms.captions.engines import SAMPLE_RATE, Hypothesis, UnsupportedLanguage
from vrooms.speech import Word

LANGUAGE = "en-us"
_ALTERNATE = re.compile(r"\(\d+\)$")


class SphinxRecognizer:
    """One speaker's decoder: utterance after utterance (a decoder takes ~0.3 s to load)."""

    def __init__(self, decoder: Any) -> None:
        self.decoder = decoder
        self._started = False
        self._last = ""

    def accept(self, pcm: bytes) -> Hypothesis | None:
        if not self._started:
            self.decoder.start_utt()
            self._started, self._last = True, ""
        self.decoder.process_raw(pcm, False, False)
        found = self.decoder.hyp()
        text = found.hypstr if found is not None else ""
        if not text or text == self._last:
            return None
        self._last = text
        return Hypothesis(text, final=False)

    def end(self) -> Hypothesis:
        if not self._started:
            return Hypothesis("", final=True)
        self._started = False
        self.decoder.end_utt()
        found = self.decoder.hyp()
        frames = float(self.decoder.config["frate"])
        words = tuple(
            Word(_ALTERNATE.sub("", s.word), s.start_frame / frames, (s.end_frame + 1) / frames)
            for s in self.decoder.seg()
            if not s.word.startswith(("<", "[")) and s.word != "<sil>"
        )
        text = " ".join(word.text for word in words)
        confidence = min(1.0, max(0.0, float(found.prob))) if found is not None and text else None
        return Hypothesis(text, final=True, words=words, confidence=confidence)


class SphinxEngine:
    name = "PocketSphinx 5 (en-us, embedded)"

    def languages(self) -> list[str]:
        return [LANGUAGE]

    def recognizer(self, language: str) -> SphinxRecognizer:
        if language.lower() != LANGUAGE:
            raise UnsupportedLanguage(language, self.languages())
        from pocketsphinx import Decoder

        return SphinxRecognizer(Decoder(samprate=SAMPLE_RATE, loglevel="FATAL"))
