"""Live captions as the rest of the call host sees them.

The call service tells a ``Captioner`` (``captions.service``) what changes in a call, and asks
which languages there are models for. Call Automation transcription and a recording's
transcript hear the same text through ``Transcripts``: one recognition per speaker and
language, whoever asked for it, so a call both captioned and transcribed in one language
decodes each speaker once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from vrooms.calls.call import Call, Participant
from vrooms.speech import Caption

# The holder of the call's speakers apart (``Call.take_speakers_apart``) while any text is made.
LIVE_TEXT = "captions"

# Called in the call host's event loop for every partial and final caption of a speaker.
CaptionSink = Callable[[Caption, Participant], None]


class LiveTextUnavailable(Exception):
    """The call's speakers cannot be taken apart now (an unmixed media stream has them)."""


class Transcripts(Protocol):
    def languages(self) -> list[str]:
        """The spoken languages there are models for (BCP 47, lower case)."""

    async def listen(self, call: Call, key: str, language: str | None, sink: CaptionSink) -> None:
        """``sink`` hears the call's captions until ``unlisten``. With a ``language``, the call's
        speakers are recognized in it for as long as anyone listens so (raises
        ``LiveTextUnavailable``); with None, it hears only what runs for others."""

    async def unlisten(self, call: Call, key: str) -> None: ...


class Captioner(Transcripts, Protocol):
    @property
    def engine(self) -> str:
        """The engine and model that caption calls (the call UI shows it)."""

    async def apply(self, call: Call) -> None:
        """Bring the call's captions to its state: on, off (the call ended too), or a new language."""

    def joined(self, call: Call, participant: Participant) -> None: ...

    def left(self, call: Call, participant: Participant) -> None: ...

    def talking(self, call: Call, participant: Participant) -> None: ...


class NoCaptioner:
    """No engine: captions are only a state (unit tests of the call service)."""

    engine = ""

    def languages(self) -> list[str]:
        return ["en-us"]

    async def listen(self, call: Call, key: str, language: str | None, sink: CaptionSink) -> None:
        return None

    async def unlisten(self, call: Call, key: str) -> None:
        return None

    async def apply(self, call: Call) -> None:
        return None

    def joined(self, call: Call, participant: Participant) -> None:
        return None

    def left(self, call: Call, participant: Participant) -> None:
        return None

    def talking(self, call: Call, participant: Participant) -> None:
        return None
