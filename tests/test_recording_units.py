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

from tests.phones import write_tone_wav
from vrooms.calls.captioning import NoCaptioner
from vrooms.egress import EgressPolicy
from vrooms.errors import ApiError
from vrooms.recording import encode, schemas, transcript
from vrooms.recording.service import RecordingService
from vrooms.recording.store import Phase, RecordingState, RecordingStore, Segment
from vrooms.speech import Caption
from vrooms.store.database import Database
from vrooms.store.migrate import upgrade_to_head

PUBLIC = EgressPolicy.parse("VROOMS_EGRESS_CALLBACKS", "public")


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


def test_start_requests_default_as_acs_does_and_refuse_what_acs_does_not_offer() -> None:
    request = schemas.parse_start({"callLocator": {"kind": "serverCallLocator", "serverCallId": "c1"}})
    assert (request.content, request.channel, request.format) == ("audioVideo", "mixed", "mp4")
    assert request.server_call_id == "c1"
    unmixed = schemas.parse_start({"callConnectionId": "c", "recordingChannelType": "unmixed"})
    assert (unmixed.content, unmixed.format) == ("audio", "wav")
    mp3 = schemas.parse_start({"callConnectionId": "c", "recordingFormatType": "MP3"})
    assert (mp3.content, mp3.channel, mp3.format) == ("audio", "mixed", "mp3")
    refusals: list[tuple[dict[str, Any], str]] = [
        (
            {"callConnectionId": "c", "recordingContentType": "audioVideo", "recordingChannelType": "unmixed"},
            "recordingChannelType",
        ),
        (
            {"callConnectionId": "c", "recordingContentType": "audioVideo", "recordingFormatType": "wav"},
            "recordingFormatType",
        ),
        (
            {"callConnectionId": "c", "recordingContentType": "audio", "recordingFormatType": "mp4"},
            "recordingFormatType",
        ),
        ({"callConnectionId": "c", "recordingContentType": "video"}, "recordingContentType"),
        ({"callConnectionId": "c", "recordingFormatType": 4}, "recordingFormatType"),
        ({"callConnectionId": "c", "externalStorage": {"kind": "blob"}}, "externalStorage"),
        ({"callConnectionId": "c", "callLocator": {"roomId": "1"}}, "callLocator"),
        ({}, "callLocator"),
        ({"callConnectionId": "c", "pauseOnStart": "yes"}, "pauseOnStart"),
    ]
    for body, field in refusals:
        with pytest.raises(ApiError) as refused:
            schemas.parse_start(body)
        assert refused.value.status == 400 and refused.value.target == field


async def test_an_encoder_failure_keeps_the_raw_media_and_the_next_start_finishes_it(tmp_path: Path) -> None:
    """Real ffmpeg: a mix it cannot read fails the documents, not the recording's only copy; once
    the media can be read (here: replaced, as a fixed encoder would read them), the next call
    host's recovery makes the document and only then drops the raw media."""
    store = RecordingStore(tmp_path)
    state = RecordingState("r" * 32, "call", "room", "mixed", "wav", 0, segments=[Segment(0, 0, 1_000_000)])
    store.save(state)
    mix = store.folder(state.id) / "mix-000.wav"
    mix.write_bytes(b"not a wav file at all")
    database = Database(f"sqlite:///{tmp_path / 'vrooms.db'}")
    await upgrade_to_head(database)
    calls: Any = SimpleNamespace(events_written=lambda: None, database=database)
    connection_of: Any = SimpleNamespace  # no connection is named in this test
    service = RecordingService(
        calls,
        connection_of,
        store,
        NoCaptioner(),
        "https://vrooms.test",
        callback_retry_seconds=1,
        callback_policy=PUBLIC,
    )
    await service.finish(state)
    saved = store.load(state.id)
    assert saved is not None and saved.phase == Phase.FAILED and saved.documents == []
    assert saved.encode_attempts == 1 and mix.exists()
    assert [s.id for s in store.unfinished()] == [state.id]

    write_tone_wav(mix, 1.0, 440.0)
    assert await service.recover() == 1
    await service.shutdown()
    done = store.load(state.id)
    assert done is not None and done.phase == Phase.DONE and len(done.documents) == 1
    assert not mix.exists() and (store.folder(state.id) / done.documents[0].file).stat().st_size > 1000
    assert store.unfinished() == []
    await database.dispose()


def test_a_transcript_keeps_what_was_said_while_recording_on_the_recording_timeline(tmp_path: Path) -> None:
    """Finals only, not while paused, at their place in the recording (the pause left out), the
    speaker's name as a WebVTT voice, markup escaped; a line cut by a crash is skipped."""
    state = RecordingState("r" * 32, "call", "room", "mixed", "wav", 0, segments=[Segment(0, 0)])
    writer = transcript.TranscriptWriter(tmp_path, state)
    ann: Any = SimpleNamespace(display_name="Ann <MD>", user_id="8:acs:ann")
    writer.caption(Caption("p1", "before that", True, "en-us", 0, 1.0, began_at=1.0), ann)
    state.segments[0].ended_at, state.phase = 4_000_000, Phase.PAUSED  # paused from 4 s to 10 s
    writer.caption(Caption("p1", "not recorded", True, "en-us", 0, 1.0, began_at=5.0), ann)
    state.segments.append(Segment(1, 10_000_000))
    state.phase = Phase.ACTIVE
    writer.caption(Caption("p1", "half a sente", False, "en-us", 0, 1.0, began_at=11.0), ann)
    writer.caption(Caption("p1", "take two & rest", True, "en-us", 0, 1.5, began_at=11.0), ann)
    with (tmp_path / transcript.LINES).open("ab") as lines:
        lines.write(b'{"start": 9')  # the call host died writing this line
    assert transcript.write_vtt(tmp_path)
    assert (tmp_path / transcript.FILE).read_text() == (
        "WEBVTT\n\n"
        "00:00:01.000 --> 00:00:02.000\n<v Ann &lt;MD&gt;>before that\n\n"
        "00:00:05.000 --> 00:00:06.500\n<v Ann &lt;MD&gt;>take two &amp; rest\n"
    )
    assert not transcript.write_vtt(tmp_path / "elsewhere")  # nothing said: no transcript


def test_cameras_fill_a_grid_and_stand_in_a_column_while_a_screen_is_shared() -> None:
    """A camera live across a screen share is cut in three: grid, column beside the screen, grid."""
    shots = [
        encode.Shot("a-camera", False, Path("a.webm"), 0, 9000),
        encode.Shot("b-camera", False, Path("b.webm"), 1000, 2000),
        encode.Shot("a-screen", True, Path("s.webm"), 4000, 3000),
    ]
    pieces = encode.arrange(shots)
    screen_tile, column = encode.layout(["a-camera", "b-camera"], screen=True)
    _, grid = encode.layout(["a-camera", "b-camera"], screen=False)
    a = [(p.start_ms, p.duration_ms, p.skip_ms, p.tile) for p in pieces if p.path.name == "a.webm"]
    assert a == [
        (0, 4000, 0, grid["a-camera"]),
        (4000, 3000, 4000, column["a-camera"]),
        (7000, 2000, 7000, grid["a-camera"]),
    ]
    assert [(p.start_ms, p.tile) for p in pieces if p.path.name == "s.webm"] == [(4000, screen_tile)]
    assert grid["a-camera"] == encode.Tile(0, 0, 640, 720) and grid["b-camera"] == encode.Tile(640, 0, 640, 720)
    assert screen_tile == encode.Tile(0, 0, 960, 720) and column["b-camera"] == encode.Tile(960, 180, 320, 180)
    _, nine = encode.layout([str(n) for n in range(9)], screen=False)
    assert nine["8"] == encode.Tile(852, 480, 426, 240)
