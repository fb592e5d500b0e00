"""ACS's streaming messages (the WebSocket's JSON). Media streaming: ``AudioMetadata`` and
``AudioData`` to the app, ``AudioData`` and ``StopAudio`` from it (keys from an app are read
case-insensitively, as apps send both ``kind`` and ``Kind``). Transcription:
``TranscriptionMetadata``, then a ``TranscriptionData`` per result, times in 100 ns ticks."""

from __future__ import annotations

import array
import base64
import binascii
from datetime import datetime
from typing import Any

import orjson

from vrooms.speech import Caption

FRAME_SECONDS = 0.02
_SILENT_BELOW = 64  # peak of a 16-bit frame under which it counts as silence


def _get(message: dict[str, Any], key: str) -> Any:
    return next((v for k, v in message.items() if k.lower() == key.lower()), None)


def audio_data(pcm: bytes, at: datetime, raw_id: str | None = None) -> bytes:
    samples = array.array("h", pcm)
    silent = max(samples, default=0) < _SILENT_BELOW and -min(samples, default=0) < _SILENT_BELOW
    data = {
        "timestamp": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "participantRawID": raw_id,
        "data": base64.b64encode(pcm).decode(),
        "silent": silent,
    }
    return orjson.dumps({"kind": "AudioData", "audioData": data})


def metadata(subscription_id: str, rate: int) -> bytes:
    length = int(rate * FRAME_SECONDS) * 2
    meta = {"subscriptionId": subscription_id, "encoding": "PCM", "sampleRate": rate, "channels": 1, "length": length}
    return orjson.dumps({"kind": "AudioMetadata", "audioMetadata": meta})


def inbound_audio(raw: str | bytes) -> bytes | None:
    """The PCM of an app's ``AudioData``; ``b""`` for ``StopAudio``; None for anything else."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(message, dict):
        return None
    kind = str(_get(message, "kind") or "").lower()
    if kind == "stopaudio":
        return b""
    payload = _get(message, "audioData")
    data = _get(payload, "data") if kind == "audiodata" and isinstance(payload, dict) else None
    if not isinstance(data, str):
        return None
    try:
        pcm = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
    return pcm[: len(pcm) // 2 * 2]


_TICKS_PER_SECOND = 10_000_000


def transcription_metadata(subscription_id: str, locale: str, connection_id: str, correlation_id: str) -> bytes:
    meta = {
        "subscriptionId": subscription_id,
        "locale": locale,
        "callConnectionId": connection_id,
        "correlationId": correlation_id,
    }
    return orjson.dumps({"kind": "TranscriptionMetadata", "transcriptionMetadata": meta})


def transcription_data(caption: Caption, raw_id: str, started_at: float) -> bytes:
    """A result; ``offset`` counts from ``started_at`` (when the transcription started)."""
    offset = max(0.0, caption.began_at - started_at)
    data = {
        "text": caption.text,
        "format": "display",
        "confidence": caption.confidence if caption.confidence is not None else 0.0,
        "offset": _ticks(offset),
        "duration": _ticks(caption.duration),
        "words": [
            {"text": word.text, "offset": _ticks(offset + word.start), "duration": _ticks(word.end - word.start)}
            for word in caption.words
        ],
        "participantRawID": raw_id,
        "resultStatus": "Final" if caption.final else "Intermediate",
    }
    return orjson.dumps({"kind": "TranscriptionData", "transcriptionData": data})


def _ticks(seconds: float) -> int:
    return round(max(0.0, seconds) * _TICKS_PER_SECOND)
