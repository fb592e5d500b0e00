"""Live captions as the call service sees them: a ``Captioner`` (``captions.service``) that it
tells what changes in a call, and that says which languages there are models for."""

from __future__ import annotations

from typing import Protocol

from vrooms.calls.call import Call, Participant


class Captioner(Protocol):
    @property
    def engine(self) -> str:
        """The engine and model that caption calls (the call UI shows it)."""

    def languages(self) -> list[str]:
        """The spoken languages there are models for (BCP 47, lower case)."""

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

    async def apply(self, call: Call) -> None:
        return None

    def joined(self, call: Call, participant: Participant) -> None:
        return None

    def left(self, call: Call, participant: Participant) -> None:
        return None

    def talking(self, call: Call, participant: Participant) -> None:
        return None
