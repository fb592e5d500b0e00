"""rtpengine's "ng" control protocol: bencoded dictionaries over UDP, each behind a cookie.

Protocol: rtpengine's docs (``docs/ng_control_protocol.md``): a datagram is
``<cookie> <bencoded dict>``; the reply repeats the cookie. Requests are retried
(UDP may drop them) and idempotent on rtpengine's side for the same cookie.
Bencoding: BitTorrent BEP 3 (integers, byte strings, lists, dictionaries with sorted keys).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any

_TIMEOUT_SECONDS = 1.0
_ATTEMPTS = 3
# Replies carry a rewritten SDP; rtpengine's own limit on a datagram is 64 KiB.
_MAX_DATAGRAM = 65535


class NgError(Exception):
    """rtpengine refused a request, or did not answer (``reason`` is safe to log)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def bencode(value: Any) -> bytes:
    if isinstance(value, bool):
        return bencode(int(value))
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list | tuple):
        return b"l" + b"".join(bencode(item) for item in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def bdecode(data: bytes) -> Any:
    value, end = _decode(data, 0)
    if end != len(data):
        raise ValueError("trailing bytes after a bencoded value")
    return value


def _decode(data: bytes, at: int) -> tuple[Any, int]:
    lead = data[at : at + 1]
    if lead == b"i":
        end = data.index(b"e", at)
        return int(data[at + 1 : end]), end + 1
    if lead in (b"l", b"d"):
        items: list[Any] = []
        at += 1
        while data[at : at + 1] != b"e":
            item, at = _decode(data, at)
            items.append(item)
        if lead == b"l":
            return items, at + 1
        return dict(zip(items[::2], items[1::2], strict=True)), at + 1
    if lead.isdigit():
        colon = data.index(b":", at)
        start = colon + 1
        end = start + int(data[at:colon])
        if end > len(data):
            raise ValueError("a byte string runs past the end")
        raw = data[start:end]
        try:
            return raw.decode(), end
        except UnicodeDecodeError:
            return raw, end
    raise ValueError(f"not bencoded at byte {at}")


class _Replies(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[bytes, asyncio.Future[bytes]] = {}

    def datagram_received(self, data: bytes, addr: Any) -> None:
        cookie, _, body = data.partition(b" ")
        future = self.waiting.get(cookie)
        if future is not None and not future.done():
            future.set_result(body)


class NgClient:
    """One UDP socket to one rtpengine; requests in flight are matched to replies by cookie."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self._transport: asyncio.DatagramTransport | None = None
        self._replies = _Replies()

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(lambda: self._replies, remote_addr=self.address)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def request(self, command: str, **fields: Any) -> dict[str, Any]:
        """Send one command; the reply dictionary, or ``NgError`` if refused or unanswered."""
        if self._transport is None:
            raise NgError("rtpengine is not connected")
        cookie = secrets.token_hex(8).encode()
        datagram = cookie + b" " + bencode({"command": command, **fields})
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._replies.waiting[cookie] = future
        try:
            for _ in range(_ATTEMPTS):
                self._transport.sendto(datagram)
                with contextlib.suppress(TimeoutError):
                    reply = bdecode(await asyncio.wait_for(asyncio.shield(future), _TIMEOUT_SECONDS))
                    break
            else:
                raise NgError(f"rtpengine did not answer {command!r}")
        finally:
            del self._replies.waiting[cookie]
        if not isinstance(reply, dict) or reply.get("result") not in ("ok", "pong"):
            detail = reply.get("error-reason", reply) if isinstance(reply, dict) else reply
            raise NgError(f"rtpengine refused {command!r}: {detail}")
        return reply
