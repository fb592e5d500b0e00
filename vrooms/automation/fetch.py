"""Fetching a prompt's ``FileSource`` URL: every hop under the egress policy, bounded, sniffed.

Redirects are followed by hand, at most ``_MAX_REDIRECTS``, each new URL checked by the
policy before it is opened (aiohttp's own following checks nothing), and the connection
itself goes only to addresses the policy allows (``EgressPolicy.connector``). The body is
streamed to disk up to the cap; one byte more and the prompt fails, as does anything that
is not one of the formats ACS plays (WAV, MP3), told by its first bytes rather than by its
name or Content-Type, so an HTML page or a file of one repeated byte never reaches ffmpeg,
which would otherwise guess some codec that makes noise of it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urljoin

import aiohttp

from vrooms.egress import EgressPolicy, EgressRefused

_FETCH_SECONDS = 10.0
_MAX_REDIRECTS = 3
_CHUNK_BYTES = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
FORMATS = "WAV or MP3"


class FetchFailed(Exception):
    """The URL could not be fetched (``download``: an HTTP or network failure) or is not audio we play."""

    def __init__(self, message: str, *, download: bool = True) -> None:
        super().__init__(message)
        self.download = download


def sniff(head: bytes) -> str | None:
    """ffmpeg's input format for a file that starts with ``head``: ``wav``, ``mp3``, or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:3] == b"ID3":
        return "mp3"
    # An MPEG audio frame header: 11 sync bits, then a version other than "reserved", layer III.
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x18 != 0x08:
        return "mp3" if head[1] & 0x06 == 0x02 else None
    return None


def sniff_file(path: Path, name: str) -> str:
    with path.open("rb") as file:
        kind = sniff(file.read(16))
    if kind is None:
        raise FetchFailed(f"{name} is not a {FORMATS} file.", download=False)
    return kind


async def fetch(url: str, into: Path, policy: EgressPolicy, max_bytes: int) -> str:
    """Download ``url`` into ``into``; returns its format (``sniff``). Raises ``FetchFailed``."""
    shown = url[:200]
    timeout = aiohttp.ClientTimeout(total=_FETCH_SECONDS)
    try:
        async with aiohttp.ClientSession(timeout=timeout, connector=policy.connector()) as session:
            for _ in range(_MAX_REDIRECTS + 1):
                await policy.check(url)
                async with session.get(url, allow_redirects=False) as response:
                    if response.status in _REDIRECTS and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status != 200:
                        raise FetchFailed(f"Fetching {shown} gave HTTP {response.status}.")
                    await _save(response, into, max_bytes, shown)
                    return sniff_file(into, shown)
    except EgressRefused as exc:
        raise FetchFailed(f"Fetching {shown} was refused: {exc}") from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise FetchFailed(f"Fetching {shown} failed: {type(exc).__name__}.") from None
    raise FetchFailed(f"Fetching {shown} was redirected more than {_MAX_REDIRECTS} times.")


async def _save(response: aiohttp.ClientResponse, into: Path, max_bytes: int, shown: str) -> None:
    size = 0
    with into.open("wb") as file:
        async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
            size += len(chunk)
            if size > max_bytes:
                raise FetchFailed(f"{shown} is larger than {max_bytes // 1024 // 1024} MB.", download=False)
            file.write(chunk)
