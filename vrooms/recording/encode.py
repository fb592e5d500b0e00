"""From what Janus wrote to the documents an app downloads (janus-pp-rec and ffmpeg, from Debian).

Mixed: the mix of each segment (``mix-<n>.wav``, 48 kHz) is joined in order. Unmixed: each
participant's ``.mjr`` of a segment (their RTP: Opus, decoded by janus-pp-rec, or a phone's
G.711, unpacked here) is placed on the segment's timeline (silence before their first packet, after their last)
and the segments joined: every participant's document has the recording's length, so
the files line up second by second, as the channels of one ACS unmixed file do.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from vrooms.media.tools import run_tool

_TOOL_SECONDS = 300.0
_RATE = 48000
_MJR_MAGIC = b"MJR00002"
_FRAME_MAGIC = b"MEET"
_ULAW_SILENCE = b"\xff"
_MAX_GAP_SAMPLES = 8000 * 3600
DECODED = ".decoded"  # janus-pp-rec's output beside its .mjr, deleted with it
_CODECS = {"wav": ["-c:a", "pcm_s16le"], "mp3": ["-c:a", "libmp3lame", "-b:a", "64k"]}


@dataclass(frozen=True)
class Piece:
    """One segment of a document: a file (None: silence) starting ``offset_ms`` in, ``duration_ms`` long."""

    path: Path | None
    offset_ms: int
    duration_ms: int
    input_options: tuple[str, ...] = ()  # what ffmpeg must be told of a headerless file


def mjr_header(path: Path) -> dict[str, Any] | None:
    """The JSON header of an ``.mjr`` (codec ``c``, first packet time ``u``); None if it has none.

    The file (janus record.c): ``MJR00002``, a 16-bit big-endian length, that much JSON, then
    frames. Janus writes the header with the first packet: a leg that never sent has none.
    """
    with path.open("rb") as handle:
        return _header(handle)


def _header(handle: BinaryIO) -> dict[str, Any] | None:
    head = handle.read(len(_MJR_MAGIC) + 2)
    if len(head) < len(_MJR_MAGIC) + 2 or not head.startswith(_MJR_MAGIC):
        return None
    (length,) = struct.unpack(">H", head[len(_MJR_MAGIC) :])
    try:
        info = orjson.loads(handle.read(length))
    except orjson.JSONDecodeError:
        return None
    return info if isinstance(info, dict) and isinstance(info.get("u"), int) else None


def _frames(handle: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(milliseconds since the first packet, RTP packet) of each frame: ``MEET``, 32-bit ms, 16-bit length."""
    while len(head := handle.read(10)) == 10 and head.startswith(_FRAME_MAGIC):
        millis, length = struct.unpack(">IH", head[4:])
        packet = handle.read(length)
        if len(packet) < length:
            return
        yield millis, packet


def _pcmu_payload(packet: bytes) -> tuple[int, int, bytes] | None:
    """(SSRC, RTP timestamp, payload) of a PCMU packet (RFC 3550 section 5.1; PT 0), else None."""
    if len(packet) < 12 or packet[0] >> 6 != 2 or packet[1] & 0x7F != 0:
        return None
    start = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10 and len(packet) >= start + 4:  # header extension
        start += 4 + 4 * struct.unpack(">H", packet[start + 2 : start + 4])[0]
    end = len(packet) - (packet[-1] if packet[0] & 0x20 else 0)  # padding
    timestamp, ssrc = struct.unpack(">II", packet[4:12])
    return (ssrc, timestamp, packet[start:end]) if start <= end else None


def pcmu_stream(mjr: Path, out: Path) -> None:
    """A phone leg's recording as a raw G.711 u-law stream, each packet where its time says.

    Not janus-pp-rec: it keeps only the first SSRC it sees, and a phone's changes (a carrier
    switching media, a transfer) -- every packet is placed by when its SSRC began plus its
    RTP timestamp, and gaps are u-law silence.
    """
    audio = bytearray()
    starts: dict[int, tuple[int, int]] = {}  # ssrc -> (sample where it began, its first timestamp)
    with mjr.open("rb") as handle:
        if _header(handle) is None:
            raise OSError(f"{mjr.name} is not a Janus recording")
        for millis, packet in _frames(handle):
            parsed = _pcmu_payload(packet)
            if parsed is None:
                continue
            ssrc, timestamp, payload = parsed
            begun, first = starts.setdefault(ssrc, (millis * 8, timestamp))
            at = begun + ((timestamp - first) & 0xFFFFFFFF)
            if at > len(audio) + _MAX_GAP_SAMPLES:
                continue  # a timestamp beyond reason: not audio of this call
            audio[len(audio) : at] = _ULAW_SILENCE * max(0, at - len(audio))
            audio[at : at + len(payload)] = payload
    out.write_bytes(bytes(audio))


async def decode_mjr(mjr: Path, info: dict[str, Any]) -> Piece:
    """The participant's audio (``info``: its header) as a file ffmpeg reads: Ogg Opus (janus-pp-rec),
    or raw u-law (a phone)."""
    if info.get("c") == "pcmu":
        out = mjr.with_suffix(f"{DECODED}.ulaw")
        pcmu_stream(mjr, out)
        return Piece(out, 0, 0, ("-f", "mulaw", "-ar", "8000", "-ac", "1"))
    out = mjr.with_suffix(f"{DECODED}.opus")
    await run_tool(["janus-pp-rec", str(mjr), str(out)], "janus-tools", _TOOL_SECONDS)
    return Piece(out, 0, 0)


def _ffmpeg(pieces: list[Piece], out: Path, fmt: str) -> list[str]:
    command = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    chains = []
    for n, piece in enumerate(pieces):
        seconds = f"{piece.duration_ms / 1000:.3f}"
        if piece.path is None:
            command += ["-f", "lavfi", "-i", f"anullsrc=r={_RATE}:cl=mono"]
        else:
            command += [*piece.input_options, "-i", str(piece.path)]
        chain = f"[{n}:a]aresample={_RATE},aformat=channel_layouts=mono"
        if piece.path is not None and piece.offset_ms > 0:
            chain += f",adelay={piece.offset_ms}:all=1"
        chains.append(f"{chain},apad,atrim=duration={seconds}[p{n}]")
    joined = "".join(f"[p{n}]" for n in range(len(pieces)))
    graph = ";".join([*chains, f"{joined}concat=n={len(pieces)}:v=0:a=1[out]"])
    return [*command, "-filter_complex", graph, "-map", "[out]", "-ar", str(_RATE), *_CODECS[fmt], str(out)]


async def assemble(pieces: list[Piece], out: Path, fmt: str) -> None:
    """Write ``pieces`` one after another as ``out`` (``fmt`` wav or mp3, 48 kHz mono)."""
    if not pieces:
        pieces = [Piece(None, 0, 0)]
    await run_tool(_ffmpeg(pieces, out, fmt), "ffmpeg", _TOOL_SECONDS)
