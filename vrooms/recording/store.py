"""Recordings on disk: one private folder per recording, its state in ``state.json``.

The folder is the recording's only record, so a restart finds everything again: the
call host reads the states of recordings it did not finish (and finishes them); the
REST workers read the documents of finished ones to serve them. ``state.json`` is
replaced atomically at every change, so it is always a state the recording was in.

Layout of ``<data_dir>/recordings/<recordingId>/``: ``mix-<segment>.wav`` (the mix while
recording, written by Janus), ``<segment>-<participantId>-audio.mjr`` (one participant),
``<segment>-<participantId>-<source>-video-<n>.mjr`` (a camera or screen), the documents
``document-<n>.<format>``, and ``state.json``.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from vrooms.store.files import DIRECTORY_MODE, write_private

# A recording id: its room (automation/ids.py), then random; never a path ("/", "..").
_ID = re.compile(r"^(\d{1,32}\.)?[A-Za-z0-9_-]{16,64}\Z")
STATE_FILE = "state.json"


class Phase:
    ACTIVE = "active"
    PAUSED = "paused"
    # Stopped: no more audio; its documents are being made.
    STOPPED = "stopped"
    DONE = "done"
    FAILED = "failed"


@dataclass
class Segment:
    """A stretch of recording between a start (or resume) and a pause (or stop)."""

    index: int
    started_at: int  # microseconds, wall clock
    ended_at: int | None = None

    @property
    def duration_ms(self) -> int:
        return ((self.ended_at or self.started_at) - self.started_at) // 1000


@dataclass
class Document:
    """One file of a finished recording (the mix, or one participant's audio)."""

    document_id: str
    file: str
    participant: str | None
    duration_ms: int


@dataclass
class RecordingState:
    id: str
    call_id: str
    room_id: str
    channel: str
    format: str
    started_at: int
    content: str = "audio"
    phase: str = Phase.ACTIVE
    segments: list[Segment] = field(default_factory=list)
    # Participant id -> raw id, for every leg recorded on its own (unmixed).
    legs: dict[str, str] = field(default_factory=dict)
    # "<participantId>-<source>" -> source ("camera", "screen"), for every feed recorded (audioVideo).
    feeds: dict[str, str] = field(default_factory=dict)
    # The callback subscription RecordingStateChanged goes to (None: nobody asked for it).
    callback_subscription: str | None = None
    connection_id: str | None = None
    end_reason: str | None = None
    documents: list[Document] = field(default_factory=list)
    # Times making the documents failed; the raw media stay until they exist (``unfinished``).
    encode_attempts: int = 0

    @property
    def active(self) -> bool:
        return self.phase == Phase.ACTIVE

    @property
    def duration_ms(self) -> int:
        return sum(s.duration_ms for s in self.segments)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @staticmethod
    def from_json(data: bytes) -> RecordingState:
        raw: dict[str, Any] = orjson.loads(data)
        raw["segments"] = [Segment(**s) for s in raw.get("segments", [])]
        raw["documents"] = [Document(**d) for d in raw.get("documents", [])]
        return RecordingState(**raw)


def valid_id(recording_id: str) -> bool:
    return bool(_ID.match(recording_id))


class RecordingStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, recording_id: str) -> Path:
        assert valid_id(recording_id), "recording ids are checked before they name a folder"
        return self.root / recording_id

    def save(self, state: RecordingState) -> None:
        folder = self.folder(state.id)
        folder.mkdir(parents=True, exist_ok=True, mode=DIRECTORY_MODE)
        write_private(folder / STATE_FILE, state.to_json())

    def load(self, recording_id: str) -> RecordingState | None:
        if not valid_id(recording_id):
            return None
        try:
            return RecordingState.from_json((self.folder(recording_id) / STATE_FILE).read_bytes())
        except (OSError, ValueError, TypeError):
            return None

    def unfinished(self) -> list[RecordingState]:
        """Recordings a call host was making when it stopped, and those whose documents failed
        fewer than ``MAX_ENCODE_ATTEMPTS`` times: they must still be finished."""
        if not self.root.is_dir():
            return []
        found = (self.load(p.name) for p in self.root.iterdir() if p.is_dir())
        return [s for s in found if s is not None and _to_finish(s)]

    def document(self, state: RecordingState, document_id: str) -> tuple[Document, Path] | None:
        for document in state.documents:
            if document.document_id == document_id:
                return document, self.folder(state.id) / document.file
        return None

    def delete(self, recording_id: str) -> bool:
        if self.load(recording_id) is None:
            return False
        shutil.rmtree(self.folder(recording_id), ignore_errors=True)
        return True


MAX_ENCODE_ATTEMPTS = 3


def _to_finish(state: RecordingState) -> bool:
    if state.phase == Phase.FAILED:
        return state.encode_attempts < MAX_ENCODE_ATTEMPTS
    return state.phase in (Phase.ACTIVE, Phase.PAUSED, Phase.STOPPED)
