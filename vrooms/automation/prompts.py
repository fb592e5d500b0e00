"""Play sources rendered to audio files: espeak-ng for text and SSML, ffmpeg for everything else.

A play request's sources (``FileSource``, ``TextSource``, ``SsmlSource``, in order) become
one clip in two encodings: 8 kHz WAV for rtpengine, which plays it to a phone leg alone,
and 48 kHz Ogg Opus for the AudioBridge, which mixes it for everyone (``play_file``), or
for an audio feed that chosen WebRTC participants alone receive (``send_rtp``).
Both engines are offline and from Debian; nothing is sent to a cloud service.

Voices (documented in the README): ``sourceLocale`` or the locale at the start of
``voiceName`` (``en-US-JennyNeural`` -> ``en-US``) picks the espeak-ng voice of that
locale (``en-us``), else of its language (``de``), else English; ``voiceKind`` female or
male picks espeak-ng's ``+f3`` / ``+m3`` variant.

A ``FileSource`` is an http(s) URL, fetched under ``VROOMS_EGRESS_PROMPTS`` (by default
public addresses only: an app must not make the server fetch from its own network) with a
size cap and a timeout (``fetch``); or ``file:<name>``, a file under ``VROOMS_PROMPTS_DIR``.
Either must be WAV or MP3, as ACS plays, told by its first bytes.

Bounded on disk: a clip is at most ``MAX_CLIP_SECONDS`` (however its SSML stretches it:
espeak-ng's output is capped as it is written), rendered under a temporary name and
renamed once whole (a cancelled render leaves nothing a later play would take for a
clip), and the cache is kept under its size by dropping the clips used longest ago, never
one being played. Clips of URLs are not kept after their play (the URL may change).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import time
import wave
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import orjson

from vrooms.automation.fetch import FetchFailed, fetch, sniff_file
from vrooms.egress import EgressPolicy, EgressRefused
from vrooms.media.tools import ToolFailed, run_tool
from vrooms.media.types import AUDIO_FEED_SSRC, OPUS_PAYLOAD_TYPE

log = logging.getLogger("vrooms.automation")

_TOOL_SECONDS = 30.0
_MAX_FETCH_BYTES = 20 * 1024 * 1024
_MAX_TEXT_CHARS = 4000
MAX_CLIP_SECONDS = 600
# espeak-ng writes 22.05 kHz 16-bit mono: this many bytes are MAX_CLIP_SECONDS of speech.
_MAX_SPEECH_BYTES = MAX_CLIP_SECONDS * 22050 * 2 + 4096
# A temporary file older than this belongs to no render still running (a crash's leftovers).
_STALE_PART_SECONDS = 600.0
# At most this many espeak-ng / ffmpeg processes at once (the host has two cores).
_RENDERERS = asyncio.Semaphore(2)


class PromptError(Exception):
    """A source could not be made into audio; the message says which and why (PlayFailed)."""

    def __init__(self, message: str, *, download: bool = False) -> None:
        super().__init__(message)
        self.download = download


@dataclass(frozen=True)
class Source:
    kind: str  # "file", "text" or "ssml"
    value: str  # the URI, the text or the SSML
    voice: str = "en"


@dataclass(frozen=True)
class Clip:
    wav: Path  # 8 kHz mono PCM: for rtpengine (a phone leg)
    opus: Path  # 48 kHz mono Ogg Opus: for the AudioBridge (everyone)
    seconds: float


def espeak_voice(locale: str | None, kind: str | None, known: set[str]) -> str:
    """The espeak-ng voice for an ACS locale and voice kind (see the module docstring)."""
    voice = "en"
    if locale:
        wanted = locale.lower()
        language = wanted.split("-")[0]
        voice = wanted if wanted in known else language if language in known else "en"
    variant = {"female": "+f3", "male": "+m3"}.get((kind or "").lower(), "")
    return voice + variant


class PromptRenderer:
    def __init__(self, cache_dir: Path, files_dir: Path | None, egress: EgressPolicy, cache_bytes: int) -> None:
        self.cache_dir = cache_dir
        self.files_dir = files_dir
        self.egress = egress
        self.cache_bytes = cache_bytes
        self._voices: set[str] | None = None
        self._held: Counter[str] = Counter()  # clip key -> plays using it now

    async def voices(self) -> set[str]:
        """espeak-ng's voice names (``en-us``, ``de``, ...), read once."""
        if self._voices is None:
            output = await _run(["espeak-ng", "--voices"], "espeak-ng")
            self._voices = {line.split()[1].lower() for line in output.decode().splitlines()[1:] if line.split()}
        return self._voices

    async def check_file_uri(self, uri: str) -> None:
        """Refuse at once what may never be played (the request's 400); fetching can still fail later."""
        if urlsplit(uri).scheme == "file":
            self._local(uri)
            return
        try:
            await self.egress.check(uri)
        except EgressRefused as exc:
            raise PromptError(f"file.uri: {exc}") from None

    def _local(self, uri: str) -> Path:
        name = unquote(urlsplit(uri).path).lstrip("/")
        if self.files_dir is None:
            raise PromptError("file: sources need VROOMS_PROMPTS_DIR (a folder of audio files).")
        path = (self.files_dir / name).resolve()
        if not name or not path.is_relative_to(self.files_dir.resolve()) or not path.is_file():
            raise PromptError(f"No file {name!r} in the prompts folder.")
        return path

    @contextlib.asynccontextmanager
    async def clip(self, sources: list[Source]) -> AsyncIterator[Clip]:
        """The sources as one clip, kept on disk (and out of eviction's reach) while the block runs."""
        key = hashlib.sha256(orjson.dumps([s.__dict__ for s in sources])).hexdigest()[:32]
        cacheable = all(s.kind != "file" or s.value.startswith("file:") for s in sources)
        self._held[key] += 1
        try:
            yield await self._render(key, sources, cacheable)
        finally:
            self._held[key] -= 1
            if not self._held[key]:
                del self._held[key]
                if not cacheable:
                    _unlink(*self._paths(key))
            self._evict()

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.cache_dir / f"{key}.wav", self.cache_dir / f"{key}.opus"

    async def _render(self, key: str, sources: list[Source], cacheable: bool) -> Clip:
        wav, opus = self._paths(key)
        if not (cacheable and wav.exists() and opus.exists()):
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            part = self.cache_dir / f"{key}.{secrets.token_hex(4)}.part"
            scratch = [part.with_suffix(f".{n}.part") for n in range(len(sources))]
            staged = Clip(part.with_suffix(".wav.part"), part.with_suffix(".opus.part"), 0.0)
            try:
                inputs = [await self._input(source, path) for source, path in zip(sources, scratch, strict=True)]
                async with _RENDERERS:
                    await _run(_ffmpeg(inputs, staged), "ffmpeg")
                if _seconds(staged.wav) > MAX_CLIP_SECONDS:
                    raise PromptError(f"The prompt is longer than {MAX_CLIP_SECONDS // 60} minutes.")
                os.replace(staged.opus, opus)  # the WAV last: both exist only once both are whole
                os.replace(staged.wav, wav)
            finally:
                _unlink(*scratch, staged.wav, staged.opus)
        os.utime(wav)  # used now: the last to be evicted
        return Clip(wav, opus, _seconds(wav))

    async def _input(self, source: Source, scratch: Path) -> tuple[Path, str]:
        """The source as a file ffmpeg reads, and that file's format (never left to ffmpeg to guess)."""
        try:
            if source.kind != "file":
                return await self._speak(source, scratch), "wav"
            if source.value.startswith("file:"):
                path = self._local(source.value)
                return path, sniff_file(path, path.name)
            return scratch, await fetch(source.value, scratch, self.egress, _MAX_FETCH_BYTES)
        except FetchFailed as exc:
            raise PromptError(str(exc), download=exc.download) from None

    async def _speak(self, source: Source, scratch: Path) -> Path:
        text = source.value[:_MAX_TEXT_CHARS]
        markup = ["-m"] if source.kind == "ssml" else []
        async with _RENDERERS:
            command = ["espeak-ng", *markup, "-v", source.voice, "--stdout", "--", text]
            scratch.write_bytes(await _run(command, "espeak-ng", max_output_bytes=_MAX_SPEECH_BYTES))
        return scratch

    def _evict(self) -> None:
        """Drop the clips used longest ago (never one in use) until the cache is under its size,
        and temporary files no render owns any more."""
        if not self.cache_dir.is_dir():
            return
        now, sizes, used = time.time(), Counter[str](), dict[str, float]()
        for path in self.cache_dir.iterdir():
            key = path.name.split(".")[0]
            stat = path.stat()
            if path.suffix == ".part":
                if key not in self._held and now - stat.st_mtime > _STALE_PART_SECONDS:
                    _unlink(path)
                continue
            sizes[key] += stat.st_size
            used[key] = max(used.get(key, 0.0), stat.st_mtime)
        total = sum(sizes.values())
        for key in sorted(used, key=used.__getitem__):
            if total <= self.cache_bytes:
                break
            if key not in self._held:
                _unlink(*self._paths(key))
                total -= sizes[key]


def _seconds(wav: Path) -> float:
    with wave.open(str(wav)) as audio:
        return float(audio.getnframes() / audio.getframerate())


def _unlink(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _ffmpeg(inputs: list[tuple[Path, str]], clip: Clip) -> list[str]:
    """One ffmpeg run: the inputs in sequence, out as 8 kHz WAV and as 48 kHz Ogg Opus, each cut
    just past ``MAX_CLIP_SECONDS`` (a longer result is refused, not played cut)."""
    sources = "".join(f"[{n}:a]" for n in range(len(inputs)))
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
    for path, kind in inputs:
        command += ["-f", kind, "-i", str(path)]
    command += ["-filter_complex", f"{sources}concat=n={len(inputs)}:v=0:a=1,asplit=2[a][b]"]
    longest = ["-t", str(MAX_CLIP_SECONDS + 1)]
    command += ["-map", "[a]", *longest, "-ac", "1", "-ar", "8000", "-c:a", "pcm_s16le", "-f", "wav", str(clip.wav)]
    command += ["-map", "[b]", *longest, "-ac", "1", "-ar", "48000", "-c:a", "libopus", "-f", "ogg", str(clip.opus)]
    return command


async def send_rtp(clip: Clip, to: tuple[str, int], *, loop: bool) -> None:
    """Send the clip's Opus as RTP to an audio feed in real time (``-re``, no re-encoding); returns
    once it has played (a loop plays until cancelled)."""
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", *(["-stream_loop", "-1"] if loop else [])]
    command += ["-i", str(clip.opus), "-map", "0:a", "-c:a", "copy", "-f", "rtp"]
    command += ["-payload_type", str(OPUS_PAYLOAD_TYPE), "-ssrc", str(AUDIO_FEED_SSRC), f"rtp://{to[0]}:{to[1]}"]
    await _run(command, "ffmpeg", None if loop else clip.seconds + _TOOL_SECONDS)


async def _run(
    command: list[str], tool: str, timeout_seconds: float | None = _TOOL_SECONDS, *, max_output_bytes: int | None = None
) -> bytes:
    try:
        return await run_tool(command, tool, timeout_seconds, max_output_bytes=max_output_bytes)
    except ToolFailed as exc:
        raise PromptError(str(exc)) from None
