"""From what Janus wrote to the documents an app downloads (janus-pp-rec and ffmpeg, from Debian).

Mixed: the mix of each segment (``mix-<n>.wav``, 48 kHz) is joined in order. Unmixed: each
participant's ``.mjr`` of a segment (their RTP: Opus, decoded by janus-pp-rec, or a phone's
G.711, unpacked here) is placed on the segment's timeline (silence before their first
packet, after their last) and the segments joined: every participant's document has the
recording's length, so the files line up second by second, as the channels of one ACS
unmixed file do. Audio and video: the mixed audio, and every camera and screen (VP8,
decoded by janus-pp-rec) placed on a 1280x720 canvas where and when it was live
(``layout``: a grid of the cameras; a screen share takes the left three quarters and
the cameras a column beside it), encoded H.264 + AAC in MP4.
"""

from __future__ import annotations

import math
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
    return Piece(await _post_process(mjr, "opus"), 0, 0)


async def _post_process(mjr: Path, extension: str) -> Path:
    """janus-pp-rec: a recording's packets as a file of the given kind (Ogg Opus, WebM VP8) beside it."""
    out = mjr.with_suffix(f"{DECODED}.{extension}")
    await run_tool(["janus-pp-rec", str(mjr), str(out)], "janus-tools", _TOOL_SECONDS)
    return out


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


# -- audio and video ------------------------------------------------------------------------------

CANVAS = (1280, 720)
FPS = 15


@dataclass(frozen=True)
class Tile:
    """Where on the canvas a feed's picture goes (scaled to fit, centred)."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class Shot:
    """One feed's pictures, decoded: ``key`` names the feed, placed ``start_ms`` into the document."""

    key: str
    screen: bool
    path: Path
    start_ms: int
    duration_ms: int

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.duration_ms


@dataclass(frozen=True)
class VideoPiece:
    """Part of a shot on the canvas: ``skip_ms`` into its file, shown from ``start_ms`` for ``duration_ms``."""

    path: Path
    start_ms: int
    duration_ms: int
    tile: Tile
    skip_ms: int = 0


def _even(value: float) -> int:
    return int(value) // 2 * 2


def layout(cameras: list[str], screen: bool) -> tuple[Tile, dict[str, Tile]]:
    """The screen's tile and each camera's: a near-square grid of the cameras, or, with a screen
    share, the screen large on the left and the cameras in a column on the right."""
    width, height = CANVAS
    if screen:
        side = width // 4
        cell = _even(min(height / max(len(cameras), 4), side * 9 / 16))
        column = [Tile(width - side, n * cell, side, cell) for n in range(len(cameras))]
        return Tile(0, 0, width - side, height), dict(zip(cameras, column, strict=True))
    columns = max(1, math.ceil(math.sqrt(len(cameras))))
    rows = max(1, math.ceil(len(cameras) / columns))
    cell_w, cell_h = _even(width / columns), _even(height / rows)
    grid = [Tile((n % columns) * cell_w, (n // columns) * cell_h, cell_w, cell_h) for n in range(len(cameras))]
    return Tile(0, 0, width, height), dict(zip(cameras, grid, strict=True))


def _cut(begin: int, end: int, marks: list[int]) -> Iterator[tuple[int, int]]:
    """``[begin, end)`` cut at every mark inside it."""
    for mark in sorted(m for m in marks if begin < m < end):
        yield begin, mark
        begin = mark
    yield begin, end


def arrange(shots: list[Shot]) -> list[VideoPiece]:
    """The layout changes with what is live: while a screen is shared the cameras stand in a
    column beside it, otherwise they fill a grid; each camera keeps its place in either."""
    cameras = list(dict.fromkeys(s.key for s in shots if not s.screen))
    screen_tile, column = layout(cameras, screen=True)
    _, grid = layout(cameras, screen=False)
    screens = [s for s in shots if s.screen]
    marks = [t for s in screens for t in (s.start_ms, s.end_ms)]
    pieces = [VideoPiece(s.path, s.start_ms, s.duration_ms, screen_tile) for s in screens]
    for shot in (s for s in shots if not s.screen):
        for begin, end in _cut(shot.start_ms, shot.end_ms, marks):
            sharing = any(s.start_ms <= begin < s.end_ms for s in screens)
            tile = column[shot.key] if sharing else grid[shot.key]
            pieces.append(VideoPiece(shot.path, begin, end - begin, tile, begin - shot.start_ms))
    return pieces


def mjr_length_ms(path: Path) -> int:
    """Milliseconds from a recording's first packet to its last (0 if it has none)."""
    with path.open("rb") as handle:
        if _header(handle) is None:
            return 0
        return max((millis for millis, _ in _frames(handle)), default=0)


async def decode_video(mjr: Path) -> Path:
    return await _post_process(mjr, "webm")


def _compose_command(audio: Path, pieces: list[VideoPiece], total_ms: int, out: Path) -> list[str]:
    seconds = f"{max(total_ms, 1) / 1000:.3f}"
    width, height = CANVAS
    command = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    command += ["-f", "lavfi", "-i", f"color=c=black:s={width}x{height}:r={FPS}:d={seconds}", "-i", str(audio)]
    chains, last = [], "0:v"
    for n, piece in enumerate(pieces):
        command += ["-i", str(piece.path)]
        t = piece.tile
        chains.append(
            f"[{n + 2}:v]trim=start={piece.skip_ms / 1000:.3f}:duration={piece.duration_ms / 1000:.3f},"
            f"setpts=PTS-STARTPTS+{piece.start_ms / 1000:.3f}/TB,"
            f"scale={t.width}:{t.height}:force_original_aspect_ratio=decrease,"
            f"pad={t.width}:{t.height}:(ow-iw)/2:(oh-ih)/2[v{n}]"
        )
        chains.append(f"[{last}][v{n}]overlay={t.x}:{t.y}:eof_action=pass[o{n}]")
        last = f"o{n}"
    graph = ["-filter_complex", ";".join(chains)] if chains else []
    encode = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "28", "-pix_fmt", "yuv420p", "-r", str(FPS)]
    encode += ["-c:a", "aac", "-b:a", "96k", "-t", seconds, "-movflags", "+faststart"]
    return [*command, *graph, "-map", f"[{last}]" if chains else "0:v", "-map", "1:a", *encode, str(out)]


async def compose(audio: Path, pieces: list[VideoPiece], total_ms: int, out: Path) -> None:
    """Write the call's picture (``pieces`` on the canvas) and ``audio`` as ``out`` (MP4)."""
    timeout = _TOOL_SECONDS + 2 * total_ms / 1000  # encoding runs near real time on a small host
    await run_tool(_compose_command(audio, pieces, total_ms, out), "ffmpeg", timeout)
