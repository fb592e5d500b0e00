"""ACS's audio streaming messages (the WebSocket's JSON): ``AudioMetadata`` and ``AudioData`` to
the app, ``AudioData`` and ``StopAudio`` from it. Keys from an app are read case-insensitively,
as apps send both ``kind`` and ``Kind``."""

from __future__ import annotations

import array
import base64
import binascii
from datetime import datetime
from typing import Any

import orjson

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
