"""A caller who dialled in at this node for a room whose call another node of the cluster holds.

The carrier sends a call to whichever node it knows; a room's call lives on one node. This
node does not seat the caller: it becomes a back-to-back user agent (sippy on both sides)
that sends the INVITE on to the holder's SIP listener, and its rtpengine relays the media
between the two dialogs (one offer/answer across its two sides, RFC 3264; RFC 4733 digits
pass through). The holder treats the bridged call as any dial-in: PIN, prompts, DTMF, roles,
removal. A BYE (or a refusal) on either side ends the other.

When the holder is lost, the bridged caller is hung up (BYE): the PIN conversation, the
participant and its mix lived on that node. Callers whose INVITE reached the lost node itself
end with it: their dialog and its media anchor (that node's SIP stack and rtpengine) are gone,
and the carrier knows no other address for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from typing import Protocol

from vrooms.pstn.ng import NgError
from vrooms.pstn.rtpengine import Rtpengine
from vrooms.pstn.sip import Answered, Ended, IncomingCall, Progress, SipEvent, SipStack

log = logging.getLogger("vrooms.pstn")

CALLER_TAG, HOLDER_TAG = "caller", "holder"
# How often a bridged call checks that the holder is still alive (besides its SIP events).
_WATCH_SECONDS = 1.0
# A holder that neither answers nor refuses within this is given up (its PIN prompt answers at once).
_ANSWER_SECONDS = 15.0


@dataclass(frozen=True)
class SipPeer:
    """Another node's SIP listener."""

    node: str
    host: str
    port: int


class SipPeers(Protocol):
    """Where the rooms' calls are, for telephony (a cluster; a single node has no peers)."""

    async def holder(self, room_id: str) -> SipPeer | None:
        """The SIP listener of the live node that holds the room's call, if that is another node."""

    async def alive(self, node: str) -> bool:
        """Whether the node is still in the cluster's registry."""


class NoPeers:
    """A single node: every room's call is here."""

    async def holder(self, room_id: str) -> SipPeer | None:
        return None

    async def alive(self, node: str) -> bool:
        return False


@dataclass(frozen=True)
class _FromCaller:
    event: SipEvent


@dataclass(frozen=True)
class _FromHolder:
    event: SipEvent


async def bridge(
    sip: SipStack,
    engine: Rtpengine,
    incoming: IncomingCall,
    peer: SipPeer,
    peers: SipPeers,
    events: asyncio.Queue[SipEvent],
) -> None:
    """Carry ``incoming`` to ``peer`` until either side ends; ``events``: the caller's dialog's."""
    if incoming.sdp is None:
        incoming.dialog.reject(488, "Not Acceptable Here")
        return
    call_id = f"bridge-{uuid.uuid4()}"
    try:
        offer = await engine.offer(call_id, CALLER_TAG, incoming.sdp)
    except NgError as exc:
        log.warning("a dial-in for node %s could not be bridged: rtpengine said %s", peer.node, exc)
        incoming.dialog.reject(503, "Service Unavailable")
        return
    merged: asyncio.Queue[_FromCaller | _FromHolder] = asyncio.Queue()
    onward = sip.dial(
        incoming.called,
        offer,
        lambda event: merged.put_nowait(_FromHolder(event)),
        peer=(peer.host, peer.port),
        caller=incoming.caller,
    )
    log.info("dial-in to %s bridged to node %s (%s:%d)", incoming.called, peer.node, peer.host, peer.port)
    pump = asyncio.create_task(_pump(events, merged))
    answered = False
    try:
        answered = await _carry(incoming, peer, peers, engine, call_id, merged)
    finally:
        pump.cancel()
        onward.hang_up()
        if answered:
            incoming.dialog.hang_up()
        with contextlib.suppress(NgError, OSError, TimeoutError):
            await engine.delete(call_id)


async def _pump(events: asyncio.Queue[SipEvent], merged: asyncio.Queue[_FromCaller | _FromHolder]) -> None:
    while True:
        merged.put_nowait(_FromCaller(await events.get()))


async def _carry(
    incoming: IncomingCall,
    peer: SipPeer,
    peers: SipPeers,
    engine: Rtpengine,
    call_id: str,
    merged: asyncio.Queue[_FromCaller | _FromHolder],
) -> bool:
    """Relay the holder's progress and answer to the caller; returns once either side ended
    (whether the caller had been answered: then it is hung up, else it was refused here)."""
    answered = False
    waited = 0.0
    while True:
        try:
            item = await asyncio.wait_for(merged.get(), _WATCH_SECONDS)
        except TimeoutError:
            waited += _WATCH_SECONDS
            if not await peers.alive(peer.node):
                log.warning("node %s holding a bridged dial-in is gone: the caller is hung up", peer.node)
                _refuse_unless(answered, incoming, 503, "Service Unavailable")
                return answered
            if not answered and waited >= _ANSWER_SECONDS:
                incoming.dialog.reject(504, "Server Time-out")
                return False
            continue
        event = item.event
        if isinstance(item, _FromCaller):
            if isinstance(event, Ended):
                return answered  # the caller hung up or gave up ringing: the holder's dialog ends
            continue
        if isinstance(event, Progress) and not answered:
            incoming.dialog.ring()
        elif isinstance(event, Answered) and not answered:
            if event.sdp is None:
                incoming.dialog.reject(488, "Not Acceptable Here")
                return False
            incoming.dialog.answer(await engine.answer(call_id, CALLER_TAG, HOLDER_TAG, event.sdp))
            answered = True
        elif isinstance(event, Ended):
            _refuse_unless(answered, incoming, event.code or 480, event.reason or "Temporarily Unavailable")
            return answered


def _refuse_unless(answered: bool, incoming: IncomingCall, code: int, reason: str) -> None:
    """An unanswered caller gets the refusal; an answered one is hung up by ``bridge``."""
    if not answered:
        incoming.dialog.reject(code, reason)
