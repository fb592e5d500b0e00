"""Telephone legs against real peers: sipp as the carrier (digest auth), rtpengine, Janus, aiortc."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import struct
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests.audio_files import spoken_pcm, transcribe, wav_pcm, word_error_rate, write_wav
from tests.browsers import Launch, join, open_call, screenshot
from tests.calls import CallWorld, Member, hears, stops_hearing
from tests.phones import (
    PASSWORD,
    TONE_HZ,
    Scenario,
    caller_xml,
    dtmf_pcap,
    refused_caller_xml,
    trunk_env,
    write_pcmu_pcap,
    write_tone_pcap,
)
from tests.servers import Server
from tests.sip_raw import Dialog, RawSip, answer_invite
from vrooms.captions.engines import EngineChoice
from vrooms.captions.workers import RecognizerPool
from vrooms.client import Call
from vrooms.client.signaling import CallError

NUMBER = "+15551234567"
DIAL_IN, PIN = "+15550009999", "2468"
DIAL_IN_2 = "+15550008888"  # a second number to the same room: the total limit across numbers
INCOMING_CALL = "Microsoft.Communication.IncomingCall"


@pytest.fixture(scope="module")
def dial_in_room(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The data folder, with the room the static dial-in rule names created before the server starts."""
    data_dir = tmp_path_factory.mktemp("pstn")
    offline = Server(data_dir)
    offline.cli("migrate")
    room = json.loads(offline.cli("rooms", "create").stdout)
    return data_dir, str(room["id"])


@pytest.fixture(scope="module")
def phone_server(trunk_port: int, sip_listen: str, dial_in_room: tuple[Path, str]) -> Iterator[Server]:
    data_dir, room_id = dial_in_room
    server = Server(
        data_dir,
        log_level="info",
        extra_env={
            **trunk_env(trunk_port, sip_listen),
            "VROOMS_SIP_DIALIN": json.dumps({n: {"roomId": room_id, "pin": PIN} for n in (DIAL_IN, DIAL_IN_2)}),
            "VROOMS_SIP_MAX_INCOMING_CALLS": "6",
            "VROOMS_SIP_MAX_INCOMING_CALLS_PER_NUMBER": "4",
        },
    ).start()
    yield server
    server.stop()


@pytest.fixture
async def world(phone_server: Server) -> AsyncIterator[CallWorld]:
    created = CallWorld(phone_server)
    yield created
    await created.close()


def _phone(call: Call) -> dict[str, Any] | None:
    return next((p for p in call.participants.values() if p.get("phoneNumber") == NUMBER), None)


def _left_reason(call: Call, participant_id: str) -> str | None:
    return next(
        (
            e["reason"]
            for e in call.events
            if e.get("type") == "participantLeft" and e["participantId"] == participant_id
        ),
        None,
    )


async def _presenter_room(world: CallWorld, *, pstn: bool = True) -> tuple[str, Member, Call]:
    presenter = world.user()
    room_id = world.room({presenter: "Presenter"})
    if pstn:
        world.rooms.update_room(room_id=room_id, pstn_dial_out_enabled=True)
    call = await world.join(presenter, room_id, tone=0.0)
    return room_id, presenter, call


async def test_presenter_dials_a_phone_that_plays_a_tone_everyone_hears(
    world: CallWorld, carrier: Any, tmp_path: Path
) -> None:
    pcap = write_tone_pcap(tmp_path / "tone.pcap", seconds=8)
    phone = carrier(Scenario(play=[str(pcap)]))
    _, _, call = await _presenter_room(world)
    participant_id = await call.dial_out(NUMBER)
    await call.wait_until(lambda: (_phone(call) or {}).get("state") == "Connected", 15)
    await hears(call, TONE_HZ, 10)
    await call.remove_participant(participant_id)
    assert phone.finish() == 0, phone.errors()
    await call.wait_until(lambda: _phone(call) is None)


PHONE_SENTENCES = [
    "good morning this is the front desk",
    "your appointment is at ten tomorrow",
    "please bring your insurance card with you",
]


async def test_a_phone_is_captioned_like_anyone_and_the_pipeline_loses_little(
    world: CallWorld, carrier: Any, tmp_path: Path
) -> None:
    """Captions on; a dialled phone says three sentences (espeak-ng as PCMU RTP) and hangs up:
    its captions name the phone, and their word error rate is at most 1.2 x the engine's on the
    same audio fed directly, + 0.05."""
    pcm = b"".join(spoken_pcm(text, 8000) + bytes(2 * 12000) for text in PHONE_SENTENCES)
    pcap = write_pcmu_pcap(tmp_path / "speech.pcap", [v / 32768 for (v,) in struct.iter_unpack("<h", pcm)])
    phone = carrier(Scenario(play=[str(pcap)], hang_up_after_ms=len(pcm) // 16 + 3000))
    _, _, call = await _presenter_room(world)
    await call.start_captions()
    participant_id = await call.dial_out(NUMBER)
    await call.wait_until(lambda: _left_reason(call, participant_id) is not None, 90)
    finals = [
        c
        for c in call.captions_received
        if c["resultType"] == "Final" and c["speaker"]["participantId"] == participant_id
    ]
    assert finals and all(c["speaker"]["identifier"] == f"4:{NUMBER}" for c in finals)
    assert phone.finish() == 0, phone.errors()

    pool = RecognizerPool(EngineChoice("pocketsphinx"), size=1)
    await pool.start()
    try:
        direct = await transcribe(pool, wav_pcm(write_wav(tmp_path / "said.wav", pcm, 8000), 16000))
    finally:
        pool.shutdown()
    reference = " ".join(PHONE_SENTENCES)
    pipeline_wer = word_error_rate(reference, " ".join(c["spokenText"] for c in finals))
    direct_wer = word_error_rate(reference, " ".join(c.text for c in direct if c.final))
    print(f"word error rate of a phone: through the call {pipeline_wer:.2f}, the engine on the audio {direct_wer:.2f}")
    assert pipeline_wer <= 1.2 * direct_wer + 0.05


async def test_every_participant_hears_the_phone_and_the_phone_hears_the_room(world: CallWorld, carrier: Any) -> None:
    """sipp echoes what it receives: the attendee's 440 Hz comes back to them only through the phone."""
    phone = carrier(Scenario(), echo=True)
    presenter, attendee = world.user(), world.user()
    room_id = world.room({presenter: "Presenter", attendee: "Attendee"})
    world.rooms.update_room(room_id=room_id, pstn_dial_out_enabled=True)
    call = await world.join(presenter, room_id)
    listener = await world.join(attendee, room_id, tone=440.0)
    await call.dial_out(NUMBER)
    await listener.wait_until(lambda: (_phone(listener) or {}).get("state") == "Connected", 15)
    await hears(listener, 440.0, 10)  # own voice, back through the phone leg (Janus never mixes it back)
    await hears(call, 440.0, 10)
    await call.end_for_all()
    assert phone.finish() == 0, phone.errors()  # the phone got its BYE when the call ended


async def test_the_phone_hanging_up_ends_its_leg_with_a_reason(world: CallWorld, carrier: Any) -> None:
    phone = carrier(Scenario(hang_up_after_ms=500))
    _, presenter, call = await _presenter_room(world)
    participant_id = await call.dial_out(NUMBER)
    await call.wait_until(lambda: _left_reason(call, participant_id) is not None, 15)
    assert _left_reason(call, participant_id) == "HungUp"
    assert phone.finish() == 0, phone.errors()
    rows = world.records("SELECT raw_id, leave_reason FROM call_participants WHERE id = ?", participant_id)
    assert rows == [(f"4:{NUMBER}", "HungUp")]
    (dialed_by,) = world.records("SELECT user_agent FROM call_participants WHERE id = ?", participant_id)[0]
    assert presenter.raw_id in dialed_by  # who brought the phone in


@pytest.mark.parametrize(
    ("final", "reason"), [(486, "Busy"), (404, "NumberNotFound"), (503, "Unavailable"), (0, "NoAnswer")]
)
async def test_a_call_the_carrier_refuses_or_nobody_answers_leaves_with_the_reason(
    world: CallWorld, carrier: Any, final: int, reason: str
) -> None:
    """final 0: the phone rings and nobody answers; vrooms gives up after 3 s with CANCEL (sipp expects it)."""
    phone = carrier(Scenario(final=final))
    _, _, call = await _presenter_room(world)
    participant_id = await call.dial_out(NUMBER)
    await call.wait_until(lambda: _left_reason(call, participant_id) is not None, 20)
    assert _left_reason(call, participant_id) == reason
    assert phone.finish() == 0, phone.errors()


async def test_hanging_up_a_ringing_phone_cancels_the_invite(world: CallWorld, carrier: Any) -> None:
    phone = carrier(Scenario(final=0))
    _, _, call = await _presenter_room(world)
    participant_id = await call.dial_out(NUMBER)
    await call.wait_until(lambda: (_phone(call) or {}).get("state") == "Ringing", 15)
    await call.remove_participant(participant_id)
    assert phone.finish() == 0, phone.errors()  # it received the CANCEL and answered 487
    assert _left_reason(call, participant_id) == "RemovedByPresenter"


async def test_who_may_dial_out_is_the_role_and_the_room(world: CallWorld) -> None:
    presenter, attendee, consumer = world.user(), world.user(), world.user()
    room_id = world.room({presenter: "Presenter", attendee: "Attendee", consumer: "Consumer"})
    call = await world.join(presenter, room_id)
    assert "pstnDialOut" not in call.capabilities
    with pytest.raises(CallError) as refused:
        await call.dial_out(NUMBER)
    assert refused.value.code == "PstnDialOutDisabled" and "pstnDialOutEnabled" in refused.value.message
    world.rooms.update_room(room_id=room_id, pstn_dial_out_enabled=True)
    await call.wait_until(lambda: "pstnDialOut" in call.capabilities)
    for member in (attendee, consumer):
        other = await world.join(member, room_id)
        with pytest.raises(CallError) as refused:
            await other.dial_out(NUMBER)
        assert refused.value.code == "NotAllowed"
    with pytest.raises(CallError) as refused:
        await call.dial_out("5551234567")
    assert refused.value.code == "BadMessage" and "phoneNumber" in refused.value.message
    world.rooms.update_room(room_id=room_id, pstn_dial_out_enabled=False)
    await call.wait_until(lambda: "pstnDialOut" not in call.capabilities)


async def test_without_a_trunk_phone_requests_say_so(call_server: Server) -> None:
    world = CallWorld(call_server)
    try:
        presenter = world.user()
        room_id = world.room({presenter: "Presenter"})
        world.rooms.update_room(room_id=room_id, pstn_dial_out_enabled=True)
        call = await world.join(presenter, room_id)
        with pytest.raises(CallError) as refused:
            await call.dial_out(NUMBER)
        assert refused.value.code == "PstnUnavailable" and "VROOMS_SIP_TRUNK_URI" in refused.value.message
    finally:
        await world.close()


async def test_dtmf_both_ways(world: CallWorld, carrier: Any) -> None:
    """Digits the phone keys arrive as dtmfReceived; digits sent to it travel as RFC 4733 (the echo
    sends them back, and rtpengine reports them again as from the phone)."""
    phone = carrier(Scenario(play=[dtmf_pcap("1"), dtmf_pcap("#")]), echo=True)
    _, _, call = await _presenter_room(world)
    participant_id = await call.dial_out(NUMBER)

    def tones() -> list[str]:
        return [
            e["tone"] for e in call.events if e.get("type") == "dtmfReceived" and e["participantId"] == participant_id
        ]

    await call.wait_until(lambda: tones()[:2] == ["1", "#"], 15)
    await call.send_dtmf(participant_id, "5")
    await call.wait_until(lambda: "5" in tones(), 10)
    with pytest.raises(CallError) as refused:
        await call.send_dtmf(participant_id, "5X")
    assert refused.value.code == "BadMessage"
    await call.end_for_all()
    assert phone.finish() == 0, phone.errors()


async def _in_dial_in_room(world: CallWorld, dial_in_room: tuple[Path, str]) -> Call:
    """A Presenter in the room call the static dial-in rule sends callers to."""
    presenter = world.user()
    world.set_role(dial_in_room[1], presenter, "Presenter")
    return await world.join(presenter, dial_in_room[1])


async def test_dial_in_with_the_right_pin_joins_the_room_call(
    world: CallWorld, carrier: Any, dial_in_room: tuple[Path, str], sip_listen: str
) -> None:
    call = await _in_dial_in_room(world, dial_in_room)
    caller = carrier(caller_xml(DIAL_IN, PIN + "#"), call=sip_listen)
    await call.wait_until(lambda: any(p.get("phoneNumber") == "+15557654321" for p in call.participants.values()), 30)
    phone_id = next(pid for pid, p in call.participants.items() if p.get("phoneNumber"))
    await call.remove_participant(phone_id)
    assert caller.finish() == 0, caller.errors()
    announced = [json.loads(d) for (d,) in world.records("SELECT data FROM events WHERE type = ?", INCOMING_CALL)]
    assert any(
        e["to"]["phoneNumber"]["value"] == DIAL_IN
        and e["from"]["rawId"] == "4:+15557654321"
        and e["incomingCallContext"]
        for e in announced
    )


async def test_dial_in_with_a_wrong_pin_three_times_is_hung_up(
    world: CallWorld, carrier: Any, dial_in_room: tuple[Path, str], sip_listen: str
) -> None:
    call = await _in_dial_in_room(world, dial_in_room)
    caller = carrier(caller_xml(DIAL_IN, "1111" * 3), call=sip_listen)
    assert caller.finish(timeout=60) == 0, caller.errors()  # it got the BYE
    assert not any(p.get("phoneNumber") for p in call.participants.values())


async def test_early_media_is_heard_before_the_phone_answers(world: CallWorld, carrier: Any, tmp_path: Path) -> None:
    pcap = write_tone_pcap(tmp_path / "ringback.pcap", seconds=3)
    phone = carrier(Scenario(early_media=True, early_play=[str(pcap)], ring_ms=2500))
    _, _, call = await _presenter_room(world)
    await call.dial_out(NUMBER)
    await call.wait_until(lambda: (_phone(call) or {}).get("state") == "EarlyMedia", 15)
    await hears(call, TONE_HZ, 5)
    assert (_phone(call) or {}).get("state") == "EarlyMedia"  # heard before the 200
    await call.wait_until(lambda: (_phone(call) or {}).get("state") == "Connected", 10)
    await call.end_for_all()
    assert phone.finish() == 0, phone.errors()


async def test_a_presenter_mutes_a_phone_in_the_mix(world: CallWorld, carrier: Any, tmp_path: Path) -> None:
    pcap = write_tone_pcap(tmp_path / "tone.pcap", seconds=20)
    phone = carrier(Scenario(play=[str(pcap)]))
    _, _, call = await _presenter_room(world)
    participant_id = await call.dial_out(NUMBER)
    await hears(call, TONE_HZ, 15)
    await call.mute_participant(participant_id)
    await stops_hearing(call, TONE_HZ)
    assert (_phone(call) or {}).get("muted") is True
    await call.end_for_all()
    assert phone.finish() == 0, phone.errors()


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSTOP])
async def test_rtpengine_killed_or_hung_ends_phone_legs_and_comes_back(
    world: CallWorld, carrier: Any, phone_server: Server, how: signal.Signals
) -> None:
    """SIGKILL: rtpengine exits. SIGSTOP: it hangs; its ng pings go unanswered and within 5 s
    the legs end and a new rtpengine starts (the hung one is stopped)."""
    first = carrier(Scenario())
    _, _, call = await _presenter_room(world)
    participant_id = await call.dial_out(NUMBER)
    await call.wait_until(lambda: (_phone(call) or {}).get("state") == "Connected", 15)
    pid_file = phone_server.data_dir / "rtpengine" / "rtpengine.pid"
    old_pid = int(pid_file.read_text())
    os.kill(old_pid, how)
    await call.wait_until(lambda: _left_reason(call, participant_id) is not None, 15 if how == signal.SIGKILL else 5)
    assert _left_reason(call, participant_id) == "TelephonyMediaFailure"
    assert first.finish() == 0, first.errors()  # the phone was hung up (BYE), not left ringing in silence
    second = carrier(Scenario())
    again = await call.dial_out(NUMBER)  # waits for the new rtpengine if it is still starting
    await call.wait_until(lambda: (_phone(call) or {}).get("state") == "Connected", 15)
    assert int(pid_file.read_text()) != old_pid
    await call.remove_participant(again)
    assert second.finish() == 0, second.errors()


def test_sip_from_an_untrusted_address_or_to_an_unknown_number_is_refused(
    carrier: Any, sip_listen: str, phone_server: Server
) -> None:
    """The trunk is 127.0.0.1: a caller at 127.0.0.2 gets 403, and a number without a rule 404."""
    stranger = carrier(refused_caller_xml(DIAL_IN, 403), call=sip_listen, address="127.0.0.2")
    assert stranger.finish() == 0, stranger.errors()
    unknown = carrier(refused_caller_xml("+15550001234", 404), call=sip_listen)
    assert unknown.finish() == 0, unknown.errors()


def test_no_sip_password_in_any_log(phone_server: Server) -> None:
    """Runs after the calls above (file order): the server log, rtpengine's and Janus's."""
    for log in [phone_server.log_path, *phone_server.data_dir.glob("*/*.log")]:
        assert PASSWORD not in log.read_text(errors="replace"), log


async def test_a_presenter_dials_a_phone_from_the_call_page(
    world: CallWorld, carrier: Any, launch: Launch, tmp_path: Path
) -> None:
    """The phone form appears in the participant panel once the room allows dial-out (live); a
    number being typed survives the panel's redraw when someone joins; Enter dials; the phone's
    row reaches Connected; Remove in the panel hangs the phone up."""
    phone = carrier(Scenario(play=[str(write_tone_pcap(tmp_path / "tone.pcap", seconds=8))]))
    presenter, guest = world.user(), world.user()
    room_id = world.room({presenter: "Presenter", guest: "Attendee"})
    page = await open_call(await launch(), world, presenter, room_id, "Paula")
    await join(page)
    await page.get_by_role("button", name="Participants").click()
    number = page.get_by_label("Phone number")
    await expect(number).to_be_hidden()
    world.rooms.update_room(room_id=room_id, pstn_dial_out_enabled=True)
    await number.fill("5551234")  # no country code: the browser refuses it before anything is sent
    await page.get_by_role("button", name="Call phone number").click()
    assert not await number.evaluate("input => input.validity.valid")
    await number.fill(NUMBER)
    await world.join(guest, room_id, display_name="Gus")
    await expect(page.locator(".panel li", has_text="Gus")).to_be_visible()
    await expect(number).to_have_value(NUMBER)
    await expect(number).to_be_focused()
    await page.keyboard.press("Enter")
    row = page.locator(".panel li", has_text=NUMBER)
    await expect(row).to_contain_text("Connected", timeout=15_000)
    await expect(page.locator("figure.tile", has_text=NUMBER)).to_be_visible()
    await screenshot(page, "phone")
    await page.get_by_role("button", name=f"Remove {NUMBER}").click()
    assert phone.finish() == 0, phone.errors()
    await expect(row).to_have_count(0)


def _listener(sip_listen: str) -> tuple[str, int]:
    host, port = sip_listen.split(":")
    return host, int(port)


async def test_requests_in_a_dialog_from_another_address_are_refused_and_end_nothing(
    world: CallWorld, trunk_port: int, sip_listen: str
) -> None:
    """A phone answers a dial-out; 127.0.0.2 then sends BYE, INFO, a re-INVITE and CANCEL with that
    dialog's Call-ID and tags: each gets 403 and the phone stays Connected. The trunk's own BYE ends it."""
    _, _, call = await _presenter_room(world)
    trunk = RawSip(_listener(sip_listen), port=trunk_port)
    stranger = RawSip(_listener(sip_listen), host="127.0.0.2")
    try:
        answering = asyncio.ensure_future(asyncio.to_thread(answer_invite, trunk))
        participant_id = await call.dial_out(NUMBER)
        dialog = await answering
        await call.wait_until(lambda: (_phone(call) or {}).get("state") == "Connected", 15)
        for method in ("BYE", "INFO", "INVITE", "CANCEL"):
            dialog.cseq += 1
            stranger.request(method, dialog)
            assert await asyncio.to_thread(stranger.response, method) == 403
        assert (_phone(call) or {}).get("state") == "Connected"
        dialog.cseq += 1
        trunk.request("BYE", dialog)
        assert await asyncio.to_thread(trunk.response, "BYE") == 200
        await call.wait_until(lambda: _left_reason(call, participant_id) is not None, 10)
    finally:
        trunk.close()
        stranger.close()


async def _answers(trunk: RawSip, number: str, count: int) -> tuple[list[Dialog], list[int]]:
    dialogs = {d.call_id: d for d in (trunk.invite(number) for _ in range(count))}
    answers = [await asyncio.to_thread(trunk.answered, dialogs) for _ in range(count)]
    return [d for d, code in answers if code == 200], sorted(code for _, code in answers)


async def test_a_burst_of_incoming_calls_is_answered_up_to_the_limits(trunk_port: int, sip_listen: str) -> None:
    """Limits of 4 a number and 6 in all: 5 INVITEs to one number get 4 answers and a 486, 3 to
    another 2 answers and a 503 (before any rtpengine session is made for them); hung up, the
    slots are free again."""
    trunk = RawSip(_listener(sip_listen), port=trunk_port)
    try:
        first, codes = await _answers(trunk, DIAL_IN, 5)
        assert codes == [200, 200, 200, 200, 486]
        second, codes = await _answers(trunk, DIAL_IN_2, 3)
        assert codes == [200, 200, 503]
        for dialog in first + second:
            dialog.cseq += 1
            trunk.request("BYE", dialog)
            assert await asyncio.to_thread(trunk.response, "BYE") == 200
        for _ in range(50):  # the slots are given back once each leg has ended
            again, codes = await _answers(trunk, DIAL_IN, 1)
            if codes == [200]:
                break
        assert codes == [200]
        again[0].cseq += 1
        trunk.request("BYE", again[0])
        assert await asyncio.to_thread(trunk.response, "BYE") == 200
    finally:
        trunk.close()


async def test_a_burst_of_dial_outs_stops_at_the_rooms_phone_leg_limit(world: CallWorld) -> None:
    """Five at once against a limit of two: the limit is decided under the call's lock, not before it.
    Nobody answers (no carrier): the two admitted legs give up after 3 s with NoAnswer.

    Last in the module: an INVITE that got no provisional response cannot be cancelled (RFC 3261
    9.1), so it is retransmitted until its transaction times out (timer B, 32 s), and a carrier
    started on the trunk port meanwhile would take it for its own test's call."""
    _, _, call = await _presenter_room(world)
    outcomes = await asyncio.gather(*(call.dial_out(NUMBER) for _ in range(5)), return_exceptions=True)
    admitted = [o for o in outcomes if isinstance(o, str)]
    refused = [o.code for o in outcomes if isinstance(o, CallError)]
    assert len(admitted) == 2 and refused == ["PhoneLegLimitReached"] * 3
    await call.wait_until(lambda: all(_left_reason(call, p) == "NoAnswer" for p in admitted), 15)
