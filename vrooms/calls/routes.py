"""The signaling WebSocket, served by the call host (``/calling/v1``).

REST workers proxy the public endpoint to it (``vrooms.calls.proxy``). A connection
is one signed-in user: it is opened with an access token (``Authorization: Bearer``
or, for browsers, ``?access_token=``), receives invitations, and can be in one call
at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from vrooms.auth.roles import Capability
from vrooms.calls import moderation, protocol
from vrooms.calls.call import Telephony
from vrooms.calls.models import CallRefused, LeaveReason, Refusal
from vrooms.calls.rules import ensure
from vrooms.calls.service import CallService
from vrooms.media.types import MediaError, OfferRefused

log = logging.getLogger("vrooms.calls")

CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_SLOW = 4408
# A client this far behind is not reading: drop it rather than buffer without end.
_MAX_QUEUED_MESSAGES = 1000


class SignalingPeer:
    """One WebSocket; outgoing messages go through a queue so that a slow client slows nobody."""

    def __init__(self, websocket: WebSocket, user_id: str, token: str) -> None:
        self.websocket = websocket
        self.user_id = user_id
        self.token = token
        self.user_agent = websocket.headers.get("user-agent", "")
        # None in the queue: the client fell too far behind; close instead of buffering more.
        self._outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._overflowed = False

    def send(self, message: dict[str, Any]) -> None:
        if self._overflowed:
            return
        if self._outbox.qsize() >= _MAX_QUEUED_MESSAGES:
            self._overflowed = True
            self._outbox.put_nowait(None)
            return
        self._outbox.put_nowait(message)

    async def write(self) -> None:
        # A client that has gone (starlette raises RuntimeError once the socket is closed)
        # ends the writer quietly: a disconnect is not an error.
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                message = await self._outbox.get()
                if message is None:
                    await self.websocket.close(CLOSE_TOO_SLOW, "client too slow to read its messages")
                    return
                await self.websocket.send_text(orjson.dumps(message).decode())


def bearer_token(websocket: WebSocket) -> str:
    header = websocket.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return websocket.query_params.get("access_token", "")


Handler = Callable[[CallService, SignalingPeer, dict[str, Any]], Awaitable[dict[str, Any] | None]]


async def _join(calls: CallService, peer: SignalingPeer, m: dict[str, Any]) -> dict[str, Any]:
    room_id = protocol.required(m, "roomId", limit=32)
    display = protocol.text(m, "displayName", optional=True) or ""
    muted = protocol.flag(m, "muted") if "muted" in m else False
    return await calls.join(peer, room_id, display, protocol.sdp(m), muted=muted)


async def _check_room(calls: CallService, peer: SignalingPeer, m: dict[str, Any]) -> dict[str, Any]:
    return await calls.check_room(peer, protocol.required(m, "roomId", limit=32))


async def _leave(calls: CallService, peer: SignalingPeer, _m: dict[str, Any]) -> None:
    await calls.leave(calls.in_call(peer), LeaveReason.LEFT)


async def _set_muted(calls: CallService, peer: SignalingPeer, m: dict[str, Any]) -> None:
    await calls.media.set_muted(calls.in_call(peer), protocol.flag(m, "muted"))


async def _hold(calls: CallService, peer: SignalingPeer, _m: dict[str, Any]) -> None:
    await calls.media.set_on_hold(calls.in_call(peer), True)


async def _resume(calls: CallService, peer: SignalingPeer, _m: dict[str, Any]) -> None:
    await calls.media.set_on_hold(calls.in_call(peer), False)


async def _audio_offer(calls: CallService, peer: SignalingPeer, m: dict[str, Any]) -> dict[str, Any]:
    return {"sdp": await calls.media.renegotiate_audio(calls.in_call(peer), protocol.sdp(m))}


async def _publish(calls: CallService, peer: SignalingPeer, m: dict[str, Any]) -> dict[str, Any]:
    return {"sdp": await calls.media.publish(calls.in_call(peer), protocol.source(m), protocol.sdp(m))}


async def _unpublish(calls: CallService, peer: SignalingPeer, m: dict[str, Any]) -> None:
    await calls.media.unpublish(calls.in_call(peer), protocol.source(m))


async def _video_answer(calls: CallService, peer: SignalingPeer, m: dict[str, Any]) -> None:
    calls.video.answer(calls.in_call(peer), protocol.sdp(m))


async def _visible_video(calls: CallService, peer: SignalingPeer, m: dict[str, Any]) -> None:
    participant = calls.in_call(peer)
    participant.visible_video = protocol.visible_video(m)
    calls.video.sync(participant)


async def _mute_participant(calls: CallService, peer: SignalingPeer, m: dict[str, Any]) -> None:
    await moderation.mute_participant(calls, calls.in_call(peer), protocol.required(m, "participantId"))


async def _remove_participant(calls: CallService, peer: SignalingPeer, m: dict[str, Any]) -> None:
    await moderation.remove_participant(calls, calls.in_call(peer), protocol.required(m, "participantId"))


async def _end_for_all(calls: CallService, peer: SignalingPeer, _m: dict[str, Any]) -> None:
    await moderation.end_for_all(calls, calls.in_call(peer))


async def _invite(calls: CallService, peer: SignalingPeer, m: dict[str, Any]) -> dict[str, Any]:
    return {"ringing": await moderation.invite(calls, calls.in_call(peer), protocol.required(m, "userId"))}


async def _decline(calls: CallService, peer: SignalingPeer, m: dict[str, Any]) -> None:
    await moderation.decline(calls, peer, protocol.required(m, "callId", limit=36))


async def _captions(calls: CallService, peer: SignalingPeer, m: dict[str, Any]) -> dict[str, Any]:
    action = protocol.required(m, "action", limit=16)
    language = protocol.text(m, "language", optional=True, limit=16)
    return await moderation.captions(calls, calls.in_call(peer), action, language)


async def _list_participants(calls: CallService, peer: SignalingPeer, _m: dict[str, Any]) -> dict[str, Any]:
    return await moderation.listing(calls, calls.in_call(peer))


def _telephony(calls: CallService) -> Telephony:
    if calls.telephony is None:
        raise CallRefused(
            Refusal.PSTN_UNAVAILABLE, "This server has no SIP trunk (VROOMS_SIP_TRUNK_URI), so no phone calls."
        )
    return calls.telephony


async def _dial_out(calls: CallService, peer: SignalingPeer, m: dict[str, Any]) -> dict[str, Any]:
    actor = calls.in_call(peer)
    ensure(actor, Capability.PSTN_DIAL_OUT)  # the permission first: it is the answer with or without a trunk
    number = protocol.required(m, "phoneNumber", limit=32)
    return {"participantId": (await _telephony(calls).dial_out(actor, number)).id}


async def _send_dtmf(calls: CallService, peer: SignalingPeer, m: dict[str, Any]) -> None:
    actor = calls.in_call(peer)
    ensure(actor, Capability.PSTN_DIAL_OUT)
    target, tones = protocol.required(m, "participantId"), protocol.required(m, "tones", limit=32)
    await _telephony(calls).send_dtmf(actor, target, tones)


HANDLERS: dict[str, Handler] = {
    "join": _join,
    "checkRoom": _check_room,
    "leave": _leave,
    "setMuted": _set_muted,
    "hold": _hold,
    "resume": _resume,
    "audioOffer": _audio_offer,
    "publish": _publish,
    "unpublish": _unpublish,
    "videoAnswer": _video_answer,
    "visibleVideo": _visible_video,
    "muteParticipant": _mute_participant,
    "removeParticipant": _remove_participant,
    "endForAll": _end_for_all,
    "invite": _invite,
    "declineInvite": _decline,
    "captions": _captions,
    "listParticipants": _list_participants,
    "dialOut": _dial_out,
    "sendDtmf": _send_dtmf,
}


async def _dispatch(calls: CallService, peer: SignalingPeer, raw: str, *, within_budget: bool) -> None:
    request_id: Any = None
    kind: Any = None
    try:
        message = orjson.loads(raw)
        if not isinstance(message, dict):
            raise protocol.bad("A message must be a JSON object.")
        request_id = message.get("id")
        if not within_budget:
            raise CallRefused(Refusal.RATE_LIMITED, "Too many requests on this connection; slow down and retry.")
        kind = message.get("type")
        handler = HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            raise protocol.bad(f"Unknown message type {message.get('type')!r}; known: {sorted(HANDLERS)}.")
        result = await handler(calls, peer, message)
        peer.send(protocol.result(request_id, result))
    except orjson.JSONDecodeError:
        peer.send(protocol.error(None, Refusal.BAD_MESSAGE, "Messages must be JSON."))
    except CallRefused as refusal:
        peer.send(protocol.error(request_id, refusal.code, refusal.message, **refusal.details))
    except OfferRefused as exc:
        peer.send(protocol.error(request_id, Refusal.BAD_MESSAGE, exc.reason))
    except MediaError as exc:
        log.warning("media server error: %s", exc)
        peer.send(protocol.error(request_id, Refusal.MEDIA_ERROR, f"The media server refused: {exc.reason}"))
    except Exception:
        # A bug must cost one request, not the user's call.
        log.exception("signaling request of type %.40r failed", kind)
        peer.send(protocol.error(request_id, Refusal.INTERNAL_ERROR, "The request failed."))


async def signaling(websocket: WebSocket) -> None:
    calls: CallService = websocket.app.state.calls
    await websocket.accept()
    token = bearer_token(websocket)
    try:
        claims = await calls.authenticate(token)
    except CallRefused as refusal:
        await websocket.send_text(orjson.dumps(protocol.error(None, refusal.code, refusal.message)).decode())
        await websocket.close(CLOSE_UNAUTHORIZED, refusal.code)
        return
    peer = SignalingPeer(websocket, claims.identity_id, token)
    writer = asyncio.create_task(peer.write())
    peer.send(protocol.hello(claims.identity_id, websocket.app.state.node_endpoints()))
    calls.connected(peer)
    budget: protocol.RequestBudget = websocket.app.state.request_budget()
    try:
        while True:
            raw = await websocket.receive_text()
            if len(raw) > protocol.MAX_MESSAGE_BYTES:
                peer.send(protocol.error(None, Refusal.BAD_MESSAGE, "Message too large."))
            else:
                await _dispatch(calls, peer, raw, within_budget=budget.take())
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        await calls.disconnected(peer)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
