"""The pure parts of room calls: admission order, SDP surgery, the generated Janus configuration."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from vrooms.auth.roles import Capability, Role
from vrooms.calls import protocol
from vrooms.calls.models import CallRefused
from vrooms.calls.rules import check_admission, not_allowed
from vrooms.media import sdp
from vrooms.media.config import write_config
from vrooms.media.interfaces import ice_interfaces
from vrooms.media.sdp import only_receive
from vrooms.rooms.models import Room

NOW = 1_000_000_000
ROOM = Room(id="1", seq=1, created_at=0, valid_from=NOW - 10, valid_until=NOW + 10, pstn_dial_out_enabled=False)


def refusal(**overrides: object) -> str:
    args: dict[str, object] = {"scopes": ("voip",), "room": ROOM, "role": Role.ATTENDEE, "now": NOW} | overrides
    with pytest.raises(CallRefused) as refused:
        check_admission(**args)  # type: ignore[arg-type]
    return refused.value.code


def test_admission_checks_scope_room_roster_and_window_in_that_order() -> None:
    assert check_admission(("voip.join",), ROOM, Role.CONSUMER, NOW) == Role.CONSUMER
    assert refusal(scopes=("chat",), room=None) == "TokenScopeMissing"
    assert refusal(room=None, role=None) == "RoomNotFound"
    assert refusal(role=None, now=NOW + 100) == "NotOnRoster"
    assert refusal(now=ROOM.valid_from - 1) == "RoomNotYetOpen"
    assert check_admission(("voip",), ROOM, Role.ATTENDEE, ROOM.valid_from) == Role.ATTENDEE
    assert refusal(now=ROOM.valid_until) == "RoomExpired"  # validUntil is exclusive


SESSION = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
AUDIO_M = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"
VIDEO_M = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n"


def directions(offer: str) -> list[str]:
    description = sdp.parse(offer)
    return [description.direction(section) for section in description.media]


def test_only_receive_turns_every_sending_direction_off() -> None:
    offer = SESSION + AUDIO_M + "a=sendrecv\r\n" + VIDEO_M + "a=sendonly\r\n"
    result = only_receive(offer)
    assert directions(result) == ["recvonly", "inactive"]
    assert result.endswith("\r\n") and result.count("a=recvonly") == 1


@pytest.mark.parametrize(
    ("session_line", "media_line", "expected"),
    [
        ("", "", "recvonly"),  # no direction at all means sendrecv (RFC 3264 section 5.1)
        ("", "a=SENDRECV\r\n", "recvonly"),
        ("", "a=sendrecv \r\n", "recvonly"),
        ("", "a=sendonly\t\r\n", "inactive"),
        ("a=sendrecv\r\n", "", "recvonly"),  # session level applies to sections without their own
        ("a=sendonly\r\n", "", "inactive"),
        ("a=inactive\r\n", "a=sendrecv\r\n", "recvonly"),  # the section's own wins
        ("", "a=recvonly\r\na=sendrecv\r\n", "recvonly"),  # contradictory: read as sending
    ],
)
def test_receive_only_for_every_spelling_of_a_direction(session_line: str, media_line: str, expected: str) -> None:
    offer = SESSION.replace("t=0 0\r\n", "t=0 0\r\n" + session_line) + AUDIO_M + media_line
    result = sdp.audio_offer(offer, may_send=False)
    assert directions(result) == [expected]
    assert not any(line.strip().lower() in ("a=sendrecv", "a=sendonly") for line in result.splitlines())


def test_a_publish_is_exactly_one_video_section_sent_only() -> None:
    published = sdp.video_publish(SESSION + VIDEO_M + "a=sendrecv\r\n")
    assert published.mid == "1" and directions(published.sdp) == ["sendonly"]
    for offer in (
        SESSION + VIDEO_M + AUDIO_M,  # a muted participant's voice through its camera
        SESSION + VIDEO_M + VIDEO_M.replace("mid:1", "mid:2"),  # one feed shown as two
        SESSION + AUDIO_M,
        SESSION + VIDEO_M.replace("a=mid:1\r\n", ""),
        SESSION + VIDEO_M + "a=recvonly\r\n",
        "hello",
        SESSION + "m=video x\r\n",
        SESSION + "m=video ²³ UDP/TLS/RTP/SAVPF 96\r\n",
    ):
        with pytest.raises(sdp.SdpError):
            sdp.video_publish(offer)


def test_an_audio_offer_carries_audio_only() -> None:
    assert directions(sdp.audio_offer(SESSION + AUDIO_M, may_send=True)) == ["sendrecv"]
    with pytest.raises(sdp.SdpError):
        sdp.audio_offer(SESSION + AUDIO_M + VIDEO_M, may_send=True)


def test_generated_janus_config_loads_only_what_vrooms_uses(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    for folder, names in {
        "plugins": ["libjanus_audiobridge.so", "libjanus_videoroom.so", "libjanus_echotest.so"],
        "transports": ["libjanus_websockets.so", "libjanus_http.so"],
        "loggers": ["libjanus_jsonlog.so"],
        "events": [],
    }.items():
        (lib / folder).mkdir(parents=True)
        for name in names:
            (lib / folder / name).touch()
    conf = tmp_path / "conf"
    endpoint = write_config(
        folder=conf,
        lib_dir=lib,
        ws_port=12345,
        interfaces=["eth0", "eth1"],
        rtp_port_range="20000-20100",
        plain_rtp_port_range="45000-45100",
        stun_server="stun.example.org:3478",
        debug_level=3,
    )
    main = (conf / "janus.jcfg").read_text()
    assert endpoint.url == "ws://127.0.0.1:12345"
    assert f'api_secret = "{endpoint.api_secret}"' in main
    assert 'disable = "libjanus_echotest.so"' in main and 'disable = "libjanus_http.so"' in main
    assert 'ice_enforce_list = "eth0,eth1"' in main and 'stun_server = "stun.example.org"' in main
    assert 'ws_ip = "127.0.0.1"' in (conf / "janus.transport.websockets.jcfg").read_text()
    assert endpoint.admin_key and endpoint.admin_key in (conf / "janus.plugin.videoroom.jcfg").read_text()
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in conf.iterdir())
    # Fresh secrets on every start.
    assert (
        write_config(
            folder=conf,
            lib_dir=lib,
            ws_port=1,
            interfaces=["x"],
            rtp_port_range="1-2",
            plain_rtp_port_range="3-4",
            stun_server=None,
            debug_level=3,
        ).api_secret
        != endpoint.api_secret
    )


def test_ice_interfaces_are_up_addressed_and_not_loopback() -> None:
    found = ice_interfaces()
    assert found, "the media tests need one interface other than loopback with an IPv4 address"
    assert all(name != "lo" and not address.startswith("127.") for name, address in found)


def test_refusals_name_the_role_with_the_right_article() -> None:
    assert not_allowed(Capability.SEND_VIDEO, Role.ATTENDEE).message == "An Attendee may not sendVideo in this call."
    assert not_allowed(Capability.SEND_AUDIO, Role.CONSUMER).message.startswith("A Consumer may not")


def test_the_request_budget_allows_a_burst_then_its_rate() -> None:
    now = [0.0]
    budget = protocol.RequestBudget(per_second=10, burst=5, clock=lambda: now[0])
    assert [budget.take() for _ in range(6)] == [True] * 5 + [False]
    now[0] += 0.25  # 2.5 tokens back
    assert [budget.take() for _ in range(3)] == [True, True, False]
    now[0] += 100  # never more than the burst
    assert sum(budget.take() for _ in range(10)) == 5
