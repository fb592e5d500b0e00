"""Recording rules without servers: the .mjr reader, request parsing, a failed encode (real ffmpeg).

The proof against Janus, aiortc and a phone is in tests/test_automation.py.
"""

from __future__ import annotations

import struct
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from vrooms.errors import ApiError
from vrooms.recording import encode, schemas
from vrooms.recording.service import RecordingService
from vrooms.recording.store import Phase, RecordingState, RecordingStore, Segment


def _rtp(ssrc: int, seq: int, timestamp: int, payload: bytes, *, pt: int = 0) -> bytes:
    return struct.pack(">BBHII", 0x80, pt, seq, timestamp, ssrc) + payload


def _mjr(path: Path, frames: list[tuple[int, bytes]], codec: str = "pcmu") -> Path:
    header = orjson.dumps({"t": "a", "c": codec, "s": 1_000, "u": 2_000})
    body = b"".join(b"MEET" + struct.pack(">IH", ms, len(p)) + p for ms, p in frames)
    path.write_bytes(b"MJR00002" + struct.pack(">H", len(header)) + header + body)
    return path


def test_a_phone_that_changes_ssrc_keeps_all_its_audio_in_place(tmp_path: Path) -> None:
    frames = [
        (0, _rtp(1, 1, 5000, b"\x01" * 160)),
        (20, _rtp(1, 2, 5160, b"\x02" * 160)),
        (100, _rtp(2, 9, 90000, b"\x03" * 160)),  # a new SSRC, 100 ms in: its timeline starts there
        (120, _rtp(2, 10, 90160, b"\x04" * 160)),
        (130, _rtp(2, 11, 90320, b"\x05" * 160, pt=101)),  # a telephone-event, not audio
    ]
    mjr = _mjr(tmp_path / "leg-audio.mjr", frames)
    assert encode.mjr_header(mjr) == {"t": "a", "c": "pcmu", "s": 1_000, "u": 2_000}
    out = tmp_path / "leg.ulaw"
    encode.pcmu_stream(mjr, out)
    audio = out.read_bytes()
    assert len(audio) == 1120  # 120 ms of 8 kHz, and the last packet
    assert audio[:160] == b"\x01" * 160 and audio[160:320] == b"\x02" * 160
    assert audio[320:800] == b"\xff" * 480  # u-law silence in the gap
    assert audio[800:960] == b"\x03" * 160 and audio[960:] == b"\x04" * 160


def test_a_leg_that_never_sent_has_no_header(tmp_path: Path) -> None:
    empty = tmp_path / "empty-audio.mjr"
    empty.write_bytes(b"MJR00002")
    assert encode.mjr_header(empty) is None


def test_start_requests_default_to_mixed_wav_and_refuse_what_is_not_offered() -> None:
    request = schemas.parse_start({"callLocator": {"kind": "serverCallLocator", "serverCallId": "c1"}})
    assert (request.channel, request.format, request.server_call_id) == ("mixed", "wav", "c1")
    refusals: list[tuple[dict[str, Any], str]] = [
        ({"callConnectionId": "c", "recordingContentType": "audioVideo"}, "recordingContentType"),
        ({"callConnectionId": "c", "recordingFormatType": "mp4"}, "recordingFormatType"),
        ({"callConnectionId": "c", "externalStorage": {"kind": "blob"}}, "externalStorage"),
        ({"callConnectionId": "c", "callLocator": {"roomId": "1"}}, "callLocator"),
        ({}, "callLocator"),
        ({"callConnectionId": "c", "pauseOnStart": "yes"}, "pauseOnStart"),
    ]
    for body, field in refusals:
        with pytest.raises(ApiError) as refused:
            schemas.parse_start(body)
        assert refused.value.status == 400 and refused.value.target == field


async def test_an_encoder_failure_fails_the_recording_without_raising(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path)
    state = RecordingState("r" * 32, "call", "room", "mixed", "wav", 0, segments=[Segment(0, 0, 1_000_000)])
    store.save(state)
    (store.folder(state.id) / "mix-000.wav").write_bytes(b"not a wav file at all")
    calls: Any = SimpleNamespace(events_written=lambda: None)
    service = RecordingService(calls, lambda _: None, store, "https://vrooms.test", callback_retry_seconds=1)  # type: ignore[arg-type, return-value]
    await service.finish(state)
    saved = store.load(state.id)
    assert saved is not None and saved.phase == Phase.FAILED and saved.documents == []
    assert not (store.folder(state.id) / "mix-000.wav").exists()
