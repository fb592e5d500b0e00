"""Rules of the telephone side, without SIP or RTP (pure functions; the real peers are in test_pstn)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from vrooms.config import Settings
from vrooms.events.payloads import identifier
from vrooms.pstn import bridge, numbers
from vrooms.pstn.bridge import SipPeer
from vrooms.pstn.config import TelephonyConfigError, telephony
from vrooms.pstn.leg import reason_for
from vrooms.pstn.ng import bdecode, bencode
from vrooms.pstn.sip import Answered, Ended, IncomingCall, Progress


@pytest.mark.parametrize("good", ["+15551234567", "+441632960961", "+4930123"])
def test_e164_numbers_pass(good: str) -> None:
    assert numbers.e164(good) == good


@pytest.mark.parametrize(
    "bad", ["15551234567", "+0123456789", "+1555", "+1234567890123456", "+1 555 123", 5551234, None]
)
def test_anything_else_names_the_field(bad: object) -> None:
    with pytest.raises(numbers.InvalidNumber, match=r"phoneNumber must be an E\.164 number"):
        numbers.e164(bad)


def test_the_longest_matching_prefix_decides() -> None:
    rules = ("+44", "+1", "!+1900", "!+44", "+447")
    assert numbers.allowed("+15551234567", rules)
    assert not numbers.allowed("+19005550000", rules)
    assert not numbers.allowed("+442071234567", rules)  # a deny beats an allow of the same prefix
    assert numbers.allowed("+447700900123", rules)
    assert not numbers.allowed("+33123456789", rules)  # not on an allow list
    assert numbers.allowed("+33123456789", ())  # no list: all
    assert not numbers.allowed("+19005550000", ("!+1900",))  # deny only: all but those


def test_dtmf_tones_are_rfc_4733_events_only() -> None:
    assert numbers.dtmf_tones("12#*ab") == "12#*AB"
    for bad in ("", "12x", "1" * 33, 5):
        with pytest.raises(numbers.InvalidNumber):
            numbers.dtmf_tones(bad)


def test_sip_final_responses_map_to_leave_reasons() -> None:
    assert [str(reason_for(Ended(code, "", True))) for code in (0, 486, 603, 404, 503, 408, 500)] == [
        "HungUp",
        "Busy",
        "Declined",
        "NumberNotFound",
        "Unavailable",
        "NoAnswer",
        "CallFailed",
    ]


def test_bencode_round_trip() -> None:
    value = {"command": "offer", "flags": ["inject-DTMF", "port latching"], "n": 5, "sdp": "v=0\r\n"}
    assert bencode(value) == b"d7:command5:offer5:flagsl11:inject-DTMF13:port latchinge1:ni5e3:sdp5:v=0\r\ne"
    assert bdecode(bencode(value)) == value


def test_phone_participants_are_phone_identifiers_in_events() -> None:
    assert identifier("4:+15551234567") == {
        "kind": "phoneNumber",
        "rawId": "4:+15551234567",
        "phoneNumber": {"value": "+15551234567"},
    }


def test_trunk_settings_are_checked_when_serve_starts() -> None:
    assert telephony(Settings(sip_trunk_uri=None)) is None
    config = telephony(
        Settings(
            sip_trunk_uri="sip:203.0.113.5;transport=UDP", sip_caller_id="+15550000001", sip_allow_prefixes="+1, !+1900"
        )
    )
    assert config is not None and (config.trunk.host, config.trunk.port) == ("203.0.113.5", 5060)
    assert config.trunk.trusted_sources == frozenset({"203.0.113.5"}) and config.allow_prefixes == ("+1", "!+1900")
    assert "password" not in repr(config.trunk) or "s3cret" not in repr(config.trunk)
    for uri, message in [
        ("sip:host;transport=tcp", "UDP only"),
        ("sips:host", "UDP only"),
        ("http://host", "not a SIP URI"),
    ]:
        with pytest.raises(TelephonyConfigError, match=message):
            telephony(Settings(sip_trunk_uri=uri, sip_caller_id="+15550000001"))
    with pytest.raises(TelephonyConfigError, match="VROOMS_SIP_CALLER_ID"):
        telephony(Settings(sip_trunk_uri="sip:host"))
    with pytest.raises(TelephonyConfigError, match="VROOMS_SIP_DIALIN"):
        telephony(Settings(sip_trunk_uri="sip:host", sip_caller_id="+15550000001", sip_dialin={"+15550009999": {}}))


class _FakeDialog:
    """A fake of the caller's SIP dialog (a unit test of the bridge's rules; test_cluster runs the real one)."""

    def __init__(self) -> None:
        self.said: list[tuple[str, object]] = []

    def ring(self) -> None:
        self.said.append(("ring", None))

    def answer(self, sdp: str) -> None:
        self.said.append(("answer", sdp))

    def reject(self, code: int, reason: str) -> None:
        self.said.append(("reject", code))


class _FakeEngine:
    async def answer(self, call_id: str, from_tag: str, to_tag: str, sdp: str) -> str:
        return f"relayed {sdp}"


class _Peers:
    def __init__(self, alive: bool) -> None:
        self.is_alive = alive

    async def holder(self, room_id: str) -> SipPeer | None:
        return None

    async def alive(self, node: str) -> bool:
        return self.is_alive


async def _carried(events: list[object], *, alive: bool = True) -> tuple[bool, list[tuple[str, object]]]:
    dialog = _FakeDialog()
    incoming = IncomingCall("+15557654321", "+15550007777", "", "v=0", cast(Any, dialog), "127.0.0.1")
    merged: asyncio.Queue[Any] = asyncio.Queue()
    for event in events:
        merged.put_nowait(event)
    peer = SipPeer("a", "127.0.0.1", 5060)
    answered = await bridge._carry(incoming, peer, _Peers(alive), cast(Any, _FakeEngine()), "bridge-1", merged)
    return answered, dialog.said


async def test_a_bridged_caller_hears_the_holders_ringing_and_answer_then_ends_the_bridge() -> None:
    holder, caller = bridge._FromHolder, bridge._FromCaller
    events = [holder(Progress(180, None)), holder(Answered("holder sdp")), caller(Ended(0, "BYE", by_remote=True))]
    answered, said = await _carried(events)
    assert answered
    assert said == [("ring", None), ("answer", "relayed holder sdp")]


async def test_a_holder_refusal_is_the_callers_refusal() -> None:
    answered, said = await _carried([bridge._FromHolder(Ended(486, "Busy Here", by_remote=True))])
    assert not answered
    assert said == [("reject", 486)]


async def test_a_holder_that_left_the_cluster_ends_the_bridge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bridge, "_WATCH_SECONDS", 0.01)
    answered, said = await _carried([], alive=False)
    assert not answered
    assert said == [("reject", 503)]
