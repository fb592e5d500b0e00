"""Play and recognize requests (Call Automation's media operations), checked field by field as
ACS names them; what they may ask for is bounded (sources, text, seconds, tones)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vrooms.automation.schemas import (
    TONES,
    operation_context,
    raw_id,
)
from vrooms.callbacks.fields import MAX_URI_CHARS, object_field, refuse_unsupported, text
from vrooms.errors import bad_argument

_MAX_SOURCES = 10
_MAX_TEXT = 4000
_MAX_RECOGNIZE_SECONDS = 300


@dataclass(frozen=True)
class PlaySource:
    kind: str  # file, text, ssml
    value: str  # the URI, text or SSML
    locale: str | None = None
    voice_kind: str | None = None


def _play_source(model: object, field: str) -> PlaySource:
    if not isinstance(model, dict):
        raise bad_argument(f"{field} must be an object.", field)
    kind = model.get("kind")
    inner = model.get(kind) if isinstance(kind, str) else None
    if kind not in ("file", "text", "ssml") or not isinstance(inner, dict):
        raise bad_argument(f"{field}.kind must be file, text or ssml, with a matching '{kind}' object.", field)
    refuse_unsupported(inner, "customVoiceEndpointId")
    if kind == "file":
        return PlaySource("file", str(text(inner, "uri", MAX_URI_CHARS, required=True)))
    if kind == "ssml":
        return PlaySource("ssml", str(text(inner, "ssmlText", _MAX_TEXT, required=True)))
    voice = text(inner, "voiceName", 128)
    locale = text(inner, "sourceLocale", 32) or (voice.rsplit("-", 1)[0] if voice and "-" in voice else None)
    return PlaySource("text", str(text(inner, "text", _MAX_TEXT, required=True)), locale, text(inner, "voiceKind", 16))


def _play_sources(body: dict[str, Any], name: str, *, required: bool) -> list[PlaySource]:
    sources = body.get(name)
    if sources is None and not required:
        return []
    if not isinstance(sources, list) or not 1 <= len(sources) <= _MAX_SOURCES:
        raise bad_argument(f"{name} must list 1 to {_MAX_SOURCES} play sources.", name)
    return [_play_source(source, f"{name}[{n}]") for n, source in enumerate(sources)]


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise bad_argument(f"{name} must be true or false.", name)
    return value


@dataclass(frozen=True)
class PlayRequest:
    sources: list[PlaySource]
    targets: list[str]  # raw ids; empty: everyone
    loop: bool
    interrupt: bool
    operation_context: str | None


def parse_play(body: dict[str, Any]) -> PlayRequest:
    refuse_unsupported(body, "operationCallbackUri")
    targets = body.get("playTo") or []
    if not isinstance(targets, list) or len(targets) > 100:
        raise bad_argument("playTo must list at most 100 participants (none: everyone).", "playTo")
    options = object_field(body, "playOptions", required=False) or {}
    return PlayRequest(
        sources=_play_sources(body, "playSources", required=True),
        targets=[raw_id({"playTo": t}, "playTo") for t in targets],
        loop=_flag(options, "loop"),
        interrupt=_flag(body, "interruptCallMediaOperation"),
        operation_context=operation_context(body),
    )


@dataclass(frozen=True)
class RecognizeRequest:
    raw_id: str
    prompt: list[PlaySource]
    interrupt_prompt: bool
    interrupt: bool
    initial_silence_seconds: float
    inter_tone_seconds: float
    max_tones: int
    stop_tones: str
    operation_context: str | None


def _seconds(body: dict[str, Any], name: str, default: float) -> float:
    value = body.get(name, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= _MAX_RECOGNIZE_SECONDS:
        raise bad_argument(f"{name} must be a number of seconds from 1 to {_MAX_RECOGNIZE_SECONDS}.", name)
    return float(value)


def parse_recognize(body: dict[str, Any]) -> RecognizeRequest:
    refuse_unsupported(body, "operationCallbackUri")
    if body.get("recognizeInputType") != "dtmf":
        raise bad_argument("recognizeInputType must be dtmf (no speech recognition here).", "recognizeInputType")
    options = object_field(body, "recognizeOptions")
    assert options is not None
    refuse_unsupported(options, "speechOptions", "choices", "speechLanguage", "speechRecognitionModelEndpointId")
    dtmf = object_field(options, "dtmfOptions", required=False) or {}
    tones = dtmf.get("maxTonesToCollect", 1)
    if not isinstance(tones, int) or isinstance(tones, bool) or not 1 <= tones <= 32:
        raise bad_argument("maxTonesToCollect must be an integer from 1 to 32.", "maxTonesToCollect")
    stops = dtmf.get("stopTones") or []
    if not isinstance(stops, list) or not all(isinstance(t, str) and t.lower() in TONES for t in stops):
        raise bad_argument(f"stopTones must list tones from {sorted(TONES)}.", "stopTones")
    prompt = _play_sources(body, "playPrompts", required=False)
    if body.get("playPrompt") is not None:
        prompt = [_play_source(body["playPrompt"], "playPrompt"), *prompt]
    return RecognizeRequest(
        raw_id=raw_id(options, "targetParticipant"),
        prompt=prompt,
        interrupt_prompt=_flag(options, "interruptPrompt"),
        interrupt=_flag(body, "interruptCallMediaOperation"),
        initial_silence_seconds=_seconds(options, "initialSilenceTimeoutInSeconds", 5),
        inter_tone_seconds=_seconds(dtmf, "interToneTimeoutInSeconds", 2),
        max_tones=tones,
        stop_tones="".join(TONES[t.lower()] for t in stops),
        operation_context=operation_context(body),
    )
