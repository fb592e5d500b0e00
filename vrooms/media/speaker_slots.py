"""Who an unmixed media stream carries apart, when more people are in the call than it has slots
(four, as ACS's dominant speakers): a rule, free of media."""

from __future__ import annotations

import itertools


class SpeakerSlots:
    """Who has a slot of their own: everyone while there is room; then whoever talks, in the place
    of the occupant silent for longest."""

    def __init__(self, size: int) -> None:
        self.occupants: list[str | None] = [None] * size
        self._heard: dict[str, int] = {}
        self._clock = itertools.count()

    def place(self, participant_id: str, *, talking: bool) -> tuple[int, str | None] | None:
        """Give the participant a slot if they lack one (a talker may evict): (slot, evicted) or None."""
        if talking:
            self._heard[participant_id] = next(self._clock)
        if participant_id in self.occupants:
            return None
        if None in self.occupants:
            slot = self.occupants.index(None)
        elif talking:
            quietest = min(self.occupants, key=lambda p: self._heard.get(p or "", -1))
            slot = self.occupants.index(quietest)
        else:
            return None
        evicted, self.occupants[slot] = self.occupants[slot], participant_id
        return slot, evicted

    def remove(self, participant_id: str) -> int | None:
        self._heard.pop(participant_id, None)
        if participant_id not in self.occupants:
            return None
        slot = self.occupants.index(participant_id)
        self.occupants[slot] = None
        return slot
