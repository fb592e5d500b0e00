"""HTTP routes of the Call Automation API in the REST workers (paths of CallAutomation/stable).

A worker authenticates the request (HMAC, api-version, size limits), reads its JSON, and
relays it to the call host, which owns the calls (``automation.host_api``); the call
host's answer goes back unchanged. Operations vrooms does not offer yet have no route,
so they get 404 ``NotFound`` naming the missing operation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vrooms.api.endpoint import ApiCall, ApiServices, endpoint
from vrooms.api.responses import JSONResponse
from vrooms.automation import schemas

_RELAYED_HEADERS = ("repeatability-request-id", "repeatability-first-sent")
_CONNECTION = "/calling/callConnections/{callConnectionId}"
_RECORDING = "/calling/recordings/{recordingId}"


class AutomationRequests(Protocol):
    """Where a Call Automation request is answered: this node's call host, or (a cluster) the
    node that holds the call's room."""

    async def run(self, envelope: dict[str, Any]) -> tuple[int, Any, dict[str, str]]: ...


class AutomationApi(ApiServices, Protocol):
    """What the Call Automation routes use."""

    @property
    def automation(self) -> AutomationRequests: ...


def _relay(op: str) -> Callable[[Request], Awaitable[Response]]:
    async def handler(call: ApiCall[AutomationApi]) -> Response:
        params = call.request.path_params
        envelope = {
            "op": op,
            "connectionId": params.get("callConnectionId"),
            "participantRawId": params.get("participantRawId"),
            "recordingId": params.get("recordingId"),
            "body": call.json(empty_ok=True),
            "headers": {k: v for k, v in call.request.headers.items() if k.lower() in _RELAYED_HEADERS},
        }
        status, body, headers = await call.services.automation.run(envelope)
        if body is None:
            return Response(status_code=status, headers=headers)
        if status >= 400 and isinstance(body, dict):
            headers["x-ms-error-code"] = str(body.get("error", {}).get("code", ""))
        return JSONResponse(body, status_code=status, headers=headers)

    return endpoint(schemas.VERSIONS, handler)


def _operation(path: str, method: str, op: str) -> Route:
    return Route(path, _relay(op), methods=[method])


routes = [
    _operation("/calling/callConnections:connect", "POST", "connect"),
    _operation("/calling/callConnections:answer", "POST", "answer"),
    _operation("/calling/callConnections:reject", "POST", "reject"),
    _operation("/calling/callConnections:redirect", "POST", "redirect"),
    _operation(f"{_CONNECTION}:terminate", "POST", "terminate"),
    _operation(f"{_CONNECTION}:sendDtmfTones", "POST", "sendDtmfTones"),
    _operation(f"{_CONNECTION}:startContinuousDtmfRecognition", "POST", "startContinuousDtmfRecognition"),
    _operation(f"{_CONNECTION}:stopContinuousDtmfRecognition", "POST", "stopContinuousDtmfRecognition"),
    _operation(f"{_CONNECTION}:play", "POST", "play"),
    _operation(f"{_CONNECTION}:cancelAllMediaOperations", "POST", "cancelAllMediaOperations"),
    _operation(f"{_CONNECTION}:recognize", "POST", "recognize"),
    _operation(f"{_CONNECTION}:startMediaStreaming", "POST", "startMediaStreaming"),
    _operation(f"{_CONNECTION}:stopMediaStreaming", "POST", "stopMediaStreaming"),
    _operation(f"{_CONNECTION}:startTranscription", "POST", "startTranscription"),
    _operation(f"{_CONNECTION}:updateTranscription", "POST", "updateTranscription"),
    _operation(f"{_CONNECTION}:stopTranscription", "POST", "stopTranscription"),
    _operation(f"{_CONNECTION}:hold", "POST", "hold"),
    _operation(f"{_CONNECTION}:unhold", "POST", "unhold"),
    _operation(f"{_CONNECTION}/participants:add", "POST", "add"),
    _operation(f"{_CONNECTION}/participants:remove", "POST", "remove"),
    _operation(f"{_CONNECTION}/participants:mute", "POST", "mute"),
    _operation(f"{_CONNECTION}/participants:cancelAddParticipant", "POST", "cancelAddParticipant"),
    _operation(f"{_CONNECTION}/participants:moveHere", "POST", "moveHere"),
    _operation(f"{_CONNECTION}/participants/{{participantRawId}}", "GET", "participant"),
    _operation(f"{_CONNECTION}/participants", "GET", "participants"),
    _operation(_CONNECTION, "GET", "get"),
    _operation(_CONNECTION, "DELETE", "hangUp"),
    _operation("/calling/recordings", "POST", "startRecording"),
    _operation(f"{_RECORDING}:pause", "POST", "pauseRecording"),
    _operation(f"{_RECORDING}:resume", "POST", "resumeRecording"),
    _operation(_RECORDING, "GET", "getRecording"),
    _operation(_RECORDING, "DELETE", "stopRecording"),
]
