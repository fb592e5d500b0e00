"""SIP signaling toward the trunk, on sippy (Sippy Software's RFC 3261 stack), bridged to asyncio.

sippy does the SIP: transactions and retransmissions (RFC 3261 §17), digest
authentication on 401 and 407 (RFC 2617/3261 §22), CANCEL of a pending INVITE
(§9), BYE, REGISTER. It runs its own reactor (``ED2``) in one thread per process;
calls into it go through ``ED2.callFromThread`` and its callbacks come back to the
asyncio loop with ``loop.call_soon_threadsafe``, so no sippy object is touched from
two threads. What sippy lacks and this module adds: nothing on the wire; only the
lower-casing of a peer's ``transport`` URI parameter (sippy compares it
case-sensitively, and a Contact with ``;transport=UDP`` made its BYE fail).

sippy's transports are UDP and WebSocket; a trunk over TCP or TLS is refused when
the settings are read (``pstn.config``).

Only the trunk (and, in a cluster, the other nodes: ``pstn.bridge``) speaks to us: every
datagram from an address outside ``trusted_sources`` is refused before sippy matches it to a dialog (a request gets 403,
sent back to where it came from, never to its Via; a response is dropped), so a BYE,
CANCEL or re-INVITE that copies a real call's Call-ID and tags from elsewhere ends
nothing. New calls are limited (``CallLimits``): beyond the total 503, beyond a
number's share 486, before any media is set up for them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("vrooms.pstn")

_START_SECONDS = 10.0


@dataclass(frozen=True)
class Progress:
    """180 Ringing, or 183 Session Progress (``sdp``: early media from the far end)."""

    code: int
    sdp: str | None


@dataclass(frozen=True)
class Answered:
    sdp: str | None


@dataclass(frozen=True)
class Ended:
    """The dialog is over: ``code`` is the final status (486, 404, ...) or 0 for a BYE or CANCEL."""

    code: int
    reason: str
    by_remote: bool


SipEvent = Progress | Answered | Ended
SipHandler = Callable[[SipEvent], None]


@dataclass(frozen=True)
class TrunkAddress:
    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)
    caller_id: str
    listen_host: str
    listen_port: int
    register: bool
    trusted_sources: frozenset[str]


def _text(body: Any) -> str | None:
    if body is None:
        return None
    content = body.content if hasattr(body, "content") else body
    return str(content)


def _lower_transport(ua: Any) -> None:
    """sippy compares ``transport`` case-sensitively: a peer's ``;transport=UDP`` broke its BYE."""
    target = getattr(ua, "rTarget", None)
    if target is not None and isinstance(getattr(target, "transport", None), str):
        target.transport = target.transport.lower()
    for name in ("rAddr", "rAddr0"):
        address = getattr(ua, name, None)
        if isinstance(address, tuple) and len(address) == 2 and isinstance(address[1], str):
            setattr(ua, name, (address[0], address[1].lower()))


class CallLimits:
    """Incoming calls at once, in all and per called number. Taken in sippy's thread when an
    INVITE arrives, given back from asyncio when its dialog ends: hence the lock."""

    def __init__(self, total: int, per_number: int) -> None:
        self.total = total
        self.per_number = per_number
        self._lock = threading.Lock()
        self._by_number: dict[str, int] = {}

    def take(self, number: str) -> tuple[int, str] | None:
        """None if the call may go on, else the SIP refusal."""
        with self._lock:
            if sum(self._by_number.values()) >= self.total:
                return 503, "Service Unavailable"
            if self._by_number.get(number, 0) >= self.per_number:
                return 486, "Busy Here"
            self._by_number[number] = self._by_number.get(number, 0) + 1
            return None

    def release(self, number: str) -> None:
        with self._lock:
            left = self._by_number.get(number, 0) - 1
            if left > 0:
                self._by_number[number] = left
            else:
                self._by_number.pop(number, None)


class Dialog:
    """One SIP dialog (outgoing or incoming); every method may be called from asyncio."""

    def __init__(self, stack: SipStack, on_event: SipHandler, on_end: Callable[[], None] | None = None) -> None:
        self.stack = stack
        self.on_event = on_event
        self.ua: Any = None
        self.ended = False
        self._on_end = on_end

    def _end(self) -> None:
        """Once: the dialog is over for us (its incoming-call slot is given back)."""
        if not self.ended:
            self.ended = True
            if self._on_end is not None:
                self._on_end()

    def _deliver(self, event: SipEvent) -> None:
        if self.ended:
            return
        if isinstance(event, Ended):
            self._end()
        self.on_event(event)

    def from_sippy(self, event: Any, ua: Any) -> None:
        """sippy's callback (in its thread): map its CCEvent to ours, hand it to asyncio."""
        from sippy.CCEvents import CCEventConnect, CCEventDisconnect, CCEventFail, CCEventPreConnect, CCEventRing

        _lower_transport(ua)
        data = event.getData()
        ours: SipEvent | None = None
        if isinstance(event, CCEventRing) and data and data[0] in (180, 181, 182, 183):
            ours = Progress(int(data[0]), _text(data[2]) if len(data) > 2 else None)
        elif isinstance(event, CCEventPreConnect | CCEventConnect):
            ours = Answered(_text(data[2]) if data and len(data) > 2 else None)
        elif isinstance(event, CCEventFail):
            code, reason = (data[0], data[1]) if data else (500, "Failed")
            ours = Ended(int(code), str(reason), by_remote=True)
        elif isinstance(event, CCEventDisconnect):
            ours = Ended(0, "BYE", by_remote=event.origin != "local")
        if ours is not None:
            self.stack.loop.call_soon_threadsafe(self._deliver, ours)

    def hang_up(self) -> None:
        """CANCEL while the call is pending, BYE once it is up; idempotent."""
        if self.ended:
            return
        self._end()
        self.stack.in_sip_thread(self._disconnect)

    def _disconnect(self) -> None:
        if self.ua is not None:
            _lower_transport(self.ua)
            self.ua.disconnect(origin="local")

    # -- incoming dialogs --------------------------------------------------------

    def ring(self) -> None:
        self.stack.in_sip_thread(self._send, "CCEventRing", (180, "Ringing", None))

    def answer(self, sdp: str) -> None:
        if self.ended:  # the caller gave up (CANCEL) while we prepared the answer
            return
        self.stack.in_sip_thread(self._send, "CCEventConnect", (200, "OK", sdp))

    def reject(self, code: int, reason: str) -> None:
        if self.ended:
            return
        self._end()
        self.stack.in_sip_thread(self._send, "CCEventFail", (code, reason))

    def redirect(self, number: str) -> None:
        """302 to the number at the trunk: the carrier calls it instead (Call Automation's redirect)."""
        if self.ended:
            return
        self._end()
        self.stack.in_sip_thread(self._send, "CCEventRedirect", (302, "Moved Temporarily", number))

    def _send(self, kind: str, data: tuple[Any, ...]) -> None:
        from sippy import CCEvents
        from sippy.MsgBody import MsgBody

        if kind == "CCEventConnect":
            data = (data[0], data[1], MsgBody(data[2]))
        elif kind == "CCEventRedirect":
            from sippy.SipAddress import SipAddress
            from sippy.SipURL import SipURL

            trunk = self.stack.trunk
            contact = SipAddress(url=SipURL(username=data[2], host=trunk.host, port=trunk.port))
            data = (data[0], data[1], None, (contact,))
        if self.ua is not None:
            self.ua.recvEvent(getattr(CCEvents, kind)(data, origin="local"))


@dataclass(frozen=True)
class IncomingCall:
    """An INVITE from the trunk: who called whom, their SDP offer, and the dialog to answer on."""

    caller: str
    called: str
    caller_name: str
    sdp: str | None
    dialog: Dialog
    source: str


IncomingHandler = Callable[[IncomingCall], SipHandler | None]


class SipStack:
    """The process's one sippy stack: a thread running its reactor, and the trunk it talks to."""

    def __init__(self, trunk: TrunkAddress, on_incoming: IncomingHandler, limits: CallLimits) -> None:
        self.trunk = trunk
        self.on_incoming = on_incoming
        self.limits = limits
        self.loop = asyncio.get_running_loop()
        self._config: dict[str, Any] = {}
        self._started = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        # The other nodes' SIP hosts (a cluster): they send this node the dial-ins it holds rooms for.
        self.peer_hosts: Callable[[], frozenset[str]] = frozenset

    async def start(self) -> None:
        """Start sippy's thread; raises if it did not come up within ``_START_SECONDS`` (the loop
        goes on meanwhile: the wait is in a worker thread)."""
        # sippy logs every SIP message (auth headers included) to stderr unless told otherwise.
        os.environ.setdefault("SIPLOG_BEND", "none")
        from sippy.Core.EventDispatcher import ED2  # noqa: F401  (created on the main thread: it sets a signal)

        self._thread = threading.Thread(target=self._run, name="sippy", daemon=True)
        self._thread.start()
        if not await asyncio.to_thread(self._started.wait, _START_SECONDS):
            raise RuntimeError(f"the SIP stack did not start within {_START_SECONDS:.0f} s")
        if self._failure is not None:
            raise RuntimeError(f"the SIP stack did not start: {self._failure}")

    async def probe(self) -> None:
        """Returns once sippy's thread has run a no-op: a heartbeat's probe (a hung or dead
        thread never answers)."""
        answered = self.loop.create_future()

        def answer() -> None:
            if not answered.done():
                answered.set_result(None)

        self.in_sip_thread(self.loop.call_soon_threadsafe, answer)
        await answered

    def _run(self) -> None:
        from sippy.Core.EventDispatcher import ED2
        from sippy.SipConf import SipConf
        from sippy.SipLogger import SipLogger
        from sippy.SipTransactionManager import SipTransactionManager

        ED2.my_ident = threading.get_ident()
        try:
            SipConf.my_uaname = "vrooms"
            SipConf.allow_formats = (0, 8, 101)
            self._config = {
                "_sip_address": self.trunk.listen_host,
                "_sip_port": self.trunk.listen_port,
                "_sip_logger": SipLogger("vrooms-sip"),
            }
            self._config["_sip_tm"] = _guarded(SipTransactionManager, self.trusted)(self._config, self._incoming)
            if self.trunk.register:
                self._register()
        except BaseException as exc:  # reported to start(), which raises it
            self._failure = exc
            self._started.set()
            return
        self._started.set()
        ED2.loop()

    def trusted(self, source: str) -> bool:
        """Whether SIP from ``source`` is served: the trunk's addresses and the cluster's other nodes."""
        return source in self.trunk.trusted_sources or source in self.peer_hosts()

    def in_sip_thread(self, function: Callable[..., Any], *args: Any) -> None:
        from sippy.Core.EventDispatcher import ED2

        ED2.callFromThread(function, *args)

    def stop(self) -> None:
        from sippy.Core.EventDispatcher import ED2

        if self._thread is not None:
            ED2.callFromThread(ED2.breakLoop)
            self._thread.join(5)

    # -- outgoing ---------------------------------------------------------------

    def dial(
        self,
        number: str,
        sdp: str,
        on_event: SipHandler,
        *,
        peer: tuple[str, int] | None = None,
        caller: str | None = None,
    ) -> Dialog:
        """INVITE ``number`` at the trunk, or at ``peer`` (another node's SIP listener, as
        ``caller``: a dial-in it holds the room for); the no-answer timeout is the caller's."""
        dialog = Dialog(self, on_event)
        self.in_sip_thread(self._invite, dialog, number, sdp, peer, caller)
        return dialog

    def _invite(self, dialog: Dialog, number: str, sdp: str, peer: tuple[str, int] | None, caller: str | None) -> None:
        from sippy.CCEvents import CCEventTry
        from sippy.MsgBody import MsgBody
        from sippy.SipCallId import SipCallId
        from sippy.UA import UA

        if dialog.ended:  # hung up before the INVITE left
            return
        trunk = self.trunk
        if peer is None:
            ua = UA(
                self._config,
                event_cb=dialog.from_sippy,
                username=trunk.username,
                password=trunk.password,
                nh_address=(trunk.host, trunk.port),
            )
        else:  # nodes of one cluster trust each other's addresses: no credentials between them
            ua = UA(self._config, event_cb=dialog.from_sippy, nh_address=peer)
        cli = caller or trunk.caller_id
        ua.recvEvent(CCEventTry((SipCallId(), cli, number, MsgBody(sdp), None, cli)))
        dialog.ua = ua

    # -- incoming ---------------------------------------------------------------

    def _incoming(self, req: Any, sip_t: Any) -> Any:
        """A request outside any dialog, from the trunk (``_guarded`` refused the rest)."""
        source = str(req.getSource()[0])
        method = req.getMethod()
        if req.getHFBody("to").getTag() is not None:
            return (req.genResponse(481, "Call Leg/Transaction Does Not Exist"), None, None)
        if method in ("OPTIONS", "NOTIFY"):
            return (req.genResponse(200, "OK"), None, None)
        if method != "INVITE":
            return (req.genResponse(501, "Not Implemented"), None, None)
        return self._accept_invite(req, sip_t, source)

    def _accept_invite(self, req: Any, sip_t: Any, source: str) -> Any:
        from sippy.UA import UA

        called = str(req.getRURI().username or "")
        refusal = self.limits.take(called)
        if refusal is not None:
            log.warning("incoming call to %s refused with %d: too many calls at once", called, refusal[0])
            return (req.genResponse(*refusal), None, None)
        dialog = Dialog(self, lambda _event: None, on_end=lambda: self.limits.release(called))
        ua = UA(self._config, event_cb=dialog.from_sippy)
        dialog.ua = ua
        reply = ua.recvRequest(req, sip_t)
        from_address = req.getHFBody("from").getUrl()
        call = IncomingCall(
            caller=str(from_address.username or ""),
            called=called,
            caller_name=str(req.getHFBody("from").getUri().name or ""),
            sdp=_text(req.getBody()),
            dialog=dialog,
            source=source,
        )
        self.loop.call_soon_threadsafe(self._hand_over, call)
        return reply

    def _hand_over(self, call: IncomingCall) -> None:
        handler = self.on_incoming(call)
        if handler is None:
            call.dialog.reject(404, "Not Found")
        else:
            call.dialog.on_event = handler

    def _register(self) -> None:
        from sippy.SipRegistrationAgent import SipRegistrationAgent
        from sippy.SipURL import SipURL

        trunk = self.trunk
        aor = SipURL(username=trunk.username or trunk.caller_id, host=trunk.host, port=trunk.port)
        contact = SipURL(username=trunk.username or trunk.caller_id, host=trunk.listen_host, port=trunk.listen_port)
        agent = SipRegistrationAgent(
            self._config,
            aor,
            contact,
            user=trunk.username,
            passw=trunk.password,
            exp=300,
            rok_cb=lambda *_: log.info("registered at the SIP trunk %s:%d", trunk.host, trunk.port),
            rfail_cb=lambda *_: log.warning("registration at the SIP trunk failed; sippy retries"),
            target=((trunk.host, trunk.port), "udp"),
        )
        agent.doregister()


def _guarded(manager: type[Any], trusted: Callable[[str], bool]) -> type[Any]:
    """sippy's transaction manager, refusing every datagram whose source is not ``trusted``
    before it reaches a transaction or a dialog (sippy routes in-dialog requests to their
    dialog by Call-ID; the request callback sees only new ones)."""
    from sippy.SipRequest import SipRequest

    class Guarded(manager):  # type: ignore[misc]
        def handleIncoming(self, data_in: Any, ra: Any, server: Any, rtime: Any) -> None:
            source = str(ra.address[0])
            if trusted(source):
                super().handleIncoming(data_in, ra, server, rtime)
                return
            data = data_in.decode(errors="replace") if isinstance(data_in, bytes) else str(data_in)
            if data.startswith("SIP/2.0 "):
                return  # a response from elsewhere: dropped
            try:
                request = SipRequest(data)
            except Exception:
                return
            method = request.getMethod()
            log.warning("SIP %s from %s refused: not a trusted source (VROOMS_SIP_TRUSTED_SOURCES)", method, source)
            if method != "ACK":
                server.send_to(request.genResponse(403, "Forbidden").localStr(None), ra.address)

    return Guarded
