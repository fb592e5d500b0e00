"""The call host's end of Call Automation: one internal route that runs an operation.

REST workers authenticate the app's request and relay it here (``automation.routes``) as
an envelope ``{"op", "connectionId", "participantRawId", "body", "headers"}`` over the
call host's private Unix socket; the answer is ``{"status", "body", "headers"}``, the
ACS response the worker sends on. Repeatable requests are remembered here, in memory:
call connections live in this process and die with it, and so may their repeats.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from vrooms.api import repeatability
from vrooms.api.times import now_micros
from vrooms.automation import media_schemas, schemas
from vrooms.automation.connection import Connection
from vrooms.automation.service import AutomationService
from vrooms.callbacks import fields
from vrooms.calls.models import CallRefused, Refusal
from vrooms.errors import ApiError
from vrooms.media.types import MediaError
from vrooms.recording import schemas as recording_schemas

Answer = tuple[int, Any]
Operation = Callable[[AutomationService, dict[str, Any]], Awaitable[Answer]]

# How a call rule's refusal reads to an app: (HTTP status, ACS-style code). Default 400.
_REFUSALS = {
    Refusal.PSTN_DIAL_OUT_DISABLED: 403,
    Refusal.NUMBER_NOT_ALLOWED: 403,
    Refusal.PHONE_LEG_LIMIT: 403,
    Refusal.NOT_ON_ROSTER: 403,
    Refusal.ROOM_NOT_YET_OPEN: 403,
    Refusal.ROOM_EXPIRED: 403,
    Refusal.ALREADY_IN_CALL: 409,
    Refusal.PARTICIPANT_NOT_FOUND: 404,
    Refusal.NOT_IN_CALL: 404,
    Refusal.MEDIA_UNAVAILABLE: 503,
    Refusal.PSTN_UNAVAILABLE: 503,
    Refusal.INCOMING_CALL_NOT_FOUND: 404,
    Refusal.ROOM_ELSEWHERE: 503,
}


def _refused(refusal: CallRefused) -> ApiError:
    return ApiError(_REFUSALS.get(Refusal(refusal.code), 400), refusal.code, refusal.message)


# -- the operations ------------------------------------------------------------------------


async def _connect(service: AutomationService, envelope: dict[str, Any]) -> Answer:
    connection = await service.connect(schemas.parse_connect(envelope["body"]))
    return 200, service.properties(connection)


async def _get(service: AutomationService, envelope: dict[str, Any]) -> Answer:
    return 200, service.properties(_connection(service, envelope))


async def _hang_up(service: AutomationService, envelope: dict[str, Any]) -> Answer:
    await service.hang_up(_connection(service, envelope))
    return 204, None


async def _terminate(service: AutomationService, envelope: dict[str, Any]) -> Answer:
    await service.terminate(_connection(service, envelope))
    return 204, None


async def _participants(service: AutomationService, envelope: dict[str, Any]) -> Answer:
    return 200, {"value": service.participants.listed(_connection(service, envelope))}


async def _participant(service: AutomationService, envelope: dict[str, Any]) -> Answer:
    return 200, service.participants.participant(_connection(service, envelope), str(envelope.get("participantRawId")))


async def _add(service: AutomationService, envelope: dict[str, Any]) -> Answer:
    connection = _connection(service, envelope)
    return 202, await service.participants.add(connection, schemas.parse_add(envelope["body"]))


async def _remove(service: AutomationService, envelope: dict[str, Any]) -> Answer:
    request = schemas.parse_target(envelope["body"], "participantToRemove")
    await service.participants.remove(_connection(service, envelope), request)
    return 202, {"operationContext": request.operation_context}


async def _mute(service: AutomationService, envelope: dict[str, Any]) -> Answer:
    request = schemas.parse_mute(envelope["body"])
    await service.participants.mute(_connection(service, envelope), request)
    return 200, {"operationContext": request.operation_context}


async def _cancel_add(service: AutomationService, envelope: dict[str, Any]) -> Answer:
    request = schemas.parse_cancel_add(envelope["body"])
    await service.participants.cancel_add(_connection(service, envelope), request)
    return 202, {"invitationId": request.invitation_id, "operationContext": request.operation_context}


async def _hold(service: AutomationService, envelope: dict[str, Any]) -> Answer:
    request = schemas.parse_target(envelope["body"], "targetParticipant")
    await service.participants.hold(_connection(service, envelope), request, on_hold=envelope["op"] == "hold")
    return 200, None


async def _send_dtmf(service: AutomationService, envelope: dict[str, Any]) -> Answer:
    request = schemas.parse_send_dtmf(envelope["body"])
    await service.media.send_dtmf(_connection(service, envelope), request)
    return 202, {"operationContext": request.operation_context}


async def _continuous_dtmf(service: AutomationService, envelope: dict[str, Any]) -> Answer:
    request = schemas.parse_target(envelope["body"], "targetParticipant")
    connection = _connection(service, envelope)
    if envelope["op"] == "startContinuousDtmfRecognition":
        service.media.start_dtmf(connection, request)
    else:
        service.media.stop_dtmf(connection, request)
    return 200, None


async def _play(service: AutomationService, envelope: dict[str, Any]) -> Answer:
    await service.media.play(_connection(service, envelope), media_schemas.parse_play(envelope["body"]))
    return 202, None


async def _cancel_media(service: AutomationService, envelope: dict[str, Any]) -> Answer:
    service.media.cancel_media(_connection(service, envelope))
    return 202, None


async def _recognize(service: AutomationService, envelope: dict[str, Any]) -> Answer:
    await service.media.recognize(_connection(service, envelope), media_schemas.parse_recognize(envelope["body"]))
    return 202, None


async def _answer(service: AutomationService, envelope: dict[str, Any]) -> Answer:
    connection = await service.answer(schemas.parse_answer(envelope["body"]))
    return 200, service.properties(connection)


async def _reject(service: AutomationService, envelope: dict[str, Any]) -> Answer:
    service.reject(*schemas.parse_reject(envelope["body"]))
    return 204, None


async def _redirect(service: AutomationService, envelope: dict[str, Any]) -> Answer:
    service.redirect(*schemas.parse_redirect(envelope["body"]))
    return 204, None


async def _move(service: AutomationService, envelope: dict[str, Any]) -> Answer:
    return 202, await service.participants.move(_connection(service, envelope), schemas.parse_move(envelope["body"]))


async def _streaming(service: AutomationService, envelope: dict[str, Any]) -> Answer:
    connection = _connection(service, envelope)
    context = schemas.operation_context(envelope["body"])
    fields.refuse_unsupported(envelope["body"], "operationCallbackUri")
    if envelope["op"] == "startMediaStreaming":
        service.streams.start(connection, context)
    else:
        await service.streams.stop(connection, context)
    return 202, None


async def _transcription(service: AutomationService, envelope: dict[str, Any]) -> Answer:
    connection = _connection(service, envelope)
    body = envelope["body"]
    context = schemas.operation_context(body)
    fields.refuse_unsupported(body, "operationCallbackUri", "speechModelEndpointId", "speechRecognitionModelEndpointId")
    match envelope["op"]:
        case "startTranscription":
            service.transcriptions.start(connection, schemas.locale(body, "locale", required=False), context)
        case "updateTranscription":
            locale = schemas.locale(body, "locale", required=True)
            assert locale is not None
            await service.transcriptions.update(connection, locale, context)
        case _:
            await service.transcriptions.stop(connection, context)
    return 202, None


async def _start_recording(service: AutomationService, envelope: dict[str, Any]) -> Answer:
    return 200, await service.recordings.start(recording_schemas.parse_start(envelope["body"]))


async def _recording(service: AutomationService, envelope: dict[str, Any]) -> Answer:
    recording_id = str(envelope.get("recordingId"))
    recordings = service.recordings
    match envelope["op"]:
        case "getRecording":
            return 200, recordings.get(recording_id)
        case "pauseRecording":
            await recordings.pause(recording_id)
        case "resumeRecording":
            await recordings.resume(recording_id)
        case _:
            await recordings.stop(recording_id)
            return 204, None
    return 202, None


def _connection(service: AutomationService, envelope: dict[str, Any]) -> Connection:
    return service.connection(str(envelope.get("connectionId")))


OPERATIONS: dict[str, Operation] = {
    "connect": _connect,
    "get": _get,
    "hangUp": _hang_up,
    "terminate": _terminate,
    "participants": _participants,
    "participant": _participant,
    "add": _add,
    "remove": _remove,
    "mute": _mute,
    "cancelAddParticipant": _cancel_add,
    "hold": _hold,
    "unhold": _hold,
    "sendDtmfTones": _send_dtmf,
    "startContinuousDtmfRecognition": _continuous_dtmf,
    "stopContinuousDtmfRecognition": _continuous_dtmf,
    "play": _play,
    "cancelAllMediaOperations": _cancel_media,
    "recognize": _recognize,
    "answer": _answer,
    "reject": _reject,
    "redirect": _redirect,
    "moveHere": _move,
    "startMediaStreaming": _streaming,
    "stopMediaStreaming": _streaming,
    "startTranscription": _transcription,
    "updateTranscription": _transcription,
    "stopTranscription": _transcription,
    "startRecording": _start_recording,
    "getRecording": _recording,
    "pauseRecording": _recording,
    "resumeRecording": _recording,
    "stopRecording": _recording,
}


# -- repeatable requests -----------------------------------------------------------------


class RepeatMemory:
    """Answers of repeatable requests by Repeatability-Request-ID, for the tracking window."""

    def __init__(self, window_seconds: int) -> None:
        self.window_seconds = window_seconds
        self._answers: dict[str, tuple[str, float, asyncio.Future[Answer]]] = {}

    async def run(self, key: repeatability.RepeatKey | None, work: Callable[[], Awaitable[Answer]]) -> Answer:
        if key is None:
            return await work()
        self._forget_old()
        known = self._answers.get(key.request_id)
        if known is not None:
            if known[0] != key.fingerprint:
                raise ApiError(
                    400,
                    "BadRequest",
                    "This Repeatability-Request-ID was used for a different request.",
                    "Repeatability-Request-ID",
                )
            return await asyncio.shield(known[2])
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._answers[key.request_id] = (key.fingerprint, time.monotonic(), answer)
        try:
            answer.set_result(await work())
        except ApiError as error:
            answer.set_result((error.status, error.to_wire()))
        except BaseException as exc:
            del self._answers[key.request_id]  # not answered: a retry may run it
            answer.set_exception(exc)
            answer.exception()
            raise
        return answer.result()

    def _forget_old(self) -> None:
        horizon = time.monotonic() - 2 * self.window_seconds
        for request_id in [r for r, (_, at, done) in self._answers.items() if at < horizon and done.done()]:
            del self._answers[request_id]


async def _mapped(operation: Operation, service: AutomationService, envelope: dict[str, Any]) -> Answer:
    try:
        await service.find(envelope.get("connectionId"))  # a lost node's connection: adopt its call
        return await operation(service, envelope)
    except CallRefused as refusal:
        raise _refused(refusal) from None
    except MediaError as exc:
        raise ApiError(502, "MediaError", f"The media server failed: {exc}") from None


async def run_operation(
    service: AutomationService, repeats: RepeatMemory, envelope: dict[str, Any]
) -> tuple[Answer, dict[str, str]]:
    """The operation's answer (an error body too, once it is a repeat's), and headers for it."""
    operation = OPERATIONS.get(str(envelope.get("op")))
    if operation is None:
        raise ApiError(404, "NotFound", "No such Call Automation operation.")
    headers = {k.lower(): v for k, v in dict(envelope.get("headers") or {}).items()}
    fingerprint = orjson.dumps(
        [envelope.get("op"), envelope.get("connectionId"), envelope.get("recordingId"), envelope.get("body")]
    )
    key = repeatability.parse(headers, fingerprint, now=now_micros(), window_seconds=repeats.window_seconds)
    answer = await repeats.run(key, lambda: _mapped(operation, service, envelope))
    return answer, ({repeatability.RESULT: "accepted"} if key is not None else {})


async def answer(service: AutomationService, repeats: RepeatMemory, raw: bytes) -> bytes:
    """The answer to an envelope, as the relays (the local socket, another node over NATS) carry it."""
    try:
        envelope = orjson.loads(raw)
        if not isinstance(envelope, dict):
            raise ApiError(400, "BadRequest", "The relayed request is not an envelope.")
        (status, body), headers = await run_operation(service, repeats, envelope)
    except orjson.JSONDecodeError:
        status, body, headers = 400, ApiError(400, "BadRequest", "The relayed request is not JSON.").to_wire(), {}
    except ApiError as error:
        status, body, headers = error.status, error.to_wire(), dict(error.headers)
    return orjson.dumps({"status": status, "body": body, "headers": headers})


async def automation_endpoint(request: Request) -> Response:
    """``POST /automation`` on the call host's private socket: only the REST workers reach it."""
    return Response(await answer(request.app.state.automation, request.app.state.repeats, await request.body()))
