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

A ``FileSource`` is an http(s) URL, fetched with a size cap and a timeout; by default only
hosts with public addresses (no loopback, private or link-local address: an app must not
make the server fetch from its own network), or exactly the hosts of
``VROOMS_PROMPT_URL_HOSTS``; or ``file:<name>``, a file under ``VROOMS_PROMPTS_DIR``.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import socket
import wave
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiohttp
import orjson

from vrooms.media.tools import ToolFailed, run_tool
from vrooms.media.types import AUDIO_FEED_SSRC, OPUS_PAYLOAD_TYPE

log = logging.getLogger("vrooms.automation")

_TOOL_SECONDS = 30.0
_FETCH_SECONDS = 10.0
_MAX_FETCH_BYTES = 20 * 1024 * 1024
_MAX_TEXT_CHARS = 4000
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
    def __init__(self, cache_dir: Path, files_dir: Path | None, url_hosts: tuple[str, ...]) -> None:
        self.cache_dir = cache_dir
        self.files_dir = files_dir
        self.url_hosts = url_hosts
        self._voices: set[str] | None = None

    async def voices(self) -> set[str]:
        """espeak-ng's voice names (``en-us``, ``de``, ...), read once."""
        if self._voices is None:
            output = await _run(["espeak-ng", "--voices"], "espeak-ng")
            self._voices = {line.split()[1].lower() for line in output.decode().splitlines()[1:] if line.split()}
        return self._voices

    async def check_file_uri(self, uri: str) -> None:
        """Refuse at once what may never be played (the request's 400); fetching can still fail later."""
        parts = urlsplit(uri)
        if parts.scheme == "file":
            self._local(uri)
        elif parts.scheme not in ("http", "https") or not parts.hostname:
            raise PromptError("file.uri must be an http(s) URL or file:<name> of a file in the prompts folder.")
        else:
            await self._check_host(parts.hostname.lower())

    async def _check_host(self, host: str) -> None:
        if self.url_hosts and host not in self.url_hosts:
            raise PromptError(f"file.uri host {host} is not in VROOMS_PROMPT_URL_HOSTS.")
        if not self.url_hosts and not await _public(host):
            raise PromptError(f"{host} has an internal address; list it in VROOMS_PROMPT_URL_HOSTS to allow it.")

    def _local(self, uri: str) -> Path:
        name = unquote(urlsplit(uri).path).lstrip("/")
        if self.files_dir is None:
            raise PromptError("file: sources need VROOMS_PROMPTS_DIR (a folder of audio files).")
        path = (self.files_dir / name).resolve()
        if not name or not path.is_relative_to(self.files_dir.resolve()) or not path.is_file():
            raise PromptError(f"No file {name!r} in the prompts folder.")
        return path

    async def render(self, sources: list[Source]) -> Clip:
        key = hashlib.sha256(orjson.dumps([s.__dict__ for s in sources])).hexdigest()[:32]
        clip = Clip(self.cache_dir / f"{key}.wav", self.cache_dir / f"{key}.opus", 0.0)
        cacheable = all(s.kind != "file" or s.value.startswith("file:") for s in sources)
        if not (cacheable and clip.wav.exists() and clip.opus.exists()):
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            inputs = [await self._input(source, self.cache_dir / f"{key}.{n}.in") for n, source in enumerate(sources)]
            async with _RENDERERS:
                await _run(_ffmpeg(inputs, clip), "ffmpeg")
        with wave.open(str(clip.wav)) as audio:
            return Clip(clip.wav, clip.opus, audio.getnframes() / audio.getframerate())

    async def _input(self, source: Source, scratch: Path) -> Path:
        if source.kind == "file":
            return (
                self._local(source.value)
                if source.value.startswith("file:")
                else await self._fetch(source.value, scratch)
            )
        text = source.value[:_MAX_TEXT_CHARS]
        markup = ["-m"] if source.kind == "ssml" else []
        async with _RENDERERS:
            await _run(["espeak-ng", *markup, "-v", source.voice, "-w", str(scratch), "--", text], "espeak-ng")
        return scratch

    async def _fetch(self, url: str, scratch: Path) -> Path:
        await self._check_host((urlsplit(url).hostname or "").lower())  # again: DNS may have changed
        try:
            timeout = aiohttp.ClientTimeout(total=_FETCH_SECONDS)
            async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
                if response.status != 200:
                    raise PromptError(f"Fetching {url[:200]} gave HTTP {response.status}.", download=True)
                body = await response.content.read(_MAX_FETCH_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PromptError(f"Fetching {url[:200]} failed: {type(exc).__name__}.", download=True) from None
        if len(body) > _MAX_FETCH_BYTES:
            raise PromptError(f"{url[:200]} is larger than {_MAX_FETCH_BYTES // 1024 // 1024} MB.", download=True)
        scratch.write_bytes(body)
        return scratch


async def _public(host: str) -> bool:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return True  # it will fail to download, with that reason
    return all(ipaddress.ip_address(info[4][0]).is_global for info in infos)


def _ffmpeg(inputs: list[Path], clip: Clip) -> list[str]:
    """One ffmpeg run: the inputs in sequence, out as 8 kHz WAV and as 48 kHz Ogg Opus."""
    sources = "".join(f"[{n}:a]" for n in range(len(inputs)))
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
    for path in inputs:
        command += ["-i", str(path)]
    command += ["-filter_complex", f"{sources}concat=n={len(inputs)}:v=0:a=1,asplit=2[a][b]"]
    command += ["-map", "[a]", "-ac", "1", "-ar", "8000", "-c:a", "pcm_s16le", str(clip.wav)]
    command += ["-map", "[b]", "-ac", "1", "-ar", "48000", "-c:a", "libopus", str(clip.opus)]
    return command


async def send_rtp(clip: Clip, to: tuple[str, int], *, loop: bool) -> None:
    """Send the clip's Opus as RTP to an audio feed in real time (``-re``, no re-encoding); returns
    once it has played (a loop plays until cancelled)."""
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", *(["-stream_loop", "-1"] if loop else [])]
    command += ["-i", str(clip.opus), "-map", "0:a", "-c:a", "copy", "-f", "rtp"]
    command += ["-payload_type", str(OPUS_PAYLOAD_TYPE), "-ssrc", str(AUDIO_FEED_SSRC), f"rtp://{to[0]}:{to[1]}"]
    await _run(command, "ffmpeg", None if loop else clip.seconds + _TOOL_SECONDS)


async def _run(command: list[str], tool: str, timeout_seconds: float | None = _TOOL_SECONDS) -> bytes:
    try:
        return await run_tool(command, tool, timeout_seconds)
    except ToolFailed as exc:
        raise PromptError(str(exc)) from None
