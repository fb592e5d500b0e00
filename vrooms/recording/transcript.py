"""A recording's transcript: what the call's captions or transcription said while it recorded,
as WebVTT with the speakers' names, one more document beside the recording's audio.

The recording hears the call's live text without starting any (``Transcripts.listen`` with no
language): a transcript exists when captions or a transcription ran during the recording.
Each final caption said while recording (not while paused) is appended to a line file in the
recording's folder as it comes, its times on the recording's own timeline (pauses left out),
so a call host that stops loses at most a line, and the next one finishes the transcript with
the recording. The file is bounded (``_MAX_BYTES``); beyond it, later lines are not kept.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from vrooms.calls.call import Participant
from vrooms.recording.store import RecordingState
from vrooms.speech import Caption
from vrooms.store.files import append_private, write_private

LINES = "transcript.jsonl"
FILE = "transcript.vtt"
_MAX_BYTES = 8 << 20


class TranscriptWriter:
    def __init__(self, folder: Path, state: RecordingState) -> None:
        self.path = folder / LINES
        self.state = state

    def caption(self, caption: Caption, speaker: Participant) -> None:
        """A ``calls.captioning.CaptionSink``."""
        if not caption.final or not caption.text or not self.state.active or not self.state.segments:
            return
        if self.path.exists() and self.path.stat().st_size > _MAX_BYTES:
            return
        segment = self.state.segments[-1]
        before = sum(s.duration_ms for s in self.state.segments[:-1])
        start_ms = before + max(0, round(caption.began_at * 1000 - segment.started_at / 1000))
        line = {
            "start": start_ms,
            "end": start_ms + round(caption.duration * 1000),
            "speaker": speaker.display_name or speaker.user_id,
            "text": caption.text,
        }
        append_private(self.path, orjson.dumps(line) + b"\n")


def write_vtt(folder: Path) -> bool:
    """The WebVTT file from the lines kept; False when nothing was said (no transcript)."""
    source = folder / LINES
    if not source.exists():
        return False
    cues = []
    for raw in source.read_bytes().splitlines():
        try:
            cue = orjson.loads(raw)
        except orjson.JSONDecodeError:  # a line cut by a crash
            continue
        cues.append(cue)
    if not cues:
        return False
    cues.sort(key=lambda cue: cue["start"])
    blocks = [_cue(cue["start"], max(cue["end"], cue["start"] + 1), cue["speaker"], cue["text"]) for cue in cues]
    write_private(folder / FILE, ("WEBVTT\n\n" + "\n\n".join(blocks) + "\n").encode())
    return True


def _cue(start_ms: int, end_ms: int, speaker: str, text: str) -> str:
    return f"{_time(start_ms)} --> {_time(end_ms)}\n<v {_escape(speaker)}>{_escape(text)}"


def _time(ms: int) -> str:
    hours, rest = divmod(int(ms), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def _escape(text: str) -> str:
    """Cue text (W3C WebVTT, 4.2.2): ``&``, ``<`` and ``>`` as character references; no line breaks."""
    return " ".join(str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").split())
