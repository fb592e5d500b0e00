"""Call Automation rules without servers (pure logic; the real thing is tests/test_automation.py)."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from vrooms.auth.hmac import _identifiers_quoted
from vrooms.automation import media_schemas, schemas, stream_messages
from vrooms.automation.media import DtmfCollector, MediaOperation, MediaQueue
from vrooms.automation.prompts import PromptError, PromptRenderer, espeak_voice
from vrooms.callbacks import results
from vrooms.callbacks.results import Outcome
from vrooms.egress import EgressPolicy
from vrooms.errors import ApiError
from vrooms.media import speaker_slots
from vrooms.speech import Caption, Word


async def test_dtmf_collection_ends_on_max_tones_stop_tone_or_silence() -> None:
    most = DtmfCollector(max_tones=2, stop_tones="#", inter_tone_seconds=5)
    most.add("1")
    most.add("2")
    assert await most.outcome == Outcome.MAX_TONES and most.tones == ["1", "2"]
    stopped = DtmfCollector(max_tones=5, stop_tones="#", inter_tone_seconds=5)
    stopped.add("3")
    stopped.add("#")
    assert await stopped.outcome == Outcome.STOP_TONE and stopped.tones == ["3"]
    quiet = DtmfCollector(max_tones=5, stop_tones="", inter_tone_seconds=5)
    quiet.listen(0.01)
    assert await quiet.outcome == Outcome.INITIAL_SILENCE
    paused = DtmfCollector(max_tones=5, stop_tones="", inter_tone_seconds=0.01)
    paused.listen(5)
    paused.add("7")
    assert await paused.outcome == Outcome.INTER_TONE_SILENCE and paused.tones == ["7"]
    assert paused.first_tone.is_set()


async def test_the_media_queue_runs_in_turn_and_cancels_what_is_queued_and_running() -> None:
    log: list[str] = []
    gate = asyncio.Event()

    def operation(name: str) -> MediaOperation:
        async def work() -> None:
            log.append(f"start {name}")
            await gate.wait()
            log.append(f"end {name}")

        return MediaOperation(
            work=work, cancelled=lambda: log.append(f"cancelled {name}"), failed=lambda: log.append(f"failed {name}")
        )

    queue = MediaQueue()
    queue.submit(operation("a"), interrupt=False)
    queue.submit(operation("b"), interrupt=False)
    await asyncio.sleep(0)
    assert log == ["start a"]
    queue.submit(operation("c"), interrupt=True)  # barges in: a and b are cancelled, c runs
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert log == ["start a", "cancelled b", "cancelled a", "start c", "end c"]


async def test_an_operation_cancelled_before_it_started_is_reported_and_the_queue_goes_on() -> None:
    """A rule test (no media): the cancel lands before the task's first step, so its body never
    runs; the operation is still reported cancelled and the next one runs. A work that raises
    is reported failed."""
    log: list[str] = []

    def operation(name: str, *, breaks: bool = False) -> MediaOperation:
        async def work() -> None:
            log.append(f"start {name}")
            if breaks:
                raise EOFError("a half-written clip")

        return MediaOperation(
            work=work, cancelled=lambda: log.append(f"cancelled {name}"), failed=lambda: log.append(f"failed {name}")
        )

    queue = MediaQueue()
    queue.submit(operation("a"), interrupt=False)
    queue.cancel_all()  # before the loop ran a's task at all
    queue.submit(operation("b", breaks=True), interrupt=False)
    queue.submit(operation("c"), interrupt=False)
    for _ in range(6):
        await asyncio.sleep(0)
    assert log == ["cancelled a", "start b", "failed b", "start c"]


def _identifier(raw: str) -> dict[str, Any]:
    return {"rawId": raw}


def test_identifiers_and_requests_are_checked_by_field() -> None:
    assert schemas.raw_id({"t": {"phoneNumber": {"value": "+15551234567"}}}, "t") == "4:+15551234567"
    assert schemas.raw_id({"t": {"communicationUser": {"id": "8:acs:x"}}}, "t") == "8:acs:x"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"t": {}}, "t"),
        ({"t": {"rawId": "8:acs:x", "communicationUser": {"id": "8:acs:y"}}}, "t.rawId"),
        ({"t": {"phoneNumber": {"value": "5551234"}}}, "t.phoneNumber.value"),
        ({"t": {"rawId": "28:bot"}}, "t"),
    ]
    for bad, target in cases:
        with pytest.raises(ApiError) as refused:
            schemas.raw_id(bad, "t")
        assert refused.value.target == target
    with pytest.raises(ApiError) as refused:
        schemas.parse_add({"participantToAdd": _identifier("8:acs:x"), "invitationTimeoutInSeconds": 181})
    assert refused.value.target == "invitationTimeoutInSeconds"
    with pytest.raises(ApiError) as refused:
        schemas.parse_send_dtmf({"targetParticipant": _identifier("4:+15551234567"), "tones": ["eleven"]})
    assert refused.value.target == "tones"
    assert (
        schemas.parse_send_dtmf(
            {"targetParticipant": _identifier("4:+15551234567"), "tones": ["one", "pound", "asterisk", "A"]}
        ).tones
        == "1#*A"
    )


def test_transcription_options_are_checked_by_field_and_results_are_in_ticks() -> None:
    base = {"callLocator": {"roomId": "1"}, "callbackUri": "https://app.test/cb"}
    options = {"transportUrl": "wss://app.test/t", "transportType": "websocket", "locale": "en-US"}
    parsed = schemas.parse_connect({**base, "transcriptionOptions": {**options, "startTranscription": True}})
    assert parsed.transcription == schemas.TranscriptionOptions("wss://app.test/t", "en-us", True, False)
    bad_options: list[tuple[dict[str, Any], str]] = [
        ({"locale": None}, "locale"),
        ({"locale": "en US; drop"}, "transcriptionOptions.locale"),
        ({"transportUrl": "http://app.test/t"}, "transcriptionOptions.transportUrl"),
        ({"enableIntermediateResults": "yes"}, "transcriptionOptions.enableIntermediateResults"),
        ({"speechModelEndpointId": "a259c255"}, "speechModelEndpointId"),
        ({"transportType": "grpc"}, "transcriptionOptions.transportType"),
    ]
    for bad, target in bad_options:
        with pytest.raises(ApiError) as refused:
            schemas.parse_connect({**base, "transcriptionOptions": {**options, **bad}})
        assert refused.value.target == target, bad
    words = (Word("good", 0.1, 0.4), Word("morning", 0.4, 0.9))
    caption = Caption("p1", "good morning", True, "en-us", 3.0, 1.0, words, 0.8, began_at=1000.5)
    message = orjson.loads(stream_messages.transcription_data(caption, "8:acs:ada", started_at=1000.0))
    assert message["kind"] == "TranscriptionData"
    data = message["transcriptionData"]
    assert (data["offset"], data["duration"], data["resultStatus"]) == (5_000_000, 10_000_000, "Final")
    assert data["words"][1] == {"text": "morning", "offset": 9_000_000, "duration": 5_000_000}
    assert (data["participantRawID"], data["confidence"], data["format"]) == ("8:acs:ada", 0.8, "display")


def test_media_streaming_options_and_messages() -> None:
    base = {"callLocator": {"roomId": "1"}, "callbackUri": "https://app.test/cb"}
    options = {"transportUrl": "wss://app.test/ws", "transportType": "websocket", "audioChannelType": "mixed"}
    parsed = schemas.parse_connect({**base, "mediaStreamingOptions": {**options, "audioFormat": "pcm24KMono"}})
    assert parsed.streaming == schemas.StreamingOptions("wss://app.test/ws", 24000, False, False)
    unmixed = schemas.parse_connect({**base, "mediaStreamingOptions": {**options, "audioChannelType": "Unmixed"}})
    assert unmixed.streaming is not None and not unmixed.streaming.mixed
    refusals: list[tuple[dict[str, Any], str]] = [
        ({"audioChannelType": "stereo"}, "audioChannelType"),
        ({"transportUrl": "https://app.test/ws"}, "transportUrl"),
        ({"audioFormat": "pcm8KMono"}, "audioFormat"),
        ({"enableBidirectional": "yes"}, "enableBidirectional"),
        ({"enableDtmfTones": True}, "enableDtmfTones"),
    ]
    for bad, field in refusals:
        with pytest.raises(ApiError) as refused:
            schemas.parse_connect({**base, "mediaStreamingOptions": {**options, **bad}})
        assert refused.value.target in (f"mediaStreamingOptions.{field}", field)

    meta = orjson.loads(stream_messages.metadata("sub-1", 24000))
    assert meta == {
        "kind": "AudioMetadata",
        "audioMetadata": {
            "subscriptionId": "sub-1",
            "encoding": "PCM",
            "sampleRate": 24000,
            "channels": 1,
            "length": 960,
        },
    }
    quiet = orjson.loads(
        stream_messages.audio_data(b"\x01\x00" * 320, datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC))
    )
    assert quiet["audioData"]["silent"] is True and quiet["audioData"]["timestamp"] == "2030-01-02T03:04:05.678Z"
    loud = orjson.loads(stream_messages.audio_data(b"\x00\x40" * 320, datetime.now(UTC)))
    assert loud["audioData"]["silent"] is False and loud["audioData"]["participantRawID"] is None
    pcm = base64.b64encode(b"\x01\x02\x03").decode()
    assert stream_messages.inbound_audio(orjson.dumps({"Kind": "AudioData", "AudioData": {"Data": pcm}})) == b"\x01\x02"
    assert stream_messages.inbound_audio('{"kind": "StopAudio", "stopAudio": {}}') == b""
    for junk in ["not json", "[]", '{"kind": "AudioData", "audioData": {"data": "%%%"}}', '{"kind": "Other"}']:
        assert stream_messages.inbound_audio(junk) is None


def test_play_and_recognize_requests() -> None:
    play = media_schemas.parse_play(
        {
            "playSources": [
                {"kind": "text", "text": {"text": "Hi", "voiceName": "de-DE-KatjaNeural"}},
                {"kind": "file", "file": {"uri": "file:a.wav"}},
            ],
            "playTo": [],
            "playOptions": {"loop": True},
        }
    )
    assert play.sources[0].locale == "de-DE" and play.loop and play.targets == []
    bodies: list[tuple[dict[str, Any], str]] = [
        ({"playSources": []}, "playSources"),
        ({"playSources": [{"kind": "video", "video": {}}]}, "playSources[0]"),
        ({"playSources": [{"kind": "text", "text": {"text": "x" * 5000}}]}, "text"),
    ]
    for body, target in bodies:
        with pytest.raises(ApiError) as refused:
            media_schemas.parse_play(body)
        assert refused.value.target == target
    recognize = media_schemas.parse_recognize(
        {
            "recognizeInputType": "dtmf",
            "recognizeOptions": {
                "targetParticipant": _identifier("4:+15551234567"),
                "dtmfOptions": {"maxTonesToCollect": 4, "stopTones": ["pound"]},
            },
        }
    )
    assert (recognize.max_tones, recognize.stop_tones, recognize.initial_silence_seconds) == (4, "#", 5.0)
    with pytest.raises(ApiError) as refused:
        media_schemas.parse_recognize({"recognizeInputType": "speech", "recognizeOptions": {}})
    assert refused.value.target == "recognizeInputType"


def test_voices_follow_the_locale_then_the_language_then_english() -> None:
    known = {"en", "en-us", "de", "fr"}
    assert espeak_voice("en-US", "female", known) == "en-us+f3"
    assert espeak_voice("de-AT", None, known) == "de"
    assert espeak_voice("xx-YY", "male", known) == "en+m3"
    assert espeak_voice(None, None, known) == "en"


async def test_file_sources_never_reach_internal_addresses_or_outside_the_prompts_folder(tmp_path: Any) -> None:
    (tmp_path / "ok.wav").write_bytes(b"RIFF")
    open_to_public = PromptRenderer(tmp_path / "cache", tmp_path, EgressPolicy.parse("P", "public"), 1 << 20)
    await open_to_public.check_file_uri("file:ok.wav")
    for uri in ["http://127.0.0.1/a.wav", "http://10.1.2.3/a.wav", "file:../etc/passwd", "file:missing.wav"]:
        with pytest.raises(PromptError):
            await open_to_public.check_file_uri(uri)
    listed = PromptRenderer(tmp_path / "cache", None, EgressPolicy.parse("P", "127.0.0.1"), 1 << 20)
    await listed.check_file_uri("http://127.0.0.1/a.wav")
    with pytest.raises(PromptError):
        await listed.check_file_uri("https://example.org/a.wav")


def test_result_codes() -> None:
    assert results.leave_result("Busy").code == 486
    assert results.leave_result("NoSuchReason") == results.CANCELLED
    assert results.call_end_result("EndedByServer").sub_code == 7020
    assert all(r.ok for r in (results.OK, results.ADDED)) and not results.DECLINED.ok


def test_raw_ids_in_paths_are_signed_as_the_sdks_quote_them() -> None:
    assert _identifiers_quoted("/c/x/participants/8:acs:a_b?v=1") == "/c/x/participants/8%3Aacs%3Aa_b?v=1"
    assert _identifiers_quoted("/c/x/participants/4:+1555") == "/c/x/participants/4%3A%2B1555"
    assert _identifiers_quoted("/calling/callConnections:connect?v=1") == "/calling/callConnections:connect?v=1"


def test_speaker_slots_keep_everyone_while_there_is_room_then_the_talkers() -> None:
    """A rule test (no media): four slots; a fifth participant gets one only by talking, in the
    place of the occupant silent longest; someone who leaves frees theirs."""
    slots = speaker_slots.SpeakerSlots(4)
    assert [slots.place(p, talking=False) for p in "abcd"] == [(0, None), (1, None), (2, None), (3, None)]
    assert slots.place("e", talking=False) is None  # no room, and not talking
    for talker in "bacd":
        assert slots.place(talker, talking=True) is None  # has a slot already; heard now
    assert slots.place("e", talking=True) == (1, "b")  # b was heard longest ago
    assert slots.occupants == ["a", "e", "c", "d"]
    assert slots.remove("c") == 2 and slots.remove("zz") is None
    assert slots.place("b", talking=False) == (2, None)
